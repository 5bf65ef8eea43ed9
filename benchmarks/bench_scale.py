"""Benchmark: ``cfosstats effects`` on simulated studies of growing size, local pool and Dask.

For each study (images x label sources, simulated with ``cfosstats simulate`` at one image size),
it runs, each in a fresh ``cfosstats`` process:

1. ``effects`` cold with the local process pool (``--jobs CORES``);
2. ``effects`` cold through a Dask cluster of the same cores (``dask scheduler`` and ``dask
   worker --nworkers CORES --nthreads 1 --preload cfosstats.study.dask_preload``, started once
   and warmed up with one small untimed ``effects`` before the first study, as a cluster that
   has run before), and checks that every table is byte-identical to the local pool's;
3. steps 1 and 2 ``--repeats`` times (default 3), alternating which engine goes first; each
   engine's median time is reported (the machine's speed drifts by 15-25% from run to run);
4. the local command again over the unchanged files (everything cached).

Peak memory is the largest sum of the resident set sizes of the whole process tree (the command,
its workers and, with Dask, the scheduler and worker processes), read every 50 ms (the tree
listed every 0.5 s).
Throughput is image x source measurements per second per core. The growth exponents are the
least-squares slopes of log(time) and log(peak memory) against log(images x sources) over the
studies of the first image size. The Dask overhead is Dask's cold time over the local pool's,
minus 1 (of the median runs).

Results go to ``benchmarks/results/scale/``: ``runs.csv`` (one row per run) and ``summary.json``.
Label sources are the model label sets that cover every image; ``--sources`` takes the counts of
:data:`SOURCE_OPTIONS` (``65`` is the study's own set: 20 expert models, 9 ensembles of 4
consensus models, 36 members).

Usage::

    python benchmarks/bench_scale.py [--images 100,300,1000] [--sources 20] [--size 512]
        [--study 288x65@1024] [--cores 2] [--studies DIR] [--no-dask] [--repeats 3]

Needs the extra ``cfosstats[distributed]`` (Dask; psutil comes with it).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale"

# Label sources (the model label sets, which cover every image; the 4 annotators and est_GT label
# only the training images and come on top) -> cfosstats simulate options. Sources = 4 x
# expert-models + consensus-models + ensembles x (ensemble-members + 1).
SOURCE_OPTIONS = {
    20: {"expert-models": 2, "consensus-models": 4, "ensembles": 2, "ensemble-members": 3},
    60: {"expert-models": 5, "consensus-models": 4, "ensembles": 9, "ensemble-members": 3},
    65: {"expert-models": 5, "consensus-models": 0, "ensembles": 9, "ensemble-members": 4},
}
IMAGES_PER_UNIT = 36  # demo lab, 4 animals per condition: 3 conditions x 3 areas x 4 animals


def _cfosstats(*args: str) -> list[str]:
    return [sys.executable, "-m", "cfosstats", *args]


class TreeMemory:
    """Peak of the summed RSS of some processes and all their descendants, sampled in a thread.

    The tree is listed again every `refresh` seconds and its resident sets read every `interval`
    seconds: listing descendants scans every process of the machine, and doing that at each
    sample cost the sampler 8% of a core for one command and 17% for a command with a Dask
    cluster, on a machine of 2 cores (a bias of about 4% against Dask).
    """

    def __init__(self, roots: list[int], interval: float = 0.05, refresh: float = 0.5):
        self.roots = roots
        self.interval = interval
        self.refresh = refresh
        self.peak = 0
        self._processes: list[psutil.Process] = []
        self._listed = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    found.setdefault(process.pid, process)
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def _rss(self) -> int:
        if time.monotonic() - self._listed >= self.refresh:
            self._processes, self._listed = self._tree(), time.monotonic()
        total = 0
        for process in self._processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def add(self, pid: int) -> None:
        self.roots.append(pid)
        self._listed = -math.inf  # list the tree with the new root at the next sample

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed_run(command: list[str], extra_roots: list[int]) -> tuple[float, int]:
    """Wall seconds and peak tree RSS (bytes) of one command."""
    with TreeMemory(list(extra_roots)) as memory:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        memory.add(process.pid)
        _, err = process.communicate()
        seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{err}")
    return seconds, memory.peak


def simulate(root: Path, images: int, sources: int, size: int, cores: int) -> tuple[Path, int, float]:
    """The study of `images` x `sources` (reused when already there); its real image count."""
    per_animal = max(1, round(images / IMAGES_PER_UNIT))
    options = [f"--{k}={v}" for k, v in SOURCE_OPTIONS[sources].items()]
    folder = root / f"i{per_animal * IMAGES_PER_UNIT}_s{sources}_{size}"
    seconds = math.nan
    if not (folder / "image_mapping.xlsx").exists():
        started = time.perf_counter()
        command = _cfosstats("simulate", "--out", str(folder), "--seed", "0", "--n-animals", "4",
                             "--images-per-animal", str(per_animal), "--size", str(size),
                             "--jobs", str(cores), *options)  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    n_images = len(list((folder / "lab-demo" / "images").iterdir()))
    return folder, n_images, seconds


#: README, "Worker settings": the statistical profiler off; glibc's mmap threshold raised, since
#: the nanny's MALLOC_TRIM_THRESHOLD_ pins it at 128 kB (every MB-sized array mapped afresh).
DASK_WORKER_ENV = {
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    "MALLOC_MMAP_THRESHOLD_": "67108864",
}


#: Imported by every worker at start-up (``dask worker --preload``, as the README recommends): the
#: per-image and effect-test code with statsmodels' mixed model, so that the first study's tasks do
#: not pay for the imports (a local pool's workers are forked with them).
PRELOAD = "cfosstats.study.dask_preload"


def start_dask(cores: int, folder: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and `cores` single-threaded worker processes (one nanny each)."""
    file = folder / "scheduler.json"
    log = open(folder / "dask.log", "w")  # noqa: SIM115 - open for the cluster's lifetime
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", str(file),
         "--port", "0", "--no-dashboard"], stdout=log, stderr=log,
    )  # fmt: skip
    while not file.exists():
        time.sleep(0.1)
    # The worker settings the README recommends for cfosstats (profiler off, large arrays from
    # the heap): Dask's defaults made its per-task compute up to 1.9x the local pool's. The
    # task code is imported when a worker starts (PRELOAD), as the local pool's forked workers
    # have it, so that the first study does not pay for the imports.
    env = dict(os.environ, **DASK_WORKER_ENV)
    workers = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
         "--nworkers", str(cores), "--nthreads", "1", "--no-dashboard", "--preload", PRELOAD],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    from distributed import Client

    address = json.loads(file.read_text())["address"]
    with Client(address, timeout=60) as client:
        client.wait_for_workers(cores, timeout=120)
    return address, [scheduler, workers]


