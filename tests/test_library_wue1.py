"""The shipped lab-wue1 model library: its cards, checksums and split, and its accuracy on the real
held-out test images (checked against the annotators on the same images, not against stored numbers).
"""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from cfosstats.datasets import load_lab
from cfosstats.objects.label import label_objects
from cfosstats.objects.matching import match_labels
from cfosstats.segment.library import list_models, load_model
from cfosstats.segment.predict import Settings, predict_image

FOLD_MODELS = [f"wue1/consensus_model_{fold}" for fold in range(1, 5)]
# consensus_model_3 failed the selection rule (twice: seeds 0 and 1), so the ensemble leaves it out.
MEMBERS = ["wue1/consensus_model_1", "wue1/consensus_model_2", "wue1/consensus_model_4"]
EXPERTS = [f"wue1/expert_{n}" for n in range(1, 6)]
# Reliability replicates: the same split, other weights' seeds (replicate r: seed r; experts: 2).
REPLICATES = {r: [f"wue1/consensus_model_{fold}_r{r}" for fold in range(1, 5)] for r in (2, 3)}
EXPERT_REPLICATES = [f"wue1/expert_{n}_r2" for n in range(1, 6)]
ENSEMBLES = {1: "wue1/consensus_ensemble", 2: "wue1/consensus_ensemble_r2", 3: "wue1/consensus_ensemble_r3"}
ALL_FOLD_MODELS = {1: FOLD_MODELS, **REPLICATES}
NAMES = [*ENSEMBLES.values(), *FOLD_MODELS, *EXPERTS, *REPLICATES[2], *REPLICATES[3], *EXPERT_REPLICATES]


@pytest.fixture(scope="module")
def stored():
    """Every model of the library, loaded (each load verifies the weights' SHA-256)."""
    return {name: load_model(name) for name in NAMES}


def test_the_ensemble_holds_exactly_the_selected_fold_models(stored):
    card = stored["wue1/consensus_ensemble"].card
    verdicts = {name: stored[name].card["selection"]["verdict"] for name in FOLD_MODELS}
    assert [m.name for m in stored["wue1/consensus_ensemble"].members] == MEMBERS
    assert MEMBERS == [name for name in FOLD_MODELS if verdicts[name] == "selected"]
    assert card["selection"]["rejected"] == ["wue1/consensus_model_3"]


@pytest.mark.parametrize("replicate", [1, 2, 3])
def test_every_ensemble_holds_exactly_its_selected_fold_models(stored, replicate):
    ensemble = stored[ENSEMBLES[replicate]]
    folds = ALL_FOLD_MODELS[replicate]
    selected = [n for n in folds if stored[n].card["selection"]["verdict"] == "selected"]
    assert selected, "an ensemble needs one passing fold model"
    assert [m.name for m in ensemble.members] == selected
    assert ensemble.card["selection"]["rejected"] == [n for n in folds if n not in selected]
    for name in folds:
        card = stored[name].card
        assert card.get("replicate", 1) == replicate and card["seed"] == (0 if replicate == 1 else replicate)
        assert card.get("split_seed", 0) == 0  # the first replicate predates the key: its seed, 0


def test_replicates_train_on_the_same_images_with_other_seeds(stored):
    for fold in range(1, 5):
        cards = [stored[ALL_FOLD_MODELS[r][fold - 1]].card for r in (1, 2, 3)]
        assert all(c["training_images"] == cards[0]["training_images"] for c in cards)
        assert all(c["validation_images"] == cards[0]["validation_images"] for c in cards)
        assert len({c["sha256"] for c in cards}) == 3  # three different sets of weights
    for name, twin in zip(EXPERTS, EXPERT_REPLICATES):
        first, second = stored[name].card, stored[twin].card
        assert second["strategy"] == first["strategy"] and second["seed"] == 2 and second["replicate"] == 2
        assert second["training_images"] == first["training_images"]
        assert second["sha256"] != first["sha256"]


def test_the_library_lists_exactly_the_wue1_models():
    names = [n for n in list_models()["name"] if n.startswith("wue1/")]
    assert sorted(names) == sorted(NAMES)


