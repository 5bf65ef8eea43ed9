"""The objectivity commands: ``groundtruth`` (estimate it from the annotators) and ``agreement``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cfosstats.cli.common import check_jobs, check_out, console, err_console, on_scheduler, read_lab
from cfosstats.cli.options import ConfigOption, DataOption, JobsOption, LabOption, OutOption, SchedulerOption
from cfosstats.core.errors import InputError

# lazy: library modules are imported inside the commands, to keep start-up fast.


def groundtruth(
    lab: LabOption,
    out: OutOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    method: Annotated[str, typer.Option(help="staple (as the study), majority or objects.")] = "staple",
    jobs: JobsOption = 2,
    scheduler: SchedulerOption = None,
) -> None:
    """Estimate the ground truth from the annotators: one mask per image plus annotators.csv."""
    from cfosstats.analyses.objectivity import estimate_groundtruth  # lazy
    from cfosstats.objects.groundtruth import METHODS  # lazy

    if method not in METHODS:
        raise InputError(None, f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    check_jobs(jobs)
    found = read_lab(lab, data, lab_config)
    check_out(out, found)
    if not found.annotators:
        raise InputError(
            found.root / "labels",
            f"lab {found.name} has no annotators' masks to estimate a ground truth from",
        )
    with on_scheduler(scheduler, jobs):
        run = estimate_groundtruth(found, out, method=method, jobs=jobs, progress=True)
    console.print(
        f"{len(run.annotators['image_id'].unique())} estimated masks ({method}) and annotators.csv "
        f"written to {run.out_dir}",
        markup=False,
        soft_wrap=True,
    )
    _print_warnings(run.warnings)


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
    scheduler: SchedulerOption = None,
) -> None:
    """Object-level agreement of every annotator pair and against the estimated ground truth."""
    from cfosstats.analyses.objectivity import run_agreement  # lazy
    from cfosstats.objects.matching import CRITERIA  # lazy

    if not 0 < threshold < 1:
        raise InputError(None, f"--threshold must be between 0 and 1 (an IoU), got {threshold}")
    check_jobs(jobs)
    if criterion not in CRITERIA:
        raise InputError(None, f"unknown --criterion '{criterion}': choose from {', '.join(CRITERIA)}")
    found = read_lab(lab, data, lab_config)
    check_out(out, found)
    if not found.annotators:
        raise InputError(found.root / "labels", f"lab {found.name} has no annotators' masks to compare")
    with on_scheduler(scheduler, jobs):
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
