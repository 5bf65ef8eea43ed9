"""What a report wrote (:class:`ReportResult`), and writing its document beside its style sheet.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_document(folder, "A report").name, (folder / "report.css").is_file()
('report.qmd', True)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cfosstats.core.atomic import write_text
from cfosstats.core.resources import templates_dir
from cfosstats.study.runner import Results, StepRecord


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    lab: str
    folder: Path
    qmd: Path
    outputs: dict[str, Path]
    steps: dict[str, StepRecord]
    seconds: float
    results: Results | None = None
    published: list = field(default_factory=list)  # SetResult of published tables (reviewer mode)

    @property
    def cached(self) -> bool:
        """Whether nothing at all had to be computed or rendered."""
        return all(r.status in ("cached", "skipped") for r in self.steps.values())


def write_document(folder: Path, text: str) -> Path:
    """Write ``report.qmd`` (only when its text changed) and the style sheet beside it."""
    qmd = folder / "report.qmd"
    if not qmd.is_file() or qmd.read_text(encoding="utf-8") != text:
        write_text(qmd, text)
    shipped_css(folder)
    return qmd


def shipped_css(folder: Path) -> None:
    """Copy the report's style sheet beside it (only when it changed)."""
    css = folder / "report.css"
    source_css = templates_dir() / "report.css"
    if not css.is_file() or css.read_bytes() != source_css.read_bytes():
        shutil.copyfile(source_css, css)
