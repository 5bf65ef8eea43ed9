"""Rendering engines: one ``report.qmd`` -> a self-contained HTML file and a PDF.

:data:`ENGINES` maps an engine name to a function ``(qmd, formats) -> {format: path}``:

``pandoc`` (default)
    The pandoc bundled with ``pypandoc-binary``. HTML: ``--standalone --embed-resources`` with
    ``templates/report.css``, a table of contents, section ``<section>`` elements and a Lua
    filter (``templates/fig-alt.lua``) that turns Quarto's ``fig-alt`` into the ``<img>``'s
    ``alt`` -- one file, every figure and style inside, nothing fetched when opened. PDF:
    pandoc ``-t typst`` with ``templates/report.typst`` (no ``@preview`` packages), then the
    ``typst`` Python package compiles it (no LaTeX).
``quarto``
    ``quarto render`` where a ``quarto`` binary is on PATH (HTML and Typst PDF, as declared in
    the document's front matter).

Examples
--------
>>> sorted(ENGINES)
['pandoc', 'quarto']
>>> check_formats(["html", "pdf"])
('html', 'pdf')
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from cfosstats.core.atomic import atomic_path
from cfosstats.core.resources import templates_dir

FORMATS = ("html", "pdf")
CSS = "report.css"
TYPST_TEMPLATE = "report.typst"
ALT_FILTER = "fig-alt.lua"


class RenderError(RuntimeError):
    """An engine failed or is not available (the message says what to do)."""


def check_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Validate output formats (``"html,pdf"`` or a sequence) and return them in a tuple.

    Examples
    --------
    >>> check_formats("pdf, html")
    ('pdf', 'html')
    >>> check_formats("docx")
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'docx': choose from html, pdf
    """
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    out: list[str] = []
    for name in formats:
        name = name.lower()
        if name not in FORMATS:
            raise ValueError(f"unknown format '{name}': choose from {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no output format: choose from {', '.join(FORMATS)}")
    return tuple(out)


def pandoc_path() -> str:
    """The pandoc binary bundled with pypandoc-binary (or on PATH)."""
    import pypandoc  # lazy: 0.2 s, only when rendering

    return pypandoc.get_pandoc_path()


def tool_versions() -> dict[str, str]:
    """Versions of the rendering tools (for provenance)."""
    versions: dict[str, str] = {}
    try:
        import pypandoc  # lazy, and optional: its absence is reported

        versions["pandoc"] = pypandoc.get_pandoc_version()
    except (ImportError, OSError, RuntimeError):
        versions["pandoc"] = "not available"
    try:
        versions["typst (python)"] = metadata.version("typst")
    except Exception:  # noqa: BLE001 - a missing distribution is not an error here
        versions["typst (python)"] = "not available"
    quarto = shutil.which("quarto")
    versions["quarto"] = quarto_version() if quarto else "not on PATH"
    return versions


def quarto_version() -> str:
    try:
        result = subprocess.run(
            ["quarto", "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError:
        return "not runnable"
    return result.stdout.strip() or "unknown"


def _run_pandoc(arguments: list[str], cwd: Path) -> None:
    result = subprocess.run([pandoc_path(), *arguments], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RenderError(f"pandoc failed ({result.returncode}): {result.stderr.strip()[:2000]}")


def _support_files(folder: Path) -> dict[str, Path]:
    templates = templates_dir()
    return {name: templates / name for name in (CSS, TYPST_TEMPLATE, ALT_FILTER)}


def _pandoc_beside(qmd: Path, suffix: str, to: str, options: list[str]) -> Path:
    """Convert `qmd` with pandoc (``--to`` `to`, standalone) into the file beside it with `suffix`."""
    target = qmd.with_suffix(suffix)
    with atomic_path(target) as tmp:
        _run_pandoc(
            [qmd.name, "--from=markdown", f"--to={to}", "--standalone", *options, "--output", str(tmp)],
            cwd=qmd.parent,
        )
    return target


def pandoc_html(qmd: Path) -> Path:
    """Self-contained HTML (``report.html`` beside `qmd`) with the bundled pandoc."""
    qmd = Path(qmd)
    folder = qmd.parent
    support = _support_files(folder)
    options = [
        "--embed-resources",
        "--section-divs",
        "--toc",
        "--toc-depth=2",
        f"--css={support[CSS]}",
        f"--lua-filter={support[ALT_FILTER]}",
        f"--resource-path={folder}",
    ]
    return _pandoc_beside(qmd, ".html", "html5", options)


def pandoc_typst(qmd: Path) -> Path:
    """The Typst source of the PDF (``report.typ`` beside `qmd`)."""
    qmd = Path(qmd)
    support = _support_files(qmd.parent)
    options = [
        f"--template={support[TYPST_TEMPLATE]}",
        f"--lua-filter={support[ALT_FILTER]}",
        "--columns=110",
    ]
    return _pandoc_beside(qmd, ".typ", "typst", options)


def typst_pdf(typ: Path) -> Path:
    """Compile a Typst file to PDF with the ``typst`` Python package (paths relative to it)."""
    import typst  # lazy: 0.2 s, only when a PDF is compiled

    typ = Path(typ)
    target = typ.with_suffix(".pdf")
    with atomic_path(target) as tmp:
        try:
            data = typst.compile(str(typ), root=str(typ.parent))
        except Exception as exc:  # typst raises its own error types
            raise RenderError(f"typst failed on {typ}: {exc}") from None
        tmp.write_bytes(data)
    return target


def render_pandoc(qmd: Path, formats: Sequence[str]) -> dict[str, Path]:
    """The default engine: HTML with pandoc; PDF through pandoc -> Typst -> ``typst``."""
    outputs: dict[str, Path] = {}
    if "html" in formats:
        outputs["html"] = pandoc_html(qmd)
    if "pdf" in formats:
        outputs["pdf"] = typst_pdf(pandoc_typst(qmd))
    return outputs


def render_quarto(qmd: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Render with a ``quarto`` binary on PATH (``html`` and ``typst`` formats)."""
    quarto = shutil.which("quarto")
    if quarto is None:
        raise RenderError("engine 'quarto' needs a quarto binary on PATH; use --engine pandoc")
    qmd = Path(qmd)
    outputs: dict[str, Path] = {}
    for name in formats:
        to = "html" if name == "html" else "typst"
        result = subprocess.run(
            [quarto, "render", qmd.name, "--to", to],
            cwd=qmd.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RenderError(f"quarto render --to {to} failed: {result.stderr.strip()[:2000]}")
        outputs[name] = qmd.with_suffix(f".{name}")
    return outputs


ENGINES: dict[str, Callable[[Path, Sequence[str]], dict[str, Path]]] = {
    "pandoc": render_pandoc,
    "quarto": render_quarto,
}


def render(
    qmd: str | Path, formats: str | Sequence[str] = FORMATS, engine: str = "pandoc"
) -> dict[str, Path]:
    """Render `qmd` into each format with the named engine.

    Parameters
    ----------
    qmd : str or Path
        The Quarto document; figures are resolved relative to its folder.
    formats : str or sequence of str
        ``html``, ``pdf`` or both.
    engine : str
        A key of :data:`ENGINES`.

    Returns
    -------
    dict
        format -> the written file (beside `qmd`).

    Raises
    ------
    RenderError
        The engine is unknown or unavailable, or it failed.
    """
    if engine not in ENGINES:
        raise RenderError(f"unknown engine '{engine}': choose from {', '.join(sorted(ENGINES))}")
    return ENGINES[engine](Path(qmd), check_formats(formats))