def _median_run(runs: list[tuple[float, int]]) -> tuple[float, int]:
    """The median wall time of some runs (the lower middle one of an even count) and the largest
    peak memory of any of them."""
    seconds = sorted(s for s, _ in runs)[(len(runs) - 1) // 2]
    return seconds, max(peak for _, peak in runs)


def _listed(runs: list[tuple[float, int]]) -> str:
    return " ".join(f"{s:.2f}" for s, _ in runs)


def warm_up(address: str, work: Path) -> None:
    """One small ``effects`` on the fresh cluster, untimed: a cluster's first command costs more
    than later ones even with the preload (on the 18-image 128² study of the tests: 7.3 s for
    the first, 5.0 s for the next ones), and the first study would pay for it alone."""
    tiny = work / "warm-up"
    subprocess.run(_cfosstats("simulate", "--out", str(tiny / "study"), "--seed", "3", "--n-animals", "2",
                              "--images-per-animal", "1", "--size", "128"),
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run(_cfosstats("effects", "--lab", "demo", "--data", str(tiny / "study"), "--out",
                              str(tiny / "effects"), "--scheduler", address),
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    shutil.rmtree(tiny)


def same_tables(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.csv"))
    return (
        bool(names)
        and names == sorted(p.name for p in b.glob("*.csv"))
        and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)
    )


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def _studies(args) -> list[tuple[str, int, int, int]]:
    """(series, images, sources, size): the scaling series, then the extra studies."""
    studies = [("scale", i, s, args.size) for s in args.sources for i in args.images]
    for spec in args.study or []:
        shape, _, size = spec.partition("@")
        images, _, sources = shape.partition("x")
        studies.append(("study", int(images), int(sources), int(size or args.size)))
    return studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    numbers = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--images", type=numbers, default=[100, 300, 1000])
    parser.add_argument("--sources", type=numbers, default=[20])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--study", action="append", help="extra study IMAGESxSOURCES@SIZE, e.g. 288x65@1024")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--studies", type=Path, help="keep (and reuse) the simulated studies here")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="cold runs of each engine per study")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    unknown = sorted(set(args.sources) - set(SOURCE_OPTIONS))
    if unknown:
        raise SystemExit(f"--sources: no simulate options for {unknown}; known: {sorted(SOURCE_OPTIONS)}")

    # A TERM (or Ctrl-C) still runs the cleanup below: no scheduler or worker is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    studies_root = args.studies or work / "studies"
    rows: list[dict] = []
    cluster: list[subprocess.Popen] = []
    try:
        address = None
        if not args.no_dask:
            address, cluster = start_dask(args.cores, work)
            warm_up(address, work)
        for series, images, sources, size in _studies(args):
            folder, n_images, sim_s = simulate(studies_root, images, sources, size, args.cores)
            common = ["effects", "--lab", "demo", "--data", str(folder)]
            row = {"series": series, "images": n_images, "sources": sources, "size": size,
                   "cores": args.cores, "simulate_s": round(sim_s, 1)}  # fmt: skip
            roots = [p.pid for p in cluster]
            outs = {engine: work / f"{folder.name}_{engine}" for engine in ("local", "dask")}
            runs: dict[str, list[tuple[float, int]]] = {"local": [], "dask": []}
            identical = True
            # Cold runs alternate between the engines, in turn first, so that a slower spell of the
            # machine does not fall on one of them alone; each engine's median run is kept.
            commands = {"local": _cfosstats(*common, "--out", str(outs["local"]), "--jobs", str(args.cores))}
            if address is not None:
                commands["dask"] = _cfosstats(*common, "--out", str(outs["dask"]), "--scheduler", address)
            for repeat in range(args.repeats):
                for engine in sorted(commands, reverse=bool(repeat % 2)):
                    shutil.rmtree(outs[engine], ignore_errors=True)
                    runs[engine].append(timed_run(commands[engine], roots if engine == "dask" else []))
                if address is not None:
                    identical &= same_tables(outs["local"], outs["dask"])
            local = commands["local"]
            rerun, rerun_rss = timed_run(local, [])  # the last cold run's outputs, unchanged files
            cold, cold_rss = _median_run(runs["local"])
            row.update(local_cold_s=round(cold, 2), local_peak_mb=round(cold_rss / 1e6),
                       local_cold_runs_s=_listed(runs["local"]),
                       rerun_s=round(rerun, 2), rerun_peak_mb=round(rerun_rss / 1e6))  # fmt: skip
            if address is not None:
                dask_s, dask_rss = _median_run(runs["dask"])
                row.update(dask_cold_s=round(dask_s, 2), dask_peak_mb=round(dask_rss / 1e6),
                           dask_cold_runs_s=_listed(runs["dask"]),
                           dask_overhead=round(dask_s / cold - 1, 3), dask_identical=identical)  # fmt: skip
                shutil.rmtree(outs["dask"], ignore_errors=True)
            row["throughput_per_core"] = round(n_images * sources / cold / args.cores, 1)
            rows.append(row)
            shutil.rmtree(outs["local"], ignore_errors=True)
            print(json.dumps(row), flush=True)
    finally:
        for process in reversed(cluster):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    summary = summarise(rows, args)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "runs.csv", "w", newline="") as handle:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(rows, summary)


