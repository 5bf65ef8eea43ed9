"""Shared fixtures. Real data is read from ../shared/data/train_data, never copied into the repo.

When the environment variable CI is set and the real data is missing, tests that need it fail
(they must not silently skip in CI); elsewhere they skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.segment_data import one_torch_thread, tiny_lab_root  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
TRAIN_DATA = Path(os.environ.get("CFOSSTATS_TRAIN_DATA", REPO.parent / "shared" / "data" / "train_data"))


def _require(root: Path, marker: str, what: str) -> Path:
    """`root` when `root / marker` exists; else fail with CI set, skip elsewhere."""
    if (root / marker).is_dir():
        return root
    message = f"{what} not found at {root}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: tests that need it must not skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def train_data() -> Path:
    """Root of the real training data (folders lab-wue1, lab-mue, lab-wue2)."""
    return _require(TRAIN_DATA, "lab-wue1", "real training data")


SOURCE_DATA = Path(os.environ.get("CFOSSTATS_SOURCE_DATA", REPO.parent / "shared" / "data" / "source_data"))


@pytest.fixture(scope="session")
def source_data() -> Path:
    """Root of the study's published source data (Figure_3/4/5_source_data)."""
    return _require(SOURCE_DATA, "Figure_5_source_data", "published source data")
