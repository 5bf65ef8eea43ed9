"""The output contract of every command: an ``--out`` never destroys what cfosstats did not write.

:func:`check_output` is called by each command before any work, with the command's inputs:
``--out`` may only be a missing folder, an empty folder, or a folder cfosstats wrote before
(it holds :data:`MARKER`, with the command and version that wrote it). Refused, with one line
naming the folder (:class:`~cfosstats.core.errors.InputError`, exit 2), and nothing touched:

- an existing file;
- the current directory;
- an input (the lab folder, the data root, a predictions root, a table's folder), a folder
  above one, or a folder inside one;
- a folder that holds files and no marker.

:func:`cfosstats.core.atomic.atomic_dir` applies the same rule again when it swaps the new folder
in, and writes the marker (:func:`mark`).

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "data" / "lab-x").mkdir(parents=True)
>>> _ = (root / "data" / "lab-x" / "a.png").write_bytes(b"")
>>> check_output(root / "results", inputs=[root / "data"])
>>> check_output(root / "data", inputs=[root / "data" / "lab-x"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cfosstats.core.errors.InputError: ...data: --out holds the input .../data/lab-x: name a new folder
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from cfosstats.core.errors import InputError
from cfosstats.core.version import __version__

__all__ = ["MARKER", "check_output", "lab_inputs", "mark", "written_by_cfosstats"]

MARKER = ".cfosstats-output.json"
#: Markers of folders other parts of cfosstats write (the fetch cache).
OTHER_MARKERS = (".cfosstats-fetch.json",)


def written_by_cfosstats(folder: str | Path) -> bool:
    """Whether ``folder`` holds a marker of cfosstats (it wrote the folder).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> written_by_cfosstats(folder), (mark(folder, "effects") and written_by_cfosstats(folder))
    (False, True)
    """
    folder = Path(folder)
    return any((folder / name).is_file() for name in (MARKER, *OTHER_MARKERS))


def mark(folder: str | Path, command: str) -> Path:
    """Write the marker that says cfosstats (this command and version) wrote ``folder``."""
    path = Path(folder) / MARKER
    # No timestamp: outputs stay byte-identical for identical inputs and seeds.
    record = {"written_by": "cfosstats", "command": command, "version": __version__}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def lab_inputs(lab) -> list[Path]:
    """What a command reads of a lab: its folder and the data root holding it (never an --out)."""
    root = Path(lab.root)
    return [root, root.parent]


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def check_output(
    out: str | Path,
    inputs: Iterable[str | Path] = (),
    *,
    foreign_ok: bool = False,
    option: str = "--out",
) -> None:
    """Refuse an output folder that could destroy data (see the module notes).

    Parameters
    ----------
    out : str or Path
        The folder a command will write (or replace).
    inputs : iterable of path
        What the command reads: ``out`` may not be one of them, above one or inside one.
    foreign_ok : bool, default False
        Allow a non-empty folder without a marker (for a root that only receives new
        subfolders, such as ``report --out``, whose ``<lab>/`` folder is checked in full).
    option : str
        The option's name, for the message.

    Raises
    ------
    InputError
        One line naming ``out`` and what is wrong.
    """
    out = Path(out)
    target = _resolved(out)
    if target.exists() and not target.is_dir():
        raise InputError(
            out, f"{option} names an existing file: give a folder (a new one, or one cfosstats wrote)"
        )
    if target == _resolved(Path.cwd()):
        raise InputError(out, f"{option} is the current directory: name a new folder")
    for given in inputs:
        path = _resolved(given)
        if target == path:
            raise InputError(out, f"{option} is the input {given}: name a new folder")
        if target in path.parents:
            raise InputError(out, f"{option} holds the input {given}: name a new folder")
        if path.is_dir() and path in target.parents:
            raise InputError(out, f"{option} lies inside the input {given}: name a folder outside it")
    if foreign_ok or not target.is_dir():
        return
    if any(target.iterdir()) and not written_by_cfosstats(target):
        raise InputError(
            out,
            f"{option} holds files cfosstats did not write: name a new or empty folder "
            f"(cfosstats replaces only folders with its {MARKER})",
        )
