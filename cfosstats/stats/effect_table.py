"""The effects table: its columns and the row building and group checks every effect test shares.

One row per test (:data:`EFFECT_COLUMNS` then :data:`EFFECT_EXTRA_COLUMNS`, documented in
:mod:`cfosstats.stats.effects`); the image-level, animal-level and mixed-model tests fill the
same rows, so their tables stack.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

EFFECT_COLUMNS = (
    "comparison",
    "test",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "statistic",
    "p_value",
    "p_adjusted",
    "n_comparisons",
    "alpha",
    "z",
    "z_tie_corrected",
    "eta2",
    "eta2_critical",
    "significant",
    "direction",
    "median_a",
    "median_b",
    "mean_a",
    "mean_b",
    "shapiro_p_a",
    "shapiro_p_b",
    "levene_p",
    "note",
)
EFFECT_EXTRA_COLUMNS = ("n_total", "alpha_comparison", "p_value_z", "estimate", "unit")

MIN_VALUES = 3  # per group, for any test
MIN_ANIMALS = 2  # per group, for the mixed model and the cluster bootstrap
OMNIBUS = "all"


def _shapiro_p(values: np.ndarray) -> float:
    if values.size < MIN_VALUES or np.all(values == values[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.shapiro(values).pvalue)


def _levene_p(arrays: list[np.ndarray], center: str) -> float:
    if any(a.size < 2 for a in arrays):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.levene(*arrays, center=center).pvalue)


def _check_order(order: Sequence) -> list:
    order = list(order)
    if len(order) < 2:
        raise ValueError(f"order needs at least two groups, got {order!r}")
    if len(set(order)) != len(order):
        raise ValueError(f"order has duplicate groups: {order!r}")
    return order


def _group_note(name, n: int, noun: str = "values", minimum: int = MIN_VALUES) -> str:
    """``"group 'C-' has 2 values (< 3)"``; singular noun for 1, ``"has no values"`` for 0."""
    if n == 0:
        return f"group '{name}' has no {noun}"
    return f"group '{name}' has {n} {noun[:-1] if n == 1 else noun} (< {minimum})"


def _numeric(column: pd.Series) -> np.ndarray:
    """A column as float64, missing values (NaN, None, pd.NA) and non-numbers as NaN."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _split(frame: pd.DataFrame, value: str, group: str, order: list) -> dict:
    """The non-NaN values of each group of ``order``, in order."""
    values = _numeric(frame[value])
    labels = frame[group].to_numpy(dtype=object)
    keep = ~np.isnan(values)
    return {g: values[keep & (labels == g)] for g in order}


def _blank_row(comparison: str, test: str, a, b, alpha: float, n_comparisons: int, unit: str) -> dict:
    nan = float("nan")
    return {
        "comparison": comparison,
        "test": test,
        "group_a": a,
        "group_b": b,
        "n_a": pd.NA,
        "n_b": pd.NA,
        "statistic": nan,
        "p_value": nan,
        "p_adjusted": nan,
        "n_comparisons": n_comparisons,
        "alpha": alpha,
        "z": nan,
        "z_tie_corrected": nan,
        "eta2": nan,
        "eta2_critical": nan,
        "significant": False,
        "direction": "" if comparison == OMNIBUS else "none",
        "median_a": nan,
        "median_b": nan,
        "mean_a": nan,
        "mean_b": nan,
        "shapiro_p_a": nan,
        "shapiro_p_b": nan,
        "levene_p": nan,
        "note": "",
        "n_total": pd.NA,
        "alpha_comparison": alpha / n_comparisons,
        "p_value_z": nan,
        "estimate": nan,
        "unit": unit,
    }


def _describe_pair(row: dict, a_values: np.ndarray, b_values: np.ndarray) -> None:
    row["n_a"], row["n_b"] = int(a_values.size), int(b_values.size)
    row["n_total"] = int(a_values.size + b_values.size)
    if a_values.size:
        row["median_a"], row["mean_a"] = float(np.median(a_values)), float(np.mean(a_values))
    if b_values.size:
        row["median_b"], row["mean_b"] = float(np.median(b_values)), float(np.mean(b_values))
    row["shapiro_p_a"], row["shapiro_p_b"] = _shapiro_p(a_values), _shapiro_p(b_values)


def _join(notes) -> str:
    return "; ".join(dict.fromkeys(n for n in notes if n))


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[*EFFECT_COLUMNS, *EFFECT_EXTRA_COLUMNS])
    return table.astype(
        {
            "n_a": "Int64",
            "n_b": "Int64",
            "n_total": "Int64",
            "n_comparisons": int,
            "significant": bool,
            "statistic": float,
            "p_value": float,
            "p_adjusted": float,
            "alpha": float,
        }
    )


def _omnibus_row(test: str, arrays: dict, order: list, invalid: dict, alpha: float, unit: str) -> dict:
    """The omnibus row of ``order`` before its test: N, and Levene (``center='mean'``) when valid."""
    row = _blank_row(OMNIBUS, test, "", "", alpha, 1, unit)
    row["n_total"] = int(sum(arrays[g].size for g in order))
    if not invalid:
        row["levene_p"] = _levene_p([arrays[g] for g in order], center="mean")
    return row


def _pair_rows(
    test: str, arrays: dict, order: list, invalid: dict, alpha: float, n_comparisons: int, unit: str
) -> Iterator[tuple]:
    """Each pair ``(a, b)`` of ``order`` before its test: ``(a, b, row, x, y, notes)``.

    The row describes the two samples ``x``, ``y``; ``notes`` are those of its invalid groups
    (``invalid``: group -> note) and Levene (``center='median'``) is filled in when there are none.
    """
    for a, b in combinations(order, 2):
        row = _blank_row(f"{a} vs {b}", test, a, b, alpha, n_comparisons, unit)
        x, y = arrays[a], arrays[b]
        _describe_pair(row, x, y)
        notes = [invalid.get(a, ""), invalid.get(b, "")]
        if not any(notes):
            row["levene_p"] = _levene_p([x, y], center="median")
        yield a, b, row, x, y, notes
