"""Unpacking a data archive safely into the cache, atomically, with the fetch marker written last.

Every entry name is checked (no absolute paths, no ``..``); entries of the data root must be
plain files or folders (links of any kind and device files are refused); tar members also pass
``tarfile.data_filter``. Files are written here, never by ``extractall``, into a temporary folder
beside the destination that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO

from cfosstats.core.atomic import atomic_dir, write_text
from cfosstats.core.errors import InputError
from cfosstats.core.version import __version__
from cfosstats.datasets.archives import Source
from cfosstats.datasets.download import CHUNK

MARKER = ".cfosstats-fetch.json"
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class ArchiveError(InputError):
    """The archive itself is bad (corrupt, unsafe, or without the lab): no retry can fix it."""


@dataclass(frozen=True)
class _Entry:
    """One archive member, whatever the archive type."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    target: str = ""
    open: Callable[[], IO[bytes]] | None = None
    filtered: str | None = None  # why tarfile.data_filter refuses it, if it does


def install(archive: Path, src: Source, dest: Path, lab: str, digest: str, record: dict) -> Path:
    """Check every entry, then unpack the data root into `dest` atomically, marker last."""
    with _entries(archive, dest) as entries:
        for entry in entries:
            _check_name(archive, entry.name)
        root = _data_root(archive, entries, lab, src.prefix)
        chosen = [(rel, e) for e in entries if (rel := _relative(e.name, root))]
        for _, entry in chosen:
            _check_kind(archive, entry)
        with atomic_dir(dest) as tmp:
            for rel, entry in chosen:
                _extract(archive, entry, tmp, rel)
            labs = sorted(p.name for p in tmp.glob("lab-*") if p.is_dir())
            _write_marker(tmp, src, lab, labs, "/".join(root), digest, record)
    return dest


@contextlib.contextmanager
def _entries(archive: Path, dest: Path) -> Iterator[list[_Entry]]:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                yield _zip_entries(zf)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                yield _tar_entries(tf, dest)
        else:
            raise ArchiveError(archive, "not a zip or tar archive")
    except _CORRUPT as exc:
        raise ArchiveError(archive, f"corrupt archive ({exc})") from None


def _zip_entries(zf: zipfile.ZipFile) -> list[_Entry]:
    entries = []
    for info in zf.infolist():
        fmt = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir():
            entries.append(_Entry(info.filename, "dir"))
        elif fmt == stat.S_IFLNK:
            target = zf.read(info).decode("utf-8", "replace")
            entries.append(_Entry(info.filename, "symlink", target))
        elif fmt in (0, stat.S_IFREG):
            entries.append(_Entry(info.filename, "file", open=partial(zf.open, info)))
        else:
            entries.append(_Entry(info.filename, "special"))
    return entries


def _tar_entries(tf: tarfile.TarFile, dest: Path) -> list[_Entry]:
    entries = []
    for member in tf.getmembers():
        filtered = _tar_filter_reason(member, dest)
        if member.isreg():
            opener = partial(tf.extractfile, member)
            entries.append(_Entry(member.name, "file", open=opener, filtered=filtered))
        elif member.isdir():
            entries.append(_Entry(member.name, "dir", filtered=filtered))
        elif member.issym():
            entries.append(_Entry(member.name, "symlink", member.linkname))
        elif member.islnk():
            entries.append(_Entry(member.name, "hardlink", member.linkname))
        else:
            entries.append(_Entry(member.name, "special"))
    return entries


def _tar_filter_reason(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why `tarfile.data_filter` (Python >= 3.11.4) refuses `member`, or None."""
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:  # pragma: no cover
        return None
    try:
        data_filter(member, str(dest))
    except tarfile.FilterError as exc:
        return str(exc)
    return None


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _check_name(archive: Path, name: str) -> None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(archive, f"unsafe entry '{name}' (absolute path)")
    if ".." in _parts(name):
        raise ArchiveError(archive, f"unsafe entry '{name}' (path traversal)")


def _check_kind(archive: Path, entry: _Entry) -> None:
    reasons = {
        "symlink": f"symbolic link to '{entry.target}'",
        "hardlink": f"hard link to '{entry.target}'",
        "special": "device or special file",
    }
    reason = reasons.get(entry.kind, entry.filtered)
    if reason:
        raise ArchiveError(archive, f"unsafe entry '{entry.name}' ({reason})")


def _data_root(archive: Path, entries: list[_Entry], lab: str, prefix: str | None) -> tuple[str, ...]:
    """The archive folder holding ``lab-<lab>/``: `prefix` if it does, else the shallowest one."""
    folder = f"lab-{lab}"
    roots = set()
    for entry in entries:
        parts = _parts(entry.name)
        if folder in parts[:-1] or (folder in parts and entry.kind == "dir"):
            roots.add(tuple(parts[: parts.index(folder)]))
    if prefix is not None and tuple(_parts(prefix)) in roots:
        return tuple(_parts(prefix))
    if not roots:
        raise ArchiveError(archive, f"holds no '{folder}/' folder")
    depth = min(map(len, roots))
    shallowest = sorted(r for r in roots if len(r) == depth)
    if len(shallowest) > 1:
        places = ", ".join("/".join(r) for r in shallowest)
        raise ArchiveError(archive, f"holds '{folder}/' in several places ({places})")
    return shallowest[0]


def _relative(name: str, root: tuple[str, ...]) -> tuple[str, ...]:
    """The parts of `name` below `root`; empty when it is not below it."""
    parts = tuple(_parts(name))
    return parts[len(root) :] if parts[: len(root)] == root else ()


def _extract(archive: Path, entry: _Entry, tmp: Path, rel: tuple[str, ...]) -> None:
    target = tmp.joinpath(*rel)
    if not target.resolve().is_relative_to(tmp.resolve()):  # belt and braces
        raise ArchiveError(archive, f"unsafe entry '{entry.name}' (path traversal)")
    try:
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        assert entry.open is not None
        with entry.open() as data, target.open("wb") as out:
            shutil.copyfileobj(data, out, CHUNK)
    except gzip.BadGzipFile:
        raise
    except OSError as exc:
        raise InputError(archive, f"cannot unpack '{entry.name}' ({exc.strerror or exc})") from None


def _write_marker(
    tmp: Path, src: Source, lab: str, labs: list[str], prefix: str, digest: str, record: dict
) -> None:
    marker = {
        "source": src.name,
        "lab": lab,
        "labs": labs,
        "prefix": prefix,
        "sha256": digest,
        **record,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cfosstats": __version__,
    }
    write_text(tmp / MARKER, json.dumps(marker, indent=2) + "\n")
