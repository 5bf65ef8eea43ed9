"""The ICCs in numpy against pingouin and against Shrout & Fleiss (1979)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfosstats.stats.counts import (
    ICC_COLUMNS,
    count_agreement,
    icc_absolute_agreement,
    intraclass_correlations,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their ICC(2,1) is 0.29.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)


def test_shrout_fleiss_published_value():
    assert round(icc_absolute_agreement(SHROUT_FLEISS), 2) == 0.29


@pytest.mark.parametrize("seed", range(5))
def test_equals_pingouin_through_count_agreement(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 80)), int(rng.integers(2, 15))
    matrix = rng.integers(0, 60, (n, k)) + rng.integers(0, 150, (n, 1))
    counts = pd.DataFrame({
        "image_id": np.repeat([f"{i:03d}" for i in range(n)], k),
        "rater": np.tile([f"r{j:02d}" for j in range(k)], n),
        "count": matrix.ravel(),
    })  # fmt: skip
    reference = count_agreement(counts).set_index("shrout_fleiss").loc["ICC(2,1)", "value"]
    assert icc_absolute_agreement(matrix) == pytest.approx(reference, abs=1e-13)


def test_undefined_and_too_small():
    assert np.isnan(icc_absolute_agreement(np.full((4, 3), 7)))
    with pytest.raises(ValueError, match="at least 2 images and 2 raters"):
        icc_absolute_agreement(np.ones((1, 3)))


def _pingouin_table(matrix: np.ndarray) -> pd.DataFrame:
    import pingouin

    n, k = matrix.shape
    long = pd.DataFrame({
        "image_id": np.repeat([f"{i:03d}" for i in range(n)], k),
        "rater": np.tile([f"r{j:02d}" for j in range(k)], n),
        "count": matrix.ravel().astype(float),
    })  # fmt: skip
    saved = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None  # pingouin rounds CIs to 2 decimals by default
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return pingouin.intraclass_corr(data=long, targets="image_id", raters="rater", ratings="count")
    finally:
        pingouin.options["round.column.CI95"] = saved


@pytest.mark.parametrize("seed", range(8))
def test_all_six_iccs_with_f_tests_and_intervals_equal_pingouin(seed):
    rng = np.random.default_rng(100 + seed)
    n, k = int(rng.integers(3, 60)), int(rng.integers(2, 12))
    matrix = rng.integers(0, 40, (n, k)) + rng.integers(0, 120, (n, 1)) + rng.integers(0, 9, (1, k))
    ours, theirs = intraclass_correlations(matrix), _pingouin_table(matrix)
    assert list(ours.columns) == list(ICC_COLUMNS)
    assert ours["type"].tolist() == theirs["Type"].tolist()
    assert ours["df1"].tolist() == theirs["df1"].tolist() and ours["df2"].tolist() == theirs["df2"].tolist()
    for column, reference in (("value", "ICC"), ("f", "F"), ("p_value", "pval")):
        np.testing.assert_allclose(ours[column], theirs[reference].astype(float), rtol=1e-11, atol=1e-15)
    limits = np.stack(theirs["CI95"].to_numpy())
    np.testing.assert_allclose(ours[["ci95_low", "ci95_high"]].to_numpy(), limits, rtol=1e-10, atol=1e-13)


def test_iccs_of_identical_ratings_are_nan_like_pingouin():
    matrix = np.full((5, 3), 4)
    ours, theirs = intraclass_correlations(matrix), _pingouin_table(matrix)
    assert ours["value"].isna().all() and theirs["ICC"].isna().all()
