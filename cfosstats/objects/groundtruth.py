"""Estimated ground truth from several annotators: STAPLE, majority vote, object consensus.

All functions are pure: a sequence of equally shaped 2-D binary masks in (one per annotator, in a
fixed order), arrays out. Reading masks from a lab and writing estimates is done by
:mod:`cfosstats.analyses.objectivity`.

What reproduces the published ``est_GT`` masks
----------------------------------------------
``staple(masks).estimate`` equals the published ``labels/est_GT`` mask pixel for pixel on every
image of the public training data (lab-wue1: 36/36, lab-mue: 5/5, lab-wue2: 5/5), with

* SimpleITK's ``STAPLEImageFilter`` at its defaults (foreground value 1, ``ConfidenceWeight`` 1,
  ``MaximumIterations`` unlimited, i.e. run to ITK's own convergence test),
* the input masks as ``uint8`` 0/1 images, **all** of the lab's annotators of that image
  (leaving any one out changed 35 to 5,110 pixels on the wue1 images 0001, 0067 and 0144);
  their order does not matter (reversing it changed the posterior by < 1e-16 there),
* the masks as drawn, **without** the ignored regions of lab-wue2 cut out: on image 1671 the
  published estimate has 12 foreground pixels inside the ignored region, which only STAPLE of
  the uncut masks gives; ignored regions are left out later, when objects are counted,
* the posterior foreground probability thresholded at 0.5. No pixel of the published data has a
  posterior of exactly 0.5, so ``> 0.5`` and ``>= 0.5`` agree there; we use ``> 0.5``.

Majority vote differs from the published masks (by 1,428-11,502 pixels on every wue1 image,
6,099-22,367 on mue; with three annotators on wue2 it matches 4 of 5 images), so it is offered as
the simpler alternative, not as a reproduction.

Examples
--------
>>> import numpy as np
>>> a = np.zeros((6, 6), bool); a[1:4, 1:4] = True
>>> b = a.copy(); b[1, 1] = False
>>> result = staple([a, a, b])
>>> bool(result.estimate[2, 2])
True
>>> sorted(METHODS)
['majority', 'objects', 'staple']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from cfosstats.objects.label import label_objects
from cfosstats.objects.overlaps import overlap_table

STAPLE_THRESHOLD = 0.5
"""Posterior probability above which STAPLE calls a pixel foreground (strictly greater)."""


@dataclass(frozen=True)
class StapleResult:
    """Output of :func:`staple`.

    Attributes
    ----------
    probability : ndarray of float64, shape (H, W)
        Posterior probability that a pixel is foreground.
    estimate : ndarray of bool, shape (H, W)
        ``probability > threshold`` (0.5): the estimated ground truth.
    sensitivity, specificity : tuple of float
        Per annotator, in the order of the input masks, as estimated by STAPLE (NaN where
        undefined: sensitivity when no pixel is foreground).
    iterations : int
        EM iterations ITK ran (0 when the masks were degenerate and ITK was not called).
    """

    probability: np.ndarray
    estimate: np.ndarray
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]
    iterations: int = 0


@dataclass(frozen=True)
class ConsensusResult:
    """Uniform output of every method in :data:`METHODS`.

    Attributes
    ----------
    method : str
        Key of the method in :data:`METHODS`.
    estimate : ndarray of bool
        The estimated ground truth.
    sensitivity, specificity : tuple of float
        Per annotator (input order). For ``staple`` STAPLE's own estimates; for the other
        methods each annotator's pixel sensitivity and specificity against ``estimate``.
    performance_source : str
        ``"staple"`` or ``"pixels_vs_estimate"``: which of the two the numbers above are.
    probability : ndarray of float or None
        STAPLE's posterior; for ``majority`` the fraction of annotators marking the pixel;
        None for ``objects``.
    """

    method: str
    estimate: np.ndarray
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]
    performance_source: str
    probability: np.ndarray | None = field(default=None, repr=False)


def _stack(masks: Sequence[np.ndarray], minimum: int = 1) -> np.ndarray:
    """Validate and stack masks into a (n, H, W) bool array."""
    masks = list(masks)
    if len(masks) < minimum:
        raise ValueError(f"need at least {minimum} mask(s), got {len(masks)}")
    arrays = [np.asarray(m) for m in masks]
    shape = arrays[0].shape
    for index, array in enumerate(arrays):
        if array.ndim != 2:
            raise ValueError(f"mask {index} is not 2-D (shape {array.shape})")
        if array.shape != shape:
            raise ValueError(f"mask {index} has shape {array.shape}, mask 0 has {shape}")
    return np.stack([a > 0 for a in arrays])


def staple(
    masks: Sequence[np.ndarray],
    *,
    threshold: float = STAPLE_THRESHOLD,
    confidence_weight: float = 1.0,
    max_iterations: int | None = None,
) -> StapleResult:
    """Estimate the ground truth with STAPLE (Warfield et al. 2004) as the study did.

    Runs SimpleITK's ``STAPLEImageFilter`` on the masks as uint8 0/1 images with foreground
    value 1; the defaults reproduce the published ``est_GT`` masks exactly (see the module
    docstring).

    Parameters
    ----------
    masks : sequence of ndarray, shape (H, W)
        One binary mask per annotator (non-zero = foreground), all the same shape.
    threshold : float, default 0.5
        A pixel is foreground when its posterior is strictly greater.
    confidence_weight : float, default 1.0
        ITK's ``ConfidenceWeight`` (scales the prior); 1.0 as in the study.
    max_iterations : int, optional
        Cap on EM iterations; None runs to ITK's convergence test, as in the study.

    Returns
    -------
    StapleResult

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.zeros((8, 8), bool); truth[2:6, 2:6] = True
    >>> sloppy = truth.copy(); sloppy[0, :] = True
    >>> result = staple([truth, truth, sloppy])
    >>> bool((result.estimate == truth).all()), round(result.sensitivity[0], 3)
    (True, 1.0)
    """
    import SimpleITK as sitk  # lazy: a large native library (0.13 s at start-up), only STAPLE needs it

    stack = _stack(masks)
    n_masks = stack.shape[0]
    any_foreground = stack.any()
    # ITK divides by zero when no pixel, or every pixel, is foreground in every mask: the
    # answer is then certain, so return it directly instead of NaNs.
    if not any_foreground or stack.all():
        value = 1.0 if any_foreground else 0.0
        probability = np.full(stack.shape[1:], value)
        sensitivity = (1.0,) * n_masks if any_foreground else (float("nan"),) * n_masks
        specificity = (float("nan"),) * n_masks if any_foreground else (1.0,) * n_masks
        return StapleResult(probability, probability > threshold, sensitivity, specificity, 0)

    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in stack]
    staple_filter = sitk.STAPLEImageFilter()
    staple_filter.SetForegroundValue(1.0)
    staple_filter.SetConfidenceWeight(float(confidence_weight))
    if max_iterations is not None:
        staple_filter.SetMaximumIterations(int(max_iterations))
    probability = sitk.GetArrayFromImage(staple_filter.Execute(images)).astype(np.float64)
    return StapleResult(
        probability=probability,
        estimate=probability > threshold,
        sensitivity=tuple(float(v) for v in staple_filter.GetSensitivity()),
        specificity=tuple(float(v) for v in staple_filter.GetSpecificity()),
        iterations=int(staple_filter.GetElapsedIterations()),
    )


def majority_vote(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels marked by strictly more than half of the annotators.

    Tie rule: with an even number of annotators a pixel marked by exactly half of them is
    background (a tie is not a majority).

    Parameters
    ----------
    masks : sequence of ndarray, shape (H, W)
        One binary mask per annotator, all the same shape.

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> masks = [np.array([[1, 1, 0]]), np.array([[1, 0, 0]]), np.array([[1, 1, 1]])]
    >>> majority_vote(masks).astype(int).tolist()
    [[1, 1, 0]]
    >>> majority_vote(masks[:2]).astype(int).tolist()  # 1 of 2 is a tie: background
    [[1, 0, 0]]
    """
    stack = _stack(masks)
    return 2 * stack.sum(axis=0) > stack.shape[0]


