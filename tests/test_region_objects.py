"""One labelling per mask: cutting it to regions gives exactly the objects of labelling each cut mask."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cfosstats.objects.label import drop_small_objects, label_foreground, label_objects, region_objects
from cfosstats.stats.quantify import analysed_areas, quantify_regions


def _random_case(rng):
    h, w = rng.integers(1, 60, 2)
    seeds = rng.random((h, w)) < rng.uniform(0.02, 0.3)
    mask = ndimage.binary_dilation(seeds, iterations=int(rng.integers(0, 3)))
    ignore = rng.random((h, w)) < 0.1 if rng.random() < 0.5 else None
    regions = {
        "band": ndimage.binary_dilation(rng.random((h, w)) < 0.05, iterations=3),
        "speckle": rng.random((h, w)) < rng.uniform(0.2, 1.0),
    }
    return mask, ignore, regions, int(rng.integers(0, 8))


@pytest.mark.parametrize("seed", range(4))
def test_region_objects_equal_labelling_the_cut_mask(seed):
    rng = np.random.default_rng(seed)
    for _ in range(400):
        mask, ignore, regions, min_size = _random_case(rng)
        labels, _, foreground = label_foreground(mask, ignore)
        for area in analysed_areas(mask.shape, regions, ignore).values():
            expected = label_objects(mask, min_size, region=area)
            n_objects, pixels = region_objects(labels, area, min_size, foreground)
            assert n_objects == int(expected.max())
            assert np.array_equal(pixels, np.flatnonzero(expected))


def test_quantify_with_one_labelling_equals_labelling_each_region():
    rng = np.random.default_rng(9)
    for _ in range(200):
        mask, ignore, regions, min_size = _random_case(rng)
        image = rng.integers(0, 255, mask.shape).astype(np.uint8)
        direct = [quantify_regions(mask, {name: region}, image, min_size, ignore, 0.4)[0]
                  for name, region in regions.items()]  # fmt: skip
        once = quantify_regions(mask, regions, image, min_size, ignore, 0.4,
                                labelled=label_foreground(mask, ignore))  # fmt: skip
        # NaN == NaN here: compare the rows' reprs, exact floats included.
        assert repr(once) == repr(direct)


def test_drop_small_objects_equals_the_size_filter():
    rng = np.random.default_rng(3)
    for _ in range(300):
        mask, ignore, _, min_size = _random_case(rng)
        labels, n_objects, foreground = label_foreground(mask, ignore)
        assert n_objects == int(labels.max())
        filtered, n_kept, _, _ = drop_small_objects(labels, n_objects, foreground, min_size)
        expected = label_objects(mask, min_size, ignore=ignore)
        assert np.array_equal(filtered, expected) and n_kept == int(expected.max())


def test_a_cut_that_splits_an_object_counts_both_pieces():
    mask = np.array([[1, 1, 1, 1, 1]], dtype=bool)
    area = np.array([[1, 1, 0, 1, 1]], dtype=bool)
    n_objects, pixels = region_objects(label_objects(mask), area, min_size=2)
    assert n_objects == 2 and pixels.tolist() == [0, 1, 3, 4]
    assert region_objects(label_objects(mask), area, min_size=3)[0] == 0  # both pieces too small
