"""``cfosstats report``: the validity report of a lab (wired in :mod:`cfosstats.cli.app`).

:func:`report` is the command, with Typer's ``Annotated`` options; :func:`report_command` is the
plain function behind it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cfosstats.cli.common import check_alpha, check_jobs, on_scheduler, read_lab
from cfosstats.cli.options import (
    ColumnsOption,
    ConfigOption,
    DataOption,
    EffectSizesOption,
    JobsOption,
    LabOption,
    PresetOption,
    QuantificationOption,
    SchedulerOption,
    StatisticsOption,
    StrategiesOption,
)
from cfosstats.core.atomic import remove_partials
from cfosstats.core.errors import InputError
from cfosstats.core.outputs import MARKER, check_output, lab_inputs, mark, written_by_cfosstats

# lazy: library modules are imported inside the functions, to keep start-up fast.


def report_command(
    lab: str,
    data: Path | None,
    lab_config: Path | None,
    out: Path,
    formats: str | Sequence[str],
    engine: str,
    *,
    jobs: int,
    alpha: float,
    exclude: Sequence[str],
    predict: bool,
    progress: bool = True,
    tables: dict | None = None,
):
    """Build the validity report of a lab and print where it is.

    The options are the command's (:func:`report` holds their defaults, and
    :func:`cfosstats.report.build.command_line` records them).

    Parameters
    ----------
    lab : str
        Registry name (``demo`` needs no data).
    data : Path or None
        Data root (``--data``); None: ``$CFOSSTATS_DATA``, then the fetch cache.
    lab_config : Path or None
        A registry file to use instead of the shipped entry (``--lab-config``).
    out : Path
        Output root (``--out``); files go to ``<out>/<lab>/``.
    formats : str or sequence of str
        ``--format``: ``html``, ``pdf`` or both.
    engine : str
        ``--engine``: ``pandoc`` (bundled) or ``quarto`` (needs a quarto binary on PATH).
    jobs, alpha, exclude, predict, progress
        Passed to :func:`cfosstats.report.build_report`.
    tables : dict, optional
        Published tables (``quantification``, ``statistics``, ``effect_sizes``, ``columns``,
        ``strategies``, ``preset``). Without them, the study's tables shipped for the lab (wue1,
        mue) are used; without images (no ``--data`` and none found) the report is made from
        the tables alone.

    Returns
    -------
    ReportResult

    Raises
    ------
    InputError
        Bad input, an unknown format or engine, or a failed rendering (one line, for exit code 2).

    Examples
    --------
    >>> report_command("demo", None, None, Path("reports"), "html", "pandoc",
    ...                jobs=2, alpha=0.05, exclude=(), predict=True)  # doctest: +SKIP
    """
    from cfosstats.report.build import build_report, command_line  # lazy
    from cfosstats.report.published_report import analyse_sets, build_table_report  # lazy
    from cfosstats.report.render import RenderError  # lazy

    check_alpha(alpha)
    check_jobs(jobs)
    tables = tables or {}
    command = command_line(lab, data, lab_config, out, formats, engine, jobs, alpha, exclude, predict)
    command += "".join(f" --{k.replace('_', '-')} {v}" for k, v in tables.items() if v is not None)
    sets, config = _published_sets(lab, lab_config, tables)
    try:
        found = read_lab(lab, data, lab_config)
    except InputError as exc:
        if not sets or data is not None:
            raise
        found, why = None, exc.message
    folder = Path(out) / config.name
    new_folder = not folder.exists()
    _check_report_out(
        Path(out), config.name, found, [p for s in sets for p in s.files().values() if not s.shipped]
    )
    try:
        if found is None:
            result = build_table_report(
                config, sets, out, formats, engine, settings=_settings(tables), alpha=alpha,
                columns=tables.get("columns"), strategies=tables.get("strategies"), command=command,
                why_no_images=why,
            )  # fmt: skip
        else:
            published = analyse_sets(
                sets, config, _settings(tables), alpha, tables.get("columns"), tables.get("strategies")
            )
            result = build_report(
                found,
                out,
                formats=formats,
                engine=engine,
                progress=progress,
                jobs=jobs,
                alpha=alpha,
                exclude=exclude,
                predict=predict,
                command=command,
                published=published,
            )
    except (RenderError, ValueError) as exc:
        _remove_skeleton(folder, new_folder)
        raise InputError(None, str(exc)) from None
    except BaseException:
        _remove_skeleton(folder, new_folder)
        raise
    if progress:
        from cfosstats.cli.tables import read_lines  # lazy

        console = Console(highlight=False, soft_wrap=True)
        for published in result.published:
            console.print(f"{published.title}:", markup=False)
            for line in read_lines(published):
                console.print(f"  {line}", markup=False)
        for name, path in result.outputs.items():
            console.print(f"{name}: {path}", markup=False)
        console.print(
            f"report.qmd, figures and tables: {result.folder} ({result.seconds:.1f} s)", markup=False
        )
    return result


def _check_report_out(out: Path, lab: str, found, tables: list[Path]) -> None:
    """``--out`` receives ``<lab>/``: the root may hold other files, ``<lab>/`` only cfosstats's."""
    inputs = [*tables, *(lab_inputs(found) if found is not None else [])]
    check_output(out, inputs, foreign_ok=True)
    folder = out / lab
    check_output(folder, inputs)
    folder.mkdir(parents=True, exist_ok=True)
    if not written_by_cfosstats(folder):
        mark(folder, "report")
    remove_partials(folder)  # what a killed earlier run left half-written


