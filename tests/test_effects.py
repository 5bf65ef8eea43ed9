"""Treatment effects (cfosstats.stats.effects) against scipy, pingouin and hand-worked examples."""

from __future__ import annotations

import time
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats

from cfosstats.stats import bootstrap as bootstrap_module
from cfosstats.stats.effects import (
    BOOTSTRAP_COLUMNS,
    EFFECT_COLUMNS,
    EFFECT_EXTRA_COLUMNS,
    animal_level_tests,
    animal_means,
    bonferroni,
    bootstrap_eta2_ci,
    bootstrap_weights,
    critical_eta2_kruskal,
    critical_eta2_mann_whitney,
    effect_direction,
    group_tests,
    is_significant,
    kruskal_effect,
    mann_whitney_effect,
    mixed_model_tests,
)

ORDER3 = ["H", "C-", "C+"]


# The warning pingouin 0.7 raises under pandas 3 (absent from older pandas).
_PANDAS4_WARNING = getattr(pd.errors, "Pandas4Warning", FutureWarning)


def _pingouin(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=_PANDAS4_WARNING)
        return function(*args, **kwargs)


def _three_groups(seed=1, n=10, shifts=(0.0, 0.4, 1.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "condition": np.repeat(ORDER3, n),
            "value": np.concatenate([rng.normal(s, 1.0, n) for s in shifts]),
        }
    )


# -- Mann-Whitney and Kruskal-Wallis -------------------------------------------------------------


def test_mann_whitney_hand_worked():
    # x = [1, 2, 3, 4], y = [5, 6, 7, 8]: no x beats any y, U = 0; n1 = n2 = 4, N = 8
    # Z = (0 - 16/2) / sqrt(4*4*9/12) = -8 / sqrt(12) = -2.3094; eta2 = Z^2/N = (64/12)/8 = 0.6667
    result = mann_whitney_effect([1, 2, 3, 4], [5, 6, 7, 8])
    assert result["U"] == 0.0 and result["n1"] == 4 and result["n2"] == 4
    assert result["z"] == pytest.approx(-8 / np.sqrt(12))
    assert result["z"] == pytest.approx(-2.3094, abs=1e-4)
    assert result["eta2"] == pytest.approx(2 / 3)
    assert result["z_tie_corrected"] == pytest.approx(result["z"])  # no ties
    assert result["p_value"] == pytest.approx(2 / 70)  # exact: 2 of C(8, 4) = 70 orderings


def test_tie_corrected_z_by_hand():
    # x = [1, 2, 2, 3], y = [2, 3, 4, 5]; U of x = 0 + 0.5 + 0.5 + 1.5 = 2.5 (ties count half)
    # ties in the pooled values: 2 three times, 3 twice: sum(t^3 - t) = 24 + 6 = 30
    # var = 16/12 * (9 - 30/(8*7)) = 11.285714; Z_tc = (2.5 - 8)/sqrt(var) = -1.6372
    # uncorrected Z = -5.5/sqrt(12) = -1.5877
    x, y = [1, 2, 2, 3], [2, 3, 4, 5]
    result = mann_whitney_effect(x, y)
    assert result["U"] == 2.5
    assert result["z"] == pytest.approx(-5.5 / np.sqrt(12))
    assert result["z_tie_corrected"] == pytest.approx(-5.5 / np.sqrt(16 / 12 * (9 - 30 / 56)))
    assert result["z_tie_corrected"] == pytest.approx(-1.6372, abs=1e-4)
    assert result["eta2"] == pytest.approx((5.5**2 / 12) / 8)
    # scipy's asymptotic p without continuity is the normal p of the tie-corrected Z
    asymptotic = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=False)
    assert asymptotic.pvalue == pytest.approx(2 * stats.norm.sf(abs(result["z_tie_corrected"])))