def pixel_performance(
    masks: Sequence[np.ndarray], estimate: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each mask's pixel sensitivity and specificity against an estimate.

    Sensitivity = |mask & estimate| / |estimate| (NaN when the estimate is empty);
    specificity = |~mask & ~estimate| / |~estimate| (NaN when the estimate is full).

    Examples
    --------
    >>> import numpy as np
    >>> pixel_performance([np.array([[1, 1, 0, 0]])], np.array([[1, 0, 0, 0]]))
    ((1.0,), (0.6666666666666666,))
    """
    stack = _stack(masks)
    estimate = np.asarray(estimate) > 0
    if estimate.shape != stack.shape[1:]:
        raise ValueError(f"estimate has shape {estimate.shape}, masks {stack.shape[1:]}")
    n_foreground = int(estimate.sum())
    n_background = estimate.size - n_foreground
    sensitivity, specificity = [], []
    for mask in stack:
        true_positive = int((mask & estimate).sum())
        true_negative = int((~mask & ~estimate).sum())
        sensitivity.append(true_positive / n_foreground if n_foreground else float("nan"))
        specificity.append(true_negative / n_background if n_background else float("nan"))
    return tuple(sensitivity), tuple(specificity)


def object_consensus(
    masks: Sequence[np.ndarray],
    k: int | None = None,
    min_size: int = 0,
    *,
    threshold: float = 0.5,
) -> np.ndarray:
    """Objects found by at least `k` of the annotators, drawn as their pixelwise majority.

    Definition:

    1. Each annotator's mask is split into objects (8-connected, smaller than `min_size`
       dropped: :func:`cfosstats.objects.label.label_objects`).
    2. Two objects of *different* annotators are linked when their IoU is above `threshold`
       (0.5: then each object has at most one partner per annotator, so links are unique).
    3. Linked objects form groups (connected components of the link graph). A group's
       *support* is the number of distinct annotators with an object in it.
    4. A group with support >= `k` is kept and drawn as the pixels covered by strictly more
       than half of its supporting annotators (for support 2: their intersection, which for
       IoU > 0.5 is more than half of their union).
    5. The drawn mask is size-filtered again with `min_size`, so every object it contains
       could also have been counted in an annotator's mask. Kept objects that touch merge
       into one, as in any binary mask.

    Parameters
    ----------
    masks : sequence of ndarray, shape (H, W)
        One binary mask per annotator.
    k : int, optional
        Minimum support; default a strict majority of the annotators (``n // 2 + 1``).
    min_size : int, default 0
        Minimum object size in pixels (the lab's, e.g. 30 for wue1).
    threshold : float, default 0.5
        IoU above which two annotators' objects count as the same object (must be >= 0.5).

    Returns
    -------
    ndarray of bool, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 12), bool); a[1:4, 1:4] = True; a[1:4, 8:11] = True
    >>> b = np.zeros((5, 12), bool); b[1:4, 1:4] = True
    >>> object_consensus([a, b], k=2).sum()  # only the left object is found by both
    np.int64(9)
    """
    stack = _stack(masks)
    n_annotators = stack.shape[0]
    if k is None:
        k = n_annotators // 2 + 1
    if not 1 <= k <= n_annotators:
        raise ValueError(f"k must be between 1 and {n_annotators}, got {k}")
    if threshold < 0.5:
        # Below 0.5 an object can overlap several partners that well: links stop being unique.
        raise ValueError(f"threshold must be >= 0.5, got {threshold}")

    labels = [np.asarray(label_objects(m, min_size=min_size)) for m in stack]
    # Global node ids: annotator a's object j (1-based) is node offsets[a] + j - 1.
    counts = [int(lab.max()) for lab in labels]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n_nodes = int(offsets[-1])
    if n_nodes == 0:
        return np.zeros(stack.shape[1:], bool)
    parent = np.arange(n_nodes)

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for (a, labels_a), (b, labels_b) in combinations(enumerate(labels), 2):
        for label_a, label_b in _linked_objects(labels_a, labels_b, threshold):
            root_a = find(offsets[a] + label_a - 1)
            root_b = find(offsets[b] + label_b - 1)
            parent[max(root_a, root_b)] = min(root_a, root_b)

    group_of_node = np.array([find(node) for node in range(n_nodes)])
    annotator_of_node = np.repeat(np.arange(n_annotators), counts)
    # Bounding box of every object, so that each group is drawn within its own box only.
    from scipy import ndimage  # lazy: 0.2 s of start-up, and only this method needs it

    boxes = [ndimage.find_objects(lab) for lab in labels]
    consensus = np.zeros(stack.shape[1:], bool)
    for group in np.unique(group_of_node):
        members = np.flatnonzero(group_of_node == group)
        supporters = np.unique(annotator_of_node[members])
        if supporters.size < k:
            continue
        member_boxes = [boxes[annotator_of_node[n]][n - offsets[annotator_of_node[n]]] for n in members]
        box = (
            slice(min(b[0].start for b in member_boxes), max(b[0].stop for b in member_boxes)),
            slice(min(b[1].start for b in member_boxes), max(b[1].stop for b in member_boxes)),
        )
        votes = np.zeros(consensus[box].shape, np.int32)
        for node in members:
            annotator = annotator_of_node[node]
            # An annotator with two objects in one group (possible through a chain of links)
            # still votes once per pixel: its objects are disjoint.
            votes += labels[annotator][box] == node - offsets[annotator] + 1
        consensus[box] |= 2 * votes > supporters.size

    if min_size > 0:
        consensus = label_objects(consensus, min_size=min_size) > 0
    return consensus


def _linked_objects(labels_a: np.ndarray, labels_b: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (label in a, label in b) of overlapping objects with IoU > threshold."""
    overlaps = overlap_table(labels_a, labels_b)
    linked = overlaps[overlaps["iou"] > threshold]
    return list(zip(linked["rater_label"].tolist(), linked["reference_label"].tolist(), strict=True))


