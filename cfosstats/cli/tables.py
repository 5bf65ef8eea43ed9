"""``cfosstats effects --quantification FILE`` / ``--effect-sizes FILE``: reviewer mode on the CLI.

:func:`tables_effects_command` reads a published table, shows what was read (analyses per
strategy, images per group, as ``inspect`` does), runs :func:`cfosstats.analyses.published.analyse_set`
and writes every table, ``run.json`` (with the preset) and, where the study's statistics are
given, ``reproduction.csv`` into ``--out``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cfosstats.analyses.published import AnalysisSet, analyse_set
from cfosstats.analyses.reviewer import run_record
from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.outputs import check_output

__all__ = ["read_lines", "tables_effects_command"]


def read_lines(result) -> list[str]:
    """What was read, in a few lines: analyses per strategy and images per group.

    Examples
    --------
    >>> import pandas as pd
    >>> from types import SimpleNamespace
    >>> q = pd.DataFrame({"source": ["a", "b", "a"], "strategy": ["expert_models"] * 3,
    ...     "image_id": ["1", "1", "2"], "group": ["H", "H", "C+"], "region": "CA1"})
    >>> print("\\n".join(read_lines(SimpleNamespace(tables={"quantification": q}))))
    analyses: 2 expert models
    images per group: H 1, C+ 1; regions: CA1
    """
    tables = result.tables
    frame = tables["quantification"] if "quantification" in tables else tables["effects"]
    if "quantification" not in tables:
        frame = frame[frame["comparison"] != "all"]
    per_strategy = frame.groupby("strategy", sort=False)["source"].nunique()
    lines = ["analyses: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in per_strategy.items())]
    if "quantification" in tables:
        groups = frame.groupby("group", sort=False)["image_id"].nunique()
        regions = ", ".join(sorted(frame["region"].unique()))
        lines.append(
            "images per group: " + ", ".join(f"{g} {n}" for g, n in groups.items()) + f"; regions: {regions}"
        )
    else:
        n_effects = len(frame.groupby(["region", "readout", "comparison"]))
        lines.append(f"effects: {n_effects} (published statistics only: no per-image values)")
    return lines


def tables_effects_command(
    config,
    out: Path,
    *,
    quantification: Path | None = None,
    statistics: Path | None = None,
    effect_sizes: Path | None = None,
    variation: Path | None = None,
    columns: str | None = None,
    strategies: str | None = None,
    settings=None,
    alpha: float = 0.05,
    echo=print,
):
    """Analyse published tables and write the tables; print what was read and each call.

    Raises
    ------
    InputError
        A bad table (one line naming the file, line and column), or an ``--out`` over an input.
    """
    inputs = [p for p in (quantification, statistics, effect_sizes, variation) if p is not None]
    if quantification is None and effect_sizes is None:
        raise InputError(None, "give --quantification FILE or --effect-sizes FILE")
    check_output(out, inputs)
    name = (quantification or effect_sizes).stem
    analysis_set = AnalysisSet(name, name, quantification, statistics, effect_sizes, variation)
    result = analyse_set(analysis_set, config, settings, alpha, columns=columns, strategies=strategies)
    run = run_record(config, result.settings, alpha, result.inputs, result.tables)
    with atomic_dir(out, "effects") as tmp:
        for table_name, table in result.tables.items():
            write_csv(tmp / f"{table_name}.csv", table)
        write_text(tmp / "run.json", json.dumps(run, indent=2, default=str) + "\n")
    for line in read_lines(result):
        echo(line)
    echo(f"preset: {result.settings.name}")
    for row in result.tables["reproducibility"].itertuples(index=False):
        echo(f"{row.region} {row.readout} {row.comparison}: {row.majority_call} -- {row.summary}")
    summary = result.tables.get("reproduction_summary")
    if summary is not None and len(summary):
        n, equal = int(summary["n_published"].sum()), int(summary["n_equal"].sum())
        echo(f"published statistics reproduced: {equal}/{n} values (largest difference "
             f"{summary['max_abs_difference'].max():.2g})")  # fmt: skip
    echo(f"tables written to {out}")
    return result
