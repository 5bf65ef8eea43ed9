"""Validity and reliability of a lab's treatment effects, across every label source.

:func:`run_effects` quantifies every image with every label source (annotators, the estimated
ground truth, each model and ensemble found under ``labels/``), tests the treatment effects per
(label source, region, readout), votes across the analyses and measures ensemble consistency.
Per-image work is a pure function of file paths (:func:`measure_image`) mapped over the images in
worker processes; its results are cached by the files' size and modification time, so a second
run over the same files reads no mask. Every table is written atomically into one folder.

Choices (all recorded in ``run.json``)
--------------------------------------
Groups
    The lab's ``condition`` (control first, registry order) when the metadata has conditions;
    else the sampling ``stratum`` (lab-wue1's training data: strata ``0`` .. ``8``, numeric order,
    ``grouping = "strata"``; the first stratum stands in for the control of the normalisation);
    else an :class:`~cfosstats.core.errors.InputError`. Nine strata make 36 pairwise comparisons:
    Bonferroni then tests each pair at alpha / 36, which is harsh, and that is what it is.
Regions
    Each image's region masks (:meth:`Lab.regions_of`); an image without any is analysed whole,
    as region ``image``, minus its ignored region. Objects are cut to the region before
    labelling and size filtering (:mod:`cfosstats.stats.quantify`).
Readouts
    ``density`` (objects per mm², or per 10^4 px² without a pixel size) and ``intensity`` (mean
    grey value of the object pixels). Both are tested *normalised*: divided by the control
    group's mean per (label source, region, experiment), as the study did.
In-sample predictions
    A model's prediction of an image it was trained on is *in-sample*. Which images a model was
    trained on comes, first, from ``training_images`` (a hook: label source -> image ids),
    second, from the model cards of a prediction made by cfosstats (``uncertainty/<source>/
    prediction.json`` names the card; an ensemble's card its members'), third, from the
    metadata's ``training`` flag (study layout: the annotated subset the study's models were
    trained on; training layout: every image, so all predictions are in-sample). In-sample rows
    stay in ``quantification.csv`` (``in_sample`` True) but are left out of the normalisation,
    outlier and effect analyses unless ``include_in_sample=True``. Where fold models of one
    recipe (``.../<model>/unet_1`` .. ``unet_k``) have known training images, a combined
    ``.../<model>/out_of_fold`` source is added: each image predicted by a fold model that did
    not train on it (the study's cross-validated predictions).
Analyses and the vote
    Every label source with at least 3 analysed images in every group is an analysis; others get
    a ``skipped: ...`` row in ``effects.csv``. Ensemble members are tested and reported but do not
    vote (their ensemble does); see :mod:`cfosstats.stats.reliability` for the majority vote
    (a tie gives ``none``).
Exclusions
    Only through the lab registry's ``exclude`` list or the ``exclude`` argument (CLI
    ``--exclude``); excluded images stay in ``quantification.csv`` (``excluded`` True) and are
    listed in ``run.json``. Grubbs outliers are reported, never removed.

Files written by :func:`run_effects`
------------------------------------
``quantification.csv`` — one row per (image, label source, region):
    ``image_id, source, strategy, region, group, condition, stratum, experiment, animal,
    training`` (metadata), ``in_sample`` (bool: a model's prediction of one of its training
    images), ``in_sample_basis`` (``given``, ``model card``, ``prediction roles``,
    ``training flag``, ``out of fold`` or ``not a model``), ``excluded`` (bool),
    ``analysed`` (bool: enters the tests: not excluded, not in-sample, has a group),
    ``n_objects`` (objects in the region after cutting and size filtering), ``region_area_px``,
    ``region_area_mm2``, ``density``, ``density_unit``, ``intensity`` (mean grey value of the
    object pixels; NaN without objects), ``object_pixels``, ``object_area_mean``,
    ``density_control_mean``, ``intensity_control_mean`` (the control group's mean of the
    source, region and experiment over analysed rows), ``density_normalised``,
    ``intensity_normalised`` (value / control mean; NaN when that mean is 0 or undefined).
``outliers.csv`` — one row per flagged (label source, region, readout, group, image):
    ``source, strategy, region, readout, group, image_id, value_name`` (the tested column,
    ``<readout>_normalised``), ``value, grubbs_g, g_critical, rank`` (removal order in the
    iterated two-sided Grubbs test, alpha 0.05), ``n_tested``, ``n_sources_flagged`` and
    ``n_sources_tested`` (how many label sources flag / test this image in this region and
    readout). Reported only: removal needs the exclusion list.
``effects.csv`` — one row per (label source, region, readout, level, comparison):
    ``source, strategy, region, readout, level`` (``image``: the study's analysis, images as
    the unit; ``animal``: images averaged per animal; ``mixed``: random intercept per animal),
    ``grouping`` (``conditions`` or ``strata``), ``value`` (the tested column), then the columns
    of :data:`cfosstats.stats.effects.EFFECT_COLUMNS` (``comparison`` ``all`` is the omnibus
    Kruskal-Wallis / likelihood-ratio row; pairs are ``A vs B`` with ``direction`` of B against
    A) and ``n_total, alpha_comparison, p_value_z, estimate, unit``, then ``eta2_ci_low,
    eta2_ci_high`` (percentile bootstrap; image level: images resampled within groups; animal
    level: animals), ``ci_level``, ``n_boot``, ``n_in_sample_left_out`` and ``call``
    (``increase`` / ``decrease`` when significant, else ``none``; empty for omnibus and
    skipped rows). A source that cannot be tested has one row per region and readout with
    ``test = "skipped"`` and the reason in ``note``.
``reproducibility.csv`` — one row per effect (region, readout, pairwise comparison), image level:
    ``region, readout, comparison, majority_call`` (increase / decrease / none), ``tie``,
    ``n_analyses`` (voting analyses), ``n_agree``, ``n_increase, n_decrease, n_none``, then per
    strategy of the lab's label sources ``<strategy>_agree`` and ``<strategy>_n`` (0 / 0 when
    none was tested), ``summary`` (``found by 2/2 consensus ensembles, 3/8 expert models, ...``
    or ``no effect by majority: 1/14 analyses call an increase``), ``dissenters`` (voting
    analyses whose call differs), and per further level ``majority_call_animal``,
    ``n_analyses_animal``, ``majority_call_mixed``, ``n_analyses_mixed`` (the majority of the
    same analyses at that level).
``variation_per_effect.csv`` — one row per effect and strategy:
    ``region, readout, comparison, strategy, n, eta2_mean, eta2_sd`` (ddof 1; NaN for n < 2),
    ``eta2_min, eta2_max`` (image-level eta²).
``variation_between_strategies.csv`` — one row per strategy compared (expert models, consensus
    models, consensus ensembles): ``strategy, n_effects, eta2_sd_median, eta2_sd_mean,
    eta2_sd_q25, eta2_sd_q75, kruskal_h, kruskal_p`` (Kruskal-Wallis of the per-effect SDs
    across strategies, repeated on each row), ``n_strategies, note``.
``variation_per_model.csv`` — one row per analysis:
    ``source, strategy, votes`` (bool), ``n_effects, centred_eta2_mean, centred_eta2_sd``
    (eta² minus the effect's mean over the voting analyses), ``n_calls, n_differ`` (calls that
    differ from the majority), ``differ_effects``.
``consistency.csv`` — ensemble consistency:
    ``level`` (``members_of:<ensemble>``, ``between_ensembles``, ``consensus_models``,
    ``expert_models``), ``metric`` (``object_f1_mean`` per image and over images,
    ``object_f1_sd``, ``count_icc`` = ICC(2,1) of the whole-image counts), ``image_id`` (empty
    for a level's summary), ``value``, ``n`` (pairs for an image's F1; images for summaries),
    ``n_sources, sources, note``. Objects of the whole image minus its ignored region; images
    that are excluded or in-sample for any of the level's sources are left out.
``warnings.csv`` — ``source, region, readout, image_id, message``: everything that was degenerate
    (a control mean of zero, a label source without any object, an image without regions, an
    unknown id in the registry's exclusion list, ...). Header only when nothing was.
``run.json`` — lab, layout, grouping, groups, control group, alpha, levels, readouts and units,
    exclusions (id and where from), in-sample policy and bases, voting strategies, tie rule,
    the label sources (strategy, images, analysed or skipped), timings, cache hits, version.

Examples
--------
>>> from cfosstats.datasets import load_lab  # doctest: +SKIP
>>> result = run_effects(load_lab("demo"), "results/demo/effects", jobs=2)  # doctest: +SKIP
>>> result.tables["reproducibility"][["region", "readout", "comparison", "summary"]]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.errors import InputError, NothingToAnalyse
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.core.parallel import map_tasks
from cfosstats.core.version import __version__
from cfosstats.datasets.lab import LabelSource
from cfosstats.datasets.layout import ENSEMBLE_UNET
from cfosstats.objects.label import label_objects
from cfosstats.objects.matching import match_labels
from cfosstats.stats import effects as effect_tests
from cfosstats.stats import outliers as outlier_tests
from cfosstats.stats import reliability
from cfosstats.stats.quantify import (
    IMAGE_COLUMNS,
    READOUTS,
    WHOLE_IMAGE,
    normalise_to_control,
    quantify_regions,
)

__all__ = [
    "EffectsResult",
    "FILES",
    "LEVELS",
    "measure_image",
    "resolve_grouping",
    "run_effects",
    "training_images_from_predictions",
]

CACHE_VERSION = 1
MIN_IMAGES = 3  # per group, for a label source to be tested
#: Tables written, by file stem, in this order.
FILES = (
    "quantification",
    "outliers",
    "effects",
    "reproducibility",
    "variation_per_effect",
    "variation_between_strategies",
    "variation_per_model",
    "consistency",
    "warnings",
)
WARNING_COLUMNS = ("source", "region", "readout", "image_id", "message")
METADATA_KEEP = ("condition", "stratum", "experiment", "animal", "training")
OUT_OF_FOLD = "out_of_fold"
IN_SAMPLE_POLICY = (
    "a model's prediction of an image it was trained on is in-sample; in-sample rows are kept in "
    "quantification.csv and left out of normalisation, outliers and effect tests"
)


# -- levels of analysis: name -> test function (a registry, see effects.py) ----------------------


def _image_level(frame, value, order, alpha):
    return effect_tests.group_tests(frame, value, "group", order, alpha)


def _animal_level(frame, value, order, alpha):
    return effect_tests.animal_level_tests(frame, value, "group", "animal", order, alpha)


def _mixed_level(frame, value, order, alpha):
    return effect_tests.mixed_model_tests(frame, value, "group", "animal", order, alpha)


#: Level of analysis -> (test function, needs animals).
LEVELS = {
    "image": (_image_level, False),
    "animal": (_animal_level, True),
    "mixed": (_mixed_level, True),
}


# -- grouping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """What the groups are: ``conditions`` or ``strata``, their column and order."""

    name: str
    column: str
    order: tuple[str, ...]

    @property
    def control(self) -> str:
        return self.order[0]


def _stratum_key(value: str) -> tuple:
    return (0, int(value), "") if str(value).isdigit() else (1, 0, str(value))


def resolve_grouping(lab) -> Grouping:
    """The groups to compare: the lab's conditions, else its sampling strata.

    Raises
    ------
    InputError
        When the metadata names neither conditions nor strata, or only one group.
    """
    metadata = lab.metadata
    if metadata["condition"].notna().any():
        present = set(metadata["condition"].dropna().astype(str))
        order = tuple(c for c in lab.config.conditions if c in present)
        grouping = Grouping("conditions", "condition", order)
    elif "stratum" in metadata and metadata["stratum"].notna().any():
        order = tuple(sorted(set(metadata["stratum"].dropna().astype(str)), key=_stratum_key))
        grouping = Grouping("strata", "stratum", order)
    else:
        raise NothingToAnalyse(
            lab.root,
            "no groups to compare: the metadata names no conditions (image_mapping.xlsx) and no "
            f"strata ({lab.config.strata_file or f'groups_{lab.config.name}.csv'})",
        )
    if len(grouping.order) < 2:
        singular = {"conditions": "condition", "strata": "stratum"}[grouping.name]
        raise NothingToAnalyse(lab.root, f"only one {singular} ({grouping.order[0]}): nothing to compare")
    return grouping


# -- label sources and in-sample images ------------------------------------------------------------


@dataclass(frozen=True)
class SourcePlan:
    """One label source to quantify: its masks and which of its images are in-sample."""

    name: str
    strategy: str
    files: dict[str, Path]
    in_sample: frozenset[str] = frozenset()
    basis: str = "not a model"
    is_prediction: bool = False
    ensemble_key: tuple | None = None  # (initialization, model_type, model) of ensembles and members
    unet: str | None = None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _card_training(card_path: Path) -> tuple[dict | None, set[str] | None]:
    card = _read_json(card_path)
    if card is None:
        return None, None
    images = card.get("training_images")
    return card, (set(map(str, images)) if isinstance(images, list) else None)


def training_images_from_predictions(lab) -> dict[str, set[str]]:
    """Training images of the predicted label sources, from the records cfosstats wrote.

    ``cfosstats predict`` writes ``uncertainty/<initialization>/<model_type>/<model>/<unet>/``
    with ``prediction.json`` (naming the model card) and ``uncertainty.csv`` (each image's
    ``role``). The card's ``training_images`` give the model's training images; an ensemble's
    are the union of its members', and each member's own folder (``unet_<fold>``) gets the
    member card's. Without readable cards, images with role ``training`` are used for the
    ensemble or model itself.

    Returns
    -------
    dict
        Label source name -> set of image ids it was trained on (only sources with a record).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> training_images_from_predictions(SimpleNamespace(root=Path("/nonexistent")))
    {}
    """
    root = Path(lab.root) / "uncertainty"
    found: dict[str, set[str]] = {}
    if not root.is_dir():
        return found
    for record_path in sorted(root.glob("*/*/*/*/prediction.json")):
        folder = record_path.parent
        parts = folder.relative_to(root).parts
        name = "/".join(parts)
        record = _read_json(record_path) or {}
        found.update(_from_cards(record, parts))
        if name not in found:
            roles = _roles(folder / "uncertainty.csv")
            if roles is not None:
                found[name] = roles
    return found


def _from_cards(record: dict, parts: tuple[str, ...]) -> dict[str, set[str]]:
    card_path = Path(str(record.get("model_card", "")))
    if not record.get("model_card") or not card_path.is_file():
        return {}
    card, images = _card_training(card_path)
    if card is None:
        return {}
    name = "/".join(parts)
    if card.get("kind") != "ensemble":
        return {name: images} if images is not None else {}
    found: dict[str, set[str]] = {}
    union: set[str] = set()
    for index, member in enumerate(card.get("members", []), 1):
        member_card, member_images = _card_training(card_path.parent.parent / f"{member}.json")
        if member_card is None or member_images is None:
            return {name: images} if images is not None else {}
        fold = member_card.get("fold") or index
        found["/".join((*parts[:3], f"unet_{fold}"))] = member_images
        union |= member_images
    found[name] = images if images is not None else union
    return found


def _roles(path: Path) -> set[str] | None:
    try:
        table = pd.read_csv(path, dtype={"image_id": str})
    except (OSError, ValueError):
        return None
    if not {"image_id", "role"} <= set(table.columns):
        return None
    return set(table.loc[table["role"] == "training", "image_id"].astype(str))


def _plan_sources(
    lab,
    training_images: Mapping[str, Collection[str]] | None,
    only: Collection[str] | None,
) -> list[SourcePlan]:
    """Every label source to quantify, with in-sample images and out-of-fold combinations."""
    given = {k: set(map(str, v)) for k, v in (training_images or {}).items()}
    from_cards = training_images_from_predictions(lab)
    training = lab.metadata["training"].map(lambda v: bool(v) if pd.notna(v) else False).astype(bool)
    flag = set(lab.metadata.loc[training, "image_id"])
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
    common = {
        "name": source.name,
        "strategy": source.strategy,
        "files": files,
        "ensemble_key": key,
        "unet": source.unet,
        "is_prediction": source.is_prediction,
    }
    if not source.is_prediction:
        return SourcePlan(**common)
    if source.name in given:
        return SourcePlan(**common, in_sample=frozenset(given[source.name]), basis="given")
    if source.name in from_cards:
        return SourcePlan(**common, in_sample=frozenset(from_cards[source.name]), basis="model card")
    return SourcePlan(**common, in_sample=frozenset(flag & set(files)), basis="training flag")


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
        folds = sorted(folds, key=lambda p: _stratum_key(str(p.unet).removeprefix("unet_")))
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


# -- exclusions ----------------------------------------------------------------------------------


def _exclusions(lab, exclude: Iterable[str]) -> tuple[dict[str, str], list[dict]]:
    """image id -> where its exclusion comes from; warnings for unknown registry ids."""
    known = set(lab.image_ids)
    requested = [str(x) for x in exclude]
    unknown = sorted(set(requested) - known)
    if unknown:
        raise InputError(None, f"--exclude names image(s) not in lab {lab.name}: {', '.join(unknown[:10])}")
    out: dict[str, str] = {}
    warnings_rows = []
    for image_id in lab.config.exclude:
        if image_id in known:
            out[image_id] = "registry"
        else:
            warnings_rows.append(
                _warning(
                    image_id=image_id,
                    message=f"registry exclude list names image "
                    f"{image_id}, which this data does not hold; ignored",
                )
            )
    for image_id in requested:
        out[image_id] = "option" if image_id not in out else "registry+option"
    return out, warnings_rows


def _warning(source="", region="", readout="", image_id="", message="") -> dict:
    return {"source": source, "region": region, "readout": readout, "image_id": image_id, "message": message}


# -- the measurement cache -----------------------------------------------------------------------


class _Stamps:
    """What identifies a file's content cheaply: absolute path, size, modification time.

    Memoised for one run only (files may change between runs).
    """

    def __init__(self):
        self.known: dict[str, list] = {}

    def __call__(self, path: str | Path | None) -> list | None:
        if path is None:
            return None
        path = str(path)
        if path not in self.known:
            stat = os.stat(path)
            self.known[path] = [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]
        return self.known[path]


def _digest(*parts: Any) -> str:
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class MeasurementCache:
    """A JSON file of measurements keyed by a digest of the files (size + mtime) and settings.

    Only the entries used by a run are saved again, so the file does not grow without bound.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.hits = 0
        if path is not None and path.is_file():
            loaded = _read_json(path)
            if isinstance(loaded, dict) and loaded.get("version") == CACHE_VERSION:
                self.old = loaded.get("entries", {})

    def has(self, key: str) -> bool:
        """Whether `key` is cached (from an earlier run, or put in this one); counts hits."""
        if key in self.new:
            return True
        if key in self.old:
            self.hits += 1
            self.new[key] = self.old[key]
            return True
        return False

    def get(self, key: str) -> Any:
        """The cached value (None when absent)."""
        return self.new.get(key, self.old.get(key))

    def put(self, key: str, value: Any) -> None:
        self.new[key] = value

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"version": CACHE_VERSION, "entries": self.new}, separators=(",", ":")))


