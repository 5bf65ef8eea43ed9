"""Finding a lab's data: ``--data ROOT``, then ``$CFOSSTATS_DATA``, then the fetch cache.

A simulated lab (the demo) needs no data at all: without a root, the caller's ``simulated_data``
makes it (the commands pass :func:`cfosstats.simulate.demo.demo_root`, which simulates the demo
study once, with the default seed, into the cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cfosstats.core.errors import InputError
from cfosstats.datasets.fetch import find_cached
from cfosstats.datasets.lab import Lab
from cfosstats.datasets.layout import MAPPING_FILE
from cfosstats.datasets.readers import read_study_layout, read_training_layout
from cfosstats.datasets.registry import LabConfig, load_lab_config


def resolve_data_root(
    config: LabConfig, data: str | Path | None = None, simulated_data: Callable[[], Path] | None = None
) -> tuple[Path, str]:
    """The data root of a lab and its layout (``study`` or ``training``).

    Parameters
    ----------
    config : LabConfig
        The lab's registry entry.
    data : str or Path, optional
        A folder holding ``lab-<id>/`` folders, a full study root with ``image_mapping.xlsx``,
        or the lab folder itself. Without it: ``$CFOSSTATS_DATA``, then the fetch cache (and
        for the demo lab a simulated study, from `simulated_data`).
    simulated_data : callable, optional
        Makes the data root of a simulated lab (``config.simulated``) when none is found, e.g.
        :func:`cfosstats.simulate.demo.demo_root`.

    Raises
    ------
    InputError
        When no data for the lab can be found.
    """
    if data is None and os.environ.get("CFOSSTATS_DATA"):
        data = os.environ["CFOSSTATS_DATA"]
    if data is None:
        cached = find_cached(config.name)
        if cached is not None:
            data = cached
        elif config.simulated and simulated_data is not None:
            data = simulated_data()
        elif config.simulated:
            raise InputError(
                None,
                f"no data for lab {config.name}: pass --data ROOT, or simulated_data="
                "cfosstats.simulate.demo.demo_root to simulate the demo study",
            )
        else:
            raise InputError(
                None,
                f"no data for lab {config.name}: pass --data ROOT, set CFOSSTATS_DATA, "
                f"or run 'cfosstats fetch --lab {config.name}'",
            )
    root = Path(data).expanduser()
    if not root.is_dir():
        raise InputError(root, "data folder not found")
    if root.name == config.folder and not (root / config.folder).is_dir():
        root = root.parent  # the lab folder itself was given
    if (root / MAPPING_FILE).is_file():
        return root, "study"
    if (root / config.folder).is_dir():
        return root, "training"
    raise InputError(root, f"holds neither {config.folder}/ nor {MAPPING_FILE}")


def load_lab(
    lab: str | LabConfig,
    data: str | Path | None = None,
    config_path: str | Path | None = None,
    simulated_data: Callable[[], Path] | None = None,
) -> Lab:
    """Read one lab's data into a :class:`~cfosstats.datasets.lab.Lab`.

    Parameters
    ----------
    lab : str or LabConfig
        Registry name (``wue1``) or an already loaded entry.
    data : str or Path, optional
        Where the data is (see :func:`resolve_data_root`).
    config_path : str or Path, optional
        A lab registry file to use instead of the shipped entry.
    simulated_data : callable, optional
        Makes the data of a simulated lab when none is found (see :func:`resolve_data_root`).

    Examples
    --------
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> len(lab.image_ids), lab.annotators
    (5, ['expert_1', 'expert_3', 'expert_4', 'expert_5'])
    """
    config = lab if isinstance(lab, LabConfig) else load_lab_config(lab, config_path)
    root, layout = resolve_data_root(config, data, simulated_data)
    if layout == "study":
        return read_study_layout(root, config)
    return read_training_layout(root / config.folder, config)
