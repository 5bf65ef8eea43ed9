"""The report document: blocks (text, figures, tables, notes) -> Jinja2 -> one Quarto ``.qmd``.

The ``.qmd`` is static: figures are PNG files under ``figures/``, tables are Markdown pipe
tables with a header row, and every figure carries a caption (what to look for) and alt text
(what it shows), written ``![caption](figures/x.png){#fig-x fig-alt="..."}``: Quarto reads
``fig-alt``; under plain pandoc a Lua filter (see :mod:`cfosstats.report.render`) turns it
into the ``alt`` of the ``<img>``.

The skeleton (front matter, section order) is ``templates/report.qmd.j2``; this module supplies
the blocks and the Markdown of tables.

Examples
--------
>>> import pandas as pd
>>> print(markdown_table(pd.DataFrame({"annotator": ["a|b"], "F1": [0.91234]})))
| annotator | F1 |
|---|---|
| a\\|b | 0.912 |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfosstats.core.resources import templates_dir

TEMPLATE = "report.qmd.j2"
P_VALUE_COLUMNS = ("p", "p_value", "p_adjusted", "p_adj", "pval", "p-unc")
WIDE_TABLE = 72  # characters: a wider table wraps its cells at relative column widths


@dataclass
class Text:
    """A paragraph (or several) of Markdown."""

    markdown: str
    kind: str = "text"


@dataclass
class Figure:
    """A figure file with its caption (what to look for) and alt text (what it shows)."""

    name: str
    path: str
    caption: str
    alt: str
    width: int = 100  # percent of the text width
    kind: str = "figure"


@dataclass
class Table:
    """A compact table shown in the report, and the CSV file it comes from."""

    name: str
    caption: str
    frame: pd.DataFrame
    source: str = ""
    kind: str = "table"

    @property
    def markdown(self) -> str:
        return markdown_table(self.frame)


@dataclass
class Note:
    """Something the reader must know: a section skipped (and why), or a caution."""

    text: str
    level: str = "skipped"  # skipped | warning | info
    kind: str = "note"

    @property
    def label(self) -> str:
        return {"skipped": "Skipped", "warning": "Caution", "info": "Note"}.get(self.level, "Note")


@dataclass
class Code:
    """A verbatim block (registry entry, command line)."""

    text: str
    language: str = ""
    kind: str = "code"


@dataclass
class Section:
    """A titled part of the report: its id (anchor), an introduction, blocks and subsections."""

    id: str
    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def add(self, *blocks) -> Section:
        self.blocks.extend(b for b in blocks if b is not None)
        return self

    def sub(self, id: str, title: str, intro: str = "") -> Section:
        section = Section(id, title, intro)
        self.subsections.append(section)
        return section


def format_value(value, column: str = "") -> str:
    """A table cell: 3 significant digits, p-values as ``<0.001``, missing as ``–``.

    Examples
    --------
    >>> format_value(0.000012, "p_value"), format_value(0.04567, "p_adjusted"), format_value(1234.5)
    ('<0.001', '0.046', '1234')
    >>> format_value(float("nan")), format_value(True), format_value(12), format_value(0.5)
    ('–', 'yes', '12', '0.5')
    >>> format_value(0.99962)
    '0.9996'
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "yes" if value else "no"
    if isinstance(value, int) or type(value).__name__.startswith("int"):
        return str(int(value))
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if column.lower() in P_VALUE_COLUMNS or column.lower().startswith("p_"):
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:.0f}"
        if abs(value) < 0.001:
            return f"{value:.1e}"
        text = f"{value:.3g}"
        if float(text) == round(value) and value != round(value):
            return f"{value:.4f}"  # 0.9996 is not 1
        return text
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def markdown_table(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    """A pipe table with a header row; cells formatted by :func:`format_value`.

    A table wider than 72 characters gets a separator line whose dashes set relative column
    widths (pandoc then wraps cells instead of overflowing the page).

    Examples
    --------
    >>> markdown_table(pd.DataFrame({"x": [1, 2]}), max_rows=1).splitlines()
    ['| x |', '|---|', '| 1 |', '| … (1 more rows in the CSV) |']
    """
    if frame.columns.empty:
        raise ValueError("a table needs at least one column")
    shown = frame if max_rows is None else frame.head(max_rows)
    header = [_cell(c) for c in frame.columns]
    rows = [
        [_cell(format_value(v, str(c))) for c, v in zip(frame.columns, row)]
        for row in shown.itertuples(index=False)
    ]
    lengths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    width = sum(lengths) + 3 * len(lengths) + 1
    if width > WIDE_TABLE:
        # Relative widths from the content: the header's longest word and a long cell (90th
        # percentile), capped so that one long column cannot squeeze the others.
        dashes = []
        for i, h in enumerate(header):
            longest_word = max((len(w) for w in h.split()), default=1)
            cells = sorted(len(r[i]) for r in rows) or [1]
            typical = cells[min(len(cells) - 1, int(0.9 * len(cells)))]
            dashes.append(max(4, min(32, max(longest_word, typical) + 2)))
        separator = "|" + "|".join("-" * d for d in dashes) + "|"
    else:
        separator = "|" + "|".join("---" for _ in header) + "|"
    lines = ["| " + " | ".join(header) + " |", separator]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if max_rows is not None and len(frame) > max_rows:
        extra = ["" for _ in header[1:]]
        lines.append("| " + " | ".join([f"… ({len(frame) - max_rows} more rows in the CSV)", *extra]) + " |")
    return "\n".join(lines)


def attribute(text: str) -> str:
    """Text safe inside a double-quoted Markdown attribute value.

    Examples
    --------
    >>> attribute('say "hi"\\nnow')
    "say 'hi' now"
    """
    return " ".join(str(text).replace('"', "'").replace("\\", "/").split())


def render_document(context: dict, template_dir: str | Path | None = None) -> str:
    """Render ``report.qmd.j2`` with `context` and return the Markdown text.

    Parameters
    ----------
    context : dict
        ``title``, ``subtitle``, ``date``, ``lab``, and ``sections``: a list of
        :class:`Section` in reading order (the first is the verdict).
    template_dir : str or Path, optional
        Folder holding the template (default: the shipped ``templates/``).

    Examples
    --------
    >>> verdict = Section("verdict", "Verdict").add(Text("All good."))
    >>> text = render_document({"title": "T", "sections": [verdict]})
    >>> "# Verdict {#verdict}" in text and "All good." in text
    True
    """
    import jinja2  # lazy: only when a document is rendered

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir or templates_dir())),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["attr"] = attribute
    environment.filters["yaml"] = lambda text: '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'
    defaults = {"subtitle": "", "date": "", "lab": "", "css": "report.css"}
    text = environment.get_template(TEMPLATE).render({**defaults, **context})
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def iter_blocks(sections: list[Section]):
    """Every block of every section and subsection, in document order."""
    for section in sections:
        yield from section.blocks
        yield from iter_blocks(section.subsections)
