"""The demo lab's data: a simulated study in the fetch cache, made on first use.

The demo lab needs no download. :func:`load_lab` (the public ``cfosstats.load_lab``, used by
every command) passes :func:`demo_root` to :func:`cfosstats.datasets.discover.load_lab`, which calls
it when no data for a simulated lab is found.
"""

from __future__ import annotations

from pathlib import Path

from cfosstats.datasets.discover import load_lab as load_lab_data
from cfosstats.datasets.fetch import cache_dir
from cfosstats.datasets.lab import Lab
from cfosstats.datasets.layout import MAPPING_FILE
from cfosstats.datasets.registry import LabConfig

DEMO_SEED = 0


def demo_root() -> Path:
    """The default demo study in the cache, simulated on first use."""
    root = cache_dir() / f"demo-seed{DEMO_SEED}"
    if not (root / MAPPING_FILE).is_file():
        from cfosstats.simulate.study import simulate_study  # lazy: scipy.spatial, only to simulate

        simulate_study(root, seed=DEMO_SEED)
    return root


def load_lab(
    lab: str | LabConfig, data: str | Path | None = None, config_path: str | Path | None = None
) -> Lab:
    """Read one lab's data into a :class:`~cfosstats.datasets.lab.Lab`; the demo lab's is simulated.

    :func:`cfosstats.datasets.discover.load_lab`, with the demo study made on first use (in the
    cache, seed :data:`DEMO_SEED`) when no data of a simulated lab is found.

    Parameters
    ----------
    lab : str or LabConfig
        Registry name (``wue1``, ``demo``) or an already loaded entry.
    data : str or Path, optional
        Where the data is: a folder of ``lab-<id>/`` folders or a full study root; default
        ``$CFOSSTATS_DATA``, then the cache that ``cfosstats fetch`` fills.
    config_path : str or Path, optional
        A lab registry file to use instead of the shipped entry.

    Returns
    -------
    Lab
        Images, annotators, label sources, metadata, regions and the problems the reader found.

    Examples
    --------
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> lab.name, len(lab.image_ids), lab.annotators
    ('mue', 5, ['expert_1', 'expert_3', 'expert_4', 'expert_5'])
    """
    return load_lab_data(lab, data=data, config_path=config_path, simulated_data=demo_root)
