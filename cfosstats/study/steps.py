"""The analysis steps of a report, in order, each cached by the checksums of its inputs.

The steps, each under ``<out>/<lab>/tables/<step>/``:

``objectivity``
    :func:`cfosstats.analyses.objectivity.run_agreement` (annotator agreement, counts, Bland-Altman).
``groundtruth``
    :func:`cfosstats.analyses.objectivity.estimate_groundtruth` with STAPLE: per-annotator sensitivity
    and specificity, and the STAPLE masks used where no ``est_GT`` is published.
``predictions``
    The model library's predictions (:mod:`cfosstats.study.predictions`).
``models``
    Each predicted label set's object F1 against the estimated ground truth per annotated
    image, placed in the annotators' range (:mod:`cfosstats.analyses.models`).
``ensemble_size``
    Ensembles of 1..n library fold models on the held-out test images
    (:mod:`cfosstats.study.ensemble_size`).
``effects``
    :func:`cfosstats.analyses.validity.run_effects`: quantification, outliers, effects, reproducibility,
    variation, consistency (over the label sets that cover every image: :func:`effects_lab`).

Then ``tables/inputs.csv`` (every input file's SHA-256). What a step cannot do (no annotators,
no groups, no models) is recorded in its :class:`~cfosstats.study.runner.StepRecord`.

Examples
--------
>>> from cfosstats.datasets import load_lab  # doctest: +SKIP
>>> results = Results(load_lab("demo"), Path("reports/demo"), parameters)  # doctest: +SKIP
>>> run_steps(results, progress=False).results.steps["effects"].status  # doctest: +SKIP
'computed'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cfosstats.analyses import objectivity, validity
from cfosstats.analyses.models import (
    PAIR_COLUMNS,
    model_f1_of_image,
    model_summary,
    strategy_agreement_of_image,
    within_strategy_summary,
)
from cfosstats.core.atomic import write_csv
from cfosstats.core.errors import InputError, NothingToAnalyse
from cfosstats.core.parallel import map_tasks
from cfosstats.datasets.layout import ESTIMATED_GT
from cfosstats.datasets.predictions import lab_training_images
from cfosstats.stats.agreement import place_in_expert_range
from cfosstats.stats.fleiss import KAPPA_COLUMNS, kappa_by_strategy
from cfosstats.study.ensemble_size import ensemble_size_step
from cfosstats.study.inputs import files_of, image_files, metadata_digest, write_inputs
from cfosstats.study.predictions import predictions_step
from cfosstats.study.runner import Progress, Results, Runner, analysed_lab


def objectivity_steps(runner: Runner) -> None:
    """The ``objectivity`` and ``groundtruth`` steps (both skipped without annotators)."""
    results = runner.results
    lab = results.lab
    if not lab.annotators:
        runner.skip("objectivity", "no annotators: the data holds no annotators' masks to compare")
        runner.skip("groundtruth", "no annotators: no ground truth can be estimated")
        return
    params = results.parameters
    annotated = lab.annotated_image_ids()
    files = (
        files_of(lab, strategies=("annotators", "estimated_gt"))
        + [Path(p) for i, p in sorted(lab.ignore_files.items()) if i in set(annotated)]
        + image_files(lab, annotated)
    )
    runner.run(
        "objectivity",
        files,
        {"threshold": params["threshold"], "criterion": params["criterion"]},
        lambda folder: objectivity.run_agreement(
            lab,
            folder,
            threshold=params["threshold"],
            jobs=params["jobs"],
            criterion=params["criterion"],
            progress=False,
        ),
        description=f"objectivity: agreement of {len(lab.annotators)} annotators on {len(annotated)} images",
        version=2,  # 2: fleiss_kappa.csv
    )
    runner.run(
        "groundtruth",
        files_of(lab, strategies=("annotators",)) + image_files(lab, annotated),
        {"method": "staple"},
        lambda folder: objectivity.estimate_groundtruth(
            lab, folder, method="staple", jobs=params["jobs"], progress=False
        ),
        description=f"groundtruth: STAPLE of {len(lab.annotators)} annotators on {len(annotated)} images",
    )


def reference_paths(results: Results) -> dict[str, Path]:
    """image id -> its estimated ground truth mask (published, else this run's STAPLE)."""
    lab = results.lab
    out: dict[str, Path] = {}
    if lab.has_published_gt:
        out.update({i: Path(p) for i, p in lab.label_sources[ESTIMATED_GT].files.items()})
    gt_folder = results.folder / "tables" / "groundtruth"
    if results.skipped("groundtruth") is None:
        for image_id in lab.annotated_image_ids():
            if image_id not in out:
                path = gt_folder / f"{image_id}_{lab.config.label}.png"
                if path.is_file():
                    out[image_id] = path
    return out


def models_step(runner: Runner) -> None:
    """The ``models`` step: every predicted label set against the annotators' range."""
    results = runner.results
    lab = analysed_lab(results)
    params = results.parameters
    predicted = {n: s for n, s in lab.label_sources.items() if s.is_prediction}
    if not predicted:
        runner.skip(
            "models",
            "no models: the data holds no predicted label sets and the library no models of "
            f"lab {lab.config.name}",
        )
        return
    if results.skipped("objectivity") is not None:
        runner.skip("models", "no annotators: models cannot be placed in the annotators' range")
        return
    references = reference_paths(results)
    images = [i for i in lab.annotated_image_ids() if i in references]
    if not images:
        runner.skip("models", "no annotated image has an estimated ground truth")
        return
    tasks = []
    files: list[Path] = []
    for image_id in images:
        sources = {
            n: (s.strategy, Path(s.files[image_id])) for n, s in predicted.items() if image_id in s.files
        }
        if not sources:
            continue
        ignore = lab.ignore_files.get(image_id)
        tasks.append(
            (
                image_id,
                sources,
                references[image_id],
                None if ignore is None else Path(ignore),
                int(lab.config.min_object_size),
                params["threshold"],
                params["criterion"],
            )
        )
        files += (
            [p for _, p in sources.values()] + [references[image_id]] + ([Path(ignore)] if ignore else [])
        )
    if not tasks:
        runner.skip("models", "no predicted label set covers an annotated image")
        return
    in_sample = in_sample_images(results, lab)

    def compute(folder: Path) -> None:
        rows: list[dict] = []
        for part in _map(model_f1_of_image, tasks, params["jobs"]):
            rows += part
        table = pd.DataFrame(rows)
        table["in_sample"] = [
            i in in_sample.get(s, set()) for i, s in zip(table["image_id"], table["source"])
        ]
        ranges = results.table("objectivity", "expert_range")
        if ranges is not None and not ranges.empty:
            table = place_in_expert_range(table, ranges[ranges["image_id"].isin(table["image_id"])])
            table = table[table["image_id"].isin(ranges["image_id"])]
        else:
            table["f1_min"], table["f1_max"], table["placement"] = float("nan"), float("nan"), "undefined"
        write_csv(folder / "model_f1.csv", table)
        write_csv(folder / "model_summary.csv", model_summary(table))
        write_within_strategy(folder, results, lab, predicted, in_sample, images, params)

    runner.run(
        "models",
        files,
        {
            "threshold": params["threshold"],
            "criterion": params["criterion"],
            "in_sample": {k: sorted(v) for k, v in in_sample.items()},
        },
        compute,
        version=6,  # 3: Fleiss' kappa, agreement within strategies; 4: replicate pairs; 5-6: fold recipes
        description=f"models: F1 of {len(predicted)} predicted label sets on {len(tasks)} annotated images",
    )


# Agreement within a strategy compares single consensus models whether or not an ensemble took
# them (the study's "consensus models": every training run on the estimated ground truth).
COMPARED_AS = {"ensemble_members": "consensus_models"}


def strategy_images(
    predicted: dict, in_sample: dict[str, set[str]], images: list[str]
) -> dict[str, tuple[str, dict[str, object], list[str]]]:
    """Per strategy (ensemble members counted as consensus models: :data:`COMPARED_AS`) with two
    or more label sets: which images its sets are compared on (the ones
    none of them trained on, ``held out``; where there are none, ``all`` images), its sets and
    those images (each covered by every set)."""
    by_strategy: dict[str, dict[str, object]] = {}
    for name, source in predicted.items():
        by_strategy.setdefault(COMPARED_AS.get(source.strategy, source.strategy), {})[name] = source
    chosen = {}
    for strategy, sources in sorted(by_strategy.items()):
        if len(sources) < 2:
            continue
        covered = [i for i in images if all(i in s.files for s in sources.values())]
        held_out = [i for i in covered if not any(i in in_sample.get(n, set()) for n in sources)]
        kind, used = ("held out", held_out) if held_out else ("all", covered)
        if used:
            chosen[strategy] = (kind, sources, used)
    return chosen


def write_within_strategy(folder: Path, results: Results, lab, predicted, in_sample, images, params) -> None:
    """``fleiss_kappa.csv`` (annotators and every model strategy), ``within_strategy.csv`` and
    ``within_strategy_pairs.csv`` of the models step."""
    chosen = strategy_images(predicted, in_sample, images)
    tasks = []
    for image_id in images:
        groups = {
            strategy: {n: Path(s.files[image_id]) for n, s in sources.items()}
            for strategy, (_kind, sources, used) in chosen.items()
            if image_id in used
        }
        if groups:
            ignore = lab.ignore_files.get(image_id)
            ignore_path = None if ignore is None else Path(ignore)
            rules = (int(lab.config.min_object_size), params["threshold"], params["criterion"])
            tasks.append((image_id, groups, ignore_path, *rules))
    parts = list(_map(strategy_agreement_of_image, tasks, params["jobs"]))
    items = pd.concat([p[0] for p in parts], ignore_index=True) if parts else pd.DataFrame()
    pairs = (
        pd.concat([p[1] for p in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(PAIR_COLUMNS))
    )
    kappa = kappa_by_strategy(items) if not items.empty else pd.DataFrame(columns=list(KAPPA_COLUMNS))
    kinds = {strategy: kind for strategy, (kind, _s, _u) in chosen.items()}
    kappa.insert(1, "images", kappa["strategy"].map(kinds))
    annotators = results.table("objectivity", "fleiss_kappa")
    if annotators is not None and not annotators.empty:
        kappa = pd.concat([annotators.assign(images="annotated")[kappa.columns], kappa], ignore_index=True)
    write_csv(folder / "fleiss_kappa.csv", kappa)
    write_csv(folder / "within_strategy.csv", within_strategy_summary(pairs, kinds))
    write_csv(folder / "within_strategy_pairs.csv", pairs)


def _map(function: Callable, tasks: list[tuple], jobs: int):
    """`function(*task)` for every task, in order; worker processes when `jobs` > 1."""
    return map_tasks(function, tasks, jobs, False, "models")


def in_sample_images(results: Results, lab) -> dict[str, set[str]]:
    """Predicted label source -> images its model was trained on (where known)."""
    return lab_training_images(lab, results.prediction_root, prefix="library")


def partial_predictions(results: Results) -> list[str]:
    """The library's label sets that predict only some of the lab's images (reliability
    replicates: :func:`cfosstats.study.predictions.prediction_images`)."""
    n_images = len(results.lab.image_ids)
    return sorted(n for n, s in (results.predicted or {}).items() if len(s.files) < n_images)


def effects_lab(results: Results):
    """The lab the effect tests compare: its own label sets and the library's predictions of
    every image (a set that covers a few images would test each effect on those few)."""
    lab = analysed_lab(results)
    partial = set(partial_predictions(results))
    if not partial:
        return lab
    return dataclasses.replace(
        lab, label_sources={n: s for n, s in lab.label_sources.items() if n not in partial}
    )


def effects_step(runner: Runner) -> None:
    """The ``effects`` step; skipped (with the reason) where the data has nothing to compare."""
    results = runner.results
    params = results.parameters
    lab = effects_lab(results)
    files = image_files(lab) + files_of(lab, strategies=None, names=list(lab.label_sources))
    for region in lab.region_files.values():
        files += [Path(p) for _, p in sorted(region.items())]
    files += [Path(p) for _, p in sorted(lab.ignore_files.items())]
    training: dict[str, set[str]] = {}
    if results.prediction_root is not None:
        training = {k: v for k, v in in_sample_images(results, lab).items() if k.startswith("library/")}
    try:
        runner.run(
            "effects",
            files,
            {
                "alpha": params["alpha"],
                "exclude": sorted(params["exclude"]),
                "metadata": metadata_digest(lab),
                "threshold": params["threshold"],
                "training_images": {k: sorted(v) for k, v in training.items()},
            },
            lambda folder: validity.run_effects(
                lab,
                folder,
                alpha=params["alpha"],
                exclude=params["exclude"],
                jobs=params["jobs"],
                progress=False,
                threshold=params["threshold"],
                training_images=training or None,
            ),
            version=2,  # 2: out-of-fold sources carry their members' prefix (library/...)
            description=f"effects: {len(lab.label_sources)} label sets x {len(lab.image_ids)} images "
            "(quantification, tests, reproducibility)",
        )
    except NothingToAnalyse as exc:
        # A property of the data (no conditions): the report says so and goes on.
        runner.cache.forget("effects")
        runner.skip("effects", exc.message if exc.path is None else f"{exc.message} ({exc.path})")
    except InputError:
        # Bad input is never a "skipped" step: the command ends with the one-line error.
        runner.cache.forget("effects")
        raise


def run_steps(results: Results, progress: bool | Progress = False) -> Runner:
    """Run or load every analysis step of a lab, in order, then write ``tables/inputs.csv``.

    Parameters
    ----------
    results : Results
        The lab, the output folder (``<out>/<lab>/``) and the parameters (``threshold``,
        ``criterion``, ``alpha``, ``exclude``, ``jobs``, ``predict``, ``library``); filled in place
        with every step's tables, ``run.json`` and record.
    progress : bool or Progress, default False
        Print one line per step (and a spinner while it runs) on stderr.

    Returns
    -------
    Runner
        The runner, whose cache (``tables/manifest.json``) later steps (the report) add to.
    """
    runner = Runner(results, progress if isinstance(progress, Progress) else Progress(progress))
    objectivity_steps(runner)
    predictions_step(runner)
    models_step(runner)
    ensemble_size_step(runner)
    effects_step(runner)
    write_inputs(runner)
    return runner


__all__ = ["effects_step", "models_step", "objectivity_steps", "reference_paths", "run_steps"]