# -- the registry ---------------------------------------------------------------------------


def _staple_method(masks: Sequence[np.ndarray], *, min_size: int = 0, **options) -> ConsensusResult:
    del min_size  # STAPLE works on pixels; objects are size-filtered when counted
    result = staple(masks, **options)
    return ConsensusResult(
        "staple",
        result.estimate,
        result.sensitivity,
        result.specificity,
        "staple",
        result.probability,
    )


def _majority_method(masks: Sequence[np.ndarray], *, min_size: int = 0, **options) -> ConsensusResult:
    del min_size
    if options:
        raise TypeError(f"majority takes no options, got {sorted(options)}")
    estimate = majority_vote(masks)
    sensitivity, specificity = pixel_performance(masks, estimate)
    fraction = _stack(masks).mean(axis=0)
    return ConsensusResult("majority", estimate, sensitivity, specificity, "pixels_vs_estimate", fraction)


def _objects_method(masks: Sequence[np.ndarray], *, min_size: int = 0, **options) -> ConsensusResult:
    estimate = object_consensus(masks, min_size=min_size, **options)
    sensitivity, specificity = pixel_performance(masks, estimate)
    return ConsensusResult("objects", estimate, sensitivity, specificity, "pixels_vs_estimate")


ConsensusMethod = Callable[..., ConsensusResult]

METHODS: dict[str, ConsensusMethod] = {
    "staple": _staple_method,
    "majority": _majority_method,
    "objects": _objects_method,
}
"""Ground-truth estimation methods by name. Each is called as
``METHODS[name](masks, min_size=..., **options)`` and returns a :class:`ConsensusResult`."""


def estimate_consensus(
    masks: Sequence[np.ndarray], method: str = "staple", *, min_size: int = 0, **options
) -> ConsensusResult:
    """Run one method of :data:`METHODS` by name.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4), bool); m[1:3, 1:3] = True
    >>> estimate_consensus([m, m, m], "majority").estimate.sum()
    np.int64(4)
    """
    try:
        function = METHODS[method]
    except KeyError:
        raise ValueError(f"unknown method '{method}'; choose from {sorted(METHODS)}") from None
    return function(masks, min_size=min_size, **options)
