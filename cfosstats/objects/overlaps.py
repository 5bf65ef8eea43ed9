"""Every overlapping pair of objects of two label images, from one pass over the foreground pixels.

The overlap (IoU) computation behind :mod:`cfosstats.objects.matching`: a label image is indexed
once (:func:`index_objects`), the pairs of labels under each foreground pixel are counted with a
bincount (sparse: never a full-image comparison per pair) and give intersection, union and IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["OVERLAP_COLUMNS", "ObjectIndex", "index_objects", "overlap_table"]

OVERLAP_COLUMNS = ("rater_label", "reference_label", "intersection", "union", "iou")


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
