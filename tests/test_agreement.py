"""Agreement statistics: object and pixel agreement, ICC, Krippendorff's alpha, Bland-Altman."""

from __future__ import annotations

import time
import warnings
from itertools import permutations

import krippendorff
import numpy as np
import pandas as pd
import pytest

from cfosstats.analyses.objectivity import run_agreement
from cfosstats.core.errors import InputError
from cfosstats.objects.matching import match_labels
from cfosstats.stats.agreement import (
    BLAND_ALTMAN_COLUMNS,
    COUNT_AGREEMENT_COLUMNS,
    OBJECT_AGREEMENT_COLUMNS,
    annotator_vs_reference_summary,
    bland_altman,
    bland_altman_summary,
    count_agreement,
    expert_range,
    f1_matrix,
    pairwise_f1_matrix,
    pairwise_object_agreement,
    pixel_dice,
    place_in_expert_range,
)
from tests.test_groundtruth import FakeLab


def _counts_table(matrix: np.ndarray) -> pd.DataFrame:
    """Targets x raters matrix (NaN = missing) as a tidy counts table."""
    rows = [
        {"image_id": f"{target:02d}", "rater": f"r{rater}", "count": value}
        for target, values in enumerate(matrix)
        for rater, value in enumerate(values)
        if not np.isnan(value)
    ]
    return pd.DataFrame(rows)


# -- ICC: Shrout & Fleiss (1979), Table 2 (6 targets x 4 judges) and their Table 4 values -------

SHROUT_FLEISS_RATINGS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)
SHROUT_FLEISS_ICC = {
    "ICC(1,1)": 0.17,
    "ICC(2,1)": 0.29,
    "ICC(3,1)": 0.71,
    "ICC(1,k)": 0.44,
    "ICC(2,k)": 0.62,
    "ICC(3,k)": 0.91,
}


def test_icc_matches_shrout_fleiss_1979():
    table = count_agreement(_counts_table(SHROUT_FLEISS_RATINGS))
    assert list(table.columns) == list(COUNT_AGREEMENT_COLUMNS)
    icc = table[table["statistic"] == "icc"].set_index("shrout_fleiss")
    assert len(icc) == 6
    for name, published in SHROUT_FLEISS_ICC.items():
        assert round(icc.loc[name, "value"], 2) == published, name
    assert (icc["n_images"] == 6).all() and (icc["n_raters"] == 4).all()
    assert (icc["ci95_low"] < icc["value"]).all() and (icc["value"] < icc["ci95_high"]).all()
    # Unrounded confidence limits (pingouin rounds them to 2 decimals by default).
    assert icc.loc["ICC(3,1)", "ci95_low"] != round(icc.loc["ICC(3,1)", "ci95_low"], 2)


def test_icc_hand_computed():
    # targets x 2 raters: MSB = 18, MSW = 4/3, MSJ = 0, MSE = 2 (worked by hand).
    ratings = np.array([[1, 3], [5, 5], [9, 7]], dtype=float)
    icc = count_agreement(_counts_table(ratings)).set_index("shrout_fleiss")
    assert icc.loc["ICC(1,1)", "value"] == pytest.approx(50 / 58)
    assert icc.loc["ICC(2,1)", "value"] == pytest.approx(48 / 56)
    assert icc.loc["ICC(3,1)", "value"] == pytest.approx(16 / 20)
    assert icc.loc["ICC(1,k)", "value"] == pytest.approx((18 - 4 / 3) / 18)
    assert icc.loc["ICC(3,k)", "value"] == pytest.approx(16 / 18)


def test_count_agreement_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any other warning would fail here
        count_agreement(_counts_table(SHROUT_FLEISS_RATINGS))


# -- Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C -------------

_ = np.nan
KRIPPENDORFF_2011 = np.array(  # 4 observers (rows) x 12 units, with missing values
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
        [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
    ]
)
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}


@pytest.mark.parametrize("level", sorted(KRIPPENDORFF_2011_ALPHA))
def test_krippendorff_package_reproduces_the_2011_worked_example(level):
    """The data are right: all four published levels come out of the package."""
    alpha = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert round(alpha, 3) == KRIPPENDORFF_2011_ALPHA[level]


