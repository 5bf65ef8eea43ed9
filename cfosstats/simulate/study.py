"""Simulate a complete study in the full study layout, modelled on lab-wue1.

The simulator plants a known treatment effect in synthetic cFOS images, lets biased "annotators"
and "models" label them, and writes everything a real study archive holds (see
:mod:`cfosstats.datasets.layout`): ``image_mapping.xlsx``, images, region masks, annotator masks,
``est_GT`` and the label sets of expert models, consensus models and consensus ensembles. The
ground truth behind it goes to ``lab-<id>/simulation.json`` so that tests and calibration can
check what the pipeline recovers.

The generative model, in brief (all numbers are module constants below):

* **Design.** Every animal belongs to one condition (``n_animals`` per condition) and contributes
  ``images_per_animal`` images in *each* imaged area. Within each condition the animals alternate
  between two experiments (batches). Image ids are shuffled (blinded) zero-padded numbers.
  ``n_training`` images per condition x area stratum form the annotated training subset.
* **Tissue.** Each image holds a smooth, curved band (the cell layer; ~30-50 % of the image) whose
  shape depends on the area. The band is the area's first region; further regions of the area
  (e.g. ``DG_supra``, ``DG_infra``) are consecutive pieces of it along its length.
* **Nuclei.** cFOS-positive nuclei are ellipses of 40-250 px, densely packed in the band and sparse
  outside it (so region clipping matters). cFOS-negative, faintly autofluorescent nuclei also sit in
  the band: liberal labellers mistake the brighter ones for positives (false positives).
* **Effect.** Condition ``i`` of ``k`` (0 = control) multiplies both the density and the brightness
  of positive nuclei by ``1 + effect * i / (k - 1)``: for ``H, C-, C+`` and ``effect=0.5`` C- gets
  x1.25 and C+ x1.5; ``effect=0`` plants none.
* **Animals and images.** Each animal multiplies density by ``exp(N(0, animal_sd))`` and brightness
  by ``exp(N(0, animal_sd / 2))``; each image adds smaller factors of its own.
* **Image formation.** Background (per-experiment level, illumination gradient, cell-layer haze,
  autofluorescence texture) + Gaussian-blurred nuclei, then Poisson (shot) and Gaussian (read)
  noise; written as **8-bit** TIFF, like the 8-bit PNGs of lab-wue1.
* **Labellers.** A labeller (annotator or model) detects a nucleus when its visibility (log
  brightness, plus a size term and a per-nucleus term shared by all labellers) exceeds the
  labeller's threshold, with per-nucleus decision noise and random misses; it draws the outline
  ``boundary`` px larger or smaller than the truth. The first annotator is conservative (fewer
  objects, like lab-wue1's expert_1), the third (or last) liberal (more objects, some false
  positives), the others moderate. Annotators label the training subset only; ``est_GT`` is
  SimpleITK STAPLE of their masks thresholded at 0.5, as in the study.
* **Models** label every image. Expert models inherit their annotator's biases, consensus models
  and ensemble members sit around the consensus; each model draws its own threshold, boundary and
  false-positive bias. Models produce soft probability maps; a model's mask is its map > 0.5, an
  ensemble's mask is the mean of its members' maps > 0.5, so ensembles vary less than single
  models.

Label sets written (all under ``labels/scratch/``): ``expert_models/<annotator>/unet_1..2``,
``consensus_models/consensus/unet_1..4``, ``consensus_ensembles/ensemble_1..2/unet_1..3`` and
``.../ensemble``. Random numbers come from ``numpy.random.Generator(PCG64)`` seeded by
``SeedSequence(seed, spawn_key=...)`` keyed by *what* they are for (an animal, an image, a
labeller), so adding animals leaves existing animals, their images and the labellers unchanged
(only the blinded ids and the training draw change).
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import expit

from cfosstats.core.atomic import atomic_dir
from cfosstats.core.errors import InputError
from cfosstats.datasets.layout import (
    ENSEMBLE_UNET,
    ESTIMATED_GT,
    MAPPING_COLUMNS,
    MAPPING_FILE,
    mask_name,
)
from cfosstats.datasets.registry import LabConfig, load_lab_config
from cfosstats.objects.groundtruth import staple
from cfosstats.objects.label import count_objects

SIMULATION_FILE = "simulation.json"
INITIALIZATION = "scratch"

# --- design ------------------------------------------------------------------------------------
N_EXPERIMENTS = 2
UNETS_PER_EXPERT = 2
N_CONSENSUS_MODELS = 4
N_ENSEMBLES = 2
MEMBERS_PER_ENSEMBLE = 3

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

# --- labellers ---------------------------------------------------------------------------------
DETECTION_WIDTH = 0.15  # log-brightness change that moves the detection logit by one unit
EDGE_SHARPNESS = 2.0  # 1/px: steepness of a model's soft map at the object boundary
HUMAN_EDGE_JITTER = 1.0  # px: per-object outline noise of an annotator (drawing by hand)
MODEL_EDGE_JITTER = 0.4  # px: per-object outline noise of a model
MARGIN = 3.0  # px: how far beyond a nucleus a labeller may draw (boundary bias + jitter)
PROFILES = {  # annotator archetypes: threshold, boundary (px), miss rate, false-positive bias
    "conservative": (-0.05, -0.6, 0.08, 0.0),
    "moderate": (-0.65, 0.0, 0.06, 0.0),
    "liberal": (-1.0, 0.5, 0.02, 0.2),
}
ANNOTATOR_NOISE = (0.08, 0.4)  # sd of threshold and boundary around the archetype
HUMAN_JITTER = 1.5  # per-nucleus decision noise of an annotator (logit units)
MODEL_NOISE = (0.1, 0.3, 0.15)  # sd of a model's threshold, boundary, false-positive bias
MODEL_MISS_RATE = 0.02
MODEL_JITTER = 0.8

FIXED_TIME = "2020-01-01T00:00:00Z"  # written into the xlsx so that its bytes are reproducible
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Labeller:
    """How one annotator or model turns nuclei into a mask.

    Attributes
    ----------
    name : str
        Annotator name, or the label set's path below ``labels/`` for a model.
    threshold : float
        Visibility (log brightness relative to a median control nucleus) detected half the time.
    boundary : float
        Pixels added to (positive) or taken from (negative) every outline.
    miss_rate : float
        Probability of overlooking a nucleus whatever its brightness.
    fp_bias : float
        Visibility credited to cFOS-negative nuclei: > 0 marks more of them (false positives).
    jitter : float
        Sd of the per-nucleus decision noise (logit units).
    edge_jitter : float
        Sd of the per-nucleus outline noise (px).
    profile : str
        ``conservative``, ``moderate``, ``liberal`` or the strategy of a model.
    """

    name: str
    threshold: float
    boundary: float
    miss_rate: float
    fp_bias: float
    jitter: float
    edge_jitter: float
    profile: str = ""


@dataclass(frozen=True)
class ImageSpec:
    """One image of the design: where it comes from and what it is called."""

    key: tuple[int, int, int, int]  # (condition, animal within condition, area, repeat): seeds it
    condition: str
    area: str
    animal: str
    experiment: int
    image_id: str = ""
    training: bool = False


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


# --- random numbers ----------------------------------------------------------------------------


def _key(part: int | str) -> int:
    # Strings are hashed stably (crc32), so a stream's seed does not depend on Python's hash salt.
    return part if isinstance(part, int) else zlib.crc32(part.encode("utf-8"))


def _rng(seed: int, *parts: int | str) -> np.random.Generator:
    """An independent generator for the purpose named by `parts` (spawn_key of a SeedSequence).

    Examples
    --------
    >>> float(_rng(0, "animal", 1).random()) == float(_rng(0, "animal", 1).random())
    True
    """
    sequence = np.random.SeedSequence(seed, spawn_key=tuple(_key(p) for p in parts))
    return np.random.Generator(np.random.PCG64(sequence))


# --- design ------------------------------------------------------------------------------------


def _areas(config: LabConfig) -> tuple[str, ...]:
    return config.areas or tuple(config.regions) or ("area",)


def _regions_of(config: LabConfig, area: str) -> tuple[str, ...]:
    return tuple(config.regions.get(area, ())) or (area,)


def condition_factor(index: int, n_conditions: int, effect: float) -> float:
    """The planted multiplicative effect of condition `index` (0 = control) on density/brightness.

    Examples
    --------
    >>> [condition_factor(i, 3, 0.5) for i in range(3)]
    [1.0, 1.25, 1.5]
    """
    if n_conditions < 2:
        return 1.0
    return 1.0 + effect * index / (n_conditions - 1)


def _design(
    config: LabConfig, seed: int, n_animals: int, images_per_animal: int, n_training: int
) -> list[ImageSpec]:
    """Every image of the study, with ids, experiments and training flags assigned."""
    specs = []
    for c, condition in enumerate(config.conditions):
        batches = _experiments(seed, c, n_animals)
        for k in range(n_animals):
            animal = f"m{c + 1}{k + 1:02d}"  # stable when n_animals changes: m101, m102, m201, ...
            for a, area in enumerate(_areas(config)):
                for r in range(images_per_animal):
                    specs.append(ImageSpec((c, k, a, r), condition, area, animal, batches[k]))
    return _assign_training(_assign_ids(specs, seed), seed, n_training)


def _experiments(seed: int, condition: int, n_animals: int) -> list[int]:
    # Animals alternate between batches from a random start: balanced within every condition,
    # and an animal keeps its batch when n_animals changes.
    start = int(_rng(seed, "experiments", condition).integers(N_EXPERIMENTS))
    return [(start + k) % N_EXPERIMENTS + 1 for k in range(n_animals)]


def _assign_ids(specs: list[ImageSpec], seed: int) -> list[ImageSpec]:
    # Ids are shuffled, as in a blinded study: analyses must not rely on the order of ids.
    width = max(4, len(str(len(specs))))
    order = _rng(seed, "ids").permutation(len(specs))
    named = [None] * len(specs)
    for number, index in enumerate(order, start=1):
        spec = specs[int(index)]
        named[int(index)] = ImageSpec(**{**spec.__dict__, "image_id": f"{number:0{width}d}"})
    return sorted(named, key=lambda s: s.image_id)


def _assign_training(specs: list[ImageSpec], seed: int, n_training: int) -> list[ImageSpec]:
    # n_training random images per condition x area stratum are annotated.
    chosen: set[str] = set()
    strata: dict[tuple[int, int], list[ImageSpec]] = {}
    for spec in specs:
        strata.setdefault((spec.key[0], spec.key[2]), []).append(spec)
    for (c, a), members in sorted(strata.items()):
        pick = _rng(seed, "training", c, a).permutation(len(members))[:n_training]
        chosen.update(members[int(i)].image_id for i in pick)
    return [ImageSpec(**{**s.__dict__, "training": s.image_id in chosen}) for s in specs]


# --- labellers ---------------------------------------------------------------------------------


def _profile_of(index: int, n_annotators: int) -> str:
    # The first annotator is conservative (as wue1's expert_1), the third (or the last) liberal.
    if index == 0:
        return "conservative"
    if n_annotators > 1 and index == min(2, n_annotators - 1):
        return "liberal"
    return "moderate"


def make_annotators(config: LabConfig, seed: int) -> list[Labeller]:
    """The lab's annotators with their simulated biases.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> [a.profile for a in make_annotators(load_lab_config("demo"), 0)]
    ['conservative', 'moderate', 'liberal', 'moderate']
    """
    out = []
    for i, name in enumerate(config.annotators):
        profile = _profile_of(i, len(config.annotators))
        threshold, boundary, miss, fp_bias = PROFILES[profile]
        rng = _rng(seed, "annotator", name)
        out.append(
            Labeller(
                name,
                threshold + rng.normal(0, ANNOTATOR_NOISE[0]),
                boundary + rng.normal(0, ANNOTATOR_NOISE[1]),
                miss,
                fp_bias,
                HUMAN_JITTER,
                HUMAN_EDGE_JITTER,
                profile,
            )
        )
    return out


def _model(seed: int, name: str, base: Labeller, profile: str) -> Labeller:
    """A trained model: its recipe's biases (`base`) plus its own training-run randomness."""
    rng = _rng(seed, "model", name)
    sd_threshold, sd_boundary, sd_fp = MODEL_NOISE
    return Labeller(
        name,
        base.threshold + rng.normal(0, sd_threshold),
        base.boundary + rng.normal(0, sd_boundary),
        MODEL_MISS_RATE,
        base.fp_bias + rng.normal(0, sd_fp),
        MODEL_JITTER,
        MODEL_EDGE_JITTER,
        profile,
    )


