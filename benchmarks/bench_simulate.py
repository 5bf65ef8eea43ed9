"""Benchmark: ``cfosstats simulate`` of this checkout against a baseline commit, in fresh processes.

Both run at the same arguments, interleaved (baseline, new, baseline, new, ...), each in a fresh
``python -P -m cfosstats simulate`` process whose ``PYTHONPATH`` points at its source tree (``-P``:
the working directory does not shadow it). The baseline tree is ``git archive <commit>`` unpacked
into a temporary folder (read-only for the repository, removed at the end). Every study is written
into a temporary folder and removed after its files are hashed; the new study's files must be
byte-identical to the baseline's (same seed).

It prints the median wall time of each, the ratio baseline / new and the seconds per image. With
label-set counts other than the defaults (``--expert-models`` ...) or ``--no-baseline`` only the new
code runs (the baseline has no such options).

Usage::

    python benchmarks/bench_simulate.py [--size 1024] [--n-animals 8] [--images-per-animal 4]
        [--repeats 1] [--jobs N] [--baseline-commit COMMIT] [--no-baseline]
        [--expert-models 2 --consensus-models 4 --ensembles 2 --ensemble-members 3] [--results FILE]

The demo lab has 3 conditions x 3 areas, so a study has ``9 * n_animals * images_per_animal``
images: 288 = 8 x 4, 999 = 37 x 3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _baseline import export_tree  # benchmarks/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parents[1]
#: The commit before the simulate speed-up (its simulate code is a05c1ef's).
BASELINE_COMMIT = "23f15cd"
#: The demo lab's label-set counts (the baseline's only ones).
DEFAULT_COUNTS = {"expert_models": 2, "consensus_models": 4, "ensembles": 2, "ensemble_members": 3}
IMAGES_PER_ANIMAL_AND_AREA = 9  # the demo lab: 3 conditions x 3 areas


def study_arguments(args: argparse.Namespace) -> list[str]:
    """The ``simulate`` options both trees get."""
    return [
        "--size", str(args.size), "--n-animals", str(args.n_animals),
        "--images-per-animal", str(args.images_per_animal), "--seed", str(args.seed),
    ]  # fmt: skip


def run_simulate(tree: Path, out: Path, options: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, workers included) of one fresh ``cfosstats simulate``.

    The CPU time says what the work costs when other jobs share the cores; it raises with the
    process's stderr if it fails.
    """
    command = [sys.executable, "-P", "-m", "cfosstats", "simulate", "--out", str(out), *options]
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file of a study."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-animals", type=int, default=8)
    parser.add_argument("--images-per-animal", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tree, interleaved")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="--jobs of the new code")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument("--no-baseline", action="store_true", help="time the new code only")
    for name, value in DEFAULT_COUNTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--results", type=Path, help="also write the summary to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    counts = {name: getattr(args, name) for name in DEFAULT_COUNTS}
    n_images = IMAGES_PER_ANIMAL_AND_AREA * args.n_animals * args.images_per_animal
    options = study_arguments(args)
    new_options = [*options, "--jobs", str(args.jobs)]
    for name, value in counts.items():
        new_options += [f"--{name.replace('_', '-')}", str(value)]
    with_baseline = not args.no_baseline and counts == DEFAULT_COUNTS
    times: dict[str, list[float]] = {"new": []}
    cpu: dict[str, list[float]] = {"new": []}
    identical = None
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        tmp = Path(tmp)
        variants = {"new": (REPO, new_options)}
        if with_baseline:
            variants = {"baseline": (export_tree(args.baseline_commit, tmp), options), **variants}
            times, cpu = {"baseline": [], "new": []}, {"baseline": [], "new": []}
        hashes: dict[str, dict[str, str]] = {}
        for repeat in range(args.repeats):
            for name, (tree, arguments) in variants.items():
                out = tmp / f"{name}-{repeat}"
                seconds, cpu_seconds = run_simulate(tree, out, arguments)
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
                if repeat == 0:
                    hashes[name] = file_hashes(out)
                shutil.rmtree(out)
                print(f"{name:8s} run {repeat + 1}: {seconds:.1f} s, CPU {cpu_seconds:.1f} s", flush=True)
        if with_baseline:
            identical = hashes["baseline"] == hashes["new"]
        n_files = len(hashes["new"])
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    summary = {
        "images": n_images,
        "files": n_files,
        "size": args.size,
        "label_sets": counts,
        "jobs_new": args.jobs,
        "repeats": args.repeats,
        "seconds": times,
        "median_s": medians,
        "s_per_image": {name: m / n_images for name, m in medians.items()},
        "cpu_s": cpu,
        "median_cpu_s": cpu_medians,
        "cpu_s_per_image": {name: m / n_images for name, m in cpu_medians.items()},
        "load_average_after": os.getloadavg(),
        "baseline_commit": args.baseline_commit if with_baseline else None,
        "byte_identical": identical,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "node": platform.node()},
    }
    if with_baseline:
        summary["ratio_baseline_over_new"] = medians["baseline"] / medians["new"]
    for name, median in medians.items():
        print(
            f"{name:8s} median {median:.1f} s ({median / n_images:.3f} s per image, {n_images} images), "
            f"CPU {cpu_medians[name]:.1f} s ({cpu_medians[name] / n_images:.3f} s per image)"
        )
    if with_baseline:
        print(f"ratio baseline / new: {summary['ratio_baseline_over_new']:.2f}; byte-identical: {identical}")
    if args.results:
        args.results.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


if __name__ == "__main__":
    main()