# -- per-image work: a pure function of paths ------------------------------------------------------


def _check_shape(array: np.ndarray, shape: tuple | None, path: str, what: str) -> tuple:
    if shape is None:
        return array.shape
    if array.shape != tuple(shape):
        raise InputError(
            path,
            f"{what} shape {array.shape[0]}x{array.shape[1]} differs from the image's "
            f"({shape[0]}x{shape[1]})",
        )
    return shape


def measure_image(
    image_id: str,
    image_path: str | None,
    region_paths: Mapping[str, str],
    ignore_path: str | None,
    quantify: Mapping[str, str],
    whole: Mapping[str, str],
    pairs: Sequence[tuple[str, str]],
    min_size: int,
    um2_per_px: float | None,
    threshold: float = 0.5,
) -> dict:
    """Measure one image with several label sources (reads every file once).

    Parameters
    ----------
    image_id : str
    image_path : str or None
        The fluorescence image (needed for intensities; None when nothing is quantified).
    region_paths : mapping of str to str
        Region -> region mask file; empty: the whole image (region ``image``).
    ignore_path : str or None
        Ignored-region mask.
    quantify : mapping of str to str
        Label source -> mask file to quantify per region (:func:`quantify_image`).
    whole : mapping of str to str
        Label source -> mask file whose whole-image objects are counted (and matched in `pairs`).
    pairs : sequence of (str, str)
        Pairs of sources of `whole` to match object by object (F1 at IoU > `threshold`).
    min_size : int
        The lab's minimum object size.
    um2_per_px : float or None
        Pixel area (density per mm²).
    threshold : float
        IoU threshold of a true positive.

    Returns
    -------
    dict
        ``{"quantify": {source: [row, ...]}, "counts": {source: n}, "pairs": {"a|b": f1}}``.
    """
    del image_id  # part of the task for error messages and progress only
    shape = None
    image = None
    if quantify and image_path is not None:
        image = read_image(image_path)
        shape = image.shape
    masks: dict[str, np.ndarray] = {}
    for source, path in {**quantify, **whole}.items():
        if source not in masks:
            masks[source] = read_mask(path)
            shape = _check_shape(masks[source], shape, path, "mask")
    ignore = None
    if ignore_path is not None and masks:
        ignore = read_mask(ignore_path)
        _check_shape(ignore, shape, ignore_path, "ignored-region mask")
    regions = {}
    if quantify:
        for region, path in region_paths.items():
            regions[region] = read_mask(path)
            _check_shape(regions[region], shape, path, "region mask")
    out: dict[str, Any] = {"quantify": {}, "counts": {}, "pairs": {}}
    for source in quantify:
        out["quantify"][source] = quantify_regions(
            masks[source], regions, image, min_size, ignore, um2_per_px
        )
    labels = {source: label_objects(masks[source], min_size, ignore=ignore) for source in whole}
    out["counts"] = {source: int(lab.max()) for source, lab in labels.items()}
    for a, b in pairs:
        out["pairs"][f"{a}|{b}"] = float(match_labels(labels[a], labels[b], threshold).f1)
    return out


