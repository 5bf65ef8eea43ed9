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

The registry of archives is :mod:`cfosstats.datasets.archives`, downloading
:mod:`cfosstats.datasets.download`, unpacking :mod:`cfosstats.datasets.unpack`; this module
chooses, verifies and caches.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from cfosstats.core.errors import InputError, InputWarning
from cfosstats.core.hashing import sha256_bytes, sha256_file
from cfosstats.datasets.archives import SOURCES, Source, lab_name, normalise_sha256, resolve_source
from cfosstats.datasets.download import download
from cfosstats.datasets.unpack import MARKER, ArchiveError, install

try:  # POSIX only; elsewhere concurrent fetches of one source are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

DOWNLOADS = ".downloads"
RETRY_DELAY_S = 2.0


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
    name = lab_name(lab)
    src = resolve_source(name, source, url, normalise_sha256(sha256), archive is not None)
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
    folder = f"lab-{lab_name(lab)}"
    for name in [source] if source else _cached_names(base):
        root = base / name
        if _read_marker(root) is not None and (root / folder).is_dir():
            return root
    return None


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
    root = install(archive, src, dest, lab, digest, record)
    if src.sha256 is None:
        _warn_unverified(archive, digest)
    return root


def _fetch_remote(
    src: Source, dest: Path, lab: str, progress: bool, allow_unverified: bool, retries: int
) -> Path:
    if src.url is None:
        raise InputError(None, f"source '{src.name}' has no download URL: {src.manual}")
    target = dest.parent / DOWNLOADS / _download_name(src)
    file = download(src.url, target, progress, retries, RETRY_DELAY_S)
    digest = sha256_file(file)
    _check_digest(file, digest, src.sha256, delete=True)
    if src.sha256 is None:
        _refuse_unverified(src.url, digest, allow_unverified)
    record = {"url": src.url, "archive": None, "verified": src.sha256 is not None}
    try:
        root = install(file, src, dest, lab, digest, record)
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
# Where a download is kept (resumable: see cfosstats.datasets.download)


def _download_name(src: Source) -> str:
    assert src.url is not None
    stem = PurePosixPath(urlsplit(src.url).path).name or "archive"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    key = sha256_bytes(src.url.encode())[:12]
    return f"{src.name}-{key}-{stem}"


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
