"""Tests of cfosstats.objects.matching against dense references computed the naive way.

References:

- ``naive_overlaps``: the full IoU matrix over all object pairs, one full-image boolean
  intersection and union per pair (no shared pass, no sparsity);
- ``dense_lsa_tp``: scipy's linear_sum_assignment on that dense matrix, the way the study's
  ``iou_mapping`` did (maximise summed IoU, then count pairs above the threshold), or with
  stardist's cost for the ``"tp_count"`` rule;
- ``brute_force_optimum``: every one-to-one assignment enumerated in exact rational arithmetic,
  for the small random images (it settles ties, which a float solver leaves to chance).
"""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from cfosstats.core.imageio import read_mask
from cfosstats.objects import assignment as assignment_module
from cfosstats.objects import matching
from cfosstats.objects.label import label_objects
from cfosstats.objects.matching import (
    ASSIGNMENTS,
    CRITERIA,
    DEFAULT_AP_THRESHOLDS,
    MatchResult,
    ObjectIndex,
    average_precision,
    index_objects,
    match_labels,
    match_masks,
    overlap_table,
)

THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)
RULES = [(c, a) for c in sorted(CRITERIA) for a in sorted(ASSIGNMENTS)]


# ------------------------------------------------------------------------------------------------
# Naive references
# ------------------------------------------------------------------------------------------------


def naive_overlaps(rater: np.ndarray, reference: np.ndarray):
    """Object ids and the full intersection / union matrices, one full-image op per pair."""
    rater_ids = [int(v) for v in np.unique(rater) if v != 0]
    reference_ids = [int(v) for v in np.unique(reference) if v != 0]
    intersection = np.zeros((len(rater_ids), len(reference_ids)), dtype=np.int64)
    union = np.zeros_like(intersection)
    for i, a in enumerate(rater_ids):
        in_a = rater == a
        for j, b in enumerate(reference_ids):
            in_b = reference == b
            intersection[i, j] = np.count_nonzero(in_a & in_b)
            union[i, j] = np.count_nonzero(in_a | in_b)
    return rater_ids, reference_ids, intersection, union


def passes(intersection: int, union: int, threshold: float, criterion: str) -> bool:
    """TP test of one pair: it must overlap, and its float IoU must pass the threshold."""
    if intersection == 0:
        return False
    iou = intersection / union
    return iou > threshold if criterion == "gt" else iou >= threshold


def dense_lsa_tp(intersection, union, threshold, criterion, assignment) -> int:
    """TP count from a dense linear_sum_assignment over the full IoU matrix."""
    if intersection.size == 0:
        return 0
    iou = np.where(union > 0, intersection / np.maximum(union, 1), 0.0)
    ok = np.vectorize(passes)(intersection, union, threshold, criterion).astype(bool)
    if assignment == "iou_sum":  # the study's iou_mapping
        rows, cols = linear_sum_assignment(-iou)
    else:  # stardist: the count of passing pairs first, IoU only as a tie-break
        n_matched = min(iou.shape)
        rows, cols = linear_sum_assignment(-ok.astype(float) - iou / (2 * n_matched))
    return int(ok[rows, cols].sum())


