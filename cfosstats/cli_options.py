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
JobsOption = Annotated[int, typer.Option("--jobs", min=1, help="Worker processes for per-image work.")]
