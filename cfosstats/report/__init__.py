"""The validity report: results -> figures (plotnine) -> Jinja2 -> Quarto document -> HTML / PDF.

* :mod:`~cfosstats.report.build` -- :func:`build_report`: runs or loads every analysis
  (:mod:`cfosstats.study`, cached by input checksums), writes ``report.qmd`` and renders it
  (the rendering cached too);
* :mod:`~cfosstats.report.content` -- the sections (:mod:`~cfosstats.report.sections`), in the
  order a reviewer reads them;
* :mod:`~cfosstats.report.text` -- names, plurals and lists of the report's sentences;
* :mod:`~cfosstats.report.figure_cache` -- figures redrawn only when their tables change;
* :mod:`~cfosstats.report.figures` -- one plotnine figure per function;
* :mod:`~cfosstats.report.panel` -- the image panel (outlines of every annotator and model);
* :mod:`~cfosstats.report.document` -- blocks and Markdown tables -> ``templates/report.qmd.j2``;
* :mod:`~cfosstats.report.render` -- the engines (bundled pandoc, or quarto);
* :mod:`~cfosstats.report.published_report` -- the report from published tables alone;
* :mod:`~cfosstats.report.provenance` -- versions, commit and environment of the methods section;
* :mod:`~cfosstats.report.output` -- :class:`ReportResult`, what a report wrote.
"""

from cfosstats.report.build import build_report
from cfosstats.report.output import ReportResult
from cfosstats.report.render import ENGINES, FORMATS, RenderError

__all__ = ["ENGINES", "FORMATS", "RenderError", "ReportResult", "build_report"]
