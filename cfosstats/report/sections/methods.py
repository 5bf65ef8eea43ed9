"""Methods and provenance: everything needed to rerun the report and to check its inputs.

Reads ``tables/manifest.json``, ``tables/inputs.csv``, the lab registry entry, model cards or
``simulation.json``, the steps' ``warnings`` tables, package versions, parameters and the
command line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cfosstats.core.hashing import sha256_bytes, sha256_file
from cfosstats.core.version import __version__
from cfosstats.datasets.summary import lab_summary
from cfosstats.report.document import Code, Note, Section, Table, Text
from cfosstats.report.figures import strategy_label
from cfosstats.report.provenance import environment_summary, git_commit, package_versions
from cfosstats.report.text import (
    MAX_TABLE_ROWS,
    listing,
    short_source,
)


def methods_section(results) -> Section:
    """Every parameter, the registry entry, checksums, models, versions, command line, date."""
    lab = results.lab
    params = results.parameters
    section = Section(
        "methods",
        "Methods and provenance",
        "Everything needed to rerun this report exactly and to check that its inputs are the ones "
        "described here.",
    )
    sub = section.sub("rerun", "How to rerun it")
    commit = git_commit()
    data_hint = "" if lab.config.simulated else f" --data {Path(lab.root).parent}"
    sub.add(Text("The command that produced this report, and the software it ran on:"))
    sub.add(
        Code(
            f"{params['command']}\n# installed: cfosstats {_version()}"
            + (f" (git {commit})" if commit else "")
            + f"\n# lab data: {lab.root}"
            + (f" (pass{data_hint})" if data_hint else ""),
            "bash",
        )
    )
    sub.add(
        Text(
            "A second identical run reuses every result whose inputs are unchanged: each analysis step is "
            "keyed by the SHA-256 of its input files, the lab's registry entry, its parameters and the "
            "cfosstats version (`tables/manifest.json`)."
        )
    )
    env = environment_summary()
    if env:
        sub.add(
            Table(
                "environment",
                "Environment variables that locate data",
                pd.DataFrame({"variable": list(env), "value": list(env.values())}),
            )
        )

    sub = section.sub("parameters", "Parameters")
    run = results.runs.get("effects", {})
    rows = [
        ("label", lab.config.label, "label name in the mask files"),
        (
            "minimum object size",
            f"{lab.config.min_object_size} px",
            "smaller 8-connected objects are not counted",
        ),
        (
            "pixel size",
            f"{lab.config.pixel_size_px_per_um} px/µm" if lab.config.pixel_size_px_per_um else "unknown",
            "densities per mm² need it",
        ),
        (
            "IoU threshold",
            f"> {params['threshold']}" if params["criterion"] == "gt" else f">= {params['threshold']}",
            "a matched pair of objects is a true positive",
        ),
        ("object matching", "one-to-one, maximum summed IoU", "as in the study"),
        (
            "estimated ground truth",
            "published est_GT where present, else STAPLE (threshold 0.5)",
            "SimpleITK STAPLE",
        ),
        ("alpha", params["alpha"], "family-wise, Bonferroni over pairwise comparisons"),
        ("outlier test", "two-sided Grubbs, alpha 0.05", "reported, never removed"),
        (
            "excluded images",
            listing(params["exclude"] + list(lab.config.exclude))
            if params["exclude"] or lab.config.exclude
            else "none",
            "registry exclusion list and --exclude",
        ),
    ]
    if run:
        rows += [
            ("groups", listing(run.get("groups", []), 12), run.get("grouping_note", "")),
            ("levels of analysis", listing(run.get("levels", [])), "image; animal means; mixed model"),
            (
                "bootstrap",
                f"{run.get('n_boot', '–')} resamples, seed {run.get('seed', '–')}",
                "confidence intervals of eta²",
            ),
            (
                "voting strategies",
                listing([strategy_label(s) for s in run.get("voting_strategies", [])], 10),
                run.get("vote_rule", ""),
            ),
            ("in-sample predictions", "left out of the tests", run.get("in_sample_policy", "")),
        ]
    rows += [
        ("worker processes", params["jobs"], "does not change results"),
        ("engine", params["engine"], "pandoc (bundled) or quarto"),
        ("random seeds", _seeds(results), "every random draw is seeded"),
    ]
    sub.add(
        Table(
            "parameters",
            "Every parameter of the analysis",
            pd.DataFrame(rows, columns=["parameter", "value", "meaning"]),
        )
    )

    sub = section.sub("registry", "Lab registry entry")
    source = lab.config.source
    if source is not None and Path(source).is_file():
        sub.add(Text(f"`{Path(source).name}` (SHA-256 `{sha256_file(source)[:16]}…`):"))
        sub.add(Code(Path(source).read_text(encoding="utf-8").strip(), "toml"))
    else:
        sub.add(Code(json.dumps(lab.config.as_dict(), indent=1, default=str), "json"))

    sub = section.sub("data", "Data")
    summary = lab_summary(lab)
    sub.add(
        Table(
            "data",
            f"What was found in {lab.root}",
            pd.DataFrame({"item": list(summary), "found": list(summary.values())}),
        )
    )
    inputs = results.inputs
    if inputs is not None and not inputs.empty:
        grouped = (
            inputs.groupby("group", sort=False)
            .agg(files=("file", "size"), bytes=("bytes", "sum"), digests=("sha256", lambda s: "".join(s)))
            .reset_index()
        )
        grouped["combined SHA-256"] = grouped["digests"].map(lambda s: sha256_bytes(s.encode())[:16])
        grouped["size"] = grouped["bytes"].map(_size)
        grouped = grouped.drop(columns=["digests", "bytes"]).rename(columns={"group": "input files"})
        grouped["input files"] = grouped["input files"].map(_short_group)
        sub.add(
            Table(
                "inputs",
                "Input files by group: the SHA-256 of each file is in the CSV; the combined "
                "value is the SHA-256 of the files' digests in name order",
                grouped.head(60),
                "tables/inputs.csv",
            )
        )

    sub = section.sub("models", "Models")
    sub.add(*_model_blocks(results))

    sub = section.sub("steps", "Analysis steps")
    manifest = read_manifest(results.folder)
    rows = []
    for name, record in results.steps.items():
        stored = manifest.get(name, {})
        rows.append(
            {
                "step": name,
                "computed": str(stored.get("created", "–"))[:16].replace("T", " ")
                if record.status != "skipped"
                else "–",
                "seconds": stored.get("seconds", np.nan) if record.status != "skipped" else np.nan,
                "cache key": (record.key or stored.get("key", ""))[:12] or "–",
                "note": f"skipped: {record.reason}" if record.status == "skipped" else "",
            }
        )
    sub.add(
        Table(
            "steps",
            "Analysis steps: when each result was computed, and its cache key",
            pd.DataFrame(rows),
            "tables/manifest.json",
        )
    )
    warnings = warnings_table(results)
    if warnings is not None:
        sub.add(warnings)

    sub = section.sub("software", "Software")
    versions = package_versions()
    sub.add(
        Table(
            "software",
            "Package versions",
            pd.DataFrame({"package": list(versions), "version": list(versions.values())}),
        )
    )
    return section


def _version() -> str:
    return __version__


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _short_group(group: str) -> str:
    if ": " in group:
        strategy, name = group.split(": ", 1)
        return f"{short_source(name)} ({strategy.replace('_', ' ')[:-1]})"
    return group


def _seeds(results) -> str:
    parts = []
    simulation = Path(results.lab.root) / "simulation.json"
    if simulation.is_file():
        with open(simulation, encoding="utf-8") as handle:
            seed = json.load(handle).get("parameters", {}).get("seed")
        if seed is not None:
            parts.append(f"simulation {seed}")
    run = results.runs.get("effects", {})
    if "seed" in run:
        parts.append(f"bootstrap {run['seed']}")
    seeds = sorted({str(c.get("seed")) for c in results.model_cards if c.get("seed") is not None})
    if seeds:
        parts.append("model training " + ", ".join(seeds))
    parts.append("figure jitter 1")
    return "; ".join(parts)


def _model_blocks(results) -> list:
    lab = results.lab
    blocks: list = []
    if results.model_cards:
        rows = []
        for card in results.model_cards:
            selection = card.get("selection") or {}
            rows.append(
                {
                    "model": card.get("name"),
                    "kind": card.get("kind", "model"),
                    "strategy": card.get("strategy"),
                    "fold": card.get("fold"),
                    "trained on": card.get("target"),
                    "selection": selection.get("verdict", "–")
                    if isinstance(selection, dict)
                    else str(selection),
                    "SHA-256 (weights)": str(card.get("sha256") or "–")[:16],
                    "training data SHA-256": str(card.get("training_data_sha256") or "–")[:16],
                    "created": card.get("created", "–"),
                }
            )
        blocks.append(
            Text(
                "Model cards of the pretrained library used for the predictions (full cards in "
                "`data/models/`; each prediction's settings in "
                "`tables/predictions/<lab>/uncertainty/.../prediction.json`)."
            )
        )
        blocks.append(Table("model-cards", "Models of the library", pd.DataFrame(rows)))
    elif results.skipped("predictions"):
        blocks.append(Note(f"Pretrained library: {results.skipped('predictions')}.", level="info"))
    simulation = Path(lab.root) / "simulation.json"
    predicted = [s for s in lab.label_sources.values() if s.is_prediction]
    if predicted:
        counts = pd.Series([s.strategy for s in predicted]).value_counts()
        blocks.append(
            Text(
                "Predicted label sets found in the data: "
                + listing([f"{n} {strategy_label(s)}" for s, n in counts.items()])
                + "."
            )
        )
    if simulation.is_file():
        with open(simulation, encoding="utf-8") as handle:
            record = json.load(handle)
        params = record.get("parameters", {})
        blocks.append(
            Text(
                "These data are **simulated** (`cfosstats simulate`): annotators and models are "
                "simulated labellers with known biases; the planted effect is known. Parameters:"
            )
        )
        blocks.append(
            Table(
                "simulation",
                "Simulation parameters (`simulation.json`)",
                pd.DataFrame({"parameter": list(params), "value": [str(v) for v in params.values()]}),
            )
        )
    return blocks or [Note("No models: the data holds no predictions and the library no models of this lab.")]


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "tables" / "manifest.json").read_text(encoding="utf-8")).get(
            "steps", {}
        )
    except (OSError, ValueError):
        return {}


def warnings_table(results) -> Table | None:
    frames = []
    for step in ("objectivity", "groundtruth", "effects"):
        table = results.table(step, "warnings")
        if table is not None and len(table) and "message" in table.columns:
            frames.append(table.assign(step=step))
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    # Group repeated messages: the same text for many label sets reads as one line.
    table["message"] = table["message"].astype(str)
    pattern = re.compile(r"\s+")
    table["message"] = table["message"].map(lambda s: pattern.sub(" ", s))
    grouped = (
        table.groupby(["step", "message"], sort=False)
        .agg(
            where=(
                "source",
                lambda s: (
                    listing(sorted({short_source(x) for x in s.dropna().astype(str) if x}), 4)
                    if s.dropna().astype(str).str.len().gt(0).any()
                    else "–"
                ),
            )
            if "source" in table.columns
            else ("message", "size"),
            count=("message", "size"),
        )
        .reset_index()
    )
    return Table(
        "warnings",
        "Warnings of the analysis steps (identical messages grouped)",
        grouped[["step", "message", "where", "count"]].head(MAX_TABLE_ROWS),
    )
