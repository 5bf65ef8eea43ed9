"""Tiled prediction: a grid of overlapping tiles, blended with a Gaussian weight.

Why the grid looks like this
----------------------------
* Tile size, overlap and every tile offset are multiples of the U-Net's ``2**depth``, and the
  image is padded to such a multiple first: then each tile's max-pooling grid lines up with the
  whole image's, and a pixel far enough from every tile edge gets *exactly* the whole-image
  prediction (in eval mode, where BatchNorm is a fixed affine map).
* Pixels near a tile edge see zero padding instead of image; the Gaussian weight (sigma =
  tile / 8 by default) makes the centre of a tile count most, so edge pixels of one tile are
  outvoted by the centre of its neighbour. The weight never reaches zero, so every pixel is
  covered, and blended probabilities are normalised by the summed weights.
* Padding of the image itself is by reflection, which looks like tissue to the model (zeros
  would look like an empty, dark border).

Examples
--------
>>> tile_starts(1024, tile=512, overlap=128, align=16)
[0, 384, 512]
>>> gaussian_weight(4, sigma_fraction=0.5).shape
(4, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Offsets of the tiles covering ``[0, length)`` along one axis.

    Parameters
    ----------
    length : int
        Padded image length (a multiple of `align`, at least `tile`).
    tile : int
        Tile length (a multiple of `align`).
    overlap : int
        Minimum overlap of neighbouring tiles (a multiple of `align`, less than `tile`).
    align : int
        Every offset is a multiple of this.

    Returns
    -------
    list of int
        Increasing offsets; the last tile ends exactly at `length`.

    Examples
    --------
    >>> tile_starts(64, tile=64, overlap=16)
    [0]
    >>> tile_starts(160, tile=64, overlap=32, align=16)
    [0, 32, 64, 96]
    """
    if tile <= 0 or length < tile:
        raise ValueError(f"tile {tile} must be positive and at most the length {length}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be within [0, tile={tile})")
    for name, value in (("length", length), ("tile", tile), ("overlap", overlap)):
        if value % align:
            raise ValueError(f"{name} {value} is not a multiple of {align}")
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def gaussian_weight(shape: int | tuple[int, int], sigma_fraction: float = 1 / 8) -> np.ndarray:
    """2-D Gaussian blending weight of a tile, 1 at the centre, > 0 everywhere.

    Parameters
    ----------
    shape : int or (int, int)
        Tile side, or (rows, cols).
    sigma_fraction : float
        Sigma along each axis as a fraction of that axis' length.

    Examples
    --------
    >>> w = gaussian_weight(64)
    >>> w.shape, float(w.max()) <= 1.0, float(w.min()) > 0
    ((64, 64), True, True)
    """
    rows, cols = (shape, shape) if isinstance(shape, int) else shape

    def profile(length: int) -> np.ndarray:
        centre = (length - 1) / 2
        return np.exp(-0.5 * ((np.arange(length) - centre) / (sigma_fraction * length)) ** 2)

    weight = np.outer(profile(rows), profile(cols)).astype(np.float32)
    # Far corners underflow towards 0; keep a floor so a pixel covered by one tile is still defined.
    return np.maximum(weight, np.float32(1e-6))


def padded_size(length: int, align: int) -> int:
    """Length after padding: the next multiple of `align`.

    Examples
    --------
    >>> padded_size(1000, align=16), padded_size(1024, align=16)
    (1008, 1024)
    """
    return math.ceil(length / align) * align


def pad_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pad a 2-D image at the bottom and right to `shape` by reflection (edge for tiny images)."""
    extra = [(0, shape[0] - image.shape[0]), (0, shape[1] - image.shape[1])]
    if extra == [(0, 0), (0, 0)]:
        return image
    mode = "reflect" if all(e[1] < n for e, n in zip(extra, image.shape)) else "edge"
    return np.pad(image, extra, mode=mode)


def predict_tiled(
    predict_batch: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    n_classes: int,
    tile: int = 1024,
    overlap: int = 128,
    align: int = 16,
    batch_size: int = 2,
    sigma_fraction: float = 1 / 8,
) -> np.ndarray:
    """Class probabilities of a 2-D image, predicted tile by tile and blended.

    Parameters
    ----------
    predict_batch : callable
        Maps a float32 array (N, H_t, W_t) of raw-intensity tiles to probabilities
        (N, n_classes, H_t, W_t).
    image : ndarray, shape (H, W)
        Raw image.
    n_classes : int
        Number of output classes.
    tile, overlap : int
        Tile side and minimum overlap in pixels (multiples of `align`). An image no larger than
        `tile` (after padding) is predicted as one piece: no blending, no extra work.
    align : int
        ``2**depth`` of the model.
    batch_size : int
        Tiles per forward pass.
    sigma_fraction : float
        Gaussian sigma as a fraction of the tile side.

    Returns
    -------
    ndarray of float32, shape (n_classes, H, W)
        Blended probabilities (each pixel sums to 1 when the model's outputs do).

    Examples
    --------
    >>> uniform = lambda tiles: np.full((len(tiles), 2) + tiles.shape[1:], 0.5, np.float32)
    >>> predict_tiled(uniform, np.zeros((40, 70)), 2, tile=32, overlap=16).shape
    (2, 40, 70)
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    height, width = image.shape
    shape = (padded_size(height, align), padded_size(width, align))
    padded = pad_image(np.asarray(image, dtype=np.float32), shape)
    tile_h, tile_w = min(tile, shape[0]), min(tile, shape[1])
    if (tile_h, tile_w) == shape:
        return predict_batch(padded[None])[0][:, :height, :width].astype(np.float32, copy=False)
    rows = tile_starts(shape[0], tile_h, min(overlap, tile_h - align), align)
    cols = tile_starts(shape[1], tile_w, min(overlap, tile_w - align), align)
    weight = gaussian_weight((tile_h, tile_w), sigma_fraction)
    total = np.zeros((n_classes, *shape), np.float32)
    weights = np.zeros(shape, np.float32)
    offsets = [(r, c) for r in rows for c in cols]
    for first in range(0, len(offsets), batch_size):
        chunk = offsets[first : first + batch_size]
        tiles = np.stack([padded[r : r + tile_h, c : c + tile_w] for r, c in chunk])
        probabilities = predict_batch(tiles)
        for (r, c), probability in zip(chunk, probabilities):
            total[:, r : r + tile_h, c : c + tile_w] += probability * weight
            weights[r : r + tile_h, c : c + tile_w] += weight
    return (total / weights)[:, :height, :width]