def _consensus(annotators: list[Labeller]) -> Labeller:
    # Models trained on est_GT learn roughly the annotators' median behaviour.
    threshold, boundary, _, fp_bias = PROFILES["moderate"]
    if annotators:
        threshold = float(np.median([a.threshold for a in annotators]))
        boundary = float(np.median([a.boundary for a in annotators]))
        fp_bias = float(np.median([a.fp_bias for a in annotators]))
    return Labeller("consensus", threshold, boundary, 0.0, fp_bias, 0.0, 0.0, "consensus")


def make_models(annotators: list[Labeller], seed: int) -> dict[str, list[Labeller]]:
    """Every predicted label set, keyed by its folder below ``labels/`` (one model or ensemble).

    An ensemble's entry lists its members; a single model's entry lists itself.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> models = make_models(make_annotators(load_lab_config("demo"), 0), 0)
    >>> len(models), len(models["scratch/consensus_ensembles/ensemble_1/ensemble"])
    (20, 3)
    """
    root, out = INITIALIZATION, {}
    for annotator in annotators:
        for u in range(1, UNETS_PER_EXPERT + 1):
            name = f"{root}/expert_models/{annotator.name}/unet_{u}"
            out[name] = [_model(seed, name, annotator, "expert_models")]
    consensus = _consensus(annotators)
    for u in range(1, N_CONSENSUS_MODELS + 1):
        name = f"{root}/consensus_models/consensus/unet_{u}"
        out[name] = [_model(seed, name, consensus, "consensus_models")]
    for e in range(1, N_ENSEMBLES + 1):
        folder = f"{root}/consensus_ensembles/ensemble_{e}"
        members = []
        for u in range(1, MEMBERS_PER_ENSEMBLE + 1):
            member = _model(seed, f"{folder}/unet_{u}", consensus, "ensemble_members")
            out[member.name] = [member]
            members.append(member)
        out[f"{folder}/{ENSEMBLE_UNET}"] = members
    return out


