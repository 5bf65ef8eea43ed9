"""Typer options shared by every command (one definition, so help texts never drift apart)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LabOption = Annotated[str, typer.Option("--lab", help="Lab name from the registry (wue1, mue, ..., demo).")]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Folder holding lab-<id>/ folders, or a full study root with image_mapping.xlsx "
        "(default: $CFOSSTATS_DATA, then the fetch cache).",
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--lab-config", help="A lab registry file to use instead of the shipped one.")
]
OutOption = Annotated[Path, typer.Option("--out", help="Output folder (replaced atomically).")]
# Ranges are checked by the commands (one line, exit 2), not by Typer (a usage box).
JobsOption = Annotated[int, typer.Option("--jobs", help="Worker processes for per-image work (at least 1).")]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar="CFOSSTATS_SCHEDULER",
        help="Run the per-image work on a Dask cluster: a scheduler address (tcp://host:8786), or "
        "local[:N] for N worker processes here (needs cfosstats[distributed]; default: local processes).",
    ),
]

# Reviewer mode: published tables instead of images.
QuantificationOption = Annotated[
    Path | None,
    typer.Option(
        "--quantification",
        help="Per-image quantification table (cfosstats's quantification.csv, the study's source "
        "data, or any tidy table with --columns): analyse it instead of images.",
    ),
]
StatisticsOption = Annotated[
    Path | None,
    typer.Option(
        "--statistics",
        help="The study's statistics of that table (stat_results_*.csv): every number is compared.",
    ),
]
EffectSizesOption = Annotated[
    Path | None,
    typer.Option(
        "--effect-sizes",
        help="Published per-analysis statistics only (the study's Figure 4 workbook or a "
        "stat_results_*.csv): vote and variation from them.",
    ),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Column mapping for other tables: image=...,source=...,count=...,area=...,condition=... "
        "(optional region, intensity, experiment, animal, strategy, ensemble), or a TOML file.",
    ),
]
StrategiesOption = Annotated[
    str | None,
    typer.Option("--strategies", help="Analysis-name regex -> strategy: 'ens_=consensus_ensembles,...'."),
]
PresetOption = Annotated[
    str | None,
    typer.Option("--preset", help="Analysis settings: segebarth2020 (the study's rules) or cfosstats."),
]