def test_count_agreement_alpha_matches_krippendorff_2011():
    counts = _counts_table(KRIPPENDORFF_2011.T)  # units are the images
    table = count_agreement(counts)
    alpha = table[table["statistic"] == "krippendorff_alpha"].set_index("type")
    assert round(alpha.loc["interval", "value"], 3) == 0.849
    assert round(alpha.loc["ratio", "value"], 3) == 0.797
    # Unit 12 has a single value: not pairable. ICCs use only the 8 complete units (2-9).
    assert alpha.loc["interval", "n_images"] == 11
    assert (table.loc[table["statistic"] == "icc", "n_images"] == 8).all()


def test_alpha_interval_hand_computed():
    # Values 1,1 | 2,2 | 3,4: D_o = 2/6, D_e = 82/30, alpha = 1 - 10/82 (worked by hand).
    counts = _counts_table(np.array([[1, 1], [2, 2], [3, 4]], dtype=float))
    table = count_agreement(counts).set_index("type")
    assert table.loc["interval", "value"] == pytest.approx(72 / 82)


def test_count_agreement_identical_counts_are_undefined_not_errors():
    counts = _counts_table(np.full((4, 3), 7.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = count_agreement(counts)
    assert len(table) == 8 and table["value"].isna().all()


def test_count_agreement_excludes_and_checks_duplicates():
    counts = _counts_table(SHROUT_FLEISS_RATINGS)
    without = count_agreement(counts, exclude={"r3"})
    assert (without["n_raters"] == 3).all()
    with pytest.raises(ValueError, match="more than one count"):
        count_agreement(pd.concat([counts, counts.iloc[:1]]))


# -- object agreement ------------------------------------------------------------------------


def _labels() -> dict[str, np.ndarray]:
    """Three label images: a has 3 objects, b 2 (one shared with a), c 1 (shared with both)."""
    a = np.zeros((10, 30), np.int32)
    a[1:4, 1:4] = 1
    a[1:4, 10:13] = 2
    a[6:9, 20:23] = 3
    b = np.zeros_like(a)
    b[1:4, 1:4] = 1
    b[1:4, 11:14] = 2  # IoU with a's 2: 6/12, not above 0.5
    c = np.zeros_like(a)
    c[1:4, 1:4] = 7
    return {"a": a, "b": b, "c": c}


def test_pairwise_object_agreement_columns_and_rows():
    table = pairwise_object_agreement(_labels(), image_id="img")
    assert list(table.columns) == list(OBJECT_AGREEMENT_COLUMNS)
    assert len(table) == 6  # every ordered pair, no self pairs
    assert set(zip(table["rater"], table["reference"], strict=True)) == set(permutations("abc", 2))
    assert (table["image_id"] == "img").all()
    row = table.set_index(["rater", "reference"]).loc[("a", "b")]
    assert (row["n_rater"], row["n_reference"], row["tp"]) == (3, 2, 1)
    assert row["precision"] == pytest.approx(1 / 3)
    assert row["recall"] == pytest.approx(1 / 2)
    assert row["f1"] == pytest.approx(2 / 5)


def test_pairwise_object_agreement_is_symmetric_and_equals_direct_matching():
    labels = _labels()
    table = pairwise_object_agreement(labels, "img").set_index(["rater", "reference"])
    for rater, reference in permutations(labels, 2):
        forward, backward = table.loc[(rater, reference)], table.loc[(reference, rater)]
        assert forward["precision"] == backward["recall"]
        assert forward["recall"] == backward["precision"]
        assert forward["tp"] == backward["tp"] and forward["f1"] == backward["f1"]
        direct = match_labels(labels[rater], labels[reference])
        assert (forward["tp"], forward["n_rater"], forward["n_reference"]) == (
            direct.tp, direct.n_rater, direct.n_reference,
        )  # fmt: skip
        assert forward["precision"] == pytest.approx(direct.precision)
        assert forward["recall"] == pytest.approx(direct.recall)


def _objects_table() -> pd.DataFrame:
    rows = []
    f1 = {"a": [0.6, 0.8, 1.0, 0.7], "b": [0.9, 0.5, 0.8, 0.7]}
    for rater, values in f1.items():
        for image, value in enumerate(values):
            rows.append(
                {"image_id": str(image), "rater": rater, "reference": "est_GT", "f1": value,
                 "precision": value, "recall": value, "mean_iou": 0.8}
            )  # fmt: skip
            rows.append(
                {"image_id": str(image), "rater": "est_GT", "reference": rater, "f1": value,
                 "precision": value, "recall": value, "mean_iou": 0.8}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_annotator_vs_reference_summary_median_and_iqr():
    summary = annotator_vs_reference_summary(_objects_table()).set_index("rater")
    assert list(summary.index) == ["a", "b"]
    assert summary.loc["a", "f1_median"] == pytest.approx(0.75)
    assert summary.loc["a", "f1_q25"] == pytest.approx(0.675)
    assert summary.loc["a", "f1_q75"] == pytest.approx(0.85)
    assert summary.loc["a", "f1_iqr"] == pytest.approx(0.175)
    assert summary.loc["b", "n_images"] == 4
    with pytest.raises(ValueError, match="no rows"):
        annotator_vs_reference_summary(_objects_table(), reference="expert_9")


def test_pairwise_f1_matrix_and_pivot():
    long = pairwise_f1_matrix(_objects_table())
    assert list(long.columns) == ["rater", "reference", "n_images", "f1_mean", "f1_median", "f1_sd"]
    row = long.set_index(["rater", "reference"]).loc[("a", "est_GT")]
    assert row["f1_mean"] == pytest.approx(0.775) and row["n_images"] == 4
    matrix = f1_matrix(long, "f1_median")
    assert list(matrix.index) == list(matrix.columns) == ["a", "b", "est_GT"]
    assert np.isnan(matrix.loc["a", "a"]) and np.isnan(matrix.loc["a", "b"])
    assert matrix.loc["est_GT", "b"] == pytest.approx(0.75)


# -- pixels ----------------------------------------------------------------------------------


def test_pixel_dice_hand_made_and_both_empty():
    a = np.array([[1, 1, 1, 0]], bool)
    b = np.array([[0, 1, 1, 1]], bool)
    empty = np.zeros_like(a)
    table = pixel_dice({"a": a, "b": b, "e": empty, "f": empty}, "img")
    dice = table.set_index(["rater_a", "rater_b"])["dice"]
    assert len(table) == 6  # unordered pairs
    assert dice[("a", "b")] == pytest.approx(2 * 2 / 6)
    assert dice[("a", "e")] == 0.0
    assert dice[("e", "f")] == 1.0
    with pytest.raises(ValueError, match="shape"):
        pixel_dice({"a": a, "b": np.zeros((2, 2), bool)}, "img")


# -- Bland-Altman ----------------------------------------------------------------------------


def test_bland_altman_hand_made():
    counts = pd.DataFrame(
        {
            "image_id": ["1", "2", "3"] * 2 + ["1", "2"],
            "rater": ["est_GT"] * 3 + ["a"] * 3 + ["b"] * 2,
            "count": [10, 20, 30, 12, 18, 33, 10, 20],
        }
    )
    table = bland_altman(counts)
    assert list(table.columns) == list(BLAND_ALTMAN_COLUMNS)
    a = table[table["rater"] == "a"]
    assert a["diff"].tolist() == [2.0, -2.0, 3.0]
    assert a["mean"].tolist() == [11.0, 19.0, 31.5]
    summary = bland_altman_summary(table).set_index("rater")
    sd = np.sqrt(7.0)  # deviations 1, -3, 2 from the bias 1: (1 + 9 + 4) / 2
    assert summary.loc["a", "bias"] == pytest.approx(1.0)
    assert summary.loc["a", "sd"] == pytest.approx(sd)
    assert summary.loc["a", "loa_low"] == pytest.approx(1 - 1.96 * sd)
    assert summary.loc["a", "loa_high"] == pytest.approx(1 + 1.96 * sd)
    assert summary.loc["b", "n_images"] == 2 and summary.loc["b", "sd"] == 0.0


# -- expert range ----------------------------------------------------------------------------


def test_expert_range_and_placement():
    ranges = expert_range(_objects_table()).set_index("image_id")
    assert ranges.loc["0", "f1_min"] == 0.6 and ranges.loc["0", "worst_rater"] == "a"
    assert ranges.loc["0", "f1_max"] == 0.9 and ranges.loc["0", "best_rater"] == "b"
    assert ranges.loc["3", "f1_min"] == ranges.loc["3", "f1_max"] == 0.7  # a tie
    assert ranges.loc["3", "worst_rater"] == ranges.loc["3", "best_rater"] == "a"

    model = pd.DataFrame(
        {"model": "m", "image_id": ["0", "1", "2", "3", "3"], "f1": [0.5, 0.5, 1.0, 0.75, np.nan]}
    )
    placed = place_in_expert_range(model, expert_range(_objects_table()))
    assert placed["placement"].tolist() == ["below", "within", "within", "above", "undefined"]
    assert placed["model"].tolist() == ["m"] * 5
    with pytest.raises(ValueError, match="no expert range"):
        place_in_expert_range(pd.DataFrame({"image_id": ["9"], "f1": [0.5]}), ranges.reset_index())


# -- run_agreement on a stand-in lab ---------------------------------------------------------


def _fake_lab_masks(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three annotators drawing a grid of 20 blobs; each misses a different 4 of them."""
    shape = (40, 60)
    blobs = []
    for row in range(4, 36, 10):
        for col in range(4, 56, 12):
            blobs.append((slice(row, row + 4), slice(col, col + 5)))
    masks = {}
    for k in range(1, 4):
        mask = np.zeros(shape, bool)
        for index, blob in enumerate(blobs):
            if (index + k) % 5:  # each annotator skips a different fifth of the blobs
                mask[blob] = True
        mask[rng.integers(0, 40), rng.integers(0, 60)] = True  # a 1-px speck, below min size
        masks[f"expert_{k}"] = mask
    return masks


def test_run_agreement_on_a_stand_in_lab(tmp_path):
    rng = np.random.default_rng(3)
    first, second = _fake_lab_masks(rng), _fake_lab_masks(rng)
    sources = {name: {"i1": first[name], "i2": second[name]} for name in first}
    del sources["expert_3"]["i2"]  # missing annotator: recorded, image analysed without it
    ignore = np.zeros((40, 60), bool)
    ignore[:, :10] = True
    lab = FakeLab(tmp_path / "lab", sources, shape=(40, 60), ignore={"i1": ignore})

    result = run_agreement(lab, tmp_path / "out", jobs=1)

    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(
        [f"{n}.csv" for n in ("objects", "annotator_summary", "pairwise_f1", "pixel_dice",
                              "counts", "count_agreement", "bland_altman", "expert_range",
                              "fleiss_kappa", "images", "warnings")] + ["run.json", ".cfosstats-output.json"]
    )  # fmt: skip
    warnings_table = result.warnings
    assert warnings_table[["image_id", "source"]].values.tolist() == [["i2", "expert_3"]]
    images = result.tables["images"].set_index("image_id")
    assert (images["reference_source"] == "staple").all()  # no published est_GT here
    assert images.loc["i2", "missing_annotators"] == "expert_3"
    assert images.loc["i1", "ignored_pixels"] == 400

    objects = result.tables["objects"]
    assert len(objects[objects["image_id"] == "i1"]) == 4 * 3  # 3 annotators + est_GT
    assert len(objects[objects["image_id"] == "i2"]) == 3 * 2
    counts = result.tables["counts"].set_index(["image_id", "rater"])["count"]
    # 16 blobs each; specks are below min size 2; the ignored band cuts i1's first column (4).
    assert counts[("i2", "expert_1")] == 16 and counts[("i1", "expert_1")] == 12
    on_disk = pd.read_csv(tmp_path / "out" / "objects.csv", dtype={"image_id": str})
    pd.testing.assert_frame_equal(on_disk, objects, check_dtype=False)


def test_run_agreement_uses_published_est_gt_where_present(tmp_path):
    rng = np.random.default_rng(6)
    first, second = _fake_lab_masks(rng), _fake_lab_masks(rng)
    sources = {name: {"i1": first[name], "i2": second[name]} for name in first}
    sources["est_GT"] = {"i1": first["expert_1"]}  # published for i1 only
    lab = FakeLab(tmp_path / "lab", sources, shape=(40, 60))

    result = run_agreement(lab, tmp_path / "out", jobs=1, progress=True)

    images = result.tables["images"].set_index("image_id")["reference_source"]
    assert images.to_dict() == {"i1": "published", "i2": "staple"}
    assert result.warnings[["image_id", "source"]].values.tolist() == [["i2", "est_GT"]]
    objects = result.tables["objects"].set_index(["image_id", "rater", "reference"])
    assert objects.loc[("i1", "expert_1", "est_GT"), "f1"] == 1.0


def test_run_agreement_parallel_equals_inline(tmp_path):
    rng = np.random.default_rng(4)
    per_image = [_fake_lab_masks(rng) for _ in range(3)]
    sources = {name: {f"i{k}": masks[name] for k, masks in enumerate(per_image)}
               for name in per_image[0]}  # fmt: skip
    lab = FakeLab(tmp_path / "lab", sources, shape=(40, 60))
    inline = run_agreement(lab, tmp_path / "one", jobs=1)
    parallel = run_agreement(lab, tmp_path / "two", jobs=2)
    for name, table in inline.tables.items():
        pd.testing.assert_frame_equal(table, parallel.tables[name], obj=name)


def test_run_agreement_mask_of_wrong_shape_names_the_file(tmp_path):
    masks = _fake_lab_masks(np.random.default_rng(5))
    sources = {name: {"i1": mask} for name, mask in masks.items()}
    sources["expert_2"]["i1"] = masks["expert_2"][:, :50]
    lab = FakeLab(tmp_path / "lab", sources, shape=(40, 60))
    with pytest.raises(InputError, match="expert_2") as caught:
        run_agreement(lab, tmp_path / "out", jobs=2)
    assert "40x50" in caught.value.message
    assert not (tmp_path / "out").exists()


# -- real data -------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
def test_run_agreement_wue1(train_data, tmp_path):
    """The whole wue1 agreement: 36 images x 6 label sets, every ordered pair."""
    from cfosstats.datasets import load_lab

    lab = load_lab("wue1", data=train_data)
    start = time.perf_counter()
    result = run_agreement(lab, tmp_path / "wue1", jobs=2)
    elapsed = time.perf_counter() - start
    print(f"wue1 agreement: {elapsed:.1f} s")

    objects = result.tables["objects"]
    assert len(objects) == 36 * 6 * 5
    assert result.warnings.empty
    assert (result.tables["images"]["reference_source"] == "published").all()
    summary = result.tables["annotator_summary"].set_index("rater")
    assert list(summary.index) == [f"expert_{k}" for k in range(1, 6)]
    # The paper's finding: expert 1 agrees least with the estimated ground truth.
    assert summary["f1_median"].idxmin() == "expert_1"
    assert len(result.tables["expert_range"]) == 36
    icc = result.tables["count_agreement"].set_index("shrout_fleiss")
    assert 0 < icc.loc["ICC(2,1)", "value"] < 1
    assert set(result.tables["bland_altman"]["rater"]) == set(lab.annotators)
    kappa = result.tables["fleiss_kappa"].set_index("strategy").loc["annotators"]
    # Every annotator's objects are in some item (the five drew 1,559 to 3,900 objects).
    assert kappa["n_images"] == 36 and kappa["n_raters"] == 5
    assert kappa["n_object_items"] >= counts_max(result.tables["counts"], lab.annotators)
    assert kappa["n_background_items"] == kappa["n_object_items"]
    assert 0.2 < kappa["kappa"] < 0.9


def counts_max(counts: pd.DataFrame, raters) -> int:
    """The most objects any one rater drew over all images."""
    return int(counts[counts["rater"].isin(raters)].groupby("rater")["count"].sum().max())
