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
>>> NORMALISATIONS
('lab', 'model')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import Lab
from cfosstats.segment.pipeline import init_member, lab_split
from cfosstats.segment.predict import Settings
from cfosstats.segment.selection import validate_model
from cfosstats.segment.train import TrainConfig, intensity_statistics, start_model
from cfosstats.stats.fold_tables import (
    fold_rows,
    fold_table,
)

FROZEN = "frozen"
NORMALISATIONS = ("lab", "model")


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
        rows += fold_rows(lab.name, FROZEN, member.name, fold, table)
    return fold_table(rows)
