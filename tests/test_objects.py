"""Tests of cfosstats.objects.label: labelling rules (8-connectivity, min size, region, ignore) and
measurement, checked by hand on small arrays and against scikit-image on the real masks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import label as skimage_label
from skimage.measure import regionprops

from cfosstats.core.imageio import read_image, read_mask
from cfosstats.objects.label import OBJECT_COLUMNS, count_objects, label_objects, measure_objects


def test_diagonal_pixels_join_one_object():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # a diagonal line
    mask[4, 4] = True  # separate: (3, 3) is background
    labels = label_objects(mask)
    assert labels.dtype == np.int32
    assert labels.max() == 2
    assert labels[0, 0] == labels[1, 1] == labels[2, 2] == 1
    assert labels[4, 4] == 2


def test_min_size_drops_small_objects_and_relabels_in_scan_order():
    mask = np.zeros((6, 8), bool)
    mask[0, 6:8] = True  # 2 px, first in scan order
    mask[2:4, 0:2] = True  # 4 px
    mask[5, 3:6] = True  # 3 px
    labels = label_objects(mask, min_size=3)
    assert labels.max() == 2
    assert labels[2, 0] == 1 and labels[5, 3] == 2  # consecutive, scan order kept
    assert not labels[0, 6:8].any()
    # Objects exactly at the minimum size stay.
    assert count_objects(mask, min_size=4) == 1
    assert count_objects(mask, min_size=0) == count_objects(mask, min_size=1) == 3


def test_mask_encodings_are_binarised():
    mask = np.array([[0, 255, 0], [0, 0, 7]], dtype=np.uint8)
    assert np.array_equal(label_objects(mask), label_objects(mask > 0))
    assert label_objects(np.zeros((3, 3))).max() == 0


def test_region_cuts_objects_before_the_size_filter():
    mask = np.zeros((6, 10), bool)
    mask[1:5, 0:4] = True  # 16 px, fully inside the region
    mask[1:5, 5:9] = True  # 16 px, half outside
    region = np.zeros_like(mask)
    region[:, :7] = True
    # Without a region both objects pass min_size 10; cut to the region, the second has 8 px.
    assert count_objects(mask, min_size=10) == 2
    labels = label_objects(mask, min_size=10, region=region)
    assert labels.max() == 1
    assert not labels[:, 5:].any()
    # With a lower min size the cut object stays, but only its part inside the region.
    labels = label_objects(mask, min_size=8, region=region)
    assert labels.max() == 2
    assert np.count_nonzero(labels == 2) == 8


def test_region_cut_can_split_an_object():
    mask = np.zeros((3, 7), bool)
    mask[1, :] = True
    region = np.ones_like(mask)
    region[:, 3] = False
    assert count_objects(mask, region=region) == 2


def test_ignore_removes_pixels_before_labelling():
    mask = np.zeros((4, 9), bool)
    mask[1:3, 0:9] = True  # one 18 px bar
    ignore = np.zeros_like(mask)
    ignore[:, 4] = True  # cut through the middle
    labels = label_objects(mask, ignore=ignore)
    assert labels.max() == 2
    assert not labels[:, 4].any()
    assert count_objects(mask, min_size=9, ignore=ignore) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask": np.zeros((2, 2, 2))}, "must be 2-D"),
        ({"mask": np.zeros(4)}, "must be 2-D"),
        ({"mask": np.zeros((3, 3)), "region": np.ones((3, 4), bool)}, r"region has shape \(3, 4\)"),
        ({"mask": np.zeros((3, 3)), "ignore": np.ones((2, 3), bool)}, r"ignore has shape \(2, 3\)"),
        ({"mask": np.zeros((3, 3)), "min_size": -1}, "non-negative integer"),
        ({"mask": np.zeros((3, 3)), "min_size": 2.5}, "non-negative integer"),
    ],
)
def test_label_objects_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        label_objects(**kwargs)


def test_measure_objects_by_hand():
    labels = np.zeros((4, 5), np.int32)
    labels[0, 0:2] = 7  # non-consecutive labels
    labels[2:4, 3:5] = 3
    intensity = np.arange(20, dtype=np.uint16).reshape(4, 5)
    table = measure_objects(labels, intensity, image_id="img")
    assert tuple(table.columns) == OBJECT_COLUMNS
    assert table["label"].tolist() == [3, 7]
    assert table["area"].tolist() == [4, 2]
    assert table["centroid_row"].tolist() == [2.5, 0.0]
    assert table["centroid_col"].tolist() == [3.5, 0.5]
    assert table["mean_intensity"].tolist() == [(13 + 14 + 18 + 19) / 4, 0.5]
    assert (table["image_id"] == "img").all()
    assert table["label"].dtype == np.int64 and table["area"].dtype == np.int64


def test_measure_objects_without_intensity_and_with_huge_labels():
    labels = np.zeros((3, 3), np.int64)
    labels[0, 0] = 2**40  # label values far beyond the number of pixels
    labels[2, 2] = 5
    table = measure_objects(labels)
    assert table["label"].tolist() == [5, 2**40]
    assert table["mean_intensity"].isna().all()
    assert table["image_id"].isna().all()


def test_measure_objects_empty_gives_typed_empty_frame():
    table = measure_objects(np.zeros((4, 4), np.int32), image_id="x")
    assert table.empty
    assert tuple(table.columns) == OBJECT_COLUMNS
    assert table["area"].dtype == np.int64
    assert table["centroid_row"].dtype == np.float64


@pytest.mark.parametrize(
    ("labels", "intensity", "message"),
    [
        (np.zeros((2, 2), float), None, "integer label image"),
        (np.zeros((2, 2), bool), None, "integer label image"),
        (-np.ones((2, 2), int), None, "non-negative"),
        (np.zeros(4, int), None, "must be 2-D"),
        (np.zeros((2, 2), int), np.zeros((2, 3)), r"intensity has shape \(2, 3\)"),
    ],
)
def test_measure_objects_rejects_bad_input(labels, intensity, message):
    with pytest.raises(ValueError, match=message):
        measure_objects(labels, intensity)


def test_labelling_and_measurement_match_skimage_on_real_masks(train_data):
    wue1 = train_data / "lab-wue1"
    for image_id, annotator in [("0001", "expert_3"), ("0064", "est_GT")]:
        mask = read_mask(wue1 / "labels" / annotator / f"{image_id}_cFOS.png")
        image = read_image(wue1 / "images" / f"{image_id}.png")
        labels = label_objects(mask, min_size=30)

        # Same objects as skimage's 8-connected labelling with the small ones removed.
        reference = skimage_label(mask, connectivity=2)
        sizes = np.bincount(reference.ravel())
        kept = np.flatnonzero(sizes >= 30)
        kept = kept[kept > 0]
        assert labels.max() == kept.size
        assert np.array_equal(labels > 0, np.isin(reference, kept))

        table = measure_objects(labels, image, image_id=image_id)
        props = regionprops(labels, intensity_image=image)
        expected = pd.DataFrame(
            {
                "label": [p.label for p in props],
                "area": [int(p.area) for p in props],
                "centroid_row": [p.centroid[0] for p in props],
                "centroid_col": [p.centroid[1] for p in props],
                "mean_intensity": [float(p.intensity_mean) for p in props],
            }
        )
        assert table["label"].tolist() == expected["label"].tolist()
        assert table["area"].tolist() == expected["area"].tolist()
        for column in ("centroid_row", "centroid_col", "mean_intensity"):
            np.testing.assert_allclose(table[column], expected[column], rtol=1e-12)


def test_labelling_equals_skimage_and_index_equals_index_objects_on_random_masks():
    from cfosstats.objects.label import index_mask_objects
    from cfosstats.objects.overlaps import index_objects

    rng = np.random.default_rng(3)
    for density, min_size in [(0.02, 0), (0.05, 2), (0.3, 3), (0.5, 5), (0.7, 30), (0.0, 4)]:
        mask = rng.random((61, 47)) < density
        labels = label_objects(mask, min_size=min_size)
        expected = skimage_label(mask, connectivity=2)
        areas = np.bincount(expected.ravel())
        small = np.flatnonzero(areas < min_size)
        expected[np.isin(expected, small[small > 0])] = 0
        expected = skimage_label(expected > 0, connectivity=2) if min_size else expected
        # skimage numbers in raster order too, so after dropping small objects renumbering the
        # survivors in order gives ours exactly (dropping never merges or splits objects).
        np.testing.assert_array_equal(labels, expected)
        assert labels.dtype == np.int32
        fast, slow = index_mask_objects(mask, min_size=min_size), index_objects(labels)
        assert fast.shape == slow.shape and fast.n_objects == slow.n_objects == labels.max()
        for name in ("object_labels", "areas", "flat_labels", "foreground", "foreground_codes"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
            assert getattr(fast, name).dtype == getattr(slow, name).dtype, name
        if slow.code_of_label is not None:
            np.testing.assert_array_equal(fast.code_of_label, slow.code_of_label)
