"""The library's out-of-fold validation as tables, read from the model cards (no torch).

Each fold model's card holds its validation: per validation image, the model's object F1 against
the estimated ground truth and every annotator's (:func:`cfosstats.segment.selection.validate_model`).
:func:`card_folds` lays these out one row per model and validation image (the study's Table 1
layout: fold, validation image, model F1, worst and best annotator, passed), and
:func:`variant_summary` sums them per lab and variant (scratch, fine-tuned, frozen).

Examples
--------
>>> card = {"kind": "model", "lab": "x", "name": "x/consensus_model_1", "fold": 1,
...         "validation": [{"image_id": "a", "model_f1": 0.8, "worst_annotator": "e1",
...                         "worst_annotator_f1": 0.6, "passed": True, "f1_e1": 0.6, "f1_e2": 0.9}]}
>>> card_folds([card])[["fold", "image_id", "best_annotator", "passed"]].to_dict("records")
[{'fold': 1, 'image_id': 'a', 'best_annotator': 'e2', 'passed': True}]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

#: Columns of :func:`frozen_validation` and :func:`card_folds`: one row per fold and validation image.
FOLD_COLUMNS = (
    "lab",
    "variant",
    "model",
    "fold",
    "image_id",
    "model_f1",
    "worst_annotator",
    "worst_annotator_f1",
    "best_annotator",
    "best_annotator_f1",
    "passed",
)
#: Columns of :func:`variant_summary`: one row per lab and variant.
SUMMARY_COLUMNS = (
    "lab",
    "variant",
    "n_folds",
    "n_folds_passed",
    "n_images",
    "model_f1_median",
    "annotator_f1_median",
    "worst_annotator_f1_median",
    "best_annotator_f1_median",
)


def fold_rows(lab_name: str, variant: str, model: str, fold: int, table: pd.DataFrame) -> list[dict]:
    annotator_columns = [c for c in table.columns if c.startswith("f1_")]
    rows = []
    for record in table.to_dict("records"):
        scores = {c.removeprefix("f1_"): record[c] for c in annotator_columns if record[c] == record[c]}
        best = max(scores, key=scores.get) if scores else None
        rows.append(
            {
                "lab": lab_name,
                "variant": variant,
                "model": model,
                "fold": fold,
                "image_id": record["image_id"],
                "model_f1": record["model_f1"],
                "worst_annotator": record["worst_annotator"],
                "worst_annotator_f1": record["worst_annotator_f1"],
                "best_annotator": best,
                "best_annotator_f1": scores[best] if best else np.nan,
                "passed": bool(record["passed"]),
                **{f"f1_{name}": value for name, value in scores.items()},
            }
        )
    return rows


def fold_table(rows: list[dict]) -> pd.DataFrame:
    extra = sorted({k for r in rows for k in r} - set(FOLD_COLUMNS))
    return pd.DataFrame(rows, columns=[*FOLD_COLUMNS, *extra])


def card_folds(cards: Iterable[dict], variant: str | None = None) -> pd.DataFrame:
    """The fold table of trained models, from their cards' validation records.

    Parameters
    ----------
    cards : iterable of dict
        Fold model cards (ensemble cards are skipped).
    variant : str, optional
        Written into ``variant``; default each card's ``initialization``.

    Returns
    -------
    DataFrame
        :data:`FOLD_COLUMNS` plus one ``f1_<annotator>`` column per annotator.
    """
    rows = []
    for card in cards:
        if card.get("kind") == "ensemble" or "validation" not in card:
            continue
        table = pd.DataFrame(card["validation"])
        name = variant or card.get("initialization", "scratch")
        rows += fold_rows(card["lab"], name, card["name"], int(card.get("fold") or 1), table)
    return fold_table(rows)


def variant_summary(folds: pd.DataFrame) -> pd.DataFrame:
    """Per lab and variant: folds passed (every validation image of the fold passed) and median
    out-of-fold F1 of the models against the annotators' on the same images.

    ``model_f1_median`` is over the validation images, each predicted by the one fold model that
    never trained on it (the cross-validated F1 of the ensemble's members); the annotators'
    median is over the same images and all their annotators.

    Examples
    --------
    >>> folds = pd.DataFrame({"lab": "x", "variant": "scratch", "model": ["m1", "m2"],
    ...     "fold": [1, 2], "image_id": ["a", "b"], "model_f1": [0.8, 0.6],
    ...     "worst_annotator_f1": [0.5, 0.7], "best_annotator_f1": [0.9, 0.9],
    ...     "passed": [True, False], "f1_e1": [0.5, 0.7], "f1_e2": [0.9, 0.9]})
    >>> summary = variant_summary(folds)
    >>> summary[["n_folds_passed", "model_f1_median", "annotator_f1_median"]].to_dict("records")
    [{'n_folds_passed': 1, 'model_f1_median': 0.7, 'annotator_f1_median': 0.8}]
    """
    rows = []
    annotators = [c for c in folds.columns if c.startswith("f1_")]
    for (lab, variant), group in folds.groupby(["lab", "variant"], sort=False):
        by_fold = group.groupby("fold")["passed"].all()
        values = group[annotators].to_numpy(float).ravel()
        rows.append(
            {
                "lab": lab,
                "variant": variant,
                "n_folds": int(by_fold.size),
                "n_folds_passed": int(by_fold.sum()),
                "n_images": int(len(group)),
                "model_f1_median": float(group["model_f1"].median()),
                "annotator_f1_median": float(np.nanmedian(values)) if values.size else np.nan,
                "worst_annotator_f1_median": float(group["worst_annotator_f1"].median()),
                "best_annotator_f1_median": float(group["best_annotator_f1"].median()),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