def test_every_card_shares_one_split_and_never_trains_on_a_test_image(stored):
    test_images = stored["wue1/consensus_ensemble"].card["test_images"]
    assert len(test_images) == 9
    validation = set()
    for name in [n for n in NAMES if n not in ENSEMBLES.values()]:
        card = stored[name].card
        assert card["test_images"] == test_images
        assert set(card["training_images"]).isdisjoint(test_images)
        assert set(card["validation_images"]).isdisjoint(card["training_images"])
        assert len(card["training_images"]) + len(card["validation_images"]) == 27
        if name in FOLD_MODELS:
            validation |= set(card["validation_images"])
    assert len(validation) == 27  # the four folds' validation sets cover the 27 non-test images
    fold_1 = stored["wue1/consensus_model_1"].card
    for name in [*EXPERTS, *EXPERT_REPLICATES]:  # on fold 1, as consensus_model_1: a fair comparison
        assert stored[name].card["training_images"] == fold_1["training_images"]
        assert stored[name].card["strategy"] == name.split("/")[1].removesuffix("_r2")


@pytest.mark.realdata
def test_the_test_set_holds_one_image_per_stratum(stored, train_data):
    lab = load_lab("wue1", data=train_data)
    strata = lab.metadata.set_index("image_id")["stratum"]
    test_images = stored["wue1/consensus_ensemble"].card["test_images"]
    assert sorted(strata[test_images].astype(int)) == list(range(9))


@pytest.mark.realdata
@pytest.mark.slow
def test_on_held_out_images_the_ensemble_is_as_good_as_the_annotators(stored, train_data):
    """The issue's bar, recomputed from the real data: median F1 against est_GT on the 9 test images
    of the ensemble >= the median annotator's and >= its median member's; expert_1's model, like
    expert_1, finds fewer objects than every other expert model."""
    lab = load_lab("wue1", data=train_data)
    min_size = lab.config.min_object_size
    # The default prediction path: bf16 where the CPU has it (4x faster; the same median F1 as fp32,
    # data/models/wue1/TRAINING.md), fp32 elsewhere.
    settings = Settings(precision="auto", device="cpu")
    test_images = stored["wue1/consensus_ensemble"].card["test_images"]
    rows = []
    for image_id in test_images:
        reference = label_objects(lab.mask("est_GT", image_id), min_size)
        image = lab.image(image_id)
        ensemble = stored["wue1/consensus_ensemble"]
        prediction = predict_image([m.module for m in ensemble.members], image, settings)
        masks = {a: lab.mask(a, image_id) for a in lab.annotators}
        masks["wue1/consensus_ensemble"] = prediction.mask
        masks.update(zip(MEMBERS, prediction.member_masks))
        for name in EXPERTS:
            masks[name] = predict_image([stored[name].module], image, settings).mask
        for name, mask in masks.items():
            result = match_labels(label_objects(mask, min_size), reference)
            rows.append({"image_id": image_id, "source": name, "f1": result.f1, "n": result.n_rater})
    table = pd.DataFrame(rows)
    median_f1 = table.groupby("source")["f1"].median()
    ensemble_f1 = median_f1["wue1/consensus_ensemble"]
    assert ensemble_f1 >= statistics.median(median_f1[lab.annotators])
    assert ensemble_f1 >= statistics.median(median_f1[MEMBERS])
    counts = table.groupby("source")["n"].mean()
    assert counts["expert_1"] < counts[lab.annotators].drop("expert_1").min()
    assert counts["wue1/expert_1"] < counts[EXPERTS[1:]].min()


@pytest.mark.realdata
@pytest.mark.slow
def test_replicate_fold_models_rescore_as_their_cards_say(stored, train_data):
    """Every replicate fold model, re-predicted on its real validation images, scores what its
    card recorded (the verdicts that decided the replicate ensembles)."""
    from cfosstats.segment.selection import validation_table

    lab = load_lab("wue1", data=train_data)
    settings = Settings(precision="auto", device="cpu")
    for name in [*REPLICATES[2], *REPLICATES[3]]:
        model = stored[name]
        predicted = {
            i: predict_image([model.module], lab.image(i), settings).mask
            for i in model.card["validation_images"]
        }
        recorded = {r["image_id"]: r for r in model.card["validation"]}
        for row in validation_table(lab, predicted).to_dict("records"):
            card = recorded[row["image_id"]]
            assert row["worst_annotator_f1"] == pytest.approx(card["worst_annotator_f1"], abs=1e-12)
            assert row["model_f1"] == pytest.approx(card["model_f1"], abs=0.03)  # fp32 CPUs differ slightly
            assert row["passed"] == card["passed"] or abs(row["model_f1"] - row["worst_annotator_f1"]) < 0.03