# -- planning the per-image tasks -----------------------------------------------------------------


@dataclass
class _ImagePlan:
    image_id: str
    image_path: str
    regions: dict[str, str]
    ignore: str | None
    quantify: dict[str, str] = field(default_factory=dict)
    whole: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)


def _consistency_levels(plans: list[SourcePlan]) -> dict[str, list[str]]:
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


def _eligible(plan: SourcePlan, image_id: str, excluded: Mapping[str, str]) -> bool:
    return image_id in plan.files and image_id not in excluded and image_id not in plan.in_sample


def _plan_images(lab, plans, levels, excluded, settings, cache) -> tuple[list[_ImagePlan], dict]:
    """Per image: what is not cached yet; and every cache key, to read the results back."""
    by_name = {p.name: p for p in plans}
    _stamp = _Stamps()
    keys: dict[str, Any] = {"quantify": {}, "counts": {}, "pairs": {}}
    tasks = []
    for image_id in lab.image_ids:
        region_paths = {r: str(lab.region_files[r][image_id]) for r in lab.regions_of(image_id)}
        ignore = lab.ignore_files.get(image_id)
        task = _ImagePlan(
            image_id, str(lab.image_path(image_id)), region_paths, None if ignore is None else str(ignore)
        )
        image_stamp = _stamp(task.image_path)
        ignore_stamp = _stamp(task.ignore)
        region_stamps = sorted((r, _stamp(p)) for r, p in region_paths.items())
        for plan in plans:
            if image_id not in plan.files:
                continue
            mask = str(plan.files[image_id])
            key = _digest("quantify", _stamp(mask), image_stamp, region_stamps, ignore_stamp, *settings)
            keys["quantify"][(image_id, plan.name)] = key
            if not cache.has(key):
                task.quantify[plan.name] = mask
        needed = set()
        for sources in levels.values():
            eligible = [s for s in sources if _eligible(by_name[s], image_id, excluded)]
            if len(eligible) < 2:
                continue
            needed.update(eligible)
            for a, b in combinations(eligible, 2):
                pair_key = _digest(
                    "pair",
                    _stamp(by_name[a].files[image_id]),
                    _stamp(by_name[b].files[image_id]),
                    ignore_stamp,
                    *settings,
                )
                keys["pairs"][(image_id, a, b)] = pair_key
                if not cache.has(pair_key):
                    task.pairs.append((a, b))
        for source in sorted(needed):
            mask = by_name[source].files[image_id]
            key = _digest("count", _stamp(mask), ignore_stamp, settings[0])
            keys["counts"][(image_id, source)] = key
            if not cache.has(key) or any(source in pair for pair in task.pairs):
                task.whole[source] = str(mask)
        if task.quantify or task.whole:
            tasks.append(task)
    return tasks, keys


