"""Readers, registry and `cfosstats inspect`: real data and every bad-input case."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from cfosstats.cli.app import app
from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.datasets import load_lab
from cfosstats.datasets.registry import available_labs, load_lab_config, read_lab_config

runner = CliRunner()

REAL_LABS = {
    # lab: (images, annotators, label, ignored regions)
    "wue1": (36, ["expert_1", "expert_2", "expert_3", "expert_4", "expert_5"], "cFOS", 0),
    "mue": (5, ["expert_1", "expert_3", "expert_4", "expert_5"], "cFOS", 0),
    "wue2": (5, ["expert_6", "expert_7", "expert_8"], "GABA", 5),
}


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# -- registry --------------------------------------------------------------------------------------


def test_registry_holds_the_published_settings():
    assert set(available_labs()) >= {"wue1", "mue", "inns1", "inns2", "wue2", "demo"}
    sizes = {lab: load_lab_config(lab).min_object_size for lab in ("wue1", "mue", "inns1", "inns2", "wue2")}
    assert sizes == {"wue1": 30, "mue": 30, "inns1": 16, "inns2": 60, "wue2": 112}
    assert load_lab_config("wue1").conditions == ("H", "C-", "C+")
    assert load_lab_config("inns2").control == "Saline"
    assert load_lab_config("wue2").conditions == ("WT", "KO")
    assert load_lab_config("wue1").pixel_size_px_per_um == 1.61
    assert load_lab_config("lab-mue").name == "mue"


def test_unknown_lab_names_the_known_ones():
    with pytest.raises(InputError, match="unknown lab 'nope': known labs are demo, inns1"):
        load_lab_config("nope")


def test_lab_config_file_errors(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text('name = "x"\nlabel = "cFOS"\nconditions = ["A"]\n')
    with pytest.raises(InputError, match=r"x\.toml: lab config lacks required key\(s\): min_object_size"):
        read_lab_config(bad)
    bad.write_text('name = "x"\nlabel = "cFOS"\nmin_object_size = 5\nconditions = []\n')
    with pytest.raises(InputError, match="'conditions' must be a non-empty list"):
        read_lab_config(bad)
    bad.write_text("name = [")
    with pytest.raises(InputError, match="not valid TOML"):
        read_lab_config(bad)


# -- the real data -----------------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.parametrize("lab_name", sorted(REAL_LABS))
def test_real_labs_read_completely(train_data, lab_name):
    n_images, annotators, label, n_ignored = REAL_LABS[lab_name]
    lab = load_lab(lab_name, data=train_data)
    assert lab.layout == "training"
    assert len(lab.image_ids) == n_images
    assert lab.annotators == annotators
    assert lab.has_published_gt
    assert len(lab.ignore_files) == n_ignored
    assert lab.problems == []
    for image_id in lab.image_ids:
        image = lab.image(image_id)
        assert image.ndim == 2 and image.dtype == np.uint8
        for source in [*annotators, "est_GT"]:
            mask = lab.mask(source, image_id)
            assert mask.dtype == bool and mask.shape == image.shape
            assert 0 < mask.sum() < mask.size  # every real mask has foreground and background
            assert lab.mask_path(source, image_id).name == f"{image_id}_{label}.png"
        ignore = lab.ignore_mask(image_id)
        assert ignore is None if n_ignored == 0 else (ignore.shape == image.shape and ignore.any())


@pytest.mark.realdata
def test_wue1_strata(train_data):
    lab = load_lab("wue1", data=train_data)
    counts = lab.metadata["stratum"].value_counts()
    assert len(counts) == 9 and (counts == 4).all()


@pytest.mark.realdata
def test_inspect_real_labs(train_data):
    result = runner.invoke(app, ["inspect", "--lab", "wue1", "--data", str(train_data)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("36", "expert_1, expert_2, expert_3, expert_4, expert_5", "published est_GT", "9 strata"):
        assert text in result.output
    result = runner.invoke(app, ["inspect", "--lab", "wue2", "--data", str(train_data)], terminal_width=200)
    assert result.exit_code == 0
    assert "expert_6, expert_7, expert_8" in result.output and "5 images" in result.output
    result = runner.invoke(
        app, ["inspect", "--lab", "mue", "--data", str(train_data / "lab-mue")], terminal_width=200
    )
    assert result.exit_code == 0 and "expert_1, expert_3, expert_4, expert_5" in result.output


@pytest.mark.realdata
def test_reading_never_changes_the_input(train_data):
    before = _tree_digest(train_data / "lab-mue")
    lab = load_lab("mue", data=train_data)
    lab.validate()
    assert _tree_digest(train_data / "lab-mue") == before


# -- mask encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda m: Image.fromarray(m),  # bool -> mode "1"
        lambda m: Image.fromarray(m.astype(np.uint8)),  # 0/1
        lambda m: Image.fromarray(m.astype(np.uint8) * 255),  # 0/255
        lambda m: Image.fromarray(np.stack([m.astype(np.uint8) * 255] * 3, -1)),  # RGB
        lambda m: Image.fromarray(np.stack([m.astype(np.uint8) * 255] * 4, -1)),  # RGBA
        lambda m: Image.fromarray(m.astype(np.uint8) * 255).convert("P"),  # palette
        lambda m: Image.fromarray(m.astype(np.uint16) * 65535),  # 16-bit
    ],
    ids=["bool", "0-1", "0-255", "rgb", "rgba", "palette", "uint16"],
)
def test_every_mask_encoding_reads_the_same(tmp_path, encode):
    mask = np.zeros((9, 11), bool)
    mask[2:5, 3:8] = True
    path = tmp_path / "m.png"
    encode(mask).save(path)
    np.testing.assert_array_equal(read_mask(path), mask)


def test_tiff_masks_and_16_bit_images(tmp_path):
    import tifffile

    mask = np.zeros((6, 7), np.uint8)
    mask[1:3, 2:5] = 1
    tifffile.imwrite(tmp_path / "m.tif", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), mask > 0)
    image = np.arange(42, dtype=np.uint16).reshape(6, 7) * 1000
    tifffile.imwrite(tmp_path / "i.tif", image)
    Image.fromarray(image).save(tmp_path / "i.png")
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif"), image)
    np.testing.assert_array_equal(read_image(tmp_path / "i.png"), image)


def test_non_binary_rgb_mask_is_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"m\.png: mask is not binary: \d+ distinct values"):
        read_mask(tmp_path / "m.png")


# -- bad input in a lab -----------------------------------------------------------------------------


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_training_lab(
    root: Path, n_images: int = 3, annotators=("expert_1", "expert_3", "expert_4", "expert_5"), size=(16, 20)
) -> Path:
    """A tiny lab-mue in the training layout with random images and square masks."""
    rng = np.random.default_rng(1)
    lab_dir = root / "lab-mue"
    for i in range(n_images):
        image_id = f"{i + 1:04d}"
        _save(lab_dir / "images" / f"{image_id}.png", rng.integers(0, 255, size, dtype=np.uint8))
        for name in (*annotators, "est_GT"):
            mask = np.zeros(size, np.uint8)
            mask[2:8, 3:9] = 255
            _save(lab_dir / "labels" / name / f"{image_id}_cFOS.png", mask)
    return root


def _inspect(root: Path, lab: str = "mue", *extra: str):
    return runner.invoke(app, ["inspect", "--lab", lab, "--data", str(root), *extra], terminal_width=250)


def test_clean_tiny_lab_inspects_clean(tmp_path):
    result = _inspect(make_training_lab(tmp_path))
    assert result.exit_code == 0, result.output
    assert "problems: none" in result.output


def test_corrupt_png_is_one_line_exit_2(tmp_path):
    root = make_training_lab(tmp_path)
    bad = root / "lab-mue" / "labels" / "expert_3" / "0002_cFOS.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    result = _inspect(root)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: cannot be read as an image")
    assert "Traceback" not in result.output + result.stderr
    with pytest.raises(InputError, match="cannot be read as an image"):
        load_lab("mue", data=root).mask("expert_3", "0002")


def test_mask_of_wrong_shape(tmp_path):
    root = make_training_lab(tmp_path)
    bad = _save(root / "lab-mue" / "labels" / "expert_1" / "0003_cFOS.png", np.zeros((10, 10), np.uint8))
    result = _inspect(root)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: mask shape 10x10 differs from image '0003' (16x20)"
    with pytest.raises(InputError, match=r"mask shape 10x10 differs from image '0003' \(16x20\)"):
        load_lab("mue", data=root).mask("expert_1", "0003")


def test_rgb_mask_is_accepted(tmp_path):
    root = make_training_lab(tmp_path)
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[4:9, 4:9] = (255, 0, 0)
    _save(root / "lab-mue" / "labels" / "expert_1" / "0001_cFOS.png", rgb)
    assert _inspect(root).exit_code == 0
    assert load_lab("mue", data=root).mask("expert_1", "0001").sum() == 25


def test_missing_annotator_file_is_a_warning(tmp_path):
    root = make_training_lab(tmp_path)
    missing = root / "lab-mue" / "labels" / "expert_3" / "0002_cFOS.png"
    missing.unlink()
    lab = load_lab("mue", data=root)
    assert [str(p) for p in lab.problems] == [f"{missing}: annotator 'expert_3' has no mask for image '0002'"]
    result = _inspect(root)
    assert result.exit_code == 0 and "has no mask for image" in result.output
    strict = _inspect(root, "mue", "--strict")
    assert strict.exit_code == 2
    assert strict.stderr.strip() == f"error: {missing}: annotator 'expert_3' has no mask for image '0002'"


def test_mask_without_image_is_a_warning(tmp_path):
    root = make_training_lab(tmp_path)
    orphan = _save(root / "lab-mue" / "labels" / "expert_1" / "0099_cFOS.png", np.zeros((16, 20), np.uint8))
    lab = load_lab("mue", data=root)
    assert f"{orphan}: mask without image '0099'; ignored" in [str(p) for p in lab.problems]
    assert "0099" not in lab.label_sources["expert_1"].files


def test_no_data_and_missing_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("CFOSSTATS_DATA", raising=False)
    monkeypatch.setenv("CFOSSTATS_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, ["inspect", "--lab", "wue1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no data for lab wue1: pass --data ROOT, set CFOSSTATS_DATA, "
        "or run 'cfosstats fetch --lab wue1'"
    )
    result = _inspect(tmp_path, "wue1")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path}: holds neither lab-wue1/ nor image_mapping.xlsx"


# -- the full study layout ---------------------------------------------------------------------------


def make_study(root: Path, rows: list[dict] | None = None) -> Path:
    """A tiny full-study root: two images with a mapping, a region and one predicted label set."""
    rng = np.random.default_rng(2)
    lab_dir = root / "lab-mue"
    for image_id in ("0001", "0002"):
        _save(lab_dir / "images" / f"{image_id}.png", rng.integers(0, 255, (12, 12), dtype=np.uint8))
        region = np.zeros((12, 12), np.uint8)
        region[:, :6] = 255
        _save(lab_dir / "regions" / "PVT" / f"{image_id}.png", region)
        for unet in ("unet_1", "ensemble"):
            _save(
                lab_dir
                / "labels"
                / "scratch"
                / "consensus_ensembles"
                / "ensemble_1"
                / unet
                / f"{image_id}_cFOS.png",
                region,
            )
    _save(lab_dir / "labels" / "expert_1" / "0001_cFOS.png", np.zeros((12, 12), np.uint8))
    rows = rows or [
        {
            "lab": "lab-mue",
            "ID": "0001",
            "area": "PVT",
            "condition": "Ext",
            "experiment": 1,
            "animal": "m1",
            "training": 1,
        },
        {
            "lab": "lab-mue",
            "ID": "0002",
            "area": "PVT",
            "condition": "Ret",
            "experiment": 1,
            "animal": "m2",
            "training": 0,
        },
        {
            "lab": "lab-other",
            "ID": "0003",
            "area": "X",
            "condition": "Q",
            "experiment": 1,
            "animal": "",
            "training": 0,
        },
    ]
    pd.DataFrame(rows).to_excel(root / "image_mapping.xlsx", index=False)
    return root


def test_study_layout_reads_metadata_regions_and_predictions(tmp_path):
    lab = load_lab("mue", data=make_study(tmp_path))
    assert lab.layout == "study"
    meta = lab.metadata.set_index("image_id")
    assert meta.loc["0001", "condition"] == "Ext" and meta.loc["0002", "animal"] == "m2"
    assert meta["training"].tolist() == [True, False]
    assert lab.regions == ["PVT"] and lab.region_mask("PVT", "0002").sum() == 72
    strategies = dict(zip(lab.sources_table()["name"], lab.sources_table()["strategy"]))
    assert strategies == {
        "expert_1": "annotators",
        "scratch/consensus_ensembles/ensemble_1/unet_1": "ensemble_members",
        "scratch/consensus_ensembles/ensemble_1/ensemble": "consensus_ensembles",
    }
    assert lab.label_sources["scratch/consensus_ensembles/ensemble_1/ensemble"].model == "ensemble_1"


def test_xlsx_naming_a_missing_image(tmp_path):
    rows = [
        {"lab": "lab-mue", "ID": "0001", "condition": "Ext"},
        {"lab": "lab-mue", "ID": "0007", "condition": "Ret"},
    ]
    root = make_study(tmp_path, rows)
    result = _inspect(root)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {root / 'image_mapping.xlsx'}: row 3: "
        f"image '0007' not found in {root / 'lab-mue' / 'images'}"
    )


def test_xlsx_with_unknown_condition(tmp_path):
    rows = [
        {"lab": "lab-mue", "ID": "0001", "condition": "Ext"},
        {"lab": "lab-mue", "ID": "0002", "condition": "Sham"},
    ]
    root = make_study(tmp_path, rows)
    with pytest.raises(InputError, match=r"row 3: unknown condition 'Sham' for lab mue \(known: Ext, Ret\)"):
        load_lab("mue", data=root)


def test_xlsx_that_is_not_a_workbook(tmp_path):
    root = make_study(tmp_path)
    (root / "image_mapping.xlsx").write_bytes(b"not a zip")
    result = _inspect(root)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(
        f"error: {root / 'image_mapping.xlsx'}: cannot be read as an Excel workbook"
    )


def test_numeric_ids_in_excel_find_zero_padded_files(tmp_path):
    rows = [{"lab": "lab-mue", "ID": 1, "condition": "Ext"}, {"lab": "lab-mue", "ID": 2, "condition": "Ret"}]
    lab = load_lab("mue", data=make_study(tmp_path, rows))
    assert lab.image_ids == ["0001", "0002"]


def test_lab_config_option_adds_a_lab(tmp_path):
    root = make_training_lab(tmp_path)
    shutil.move(root / "lab-mue", root / "lab-mine")
    config = tmp_path / "mine.toml"
    config.write_text(
        'name = "mine"\nlabel = "cFOS"\nmin_object_size = 10\nconditions = ["ctrl", "drug"]\n'
        'annotators = ["expert_1", "expert_3"]\n'
    )
    result = runner.invoke(
        app,
        ["inspect", "--lab", "mine", "--lab-config", str(config), "--data", str(root)],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "expert_1, expert_3, expert_4, expert_5" in result.output


def _verdict_by_distinct_values(array: np.ndarray) -> str | None:
    """The rule read_mask states, written out with np.unique: None when accepted, else why."""
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        return "negative"
    values = np.unique(array)
    if values.size > 2:
        return "distinct"
    if values.size == 2 and values[0] != 0:
        return "background"
    return None


def _verdict_of_check(array: np.ndarray) -> str | None:
    from cfosstats.core.imageio import _check_binary

    try:
        _check_binary("m.png", array)
    except InputError as exc:
        message = str(exc)
        return "negative" if "negative" in message else "distinct" if "distinct" in message else "background"
    return None


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int16, np.int32, np.float32])
def test_fast_binary_check_gives_the_verdict_of_the_distinct_values(dtype):
    rng = np.random.default_rng(7)
    cases = [
        np.zeros((5, 6)), np.ones((5, 6)), np.full((5, 6), 7),
        np.array([[0, 1], [1, 0]]), np.array([[0, 255], [0, 0]]), np.array([[3, 9], [9, 3]]),
        np.array([[0, 1, 2]]), np.array([[0, 200, 255, 0]]), np.array([[5, 6, 7]]),
        rng.integers(0, 2, (40, 40)), rng.integers(0, 3, (40, 40)), rng.integers(1, 3, (40, 40)),
        np.array([[0, 0, 65535]]), np.array([[0, 1000, 65535]]), np.array([[-1, 0]]), np.array([[-2, -1]]),
    ]  # fmt: skip
    for case in cases:
        if dtype is bool:
            array = case != 0
        elif np.dtype(dtype).kind == "u" and case.min() < 0:
            continue
        elif case.max() > np.iinfo(np.int16).max and dtype is np.int16:
            continue
        else:
            array = case.astype(dtype)
        assert _verdict_of_check(array) == _verdict_by_distinct_values(array), (dtype, case.tolist())


def test_not_binary_message_lists_the_values(tmp_path):
    from cfosstats.core.imageio import write_png

    write_png(tmp_path / "m.png", np.array([[0, 7, 9, 9]], np.uint8))
    with pytest.raises(InputError, match=r"m\.png: mask is not binary: 3 distinct values \(0, 7, 9\)"):
        read_mask(tmp_path / "m.png")
    write_png(tmp_path / "b.png", np.array([[4, 9, 9]], np.uint8))
    with pytest.raises(InputError, match=r"b\.png: mask is not binary: background value 4 is not 0"):
        read_mask(tmp_path / "b.png")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"])
def test_mask_encodings_read_as_the_same_bool_mask(tmp_path, mode):
    from PIL import Image

    mask = np.zeros((6, 7), bool)
    mask[1:3, 2:5] = True
    mask[5, 0] = True
    grey = Image.fromarray(mask.astype(np.uint8) * 255)
    if mode == "I;16":
        image = Image.fromarray(mask.astype(np.uint16) * 40000)
    elif mode == "LA":
        image = Image.merge("LA", [grey, Image.new("L", grey.size, 255)])
    else:
        image = grey.convert(mode)
    image.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
