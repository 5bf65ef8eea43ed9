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

from cfosstats.core.resources import data_dir
from cfosstats.datasets.predictions import predicted_label_sources
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
    for path, card in cards:
        weights = path.with_suffix(".pt")
        if card.get("kind") != "ensemble" and weights.is_file():
            files.append(weights)

    def compute(folder: Path) -> None:
        from cfosstats.segment.pipeline import predict_lab  # lazy: torch, 2 s to import

        for replicate, (path, _card) in enumerate(plan, 1):
            predict_lab(lab, path, folder, replicate=replicate, progress=False)

    try:
        folder = runner.run(
            "predictions",
            files,
            {"models": [c.get("name") for _, c in plan], "settings": Settings().resolved().as_dict()},
            compute,
            description=f"predictions: {len(plan)} model(s) of the library on {len(lab.image_ids)} images",
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
