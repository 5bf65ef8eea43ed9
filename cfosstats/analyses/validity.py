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

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfosstats.analyses.effect_tables import LEVELS, effects_table, long_table, outlier_table
from cfosstats.analyses.grouping import Grouping, resolve_grouping
from cfosstats.analyses.measure import MeasurementCache, measure_all
from cfosstats.analyses.plan import consistency_levels, plan_sources
from cfosstats.analyses.quantification import (
    MIN_IMAGES,
    WARNING_COLUMNS,
    normalise,
    quantification_table,
    source_warnings,
    warning_row,
)
from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.version import __version__
from cfosstats.stats import reliability
from cfosstats.stats.power import smallest_mann_whitney_p

__all__ = ["EffectsResult", "FILES", "LEVELS", "resolve_grouping", "run_effects"]

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
IN_SAMPLE_POLICY = (
    "a model's prediction of an image it was trained on is in-sample; in-sample rows are kept in "
    "quantification.csv and left out of normalisation, outliers and effect tests"
)


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
                warning_row(
                    image_id=image_id,
                    message=f"registry exclude list names image "
                    f"{image_id}, which this data does not hold; ignored",
                )
            )
    for image_id in requested:
        out[image_id] = "option" if image_id not in out else "registry+option"
    return out, warnings_rows


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
        min_p = smallest_mann_whitney_p(smallest[0], smallest[1])
        if min_p > level:
            rows.append(
                warning_row(
                    message=f"{name} level: with {smallest[0]} and {smallest[1]} {name}s in the smallest "
                    f"groups, the smallest possible two-sided Mann-Whitney p is {min_p:.3g} > alpha per "
                    f"pair ({alpha} / {k * (k - 1) // 2} = {level:.3g}): no pair can be significant at "
                    f"the {name} level (too few units, not no effect)"
                )
            )
    return rows


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
                warning_row(
                    message=f"the metadata names no animals: {' and '.join(dropped)} "
                    "analyses not run (images are the only unit)"
                )
            )
        wanted = [lv for lv in wanted if not LEVELS[lv][1]]
    return wanted


def run_effects(
    lab,
    out_dir: str | Path,
    *,
    alpha: float = 0.05,
    exclude: Iterable[str] = (),
    jobs: int = 2,
    progress: bool = False,
    n_boot: int = 1000,
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
        another file, False for none. The effect tests are cached beside it
        (``measurements-tests.json``, :mod:`cfosstats.analyses.effect_cache`).
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
    plans = plan_sources(lab, training_images, sources)
    compared = consistency_levels(plans) if consistency else {}
    cache_path = (
        None
        if cache is False
        else (out_dir / ".cache" / "measurements.json" if cache is True else Path(cache))
    )
    store = MeasurementCache(cache_path)
    settings = (int(lab.config.min_object_size), lab.config.um2_per_px, float(threshold))
    measured = measure_all(lab, plans, compared, excluded, settings, store, jobs, progress)
    measured_at = time.perf_counter()

    table = quantification_table(lab, plans, measured, grouping, excluded, include_in_sample)
    table, normalisation_warnings = normalise(table, grouping)
    warnings_rows += normalisation_warnings + source_warnings(table, plans, lab)
    warnings_rows += _power_warnings(table, grouping, alpha, levels)
    long = long_table(table)
    tables = {"quantification": table, "outliers": outlier_table(long, 0.05)}
    tests_store = MeasurementCache(None if cache_path is None else _tests_cache(cache_path))
    tables["effects"] = effects_table(
        long, table, grouping, alpha, levels, n_boot, seed, jobs, progress, store=tests_store
    )
    tables.update(_reliability(tables["effects"], [p.strategy for p in plans]))
    tables["consistency"] = _consistency(measured, compared)
    tables["warnings"] = pd.DataFrame(warnings_rows, columns=list(WARNING_COLUMNS))
    choices = _Choices(alpha, levels, n_boot, seed, include_in_sample, threshold)
    timings = {
        "measure_s": round(measured_at - started, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    run = _run_record(lab, grouping, choices, excluded, plans, tables, store, timings)
    run["test_cache_hits"] = tests_store.hits
    with atomic_dir(out_dir, "effects") as tmp:
        for name in FILES:
            write_csv(tmp / f"{name}.csv", tables[name])
        write_text(tmp / "run.json", json.dumps(run, indent=2, default=str) + "\n")
        if cache is True:
            store.save(tmp / ".cache" / "measurements.json")
            tests_store.save(_tests_cache(tmp / ".cache" / "measurements.json"))
    if cache_path is not None and cache is not True:
        store.save(cache_path)
        tests_store.save(_tests_cache(cache_path))
    return EffectsResult(out_dir, tables, run)


def _tests_cache(measurements: Path) -> Path:
    """The tests' cache file beside the measurements' (same folder, same lifetime)."""
    return measurements.with_name(f"{measurements.stem}-tests.json")


@dataclass(frozen=True)
class _Choices:
    """The test choices of a run, as :func:`_run_record` records them."""

    alpha: float
    levels: Sequence[str]
    n_boot: int
    seed: int
    include_in_sample: bool
    threshold: float


def _run_record(lab, grouping, choices: _Choices, excluded, plans, tables, store, timings) -> dict:
    alpha = choices.alpha
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
        "levels": list(choices.levels),
        "readouts": {
            "density": str(tables["quantification"]["density_unit"].iloc[0])
            if len(tables["quantification"])
            else "",
            "intensity": "mean grey value of object pixels",
        },
        "tested_values": "readouts normalised to the control group's mean per source, region, experiment",
        "excluded": [{"image_id": i, "from": f} for i, f in sorted(excluded.items())],
        "in_sample_policy": IN_SAMPLE_POLICY
        + (" (overridden: in-sample rows tested)" if choices.include_in_sample else ""),
        "min_images_per_group": MIN_IMAGES,
        "voting_strategies": list(reliability.VOTING_STRATEGIES),
        "vote_rule": "plurality of increase / decrease / none; a tie for the most votes gives none",
        "n_boot": choices.n_boot,
        "seed": choices.seed,
        "threshold": choices.threshold,
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
