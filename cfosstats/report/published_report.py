"""The validity report from published tables alone (no images): reviewer mode.

:func:`build_table_report` analyses each :class:`~cfosstats.analyses.published.AnalysisSet`, writes its
tables under ``<out>/<lab>/tables/published/<set>/`` and renders the verdict, one section per
set and the methods into ``report.qmd``, ``report.html`` and ``report.pdf``, as
:func:`cfosstats.report.build.build_report` does from images (whose sections are skipped here
with the reason said).

Examples
--------
>>> from cfosstats.analyses.published import shipped_sets  # doctest: +SKIP
>>> build_table_report(load_lab_config("mue"), shipped_sets("mue"), "reports")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cfosstats.analyses.published import analyse_set
from cfosstats.analyses.reviewer import run_record
from cfosstats.core.atomic import write_csv, write_text
from cfosstats.report.document import Note, Section, Text, render_document
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.output import ReportResult, write_document
from cfosstats.report.published_sections import published_methods, published_section, published_verdict
from cfosstats.report.render import check_formats, render
from cfosstats.study.runner import StepRecord

__all__ = ["analyse_sets", "build_table_report", "published_context", "write_set_tables"]


def analyse_sets(sets, config, settings=None, alpha: float = 0.05, columns=None, strategies=None) -> list:
    """:func:`cfosstats.analyses.published.analyse_set` for every set."""
    return [analyse_set(s, config, settings, alpha, columns=columns, strategies=strategies) for s in sets]


def write_set_tables(folder: Path, results: list, config, alpha: float) -> None:
    """Every table of every set, and its ``run.json``, under ``folder/tables/published/<set>/``."""
    for result in results:
        target = folder / "tables" / "published" / result.name
        target.mkdir(parents=True, exist_ok=True)
        for name, table in result.tables.items():
            write_csv(target / f"{name}.csv", table)
        run = run_record(config, result.settings, alpha, result.inputs, result.tables)
        write_text(target / "run.json", json.dumps(run, indent=2, default=str) + "\n")


def published_context(results: list, config, figures) -> tuple[list, list, list]:
    """(verdict blocks, sections, methods blocks) of the published sets."""
    order = list(config.conditions)
    verdict = published_verdict(results, figures, order)
    sections = [published_section(r, figures, order) for r in results]
    return verdict, sections, published_methods(results)


def build_table_report(
    config,
    sets,
    out: str | Path = "reports",
    formats=("html", "pdf"),
    engine: str = "pandoc",
    *,
    settings=None,
    alpha: float = 0.05,
    columns=None,
    strategies=None,
    command: str = "",
    why_no_images: str = "",
):
    """Analyse published sets and render the report (see the module notes).

    Returns
    -------
    cfosstats.report.output.ReportResult
    """
    started = time.perf_counter()
    formats = check_formats(formats)
    folder = Path(out) / config.name
    folder.mkdir(parents=True, exist_ok=True)
    results = analyse_sets(sets, config, settings, alpha, columns, strategies)
    write_set_tables(folder, results, config, alpha)
    figures = FigureMaker(folder)
    verdict_blocks, sections, methods_blocks = published_context(results, config, figures)
    verdict = Section("verdict", "Verdict").add(*verdict_blocks)
    verdict.add(
        Note(
            "Objectivity (annotator agreement, estimated ground truth) and the model library need the "
            f"images: {why_no_images or 'none were given'}. Pass --data ROOT to add them.",
            level="info",
        )
    )
    methods = Section("methods", "Methods and provenance").add(*methods_blocks)
    if command:
        methods.add(Text(f"Command: `{command}`"))
    figures.prune()
    context = {
        "title": f"Is the effect real? Validity report for lab {config.name}",
        "subtitle": "From the study's published tables (reviewer mode; after Segebarth et al., eLife 2020)",
        "date": f"Computed {time.strftime('%Y-%m-%d %H:%M')}",
        "lab": config.name,
        "sections": [verdict, *sections, methods],
    }
    qmd = write_document(folder, render_document(context))
    outputs = render(qmd, formats, engine)
    seconds = time.perf_counter() - started
    steps = {"published": StepRecord("published", "computed", seconds=seconds)}
    report = ReportResult(config.name, folder, qmd, outputs, steps, seconds)
    report.published = results
    return report
