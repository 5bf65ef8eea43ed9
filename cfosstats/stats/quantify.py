"""Quantification: objects, region area, density and intensity per image, region and label source.

Pure functions: masks and images in, tidy DataFrames out. :mod:`cfosstats.analyses.validity` maps
:func:`quantify_image` over a lab's images (in parallel) and normalises the result with
:func:`normalise_to_control`.

The rules (Segebarth et al., eLife 2020)
----------------------------------------
- Objects are 8-connected components of the mask (:func:`cfosstats.objects.label.label_objects`).
  The mask is cut to the analysed region (and the ignored region removed) *before* labelling
  and size filtering: an object half outside the region shrinks, may split, and may fall below
  the lab's minimum size.
- ``region_area_px`` counts the region's pixels outside the ignored region. An image without a
  region mask is analysed whole, as region ``"image"`` (:data:`WHOLE_IMAGE`), minus its ignored
  region.
- ``density`` is objects per mm² of region when the pixel size is known
  (:data:`DENSITY_PER_MM2`), else objects per 10^4 px² (:data:`DENSITY_PER_10K_PX`); the
  ``density_unit`` column says which.
- ``intensity`` is the mean grey value of all object pixels inside the region (pixel-weighted:
  large objects weigh more), NaN when the region holds no object.
- Normalisation: each value is divided by the mean of the control group's values for the same
  label source, region and experiment (:func:`normalise_to_control`); a missing experiment is
  one experiment. A control mean of zero or NaN (no control image, or no object in any control
  image) gives NaN normalised values and a note, never a division by zero.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((6, 6), bool); mask[0:2, 0:2] = True; mask[4:6, 4:6] = True
>>> region = np.zeros((6, 6), bool); region[:3] = True
>>> table = quantify_image(mask, {"CA1": region}, image=np.full((6, 6), 10), min_size=2)
>>> table[["region", "n_objects", "region_area_px", "density", "intensity"]].round(1)
  region  n_objects  region_area_px  density  intensity
0    CA1          1              18    555.6       10.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cfosstats.objects.label import label_foreground, label_objects, region_objects

__all__ = [
    "DENSITY_PER_10K_PX",
    "DENSITY_PER_MM2",
    "IMAGE_COLUMNS",
    "NORMALISATION_NOTE_COLUMNS",
    "READOUTS",
    "WHOLE_IMAGE",
    "analysed_areas",
    "density_unit",
    "normalise_to_control",
    "quantify_image",
    "quantify_labels",
    "quantify_regions",
]

#: Region name of an image analysed whole (no region mask).
WHOLE_IMAGE = "image"
DENSITY_PER_MM2 = "objects per mm²"
DENSITY_PER_10K_PX = "objects per 10^4 px² (pixel size unknown)"
INTENSITY_UNIT = "mean grey value of object pixels"

#: Readouts tested for treatment effects: name -> (column in the quantification table, unit).
#: The density unit depends on whether the lab's pixel size is known (see :func:`density_unit`).
READOUTS: dict[str, str] = {
    "density": "density",
    "intensity": "intensity",
}

#: Columns of :func:`quantify_image`, in order.
IMAGE_COLUMNS = (
    "region",
    "n_objects",
    "region_area_px",
    "region_area_mm2",
    "density",
    "density_unit",
    "intensity",
    "object_pixels",
    "object_area_mean",
)

#: Columns of the notes table of :func:`normalise_to_control`.
NORMALISATION_NOTE_COLUMNS = (
    "source",
    "region",
    "experiment",
    "readout",
    "control_mean",
    "n_control",
    "note",
)


def density_unit(um2_per_px: float | None) -> str:
    """The unit of ``density``: per mm² with a pixel size, else per 10^4 px².

    Examples
    --------
    >>> density_unit(0.386), density_unit(None)
    ('objects per mm²', 'objects per 10^4 px² (pixel size unknown)')
    """
    return DENSITY_PER_MM2 if um2_per_px else DENSITY_PER_10K_PX


def area_scale(um2_per_px: float | None) -> float:
    """Area of one pixel in the density's area unit (mm², or 10^4 px²).

    Examples
    --------
    >>> area_scale(0.25), area_scale(None)
    (2.5e-07, 0.0001)
    """
    return um2_per_px * 1e-6 if um2_per_px else 1e-4


def quantify_labels(
    labels: np.ndarray,
    region_area_px: int,
    image: np.ndarray | None = None,
    um2_per_px: float | None = None,
) -> dict:
    """Readouts of one label image already cut to its region (a row of :func:`quantify_image`).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Objects inside the region (0 = background), e.g. from :func:`label_objects` with the
        region given.
    region_area_px : int
        Pixels of the analysed region (ignored pixels left out).
    image : ndarray, shape (H, W), optional
        Fluorescence image for the mean intensity; NaN without it.
    um2_per_px : float, optional
        Area of a pixel in µm²; without it density is per 10^4 px².

    Returns
    -------
    dict
        ``n_objects, region_area_px, region_area_mm2, density, density_unit, intensity,
        object_pixels, object_area_mean`` (see :func:`quantify_image`).

    Examples
    --------
    >>> labels = np.zeros((10, 10), np.int32); labels[0, :4] = 1; labels[5, :2] = 2
    >>> row = quantify_labels(labels, 100, image=np.arange(100).reshape(10, 10))
    >>> row["n_objects"], row["density"], row["intensity"], row["object_area_mean"]
    (2, 200.0, 17.833333333333332, 3.0)
    """
    n_objects = int(labels.max()) if labels.size else 0
    inside = labels > 0
    pixels = np.flatnonzero(inside) if image is not None else None
    return _readouts(n_objects, int(np.count_nonzero(inside)), pixels, region_area_px, image, um2_per_px)


def _readouts(n_objects, object_pixels, pixels, region_area_px, image, um2_per_px) -> dict:
    """The row of :func:`quantify_labels` from the objects' count and pixels (flat indices)."""
    scale = area_scale(um2_per_px)
    region_area = region_area_px * scale
    intensity = np.nan
    if image is not None and object_pixels:
        # Flat indices in increasing order: the same values in the same order as a boolean mask
        # selects them, so the mean is the same to the last bit.
        intensity = float(np.asarray(image).reshape(-1)[pixels].mean(dtype=np.float64))
    return {
        "n_objects": n_objects,
        "region_area_px": int(region_area_px),
        "region_area_mm2": region_area_px * um2_per_px * 1e-6 if um2_per_px else np.nan,
        "density": n_objects / region_area if region_area_px else np.nan,
        "density_unit": density_unit(um2_per_px),
        "intensity": intensity,
        "object_pixels": object_pixels,
        "object_area_mean": object_pixels / n_objects if n_objects else np.nan,
    }


