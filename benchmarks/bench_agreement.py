"""Benchmark: ``cfosstats agreement --lab wue1`` against a baseline commit, in fresh processes.

Three commands run interleaved (baseline, new ``--jobs 1``, new ``--jobs 2``; the order rotates
each repeat so none always runs first), each in a fresh ``python -P -m cfosstats`` process whose
``PYTHONPATH`` points at its source tree (``-P``: the working directory does not shadow it):

- baseline CLI with its default jobs (2), from ``git archive <baseline-commit>`` unpacked into a
  temporary folder, removed at the end (no worktree metadata is left in the repository);
- this checkout's CLI with ``--jobs 1`` and with ``--jobs 2`` (the default).

It prints the median wall time of each, the ratios baseline / new and jobs1 / jobs2, and checks
that every CSV each run writes is byte-identical to the baseline's (``count_agreement.csv``: its
numbers equal to 1e-12 relative, since the ICCs are now computed from closed-form mean squares
instead of pingouin's ANOVA; ``run.json`` equal). Tables the baseline did not write yet
(``fleiss_kappa.csv``, added later: the new runs do that work on top) must be byte-identical
across the new runs.
With ``--per-mask`` it also times, in one fresh process per tree, the per-mask steps (decode,
binary check, labelling, labelling + indexing) and matching per pair on the same masks,
alternating baseline and new processes.

Results go to ``benchmarks/results/agreement/``: ``runs.csv`` (one row per run) and
``summary.json`` (medians, ratios, per-mask costs, commits, machine).

Usage::

    python benchmarks/bench_agreement.py [--data ../shared/data/train_data] [--repeats 3]
        [--baseline-commit COMMIT] [--per-mask]
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _baseline import export_tree  # benchmarks/ is on sys.path when a benchmark runs as a script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train_data"
RESULTS = REPO / "benchmarks" / "results" / "agreement"
#: The release before the mask reading / labelling work (a05c1ef, 2026-12-02).
BASELINE_COMMIT = "a05c1ef"
VARIANTS = ("baseline", "new_jobs1", "new_jobs2")


def run_cli(tree: Path, data: Path, out: Path, lab: str, jobs: int | None) -> tuple[float, int, str]:
    """Wall time, exit code and stderr tail of one fresh ``cfosstats agreement`` process."""
    command = [sys.executable, "-P", "-m", "cfosstats", "agreement", "--lab", lab]
    command += ["--data", str(data), "--out", str(out)]
    if jobs is not None:
        command += ["--jobs", str(jobs)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    return time.perf_counter() - start, done.returncode, done.stderr[-500:]


# Computed by another route since the baseline (numpy mean squares instead of pingouin's
# ANOVA): equal to the last bits, so compared as numbers to 1e-12 relative.
NUMERIC_FILES = {"count_agreement.csv": 1e-12}


def same_numbers(a: Path, b: Path, rtol: float) -> bool:
    """Whether two CSV tables have the same columns and text, and numbers equal to `rtol`."""
    import numpy as np  # lazy: only for the tables compared as numbers
    import pandas as pd

    left, right = pd.read_csv(a), pd.read_csv(b)
    if list(left.columns) != list(right.columns) or left.shape != right.shape:
        return False
    numbers = left.select_dtypes("number").columns
    text = [c for c in left.columns if c not in numbers]
    if not left[text].equals(right[text]) or list(right.select_dtypes("number").columns) != list(numbers):
        return False
    return bool(np.allclose(left[numbers], right[numbers], rtol=rtol, atol=0, equal_nan=True))


def same_outputs(expected: Path, actual: Path, only_in_actual: set[str] = frozenset()) -> list[str]:
    """Names of the files that differ (CSV bytes, or numbers for :data:`NUMERIC_FILES`; run.json
    as parsed JSON), or are missing; files named in `only_in_actual` may be absent from
    `expected` (tables the baseline did not write yet)."""
    differ = []
    names = sorted({p.name for p in expected.iterdir()} | {p.name for p in actual.iterdir()})
    for name in names:
        a, b = expected / name, actual / name
        if name in only_in_actual and b.is_file() and not a.exists():
            continue
        if not (a.is_file() and b.is_file()):
            differ.append(name)
        elif name.endswith(".json"):
            if json.loads(a.read_text()) != json.loads(b.read_text()):
                differ.append(name)
        elif name in NUMERIC_FILES:
            if not same_numbers(a, b, NUMERIC_FILES[name]):
                differ.append(name)
        elif not filecmp.cmp(a, b, shallow=False):
            differ.append(name)
    return differ


# Runs in a fresh process with PYTHONPATH at one tree; works with the baseline's and the new API.
PER_MASK_SCRIPT = r"""
import json, statistics, sys, time
from itertools import combinations
from pathlib import Path
import numpy as np
from cfosstats.core import imageio
from cfosstats.objects import label as label_module
from cfosstats.objects.matching import match_labels
from cfosstats.objects.overlaps import index_objects

