"""One simulated image, end to end: its planted factors, scene, pixels, every labeller's mask
and its ground-truth record; a pure function of the study plan and the image's place in it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cfosstats.datasets.layout import ESTIMATED_GT
from cfosstats.datasets.registry import LabConfig
from cfosstats.objects.groundtruth import staple
from cfosstats.simulate.annotators import Labeller, _decide, _foreground, _hard_mask
from cfosstats.simulate.design import ImageSpec, _areas, _regions_of, _rng, condition_factor
from cfosstats.simulate.scene import (
    AREA_DENSITY,
    BACKGROUND,
    BASE_DENSITY,
    IMAGE_SD,
    Scene,
    _band,
    _geometry,
    _place_nuclei,
    _regions,
    _render,
    _truth,
)

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
    decisions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for members in plan.models.values():
        for member in members:
            if member.name not in decisions:
                rng = _rng(plan.seed, "labels", *spec.key, member.name)
                decisions[member.name] = _decide(rng, scene.nuclei, member)
    pixels: dict[str, np.ndarray] = {}
    # Ensembles first: their members' own masks come from the same maps.
    for folder, members in sorted(plan.models.items(), key=lambda item: len(item[1]) == 1):
        if folder not in pixels:
            mean, own = _foreground(scene, [decisions[m.name] for m in members])
            pixels[folder] = mean
            for member, member_pixels in zip(members, own, strict=True):
                pixels.setdefault(member.name, member_pixels)
    return {folder: scene.to_mask_at(pixels[folder]) for folder in plan.models}


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
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> from cfosstats.simulate.design import _design
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
