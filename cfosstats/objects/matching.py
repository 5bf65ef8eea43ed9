"""Object-by-object comparison of two label images: overlaps, one-to-one matching, F1 and AP.

Definitions (Segebarth et al., eLife 2020, and the authors' ``iou_mapping``)
----------------------------------------------------------------------------
- IoU of a rater object ``a`` and a reference object ``b``: ``|a & b| / |a | b|`` in pixels.
  Only overlapping pairs (IoU > 0) can ever be matched.
- Assignment (``assignment=``, see ``ASSIGNMENTS``):

  ``"iou_sum"`` (default, the study's rule)
      the one-to-one assignment that maximises the summed IoU over *all* overlapping pairs
      (Hungarian), after which an assigned pair is a true positive (TP) when its IoU passes the
      threshold. Ties in summed IoU are broken in favour of more TPs. The study's code left ties
      to the solver's internal order; here the result is exact and independent of label order,
      because the optimisation runs in integer arithmetic (IoUs scaled to a common denominator).
  ``"tp_count"`` (stardist / DSB2018 rule)
      the one-to-one assignment among pairs that pass the threshold that maximises the number
      of TPs, ties broken by summed IoU.

  The two differ. A pair with IoU > 0.5 is *not* always part of the max-summed-IoU assignment:
  when rater object ``a`` and reference ``b`` overlap with IoU 0.504 (67 px shared of 100 px
  each), and the rater also drew ``a2 = b - a`` while the reference drew ``b2 = a - b`` (33 px
  each), then IoU(a, b2) = IoU(a2, b) = 0.33 and the assignment {a-b2, a2-b} (sum 0.66) beats
  {a-b} (0.504): 0 TPs at t = 0.5 under ``"iou_sum"``, 1 under ``"tp_count"``. Under
  ``"tp_count"`` with criterion ``"gt"`` and t >= 0.5 the TPs are exactly the pairs with IoU > t
  (an object has at most one partner with IoU > 0.5), so no assignment is needed at all. On
  the real lab-wue1 masks (36 images, 1080 ordered pairs of annotators and est_GT) the two
  rules give the same TP counts at t = 0.1, 0.5 and 0.7, and differ on 2 pairs at t = 0.3.
- Criterion (``criterion=``, see ``CRITERIA``): ``"gt"`` (IoU > t, the paper's rule, default) or
  ``"ge"`` (IoU >= t). IoU is the correctly rounded float ``intersection / union``, so IoU 2/4
  equals t = 0.5 exactly.

Metrics and the empty cases
---------------------------
``tp`` as above, ``fp = n_rater - tp``, ``fn = n_reference - tp``, ``precision = tp / n_rater``,
``recall = tp / n_reference``, ``f1 = 2 tp / (n_rater + n_reference)``, ``mean_iou`` = mean IoU
of the TP pairs, ``ap = tp / (tp + fp + fn)`` (the DSB2018 / stardist "average precision" at one
threshold). The results never contain NaN except ``mean_iou``:

- both images empty: precision = recall = f1 = ap = 1.0 (full agreement that nothing is there);
- exactly one side empty: precision = recall = f1 = ap = 0.0 (the undefined 0/0 one too, as
  stardist and scikit-learn's ``zero_division=0`` do);
- ``mean_iou`` is NaN when tp == 0.

Speed
-----
All overlaps come from one pass over the foreground pixels (a bincount of the pairs of labels
under each pixel), never a full-image comparison per pair. A label image matched many times can
be indexed once (:func:`index_objects`); a match then touches only foreground pixels. The
bipartite graph of overlapping pairs splits into connected components: a component with a
single pair is matched directly, one object with several partners takes its best, and only the
few remaining components go to an exact assignment solver.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from cfosstats.objects.label import label_objects

__all__ = [
    "ASSIGNMENTS",
    "CRITERIA",
    "DEFAULT_AP_THRESHOLDS",
    "MatchResult",
    "ObjectIndex",
    "average_precision",
    "index_objects",
    "match_labels",
    "match_masks",
    "overlap_table",
]

#: Comparison of IoU with the threshold that makes an assigned pair a true positive.
CRITERIA: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "gt": operator.gt,  # IoU > t: the paper's rule
    "ge": operator.ge,  # IoU >= t: stardist's rule
}

#: Thresholds of the DSB2018 / stardist AP curve, written as exact decimals. (np.arange(0.5, 1,
#: 0.05) drifts: its 0.7 is 0.7000000000000002, so an IoU of exactly 7/10 would not reach it.)
DEFAULT_AP_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)

PAIR_COLUMNS = ("rater_label", "reference_label", "iou", "tp")
OVERLAP_COLUMNS = ("rater_label", "reference_label", "intersection", "union", "iou")

# scipy's solver works in float64; integer weights stay exact while every sum it forms is below
# 2**53. Above this bound the pure-Python solver (exact on Python ints) is used instead.
_FLOAT_EXACT_LIMIT = 2**50


# --------------------------------------------------------------------------------------------
# Assignment rules: integer weights that encode a lexicographic objective exactly
# --------------------------------------------------------------------------------------------


def _iou_sum_weights(scaled_iou: list[int], is_tp: list[bool], scale: int, capacity: int):
    """Maximise summed IoU; among equal sums, the most TPs.

    `scaled_iou` is IoU * `scale` (exact ints); at most `capacity` pairs can be matched, so the
    TP count (< capacity + 1) can never outweigh one unit of scaled IoU.
    """
    return [s * (capacity + 1) + int(t) for s, t in zip(scaled_iou, is_tp, strict=True)]


def _tp_count_weights(scaled_iou: list[int], is_tp: list[bool], scale: int, capacity: int):
    """Maximise the number of TPs; among equal counts, the largest summed IoU.

    The summed scaled IoU of a matching is at most capacity * scale, below one TP's bonus.
    """
    bonus = capacity * scale + 1
    return [s + bonus * int(t) for s, t in zip(scaled_iou, is_tp, strict=True)]


@dataclass(frozen=True)
class _AssignmentRule:
    weights: Callable[[list[int], list[bool], int, int], list[int]]
    tp_pairs_only: bool  # whether only pairs passing the threshold take part in the assignment
    description: str


#: How the one-to-one assignment is chosen (see the module docstring).
ASSIGNMENTS: dict[str, _AssignmentRule] = {
    "iou_sum": _AssignmentRule(
        _iou_sum_weights,
        tp_pairs_only=False,
        description="maximise summed IoU over all overlapping pairs, then threshold (the study)",
    ),
    "tp_count": _AssignmentRule(
        _tp_count_weights,
        tp_pairs_only=True,
        description="maximise the number of pairs passing the threshold (stardist)",
    ),
}


# --------------------------------------------------------------------------------------------
# Validation and the one-pass overlap table
# --------------------------------------------------------------------------------------------


def _check_label_image(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        raise ValueError(
            f"{name} labels are a bool mask; label it first (objects.label_objects) "
            "or compare masks with match_masks"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name} labels must be integers, got dtype {labels.dtype}")
    return labels


@dataclass(frozen=True, repr=False)
class ObjectIndex:
    """A label image indexed once for repeated matching: its foreground pixels and objects.

    Matching the same label image against many others (every annotator against every other,
    every model against the estimated ground truth) can index it once with
    :func:`index_objects`; each match then touches only foreground pixels, not the whole image.
    All matching functions accept an ``ObjectIndex`` wherever they accept a label image.

    Attributes
    ----------
    shape : tuple of int
        Shape of the label image.
    object_labels : ndarray of int64
        Labels present, increasing.
    areas : ndarray of int64
        Pixels of each object, aligned with `object_labels`.
    """

    shape: tuple[int, ...]
    object_labels: np.ndarray
    areas: np.ndarray
    flat_labels: np.ndarray  # the label image, raveled (contiguous)
    foreground: np.ndarray  # flat indices of the foreground pixels, increasing
    foreground_codes: np.ndarray  # object code (0..n-1) of each foreground pixel
    code_of_label: np.ndarray | None  # lookup table label -> code (-1: none), when labels are dense

    @property
    def n_objects(self) -> int:
        """Number of objects."""
        return int(self.object_labels.size)

    def codes_at(self, flat_index: np.ndarray) -> np.ndarray:
        """Object code (0..n-1) at the given flat pixel indices, -1 for background."""
        values = self.flat_labels[flat_index].astype(np.int64, copy=False)
        if self.code_of_label is not None:
            return self.code_of_label[values]
        position = np.searchsorted(self.object_labels, values)
        position = np.minimum(position, max(self.n_objects - 1, 0))
        found = (self.object_labels[position] == values) if self.n_objects else values < 0
        return np.where(found, position, -1)

    def __repr__(self) -> str:
        return f"ObjectIndex(shape={self.shape}, n_objects={self.n_objects})"


def _object_codes(
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Objects among non-negative int64 label values (0 = background).

    Returns the labels present (increasing), their pixel counts, the code (0..n-1, -1 for
    background) of every value, and a label -> code lookup table when labels are dense.
    """
    if not values.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.full(values.size, -1, dtype=np.int64), None
    if values.max() <= 4 * values.size + 1024:
        # Dense label values: a bincount gives the areas and the lookup table in O(pixels).
        counts = np.bincount(values)
        counts[0] = 0
        present = np.flatnonzero(counts)
        code_of_label = np.cumsum(counts > 0) - 1
        code_of_label[0] = -1
        return present, counts[present], code_of_label[values], code_of_label
    # Sparse label values (e.g. hashes): sort instead of a table as large as the largest label.
    present, codes, areas = np.unique(values, return_inverse=True, return_counts=True)
    if present[0] == 0:
        return present[1:], areas[1:], codes - 1, None
    return present, areas, codes, None


