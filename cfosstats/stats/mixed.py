"""Linear mixed model of the effects: a random intercept per animal, images as repeated measures.

The sensitivity analysis of :mod:`cfosstats.stats.effects` that keeps every image but does not
take images of one animal as independent; its rows are those of :func:`group_tests
<cfosstats.stats.effects.group_tests>`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cfosstats.stats.effect_table import (
    MIN_ANIMALS,
    MIN_VALUES,
    _check_order,
    _group_note,
    _join,
    _numeric,
    _omnibus_row,
    _pair_rows,
    _table,
)
from cfosstats.stats.rules import bonferroni, effect_direction, is_significant, n_pairwise_comparisons


def _fit_mixed(endog, exog, groups, reml: bool):
    """Fit a random-intercept MixedLM; returns (result or None, notes).

    Powell (then Nelder-Mead) optimisation: derivative-free, it copes with the boundary
    (animal variance 0) where statsmodels' default gradient methods fail or raise.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM  # lazy: 1.5 s at start-up
    from statsmodels.tools.sm_exceptions import ConvergenceWarning  # lazy: with the line above

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
        row = _omnibus_row("mixed_lm_f", arrays, order, invalid, alpha, unit)
        notes = list(invalid.values())
        if not invalid:
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
    for a, b, row, _, _, notes in _pair_rows("mixed_lm_wald", arrays, order, invalid, alpha, m, unit):
        if not any(notes):
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
