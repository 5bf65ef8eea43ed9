"""The validity report: results -> figures (plotnine) -> Jinja2 -> Quarto document -> HTML / PDF.

* :mod:`~cfosstats.study.runner` -- :func:`build_report`: runs or loads every analysis
  (cached by input checksums), writes ``report.qmd`` and renders it;
* :mod:`~cfosstats.core.cache` -- the results cache keyed by SHA-256 of the inputs;
* :mod:`~cfosstats.report.content` -- the sections, in the order a reviewer reads them;
* :mod:`~cfosstats.report.figures` -- one plotnine figure per function;
* :mod:`~cfosstats.report.panel` -- the image panel (outlines of every annotator and model);
* :mod:`~cfosstats.analyses.models` -- model F1 against the annotators' range;
* :mod:`~cfosstats.report.document` -- blocks and Markdown tables -> ``templates/report.qmd.j2``;
* :mod:`~cfosstats.report.render` -- the engines (bundled pandoc, or quarto);
* :mod:`~cfosstats.cli.report` -- ``report_command`` for the CLI.
"""

from cfosstats.report.render import ENGINES, FORMATS, RenderError
from cfosstats.study.runner import ReportResult, build_report

__all__ = ["ENGINES", "FORMATS", "RenderError", "ReportResult", "build_report"]
