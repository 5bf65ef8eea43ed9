"""Fetch the study's public data into a local cache: resumable, checksummed, safely unpacked.

Layout of the cache (``cache_dir()``)::

    <cache>/<source>/                      data root: lab-wue1/, lab-mue/, ... and the marker
    <cache>/<source>/.cfosstats-fetch.json marker, written last: origin, SHA-256, labs, verified
    <cache>/.downloads/                    partial (``.part``) downloads and per-source locks

What is checked, and how:

- **Integrity.** The SHA-256 of the whole archive is compared with the expected digest (the
  registry's, or the one the caller passes). A mismatch deletes the downloaded file and raises.
- **Unknown digests.** Where no digest is published (GitHub builds branch archives on demand, so
  their bytes and digest are not stable), a download is *refused* unless ``allow_unverified=True``
  (``--insecure``): the error names the computed digest, the file is kept, and the next call with
  ``sha256=<digest>`` or ``allow_unverified=True`` uses it without downloading again. Data used
  unverified is recorded as ``"verified": false`` in the marker, with its digest, and a warning
  says so. A local archive (``archive=PATH``) is the user's own choice: it is checked when a digest
  is known, otherwise accepted with the same warning and record.
- **Unpacking.** Every entry name is checked (no absolute paths, no ``..``); entries of the data
  root must be plain files or folders (links of any kind and device files are refused; data
  archives need neither); tar members also pass ``tarfile.data_filter``. Files are written by this
  module, never by ``extractall``, into a temporary folder beside the destination that is renamed
  into place only when complete, with the marker written last: a half-unpacked dataset never
  exists under its final name.
- **Downloads** stream in chunks into ``<file>.part``; an interrupted download is resumed with
  ``Range: bytes=N-`` (and ``If-Range``, so a changed file restarts instead of being spliced).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import stat
import tarfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cfosstats.core.atomic import atomic_dir, write_text
from cfosstats.core.errors import InputError, InputWarning
from cfosstats.core.hashing import sha256_file
from cfosstats.core.version import __version__

try:  # POSIX only; elsewhere concurrent fetches of one source are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MARKER = ".cfosstats-fetch.json"
DOWNLOADS = ".downloads"
CHUNK = 1 << 16
TIMEOUT_S = 30
RETRY_DELAY_S = 2.0

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LAB = re.compile(r"^[A-Za-z0-9_-]+$")
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class Source:
    """One public archive holding lab folders.

    Attributes
    ----------
    name : str
        Registry key; also the folder name in the cache.
    description : str
        What the archive is, in one line.
    labs : tuple of str
        Labs (``wue1``) the archive provides.
    url : str or None
        Direct download URL; None when the archive must be downloaded by hand (see `manual`).
    sha256 : str or None
        Published SHA-256 of the archive; None when none is known (see the module notes).
    format : str
        ``"zip"`` or ``"tar.gz"`` (informative: the archive type is read from its content).
    prefix : str or None
        Folder in the archive that holds the ``lab-<id>/`` folders; None: found by looking for
        ``lab-<id>/`` (the shallowest place it occurs).
    page : str or None
        Landing page of the data (for citation).
    manual : str
        What to do when there is no `url`.
    """

    name: str
    description: str
    labs: tuple[str, ...]
    url: str | None = None
    sha256: str | None = None
    format: str = "zip"
    prefix: str | None = None
    page: str | None = None
    manual: str = ""


SOURCES: dict[str, Source] = {
    "github": Source(
        name="github",
        description="train_data/ of github.com/matjesg/bioimage_analysis (Apache-2.0)",
        labs=("wue1", "mue", "wue2"),
        url="https://github.com/matjesg/bioimage_analysis/archive/refs/heads/master.zip",
        sha256=None,  # branch archives are built on demand: no stable digest to publish
        format="zip",
        prefix="bioimage_analysis-master/train_data/",
        page="https://github.com/matjesg/bioimage_analysis",
    ),
    "dryad": Source(
        name="dryad",
        description="full study data bioimage_data.zip, Dryad doi:10.5061/dryad.4b8gtht9d",
        labs=("wue1", "mue", "wue2", "inns1", "inns2"),  # the labs the paper analyses
        url=None,  # no stable direct file URL is known
        sha256=None,
        format="zip",
        prefix=None,
        page="https://doi.org/10.5061/dryad.4b8gtht9d",
        manual=(
            "download bioimage_data.zip by hand from https://doi.org/10.5061/dryad.4b8gtht9d "
            "and pass it with --archive PATH"
        ),
    ),
}


class ArchiveError(InputError):
    """The archive itself is bad (corrupt, unsafe, or without the lab): no retry can fix it."""


class _Interrupted(Exception):
    def __init__(self, received: int, total: int | None):
        super().__init__(f"download interrupted after {received} of {total or '?'} bytes")
        self.received = received
        self.total = total


@dataclass(frozen=True)
class _Entry:
    """One archive member, whatever the archive type."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    target: str = ""
    open: Callable[[], IO[bytes]] | None = None
    filtered: str | None = None  # why tarfile.data_filter refuses it, if it does


