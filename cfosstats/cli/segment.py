"""The segmentation commands: ``train``, ``predict`` and ``models``.

Each function takes the command-line arguments (Typer reads the ``Annotated`` options) and raises
`InputError` for bad input; ``cfosstats.cli.app`` wires them in with its error handler::

    app.command("train")(reports_input_errors(commands.train))
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cfosstats.cli.common import on_scheduler, read_lab
from cfosstats.cli.options import ConfigOption, DataOption, LabOption, SchedulerOption
from cfosstats.core.errors import InputError
from cfosstats.core.outputs import check_output, lab_inputs, mark

# lazy: torch (2 s) and the modules that import it are imported inside the commands.

LibraryOption = Annotated[
    Path | None, typer.Option("--library", help="Model library folder (default: the shipped data/models).")
]


ThreadsOption = Annotated[
    int | None,
    typer.Option("--threads", help="torch CPU threads (default: torch's, one per core).", show_default=False),
]


def _threads(threads: int | None) -> int | None:
    if threads is not None and threads < 1:
        raise InputError(None, f"--threads must be at least 1, got {threads}")
    return threads


def train(
    lab: LabOption,
    out: Annotated[
        Path, typer.Option("--out", help="Library folder to write <lab>/<model>.json + .pt into.")
    ],
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", help="'consensus' (estimated ground truth) or an annotator, e.g. expert_1."
        ),
    ] = "consensus",
    folds: Annotated[
        int | None, typer.Option("--folds", help="Number of cross-validation folds k (default: the lab's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Fixes the split, the weights and all sampling.")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps per model.")] = 2000,
    fold: Annotated[
        list[int] | None,
        typer.Option("--fold", help="Train only this fold (1..k); repeatable. Default: all."),
    ] = None,
    base: Annotated[int, typer.Option("--base", help="U-Net channels at full resolution.")] = 16,
    tile: Annotated[int, typer.Option("--tile", help="Training tile side in pixels.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Tiles per step.")] = 4,
    threads: ThreadsOption = None,
    data: DataOption = None,
    lab_config: ConfigOption = None,
) -> None:
    """Train one U-Net per fold (stratified k-fold after a test hold-out), validate, and save.

    Each fold's model is validated on its held-out fold with the study's selection rule and
    written with its card as soon as it is done; with strategy 'consensus' the ensemble card
    follows once every fold exists.
    """
    from cfosstats.segment.pipeline import train_lab  # lazy
    from cfosstats.segment.train import TrainConfig  # lazy

    if steps < 2:
        raise InputError(None, f"--steps must be at least 2, got {steps}")
    if folds is not None and folds < 2:
        raise InputError(None, f"--folds must be at least 2, got {folds}")
    if base < 1 or batch_size < 1 or tile < 16 or tile % 16:
        raise InputError(None, "--base and --batch-size must be positive, --tile a multiple of 16")
    found = read_lab(lab, data, lab_config)
    # A library root receives <lab>/<model> files (e.g. data/models): foreign files are kept.
    check_output(out, lab_inputs(found), foreign_ok=True)
    config = TrainConfig(base=base, tile=tile, batch_size=batch_size, threads=_threads(threads))
    cards = train_lab(
        found, strategy, out, k=folds, seed=seed, steps=steps, folds=fold or None, config=config
    )
    console = Console()
    for card in cards:
        verdict = card.get("selection", {}).get("verdict", "")
        console.print(f"{card['name']}: {verdict} -> {Path(out) / card['name']}.json", markup=False)


def predict(
    lab: LabOption,
    model: Annotated[
        str, typer.Option("--model", help="Library name (wue1/consensus_ensemble) or card path.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Data root to write lab-<id>/labels/... and uncertainty/ into.")
    ],
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Average the four flips (4x slower).")] = False,
    precision: Annotated[str, typer.Option("--precision", help="auto, bf16 or fp32.")] = "auto",
    tile: Annotated[int, typer.Option("--tile", help="Prediction tile side (multiple of 16).")] = 1024,
    overlap: Annotated[int, typer.Option("--overlap", help="Tile overlap (multiple of 16).")] = 128,
    image: Annotated[
        list[str] | None, typer.Option("--image", help="Predict only this image; repeatable.")
    ] = None,
    library: LibraryOption = None,
    threads: ThreadsOption = None,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Predict a lab's images: binary masks in the study label layout, uncertainty maps and a
    per-image review ranking (uncertainty.csv). Only the images are needed."""
    from cfosstats.segment.pipeline import predict_lab  # lazy
    from cfosstats.segment.predict import Settings  # lazy

    if precision not in ("auto", "bf16", "fp32"):
        raise InputError(None, f"--precision must be auto, bf16 or fp32, got {precision}")
    if tile < 16 or tile % 16 or overlap < 0 or overlap % 16 or overlap >= tile:
        raise InputError(None, "--tile and --overlap must be multiples of 16 with 0 <= overlap < tile")
    found = read_lab(lab, data, lab_config)
    check_output(out, lab_inputs(found))
    settings = Settings(
        tile=tile, overlap=overlap, tta=tta, precision=precision, threads=_threads(threads) or 0
    )
    with on_scheduler(scheduler, 1):
        table = predict_lab(found, model, out, settings, image_ids=image or None, model_library=library)
    mark(out, "predict")  # later predictions may add to this data root
    console = Console()
    console.print(f"{len(table)} images predicted into {Path(out) / found.config.folder}", markup=False)
    if not table.empty:
        top = table.head(5)
        console.print(
            "review first: " + ", ".join(f"{r.image_id} ({r.review_score:.3f})" for r in top.itertuples())
        )


def models(library: LibraryOption = None) -> None:
    """List the models in the library: name, strategy, fold, steps, selection verdict and counts, size."""
    from cfosstats.segment.library import list_models  # lazy

    listing = list_models(library)
    console = Console()
    if listing.empty:
        console.print(f"no models in {library or 'the shipped library'}", markup=False)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    # Names must stay whole (they are what `predict --model` takes); other columns may wrap.
    table.add_column("name", no_wrap=True, min_width=int(listing["name"].str.len().max()))
    for column in ("strategy", "fold", "steps", "verdict", "passed", "MB"):
        table.add_column(column, no_wrap=True)
    for row in listing.itertuples():
        n_members = len(row.members.split(", ")) if row.members else 0
        fold = "" if row.fold is None or row.fold != row.fold else str(int(row.fold))
        table.add_row(
            row.name,
            str(row.strategy or ""),
            f"{n_members} members" if row.kind == "ensemble" else fold,
            "" if row.steps is None else str(row.steps),
            str(row.verdict or ""),
            str(row.validation_passed or ""),
            "" if row.size_mb is None else f"{row.size_mb:.1f}",
        )
    console.print(table)
