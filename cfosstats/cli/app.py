"""The `cfosstats` command line: every command is a thin call into the library.

Bad input ends a command with one line on stderr naming the file and what is wrong, exit code 2,
and no traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cfosstats.cli import report as report_commands
from cfosstats.cli import segment as segment_commands
from cfosstats.cli.options import (
    ColumnsOption,
    ConfigOption,
    DataOption,
    EffectSizesOption,
    JobsOption,
    LabOption,
    OutOption,
    PresetOption,
    QuantificationOption,
    StatisticsOption,
    StrategiesOption,
)
from cfosstats.core.errors import InputError

app = typer.Typer(
    name="cfosstats",
    help="Is a treatment effect measured by deep-learning segmentation objective, reliable and valid?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    """Print one line to stderr and exit with code 2."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code=2)


def reports_input_errors(command):
    """Turn `InputError` (and a missing file) into one stderr line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"{exc.filename}: file not found")

    return wrapper


def _load(lab: str, data: Path | None, lab_config: Path | None):
    from cfosstats.datasets import load_lab

    return load_lab(lab, data=data, config_path=lab_config)


def check_jobs(jobs: int) -> None:
    """``--jobs`` is at least 1 (one line, exit 2)."""
    if jobs < 1:
        fail(f"--jobs must be at least 1, got {jobs}")


def check_out(out: Path, found=None, *extra: Path | None) -> None:
    """The output contract (:func:`cfosstats.core.outputs.check_output`) before any work."""
    from cfosstats.core.outputs import check_output, lab_inputs

    inputs = (lab_inputs(found) if found is not None else []) + [p for p in extra if p is not None]
    check_output(out, inputs)


@app.command()
@reports_input_errors
def labs() -> None:
    """List the labs in the registry."""
    from cfosstats.datasets.registry import available_labs, load_lab_config

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


@app.command()
@reports_input_errors
def inspect(
    lab: LabOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors (exit 2).")] = False,
) -> None:
    """Show what was found for a lab: images, annotators, label sources, conditions, problems.

    Every file is read once, so corrupt files and masks of the wrong shape are found here.
    """
    from cfosstats.datasets.summary import lab_summary

    found = _load(lab, data, lab_config)
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
        fail(f"{errors[0]}" + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""))


@app.command()
@reports_input_errors
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
    from cfosstats.datasets.fetch import fetch as fetch_lab

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


@app.command()
@reports_input_errors
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
) -> None:
    """Write a synthetic study (full study layout) with annotators and model predictions."""
    from cfosstats.datasets.registry import load_lab_config
    from cfosstats.simulate.study import simulate_study

    check_out(out)
    if effect <= -1:
        fail(f"--effect must be greater than -1 (density and brightness x (1 + effect)), got {effect}")
    if animal_sd < 0:
        fail(f"--animal-sd must not be negative, got {animal_sd}")
    for name, value, least in (("--n-animals", n_animals, 1), ("--images-per-animal", images_per_animal, 1),
                               ("--size", size, 64)):  # fmt: skip
        if value < least:
            fail(f"{name} must be at least {least}, got {value}")
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
    )
    console.print(f"simulated study written to {root}", markup=False, soft_wrap=True)


@app.command()
@reports_input_errors
def groundtruth(
    lab: LabOption,
    out: OutOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    method: Annotated[str, typer.Option(help="staple (as the study), majority or objects.")] = "staple",
    jobs: JobsOption = 2,
) -> None:
    """Estimate the ground truth from the annotators: one mask per image plus annotators.csv."""
    from cfosstats.analyses.objectivity import estimate_groundtruth
    from cfosstats.objects.groundtruth import METHODS

    if method not in METHODS:
        fail(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    check_jobs(jobs)
    found = _load(lab, data, lab_config)
    check_out(out, found)
    if not found.annotators:
        fail(
            f"{found.root / 'labels'}: lab {found.name} has no annotators' masks to estimate "
            "a ground truth from"
        )
    run = estimate_groundtruth(found, method, out, jobs=jobs, progress=True)
    console.print(
        f"{len(run.annotators['image_id'].unique())} estimated masks ({method}) and annotators.csv "
        f"written to {run.out_dir}",
        markup=False,
        soft_wrap=True,
    )
    _print_warnings(run.warnings)


@app.command()
@reports_input_errors
def agreement(
    lab: LabOption,
    out: OutOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    threshold: Annotated[float, typer.Option(help="IoU threshold for a matched object.")] = 0.5,
    criterion: Annotated[
        str, typer.Option(help="gt: IoU > threshold (the study); ge: IoU >= threshold.")
    ] = "gt",
    jobs: JobsOption = 2,
) -> None:
    """Object-level agreement of every annotator pair and against the estimated ground truth."""
    from cfosstats.analyses.objectivity import run_agreement

    if not 0 < threshold < 1:
        fail(f"--threshold must be between 0 and 1 (an IoU), got {threshold}")
    check_jobs(jobs)
    from cfosstats.objects.matching import CRITERIA

    if criterion not in CRITERIA:
        fail(f"unknown --criterion '{criterion}': choose from {', '.join(CRITERIA)}")
    found = _load(lab, data, lab_config)
    check_out(out, found)
    if not found.annotators:
        fail(f"{found.root / 'labels'}: lab {found.name} has no annotators' masks to compare")
    result = run_agreement(found, out, threshold=threshold, jobs=jobs, criterion=criterion, progress=True)
    summary = result.tables["annotator_summary"]
    images = result.tables["images"]
    sources = ", ".join(f"{k} ({v} images)" for k, v in images["reference_source"].value_counts().items())
    table = Table("annotator", "median F1 vs est_GT", "IQR", "images", title=f"reference est_GT: {sources}")
    for row in summary.itertuples(index=False):
        table.add_row(
            row.rater, f"{row.f1_median:.3f}", f"{row.f1_q25:.3f}–{row.f1_q75:.3f}", str(row.n_images)
        )
    console.print(table)
    console.print(f"agreement tables written to {result.out_dir}", markup=False, soft_wrap=True)
    _print_warnings(result.warnings)


def _print_warnings(warnings_table) -> None:
    for row in warnings_table.itertuples(index=False):
        err_console.print(f"warning: {row.image_id}: {row.source}: {row.message}", markup=False)


@app.command()
@reports_input_errors
def effects(
    lab: LabOption,
    out: OutOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    alpha: Annotated[float, typer.Option(help="Family-wise significance level.")] = 0.05,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Image id to leave out (repeatable; recorded).")
    ] = None,
    jobs: JobsOption = 2,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the eta² intervals.")] = 1000,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Data root written by 'cfosstats predict --out': its label sets join the analysis "
            "(in-sample images, from the model cards, are left out of the tests).",
        ),
    ] = None,
    include_in_sample: Annotated[
        bool,
        typer.Option(
            "--include-in-sample",
            help="Also test predictions of images a model was trained on (optimistic; recorded).",
        ),
    ] = False,
    quantification: QuantificationOption = None,
    statistics: StatisticsOption = None,
    effect_sizes: EffectSizesOption = None,
    columns: ColumnsOption = None,
    strategies: StrategiesOption = None,
    preset: PresetOption = None,
) -> None:
    """Treatment effects for every label source, and how reproducible they are across analyses.

    With --quantification or --effect-sizes, from published tables instead of images (reviewer
    mode; default preset segebarth2020, the study's rules).
    """
    from cfosstats.cli.effects import effects_command

    if quantification is not None or effect_sizes is not None:
        from cfosstats.cli.tables import tables_effects_command
        from cfosstats.datasets.registry import load_lab_config
        from cfosstats.stats.presets import get_preset

        if not 0 < alpha < 1:
            raise InputError(None, f"--alpha must be between 0 and 1, got {alpha}")
        tables_effects_command(
            load_lab_config(lab, lab_config),
            out,
            quantification=quantification,
            statistics=statistics,
            effect_sizes=effect_sizes,
            columns=columns,
            strategies=strategies,
            settings=get_preset(preset or "segebarth2020"),
            alpha=alpha,
            echo=lambda line: console.print(line, markup=False, soft_wrap=True),
        )
        return
    if preset not in (None, "cfosstats"):
        raise InputError(None, "--preset applies to published tables (--quantification / --effect-sizes)")

    effects_command(
        lab,
        data,
        lab_config,
        out,
        alpha=alpha,
        exclude=tuple(exclude or ()),
        jobs=jobs,
        n_boot=n_boot,
        echo=lambda line: console.print(line, markup=False, soft_wrap=True),
        predictions=predictions,
        include_in_sample=include_in_sample,
    )


app.command("report")(reports_input_errors(report_commands.report))
app.command("train")(reports_input_errors(segment_commands.train))
app.command("predict")(reports_input_errors(segment_commands.predict))
app.command("models")(reports_input_errors(segment_commands.models))


def main() -> None:
    """Console entry point (see :func:`cfosstats.cli.entry.main`, which handles Ctrl-C)."""
    from cfosstats.cli.entry import main as entry_main

    entry_main()
