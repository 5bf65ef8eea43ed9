"""The report's library tables: agreement within a strategy (all pairs and seed-only replicate
pairs, hand-worked), the out-of-fold fold table read from the shipped cards, and which predicted
label sets the effect tests use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfosstats.analyses.models import strategy_agreement_of_image, training_recipe, within_strategy_summary
from cfosstats.core.imageio import write_mask
from cfosstats.study.predictions import library_cards, library_folds, prediction_images, write_library_tables


def _squares(tmp_path: Path, name: str, corners: list[tuple[int, int]]) -> Path:
    """A 64² mask with 6x6 squares at `corners` (each its own object)."""
    mask = np.zeros((64, 64), dtype=bool)
    for r, c in corners:
        mask[r : r + 6, c : c + 6] = True
    path = tmp_path / f"{name}.png"
    write_mask(path, mask)
    return path


def test_within_strategy_agreement_is_hand_worked(tmp_path):
    # expert_1 and its seed replicate share 3 of their 4 objects; expert_2 shares 2 of 4 with each.
    a = [(2, 2), (2, 20), (2, 40), (20, 2)]
    a_r2 = [(2, 2), (2, 20), (2, 40), (40, 40)]
    b = [(2, 2), (2, 20), (50, 10), (50, 30)]
    paths = {
        "library/scratch/expert_models/expert_1/unet_1": _squares(tmp_path, "a", a),
        "library/scratch/expert_models/expert_1_r2/unet_1": _squares(tmp_path, "a2", a_r2),
        "library/scratch/expert_models/expert_2/unet_1": _squares(tmp_path, "b", b),
    }
    items, pairs = strategy_agreement_of_image("0001", {"expert_models": paths}, None, 1)
    assert len(pairs) == 3  # each unordered pair once
    f1 = {frozenset((r, q)): f for r, q, f in zip(pairs["rater"], pairs["reference"], pairs["f1"])}
    names = list(paths)
    assert f1[frozenset(names[:2])] == pytest.approx(3 / 4)  # F1 = 2 tp / (4 + 4)
    assert f1[frozenset((names[0], names[2]))] == pytest.approx(2 / 4)
    assert f1[frozenset((names[1], names[2]))] == pytest.approx(2 / 4)
    assert (pairs["mean_iou"] == 1.0).all()  # identical squares where they match
    summary = within_strategy_summary(pairs, {"expert_models": "held out"}).set_index("pairs")
    assert summary.loc["all", "n_pairs"] == 3 and summary.loc["all", "n_sets"] == 3
    assert summary.loc["all", "f1_mean"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    assert summary.loc["replicates", "n_pairs"] == 1
    assert summary.loc["replicates", "f1_mean"] == pytest.approx(0.75)
    # The same objects feed Fleiss' kappa: 7 distinct objects, as many background proposals.
    assert (items["kind"] == "object").sum() == 7 == (items["kind"] == "background").sum()
    assert sorted(items.loc[items["kind"] == "object", "n_present"]) == [1, 1, 1, 1, 2, 3, 3]


def test_training_recipe_pairs_only_seed_replicates():
    assert training_recipe("library/scratch/consensus_models/consensus_r3/unet_3") == training_recipe(
        "library/scratch/consensus_models/consensus/unet_3"
    )
    # fold 4 of replicate 2 was rejected (a single model), of replicate 3 taken by its ensemble
    assert training_recipe("library/scratch/consensus_models/consensus_r2/unet_4") == training_recipe(
        "library/scratch/consensus_ensembles/ensemble_3/unet_4"
    )
    assert training_recipe("library/scratch/consensus_ensembles/ensemble_2/unet_1") != training_recipe(
        "library/scratch/consensus_ensembles/ensemble_2/unet_2"
    )
    assert training_recipe("library/scratch/expert_models/expert_1/unet_1") != training_recipe(
        "library/scratch/expert_models/expert_2/unet_1"
    )


def test_fold_table_is_the_shipped_cards_validation(tmp_path):
    # wue2: fold 1's model failed the rule and is listed as rejected by the shipped ensemble.
    cards = library_cards("wue2")
    folds = library_folds(cards)
    by_name = {c["name"].split("/")[-1]: c for _, c in cards}
    ensemble = by_name["consensus_ensemble"]
    assert len(folds) == sum(len(c.get("validation", [])) for c in by_name.values())
    for row in folds.to_dict("records"):
        card = by_name[row["model"]]
        [record] = [v for v in card["validation"] if v["image_id"] == str(row["image_id"])]
        assert row["model_f1"] == record["model_f1"]
        assert row["passed"] == record["passed"]
        assert row["verdict"] == ensemble["selection"]["members"][card["name"]]
        assert row["best_annotator_f1"] == max(v for k, v in record.items() if k.startswith("f1_"))
    assert set(folds.loc[folds["verdict"] == "rejected", "model"]) == {
        n.split("/")[-1] for n in ensemble["selection"]["rejected"]
    }
    write_library_tables(tmp_path, cards, cards[0][0].parent / "folds.csv")
    variants = pd.read_csv(tmp_path / "library_variants.csv").set_index(["record", "variant"])
    shipped = variants.loc[("shipped library", "consensus_ensemble")]
    assert shipped["n_folds"] == 5 and shipped["n_folds_passed"] == 5 - len(ensemble["selection"]["rejected"])
    trained = pd.read_csv(cards[0][0].parent / "folds.csv")
    frozen = trained[trained["variant"] == "frozen"]
    assert variants.loc[("variants compared in training", "frozen"), "model_f1_median"] == pytest.approx(
        frozen["model_f1"].median()
    )


def test_only_reliability_replicates_predict_their_test_images_alone():
    ids = ["a", "b", "c"]
    assert prediction_images({"replicate": 3, "test_images": ["c", "a"]}, ids) == ["a", "c"]
    assert prediction_images({"replicate": 2, "test_images": []}, ids) == ids  # no test set: all
    assert prediction_images({"test_images": ["a"]}, ids) == ids


def test_effects_leave_out_label_sets_of_a_few_images(train_data):
    from cfosstats.datasets import load_lab
    from cfosstats.datasets.lab import LabelSource
    from cfosstats.study.runner import Results
    from cfosstats.study.steps import effects_lab, partial_predictions

    lab = load_lab("mue", data=train_data)
    mask = Path(lab.label_sources["est_GT"].files[lab.image_ids[0]])

    def predicted(name: str, ids) -> LabelSource:
        return LabelSource(name, "consensus_models", mask.parent, {i: mask for i in ids}, "scratch")

    results = Results(lab, Path("unused"), {})
    results.predicted = {
        "library/all": predicted("library/all", lab.image_ids),
        "library/some": predicted("library/some", lab.image_ids[:2]),
    }
    assert partial_predictions(results) == ["library/some"]
    sources = effects_lab(results).label_sources
    assert "library/all" in sources and "library/some" not in sources
    assert set(lab.label_sources) <= set(sources)
