"""Treatment effects: the study's non-parametric tests, effect sizes and sensitivity analyses.

Pure functions: tidy DataFrames in, tidy DataFrames out. :func:`group_tests` runs the procedure of
Segebarth et al. (eLife 2020, ``Source_code/compute_statistics.ipynb``) on one set of values (one
label source x region x readout); :func:`animal_level_tests` and :func:`mixed_model_tests` are the
sensitivity analyses with animals as the unit; :func:`bootstrap_eta2_ci` gives percentile
confidence intervals of the effect sizes.

This module runs the rank tests; the parts it is built from live beside it and their public
names are re-exported here: :mod:`~cfosstats.stats.rules` (Bonferroni and the rule registries),
:mod:`~cfosstats.stats.ranks` (the tests and effect sizes), :mod:`~cfosstats.stats.effect_table`
(the columns and rows), :mod:`~cfosstats.stats.mixed` and :mod:`~cfosstats.stats.bootstrap`.

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

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cfosstats.stats.bootstrap import (
    BOOTSTRAP_COLUMNS,
    BOOTSTRAP_EXTRA_COLUMNS,
    bootstrap_eta2_ci,
    bootstrap_weights,
)
from cfosstats.stats.effect_table import (
    EFFECT_COLUMNS,
    EFFECT_EXTRA_COLUMNS,
    MIN_ANIMALS,
    MIN_VALUES,
    OMNIBUS,
    _check_order,
    _group_note,
    _join,
    _omnibus_row,
    _pair_rows,
    _split,
    _table,
)
from cfosstats.stats.mixed import mixed_model_tests
from cfosstats.stats.ranks import (
    critical_eta2_kruskal,
    critical_eta2_mann_whitney,
    kruskal_effect,
    mann_whitney_effect,
)
from cfosstats.stats.rules import (
    BONFERRONI_RULES,
    OMNIBUS_RULES,
    bonferroni,
    effect_direction,
    is_significant,
    n_pairwise_comparisons,
)

# re-exported: public API of this module (the names from sibling modules that importers rely on)
__all__ = [
    "BONFERRONI_RULES",
    "BOOTSTRAP_COLUMNS",
    "BOOTSTRAP_EXTRA_COLUMNS",
    "EFFECT_COLUMNS",
    "EFFECT_EXTRA_COLUMNS",
    "MIN_ANIMALS",
    "MIN_VALUES",
    "OMNIBUS",
    "OMNIBUS_RULES",
    "animal_level_tests",
    "animal_means",
    "bonferroni",
    "bootstrap_eta2_ci",
    "bootstrap_weights",
    "critical_eta2_kruskal",
    "critical_eta2_mann_whitney",
    "effect_direction",
    "group_tests",
    "is_significant",
    "kruskal_effect",
    "mann_whitney_effect",
    "mixed_model_tests",
    "n_pairwise_comparisons",
]


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
        row = _omnibus_row("kruskal", arrays, order, invalid, alpha, unit)
        if invalid:
            row["note"] = _join(invalid.values())
        else:
            result = kruskal_effect([arrays[g] for g in order])
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
    for _, _, row, x, y, notes in _pair_rows("mann_whitney", arrays, order, invalid, alpha, m, unit):
        if not any(notes):
            result = mann_whitney_effect(x, y, method=method)
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
