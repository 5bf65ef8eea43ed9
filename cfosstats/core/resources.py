"""Where the package's shipped files are: `data/` and `templates/`.

In a wheel they sit inside the package (`cfosstats/_data`, `cfosstats/_templates`); in a source
checkout or editable install they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # cfosstats/, above core/


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists; broken install?")


def data_dir() -> Path:
    """The folder holding the lab registry (`labs/`) and the model library (`models/`)."""
    return _first_existing(_PACKAGE / "_data", _PACKAGE.parent / "data")


def templates_dir() -> Path:
    """The folder holding the report templates."""
    return _first_existing(_PACKAGE / "_templates", _PACKAGE.parent / "templates")
