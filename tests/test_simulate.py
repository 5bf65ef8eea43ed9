"""The study simulator: reproducible bytes, the full study layout, and the planted ground truth."""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from cfosstats.core.errors import InputError
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.datasets import load_lab
from cfosstats.datasets.layout import ESTIMATED_GT, MAPPING_COLUMNS, MAPPING_FILE, mask_name
from cfosstats.datasets.registry import load_lab_config
from cfosstats.objects.label import count_objects
from cfosstats.simulate.design import MEMBERS_PER_ENSEMBLE, N_CONSENSUS_MODELS, N_ENSEMBLES, UNETS_PER_EXPERT
from cfosstats.simulate.study import SIMULATION_FILE, simulate_study

CONFIG = load_lab_config("demo")
LAB = CONFIG.folder
TINY = {"size": 64, "n_animals": 1, "images_per_animal": 1}
# Every image annotated (n_training = images per stratum) so annotator counts have power.
EFFECT = {"size": 160, "n_animals": 3, "images_per_animal": 1, "n_training": 3}
NULL = {"size": 160, "n_animals": 3, "images_per_animal": 1, "n_training": 3}
LIBERAL = "expert_3"  # the demo's liberal annotator (see make_annotators)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@functools.cache
def _mapping(root: Path) -> pd.DataFrame:
    # Cached: studies are written once per test and read many times (callers do not mutate it).
    return pd.read_excel(root / MAPPING_FILE, dtype={"ID": str})


@functools.cache
def _region(root: Path, area: str, image_id: str) -> np.ndarray:
    return read_mask(root / LAB / "regions" / area / f"{image_id}.png")


def _counts(root: Path, source: str) -> pd.DataFrame:
    """Objects (8-connected, >= min size) of `source` inside each image's area region."""
    rows = []
    for row in _mapping(root).itertuples():
        path = root / LAB / "labels" / source / mask_name(row.ID, CONFIG.label)
        if path.is_file():
            region = _region(root, row.area, row.ID)
            count = count_objects(read_mask(path) & region, CONFIG.min_object_size)
            rows.append({"ID": row.ID, "condition": row.condition, "n": count})
    return pd.DataFrame(rows).set_index("ID")


def _ratio(counts: pd.DataFrame) -> float:
    """Mean count in C+ over mean count in the control H."""
    means = counts.groupby("condition")["n"].mean()
    return float(means["C+"] / means["H"])


@pytest.fixture(scope="module")
def effect_study(tmp_path_factory) -> Path:
    return simulate_study(tmp_path_factory.mktemp("sim") / "study", seed=0, effect=1.0, **EFFECT)


