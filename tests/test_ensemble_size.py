"""The ensemble-size analysis: the a / sqrt(i) fit recovers a known a, and the draws are right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfosstats.stats.ensemble_size import ensemble_size_summary, fit_inverse_sqrt, member_subsets


def test_the_fit_recovers_a_known_a_from_noisy_ensembles():
    """Ensembles of size i whose F1 scatters with SD a / sqrt(i), a = 0.096 (the study's value):
    the fit over 400 draws per size recovers a within 5%."""
    rng = np.random.default_rng(0)
    a = 0.096
    rows = [
        {"size": size, "f1": 0.8 + rng.normal(0, a / np.sqrt(size))}
        for size in range(1, 11)
        for _ in range(400)
    ]
    table, fitted = ensemble_size_summary(pd.DataFrame(rows))
    assert fitted == pytest.approx(a, rel=0.05)
    assert table["fitted_sd"].iloc[0] == pytest.approx(fitted)
    assert (table["n_ensembles"] == 400).all()


def test_the_fit_is_exact_on_exact_data_and_ignores_sizes_without_spread():
    sizes = np.arange(1, 8)
    assert fit_inverse_sqrt(sizes, 0.05 / np.sqrt(sizes)) == pytest.approx(0.05, rel=1e-12)
    assert fit_inverse_sqrt([1, 2, 3], [0.1, 0.1 / np.sqrt(2), np.nan]) == pytest.approx(0.1, rel=1e-12)
    assert np.isnan(fit_inverse_sqrt([1], [np.nan]))


def test_draws_are_distinct_sorted_and_seeded():
    rng = np.random.default_rng(3)
    draws = member_subsets(12, 5, 20, rng)
    assert len(set(draws)) == 20 and all(list(d) == sorted(d) and len(d) == 5 for d in draws)
    assert draws == member_subsets(12, 5, 20, np.random.default_rng(3))
    assert member_subsets(5, 5, 20, rng) == [(0, 1, 2, 3, 4)]
    with pytest.raises(ValueError):
        member_subsets(3, 4, 10, rng)
