"""The segmentation subpackage: training, the model library, tiling, uncertainty, folds, and the
lab-level pipeline, all on tiny models and small synthetic images (fp32, a few seconds)."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cfosstats.cli import segment as commands
from cfosstats.core.errors import InputError
from cfosstats.datasets import load_lab
from cfosstats.segment import library
from cfosstats.segment.folds import split_images
from cfosstats.segment.pipeline import predict_lab, train_lab
from cfosstats.segment.predict import Settings, decompose_uncertainty, model_probabilities, predict_image
from cfosstats.segment.tiling import tile_starts
from cfosstats.segment.train import TrainConfig, train_model
from cfosstats.segment.unet import UNet
from tests.segment_data import FP32, TINY, blob_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def randomise_batchnorm(model: UNet, seed: int = 0) -> UNet:
    """Give BatchNorm non-trivial running statistics, so eval-mode tests are not degenerate."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
    model.set_normalisation(30.0, 20.0)
    return model.eval()


# -- training ------------------------------------------------------------------------------------


def test_loss_falls_on_synthetic_nuclei():
    rng = np.random.default_rng(1)
    pairs = [blob_image(rng) for _ in range(4)]
    config = TrainConfig(steps=40, batch_size=4, tile=32, max_lr=2e-2, precision="fp32", seed=3, **TINY)
    result = train_model([p[0] for p in pairs], [p[1] for p in pairs], config)
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.6 * first, (first, last)  # seed 3: ~0.1x; seeds 4-6 give 0.36-0.49x


def test_training_is_deterministic_given_the_seed():
    rng = np.random.default_rng(2)
    image, mask = blob_image(rng)
    config = TrainConfig(steps=4, batch_size=2, tile=32, precision="fp32", seed=5, **TINY)
    a = train_model([image], [mask], config).model.state_dict()
    b = train_model([image], [mask], config).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- the model library ---------------------------------------------------------------------------


@pytest.fixture()
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = library.round_to_storage(randomise_batchnorm(UNet(**TINY)))
    card = library.save_model(tmp_path / "lab" / "tiny.json", model, {"lab": "lab", "strategy": "consensus"})
    return model, card, tmp_path


def test_save_load_round_trip_is_bit_exact(saved_model):
    model, card, root = saved_model
    stored = library.load_model("lab/tiny", library=root)
    original, loaded = model.state_dict(), stored.module.state_dict()
    assert original.keys() == loaded.keys()
    for name in original:
        assert original[name].dtype == loaded[name].dtype, name
        assert torch.equal(original[name], loaded[name]), name
    image = blob_image(np.random.default_rng(0))[0]
    assert np.array_equal(
        model_probabilities(model, image, FP32), model_probabilities(stored.module, image, FP32)
    )
    # Saving the loaded model again gives the very same bytes.
    assert library.sha256_bytes(library.weights_bytes(stored.module)) == card["sha256"]


def test_corrupted_weights_are_refused_by_checksum(saved_model):
    _, card, root = saved_model
    weights = root / "lab" / "tiny.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    found = library.sha256_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        library.load_model("lab/tiny", library=root)
    assert str(info.value) == f"{weights}: checksum mismatch (expected {card['sha256']}, found {found})"


def test_ensemble_refuses_a_swapped_member_and_unknown_names(saved_model):
    model, card, root = saved_model
    library.save_ensemble(root / "lab" / "pair.json", [card], {"lab": "lab"})
    assert library.load_model("lab/pair", library=root).members[0].name == "lab/tiny"
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.bias.add_(1.0)
    library.save_model(root / "lab" / "tiny.json", changed, {"lab": "lab"})
    with pytest.raises(InputError, match="differs from the one ensemble lab/pair was built with"):
        library.load_model("lab/pair", library=root)
    with pytest.raises(InputError, match=r"model not found \(known models: lab/pair, lab/tiny\)"):
        library.load_model("lab/nothing", library=root)


# -- tiling --------------------------------------------------------------------------------------