# --- reproducibility ---------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = _hashes(simulate_study(tmp_path / "a", seed=3, **TINY))
    second = _hashes(simulate_study(tmp_path / "b", seed=3, **TINY))
    assert first == second
    assert MAPPING_FILE in first and f"{LAB}/{SIMULATION_FILE}" in first
    with zipfile.ZipFile(tmp_path / "a" / MAPPING_FILE) as book:
        assert {info.date_time for info in book.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"2020-01-01T00:00:00Z" in book.read("docProps/core.xml")


def test_files_do_not_depend_on_the_number_of_workers(tmp_path):
    inline = _hashes(simulate_study(tmp_path / "j1", seed=2, jobs=1, **TINY))
    workers = _hashes(simulate_study(tmp_path / "j2", seed=2, jobs=2, **TINY))
    assert inline == workers and len(inline) > 9 * 20


def test_default_label_set_counts_are_the_documented_ones(tmp_path):
    implicit = _hashes(simulate_study(tmp_path / "a", seed=1, **TINY))
    explicit = simulate_study(
        tmp_path / "b", seed=1, expert_models=2, consensus_models=4, ensembles=2, ensemble_members=3, **TINY
    )
    assert _hashes(explicit) == implicit
    params = json.loads((explicit / LAB / SIMULATION_FILE).read_text())["parameters"]
    assert "label_sets" not in params  # recorded only when chosen, so default bytes stay as they were


def _label_sets(root: Path) -> dict[str, set[str]]:
    """Label set folder -> mask file names, for the predicted label sets."""
    labels = root / LAB / "labels"
    out: dict[str, set[str]] = {}
    for path in (labels / "scratch").rglob("*.png"):
        out.setdefault(str(path.parent.relative_to(labels)), set()).add(path.name)
    return out


def test_label_set_counts_are_what_was_asked_and_leave_other_models_unchanged(tmp_path):
    counts = {"expert_models": 3, "consensus_models": 0, "ensembles": 3, "ensemble_members": 2}
    root = simulate_study(tmp_path / "more", seed=4, **counts, **TINY)
    found = _label_sets(root)
    expected = (
        {f"scratch/expert_models/{a}/unet_{u}" for a in CONFIG.annotators for u in (1, 2, 3)}
        | {f"scratch/consensus_ensembles/ensemble_{e}/{u}" for e in (1, 2, 3) for u in ("unet_1", "unet_2")}
        | {f"scratch/consensus_ensembles/ensemble_{e}/ensemble" for e in (1, 2, 3)}
    )
    assert set(found) == expected
    assert {len(names) for names in found.values()} == {9}  # every image, in every label set
    summary = json.loads((root / LAB / SIMULATION_FILE).read_text())
    assert summary["parameters"]["label_sets"] == counts
    assert summary["labellers"]["scratch/consensus_ensembles/ensemble_3/ensemble"] == {
        "ensemble_of": [f"scratch/consensus_ensembles/ensemble_3/unet_{u}" for u in (1, 2)]
    }
    # Models are keyed by their folder: the ones also in a default study have the same masks.
    default = _hashes(simulate_study(tmp_path / "default", seed=4, **TINY))
    more = _hashes(root)
    shared = [k for k in more if k in default and "/ensemble/" not in k and not k.endswith(SIMULATION_FILE)]
    assert len([k for k in shared if "/scratch/" in k]) == 9 * 12  # 8 expert models, 4 members
    assert len(shared) == 9 * (12 + 1 + 1 + 5) + 2  # and images, regions, annotators, est_GT, xlsx, marker
    assert all(more[k] == default[k] for k in shared)
    assert load_lab("demo", data=root).sources_table()["strategy"].value_counts().to_dict() == {
        "annotators": 4,
        "estimated_gt": 1,
        "expert_models": 12,
        "ensemble_members": 6,
        "consensus_ensembles": 3,
    }


def test_bad_label_set_counts_are_refused(tmp_path):
    for bad in ({"consensus_models": -1}, {"ensemble_members": 1}, {"jobs": 0}):
        with pytest.raises(ValueError):
            simulate_study(tmp_path / "s", **bad, **TINY)
    assert not (tmp_path / "s").exists()


def test_the_command_refuses_bad_counts_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from cfosstats.cli.app import app

    cases = {
        "--ensemble-members": ("1", "error: --ensemble-members must be at least 2, got 1"),
        "--consensus-models": ("-1", "error: --consensus-models must not be negative, got -1"),
        "--jobs": ("0", "error: --jobs must be at least 1, got 0"),
    }
    for option, (value, message) in cases.items():
        result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "s"), option, value])
        assert result.exit_code == 2 and result.stderr == message + "\n", (option, result.stderr)
    assert not (tmp_path / "s").exists()


def test_different_seed_gives_different_images(tmp_path):
    first = _hashes(simulate_study(tmp_path / "a", seed=3, predictions=False, **TINY))
    second = _hashes(simulate_study(tmp_path / "b", seed=4, predictions=False, **TINY))
    images = [k for k in first if k.startswith(f"{LAB}/images/")]
    assert len(images) == 9 and all(first[k] != second[k] for k in images)


def test_more_animals_leave_the_existing_animals_images_unchanged(tmp_path):
    def images(n_animals):
        root = simulate_study(tmp_path / f"n{n_animals}", n_animals=n_animals, predictions=False, size=64)
        records = json.loads((root / LAB / SIMULATION_FILE).read_text())["images"]
        folder = root / LAB / "images"
        return {
            (r["animal"], r["area"], r["repeat"]): (folder / f"{r['ID']}.tif").read_bytes() for r in records
        }

    fewer, more = images(1), images(2)
    assert len(fewer) == 18 and all(more[key] == data for key, data in fewer.items())


