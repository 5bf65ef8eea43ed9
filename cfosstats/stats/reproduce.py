"""Published statistics against recomputed ones: does cfosstats reproduce the study's numbers?

:func:`compare_with_published` joins the statistics a study published (read by
:func:`cfosstats.datasets.statistics.read_statistics`) with those cfosstats computed from the
per-image table (:func:`cfosstats.analyses.reviewer.analyse_table`), quantity by quantity.
:func:`compare_variation` does the same for the variation per effect of the study's Figure 4.

Columns of :func:`compare_with_published` (:data:`COMPARISON_COLUMNS`)
-------------------------------------------------------------------------
``source, region, readout, comparison, quantity`` (``U``, ``H``, ``eta2``, ``p``,
``eta2_critical_0.05`` / ``_0.01`` / ``_0.001``, ``mean_a``, ``mean_b``, ``median_a``,
``median_b``, ``sd_a``, ``sd_b``, ``call``: the study's code 0 / I / J), ``published``,
``computed``, ``abs_difference``, ``tolerance`` (1e-9; 0 for the call), ``equal``.
Quantities the study did not publish are not listed.

Examples
--------
>>> from cfosstats.datasets.statistics import read_statistics
>>> from cfosstats.datasets.tables import read_quantification
>>> from cfosstats.stats.presets import get_preset
>>> from cfosstats.datasets.registry import load_lab_config
>>> from cfosstats.analyses.reviewer import analyse_table
>>> folder = "../shared/data/source_data/Figure_5_source_data/"
>>> config, study = load_lab_config("mue"), get_preset("segebarth2020")
>>> tables = analyse_table(read_quantification(folder + "quantifications_mue.csv", config), config, study)
>>> published = read_statistics(folder + "stat_results_quantifications_mue.csv", config, study)
>>> comparison = compare_with_published(tables, published, config, study)
>>> comparison["source"].nunique(), bool(comparison["equal"].all())
(45, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["COMPARISON_COLUMNS", "compare_variation", "compare_with_published", "reproduction_summary"]

COMPARISON_COLUMNS = (
    "source",
    "region",
    "readout",
    "comparison",
    "quantity",
    "published",
    "computed",
    "abs_difference",
    "tolerance",
    "equal",
)
TOLERANCE = 1e-9
KEYS = ["source", "region", "readout", "comparison"]


def _group_statistics(quantification: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and SD (ddof 1) of the normalised readout per analysis, region, group."""
    parts = []
    analysed = quantification[quantification["analysed"]]
    for readout in ("density", "intensity"):
        values = analysed[["source", "region", "group", f"{readout}_normalised"]].dropna()
        grouped = values.groupby(["source", "region", "group"])[f"{readout}_normalised"]
        table = grouped.agg(mean="mean", median="median", sd="std").reset_index()
        parts.append(table.assign(readout=readout))
    return pd.concat(parts, ignore_index=True).set_index(["source", "region", "readout", "group"])


def _code(call: str, comparison: str, conditions: list[str]) -> float:
    a, b = comparison.split(" vs ")
    if call == "increase":
        return float(conditions.index(b) + 1)
    if call == "decrease":
        return float(conditions.index(a) + 1)
    return 0.0


def _computed_pair(row, groups, conditions, divisor) -> dict:
    n = row["n_total"]
    out = {
        "U": row["statistic"],
        "eta2": row["eta2"],
        "p": row["p_value"],
        "call": _code(row["call"], row["comparison"], conditions),
    }
    for level in (0.05, 0.01, 0.001):
        out[f"eta2_critical_{level}"] = float(stats.chi2.ppf(1 - level / divisor, 1) / n) if n else np.nan
    for side, group in (("a", row["group_a"]), ("b", row["group_b"])):
        key = (row["source"], row["region"], row["readout"], group)
        for name in ("mean", "median", "sd"):
            out[f"{name}_{side}"] = float(groups.loc[key, name]) if key in groups.index else np.nan
    return out


def _computed_omnibus(row, k: int) -> dict:
    n = row["n_total"]
    critical = float((stats.chi2.ppf(1 - 0.05, k - 1) - k + 1) / (n - k)) if n and n > k else np.nan
    return {"H": row["statistic"], "eta2": row["eta2"], "p": row["p_value"], "eta2_critical_0.05": critical}


def _published_pair(row) -> dict:
    return {
        "U": row["statistic"],
        "eta2": row["eta2"],
        "p": row["p_value"],
        "eta2_critical_0.05": row["eta2_critical"],
        "mean_a": row["mean_a"],
        "mean_b": row["mean_b"],
        "median_a": row["median_a"],
        "median_b": row["median_b"],
        "sd_a": row["sd_a"],
        "sd_b": row["sd_b"],
        "call": row["published_call"],
        "eta2_critical_0.01": row["eta2_critical_0.01"],
        "eta2_critical_0.001": row["eta2_critical_0.001"],
    }


