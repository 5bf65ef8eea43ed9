"""Models against the annotators: each predicted label set's object F1 per annotated image,
placed in the range the annotators span on that image (the study's model selection rule,
:mod:`cfosstats.stats.selection`).

The work per image is a pure function of file paths (:func:`model_f1_of_image`), mapped over the
annotated images in worker processes like the agreement tables.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"image_id": ["1", "2"], "source": "m", "strategy": "expert_models",
...     "f1": [0.5, 0.8], "f1_min": [0.6, 0.6], "f1_max": [0.9, 0.9],
...     "placement": ["below", "within"]})
>>> model_summary(rows)[["source", "n_below", "passes_rule"]].to_dict("records")
[{'source': 'm', 'n_below': 1, 'passes_rule': False}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from cfosstats.core.imageio import read_mask
from cfosstats.objects.label import label_objects
from cfosstats.objects.matching import index_objects, match_labels
from cfosstats.stats.selection import rule_holds, truthy

MODEL_F1_COLUMNS = (
    "image_id",
    "source",
    "strategy",
    "n_source",
    "n_reference",
    "tp",
    "precision",
    "recall",
    "f1",
    "mean_iou",
)
SUMMARY_COLUMNS = (
    "source",
    "strategy",
    "n_images",
    "n_in_sample",
    "f1_median",
    "f1_min",
    "n_below",
    "n_within",
    "n_above",
    "passes_rule",
)


def model_f1_of_image(
    image_id: str,
    sources: Mapping[str, tuple[str, Path]],
    reference_path: Path,
    ignore_path: Path | None,
    min_size: int,
    threshold: float = 0.5,
    criterion: str = "gt",
) -> list[dict]:
    """Object F1 of every predicted label set of one image against its estimated ground truth.

    Parameters
    ----------
    image_id : str
    sources : mapping
        Label source name -> (strategy, mask file).
    reference_path : Path
        The image's estimated ground truth (published ``est_GT`` or STAPLE of the annotators).
    ignore_path : Path or None
        Ignored-region mask, left out of both masks.
    min_size, threshold, criterion
        The lab's object rules (:func:`cfosstats.objects.matching.match_labels`).

    Returns
    -------
    list of dict
        One row per source, keys :data:`MODEL_F1_COLUMNS`.
    """
    ignore = None if ignore_path is None else read_mask(ignore_path)
    reference = index_objects(label_objects(read_mask(reference_path), min_size=min_size, ignore=ignore))
    rows = []
    for name, (strategy, path) in sources.items():
        labels = label_objects(read_mask(path), min_size=min_size, ignore=ignore)
        result = match_labels(index_objects(labels), reference, threshold, criterion=criterion)
        rows.append(
            {
                "image_id": image_id,
                "source": name,
                "strategy": strategy,
                "n_source": int(result.n_rater),
                "n_reference": int(result.n_reference),
                "tp": int(result.tp),
                "precision": float(result.precision),
                "recall": float(result.recall),
                "f1": float(result.f1),
                "mean_iou": float(result.mean_iou),
            }
        )
    return rows


def model_summary(placed: pd.DataFrame) -> pd.DataFrame:
    """Per model: images, median and worst F1, placements, and whether it passes the study's rule.

    A model passes when no image places it ``below`` the worst annotator. Where `placed` has an
    ``in_sample`` column, the images a model was trained on are left out (their F1 is optimistic;
    the study applied the rule to validation images) and counted in ``n_in_sample``; a model with
    no other image has ``passes_rule`` None.

    Examples
    --------
    >>> rows = pd.DataFrame({"image_id": ["1", "2"], "source": "m", "strategy": "expert_models",
    ...     "f1": [0.5, 0.8], "placement": ["below", "within"], "in_sample": [True, False]})
    >>> model_summary(rows)[["n_images", "n_in_sample", "n_below", "passes_rule"]].to_dict("records")
    [{'n_images': 1, 'n_in_sample': 1, 'n_below': 0, 'passes_rule': True}]
    """
    if placed.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    trained = truthy(placed["in_sample"]) if "in_sample" in placed else pd.Series(False, index=placed.index)
    rows = []
    for (source, strategy), group in placed.groupby(["source", "strategy"], sort=True):
        unseen = group[~trained[group.index]]
        placement = unseen["placement"].value_counts()
        rows.append(
            {
                "source": source,
                "strategy": strategy,
                "n_images": int(len(unseen)),
                "n_in_sample": int(len(group) - len(unseen)),
                "f1_median": float(unseen["f1"].median()),
                "f1_min": float(unseen["f1"].min()),
                "n_below": int(placement.get("below", 0)),
                "n_within": int(placement.get("within", 0)),
                "n_above": int(placement.get("above", 0)),
                "passes_rule": rule_holds(unseen["placement"] != "below"),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# -- within a strategy: the analyses of one strategy against each other --------------------------

PAIR_COLUMNS = ("image_id", "strategy", "rater", "reference", "f1", "mean_iou")
#: Columns of :func:`within_strategy_summary`.
WITHIN_COLUMNS = (
    "strategy",
    "pairs",
    "n_sets",
    "n_pairs",
    "n_images",
    "images",
    "f1_mean",
    "f1_sd",
    "mean_iou_mean",
)


def training_recipe(source: str) -> str:
    """A predicted label set's name without its replicate: label sets with the same recipe were
    trained on the same data and differ only in the seed (``<model>_r<n>`` of a single model,
    ``ensemble_<n>`` of an ensemble and its members).

    Examples
    --------
    >>> training_recipe("library/scratch/expert_models/expert_1_r2/unet_1")
    'library/scratch/expert_models/expert_1/unet_1'
    >>> training_recipe("library/scratch/consensus_ensembles/ensemble_3/unet_2")
    'library/scratch/consensus_models/consensus/unet_2'
    >>> training_recipe("library/scratch/consensus_models/consensus_r2/unet_2")
    'library/scratch/consensus_models/consensus/unet_2'
    >>> training_recipe("library/scratch/consensus_ensembles/ensemble_3/ensemble")
    'library/scratch/consensus_ensembles/ensemble/ensemble'
    """
    parts = str(source).split("/")
    parts = [re.sub(r"^ensemble_\d+$", "ensemble", re.sub(r"_r\d+$", "", part)) for part in parts]
    if len(parts) >= 4 and parts[-3] == "consensus_ensembles" and parts[-1] != "ensemble":
        # A fold model is the same recipe whether its replicate's ensemble took it or rejected it.
        parts[-3:-1] = ["consensus_models", "consensus"]
    return "/".join(parts)


def strategy_agreement_of_image(
    image_id: str,
    groups: Mapping[str, Mapping[str, Path]],
    ignore_path: Path | None,
    min_size: int,
    threshold: float = 0.5,
    criterion: str = "gt",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rated items (for Fleiss' kappa) and pairwise object agreement of the label sets of each
    strategy on one image.

    Parameters
    ----------
    groups : mapping
        Strategy -> (label set name -> mask file), two or more sets each.

    Returns
    -------
    (DataFrame, DataFrame)
        Rated items (:data:`cfosstats.analyses.objectivity.RATED_ITEM_COLUMNS`) and one row per
        unordered pair of one strategy's sets: ``image_id, strategy, rater, reference, f1,
        mean_iou``.
    """
    from cfosstats.analyses.objectivity import strategy_items  # the objectivity tables' items
    from cfosstats.objects.label import index_mask_objects
    from cfosstats.objects.matching import match_pairs
    from cfosstats.stats.agreement import pairwise_object_agreement

    ignore = None if ignore_path is None else read_mask(ignore_path)
    items, pairs = [], []
    for strategy, paths in groups.items():
        labels = {
            n: index_mask_objects(read_mask(p), min_size=min_size, ignore=ignore) for n, p in paths.items()
        }
        matches = match_pairs(labels, threshold, criterion)
        items.append(strategy_items(labels, image_id, strategy, threshold, criterion, ignore, matches))
        table = pairwise_object_agreement(labels, image_id, threshold, criterion, matches)
        table = table[table["rater"] < table["reference"]]  # each unordered pair once
        pairs.append(
            table.assign(strategy=strategy)[["image_id", "strategy", "rater", "reference", "f1", "mean_iou"]]
        )
    return pd.concat(items, ignore_index=True), pd.concat(pairs, ignore_index=True)


