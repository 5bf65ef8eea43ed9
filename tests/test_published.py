"""Reviewer mode on the study's real published tables: every published number reproduced."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cfosstats.analyses.published import AnalysisSet, analyse_set, shipped_sets
from cfosstats.analyses.reviewer import analyse_table, reliability_tables
from cfosstats.datasets.registry import load_lab_config
from cfosstats.datasets.statistics import read_statistics, read_variation_per_effect
from cfosstats.datasets.tables import read_quantification
from cfosstats.stats.presets import get_preset
from cfosstats.stats.reproduce import compare_with_published

pytestmark = pytest.mark.realdata
STUDY = get_preset("segebarth2020")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _reproduce(source_data, figure, quantification, statistics, lab):
    config = load_lab_config(lab)
    folder = source_data / figure
    tables = analyse_table(read_quantification(folder / quantification, config), config, STUDY)
    published = read_statistics(folder / statistics, config, STUDY)
    return tables, compare_with_published(tables, published, config, STUDY), pd.read_csv(folder / statistics)


def test_mue_every_published_statistic_reproduced(source_data):
    tables, comparison, raw = _reproduce(
        source_data,
        "Figure_5_source_data",
        "quantifications_mue.csv",
        "stat_results_quantifications_mue.csv",
        "mue",
    )
    assert len(raw) == 45 and comparison["source"].nunique() == 45
    wanted = {"U", "eta2", "p", "eta2_critical_0.05", "eta2_critical_0.01", "eta2_critical_0.001", "call"}
    wanted |= {f"{s}_{g}" for s in ("mean", "median", "sd") for g in "ab"}
    per_quantity = comparison.groupby("quantity").size()
    assert set(per_quantity.index) == wanted and (per_quantity == 45).all()
    bad = comparison[~comparison["equal"]]
    assert bad.empty, bad.head().to_string()
    assert comparison.loc[comparison["quantity"] != "call", "abs_difference"].max() <= 1e-9
    # Independent check of one row straight from scipy and the published file.
    row = raw.iloc[0]
    data = tables["quantification"].query("source == 'ens_f27'")
    ext = data.loc[data["group"] == "Ext", "density_normalised"]
    ret = data.loc[data["group"] == "Ret", "density_normalised"]
    u, p = stats.mannwhitneyu(ext, ret, alternative="two-sided", method="asymptotic")
    assert u == row["U_mwu1_vs_2"] and p == pytest.approx(row["p_mwu1_vs_2"], abs=1e-12)
    # Normalisation recomputed from raw counts and areas equals the published values.
    assert tables["normalisation_check"]["equal"].all()


def test_ca1_kruskal_and_pairs_reproduced(source_data):
    tables, comparison, raw = _reproduce(
        source_data,
        "Figure_3_source_data",
        "quantifications_CA1.csv",
        "stat_results_quantifications_CA1.csv",
        "wue1",
    )
    assert comparison["source"].nunique() == 6 == len(raw)
    assert comparison["equal"].all(), comparison[~comparison["equal"]].to_string()
    counts = comparison.groupby("quantity").size().to_dict()
    assert counts["H"] == 6 and counts["eta2"] == 24 and counts["call"] == 18
    check = tables["normalisation_check"].set_index("readout")
    assert check["equal"].all() and (check["n_compared"] == 576).all()
    # Normalised per experiment: one experiment's control mean is 1 by construction.
    q = tables["quantification"]
    control = q[(q["group"] == "H") & (q["source"] == "ens_10")]
    assert control.groupby("experiment")["density_normalised"].mean().to_numpy() == pytest.approx(1.0)
    assert control["experiment"].nunique() == 4


def test_figure4_variation_per_effect_and_strategy_test(source_data):
    folder = source_data / "Figure_4_source_data"
    config = load_lab_config("wue1")
    effects = read_statistics(folder / "stat_results_quantifications_wue1.xlsx", config, STUDY)
    tables = reliability_tables(effects, STUDY)
    published = read_variation_per_effect(folder / "variation_per_effect.xlsx", config)
    keys = ["region", "readout", "comparison", "strategy"]
    merged = published.merge(tables["variation_per_effect"], on=keys, validate="one_to_one")
    assert len(merged) == 90
    assert np.abs(merged["eta_std"] - merged["eta2_sd"]).max() <= 1e-6
    assert np.abs(merged["eta_mean"] - merged["eta2_mean"]).max() <= 1e-6
    between = tables["variation_between_strategies"]
    assert between["kruskal_h"].iloc[0] == pytest.approx(26.472, abs=5e-4)
    assert between["kruskal_p"].iloc[0] == pytest.approx(1.8e-6, rel=0.05)
    reference = pd.read_excel(folder / "stat_results_variation_per_effect.xlsx")
    assert between["kruskal_h"].iloc[0] == pytest.approx(
        reference["Kruskal_Wallis_ANOVA_H_stat"].iloc[0], rel=1e-6
    )
    # Calls that differ from the majority, per effect and strategy (the study's FDR column).
    calls = effects[effects["comparison"] != "all"].merge(
        tables["reproducibility"][["region", "readout", "comparison", "majority_call"]], on=keys[:3]
    )
    differ = calls.assign(d=calls["call"] != calls["majority_call"]).groupby(keys)["d"].sum()
    assert (merged.set_index(keys)["FDR"] == differ.reindex(merged.set_index(keys).index)).all()


def test_shipped_sets_match_the_shared_files(source_data):
    shipped = {s.name: s for s in shipped_sets("wue1")}
    assert set(shipped) == {"figure3", "figure4"}
    assert (
        shipped["figure3"].quantification.read_bytes()
        == (source_data / "Figure_3_source_data" / "quantifications_CA1.csv").read_bytes()
    )
    figure4 = analyse_set(shipped["figure4"], load_lab_config("wue1"))
    test = figure4.tables["variation_test_reproduction"].set_index("quantity")
    assert (
        test.loc["kruskal_h", "abs_difference"] <= 1e-9 and test.loc["kruskal_p", "abs_difference"] <= 1e-12
    )
    result = analyse_set(shipped_sets("mue")[0], load_lab_config("mue"))
    assert result.tables["reproduction"]["equal"].all()
    assert set(result.tables["quantification"]["initialization"]) == {
        "from scratch",
        "fine-tuned",
        "frozen",
        "",
    }


def test_own_format_and_mapped_format_give_the_same_effects(source_data, tmp_path):
    config = load_lab_config("mue")
    study_file = source_data / "Figure_5_source_data" / "quantifications_mue.csv"
    reference = analyse_table(read_quantification(study_file, config), config, STUDY)["effects"]
    own = tmp_path / "quantification.csv"
    reference_q = analyse_table(read_quantification(study_file, config), config, STUDY)["quantification"]
    reference_q.to_csv(own, index=False)
    again = analyse_table(read_quantification(own, config), config, STUDY)["effects"]
    raw = pd.read_csv(study_file)
    exported = raw.assign(model=raw["ens"] + "/" + raw["unet"]).rename(
        columns={
            "Nummer": "Image",
            "count": "Num Detections",
            "Neun_Area": "ROI area px",
            "Kondition": "Class",
        }
    )
    exported = exported[["Image", "model", "Num Detections", "ROI area px", "Class", "mean"]]
    exported_path = tmp_path / "qupath.tsv"
    exported.to_csv(exported_path, sep="\t", index=False)
    mapped = read_quantification(
        exported_path,
        config,
        columns="image=Image,source=model,count=Num Detections,area=ROI area px,"
        "condition=Class,intensity=mean",
        strategies=r"/ens_[a-z0-9]+$=consensus_ensembles,\.h5$=consensus_models",
    )
    mapped_effects = analyse_table(mapped, config, STUDY)["effects"]
    for other in (again, mapped_effects):
        assert len(other) == len(reference)
        assert np.allclose(np.sort(other["eta2"]), np.sort(reference["eta2"]), atol=1e-12)
        assert np.allclose(np.sort(other["p_value"]), np.sort(reference["p_value"]), atol=1e-12)


def test_wue2_table_without_analysis_column_is_refused(source_data):
    from cfosstats.core.errors import InputError

    path = source_data / "Figure_5_source_data" / "quantifications_wue2.csv"
    with pytest.raises(InputError) as info:
        read_quantification(path, load_lab_config("wue2"))
    assert "'unet' (the analysis: which model or ensemble made each row)" in str(info.value)
    assert str(path) in str(info.value)


def test_statistics_only_set(source_data):
    workbook = source_data / "Figure_4_source_data" / "stat_results_quantifications_wue1.xlsx"
    result = analyse_set(AnalysisSet("f4", "Figure 4", effect_sizes=workbook), load_lab_config("wue1"))
    assert result.kind == "statistics"
    repro = result.tables["reproducibility"].set_index(["region", "readout", "comparison"])
    assert repro.loc[("CA1", "density", "H vs C+"), "majority_call"] == "increase"
    assert repro.loc[("DG_infra", "density", "H vs C+"), "majority_call"] == "none"
    assert repro.loc[("CA1", "density", "C- vs C+"), "majority_call"] == "none"
