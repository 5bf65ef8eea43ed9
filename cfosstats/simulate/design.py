"""The simulated study's design: random streams keyed by purpose, the images of the study
(conditions, animals, areas, experiments, blinded ids, the annotated training subset) and the
planted condition effect."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from cfosstats.datasets.registry import LabConfig

INITIALIZATION = "scratch"

# --- design ------------------------------------------------------------------------------------
N_EXPERIMENTS = 2
UNETS_PER_EXPERT = 2
N_CONSENSUS_MODELS = 4
N_ENSEMBLES = 2
MEMBERS_PER_ENSEMBLE = 3


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