def _check_non_negative(values: np.ndarray, name: str) -> None:
    if values.size and values.min() < 0:
        raise ValueError(f"{name} labels must be non-negative (0 = background)")


def index_objects(labels: np.ndarray | ObjectIndex, name: str = "labels") -> ObjectIndex:
    """Index a label image for fast repeated matching (see :class:`ObjectIndex`).

    Parameters
    ----------
    labels : ndarray of int or ObjectIndex
        Label image, 0 = background (any shape). An ``ObjectIndex`` is returned unchanged.
    name : str
        How error messages name this image.

    Returns
    -------
    ObjectIndex

    Raises
    ------
    ValueError
        Labels are not integers or are negative.

    Examples
    --------
    >>> index = index_objects(np.array([[0, 4, 4], [9, 0, 0]]))
    >>> index
    ObjectIndex(shape=(2, 3), n_objects=2)
    >>> index.object_labels.tolist(), index.areas.tolist()
    ([4, 9], [2, 1])
    """
    if isinstance(labels, ObjectIndex):
        return labels
    labels = _check_label_image(labels, name)
    flat_labels = np.ascontiguousarray(labels).ravel()
    foreground = np.flatnonzero(flat_labels != 0)  # a bool pass: far faster than on ints
    values = flat_labels[foreground].astype(np.int64)
    _check_non_negative(values, name)
    present, areas, codes, code_of_label = _object_codes(values)
    return ObjectIndex(labels.shape, present, areas, flat_labels, foreground, codes, code_of_label)