def _measure_all(lab, plans, levels, excluded, settings, cache, jobs, progress) -> dict:
    """Run the uncached per-image work and return every result (cached or new) by cache key."""
    min_size, um2_per_px, threshold = settings
    tasks, keys = _plan_images(lab, plans, levels, excluded, settings, cache)
    arguments = [
        (
            t.image_id,
            t.image_path if t.quantify else None,
            t.regions,
            t.ignore,
            t.quantify,
            t.whole,
            t.pairs,
            min_size,
            um2_per_px,
            threshold,
        )
        for t in tasks
    ]
    for task, result in zip(tasks, map_tasks(measure_image, arguments, jobs, progress, "measuring images")):
        for source, rows in result["quantify"].items():
            cache.put(keys["quantify"][(task.image_id, source)], rows)
        for source, count in result["counts"].items():
            if (task.image_id, source) in keys["counts"]:
                cache.put(keys["counts"][(task.image_id, source)], count)
        for pair, f1 in result["pairs"].items():
            a, b = pair.split("|", 1)
            cache.put(keys["pairs"][(task.image_id, a, b)], f1)
    return {kind: {k: cache.get(v) for k, v in table.items()} for kind, table in keys.items()}


# -- tables ----------------------------------------------------------------------------------------


def _quantification(lab, plans, measured, grouping, excluded, include_in_sample) -> pd.DataFrame:
    meta = lab.metadata.set_index("image_id")
    strategy = {p.name: p for p in plans}
    rows = []
    for (image_id, source), records in measured["quantify"].items():
        plan = strategy[source]
        in_sample = image_id in plan.in_sample
        for record in records or []:
            rows.append(
                {
                    "image_id": image_id,
                    "source": source,
                    "strategy": plan.strategy,
                    "in_sample": in_sample,
                    "in_sample_basis": plan.basis,
                    **record,
                }
            )
    columns = ["image_id", "source", "strategy", "in_sample", "in_sample_basis", *IMAGE_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for column in METADATA_KEEP:
        table[column] = table["image_id"].map(meta[column]) if len(table) else pd.Series(dtype=object)
    table["group"] = table[grouping.column].map(lambda g: None if pd.isna(g) else str(g))
    table["excluded"] = table["image_id"].isin(list(excluded))
    usable = ~table["excluded"] & table["group"].isin(list(grouping.order))
    table["analysed"] = usable & (include_in_sample | ~table["in_sample"].astype(bool))
    order = [
        "image_id",
        "source",
        "strategy",
        "region",
        "group",
        *METADATA_KEEP,
        "in_sample",
        "in_sample_basis",
        "excluded",
        "analysed",
        *[c for c in IMAGE_COLUMNS if c != "region"],
    ]
    source_order = {p.name: i for i, p in enumerate(plans)}
    table = table[order].assign(_s=table["source"].map(source_order))
    return (
        table.sort_values(["_s", "region", "image_id"], kind="stable")
        .drop(columns="_s")
        .reset_index(drop=True)
    )


def _normalise(table: pd.DataFrame, grouping: Grouping) -> tuple[pd.DataFrame, list[dict]]:
    table, notes = normalise_to_control(table, list(READOUTS), "group", grouping.control, use="analysed")
    ordered = [c for c in table.columns if not c.endswith(("_control_mean", "_normalised"))]
    for readout in READOUTS:
        ordered += [f"{readout}_control_mean"]
    for readout in READOUTS:
        ordered += [f"{readout}_normalised"]
    # Sources skipped for too few images in a group get their own note; no normalisation noise.
    testable = _testable(table, grouping)
    warnings_rows = [
        _warning(
            n["source"],
            n["region"],
            n["readout"],
            "",
            f"experiment {n['experiment'] if pd.notna(n['experiment']) else '(one)'}: {n['note']}",
        )
        for n in notes.to_dict("records")
        if (n["source"], n["region"]) in testable
    ]
    return table[ordered], warnings_rows


def _testable(table: pd.DataFrame, grouping: Grouping) -> set[tuple[str, str]]:
    """(source, region) with at least MIN_IMAGES analysed images in every group."""
    analysed = table[table["analysed"]]
    sizes = analysed.groupby(["source", "region", "group"]).size().unstack("group")
    sizes = sizes.reindex(columns=list(grouping.order)).fillna(0)
    return set(sizes.index[(sizes >= MIN_IMAGES).all(axis=1)])


def _power_warnings(table: pd.DataFrame, grouping: Grouping, alpha: float, levels) -> list[dict]:
    """Warn when too few images (or animals) per group keep every pair from significance.

    The smallest two-sided exact Mann-Whitney p of groups of n1 and n2 is 2 / C(n1 + n2, n1);
    above the Bonferroni level per pair, no pair can be significant whatever the effect.
    """
    k = len(grouping.order)
    level = alpha / (k * (k - 1) // 2)
    analysed = table[table["analysed"]]
    rows = []
    for name, unit in (("image", "image_id"), ("animal", "animal")):
        if name not in levels:
            continue
        data = analysed[analysed[unit].notna()]
        sizes = data.groupby(["source", "region", "group"])[unit].nunique().unstack("group")
        sizes = sizes.reindex(columns=list(grouping.order)).fillna(0)
        sizes = (
            sizes[(sizes >= MIN_IMAGES).all(axis=1)] if name == "image" else sizes[(sizes >= 1).all(axis=1)]
        )
        if sizes.empty:
            continue
        smallest = sorted(int(n) for n in sizes.max(axis=0))[:2]
        min_p = 2.0 / math.comb(sum(smallest), smallest[0])
        if min_p > level:
            rows.append(
                _warning(
                    message=f"{name} level: with {smallest[0]} and {smallest[1]} {name}s in the smallest "
                    f"groups, the smallest possible two-sided Mann-Whitney p is {min_p:.3g} > alpha per "
                    f"pair ({alpha} / {k * (k - 1) // 2} = {level:.3g}): no pair can be significant at "
                    f"the {name} level (too few units, not no effect)"
                )
            )
    return rows


def _long(table: pd.DataFrame) -> pd.DataFrame:
    """Analysed rows, one per readout: the tested value is the normalised readout."""
    parts = []
    analysed = table[table["analysed"]]
    for readout in READOUTS:
        part = analysed[["image_id", "source", "strategy", "region", "group", "animal", readout]].copy()
        part = part.rename(columns={readout: "raw"})
        part["value"] = analysed[f"{readout}_normalised"].to_numpy()
        part["readout"] = readout
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _outliers(long: pd.DataFrame, alpha: float) -> pd.DataFrame:
    by = ["source", "strategy", "region", "readout", "group"]
    data = long[long["value"].notna()]
    candidates = data[_grubbs_candidates(data, by, alpha)]
    flagged = outlier_tests.flag_outliers(candidates, "value", by=by, id_column="image_id", alpha=alpha)
    flagged["value_name"] = flagged["readout"].astype(str) + "_normalised"
    keys = ["image_id", "region", "readout"]
    tested = data.groupby(keys)["source"].nunique().rename("n_sources_tested")
    flags = flagged.groupby(keys)["source"].nunique().rename("n_sources_flagged")
    flagged = flagged.merge(flags, left_on=keys, right_index=True, how="left")
    flagged = flagged.merge(tested, left_on=keys, right_index=True, how="left")
    columns = [
        "source",
        "strategy",
        "region",
        "readout",
        "group",
        "image_id",
        "value_name",
        "value",
        "grubbs_g",
        "g_critical",
        "rank",
        "n_tested",
        "n_sources_flagged",
        "n_sources_tested",
    ]
    return flagged[columns].sort_values(["region", "readout", "image_id", "source"]).reset_index(drop=True)


def _grubbs_candidates(data: pd.DataFrame, by: list[str], alpha: float) -> pd.Series:
    """Rows of the groups whose first Grubbs step flags a value (only they can have outliers).

    The iterated test stops at its first step without an outlier, so a group whose largest
    ``|x - mean| / sd`` is not above the critical value has none: computing that statistic for
    all groups at once and testing only the others is exact and much faster.
    """
    grouped = data.groupby(by, sort=False, dropna=False)["value"]
    n = grouped.transform("count")
    deviation = (data["value"] - grouped.transform("mean")).abs()
    with np.errstate(divide="ignore", invalid="ignore"):
        g = deviation.groupby([data[c] for c in by], sort=False, dropna=False).transform("max")
        g = g / grouped.transform("std")
    critical = n.map({k: outlier_tests.grubbs_critical(int(k), alpha) for k in n.unique()})
    return (n >= 3) & (g > critical)


@dataclass(frozen=True)
class _Unit:
    """One (label source, region, readout) to test."""

    source: str
    strategy: str
    region: str
    readout: str
    frame: pd.DataFrame  # group, animal, value, raw


def _skip_reason(unit: _Unit, order: Sequence[str]) -> str:
    counts = unit.frame.groupby("group")[["image_id", "value", "raw"]].count().reindex(list(order)).fillna(0)
    for group, row in counts.iterrows():
        if row["image_id"] < MIN_IMAGES:
            return (
                f"skipped: group {group} has {int(row['image_id'])} analysed image(s) (< {MIN_IMAGES}) "
                "with a mask from this source"
            )
    for group, row in counts.iterrows():
        if row["value"] >= MIN_IMAGES:
            continue
        if row["raw"] >= MIN_IMAGES:
            return (
                f"skipped: normalised {unit.readout} undefined (control group mean is 0 or missing; "
                f"see warnings.csv)"
            )
        return f"skipped: {unit.readout} undefined in group {group} (no objects in its images)"
    return ""


def analyse_unit(
    unit: _Unit,
    order: Sequence[str],
    alpha: float,
    levels: Sequence[str],
    n_boot: int,
    seed: int,
    ci_level: float = 0.95,
) -> list[pd.DataFrame]:
    """All tests of one (label source, region, readout): a pure function, mapped in parallel."""
    head = {"source": unit.source, "strategy": unit.strategy, "region": unit.region, "readout": unit.readout}
    reason = _skip_reason(unit, order)
    if reason:
        return [pd.DataFrame([{**head, "level": "image", "test": "skipped", "note": reason}])]
    frames = []
    for level in levels:
        function, _ = LEVELS[level]
        table = function(unit.frame, "value", list(order), alpha)
        table.insert(0, "level", level)
        table = _with_ci(table, unit, order, level, n_boot, seed, ci_level)
        frames.append(table.assign(**head))
    return frames


def _with_ci(table, unit, order, level, n_boot, seed, ci_level) -> pd.DataFrame:
    table["eta2_ci_low"] = np.nan
    table["eta2_ci_high"] = np.nan
    table["ci_level"] = ci_level
    table["n_boot"] = 0
    if n_boot <= 0 or level == "mixed":
        return table
    frame = unit.frame
    if level == "animal":
        frame = effect_tests.animal_means(frame, "value", "group", "animal")
    ci = effect_tests.bootstrap_eta2_ci(
        frame, "value", "group", list(order), n_boot=n_boot, seed=seed, level=ci_level
    )
    ci = ci.set_index("comparison")
    table["eta2_ci_low"] = table["comparison"].map(ci["eta2_ci_low"])
    table["eta2_ci_high"] = table["comparison"].map(ci["eta2_ci_high"])
    table["n_boot"] = n_boot
    return table


def _units(long: pd.DataFrame) -> list[_Unit]:
    units = []
    for (source, strategy, region, readout), part in long.groupby(
        ["source", "strategy", "region", "readout"], sort=False
    ):
        frame = part[["image_id", "group", "animal", "value", "raw"]].reset_index(drop=True)
        units.append(_Unit(source, strategy, region, readout, frame))
    return units


def _unit_seed(seed: int, unit: _Unit) -> int:
    return (seed * 1_000_003 + zlib.crc32(f"{unit.source}|{unit.region}|{unit.readout}".encode())) % 2**32


def _effects(long, table, grouping, alpha, levels, n_boot, seed, jobs, progress) -> pd.DataFrame:
    units = _units(long)
    tasks = [(u, grouping.order, alpha, levels, n_boot, _unit_seed(seed, u)) for u in units]
    frames = []
    for result in map_tasks(analyse_unit, tasks, jobs, progress, "testing effects"):
        frames += result
    frames += _skipped_without_rows(table, long, grouping)
    effects = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    return _tidy_effects(effects, table, grouping)


def _skipped_without_rows(table, long, grouping) -> list[pd.DataFrame]:
    """Sources with masks but no analysed row at all (e.g. only in-sample or excluded images)."""
    tested = set(zip(long["source"], long["region"])) if len(long) else set()
    frames = []
    for (source, strategy, region), part in table.groupby(["source", "strategy", "region"], sort=False):
        if (source, region) in tested:
            continue
        why = (
            "all its images are in-sample predictions"
            if part["in_sample"].all()
            else "no analysed image (excluded, in-sample or without a group)"
        )
        for readout in READOUTS:
            frames.append(
                pd.DataFrame(
                    [
                        {
                            "source": source,
                            "strategy": strategy,
                            "region": region,
                            "readout": readout,
                            "level": "image",
                            "test": "skipped",
                            "note": f"skipped: {why}",
                        }
                    ]
                )
            )
    return frames


def _tidy_effects(effects: pd.DataFrame, table: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    head = ["source", "strategy", "region", "readout", "level", "grouping", "value"]
    tail = [
        *effect_tests.EFFECT_COLUMNS,
        *effect_tests.EFFECT_EXTRA_COLUMNS,
        "eta2_ci_low",
        "eta2_ci_high",
        "ci_level",
        "n_boot",
        "n_in_sample_left_out",
        "call",
    ]
    if effects.empty:
        return pd.DataFrame(columns=head + tail)
    effects = effects.reindex(columns=sorted(set(effects.columns) | set(head) | set(tail)))
    effects["grouping"] = grouping.name
    effects["value"] = effects["readout"].astype(str) + "_normalised"
    in_sample = table[table["in_sample"]].groupby(["source", "region"]).size()
    effects["n_in_sample_left_out"] = [
        int(in_sample.get((s, r), 0)) for s, r in zip(effects["source"], effects["region"])
    ]
    pairwise = (effects["comparison"] != "all") & effects["p_value"].notna() & (effects["test"] != "skipped")
    significant = effects["significant"].map(lambda v: bool(v) if pd.notna(v) else False).astype(bool)
    direction = effects["direction"].where(effects["direction"].isin(["increase", "decrease"]), "none")
    effects["call"] = np.where(pairwise, np.where(significant, direction, "none"), "")
    effects["note"] = effects["note"].fillna("")
    return effects[head + tail].reset_index(drop=True)


# -- reliability -----------------------------------------------------------------------------------


def _reliability(effects: pd.DataFrame, strategies: Sequence[str]) -> dict[str, pd.DataFrame]:
    tested = effects[effects["test"] != "skipped"]
    all_calls = reliability.calls_from_effects(tested) if len(tested) else tested.assign(call=[])
    image = all_calls[all_calls["level"] == "image"]
    others = all_calls[all_calls["level"] != "image"]
    repro = reliability.reproducibility_table(image, extra_levels=others, strategies=strategies)
    variation = reliability.variation_per_effect(image)
    return {
        "reproducibility": repro,
        "variation_per_effect": variation,
        "variation_between_strategies": reliability.compare_strategies(variation),
        "variation_per_model": reliability.variation_per_model(image, repro)
        if len(image)
        else pd.DataFrame(columns=list(reliability.VARIATION_PER_MODEL_COLUMNS)),
    }


def _consistency(measured: dict, levels: dict[str, list[str]]) -> pd.DataFrame:
    pairs = pd.DataFrame(
        [
            {"image_id": i, "source_a": a, "source_b": b, "f1": f1}
            for (i, a, b), f1 in measured["pairs"].items()
        ],
        columns=["image_id", "source_a", "source_b", "f1"],
    )
    counts = pd.DataFrame(
        [{"image_id": i, "source": s, "count": c} for (i, s), c in measured["counts"].items()],
        columns=["image_id", "source", "count"],
    )
    if not levels:
        return pd.DataFrame(columns=list(reliability.CONSISTENCY_COLUMNS))
    return reliability.consistency_summary(pairs, counts, levels)


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class EffectsResult:
    """What :func:`run_effects` wrote: the folder, every table by file stem, and ``run.json``."""

    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    run: dict = field(default_factory=dict)

    @property
    def warnings(self) -> pd.DataFrame:
        return self.tables["warnings"]


def _levels(lab, levels: Sequence[str] | None, warnings_rows: list[dict]) -> list[str]:
    wanted = list(levels) if levels is not None else list(LEVELS)
    unknown = [lv for lv in wanted if lv not in LEVELS]
    if unknown:
        raise InputError(None, f"unknown level(s) {', '.join(unknown)}; choose from {', '.join(LEVELS)}")
    if "image" not in wanted:
        wanted.insert(0, "image")
    if not lab.metadata["animal"].notna().any():
        dropped = [lv for lv in wanted if LEVELS[lv][1]]
        if dropped:
            warnings_rows.append(
                _warning(
                    message=f"the metadata names no animals: {' and '.join(dropped)} "
                    "analyses not run (images are the only unit)"
                )
            )
        wanted = [lv for lv in wanted if not LEVELS[lv][1]]
    return wanted


def _source_warnings(table: pd.DataFrame, plans: list[SourcePlan], lab) -> list[dict]:
    rows = []
    counted = table.groupby("source")["n_objects"].sum() if len(table) else pd.Series(dtype=int)
    for plan in plans:
        if not plan.files:
            rows.append(_warning(plan.name, message="label source has no masks"))
        elif counted.get(plan.name, 0) == 0:
            rows.append(
                _warning(
                    plan.name,
                    message="label source has no objects in any image (empty masks): "
                    "density 0 everywhere, intensity undefined",
                )
            )
    if lab.region_files:
        for image_id in lab.image_ids:
            if not lab.regions_of(image_id):
                rows.append(
                    _warning(
                        image_id=image_id,
                        message=f"no region mask: analysed whole, as region '{WHOLE_IMAGE}'",
                    )
                )
    no_group = table.loc[table["group"].isna(), "image_id"].unique() if len(table) else []
    for image_id in no_group:
        rows.append(
            _warning(image_id=image_id, message="no group (condition / stratum): left out of the tests")
        )
    return rows


def run_effects(
    lab,
    out_dir: str | Path,
    alpha: float = 0.05,
    exclude: Iterable[str] = (),
    jobs: int = 2,
    progress: bool = False,
    n_boot: int = 1000,
    *,
    seed: int = 0,
    levels: Sequence[str] | None = None,
    sources: Collection[str] | None = None,
    training_images: Mapping[str, Collection[str]] | None = None,
    include_in_sample: bool = False,
    threshold: float = 0.5,
    cache: bool | str | Path = True,
    consistency: bool = True,
) -> EffectsResult:
    """Quantify, test and compare a lab's treatment effects across all its label sources.

    Parameters
    ----------
    lab : Lab
        From :func:`cfosstats.datasets.load_lab`.
    out_dir : str or Path
        Folder to (re)create atomically with the tables of the module docstring and ``run.json``.
    alpha : float, default 0.05
        Family-wise significance level (Bonferroni over the pairwise comparisons).
    exclude : iterable of str
        Image ids to leave out (on top of the registry's ``exclude``); recorded in the output.
    jobs : int, default 2
        Worker processes (1 runs inline).
    progress : bool, default False
        Show rich progress bars.
    n_boot : int, default 1000
        Bootstrap resamples per eta² confidence interval (0: no intervals).
    seed : int, default 0
        Seed of the bootstrap.
    levels : sequence of str, optional
        Levels of analysis (:data:`LEVELS`: ``image``, ``animal``, ``mixed``); default all that
        the metadata allows (animal and mixed need animals). ``image`` is always run.
    sources : collection of str, optional
        Only these label sources (names or strategies); default all.
    training_images : mapping of str to collection of str, optional
        Label source -> the image ids its model was trained on (overrides what the model cards
        and the ``training`` flag say); the hook for model libraries.
    include_in_sample : bool, default False
        Test in-sample predictions too (not recommended; recorded).
    threshold : float, default 0.5
        IoU threshold of an object match (ensemble consistency).
    cache : bool or path, default True
        Cache of measurements: True for ``<out_dir>/.cache/measurements.json``, a path for
        another file, False for none.
    consistency : bool, default True
        Measure ensemble consistency (object matching); False writes ``consistency.csv`` with
        its header only (faster, e.g. for calibration runs).

    Returns
    -------
    EffectsResult
        ``tables`` by file stem and the ``run`` record.

    Raises
    ------
    InputError
        No groups to compare, an unknown image id in `exclude`, an unknown source, an unreadable
        mask or a mask of the wrong shape (names the file), a bad `alpha`.

    Examples
    --------
    >>> result = run_effects(lab, "out/effects", n_boot=200)  # doctest: +SKIP
    >>> result.tables["reproducibility"].loc[0, "summary"]  # doctest: +SKIP
    'found by 2/2 consensus ensembles, 7/8 expert models, 4/4 consensus models, ...'
    """
    if not 0 < alpha < 1:
        raise InputError(None, f"alpha must be between 0 and 1, got {alpha}")
    if jobs < 1:
        raise InputError(None, f"jobs must be at least 1, got {jobs}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    grouping = resolve_grouping(lab)
    excluded, warnings_rows = _exclusions(lab, exclude)
    levels = _levels(lab, levels, warnings_rows)
    plans = _plan_sources(lab, training_images, sources)
    consistency_levels = _consistency_levels(plans) if consistency else {}
    cache_path = (
        None
        if cache is False
        else (out_dir / ".cache" / "measurements.json" if cache is True else Path(cache))
    )
    store = MeasurementCache(cache_path)
    settings = (int(lab.config.min_object_size), lab.config.um2_per_px, float(threshold))
    measured = _measure_all(lab, plans, consistency_levels, excluded, settings, store, jobs, progress)
    measured_at = time.perf_counter()

    table = _quantification(lab, plans, measured, grouping, excluded, include_in_sample)
    table, normalisation_warnings = _normalise(table, grouping)
    warnings_rows += normalisation_warnings + _source_warnings(table, plans, lab)
    warnings_rows += _power_warnings(table, grouping, alpha, levels)
    long = _long(table)
    tables = {"quantification": table, "outliers": _outliers(long, 0.05)}
    tables["effects"] = _effects(long, table, grouping, alpha, levels, n_boot, seed, jobs, progress)
    tables.update(_reliability(tables["effects"], [p.strategy for p in plans]))
    tables["consistency"] = _consistency(measured, consistency_levels)
    tables["warnings"] = pd.DataFrame(warnings_rows, columns=list(WARNING_COLUMNS))
    run = _run_record(
        lab,
        grouping,
        alpha,
        levels,
        excluded,
        plans,
        tables,
        n_boot,
        seed,
        include_in_sample,
        threshold,
        store,
        {"measure_s": round(measured_at - started, 3), "total_s": round(time.perf_counter() - started, 3)},
    )
    with atomic_dir(out_dir, "effects") as tmp:
        for name in FILES:
            write_csv(tmp / f"{name}.csv", tables[name])
        write_text(tmp / "run.json", json.dumps(run, indent=2, default=str) + "\n")
        if cache is True:
            store.save(tmp / ".cache" / "measurements.json")
    if cache_path is not None and cache is not True:
        store.save(cache_path)
    return EffectsResult(out_dir, tables, run)


def _run_record(
    lab,
    grouping,
    alpha,
    levels,
    excluded,
    plans,
    tables,
    n_boot,
    seed,
    include_in_sample,
    threshold,
    store,
    timings,
) -> dict:
    effects = tables["effects"]
    image_rows = effects[effects["level"] == "image"]
    skipped = image_rows[image_rows["test"] == "skipped"].groupby("source")["note"].first()
    k = len(grouping.order)
    n_pairs = k * (k - 1) // 2
    return {
        "lab": lab.config.name,
        "layout": lab.layout,
        "grouping": grouping.name,
        "groups": list(grouping.order),
        "control_group": grouping.control,
        "grouping_note": (
            f"conditions are not published for these images: the {k} sampling strata are the groups"
            if grouping.name == "strata"
            else "experimental conditions, control first"
        ),
        "n_pairwise_comparisons": n_pairs,
        "bonferroni": f"each pair is tested at alpha / {n_pairs} = {alpha / n_pairs:.4g}",
        "alpha": alpha,
        "outlier_alpha": 0.05,
        "levels": list(levels),
        "readouts": {
            "density": str(tables["quantification"]["density_unit"].iloc[0])
            if len(tables["quantification"])
            else "",
            "intensity": "mean grey value of object pixels",
        },
        "tested_values": "readouts normalised to the control group's mean per source, region, experiment",
        "excluded": [{"image_id": i, "from": f} for i, f in sorted(excluded.items())],
        "in_sample_policy": IN_SAMPLE_POLICY
        + (" (overridden: in-sample rows tested)" if include_in_sample else ""),
        "min_images_per_group": MIN_IMAGES,
        "voting_strategies": list(reliability.VOTING_STRATEGIES),
        "vote_rule": "plurality of increase / decrease / none; a tie for the most votes gives none",
        "n_boot": n_boot,
        "seed": seed,
        "threshold": threshold,
        "min_object_size": int(lab.config.min_object_size),
        "pixel_size_px_per_um": lab.config.pixel_size_px_per_um,
        "sources": [
            {
                "name": p.name,
                "strategy": p.strategy,
                "n_images": len(p.files),
                "n_in_sample": len(p.in_sample),
                "in_sample_basis": p.basis,
                "skipped": skipped.get(p.name, ""),
            }
            for p in plans
        ],
        "cache_hits": store.hits,
        "timings": timings,
        "cfosstats_version": __version__,
    }
