"""Run-based 8-connected labelling (cfosstats.objects.components) against scipy.ndimage.label."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cfosstats.core.imageio import read_mask
from cfosstats.objects.components import label_pixels
from cfosstats.objects.label import label_objects

EIGHT = np.ones((3, 3), bool)


def _ours(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels = np.zeros(mask.size, np.int32)
    where = np.flatnonzero(mask)
    labels[where], n = label_pixels(where, mask.shape)
    return labels.reshape(mask.shape), n


def _serpentine(size: int) -> np.ndarray:
    """One long object: full rows joined alternately at the right and the left end, so its
    first run (top left) reaches its last only through every other run."""
    mask = np.zeros((size, size), bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    return mask


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_of_every_shape_and_density_label_as_scipy(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        height, width = rng.integers(1, 40, size=2)
        mask = rng.random((height, width)) < rng.random()
        expected, n_expected = ndimage.label(mask, structure=EIGHT)
        labels, n = _ours(mask)
        assert n == n_expected
        np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    "mask",
    [
        np.ones((7, 9), bool),  # one object
        np.zeros((5, 5), bool),  # none
        np.indices((12, 12)).sum(axis=0) % 2 == 0,  # checkerboard: joined only diagonally
        np.eye(15, dtype=bool)[::-1],  # anti-diagonal
        np.ones((1, 30), bool),
        np.ones((30, 1), bool),
        _serpentine(41),
        np.kron(np.random.default_rng(9).random((20, 20)) < 0.4, np.ones((3, 3), bool)),
    ],
    ids=["full", "empty", "checkerboard", "anti-diagonal", "row", "column", "serpentine", "blocks"],
)
def test_hand_made_masks_label_as_scipy(mask):
    expected, n_expected = ndimage.label(mask, structure=EIGHT)
    labels, n = _ours(mask)
    assert n == n_expected
    np.testing.assert_array_equal(labels, expected)


def test_every_real_mask_labels_as_scipy(train_data):
    files = sorted(train_data.glob("lab-*/labels/*/*.png"))
    assert len(files) > 300
    for path in files:
        mask = read_mask(path)
        expected, n_expected = ndimage.label(mask, structure=EIGHT)
        labels, n = _ours(mask)
        assert n == n_expected, path
        np.testing.assert_array_equal(labels, expected, err_msg=str(path))
        assert np.array_equal(label_objects(mask), expected)
