"""The demo lab's data: a simulated study in the fetch cache, made on first use.

The demo lab needs no download. The commands pass :func:`demo_root` to
:func:`cfosstats.datasets.load_lab`, which calls it when no data for a simulated lab is found.
"""

from __future__ import annotations

from pathlib import Path

from cfosstats.datasets.fetch import cache_dir
from cfosstats.datasets.layout import MAPPING_FILE
from cfosstats.simulate.study import simulate_study

DEMO_SEED = 0


def demo_root() -> Path:
    """The default demo study in the cache, simulated on first use."""
    root = cache_dir() / f"demo-seed{DEMO_SEED}"
    if not (root / MAPPING_FILE).is_file():
        simulate_study(root, seed=DEMO_SEED)
    return root
