"""Which label sources a validity run quantifies, and which of their images are in-sample.

:func:`plan_sources` turns a lab's label sources into :class:`SourcePlan` s: masks, in-sample
images and their basis (the rule of :func:`cfosstats.datasets.predictions.in_sample`: images given
by the caller, then the model cards, then the metadata's ``training`` flag), plus the combined
out-of-fold source of each fold-model recipe with known training images.
:func:`consistency_levels` says which sources are compared object by object.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from cfosstats.analyses.grouping import stratum_key
from cfosstats.core.errors import InputError
from cfosstats.datasets.lab import LabelSource
from cfosstats.datasets.layout import ENSEMBLE_UNET
from cfosstats.datasets.predictions import (
    NOT_A_MODEL,
    flagged_training_images,
    in_sample,
    training_images_from_predictions,
)

__all__ = [
    "CONSISTENCY_PARTNERS",
    "OUT_OF_FOLD",
    "SourcePlan",
    "compared_pairs",
    "consistency_levels",
    "plan_sources",
]

OUT_OF_FOLD = "out_of_fold"


@dataclass(frozen=True)
class SourcePlan:
    """One label source to quantify: its masks and which of its images are in-sample."""

    name: str
    strategy: str
    files: dict[str, Path]
    in_sample: frozenset[str] = frozenset()
    basis: str = NOT_A_MODEL
    is_prediction: bool = False
    ensemble_key: tuple | None = None  # (initialization, model_type, model) of ensembles and members
    unet: str | None = None


def plan_sources(
    lab,
    training_images: Mapping[str, Collection[str]] | None,
    only: Collection[str] | None,
) -> list[SourcePlan]:
    """Every label source to quantify, with in-sample images and out-of-fold combinations."""
    given = {k: set(map(str, v)) for k, v in (training_images or {}).items()}
    from_cards = training_images_from_predictions(lab)
    flag = flagged_training_images(lab.metadata)
    plans = []
    for source in lab.label_sources.values():
        plans.append(_plan_source(source, given, from_cards, flag))
    plans += _out_of_fold_sources(plans)
    if only is not None:
        unknown = sorted(set(only) - {p.name for p in plans} - {p.strategy for p in plans})
        if unknown:
            raise InputError(lab.root / "labels", f"no label source or strategy {', '.join(unknown)}")
        plans = [p for p in plans if p.name in only or p.strategy in only]
    return plans


def _plan_source(source: LabelSource, given, from_cards, flag) -> SourcePlan:
    files = {str(k): Path(v) for k, v in source.files.items()}
    key = (source.initialization, source.model_type, source.model) if source.is_prediction else None
    images, basis = in_sample(source, [("given", given), ("model card", from_cards)], flag)
    return SourcePlan(
        source.name,
        source.strategy,
        files,
        in_sample=images,
        basis=basis,
        is_prediction=source.is_prediction,
        ensemble_key=key,
        unet=source.unet,
    )


def _out_of_fold_sources(plans: list[SourcePlan]) -> list[SourcePlan]:
    """Per fold-model recipe with known training images: each image from a fold that did not train on it."""
    recipes: dict[tuple, list[SourcePlan]] = {}
    for plan in plans:
        if plan.is_prediction and plan.unet != ENSEMBLE_UNET and plan.basis in ("given", "model card"):
            recipes.setdefault(plan.ensemble_key, []).append(plan)
    combined = []
    for key, folds in recipes.items():
        if len(folds) < 2:
            continue
        folds = sorted(folds, key=lambda p: stratum_key(str(p.unet).removeprefix("unet_")))
        files = {}
        for image_id in sorted(set().union(*(p.files for p in folds))):
            for fold in folds:
                if image_id in fold.files and image_id not in fold.in_sample:
                    files[image_id] = fold.files[image_id]
                    break
        if files:
            strategy = "expert_models" if str(key[1]).startswith("expert") else "consensus_models"
            combined.append(
                SourcePlan(
                    # beside its members, with whatever prefix their names carry (library/, predicted/)
                    f"{folds[0].name.rsplit('/', 1)[0]}/{OUT_OF_FOLD}",
                    strategy,
                    files,
                    basis="out of fold",
                    is_prediction=True,
                    ensemble_key=key,
                    unet=OUT_OF_FOLD,
                )
            )
    return combined


# Each source of a level is matched with at most this many others (a ring, see compared_pairs):
# all pairs up to 2 * 4 + 1 = 9 sources (every ensemble and strategy of the study's library), and
# work linear, not quadratic, in the number of sources beyond (the study's 36 consensus models).
CONSISTENCY_PARTNERS = 4


def compared_pairs(sources: list[str], partners: int = CONSISTENCY_PARTNERS) -> list[tuple[str, str]]:
    """The pairs of sources whose masks are matched for a consistency level, in a fixed order.

    Every pair for up to ``2 * partners + 1`` sources; beyond, each source with the ``partners``
    next ones around a ring (``n * partners`` pairs, each source in ``2 * partners`` of them), a
    balanced sample of the pairs whose mean F1 estimates the all-pairs mean.

    Parameters
    ----------
    sources : list of str
        The level's sources, in their order.
    partners : int
        Partners per source beyond the all-pairs size.

    Returns
    -------
    list of (str, str)
        Unordered pairs, each written in the order of `sources`, sorted by position.

    Examples
    --------
    >>> compared_pairs(["a", "b", "c"])
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    >>> len(compared_pairs([f"m{i}" for i in range(36)])), len(compared_pairs([f"m{i}" for i in range(9)]))
    (144, 36)
    """
    n = len(sources)
    if n <= 2 * partners + 1:
        return list(combinations(sources, 2))
    positions = sorted({tuple(sorted((i, (i + d) % n))) for i in range(n) for d in range(1, partners + 1)})
    return [(sources[i], sources[j]) for i, j in positions]


def consistency_levels(plans: list[SourcePlan]) -> dict[str, list[str]]:
    """Level -> label sources compared: each ensemble's members, the ensembles, the model strategies."""
    ensembles = [p for p in plans if p.unet == ENSEMBLE_UNET]
    levels: dict[str, list[str]] = {}
    for ensemble in ensembles:
        members = [
            p.name
            for p in plans
            if p.strategy == "ensemble_members" and p.ensemble_key == ensemble.ensemble_key
        ]
        if len(members) >= 2:
            levels[f"members_of:{ensemble.name}"] = sorted(members)
    if len(ensembles) >= 2:
        levels["between_ensembles"] = sorted(p.name for p in ensembles)
    for strategy in ("consensus_models", "expert_models"):
        names = sorted(p.name for p in plans if p.strategy == strategy and p.unet != OUT_OF_FOLD)
        if len(names) >= 2:
            levels[strategy] = names
    return levels
