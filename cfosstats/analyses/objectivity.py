"""Objectivity of a lab's annotations: estimated ground truth and annotator agreement.

Thin orchestration over :mod:`cfosstats.objects.groundtruth` and :mod:`cfosstats.stats.agreement`: it
reads a :class:`~cfosstats.datasets.Lab`, maps a pure per-image function over the annotated
images (in parallel with ``jobs`` worker processes; ``jobs=1`` runs inline) and writes tidy
tables, every folder atomically (all files appear together or none do).

``estimate_groundtruth(lab, out_dir, method=...)`` writes
---------------------------------------------------------
``<image_id>_<label>.png``
    The estimated ground truth of every annotated image, 0/255, the image's size. Estimated
    from the masks as drawn (ignored regions are *not* cut out: that is what reproduces the
    published ``est_GT``; they are left out when objects are counted).
``annotators.csv``
    ``image_id, annotator, method, performance_source, sensitivity, specificity,
    n_annotators``: one row per (image, annotator present). For ``staple`` the sensitivity and
    specificity are STAPLE's own estimates (``performance_source = staple``); for the other
    methods the annotator's pixel sensitivity and specificity against the estimate
    (``pixels_vs_estimate``).
``warnings.csv``
    ``image_id, source, message``: annotators missing from an image (the image is estimated
    from those present). Always written; empty (header only) when nothing was wrong.

``run_agreement(lab, out_dir)`` writes
--------------------------------------
The reference ``est_GT`` is the published estimated ground truth where the lab has it, else
STAPLE of the annotators present (computed here); ``images.csv`` says which, per image. Every
label set is split into objects with :func:`cfosstats.objects.label.label_objects` (8-connected, the
lab's ``min_object_size``, the image's ignored region removed); pixel Dice uses the masks with
the ignored region removed.

``objects.csv``
    :data:`~cfosstats.stats.agreement.OBJECT_AGREEMENT_COLUMNS`: ``image_id, rater, reference,
    n_rater, n_reference, tp, precision, recall, f1, mean_iou``, one row per image and ordered
    pair of label sets (annotators and ``est_GT``).
``annotator_summary.csv``
    Per annotator against ``est_GT``: ``rater, reference, n_images, f1_median, f1_q25, f1_q75,
    f1_iqr, f1_mean, precision_median, recall_median, mean_iou_median``.
``pairwise_f1.csv``
    Per ordered pair over images: ``rater, reference, n_images, f1_mean, f1_median, f1_sd``.
``pixel_dice.csv``
    :data:`~cfosstats.stats.agreement.PIXEL_DICE_COLUMNS`: ``image_id, rater_a, rater_b,
    pixels_a, pixels_b, pixels_both, dice`` per image and unordered pair.
``counts.csv``
    ``image_id, rater, count``: objects per image and label set.
``count_agreement.csv``
    :data:`~cfosstats.stats.agreement.COUNT_AGREEMENT_COLUMNS`: six ICCs and Krippendorff's
    alpha (interval, ratio) of the *annotators'* counts (``est_GT`` left out).
``bland_altman.csv``
    :data:`~cfosstats.stats.agreement.BLAND_ALTMAN_COLUMNS`: per annotator and image, count
    against ``est_GT`` (mean, diff) plus the annotator's bias, SD and limits of agreement.
``expert_range.csv``
    :data:`~cfosstats.stats.agreement.EXPERT_RANGE_COLUMNS`: per image the worst and best
    annotator F1 against ``est_GT``.
``fleiss_kappa.csv``
    :data:`~cfosstats.stats.fleiss.KAPPA_COLUMNS`: Fleiss' kappa of the annotators over objects
    matched across them plus as many random background proposals
    (:mod:`cfosstats.objects.rating_items`), with its Landis & Koch band.
``images.csv``
    ``image_id, reference_source, annotators, missing_annotators, ignored_pixels``;
    ``reference_source`` is ``published`` or ``staple``.
``warnings.csv``
    ``image_id, source, message`` as above.
``run.json``
    Lab, threshold, criterion, minimum object size, reference rule, package version.

Examples
--------
>>> from cfosstats.datasets import load_lab  # doctest: +SKIP
>>> lab = load_lab("wue1", data="../shared/data/train_data")  # doctest: +SKIP
>>> result = run_agreement(lab, "results/wue1/objectivity", jobs=2)  # doctest: +SKIP
>>> result.tables["annotator_summary"][["rater", "f1_median"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_mask, write_mask
from cfosstats.core.parallel import map_tasks
from cfosstats.core.version import __version__
from cfosstats.datasets.layout import ESTIMATED_GT, mask_name
from cfosstats.objects.groundtruth import METHODS, estimate_consensus, staple
from cfosstats.objects.label import index_mask_objects
from cfosstats.objects.matching import match_pairs
from cfosstats.objects.rating_items import ITEM_COLUMNS, rating_items
from cfosstats.stats import agreement
from cfosstats.stats.fleiss import kappa_by_strategy

WARNING_COLUMNS = ("image_id", "source", "message")
ANNOTATOR_COLUMNS = (
    "image_id",
    "annotator",
    "method",
    "performance_source",
    "sensitivity",
    "specificity",
    "n_annotators",
)
ANNOTATORS = "annotators"
RATED_ITEM_COLUMNS = ("image_id", "strategy", *ITEM_COLUMNS)
IMAGE_COLUMNS = ("image_id", "reference_source", "annotators", "missing_annotators", "ignored_pixels")
COUNT_COLUMNS = ("image_id", "rater", "count")


# -- per-image work: pure top-level functions of paths, cheap to pickle ------------------------


def _read_masks(mask_paths: dict[str, Path], expected_shape: tuple[int, int] | None) -> dict[str, np.ndarray]:
    """Read masks and check that they all have the image's (or else the first mask's) shape."""
    masks: dict[str, np.ndarray] = {}
    reference_shape, reference_name = expected_shape, "the image"
    for name, path in mask_paths.items():
        mask = read_mask(path)
        if reference_shape is None:
            reference_shape, reference_name = mask.shape, f"{name}'s mask"
        elif mask.shape != tuple(reference_shape):
            raise InputError(
                path,
                f"mask shape {mask.shape[0]}x{mask.shape[1]} differs from {reference_name} "
                f"({reference_shape[0]}x{reference_shape[1]})",
            )
        masks[name] = mask
    return masks


def estimate_image(
    image_id: str,
    mask_paths: dict[str, Path],
    expected_shape: tuple[int, int] | None,
    method: str,
    min_size: int,
    out_path: Path,
    options: dict[str, Any] | None = None,
) -> list[dict]:
    """Estimate one image's ground truth, write it to `out_path`, return annotators.csv rows.

    A pure function of paths (for process pools).
    """
    masks = _read_masks(mask_paths, expected_shape)
    result = estimate_consensus(list(masks.values()), method, min_size=min_size, **(options or {}))
    write_mask(out_path, result.estimate)
    return [
        {
            "image_id": image_id,
            "annotator": name,
            "method": method,
            "performance_source": result.performance_source,
            "sensitivity": sensitivity,
            "specificity": specificity,
            "n_annotators": len(masks),
        }
        for name, sensitivity, specificity in zip(masks, result.sensitivity, result.specificity, strict=True)
    ]


@dataclass(frozen=True)
class ImageAgreement:
    """Agreement tables of one image (output of :func:`agreement_of_image`)."""

    objects: pd.DataFrame
    pixel_dice: pd.DataFrame
    counts: pd.DataFrame
    reference_source: str
    ignored_pixels: int
    rated_items: pd.DataFrame = field(default_factory=pd.DataFrame)


def agreement_of_image(
    image_id: str,
    annotator_paths: dict[str, Path],
    reference_path: Path | None,
    ignore_path: Path | None,
    expected_shape: tuple[int, int] | None,
    min_size: int,
    threshold: float = 0.5,
    criterion: str = "gt",
) -> ImageAgreement:
    """Object, pixel and count agreement of one image's annotators and reference.

    Parameters
    ----------
    image_id : str
    annotator_paths : dict of str to Path
        Annotator -> mask file, for the annotators present on this image.
    reference_path : Path or None
        Published ``est_GT`` mask; None to use STAPLE of the annotators' masks.
    ignore_path : Path or None
        Ignored-region mask; its pixels are removed from every mask before anything else.
    expected_shape : (int, int) or None
        The image's shape; every mask must have it (else the first mask's shape is used).
    min_size : int
        The lab's minimum object size.
    threshold, criterion
        True-positive rule of :func:`cfosstats.objects.matching.match_labels`.

    Returns
    -------
    ImageAgreement
    """
    paths = dict(annotator_paths)
    if reference_path is not None:
        paths[ESTIMATED_GT] = reference_path
    masks = _read_masks(paths, expected_shape)
    ignore = None
    if ignore_path is not None:
        ignore = _read_masks({"ignore": ignore_path}, next(iter(masks.values())).shape)["ignore"]
    if reference_path is None:
        # STAPLE on the uncut masks, as the published estimates were made (see groundtruth).
        masks[ESTIMATED_GT] = staple([masks[name] for name in annotator_paths]).estimate
    if ignore is not None:
        masks = {name: mask & ~ignore for name, mask in masks.items()}
    # Labelled and indexed in one pass each; every pair then reads only foreground pixels.
    labels = {name: index_mask_objects(mask, min_size=min_size) for name, mask in masks.items()}
    counts = pd.DataFrame(
        {
            "image_id": image_id,
            "rater": list(labels),
            "count": [index.n_objects for index in labels.values()],
        },
        columns=list(COUNT_COLUMNS),
    )
    annotators = {name: labels[name] for name in annotator_paths}
    matches = match_pairs(labels, threshold, criterion)  # shared by the F1 table and the kappa items
    return ImageAgreement(
        objects=agreement.pairwise_object_agreement(labels, image_id, threshold, criterion, matches),
        pixel_dice=agreement.pixel_dice(masks, image_id),
        counts=counts,
        reference_source="published" if reference_path is not None else "staple",
        ignored_pixels=0 if ignore is None else int(ignore.sum()),
        rated_items=strategy_items(annotators, image_id, ANNOTATORS, threshold, criterion, ignore, matches),
    )


def strategy_items(
    labels: dict, image_id: str, strategy: str, threshold: float, criterion: str, ignore=None, matches=None
) -> pd.DataFrame:
    """One image's rated items (:func:`~cfosstats.objects.rating_items.rating_items`) of one
    strategy's label sets, with ``image_id`` and ``strategy``; empty for fewer than 2 sets.
    The background proposals' seed is fixed by the image id and the strategy; `matches`, the
    pairs already matched (:func:`~cfosstats.objects.matching.match_pairs`), are reused."""
    if len(labels) < 2:
        return pd.DataFrame(columns=list(RATED_ITEM_COLUMNS))
    seed = zlib.crc32(f"{image_id}/{strategy}".encode())
    items = rating_items(labels, threshold, criterion, seed=seed, ignore=ignore, matches=matches)
    items.insert(0, "strategy", strategy)
    items.insert(0, "image_id", image_id)
    return items


def _image_shape(lab, image_id: str) -> tuple[int, int] | None:
    try:
        return tuple(lab.image_shape(image_id))
    except (AttributeError, InputError):
        return None  # no image file: masks are checked against each other


def _annotator_paths(lab, image_id: str) -> tuple[dict[str, Path], list[str]]:
    """Mask files of the annotators present on an image, and the names of those missing."""
    present, missing = {}, []
    for annotator in lab.annotators:
        try:
            present[annotator] = Path(lab.mask_path(annotator, image_id))
        except InputError:
            missing.append(annotator)
    return present, missing


def _missing_warnings(image_id: str, missing: list[str], present: dict) -> list[dict]:
    return [
        {
            "image_id": image_id,
            "source": name,
            "message": f"no mask from {name}; analysed with the {len(present)} annotators present "
            f"({', '.join(present)})",
        }
        for name in missing
    ]


def _warnings_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(WARNING_COLUMNS))


@dataclass
class GroundTruthRun:
    """What :func:`estimate_groundtruth` wrote: the folder, annotators.csv and warnings."""

    out_dir: Path
    annotators: pd.DataFrame
    warnings: pd.DataFrame


def estimate_groundtruth(
    lab,
    out_dir: str | Path,
    *,
    method: str = "staple",
    jobs: int = 2,
    progress: bool = False,
    **options,
) -> GroundTruthRun:
    """Estimate the ground truth of every annotated image of a lab and write it to a folder.

    Parameters
    ----------
    lab : Lab
        From :func:`cfosstats.datasets.load_lab` (uses ``config``, ``annotators``,
        ``annotated_image_ids()``, ``mask_path`` and ``image_shape``).
    out_dir : str or Path
        Folder to (re)create atomically; see the module docstring for its files.
    method : str, default "staple"
        A key of :data:`cfosstats.objects.groundtruth.METHODS`.
    jobs : int, default 2
        Worker processes (1 runs inline).
    progress : bool, default False
        Show a rich progress bar.
    **options
        Passed to the method (e.g. ``k=3`` for ``objects``).

    Returns
    -------
    GroundTruthRun

    Raises
    ------
    InputError
        A mask cannot be read or its shape differs from the image's (names the file).

    Examples
    --------
    >>> run = estimate_groundtruth(lab, "out/est_GT", method="staple")  # doctest: +SKIP
    >>> run.annotators.groupby("annotator")["sensitivity"].median()  # doctest: +SKIP
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose from {sorted(METHODS)}")
    out_dir = Path(out_dir)
    image_ids = list(lab.annotated_image_ids())
    warning_rows: list[dict] = []
    plans = []
    for image_id in image_ids:
        present, missing = _annotator_paths(lab, image_id)
        warning_rows += _missing_warnings(image_id, missing, present)
        plans.append((image_id, present, _image_shape(lab, image_id)))

    with atomic_dir(out_dir, f"groundtruth --method {method}") as tmp:
        tasks = [
            (
                image_id,
                present,
                shape,
                method,
                int(lab.config.min_object_size),
                tmp / mask_name(image_id, lab.config.label),
                dict(options),
            )
            for image_id, present, shape in plans
        ]
        rows: list[dict] = []
        for result in map_tasks(estimate_image, tasks, jobs, progress, f"{method} estimate"):
            rows += result
        annotators = pd.DataFrame(rows, columns=list(ANNOTATOR_COLUMNS))
        warnings_table = _warnings_table(warning_rows)
        write_csv(tmp / "annotators.csv", annotators)
        write_csv(tmp / "warnings.csv", warnings_table)
    return GroundTruthRun(out_dir, annotators, warnings_table)