# --- tissue and nuclei -------------------------------------------------------------------------


def _band(rng: np.random.Generator, size: int, area_index: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth curved band (the cell layer) and the coordinate along it, per pixel."""
    bend, wave, width = ((0.6, 0.05, 0.40), (1.2, 0.04, 0.36), (2.0, 0.02, 0.32))[area_index % 3]
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
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
    """
    gap = np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])
    conflict = gap < radius[:, None] + radius[None, :] + GAP
    blocked = np.zeros(y.size, bool)
    keep = np.zeros(y.size, bool)
    left = list(targets)
    for i in range(y.size):
        g = int(group[i])
        if left[g] and not blocked[i]:
            keep[i] = True
            left[g] -= 1
            blocked |= conflict[i]
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
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size - 0.5
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


# --- labelling ---------------------------------------------------------------------------------


def _decide(rng: np.random.Generator, nuclei: Nuclei, labeller: Labeller) -> tuple[np.ndarray, np.ndarray]:
    """Per nucleus: the labeller's detection logit and outline offset (px)."""
    n = len(nuclei)
    visibility = nuclei.visibility + np.where(nuclei.positive, 0.0, labeller.fp_bias)
    logit = (visibility - labeller.threshold) / DETECTION_WIDTH
    logit = logit + labeller.jitter * rng.standard_normal(n)
    logit[rng.random(n) < labeller.miss_rate] = -30.0
    edge = labeller.boundary + labeller.edge_jitter * rng.standard_normal(n)
    return logit, edge


