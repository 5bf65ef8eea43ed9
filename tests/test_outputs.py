"""The output contract: no --out of any command can delete or change data cfosstats did not write."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cfosstats.cli.app import app
from cfosstats.core.outputs import MARKER

pytestmark = pytest.mark.realdata
RUNNER = CliRunner()


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def world(train_data, tmp_path, monkeypatch):
    """A copy of the real lab-mue under tmp/project/data, a foreign folder, a file, a cwd."""
    project = tmp_path / "project"
    data = project / "data"
    shutil.copytree(train_data / "lab-mue", data / "lab-mue")
    (project / "notes").mkdir()
    (project / "notes" / "keep.txt").write_text("mine", encoding="utf-8")
    (project / "a_file.txt").write_text("a file", encoding="utf-8")
    work = project / "work"
    work.mkdir()
    (work / "analysis.py").write_text("print('mine')\n", encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.delenv("CFOSSTATS_DATA", raising=False)
    return project


COMMANDS = {
    "groundtruth": ["groundtruth", "--lab", "mue", "--data", "{data}"],
    "agreement": ["agreement", "--lab", "mue", "--data", "{data}"],
    "effects": ["effects", "--lab", "mue", "--data", "{data}", "--n-boot", "0"],
    "predict": ["predict", "--lab", "mue", "--data", "{data}", "--model", "wue1/consensus_ensemble"],
    "train": ["train", "--lab", "mue", "--data", "{data}", "--strategy", "consensus", "--steps", "2"],
    "report": ["report", "--lab", "mue", "--data", "{data}", "--format", "html"],
    "simulate": ["simulate", "--lab", "demo"],
}
PLACES = {
    "data root": ("{data}", "is the input|holds the input"),
    "lab folder": ("{data}/lab-mue", "is the input|holds the input"),
    "parent of the data": ("{project}", "holds the input|did not write"),
    "current directory": (".", "is the current directory"),
    "existing file": ("{project}/a_file.txt", "names an existing file"),
    "foreign folder": ("{project}/notes", "holds files cfosstats did not write"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_out_that_could_destroy_data_is_refused(world, command):
    before = _tree(world)
    fill = {"data": str(world / "data"), "project": str(world)}
    for place, (where, expected) in PLACES.items():
        if command == "train" and place == "foreign folder":
            continue  # a library root keeps foreign files: train only adds <lab>/<model> files
        if command == "simulate" and place in ("data root", "lab folder"):
            expected = "did not write|not a simulated study"
        if command == "report" and place in ("foreign folder", "parent of the data"):
            continue  # report writes only <out>/<lab>/, checked below
        args = [a.format(**fill) for a in COMMANDS[command]] + ["--out", where.format(**fill)]
        result = RUNNER.invoke(app, args)
        assert result.exit_code == 2, (command, place, result.output)
        line = result.output.strip()
        assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, line
        assert any(e in line for e in expected.split("|")), (command, place, line)
        assert _tree(world) == before, (command, place)


def test_report_lab_folder_must_be_its_own(world):
    foreign = world / "reports" / "mue"
    foreign.mkdir(parents=True)
    (foreign / "draft.docx").write_bytes(b"mine")
    result = RUNNER.invoke(
        app, ["report", "--lab", "mue", "--data", str(world / "data"), "--out", str(world / "reports")]
    )
    assert result.exit_code == 2 and "holds files cfosstats did not write" in result.output
    assert (foreign / "draft.docx").read_bytes() == b"mine"


def test_outputs_are_readable_by_others_and_marked(world, tmp_path):
    out = tmp_path / "agreement"
    result = RUNNER.invoke(
        app, ["agreement", "--lab", "mue", "--data", str(world / "data"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / MARKER).is_file()
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    # A second run replaces its own earlier output.
    again = RUNNER.invoke(
        app, ["agreement", "--lab", "mue", "--data", str(world / "data"), "--out", str(out)]
    )
    assert again.exit_code == 0, again.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_option_ranges_are_one_line_errors(world, tmp_path):
    data = str(world / "data")
    cases = [
        (["agreement", "--lab", "mue", "--data", data, "--out", str(tmp_path / "a"), "--threshold", "2"],
         "error: --threshold must be between 0 and 1 (an IoU), got 2.0"),
        (["agreement", "--lab", "mue", "--data", data, "--out", str(tmp_path / "a"), "--criterion", "bogus"],
         "error: unknown --criterion 'bogus': choose from gt, ge"),
        (["report", "--lab", "mue", "--data", data, "--out", str(tmp_path / "r"), "--alpha", "2"],
         "error: --alpha must be between 0 and 1, got 2.0"),
    ]  # fmt: skip
    for args, message in cases:
        result = RUNNER.invoke(app, args)
        assert result.exit_code == 2 and result.output.strip() == message, (args, result.output)


def test_report_with_a_truncated_image_fails_loudly(world, tmp_path):
    image = sorted((world / "data" / "lab-mue" / "images").iterdir())[0]
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    out = tmp_path / "reports"
    result = RUNNER.invoke(app, ["report", "--lab", "mue", "--data", str(world / "data"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {image}") and "Traceback" not in result.output
    assert not (out / "mue" / "report.html").exists()


def _report(world, out):
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report

    return build_report(load_lab("mue", data=world / "data"), out, formats=("html",))


def _document(folder: Path) -> str:
    """report.qmd without its timestamps and timings (the provenance rows of each step)."""
    import re

    text = (folder / "report.qmd").read_text(encoding="utf-8")
    stamp = re.compile(r"20\d\d-\d\d-\d\d[ T]\d\d:\d\d")
    return "\n".join(line for line in text.splitlines() if not stamp.search(line))


def test_a_damaged_cache_is_recomputed_never_rendered(world, tmp_path):
    import json

    clean = _report(world, tmp_path / "clean")
    folder = clean.folder
    mask = os.umask(0o022)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:  # a colleague or a web server can read the report
        wanted = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == wanted, path
    reference = _document(folder)
    tables = {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "tables").rglob("*.csv")}
    clean_figures = {p.name: p.read_bytes() for p in (folder / "figures").glob("*.png")}

    def truncate(f):
        path = f / "tables" / "objectivity" / "pairwise_f1.csv"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "objectivity"

    def change_figure(f):
        path = sorted((f / "figures").glob("*.png"))[0]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return None

    def delete(f):
        (f / "tables" / "groundtruth" / "annotators.csv").unlink()
        return "groundtruth"

    def edit_manifest(f):
        path = f / "tables" / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["steps"]["objectivity"]["sha256"]["pairwise_f1.csv"] = "0" * 64
        path.write_text(json.dumps(manifest))
        return "objectivity"

    for damage in (truncate, change_figure, delete, edit_manifest):
        step = damage(folder)
        again = _report(world, tmp_path / "clean")
        if step is not None:
            assert again.steps[step].status == "computed", (damage.__name__, again.steps[step])
            assert "recomputed" in again.steps[step].note, (damage.__name__, again.steps[step])
        assert _document(folder) == reference, damage.__name__
        now = {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "tables").rglob("*.csv")}
        assert now == tables, damage.__name__
    figures = {p.name: p.read_bytes() for p in (folder / "figures").glob("*.png")}
    assert figures == clean_figures  # the damaged figure was drawn again, byte for byte
    warm = _report(world, tmp_path / "clean")
    assert all(r.status in ("cached", "skipped") for n, r in warm.steps.items() if n != "published"), (
        warm.steps
    )


def test_rgba_mask_in_the_alpha_channel(tmp_path):
    import numpy as np
    from PIL import Image

    from cfosstats.core.imageio import read_mask

    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # solid white everywhere: the mask is only in alpha
    rgba[..., 3] = np.where(mask, 255, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(read_mask(tmp_path / "alpha.png"), mask)
    coloured = rgba.copy()
    coloured[..., :3] = np.where(mask[..., None], 255, 0)
    coloured[..., 3] = 255  # opaque everywhere: the colour is the mask
    Image.fromarray(coloured, "RGBA").save(tmp_path / "colour.png")
    assert np.array_equal(read_mask(tmp_path / "colour.png"), mask)


def test_ctrl_c_ends_a_report_cleanly_and_the_next_run_repairs(world, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    def command(out):
        return [sys.executable, "-m", "cfosstats", "report", "--lab", "mue", "--data", str(world / "data"),
                "--out", str(out), "--format", "html", "--jobs", "2"]  # fmt: skip

    clean = tmp_path / "clean"
    started = time.perf_counter()
    subprocess.run(command(clean), check=True, capture_output=True, timeout=300)
    duration = time.perf_counter() - started  # the interrupts fall inside a run on this machine
    out = tmp_path / "reports"
    interrupted = 0
    # Each interrupted run leaves its finished steps cached, so the next one is shorter: early
    # fractions of a clean run, stopping once enough runs were cut at different points.
    for fraction in (0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.7):
        if interrupted == 4:
            break
        process = subprocess.Popen(
            command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True
        )
        time.sleep(fraction * duration)
        if process.poll() is not None:
            continue  # finished before the interrupt
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers too
        sent = time.perf_counter()
        _, err = process.communicate(timeout=30)
        assert time.perf_counter() - sent < 10
        assert "Traceback" not in err, err
        if process.returncode == 0:
            # The interrupt came after the command had finished (while the interpreter shut down):
            # the report is complete and the command's own exit code stands.
            assert (out / "mue" / "report.html").is_file()
            continue
        assert process.returncode == 130, err
        assert "interrupted" in err, err
        interrupted += 1
        leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".part") or ".old-" in p.name]
        assert leftovers == [], leftovers
        if out.exists():
            empty = [d for d in out.rglob("*") if d.is_dir() and not any(d.iterdir())]
            assert empty == [], empty
    assert interrupted >= 3
    subprocess.run(command(out), check=True, capture_output=True, timeout=300)
    assert _document(out / "mue").replace(str(out), "OUT") == _document(clean / "mue").replace(
        str(clean), "OUT"
    )


def _cli(*args: str, cwd: Path | None = None):
    """The installed command in a fresh process: what a user sees on stderr, and the exit code."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "cfosstats", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_each_defect_gives_its_one_line(world, tmp_path):
    data = world / "data"
    bare = tmp_path / "bare"
    (bare / "lab-mue" / "images").mkdir(parents=True)
    shutil.copy(sorted((data / "lab-mue" / "images").iterdir())[0], bare / "lab-mue" / "images")
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    mask = sorted((broken / "lab-mue" / "labels" / "expert_3").iterdir())[0]
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    cases = [
        (["simulate", "--out", str(tmp_path / "s"), "--effect", "-2"],
         "error: --effect must be greater than -1 (density and brightness x (1 + effect)), got -2.0"),
        (["agreement", "--lab", "mue", "--data", str(data), "--out", str(tmp_path / "a"),
          "--threshold", "-1"],
         "error: --threshold must be between 0 and 1 (an IoU), got -1.0"),
        (["agreement", "--lab", "mue", "--data", str(data), "--out", str(tmp_path / "j"), "--jobs", "0"],
         "error: --jobs must be at least 1, got 0"),
        (["simulate", "--out", str(tmp_path / "z"), "--size", "10"],
         "error: --size must be at least 64, got 10"),
        (["groundtruth", "--lab", "mue", "--data", str(bare), "--out", str(tmp_path / "g")],
         f"error: {bare / 'lab-mue' / 'labels'}: lab mue has no annotators' masks to estimate a ground "
         "truth from"),
        (["agreement", "--lab", "mue", "--data", str(broken), "--out", str(tmp_path / "b")],
         f"error: {mask}: cannot be read as an image (OSError)"),
        (["groundtruth", "--lab", "mue", "--data", str(broken), "--out", str(tmp_path / "c")],
         f"error: {mask}: cannot be read as an image (OSError)"),
    ]  # fmt: skip
    for args, message in cases:
        result = _cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr == message + "\n", (args, result.stderr)  # one line, no blank line before it
        assert not (tmp_path / args[args.index("--out") + 1]).exists()
    inspected = _cli("inspect", "--lab", "mue", "--data", str(bare), cwd=tmp_path)
    assert (
        "no annotators' masks: objectivity" in inspected.stdout and "problems: none" not in inspected.stdout
    )