def compare_with_published(tables: dict, published: pd.DataFrame, config, settings) -> pd.DataFrame:
    """Every published number next to the one cfosstats computed (module notes).

    Parameters
    ----------
    tables : dict of DataFrame
        From :func:`cfosstats.analyses.reviewer.analyse_table` (``effects``, ``quantification``).
    published : DataFrame
        From :func:`cfosstats.datasets.statistics.read_statistics` (a ``stat_results`` table).
    config : LabConfig
        The lab (condition order).
    settings : Settings
        The preset the computation used (its Bonferroni rule gives the critical values).

    Returns
    -------
    DataFrame
        :data:`COMPARISON_COLUMNS`.
    """
    conditions = list(config.conditions)
    k = len(conditions)
    divisor = settings.bonferroni_divisor(k)
    effects = tables["effects"]
    tested = effects[(effects["level"] == "image") & (effects["test"] != "skipped")]
    by_key = {tuple(r[c] for c in KEYS): r for _, r in tested.iterrows()}
    groups = _group_statistics(tables["quantification"])
    rows = []
    for _, row in published.iterrows():
        key = tuple(row[c] for c in KEYS)
        mine = by_key.get(key)
        if row["comparison"] == "all":
            wanted = {"eta2": row["eta2"], "p": row["p_value"], "eta2_critical_0.05": row["eta2_critical"]}
            if mine is not None and pd.notna(row["eta2"]):
                wanted["H"] = row["eta2"] * (mine["n_total"] - k) + k - 1  # H from the published eta²_H
            computed = _computed_omnibus(mine, k) if mine is not None else {}
        else:
            wanted = _published_pair(row)
            computed = _computed_pair(mine, groups, conditions, divisor) if mine is not None else {}
        for quantity, value in wanted.items():
            if pd.isna(value):
                continue
            ours = computed.get(quantity, np.nan)
            tolerance = 0.0 if quantity == "call" else TOLERANCE
            difference = abs(float(ours) - float(value)) if pd.notna(ours) else np.nan
            rows.append(
                {
                    **dict(zip(KEYS, key)),
                    "quantity": quantity,
                    "published": float(value),
                    "computed": float(ours) if pd.notna(ours) else np.nan,
                    "abs_difference": difference,
                    "tolerance": tolerance,
                    "equal": bool(pd.notna(difference) and difference <= tolerance),
                }
            )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def reproduction_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per quantity: how many published values, how many reproduced, the largest difference.

    Examples
    --------
    >>> table = pd.DataFrame({"quantity": ["eta2", "eta2", "call"], "equal": [True, False, True],
    ...     "abs_difference": [0.0, 0.1, 0.0], "source": ["a", "b", "a"]})
    >>> reproduction_summary(table)[["quantity", "n_published", "n_equal"]]
      quantity  n_published  n_equal
    0     call            1        1
    1     eta2            2        1
    """
    grouped = comparison.groupby("quantity", sort=True)
    table = grouped.agg(
        n_published=("equal", "size"),
        n_equal=("equal", "sum"),
        max_abs_difference=("abs_difference", "max"),
        n_analyses=("source", "nunique"),
    )
    return table.reset_index()


def compare_variation(variation: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Variation per effect recomputed from the per-analysis statistics against the study's table.

    Parameters
    ----------
    variation : DataFrame
        From :func:`cfosstats.stats.reliability.variation_per_effect` (``region, readout,
        comparison, strategy, eta2_sd, eta2_mean``).
    published : DataFrame
        The study's ``variation_per_effect.xlsx`` read with its strategies and effects in the
        package's names (``region, readout, comparison, strategy, eta_std, eta_mean``, and
        ``FDR`` = calls that differ from the majority, ``vote_diff_count`` = their share).

    Returns
    -------
    DataFrame
        ``region, readout, comparison, strategy, eta2_sd_published, eta2_sd, eta2_mean_published,
        eta2_mean, abs_difference`` (largest of SD and mean).
    """
    keys = ["region", "readout", "comparison", "strategy"]
    merged = published.merge(variation, on=keys, how="left")
    merged["abs_difference"] = np.maximum(
        (merged["eta_std"] - merged["eta2_sd"]).abs(), (merged["eta_mean"] - merged["eta2_mean"]).abs()
    )
    merged = merged.rename(columns={"eta_std": "eta2_sd_published", "eta_mean": "eta2_mean_published"})
    return merged[
        [*keys, "eta2_sd_published", "eta2_sd", "eta2_mean_published", "eta2_mean", "abs_difference"]
    ]
