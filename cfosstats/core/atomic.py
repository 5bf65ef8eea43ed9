"""Write files and folders so that nothing is ever half-written: temp name first, then rename."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cfosstats.core.outputs import check_output, mark


def remove_leftovers(target: str | Path) -> list[Path]:
    """Remove what a killed write to `target` left beside it (``.<name>.*.part``, ``.<name>.old-*``).

    Only names this module makes are touched; an interrupt removes them itself, a ``kill -9``
    cannot, so the next write repairs it. Returns what was removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    patterns = (f".{target.name}.*.part", f".{target.name}.old-*")
    return [_remove(path) for pattern in patterns for path in target.parent.glob(pattern)]


def remove_partials(folder: str | Path) -> list[Path]:
    """Remove every ``.*.part`` and ``.*.old-*`` left anywhere under a folder cfosstats owns.

    For an output folder that is updated in place (a report): a ``kill -9`` during a write
    leaves such names; the next run calls this first. Returns what was removed.
    """
    folder = Path(folder)
    found = [p for p in folder.rglob(".*") if p.name.endswith(".part") or ".old-" in p.name]
    # Shallowest first; what lay inside a folder removed already is gone with it.
    return [_remove(p) for p in sorted(found, key=lambda p: len(p.parts)) if p.exists() or p.is_symlink()]


def _remove(path: Path) -> Path:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return path


@functools.cache
def _umask() -> int:
    # Read once: setting the umask to read it is process-wide, so other threads must not see
    # the temporary value for every file written.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: Path, folder: bool) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a plain write would have had."""
    mask = _umask()
    os.chmod(path, (0o777 if folder else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> out.read_text()
    'hello'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            _default_mode(tmp, folder=False)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | Path, command: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it replaces `target` only if the block succeeds.

    An existing `target` is swapped out and deleted only after the new folder is in place.
    With ``command`` (a command's output folder), `target` must be missing, empty or written by
    cfosstats before (:func:`cfosstats.core.outputs.check_output`), and the new folder gets the
    marker that says so.
    """
    target = Path(target)
    if command is not None:
        check_output(target)
    created = [p for p in reversed(target.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    done = False
    try:
        yield tmp
        if command is not None:
            mark(tmp, command)
        _default_mode(tmp, folder=True)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            # A failed or interrupted write leaves no empty folders it made on the way.
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()


def write_text(target: str | Path, text: str) -> Path:
    """Write `text` to `target` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_csv(target: str | Path, frame) -> Path:
    """Write a DataFrame to CSV atomically (no index) and return the path."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)