def within_strategy_summary(pairs: pd.DataFrame, images: Mapping[str, str]) -> pd.DataFrame:
    """Mean object F1 and mean IoU between the label sets of each strategy (the study's Figure 3:
    consensus ensembles agreed at F1 0.94 and IoU 0.91 on the test images).

    Parameters
    ----------
    pairs : DataFrame
        Rows of :func:`strategy_agreement_of_image`.
    images : mapping
        Strategy -> which images were used (``held out`` or ``all``).

    Returns
    -------
    DataFrame
        Columns :data:`WITHIN_COLUMNS`; per strategy a row over ``all`` pairs (the study's
        comparison) and, where some pairs share their :func:`training_recipe`, a row over those
        ``replicates`` only (same training data, another seed: the training run's own share).

    Examples
    --------
    >>> pairs = pd.DataFrame({"image_id": ["1", "2", "1"], "strategy": "s",
    ...     "rater": ["a", "a", "a"], "reference": ["b", "b", "a_r2"],
    ...     "f1": [0.9, 0.7, 0.95], "mean_iou": [0.8, 0.8, 0.9]})
    >>> within_strategy_summary(pairs, {"s": "held out"})[["pairs", "n_pairs", "f1_mean"]].to_dict("records")
    [{'pairs': 'all', 'n_pairs': 2, 'f1_mean': 0.85}, {'pairs': 'replicates', 'n_pairs': 1, 'f1_mean': 0.95}]
    """
    rows = []
    same = pd.Series(
        [training_recipe(a) == training_recipe(b) for a, b in zip(pairs["rater"], pairs["reference"])],
        index=pairs.index,
        dtype=bool,
    )
    for strategy, group in pairs.groupby("strategy", sort=True):
        for kind, chosen in (("all", group), ("replicates", group[same.loc[group.index]])):
            if chosen.empty:
                continue
            rows.append(
                {
                    "strategy": strategy,
                    "pairs": kind,
                    "n_sets": int(pd.concat([chosen["rater"], chosen["reference"]]).nunique()),
                    "n_pairs": int(chosen[["rater", "reference"]].drop_duplicates().shape[0]),
                    "n_images": int(chosen["image_id"].nunique()),
                    "images": images.get(strategy, ""),
                    "f1_mean": float(chosen["f1"].mean()),
                    "f1_sd": float(chosen["f1"].std(ddof=1)) if len(chosen) > 1 else float("nan"),
                    "mean_iou_mean": float(chosen["mean_iou"].mean()),
                }
            )
    return pd.DataFrame(rows, columns=list(WITHIN_COLUMNS))
