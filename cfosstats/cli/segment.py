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


FoldsOption = Annotated[
    int | None, typer.Option("--folds", help="Number of cross-validation folds k (default: the lab's).")
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
    folds: FoldsOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Fixes the weights and all sampling.")] = 0,
    split_seed: Annotated[
        int | None,
        typer.Option(
            "--split-seed", help="Fixes the test set and the folds (default: --seed).", show_default=False
        ),
    ] = None,
    replicate: Annotated[
        int,
        typer.Option("--replicate", help="Replicate number: n > 1 adds _r<n> to the models' names."),
    ] = 1,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="Fine-tune from a library model (wue1/consensus_ensemble: fold k from member k, "
            "cycling; one model: every fold from it) instead of random weights.",
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps per model.")] = 2000,
    fold: Annotated[
        list[int] | None,
        typer.Option("--fold", help="Train only this fold (1..k); repeatable. Default: all."),
    ] = None,
    base: Annotated[int, typer.Option("--base", help="U-Net channels at full resolution.")] = 16,
    tile: Annotated[int, typer.Option("--tile", help="Training tile side in pixels.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Tiles per step.")] = 4,
    threads: ThreadsOption = None,
    library: LibraryOption = None,
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
    if replicate < 1:
        raise InputError(None, f"--replicate must be at least 1, got {replicate}")
    found = read_lab(lab, data, lab_config)
    start = None
    if init is not None:
        from cfosstats.segment.library import load_model  # lazy

        start = load_model(init, library)  # verifies every checksum before hours of training
    # A library root receives <lab>/<model> files (e.g. data/models): foreign files are kept.
    check_output(out, lab_inputs(found), foreign_ok=True)
    config = TrainConfig(base=base, tile=tile, batch_size=batch_size, threads=_threads(threads))
    cards = train_lab(
        found, strategy, out, k=folds, seed=seed, split_seed=split_seed, replicate=replicate, init=start,
        steps=steps, folds=fold or None, config=config,
    )  # fmt: skip
    console = Console()
    for card in cards:
        verdict = card.get("selection", {}).get("verdict", "")
        console.print(f"{card['name']}: {verdict} -> {Path(out) / card['name']}.json", markup=False)
        if card.get("kind") == "ensemble" and card["selection"].get("rejected"):
            console.print(f"  left out (rejected): {', '.join(card['selection']['rejected'])}", markup=False)
    if strategy == "consensus" and not any(c.get("kind") == "ensemble" for c in cards):
        console.print("no ensemble written yet: a fold is missing, or no member passed", markup=False)


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


def validate(
    lab: LabOption,
    model: Annotated[
        str,
        typer.Option(
            "--model", help="Library model applied unchanged (frozen), e.g. wue1/consensus_ensemble."
        ),
    ],
    normalisation: Annotated[
        str,
        typer.Option(
            "--normalisation",
            help="'lab': input statistics of each fold's training images of this lab (what fine-tuning "
            "starts from); 'model': the model's own.",
        ),
    ] = "lab",
    folds: FoldsOption = None,
    split_seed: Annotated[int, typer.Option("--split-seed", help="The split's seed (as in train).")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for folds.csv, summary.csv and run.json.")
    ] = None,
    library: LibraryOption = None,
    data: DataOption = None,
    lab_config: ConfigOption = None,
) -> None:
    """Frozen transfer: apply a library model unchanged to a lab, fold by fold, and judge each
    fold's validation images by the study's selection rule. Nothing is trained."""
    import json

    from cfosstats.core.atomic import atomic_dir, write_csv, write_text  # lazy
    from cfosstats.core.hashing import sha256_file  # lazy
    from cfosstats.segment.library import load_model  # lazy
    from cfosstats.segment.transfer import NORMALISATIONS, frozen_validation  # lazy
    from cfosstats.stats.fold_tables import variant_summary

    if normalisation not in NORMALISATIONS:
        raise InputError(
            None, f"--normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation}"
        )
    if folds is not None and folds < 2:
        raise InputError(None, f"--folds must be at least 2, got {folds}")
    found = read_lab(lab, data, lab_config)
    stored = load_model(model, library)
    if out is not None:
        check_output(out, lab_inputs(found))
    table = frozen_validation(found, stored, k=folds, split_seed=split_seed, normalisation=normalisation)
    summary = variant_summary(table)
    console = Console()
    shown = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for column in ("fold", "model", "image", "F1", "worst annotator", "best annotator", "passed"):
        shown.add_column(column, no_wrap=True)
    for r in table.itertuples():
        worst = f"{r.worst_annotator_f1:.3f} ({r.worst_annotator})"
        best = f"{r.best_annotator_f1:.3f} ({r.best_annotator})"
        shown.add_row(
            str(r.fold), r.model, r.image_id, f"{r.model_f1:.3f}", worst, best, "yes" if r.passed else "no"
        )
    console.print(shown)
    for r in summary.itertuples():
        console.print(
            f"frozen {stored.name} on {found.name}: {r.n_folds_passed}/{r.n_folds} folds pass; median "
            f"out-of-fold F1 {r.model_f1_median:.3f} (annotators {r.annotator_f1_median:.3f})",
            markup=False,
        )
    if out is not None:
        record = {
            "lab": found.name,
            "model": stored.name,
            "model_card_sha256": sha256_file(stored.path),
            "variant": "frozen",
            "normalisation": normalisation,
            "folds": int(table["fold"].max()) if not table.empty else 0,
            "split_seed": split_seed,
        }
        with atomic_dir(out, "validate") as tmp:
            write_csv(tmp / "folds.csv", table)
            write_csv(tmp / "summary.csv", summary)
            write_text(tmp / "run.json", json.dumps(record, indent=2) + "\n")


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
    for column in ("strategy", "init", "fold", "steps", "verdict", "passed", "MB"):
        table.add_column(column, no_wrap=True)
    for row in listing.itertuples():
        n_members = len(row.members.split(", ")) if row.members else 0
        fold = "" if row.fold is None or row.fold != row.fold else str(int(row.fold))
        table.add_row(
            row.name,
            str(row.strategy or ""),
            str(row.initialization or ""),
            f"{n_members} members" if row.kind == "ensemble" else fold,
            "" if row.steps is None else str(row.steps),
            str(row.verdict or ""),
            str(row.validation_passed or ""),
            "" if row.size_mb is None else f"{row.size_mb:.1f}",
        )
    console.print(table)
