"""Validation of a trained model against the annotators, for the study's model-selection rule.

The rule (Segebarth et al. 2020; :mod:`cfosstats.stats.selection`): a model is kept only if,
on *every* validation image, its object F1 against the estimated ground truth is at least the F1
of the *worst* annotator on that image. F1 is object-level (8-connected objects, the lab's
minimum object size, IoU > 0.5, one-to-one matching; see :mod:`cfosstats.objects.matching`),
with the lab's ignored regions left out.

The reference is the published estimated ground truth (``labels/est_GT``) when the lab has one,
else STAPLE of all annotators of the image (which reproduces the published masks).

Examples
--------
>>> VALIDATION_COLUMNS[-1]  # one row per validation image, judged by the rule
'passed'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import Lab
from cfosstats.datasets.layout import ESTIMATED_GT
from cfosstats.objects.groundtruth import staple
from cfosstats.objects.matching import match_masks
from cfosstats.stats.selection import image_passes

VALIDATION_COLUMNS = ("image_id", "model_f1", "worst_annotator", "worst_annotator_f1", "passed")


def reference_source(lab: Lab) -> str:
    """``est_GT`` when the lab has it, else ``staple`` (computed from the annotators)."""
    return ESTIMATED_GT if lab.has_published_gt else "staple"


def reference_mask(lab: Lab, image_id: str) -> np.ndarray:
    """The estimated ground truth of one image (published, or STAPLE of its annotators).

    Raises
    ------
    InputError
        When the image has neither an estimated ground truth nor any annotator's mask.
    """
    if lab.has_published_gt:
        return lab.mask(ESTIMATED_GT, image_id)
    masks = [lab.mask(a, image_id) for a in lab.annotators if image_id in lab.label_sources[a].files]
    if not masks:
        raise InputError(
            lab.root / "labels", f"image '{image_id}' has no annotations to estimate a ground truth"
        )
    return staple(masks).estimate


def annotator_f1(lab: Lab, image_id: str, reference: np.ndarray) -> dict[str, float]:
    """F1 of every annotator of `image_id` against `reference` (the lab's object rules)."""
    ignore = lab.ignore_mask(image_id)
    return {
        name: match_masks(lab.mask(name, image_id), reference, lab.config.min_object_size, ignore=ignore).f1
        for name in lab.annotators
        if image_id in lab.label_sources[name].files
    }


def validate_model(lab: Lab, model, image_ids, settings, advance=None) -> pd.DataFrame:
    """Predict `image_ids` with one model and tabulate them (:func:`validation_table`).

    Parameters
    ----------
    model : UNet
    image_ids : sequence of str
    settings : Settings
        Prediction settings (:mod:`cfosstats.segment.predict`).
    advance : callable, optional
        Called after each image.
    """
    from cfosstats.segment.predict import predict_image, prepare_model  # lazy: torch

    prepared = [prepare_model(model, settings)]
    predicted = {}
    for image_id in image_ids:
        predicted[image_id] = predict_image(prepared, lab.image(image_id), settings, prepared=True).mask
        if advance is not None:
            advance()
    return validation_table(lab, predicted)


def validation_table(lab: Lab, predicted: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-image F1 of a model's masks and of the annotators, and whether the rule holds.

    Parameters
    ----------
    lab : Lab
        The lab (annotators, reference, minimum object size, ignored regions).
    predicted : dict
        image id -> the model's binary mask.

    Returns
    -------
    DataFrame
        :data:`VALIDATION_COLUMNS` plus one ``f1_<annotator>`` column per annotator.
    """
    rows = []
    for image_id, mask in predicted.items():
        reference = reference_mask(lab, image_id)
        ignore = lab.ignore_mask(image_id)
        model_f1 = match_masks(mask, reference, lab.config.min_object_size, ignore=ignore).f1
        annotators = annotator_f1(lab, image_id, reference)
        worst = min(annotators, key=annotators.get) if annotators else None
        worst_f1 = annotators[worst] if worst else float("nan")
        rows.append(
            {
                "image_id": image_id,
                "model_f1": model_f1,
                "worst_annotator": worst,
                "worst_annotator_f1": worst_f1,
                # No annotators: nothing to compare with, so the image does not block selection.
                "passed": image_passes(model_f1, None if worst is None else worst_f1),
                **{f"f1_{name}": value for name, value in annotators.items()},
            }
        )
    return pd.DataFrame(
        rows,
        columns=list(VALIDATION_COLUMNS) + sorted({k for r in rows for k in r} - set(VALIDATION_COLUMNS)),
    )
