"""End to end: quantification, effect tests and the vote on simulated studies and on lab-wue1.

The simulated studies are small (3 animals per condition, 3 images per animal and area, 160 px):
the planted effect (x2 density and brightness in C+, seed 2) is found by every analysis but one
or two; with no effect (seed 2) no analysis finds one. Both are deterministic (seeded).
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cfosstats.analyses.effect_tables import Unit as _Unit
from cfosstats.analyses.effect_tables import analyse_unit
from cfosstats.analyses.effect_tables import outlier_table as _outliers
from cfosstats.analyses.validity import FILES, run_effects
from cfosstats.cli.effects import effects_command
from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_mask, write_mask
from cfosstats.datasets import load_lab
from cfosstats.datasets.predictions import training_images_from_predictions
from cfosstats.simulate.study import simulate_study
from cfosstats.stats import outliers as outlier_tests

SMALL = {"n_animals": 3, "images_per_animal": 3, "size": 160}
FAST = {"jobs": 2, "n_boot": 0, "levels": ("image",)}
ENSEMBLE = "scratch/consensus_ensembles/ensemble_1/ensemble"


@pytest.fixture(scope="module")
def effect_study(tmp_path_factory):
    return simulate_study(tmp_path_factory.mktemp("effect") / "study", seed=2, effect=1.0, **SMALL)


@pytest.fixture(scope="module")
def null_study(tmp_path_factory):
    return simulate_study(tmp_path_factory.mktemp("null") / "study", seed=2, effect=0.0, **SMALL)


@pytest.fixture(scope="module")
def effect_run(effect_study, tmp_path_factory):
    return run_effects(
        load_lab("demo", data=effect_study), tmp_path_factory.mktemp("out") / "effects", **FAST
    )


@pytest.fixture(scope="module")
def null_run(null_study, tmp_path_factory):
    voting_models = ["expert_models", "consensus_models", "consensus_ensembles"]
    out = tmp_path_factory.mktemp("out") / "effects"
    return run_effects(load_lab("demo", data=null_study), out, sources=voting_models, **FAST)


def _effect(result, readout="density", comparison="H vs C+"):
    repro = result.tables["reproducibility"]
    return repro[(repro["readout"] == readout) & (repro["comparison"] == comparison)].set_index("region")


def test_every_table_and_run_json_are_written(effect_run):
    for name in FILES:
        assert (effect_run.out_dir / f"{name}.csv").is_file()
    run = json.loads((effect_run.out_dir / "run.json").read_text())
    assert run["grouping"] == "conditions" and run["groups"] == ["H", "C-", "C+"]
    assert run["control_group"] == "H"
    effects = pd.read_csv(effect_run.out_dir / "effects.csv")
    assert set(effects["grouping"]) == {"conditions"}


def test_the_planted_effect_is_found_by_majority_in_every_region(effect_run):
    density = _effect(effect_run)
    assert set(density.index) == {"CA1", "CA3", "DG"}
    assert (density["majority_call"] == "increase").all()
    assert density["summary"].str.startswith("found by").all()
    assert (density["consensus_ensembles_agree"] == density["consensus_ensembles_n"]).all()
    assert (density["annotators_n"] == 0).all() and (density["estimated_gt_n"] == 0).all()  # too few images


def test_the_analyses_that_miss_an_effect_are_named(effect_run):
    repro = effect_run.tables["reproducibility"]
    for row in repro.itertuples():
        named = [n for n in row.dissenters.split(";") if n] if isinstance(row.dissenters, str) else []
        assert len(named) == row.n_analyses - row.n_agree
    assert (repro["n_analyses"] - repro["n_agree"]).sum() > 0  # someone misses something


def test_no_planted_effect_no_majority_effect(null_run):
    density = _effect(null_run)
    assert (density["majority_call"] == "none").all()
    assert density["summary"].str.startswith("no effect by majority").all()
    assert (null_run.tables["reproducibility"]["majority_call"] == "none").mean() >= 0.9


def test_quantification_covers_every_image_source_and_region(effect_study, effect_run):
    lab = load_lab("demo", data=effect_study)
    table = effect_run.tables["quantification"]
    expected = sum(len(lab.regions_of(i)) for s in lab.label_sources.values() for i in s.files)
    assert len(table) == expected
    assert set(table["source"]) == set(lab.label_sources)
    assert table["density_unit"].eq("objects per mm²").all()
    control = table[table["analysed"] & (table["group"] == "H")]
    means = control.groupby(["source", "region", "experiment"])["density_normalised"].mean()
    assert np.allclose(means.dropna(), 1.0)


def test_in_sample_predictions_are_kept_but_not_tested(effect_study, effect_run):
    lab = load_lab("demo", data=effect_study)
    training = set(lab.metadata.loc[lab.metadata["training"], "image_id"])
    table = effect_run.tables["quantification"]
    predicted = table[table["strategy"] != "annotators"]
    predicted = predicted[predicted["strategy"] != "estimated_gt"]
    assert predicted["in_sample"].eq(predicted["image_id"].isin(training)).all()
    assert not predicted.loc[predicted["in_sample"], "analysed"].any()
    assert not table.loc[table["strategy"] == "annotators", "in_sample"].any()
    effects = effect_run.tables["effects"]
    row = effects[(effects["source"] == ENSEMBLE) & (effects["comparison"] == "H vs C+")].iloc[0]
    n_out = predicted[(predicted["source"] == ENSEMBLE) & (predicted["region"] == row["region"])]
    n_out = n_out[n_out["group"].isin(["H", "C+"]) & ~n_out["in_sample"]]
    assert row["n_a"] + row["n_b"] == len(n_out)
    assert row["n_in_sample_left_out"] == 3  # one training image per condition in each area


def test_annotators_with_too_few_images_are_skipped_with_a_note(effect_run):
    effects = effect_run.tables["effects"]
    skipped = effects[effects["source"] == "expert_1"]
    assert (skipped["test"] == "skipped").all()
    assert skipped["note"].str.contains(r"skipped: group \S+ has 1 analysed image").all()
    assert "expert_1" not in set(effect_run.tables["variation_per_model"]["source"])


def test_ensemble_consistency_levels(effect_run):
    consistency = effect_run.tables["consistency"]
    summary = consistency[consistency["image_id"].isna()]
    levels = set(summary["level"])
    assert {"between_ensembles", "consensus_models", "expert_models"} <= levels
    assert f"members_of:{ENSEMBLE}" in levels
    f1 = summary[summary["metric"] == "object_f1_mean"].set_index("level")["value"]
    assert (f1 > 0.5).all() and (f1 <= 1).all()
    icc = summary[summary["metric"] == "count_icc"].set_index("level")["value"]
    assert icc["between_ensembles"] > icc["expert_models"]


def test_exclusions_are_recorded_and_a_second_run_uses_the_cache(effect_study, tmp_path):
    lab = load_lab("demo", data=effect_study)
    image_id = lab.image_ids[0]
    out = tmp_path / "effects"
    options = {**FAST, "sources": ["consensus_ensembles"]}
    first = run_effects(lab, out, exclude=[image_id], **options)
    assert first.run["excluded"] == [{"image_id": image_id, "from": "option"}]
    table = first.tables["quantification"]
    assert table.loc[table["image_id"] == image_id, "excluded"].all()
    assert not table.loc[table["image_id"] == image_id, "analysed"].any()
    second = run_effects(lab, out, exclude=[image_id], **options)
    assert second.run["cache_hits"] >= len(table) // 3
    pd.testing.assert_frame_equal(first.tables["quantification"], second.tables["quantification"])
    with pytest.raises(InputError, match="not in lab demo"):
        run_effects(lab, tmp_path / "bad", exclude=["nope"], **options)


def test_training_images_hook_and_out_of_fold_source(effect_study, tmp_path):
    lab = load_lab("demo", data=effect_study)
    ids = lab.image_ids
    members = [f"scratch/consensus_ensembles/ensemble_1/unet_{k}" for k in (1, 2, 3)]
    # fold k trained on every image but the k-th third
    thirds = [set(ids[k::3]) for k in range(3)]
    hook = {name: set(ids) - thirds[k] for k, name in enumerate(members)}
    result = run_effects(
        lab,
        tmp_path / "effects",
        training_images=hook,
        sources=["ensemble_members", "consensus_models"],
        **FAST,
    )
    table = result.tables["quantification"]
    oof = table[table["source"] == "scratch/consensus_ensembles/ensemble_1/out_of_fold"]
    assert set(oof["image_id"]) == set(ids)
    assert not oof["in_sample"].any() and (oof["strategy"] == "consensus_models").all()
    member = table[table["source"] == members[0]]
    assert member["in_sample"].eq(member["image_id"].isin(hook[members[0]])).all()
    assert (member["in_sample_basis"] == "given").all()


def test_training_images_from_the_model_cards_of_a_prediction(tmp_path):
    library = tmp_path / "library" / "demo"
    library.mkdir(parents=True)
    members = []
    for fold, trained in ((1, ["a", "b"]), (2, ["b", "c"])):
        card = {
            "name": f"demo/consensus_model_{fold}",
            "kind": "model",
            "fold": fold,
            "training_images": trained,
        }
        (library / f"consensus_model_{fold}.json").write_text(json.dumps(card))
        members.append(card["name"])
    ensemble = {"name": "demo/consensus_ensemble", "kind": "ensemble", "members": members}
    (library / "consensus_ensemble.json").write_text(json.dumps(ensemble))
    record = (
        tmp_path / "lab-demo" / "uncertainty" / "scratch" / "consensus_ensembles" / "ensemble_1" / "ensemble"
    )
    record.mkdir(parents=True)
    (record / "prediction.json").write_text(
        json.dumps({"model_card": str(library / "consensus_ensemble.json")})
    )
    found = training_images_from_predictions(SimpleNamespace(root=tmp_path / "lab-demo"))
    base = "scratch/consensus_ensembles/ensemble_1"
    assert found == {
        f"{base}/unet_1": {"a", "b"},
        f"{base}/unet_2": {"b", "c"},
        f"{base}/ensemble": {"a", "b", "c"},
    }
    # without cards: the roles of uncertainty.csv
    (record / "prediction.json").write_text(json.dumps({"model_card": str(tmp_path / "missing.json")}))
    pd.DataFrame({"image_id": ["a", "d"], "role": ["training", "test"]}).to_csv(record / "uncertainty.csv")
    found = training_images_from_predictions(SimpleNamespace(root=tmp_path / "lab-demo"))
    assert found == {f"{base}/ensemble": {"a"}}


def test_animal_level_and_mixed_model_side_by_side(effect_study, tmp_path):
    lab = load_lab("demo", data=effect_study)
    result = run_effects(lab, tmp_path / "effects", jobs=1, n_boot=50, sources=[ENSEMBLE])
    effects = result.tables["effects"]
    assert set(effects["level"]) == {"image", "animal", "mixed"}
    assert set(effects.loc[effects["level"] == "mixed", "test"]) <= {"mixed_lm_f", "mixed_lm_wald"}
    image = effects[(effects["level"] == "image") & (effects["comparison"] != "all")]
    assert (image["eta2_ci_low"] <= image["eta2"] + 1e-12).all()
    assert (image["n_boot"] == 50).all()
    repro = result.tables["reproducibility"]
    assert {"majority_call_animal", "majority_call_mixed"} <= set(repro.columns)
    warnings = result.tables["warnings"]["message"]
    assert warnings.str.contains("animal level: with 3 and 3 animals").any()


def _add_source(lab_dir, name, make_mask):
    folder = lab_dir / "labels" / name
    folder.mkdir(parents=True)
    for mask_file in sorted(
        (lab_dir / "labels" / "scratch/consensus_ensembles/ensemble_1/ensemble").iterdir()
    ):
        image_id = mask_file.name.split("_")[0]
        write_mask(folder / mask_file.name, make_mask(image_id, read_mask(mask_file)))


def test_degenerate_sources_get_clear_notes(null_study, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(null_study, root)
    lab_dir = root / "lab-demo"
    lab = load_lab("demo", data=root)
    control = set(lab.metadata.loc[lab.metadata["condition"] == "H", "image_id"])
    _add_source(lab_dir, "empty", lambda i, m: np.zeros_like(m))
    _add_source(lab_dir, "no_control", lambda i, m: np.zeros_like(m) if i in control else m)
    lab = load_lab("demo", data=root)
    result = run_effects(lab, tmp_path / "effects", sources=["empty", "no_control", "est_GT"], **FAST)
    notes = result.tables["effects"].set_index(["source", "readout"])["note"]
    assert notes.loc[("empty", "density")].str.contains("normalised density undefined").all()
    assert notes.loc[("empty", "intensity")].str.contains("no objects").all()
    assert notes.loc[("no_control", "density")].str.contains("control group mean is 0").all()
    assert notes.loc[("est_GT", "density")].str.contains("has 1 analysed image").all()
    messages = result.tables["warnings"]
    assert messages["message"].str.contains("no objects in any image").any()
    zero = messages[(messages["source"] == "no_control") & (messages["readout"] == "density")]
    assert zero["message"].str.contains(r"control \(H\) mean is 0").all() and len(zero) > 0
    _add_source(lab_dir, "cropped", lambda i, m: m[:100])
    with pytest.raises(
        InputError, match=r"cropped/.*mask shape 100x160 differs from the image's \(160x160\)"
    ):
        run_effects(load_lab("demo", data=root), tmp_path / "bad", sources=["cropped"], **FAST)


def test_all_equal_values_and_small_groups_are_noted():
    frame = pd.DataFrame(
        {
            "image_id": [str(i) for i in range(9)],
            "group": ["H"] * 3 + ["C-"] * 3 + ["C+"] * 3,
            "animal": [f"m{i // 2}" for i in range(9)],
            "value": 1.0,
            "raw": 5.0,
        }
    )
    unit = _Unit("s", "consensus_ensembles", "CA1", "density", frame)
    table = analyse_unit(unit, ("H", "C-", "C+"), 0.05, ("image",), 0, 0)[0]
    assert table["note"].str.contains("all values equal").all()
    assert not table["significant"].any()
    small = _Unit("s", "consensus_ensembles", "CA1", "density", frame.iloc[1:])
    skipped = analyse_unit(small, ("H", "C-", "C+"), 0.05, ("image",), 0, 0)[0]
    assert (
        skipped.loc[0, "test"] == "skipped"
        and "group H has 2 analysed image(s) (< 3)" in skipped.loc[0, "note"]
    )


def test_outlier_prefilter_is_exact():
    rng = np.random.default_rng(0)
    long = pd.DataFrame(
        {
            "source": np.repeat(["a", "b"], 60),
            "strategy": "expert_models",
            "region": "CA1",
            "readout": "density",
            "group": np.tile(np.repeat(["H", "C-", "C+"], 20), 2),
            "image_id": [str(i) for i in range(120)],
            "value": rng.standard_t(2, 120),
        }
    )
    by = ["source", "strategy", "region", "readout", "group"]
    full = outlier_tests.flag_outliers(long, "value", by=by)
    fast = _outliers(long.assign(animal=None, raw=long["value"]), 0.05)
    assert len(full) > 0
    assert sorted(full["image_id"]) == sorted(fast["image_id"])


def test_no_groups_is_an_input_error(tmp_path):
    from cfosstats.core.imageio import write_png
    from cfosstats.datasets.registry import load_lab_config

    lab_dir = tmp_path / "lab-mue"
    write_png(lab_dir / "images" / "a.png", np.zeros((8, 8), np.uint8))
    lab = load_lab(load_lab_config("mue"), data=tmp_path)
    with pytest.raises(InputError, match="no groups to compare"):
        run_effects(lab, tmp_path / "out")


def test_effects_command_refuses_bad_options(tmp_path):
    with pytest.raises(InputError, match="--alpha"):
        effects_command("demo", None, None, tmp_path / "out", alpha=1.5)
    with pytest.raises(InputError, match="--jobs"):
        effects_command("demo", None, None, tmp_path / "out", jobs=0)


@pytest.mark.realdata
def test_wue1_training_data_strata_are_the_groups(train_data, tmp_path):
    lab = load_lab("wue1", data=train_data)
    result = run_effects(lab, tmp_path / "wue1", jobs=2, n_boot=0)
    run = result.run
    assert run["grouping"] == "strata" and run["groups"] == [str(i) for i in range(9)]
    assert "strata are the groups" in run["grouping_note"]
    table = result.tables["quantification"]
    assert set(table["source"]) == {"est_GT", "expert_1", "expert_2", "expert_3", "expert_4", "expert_5"}
    assert len(table) == 36 * 6 and set(table["region"]) == {"image"}
    effects = result.tables["effects"]
    assert set(effects["grouping"]) == {"strata"}
    tested = effects[effects["test"] != "skipped"]
    assert set(tested["source"]) == set(table["source"])
    assert (tested.loc[tested["comparison"] != "all", "n_comparisons"] == 36).all()
    omnibus = tested[(tested["comparison"] == "all") & (tested["readout"] == "density")]
    assert omnibus["significant"].all()  # the strata differ in density, for every annotator
    assert result.tables["warnings"]["message"].str.contains("no pair can be significant").any()