@dataclass(frozen=True)
class _Overlaps:
    """Every overlapping pair of two label images, with object areas (compact 0-based codes)."""

    rater_labels: np.ndarray  # label value of each rater code
    reference_labels: np.ndarray
    pair_rater: np.ndarray  # rater code of each overlapping pair
    pair_reference: np.ndarray
    intersection: np.ndarray  # int64 pixels
    union: np.ndarray  # int64 pixels
    iou: np.ndarray  # float64, intersection / union

    @property
    def n_rater(self) -> int:
        return int(self.rater_labels.size)

    @property
    def n_reference(self) -> int:
        return int(self.reference_labels.size)


def _compute_overlaps(rater: np.ndarray | ObjectIndex, reference: np.ndarray | ObjectIndex) -> _Overlaps:
    """Every overlapping pair, from one pass over the foreground pixels of the two images."""
    if isinstance(rater, ObjectIndex) or isinstance(reference, ObjectIndex):
        rater = index_objects(rater, "rater")
        reference = index_objects(reference, "reference")
        _check_same_shape(rater.shape, reference.shape)
        # Look up the other image's object under each foreground pixel of the image with fewer
        # of them: only foreground pixels are touched.
        if rater.foreground.size <= reference.foreground.size:
            rater_code = rater.foreground_codes
            reference_code = reference.codes_at(rater.foreground)
        else:
            reference_code = reference.foreground_codes
            rater_code = rater.codes_at(reference.foreground)
        rater_objects = (rater.object_labels, rater.areas)
        reference_objects = (reference.object_labels, reference.areas)
    else:
        # Plain arrays, the common one-off case: one pass over both images picks the pixels
        # where either has an object (nuclei cover a few percent), then all counting is done
        # on those few values. Cheaper than indexing each image separately.
        rater = _check_label_image(rater, "rater")
        reference = _check_label_image(reference, "reference")
        _check_same_shape(rater.shape, reference.shape)
        where = np.flatnonzero(np.logical_or(rater.ravel(), reference.ravel()))
        rater_values = rater.ravel()[where].astype(np.int64)
        reference_values = reference.ravel()[where].astype(np.int64)
        _check_non_negative(rater_values, "rater")
        _check_non_negative(reference_values, "reference")
        rater_labels, rater_areas, rater_code, _ = _object_codes(rater_values)
        reference_labels, reference_areas, reference_code, _ = _object_codes(reference_values)
        rater_objects = (rater_labels, rater_areas)
        reference_objects = (reference_labels, reference_areas)
    return _overlaps_from_codes(rater_code, reference_code, rater_objects, reference_objects)