def analysed_areas(
    shape: tuple[int, int], regions: Mapping[str, np.ndarray | None] | None, ignore: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Pixels analysed per region (the whole image without regions), ignored pixels left out.

    Raises
    ------
    ValueError
        When a region has another shape than `shape`.

    Examples
    --------
    >>> areas = analysed_areas((2, 2), None, np.array([[1, 0], [0, 0]], bool))
    >>> list(areas), int(areas["image"].sum())
    (['image'], 3)
    """
    regions = dict(regions or {}) or {WHOLE_IMAGE: None}
    for name, region in regions.items():
        if region is not None and np.shape(region) != tuple(shape):
            raise ValueError(
                f"region {name} has shape {np.shape(region)}, but the mask has shape {tuple(shape)}"
            )
    return {name: _analysed_area(shape, region, ignore) for name, region in regions.items()}


def _analysed_area(
    shape: tuple[int, int], region: np.ndarray | None, ignore: np.ndarray | None
) -> np.ndarray:
    """Pixels analysed: the region (whole image when None) minus the ignored pixels."""
    area = np.ones(shape, bool) if region is None else np.asarray(region) != 0
    if ignore is not None:
        area = area & ~(np.asarray(ignore) != 0)
    return area


def quantify_image(
    mask: np.ndarray,
    regions: Mapping[str, np.ndarray | None] | None = None,
    image: np.ndarray | None = None,
    min_size: int = 0,
    ignore: np.ndarray | None = None,
    um2_per_px: float | None = None,
) -> pd.DataFrame:
    """Count and measure the objects of one mask within each analysed region of its image.

    Each region is labelled once: the mask is cut to the region and the ignored pixels removed
    before labelling and size filtering.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Binary mask of one label source (non-zero = foreground).
    regions : mapping of str to ndarray of bool, optional
        Region name -> region mask. Empty or None: the whole image, as region ``"image"``. A
        ``None`` mask also means the whole image.
    image : ndarray, shape (H, W), optional
        Fluorescence image (mean intensity of the objects).
    min_size : int, default 0
        Objects with fewer pixels (after cutting) are dropped.
    ignore : ndarray of bool, shape (H, W), optional
        Pixels left out of every region.
    um2_per_px : float, optional
        Pixel area in µm² (density per mm²); None: density per 10^4 px².

    Returns
    -------
    DataFrame
        One row per region, columns :data:`IMAGE_COLUMNS`:

        - ``region`` (str);
        - ``n_objects`` (int): objects inside the region after cutting and size filtering;
        - ``region_area_px`` (int): region pixels outside the ignored region;
        - ``region_area_mm2`` (float): the same in mm², NaN without a pixel size;
        - ``density`` (float): objects per mm² (or per 10^4 px²), NaN for an empty region;
        - ``density_unit`` (str);
        - ``intensity`` (float): mean grey value of the object pixels, NaN without objects;
        - ``object_pixels`` (int): pixels of all objects;
        - ``object_area_mean`` (float): mean object area in px, NaN without objects.

    Raises
    ------
    ValueError
        When a region, the ignored region or the image has another shape than the mask.

    Examples
    --------
    >>> mask = np.zeros((4, 4), bool); mask[1:3, 1:3] = True
    >>> quantify_image(mask)[["region", "n_objects", "object_pixels"]]
      region  n_objects  object_pixels
    0  image          1              4
    """
    rows = quantify_regions(mask, regions, image, min_size, ignore, um2_per_px)
    return pd.DataFrame(rows, columns=list(IMAGE_COLUMNS))


def quantify_regions(
    mask: np.ndarray,
    regions: Mapping[str, np.ndarray | None] | None = None,
    image: np.ndarray | None = None,
    min_size: int = 0,
    ignore: np.ndarray | None = None,
    um2_per_px: float | None = None,
    *,
    labelled: tuple[np.ndarray, int, np.ndarray] | None = None,
    areas: Mapping[str, np.ndarray] | None = None,
) -> list[dict]:
    """The rows of :func:`quantify_image` as plain dicts (no DataFrame: cheap in worker processes).

    `labelled` (:func:`~cfosstats.objects.label.label_foreground` of `mask` and `ignore`) and
    `areas` (:func:`analysed_areas` of `regions` and `ignore`) save work when the caller has them.

    Examples
    --------
    >>> quantify_regions(np.ones((2, 2), bool))[0]["n_objects"]
    1
    """
    mask = np.asarray(mask)
    if image is not None and np.shape(image) != mask.shape:
        raise ValueError(f"image has shape {np.shape(image)}, but the mask has shape {mask.shape}")
    regions = dict(regions or {}) or {WHOLE_IMAGE: None}
    areas = areas if areas is not None else analysed_areas(mask.shape, regions, ignore)
    if labelled is None and len(regions) == 1:
        # One region and no labelling at hand: labelling the cut mask is the cheapest way.
        (name,) = regions
        labels = label_objects(mask, min_size, region=areas[name])
        return [{"region": name, **quantify_labels(labels, int(areas[name].sum()), image, um2_per_px)}]
    # One labelling of the whole mask; each region keeps, cuts or drops its objects
    # (region_objects: the same objects as labelling the mask cut to the region).
    whole, _, foreground = labelled if labelled is not None else label_foreground(mask, ignore)
    rows = []
    for name in regions:
        area = areas[name]
        n_objects, pixels = region_objects(whole, area, min_size, foreground)
        readouts = _readouts(n_objects, int(pixels.size), pixels, int(area.sum()), image, um2_per_px)
        rows.append({"region": name, **readouts})
    return rows


def _experiment_key(frame: pd.DataFrame, experiment: str) -> pd.Series:
    if experiment not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[experiment].astype(object).where(frame[experiment].notna(), "").astype(str)


def normalise_to_control(
    frame: pd.DataFrame,
    values: Sequence[str],
    group: str,
    control: str,
    by: Sequence[str] = ("source", "region"),
    experiment: str = "experiment",
    use: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Divide values by the control group's mean per (label source, region, experiment).

    Parameters
    ----------
    frame : DataFrame
        One row per measurement, with the columns `values`, `group`, `by` and (optionally)
        `experiment`.
    values : sequence of str
        Columns to normalise; each gets a ``<column>_normalised`` column and a
        ``<column>_control_mean`` column.
    group : str
        Column naming each row's group (condition or stratum).
    control : str
        The control group's name.
    by : sequence of str, default ("source", "region")
        Columns that, with the experiment, define a normalisation unit.
    experiment : str, default "experiment"
        Experiment (batch) column; missing values (or a missing column) form one experiment.
    use : str, optional
        A boolean column: only rows where it is True enter the control mean (e.g. rows that are
        neither excluded nor in-sample). Every row is normalised.

    Returns
    -------
    normalised : DataFrame
        `frame` with the added columns (same index and row order).
    notes : DataFrame
        One row per (unit, value column) whose control mean is zero or undefined, columns
        :data:`NORMALISATION_NOTE_COLUMNS` (``readout`` = the value column); empty when none.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"source": "a", "region": "CA1", "experiment": [1, 1, 2, 2],
    ...     "group": ["H", "C+", "H", "C+"], "density": [10.0, 30.0, 20.0, 20.0]})
    >>> out, notes = normalise_to_control(frame, ["density"], "group", "H")
    >>> out["density_normalised"].tolist(), notes.empty
    ([1.0, 3.0, 1.0, 1.0], True)
    """
    by = list(by)
    out = frame.copy()
    keys = [out[c].astype(object) for c in by] + [_experiment_key(out, experiment)]
    unit = pd.MultiIndex.from_arrays(keys, names=[*by, "_experiment"])
    is_control = out[group].astype(object) == control
    if use is not None:
        is_control &= out[use].astype(bool)
    notes = []
    for column in values:
        control_values = out[column].where(is_control).astype(float)
        grouped = control_values.groupby(unit, dropna=False, sort=False)
        means = grouped.transform("mean")
        counts = grouped.transform("count")
        undefined = ~np.isfinite(means) | (means == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{column}_normalised"] = (out[column].astype(float) / means).where(~undefined)
        out[f"{column}_control_mean"] = means
        notes += _normalisation_notes(out, unit, undefined, means, counts, column, by, control)
    return out, pd.DataFrame(notes, columns=list(NORMALISATION_NOTE_COLUMNS))


def _normalisation_notes(out, unit, undefined, means, counts, column, by, control) -> list[dict]:
    rows = []
    if not undefined.any():
        return rows
    seen = set()
    for position in np.flatnonzero(undefined.to_numpy()):
        key = unit[position]
        if key in seen:
            continue
        seen.add(key)
        n_control = int(counts.iloc[position])
        mean = float(means.iloc[position])
        if n_control == 0:
            why = f"no {control} (control) value"
        elif mean == 0:
            why = f"control ({control}) mean is 0 (no objects in any control image)"
        else:
            why = "control mean undefined"
        rows.append(
            {
                **dict(zip(by, key[:-1])),
                "experiment": key[-1] or pd.NA,
                "readout": column,
                "control_mean": mean,
                "n_control": n_control,
                "note": f"{why}: normalised {column} is NaN for this source, region and experiment",
            }
        )
    return rows