# --------------------------------------------------------------------------------------------
# Public API


def cache_dir() -> Path:
    """The cache folder.

    ``$CFOSSTATS_CACHE`` if set, else ``$XDG_CACHE_HOME/cfosstats``, else ``~/.cache/cfosstats``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"CFOSSTATS_CACHE": "/data/cache"}):
    ...     str(cache_dir())
    '/data/cache'
    """
    if os.environ.get("CFOSSTATS_CACHE"):
        return Path(os.environ["CFOSSTATS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "cfosstats"
    return Path.home() / ".cache" / "cfosstats"


def fetch(
    lab: str,
    source: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    cache: str | Path | None = None,
    archive: str | Path | None = None,
    progress: bool = True,
    allow_unverified: bool = False,
    retries: int = 3,
) -> Path:
    """Download (or take) a public archive, verify it, unpack it into the cache.

    Parameters
    ----------
    lab : str
        Lab id (``wue1`` or ``lab-wue1``); the archive must hold ``lab-<id>/``.
    source : str, optional
        Registry key in `SOURCES` (``github``, ``dryad``). Default: the first source that provides
        `lab`, or, when `url` or `archive` is given, an ad-hoc source cached as ``custom-<lab>``.
    url : str, optional
        Download from here instead of the source's URL (a mirror).
    sha256 : str, optional
        Expected SHA-256 of the archive (64 hex digits); overrides the registry's.
    cache : str or Path, optional
        Cache folder; default `cache_dir()`.
    archive : str or Path, optional
        A local archive to use instead of downloading (verified and unpacked the same way; the
        file itself is never deleted).
    progress : bool
        Show a progress bar (on stderr) while downloading.
    allow_unverified : bool
        Use a download although no SHA-256 is known to check it against (``--insecure``).
    retries : int
        How often an interrupted download is resumed within this call.

    Returns
    -------
    Path
        The data root: the folder holding ``lab-<id>/``.

    Raises
    ------
    InputError
        One line naming the URL or file: download failed or interrupted, SHA-256 mismatch or
        unknown, unsafe or corrupt archive, lab not in the archive, unknown source or lab.

    Examples
    --------
    >>> root = fetch("wue1", allow_unverified=True)  # doctest: +SKIP
    >>> sorted(p.name for p in root.glob("lab-*"))  # doctest: +SKIP
    ['lab-mue', 'lab-wue1', 'lab-wue2']
    >>> fetch("wue1", source="dryad", archive="bioimage_data.zip")  # doctest: +SKIP
    """
    if url is not None and archive is not None:
        raise InputError(None, "--url and --archive exclude each other")
    name = _lab_name(lab)
    src = _resolve_source(name, source, url, _normalise_sha256(sha256), archive is not None)
    base = Path(cache).expanduser() if cache is not None else cache_dir()
    dest = base / src.name
    with _locked(base / DOWNLOADS / f"{src.name}.lock"):
        _remove_stale(dest)
        if archive is not None:
            return _fetch_local(Path(archive), src, dest, name)
        # a registry source counts as present whatever its origin; a URL given must match
        if _is_complete(dest, name, url=url, sha256=src.sha256):
            return dest
        return _fetch_remote(src, dest, name, progress, allow_unverified, retries)


def find_cached(lab: str, cache: str | Path | None = None, source: str | None = None) -> Path | None:
    """The cached data root holding ``lab-<id>/``, or None when the lab was not fetched.

    Only complete datasets (with the marker) count. Registry sources are searched in registry
    order, then ad-hoc ones (``custom-<lab>``) by name.

    Examples
    --------
    >>> import tempfile
    >>> find_cached("wue1", cache=tempfile.mkdtemp()) is None
    True
    """
    base = Path(cache).expanduser() if cache is not None else cache_dir()
    folder = f"lab-{_lab_name(lab)}"
    for name in [source] if source else _cached_names(base):
        root = base / name
        if _read_marker(root) is not None and (root / folder).is_dir():
            return root
    return None


# --------------------------------------------------------------------------------------------
# Choosing the source


def _lab_name(lab: str) -> str:
    name = lab.removeprefix("lab-")
    if not _LAB.match(name):
        raise InputError(None, f"invalid lab name '{lab}' (letters, digits, '_' and '-' only)")
    return name


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not _SHA256.match(digest):
        raise InputError(None, f"--sha256 must be 64 hexadecimal digits, got '{sha256}'")
    return digest


def _resolve_source(lab: str, source: str | None, url: str | None, sha256: str | None, local: bool) -> Source:
    if source is not None:
        base = _named_source(source, lab)
    elif url is not None or local:
        base = Source(name=f"custom-{lab}", description="archive given by the user", labs=(lab,))
    else:
        base = _default_source(lab)
    return replace(base, url=url or base.url, sha256=sha256 or base.sha256)


def _named_source(source: str, lab: str) -> Source:
    if source not in SOURCES:
        raise InputError(None, f"unknown source '{source}': known sources are {', '.join(SOURCES)}")
    found = SOURCES[source]
    if lab not in found.labs:
        raise InputError(
            None, f"source '{source}' does not provide lab '{lab}' (it has {', '.join(found.labs)})"
        )
    return found


def _default_source(lab: str) -> Source:
    candidates = [s for s in SOURCES.values() if lab in s.labs]
    if not candidates:
        raise InputError(None, f"no public source provides lab '{lab}'; pass --url URL or --archive PATH")
    return next((s for s in candidates if s.url), candidates[0])


def _cached_names(base: Path) -> list[str]:
    found = sorted(p.name for p in base.glob("*") if p.is_dir() and not p.name.startswith("."))
    return [*SOURCES, *(name for name in found if name not in SOURCES)]


# --------------------------------------------------------------------------------------------
# The two ways in: a local archive or a download


def _fetch_local(archive: Path, src: Source, dest: Path, lab: str) -> Path:
    if not archive.is_file():
        raise InputError(archive, "archive not found")
    digest = sha256_file(archive)
    _check_digest(archive, digest, src.sha256, delete=False)
    if _is_complete(dest, lab, sha256=digest):
        return dest
    record = {"url": None, "archive": str(archive.resolve()), "verified": src.sha256 is not None}
    root = _install(archive, src, dest, lab, digest, record)
    if src.sha256 is None:
        _warn_unverified(archive, digest)
    return root


def _fetch_remote(
    src: Source, dest: Path, lab: str, progress: bool, allow_unverified: bool, retries: int
) -> Path:
    if src.url is None:
        raise InputError(None, f"source '{src.name}' has no download URL: {src.manual}")
    file = _download(src.url, dest.parent / DOWNLOADS / _download_name(src), progress, retries)
    digest = sha256_file(file)
    _check_digest(file, digest, src.sha256, delete=True)
    if src.sha256 is None:
        _refuse_unverified(src.url, digest, allow_unverified)
    record = {"url": src.url, "archive": None, "verified": src.sha256 is not None}
    try:
        root = _install(file, src, dest, lab, digest, record)
    except ArchiveError:
        file.unlink(missing_ok=True)  # a bad archive is fixed by nothing but a new download
        raise
    file.unlink()
    if src.sha256 is None:
        _warn_unverified(src.url, digest)
    return root


def _is_complete(dest: Path, lab: str, url: str | None = None, sha256: str | None = None) -> bool:
    marker = _read_marker(dest)
    if marker is None or not (dest / f"lab-{lab}").is_dir():
        return False
    if sha256 is not None and marker.get("sha256") != sha256:
        return False
    return url is None or marker.get("url") == url


def _read_marker(root: Path) -> dict | None:
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


# --------------------------------------------------------------------------------------------
# Verification


def _check_digest(file: Path, digest: str, expected: str | None, *, delete: bool) -> None:
    if expected is None or digest == expected:
        return
    if delete:
        file.unlink(missing_ok=True)
    note = "; the file was deleted" if delete else ""
    raise InputError(file, f"SHA-256 mismatch: expected {expected}, got {digest}{note}")


def _refuse_unverified(url: str, digest: str, allow_unverified: bool) -> None:
    if not allow_unverified:
        raise InputError(
            url,
            f"no published SHA-256 to verify the download against (it has SHA-256 {digest}); "
            f"pass --sha256 {digest} once you trust it, or --insecure to use it unverified",
        )


def _warn_unverified(origin: str | Path, digest: str) -> None:
    warnings.warn(
        f"{origin}: used without verification: no published SHA-256 (it has SHA-256 {digest})",
        InputWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------------------------
# Downloading, resumable


def _download_name(src: Source) -> str:
    assert src.url is not None
    stem = PurePosixPath(urlsplit(src.url).path).name or "archive"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    key = hashlib.sha256(src.url.encode()).hexdigest()[:12]
    return f"{src.name}-{key}-{stem}"


def _download(url: str, target: Path, progress: bool, retries: int) -> Path:
    """Download `url` to `target` through ``<target>.part``, resuming it when it exists."""
    if target.is_file():  # complete from an earlier call (kept when it could not be verified)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in itertools.count():
        try:
            _download_once(url, part, progress)
            break
        except _Interrupted as cut:
            if attempt >= retries:
                raise InputError(url, f"{cut}; run the same command again to resume") from None
            time.sleep(RETRY_DELAY_S * (attempt + 1))
    os.replace(part, target)
    _validator_file(part).unlink(missing_ok=True)
    return target


def _download_once(url: str, part: Path, progress: bool) -> None:
    """One request: append to `part` (206) or rewrite it (200); `_Interrupted` when cut short."""
    response, offset = _open(url, part)
    with response:
        total = _content_total(response, offset)
        if offset == 0:
            _save_validator(part, response)
        with (
            part.open("ab" if offset else "wb") as out,
            _progress_bar(progress, url, total, offset) as advance,
        ):
            received = _copy(response, out, offset, total, advance)
    if total is not None and received < total:
        raise _Interrupted(received, total)


def _open(url: str, part: Path) -> tuple[http.client.HTTPResponse, int]:
    """Open `url`, asking for the rest of `part`; return the response and where it starts."""
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"cfosstats/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = _load_validator(part)
        if validator:
            headers["If-Range"] = validator
    try:
        response = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # the part is no prefix of the file: start again
            part.unlink()
            return _open(url, part)
        raise InputError(url, f"download failed (HTTP {exc.code} {exc.reason})") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        raise InputError(url, f"download failed ({_reason(exc)})") from None
    if response.status != 206:
        return response, 0  # a whole file (the server ignores Range, or the file changed)
    if _range_start(response) != offset:
        response.close()
        part.unlink()
        return _open(url, part)
    return response, offset


def _copy(response, out: IO[bytes], received: int, total: int | None, advance) -> int:
    """Copy the body to `out`; `_Interrupted` when the connection fails (not when writing does)."""
    while True:
        try:
            chunk = response.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _Interrupted(received, total) from exc
        if not chunk:
            return received
        out.write(chunk)
        received += len(chunk)
        advance(len(chunk))


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason).lower() or type(reason).__name__


def _range_start(response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match[1]) if match else None


def _content_total(response, offset: int) -> int | None:
    """Size of the whole file, where the response says it."""
    if response.status == 206:
        match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if match:
            return int(match[1])
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _save_validator(part: Path, response) -> None:
    """Remember the strong ETag (or Last-Modified) so that a resume can send If-Range."""
    etag = response.headers.get("ETag")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
    file = _validator_file(part)
    if validator:
        file.write_text(validator, encoding="utf-8")
    else:
        file.unlink(missing_ok=True)


def _load_validator(part: Path) -> str | None:
    try:
        return _validator_file(part).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@contextlib.contextmanager
def _progress_bar(enabled: bool, label: str, total: int | None, done: int) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(PurePosixPath(urlsplit(label).path).name or label, total=total)
        bar.update(task, completed=done)
        yield lambda n: bar.advance(task, n)


# --------------------------------------------------------------------------------------------
# Unpacking, safely


def _install(archive: Path, src: Source, dest: Path, lab: str, digest: str, record: dict) -> Path:
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


# --------------------------------------------------------------------------------------------
# Housekeeping


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (one fetch per source at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale(dest: Path) -> None:
    """Remove temporary folders that a killed fetch left beside `dest` (called under the lock)."""
    for pattern in (f".{dest.name}.*.part", f".{dest.name}.old-*"):
        for stale in dest.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
