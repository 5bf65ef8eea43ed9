"""The study's model-selection rule, on tables of per-image F1 (no images, no models).

The rule (Segebarth et al. 2020): a model is kept only if, on *every* validation image, its
object F1 against the estimated ground truth is at least the F1 of the *worst* annotator on that
image. :func:`image_passes` judges one image, :func:`rule_holds` a set of judged images and
:func:`selection_verdict` turns a per-image table into the verdict recorded in a model card.
Used by :mod:`cfosstats.segment.selection` (validation after training) and
:mod:`cfosstats.analyses.models` (every predicted label set of a report).

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"image_id": ["a", "b"], "model_f1": [0.8, 0.5], "worst": [0.7, 0.6]})
>>> table["passed"] = [image_passes(m, w) for m, w in zip(table["model_f1"], table["worst"])]
>>> rule_holds(table["passed"]), selection_verdict(table)["failed_images"]
(False, ['b'])
"""

from __future__ import annotations

import pandas as pd

SELECTION_RULE = "model F1 vs estimated ground truth >= worst annotator's F1, on every validation image"


def truthy(values: pd.Series) -> pd.Series:
    """Booleans from a column that may hold bools or their text (``True``/``false``/``1``).

    Examples
    --------
    >>> truthy(pd.Series(["True", "false", True, 0])).tolist()
    [True, False, True, False]
    """
    return values.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])


def image_passes(model_f1: float, worst_f1: float | None) -> bool:
    """Whether one image keeps the model: its F1 is at least the worst annotator's.

    An image without annotators (`worst_f1` None) has nothing to compare with and does not
    block selection.

    Examples
    --------
    >>> image_passes(0.6, 0.6), image_passes(0.5, 0.6), image_passes(0.1, None)
    (True, False, True)
    """
    return bool(worst_f1 is None or model_f1 >= worst_f1)


def rule_holds(passed: pd.Series) -> bool | None:
    """Whether the rule holds on every judged image; None when no image was judged.

    Examples
    --------
    >>> rule_holds(pd.Series([True, True])), rule_holds(pd.Series([True, False])), rule_holds(pd.Series([]))
    (True, False, None)
    """
    if not len(passed):
        return None
    return bool(passed.all())


def selection_verdict(table: pd.DataFrame) -> dict:
    """``selected`` when the rule holds on every validation image, else ``rejected``.

    Parameters
    ----------
    table : DataFrame
        One row per validation image, columns ``image_id`` and ``passed``.

    Examples
    --------
    >>> table = pd.DataFrame({"image_id": ["a", "b"], "passed": [True, False]})
    >>> selection_verdict(table)["verdict"]
    'rejected'
    """
    passed = table["passed"].astype(bool)
    return {
        "verdict": "rejected" if rule_holds(passed) is False else "selected",
        "rule": SELECTION_RULE,
        "n_images": int(len(table)),
        "n_passed": int(passed.sum()),
        "failed_images": table.loc[~passed, "image_id"].tolist(),
    }
