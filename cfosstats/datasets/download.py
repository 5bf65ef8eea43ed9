"""Resumable HTTP downloads: stream into ``<file>.part``, resume with ``Range`` and ``If-Range``.

An interrupted download is resumed with ``Range: bytes=N-`` and ``If-Range`` (the strong ETag or
Last-Modified saved beside the part), so a changed file restarts instead of being spliced.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import re
import time
from collections.abc import Callable, Iterator
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

from cfosstats.core.errors import InputError
from cfosstats.core.version import __version__

CHUNK = 1 << 16
TIMEOUT_S = 30


class _Interrupted(Exception):
    def __init__(self, received: int, total: int | None):
        super().__init__(f"download interrupted after {received} of {total or '?'} bytes")
        self.received = received
        self.total = total


def download(url: str, target: Path, progress: bool, retries: int, retry_delay: float) -> Path:
    """Download `url` to `target` through ``<target>.part``, resuming it when it exists.

    An interrupted download is resumed up to `retries` times, waiting `retry_delay` s more before
    each further attempt.
    """
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
            time.sleep(retry_delay * (attempt + 1))
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