def test_receptive_radius_bounds_the_real_one():
    model = randomise_batchnorm(UNet(**TINY))
    image = torch.rand(1, 1, 96, 96, requires_grad=True)
    model(image)[0, 1, 48, 48].backward()
    rows, cols = np.nonzero(image.grad[0, 0].numpy())
    reach = max(abs(rows - 48).max(), abs(cols - 48).max())
    assert 0.5 * model.architecture.receptive_radius < reach <= model.architecture.receptive_radius


def _exact_pixels(length: int, starts: list[int], tile: int, radius: int) -> np.ndarray:
    """Along one axis: pixels every covering tile sees with its full receptive field (tile edges
    that are image edges count as seen, since the whole image is zero-padded there too)."""
    exact = np.ones(length, bool)
    for start in starts:
        end = start + tile
        position = np.arange(length)
        inside = (position >= start) & (position < end)
        far_from_top = (position - start >= radius) | (start == 0)
        far_from_bottom = (end - 1 - position >= radius) | (end == length)
        exact &= ~inside | (far_from_top & far_from_bottom)
    return exact


def test_tiled_prediction_equals_whole_image_away_from_tile_edges():
    torch.manual_seed(4)
    model = randomise_batchnorm(UNet(**TINY))
    image = np.random.default_rng(4).uniform(0, 100, (256, 224)).astype(np.float32)
    tile, overlap = 128, 64
    whole = model_probabilities(model, image, Settings(tile=256, precision="fp32", device="cpu", fuse=False))
    tiled = model_probabilities(
        model, image, Settings(tile=tile, overlap=overlap, precision="fp32", device="cpu", fuse=False)
    )
    radius = model.architecture.receptive_radius
    rows = _exact_pixels(256, tile_starts(256, tile, overlap, 4), tile, radius)
    cols = _exact_pixels(224, tile_starts(224, tile, overlap, 4), tile, radius)
    exact = rows[:, None] & cols[None, :]
    assert exact.mean() > 0.3  # the comparison covers a good part of the image
    difference = np.abs(tiled - whole).max(axis=0)
    assert difference[exact].max() < 1e-5
    assert difference[~exact].max() > 1e-5  # near tile edges padding does matter: the test has teeth


def test_prediction_runs_with_the_settings_thread_count_then_restores_the_process_count():
    # a Dask worker started with one thread must predict with the run's count: oneDNN's float
    # sums depend on how a convolution is split between threads (1 vs 3 threads: last bits differ)
    model = UNet(base=4, depth=2).eval()
    seen = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert Settings(precision="fp32", device="cpu").resolved().threads == 1  # 0: this process's count
        predict_image(
            [model], np.zeros((32, 32), np.float32), Settings(precision="fp32", device="cpu", threads=3)
        )
        assert seen and set(seen) == {3}
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        Settings(threads=-1).resolved()


def test_bf16_fast_path_agrees_roughly_with_fp32():
    model = randomise_batchnorm(UNet(**TINY))
    image = blob_image(np.random.default_rng(5))[0]
    fp32 = model_probabilities(model, image, FP32)
    bf16 = model_probabilities(model, image, Settings(precision="bf16", device="cpu"))
    assert np.abs(fp32 - bf16).max() < 0.05


# -- uncertainty ---------------------------------------------------------------------------------


def test_identical_members_have_exactly_zero_disagreement():
    model = randomise_batchnorm(UNet(**TINY))
    image = blob_image(np.random.default_rng(6))[0]
    members = [model, copy.deepcopy(model), copy.deepcopy(model)]
    prediction = predict_image(members, image, FP32)
    assert prediction.epistemic.max() == 0.0
    assert prediction.variance.max() == 0.0
    assert np.array_equal(prediction.total, prediction.aleatoric)
    assert prediction.aleatoric.max() > 0


def test_uncertainty_decomposes_the_ensemble_entropy():
    rng = np.random.default_rng(7)
    foreground = rng.uniform(0, 1, (3, 1, 8, 8))
    members = np.concatenate([1 - foreground, foreground], axis=1)
    parts = decompose_uncertainty(members)
    mean = members.mean(axis=0)
    entropy = -(mean * np.log2(mean)).sum(axis=0)
    assert np.allclose(parts["total"], entropy, atol=1e-6)
    assert (parts["epistemic"] > 0).all() and parts["total"].max() <= 1.0