def _check_same_shape(rater_shape: tuple[int, ...], reference_shape: tuple[int, ...]) -> None:
    if rater_shape != reference_shape:
        raise ValueError(f"label images differ in shape: rater {rater_shape}, reference {reference_shape}")


def _overlaps_from_codes(
    rater_code: np.ndarray,
    reference_code: np.ndarray,
    rater_objects: tuple[np.ndarray, np.ndarray],
    reference_objects: tuple[np.ndarray, np.ndarray],
) -> _Overlaps:
    """Count the (rater, reference) object code pairs found at the same pixels (-1 = none)."""
    rater_labels, rater_areas = rater_objects
    reference_labels, reference_areas = reference_objects
    both = (rater_code >= 0) & (reference_code >= 0)
    n_ref = max(reference_labels.size, 1)
    pair_code = rater_code[both] * n_ref + reference_code[both]
    n_cells = rater_labels.size * n_ref
    if n_cells <= max(4 * pair_code.size, 1 << 16):
        counts = np.bincount(pair_code, minlength=n_cells)
        pair_code = np.flatnonzero(counts)
        intersection = counts[pair_code]
    else:  # many objects: avoid a table of every possible pair
        pair_code, intersection = np.unique(pair_code, return_counts=True)
    pair_rater, pair_reference = np.divmod(pair_code, n_ref)
    intersection = intersection.astype(np.int64)
    union = rater_areas[pair_rater] + reference_areas[pair_reference] - intersection
    return _Overlaps(
        rater_labels=rater_labels,
        reference_labels=reference_labels,
        pair_rater=pair_rater,
        pair_reference=pair_reference,
        intersection=intersection,
        union=union.astype(np.int64),
        iou=intersection / union,
    )


def overlap_table(
    rater_labels: np.ndarray | ObjectIndex, reference_labels: np.ndarray | ObjectIndex
) -> pd.DataFrame:
    """IoU of every overlapping pair of objects of two label images, in one pass over the pixels.

    Parameters
    ----------
    rater_labels, reference_labels : ndarray of int or ObjectIndex
        Label images of the same shape (0 = background; labels need not be consecutive), or
        their :func:`index_objects`.

    Returns
    -------
    DataFrame
        One row per pair of objects that share at least one pixel, sorted by (rater_label,
        reference_label), columns ``rater_label``, ``reference_label`` (int64), ``intersection``,
        ``union`` (int64, pixels) and ``iou`` (float64).

    Raises
    ------
    ValueError
        Shapes differ, labels are not integers, or labels are negative.

    Examples
    --------
    >>> rater = np.array([[1, 1, 0, 2]])
    >>> reference = np.array([[5, 5, 5, 0]])
    >>> overlap_table(rater, reference)
       rater_label  reference_label  intersection  union       iou
    0            1                5             2      3  0.666667
    """
    overlaps = _compute_overlaps(rater_labels, reference_labels)
    return pd.DataFrame(
        {
            "rater_label": overlaps.rater_labels[overlaps.pair_rater].astype(np.int64),
            "reference_label": overlaps.reference_labels[overlaps.pair_reference].astype(np.int64),
            "intersection": overlaps.intersection,
            "union": overlaps.union,
            "iou": overlaps.iou,
        },
        columns=list(OVERLAP_COLUMNS),
    )


