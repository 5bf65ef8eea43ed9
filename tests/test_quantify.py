"""Quantification per image and region, and normalisation to the control group (hand arithmetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfosstats.stats.quantify import (
    DENSITY_PER_10K_PX,
    DENSITY_PER_MM2,
    IMAGE_COLUMNS,
    WHOLE_IMAGE,
    normalise_to_control,
    quantify_image,
)


def _square(mask: np.ndarray, row: int, col: int, side: int) -> None:
    mask[row : row + side, col : col + side] = True


@pytest.fixture
def scene():
    """20x20 image: three 4x4 objects; the region is the left half (columns 0..9)."""
    mask = np.zeros((20, 20), bool)
    _square(mask, 1, 1, 4)  # inside the region
    _square(mask, 10, 2, 4)  # inside the region
    _square(mask, 5, 8, 4)  # columns 8..11: half (8 px) inside the region
    region = np.zeros((20, 20), bool)
    region[:, :10] = True
    image = np.zeros((20, 20))
    image[1:5, 1:5] = 10.0
    image[10:14, 2:6] = 20.0
    image[5:9, 8:12] = 40.0
    return mask, region, image


def test_objects_are_cut_to_the_region_before_counting(scene):
    mask, region, image = scene
    table = quantify_image(mask, {"CA1": region}, image, min_size=0)
    assert list(table.columns) == list(IMAGE_COLUMNS)
    row = table.iloc[0]
    assert row["n_objects"] == 3
    assert row["object_pixels"] == 16 + 16 + 8  # the cut object keeps its 8 px inside


def test_a_cut_object_below_the_minimum_size_is_dropped(scene):
    mask, region, image = scene
    row = quantify_image(mask, {"CA1": region}, image, min_size=10).iloc[0]
    assert row["n_objects"] == 2  # 8 px left of the third object < 10
    whole = quantify_image(mask, None, image, min_size=10).iloc[0]
    assert whole["region"] == WHOLE_IMAGE and whole["n_objects"] == 3


def test_density_per_mm2_with_the_pixel_size(scene):
    mask, region, image = scene
    um2_per_px = 1 / 1.61**2
    row = quantify_image(mask, {"CA1": region}, image, min_size=10, um2_per_px=um2_per_px).iloc[0]
    area_mm2 = 200 * um2_per_px * 1e-6  # 20 x 10 px
    assert row["region_area_px"] == 200
    assert row["region_area_mm2"] == pytest.approx(area_mm2)
    assert row["density"] == pytest.approx(2 / area_mm2)
    assert row["density_unit"] == DENSITY_PER_MM2


def test_density_without_pixel_size_is_per_10k_px(scene):
    mask, region, image = scene
    row = quantify_image(mask, {"CA1": region}, image, min_size=10).iloc[0]
    assert row["density"] == pytest.approx(2 / 200 * 1e4)
    assert row["density_unit"] == DENSITY_PER_10K_PX
    assert np.isnan(row["region_area_mm2"])


def test_mean_intensity_of_object_pixels_in_the_region(scene):
    mask, region, image = scene
    row = quantify_image(mask, {"CA1": region}, image, min_size=0).iloc[0]
    assert row["intensity"] == pytest.approx((16 * 10 + 16 * 20 + 8 * 40) / 40)
    empty = quantify_image(np.zeros_like(mask), {"CA1": region}, image).iloc[0]
    assert empty["n_objects"] == 0 and np.isnan(empty["intensity"]) and empty["density"] == 0


def test_ignored_pixels_leave_the_region_and_the_objects(scene):
    mask, region, image = scene
    ignore = np.zeros_like(mask)
    ignore[10:20, :] = True  # the lower half: removes the second object and 100 region px
    row = quantify_image(mask, {"CA1": region}, image, ignore=ignore).iloc[0]
    assert row["region_area_px"] == 100
    assert row["n_objects"] == 2


def test_several_regions_one_row_each(scene):
    mask, region, image = scene
    table = quantify_image(mask, {"left": region, "right": ~region}, image)
    assert table["region"].tolist() == ["left", "right"]
    assert table["n_objects"].tolist() == [3, 1]


def test_shape_mismatch_is_an_error(scene):
    mask, region, _ = scene
    with pytest.raises(ValueError, match="region CA1 has shape"):
        quantify_image(mask, {"CA1": region[:5]})


def _frame():
    return pd.DataFrame(
        {
            "source": "m",
            "region": "CA1",
            "experiment": [1, 1, 1, 2, 2, 2],
            "group": ["H", "H", "C+", "H", "H", "C+"],
            "density": [10.0, 30.0, 40.0, 5.0, 15.0, 30.0],
        }
    )


def test_normalisation_to_the_control_mean_per_experiment():
    out, notes = normalise_to_control(_frame(), ["density"], "group", "H")
    # experiment 1: control mean 20; experiment 2: control mean 10
    assert out["density_normalised"].tolist() == [0.5, 1.5, 2.0, 0.5, 1.5, 3.0]
    assert out["density_control_mean"].tolist() == [20.0] * 3 + [10.0] * 3
    assert notes.empty


def test_missing_experiment_is_one_experiment():
    frame = _frame().assign(experiment=pd.NA)
    out, _ = normalise_to_control(frame, ["density"], "group", "H")
    assert out["density_control_mean"].unique().tolist() == [15.0]


def test_only_used_rows_enter_the_control_mean():
    frame = _frame().assign(use=[True, False, True, True, True, True])
    out, _ = normalise_to_control(frame, ["density"], "group", "H", use="use")
    assert out.loc[0, "density_control_mean"] == 10.0
    assert out.loc[1, "density_normalised"] == 3.0  # unused rows are normalised too


def test_zero_control_mean_gives_nan_and_a_note():
    frame = _frame()
    frame.loc[frame["experiment"] == 1, "density"] = [0.0, 0.0, 12.0]
    out, notes = normalise_to_control(frame, ["density"], "group", "H")
    assert out.loc[out["experiment"] == 1, "density_normalised"].isna().all()
    assert out.loc[out["experiment"] == 2, "density_normalised"].notna().all()
    assert len(notes) == 1
    note = notes.iloc[0]
    assert note["experiment"] == "1" and note["control_mean"] == 0.0 and note["n_control"] == 2
    assert "mean is 0" in note["note"]


def test_no_control_value_gives_nan_and_a_note():
    frame = _frame()
    frame = frame[~((frame["experiment"] == 2) & (frame["group"] == "H"))]
    out, notes = normalise_to_control(frame, ["density"], "group", "H")
    assert out.loc[out["experiment"] == 2, "density_normalised"].isna().all()
    assert notes.iloc[0]["n_control"] == 0 and "no H (control) value" in notes.iloc[0]["note"]
