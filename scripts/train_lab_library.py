"""Train the model library of the study's external labs (mue, inns1, inns2, wue2) the way the study
compared transfer strategies (its Table 1): per lab, k = 5 folds over the 5 annotated images (one
validation image per fold, no test set),

1. ``scratch``: one consensus model per fold from random weights;
2. ``fine-tuned``: the same folds, fold k starting from member k of ``wue1/consensus_ensemble``
   (cycling over its members);
3. ``frozen``: ``wue1/consensus_ensemble``'s members applied unchanged (``cfosstats validate``).

The variant with the higher median out-of-fold F1 against the estimated ground truth is shipped
as ``data/models/<lab>/`` (its fold models and its ensemble of the members that passed the
selection rule); ``data/models/<lab>/TRAINING.md`` records the commands, wall times and the
fold table of all three variants.

Run by hand from the repository root (about 15 minutes per lab on 2 cores with bf16)::

    python scripts/train_lab_library.py --labs mue inns1 inns2 wue2

Everything is trained into ``build/library/<variant>/`` first; a lab's folder in ``data/models``
is replaced only when all its models exist.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cfosstats.datasets.discover import load_lab
from cfosstats.segment.library import load_model, read_card
from cfosstats.segment.transfer import frozen_validation
from cfosstats.stats.fold_tables import card_folds, variant_summary

INIT = "wue1/consensus_ensemble"
VARIANTS = ("scratch", "fine-tuned")


def run(command: list[str]) -> float:
    """Run a cfosstats command, return its wall time in seconds."""
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def train_variant(lab: str, variant: str, args, stage: Path) -> tuple[list[str], float]:
    command = [
        "cfosstats", "train", "--lab", lab, "--data", str(args.data), "--strategy", "consensus",
        "--seed", str(args.seed), "--base", str(args.base), "--out", str(stage),
        "--steps", str(args.steps if variant == "scratch" else args.fine_tune_steps),
    ]  # fmt: skip
    if variant == "fine-tuned":
        command += ["--init", INIT]
    return command, run(command)


def fold_table_markdown(folds: pd.DataFrame) -> str:
    lines = [
        "| variant | fold | model | validation image | F1 vs est_GT | worst annotator F1 | "
        "best annotator F1 | passed |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in folds.itertuples():
        lines.append(
            f"| {r.variant} | {r.fold} | {r.model} | {r.image_id} | {r.model_f1:.3f} | "
            f"{r.worst_annotator_f1:.3f} ({r.worst_annotator}) | "
            f"{r.best_annotator_f1:.3f} ({r.best_annotator}) | "
            f"{'yes' if r.passed else 'no'} |"
        )
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| variant | folds passed | median out-of-fold F1 | median annotator F1 | worst | best |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.variant} | {r.n_folds_passed}/{r.n_folds} | {r.model_f1_median:.3f} | "
            f"{r.annotator_f1_median:.3f} | {r.worst_annotator_f1_median:.3f} | "
            f"{r.best_annotator_f1_median:.3f} |"
        )
    return "\n".join(lines)


def train_lab_library(lab_name: str, args) -> None:
    lab = load_lab(lab_name, data=args.data)
    timings, commands, tables = {}, {}, []
    for variant in VARIANTS:
        stage = args.stage / variant
        if (stage / lab_name).exists():
            shutil.rmtree(stage / lab_name)  # our own staging folder: a clean retrain
        commands[variant], timings[variant] = train_variant(lab_name, variant, args, stage)
        cards = [read_card(p) for p in sorted((stage / lab_name).glob("consensus_model_*.json"))]
        tables.append(card_folds(cards, variant))
    frozen_command = ["cfosstats", "validate", "--lab", lab_name, "--data", str(args.data), "--model", INIT]
    start = time.perf_counter()
    tables.append(frozen_validation(lab, load_model(INIT)))
    timings["frozen"] = time.perf_counter() - start
    commands["frozen"] = frozen_command
    folds = pd.concat(tables, ignore_index=True)
    summary = variant_summary(folds)
    trained = summary[summary["variant"].isin(VARIANTS)].set_index("variant")
    shipped = str(trained["model_f1_median"].idxmax())
    source = args.stage / shipped / lab_name
    if not (source / "consensus_ensemble.json").is_file():
        raise SystemExit(f"{lab_name}: no member of the {shipped} variant passed; nothing to ship")
    target = Path("data/models") / lab_name
    staged = target.with_name(f".{lab_name}.new")
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(source, staged)
    folds.to_csv(staged / "folds.csv", index=False)
    (staged / "TRAINING.md").write_text(
        training_notes(lab_name, commands, timings, folds, summary, shipped), encoding="utf-8"
    )
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
    print(summary.to_string(index=False), flush=True)


def training_notes(lab, commands, timings, folds, summary, shipped) -> str:
    ensemble = json.loads((Path("data/models") / f".{lab}.new" / "consensus_ensemble.json").read_text())
    rejected = ensemble["selection"].get("rejected", [])
    return (
        f"""# How the lab-{lab} library was trained

Trained on {time.strftime("%Y-%m-%d")} by `scripts/train_lab_library.py` (cfosstats, torch, the
2-core development CPU with bf16) on the real lab-{lab} training data: 5 images, k = 5 folds, one
validation image per fold, no test set (as the study did). Targets: the published estimated
ground truth. Selection rule: F1 against est_GT at least the worst annotator's on the fold's
validation image.

## Commands and wall times

| variant | command | wall s |
| --- | --- | ---: |
"""
        + "\n".join(
            f"| {v} | `{shlex.join(commands[v])}` | {timings[v]:.0f} |" for v in (*VARIANTS, "frozen")
        )
        + f"""

`frozen` trains nothing: fold k is predicted by member k of `{INIT}` (cycling), with the input
statistics of fold k's training images (what fine-tuning starts from).

## Out-of-fold validation, all variants

{fold_table_markdown(folds)}

## Per variant

{summary_markdown(summary)}

Shipped: the **{shipped}** variant (higher median out-of-fold F1 of the two trained variants), as
`{lab}/consensus_ensemble` of its members that passed
({", ".join(ensemble["members"])}){"; left out (rejected): " + ", ".join(rejected) if rejected else ""}.
"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", nargs="+", default=["mue", "inns1", "inns2", "wue2"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train_data"))
    parser.add_argument("--steps", type=int, default=800, help="optimiser steps from scratch")
    parser.add_argument("--fine-tune-steps", type=int, default=400, help="optimiser steps fine-tuning")
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", type=Path, default=Path("build/library"))
    args = parser.parse_args()
    for lab in args.labs:
        train_lab_library(lab, args)


if __name__ == "__main__":
    sys.exit(main())
