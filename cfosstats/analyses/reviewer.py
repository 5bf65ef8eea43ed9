"""Reviewer mode: the validity analysis from a published per-image quantification table.

:func:`analyse_table` takes the frame of :func:`cfosstats.datasets.tables.read_quantification`
and runs what :func:`cfosstats.analyses.validity.run_effects` runs after measuring images: density from
the raw counts and areas, normalisation to the control group's mean per (analysis, region,
experiment) recomputed from the raw values (the table's own normalised values are only compared:
``normalisation_check``), Grubbs outliers (reported), the effect tests under the chosen
:class:`~cfosstats.stats.presets.Settings`, the majority vote and the variation tables.
``cfosstats effects --quantification`` writes them as :func:`~cfosstats.analyses.validity.run_effects`
does, so the report and a user read one format.

Tables (as in :mod:`cfosstats.analyses.validity`, plus two)
--------------------------------------------------
``quantification``, ``outliers``, ``effects``, ``reproducibility``, ``variation_per_effect``,
``variation_between_strategies``, ``variation_per_model`` and
``normalisation_check``: ``readout, n_given, n_compared, max_abs_difference, equal`` (the
table's normalised values against the recomputed ones, tolerance 1e-9).

Examples
--------
>>> from cfosstats.datasets.tables import read_quantification
>>> from cfosstats.stats.presets import get_preset
>>> from cfosstats.datasets.registry import load_lab_config
>>> config = load_lab_config("mue")
>>> table = read_quantification(
...     "../shared/data/source_data/Figure_5_source_data/quantifications_mue.csv", config)
>>> tables = analyse_table(table, config, get_preset("segebarth2020"))
>>> row = tables["effects"].query("source == 'ens_f27' and readout == 'density'").iloc[0]
>>> row["comparison"], float(row["statistic"]), round(float(row["eta2"]), 6), row["call"]
('Ext vs Ret', 25.0, 0.306806, 'increase')
>>> bool(tables["normalisation_check"]["equal"].all())
True
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

# The per-image tables downstream of measurement are the same as for images: validity's table
# helpers are reused so that both paths write one format.
from cfosstats.analyses.effect_tables import long_table, outlier_table, tidy_effects
from cfosstats.analyses.grouping import Grouping
from cfosstats.core.version import __version__
from cfosstats.stats import effects as effect_tests
from cfosstats.stats import reliability
from cfosstats.stats.presets import Settings
from cfosstats.stats.quantify import READOUTS, area_scale, density_unit, normalise_to_control

__all__ = ["NORMALISATION_CHECK_COLUMNS", "TABLE_FILES", "analyse_table", "voting"]

TABLE_FILES = (
    "quantification",
    "normalisation_check",
    "outliers",
    "effects",
    "reproducibility",
    "variation_per_effect",
    "variation_between_strategies",
    "variation_per_model",
)
NORMALISATION_CHECK_COLUMNS = ("readout", "n_given", "n_compared", "max_abs_difference", "equal")
TOLERANCE = 1e-9


def voting(settings: Settings) -> tuple[str, ...]:
    """The strategies whose analyses vote under ``settings``.

    Examples
    --------
    >>> from cfosstats.stats.presets import get_preset
    >>> "ensemble_members" in voting(get_preset("segebarth2020"))
    True
    """
    extra = ("ensemble_members",) if settings.members_vote else ()
    return (*reliability.VOTING_STRATEGIES, *extra)


def _quantification(table: pd.DataFrame, config) -> pd.DataFrame:
    out = table.copy()
    scale = area_scale(config.um2_per_px)
    out["in_sample"] = False
    out["in_sample_basis"] = "published table"
    out["excluded"] = out["image_id"].isin([str(i) for i in config.exclude])
    out["analysed"] = ~out["excluded"]
    out["region_area_mm2"] = out["region_area_px"] * config.um2_per_px * 1e-6 if config.um2_per_px else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["density"] = (out["n_objects"] / (out["region_area_px"] * scale)).where(out["region_area_px"] > 0)
    out["density_unit"] = density_unit(config.um2_per_px)
    out, _ = normalise_to_control(out, list(READOUTS), "group", config.control, use="analysed")
    return out


def _normalisation_check(quantification: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for readout in READOUTS:
        given = quantification[f"given_{readout}_normalised"]
        ours = quantification[f"{readout}_normalised"]
        both = given.notna() & ours.notna()
        difference = float((given[both] - ours[both]).abs().max()) if both.any() else float("nan")
        rows.append(
            {
                "readout": readout,
                "n_given": int(given.notna().sum()),
                "n_compared": int(both.sum()),
                "max_abs_difference": difference,
                "equal": bool(both.any() and difference <= TOLERANCE and given.notna().sum() == both.sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(NORMALISATION_CHECK_COLUMNS))


def _unit_tests(frame: pd.DataFrame, order: list[str], settings: Settings, alpha: float, animals: bool):
    frames = []
    image = effect_tests.group_tests(
        frame,
        "value",
        "group",
        order,
        alpha,
        method=settings.mann_whitney_method,
        min_values=settings.min_per_group,
        bonferroni_rule=settings.bonferroni_rule,
        omnibus_rule=settings.omnibus_rule,
    )
    frames.append(image.assign(level="image"))
    if animals and "animal" in settings.levels:
        tests = effect_tests.animal_level_tests(
            frame, "value", "group", "animal", order, alpha, method=settings.mann_whitney_method
        )
        frames.append(tests.assign(level="animal"))
    if animals and "mixed" in settings.levels:
        frames.append(
            effect_tests.mixed_model_tests(frame, "value", "group", "animal", order, alpha).assign(
                level="mixed"
            )
        )
    return frames


def _effects(long: pd.DataFrame, quantification, order, settings, alpha) -> pd.DataFrame:
    frames = []
    animals = bool(long["animal"].notna().any()) if len(long) else False
    for (source, strategy, region, readout), part in long.groupby(
        ["source", "strategy", "region", "readout"], sort=False
    ):
        head = {"source": source, "strategy": strategy, "region": region, "readout": readout}
        data = part[part["value"].notna()]
        sizes = data.groupby("group").size().reindex(order).fillna(0)
        if (sizes < settings.min_per_group).any():
            small = sizes[sizes < settings.min_per_group]
            note = (
                f"skipped: group {small.index[0]} has {int(small.iloc[0])} value(s) "
                f"(< {settings.min_per_group}, preset {settings.name})"
            )
            frames.append(pd.DataFrame([{**head, "level": "image", "test": "skipped", "note": note}]))
            continue
        for table in _unit_tests(part, order, settings, alpha, animals):
            table = table.assign(**head, eta2_ci_low=np.nan, eta2_ci_high=np.nan, ci_level=np.nan, n_boot=0)
            frames.append(table)
    effects = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return tidy_effects(effects, quantification, Grouping("conditions", "condition", tuple(order)))


def reliability_tables(effects: pd.DataFrame, settings: Settings, strategies: Iterable[str] = ()) -> dict:
    """Majority vote and variation tables of an effects frame (image level) under ``settings``.

    Parameters
    ----------
    effects : DataFrame
        Effects rows (``source, strategy, region, readout, level, comparison, p_value,
        significant, direction, eta2``), from images, a quantification table or a statistics table.
    settings : Settings
        Who votes (:func:`voting`).
    strategies : iterable of str
        Strategies that get columns in the reproducibility table even without a tested analysis.

    Returns
    -------
    dict of DataFrame
        ``reproducibility``, ``variation_per_effect``, ``variation_between_strategies``,
        ``variation_per_model`` (see :mod:`cfosstats.analyses.validity`).
    """
    voters = voting(settings)
    tested = effects[effects["test"] != "skipped"]
    calls = reliability.calls_from_effects(tested) if len(tested) else tested.assign(call=[])
    image = calls[calls["level"] == "image"]
    others = calls[calls["level"] != "image"]
    repro = reliability.reproducibility_table(
        image, voting=voters, extra_levels=others, strategies=list(strategies)
    )
    variation = reliability.variation_per_effect(image)
    per_model = (
        reliability.variation_per_model(image, repro, voting=voters)
        if len(image)
        else pd.DataFrame(columns=list(reliability.VARIATION_PER_MODEL_COLUMNS))
    )
    return {
        "reproducibility": repro,
        "variation_per_effect": variation,
        "variation_between_strategies": reliability.compare_strategies(variation),
        "variation_per_model": per_model,
    }


def analyse_table(
    table: pd.DataFrame, config, settings: Settings, alpha: float = 0.05
) -> dict[str, pd.DataFrame]:
    """Normalise, test and compare the analyses of a quantification table (module notes).

    Parameters
    ----------
    table : DataFrame
        From :func:`cfosstats.datasets.tables.read_quantification`.
    config : LabConfig
        The lab: conditions (control first), pixel size, exclusion list.
    settings : Settings
        Test and vote rules (:data:`cfosstats.stats.presets.PRESETS`).
    alpha : float, default 0.05
        Family-wise significance level.

    Returns
    -------
    dict of DataFrame
        By name, the tables of :data:`TABLE_FILES`.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> from cfosstats.datasets.tables import read_quantification
    >>> from cfosstats.stats.presets import get_preset
    >>> config = load_lab_config("mue")
    >>> table = read_quantification("data/published/mue/quantifications_mue.csv", config)
    >>> tables = analyse_table(table, config, get_preset("segebarth2020"))
    >>> sorted(tables)[:3], bool(tables["normalisation_check"]["equal"].all())
    (['effects', 'normalisation_check', 'outliers'], True)
    """
    order = list(config.conditions)
    quantification = _quantification(table, config)
    long = long_table(quantification)
    tables = {
        "quantification": quantification,
        "normalisation_check": _normalisation_check(quantification),
        "outliers": outlier_table(long, 0.05),
    }
    tables["effects"] = _effects(long, quantification, order, settings, alpha)
    tables.update(reliability_tables(tables["effects"], settings, quantification["strategy"].unique()))
    return tables


def run_record(config, settings: Settings, alpha: float, inputs: dict[str, str], tables: dict) -> dict:
    """``run.json`` of a table analysis: lab, preset, groups, inputs and what was read."""
    k = len(config.conditions)
    divisor = effect_tests.BONFERRONI_RULES[settings.bonferroni_rule](k)
    quantification = tables.get("quantification")
    record = {
        "lab": config.name,
        "layout": "published tables",
        "grouping": "conditions",
        "groups": list(config.conditions),
        "control_group": config.control,
        "alpha": alpha,
        "preset": settings.record(),
        "bonferroni": f"each pair is tested at alpha / {divisor} = {alpha / divisor:.4g}",
        "n_pairwise_comparisons": k * (k - 1) // 2,
        "levels": list(settings.levels),
        "voting_strategies": list(voting(settings)),
        "tested_values": "readouts normalised to the control group's mean per analysis, region, experiment "
        "(recomputed from the raw counts, areas and intensities)",
        "inputs": inputs,
        "cfosstats_version": __version__,
    }
    if quantification is not None and len(quantification):
        record["read"] = {
            "analyses_per_strategy": quantification.groupby("strategy")["source"].nunique().to_dict(),
            "images_per_group": quantification.groupby("group")["image_id"].nunique().to_dict(),
            "regions": sorted(quantification["region"].unique()),
        }
    return record
