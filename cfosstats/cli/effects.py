"""``cfosstats effects``: treatment effects across every label source of a lab, as tidy CSVs.

:func:`effects` is the command; :func:`effects_command` the plain function behind it; all the
work is in :func:`cfosstats.analyses.validity.run_effects`, whose module docstring documents every
column. With published tables instead of images (reviewer mode), :mod:`cfosstats.cli.tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from cfosstats.cli.common import check_alpha, check_jobs, echo, on_scheduler, read_lab
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
    SchedulerOption,
    StatisticsOption,
    StrategiesOption,
)
from cfosstats.core.errors import InputError
from cfosstats.core.outputs import check_output, lab_inputs

# lazy: library modules are imported inside the commands, to keep start-up fast.

__all__ = ["effects", "effects_command", "summary_lines"]


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
    scheduler: SchedulerOption = None,
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
    if quantification is not None or effect_sizes is not None:
        from cfosstats.cli.tables import tables_effects_command  # lazy
        from cfosstats.datasets.registry import load_lab_config  # lazy
        from cfosstats.stats.presets import get_preset  # lazy

        check_alpha(alpha)
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
            echo=echo,
        )
        return
    if preset not in (None, "cfosstats"):
        raise InputError(None, "--preset applies to published tables (--quantification / --effect-sizes)")

    check_jobs(jobs)
    with on_scheduler(scheduler, jobs):
        effects_command(
            lab,
            data,
            lab_config,
            out,
            alpha=alpha,
            exclude=tuple(exclude or ()),
            jobs=jobs,
            n_boot=n_boot,
            echo=echo,
            predictions=predictions,
            include_in_sample=include_in_sample,
        )


def _check_arguments(alpha: float, jobs: int, n_boot: int) -> None:
    check_alpha(alpha)
    check_jobs(jobs)
    if n_boot < 0:
        raise InputError(None, f"--n-boot must not be negative, got {n_boot}")


def summary_lines(result) -> list[str]:
    """A few lines for the terminal: grouping, exclusions, and each effect's majority call.

    Examples
    --------
    >>> import pandas as pd
    >>> from types import SimpleNamespace
    >>> repro = pd.DataFrame({"region": ["CA1"], "readout": ["density"], "comparison": ["H vs C+"],
    ...     "majority_call": ["increase"], "summary": ["found by 2/2 consensus ensembles"]})
    >>> result = SimpleNamespace(out_dir=Path("out"), run={"grouping": "conditions", "groups": ["H", "C+"],
    ...     "excluded": [], "grouping_note": "experimental conditions, control first"},
    ...     tables={"reproducibility": repro, "warnings": pd.DataFrame()})
    >>> print("\\n".join(summary_lines(result)))
    groups (conditions): H, C+ -- experimental conditions, control first
    CA1 density H vs C+: increase -- found by 2/2 consensus ensembles
    tables written to out
    """
    run = result.run
    lines = [f"groups ({run['grouping']}): {', '.join(run['groups'])} -- {run['grouping_note']}"]
    if run["excluded"]:
        lines.append("excluded: " + ", ".join(f"{e['image_id']} ({e['from']})" for e in run["excluded"]))
    repro = result.tables["reproducibility"]
    for row in repro.itertuples(index=False):
        lines.append(f"{row.region} {row.readout} {row.comparison}: {row.majority_call} -- {row.summary}")
    n_warnings = len(result.tables["warnings"])
    if n_warnings:
        lines.append(f"{n_warnings} warning(s): see warnings.csv")
    lines.append(f"tables written to {result.out_dir}")
    return lines


def effects_command(
    lab: str,
    data: Path | None,
    lab_config: Path | None,
    out: Path,
    alpha: float = 0.05,
    exclude: Sequence[str] = (),
    jobs: int = 2,
    n_boot: int = 1000,
    progress: bool = True,
    echo=print,
    predictions: Path | None = None,
    include_in_sample: bool = False,
):
    """Run :func:`cfosstats.analyses.validity.run_effects` for one lab and print a short summary.

    Parameters
    ----------
    lab : str
        Registry name (``wue1``, ``demo``, ...).
    data : Path or None
        ``--data ROOT`` (see :func:`cfosstats.datasets.load_lab`).
    lab_config : Path or None
        ``--lab-config PATH``: a registry file instead of the shipped one.
    out : Path
        ``--out DIR``: the folder to write (replaced atomically).
    alpha : float
        ``--alpha``: family-wise significance level.
    exclude : sequence of str
        ``--exclude ID`` (repeatable): images to leave out, on top of the registry's list.
    jobs : int
        ``--jobs``: worker processes.
    n_boot : int
        ``--n-boot``: bootstrap resamples per eta² interval (0: none).
    progress : bool
        Show progress bars.
    echo : callable
        Prints one line (``print``; the CLI passes its console).
    predictions : Path or None
        ``--predictions DIR``: a data root that ``cfosstats predict --out DIR`` wrote into; its
        label sets join the lab's as ``predicted/<initialization>/<model_type>/<model>/<unet>``,
        and the model cards it names mark the in-sample images
        (:func:`cfosstats.datasets.predictions.with_predictions`).
    include_in_sample : bool
        ``--include-in-sample``: test a model's predictions of its own training images too
        (optimistic; recorded in ``run.json`` and warned about).

    Returns
    -------
    EffectsResult

    Raises
    ------
    InputError
        Bad options or input (unknown lab, no groups, unknown image id in `exclude`, unreadable
        or mis-shaped masks, no predictions of the lab under `predictions`): the CLI prints the
        one-line message and exits with code 2.
    """
    from cfosstats.analyses.validity import run_effects  # lazy
    from cfosstats.datasets.predictions import with_predictions  # lazy

    _check_arguments(alpha, jobs, n_boot)
    found = read_lab(lab, data, lab_config)
    check_output(out, [*lab_inputs(found), *([predictions] if predictions is not None else [])])
    training = None
    if predictions is not None:
        found, training = with_predictions(found, predictions)
    result = run_effects(
        found,
        Path(out),
        alpha=alpha,
        exclude=tuple(exclude),
        jobs=jobs,
        progress=progress,
        n_boot=n_boot,
        training_images=training or None,
        include_in_sample=include_in_sample,
    )
    if include_in_sample:
        echo("warning: --include-in-sample: models' predictions of their own training images are tested")
    for line in summary_lines(result):
        echo(line)
    return result
