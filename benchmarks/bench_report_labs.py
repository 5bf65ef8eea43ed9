"""Benchmark: ``cfosstats report --lab LAB --data ROOT`` cold, per lab, against a baseline commit.

Each run is a fresh ``python -P -m cfosstats report`` process writing into a new, empty output
folder (nothing cached: every step, figure and render is computed), for this checkout and for a
baseline commit (``git archive`` unpacked into a temporary folder, with that commit's own model
library), interleaved lab by lab. It prints each wall time, the ratio new / baseline and whether
the new run is under the target (3 minutes per lab, the issue's bar), and writes
``benchmarks/results/report_labs/runs.csv`` and ``summary.json``.

Usage::

    python benchmarks/bench_report_labs.py [--data ../shared/data/train_data]
        [--labs wue1 mue inns1 inns2 wue2] [--baseline-commit COMMIT] [--no-baseline]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import REPO, export_tree  # noqa: E402

TARGET_S = 180.0
LABS = ["wue1", "mue", "inns1", "inns2", "wue2"]


def run_report(tree: Path, lab: str, data: Path, out: Path) -> float:
    """Wall seconds of one cold report in a fresh process whose package is `tree`'s."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-P", "-m", "cfosstats", "report", "--lab", lab, "--data", str(data)]
    command += ["--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree.name} report --lab {lab} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train_data")
    parser.add_argument("--labs", nargs="+", default=LABS)
    parser.add_argument("--baseline-commit", default="6e73b30")
    parser.add_argument("--no-baseline", action="store_true", help="time this checkout only")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results" / "report_labs")
    args = parser.parse_args()
    data = args.data.resolve()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trees = {"new": REPO}
        if not args.no_baseline:
            trees["baseline"] = export_tree(args.baseline_commit, scratch)
        for lab in args.labs:
            for name, tree in trees.items():
                out = scratch / f"reports-{name}-{lab}"
                seconds = run_report(tree, lab, data, out)
                rows.append({"lab": lab, "tree": name, "seconds": round(seconds, 2)})
                print(f"{lab:6s} {name:8s} {seconds:7.1f} s", flush=True)
    summary = {"commit": commit, "baseline_commit": None if args.no_baseline else args.baseline_commit}
    summary["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    summary["target_s"] = TARGET_S
    summary["labs"] = {}
    print(f"\n{'lab':6s} {'new s':>8s} {'base s':>8s} {'new/base':>9s}  under {TARGET_S:.0f} s")
    for lab in args.labs:
        new = next(r["seconds"] for r in rows if r["lab"] == lab and r["tree"] == "new")
        base = next((r["seconds"] for r in rows if r["lab"] == lab and r["tree"] == "baseline"), None)
        ratio = None if base is None else round(new / base, 3)
        summary["labs"][lab] = {
            "new_s": new,
            "baseline_s": base,
            "ratio": ratio,
            "under_target": new < TARGET_S,
        }
        shown = "" if base is None else f"{base:8.1f} {ratio:9.2f}"
        print(f"{lab:6s} {new:8.1f} {shown:>18s}  {'yes' if new < TARGET_S else 'NO'}")
    args.results.mkdir(parents=True, exist_ok=True)
    with open(args.results / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["lab", "tree", "seconds"])
        writer.writeheader()
        writer.writerows(rows)
    (args.results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
