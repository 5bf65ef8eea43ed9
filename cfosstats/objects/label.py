"""Objects in a binary mask: labelling, size filtering, region clipping and measurement.

An *object* is an 8-connected component of a binary mask (the study's rule: diagonal neighbours
belong to the same nucleus). Components smaller than the lab's minimum size are dropped. When an
analysed region is given, the parts of objects outside it are cut away *before* labelling and size
filtering, so an object half outside the region shrinks and may fall below the minimum size.

All functions are pure (no global state) and cheap to pickle, so they can be mapped over images in
parallel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.objects.components import label_pixels
from cfosstats.objects.overlaps import ObjectIndex, index_objects

__all__ = [
    "OBJECT_COLUMNS",
    "count_objects",
    "drop_small_objects",
    "index_labelled",
    "index_mask_objects",
    "label_foreground",
    "label_objects",
    "measure_objects",
    "region_objects",
]

#: Columns of the tidy table returned by :func:`measure_objects`, in order.
OBJECT_COLUMNS = ("image_id", "label", "area", "centroid_row", "centroid_col", "mean_intensity")


def _as_pixel_mask(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Return `array` as a bool mask of `shape` (non-zero = True), or None when not given."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, but the mask has shape {shape}")
    return array != 0


def label_objects(
    mask: np.ndarray,
    min_size: int = 0,
    region: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """Label the 8-connected objects of a binary mask, dropping objects below a minimum size.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Binary mask; every pixel > 0 is foreground (bool, 0/1 and 0/255 masks all work). A label
        image is binarised too, so touching labels merge into one object.
    min_size : int, default 0
        Objects with fewer pixels than this are dropped (30 px for wue1 and mue, 112 px for wue2).
    region : ndarray of bool, shape (H, W), optional
        The analysed region. Pixels outside it become background *before* labelling and size
        filtering: objects are cut to the region, so a cut object may split or fall below
        `min_size`.
    ignore : ndarray of bool, shape (H, W), optional
        Pixels to leave out (e.g. a lab's ignored regions); they become background, also before
        labelling.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 for background, objects numbered 1..n consecutively in raster-scan order of their first
        pixel (deterministic).

    Raises
    ------
    ValueError
        When `mask` is not 2-D, `min_size` is negative, or `region` / `ignore` have another shape.

    Examples
    --------
    >>> mask = np.array([[1, 0, 0, 0],
    ...                  [0, 1, 0, 1],
    ...                  [0, 0, 0, 1]], dtype=bool)
    >>> label_objects(mask)  # the diagonal pair is one object
    array([[1, 0, 0, 0],
           [0, 1, 0, 2],
           [0, 0, 0, 2]], dtype=int32)
    >>> region = np.ones((3, 4), dtype=bool)
    >>> region[2] = False  # cuts object 2 down to 1 px, below min_size
    >>> label_objects(mask, min_size=2, region=region)
    array([[1, 0, 0, 0],
           [0, 1, 0, 0],
           [0, 0, 0, 0]], dtype=int32)
    """
    return _label(mask, min_size, region, ignore)[0]


def _label(
    mask: np.ndarray, min_size: int, region: np.ndarray | None, ignore: np.ndarray | None
) -> tuple[np.ndarray, int, np.ndarray | None, np.ndarray | None]:
    """Labels, object count, and when they were needed for the size filter the flat indices of
    the foreground pixels (increasing) and their labels; see :func:`label_objects`."""
    if int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
    labels, n_objects, where, values = _label_image(_foreground(mask, region, ignore))
    if n_objects == 0 or min_size <= 1:
        return labels, n_objects, where, values  # numbered 1..n in scan order; nothing to drop
    # Only foreground pixels are counted and renumbered (nuclei cover a few percent of an
    # image): a bincount or a lookup over the whole label image costs ~10x more.
    return drop_small_objects(labels, n_objects, where, min_size)


def _label_image(foreground: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Label image (int32), object count, foreground flat indices and their labels: labelled
    from the foreground's runs (objects.components; scipy's labels, ~7x faster on nuclei)."""
    where = np.flatnonzero(foreground)  # a pass over the bool mask: far faster than over ints
    values, n_objects = label_pixels(where, foreground.shape)
    labels = np.zeros(foreground.size, np.int32)
    labels[where] = values
    return labels.reshape(foreground.shape), n_objects, where, values


def _foreground(mask: np.ndarray, region: np.ndarray | None, ignore: np.ndarray | None) -> np.ndarray:
    """The pixels to label: the mask's, inside `region`, outside `ignore`."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    foreground = mask > 0
    region_mask = _as_pixel_mask("region", region, mask.shape)
    ignore_mask = _as_pixel_mask("ignore", ignore, mask.shape)
    if region_mask is not None:
        foreground &= region_mask
    if ignore_mask is not None:
        foreground &= ~ignore_mask
    return foreground


def label_foreground(
    mask: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """All 8-connected objects of a mask (no size filter), their count and the foreground pixels.

    What :func:`region_objects` and :func:`drop_small_objects` start from, so that one mask
    quantified in several regions and matched with other masks is labelled once.

    Returns
    -------
    labels : ndarray of int32
        As :func:`label_objects` with ``min_size=0``: objects 1..n in scan order.
    n_objects : int
    foreground : ndarray of int64
        Flat indices of the labelled pixels, increasing.

    Examples
    --------
    >>> labels, n_objects, foreground = label_foreground(np.array([[1, 0, 1]], bool))
    >>> labels.tolist(), n_objects, foreground.tolist()
    ([[1, 0, 2]], 2, [0, 2])
    """
    labels, n_objects, where, _ = _label_image(_foreground(mask, None, ignore))
    return labels, n_objects, where


def drop_small_objects(
    labels: np.ndarray, n_objects: int, foreground: np.ndarray, min_size: int
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Drop objects below `min_size` and renumber the rest 1..n in scan order, **in place**.

    Parameters
    ----------
    labels : ndarray of int32
        Objects numbered 1..`n_objects` in scan order (modified).
    n_objects : int
    foreground : ndarray of int
        Flat indices of the labelled pixels, increasing.
    min_size : int

    Returns
    -------
    labels, n_kept, where, values
        The labels; how many objects are kept; the flat indices of their pixels and their new
        labels.

    Examples
    --------
    >>> drop_small_objects(*label_foreground(np.array([[1, 0, 1, 1]], bool)), 2)[0].tolist()
    [[0, 0, 1, 1]]
    """
    flat = labels.reshape(-1)
    where = foreground
    values = flat[where]
    areas = np.bincount(values, minlength=n_objects + 1)
    keep = areas >= min_size
    keep[0] = False
    if keep[1:].all():
        return labels, n_objects, where, values
    # New number of each old label: running count of kept labels (keeps scan order), 0 if dropped.
    new_label = np.where(keep, np.cumsum(keep), 0).astype(np.int32)
    values = new_label[values]
    flat[where] = values
    kept = values != 0
    return labels, int(keep.sum()), where[kept], values[kept]


def region_objects(
    labels: np.ndarray, area: np.ndarray, min_size: int = 0, foreground: np.ndarray | None = None
) -> tuple[int, np.ndarray]:
    """The objects of a mask cut to a region, from the mask's labelling of the whole image.

    Exactly what labelling the mask cut to `area` gives (:func:`label_objects` with
    ``region=area``, before numbering), without labelling the whole image again: an object
    wholly inside the region stays one object, one wholly outside vanishes, and only the objects
    that the region's border cuts are labelled again. Cutting can only split an object, never
    join two, so their cut pieces are stacked into one small image (each in its bounding box,
    one blank row apart) and labelled in a single call.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        8-connected objects of the mask over the whole image, *without* a size filter (e.g.
        from :func:`label_foreground`).
    area : ndarray of bool, shape (H, W)
        The analysed region.
    min_size : int
        Objects of the cut mask with fewer pixels are dropped.
    foreground : ndarray of int, optional
        ``np.flatnonzero(labels)``, when the caller has it already (:func:`label_foreground`).

    Returns
    -------
    n_objects : int
        Objects of the cut mask with at least `min_size` pixels.
    pixels : ndarray of int64
        Their pixels, as increasing flat indices.

    Examples
    --------
    >>> mask = np.array([[1, 1, 1, 0, 1]], dtype=bool)
    >>> area = np.array([[1, 0, 1, 1, 1]], dtype=bool)  # cuts the first object in two
    >>> n, pixels = region_objects(label_objects(mask), area)
    >>> n, pixels.tolist(), int(label_objects(mask, region=area).max())
    (3, [0, 2, 4], 3)
    """
    labels = np.asarray(labels)
    area = np.asarray(area, dtype=bool)
    if area.shape != labels.shape:
        raise ValueError(f"area has shape {area.shape}, but the labels have shape {labels.shape}")
    flat = labels.reshape(-1)
    foreground = np.flatnonzero(flat) if foreground is None else np.asarray(foreground)
    if foreground.size == 0:
        return 0, foreground.astype(np.int64)
    values = flat[foreground]
    inside = area.reshape(-1)[foreground]
    n_labels = int(values.max())
    sizes = np.bincount(values, minlength=n_labels + 1)
    sizes_inside = np.bincount(values[inside], minlength=n_labels + 1)
    keep = (sizes_inside == sizes) & (sizes > 0) & (sizes >= min_size)
    keep[0] = False
    n_objects = int(keep.sum())
    pixels = foreground[keep[values]]
    cut = (sizes_inside > 0) & (sizes_inside < sizes)
    if cut.any():
        chosen = inside & cut[values]
        n_pieces, piece_pixels = _cut_pieces(foreground, values, chosen, labels.shape[1], min_size)
        n_objects += n_pieces
        pixels = np.concatenate([pixels, piece_pixels])
        pixels.sort()
    return n_objects, pixels.astype(np.int64, copy=False)


def _cut_pieces(foreground, values, chosen, width, min_size) -> tuple[int, np.ndarray]:
    """Pieces (8-connected, at least `min_size` px) of the cut objects' pixels inside the region."""
    pixels, owners = foreground[chosen], values[chosen]
    order = np.argsort(owners, kind="stable")
    pixels, owners = pixels[order], owners[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    rows, cols = np.divmod(pixels, width)
    top = np.minimum.reduceat(rows, starts)
    left = np.minimum.reduceat(cols, starts)
    heights = np.maximum.reduceat(rows, starts) - top + 1
    # Each object's box below the previous one, one blank row apart: pieces of two objects can
    # never touch, so one labelling call finds the pieces of all of them.
    offsets = np.cumsum(heights + 1) - (heights + 1)
    which = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, pixels.size]))
    stacked_rows = rows - top[which] + offsets[which]
    stacked_cols = cols - left[which]
    canvas_width = int(stacked_cols.max()) + 1
    on_canvas = stacked_rows * canvas_width + stacked_cols
    order = np.argsort(on_canvas)
    piece = np.empty(on_canvas.size, np.int32)
    piece[order], n_pieces = label_pixels(on_canvas[order], (int(offsets[-1] + heights[-1]), canvas_width))
    kept = np.bincount(piece, minlength=n_pieces + 1) >= min_size
    kept[0] = False
    return int(kept.sum()), pixels[kept[piece]]