def test_kill_9_at_any_point_is_repaired_by_the_next_run(world, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "reports"
    command = [sys.executable, "-m", "cfosstats", "report", "--lab", "mue", "--data", str(world / "data"),
               "--out", str(out), "--format", "html"]  # fmt: skip
    killed = 0
    for delay in (1.5, 3.5, 6.0):
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed += 1
        process.communicate(timeout=30)
    assert killed >= 2
    # What a kill leaves (temporary files and folders of a write) is removed by the next run.
    (out / "mue").mkdir(parents=True, exist_ok=True)
    (out / "mue" / ".report.qmd.x1y2.part").write_text("half a document")
    (out / "mue" / "tables").mkdir(exist_ok=True)
    (out / "mue" / "tables" / ".effects.abc.part").mkdir()
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".part") or ".old-" in p.name]
    assert leftovers == [], leftovers
    clean = tmp_path / "clean"
    subprocess.run([*command[:-4], "--out", str(clean), "--format", "html"], check=True, capture_output=True)
    assert _document(out / "mue").replace(str(out), "OUT") == _document(clean / "mue").replace(
        str(clean), "OUT"
    )


def test_an_interrupted_update_keeps_the_finished_report(world, tmp_path, monkeypatch):
    from cfosstats.analyses import objectivity
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report

    lab = load_lab("mue", data=world / "data")
    first = build_report(lab, tmp_path / "reports", formats=("html",))
    folder = first.folder
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def interrupted(lab, out_dir, **kwargs):
        Path(out_dir, "objects.csv").write_text("half")  # some of the new tables, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(objectivity, "run_agreement", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_report(lab, tmp_path / "reports", formats=("html",), threshold=0.6)  # an update
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
