"""Training samples: random tiles, the eight rotations/flips of a square, intensity changes.

All randomness comes from one `numpy.random.Generator`, so a seed fixes every sample.

Why these augmentations
-----------------------
* **Foreground-biased crops**: cFOS nuclei cover ~3 % of a wue1 image and many tiles hold none.
  A share of the tiles (`foreground_share`, default 1/2) is centred on a random foreground pixel,
  the rest are uniform, so the model sees objects in every batch without forgetting empty tissue.
* **Dihedral transforms** (rotations by 90° and flips): the tissue has no preferred orientation
  at this scale, and these are exact (no interpolation that would blur mask edges).
* **Intensity**: a random gain and offset and a little Gaussian noise, in units of the training
  set's standard deviation, mimic exposure and staining differences between images and labs.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> image = np.arange(16.0).reshape(4, 4); mask = image > 10
>>> tile, tile_mask = dihedral(image, mask, 5)
>>> bool(((tile > 10) == tile_mask).all())
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Augmentation settings (stored in every model card).

    Attributes
    ----------
    foreground_share : float
        Share of tiles centred on a foreground pixel.
    gain : (float, float)
        Range of the multiplicative intensity gain (sampled log-uniformly).
    offset : float
        Maximum absolute additive offset, in training-set standard deviations.
    noise : float
        Maximum standard deviation of added Gaussian noise, in training-set standard deviations.
    """

    foreground_share: float = 0.5
    gain: tuple[float, float] = (0.8, 1.25)
    offset: float = 0.1
    noise: float = 0.05

    def as_dict(self) -> dict:
        return asdict(self)


def random_crop_origin(
    mask: np.ndarray, tile: int, rng: np.random.Generator, foreground_share: float
) -> tuple[int, int]:
    """Top-left corner of a `tile`-sized crop, centred on foreground with `foreground_share`.

    Examples
    --------
    >>> mask = np.zeros((64, 64), bool); mask[40, 50] = True
    >>> r, c = random_crop_origin(mask, 16, np.random.default_rng(0), foreground_share=1.0)
    >>> bool(mask[r:r + 16, c:c + 16].any())
    True
    """
    height, width = mask.shape
    if height < tile or width < tile:
        raise ValueError(f"image {height}x{width} is smaller than the training tile {tile}")
    if rng.random() < foreground_share:
        rows, cols = np.nonzero(mask)
        if rows.size:
            pick = rng.integers(rows.size)
            jitter = rng.integers(-tile // 4, tile // 4 + 1, size=2)
            row = int(np.clip(rows[pick] - tile // 2 + jitter[0], 0, height - tile))
            col = int(np.clip(cols[pick] - tile // 2 + jitter[1], 0, width - tile))
            return row, col
    return int(rng.integers(height - tile + 1)), int(rng.integers(width - tile + 1))


def dihedral(image: np.ndarray, mask: np.ndarray, which: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 rotations/reflections of a square (``which`` in 0..7), applied to both."""
    if which >= 4:
        image, mask = image.T, mask.T
    return np.rot90(image, which % 4), np.rot90(mask, which % 4)


def change_intensity(
    tile: np.ndarray, rng: np.random.Generator, settings: Augmentation, scale: float
) -> np.ndarray:
    """Random gain, offset and noise; `scale` is the training set's intensity standard deviation."""
    low, high = np.log(settings.gain[0]), np.log(settings.gain[1])
    gain = np.exp(rng.uniform(low, high))
    offset = rng.uniform(-settings.offset, settings.offset) * scale
    noise_sd = rng.uniform(0, settings.noise) * scale
    out = tile.astype(np.float32) * np.float32(gain) + np.float32(offset)
    if noise_sd > 0:
        out += rng.normal(0, noise_sd, size=tile.shape).astype(np.float32)
    return out


def sample_batch(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    batch_size: int,
    tile: int,
    rng: np.random.Generator,
    settings: Augmentation,
    scale: float,
    valid: list[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A training batch: tiles (N, tile, tile) float32, targets int64 and a loss-weight mask.

    Parameters
    ----------
    images, masks : list of ndarray
        Raw images and their bool target masks.
    batch_size, tile : int
        Tiles per batch, tile side.
    rng : numpy.random.Generator
        The only source of randomness.
    settings : Augmentation
        What to vary.
    scale : float
        Intensity standard deviation of the training set (for offset and noise).
    valid : list of (ndarray or None), optional
        Pixels that count in the loss (False in ignored regions); None means all.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y, w = sample_batch([np.zeros((32, 32))], [np.zeros((32, 32), bool)], 2, 16, rng,
    ...                        Augmentation(), scale=1.0)
    >>> x.shape, y.dtype, w.shape
    ((2, 16, 16), dtype('int64'), (2, 16, 16))
    """
    tiles, targets, weights = [], [], []
    for _ in range(batch_size):
        index = int(rng.integers(len(images)))
        mask = masks[index]
        row, col = random_crop_origin(mask, tile, rng, settings.foreground_share)
        window = (slice(row, row + tile), slice(col, col + tile))
        keep = np.ones((tile, tile), bool) if valid is None or valid[index] is None else valid[index][window]
        which = int(rng.integers(8))
        image_tile, mask_tile = dihedral(images[index][window], mask[window], which)
        _, keep = dihedral(keep, keep, which)
        tiles.append(change_intensity(image_tile, rng, settings, scale))
        targets.append(mask_tile.astype(np.int64))
        weights.append(keep.astype(np.float32))
    return np.stack(tiles), np.stack(targets), np.stack(weights)