@dataclass
class AgreementResult:
    """What :func:`run_agreement` wrote: the folder and every table by file stem."""

    out_dir: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def warnings(self) -> pd.DataFrame:
        return self.tables["warnings"]


def run_agreement(
    lab,
    out_dir: str | Path,
    *,
    threshold: float = 0.5,
    jobs: int = 2,
    criterion: str = "gt",
    progress: bool = False,
) -> AgreementResult:
    """Agreement of a lab's annotators with each other and with the estimated ground truth.

    Parameters
    ----------
    lab : Lab
        From :func:`cfosstats.datasets.load_lab` (uses ``config``, ``annotators``,
        ``has_published_gt``, ``annotated_image_ids()``, ``mask_path``, ``ignore_files`` or
        ``ignore_mask``, ``image_shape``).
    out_dir : str or Path
        Folder to (re)create atomically; see the module docstring for its tables.
    threshold : float, default 0.5
        IoU threshold of a true positive.
    jobs : int, default 2
        Worker processes (1 runs inline).
    criterion : {"gt", "ge"}, default "gt"
        IoU strictly above (the paper) or at least `threshold`.
    progress : bool, default False
        Show a rich progress bar.

    Returns
    -------
    AgreementResult
        ``tables`` holds every written table by file stem (``objects``, ``warnings``, ...).

    Raises
    ------
    InputError
        A mask cannot be read or its shape differs from the image's (names the file).

    Examples
    --------
    >>> result = run_agreement(lab, "out/objectivity", jobs=2)  # doctest: +SKIP
    >>> result.tables["count_agreement"][["shrout_fleiss", "value"]]  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    min_size = int(lab.config.min_object_size)
    warning_rows: list[dict] = []
    image_rows: list[dict] = []
    tasks = []
    for image_id in lab.annotated_image_ids():
        present, missing = _annotator_paths(lab, image_id)
        warning_rows += _missing_warnings(image_id, missing, present)
        reference_path = None
        if lab.has_published_gt:
            try:
                reference_path = Path(lab.mask_path(ESTIMATED_GT, image_id))
            except InputError:
                warning_rows.append(
                    {
                        "image_id": image_id,
                        "source": ESTIMATED_GT,
                        "message": "no published est_GT mask; STAPLE of the annotators used",
                    }
                )
        ignore_path = _ignore_path(lab, image_id)
        tasks.append(
            (
                image_id,
                present,
                reference_path,
                ignore_path,
                _image_shape(lab, image_id),
                min_size,
                threshold,
                criterion,
            )
        )
        image_rows.append(
            {
                "image_id": image_id,
                "reference_source": "published" if reference_path is not None else "staple",
                "annotators": ";".join(present),
                "missing_annotators": ";".join(missing),
            }
        )

    per_image = list(map_tasks(agreement_of_image, tasks, jobs, progress, "agreement"))
    for row, result in zip(image_rows, per_image, strict=True):
        row["ignored_pixels"] = result.ignored_pixels

    tables = _agreement_tables(per_image)
    tables["images"] = pd.DataFrame(image_rows, columns=list(IMAGE_COLUMNS))
    tables["warnings"] = _warnings_table(warning_rows)
    run_info = {
        "lab": lab.config.name,
        "threshold": threshold,
        "criterion": criterion,
        "min_object_size": min_size,
        "reference": ESTIMATED_GT,
        "reference_rule": "published est_GT where present, else STAPLE of the annotators",
        "n_images": len(per_image),
        "annotators": list(lab.annotators),
        "cfosstats_version": __version__,
    }
    with atomic_dir(out_dir, "agreement") as tmp:
        for name, table in tables.items():
            write_csv(tmp / f"{name}.csv", table)
        write_text(tmp / "run.json", json.dumps(run_info, indent=2) + "\n")
    return AgreementResult(out_dir, tables)


def _ignore_path(lab, image_id: str) -> Path | None:
    files = getattr(lab, "ignore_files", None)
    if files is not None:
        path = files.get(image_id)
        return None if path is None else Path(path)
    return None


def _agreement_tables(per_image: Sequence[ImageAgreement]) -> dict[str, pd.DataFrame]:
    """Whole-lab tables from the per-image results."""

    def concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=list(columns))
        return pd.concat(frames, ignore_index=True)

    objects = concat([r.objects for r in per_image], agreement.OBJECT_AGREEMENT_COLUMNS)
    counts = concat([r.counts for r in per_image], COUNT_COLUMNS)
    tables = {
        "objects": objects,
        "pixel_dice": concat([r.pixel_dice for r in per_image], agreement.PIXEL_DICE_COLUMNS),
        "counts": counts,
    }
    has_annotators = not objects.empty and (objects["rater"] != ESTIMATED_GT).any()
    if has_annotators:
        tables["annotator_summary"] = agreement.annotator_vs_reference_summary(objects)
        tables["expert_range"] = agreement.expert_range(objects)
    else:
        tables["annotator_summary"] = pd.DataFrame()
        tables["expert_range"] = pd.DataFrame(columns=list(agreement.EXPERT_RANGE_COLUMNS))
    tables["pairwise_f1"] = agreement.pairwise_f1_matrix(objects)
    n_annotators = counts.loc[counts["rater"] != ESTIMATED_GT, "rater"].nunique()
    tables["count_agreement"] = (
        agreement.count_agreement(counts, exclude={ESTIMATED_GT})
        if n_annotators >= 2
        else pd.DataFrame(columns=list(agreement.COUNT_AGREEMENT_COLUMNS))
    )
    tables["bland_altman"] = agreement.bland_altman(counts, reference=ESTIMATED_GT)
    rated = concat([r.rated_items for r in per_image], RATED_ITEM_COLUMNS)
    tables["fleiss_kappa"] = kappa_by_strategy(rated)
    return tables