def brute_force_optimum(intersection, union, threshold, criterion, assignment):
    """Exact optimum over all one-to-one assignments: (tp, summed IoU, summed IoU of TPs).

    "iou_sum" ranks assignments by (summed IoU, TP count), "tp_count" by (TP count, summed IoU
    of the TPs) and only pairs that pass the threshold take part, as documented in matching.
    """
    n_rater, n_reference = intersection.shape
    iou = [[Fraction(int(intersection[i, j]), int(union[i, j])) for j in range(n_reference)]
           for i in range(n_rater)]  # fmt: skip
    ok = [[passes(intersection[i, j], union[i, j], threshold, criterion)
           for j in range(n_reference)] for i in range(n_rater)]  # fmt: skip
    best = None

    def search(i, used, total, tp, tp_total):
        nonlocal best
        if i == n_rater:
            key = (total, tp) if assignment == "iou_sum" else (tp, tp_total)
            if best is None or key > best[0]:
                best = (key, tp, total, tp_total)
            return
        search(i + 1, used, total, tp, tp_total)  # rater object i unmatched
        for j in range(n_reference):
            if j in used or intersection[i, j] == 0:
                continue
            if assignment == "tp_count" and not ok[i][j]:
                continue
            search(
                i + 1, used | {j}, total + iou[i][j], tp + ok[i][j],
                tp_total + (iou[i][j] if ok[i][j] else 0),
            )  # fmt: skip

    search(0, frozenset(), Fraction(0), 0, Fraction(0))
    _, tp, total, tp_total = best
    return tp, total, tp_total


def check_against_brute_force(rater, reference):
    _, _, intersection, union = naive_overlaps(rater, reference)
    for threshold in THRESHOLDS:
        for criterion, assignment in RULES:
            result = match_labels(rater, reference, threshold, criterion, assignment)
            tp, total, tp_total = brute_force_optimum(intersection, union, threshold, criterion, assignment)
            context = (threshold, criterion, assignment)
            assert result.tp == tp, context
            assert result.fp == result.n_rater - tp and result.fn == result.n_reference - tp
            if tp:
                assert result.mean_iou == pytest.approx(float(tp_total) / tp, abs=1e-12)
            else:
                assert np.isnan(result.mean_iou)
            if threshold != 0.3:
                continue  # the pairs table is checked at one threshold: DataFrames are slow
            pairs = result.pairs
            assert pairs["tp"].sum() == tp, context
            assert pairs["rater_label"].is_unique and pairs["reference_label"].is_unique
            if assignment == "iou_sum":  # the assignment really maximises summed IoU
                assert pairs["iou"].sum() == pytest.approx(float(total), abs=1e-12), context


# ------------------------------------------------------------------------------------------------
# Random label images
# ------------------------------------------------------------------------------------------------


@st.composite
def label_image_pairs(draw):
    """Two label images of rectangles: the rater's are perturbed copies of the reference's.

    Rectangles may leave the image (border objects), touch or overwrite each other (objects
    next to each other, split or partly hidden); label values are arbitrary, not consecutive.
    """
    height = draw(st.integers(16, 40))
    width = draw(st.integers(16, 40))
    size = st.integers(1, 12)

    def rectangle():
        return (draw(st.integers(-4, height)), draw(st.integers(-4, width)), draw(size), draw(size))

    def paint(rectangles, dtype):
        labels = np.zeros((height, width), dtype=dtype)
        values = draw(
            st.lists(
                st.integers(1, 2**40 if dtype == np.int64 else 60000),
                min_size=len(rectangles), max_size=len(rectangles), unique=True,
            )
        )  # fmt: skip
        for (row, col, h, w), value in zip(rectangles, values, strict=True):
            labels[max(row, 0) : max(row + h, 0), max(col, 0) : max(col + w, 0)] = value
        return labels

    object_count = st.sampled_from([0, 1, 2, 3, 4, 4, 5, 5, 6, 6])  # few empty images
    reference_rects = [rectangle() for _ in range(draw(object_count))]
    rater_rects = []
    for row, col, h, w in reference_rects:
        kind = draw(st.sampled_from(["shifted", "shifted", "split", "missing"]))
        if kind == "shifted":
            shift = st.integers(-3, 3)
            rater_rects.append(
                (row + draw(shift), col + draw(shift), max(1, h + draw(shift)),
                 max(1, w + draw(shift)))
            )  # fmt: skip
        elif kind == "split":  # two fragments side by side: IoU-sum and TP-count rules differ
            cut = draw(st.integers(1, max(1, w - 1)))
            offset = draw(st.integers(-2, 2))
            rater_rects += [(row, col + offset, h, cut), (row, col + offset + cut, h, w)]
    rater_rects += [rectangle() for _ in range(draw(st.integers(0, 2)))]
    rater_rects = rater_rects[:7]
    dtype = draw(st.sampled_from([np.int32, np.int64, np.uint16]))
    return paint(rater_rects, dtype), paint(reference_rects, dtype)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_image_pairs())