# --------------------------------------------------------------------------------------------
# Exact assignment
# --------------------------------------------------------------------------------------------


def _hungarian_max(weight: list[list[int]]) -> list[tuple[int, int]]:
    """Maximum-weight assignment of a dense matrix of Python ints, exactly (no floats).

    Shortest augmenting paths with potentials, O(n^2 m) for n <= m; used only for components
    whose integer weights are too large for scipy's float64 solver to stay exact.
    Returns (row, col) pairs covering every row when n <= m (every column otherwise).
    """
    n_rows, n_cols = len(weight), len(weight[0])
    if n_rows > n_cols:
        transposed = [list(column) for column in zip(*weight, strict=True)]
        return [(row, col) for col, row in _hungarian_max(transposed)]
    cost = [[0] + [-w for w in row] for row in weight]  # minimise -weight; 1-based columns
    cost.insert(0, [0] * (n_cols + 1))
    row_potential = [0] * (n_rows + 1)
    col_potential = [0] * (n_cols + 1)
    row_of_col = [0] * (n_cols + 1)  # 0 = column free
    previous_col = [0] * (n_cols + 1)
    for row in range(1, n_rows + 1):
        row_of_col[0] = row
        col = 0
        min_slack: list[int | None] = [None] * (n_cols + 1)
        used = [False] * (n_cols + 1)
        while True:
            used[col] = True
            current_row = row_of_col[col]
            delta: int | None = None
            next_col = 0
            for j in range(1, n_cols + 1):
                if used[j]:
                    continue
                slack = cost[current_row][j] - row_potential[current_row] - col_potential[j]
                if min_slack[j] is None or slack < min_slack[j]:
                    min_slack[j] = slack
                    previous_col[j] = col
                if delta is None or min_slack[j] < delta:
                    delta = min_slack[j]
                    next_col = j
            for j in range(n_cols + 1):
                if used[j]:
                    row_potential[row_of_col[j]] += delta
                    col_potential[j] -= delta
                else:
                    min_slack[j] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:  # augment along the path back to the virtual column 0
            prev = previous_col[col]
            row_of_col[col] = row_of_col[prev]
            col = prev
    return [(row_of_col[j] - 1, j - 1) for j in range(1, n_cols + 1) if row_of_col[j]]


