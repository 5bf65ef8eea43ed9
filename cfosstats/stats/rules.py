"""Multiple-comparison rules of the effect tests: Bonferroni, significance, direction.

The building blocks every effect test shares (:mod:`cfosstats.stats.effects`,
:mod:`cfosstats.stats.mixed`), and the registries of the rules a preset chooses by name
(:data:`BONFERRONI_RULES`, :data:`OMNIBUS_RULES`; see :mod:`cfosstats.stats.presets`).
"""

from __future__ import annotations

import numpy as np


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
