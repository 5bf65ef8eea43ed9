"""The F distribution's tail and quantile (cfosstats.stats.fdist) against scipy.special."""

from __future__ import annotations

import itertools
import math

import pytest
from scipy.special import fdtrc, fdtri

from cfosstats.stats.fdist import f_ppf, f_sf

# From below 1 to a large study's (288 images x 65 sources): non-integer ones too (Satterthwaite).
DFS = [0.5, 1, 2, 3.7, 9.99, 10, 35, 140, 1000.5, 18000]


@pytest.mark.parametrize("d1, d2", list(itertools.product(DFS, DFS)))
def test_tail_and_quantile_equal_scipys(d1, d2):
    for f in [1e-6, 0.01, 0.3, 0.9, 1.0, 1.1, 2.5, 7, 30, 200, 1e4]:
        expected = fdtrc(d1, d2, f)
        if expected > 1e-290:  # (below, both underflow)
            assert f_sf(f, d1, d2) == pytest.approx(expected, rel=5e-12, abs=0), f
    for q in [1e-10, 0.001, 0.025, 0.3, 0.7, 0.975, 0.999, 1 - 1e-10]:
        assert f_ppf(q, d1, d2) == pytest.approx(fdtri(d1, d2, q), rel=1e-11, abs=0), q
        assert 1 - f_sf(f_ppf(q, d1, d2), d1, d2) == pytest.approx(q, rel=1e-9), q


def test_the_median_of_f_with_equal_degrees_of_freedom_is_one():
    # F(d, d) and 1/F(d, d) have one distribution: the median is exactly 1 (scipy: 1 - 1.4e-11 at 3.7).
    for d in DFS:
        assert f_ppf(0.5, d, d) == pytest.approx(1.0, rel=1e-14)
        assert f_sf(1.0, d, d) == pytest.approx(0.5, rel=1e-14)


def test_edges_and_undefined_values_are_scipys():
    assert f_sf(0.0, 3, 7) == fdtrc(3, 7, 0.0) == 1.0
    assert f_sf(math.inf, 3, 7) == fdtrc(3, 7, math.inf) == 0.0
    assert f_ppf(0.0, 3, 7) == fdtri(3, 7, 0.0) == 0.0
    assert f_ppf(1.0, 3, 7) == fdtri(3, 7, 1.0) == math.inf
    for args in [(math.nan, 3, 7), (2.0, math.nan, 7), (2.0, 0, 7), (2.0, 3, math.inf)]:
        assert math.isnan(f_sf(*args)) and math.isnan(fdtrc(args[1], args[2], args[0]))
    for args in [(math.nan, 3, 7), (1.5, 3, 7), (0.5, -1, 7), (0.5, 3, math.inf)]:
        assert math.isnan(f_ppf(*args)) and math.isnan(fdtri(args[1], args[2], args[0]))