def _solve_component(
    rows: list[int],
    cols: list[int],
    intersection: list[int],
    union: list[int],
    is_tp: list[bool],
    rule: _AssignmentRule,
) -> list[int]:
    """Positions (in the given lists of pairs) of the optimal assignment of one component.

    Components are small (a handful of pairs), so plain Python beats numpy's per-call overhead.
    """
    row_index = {row: i for i, row in enumerate(dict.fromkeys(rows))}
    col_index = {col: j for j, col in enumerate(dict.fromkeys(cols))}
    n_rows, n_cols = len(row_index), len(col_index)
    if n_rows == 1 or n_cols == 1:
        # A star (one object overlapping several): only one pair can be taken. Both rules rank
        # pairs by IoU and TP status, and TP status never falls as IoU rises, so the pair with
        # the best IoU is optimal; pairs with equal IoU are interchangeable (same TP status).
        # Compared exactly as fractions; the first best pair wins.
        best = max(range(len(rows)), key=lambda k: Fraction(intersection[k], union[k]))
        return [best]
    capacity = min(n_rows, n_cols)
    # IoU = I / U exactly, as integers over the common denominator lcm(U).
    scale = math.lcm(*set(union))
    scaled_iou = [(scale // u) * i for i, u in zip(intersection, union, strict=True)]
    weights = rule.weights(scaled_iou, is_tp, scale, capacity)
    local_rows = [row_index[row] for row in rows]
    local_cols = [col_index[col] for col in cols]
    pair_at = {(r, c): k for k, (r, c) in enumerate(zip(local_rows, local_cols, strict=True))}
    if max(weights) * (n_rows + n_cols + 2) < _FLOAT_EXACT_LIMIT:
        dense = np.zeros((n_rows, n_cols))
        dense[local_rows, local_cols] = weights
        chosen = zip(*linear_sum_assignment(dense, maximize=True), strict=True)
    else:
        dense_ints = [[0] * n_cols for _ in range(n_rows)]
        for r, c, w in zip(local_rows, local_cols, weights, strict=True):
            dense_ints[r][c] = w
        chosen = _hungarian_max(dense_ints)
    # Cells without a pair weigh 0: assigning them is the same as leaving both unmatched.
    return [pair_at[cell] for cell in map(tuple, chosen) if cell in pair_at]


def _components(rows: list[int], cols: list[int]) -> list[list[int]]:
    """Connected components of a bipartite graph given as edges, as lists of edge positions."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def root(node: tuple[int, int]) -> tuple[int, int]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving
            node = parent[node]
        return node

    for row, col in zip(rows, cols, strict=True):
        parent[root((0, row))] = root((1, col))
    groups: dict[tuple[int, int], list[int]] = {}
    for k, row in enumerate(rows):
        groups.setdefault(root((0, row)), []).append(k)
    return list(groups.values())


def _assign(overlaps: _Overlaps, is_tp: np.ndarray, rule: _AssignmentRule) -> np.ndarray:
    """Indices of the overlapping pairs chosen by the one-to-one assignment."""
    candidates = np.flatnonzero(is_tp) if rule.tp_pairs_only else np.arange(overlaps.iou.size)
    if candidates.size == 0:
        return candidates
    rows = overlaps.pair_rater[candidates]
    cols = overlaps.pair_reference[candidates]
    # A pair whose two objects have no other candidate partner is its own component: any
    # optimal assignment takes it (its weight is > 0). That is nearly every pair in practice.
    rater_degree = np.bincount(rows, minlength=overlaps.n_rater)
    reference_degree = np.bincount(cols, minlength=overlaps.n_reference)
    isolated = (rater_degree[rows] == 1) & (reference_degree[cols] == 1)
    chosen = candidates[isolated].tolist()

    rest = candidates[~isolated]
    if rest.size:
        rest_rows = overlaps.pair_rater[rest].tolist()
        rest_cols = overlaps.pair_reference[rest].tolist()
        rest_intersection = overlaps.intersection[rest].tolist()
        rest_union = overlaps.union[rest].tolist()
        rest_tp = is_tp[rest].tolist()
        rest_ids = rest.tolist()
        for group in _components(rest_rows, rest_cols):
            local = _solve_component(
                [rest_rows[k] for k in group],
                [rest_cols[k] for k in group],
                [rest_intersection[k] for k in group],
                [rest_union[k] for k in group],
                [rest_tp[k] for k in group],
                rule,
            )
            chosen.extend(rest_ids[group[k]] for k in local)
    return np.sort(np.asarray(chosen, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _ratio(numerator: int, denominator: int) -> float:
    # Zero denominators occur only with an empty side; see the module docstring for why 0.0.
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class MatchResult:
    """Object-level agreement of a rater label image with a reference label image.

    Attributes
    ----------
    threshold : float
        IoU threshold of a true positive.
    criterion : str
        ``"gt"`` (IoU > threshold) or ``"ge"`` (IoU >= threshold).
    assignment : str
        ``"iou_sum"`` or ``"tp_count"`` (see ``ASSIGNMENTS``).
    n_rater, n_reference : int
        Number of objects in each image.
    tp, fp, fn : int
        True positives (assigned pairs passing the threshold), ``n_rater - tp``,
        ``n_reference - tp``.
    precision, recall, f1 : float
        ``tp / n_rater``, ``tp / n_reference``, ``2 tp / (n_rater + n_reference)``; 1.0 when both
        images are empty, 0.0 for a zero denominator when only one is (never NaN).
    mean_iou : float
        Mean IoU of the TP pairs; NaN when ``tp == 0``.
    pairs : DataFrame
        (Property, built on first use.) The assigned overlapping pairs, columns
        ``rater_label``, ``reference_label``, ``iou``, ``tp`` (bool). Under ``"iou_sum"`` it
        includes assigned pairs below the threshold (``tp`` False); under ``"tp_count"`` only
        pairs passing the threshold take part in the assignment.
    """

    threshold: float
    criterion: str
    assignment: str
    n_rater: int
    n_reference: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_iou: float
    # (rater labels, reference labels, IoU, is TP) of the assigned pairs; the DataFrame is built
    # lazily because building it costs more than the whole matching of a typical image.
    _pair_arrays: tuple[np.ndarray, ...] = field(repr=False, compare=False, hash=False)

    @cached_property
    def pairs(self) -> pd.DataFrame:
        """The assigned overlapping pairs (see the class docstring)."""
        return pd.DataFrame(dict(zip(PAIR_COLUMNS, self._pair_arrays, strict=True)))

    def as_dict(self) -> dict[str, float | int | str]:
        """All scalar fields (everything except `pairs`) as a dict, e.g. for a DataFrame row.

        Examples
        --------
        >>> labels = np.array([[1, 1, 0, 2]])
        >>> match_labels(labels, labels).as_dict()["f1"]
        1.0
        """
        return {
            "threshold": self.threshold,
            "criterion": self.criterion,
            "assignment": self.assignment,
            "n_rater": self.n_rater,
            "n_reference": self.n_reference,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
        }


def _check_options(threshold: float, criterion: str, assignment: str) -> float:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {sorted(CRITERIA)}")
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {assignment!r}; choose one of {sorted(ASSIGNMENTS)}")
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:  # also refuses NaN
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    return threshold


def _match_overlaps(overlaps: _Overlaps, threshold: float, criterion: str, assignment: str) -> MatchResult:
    is_tp = np.asarray(CRITERIA[criterion](overlaps.iou, threshold), dtype=bool)
    chosen = _assign(overlaps, is_tp, ASSIGNMENTS[assignment])
    chosen_tp = is_tp[chosen]
    tp = int(chosen_tp.sum())
    n_rater, n_reference = overlaps.n_rater, overlaps.n_reference
    both_empty = n_rater + n_reference == 0
    pair_arrays = (
        overlaps.rater_labels[overlaps.pair_rater[chosen]].astype(np.int64),
        overlaps.reference_labels[overlaps.pair_reference[chosen]].astype(np.int64),
        overlaps.iou[chosen],
        chosen_tp,
    )
    return MatchResult(
        threshold=threshold,
        criterion=criterion,
        assignment=assignment,
        n_rater=n_rater,
        n_reference=n_reference,
        tp=tp,
        fp=n_rater - tp,
        fn=n_reference - tp,
        precision=1.0 if both_empty else _ratio(tp, n_rater),
        recall=1.0 if both_empty else _ratio(tp, n_reference),
        f1=1.0 if both_empty else _ratio(2 * tp, n_rater + n_reference),
        mean_iou=float(overlaps.iou[chosen][chosen_tp].mean()) if tp else float("nan"),
        _pair_arrays=pair_arrays,
    )


# --------------------------------------------------------------------------------------------
# Public matching API
# --------------------------------------------------------------------------------------------


def match_labels(
    rater_labels: np.ndarray | ObjectIndex,
    reference_labels: np.ndarray | ObjectIndex,
    threshold: float = 0.5,
    criterion: str = "gt",
    assignment: str = "iou_sum",
) -> MatchResult:
    """Match the objects of two label images one to one and count the agreement.

    Parameters
    ----------
    rater_labels : ndarray of int or ObjectIndex
        Label image under test (an annotator or a model), 0 = background; labels need not be
        consecutive. An :func:`index_objects` of it saves work when it is matched repeatedly.
    reference_labels : ndarray of int or ObjectIndex
        Reference label image (e.g. the estimated ground truth), same shape.
    threshold : float, default 0.5
        IoU threshold of a true positive, within [0, 1].
    criterion : {"gt", "ge"}, default "gt"
        ``"gt"``: IoU > threshold (the paper); ``"ge"``: IoU >= threshold.
    assignment : {"iou_sum", "tp_count"}, default "iou_sum"
        ``"iou_sum"``: maximise summed IoU over all overlapping pairs, then threshold (the
        study); ``"tp_count"``: maximise the number of pairs passing the threshold (stardist).
        See the module docstring for why they can differ.

    Returns
    -------
    MatchResult
        Counts, precision, recall, F1, mean IoU of TPs and the assigned pairs; see
        :class:`MatchResult` for the empty-image conventions.

    Raises
    ------
    ValueError
        Shapes differ, labels are not non-negative integers, or an option is unknown.

    Examples
    --------
    >>> rater = np.array([[1, 1, 0, 2, 2]])
    >>> reference = np.array([[3, 3, 0, 4, 0]])
    >>> result = match_labels(rater, reference)
    >>> result.tp, result.fp, result.fn, result.f1
    (1, 1, 1, 0.5)
    >>> match_labels(rater, reference, criterion="ge").tp  # object 2 vs 4: IoU exactly 0.5
    2
    """
    threshold = _check_options(threshold, criterion, assignment)
    overlaps = _compute_overlaps(rater_labels, reference_labels)
    return _match_overlaps(overlaps, threshold, criterion, assignment)


def average_precision(
    rater_labels: np.ndarray | ObjectIndex,
    reference_labels: np.ndarray | ObjectIndex,
    thresholds: Sequence[float] = DEFAULT_AP_THRESHOLDS,
    criterion: str = "gt",
    assignment: str = "iou_sum",
) -> pd.DataFrame:
    """Agreement at several IoU thresholds, with the DSB2018 / stardist "average precision".

    The overlap table is computed once and reused for every threshold.

    Parameters
    ----------
    rater_labels, reference_labels : ndarray of int or ObjectIndex
        Label images of the same shape, or their :func:`index_objects`.
    thresholds : sequence of float, default 0.5, 0.55, ..., 0.95
        IoU thresholds. They are used as given: prefer exact decimals to ``np.arange`` output,
        whose values drift (``np.arange(0.5, 1, 0.05)[4]`` is 0.7000000000000002).
    criterion, assignment : str
        As in :func:`match_labels`.

    Returns
    -------
    DataFrame
        One row per threshold: ``threshold, n_rater, n_reference, tp, fp, fn, precision,
        recall, f1, mean_iou, ap`` with ``ap = tp / (tp + fp + fn)`` (1.0 when both images are
        empty; the DSB2018 score at one threshold, averaged over thresholds by the caller).

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 0, 2, 2]])
    >>> shifted = np.array([[0, 1, 1, 0, 2, 2]])
    >>> average_precision(labels, shifted, thresholds=[0.5, 0.7])[["threshold", "tp", "ap"]]
       threshold  tp        ap
    0        0.5   2  1.000000
    1        0.7   1  0.333333
    """
    for threshold in thresholds:
        _check_options(threshold, criterion, assignment)
    overlaps = _compute_overlaps(rater_labels, reference_labels)
    rows = []
    for threshold in thresholds:
        row = _match_overlaps(overlaps, float(threshold), criterion, assignment).as_dict()
        denominator = row["tp"] + row["fp"] + row["fn"]
        row["ap"] = row["tp"] / denominator if denominator else 1.0
        rows.append(row)
    columns = [
        "threshold", "n_rater", "n_reference", "tp", "fp", "fn",
        "precision", "recall", "f1", "mean_iou", "ap",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def match_masks(
    rater_mask: np.ndarray,
    reference_mask: np.ndarray,
    min_size: int = 0,
    threshold: float = 0.5,
    criterion: str = "gt",
    ignore: np.ndarray | None = None,
    *,
    region: np.ndarray | None = None,
    assignment: str = "iou_sum",
) -> MatchResult:
    """Label two binary masks (8-connected, min size) and match their objects.

    Parameters
    ----------
    rater_mask, reference_mask : ndarray, shape (H, W)
        Binary masks (pixels > 0 are foreground).
    min_size : int, default 0
        Objects smaller than this are dropped from both (30 px for wue1).
    threshold, criterion, assignment
        As in :func:`match_labels`.
    ignore : ndarray of bool, optional
        Pixels left out of both masks before labelling.
    region : ndarray of bool, optional
        Analysed region; objects of both masks are cut to it before labelling.

    Returns
    -------
    MatchResult

    Examples
    --------
    >>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True
    >>> b = np.zeros((6, 6), bool); b[1:4, 2:5] = True
    >>> match_masks(a, b).tp  # IoU 6/12 is not above 0.5
    0
    >>> match_masks(a, b, criterion="ge").f1
    1.0
    """
    threshold = _check_options(threshold, criterion, assignment)
    rater_mask = np.asarray(rater_mask)
    reference_mask = np.asarray(reference_mask)
    if rater_mask.shape != reference_mask.shape:
        raise ValueError(f"masks differ in shape: rater {rater_mask.shape}, reference {reference_mask.shape}")
    rater = label_objects(rater_mask, min_size=min_size, region=region, ignore=ignore)
    reference = label_objects(reference_mask, min_size=min_size, region=region, ignore=ignore)
    return match_labels(rater, reference, threshold, criterion, assignment)
