"""One simulated image's content: the tissue band and its regions, the planted nuclei, which
nucleus owns each pixel, the true counts, and the 8-bit image rendered from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import expit

from cfosstats.objects.label import count_objects

# --- biology (pixel scale fixed: a larger `size` is a larger field of view) -----------------------
BASE_DENSITY = 9e-4  # positive nuclei per band pixel in the control group (~25 per 256² image)
OUTSIDE_DENSITY = 0.12  # density outside the band, relative to inside
NEGATIVE_DENSITY = 0.7  # cFOS-negative autofluorescent nuclei in the band, relative to positives
AREA_DENSITY = (1.0, 0.8, 1.2)  # per area (cycled): areas differ in baseline cFOS
NUCLEUS_AREA = (105.0, 0.4, 40.0, 250.0)  # lognormal median px, sigma, clip low, clip high
ASPECT = (1.0, 1.5)  # ellipse axis ratio range
GAP = 1.0  # px kept between neighbouring nuclei (mean radii): most stay separate objects
LOG_BRIGHTNESS_SD = 0.45  # spread of positive nuclei's log brightness
NEGATIVE_LOG_BRIGHTNESS = (math.log(0.3), 0.3)  # cFOS-negative nuclei: mean, sd
IMAGE_SD = 0.08  # image-to-image density noise within an animal (brightness: half of it)
VISIBILITY_SD = 0.2  # per-nucleus visibility shared by all labellers (local contrast)
SIZE_VISIBILITY = 0.3  # small nuclei are harder to see: + SIZE_VISIBILITY * log(area / median)

# --- image formation (8-bit grey levels) -------------------------------------------------------
BRIGHTNESS = 12.0  # grey levels above background of a median positive nucleus in the control
BACKGROUND = (12.0, 30.0)  # range of per-experiment background levels (lab-wue1: ~13 and ~27)
GAIN = 2.0  # grey levels per photon: shot noise sd ~ sqrt(GAIN * level), ~7 at 25 as in wue1
READ_NOISE = 1.5
EDGE_SOFTNESS = 1.8  # 1/px: nucleus edge profile steepness before the optical blur
BLUR = 0.8  # px: optical blur of the nuclei
MARGIN = 3.0  # px: how far beyond a nucleus a labeller may draw (boundary bias + jitter)


@dataclass
class Nuclei:
    """Planted nuclei of one image (positives and cFOS-negative ones), as parallel arrays."""

    y: np.ndarray
    x: np.ndarray
    a: np.ndarray  # semi-major axis, px
    b: np.ndarray  # semi-minor axis, px
    angle: np.ndarray
    log_brightness: np.ndarray
    visibility: np.ndarray
    positive: np.ndarray  # bool: cFOS-positive (the truth) or autofluorescent negative

    def __len__(self) -> int:
        return int(self.y.size)


@dataclass
class Scene:
    """Everything drawn in one image: tissue, nuclei, and which nucleus owns each pixel."""

    regions: dict[str, np.ndarray]
    band: np.ndarray
    nuclei: Nuclei
    owner: np.ndarray  # int32: index of the nearest nucleus within MARGIN px, -1 elsewhere
    dist: np.ndarray  # float32: signed distance to that nucleus's outline, px (> 0 inside)

    def __post_init__(self) -> None:
        # Labellers only ever look near nuclei: work on those pixels (flat indices) alone.
        self.near = np.flatnonzero(self.owner.ravel() >= 0)
        self.near_owner = self.owner.ravel()[self.near]
        self.near_dist = self.dist.ravel()[self.near]

    def to_mask(self, near_values: np.ndarray) -> np.ndarray:
        """A full-size bool mask from values on the near-nucleus pixels."""
        mask = np.zeros(self.owner.size, bool)
        mask[self.near] = near_values
        return mask.reshape(self.owner.shape)

    def to_mask_at(self, pixels: np.ndarray) -> np.ndarray:
        """A full-size bool mask, true at the near-nucleus pixels `pixels` (indices into ``near``)."""
        mask = np.zeros(self.owner.size, bool)
        mask[self.near[pixels]] = True
        return mask.reshape(self.owner.shape)


# --- tissue and nuclei -------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-0.5, 0.5) as a column (y) and a row (x) that broadcast.

    The same float32 values as a full ``mgrid``, without two full-size integer grids.

    Examples
    --------
    >>> yy, xx = _grid(4)
    >>> yy.shape, xx.shape, xx.ravel().tolist()
    ((4, 1), (1, 4), [-0.375, -0.125, 0.125, 0.375])
    """
    line = (np.arange(size).astype(np.float32) + 0.5) / size - 0.5
    return line[:, None], line[None, :]