folder, repeats = Path(sys.argv[1]), int(sys.argv[2])
sets = sorted(p.name for p in folder.iterdir() if p.is_dir())
stems = sorted(p.name for p in (folder / sets[0]).iterdir())
paths = [[folder / s / stem for s in sets] for stem in stems]
flat = [p for row in paths for p in row]

def check(path, array):
    if hasattr(imageio, "_check_binary"):
        imageio._check_binary(path, array)
    else:  # the baseline's check: distinct values
        imageio._distinct_values(array)

def combined(path):
    array = imageio._read_array(path)  # PIL in both trees: the pixels the binary check is timed on
    return imageio._combine_channels(array, np.bitwise_or) if array.ndim == 3 else array

def index(mask):
    if hasattr(label_module, "index_mask_objects"):
        return label_module.index_mask_objects(mask, min_size=30)
    return index_objects(label_module.label_objects(mask, min_size=30))

def decode(path):
    # the new tree reads masks through its fast PNG decoder (PIL's pixels, checked); the baseline through PIL
    if "fast_png" in imageio._read_array.__code__.co_varnames:
        return imageio._read_array(path, fast_png=True)
    return imageio._read_array(path)

decoded = [combined(p) for p in flat]
masks = [imageio.read_mask(p) for p in flat]
indexes = [index(m) for m in masks]
pairs = [(indexes[i * len(sets) + a], indexes[i * len(sets) + b])
         for i in range(len(paths)) for a, b in combinations(range(len(sets)), 2)]
steps = {
    "decode": (decode, flat),
    "binary_check": (lambda pa: check(*pa), list(zip(flat, decoded))),
    "read_mask": (imageio.read_mask, flat),
    "label": (lambda m: label_module.label_objects(m, min_size=30), masks),
    "label_and_index": (index, masks),
    "match_pair": (lambda pair: match_labels(*pair), pairs),
}
times = {name: [] for name in steps}
for _ in range(repeats):
    for name, (function, items) in steps.items():
        start = time.perf_counter()
        for item in items:
            function(item)
        times[name].append((time.perf_counter() - start) / len(items) * 1e3)