def test_random_label_images_match_the_exact_brute_force(pair):
    rater, reference = pair
    check_against_brute_force(rater, reference)
    check_against_brute_force(reference, rater)


# Each forces every multi-pair component through one solver: the exact Python Hungarian (the path
# for integer weights too large for float64), or scipy's float64 solver (by default components of
# up to 36 cells go to the Hungarian, and these random pairs never have larger ones).
FORCED_SOLVERS = {
    "python_hungarian": (matching, "_FLOAT_EXACT_LIMIT"),
    "scipy": (assignment_module, "_SMALL_COMPONENT"),
}


@pytest.mark.parametrize("solver", sorted(FORCED_SOLVERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=label_image_pairs())
def test_each_solver_alone_gives_the_same_results(solver, pair):
    module, name = FORCED_SOLVERS[solver]
    rater, reference = pair
    original = getattr(module, name)
    setattr(module, name, 0)
    try:
        check_against_brute_force(rater, reference)
    finally:
        setattr(module, name, original)


@settings(max_examples=60, deadline=None)
@given(label_image_pairs())
def test_overlap_table_matches_naive_pairs(pair):
    rater, reference = pair
    rater_ids, reference_ids, intersection, union = naive_overlaps(rater, reference)
    table = overlap_table(rater, reference)
    expected = [
        (rater_ids[i], reference_ids[j], intersection[i, j], union[i, j])
        for i, j in zip(*np.nonzero(intersection), strict=True)
    ]
    got = list(
        table[["rater_label", "reference_label", "intersection", "union"]].itertuples(index=False, name=None)
    )
    assert got == expected  # same pairs, same order (by rater, then reference label)
    np.testing.assert_array_equal(table["iou"], table["intersection"] / table["union"])


@settings(max_examples=50, deadline=None)
@given(label_image_pairs())
def test_result_does_not_depend_on_label_values(pair):
    # Renumbering the objects (e.g. reversing the label order) changes nothing but the labels.
    rater, reference = pair
    wide = rater.astype(np.int64)
    renumbered = np.where(wide > 0, wide.max() + 1 - wide, 0)  # reversed order, still >= 1
    for criterion, assignment in RULES:
        a = match_labels(rater, reference, 0.3, criterion, assignment)
        b = match_labels(renumbered, reference, 0.3, criterion, assignment)
        assert a.as_dict() == pytest.approx(b.as_dict(), nan_ok=True)


@settings(max_examples=40, deadline=None)
@given(label_image_pairs())
def test_indexed_label_images_give_the_same_results(pair):
    rater, reference = pair
    rater_index, reference_index = index_objects(rater), index_objects(reference)
    assert isinstance(rater_index, ObjectIndex) and index_objects(rater_index) is rater_index
    expected = match_labels(rater, reference, 0.3)
    mixed = [(rater_index, reference_index), (rater_index, reference), (rater, reference_index)]
    for a, b in mixed:
        assert match_labels(a, b, 0.3).as_dict() == pytest.approx(expected.as_dict(), nan_ok=True)
    pd.testing.assert_frame_equal(
        overlap_table(rater_index, reference_index), overlap_table(rater, reference)
    )
    pd.testing.assert_frame_equal(
        average_precision(rater_index, reference_index), average_precision(rater, reference)
    )


def test_object_index_refuses_bad_input_and_other_shapes():
    with pytest.raises(ValueError, match="labels must be non-negative"):
        index_objects(np.array([[3, -1]]))
    with pytest.raises(ValueError, match="must be integers"):
        index_objects(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"rater \(2, 3\), reference \(3, 2\)"):
        match_labels(index_objects(np.zeros((2, 3), int)), index_objects(np.zeros((3, 2), int)))


# ------------------------------------------------------------------------------------------------
# Real masks
# ------------------------------------------------------------------------------------------------

WUE1_SETS = ("expert_1", "expert_2", "expert_3", "expert_4", "expert_5", "est_GT")


def load_labels(train_data, lab, annotator, image_id, label, min_size, ignore=True):
    folder = train_data / f"lab-{lab}"
    mask = read_mask(folder / "labels" / annotator / f"{image_id}_{label}.png")
    ignore_file = folder / "ignored_regions" / f"{image_id}_ignore.png"
    ignored = read_mask(ignore_file) if ignore and ignore_file.is_file() else None
    return label_objects(mask, min_size=min_size, ignore=ignored)


@pytest.fixture(scope="module")
def wue1_labels(train_data):
    return {
        image_id: {s: load_labels(train_data, "wue1", s, image_id, "cFOS", 30) for s in WUE1_SETS}
        for image_id in ("0001", "0064", "0101")
    }


def test_real_wue1_crops_match_the_dense_full_matrix(wue1_labels):
    # Crops keep the naive full matrix small; objects cut at the crop edge are border cases.
    windows = [(slice(0, 256), slice(0, 256)), (slice(384, 640), slice(640, 896))]
    n_checked = 0
    for labels in wue1_labels.values():
        for window in windows:
            crops = {s: labels[s][window] for s in WUE1_SETS}
            for i, rater_set in enumerate(WUE1_SETS):
                for reference_set in WUE1_SETS[i + 1 :]:
                    rater, reference = crops[rater_set], crops[reference_set]
                    _, _, intersection, union = naive_overlaps(rater, reference)
                    for threshold in THRESHOLDS:
                        for criterion, assignment in RULES:
                            expected = dense_lsa_tp(intersection, union, threshold, criterion, assignment)
                            result = match_labels(rater, reference, threshold, criterion, assignment)
                            assert result.tp == expected, (rater_set, reference_set, threshold)
                    n_checked += 1
    assert n_checked == 3 * 2 * 15


def naive_candidate_overlaps(rater, reference):
    """The full images, naively: for each reference object the rater objects under it, then one
    full-image intersection and union per candidate pair (the rest of the matrix is 0)."""
    rater_ids = [int(v) for v in np.unique(rater) if v]
    reference_ids = [int(v) for v in np.unique(reference) if v]
    row_of = {v: i for i, v in enumerate(rater_ids)}
    intersection = np.zeros((len(rater_ids), len(reference_ids)), dtype=np.int64)
    union = np.ones_like(intersection)
    for j, b in enumerate(reference_ids):
        in_b = reference == b
        for a in np.unique(rater[in_b]):
            if a:
                in_a = rater == a
                intersection[row_of[int(a)], j] = np.count_nonzero(in_a & in_b)
                union[row_of[int(a)], j] = np.count_nonzero(in_a | in_b)
    return intersection, union


@pytest.mark.parametrize(
    ("lab", "rater_set", "reference_set", "image_id", "label", "min_size"),
    [
        ("wue1", "expert_3", "est_GT", "0001", "cFOS", 30),
        ("mue", "expert_1", "est_GT", "1058", "cFOS", 30),
        ("wue2", "expert_6", "est_GT", "1669", "GABA", 112),
    ],
)
def test_real_full_images_match_the_naive_study_matching(
    train_data, lab, rater_set, reference_set, image_id, label, min_size
):
    rater = load_labels(train_data, lab, rater_set, image_id, label, min_size)
    reference = load_labels(train_data, lab, reference_set, image_id, label, min_size)
    assert rater.max() > 5 and reference.max() > 5
    intersection, union = naive_candidate_overlaps(rater, reference)
    for threshold in THRESHOLDS:
        for criterion, assignment in RULES:
            expected = dense_lsa_tp(intersection, union, threshold, criterion, assignment)
            result = match_labels(rater, reference, threshold, criterion, assignment)
            assert result.tp == expected, (threshold, criterion, assignment)
            assert result.n_rater == rater.max() and result.n_reference == reference.max()


def test_match_masks_equals_labelling_then_matching(train_data):
    folder = train_data / "lab-wue2"
    rater_mask = read_mask(folder / "labels" / "expert_7" / "1670_GABA.png")
    reference_mask = read_mask(folder / "labels" / "est_GT" / "1670_GABA.png")
    ignore = read_mask(folder / "ignored_regions" / "1670_ignore.png")
    result = match_masks(rater_mask, reference_mask, min_size=112, ignore=ignore)
    expected = match_labels(
        label_objects(rater_mask, 112, ignore=ignore),
        label_objects(reference_mask, 112, ignore=ignore),
    )
    assert result.as_dict() == expected.as_dict()
    assert 0 < result.f1 <= 1


# ------------------------------------------------------------------------------------------------
# Hand-worked cases
# ------------------------------------------------------------------------------------------------


def test_iou_exactly_at_the_threshold_separates_gt_from_ge():
    rater = np.zeros((4, 4), np.int32)
    rater[0, 0:4] = 1  # 4 px
    reference = np.zeros_like(rater)
    reference[0, 0:2] = 9  # 2 px inside it: IoU = 2/4 = 0.5 exactly
    strict = match_labels(rater, reference, 0.5, "gt")
    inclusive = match_labels(rater, reference, 0.5, "ge")
    assert (strict.tp, strict.fp, strict.fn, strict.f1) == (0, 1, 1, 0.0)
    assert np.isnan(strict.mean_iou)
    assert (inclusive.tp, inclusive.f1, inclusive.mean_iou) == (1, 1.0, 0.5)
    # The assigned pair is reported either way, flagged by whether it counts.
    assert strict.pairs.to_dict("records") == [
        {"rater_label": 1, "reference_label": 9, "iou": 0.5, "tp": False}
    ]


def test_two_partners_at_exactly_half_under_ge():
    # One 2 px rater object and two 1 px reference objects inside it: both IoU exactly 0.5,
    # but only one can be matched.
    rater = np.array([[1, 1, 0]])
    reference = np.array([[2, 3, 0]])
    for assignment in ASSIGNMENTS:
        result = match_labels(rater, reference, 0.5, "ge", assignment)
        assert (result.tp, result.fp, result.fn) == (1, 0, 1)
        assert match_labels(rater, reference, 0.5, "gt", assignment).tp == 0


def test_hand_worked_counts_and_scores():
    rater = np.zeros((10, 10), np.int32)
    reference = np.zeros_like(rater)
    rater[0:3, 0:3] = 1
    reference[0:3, 0:3] = 1  # identical: IoU 1
    rater[5:8, 0:3] = 2
    reference[5:8, 1:4] = 2  # IoU 6/12 = 0.5
    rater[0:2, 6:10] = 3  # nothing in the reference
    reference[8:10, 8:10] = 4  # nothing in the rater
    result = match_labels(rater, reference)
    assert (result.n_rater, result.n_reference) == (3, 3)
    assert (result.tp, result.fp, result.fn) == (1, 2, 2)
    assert result.precision == result.recall == result.f1 == pytest.approx(1 / 3)
    assert result.mean_iou == 1.0
    inclusive = match_labels(rater, reference, criterion="ge")
    assert inclusive.tp == 2 and inclusive.f1 == pytest.approx(2 / 3)
    assert inclusive.mean_iou == 0.75
    table = average_precision(rater, reference, thresholds=[0.4, 0.5, 0.9])
    assert table["tp"].tolist() == [2, 1, 1]
    assert table["ap"].tolist() == pytest.approx([2 / 4, 1 / 5, 1 / 5])


def test_the_assignment_rules_differ_when_fragments_outweigh_a_good_match():
    # a (rater) and b (reference) share 70 of their 100 px: IoU 70/130 = 0.54. The rater also
    # drew a2 = b - a and the reference b2 = a - b (30 px each), so IoU(a, b2) = IoU(a2, b) =
    # 0.3 and maximising summed IoU picks {a-b2, a2-b} (0.6) over {a-b} (0.54).
    rater = np.zeros((10, 13), np.int32)
    reference = np.zeros_like(rater)
    rater[:, 0:10] = 1  # a
    rater[:, 10:13] = 2  # a2, touching a
    reference[:, 3:13] = 1  # b
    reference[:, 0:3] = 2  # b2, touching b
    study = match_labels(rater, reference, 0.5, "gt", "iou_sum")
    stardist = match_labels(rater, reference, 0.5, "gt", "tp_count")
    assert study.tp == 0 and stardist.tp == 1
    assert sorted(study.pairs["iou"]) == [0.3, 0.3]
    # The study's own algorithm (dense Hungarian on summed IoU) agrees with "iou_sum".
    _, _, intersection, union = naive_overlaps(rater, reference)
    assert dense_lsa_tp(intersection, union, 0.5, "gt", "iou_sum") == 0


def make_overlaps(pairs):
    """An overlap table by hand: (rater code, reference code, intersection, union) tuples."""
    rows, cols, inter, union = (np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True))
    return matching._Overlaps(
        rater_labels=np.arange(1, rows.max() + 2),
        reference_labels=np.arange(1, cols.max() + 2),
        pair_rater=rows,
        pair_reference=cols,
        intersection=inter,
        union=union,
        iou=inter / union,
    )


