"""The report's figures, cached by the content of the tables they draw.

:class:`FigureMaker` draws each figure into ``<report>/figures/`` and records in
``figures/figures.json`` the key it was drawn for: the figure's name and options, the SHA-256 of
its tables and of the drawing code (:mod:`cfosstats.report.figures`, :mod:`cfosstats.report.panel`).
A later report redraws a figure only when its key changed or its PNG is not what was drawn.

Examples
--------
>>> import tempfile
>>> from cfosstats.report.figures import require
>>> maker = FigureMaker(tempfile.mkdtemp())
>>> maker.make("x", lambda **_: require(None, ["a"], "table"), {"t": None}, size=(2, 2), caption="",
...     alt="", what="a figure").text
'a figure: table was not computed.'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cfosstats.core.atomic import write_text
from cfosstats.core.cache import canonical_json
from cfosstats.core.hashing import sha256_bytes, sha256_file
from cfosstats.report import figures, panel
from cfosstats.report.document import Figure, Note
from cfosstats.report.figures import MissingData, save

FIGURES_VERSION = 3


def _table_digest(table: pd.DataFrame | None) -> str:
    if table is None:
        return "none"
    digest = hashlib.sha256(canonical_json(list(map(str, table.columns))).encode())
    digest.update(table.to_csv(index=False).encode("utf-8"))
    return digest.hexdigest()


def _code_digest() -> str:
    """SHA-256 of the drawing code (figures.py, panel.py): a code change redraws every figure."""
    digest = hashlib.sha256()
    for module in (figures, panel):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


class FigureMaker:
    """Draws figures into ``<report>/figures/``, reusing a PNG whose tables did not change."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / "figures"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path = self.folder / "figures.json"
        try:
            self.index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.index = {}
        self.used: set[str] = set()
        self.drawn: list[str] = []

    def key(self, name: str, tables: dict, options: dict) -> str:
        document = {
            "name": name,
            "version": FIGURES_VERSION,
            "code": _code_digest(),
            "tables": {k: _table_digest(v) for k, v in tables.items()},
            "options": options,
        }
        return sha256_bytes(canonical_json(document).encode())

    def make(
        self,
        name: str,
        draw: Callable[..., object],
        tables: dict[str, pd.DataFrame | None],
        *,
        size: tuple[float, float],
        caption: str,
        alt: str,
        width: int | None = None,
        what: str = "",
        **options,
    ) -> Figure | Note:
        """The figure (drawn now or reused), or a Note saying why it could not be drawn."""
        path = self.folder / f"{name}.png"
        key = self.key(name, tables, {"size": size, **options})
        self.used.add(path.name)
        if not self._intact(name, key, path):
            try:
                plot = draw(**tables, **options)
            except MissingData as exc:
                self.index.pop(name, None)
                return Note(f"{what or name}: {exc}.")
            save(plot, path, *size)
            self._remember(name, key, path)
        if width is None:  # about the natural size in the HTML (text ~900 px wide, figures at 110 dpi)
            width = max(30, min(100, round(size[0] * 12)))
        return Figure(name, f"figures/{path.name}", caption, alt, width)

    def file(self, name: str, key_document: dict, draw: Callable[[Path], object]) -> Path:
        """A figure drawn by `draw(path)` (not plotnine), cached by `key_document`."""
        path = self.folder / f"{name}.png"
        key_document = {"v": FIGURES_VERSION, "code": _code_digest(), **key_document}
        key = sha256_bytes(canonical_json(key_document).encode())
        self.used.add(path.name)
        if not self._intact(name, key, path):
            draw(path)
            self._remember(name, key, path)
        return path

    def _intact(self, name: str, key: str, path: Path) -> bool:
        """Whether the PNG was drawn for `key` and is byte for byte what was drawn."""
        entry = self.index.get(name)
        if not isinstance(entry, dict) or entry.get("key") != key or not path.is_file():
            return False
        return sha256_file(path) == entry.get("sha256")

    def _remember(self, name: str, key: str, path: Path) -> None:
        self.index[name] = {"key": key, "sha256": sha256_file(path)}
        self.drawn.append(name)
        self._write_index()

    def _write_index(self) -> None:
        write_text(self.index_path, json.dumps(self.index, indent=1, sort_keys=True) + "\n")

    def prune(self) -> None:
        """Remove figures of an earlier run that this report no longer shows."""
        for path in self.folder.glob("*.png"):
            if path.name not in self.used:
                path.unlink()
                self.index.pop(path.stem, None)
        self._write_index()
