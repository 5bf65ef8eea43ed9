"""Small synthetic data for the segmentation tests: blob images and a 12-image stand-in lab.

The fixtures are registered in conftest.py, so every test module can use them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cfosstats.core.imageio import write_mask, write_png
from cfosstats.segment.predict import Settings

TINY = {"base": 4, "depth": 2}
FP32 = Settings(precision="fp32", device="cpu")


@pytest.fixture()
def one_torch_thread():
    """Tiny tensors: one thread is several times faster than two fighting over shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blob_image(rng: np.random.Generator, size: int = 64, n_blobs: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A dim noisy image with bright round nuclei, and the nuclei's mask."""
    rows, cols = np.mgrid[:size, :size]
    image = rng.normal(30, 6, (size, size))
    mask = np.zeros((size, size), bool)
    for _ in range(n_blobs):
        r, c = rng.integers(6, size - 6, 2)
        radius = rng.uniform(3, 5)
        disk = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        mask |= disk
        image[disk] += 120
    return np.clip(image, 0, 255).astype(np.uint8), mask


@pytest.fixture(scope="module")
def tiny_lab_root(tmp_path_factory) -> tuple[Path, Path]:
    """A 12-image lab (3 strata) with two annotators and an estimated ground truth."""
    root = tmp_path_factory.mktemp("data")
    lab_dir = root / "lab-tiny"
    rng = np.random.default_rng(8)
    rows = []
    for index in range(12):
        image_id = f"{index:04d}"
        image, mask = blob_image(rng)
        write_png(lab_dir / "images" / f"{image_id}.png", image)
        write_mask(lab_dir / "labels" / "est_GT" / f"{image_id}_cFOS.png", mask)
        write_mask(lab_dir / "labels" / "expert_1" / f"{image_id}_cFOS.png", mask)
        write_mask(lab_dir / "labels" / "expert_2" / f"{image_id}_cFOS.png", np.roll(mask, 1, axis=1))
        rows.append({"file_id": image_id, "group_id": index % 3})
    pd.DataFrame(rows).to_csv(lab_dir / "groups_tiny.csv", index=False)
    config = root / "tiny.toml"
    config.write_text(
        'name = "tiny"\nlabel = "cFOS"\nmin_object_size = 5\nconditions = ["H"]\n'
        'annotators = ["expert_1", "expert_2"]\nstrata_file = "groups_tiny.csv"\ncv_folds = 2\n'
    )
    return root, config
