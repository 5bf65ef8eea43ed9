"""The shipped libraries of the external labs (mue, inns1, inns2, wue2): their cards, their
ensembles of the fold models that passed, and a re-scoring of every fold model on its real
out-of-fold validation image (recomputed here, compared with what its card recorded)."""

from __future__ import annotations

import pytest

from cfosstats.datasets import load_lab
from cfosstats.segment.library import list_models, load_model
from cfosstats.segment.pipeline import lab_split
from cfosstats.segment.predict import Settings, predict_image
from cfosstats.segment.selection import validation_table

LABS = ("mue", "inns1", "inns2", "wue2")


def test_the_library_lists_all_five_labs():
    listing = list_models()
    assert {"wue1", *LABS} <= set(listing["lab"])
    assert set(listing["initialization"]) <= {"scratch", "fine-tuned"}
    assert set(listing.loc[listing["lab"] == "inns1", "initialization"]) == {"fine-tuned"}


@pytest.mark.parametrize("lab", LABS)
def test_each_lab_ships_an_ensemble_of_its_selected_fold_models(lab):
    ensemble = load_model(f"{lab}/consensus_ensemble")  # verifies every checksum
    folds = [load_model(f"{lab}/consensus_model_{k}") for k in range(1, 6)]
    selected = [m.name for m in folds if m.card["selection"]["verdict"] == "selected"]
    assert [m.name for m in ensemble.members] == selected
    assert ensemble.card["selection"]["rejected"] == [m.name for m in folds if m.name not in selected]
    assert sorted(i for m in folds for i in m.card["validation_images"]) == sorted(
        {i for m in folds for i in m.card["training_images"]}
    )  # the five folds validate each of the five images once
    for model in folds:
        assert model.card["test_images"] == [] and len(model.card["validation_images"]) == 1
        assert model.card["initialization"] in ("scratch", "fine-tuned")
        if model.card["initialization"] == "fine-tuned":
            init = load_model(model.card["initialized_from"]["name"])
            assert model.card["initialized_from"]["sha256"] == init.card["sha256"]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("lab_name", LABS)
def test_fold_models_rescore_as_their_cards_say(lab_name, train_data):
    lab = load_lab(lab_name, data=train_data)
    split = lab_split(lab)
    settings = Settings(precision="auto", device="cpu")
    for fold in range(1, 6):
        model = load_model(f"{lab_name}/consensus_model_{fold}")
        assert model.card["validation_images"] == list(split.validation(fold))
        predicted = {
            i: predict_image([model.module], lab.image(i), settings).mask for i in split.validation(fold)
        }
        table = validation_table(lab, predicted)
        recorded = {r["image_id"]: r for r in model.card["validation"]}
        for row in table.to_dict("records"):
            card = recorded[row["image_id"]]
            assert row["worst_annotator_f1"] == pytest.approx(card["worst_annotator_f1"], abs=1e-12)
            # The card's F1 came from the same weights and precision on this machine; allow for a
            # CPU without bf16 (fp32), whose masks differ in a few boundary pixels.
            assert row["model_f1"] == pytest.approx(card["model_f1"], abs=0.03)
            assert row["passed"] == card["passed"] or abs(row["model_f1"] - row["worst_annotator_f1"]) < 0.03
