"""Rank tests with the study's effect sizes: Mann-Whitney U (Z, eta²) and Kruskal-Wallis (eta²_H).

The formulas are those of :mod:`cfosstats.stats.effects` (see its notes); the critical eta² of
each test at a Bonferroni-corrected alpha is here too.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


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
