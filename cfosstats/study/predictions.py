"""The ``predictions`` step: every model of the library's lab predicts every image.

Where the model library holds models of the lab (``data/models/<lab>/``), every ensemble and
every single model that is no ensemble's member predicts every image
(:func:`cfosstats.segment.pipeline.predict_lab`: masks and uncertainty maps); the predictions
join the lab's label sources (:func:`cfosstats.study.runner.analysed_lab`).

Examples
--------
>>> cards = [(Path("e.json"), {"name": "e", "kind": "ensemble", "members": ["m1"]}),
...     (Path("m1.json"), {"name": "m1"}), (Path("m2.json"), {"name": "m2"})]
>>> [card["name"] for _, card in prediction_plan(cards)]
['e', 'm2']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cfosstats.core.atomic import write_csv
from cfosstats.core.resources import data_dir
from cfosstats.datasets.predictions import predicted_label_sources
from cfosstats.stats.fold_tables import card_folds, variant_summary
from cfosstats.study.inputs import image_files
from cfosstats.study.runner import Runner, read_json


def library_cards(lab_name: str, library: Path | None = None) -> list[tuple[Path, dict]]:
    """Model cards of a lab in the model library: (card path, card), read without torch."""
    if library is None:
        library = data_dir() / "models"
    folder = Path(library) / lab_name
    if not folder.is_dir():
        return []
    cards = []
    for path in sorted(folder.glob("*.json")):
        card = read_json(path)
        if card.get("name"):
            cards.append((path, card))
    return cards


def prediction_plan(cards: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """Ensembles, plus single models that are no ensemble's member."""
    members = {m for _, c in cards if c.get("kind") == "ensemble" for m in c.get("members", [])}
    ensembles = [(p, c) for p, c in cards if c.get("kind") == "ensemble"]
    singles = [(p, c) for p, c in cards if c.get("kind") != "ensemble" and c.get("name") not in members]
    return ensembles + singles


def prediction_images(card: dict, image_ids: list[str]) -> list[str]:
    """The images a library model predicts: every image, except for a reliability replicate
    (``replicate`` > 1 with held-out test images), which predicts only its test images.

    Replicates exist to measure how much another training run changes the result, which the study
    measured on the test images (its Figure 3); predicting every image with them would multiply
    the report's prediction time for no table that uses them.

    Examples
    --------
    >>> prediction_images({"replicate": 2, "test_images": ["b"]}, ["a", "b"])
    ['b']
    >>> prediction_images({"replicate": 1, "test_images": ["b"]}, ["a", "b"])
    ['a', 'b']
    """
    test = set(card.get("test_images") or [])
    if int(card.get("replicate") or 1) > 1 and test & set(image_ids):
        return [i for i in image_ids if i in test]
    return list(image_ids)


def library_folds(cards: list[tuple[Path, dict]]) -> pd.DataFrame:
    """Every fold model's out-of-fold validation (:func:`cfosstats.stats.fold_tables.card_folds`),
    one row per model and validation image, with ``variant`` the ensemble that judged it (its
    member or rejected) or, for a model in no ensemble, its own name, and ``verdict``.

    Examples
    --------
    >>> folds = library_folds([(Path("e.json"), {"kind": "ensemble", "name": "x/e",
    ...     "selection": {"members": {"x/m1": "selected", "x/m2": "rejected"}}}),
    ...     (Path("m2.json"), {"kind": "model", "lab": "x", "name": "x/m2", "fold": 2,
    ...      "validation": [{"image_id": "b", "model_f1": 0.4, "worst_annotator": "e1",
    ...                      "worst_annotator_f1": 0.6, "passed": False, "f1_e1": 0.6}]})])
    >>> folds[["variant", "model", "verdict", "passed"]].to_dict("records")
    [{'variant': 'e', 'model': 'm2', 'verdict': 'rejected', 'passed': False}]
    """
    judged = {}
    for _, card in cards:
        if card.get("kind") == "ensemble":
            for member, verdict in (card.get("selection") or {}).get("members", {}).items():
                judged.setdefault(member, (card["name"], verdict))
    tables = []
    for _, card in cards:
        if card.get("kind") == "ensemble" or "validation" not in card:
            continue
        ensemble, verdict = judged.get(
            card["name"], (card["name"], (card.get("selection") or {}).get("verdict", ""))
        )
        table = card_folds([card], variant=ensemble.split("/")[-1])
        table["model"] = table["model"].str.split("/").str[-1]
        table.insert(4, "verdict", verdict)
        table.insert(4, "initialization", card.get("initialization", "scratch"))
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else card_folds([])