def _band(rng: np.random.Generator, size: int, area_index: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth curved band (the cell layer) and the coordinate along it, per pixel."""
    bend, wave, width = ((0.6, 0.05, 0.40), (1.2, 0.04, 0.36), (2.0, 0.02, 0.32))[area_index % 3]
    yy, xx = _grid(size)
    angle = 2 * math.pi * rng.random()
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    phase, phase2 = 2 * math.pi * rng.random(2)
    bend *= rng.choice((-1.0, 1.0)) * rng.uniform(0.8, 1.2)
    centre = rng.normal(0, 0.04) + bend * (along**2 - 1 / 12) + wave * np.sin(6 * along + phase)
    half = 0.5 * width * rng.uniform(0.9, 1.1) * (1 + 0.15 * np.sin(5 * along + phase2))
    return np.abs(across - centre) < half, along


def _regions(band: np.ndarray, along: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The area's first region is the whole band; further ones are consecutive pieces of it."""
    out = {names[0]: band}
    parts = names[1:]
    if parts:
        edges = np.quantile(along[band], np.linspace(0, 1, len(parts) + 1))
        for i, name in enumerate(parts):
            upper = along <= edges[i + 1] if i == len(parts) - 1 else along < edges[i + 1]
            out[name] = band & (along >= edges[i]) & upper
    return out


def _candidates(rng: np.random.Generator, where: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Uniform sub-pixel positions inside `where`.
    flat = np.flatnonzero(where)
    if flat.size == 0 or n == 0:
        return np.empty(0), np.empty(0)
    pick = flat[rng.integers(0, flat.size, n)]
    y, x = np.divmod(pick, where.shape[1])
    return y + rng.random(n), x + rng.random(n)


def _shapes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    median, sigma, low, high = NUCLEUS_AREA
    area = np.clip(median * np.exp(rng.normal(0, sigma, n)), low, high)
    ratio = rng.uniform(*ASPECT, n)
    a = np.sqrt(area * ratio / math.pi)
    return a, area / (math.pi * a), rng.uniform(0, math.pi, n)


def _pack(
    y: np.ndarray, x: np.ndarray, radius: np.ndarray, group: np.ndarray, targets: list[int]
) -> np.ndarray:
    """Greedy dart throwing: keep candidates in order unless they overlap one already kept.

    Candidates of group ``g`` are kept until ``targets[g]`` of them are (a full band keeps fewer).
    Only pairs closer than the largest possible reach can conflict: a k-d tree finds them, and
    each is tested with the same expression as a full pairwise matrix (identical decisions).

    Examples
    --------
    >>> y, x = np.array([0.0, 0.0, 20.0]), np.array([0.0, 5.0, 0.0])
    >>> _pack(y, x, np.full(3, 3.0), np.zeros(3, int), [3]).tolist()
    [True, False, True]
    """
    keep = np.zeros(y.size, bool)
    if y.size == 0:
        return keep
    reach = 2 * float(radius.max()) + GAP
    pairs = cKDTree(np.column_stack([y, x])).query_pairs(reach * (1 + 1e-9) + 1e-9, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    conflict = np.hypot(y[i] - y[j], x[i] - x[j]) < radius[i] + radius[j] + GAP
    i, j = i[conflict], j[conflict]
    # Neighbour lists of every candidate (both directions), as CSR.
    rows, cols = np.concatenate([i, j]), np.concatenate([j, i])
    order = np.argsort(rows, kind="stable")
    cols = cols[order]
    starts = np.searchsorted(rows[order], np.arange(y.size + 1))
    blocked = np.zeros(y.size, bool)
    left = list(targets)
    for k in range(y.size):
        g = int(group[k])
        if left[g] and not blocked[k]:
            keep[k] = True
            left[g] -= 1
            blocked[cols[starts[k] : starts[k + 1]]] = True
    return keep


def _place_nuclei(
    rng: np.random.Generator, band: np.ndarray, density: float, log_brightness: float
) -> Nuclei:
    """Positive nuclei (dense in the band, sparse outside) and negative ones, packed together."""
    inside, outside = int(band.sum()), int(band.size - band.sum())
    expected = (
        density * inside,
        density * OUTSIDE_DENSITY * outside,
        BASE_DENSITY * NEGATIVE_DENSITY * inside,
        BASE_DENSITY * NEGATIVE_DENSITY * OUTSIDE_DENSITY * outside,
    )
    targets = [int(rng.poisson(lam)) for lam in expected]
    where = (band, ~band, band, ~band)
    # Three candidates per wanted nucleus leave room for rejections; positives are placed first.
    parts = [_candidates(rng, w, 3 * t) for w, t in zip(where, targets, strict=True)]
    y = np.concatenate([p[0] for p in parts])
    x = np.concatenate([p[1] for p in parts])
    group = np.concatenate([np.full(p[0].size, g) for g, p in enumerate(parts)])
    a, b, angle = _shapes(rng, y.size)
    keep = _pack(y, x, (a + b) / 2, group, targets)
    positive = group < 2
    mean, sd = NEGATIVE_LOG_BRIGHTNESS
    brightness = np.where(
        positive,
        log_brightness + LOG_BRIGHTNESS_SD * rng.standard_normal(y.size),
        mean + sd * rng.standard_normal(y.size),
    )
    size_term = SIZE_VISIBILITY * np.log(math.pi * a * b / NUCLEUS_AREA[0])
    visibility = brightness + size_term + VISIBILITY_SD * rng.standard_normal(y.size)
    return Nuclei(*(v[keep] for v in (y, x, a, b, angle, brightness, visibility, positive)))


def _geometry(nuclei: Nuclei, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the nucleus whose outline is nearest (within MARGIN px) and the signed distance.

    The distance is radial (centre to outline through the pixel): exact for circles and close
    for the mild ellipses used here; positive inside.
    """
    owner = np.full((size, size), -1, np.int32)
    dist = np.full((size, size), -np.inf, np.float32)
    for j in range(len(nuclei)):
        y, x, a, b = nuclei.y[j], nuclei.x[j], nuclei.a[j], nuclei.b[j]
        reach = a + MARGIN
        y0, y1 = max(int(y - reach), 0), min(int(y + reach) + 2, size)
        x0, x1 = max(int(x - reach), 0), min(int(x + reach) + 2, size)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = (np.arange(y0, y1) + 0.5 - y)[:, None]
        dx = (np.arange(x0, x1) + 0.5 - x)[None, :]
        cos, sin = math.cos(nuclei.angle[j]), math.sin(nuclei.angle[j])
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        norm = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        radius = np.hypot(u, v)
        d = np.where(norm > 1e-6, radius / np.maximum(norm, 1e-6) - radius, b)
        box = dist[y0:y1, x0:x1]
        nearer = (d > box) & (d > -MARGIN)
        box[nearer] = d[nearer]
        owner[y0:y1, x0:x1][nearer] = j
    return owner, dist


def _true_mask(scene: Scene) -> np.ndarray:
    return scene.to_mask(scene.nuclei.positive[scene.near_owner] & (scene.near_dist > 0))


def _truth(scene: Scene, min_size: int) -> dict:
    """The true per-region counts: positive nuclei clipped to the region, >= min size."""
    truth = _true_mask(scene)
    n = scene.nuclei
    iy = np.clip(n.y.astype(int), 0, truth.shape[0] - 1)
    ix = np.clip(n.x.astype(int), 0, truth.shape[1] - 1)
    out = {}
    for name, region in scene.regions.items():
        centred = region[iy, ix] & n.positive
        out[name] = {
            "true_count": count_objects(truth & region, min_size),
            "planted": int(centred.sum()),
            "area_px": int(region.sum()),
            "true_mean_brightness": round(
                float(np.mean(BRIGHTNESS * np.exp(n.log_brightness[centred]))) if centred.any() else 0.0, 4
            ),
        }
    return out


# --- image formation ---------------------------------------------------------------------------


def _render(rng: np.random.Generator, scene: Scene, background: float) -> np.ndarray:
    """The 8-bit microscopy image of a scene: low SNR like lab-wue1."""
    size = scene.band.shape[0]
    yy, xx = _grid(size)
    tilt = 2 * math.pi * rng.random()
    illumination = 1 + 0.2 * (math.cos(tilt) * xx + math.sin(tilt) * yy)
    haze = ndimage.gaussian_filter(scene.band.astype(np.float32), 3)  # cell layer glows faintly
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size), np.float32), 2.0)
    texture /= max(float(texture.std()), 1e-6)
    level = background * illumination * (1 + 0.12 * haze + 0.06 * texture)
    lum = BRIGHTNESS * np.exp(scene.nuclei.log_brightness).astype(np.float32)
    near = lum[scene.near_owner] * expit(EDGE_SOFTNESS * scene.near_dist)
    near *= 1 + 0.15 * rng.standard_normal(near.size, np.float32)  # chromatin grain
    signal = np.zeros(size * size, np.float32)
    signal[scene.near] = near
    expected = level + ndimage.gaussian_filter(signal.reshape(size, size), BLUR)
    counts = rng.poisson(np.maximum(expected, 0) / GAIN) * GAIN
    counts = counts + READ_NOISE * rng.standard_normal((size, size), np.float32)
    return np.clip(np.rint(counts), 0, 255).astype(np.uint8)