def summarise(rows: list[dict], args) -> dict:
    scaled = [r for r in rows if r["series"] == "scale"]
    work = [r["images"] * r["sources"] for r in scaled]
    summary: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_used": args.cores,
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    if len(scaled) >= 2:
        summary["range_images_x_sources"] = [min(work), max(work)]
        summary["time_exponent"] = round(slope(work, [r["local_cold_s"] for r in scaled]), 3)
        summary["memory_exponent"] = round(slope(work, [r["local_peak_mb"] for r in scaled]), 3)
        smallest, largest = (
            min(scaled, key=lambda r: r["images"] * r["sources"]),
            max(scaled, key=lambda r: r["images"] * r["sources"]),
        )
        ratio = largest["local_peak_mb"] / smallest["local_peak_mb"]
        summary["peak_memory_largest_over_smallest"] = round(ratio, 3)
        if "dask_cold_s" in largest:
            ratio = largest["dask_peak_mb"] / smallest["dask_peak_mb"]
            summary["dask_peak_largest_over_smallest"] = round(ratio, 3)
    with_dask = [r for r in rows if "dask_cold_s" in r]
    if with_dask:
        summary["dask_overhead_median"] = sorted(r["dask_overhead"] for r in with_dask)[len(with_dask) // 2]
        summary["dask_identical_all"] = all(r["dask_identical"] for r in with_dask)
    summary["runs"] = rows
    return summary


def print_summary(rows: list[dict], summary: dict) -> None:
    header = ("images", "sources", "size", "local_cold_s", "rerun_s", "dask_cold_s", "dask_overhead",
              "local_peak_mb", "dask_peak_mb", "throughput_per_core")  # fmt: skip
    print("\n" + "  ".join(f"{h:>14}" for h in header))
    for row in rows:
        print("  ".join(f"{row.get(h, ''):>14}" for h in header))
    for key in ("time_exponent", "memory_exponent", "peak_memory_largest_over_smallest",
                "dask_peak_largest_over_smallest", "dask_overhead_median", "dask_identical_all"):  # fmt: skip
        if key in summary:
            print(f"{key}: {summary[key]}")


if __name__ == "__main__":
    main()
