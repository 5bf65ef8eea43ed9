"""Treatment effects: the study's non-parametric tests, effect sizes and sensitivity analyses.

Pure functions: tidy DataFrames in, tidy DataFrames out. :func:`group_tests` runs the procedure of
Segebarth et al. (eLife 2020, ``Source_code/compute_statistics.ipynb``) on one set of values (one
label source x region x readout); :func:`animal_level_tests` and :func:`mixed_model_tests` are the
sensitivity analyses with animals as the unit; :func:`bootstrap_eta2_ci` gives percentile
confidence intervals of the effect sizes.

The procedure, exactly
----------------------
* Per group: Shapiro-Wilk p (``scipy.stats.shapiro``); Levene p (``scipy.stats.levene``) with
  ``center='mean'`` when more than two groups are tested together (the omnibus row) and
  ``center='median'`` for two (every pairwise row), as the study did. Both are reported only: the
  non-parametric tests are used throughout.
* Three or more groups: ``scipy.stats.kruskal`` (H with tie correction),
  ``eta2_H = (H - k + 1) / (N - k)``, critical ``eta2_H = (chi2.ppf(1 - alpha, k - 1) - k + 1) / (N
  - k)``; the omnibus row is significant when ``p <= alpha``.
* Every pair ``i < j`` of ``order`` (``group_a`` = the earlier group, e.g. the control):
  ``scipy.stats.mannwhitneyu(a, b, alternative="two-sided")`` (scipy's default ``method="auto"``),
  ``U`` of ``group_a``, ``Z = (U - n1 n2 / 2) / sqrt(n1 n2 (n1 + n2 + 1) / 12)`` **without tie
  correction** (the study's formula; a positive Z means ``group_a`` tends to be larger),
  ``eta2 = Z**2 / (n1 + n2)``. The tie-corrected Z is reported too (``z_tie_corrected``).
* Bonferroni: ``n_comparisons = k (k - 1) / 2`` (all pairs of ``order``), a pair is significant
  when ``p <= alpha / n_comparisons`` (``<=``, as the study), ``p_adjusted = min(1, p *
  n_comparisons)``, critical ``eta2 = chi2.ppf(1 - alpha / n_comparisons, 1) / (n1 + n2)``. The
  study divided alpha by the number of groups, which is the same number for its three groups
  (and for two groups it used alpha itself, as ``k (k - 1) / 2 = 1`` does here).
* Direction: ``"increase"`` when the pair is significant and ``median_b > median_a``,
  ``"decrease"`` when it is lower, ``"none"`` otherwise (also for equal medians).

``eta2 >= eta2_critical`` is equivalent to ``p_value_z <= alpha / n_comparisons``, where
``p_value_z = chi2.sf(Z**2, 1)`` is the normal-approximation p of the uncorrected Z without
continuity correction (for untied data it equals scipy's ``method="asymptotic",
use_continuity=False``). The significance call uses scipy's default p (exact for small untied
samples, otherwise normal with continuity and tie correction), so at the border the two can
disagree: ``x = [1, 2, 3, 5]``, ``y = [4, 6, 7, 8]`` has ``eta2 = 0.51 > 0.48`` but an exact
``p = 0.057``. The study's scipy (< 1.7) always used the normal approximation with continuity and
tie correction; pass ``method="asymptotic"`` to reproduce that.

Edge cases (conventions)
------------------------
* NaN values are dropped first; groups not in ``order`` are ignored.
* A group with fewer than 3 values (or none) gives rows with NaN statistics, ``significant``
  False, ``direction`` ``"none"`` and a ``note`` (``"group 'C-' has 2 values (< 3)"``); the
  omnibus row needs every group of ``order``. ``n_comparisons`` always counts all pairs of
  ``order`` (the planned comparisons), whether or not they could be computed. (The study's
  notebook required more than 3 values in every group, ``size() > 3``, and skipped the whole
  analysis otherwise; here 3 suffice and the pairs that can be tested are.)
* All values of a test equal: ``p_value`` NaN (the test is undefined; scipy's answer varies with
  its version), ``z = eta2 = 0`` for a pair (the study's formula), ``z_tie_corrected`` NaN,
  ``eta2`` NaN for the omnibus row, note ``"all values equal"``.
* The omnibus row has ``group_a = group_b = ""``, ``n_a``/``n_b`` NA (``n_total`` holds N),
  ``n_comparisons = 1``, ``p_adjusted = p_value``, ``direction = ""``.

Columns
-------
:data:`EFFECT_COLUMNS` (documented, stable) followed by :data:`EFFECT_EXTRA_COLUMNS`:
``n_total`` (N of the test), ``alpha_comparison`` (``alpha / n_comparisons``), ``p_value_z``
(see above; equal to ``p_value`` for the Kruskal-Wallis row), ``estimate`` (mixed model
contrast ``mean_b - mean_a`` in the model; NaN for the rank tests), ``unit`` (``"image"``,
``"animal"`` or ``"image|animal"`` for the mixed model).

Examples
--------
>>> table = pd.DataFrame(
...     {"condition": ["H"] * 4 + ["C+"] * 4, "cfos": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}
... )
>>> row = group_tests(table, "cfos", "condition", order=["H", "C+"]).iloc[0]
>>> row["comparison"], round(float(row["z"]), 4), round(float(row["eta2"]), 4), row["direction"]
('H vs C+', -2.3094, 0.6667, 'increase')
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
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
BOOTSTRAP_COLUMNS = ("comparison", "eta2_ci_low", "eta2_ci_high", "n_boot", "level")
BOOTSTRAP_EXTRA_COLUMNS = ("test", "eta2", "unit", "note")

MIN_VALUES = 3  # per group, for any test
MIN_ANIMALS = 2  # per group, for the mixed model and the cluster bootstrap
OMNIBUS = "all"


# -- small building blocks ---------------------------------------------------------------------


def n_pairwise_comparisons(k: int) -> int:
    """Number of pairwise comparisons of ``k`` groups, ``k (k - 1) / 2``.

    Examples
    --------
    >>> n_pairwise_comparisons(3)
    3
    """
    return k * (k - 1) // 2


def is_significant(p_value: float, alpha: float = 0.05, n_comparisons: int = 1) -> bool:
    """Bonferroni decision ``p_value <= alpha / n_comparisons`` (False for NaN).

    Examples
    --------
    >>> is_significant(0.05 / 3, 0.05, 3), is_significant(0.0167, 0.05, 3)
    (True, False)
    """
    return bool(np.isfinite(p_value) and p_value <= alpha / n_comparisons)


def bonferroni(p_value: float, n_comparisons: int) -> float:
    """Bonferroni-adjusted p, ``min(1, p * n_comparisons)`` (NaN stays NaN).

    Examples
    --------
    >>> bonferroni(0.02, 3)
    0.06
    """
    return float(min(1.0, p_value * n_comparisons)) if np.isfinite(p_value) else float("nan")


def effect_direction(median_a: float, median_b: float, significant: bool) -> str:
    """``"increase"`` / ``"decrease"`` of group b against group a when significant, else ``"none"``.

    Examples
    --------
    >>> effect_direction(1.0, 1.4, True), effect_direction(1.0, 0.7, True), effect_direction(1, 2, False)
    ('increase', 'decrease', 'none')
    """
    if not significant or not (np.isfinite(median_a) and np.isfinite(median_b)):
        return "none"
    if median_b > median_a:
        return "increase"
    if median_b < median_a:
        return "decrease"
    return "none"


def critical_eta2_mann_whitney(n_total: int, alpha: float, n_comparisons: int = 1) -> float:
    """Critical eta² of a Mann-Whitney pair: ``chi2.ppf(1 - alpha / n_comparisons, 1) / n_total``.

    Parameters
    ----------
    n_total : int
        ``n1 + n2`` of the pair.
    alpha : float
        Family-wise significance level.
    n_comparisons : int
        Bonferroni divisor (1 for two groups, ``k (k - 1) / 2`` for ``k`` groups).

    Examples
    --------
    >>> round(critical_eta2_mann_whitney(8, 0.05), 6)  # 3.841459 / 8
    0.480182
    """
    if n_total <= 0:
        return float("nan")
    return float(stats.chi2.ppf(1.0 - alpha / n_comparisons, 1) / n_total)


def critical_eta2_kruskal(n_total: int, k: int, alpha: float) -> float:
    """Critical eta²_H of Kruskal-Wallis: ``(chi2.ppf(1 - alpha, k - 1) - k + 1) / (N - k)``.

    Examples
    --------
    >>> round(critical_eta2_kruskal(12, 3, 0.05), 6)  # (5.991465 - 2) / 9
    0.443496
    """
    if n_total <= k:
        return float("nan")
    return float((stats.chi2.ppf(1.0 - alpha, k - 1) - k + 1) / (n_total - k))


def _values(values) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[~np.isnan(array)]


def mann_whitney_effect(x, y, method: str = "auto") -> dict:
    """Two-sided Mann-Whitney U test of ``x`` against ``y`` with the study's effect size.

    Parameters
    ----------
    x, y : array-like of float
        The two samples (``x`` = group a, e.g. the control). NaNs are dropped.
    method : str
        Passed to ``scipy.stats.mannwhitneyu`` (``"auto"``, ``"asymptotic"``, ``"exact"``).

    Returns
    -------
    dict
        ``U`` (scipy's statistic, the U of ``x``: pairs with ``x > y`` plus half the ties),
        ``p_value`` (scipy's two-sided p), ``z = (U - n1 n2 / 2) / sqrt(n1 n2 (n1 + n2 + 1) / 12)``
        (no tie correction), ``z_tie_corrected`` (variance ``n1 n2 / 12 * (N + 1 - sum(t**3 - t) /
        (N (N - 1)))``; NaN when all values are equal), ``eta2 = z**2 / (n1 + n2)``, ``n1``,
        ``n2`` and ``p_value_z = chi2.sf(z**2, 1)`` (normal p of the uncorrected z).

    Examples
    --------
    >>> result = mann_whitney_effect([1, 2, 3, 4], [5, 6, 7, 8])
    >>> result["U"], round(result["z"], 4), round(result["eta2"], 4)
    (0.0, -2.3094, 0.6667)
    """
    x, y = _values(x), _values(y)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_effect needs at least one value in each sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    u = float(result.statistic)
    n_total = n1 + n2
    centred = u - n1 * n2 / 2.0
    z = centred / np.sqrt(n1 * n2 * (n_total + 1) / 12.0)
    _, tie_sizes = np.unique(np.concatenate([x, y]), return_counts=True)
    ties = float(np.sum(tie_sizes.astype(float) ** 3 - tie_sizes))
    variance_tc = n1 * n2 / 12.0 * ((n_total + 1) - ties / (n_total * (n_total - 1)))
    z_tc = centred / np.sqrt(variance_tc) if variance_tc > 1e-12 else float("nan")
    return {
        "U": u,
        "p_value": float(result.pvalue),
        "z": float(z),
        "z_tie_corrected": float(z_tc),
        "eta2": float(z**2 / n_total),
        "n1": int(n1),
        "n2": int(n2),
        "p_value_z": float(stats.chi2.sf(z**2, 1)),
    }


def kruskal_effect(groups: list) -> dict:
    """Kruskal-Wallis H test of several samples with the study's effect size eta²_H.

    Parameters
    ----------
    groups : list of array-like
        One sample per group (NaNs dropped); each needs at least one value.

    Returns
    -------
    dict
        ``H`` and ``p_value`` (``scipy.stats.kruskal``, tie-corrected H; NaN when all values are
        equal), ``eta2_h = (H - k + 1) / (N - k)``, ``k``, ``n`` (N).

    Examples
    --------
    >>> result = kruskal_effect([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    >>> round(result["H"], 4), round(result["eta2_h"], 4)  # H = 7.2, (7.2 - 2) / 6
    (7.2, 0.8667)
    """
    arrays = [_values(g) for g in groups]
    if len(arrays) < 2 or any(a.size == 0 for a in arrays):
        raise ValueError("kruskal_effect needs at least two non-empty samples")
    k = len(arrays)
    n_total = int(sum(a.size for a in arrays))
    all_values = np.concatenate(arrays)
    if np.all(all_values == all_values[0]):
        h, p = float("nan"), float("nan")
    else:
        h, p = (float(v) for v in stats.kruskal(*arrays))
    eta2_h = (h - k + 1) / (n_total - k) if n_total > k else float("nan")
    return {"H": h, "p_value": p, "eta2_h": float(eta2_h), "k": k, "n": n_total}


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


#: How many comparisons alpha is divided by, by rule name, from the number of groups ``k``.
#: ``pairs``: all pairwise comparisons, ``k (k - 1) / 2`` (cfosstats); ``groups``: ``k`` for three
#: or more groups, 1 for two (the study's notebook); the two agree for k <= 3.
BONFERRONI_RULES = {
    "pairs": n_pairwise_comparisons,
    "groups": lambda k: k if k > 2 else 1,
}
#: Significance rule of the omnibus Kruskal-Wallis row, by name: ``p <= alpha`` (cfosstats, as
#: the pairs) or ``p < alpha`` (the study's notebook).
OMNIBUS_RULES = {
    "<=": lambda p, alpha: bool(np.isfinite(p) and p <= alpha),
    "<": lambda p, alpha: bool(np.isfinite(p) and p < alpha),
}


def _rank_tests(
    arrays: dict,
    order: list,
    alpha: float,
    unit: str,
    method: str,
    min_values: int = MIN_VALUES,
    bonferroni_rule: str = "pairs",
    omnibus_rule: str = "<=",
) -> pd.DataFrame:
    k = len(order)
    m = BONFERRONI_RULES[bonferroni_rule](k)
    noun = "animals" if unit == "animal" else "values"
    invalid = {
        g: _group_note(g, arrays[g].size, noun, min_values) for g in order if arrays[g].size < min_values
    }
    rows = []
    if k >= 3:
        row = _blank_row(OMNIBUS, "kruskal", "", "", alpha, 1, unit)
        row["n_total"] = int(sum(arrays[g].size for g in order))
        if invalid:
            row["note"] = _join(invalid.values())
        else:
            result = kruskal_effect([arrays[g] for g in order])
            row["levene_p"] = _levene_p([arrays[g] for g in order], center="mean")
            if np.isnan(result["H"]):
                row["note"] = "all values equal"
            else:
                p = result["p_value"]
                row.update(
                    statistic=result["H"],
                    p_value=p,
                    p_adjusted=p,
                    p_value_z=p,
                    eta2=result["eta2_h"],
                    eta2_critical=critical_eta2_kruskal(result["n"], k, alpha),
                    significant=OMNIBUS_RULES[omnibus_rule](p, alpha),
                )
        rows.append(row)
    for a, b in combinations(order, 2):
        row = _blank_row(f"{a} vs {b}", "mann_whitney", a, b, alpha, m, unit)
        x, y = arrays[a], arrays[b]
        _describe_pair(row, x, y)
        notes = [invalid.get(a, ""), invalid.get(b, "")]
        if not any(notes):
            result = mann_whitney_effect(x, y, method=method)
            row["levene_p"] = _levene_p([x, y], center="median")
            row.update(
                statistic=result["U"],
                z=result["z"],
                z_tie_corrected=result["z_tie_corrected"],
                eta2=result["eta2"],
                eta2_critical=critical_eta2_mann_whitney(x.size + y.size, alpha, m),
                p_value_z=result["p_value_z"],
            )
            both = np.concatenate([x, y])
            if np.all(both == both[0]):
                notes.append("all values equal")
            else:
                p = result["p_value"]
                significant = is_significant(p, alpha, m)
                row.update(
                    p_value=p,
                    p_adjusted=bonferroni(p, m),
                    significant=significant,
                    direction=effect_direction(row["median_a"], row["median_b"], significant),
                )
        row["note"] = _join(notes)
        rows.append(row)
    return _table(rows)


# -- the study's procedure ------------------------------------------------------------------------


def group_tests(
    frame: pd.DataFrame,
    value: str,
    group: str,
    order: Sequence,
    alpha: float = 0.05,
    method: str = "auto",
    *,
    min_values: int = MIN_VALUES,
    bonferroni_rule: str = "pairs",
    omnibus_rule: str = "<=",
) -> pd.DataFrame:
    """The study's tests on one set of values (images as the unit).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per image (of one label source, region and readout).
    value : str
        Column with the values (e.g. normalised objects per mm²); NaNs are dropped.
    group : str
        Column with the condition of each row.
    order : sequence
        The conditions to compare, control first; pairs are ``(order[i], order[j])`` with
        ``i < j``, so ``group_a`` is the earlier one. Other conditions are ignored.
    alpha : float
        Family-wise significance level.
    method : str
        ``scipy.stats.mannwhitneyu`` method for the pairwise p (``"auto"``, scipy's default;
        ``"asymptotic"`` reproduces the study's scipy < 1.7).
    min_values : int, default 3
        Fewest values a group needs to be tested (the study: 4, ``size() > 3``).
    bonferroni_rule : str, default "pairs"
        A key of :data:`BONFERRONI_RULES`: what alpha is divided by for the pairs.
    omnibus_rule : str, default "<="
        A key of :data:`OMNIBUS_RULES`: when the Kruskal-Wallis row is significant.

    Returns
    -------
    pandas.DataFrame
        :data:`EFFECT_COLUMNS` then :data:`EFFECT_EXTRA_COLUMNS`: one omnibus row (``test``
        ``"kruskal"``, ``comparison`` ``"all"``) when ``order`` has 3 or more groups, then one
        row per pair (``test`` ``"mann_whitney"``, ``comparison`` ``"a vs b"``). See the module
        notes for the formulas and the edge cases.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {
    ...         "condition": ["H"] * 5 + ["C-"] * 5 + ["C+"] * 5,
    ...         "cfos": [1.0, 1.1, 0.9, 1.2, 1.0, 1.1, 0.95, 1.05, 1.15, 1.0, 2.0, 2.1, 1.9, 2.2, 2.05],
    ...     }
    ... )
    >>> tests = group_tests(table, "cfos", "condition", order=["H", "C-", "C+"])
    >>> tests[["comparison", "test", "n_comparisons", "significant", "direction"]]
    ... # doctest: +NORMALIZE_WHITESPACE
      comparison          test  n_comparisons  significant direction
    0        all       kruskal              1         True
    1    H vs C-  mann_whitney              3        False      none
    2    H vs C+  mann_whitney              3         True  increase
    3   C- vs C+  mann_whitney              3         True  increase
    """
    order = _check_order(order)
    if bonferroni_rule not in BONFERRONI_RULES or omnibus_rule not in OMNIBUS_RULES:
        raise ValueError(f"unknown rule: bonferroni {bonferroni_rule!r}, omnibus {omnibus_rule!r}")
    arrays = _split(frame, value, group, order)
    return _rank_tests(arrays, order, alpha, "image", method, min_values, bonferroni_rule, omnibus_rule)


def animal_means(frame: pd.DataFrame, value: str, group: str, animal: str) -> pd.DataFrame:
    """Mean of ``value`` per (group, animal), NaN values and rows without an animal dropped.

    Animals are identified by the pair (group, animal): ids are taken as nested in groups.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``animal``, ``value`` (the mean, under the original column names) and
        ``n_images``.

    Examples
    --------
    >>> table = pd.DataFrame({"g": ["H", "H", "H"], "mouse": ["m1", "m1", "m2"], "v": [1.0, 3.0, 5.0]})
    >>> animal_means(table, "v", "g", "mouse")
       g mouse    v  n_images
    0  H    m1  2.0         2
    1  H    m2  5.0         1
    """
    data = frame[[group, animal, value]].copy()
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data = data.dropna(subset=[value, animal])
    grouped = data.groupby([group, animal], sort=False, observed=True, dropna=False)[value]
    means = grouped.agg(["mean", "size"]).reset_index()
    return means.rename(columns={"mean": value, "size": "n_images"})


def animal_level_tests(
    frame: pd.DataFrame,
    value: str,
    group: str,
    animal: str,
    order: Sequence,
    alpha: float = 0.05,
    method: str = "auto",
) -> pd.DataFrame:
    """The study's tests with animals as the unit: images are averaged per animal first.

    Parameters
    ----------
    frame, value, group, order, alpha, method
        As in :func:`group_tests`.
    animal : str
        Column naming the animal of each image (nested in groups, see :func:`animal_means`).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`group_tests`; ``n_a``, ``n_b``, ``n_total`` count animals and
        ``unit`` is ``"animal"``. A group with fewer than 3 animals gives NaN rows with a note.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {
    ...         "condition": ["H"] * 6 + ["C+"] * 6,
    ...         "mouse": ["a", "a", "b", "b", "c", "c", "d", "d", "e", "e", "f", "f"],
    ...         "cfos": [1.0, 1.2, 0.9, 1.1, 1.0, 1.0, 2.0, 2.2, 1.9, 2.1, 2.5, 2.4],
    ...     }
    ... )
    >>> row = animal_level_tests(table, "cfos", "condition", "mouse", ["H", "C+"]).iloc[0]
    >>> int(row["n_a"]), int(row["n_b"]), row["unit"]
    (3, 3, 'animal')
    """
    order = _check_order(order)
    means = animal_means(frame, value, group, animal)
    return _rank_tests(_split(means, value, group, order), order, alpha, "animal", method)


# -- mixed model ---------------------------------------------------------------------------------


def _fit_mixed(endog, exog, groups, reml: bool):
    """Fit a random-intercept MixedLM; returns (result or None, notes).

    Powell (then Nelder-Mead) optimisation: derivative-free, it copes with the boundary
    (animal variance 0) where statsmodels' default gradient methods fail or raise.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    fit_kind = "REML" if reml else "ML"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = MixedLM(endog, exog, groups=groups).fit(reml=reml, method=["powell", "nm"])
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as error:
            return None, [f"{fit_kind} fit failed: {error}"]
    notes = []
    variance = float(np.asarray(result.cov_re).ravel()[0])
    singular = not variance > 1e-6 * float(result.scale)
    if singular:
        notes.append(f"{fit_kind} fit singular: animal variance estimated as 0 (same as least squares)")
    for w in caught:
        message = str(w.message).strip().rstrip(".")
        boundary = "boundary of the parameter space" in message or "not positive definite" in message
        if issubclass(w.category, ConvergenceWarning) and not (singular and boundary):
            notes.append(f"{fit_kind} fit: {message}")
    if not getattr(result, "converged", True):
        notes.append(f"{fit_kind} fit did not converge")
    return result, notes


def _marginal_r2(result, exog: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Nakagawa & Schielzeth marginal R²: var(fixed part) / (that + animal var + residual var)."""
    n_fixed = exog.shape[1]
    fitted = exog @ np.asarray(result.fe_params)[:n_fixed]
    if rows is not None:
        fitted = fitted[rows]
    var_fixed = float(np.var(fitted))
    var_animal = max(float(np.asarray(result.cov_re).ravel()[0]), 0.0)
    total = var_fixed + var_animal + float(result.scale)
    return var_fixed / total if total > 0 else float("nan")


def mixed_model_tests(
    frame: pd.DataFrame,
    value: str,
    group: str,
    animal: str,
    order: Sequence,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Linear mixed model with a random intercept per animal (images as repeated measures).

    ``value ~ C(group, Treatment(order[0])) + (1 | animal)`` (``statsmodels`` ``MixedLM``, the
    design is built directly: intercept + one indicator per non-reference group). Animals are
    identified by (group, animal) as in :func:`animal_means`.

    * Omnibus row (3 or more groups; ``test`` ``"mixed_lm_f"``): Wald F test that every group
      coefficient is 0, from the REML fit, on (groups - 1, animals - groups) degrees of freedom;
      ``statistic`` = F; ``eta2`` = marginal R² of the fit.
    * Pair rows (``test`` ``"mixed_lm_wald"``): Wald t of the contrast ``beta_b - beta_a`` from the
      REML fit, two-sided p from Student's t on animals - groups degrees of freedom, Bonferroni
      as in :func:`group_tests`; ``statistic`` = ``z`` = the Wald statistic, ``estimate`` = the
      contrast, ``direction`` from its sign (when significant); ``eta2`` = the marginal R²
      restricted to the images of the two groups (share of the variance explained by the fixed
      effects there, with the model's variance components).

      Why t and F rather than the normal and chi² references: condition is a between-animal
      factor, so its information grows with animals, not images ("containment" degrees of
      freedom). With a handful of animals per group the asymptotic references are liberal:
      on 200 simulated null studies (6 animals per group) the normal reference gave a
      false-positive rate of 0.085 at alpha 0.05, Student's t 0.035.
    * ``eta2_critical``, ``z_tie_corrected`` and ``p_value_z`` are NaN; medians, means,
      Shapiro-Wilk and Levene are those of the images (as in :func:`group_tests`).

    Groups with fewer than 3 images or fewer than 2 animals are left out of the fit; their rows
    are NaN with a note. Convergence warnings and singular fits (animal variance 0, equivalent
    to ordinary least squares) are noted on every row of the fit; a failed fit gives NaN rows
    with a note. No exception for any of these.

    Parameters
    ----------
    frame, value, group, order, alpha
        As in :func:`group_tests`.
    animal : str
        Column naming the animal of each image.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`group_tests`, ``unit`` ``"image|animal"``; ``n_a``, ``n_b`` count
        images.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame(
    ...     {
    ...         "condition": np.repeat(["H", "C+"], 12),
    ...         "mouse": np.repeat([f"m{i}" for i in range(8)], 3),
    ...         "cfos": np.r_[np.zeros(12), np.ones(12)] + rng.normal(0, 0.2, 24),
    ...     }
    ... )
    >>> row = mixed_model_tests(table, "cfos", "condition", "mouse", ["H", "C+"]).iloc[0]
    >>> row["test"], bool(row["significant"]), row["direction"]
    ('mixed_lm_wald', True, 'increase')
    """
    order = _check_order(order)
    k = len(order)
    m = n_pairwise_comparisons(k)
    unit = "image|animal"
    data = frame[[group, animal, value]].copy()
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data = data.dropna(subset=[value, animal])
    labels = data[group].to_numpy(dtype=object)
    arrays = {g: _numeric(data[value])[labels == g] for g in order}
    n_animals = {g: int(data.loc[labels == g, animal].nunique()) for g in order}
    invalid = {}
    for g in order:
        if arrays[g].size < MIN_VALUES:
            invalid[g] = _group_note(g, arrays[g].size)
        elif n_animals[g] < MIN_ANIMALS:
            invalid[g] = _group_note(g, n_animals[g], "animals", MIN_ANIMALS)
    valid = [g for g in order if g not in invalid]

    fit_notes: list[str] = []
    reml = None
    df_denominator = 0
    if len(valid) >= 2:
        used = np.isin(labels, np.array(valid, dtype=object))
        raw = _numeric(data[value])[used]
        spread = float(np.std(raw))
        endog = (raw - raw.mean()) / spread if spread > 0 else raw  # scale-free optimisation
        used_labels = labels[used]
        exog = np.column_stack([np.ones(endog.size)] + [(used_labels == g).astype(float) for g in valid[1:]])
        animal_keys = pd.MultiIndex.from_arrays([used_labels, data[animal].to_numpy(dtype=object)[used]])
        clusters = pd.factorize(animal_keys)[0]
        df_denominator = int(clusters.max()) + 1 - len(valid)  # animals - groups
        if not spread > 0:
            fit_notes.append("all values equal")
        else:
            reml, fit_notes = _fit_mixed(endog, exog, clusters, reml=True)

    rows = []
    if k >= 3:
        row = _blank_row(OMNIBUS, "mixed_lm_f", "", "", alpha, 1, unit)
        row["n_total"] = int(sum(arrays[g].size for g in order))
        notes = list(invalid.values())
        if not invalid:
            row["levene_p"] = _levene_p([arrays[g] for g in order], center="mean")
            notes += fit_notes
            if reml is not None:
                n_fixed = exog.shape[1]
                beta = np.asarray(reml.fe_params)[1:n_fixed]
                covariance = np.asarray(reml.cov_params())[1:n_fixed, 1:n_fixed]
                try:
                    wald = float(beta @ np.linalg.solve(covariance, beta))
                except np.linalg.LinAlgError:
                    wald = float("nan")
                if np.isfinite(wald):
                    f_value = wald / (k - 1)
                    p = float(stats.f.sf(f_value, k - 1, df_denominator))
                    row.update(
                        statistic=f_value,
                        p_value=p,
                        p_adjusted=p,
                        eta2=_marginal_r2(reml, exog),
                        significant=is_significant(p, alpha, 1),
                    )
                else:
                    notes.append("covariance of the group coefficients is singular")
        row["note"] = _join(notes)
        rows.append(row)
    for a, b in combinations(order, 2):
        row = _blank_row(f"{a} vs {b}", "mixed_lm_wald", a, b, alpha, m, unit)
        x, y = arrays[a], arrays[b]
        _describe_pair(row, x, y)
        notes = [invalid.get(a, ""), invalid.get(b, "")]
        if not any(notes):
            row["levene_p"] = _levene_p([x, y], center="median")
            notes += fit_notes
            if reml is not None:
                n_fixed = exog.shape[1]
                contrast = np.zeros(n_fixed)
                for g, sign in ((b, 1.0), (a, -1.0)):
                    position = valid.index(g)
                    if position > 0:
                        contrast[position] += sign
                beta = np.asarray(reml.fe_params)[:n_fixed]
                covariance = np.asarray(reml.cov_params())[:n_fixed, :n_fixed]
                estimate = float(contrast @ beta) * spread
                se = float(np.sqrt(contrast @ covariance @ contrast))
                if np.isfinite(se) and se > 0:
                    z = estimate / (se * spread)
                    p = float(2.0 * stats.t.sf(abs(z), df_denominator))
                    significant = is_significant(p, alpha, m)
                    pair_rows = np.isin(used_labels, np.array([a, b], dtype=object))
                    row.update(
                        statistic=z,
                        z=z,
                        p_value=p,
                        p_adjusted=bonferroni(p, m),
                        eta2=_marginal_r2(reml, exog, pair_rows),
                        significant=significant,
                        direction=effect_direction(0.0, estimate, significant),
                    )
                else:
                    notes.append("standard error of the contrast undefined")
                row["estimate"] = estimate
        row["note"] = _join(notes)
        rows.append(row)
    return _table(rows)


# -- bootstrap -----------------------------------------------------------------------------------


def bootstrap_weights(
    frame: pd.DataFrame,
    value: str,
    group: str,
    order: Sequence,
    n_boot: int = 1000,
    seed: int = 0,
    cluster: str | None = None,
) -> np.ndarray:
    """Resampling weights of the stratified (or cluster) bootstrap, one row per resample.

    A weight is how often a row of ``frame`` is drawn into a bootstrap sample. Within each group
    of ``order`` (in that order, from ``np.random.default_rng(seed)``), either the rows are
    drawn with replacement, as many as the group has (stratified bootstrap), or, with
    ``cluster``, the animals are drawn with replacement, as many as the group has, each with all
    its images (cluster bootstrap; animals are nested in groups). Rows with a NaN value (or a
    missing animal), or outside ``order``, get weight 0.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_boot, len(frame))``, integer counts as floats.

    Examples
    --------
    >>> table = pd.DataFrame({"g": ["H", "H", "C", "C"], "v": [1.0, 2.0, 3.0, 4.0]})
    >>> weights = bootstrap_weights(table, "v", "g", ["H", "C"], n_boot=3, seed=1)
    >>> weights.shape, weights[:, :2].sum(axis=1).tolist()
    ((3, 4), [2.0, 2.0, 2.0])
    """
    order = _check_order(order)
    rng = np.random.default_rng(seed)
    values = _numeric(frame[value])
    keep = ~np.isnan(values)
    if cluster is not None:
        keep &= frame[cluster].notna().to_numpy()
    labels = frame[group].to_numpy(dtype=object)
    weights = np.zeros((n_boot, len(frame)))
    for g in order:
        rows = np.flatnonzero(keep & (labels == g))
        if rows.size == 0:
            continue
        if cluster is None:
            codes, n_units = np.arange(rows.size), rows.size
        else:
            codes, uniques = pd.factorize(frame[cluster].to_numpy(dtype=object)[rows])
            n_units = len(uniques)
        counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)
        weights[:, rows] = counts[:, codes]
    return weights


def _weighted_mwu_eta2(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """The study's eta² of every weighted resample at once (U of x with half ties)."""
    wins = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    u = ((wx @ wins) * wy).sum(axis=1)
    n1, n2 = wx.sum(axis=1), wy.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (u - n1 * n2 / 2.0) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
        return z**2 / (n1 + n2)


def _weighted_kruskal_eta2(x: np.ndarray, codes: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """eta²_H of every weighted resample at once (midranks, tie-corrected H as scipy)."""
    less = w @ (x[None, :] < x[:, None]).T.astype(float)  # weighted count below each value
    tied = w @ (x[None, :] == x[:, None]).T.astype(float)  # weighted count equal (incl. itself)
    ranks = less + (tied + 1.0) / 2.0
    n = w.sum(axis=1)
    indicator = np.eye(k)[codes]  # (n_values, k)
    rank_sums = (w * ranks) @ indicator
    sizes = w @ indicator
    with np.errstate(invalid="ignore", divide="ignore"):
        h = 12.0 / (n * (n + 1)) * np.sum(rank_sums**2 / sizes, axis=1) - 3.0 * (n + 1)
        tie_sum = np.sum(w * (tied**2 - 1.0), axis=1)
        h = h / (1.0 - tie_sum / (n**3 - n))
        return (h - k + 1) / (n - k)


def bootstrap_eta2_ci(
    frame: pd.DataFrame,
    value: str,
    group: str,
    order: Sequence,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of the effect sizes of :func:`group_tests`.

    Resamples are drawn within groups (stratified; see :func:`bootstrap_weights`), or, with
    ``cluster`` (the animal column), whole animals within groups (cluster bootstrap of the
    image-level effect sizes). Each resample is a vector of weights on the images, so U (and
    the Kruskal-Wallis rank sums, with midranks and scipy's tie correction) of all resamples are
    computed at once with matrix products: ``O(n_boot * n**2)`` for ``n`` images.

    Parameters
    ----------
    frame, value, group, order
        As in :func:`group_tests`.
    n_boot : int
        Number of resamples.
    seed : int
        Seed of ``np.random.default_rng``; the result is deterministic given it.
    level : float
        Coverage of the interval (quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of the
        finite resampled values).
    cluster : str, optional
        Animal column: resample animals instead of images.

    Returns
    -------
    pandas.DataFrame
        :data:`BOOTSTRAP_COLUMNS` then :data:`BOOTSTRAP_EXTRA_COLUMNS`: one row per row of
        :func:`group_tests` (``comparison`` ``"all"`` for eta²_H), with ``test``, the point
        estimate ``eta2`` (of the original images), ``unit`` (``"image"`` or ``"animal"``, what
        was resampled) and a ``note``. Groups with fewer than 3 values (or, with ``cluster``,
        fewer than 2 animals) give NaN intervals with a note.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"g": np.repeat(["H", "C+"], 15), "v": rng.normal(size=30)})
    >>> table.loc[table["g"] == "C+", "v"] += 1.5
    >>> ci = bootstrap_eta2_ci(table, "v", "g", ["H", "C+"], n_boot=200, seed=0)
    >>> ci.loc[0, "eta2_ci_low"] < ci.loc[0, "eta2"] < ci.loc[0, "eta2_ci_high"]
    np.True_
    """
    order = _check_order(order)
    weights = bootstrap_weights(frame, value, group, order, n_boot=n_boot, seed=seed, cluster=cluster)
    values = _numeric(frame[value])
    labels = frame[group].to_numpy(dtype=object)
    used = ~np.isnan(values)
    if cluster is not None:
        used &= frame[cluster].notna().to_numpy()
    rows_of = {g: np.flatnonzero(used & (labels == g)) for g in order}
    invalid = {g: _group_note(g, rows_of[g].size) for g in order if rows_of[g].size < MIN_VALUES}
    if cluster is not None:
        for g in order:
            n_animals = pd.unique(frame[cluster].to_numpy(dtype=object)[rows_of[g]]).size
            if g not in invalid and n_animals < MIN_ANIMALS:
                invalid[g] = _group_note(g, n_animals, "animals", MIN_ANIMALS)
    quantiles = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    unit = "image" if cluster is None else "animal"
    records = []

    def record(comparison: str, test: str, point: float, replicates, notes) -> None:
        low = high = float("nan")
        if replicates is not None:
            finite = replicates[np.isfinite(replicates)]
            if finite.size:
                low, high = (float(q) for q in np.quantile(finite, quantiles))
        records.append(
            {
                "comparison": comparison,
                "eta2_ci_low": low,
                "eta2_ci_high": high,
                "n_boot": int(n_boot),
                "level": float(level),
                "test": test,
                "eta2": point,
                "unit": unit,
                "note": _join(notes),
            }
        )

    if len(order) >= 3:
        if invalid:
            record(OMNIBUS, "kruskal", float("nan"), None, invalid.values())
        else:
            rows = np.concatenate([rows_of[g] for g in order])
            codes = np.concatenate([np.full(rows_of[g].size, i) for i, g in enumerate(order)])
            x = values[rows]
            point = float(_weighted_kruskal_eta2(x, codes, len(order), np.ones((1, rows.size)))[0])
            replicates = _weighted_kruskal_eta2(x, codes, len(order), weights[:, rows])
            record(OMNIBUS, "kruskal", point, replicates, [])
    for a, b in combinations(order, 2):
        notes = [invalid.get(a, ""), invalid.get(b, "")]
        if any(notes):
            record(f"{a} vs {b}", "mann_whitney", float("nan"), None, notes)
            continue
        ra, rb = rows_of[a], rows_of[b]
        xa, xb = values[ra], values[rb]
        point = mann_whitney_effect(xa, xb)["eta2"]
        replicates = _weighted_mwu_eta2(xa, weights[:, ra], xb, weights[:, rb])
        record(f"{a} vs {b}", "mann_whitney", point, replicates, [])
    return pd.DataFrame(records, columns=[*BOOTSTRAP_COLUMNS, *BOOTSTRAP_EXTRA_COLUMNS])
