"""Iterated two-sided Grubbs test (cfosstats.stats.outliers) against hand-worked references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfosstats.stats.outliers import flag_outliers, grubbs_critical, grubbs_outliers, grubbs_steps

# NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.5.17.1 (Grubbs' test example): 8 values,
# mean 206.434, standard deviation 15.852, G = 2.4687 for 245.57; two-sided critical value at
# alpha = 0.05 is 2.1266, so 245.57 is an outlier.
NIST = [199.31, 199.53, 200.19, 200.82, 201.92, 201.95, 202.18, 245.57]


def test_nist_example_by_hand():
    values = np.array(NIST)
    mean = values.sum() / 8  # 1651.47 / 8
    sd = np.sqrt(((values - mean) ** 2).sum() / 7)
    assert mean == pytest.approx(206.43375)
    assert sd == pytest.approx(15.8526, abs=1e-4)
    assert (245.57 - mean) / sd == pytest.approx(2.4687, abs=1e-4)

    steps = grubbs_steps(NIST)
    first = steps.iloc[0]
    assert first["position"] == 7 and first["value"] == 245.57 and first["n"] == 8
    assert first["grubbs_g"] == pytest.approx(2.4687, abs=1e-4)
    assert first["g_critical"] == pytest.approx(2.1266, abs=1e-4)
    assert bool(first["outlier"])
    # the remaining 7 values have no outlier: the iteration stops after one more test
    assert len(steps) == 2 and not bool(steps.iloc[1]["outlier"]) and steps.iloc[1]["n"] == 7
    assert grubbs_outliers(NIST).tolist() == [7]


def test_critical_value_formula():
    # G_crit = (n-1)/sqrt(n) * sqrt(t^2 / (n-2+t^2)), t = t.ppf(1 - alpha/(2n), n-2)
    assert grubbs_critical(8, 0.05) == pytest.approx(2.1266, abs=1e-4)  # NIST
    assert grubbs_critical(10, 0.05) == pytest.approx(2.290, abs=1e-3)  # Grubbs' table, 2.5% one-sided
    for n in (3, 5, 30, 100):
        assert grubbs_critical(n, 0.05) < (n - 1) / np.sqrt(n)  # G can never exceed this bound
    assert grubbs_critical(20, 0.01) > grubbs_critical(20, 0.05)
    assert np.isnan(grubbs_critical(2))


def test_iterated_removal_most_extreme_first():
    base = [10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.1, 9.9, 10.05, 9.95]
    values = [*base[:3], 30.0, *base[3:], 20.0]  # 30 at position 3, 20 at position 11
    assert grubbs_outliers(values).tolist() == [3, 11]
    steps = grubbs_steps(values)
    assert steps["outlier"].tolist() == [True, True, False]
    assert steps["n"].tolist() == [12, 11, 10]
    assert grubbs_outliers(values, max_outliers=1).tolist() == [3]


def test_no_outlier_in_normal_data():
    rng = np.random.default_rng(20200101)
    values = rng.normal(10.0, 1.0, 40)
    assert grubbs_outliers(values).size == 0


def test_small_constant_and_nan_input():
    assert grubbs_outliers([]).size == 0
    assert grubbs_outliers([1.0, 100.0]).size == 0  # n < 3
    assert grubbs_outliers([1.0, np.nan, 100.0]).size == 0  # 2 non-NaN values
    assert grubbs_outliers([5.0] * 6).size == 0  # sd = 0
    with_nan = [np.nan, *NIST[:4], np.nan, *NIST[4:]]
    assert grubbs_outliers(with_nan).tolist() == [9]  # positions count the NaNs
    assert grubbs_outliers(NIST).dtype.kind == "i"


def test_flag_outliers_tidy_per_group():
    table = pd.DataFrame(
        {
            "source": ["ens"] * 16,
            "condition": ["H"] * 8 + ["C+"] * 8,
            "image_id": [f"img{i:02d}" for i in range(16)],
            "density": [*NIST, *np.linspace(1.0, 2.0, 8)],
        }
    )
    flagged = flag_outliers(table, "density", by=["source", "condition"])
    assert list(flagged.columns) == [
        "source",
        "condition",
        "image_id",
        "value_name",
        "value",
        "grubbs_g",
        "g_critical",
        "rank",
        "n_tested",
    ]
    assert len(flagged) == 1
    row = flagged.iloc[0]
    assert (row["source"], row["condition"], row["image_id"]) == ("ens", "H", "img07")
    assert row["value_name"] == "density" and row["value"] == 245.57 and row["rank"] == 1
    assert row["grubbs_g"] == pytest.approx(2.4687, abs=1e-4)

    clean = flag_outliers(table[table["condition"] == "C+"], "density", by="condition")
    assert clean.empty
    assert list(clean.columns) == [
        "condition",
        "image_id",
        "value_name",
        "value",
        "grubbs_g",
        "g_critical",
        "rank",
        "n_tested",
    ]


def test_flag_outliers_two_outliers_ranked():
    base = [10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.1, 9.9, 10.05, 9.95]
    values = [*base[:3], 30.0, *base[3:], 20.0]
    table = pd.DataFrame({"image": [f"i{i}" for i in range(12)], "v": values, "g": "H"})
    flagged = flag_outliers(table, "v", by=["g"], id_column="image")
    assert flagged["image"].tolist() == ["i3", "i11"]
    assert flagged["rank"].tolist() == [1, 2]
    assert flagged["n_tested"].tolist() == [12, 11]
    with pytest.raises(KeyError):
        flag_outliers(table, "v", by=["g"])  # no image_id column