def test_one_members_uncertainty_equals_the_general_decomposition():
    # The single-model shortcut must give what the ensemble arithmetic gives for M = 1.
    import torch

    from cfosstats.segment.predict import LOG2

    rng = np.random.default_rng(3)
    foreground = rng.uniform(0, 1, (1, 1, 16, 16)).astype(np.float32)
    members = np.concatenate([1 - foreground, foreground], axis=1)
    fast = decompose_uncertainty(members)
    tensor = torch.as_tensor(members)
    mean = (tensor.sum(dim=0, dtype=torch.float64) / 1).float()
    p_log_p = torch.special.xlogy(tensor, tensor)
    aleatoric = (-p_log_p.sum(dim=1).mean(dim=0) / LOG2).clamp(0.0, 1.0)
    divergence = ((p_log_p - torch.special.xlogy(tensor, mean)).sum(dim=1) / LOG2).mean(dim=0)
    assert np.array_equal(fast["mean"], mean.numpy())
    assert np.array_equal(fast["aleatoric"], aleatoric.numpy())
    assert np.array_equal(fast["total"], (aleatoric + divergence.clamp(0, 1)).clamp(0, 1).numpy())
    assert not fast["epistemic"].any() and not fast["variance"].any() and not divergence.any()
    entropy = -(
        foreground[0, 0] * np.log2(foreground[0, 0]) + (1 - foreground[0, 0]) * np.log2(1 - foreground[0, 0])
    )
    assert np.allclose(fast["aleatoric"], entropy, atol=1e-5)


# -- folds ---------------------------------------------------------------------------------------


def test_folds_hold_out_one_test_image_per_stratum_and_stratify_the_rest():
    ids = [f"{i:04d}" for i in range(36)]
    strata = {image_id: i % 9 for i, image_id in enumerate(ids)}
    split = split_images(ids, strata, k=4, seed=11)
    assert split == split_images(ids, strata, k=4, seed=11)
    assert split != split_images(ids, strata, k=4, seed=12)
    assert sorted(strata[i] for i in split.test) == list(range(9))
    assert sorted(len(f) for f in split.folds) == [6, 7, 7, 7]
    assert sorted(split.test + sum(split.folds, ())) == ids
    for fold in range(1, 5):
        validation, training = set(split.validation(fold)), set(split.training(fold))
        assert not validation & training and not (validation | training) & set(split.test)
        assert len(validation | training) == 27
        assert len({strata[i] for i in validation}) == len(validation)  # a stratum at most once


# -- the lab pipeline ----------------------------------------------------------------------------


def _select_every_model(table):
    """The selection verdict as if every validation image passed (6-step tiny models fail the rule;
    the rule's effect on an ensemble is tested in test_transfer)."""
    from cfosstats.stats.selection import selection_verdict

    return {**selection_verdict(table), "verdict": "selected"}