def write_library_tables(folder: Path, cards: list[tuple[Path, dict]], variants: Path | None) -> None:
    """``library_folds.csv`` and ``library_variants.csv`` (its :func:`variant_summary` per
    ensemble, plus the variants the library's training compared, from its ``folds.csv``)."""
    folds = library_folds(cards)
    write_csv(folder / "library_folds.csv", folds)
    summary = variant_summary(folds).assign(record="shipped library")
    if variants is not None:
        trained = pd.read_csv(variants, dtype={"image_id": str})
        summary = pd.concat(
            [summary, variant_summary(trained).assign(record="variants compared in training")],
            ignore_index=True,
        )
    write_csv(folder / "library_variants.csv", summary)


def predictions_step(runner: Runner) -> None:
    """The ``predictions`` step, skipped with the reason where the library has no models of the lab."""
    results = runner.results
    lab = results.lab
    params = results.parameters
    if not params.get("predict", True):
        runner.skip("predictions", "model predictions not requested (--no-predict)")
        return
    cards = library_cards(lab.config.name, params.get("library"))
    if not cards:
        runner.skip(
            "predictions",
            f"no models: the model library holds no models of lab {lab.config.name}, so no pretrained "
            "predictions are available for this lab",
        )
        return
    from cfosstats.segment.predict import Settings  # lazy: torch, 2 s to import

    plan = prediction_plan(cards)
    results.model_cards = [card for _, card in cards]
    files = image_files(lab) + [p for p, _ in cards]
    variants = cards[0][0].parent / "folds.csv"  # the variants compared when the library was built
    if variants.is_file():
        files.append(variants)
    else:
        variants = None
    for path, card in cards:
        weights = path.with_suffix(".pt")
        if card.get("kind") != "ensemble" and weights.is_file():
            files.append(weights)

    def compute(folder: Path) -> None:
        from cfosstats.segment.pipeline import predict_lab  # lazy: torch, 2 s to import

        for replicate, (path, card) in enumerate(plan, 1):
            images = prediction_images(card, lab.image_ids)
            predict_lab(lab, path, folder, image_ids=images, replicate=replicate, progress=False)
        write_library_tables(folder, cards, variants)

    try:
        folder = runner.run(
            "predictions",
            files,
            {"models": [c.get("name") for _, c in plan], "settings": Settings().resolved().as_dict()},
            compute,
            version=2,  # 2: library_folds.csv, library_variants.csv; replicates predict their test images
            description=f"predictions: {len(plan)} model(s) of the library on up to {len(lab.image_ids)} "
            "images",
        )
    except (RuntimeError, OSError) as exc:
        runner.cache.forget("predictions")
        runner.skip("predictions", f"the library's models could not predict ({type(exc).__name__}: {exc})")
        return
    results.prediction_root = folder
    results.predicted = predicted_label_sources(lab, folder, prefix="library")
    uncertainty = {}
    for csv in sorted((folder / lab.config.folder / "uncertainty").glob("*/*/*/*/uncertainty.csv")):
        name = "library/" + "/".join(csv.parent.relative_to(folder / lab.config.folder / "uncertainty").parts)
        table = pd.read_csv(csv, dtype={"image_id": str})
        table.insert(0, "source", name)
        uncertainty[name] = table
    if uncertainty:
        results.tables["predictions"]["uncertainty"] = pd.concat(uncertainty.values(), ignore_index=True)
