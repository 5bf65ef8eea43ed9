"""The ``ensemble_size`` step: how the spread of an ensemble's F1 shrinks with its size.

Where the library holds at least :data:`MIN_MODELS` consensus fold models that share held-out
test images (lab-wue1: the fold models of its replicate ensembles, all trained on one split),
ensembles of 1..n of them are drawn repeatedly and scored against the estimated ground truth
on those test images (:func:`cfosstats.segment.ensemble_size.ensemble_size_scores`); the SD of
their F1 per size is fitted with ``a / sqrt(i)``
(:func:`cfosstats.stats.ensemble_size.ensemble_size_summary`).
The pool is every consensus fold model, rejected ones included: the question is how much one
training run's luck matters, and a rejected model is one such run.

Tables (under ``tables/ensemble_size/``):

``ensemble_size_scores.csv``
    One row per drawn ensemble: ``size, ensemble, f1`` (mean F1 over the test images).
``ensemble_size.csv``
    Per size: ``size, n_ensembles, f1_mean, f1_sd, fitted_sd``.
``ensemble_size_fit.csv``
    One row: ``a`` (fitted), ``study_a`` (0.096, the study's), ``n_models``, ``n_images``,
    ``n_draws``, ``seed``, ``models`` and ``images`` (joined by spaces).

Examples
--------
>>> cards = [(Path(f"m{i}.json"), {"name": f"x/m{i}", "kind": "model", "strategy": "consensus",
...     "test_images": ["a", "b"]}) for i in range(3)]
>>> [card["name"] for _, card in ensemble_pool(cards)[0]], ensemble_pool(cards)[1]
(['x/m0', 'x/m1', 'x/m2'], ['a', 'b'])
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from cfosstats.core.atomic import write_csv
from cfosstats.study.inputs import image_files
from cfosstats.study.predictions import library_cards
from cfosstats.study.runner import Runner

MIN_MODELS = 3
STUDY_A = 0.096  # the study's fit of SD = a / sqrt(i) (Segebarth et al. 2020, Figure 3)
N_DRAWS = 20
SEED = 0


def ensemble_pool(cards: list[tuple[Path, dict]]) -> tuple[list[tuple[Path, dict]], list[str]]:
    """The consensus fold models that share the most common set of test images, and those images."""
    singles = [
        (p, c)
        for p, c in cards
        if c.get("kind") != "ensemble" and c.get("strategy") == "consensus" and c.get("test_images")
    ]
    if not singles:
        return [], []
    common, _ = Counter(tuple(c["test_images"]) for _, c in singles).most_common(1)[0]
    return [(p, c) for p, c in singles if tuple(c["test_images"]) == common], list(common)


def ensemble_size_step(runner: Runner) -> None:
    """The ``ensemble_size`` step, skipped with the reason where the library cannot support it."""
    results = runner.results
    lab = results.lab
    params = results.parameters
    if results.skipped("predictions") is not None:
        runner.skip("ensemble_size", f"no predictions: {results.skipped('predictions')}")
        return
    pool, images = ensemble_pool(library_cards(lab.config.name, params.get("library")))
    known = set(lab.image_ids)
    images = [i for i in images if i in known]
    if len(pool) < MIN_MODELS or not images:
        runner.skip(
            "ensemble_size",
            f"the library holds {len(pool)} consensus fold model(s) of lab {lab.config.name} with held-out "
            f"test images (needs {MIN_MODELS}): with every image cross-validated, no image is unseen by "
            "all of an ensemble's members",
        )
        return
    from cfosstats.segment.predict import Settings  # lazy: torch

    files = [p for p, _ in pool] + [p.with_suffix(".pt") for p, _ in pool] + image_files(lab, images)
    files += [Path(lab.ignore_files[i]) for i in images if i in lab.ignore_files]
    for source in lab.label_sources.values():
        if source.strategy in ("estimated_gt", "annotators"):  # the reference, or STAPLE of them
            files += [Path(source.files[i]) for i in images if i in source.files]

    def compute(folder: Path) -> None:
        from cfosstats.segment.ensemble_size import ensemble_size_scores  # lazy: torch
        from cfosstats.segment.library import load_model
        from cfosstats.stats.ensemble_size import ensemble_size_summary

        modules = {c["name"].split("/")[-1]: load_model(p).module for p, c in pool}
        scores = ensemble_size_scores(modules, lab, images, n_draws=N_DRAWS, seed=SEED)
        summary, a = ensemble_size_summary(scores)
        write_csv(folder / "ensemble_size_scores.csv", scores)
        write_csv(folder / "ensemble_size.csv", summary)
        fit = {
            "a": a,
            "study_a": STUDY_A,
            "n_models": len(modules),
            "n_images": len(images),
            "n_draws": N_DRAWS,
            "seed": SEED,
            "models": " ".join(modules),
            "images": " ".join(images),
        }
        write_csv(folder / "ensemble_size_fit.csv", pd.DataFrame([fit]))

    runner.run(
        "ensemble_size",
        files,
        {
            "n_draws": N_DRAWS,
            "seed": SEED,
            "models": [c["name"] for _, c in pool],
            "images": images,
            "settings": Settings().resolved().as_dict(),
        },
        compute,
        description=f"ensemble_size: ensembles of 1..{len(pool)} consensus models on "
        f"{len(images)} test images",
    )