def test_train_then_predict_in_the_study_layout(tiny_lab_root, tmp_path, monkeypatch):
    monkeypatch.setattr("cfosstats.segment.pipeline.selection_verdict", _select_every_model)
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    models = tmp_path / "models"
    settings = TrainConfig(batch_size=2, tile=32, precision="fp32", **TINY)
    cards = train_lab(lab, "consensus", models, seed=1, steps=6, config=settings, progress=False)
    assert [c["name"] for c in cards] == [
        "tiny/consensus_model_1",
        "tiny/consensus_model_2",
        "tiny/consensus_ensemble",
    ]
    member = cards[0]
    assert len(member["test_images"]) == 3 and set(member["test_images"]).isdisjoint(
        member["training_images"]
    )
    assert {row["image_id"] for row in member["validation"]} == set(member["validation_images"])
    assert member["selection"]["verdict"] in ("selected", "rejected")
    assert set(member["training_data"]) == set(member["training_images"])
    assert cards[2]["test_images"] == member["test_images"]
    expert = train_lab(lab, "expert_2", models, seed=1, steps=6, folds=[1], config=settings, progress=False)
    assert expert[0]["name"] == "tiny/expert_2" and expert[0]["training_images"] == member["training_images"]
    assert list(library.list_models(models)["name"]) == [
        "tiny/consensus_ensemble", "tiny/consensus_model_1", "tiny/consensus_model_2", "tiny/expert_2",
    ]  # fmt: skip

    # Predict into a data root that holds only the images.
    out = tmp_path / "predicted"
    shutil.copytree(root / "lab-tiny" / "images", out / "lab-tiny" / "images")
    tables = {
        name: predict_lab(lab, name, out, FP32, model_library=models, progress=False)
        for name in ("tiny/consensus_ensemble", "tiny/consensus_model_2", "tiny/expert_2")
    }
    assert sorted(tables["tiny/consensus_ensemble"]["review_rank"]) == list(range(1, 13))
    assert set(tables["tiny/consensus_ensemble"]["role"]) == {"test", "training"}
    assert set(tables["tiny/expert_2"]["role"]) == {"test", "training", "validation"}

    found = load_lab("tiny", data=out, config_path=config)
    strategies = {name: source.strategy for name, source in found.label_sources.items()}
    assert strategies == {
        "scratch/consensus_ensembles/ensemble_1/ensemble": "consensus_ensembles",
        "scratch/consensus_ensembles/ensemble_1/unet_1": "ensemble_members",
        "scratch/consensus_ensembles/ensemble_1/unet_2": "ensemble_members",
        "scratch/consensus_models/consensus/unet_2": "consensus_models",
        "scratch/expert_models/expert_2/unet_1": "expert_models",
    }
    assert all(len(source.files) == 12 for source in found.label_sources.values())
    assert not [p for p in found.problems if "scratch" in p.path]  # (only: annotators absent here)

    maps = out / "lab-tiny" / "uncertainty" / "scratch" / "consensus_ensembles" / "ensemble_1" / "ensemble"
    scores = pd.read_csv(maps / "uncertainty.csv", dtype={"image_id": str})
    assert scores["review_score"].is_monotonic_decreasing
    with Image.open(maps / "0000_epistemic.png") as im:
        assert im.mode.startswith("I;16") or im.mode == "I"


def test_interrupted_prediction_writes_nothing(tiny_lab_root, tmp_path, monkeypatch):
    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    torch.manual_seed(0)
    library.save_model(
        tmp_path / "models" / "tiny" / "m.json", UNet(**TINY), {"strategy": "consensus", "fold": 1}
    )
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return predict_image(*args, **kwargs)

    monkeypatch.setattr("cfosstats.segment.predict_files.predict_image", failing)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict_lab(lab, "tiny/m", out, FP32, model_library=tmp_path / "models", progress=False)
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_commands_refuse_bad_input_with_input_error(tmp_path):
    with pytest.raises(InputError, match="--precision"):
        commands.predict(lab="wue1", model="wue1/consensus_ensemble", out=tmp_path, precision="fp8")
    with pytest.raises(InputError, match="--steps"):
        commands.train(lab="wue1", out=tmp_path, steps=1)
    commands.models(library=tmp_path)  # an empty library lists nothing, without error