def test_ties_in_summed_iou_are_broken_towards_more_true_positives():
    # {a1-b1, a2-b2} = 1/2 + 1/10 and {a1-b2, a2-b1} = 3/10 + 3/10 both sum to 3/5 exactly.
    overlaps = make_overlaps([(0, 0, 1, 2), (1, 1, 1, 10), (0, 1, 3, 10), (1, 0, 3, 10)])
    low = matching._match_overlaps(overlaps, 0.25, "gt", "iou_sum")
    assert low.tp == 2 and sorted(low.pairs["iou"]) == [0.3, 0.3]
    high = matching._match_overlaps(overlaps, 0.4, "gt", "iou_sum")
    assert high.tp == 1 and sorted(high.pairs["iou"]) == [0.1, 0.5]


def test_huge_components_use_exact_integer_weights():
    # A chain of 30 pairs with pairwise-coprime unions: lcm(unions) is far beyond 2**53, so the
    # component goes to the pure-Python solver; the result must still be the optimum.
    primes = [p for p in range(101, 400) if all(p % d for d in range(2, int(p**0.5) + 1))]
    pairs = []
    for k in range(15):  # rater k overlaps reference k (big) and reference k+1 (small)
        pairs.append((k, k, primes[2 * k] // 2 + 1, primes[2 * k]))
        pairs.append((k, k + 1, 10, primes[2 * k + 1]))
    overlaps = make_overlaps(pairs)
    result = matching._match_overlaps(overlaps, 0.5, "gt", "iou_sum")
    assert result.tp == 15  # every rater object keeps its > 0.5 partner
    intersection = np.zeros((15, 16), np.int64)
    union = np.ones((15, 16), np.int64)
    for r, c, i, u in pairs:
        intersection[r, c], union[r, c] = i, u
    assert dense_lsa_tp(intersection, union, 0.5, "gt", "iou_sum") == 15


# ------------------------------------------------------------------------------------------------
# Empty images and conventions
# ------------------------------------------------------------------------------------------------


def test_both_empty_is_perfect_agreement():
    empty = np.zeros((5, 5), np.int32)
    result = match_labels(empty, empty)
    assert (result.tp, result.fp, result.fn) == (0, 0, 0)
    assert result.precision == result.recall == result.f1 == 1.0
    assert np.isnan(result.mean_iou)
    assert result.pairs.empty and list(result.pairs.columns) == list(matching.PAIR_COLUMNS)
    assert average_precision(empty, empty)["ap"].tolist() == [1.0] * 10


@pytest.mark.parametrize("rater_empty", [True, False])
def test_one_side_empty_scores_zero_without_nan(rater_empty):
    labels = np.zeros((5, 5), np.int32)
    labels[1:3, 1:3] = 4
    empty = np.zeros_like(labels)
    rater, reference = (empty, labels) if rater_empty else (labels, empty)
    result = match_labels(rater, reference)
    assert result.tp == 0
    assert (result.fp, result.fn) == ((0, 1) if rater_empty else (1, 0))
    assert result.precision == result.recall == result.f1 == 0.0
    assert np.isnan(result.mean_iou)
    assert average_precision(rater, reference)["ap"].tolist() == [0.0] * 10


def test_result_is_picklable_and_as_dict_has_the_scalars():
    labels = np.array([[1, 1, 0, 2]])
    result = match_labels(labels, labels)
    clone = pickle.loads(pickle.dumps(result))
    assert clone == result
    pd.testing.assert_frame_equal(clone.pairs, result.pairs)
    assert set(result.as_dict()) == {
        "threshold", "criterion", "assignment", "n_rater", "n_reference",
        "tp", "fp", "fn", "precision", "recall", "f1", "mean_iou",
    }  # fmt: skip
    assert isinstance(result, MatchResult)


def test_average_precision_equals_matching_at_each_threshold(wue1_labels):
    rater, reference = wue1_labels["0064"]["expert_2"], wue1_labels["0064"]["est_GT"]
    table = average_precision(rater, reference)
    assert table["threshold"].tolist() == list(DEFAULT_AP_THRESHOLDS)
    for row in table.itertuples():
        single = match_labels(rater, reference, row.threshold)
        assert (row.tp, row.fp, row.fn) == (single.tp, single.fp, single.fn)
        assert row.ap == single.tp / (single.tp + single.fp + single.fn)
    assert table["tp"].is_monotonic_decreasing


# ------------------------------------------------------------------------------------------------
# Input validation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rater", "reference", "message"),
    [
        (np.zeros((3, 4), int), np.zeros((4, 3), int), r"rater \(3, 4\), reference \(4, 3\)"),
        (np.array([[1, -2]]), np.zeros((1, 2), int), "rater labels must be non-negative"),
        (np.zeros((1, 2), int), np.array([[0, -1]]), "reference labels must be non-negative"),
        (np.zeros((2, 2), float), np.zeros((2, 2), int), "rater labels must be integers"),
        (np.zeros((2, 2), int), np.zeros((2, 2), bool), "reference labels are a bool mask"),
    ],
)
def test_bad_label_images_are_refused(rater, reference, message):
    with pytest.raises(ValueError, match=message):
        match_labels(rater, reference)
    with pytest.raises(ValueError, match=message):
        overlap_table(rater, reference)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"criterion": "gte"}, r"unknown criterion 'gte'; choose one of \['ge', 'gt'\]"),
        ({"assignment": "greedy"}, "unknown assignment 'greedy'"),
        ({"threshold": 1.5}, r"within \[0, 1\]"),
        ({"threshold": float("nan")}, r"within \[0, 1\]"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    labels = np.array([[1, 0]])
    with pytest.raises(ValueError, match=message):
        match_labels(labels, labels, **kwargs)


def test_match_masks_refuses_masks_of_different_shapes():
    with pytest.raises(ValueError, match=r"masks differ in shape: rater \(2, 2\), reference"):
        match_masks(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
