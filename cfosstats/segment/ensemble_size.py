"""Ensembles of 1..n library models, drawn repeatedly, scored on held-out images (the study's
ensemble-size analysis; the statistics are :mod:`cfosstats.stats.ensemble_size`).

Each model predicts each image once; an ensemble of a subset is the mean of its members' softmax
foreground probabilities (as a shipped ensemble combines them), thresholded at 0.5, and scored by
object F1 against the estimated ground truth with the lab's rules. An ensemble's score is its mean
F1 over the images.

Examples
--------
>>> SCORE_COLUMNS
('size', 'ensemble', 'f1')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from cfosstats.objects.label import index_mask_objects
from cfosstats.objects.matching import match_labels
from cfosstats.segment.predict import Settings, predict_image, prepare_model
from cfosstats.segment.selection import reference_mask
from cfosstats.stats.ensemble_size import member_subsets

SCORE_COLUMNS = ("size", "ensemble", "f1")


def ensemble_size_scores(
    modules: Mapping[str, object],
    lab,
    image_ids: Sequence[str],
    *,
    n_draws: int = 20,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Callable[[], None] | None = None,
) -> pd.DataFrame:
    """Mean F1 over `image_ids` of ensembles of every size drawn from `modules`.

    Parameters
    ----------
    modules : mapping of str to UNet
        The models to draw from (e.g. the consensus fold models of several replicates).
    lab : Lab
        Images, estimated ground truth, minimum object size and ignored regions.
    image_ids : sequence of str
        Held-out images (no model trained on them).
    n_draws : int
        Ensembles per size at most (all combinations when there are fewer).
    seed : int
        Fixes the random draws.
    settings : Settings, optional
        Prediction settings.
    progress : callable, optional
        Called once per image.

    Returns
    -------
    DataFrame
        One row per ensemble, columns :data:`SCORE_COLUMNS` (``ensemble``: member names joined
        by ``+``).
    """
    names = list(modules)
    rng = np.random.default_rng(seed)
    subsets = [s for size in range(1, len(names) + 1) for s in member_subsets(len(names), size, n_draws, rng)]
    settings = (settings or Settings()).resolved()
    prepared = [prepare_model(modules[name], settings) for name in names]
    min_size = lab.config.min_object_size
    f1 = np.zeros((len(subsets), len(image_ids)))
    for column, image_id in enumerate(image_ids):
        probabilities = predict_image(
            prepared, lab.image(image_id), settings, prepared=True
        ).member_probabilities
        ignore = lab.ignore_mask(image_id)
        reference = index_mask_objects(reference_mask(lab, image_id), min_size, ignore=ignore)
        for row, subset in enumerate(subsets):
            mask = probabilities[list(subset)].mean(axis=0) > 0.5
            f1[row, column] = match_labels(index_mask_objects(mask, min_size, ignore=ignore), reference).f1
        if progress is not None:
            progress()
    return pd.DataFrame(
        {
            "size": [len(s) for s in subsets],
            "ensemble": ["+".join(names[i] for i in s) for s in subsets],
            "f1": f1.mean(axis=1),
        },
        columns=list(SCORE_COLUMNS),
    )