def test_commands_wire_into_a_typer_app(tiny_lab_root, tmp_path):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    for command in (commands.train, commands.predict, commands.models):
        app.command(command.__name__)(command)
    runner = CliRunner()
    for name in ("train", "predict", "models"):
        assert runner.invoke(app, [name, "--help"]).exit_code == 0
    root, config = tiny_lab_root
    models = tmp_path / "models"
    arguments = ["--lab", "tiny", "--data", str(root), "--lab-config", str(config), "--out", str(models)]
    result = runner.invoke(
        app,
        [
            "train",
            *arguments,
            "--strategy",
            "expert_1",
            "--fold",
            "2",
            "--steps",
            "3",
            "--base",
            "4",
            "--tile",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tiny/expert_1" in runner.invoke(app, ["models", "--library", str(models)]).output


def test_test_time_augmentation_gives_probabilities():
    model = randomise_batchnorm(UNet(**TINY))
    image = blob_image(np.random.default_rng(9))[0]
    probabilities = model_probabilities(model, image, Settings(tta=True, precision="fp32", device="cpu"))
    assert probabilities.shape == (2, 64, 64)
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-5)


def test_effects_reads_predictions_written_by_predict(tiny_lab_root, tmp_path):
    """`cfosstats effects --predictions DIR`: a model's masks join the annotators' analysis, and
    the images its card says it trained on are in-sample (quantified, left out of the tests)."""
    from typer.testing import CliRunner

    from cfosstats.cli.app import app

    root, config = tiny_lab_root
    lab = load_lab("tiny", data=root, config_path=config)
    torch.manual_seed(0)
    trained_on = ["0000", "0001", "0002"]  # one image per stratum: 3 of 4 per stratum stay testable
    library.save_model(
        tmp_path / "models" / "tiny" / "m.json",
        randomise_batchnorm(UNet(**TINY)),
        {"strategy": "expert_1", "fold": 1, "training_images": trained_on},
    )
    predictions = tmp_path / "predictions"
    predict_lab(lab, "tiny/m", predictions, FP32, model_library=tmp_path / "models", progress=False)
    # An untrained network finds nothing; give its folder masks with objects so the tests can run.
    predicted_dir = predictions / "lab-tiny" / "labels" / "scratch" / "expert_models" / "expert_1" / "unet_1"
    for mask in (root / "lab-tiny" / "labels" / "expert_2").glob("*.png"):
        shutil.copyfile(mask, predicted_dir / mask.name)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    common = ["effects", "--lab", "tiny", "--data", str(root), "--lab-config", str(config)]
    common += ["--n-boot", "0", "--jobs", "1"]
    out = tmp_path / "effects"
    result = CliRunner().invoke(app, [*common, "--predictions", str(predictions), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # the input is not written to
    table = pd.read_csv(out / "quantification.csv", dtype={"image_id": str})
    source = "predicted/scratch/expert_models/expert_1/unet_1"
    model_rows = table[table["source"] == source]
    assert len(model_rows) == 12 and (model_rows["strategy"] == "expert_models").all()
    assert sorted(model_rows.loc[model_rows["in_sample"], "image_id"]) == trained_on
    effects = pd.read_csv(out / "effects.csv")
    assert (effects.loc[effects["source"] == source, "n_in_sample_left_out"] == 3).all()
    omnibus = effects[(effects["source"] == source) & (effects["test"] == "kruskal")]
    assert len(omnibus) == 2 and (omnibus["n_total"] == 9).all()  # 12 images, 3 in-sample left out
    assert {"expert_1", "expert_2", "est_GT", source} <= set(effects["source"])

    forced = tmp_path / "forced"
    result = CliRunner().invoke(
        app, [*common, "--predictions", str(predictions), "--include-in-sample", "--out", str(forced)]
    )
    assert result.exit_code == 0 and "--include-in-sample" in result.output
    effects = pd.read_csv(forced / "effects.csv")
    model = effects[(effects["source"] == source) & (effects["test"] == "kruskal")]
    assert len(model) == 2 and (model["n_total"] == 12).all()  # all 12 images, in-sample ones too
    assert "overridden" in json.loads((forced / "run.json").read_text())["in_sample_policy"]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, [*common, "--predictions", str(empty), "--out", str(out / "x")])
    assert result.exit_code == 2
    assert str(empty) in result.output and "no predictions of lab tiny" in result.output
    assert "Traceback" not in result.output


def test_background_writes_finish_before_the_block_ends_and_raise_their_error():
    import threading

    from cfosstats.segment import predict_files

    written = []

    def write(value):
        written.append((value, threading.current_thread().name))

    def fail():
        raise OSError("disk full")

    with predict_files.background_writes():
        writer = predict_files._WRITER.get()
        for value in range(5):
            writer.submit(write, value)
    assert [v for v, _ in written] == list(range(5))  # all written, in order, when the block ends
    assert all(name.startswith("cfosstats-write") for _, name in written)
    assert predict_files._WRITER.get() is None
    with pytest.raises(OSError, match="disk full"):
        with predict_files.background_writes():
            predict_files._WRITER.get().submit(fail)
    # The run's own error wins over a write's.
    with pytest.raises(KeyError):
        with predict_files.background_writes():
            predict_files._WRITER.get().submit(fail)
            raise KeyError("the run failed")