@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_matches_scipy_and_pingouin(ties):
    rng = np.random.default_rng(7)
    for n1, n2 in [(5, 7), (12, 9), (30, 30)]:
        x, y = rng.normal(0, 1, n1), rng.normal(0.8, 1, n2)
        if ties:
            x, y = np.round(x, 1), np.round(y, 1)
        result = mann_whitney_effect(x, y)
        reference = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert result["U"] == reference.statistic
        assert result["p_value"] == reference.pvalue
        mwu = _pingouin(pingouin.mwu, x, y, alternative="two-sided")  # pingouin 0.7 column names
        assert result["U"] == float(mwu["U_val"].iloc[0])
        assert result["p_value"] == pytest.approx(float(mwu["p_val"].iloc[0]))


def test_mann_whitney_drops_nan_and_rejects_empty():
    result = mann_whitney_effect([1, np.nan, 2, 3, 4], [5, 6, 7, 8, np.nan])
    assert (result["n1"], result["n2"], result["U"]) == (4, 4, 0.0)
    with pytest.raises(ValueError):
        mann_whitney_effect([np.nan], [1.0, 2.0])


def test_kruskal_hand_worked_and_references():
    # ranks 1..9; rank sums 6, 15, 24: H = 12/(9*10) * (36 + 225 + 576)/3 - 3*10 = 37.2 - 30 = 7.2
    # eta2_H = (H - k + 1)/(N - k) = (7.2 - 2)/6 = 0.86667
    result = kruskal_effect([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert result["H"] == pytest.approx(7.2)
    assert result["eta2_h"] == pytest.approx(5.2 / 6)
    assert (result["k"], result["n"]) == (3, 9)

    frame = _three_groups()
    frame["value"] = frame["value"].round(1)  # with ties
    groups = [frame.loc[frame["condition"] == g, "value"] for g in ORDER3]
    result = kruskal_effect(groups)
    reference = stats.kruskal(*groups)
    assert result["H"] == pytest.approx(reference.statistic) and result["p_value"] == pytest.approx(
        reference.pvalue
    )
    table = _pingouin(pingouin.kruskal, data=frame, dv="value", between="condition")
    assert result["H"] == pytest.approx(float(table["H"].iloc[0]))
    assert result["p_value"] == pytest.approx(float(table["p_unc"].iloc[0]))
    assert result["eta2_h"] == pytest.approx((result["H"] - 2) / (30 - 3))


def test_critical_eta2():
    # chi2(1) quantile = squared normal quantile: chi2.ppf(0.95, 1) = 1.959964^2 = 3.841459
    assert critical_eta2_mann_whitney(8, 0.05) == pytest.approx(3.841459 / 8, rel=1e-6)
    bonferroni3 = stats.norm.ppf(1 - 0.05 / 3 / 2) ** 2 / 8  # alpha' = 0.05/3, two-sided
    assert critical_eta2_mann_whitney(8, 0.05, n_comparisons=3) == pytest.approx(bonferroni3)
    assert critical_eta2_mann_whitney(8, 0.05, 3) == pytest.approx(stats.chi2.ppf(1 - 0.05 / 3, 1) / 8)
    # chi2(2) quantile has a closed form: -2 ln(alpha) = 5.991465
    assert critical_eta2_kruskal(30, 3, 0.05) == pytest.approx((-2 * np.log(0.05) - 2) / 27)
    assert np.isnan(critical_eta2_kruskal(3, 3, 0.05))


def test_bonferroni_direction_and_border_helpers():
    assert bonferroni(0.02, 3) == pytest.approx(0.06)
    assert bonferroni(0.5, 3) == 1.0
    assert np.isnan(bonferroni(np.nan, 3))
    alpha = 0.05
    assert is_significant(alpha / 3, alpha, 3)  # exactly at the border: significant (<=)
    assert not is_significant(np.nextafter(alpha / 3, 1.0), alpha, 3)
    assert is_significant(alpha, alpha, 1)
    assert not is_significant(np.nan, alpha, 1)
    assert effect_direction(1.0, 2.0, True) == "increase"
    assert effect_direction(2.0, 1.0, True) == "decrease"
    assert effect_direction(1.0, 1.0, True) == "none"
    assert effect_direction(1.0, 2.0, False) == "none"


# -- group_tests ---------------------------------------------------------------------------------


def test_group_tests_two_groups():
    frame = pd.DataFrame({"condition": ["H"] * 4 + ["C+"] * 4, "v": [1.0, 2.0, 3.0, 4.0, 5, 6, 7, 8]})
    table = group_tests(frame, "v", "condition", ["H", "C+"])
    assert list(table.columns) == [*EFFECT_COLUMNS, *EFFECT_EXTRA_COLUMNS]
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["comparison"], row["test"], row["group_a"], row["group_b"]) == (
        "H vs C+",
        "mann_whitney",
        "H",
        "C+",
    )
    assert (row["n_a"], row["n_b"], row["n_comparisons"]) == (4, 4, 1)
    assert row["statistic"] == 0.0 and row["eta2"] == pytest.approx(2 / 3)
    assert row["p_adjusted"] == row["p_value"] == pytest.approx(2 / 70)
    assert row["eta2_critical"] == pytest.approx(stats.chi2.ppf(0.95, 1) / 8)
    assert bool(row["significant"]) and row["direction"] == "increase"
    assert (row["median_a"], row["median_b"], row["mean_a"], row["mean_b"]) == (2.5, 6.5, 2.5, 6.5)
    assert row["shapiro_p_a"] == pytest.approx(stats.shapiro([1, 2, 3, 4]).pvalue)
    assert row["levene_p"] == pytest.approx(stats.levene([1, 2, 3, 4], [5, 6, 7, 8], center="median").pvalue)
    assert row["note"] == "" and row["unit"] == "image"


def test_group_tests_three_groups_bonferroni():
    frame = _three_groups(shifts=(0.0, 0.4, 2.0))
    table = group_tests(frame, "value", "condition", ORDER3)
    assert table["comparison"].tolist() == ["all", "H vs C-", "H vs C+", "C- vs C+"]
    assert table["test"].tolist() == ["kruskal"] + ["mann_whitney"] * 3
    groups = {g: frame.loc[frame["condition"] == g, "value"].to_numpy() for g in ORDER3}

    omnibus = table.iloc[0]
    kruskal = stats.kruskal(*groups.values())
    assert omnibus["statistic"] == pytest.approx(kruskal.statistic)
    assert omnibus["p_value"] == pytest.approx(kruskal.pvalue)
    assert omnibus["eta2"] == pytest.approx((kruskal.statistic - 2) / 27)
    assert omnibus["eta2_critical"] == pytest.approx((stats.chi2.ppf(0.95, 2) - 2) / 27)
    assert omnibus["levene_p"] == pytest.approx(stats.levene(*groups.values(), center="mean").pvalue)
    assert (omnibus["group_a"], omnibus["group_b"], omnibus["n_comparisons"]) == ("", "", 1)
    assert pd.isna(omnibus["n_a"]) and omnibus["n_total"] == 30
    assert bool(omnibus["significant"]) == (kruskal.pvalue <= 0.05)

    for _, row in table.iloc[1:].iterrows():
        x, y = groups[row["group_a"]], groups[row["group_b"]]
        reference = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert row["statistic"] == reference.statistic and row["p_value"] == reference.pvalue
        assert row["n_comparisons"] == 3 and row["alpha_comparison"] == pytest.approx(0.05 / 3)
        assert row["p_adjusted"] == pytest.approx(min(1.0, 3 * reference.pvalue))
        assert bool(row["significant"]) == (reference.pvalue <= 0.05 / 3)
        assert row["eta2_critical"] == pytest.approx(stats.chi2.ppf(1 - 0.05 / 3, 1) / 20)
        assert row["levene_p"] == pytest.approx(stats.levene(x, y, center="median").pvalue)
        median_a, median_b = np.median(x), np.median(y)
        expected = "none"
        if row["significant"]:
            expected = "increase" if median_b > median_a else "decrease"
        assert row["direction"] == expected
    assert table["direction"].iloc[0] == "" and "increase" in table["direction"].tolist()


def test_group_tests_order_respected():
    frame = _three_groups()
    forward = group_tests(frame, "value", "condition", ["H", "C+"]).iloc[0]
    backward = group_tests(frame, "value", "condition", ["C+", "H"]).iloc[0]
    assert (forward["group_a"], backward["group_a"]) == ("H", "C+")
    assert forward["direction"] == "increase" and backward["direction"] == "decrease"
    assert forward["z"] == pytest.approx(-backward["z"])
    assert forward["eta2"] == pytest.approx(backward["eta2"])
    assert forward["p_value"] == pytest.approx(backward["p_value"])
    # a condition outside `order` is ignored
    extra = pd.concat([frame, pd.DataFrame({"condition": ["X"] * 5, "value": np.arange(5.0)})])
    pd.testing.assert_frame_equal(
        group_tests(extra, "value", "condition", ORDER3), group_tests(frame, "value", "condition", ORDER3)
    )
    with pytest.raises(ValueError):
        group_tests(frame, "value", "condition", ["H"])
    with pytest.raises(ValueError):
        group_tests(frame, "value", "condition", ["H", "H"])


def test_group_tests_significance_border():
    # two groups, exact p = 2/70: significant at alpha = p, not just below it
    frame = pd.DataFrame({"condition": ["H"] * 4 + ["C+"] * 4, "v": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    p = stats.mannwhitneyu([1, 2, 3, 4], [5, 6, 7, 8]).pvalue
    assert bool(group_tests(frame, "v", "condition", ["H", "C+"], alpha=p).iloc[0]["significant"])
    below = np.nextafter(p, 0.0)
    assert not bool(group_tests(frame, "v", "condition", ["H", "C+"], alpha=below).iloc[0]["significant"])
    # three groups: a pair with p exactly at alpha / 3
    three = pd.concat([frame, pd.DataFrame({"condition": ["C-"] * 4, "v": [10.0, 11, 12, 13]})])
    alpha = 3 * p
    assert alpha / 3 == p  # the border is exact in floating point
    table = group_tests(three, "v", "condition", ORDER3, alpha=alpha).set_index("comparison")
    assert table.loc["H vs C+", "p_value"] == p and bool(table.loc["H vs C+", "significant"])
    table = group_tests(three, "v", "condition", ORDER3, alpha=np.nextafter(alpha, 0.0)).set_index(
        "comparison"
    )
    assert not bool(table.loc["H vs C+", "significant"])


def test_group_tests_small_empty_groups_and_nan():
    frame = pd.DataFrame(
        {
            "condition": ["H"] * 6 + ["C-"] * 3 + ["C+"] * 5,
            "v": [1.0, 1.2, 0.9, 1.1, np.nan, 1.0, 2.0, np.nan, 2.2, 3.0, 3.1, 2.9, 3.2, np.nan],
        }
    )
    table = group_tests(frame, "v", "condition", ORDER3).set_index("comparison")
    # NaNs dropped: H has 5 values, C- 2, C+ 4
    assert table.loc["H vs C+", ["n_a", "n_b"]].tolist() == [5, 4]
    assert np.isnan(table.loc["all", "statistic"]) and not bool(table.loc["all", "significant"])
    assert table.loc["all", "note"] == "group 'C-' has 2 values (< 3)"
    assert table.loc["H vs C-", "note"] == "group 'C-' has 2 values (< 3)"
    assert np.isnan(table.loc["H vs C-", "p_value"]) and table.loc["H vs C-", "direction"] == "none"
    assert table.loc["H vs C-", "n_b"] == 2 and table.loc["H vs C-", "median_b"] == 2.1
    assert table.loc["H vs C+", "note"] == "" and np.isfinite(table.loc["H vs C+", "p_value"])
    assert table.loc["H vs C+", "n_comparisons"] == 3  # the planned comparisons, all pairs of order

    empty = group_tests(frame, "v", "condition", ["H", "absent"]).iloc[0]
    assert empty["note"] == "group 'absent' has no values" and empty["n_b"] == 0
    assert np.isnan(empty["eta2"]) and np.isnan(empty["median_b"])


def test_group_tests_all_values_equal():
    frame = pd.DataFrame({"condition": ["H"] * 4 + ["C-"] * 4 + ["C+"] * 4, "v": [1.0] * 12})
    table = group_tests(frame, "v", "condition", ORDER3)
    assert (table["note"] == "all values equal").all()
    assert table["p_value"].isna().all() and not table["significant"].any()
    assert np.isnan(table.iloc[0]["eta2"])
    pairs = table.iloc[1:]
    assert (pairs["eta2"] == 0.0).all() and (pairs["z"] == 0.0).all()
    assert pairs["z_tie_corrected"].isna().all() and (pairs["direction"] == "none").all()
    # equal within groups but different between groups is a normal test
    frame.loc[frame["condition"] == "C+", "v"] = 2.0
    pair = group_tests(frame, "v", "condition", ["H", "C+"]).iloc[0]
    assert pair["note"] == "" and np.isfinite(pair["p_value"]) and np.isnan(pair["shapiro_p_a"])


def test_eta2_critical_equivalent_to_asymptotic_p():
    # eta2 >= eta2_critical  <=>  Z^2 >= chi2.ppf(1 - alpha', 1)  <=>  chi2.sf(Z^2, 1) <= alpha'
    # which is scipy's p with method="asymptotic", use_continuity=False when there are no ties
    rng = np.random.default_rng(11)
    checked = 0
    for n1, n2, shift in [(4, 5, 1.0), (6, 6, 0.8), (10, 8, 0.6), (15, 15, 0.5), (25, 20, 0.3)] * 20:
        x, y = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
        result = mann_whitney_effect(x, y)
        asymptotic = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=False).pvalue
        assert result["p_value_z"] == pytest.approx(asymptotic, rel=1e-9)
        for n_comparisons in (1, 3):
            critical = critical_eta2_mann_whitney(n1 + n2, 0.05, n_comparisons)
            if abs(result["eta2"] - critical) > 1e-12:
                assert (result["eta2"] >= critical) == (asymptotic <= 0.05 / n_comparisons)
                checked += 1
    assert checked == 200
    # with scipy's default (exact for small untied samples) the border can differ: U = 1, n = 4 + 4
    # Z^2 = 49/12 = 4.083 > 3.841 so eta2 = 0.510 > 0.480, but the exact p = 4/70 = 0.057 > 0.05
    result = mann_whitney_effect([1, 2, 3, 5], [4, 6, 7, 8])
    assert result["eta2"] > critical_eta2_mann_whitney(8, 0.05)
    assert result["p_value"] == pytest.approx(4 / 70) and result["p_value_z"] < 0.05


# -- animals -------------------------------------------------------------------------------------


def _animal_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "condition": ["H"] * 7 + ["C+"] * 6,
            "mouse": ["a", "a", "b", "b", "c", "c", "c", "d", "d", "e", "e", "f", "f"],
            "v": [1.0, 3.0, 2.0, 2.0, 0.0, 1.0, np.nan, 5.0, 7.0, 4.0, 4.0, 9.0, 6.0],
        }
    )