def index_mask_objects(
    mask: np.ndarray,
    min_size: int = 0,
    region: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> ObjectIndex:
    """Label a binary mask as :func:`label_objects` does and index it for matching, in one go.

    The same as ``index_objects(label_objects(mask, ...))``, without a second pass over the
    image: the labelling already knows the foreground pixels and the objects' areas.

    Examples
    --------
    >>> mask = np.array([[1, 0, 1, 1]], dtype=bool)
    >>> index = index_mask_objects(mask, min_size=2)
    >>> index.n_objects, index.object_labels.tolist(), index.areas.tolist()
    (1, [1], [2])
    """
    return index_labelled(*_label(mask, min_size, region, ignore))


def index_labelled(
    labels: np.ndarray, n_objects: int, where: np.ndarray | None, values: np.ndarray | None
) -> ObjectIndex:
    """The :func:`index_objects` of labels 1..n in scan order, from their pixels when known.

    Parameters
    ----------
    labels : ndarray of int32
        Objects numbered 1..`n_objects` consecutively.
    n_objects : int
    where, values : ndarray or None
        Flat indices (increasing) of the labelled pixels and their labels, as
        :func:`drop_small_objects` returns them; None to find them here.

    Examples
    --------
    >>> found = drop_small_objects(*label_foreground(np.array([[1, 0, 1, 1]], bool)), 2)
    >>> index_labelled(*found).areas.tolist()
    [2]
    """
    if where is None or n_objects == 0:
        return index_objects(labels)  # the usual way (also the empty index)
    # Labels are 1..n, consecutive: the code of label k is k - 1.
    areas = np.bincount(values, minlength=n_objects + 1)[1:].astype(np.int64)
    code_of_label = np.arange(-1, n_objects, dtype=np.int64)
    return ObjectIndex(
        shape=labels.shape,
        object_labels=np.arange(1, n_objects + 1, dtype=np.int64),
        areas=areas,
        flat_labels=labels.reshape(-1),
        foreground=where.astype(np.int64),
        foreground_codes=values.astype(np.int64) - 1,
        code_of_label=code_of_label,
    )


def count_objects(
    mask: np.ndarray,
    min_size: int = 0,
    region: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> int:
    """Count the objects of a binary mask, with the same rules as :func:`label_objects`.

    Examples
    --------
    >>> count_objects(np.eye(5, dtype=bool))  # one diagonal line = one 8-connected object
    1
    >>> count_objects(np.eye(5, dtype=bool), min_size=6)
    0
    """
    return int(label_objects(mask, min_size=min_size, region=region, ignore=ignore).max())


def _check_label_image(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.dtype == bool or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an integer label image, got dtype {labels.dtype}")
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:
        raise ValueError("labels must be non-negative (0 = background)")
    return labels


def _compact_labels(object_of_pixel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels present (sorted) and each pixel's index into them.

    A bincount is O(pixels + max label) and much faster than sorting; a sort is used only when
    label values are sparse (huge labels would make the bincount table huge).
    """
    if object_of_pixel.size == 0:
        return object_of_pixel[:0], object_of_pixel[:0]
    if object_of_pixel.max() <= 4 * object_of_pixel.size + 1024:
        present_mask = np.bincount(object_of_pixel) > 0
        present = np.flatnonzero(present_mask)
        index_of_label = np.cumsum(present_mask) - 1
        return present, index_of_label[object_of_pixel]
    return np.unique(object_of_pixel, return_inverse=True)


def measure_objects(
    labels: np.ndarray,
    intensity: np.ndarray | None = None,
    image_id: str | None = None,
) -> pd.DataFrame:
    """Measure every object of a label image: one row per object, computed in one pass.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Label image (0 = background), e.g. from :func:`label_objects`. Labels need not be
        consecutive; an object need not be connected.
    intensity : ndarray, shape (H, W), optional
        Fluorescence image for the mean intensity of each object.
    image_id : str, optional
        Written into the ``image_id`` column so tables of many images can be concatenated.

    Returns
    -------
    DataFrame
        Columns (see ``OBJECT_COLUMNS``), one row per label present, sorted by label:

        - ``image_id`` (object): `image_id`, None when not given;
        - ``label`` (int64): the object's label;
        - ``area`` (int64): number of pixels;
        - ``centroid_row``, ``centroid_col`` (float64): mean pixel coordinates, as skimage's
          ``regionprops`` centroid;
        - ``mean_intensity`` (float64): mean of `intensity` over the object, NaN without
          `intensity`.

        An image without objects gives an empty frame with these columns.

    Examples
    --------
    >>> labels = np.array([[1, 1, 0],
    ...                    [0, 0, 0],
    ...                    [0, 0, 2]])
    >>> measure_objects(labels, intensity=np.arange(9).reshape(3, 3), image_id="0001")
      image_id  label  area  centroid_row  centroid_col  mean_intensity
    0     0001      1     2           0.0           0.5             0.5
    1     0001      2     1           2.0           2.0             8.0
    """
    labels = _check_label_image(labels)
    if intensity is not None:
        intensity = np.asarray(intensity)
        if intensity.shape != labels.shape:
            raise ValueError(f"intensity has shape {intensity.shape}, but labels have shape {labels.shape}")
    # Only foreground pixels are touched: nuclei cover a few percent of an image.
    flat_index = np.flatnonzero(labels)
    object_of_pixel = labels.ravel()[flat_index].astype(np.int64)
    present, code = _compact_labels(object_of_pixel)
    n_objects = present.size
    area = np.bincount(code, minlength=n_objects)
    width = labels.shape[1]
    rows, cols = np.divmod(flat_index, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid_row = np.bincount(code, weights=rows, minlength=n_objects) / area
        centroid_col = np.bincount(code, weights=cols, minlength=n_objects) / area
        if intensity is None:
            mean_intensity = np.full(n_objects, np.nan)
        else:
            values = intensity.ravel()[flat_index].astype(np.float64)
            mean_intensity = np.bincount(code, weights=values, minlength=n_objects) / area
    return pd.DataFrame(
        {
            "image_id": pd.Series([image_id] * n_objects, dtype=object),
            "label": present.astype(np.int64),
            "area": area.astype(np.int64),
            "centroid_row": centroid_row.astype(np.float64),
            "centroid_col": centroid_col.astype(np.float64),
            "mean_intensity": mean_intensity.astype(np.float64),
        },
        columns=list(OBJECT_COLUMNS),
    )