def test_refuses_to_replace_a_foreign_folder_but_replaces_an_earlier_simulation(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="refusing"):
        simulate_study(foreign, **TINY)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = simulate_study(tmp_path / "sim", seed=1, predictions=False, **TINY)
    again = simulate_study(out, seed=2, predictions=False, **TINY)
    assert json.loads((again / LAB / SIMULATION_FILE).read_text())["parameters"]["seed"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


# --- layout ------------------------------------------------------------------------------------


def test_mapping_follows_the_layout(effect_study):
    mapping = _mapping(effect_study)
    assert tuple(mapping.columns) == MAPPING_COLUMNS
    assert set(mapping["lab"]) == {LAB}
    assert mapping["ID"].tolist() == [f"{i:04d}" for i in range(1, len(mapping) + 1)]
    # conditions x areas x animals x images, each animal imaged in every area
    per_stratum = mapping.groupby(["condition", "area"]).size()
    assert len(per_stratum) == 9 and set(per_stratum) == {EFFECT["n_animals"]}
    assert set(mapping.groupby("animal")["area"].nunique()) == {len(CONFIG.areas)}
    assert set(mapping.groupby("animal")["condition"].nunique()) == {1}
    # two experiments, each holding animals of every condition
    assert set(mapping["experiment"]) == {1, 2}
    assert set(mapping.groupby("experiment")["condition"].nunique()) == {3}
    assert set(mapping["training"]) == {1}  # EFFECT annotates every image


def test_files_follow_the_layout(effect_study):
    lab = effect_study / LAB
    mapping = _mapping(effect_study)
    expected_sets = (
        {
            f"scratch/expert_models/{a}/unet_{u}"
            for a in CONFIG.annotators
            for u in range(1, UNETS_PER_EXPERT + 1)
        }
        | {f"scratch/consensus_models/consensus/unet_{u}" for u in range(1, N_CONSENSUS_MODELS + 1)}
        | {
            f"scratch/consensus_ensembles/ensemble_{e}/{u}"
            for e in range(1, N_ENSEMBLES + 1)
            for u in [f"unet_{k}" for k in range(1, MEMBERS_PER_ENSEMBLE + 1)] + ["ensemble"]
        }
    )
    found = {str(p.parent.relative_to(lab / "labels")) for p in (lab / "labels").rglob("*.png")}
    assert found == expected_sets | set(CONFIG.annotators) | {ESTIMATED_GT}
    assert sorted(p.name for p in (lab / "images").iterdir()) == [f"{i}.tif" for i in mapping.ID]
    for row in mapping.itertuples():
        image = read_image(lab / "images" / f"{row.ID}.tif")
        assert image.dtype == np.uint8 and image.shape == (EFFECT["size"],) * 2
        masks = [lab / "regions" / r / f"{row.ID}.png" for r in CONFIG.regions[row.area]]
        masks += [lab / "labels" / s / mask_name(row.ID, CONFIG.label) for s in found]
        for path in masks:
            mask = read_mask(path)  # refuses anything but a two-valued 0/x mask
            assert mask.shape == image.shape
    coverage = [
        read_mask(lab / "regions" / row.area / f"{row.ID}.png").mean() for row in mapping.itertuples()
    ]
    assert 0.2 < np.mean(coverage) < 0.6  # a band covering a good part of the image


def test_only_the_training_subset_is_annotated(tmp_path):
    root = simulate_study(
        tmp_path / "s", size=64, n_animals=2, images_per_animal=1, n_training=1, predictions=False
    )
    mapping = _mapping(root)
    training = set(mapping.loc[mapping["training"] == 1, "ID"])
    assert len(training) == 9  # one per condition x area
    for source in [*CONFIG.annotators, ESTIMATED_GT]:
        files = (root / LAB / "labels" / source).glob("*.png")
        assert {p.name.split("_")[0] for p in files} == training


def test_simulation_json_records_the_truth(effect_study):
    summary = json.loads((effect_study / LAB / SIMULATION_FILE).read_text())
    assert summary["condition_factors"] == {"H": 1.0, "C-": 1.5, "C+": 2.0}
    records = {r["ID"]: r for r in summary["images"]}
    assert set(records) == set(_mapping(effect_study)["ID"])
    for record in records.values():
        assert set(record["regions"]) == set(CONFIG.regions[record["area"]])
        assert record["condition_factor"] == summary["condition_factors"][record["condition"]]
    truth = pd.DataFrame(
        {"condition": r["condition"], "n": r["regions"][r["area"]]["true_count"]} for r in records.values()
    )
    assert _ratio(truth) > 1.5


def test_no_animal_effect_when_animal_sd_is_zero(tmp_path):
    root = simulate_study(tmp_path / "s", animal_sd=0.0, n_animals=2, size=64, predictions=False)
    records = json.loads((root / LAB / SIMULATION_FILE).read_text())["images"]
    assert {r["animal_density_factor"] for r in records} == {1.0}
    assert {r["animal_intensity_factor"] for r in records} == {1.0}
    assert len({r["image_density_factor"] for r in records}) > 1  # images still vary


# --- the planted effect and the labellers' biases ------------------------------------------------


def test_planted_effect_is_found_in_annotator_counts(effect_study, tmp_path):
    other = simulate_study(tmp_path / "s1", seed=1, effect=1.0, predictions=False, **EFFECT)
    for root in (effect_study, other):
        truth = _counts(root, ESTIMATED_GT)
        high, control = truth.loc[truth.condition == "C+", "n"], truth.loc[truth.condition == "H", "n"]
        assert len(high) == len(control) == 9
        assert mannwhitneyu(high, control, alternative="greater").pvalue < 0.05
        for annotator in CONFIG.annotators:
            assert _ratio(_counts(root, annotator)) > 1.2, annotator


def test_no_effect_is_found_when_none_is_planted(tmp_path):
    """With effect=0 nothing depends on the condition.

    Nothing is planted (the recorded factors are all 1). Raw counts of a small study carry Poisson
    and animal noise (a C+/H ratio has sd ~0.2 per study at this size), so the raw ratio over
    three seeds is checked loosely (a planted effect=1 gives ~2), and more tightly that the
    labellers find the same share of the true nuclei in every condition.
    """
    raw, detected = [], []
    for seed in range(3):
        root = simulate_study(tmp_path / f"s{seed}", seed=seed, effect=0.0, predictions=False, **NULL)
        summary = json.loads((root / LAB / SIMULATION_FILE).read_text())
        assert set(summary["condition_factors"].values()) == {1.0}
        truth = pd.DataFrame(
            {"ID": r["ID"], "true": r["regions"][r["area"]]["true_count"]} for r in summary["images"]
        ).set_index("ID")["true"]
        for source in [ESTIMATED_GT, *CONFIG.annotators]:
            counts = _counts(root, source)
            raw.append(_ratio(counts))
            found = counts["n"].groupby(counts["condition"]).sum()
            planted = truth[counts.index].groupby(counts["condition"]).sum()
            share = found / planted  # share of the true nuclei found, per condition
            detected.append(float(share["C+"] / share["H"]))
    assert abs(np.mean(raw) - 1) < 0.25
    assert abs(np.mean(detected) - 1) < 0.15


def test_conservative_annotator_finds_fewer_objects_than_the_liberal_one(effect_study):
    conservative = _counts(effect_study, "expert_1")["n"]
    liberal = _counts(effect_study, LIBERAL)["n"]
    assert (conservative < liberal).mean() >= 0.8
    assert conservative.mean() < 0.8 * liberal.mean()


def test_ensembles_vary_less_than_single_models(effect_study):
    base = "scratch/consensus_ensembles"
    ensembles = [f"{base}/ensemble_{e}/ensemble" for e in range(1, N_ENSEMBLES + 1)]
    singles = [f"scratch/consensus_models/consensus/unet_{u}" for u in range(1, N_CONSENSUS_MODELS + 1)]
    singles += [
        f"{base}/ensemble_{e}/unet_{u}"
        for e in range(1, N_ENSEMBLES + 1)
        for u in range(1, MEMBERS_PER_ENSEMBLE + 1)
    ]

    def spread(sources):  # per-image SD of counts across label sets, averaged over images
        table = pd.concat({s: _counts(effect_study, s)["n"] for s in sources}, axis=1)
        return float(table.std(axis=1).mean())

    assert spread(ensembles) < spread(singles)


def test_est_gt_is_the_packages_staple(effect_study):
    from cfosstats.objects import groundtruth  # our own module: a broken import must fail, not skip

    lab = effect_study / LAB
    image_id = _mapping(effect_study)["ID"][0]
    name = mask_name(image_id, CONFIG.label)
    masks = [read_mask(lab / "labels" / a / name) for a in CONFIG.annotators]
    estimate = groundtruth.staple(masks).estimate
    assert np.array_equal(estimate, read_mask(lab / "labels" / ESTIMATED_GT / name))


def test_the_reader_loads_the_simulated_study(effect_study):
    lab = load_lab("demo", data=effect_study)
    assert lab.layout == "study"
    assert lab.image_ids == _mapping(effect_study)["ID"].tolist()
    assert lab.annotators == list(CONFIG.annotators) and lab.has_published_gt
    assert lab.has_animals and set(lab.regions) == set(CONFIG.all_regions)
    strategies = lab.sources_table()["strategy"].value_counts().to_dict()
    assert strategies == {
        "annotators": len(CONFIG.annotators),
        "estimated_gt": 1,
        "expert_models": UNETS_PER_EXPERT * len(CONFIG.annotators),
        "consensus_models": N_CONSENSUS_MODELS,
        "ensemble_members": N_ENSEMBLES * MEMBERS_PER_ENSEMBLE,
        "consensus_ensembles": N_ENSEMBLES,
    }
    assert not [p for p in lab.validate() if p.severity == "error"]
