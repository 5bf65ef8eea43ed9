"""The data commands: ``labs``, ``inspect``, ``fetch`` and ``simulate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cfosstats.cli.common import check_jobs, check_out, console, read_lab
from cfosstats.cli.options import ConfigOption, DataOption, JobsOption, LabOption
from cfosstats.core.errors import InputError

# lazy: library modules are imported inside the commands, to keep start-up fast.


def labs() -> None:
    """List the labs in the registry."""
    from cfosstats.datasets.registry import available_labs, load_lab_config  # lazy

    table = Table("lab", "label", "min size (px)", "px/µm", "conditions (control first)", "annotators")
    for name in available_labs():
        cfg = load_lab_config(name)
        table.add_row(
            name,
            cfg.label,
            str(cfg.min_object_size),
            "" if cfg.pixel_size_px_per_um is None else f"{cfg.pixel_size_px_per_um:g}",
            ", ".join(cfg.conditions),
            ", ".join(cfg.annotators),
        )
    console.print(table)


def inspect(
    lab: LabOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors (exit 2).")] = False,
) -> None:
    """Show what was found for a lab: images, annotators, label sources, conditions, problems.

    Every file is read once, so corrupt files and masks of the wrong shape are found here.
    """
    from cfosstats.datasets.summary import lab_summary  # lazy

    found = read_lab(lab, data, lab_config)
    with console.status(f"reading {len(found.image_ids)} images and their masks"):
        problems = found.validate()
    summary = Table(title=f"lab {found.name}: {found.root}", show_header=False)
    for key, value in lab_summary(found).items():
        summary.add_row(key, value)
    console.print(summary)
    sources = found.sources_table()
    if not sources.empty:
        table = Table("label source", "strategy", "masks", title="label sources")
        for row in sources.itertuples(index=False):
            table.add_row(row.name, row.strategy, str(row.n_masks))
        console.print(table)
    if problems:
        console.print(f"problems: {len(problems)}")
        for problem in problems:
            console.print(f"  {problem.severity}: {problem}", markup=False, soft_wrap=True)
    else:
        console.print("problems: none")
    errors = [p for p in problems if p.severity == "error" or strict]
    if errors:
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InputError(None, f"{errors[0]}{more}")


def fetch(
    lab: LabOption,
    source: Annotated[str | None, typer.Option(help="Registered source (github, dryad).")] = None,
    url: Annotated[str | None, typer.Option(help="Download this archive instead.")] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected SHA-256 of the archive.")] = None,
    archive: Annotated[
        Path | None, typer.Option(help="Use this local archive (e.g. bioimage_data.zip).")
    ] = None,
    insecure: Annotated[bool, typer.Option(help="Accept an archive with no known SHA-256.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Download a lab's public data into the cache (checksummed, resumable, safely unpacked)."""
    from cfosstats.datasets.fetch import fetch as fetch_lab  # lazy

    root = fetch_lab(
        lab,
        source=source,
        url=url,
        sha256=sha256,
        archive=archive,
        progress=progress,
        allow_unverified=insecure,
    )
    console.print(str(root), markup=False, soft_wrap=True)


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Data root to write the study into.")],
    lab: Annotated[str, typer.Option("--lab", help="Lab registry entry to model the study on.")] = "demo",
    lab_config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    effect: Annotated[
        float,
        typer.Option(help="Planted effect: the last condition's density and brightness x (1 + effect)."),
    ] = 0.5,
    animal_sd: Annotated[float, typer.Option(help="Between-animal SD of log density.")] = 0.15,
    n_animals: Annotated[int, typer.Option(help="Animals per condition (at least 1).")] = 4,
    images_per_animal: Annotated[int, typer.Option(help="Images per animal and area (at least 1).")] = 2,
    size: Annotated[int, typer.Option(help="Image side in pixels (at least 64).")] = 256,
    expert_models: Annotated[int, typer.Option(help="Models trained after each annotator.")] = 2,
    consensus_models: Annotated[int, typer.Option(help="Single models trained on est_GT.")] = 4,
    ensembles: Annotated[int, typer.Option(help="Consensus ensembles.")] = 2,
    ensemble_members: Annotated[
        int, typer.Option(help="Members per ensemble (at least 2; each is a label set too).")
    ] = 3,
    jobs: JobsOption = os.cpu_count() or 1,
) -> None:
    """Write a synthetic study (full study layout) with annotators and model predictions.

    Label sets: annotators, est_GT, expert models, consensus models, ensembles and their members;
    the same seed gives the same bytes whatever --jobs.
    """
    from cfosstats.datasets.registry import load_lab_config  # lazy
    from cfosstats.simulate.study import simulate_study  # lazy

    check_out(out)
    check_jobs(jobs)
    for name, value in (("--expert-models", expert_models), ("--consensus-models", consensus_models),
                        ("--ensembles", ensembles)):  # fmt: skip
        if value < 0:
            raise InputError(None, f"{name} must not be negative, got {value}")
    if ensembles and ensemble_members < 2:
        raise InputError(None, f"--ensemble-members must be at least 2, got {ensemble_members}")
    if effect <= -1:
        raise InputError(
            None, f"--effect must be greater than -1 (density and brightness x (1 + effect)), got {effect}"
        )
    if animal_sd < 0:
        raise InputError(None, f"--animal-sd must not be negative, got {animal_sd}")
    for name, value, least in (("--n-animals", n_animals, 1), ("--images-per-animal", images_per_animal, 1),
                               ("--size", size, 64)):  # fmt: skip
        if value < least:
            raise InputError(None, f"{name} must be at least {least}, got {value}")
    root = simulate_study(
        out,
        config=load_lab_config(lab, lab_config),
        seed=seed,
        effect=effect,
        animal_sd=animal_sd,
        n_animals=n_animals,
        images_per_animal=images_per_animal,
        size=size,
        progress=True,
        expert_models=expert_models,
        consensus_models=consensus_models,
        ensembles=ensembles,
        ensemble_members=ensemble_members,
        jobs=jobs,
    )
    console.print(f"simulated study written to {root}", markup=False, soft_wrap=True)
