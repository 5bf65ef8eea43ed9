"""Transfer between labs, judged as the study did: per fold, the model's F1 on its out-of-fold
validation image(s) against the worst and best annotator's (the selection rule).

Three variants (the study's Table 1, Figure 5): ``scratch`` and ``fine-tuned`` models are trained
by :func:`cfosstats.segment.pipeline.train_lab` (with ``init`` for fine-tuning) and their cards
hold the validation; ``frozen`` is a library model applied unchanged to another lab, evaluated
here with the same split and the same rule, without any training (:func:`frozen_validation`).

Normalisation of a frozen model: by default (``"lab"``) its input mean and standard deviation
are replaced by those of the fold's training images of the *new* lab, exactly the statistics a
fine-tuned model of that fold starts from; only the weights then differ between frozen and
fine-tuned. ``"model"`` keeps the statistics the model was trained with (the new lab's images
may then be far brighter or dimmer than anything it saw: lab-inns2's mean grey value is ~80,
lab-wue1's ~25). Only images are used for this, never labels.

Examples
--------
>>> FOLD_COLUMNS[:4]
('lab', 'variant', 'model', 'fold')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import Lab
from cfosstats.segment.pipeline import init_member, lab_split
from cfosstats.segment.predict import Settings
from cfosstats.segment.selection import validate_model
from cfosstats.segment.train import TrainConfig, intensity_statistics, start_model

FROZEN = "frozen"
NORMALISATIONS = ("lab", "model")

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


def _fold_rows(lab_name: str, variant: str, model: str, fold: int, table: pd.DataFrame) -> list[dict]:
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


def _table(rows: list[dict]) -> pd.DataFrame:
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
        rows += _fold_rows(card["lab"], name, card["name"], int(card.get("fold") or 1), table)
    return _table(rows)


def renormalised(module, images: Sequence[np.ndarray]):
    """A copy of `module` with the input statistics of `images` (the original is unchanged)."""
    return start_model(TrainConfig(), module, *intensity_statistics(list(images)))


def frozen_validation(
    lab: Lab,
    model,
    *,
    k: int | None = None,
    split_seed: int = 0,
    normalisation: str = "lab",
    settings: Settings | None = None,
    progress=None,
) -> pd.DataFrame:
    """Apply a library model unchanged to a lab, fold by fold, and judge it by the selection rule.

    Fold f is predicted by the member fine-tuning would start fold f from
    (:func:`cfosstats.segment.pipeline.init_member`), on fold f's validation images of the lab's
    split. Nothing is trained.

    Parameters
    ----------
    lab : Lab
        The new lab (images, annotators, estimated ground truth).
    model : StoredModel or StoredEnsemble
        The library model.
    k : int, optional
        Folds (default: the lab's ``cv_folds``).
    split_seed : int
        The split's seed (the one its trained variants used).
    normalisation : {"lab", "model"}
        Input statistics: the fold's training images of this lab, or the model's own.
    settings : Settings, optional
        Prediction settings (default: :class:`~cfosstats.segment.predict.Settings`).
    progress : callable, optional
        Called once per predicted image.

    Returns
    -------
    DataFrame
        :data:`FOLD_COLUMNS` (``variant`` = ``frozen``) plus ``f1_<annotator>`` columns.

    Examples
    --------
    >>> from cfosstats.datasets.discover import load_lab
    >>> from cfosstats.segment.library import load_model
    >>> lab = load_lab("mue", data="../shared/data/train_data")
    >>> table = frozen_validation(lab, load_model("wue1/consensus_model_1"), k=5)  # doctest: +SKIP
    >>> len(table), table["variant"].unique().tolist()  # doctest: +SKIP
    (5, ['frozen'])
    """
    if normalisation not in NORMALISATIONS:
        raise InputError(
            None, f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}"
        )
    settings = (settings or Settings()).resolved()
    split = lab_split(lab, k, split_seed)
    rows = []
    for fold in range(1, split.k + 1):
        member = init_member(model, fold)
        module = member.module
        if normalisation == "lab":
            module = renormalised(module, [lab.image(i) for i in split.training(fold)])
        table = validate_model(lab, module, split.validation(fold), settings, progress)
        rows += _fold_rows(lab.name, FROZEN, member.name, fold, table)
    return _table(rows)


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
