"""Per-image work on a real Dask cluster: a scheduler and two worker processes on this machine.

The cluster is started with the ``dask`` command line, as on a laptop or a cluster node, and the
commands reach it with ``--scheduler``. Every table must be byte-identical to the local process
pool's, even when a worker dies mid-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cfosstats.cli.app import app
from cfosstats.core.parallel import DISTRIBUTED_MISSING

REPO = Path(__file__).resolve().parents[1]
RUNNER = CliRunner()
# One worker starts with the README's preload, one without: both must give the same tables.
PRELOADS = (["--preload", "cfosstats.study.dask_preload"], [])


def _require_distributed():
    """Skip locally, fail in CI, without the optional extra (the test extra installs it)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        message = "dask distributed not installed (pip install 'cfosstats[distributed]')"
        if os.environ.get("CI"):
            pytest.fail(message + " -- CI is set: this test must not skip")
        pytest.skip(message)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from cfosstats.datasets.registry import load_lab_config
    from cfosstats.simulate.study import simulate_study

    root = tmp_path_factory.mktemp("distributed") / "study"
    simulate_study(root, config=load_lab_config("demo"), seed=3, n_animals=2, images_per_animal=1, size=128)
    return root


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a running ``dask scheduler`` with two ``dask worker`` processes (the
    first with :mod:`cfosstats.study.dask_preload`)."""
    _require_distributed()
    folder = tmp_path_factory.mktemp("cluster")
    file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker"]
    processes = [
        subprocess.Popen(
            [*dask, "--scheduler-file", str(file), "--port", "0", "--no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "scheduler.log", "w"),
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for n in range(2):
            processes.append(
                subprocess.Popen(
                    [*worker, "--scheduler-file", str(file), "--nworkers", "1", "--nthreads", "1",
                     "--no-dashboard", "--name", f"worker-{n}", *PRELOADS[n]],
                    env=env, stdout=subprocess.DEVNULL, stderr=open(folder / f"worker-{n}.log", "w"),
                )
            )  # fmt: skip
        from distributed import Client

        address = json.loads(file.read_text())["address"]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _tables(folder: Path) -> dict[str, bytes]:
    """Every table a command wrote (run.json holds durations, so it is compared without them)."""
    tables = {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}
    assert tables, f"no tables in {folder}"
    return tables


def _invoke(*args: str):
    result = RUNNER.invoke(app, list(args))
    assert result.exit_code == 0, result.output + str(result.exception)
    return result


def test_effects_on_the_cluster_equal_the_local_pool(study, scheduler, tmp_path):
    common = ["effects", "--lab", "demo", "--data", str(study), "--n-boot", "20"]
    _invoke(*common, "--out", str(tmp_path / "local"), "--jobs", "2")
    _invoke(*common, "--out", str(tmp_path / "dask"), "--scheduler", scheduler)
    local, dask = _tables(tmp_path / "local"), _tables(tmp_path / "dask")
    assert local.keys() == dask.keys() and "effects.csv" in local and "quantification.csv" in local
    for name in local:
        assert local[name] == dask[name], name


def test_agreement_on_the_cluster_equals_the_local_pool_and_follows_the_env(study, scheduler, tmp_path,
                                                                             monkeypatch):  # fmt: skip
    common = ["agreement", "--lab", "demo", "--data", str(study)]
    _invoke(*common, "--out", str(tmp_path / "local"), "--jobs", "1")
    monkeypatch.setenv("CFOSSTATS_SCHEDULER", scheduler)
    from distributed import Client

    with Client(scheduler, timeout=30) as client:
        _invoke(*common, "--out", str(tmp_path / "dask"))
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "agreement_of_image" in prefixes, prefixes  # the work did run on the cluster
    local, dask = _tables(tmp_path / "local"), _tables(tmp_path / "dask")
    assert local.keys() == dask.keys() and "objects.csv" in local
    for name in local:
        assert local[name] == dask[name], name


def test_a_worker_killed_mid_run_still_gives_identical_tables(study, scheduler, tmp_path):
    from distributed import Client

    from tests.dask_plugins import ExitOnFirstTask

    common = ["effects", "--lab", "demo", "--data", str(study), "--n-boot", "0"]
    _invoke(*common, "--out", str(tmp_path / "local"), "--jobs", "1")
    marker = tmp_path / "killed"
    with Client(scheduler, timeout=30) as client:
        client.register_plugin(ExitOnFirstTask(str(marker)))
        try:
            _invoke(*common, "--out", str(tmp_path / "dask"), "--scheduler", scheduler)
        finally:
            client.unregister_worker_plugin(ExitOnFirstTask.name)
        client.wait_for_workers(2, timeout=60)  # the nanny has replaced the killed worker
    assert marker.exists()  # a worker did die at its first task
    local, dask = _tables(tmp_path / "local"), _tables(tmp_path / "dask")
    for name in local:
        assert local[name] == dask[name], name


def test_a_bad_mask_on_the_cluster_gives_the_one_line_error(study, scheduler, tmp_path):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    mask = sorted((copy / "lab-demo" / "labels").rglob("*.png"))[-1]
    mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
    out = tmp_path / "effects"
    result = RUNNER.invoke(
        app, ["effects", "--lab", "demo", "--data", str(copy), "--out", str(out), "--scheduler", scheduler]
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {mask}") and "Traceback" not in result.output
    assert not out.exists()


def test_without_the_extra_scheduler_says_how_to_install_it(study, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "agreement"
    result = RUNNER.invoke(
        app, ["agreement", "--lab", "demo", "--data", str(study), "--out", str(out), "--scheduler", "local"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "error: " + DISTRIBUTED_MISSING
    assert "pip install 'cfosstats[distributed]'" in DISTRIBUTED_MISSING
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_line():
    _require_distributed()
    from cfosstats.core.errors import InputError
    from cfosstats.core.parallel import use_scheduler

    with pytest.raises(InputError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with use_scheduler("tcp://127.0.0.1:9", timeout=2):
            pass


def test_local_cluster_spec_is_checked():
    _require_distributed()
    from cfosstats.core.errors import InputError
    from cfosstats.core.parallel import use_scheduler

    with pytest.raises(InputError, match="local:N needs a whole number"):
        with use_scheduler("local:zero"):
            pass


def test_predict_on_the_cluster_writes_the_same_masks(study, scheduler, tmp_path):
    from cfosstats.datasets import load_lab

    images = load_lab("demo", data=study).image_ids[:2]
    common = ["predict", "--lab", "demo", "--data", str(study), "--model", "wue1/consensus_ensemble"]
    common += [arg for image in images for arg in ("--image", image)]
    _invoke(*common, "--out", str(tmp_path / "local"))
    _invoke(*common, "--out", str(tmp_path / "dask"), "--scheduler", scheduler)
    from distributed import Client

    with Client(scheduler, timeout=30) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert "predict_and_write" in prefixes, prefixes

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix in (".png", ".csv")}  # fmt: skip

    local, dask = files(tmp_path / "local"), files(tmp_path / "dask")
    assert len(local) == 2 * (1 + 3 + 3) + 1  # ensemble + 3 members masks, 3 maps per image; the csv
    assert local.keys() == dask.keys()
    for name in local:
        assert local[name] == dask[name], name


def test_the_worker_preload_covers_every_mapped_function_but_the_models():
    """Every function a command maps (``map_tasks(f, ...)``, or the steps' ``_map(f, ...)``) outside
    the model code is imported by the preload, and the preload does not import torch."""
    import ast

    mapped = {}
    for path in (REPO / "cfosstats").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("map_tasks", "_map")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id != "function"  # the wrappers' own parameter
            ):
                mapped[node.args[0].id] = path.relative_to(REPO / "cfosstats").parts[0]
    assert mapped.pop("predict_and_write") == "segment"
    assert len(mapped) >= 7, mapped
    code = (
        "import sys; from cfosstats.study.dask_preload import TASK_FUNCTIONS as t; "
        "print(sorted(f.__name__ for f in t)); print('torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, torch_loaded = shown.stdout.splitlines()
    assert names == str(sorted(mapped)) and torch_loaded == "False"
