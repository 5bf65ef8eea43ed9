"""A results cache keyed by input checksums: a second identical report run recomputes nothing.

Every analysis step of a report (agreement, STAPLE, predictions, model agreement, effects,
figures) is stored in its own folder under ``<out>/<lab>/tables/<step>/`` and recorded in
``<out>/<lab>/tables/manifest.json`` with a *key*: the SHA-256 of a canonical JSON document
holding the step's name and version, the cfosstats version, the lab's registry entry, the
step's parameters and the SHA-256 of every input file the step reads (images, masks, region
masks, model cards, ...). A later run recomputes a step only when its key differs (an input
file, a parameter, the registry entry or the package changed) or a stored file is missing or
changed: each is checked against the SHA-256 the manifest recorded when it was written.

File checksums are memoised per run by (path, size, modification time), so each input file is
read once per run however many steps use it.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> cache = ResultsCache(root / "tables")
>>> key = cache_key("demo_step", {"alpha": 0.05}, {"a.png": "00ff"})
>>> cache.lookup("demo_step", key) is None
True
>>> folder = cache.folder("demo_step")
>>> _ = (folder / "x.csv").write_text("a,b\\n1,2\\n")
>>> cache.record("demo_step", key, seconds=0.1)
>>> cache.lookup("demo_step", key) == folder
True
>>> cache.lookup("demo_step", cache_key("demo_step", {"alpha": 0.01}, {"a.png": "00ff"})) is None
True
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfosstats.core.atomic import write_text
from cfosstats.core.hashing import sha256_bytes, sha256_file
from cfosstats.core.version import __version__

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same data always gives the same text.

    Examples
    --------
    >>> canonical_json({"b": (1, 2), "a": None})
    '{"a":null,"b":[1,2]}'
    """
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(step: str, parameters: Mapping[str, Any], files: Mapping[str, str], version: int = 1) -> str:
    """The key of one analysis step: SHA-256 of its name, version, parameters and input checksums.

    Parameters
    ----------
    step : str
        Step name (``objectivity``, ``effects``, ...).
    parameters : mapping
        Everything else the result depends on (thresholds, the registry entry, ...).
    files : mapping of str to str
        Input file (a stable name, e.g. relative to the lab folder) -> its SHA-256.
    version : int
        Bumped when the step's code changes what it writes.

    Examples
    --------
    >>> cache_key("s", {}, {"a": "1"}) == cache_key("s", {}, {"a": "1"})
    True
    >>> cache_key("s", {}, {"a": "1"}) == cache_key("s", {}, {"a": "2"})
    False
    """
    document = {
        "step": step,
        "step_version": version,
        "cfosstats": __version__,
        "parameters": parameters,
        "files": dict(sorted(files.items())),
    }
    return sha256_bytes(canonical_json(document).encode("ascii"))


@dataclass
class FileHasher:
    """SHA-256 of input files, each file read once per run (memoised by path, size, mtime).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "a.png").write_bytes(b"x")
    >>> hasher = FileHasher(root)
    >>> list(hasher.digests([root / "a.png"]))
    ['a.png']
    """

    root: Path | None = None
    _memo: dict[tuple[str, int, int], str] = field(default_factory=dict)
    records: dict[str, tuple[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._root = None if self.root is None else os.path.abspath(self.root) + os.sep

    def name(self, path: Path) -> str:
        """A stable name of an input file: relative to `root` where possible, else absolute."""
        absolute = os.path.abspath(path)
        if self._root is not None and absolute.startswith(self._root):
            return Path(absolute[len(self._root) :]).as_posix()
        return Path(absolute).as_posix()

    def sha256(self, path: str | Path) -> str:
        absolute = os.path.abspath(path)
        stat = os.stat(absolute)
        memo_key = (absolute, stat.st_size, stat.st_mtime_ns)
        digest = self._memo.get(memo_key)
        if digest is None:
            digest = sha256_file(absolute)
            self._memo[memo_key] = digest
        self.records[self.name(absolute)] = (digest, stat.st_size)
        return digest

    def digests(self, paths: Iterable[str | Path]) -> dict[str, str]:
        """Stable name -> SHA-256 of every file (sorted by name)."""
        out = {self.name(Path(p)): self.sha256(p) for p in paths}
        return dict(sorted(out.items()))


@dataclass
class ResultsCache:
    """Step folders under `root` and the manifest that says which inputs produced them.

    Parameters
    ----------
    root : Path
        ``<out>/<lab>/tables``.
    """

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._manifest = self._read_manifest()

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def _read_manifest(self) -> dict:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return {"steps": {}}
        if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
            return {"steps": {}}
        return data

    @property
    def steps(self) -> dict[str, dict]:
        """Step name -> its manifest record (key, files, seconds, created, info)."""
        return self._manifest["steps"]

    def folder(self, step: str, fresh: bool = True) -> Path:
        """The step's folder; emptied first when `fresh` (a recomputation)."""
        folder = self.root / step
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def lookup(self, step: str, key: str) -> Path | None:
        """The step's folder when it was made from the same inputs and is intact, else None."""
        return self.verify(step, key)[0]

    def verify(self, step: str, key: str) -> tuple[Path | None, str]:
        """(folder, "") when the step's folder holds exactly what was recorded for `key`.

        Every recorded file is checked against its SHA-256 in the manifest, so a table cut
        short, a changed byte or a missing file is never reused: (None, why) then, and the step
        is recomputed. A record of other inputs gives (None, "").
        """
        record = self.steps.get(step)
        if not record or record.get("key") != key:
            return None, ""
        folder = self.root / step
        digests = record.get("sha256")
        if not isinstance(digests, dict):
            return None, "the cache holds no checksums of its tables"
        for name, digest in sorted(digests.items()):
            path = folder / name
            if not path.is_file():
                return None, f"cached {step}/{name} is missing"
            if sha256_file(path) != digest:
                return None, f"cached {step}/{name} changed since it was written"
        return folder, ""

    def record(self, step: str, key: str, seconds: float, info: Mapping[str, Any] | None = None) -> None:
        """Record that the step's folder now holds the results for `key` (manifest written now)."""
        folder = self.root / step
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        self.steps[step] = {
            "key": key,
            "sha256": {name: sha256_file(folder / name) for name in files},
            "seconds": round(float(seconds), 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "info": _jsonable(dict(info or {})),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(self.manifest_path, json.dumps(self._manifest, indent=1, sort_keys=True) + "\n")

    def forget(self, step: str) -> None:
        """Drop a step from the manifest (its folder is removed too)."""
        self.steps.pop(step, None)
        shutil.rmtree(self.root / step, ignore_errors=True)
        if self.root.is_dir():
            write_text(self.manifest_path, json.dumps(self._manifest, indent=1, sort_keys=True) + "\n")
