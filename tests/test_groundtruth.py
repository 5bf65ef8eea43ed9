"""Estimated ground truth: STAPLE reproduces the published est_GT; majority vote; object consensus."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cfosstats.analyses.objectivity import estimate_groundtruth
from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_mask, write_mask
from cfosstats.objects.groundtruth import (
    METHODS,
    estimate_consensus,
    majority_vote,
    object_consensus,
    pixel_performance,
    staple,
)
from cfosstats.objects.label import label_objects

# -- the published estimated ground truth ----------------------------------------------------

PUBLISHED_LABS = {"wue1": 36, "mue": 5, "wue2": 5}


@pytest.fixture(scope="module")
def published_comparison(train_data, tmp_path_factory) -> dict[str, dict]:
    """estimate_groundtruth(staple) of every lab, compared image by image with est_GT.

    The 46 STAPLE runs dominate (about 0.5 s each, plus reading the RGB masks): ~20 s on 2 cores.
    """
    from cfosstats.datasets import load_lab

    comparison = {}
    for name in PUBLISHED_LABS:
        lab = load_lab(name, data=train_data)
        out_dir = tmp_path_factory.mktemp(f"est_{name}")
        run = estimate_groundtruth(lab, out_dir, method="staple", jobs=2)
        differing = {}
        for image_id in lab.annotated_image_ids():
            ours = read_mask(out_dir / f"{image_id}_{lab.config.label}.png")
            published = lab.mask("est_GT", image_id)
            assert published.any()
            differing[image_id] = int((ours != published).sum())
        comparison[name] = {"lab": lab, "run": run, "differing_pixels": differing}
    return comparison


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("lab_name", sorted(PUBLISHED_LABS))
def test_staple_reproduces_every_published_est_gt(published_comparison, lab_name):
    """STAPLE(all annotators) > 0.5 equals labels/est_GT pixel for pixel on every image."""
    result = published_comparison[lab_name]
    differing = result["differing_pixels"]
    assert len(differing) == PUBLISHED_LABS[lab_name]
    assert {k: v for k, v in differing.items() if v} == {}
    run, lab = result["run"], result["lab"]
    assert run.warnings.empty
    assert len(run.annotators) == PUBLISHED_LABS[lab_name] * len(lab.annotators)
    assert set(run.annotators["performance_source"]) == {"staple"}
    assert run.annotators[["sensitivity", "specificity"]].notna().all().all()


@pytest.mark.realdata
def test_ignored_regions_are_not_cut_before_staple(train_data):
    """wue2 image 1671: the published estimate has pixels inside the ignored region."""
    from cfosstats.datasets import load_lab

    lab = load_lab("wue2", data=train_data)
    masks = [lab.mask(name, "1671") for name in lab.annotators]
    published = lab.mask("est_GT", "1671")
    ignore = lab.ignore_mask("1671")
    assert (published & ignore).sum() > 0

    result = staple(masks)
    assert np.array_equal(result.estimate, published)
    # No posterior sits exactly on the threshold: "> 0.5" and ">= 0.5" agree.
    assert not (result.probability == 0.5).any()
    cut = staple([m & ~ignore for m in masks]).estimate
    assert not np.array_equal(cut, published)


# -- STAPLE on hand-made masks ---------------------------------------------------------------


def _square(shape=(20, 20), rows=slice(5, 15), cols=slice(5, 15)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def test_staple_perfect_annotator_scores_one():
    truth = _square()
    generous = truth.copy()
    generous[4, 5:15] = True  # one extra row
    stingy = truth.copy()
    stingy[5:7, 5:15] = False  # misses two rows

    result = staple([truth, generous, stingy])

    assert np.array_equal(result.estimate, truth)
    assert result.sensitivity[0] == pytest.approx(1.0, abs=1e-6)
    assert result.specificity[0] == pytest.approx(1.0, abs=1e-6)
    assert result.sensitivity[1] == pytest.approx(1.0, abs=1e-6)
    assert result.specificity[1] < 1.0
    assert result.sensitivity[2] == pytest.approx(0.8, abs=1e-6)
    assert result.specificity[2] == pytest.approx(1.0, abs=1e-6)
    assert result.probability.dtype == np.float64
    assert result.iterations > 0


def test_staple_order_of_masks_does_not_change_the_estimate():
    truth = _square()
    masks = [truth, np.roll(truth, 1, axis=0), np.roll(truth, -2, axis=1), truth & ~np.eye(20, dtype=bool)]
    forward = staple(masks)
    backward = staple(masks[::-1])
    np.testing.assert_allclose(forward.probability, backward.probability, atol=1e-12)
    assert forward.sensitivity == pytest.approx(backward.sensitivity[::-1])


@pytest.mark.parametrize("value", [False, True])
def test_staple_degenerate_masks_give_a_certain_answer_not_nan(value):
    masks = [np.full((4, 4), value)] * 3
    result = staple(masks)
    assert not np.isnan(result.probability).any()
    assert (result.estimate == value).all()


def test_staple_refuses_masks_of_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        staple([np.zeros((3, 3)), np.zeros((3, 4))])
    with pytest.raises(ValueError, match="at least"):
        staple([])


# -- majority vote ---------------------------------------------------------------------------


def test_majority_vote_three_annotators():
    a = np.array([[1, 1, 1, 0]], bool)
    b = np.array([[1, 1, 0, 0]], bool)
    c = np.array([[1, 0, 0, 1]], bool)
    assert majority_vote([a, b, c]).tolist() == [[True, True, False, False]]


def test_majority_vote_tie_is_background():
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[1, 0, 1, 0]], bool)
    assert majority_vote([a, b]).tolist() == [[True, False, False, False]]
    # 2 of 4 (third column) is a tie too; 3 of 4 (first two) a majority.
    c = np.array([[1, 1, 0, 0]], bool)
    d = np.array([[0, 1, 1, 0]], bool)
    assert majority_vote([a, b, c, d]).tolist() == [[True, True, False, False]]


def test_majority_vote_accepts_0_255_masks():
    assert majority_vote([np.array([[255, 0]], np.uint8)] * 3).tolist() == [[True, False]]


def test_pixel_performance():
    estimate = np.array([[1, 1, 0, 0]], bool)
    sensitivity, specificity = pixel_performance([np.array([[1, 0, 1, 0]], bool)], estimate)
    assert sensitivity == (0.5,)
    assert specificity == (0.5,)
    empty = np.zeros((1, 4), bool)
    sensitivity, specificity = pixel_performance([empty], empty)
    assert np.isnan(sensitivity[0]) and specificity == (1.0,)


# -- object consensus ------------------------------------------------------------------------


def _annotators_for_consensus() -> list[np.ndarray]:
    """Object X drawn by all three (one with an extra column), Y by two, Z by one."""
    shape = (12, 30)
    x = _square(shape, slice(1, 6), slice(1, 6))
    y = _square(shape, slice(1, 6), slice(12, 17))
    z = _square(shape, slice(1, 6), slice(23, 28))
    x_wide = _square(shape, slice(1, 6), slice(1, 7))  # IoU with x: 25/30 > 0.5
    return [x | y | z, x_wide | y, x.copy()]


def test_object_consensus_keeps_objects_found_by_k_annotators():
    masks = _annotators_for_consensus()
    x = _square(masks[0].shape, slice(1, 6), slice(1, 6))
    y = _square(masks[0].shape, slice(1, 6), slice(12, 17))

    assert np.array_equal(object_consensus(masks, k=3), x)
    # Default k is a strict majority: 2 of 3.
    assert np.array_equal(object_consensus(masks), x | y)
    assert label_objects(object_consensus(masks, k=1)).max() == 3


def test_object_consensus_draws_the_pixelwise_majority_of_the_group():
    masks = _annotators_for_consensus()
    consensus = object_consensus(masks, k=3)
    # The extra column drawn by one annotator of three is not in the consensus.
    assert not consensus[1:6, 6].any()


def test_object_consensus_links_need_iou_above_threshold_and_size_filter():
    shape = (10, 10)
    a = _square(shape, slice(0, 4), slice(0, 4))  # 16 px
    b = _square(shape, slice(0, 4), slice(2, 6))  # IoU 8/24: not the same object
    assert not object_consensus([a, b], k=2).any()
    assert object_consensus([a, a], k=2, min_size=17).sum() == 0
    assert object_consensus([a, a], k=2, min_size=16).sum() == 16
    with pytest.raises(ValueError, match="threshold"):
        object_consensus([a, b], k=2, threshold=0.3)
    with pytest.raises(ValueError, match="k must be"):
        object_consensus([a, b], k=3)


# -- the registry ----------------------------------------------------------------------------


def test_methods_registry_returns_uniform_results():
    masks = _annotators_for_consensus()
    assert sorted(METHODS) == ["majority", "objects", "staple"]
    for name in METHODS:
        result = estimate_consensus(masks, name)
        assert result.method == name
        assert result.estimate.dtype == bool and result.estimate.shape == masks[0].shape
        assert len(result.sensitivity) == len(result.specificity) == len(masks)
    with pytest.raises(ValueError, match="unknown method"):
        estimate_consensus(masks, "median")


# -- orchestration on a stand-in lab ---------------------------------------------------------


class FakeLab:
    """The attributes of cfosstats.datasets.Lab that objectivity uses, on files in tmp."""

    def __init__(self, root: Path, masks: dict[str, dict[str, np.ndarray]], shape, ignore=None):
        self.config = SimpleNamespace(name="fake", label="cFOS", min_object_size=2)
        self.annotators = sorted(name for name in masks if name != "est_GT")
        self.has_published_gt = "est_GT" in masks
        self.image_ids = sorted({i for per_image in masks.values() for i in per_image})
        self._shape = shape
        self._files: dict[str, dict[str, Path]] = {}
        for source, per_image in masks.items():
            for image_id, mask in per_image.items():
                path = write_mask(root / source / f"{image_id}_cFOS.png", mask)
                self._files.setdefault(source, {})[image_id] = path
        self.ignore_files = {}
        for image_id, mask in (ignore or {}).items():
            self.ignore_files[image_id] = write_mask(root / "ignore" / f"{image_id}.png", mask)

    def annotated_image_ids(self):
        return [i for i in self.image_ids if any(i in self._files[a] for a in self.annotators)]

    def image_shape(self, image_id):
        return self._shape

    def mask_path(self, source, image_id):
        try:
            return self._files[source][image_id]
        except KeyError:
            raise InputError(source, f"no mask for image '{image_id}'") from None

    def mask(self, source, image_id):
        return read_mask(self.mask_path(source, image_id))


def test_estimate_groundtruth_writes_masks_table_and_warnings(tmp_path):
    masks = _annotators_for_consensus()
    lab = FakeLab(
        tmp_path / "lab",
        {"expert_1": {"a": masks[0], "b": masks[0]}, "expert_2": {"a": masks[1]},
         "expert_3": {"a": masks[2], "b": masks[2]}},
        shape=masks[0].shape,
    )  # fmt: skip

    run = estimate_groundtruth(lab, tmp_path / "out", method="majority", jobs=1)

    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [".cfosstats-output.json", "a_cFOS.png", "annotators.csv", "b_cFOS.png", "warnings.csv"]
    assert np.array_equal(read_mask(tmp_path / "out" / "a_cFOS.png"), majority_vote(masks))
    table = pd.read_csv(tmp_path / "out" / "annotators.csv", dtype={"image_id": str})
    assert list(table.columns) == [
        "image_id", "annotator", "method", "performance_source", "sensitivity", "specificity",
        "n_annotators",
    ]  # fmt: skip
    assert table.groupby("image_id")["annotator"].count().to_dict() == {"a": 3, "b": 2}
    assert set(table["performance_source"]) == {"pixels_vs_estimate"}
    assert run.warnings[["image_id", "source"]].values.tolist() == [["b", "expert_2"]]


def test_estimate_groundtruth_parallel_equals_inline(tmp_path):
    rng = np.random.default_rng(1)
    sources = {f"expert_{k}": {} for k in (1, 2, 3)}
    for image_id in ("x", "y", "z"):
        truth = rng.random((16, 16)) > 0.7
        for k, name in enumerate(sources):
            sources[name][image_id] = truth ^ (rng.random((16, 16)) > 0.9 + 0.02 * k)
    lab = FakeLab(tmp_path / "lab", sources, shape=(16, 16))
    inline = estimate_groundtruth(lab, tmp_path / "one", method="staple", jobs=1)
    parallel = estimate_groundtruth(lab, tmp_path / "two", method="staple", jobs=2)
    pd.testing.assert_frame_equal(inline.annotators, parallel.annotators)
    for image_id in ("x", "y", "z"):
        name = f"{image_id}_cFOS.png"
        assert np.array_equal(read_mask(tmp_path / "one" / name), read_mask(tmp_path / "two" / name))


def test_estimate_groundtruth_mask_of_wrong_shape_names_the_file(tmp_path):
    good = np.zeros((8, 8), bool)
    lab = FakeLab(
        tmp_path / "lab",
        {"expert_1": {"a": good}, "expert_2": {"a": np.zeros((8, 9), bool)}},
        shape=(8, 8),
    )
    with pytest.raises(InputError, match="expert_2") as caught:
        estimate_groundtruth(lab, tmp_path / "out", method="staple", jobs=2)
    assert caught.value.path.name == "a_cFOS.png"
    assert "differs" in caught.value.message
    assert not (tmp_path / "out").exists()  # nothing half-written