print(json.dumps({name: statistics.median(v) for name, v in times.items()}))
"""


def per_mask_costs(tree: Path, labels_dir: Path, repeats: int) -> dict[str, float]:
    """Median ms per mask (per pair for matching) of each step, in a fresh process on `tree`."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, "-P", "-c", PER_MASK_SCRIPT, str(labels_dir), str(repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rev_parse(name: str) -> str:
    command = ["git", "-C", str(REPO), "rev-parse", name]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--lab", default="wue1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT)
    parser.add_argument("--per-mask", action="store_true", help="also time the per-mask steps")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    data = args.data.resolve()

    commit, head = (_rev_parse(name) for name in (args.baseline_commit, "HEAD"))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_agreement_") as tmp:
        tmp = Path(tmp)
        trees = {"baseline": export_tree(commit, tmp), "new": REPO}
        plan = {"baseline": ("baseline", None), "new_jobs1": ("new", 1), "new_jobs2": ("new", 2)}
        reference = None
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                tree, jobs = plan[variant]
                out = tmp / f"out_{variant}_{repeat}"
                wall, rc, err = run_cli(trees[tree], data, out, args.lab, jobs)
                if rc != 0:
                    print(f"{variant} failed (exit {rc}): {err}", file=sys.stderr)
                    return 1
                if reference is None and variant == "baseline":
                    reference = out
                rows.append({"repeat": repeat, "variant": variant, "jobs": jobs or "default", "wall_s": wall,
                             "out": out})  # fmt: skip
                print(f"repeat {repeat} {variant:10s} {wall:6.2f} s", flush=True)
        # Tables the baseline did not write (fleiss_kappa.csv) are compared between the new
        # runs instead: every one byte-identical to the first new run's.
        new_outs = [row["out"] for row in rows if row["variant"] != "baseline"]
        added = {p.name for p in new_outs[0].iterdir()} - {p.name for p in reference.iterdir()}
        for row in rows:
            out = row.pop("out")
            differ = same_outputs(reference, out, added)
            if row["variant"] != "baseline":
                differ += [
                    n for n in sorted(added) if not filecmp.cmp(new_outs[0] / n, out / n, shallow=False)
                ]
            row["identical_to_baseline"] = not differ
            row["differing_files"] = ";".join(differ)
        added_tables = sorted(added)
        per_mask = {}
        if args.per_mask:
            # Interleaved too: one fresh process per tree and round, medians over the rounds.
            labels_dir = data / f"lab-{args.lab}" / "labels"
            rounds: dict[str, list[dict[str, float]]] = {"baseline": [], "new": []}
            for _ in range(max(args.repeats, 3)):
                for name in rounds:
                    rounds[name].append(per_mask_costs(trees[name], labels_dir, 1))
            per_mask = {
                name: {step: statistics.median(r[step] for r in runs) for step in runs[0]}
                for name, runs in rounds.items()
            }

    medians = {v: statistics.median(r["wall_s"] for r in rows if r["variant"] == v) for v in VARIANTS}
    summary = {
        "command": f"cfosstats agreement --lab {args.lab} --data DATA --out DIR [--jobs N]",
        "baseline_commit": commit,
        "new_commit": head,
        "repeats": args.repeats,
        "median_wall_s": medians,
        "ratio_baseline_over_new_jobs2": medians["baseline"] / medians["new_jobs2"],
        "ratio_baseline_over_new_jobs1": medians["baseline"] / medians["new_jobs1"],
        "ratio_jobs1_over_jobs2": medians["new_jobs1"] / medians["new_jobs2"],
        "all_outputs_identical": all(r["identical_to_baseline"] for r in rows),
        "tables_new_since_baseline": added_tables,
        "per_mask_ms": per_mask,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    with open(args.results / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    print(f"\nmedian of {args.repeats} fresh runs each:")
    for variant in VARIANTS:
        print(f"  {variant:10s} {medians[variant]:6.2f} s")
    print(f"  baseline / new --jobs 2 : {summary['ratio_baseline_over_new_jobs2']:.2f}x")
    print(f"  baseline / new --jobs 1 : {summary['ratio_baseline_over_new_jobs1']:.2f}x")
    print(f"  new jobs1 / jobs2       : {summary['ratio_jobs1_over_jobs2']:.2f}x")
    print(f"  outputs identical to the baseline's: {summary['all_outputs_identical']}")
    if added_tables:
        print(f"  tables new since the baseline (identical across the new runs): {', '.join(added_tables)}")
    for name, costs in per_mask.items():
        print(f"  per mask ({name}): " + ", ".join(f"{k} {v:.2f} ms" for k, v in costs.items()))
    return 0 if summary["all_outputs_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
