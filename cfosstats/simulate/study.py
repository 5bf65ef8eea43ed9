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

Label sets written (all under ``labels/scratch/``), by default: ``expert_models/<annotator>/unet_1..2``,
``consensus_models/consensus/unet_1..4``, ``consensus_ensembles/ensemble_1..2/unet_1..3`` and
``.../ensemble`` (each count is an argument of :func:`simulate_study`). Random numbers come from
``numpy.random.Generator(PCG64)`` seeded by ``SeedSequence(seed, spawn_key=...)`` keyed by *what*
they are for (an animal, an image, a labeller), so adding animals leaves existing animals, their
images and the labellers unchanged (only the blinded ids and the training draw change), and
adding models leaves the other models' masks unchanged. Images are simulated in parallel
(``jobs``), one image per task; the files do not depend on the number of workers.

One job per module: :mod:`~cfosstats.simulate.design` (the design and random streams),
:mod:`~cfosstats.simulate.scene` (tissue, nuclei, pixels), :mod:`~cfosstats.simulate.annotators`
(annotators and models), :mod:`~cfosstats.simulate.image` (one image end to end),
:mod:`~cfosstats.simulate.writer` (the files); this module is the entry point,
:func:`simulate_study`.
"""

from __future__ import annotations

import json
from pathlib import Path

from cfosstats.core.atomic import atomic_dir
from cfosstats.core.errors import InputError
from cfosstats.core.outputs import MARKER
from cfosstats.core.parallel import map_tasks
from cfosstats.datasets.layout import MAPPING_FILE
from cfosstats.datasets.registry import LabConfig, load_lab_config
from cfosstats.simulate.annotators import make_annotators, make_models
from cfosstats.simulate.design import (
    MEMBERS_PER_ENSEMBLE,
    N_CONSENSUS_MODELS,
    N_ENSEMBLES,
    UNETS_PER_EXPERT,
    ImageSpec,
    _design,
)
from cfosstats.simulate.image import Plan, simulate_image
from cfosstats.simulate.writer import _summary, _write_mapping, _write_result

SIMULATION_FILE = "simulation.json"
DEFAULT_COUNTS = {
    "expert_models": UNETS_PER_EXPERT,
    "consensus_models": N_CONSENSUS_MODELS,
    "ensembles": N_ENSEMBLES,
    "ensemble_members": MEMBERS_PER_ENSEMBLE,
}

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
    if entries and not (earlier and entries <= {MAPPING_FILE, config.folder, MARKER}):
        raise InputError(out, "is not empty and not a simulated study; refusing to replace it")


def _check_counts(counts: dict[str, int], jobs: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if counts["ensembles"] and counts["ensemble_members"] < 2:
        raise ValueError(f"an ensemble averages at least 2 members, got {counts['ensemble_members']}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")


def _simulate_and_write(plan: Plan, spec: ImageSpec, lab: Path) -> dict:
    """One image simulated and written (in a worker process): only its small record travels back."""
    result = simulate_image(plan, spec)
    _write_result(lab, plan.config, spec, result)
    return result.record


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
    expert_models: int = UNETS_PER_EXPERT,
    consensus_models: int = N_CONSENSUS_MODELS,
    ensembles: int = N_ENSEMBLES,
    ensemble_members: int = MEMBERS_PER_ENSEMBLE,
    jobs: int = 1,
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
    expert_models : int
        Models per annotator (``expert_models/<annotator>/unet_1..``).
    consensus_models : int
        Single models trained on est_GT (``consensus_models/consensus/unet_1..``).
    ensembles : int
        Consensus ensembles (``consensus_ensembles/ensemble_1..``, each with its ``ensemble``).
    ensemble_members : int
        Members per ensemble (at least 2; each is a label set too, ``ensemble_<e>/unet_1..``).
        Models are keyed by their folder: more models leave the existing ones' masks unchanged.
    jobs : int
        Worker processes, one image per task; the files do not depend on it.

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
    counts = {
        "expert_models": expert_models,
        "consensus_models": consensus_models,
        "ensembles": ensembles,
        "ensemble_members": ensemble_members,
    }
    _check_counts(counts, jobs)
    out = Path(out)
    _check_target(out, config)
    specs = _design(config, seed, n_animals, images_per_animal, n_training)
    annotators = make_annotators(config, seed)
    models = make_models(annotators, seed, **counts) if predictions else {}
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
    if counts != DEFAULT_COUNTS:  # recorded when chosen; default studies keep their bytes
        params["label_sets"] = counts
    with atomic_dir(out, "simulate") as tmp:
        lab = tmp / config.folder
        tasks = [(plan, spec, lab) for spec in specs]
        records = list(map_tasks(_simulate_and_write, tasks, jobs, progress, "simulating images"))
        _write_mapping(tmp / MAPPING_FILE, config, specs)
        summary = _summary(plan, specs, records, params)
        (lab / SIMULATION_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return out
