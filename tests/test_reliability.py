"""Majority vote, reproducibility counts and variation per effect / model on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cfosstats.stats.reliability import (
    calls_from_effects,
    compare_strategies,
    consistency_summary,
    majority_vote,
    reproducibility_table,
    variation_per_effect,
    variation_per_model,
)

EXPERT = "expert_models"
CONSENSUS = "consensus_models"
ENSEMBLE = "consensus_ensembles"
MEMBER = "ensemble_members"


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        (["increase"] * 3 + ["none"], ("increase", False)),
        (["increase", "none"], ("none", True)),  # tie -> none
        (["increase", "decrease"], ("none", True)),
        (["decrease", "decrease", "none", "increase"], ("decrease", False)),
        (["increase", "increase", "none", "none", "decrease"], ("none", True)),
        ([], ("none", False)),
    ],
)
def test_majority_vote_and_the_tie_rule(calls, expected):
    assert majority_vote(calls) == expected


def _calls() -> pd.DataFrame:
    """Two effects; 4 experts, 2 consensus models, 2 ensembles (with 2 members that do not vote)."""
    sources = [
        ("e1", EXPERT),
        ("e2", EXPERT),
        ("e3", EXPERT),
        ("e4", EXPERT),
        ("c1", CONSENSUS),
        ("c2", CONSENSUS),
        ("ens1", ENSEMBLE),
        ("ens2", ENSEMBLE),
        ("m1", MEMBER),
        ("m2", MEMBER),
    ]
    density = [
        "increase",
        "none",
        "increase",
        "none",
        "increase",
        "increase",
        "increase",
        "increase",
        "none",
        "none",
    ]
    intensity = ["none", "none", "increase", "none", "none", "none", "none", "none", "increase", "increase"]
    eta_density = [0.50, 0.10, 0.40, 0.20, 0.45, 0.35, 0.42, 0.40, 0.30, 0.20]
    eta_intensity = [0.05, 0.10, 0.30, 0.05, 0.10, 0.10, 0.08, 0.12, 0.40, 0.50]
    rows = []
    for readout, calls, etas in (("density", density, eta_density), ("intensity", intensity, eta_intensity)):
        for (source, strategy), call, eta in zip(sources, calls, etas):
            rows.append(
                {
                    "source": source,
                    "strategy": strategy,
                    "region": "CA1",
                    "readout": readout,
                    "comparison": "H vs C+",
                    "call": call,
                    "eta2": eta,
                }
            )
    return pd.DataFrame(rows)


def test_reproducibility_counts_per_strategy():
    table = reproducibility_table(_calls()).set_index("readout")
    density = table.loc["density"]
    assert density["majority_call"] == "increase"
    assert density["n_analyses"] == 8  # members do not vote
    assert density["n_agree"] == 6
    assert (density["expert_models_agree"], density["expert_models_n"]) == (2, 4)
    assert (density["consensus_models_agree"], density["consensus_models_n"]) == (2, 2)
    assert (density["consensus_ensembles_agree"], density["consensus_ensembles_n"]) == (2, 2)
    assert (density["ensemble_members_agree"], density["ensemble_members_n"]) == (0, 2)
    assert density["summary"] == "found by 2/4 expert models, 2/2 consensus models, 2/2 consensus ensembles"
    assert density["dissenters"] == "e2;e4"
    intensity = table.loc["intensity"]
    assert intensity["majority_call"] == "none"
    assert intensity["summary"] == "no effect by majority: 1/8 analyses call an increase"
    assert intensity["dissenters"] == "e3"


def test_reproducibility_adds_the_other_levels():
    calls = _calls()
    animal = calls.assign(level="animal", call="none")
    table = reproducibility_table(calls, extra_levels=animal)
    assert table["majority_call_animal"].tolist() == ["none", "none"]
    assert table["n_analyses_animal"].tolist() == [8, 8]


def test_calls_from_effects_keeps_pairwise_tested_rows():
    effects = pd.DataFrame(
        {
            "comparison": ["all", "H vs C+", "H vs C-", "C- vs C+"],
            "p_value": [0.001, 0.001, np.nan, 0.3],
            "significant": [True, True, False, False],
            "direction": ["", "decrease", "none", "increase"],
        }
    )
    assert calls_from_effects(effects)["call"].tolist() == ["decrease", "none"]


def test_variation_per_effect_is_the_sd_within_each_strategy():
    table = variation_per_effect(_calls())
    density = table[table["readout"] == "density"].set_index("strategy")
    assert density.loc[EXPERT, "n"] == 4
    assert density.loc[EXPERT, "eta2_sd"] == pytest.approx(np.std([0.5, 0.1, 0.4, 0.2], ddof=1))
    assert density.loc[ENSEMBLE, "eta2_sd"] == pytest.approx(np.std([0.42, 0.40], ddof=1))
    assert density.loc[EXPERT, "eta2_mean"] == pytest.approx(0.3)
    assert list(density.index) == [
        "expert_models",
        "consensus_models",
        "ensemble_members",
        "consensus_ensembles",
    ]


def test_kruskal_across_strategies_matches_scipy():
    rng = np.random.default_rng(3)
    variation = pd.DataFrame(
        {
            "strategy": [EXPERT] * 6 + [CONSENSUS] * 6 + [ENSEMBLE] * 6,
            "eta2_sd": np.r_[rng.uniform(0.1, 0.3, 6), rng.uniform(0.0, 0.2, 6), rng.uniform(0.0, 0.1, 6)],
        }
    )
    table = compare_strategies(variation)
    samples = [variation.loc[variation["strategy"] == s, "eta2_sd"] for s in (EXPERT, CONSENSUS, ENSEMBLE)]
    h, p = stats.kruskal(*samples)
    assert table["kruskal_h"].unique() == pytest.approx([h])
    assert table["kruskal_p"].unique() == pytest.approx([p])
    assert table["n_effects"].tolist() == [6, 6, 6]


def test_kruskal_needs_two_strategies():
    variation = pd.DataFrame({"strategy": [EXPERT] * 3, "eta2_sd": [0.1, 0.2, 0.3]})
    table = compare_strategies(variation)
    assert np.isnan(table.loc[0, "kruskal_p"]) and "fewer than two" in table.loc[0, "note"]


def test_variation_per_model_by_hand():
    calls = _calls()
    majority = reproducibility_table(calls)
    table = variation_per_model(calls, majority).set_index("source")
    voters = calls[calls["strategy"] != MEMBER]
    centre = voters.groupby("readout")["eta2"].mean()
    e1 = calls[calls["source"] == "e1"].set_index("readout")["eta2"] - centre
    assert table.loc["e1", "centred_eta2_mean"] == pytest.approx(e1.mean())
    assert table.loc["e1", "centred_eta2_sd"] == pytest.approx(e1.std(ddof=1))
    assert table.loc["e2", "n_differ"] == 1 and table.loc["e2", "differ_effects"] == "CA1/density/H vs C+"
    assert table.loc["e3", "n_differ"] == 1
    assert table.loc["c1", "n_differ"] == 0
    assert table.loc["m1", "n_differ"] == 2 and not table.loc["m1", "votes"]


def test_consistency_summary_f1_and_icc():
    pairs = pd.DataFrame(
        {
            "image_id": ["1", "1", "1", "2", "2", "2"],
            "source_a": ["a", "a", "b"] * 2,
            "source_b": ["b", "c", "c"] * 2,
            "f1": [0.9, 0.8, 0.7, 1.0, 1.0, 1.0],
        }
    )
    counts = pd.DataFrame(
        {
            "image_id": [str(i) for i in range(1, 5) for _ in range(3)],
            "source": ["a", "b", "c"] * 4,
            "count": [10, 11, 12, 20, 20, 21, 30, 29, 30, 40, 42, 41],
        }
    )
    table = consistency_summary(pairs, counts, {"members_of:ens": ["a", "b", "c"], "pair": ["a", "b"]})
    members = table[table["level"] == "members_of:ens"]
    per_image = members[members["image_id"].notna()].set_index("image_id")["value"]
    assert per_image.to_dict() == pytest.approx({"1": 0.8, "2": 1.0})
    summary = members[members["image_id"].isna()].set_index("metric")
    assert summary.loc["object_f1_mean", "value"] == pytest.approx(0.9)
    assert summary.loc["object_f1_mean", "n"] == 2
    assert 0.95 < summary.loc["count_icc", "value"] <= 1.0 and summary.loc["count_icc", "n"] == 4
    pair = table[(table["level"] == "pair") & table["image_id"].isna()].set_index("metric")
    assert pair.loc["object_f1_mean", "value"] == pytest.approx(0.95)