def _hard_mask(scene: Scene, logit: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """A human's mask: every detected nucleus drawn with the labeller's outline offset."""
    o = scene.near_owner
    return scene.to_mask((logit[o] > 0) & (scene.near_dist + edge[o] > 0))


def _soft_map(scene: Scene, logit: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """A model's foreground probability on the near-nucleus pixels: detection x soft outline."""
    o = scene.near_owner
    outline = expit(EDGE_SHARPNESS * (scene.near_dist + edge[o]))
    return (expit(logit[o]) * outline).astype(np.float32)


# --- one image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What every image of one simulated study shares."""

    config: LabConfig
    seed: int
    effect: float
    animal_sd: float
    size: int
    annotators: tuple[Labeller, ...]
    models: dict[str, list[Labeller]]


@dataclass
class ImageResult:
    """One simulated image: pixels, region masks, label masks (by folder) and its ground truth."""

    image: np.ndarray
    regions: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    record: dict


def _factors(plan: Plan, spec: ImageSpec) -> dict[str, float]:
    """Multiplicative density and brightness factors planted in one image."""
    c, k, _, _ = spec.key
    condition = condition_factor(c, len(plan.config.conditions), plan.effect)
    animal = _rng(plan.seed, "animal", c, k).standard_normal(2)
    image = _rng(plan.seed, "image-factors", *spec.key).standard_normal(2)
    return {
        "condition_factor": condition,
        "animal_density_factor": math.exp(plan.animal_sd * animal[0]),
        "animal_intensity_factor": math.exp(plan.animal_sd / 2 * animal[1]),
        "image_density_factor": math.exp(IMAGE_SD * image[0]),
        "image_intensity_factor": math.exp(IMAGE_SD / 2 * image[1]),
    }


def _background(seed: int, experiment: int) -> float:
    # Batches differ in background level: lab-wue1 has two clusters, ~13 and ~27 grey levels.
    # Odd experiments draw from the upper half of BACKGROUND, even ones from the lower half.
    low, high = BACKGROUND
    middle = (low + high) / 2
    span = (middle, high) if experiment % 2 else (low, middle)
    return float(_rng(seed, "experiment-background", experiment).uniform(*span))


def _scene(plan: Plan, spec: ImageSpec, f: dict[str, float]) -> Scene:
    rng = _rng(plan.seed, "image", *spec.key)
    area_index = _areas(plan.config).index(spec.area)
    band, along = _band(rng, plan.size, area_index)
    regions = _regions(band, along, _regions_of(plan.config, spec.area))
    density = (
        BASE_DENSITY
        * AREA_DENSITY[area_index % len(AREA_DENSITY)]
        * f["condition_factor"]
        * f["animal_density_factor"]
        * f["image_density_factor"]
    )
    log_brightness = math.log(
        f["condition_factor"] * f["animal_intensity_factor"] * f["image_intensity_factor"]
    )
    nuclei = _place_nuclei(rng, band, density, log_brightness)
    owner, dist = _geometry(nuclei, plan.size)
    return Scene(regions, band, nuclei, owner, dist)


def _model_labels(plan: Plan, spec: ImageSpec, scene: Scene) -> dict[str, np.ndarray]:
    """Every predicted label set's mask; an ensemble averages its members' soft maps."""
    soft: dict[str, np.ndarray] = {}
    out = {}
    for folder, members in plan.models.items():
        maps = []
        for member in members:
            if member.name not in soft:
                rng = _rng(plan.seed, "labels", *spec.key, member.name)
                soft[member.name] = _soft_map(scene, *_decide(rng, scene.nuclei, member))
            maps.append(soft[member.name])
        mean = maps[0] if len(maps) == 1 else np.mean(maps, axis=0)
        out[folder] = scene.to_mask(mean > 0.5)
    return out


def _annotator_labels(plan: Plan, spec: ImageSpec, scene: Scene) -> dict[str, np.ndarray]:
    """Each annotator's mask of a training image, and est_GT (STAPLE) when there are any."""
    out = {}
    for annotator in plan.annotators:
        rng = _rng(plan.seed, "labels", *spec.key, annotator.name)
        out[annotator.name] = _hard_mask(scene, *_decide(rng, scene.nuclei, annotator))
    if out:
        out[ESTIMATED_GT] = staple(list(out.values())).estimate
    return out


def simulate_image(plan: Plan, spec: ImageSpec) -> ImageResult:
    """Simulate one image of the study: a pure function of (plan, spec), cheap to map in parallel.

    Examples
    --------
    >>> cfg = load_lab_config("demo")
    >>> spec = _design(cfg, 0, 1, 1, 0)[0]
    >>> plan = Plan(cfg, 0, 0.5, 0.15, 64, (), {})
    >>> simulate_image(plan, spec).image.shape
    (64, 64)
    """
    factors = _factors(plan, spec)
    scene = _scene(plan, spec, factors)
    background = _background(plan.seed, spec.experiment)
    image = _render(_rng(plan.seed, "pixels", *spec.key), scene, background)
    labels = _model_labels(plan, spec, scene)
    if spec.training:
        labels.update(_annotator_labels(plan, spec, scene))
    positive = scene.nuclei.positive
    record = {
        "ID": spec.image_id,
        "area": spec.area,
        "condition": spec.condition,
        "animal": spec.animal,
        "repeat": spec.key[3] + 1,  # which of the animal's images in this area
        "experiment": spec.experiment,
        "training": int(spec.training),
        **{k: round(v, 6) for k, v in factors.items()},
        "background": round(background, 4),
        "planted_positive": int(positive.sum()),
        "planted_negative": int((~positive).sum()),
        "regions": _truth(scene, plan.config.min_object_size),
    }
    return ImageResult(image, scene.regions, labels, record)


# --- writing -----------------------------------------------------------------------------------


def _write_tif(path: Path, image: np.ndarray, config: LabConfig) -> None:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if config.pixel_size_px_per_um:
        per_cm = config.pixel_size_px_per_um * 1e4
        extra = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    # metadata=None: no JSON description; no datetime tag: same bytes on every run.
    tifffile.imwrite(path, image, photometric="minisblack", metadata=None, **extra)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as an 8-bit greyscale 0/255 PNG, the format ``imageio.write_mask`` writes.

    Encoded here (no row filters, zlib level 1) because masks are most of the files of a study
    and this is ~4x faster than Pillow's encoder; the bytes depend only on the mask.

    Examples
    --------
    >>> import io; from PIL import Image
    >>> m = np.eye(3, dtype=bool)
    >>> np.asarray(Image.open(io.BytesIO(mask_png(m)))).tolist()
    [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    """
    height, width = mask.shape
    rows = np.zeros((height, width + 1), np.uint8)  # first byte of each row: filter type 0
    rows[:, 1:] = np.where(mask, 255, 0)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )


def _save_mask(path: Path, mask: np.ndarray) -> None:
    # No per-file temp name: the whole study is built in a temporary folder (atomic_dir).
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mask_png(mask))


def _write_result(lab: Path, config: LabConfig, spec: ImageSpec, result: ImageResult) -> None:
    _write_tif(lab / "images" / f"{spec.image_id}.tif", result.image, config)
    for region, mask in result.regions.items():
        _save_mask(lab / "regions" / region / f"{spec.image_id}.png", mask)
    for folder, mask in result.labels.items():
        _save_mask(lab / "labels" / folder / mask_name(spec.image_id, config.label), mask)


def _mapping_rows(config: LabConfig, specs: Iterable[ImageSpec]) -> list[list]:
    values = {
        "lab": lambda s: config.folder,
        "ID": lambda s: s.image_id,
        "area": lambda s: s.area,
        "condition": lambda s: s.condition,
        "experiment": lambda s: s.experiment,
        "animal": lambda s: s.animal,
        "training": lambda s: int(s.training),
    }
    return [[values[c](s) for c in MAPPING_COLUMNS] for s in specs]


def _write_mapping(path: Path, config: LabConfig, specs: list[ImageSpec]) -> None:
    """``image_mapping.xlsx`` with reproducible bytes (fixed document and zip-entry times)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "image_mapping"
    sheet.append(list(MAPPING_COLUMNS))
    for row in _mapping_rows(config, specs):
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(_reproducible_zip(buffer.getvalue()))


def _reproducible_zip(data: bytes) -> bytes:
    """Re-pack an xlsx: constant entry times and constant created/modified document properties."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for entry in src.infolist():
            content = src.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + FIXED_TIME.encode() + rb"\g<3>",
                    content,
                )
            info = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            dst.writestr(info, content)
    return out.getvalue()


def _summary(plan: Plan, specs: list[ImageSpec], records: list[dict], params: dict) -> dict:
    config = plan.config
    labellers = {a.name: _labeller_record(a) for a in plan.annotators}
    for folder, members in plan.models.items():
        if len(members) == 1:
            labellers[folder] = _labeller_record(members[0])
        else:
            labellers[folder] = {"ensemble_of": [m.name for m in members]}
    return {
        "generator": "cfosstats.simulate.study",
        "lab": config.folder,
        "label": config.label,
        "parameters": params,
        "condition_factors": {
            c: condition_factor(i, len(config.conditions), plan.effect)
            for i, c in enumerate(config.conditions)
        },
        "experiment_backgrounds": {
            str(e): round(_background(plan.seed, e), 4) for e in sorted({s.experiment for s in specs})
        },
        "labellers": labellers,
        "images": records,
    }


def _labeller_record(labeller: Labeller) -> dict:
    record = dict(labeller.__dict__)
    for key in ("threshold", "boundary", "miss_rate", "fp_bias", "jitter", "edge_jitter"):
        record[key] = round(float(record[key]), 6)
    return record


# --- entry point -------------------------------------------------------------------------------


def _check_arguments(
    size: int, n_animals: int, images_per_animal: int, effect: float, animal_sd: float, n_training: int
) -> None:
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    if n_animals < 1 or images_per_animal < 1:
        raise ValueError("n_animals and images_per_animal must be at least 1")
    if effect <= -1:
        raise ValueError(f"effect must be > -1 (a factor 1 + effect must stay positive): {effect}")
    if animal_sd < 0 or n_training < 0:
        raise ValueError("animal_sd and n_training must not be negative")


def _check_target(out: Path, config: LabConfig) -> None:
    """Refuse to replace a folder that is not empty and not an earlier simulation of this lab."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(out, "exists and is not a folder")
    entries = {p.name for p in out.iterdir()}
    earlier = (out / config.folder / SIMULATION_FILE).is_file()
    from cfosstats.core.outputs import MARKER

    if entries and not (earlier and entries <= {MAPPING_FILE, config.folder, MARKER}):
        raise InputError(out, "is not empty and not a simulated study; refusing to replace it")


def _progress(specs: list[ImageSpec], show: bool) -> Iterator[ImageSpec]:
    if not show:
        yield from specs
        return
    from cfosstats.core.parallel import progress_bar

    with progress_bar() as bar:
        task = bar.add_task("simulating images", total=len(specs))
        for spec in specs:
            yield spec
            bar.advance(task)


def simulate_study(
    out: str | Path,
    config: LabConfig | None = None,
    seed: int = 0,
    effect: float = 0.5,
    animal_sd: float = 0.15,
    n_animals: int = 4,
    images_per_animal: int = 2,
    size: int = 256,
    progress: bool = False,
    n_training: int = 1,
    predictions: bool = True,
) -> Path:
    """Write a complete synthetic study in the full study layout into `out`, atomically.

    Parameters
    ----------
    out : str or Path
        Data root to create (``out/image_mapping.xlsx``, ``out/lab-<id>/...``). It is built in a
        temporary folder and moved into place only when complete; an existing `out` is replaced
        only if it is empty or an earlier simulation of the same lab.
    config : LabConfig, optional
        The lab (conditions, areas, regions, annotators, label, minimum object size); default the
        ``demo`` lab of the registry.
    seed : int
        Seed of every random draw: the same seed gives byte-identical files.
    effect : float
        Planted treatment effect: condition ``i`` of ``k`` multiplies density and brightness of
        cFOS-positive nuclei by ``1 + effect * i / (k - 1)``. 0 plants none.
    animal_sd : float
        Sd of the log density factor per animal (brightness: half of it). 0: no animal effect.
    n_animals : int
        Animals per condition.
    images_per_animal : int
        Images per animal in each area.
    size : int
        Image side in pixels (nuclei keep their size: a larger image is a larger field of view).
    progress : bool
        Show a rich progress bar.
    n_training : int
        Annotated images per condition x area stratum (every annotator's masks and est_GT); at
        most all of the stratum's images.
    predictions : bool
        Write the label sets of models and ensembles (most of the files); ``False`` writes the
        images, regions, annotators and est_GT only (quicker, for annotator-level checks).

    Returns
    -------
    Path
        `out`. The ground truth (planted factors, true counts per image and region, every
        labeller's biases) is in ``out/lab-<id>/simulation.json``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = simulate_study(pathlib.Path(tempfile.mkdtemp()) / "study", n_animals=1, size=64)
    >>> sorted(p.name for p in root.iterdir())  # the marker says cfosstats wrote the folder
    ['.cfosstats-output.json', 'image_mapping.xlsx', 'lab-demo']
    """
    config = config or load_lab_config("demo")
    _check_arguments(size, n_animals, images_per_animal, effect, animal_sd, n_training)
    out = Path(out)
    _check_target(out, config)
    specs = _design(config, seed, n_animals, images_per_animal, n_training)
    annotators = make_annotators(config, seed)
    models = make_models(annotators, seed) if predictions else {}
    plan = Plan(config, seed, effect, animal_sd, size, tuple(annotators), models)
    params = {
        "seed": seed,
        "effect": effect,
        "animal_sd": animal_sd,
        "n_animals": n_animals,
        "images_per_animal": images_per_animal,
        "size": size,
        "n_training": n_training,
        "predictions": predictions,
        "image_format": "tif, 8-bit",
    }
    with atomic_dir(out, "simulate") as tmp:
        lab = tmp / config.folder
        records = []
        for spec in _progress(specs, progress):
            result = simulate_image(plan, spec)
            _write_result(lab, config, spec, result)
            records.append(result.record)
        _write_mapping(tmp / MAPPING_FILE, config, specs)
        summary = _summary(plan, specs, records, params)
        (lab / SIMULATION_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return out