def test_animal_means_by_hand():
    means = animal_means(_animal_frame(), "v", "condition", "mouse")
    # a: (1+3)/2 = 2, b: 2, c: (0+1)/2 = 0.5 (NaN dropped), d: 6, e: 4, f: 7.5
    assert means["mouse"].tolist() == ["a", "b", "c", "d", "e", "f"]
    assert means["v"].tolist() == [2.0, 2.0, 0.5, 6.0, 4.0, 7.5]
    assert means["n_images"].tolist() == [2, 2, 2, 2, 2, 2]


def test_animal_level_tests_use_animal_means():
    row = animal_level_tests(_animal_frame(), "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    reference = stats.mannwhitneyu([2.0, 2.0, 0.5], [6.0, 4.0, 7.5], alternative="two-sided")
    assert (row["n_a"], row["n_b"], row["unit"]) == (3, 3, "animal")
    assert row["statistic"] == reference.statistic and row["p_value"] == reference.pvalue
    assert row["median_a"] == 2.0 and row["median_b"] == 6.0
    few = animal_level_tests(_animal_frame().iloc[:9], "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    assert few["note"] == "group 'C+' has 1 animal (< 3)"


def _clustered(seed, n_animals=8, images=8, animal_sd=1.0, noise_sd=0.3, effect=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    animals = np.repeat(np.arange(n_animals), images)
    condition = np.where(animals < n_animals // 2, "H", "C+")
    values = rng.normal(0, animal_sd, n_animals)[animals] + rng.normal(0, noise_sd, animals.size)
    values = values + effect * (condition == "C+")
    return pd.DataFrame({"condition": condition, "mouse": animals, "v": values})


def test_mixed_model_strong_effect():
    frame = _clustered(3, n_animals=12, animal_sd=0.3, noise_sd=0.3)
    third = np.repeat(["H", "C-", "C+"], 32)
    frame["condition"] = third
    frame["v"] += np.select([third == "C-", third == "C+"], [1.0, 2.5], 0.0)
    table = mixed_model_tests(frame, "v", "condition", "mouse", ORDER3).set_index("comparison")
    assert table["test"].tolist() == ["mixed_lm_f"] + ["mixed_lm_wald"] * 3
    assert table.loc["all", "p_value"] < 1e-4 and bool(table.loc["all", "significant"])
    assert table.loc["H vs C+", "p_value"] < 1e-4 and table.loc["H vs C+", "direction"] == "increase"
    assert table.loc["H vs C+", "estimate"] == pytest.approx(2.5, abs=0.4)
    assert table.loc["H vs C+", "statistic"] == table.loc["H vs C+", "z"]
    assert table.loc["H vs C+", "p_adjusted"] == pytest.approx(min(1, 3 * table.loc["H vs C+", "p_value"]))
    assert 0 < table.loc["all", "eta2"] < 1 and table["eta2_critical"].isna().all()
    assert (table["unit"] == "image|animal").all()


def test_mixed_model_versus_pseudoreplication():
    # no treatment effect, strong animal variance: images as the unit find "an effect"
    frame = _clustered(0)
    images = group_tests(frame, "v", "condition", ["H", "C+"]).iloc[0]
    mixed = mixed_model_tests(frame, "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    animals = animal_level_tests(frame, "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    assert images["p_value"] < 0.01
    assert mixed["p_value"] > 0.05 and animals["p_value"] > 0.05
    assert mixed["note"] == ""


def test_mixed_model_singular_fit_is_least_squares():
    # animal means exactly equal within each group: the animal variance is estimated as 0 (a
    # singular fit), and the Wald z is then the pooled-variance t statistic
    frame = _clustered(5, animal_sd=0.0, noise_sd=1.0)
    frame["v"] -= frame.groupby("mouse")["v"].transform("mean")
    frame["v"] += 0.8 * (frame["condition"] == "C+")
    row = mixed_model_tests(frame, "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    assert "singular" in row["note"]
    h = frame.loc[frame["condition"] == "H", "v"]
    c = frame.loc[frame["condition"] == "C+", "v"]
    t = stats.ttest_ind(c, h, equal_var=True).statistic
    assert row["z"] == pytest.approx(t, rel=1e-3)
    assert row["estimate"] == pytest.approx(c.mean() - h.mean(), rel=1e-3)


def test_mixed_model_too_few_animals_and_equal_values():
    frame = _clustered(1)
    frame.loc[frame["condition"] == "C+", "mouse"] = 99  # one animal in C+
    row = mixed_model_tests(frame, "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    assert row["note"] == "group 'C+' has 1 animal (< 2)" and np.isnan(row["p_value"])
    assert row["n_b"] == 32  # images
    flat = _clustered(1).assign(v=1.0)
    table = mixed_model_tests(
        flat.assign(condition=np.repeat(ORDER3, [24, 24, 16])), "v", "condition", "mouse", ORDER3
    )
    assert (table["note"] == "all values equal").all() and table["p_value"].isna().all()


def test_mixed_model_notes_convergence_warning(monkeypatch):
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    original = MixedLM.fit

    def fit_with_warning(self, *args, **kwargs):
        warnings.warn("pretend the optimiser struggled", ConvergenceWarning, stacklevel=2)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MixedLM, "fit", fit_with_warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # none may escape
        row = mixed_model_tests(_clustered(0), "v", "condition", "mouse", ["H", "C+"]).iloc[0]
    assert "REML fit: pretend the optimiser struggled" in row["note"]
    assert np.isfinite(row["p_value"])


# -- bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_deterministic_and_contains_estimate():
    frame = _three_groups(seed=2, n=12)
    first = bootstrap_eta2_ci(frame, "value", "condition", ORDER3, n_boot=500, seed=4)
    again = bootstrap_eta2_ci(frame, "value", "condition", ORDER3, n_boot=500, seed=4)
    other = bootstrap_eta2_ci(frame, "value", "condition", ORDER3, n_boot=500, seed=5)
    pd.testing.assert_frame_equal(first, again)
    assert not first["eta2_ci_low"].equals(other["eta2_ci_low"])
    assert list(first.columns[: len(BOOTSTRAP_COLUMNS)]) == list(BOOTSTRAP_COLUMNS)
    assert first["comparison"].tolist() == ["all", "H vs C-", "H vs C+", "C- vs C+"]
    tests = group_tests(frame, "value", "condition", ORDER3)
    np.testing.assert_allclose(first["eta2"], tests["eta2"])
    typical = first.set_index("comparison").loc["H vs C+"]
    assert typical["eta2_ci_low"] <= typical["eta2"] <= typical["eta2_ci_high"]
    assert (first["n_boot"] == 500).all() and (first["level"] == 0.95).all()


def test_bootstrap_matches_explicit_resamples():
    # the vectorised weights give the same eta2 as recomputing every resample explicitly
    frame = _three_groups(seed=3, n=8)
    frame["value"] = frame["value"].round(1)  # ties, and more from resampling
    n_boot, seed = 60, 9
    weights = bootstrap_weights(frame, "value", "condition", ORDER3, n_boot=n_boot, seed=seed)
    values = frame["value"].to_numpy()
    labels = frame["condition"].to_numpy()
    pair, kruskal = [], []
    for w in weights.astype(int):
        samples = {g: np.repeat(values[labels == g], w[labels == g]) for g in ORDER3}
        pair.append(mann_whitney_effect(samples["H"], samples["C+"])["eta2"])
        kruskal.append(kruskal_effect(list(samples.values()))["eta2_h"])
    ci = bootstrap_eta2_ci(frame, "value", "condition", ORDER3, n_boot=n_boot, seed=seed, level=0.9)
    ci = ci.set_index("comparison")
    np.testing.assert_allclose(
        ci.loc["H vs C+", ["eta2_ci_low", "eta2_ci_high"]], np.quantile(pair, [0.05, 0.95])
    )
    np.testing.assert_allclose(
        ci.loc["all", ["eta2_ci_low", "eta2_ci_high"]], np.quantile(kruskal, [0.05, 0.95])
    )


def _pairwise_mwu_eta2(x, wx, y, wy):
    # the O(n²) reference: U from the full matrix of pairwise wins
    wins = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    u = ((wx @ wins) * wy).sum(axis=1)
    n1, n2 = wx.sum(axis=1), wy.sum(axis=1)
    z = (u - n1 * n2 / 2.0) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    return z**2 / (n1 + n2)


def _pairwise_kruskal_eta2(x, codes, k, w):
    # the O(n²) reference: midranks from the full matrices of weighted counts below and equal
    less = w @ (x[None, :] < x[:, None]).T.astype(float)
    tied = w @ (x[None, :] == x[:, None]).T.astype(float)
    ranks = less + (tied + 1.0) / 2.0
    n = w.sum(axis=1)
    indicator = np.eye(k)[codes]
    rank_sums, sizes = (w * ranks) @ indicator, w @ indicator
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample may miss a group: nan, as the package
        h = 12.0 / (n * (n + 1)) * np.sum(rank_sums**2 / sizes, axis=1) - 3.0 * (n + 1)
        h = h / (1.0 - np.sum(w * (tied**2 - 1.0), axis=1) / (n**3 - n))
    return (h - k + 1) / (n - k)


def test_bootstrap_sorted_ranks_equal_pairwise_matrices_bit_for_bit():
    # the cumulative-weight ranks (O(n) memory, blocks of resamples) give exactly the bits of the
    # O(n²) pairwise formulas: with count weights every sum is exact, in any order
    rng = np.random.default_rng(7)
    n_boot = 3 * bootstrap_module.BLOCK + 5  # several blocks and a partial one
    for n in (8, 23, 90):
        x = rng.integers(0, 6, n).astype(float)  # many ties
        y = np.r_[rng.integers(0, 6, n + 2).astype(float), 2.5]
        weights = rng.integers(0, 3, (n_boot, 2 * n + 3)).astype(float)
        xc, yc = np.arange(n), np.arange(n, 2 * n + 3)
        fast = bootstrap_module._weighted_mwu_eta2(x, y, weights, xc, yc)
        slow = _pairwise_mwu_eta2(x, weights[:, xc], y, weights[:, yc])
        assert np.array_equal(fast, slow, equal_nan=True)
        codes = rng.integers(0, 3, n)
        fast = bootstrap_module._weighted_kruskal_eta2(x, codes, 3, weights, xc)
        slow = _pairwise_kruskal_eta2(x, codes, 3, weights[:, xc])
        assert np.array_equal(fast, slow, equal_nan=True)
        assert np.isfinite(fast).mean() > 0.5  # not vacuous: most resamples have a value


def test_bootstrap_stratified_weights():
    frame = _three_groups(n=5)
    weights = bootstrap_weights(frame, "value", "condition", ORDER3, n_boot=100, seed=0)
    for g in ORDER3:
        assert (weights[:, (frame["condition"] == g).to_numpy()].sum(axis=1) == 5).all()


def test_bootstrap_cluster_resamples_whole_animals():
    frame = pd.DataFrame(
        {
            "condition": ["H"] * 6 + ["C+"] * 6,
            "mouse": ["a", "a", "a", "b", "b", "c", "d", "d", "e", "e", "f", "f"],
            "v": np.arange(12.0),
        }
    )
    weights = bootstrap_weights(frame, "v", "condition", ["H", "C+"], n_boot=200, seed=1, cluster="mouse")
    mouse = frame["mouse"].to_numpy()
    for m in "abcdef":
        images = weights[:, mouse == m]
        assert (images == images[:, :1]).all()  # every image of an animal drawn together
    per_animal = np.stack([weights[:, mouse == m][:, 0] for m in "abcdef"], axis=1)
    assert (per_animal[:, :3].sum(axis=1) == 3).all() and (per_animal[:, 3:].sum(axis=1) == 3).all()
    assert (per_animal == 0).any()  # some animals left out of some resamples
    ci = bootstrap_eta2_ci(frame, "v", "condition", ["H", "C+"], n_boot=200, seed=1, cluster="mouse")
    assert ci.loc[0, "unit"] == "animal" and np.isfinite(ci.loc[0, "eta2_ci_low"])
    one = frame.assign(mouse=np.where(frame["condition"] == "H", "a", frame["mouse"]))
    ci = bootstrap_eta2_ci(one, "v", "condition", ["H", "C+"], n_boot=50, cluster="mouse")
    assert ci.loc[0, "note"] == "group 'H' has 1 animal (< 2)" and np.isnan(ci.loc[0, "eta2_ci_low"])


def test_bootstrap_is_fast_and_handles_small_groups():
    frame = _three_groups(n=10)
    start = time.perf_counter()
    bootstrap_eta2_ci(frame, "value", "condition", ORDER3, n_boot=1000, seed=0)
    assert time.perf_counter() - start < 1.0  # << 1 s on an idle core
    small = frame.iloc[:22]  # C+ keeps 2 values
    ci = bootstrap_eta2_ci(small, "value", "condition", ORDER3, n_boot=100).set_index("comparison")
    assert ci.loc["all", "note"] == "group 'C+' has 2 values (< 3)" and np.isnan(ci.loc["all", "eta2_ci_low"])
    assert np.isfinite(ci.loc["H vs C-", "eta2_ci_low"])


def test_all_effect_pairs_are_in_order():
    frame = _three_groups()
    table = group_tests(frame, "value", "condition", ORDER3)
    assert list(zip(table["group_a"][1:], table["group_b"][1:])) == list(combinations(ORDER3, 2))
