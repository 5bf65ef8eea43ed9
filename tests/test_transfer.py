"""Transfer learning and the selection rule deciding an ensemble: fine-tuning starts exactly from the
init model, a frozen evaluation trains nothing, a rejected fold model never enters an ensemble,
replicates keep their split; on tiny models and the 12-image stand-in lab of test_segment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cfosstats.datasets import load_lab
from cfosstats.datasets.registry import load_lab_config
from cfosstats.segment import library
from cfosstats.segment.augment import sample_batch
from cfosstats.segment.losses import segmentation_loss
from cfosstats.segment.pipeline import lab_split, prediction_folders, train_lab
from cfosstats.segment.train import TrainConfig, intensity_statistics, start_model, train_model
from cfosstats.segment.transfer import frozen_validation
from cfosstats.segment.unet import UNet
from cfosstats.stats.fold_tables import card_folds, variant_summary
from tests.segment_data import TINY, blob_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = TrainConfig(batch_size=2, tile=32, precision="fp32", **TINY)


def _config(**changes) -> TrainConfig:
    return TrainConfig(**{**SETTINGS.__dict__, **changes})


def _images(seed: int, n: int = 3):
    rng = np.random.default_rng(seed)
    pairs = [blob_image(rng) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_fine_tuning_starts_from_the_init_weights_exactly():
    """The first step's loss of a fine-tuning run equals the init model's loss on that step's batch
    (drawn with the run's seed, normalised with the new images' statistics); from scratch it does
    not; the init model itself is left unchanged."""
    old_images, old_masks = _images(1)
    init = train_model(
        old_images, old_masks, TrainConfig(**{**SETTINGS.__dict__, "steps": 4, "seed": 3})
    ).model
    before = {k: v.clone() for k, v in init.state_dict().items()}
    images, masks = _images(2)
    config = _config(steps=2, seed=5)
    losses = []
    train_model(images, masks, config, progress=lambda step, loss: losses.append(loss), init=init)

    mean, std = intensity_statistics(images)
    start = start_model(config, init, mean, std).train()
    rng = np.random.default_rng(config.seed)
    tiles, targets, _ = sample_batch(
        images, masks, config.batch_size, config.tile, rng, config.augmentation, std
    )
    with torch.no_grad():
        expected = float(
            segmentation_loss(start(torch.from_numpy(tiles)[:, None]), torch.from_numpy(targets))
        )
    assert losses[0] == pytest.approx(expected, rel=1e-6)
    scratch = []
    train_model(images, masks, config, progress=lambda step, loss: scratch.append(loss))
    assert abs(scratch[0] - expected) > 1e-3
    assert all(torch.equal(before[k], v) for k, v in init.state_dict().items())
    assert float(start.input_mean[0]) == pytest.approx(mean) and float(init.input_mean[0]) != pytest.approx(
        mean
    )


def test_fine_tuned_cards_name_their_init_model(tiny_lab_root, tmp_path):
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    models = tmp_path / "models"
    train_lab(lab, "consensus", models, seed=1, steps=3, config=SETTINGS, progress=False)
    members = [library.load_model(f"tiny/consensus_model_{f}", models) for f in (1, 2)]
    # Tiny models rarely pass the rule, so the init ensemble is a stand-in holding both fold models.
    stand_in = library.StoredEnsemble("tiny/stand_in", {}, models / "x.json", members)
    tuned = train_lab(lab, "consensus", tmp_path / "tuned", seed=1, steps=3, config=SETTINGS, init=stand_in,
                      progress=False)  # fmt: skip
    for fold, card in zip((1, 2), tuned[:2]):
        assert card["initialization"] == "fine-tuned"
        assert card["initialized_from"]["name"] == f"tiny/consensus_model_{fold}"  # fold k from member k
        assert card["initialized_from"]["sha256"] == members[fold - 1].card["sha256"]
        assert card["test_images"] == members[fold - 1].card["test_images"]
    stored = library.load_model(tuned[0]["name"], tmp_path / "tuned")
    assert prediction_folders(stored)["self"][0] == "fine-tuned"


def test_a_rejected_member_never_enters_an_ensemble(tiny_lab_root, tmp_path, monkeypatch):
    """With fold 2 rejected the ensemble is fold 1's model alone and lists fold 2 as rejected; with
    both rejected no ensemble is written at all."""
    import cfosstats.segment.pipeline as pipeline

    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    real = pipeline.selection_verdict
    rejected_folds = {2}

    def verdict(table):
        result = real(table)
        fold = 2 if set(table["image_id"]) == set(lab_split(lab, 2, 1).validation(2)) else 1
        result["verdict"] = "rejected" if fold in rejected_folds else "selected"
        return result

    monkeypatch.setattr(pipeline, "selection_verdict", verdict)
    cards = train_lab(lab, "consensus", tmp_path / "a", seed=1, steps=2, config=SETTINGS, progress=False)
    ensemble = cards[-1]
    assert ensemble["kind"] == "ensemble" and ensemble["members"] == ["tiny/consensus_model_1"]
    assert ensemble["selection"]["rejected"] == ["tiny/consensus_model_2"]
    loaded = library.load_model("tiny/consensus_ensemble", tmp_path / "a")
    assert [m.name for m in loaded.members] == ["tiny/consensus_model_1"]
    rejected_folds.add(1)
    cards = train_lab(lab, "consensus", tmp_path / "b", seed=1, steps=2, config=SETTINGS, progress=False)
    assert [c["kind"] for c in cards] == ["model", "model"]
    assert not (tmp_path / "b" / "tiny" / "consensus_ensemble.json").exists()


def test_replicates_keep_the_split_and_get_their_own_names(tiny_lab_root, tmp_path):
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    common = {"steps": 2, "config": SETTINGS, "folds": [1], "progress": False}
    first = train_lab(lab, "consensus", tmp_path, seed=0, **common)
    second = train_lab(lab, "consensus", tmp_path, seed=7, split_seed=0, replicate=2, **common)
    assert second[0]["name"] == "tiny/consensus_model_1_r2" and second[0]["replicate"] == 2
    assert second[0]["split_seed"] == 0 and second[0]["seed"] == 7
    for key in ("test_images", "validation_images", "training_images"):
        assert second[0][key] == first[0][key]
    stored = library.load_model("tiny/consensus_model_1_r2", tmp_path)
    assert prediction_folders(stored)["self"] == ("scratch", "consensus_models", "consensus_r2", "unet_1")
    a = library.load_model("tiny/consensus_model_1", tmp_path).module.state_dict()
    b = stored.module.state_dict()
    assert not torch.equal(a["head.weight"], b["head.weight"])  # another seed, other weights


def test_frozen_validation_trains_nothing(tiny_lab_root, tmp_path, monkeypatch):
    """Each fold is predicted by the member fold k would start from; no optimiser is ever built,
    the model's weights are unchanged, and its own normalisation is kept only when asked."""
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    torch.manual_seed(0)
    members = []
    for n in (1, 2):
        model = UNet(**TINY)
        model.set_normalisation(500.0, 1.0)  # nothing like the tiny lab's images
        card = library.save_model(tmp_path / "lib" / "old" / f"m{n}.json", model, {"lab": "old"})
        members.append(card)
    library.save_ensemble(tmp_path / "lib" / "old" / "ens.json", members, {"lab": "old"})
    stored = library.load_model("old/ens", tmp_path / "lib")
    before = [{k: v.clone() for k, v in m.module.state_dict().items()} for m in stored.members]

    def no_training(*args, **kwargs):
        raise AssertionError("a frozen evaluation must not train")

    monkeypatch.setattr(torch.optim.AdamW, "__init__", no_training)
    monkeypatch.setattr("cfosstats.segment.train.train_model", no_training)
    table = frozen_validation(lab, stored, k=2, split_seed=1)
    split = lab_split(lab, 2, 1)
    assert table["model"].tolist() == ["old/m1"] * len(split.validation(1)) + ["old/m2"] * len(
        split.validation(2)
    )
    assert table["image_id"].tolist() == [*split.validation(1), *split.validation(2)]
    assert (table["variant"] == "frozen").all() and table["passed"].dtype == bool
    assert (table["best_annotator_f1"] >= table["worst_annotator_f1"]).all()
    for member, state in zip(stored.members, before):
        assert all(torch.equal(state[k], v) for k, v in member.module.state_dict().items())
        assert float(member.module.input_mean[0]) == 500.0
    summary = variant_summary(table)
    assert summary.loc[0, "n_folds"] == 2 and summary.loc[0, "n_images"] == len(table)


