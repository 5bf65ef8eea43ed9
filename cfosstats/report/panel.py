"""The image panel: one field of view with every annotator's outline, the estimated ground truth,
the ensemble's prediction and its uncertainty.

:func:`choose_field` picks the crop of an image with the most objects of the estimated ground
truth (so a reader sees many disagreements at once); :func:`draw_panel` draws the panels with
matplotlib (outlines from :func:`skimage.segmentation.find_boundaries` on the contrast-stretched
image) and writes a PNG.

Examples
--------
>>> import numpy as np
>>> mask = np.zeros((64, 64), bool); mask[40:44, 40:44] = True; mask[50:54, 50:54] = True
>>> choose_field(mask, size=32)
(24, 24, 32)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUTLINE_COLOURS = ("#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#D55E00", "#0072B2", "#44AA99", "#AA4499")
GT_COLOUR = "#FFFFFF"
ENSEMBLE_COLOUR = "#00E5A0"


@dataclass(frozen=True)
class Outline:
    """One label set drawn in the panel: its title, binary mask and outline colour."""

    title: str
    mask: np.ndarray
    colour: str


def choose_field(mask: np.ndarray, size: int = 256, step: int | None = None) -> tuple[int, int, int]:
    """The square window (row, col, side) of `mask` holding the most object centroids.

    Parameters
    ----------
    mask : ndarray of bool, (H, W)
        Usually the estimated ground truth.
    size : int
        Window side (clipped to the image).
    step : int, optional
        Stride of the search (default side / 8).

    Returns
    -------
    (row, col, side)
        Top-left corner and side of the window; ties go to the first (top-left) window.
    """
    from scipy import ndimage  # lazy: scipy, only when a panel is drawn

    mask = np.asarray(mask) > 0
    side = int(min(size, *mask.shape))
    step = max(1, int(step or side // 8))
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    centres = np.zeros(mask.shape, np.int64)
    if n:
        points = np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1)))
        rows = np.clip(np.round(points[:, 0]).astype(int), 0, mask.shape[0] - 1)
        cols = np.clip(np.round(points[:, 1]).astype(int), 0, mask.shape[1] - 1)
        np.add.at(centres, (rows, cols), 1)
    total = np.pad(centres.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, best_at = -1, (0, 0)
    row_starts = list(range(0, mask.shape[0] - side + 1, step))
    col_starts = list(range(0, mask.shape[1] - side + 1, step))
    if row_starts[-1] != mask.shape[0] - side:
        row_starts.append(mask.shape[0] - side)
    if col_starts[-1] != mask.shape[1] - side:
        col_starts.append(mask.shape[1] - side)
    for r in row_starts:
        for c in col_starts:
            count = total[r + side, c + side] - total[r, c + side] - total[r + side, c] + total[r, c]
            if count > best:
                best, best_at = int(count), (r, c)
    return best_at[0], best_at[1], side


def stretch(image: np.ndarray, low: float = 1.0, high: float = 99.7, gamma: float = 1.0) -> np.ndarray:
    """Contrast-stretch an image to [0, 1] between two percentiles (then a display gamma).

    Examples
    --------
    >>> stretch(np.array([[0, 5, 10]]), low=0, high=100)
    array([[0. , 0.5, 1. ]])
    """
    image = np.asarray(image, dtype=float)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0) ** gamma


def _hex_rgb(colour: str) -> np.ndarray:
    colour = colour.lstrip("#")
    return np.array([int(colour[i : i + 2], 16) / 255.0 for i in (0, 2, 4)])


def overlay(grey: np.ndarray, mask: np.ndarray, colour: str) -> np.ndarray:
    """An RGB image: `grey` with the outline of every object of `mask` in `colour`."""
    from skimage.segmentation import find_boundaries  # lazy: skimage, 1 s at start-up

    rgb = np.repeat(np.asarray(grey, float)[..., None], 3, axis=-1)
    edges = find_boundaries(np.asarray(mask) > 0, mode="inner")
    rgb[edges] = _hex_rgb(colour)
    return rgb


def crop(array: np.ndarray | None, field: tuple[int, int, int]) -> np.ndarray | None:
    """Cut the window `field` = (row, col, side) out of an array (None stays None)."""
    if array is None:
        return None
    row, col, side = field
    return np.asarray(array)[row : row + side, col : col + side]


def draw_panel(
    image: np.ndarray,
    outlines: list[Outline],
    path: str | Path,
    uncertainty: np.ndarray | None = None,
    uncertainty_title: str = "uncertainty",
    ncols: int = 4,
    dpi: int = 110,
) -> Path:
    """Draw the field of view: the image, one panel per outline, then the uncertainty map.

    Parameters
    ----------
    image : ndarray (H, W)
        The microscopy image of the field of view (already cropped).
    outlines : list of Outline
        Label sets to outline, in panel order (masks cropped like `image`).
    path : str or Path
        PNG to write.
    uncertainty : ndarray (H, W) in [0, 1], optional
        Drawn last with a colour bar.
    ncols : int
        Panels per row.

    Returns
    -------
    Path
    """
    import matplotlib  # lazy: matplotlib, 0.5 s at start-up

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy, after choosing the Agg backend

    grey = stretch(image, low=2.0, high=99.8, gamma=0.8)  # dim nuclei stay visible next to bright ones
    panels: list[tuple[str, np.ndarray, Mapping]] = [("image", grey, {"cmap": "gray", "vmin": 0, "vmax": 1})]
    for outline in outlines:
        panels.append((outline.title, overlay(grey, outline.mask, outline.colour), {}))
    if uncertainty is not None:
        panels.append(
            (uncertainty_title, np.clip(uncertainty, 0, 1), {"cmap": "magma", "vmin": 0, "vmax": 1})
        )
    ncols = min(ncols, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.45 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    last = None
    for ax, (title, data, options) in zip(axes.ravel(), panels):
        last = ax.imshow(data, interpolation="nearest", **options)
        ax.set_title(title, fontsize=9)
    if uncertainty is not None and last is not None:
        bar = fig.colorbar(last, ax=axes.ravel()[len(panels) - 1], fraction=0.046, pad=0.03)
        bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return path


def entropy_of_votes(masks: list[np.ndarray]) -> np.ndarray:
    """Binary entropy (bits, in [0, 1]) of the fraction of members that call a pixel foreground.

    The uncertainty of an ensemble whose members' probability maps are not stored (e.g. the
    simulated study): 0 where all members agree, 1 where half of them disagree.

    Examples
    --------
    >>> votes = [np.array([[1, 1]]), np.array([[1, 0]])]
    >>> entropy_of_votes(votes)
    array([[0., 1.]])
    """
    p = np.mean([np.asarray(m) > 0 for m in masks], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0)
