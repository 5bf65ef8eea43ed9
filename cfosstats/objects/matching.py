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
few remaining components go to an exact assignment solver. The overlaps are computed in
:mod:`~cfosstats.objects.overlaps`, the assignment in :mod:`~cfosstats.objects.assignment`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations

import numpy as np
import pandas as pd

from cfosstats.objects.assignment import ASSIGNMENTS, _assign
from cfosstats.objects.label import label_objects
from cfosstats.objects.overlaps import ObjectIndex, _compute_overlaps, _Overlaps, index_objects, overlap_table

# re-exported: public API of this module (index_objects and overlap_table live in overlaps)
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
    "match_pairs",
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

# scipy's solver works in float64; integer weights stay exact while every sum it forms is below
# 2**53. Above this bound the pure-Python solver (exact on Python ints) is used instead. Read at
# each match (tests lower it to force the exact solver).
_FLOAT_EXACT_LIMIT = 2**50


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

    @property
    def tp_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(rater labels, reference labels) of the true-positive pairs, int64 arrays: the
        `pairs` rows with ``tp`` True, without building the DataFrame."""
        rater, reference, _, is_tp = self._pair_arrays
        return rater[is_tp], reference[is_tp]

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
    chosen = _assign(overlaps, is_tp, ASSIGNMENTS[assignment], _FLOAT_EXACT_LIMIT)
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


def match_pairs(
    labels: Mapping[str, np.ndarray | ObjectIndex],
    threshold: float = 0.5,
    criterion: str = "gt",
    assignment: str = "iou_sum",
) -> dict[tuple[str, str], MatchResult]:
    """Every unordered pair of label sets of one image matched once.

    Both the pairwise agreement table and the rated items of Fleiss' kappa need the same
    matches; computed once here, they are shared (:func:`cfosstats.stats.agreement.
    pairwise_object_agreement` and :func:`cfosstats.objects.rating_items.rating_items` take them).

    Parameters
    ----------
    labels : mapping of str to ndarray of int or ObjectIndex
        Label set name -> label image or its :func:`index_objects`, all of one shape.
    threshold, criterion, assignment
        As in :func:`match_labels`.

    Returns
    -------
    dict of (str, str) to MatchResult
        Keyed ``(a, b)`` with ``a`` before ``b`` in the mapping's order, ``a`` the rater.

    Examples
    --------
    >>> a, b = np.array([[1, 1, 0, 2]]), np.array([[1, 1, 0, 0]])
    >>> {pair: result.tp for pair, result in match_pairs({"a": a, "b": b, "c": b}).items()}
    {('a', 'b'): 1, ('a', 'c'): 1, ('b', 'c'): 1}
    """
    indexed = {name: index_objects(value, name) for name, value in labels.items()}
    return {
        (a, b): match_labels(indexed[a], indexed[b], threshold, criterion, assignment)
        for a, b in combinations(indexed, 2)
    }


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