def _remove_skeleton(folder: Path, new_folder: bool) -> None:
    """After a failed first run, remove the report folder if it holds no file but the marker."""
    if not new_folder or not folder.is_dir():
        return
    if all(p.is_dir() or p.name == MARKER for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def _settings(tables: dict):
    from cfosstats.stats.presets import get_preset  # lazy

    return get_preset(tables.get("preset") or "segebarth2020")


def _published_sets(lab: str, lab_config: Path | None, tables: dict):
    """The analysis sets to report (given tables, else the shipped ones) and the lab's config."""
    from cfosstats.analyses.published import AnalysisSet, shipped_sets  # lazy
    from cfosstats.datasets.registry import load_lab_config  # lazy

    config = load_lab_config(lab, lab_config)
    _settings(tables)  # an unknown preset fails before any work
    given = {k: tables.get(k) for k in ("quantification", "statistics", "effect_sizes")}
    if any(v is not None for v in given.values()):
        if given["quantification"] is None and given["effect_sizes"] is None:
            raise InputError(None, "--statistics needs --quantification (or use --effect-sizes)")
        stem = (given["quantification"] or given["effect_sizes"]).stem
        return [AnalysisSet(stem, f"Published tables: {stem}", **given)], config
    return shipped_sets(lab), config


def report(
    lab: LabOption,
    data: DataOption = None,
    lab_config: ConfigOption = None,
    out: Annotated[Path, typer.Option("--out", help="Output root: the report goes to <out>/<lab>/.")] = Path(
        "reports"
    ),
    formats: Annotated[str, typer.Option("--format", help="html, pdf, or html,pdf.")] = "html,pdf",
    engine: Annotated[
        str, typer.Option("--engine", help="pandoc (bundled, default) or quarto (a quarto binary on PATH).")
    ] = "pandoc",
    jobs: JobsOption = 2,
    scheduler: SchedulerOption = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the effect tests.")] = 0.05,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Image id to exclude from the effect tests; repeatable."),
    ] = None,
    predict: Annotated[
        bool, typer.Option(help="Predict with the model library's models of the lab, where it has some.")
    ] = True,
    quantification: QuantificationOption = None,
    statistics: StatisticsOption = None,
    effect_sizes: EffectSizesOption = None,
    columns: ColumnsOption = None,
    strategies: StrategiesOption = None,
    preset: PresetOption = None,
) -> None:
    """Validity report of a lab: self-contained HTML and PDF, plus every table behind them.

    Runs whatever results are missing (cached by input checksums: a second run is fast) and writes
    <out>/<lab>/report.html, report.pdf, report.qmd, figures/ and tables/.
    """
    check_jobs(jobs)
    # The engine changes where the work runs, never a result: it is not part of the recorded command.
    with on_scheduler(scheduler, jobs):
        report_command(
            lab,
            data,
            lab_config,
            out,
            formats,
            engine,
            jobs=jobs,
            alpha=alpha,
            exclude=tuple(exclude or ()),
            predict=predict,
            progress=True,
            tables={
                "quantification": quantification,
                "statistics": statistics,
                "effect_sizes": effect_sizes,
                "columns": columns,
                "strategies": strategies,
                "preset": preset,
            },
        )