def test_card_folds_read_the_validation_of_trained_cards(tiny_lab_root, tmp_path):
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    cards = train_lab(lab, "consensus", tmp_path, seed=1, steps=2, config=SETTINGS, progress=False)
    folds = card_folds(cards)
    assert sorted(folds["fold"].unique()) == [1, 2] and (folds["variant"] == "scratch").all()
    by_fold = folds.groupby("fold")["passed"].all()
    assert [c["selection"]["verdict"] == "selected" for c in cards[:2]] == by_fold.tolist()


def test_the_external_labs_have_no_test_set_and_one_validation_image_per_fold(train_data):
    for name in ("mue", "inns1", "inns2", "wue2"):
        lab = load_lab(name, data=train_data)
        split = lab_split(lab)
        assert split.test == () and [len(f) for f in split.folds] == [1] * 5
    wue1 = lab_split(load_lab("wue1", data=train_data))
    assert len(wue1.test) == 9 and wue1.k == 4


def test_a_bad_test_hold_out_is_refused(tmp_path):
    from cfosstats.core.errors import InputError

    path = tmp_path / "x.toml"
    path.write_text(
        'name = "x"\nlabel = "c"\nmin_object_size = 1\nconditions = ["a"]\ntest_images_per_stratum = -1\n'
    )
    with pytest.raises(InputError, match="test_images_per_stratum"):
        load_lab_config("x", path)


def test_validate_command(tiny_lab_root, tmp_path):
    from cfosstats.cli.app import app

    root, config = tiny_lab_root
    models = tmp_path / "models"
    torch.manual_seed(0)
    library.save_model(models / "tiny" / "m.json", UNet(**TINY), {"lab": "tiny"})
    common = ["validate", "--lab", "tiny", "--data", str(root), "--lab-config", str(config), "--folds", "2",
              "--model", "tiny/m", "--library", str(models)]  # fmt: skip
    out = tmp_path / "validated"
    result = CliRunner().invoke(app, [*common, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "folds pass" in result.output
    assert json.loads((out / "run.json").read_text())["normalisation"] == "lab"
    assert (out / "folds.csv").is_file() and (out / "summary.csv").is_file()
    result = CliRunner().invoke(app, [*common, "--normalisation", "per-image"])
    assert result.exit_code == 2 and "--normalisation" in result.output and "Traceback" not in result.output
