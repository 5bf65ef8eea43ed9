"""Quantification tables of any lab and format: small hand-built cases against scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cfosstats.analyses.reviewer import analyse_table
from cfosstats.core.errors import InputError
from cfosstats.datasets.registry import load_lab_config
from cfosstats.datasets.tables import infer_strategy, parse_mapping, read_quantification
from cfosstats.stats.presets import get_preset, preset_differences

CONDITIONS = ["Saline", "L-DOPA responder", "L-DOPA non-responder"]


def _study_table(seed: int = 0) -> pd.DataFrame:
    """The study's column layout for a lab without experiments (like lab-inns2), 3 groups x 6 images."""
    rng = np.random.default_rng(seed)
    rows = []
    for ens, unet in (("ens_a", "ens_a"), ("ens_a", "a_sc_cyc_inns2_cFOS_staple_1.0003.h5")):
        for g, condition in enumerate(CONDITIONS):
            for i in range(6):
                rows.append(
                    {
                        "ens": ens,
                        "unet": unet,
                        "fold": "bin_average" if ens == unet else "fold_1",
                        "Nummer": 100 * g + i,
                        "mean": rng.uniform(0.1, 0.3),
                        "count": int(rng.integers(20, 60) + 15 * g),
                        "Neun_Area": float(rng.integers(90_000, 110_000)),
                        "Kondition": condition,
                        "Group": g,
                        "Area": "DLS",
                    }
                )
    return pd.DataFrame(rows)


def test_study_format_of_another_lab_matches_scipy(tmp_path):
    table = _study_table()
    path = tmp_path / "quantifications_inns2.csv"
    table.to_csv(path, index=False)
    config = load_lab_config("inns2")
    read = read_quantification(path, config)
    assert read["strategy"].tolist().count("consensus_ensembles") == 18
    assert set(read["region"]) == {"DLS"} and read["experiment"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effects = analyse_table(read, config, get_preset("segebarth2020"))["effects"]
    ensemble = table[table["unet"] == "ens_a"].copy()
    density = ensemble["count"] / ensemble["Neun_Area"]
    ensemble["norm"] = density / density[ensemble["Group"] == 0].mean()
    a = ensemble.loc[ensemble["Group"] == 0, "norm"]
    c = ensemble.loc[ensemble["Group"] == 2, "norm"]
    u, p = stats.mannwhitneyu(a, c, alternative="two-sided", method="asymptotic")
    z = (u - 18) / np.sqrt(36 * 13 / 12)
    row = effects.query(
        "source == 'ens_a' and readout == 'density' and comparison == 'Saline vs L-DOPA non-responder'"
    )
    row = row.iloc[0]
    assert row["statistic"] == u and row["p_value"] == pytest.approx(p, abs=1e-15)
    assert row["eta2"] == pytest.approx(z**2 / 12, abs=1e-15)
    assert row["eta2_critical"] == pytest.approx(stats.chi2.ppf(1 - 0.05 / 3, 1) / 12, abs=1e-15)
    h, p_h = stats.kruskal(*[ensemble.loc[ensemble["Group"] == g, "norm"] for g in range(3)])
    omnibus = effects.query("source == 'ens_a' and readout == 'density' and comparison == 'all'").iloc[0]
    assert omnibus["statistic"] == pytest.approx(h) and omnibus["eta2"] == pytest.approx((h - 2) / 15)


def test_study_preset_needs_more_than_three_per_group(tmp_path):
    table = _study_table()
    table = table[~((table["Group"] == 1) & (table["Nummer"] % 100 >= 3))]  # 3 images left in group 1
    path = tmp_path / "q.csv"
    table.to_csv(path, index=False)
    config = load_lab_config("inns2")
    read = read_quantification(path, config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = analyse_table(read, config, get_preset("segebarth2020"))["effects"]
        ours = analyse_table(read, config, get_preset("cfosstats"))["effects"]
    assert set(study["test"]) == {"skipped"}
    assert "(< 4, preset segebarth2020)" in study["note"].iloc[0]
    assert (ours["test"] != "skipped").all()


def test_toml_mapping_and_strategy_rules(tmp_path):
    mapping = tmp_path / "columns.toml"
    mapping.write_text('[columns]\nimage = "Image"\nsource = "Model"\n', encoding="utf-8")
    assert parse_mapping(mapping) == {"image": "Image", "source": "Model"}
    assert parse_mapping("image=a , source = b") == {"image": "a", "source": "b"}
    with pytest.raises(InputError, match="bad column mapping 'image'"):
        parse_mapping("image")
    assert infer_strategy("lab_net_3", rules={r"_net_\d$": "expert_models"}) == "expert_models"
    assert infer_strategy("wue1_consensus4_ensemble") == "consensus_ensembles"


def test_unknown_mapping_key_and_unmapped_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"Image": ["1"], "Model": ["m"], "N": [1], "A": [10.0], "Cond": ["Saline"]}).to_csv(
        path, index=False
    )
    config = load_lab_config("inns2")
    with pytest.raises(InputError, match="unknown column mapping key"):
        read_quantification(path, config, columns="picture=Image")
    with pytest.raises(InputError, match="mapped column 'Area' \\(for area\\) is not in the table"):
        read_quantification(path, config, columns="image=Image,source=Model,count=N,area=Area,condition=Cond")
    with pytest.raises(InputError, match="not a table cfosstats knows"):
        read_quantification(path, config)


def test_preset_differences_name_every_setting():
    table = preset_differences()
    assert set(table["setting"]) == {
        "mann_whitney_method",
        "min_per_group",
        "bonferroni_rule",
        "omnibus_rule",
        "levels",
        "members_vote",
    }
    assert table["why"].str.len().min() > 20
