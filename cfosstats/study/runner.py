"""The cached step runner: each analysis step of a report, loaded from the cache or computed.

A step's tables live under ``<out>/<lab>/tables/<step>/``, keyed by the checksums of its inputs
(:mod:`cfosstats.core.cache`): :class:`Runner` loads them when the key is unchanged, else computes
them beside the old folder and swaps them in when complete. :class:`Results` collects every
step's tables, ``run.json`` and :class:`StepRecord` (``computed``, ``cached`` or ``skipped``
with the reason); the steps themselves are in :mod:`cfosstats.study.steps`.

Examples
--------
>>> results = Results(lab=None, folder=Path("reports/demo"), parameters={})
>>> results.skipped("effects"), results.table("effects", "effects") is None
('not run', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from cfosstats.core.atomic import atomic_dir
from cfosstats.core.cache import FileHasher, ResultsCache, cache_key

ID_COLUMNS = ("image_id", "group", "condition", "stratum", "animal", "experiment", "group_a", "group_b")


@dataclass
class StepRecord:
    """What happened to one step: ``computed``, ``cached`` or ``skipped`` (with the reason)."""

    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    key: str = ""
    note: str = ""  # said on the terminal only (e.g. a damaged cache recomputed), not in the report


@dataclass
class Results:
    """Everything the document is built from."""

    lab: Any
    folder: Path
    parameters: dict
    tables: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)  # name -> LabelSource (library predictions)
    prediction_root: Path | None = None
    model_cards: list[dict] = field(default_factory=list)
    inputs: pd.DataFrame | None = None
    published: list = field(default_factory=list)  # SetResult of published tables (reviewer mode)

    def table(self, step: str, name: str) -> pd.DataFrame | None:
        """A table of a step, or None when the step was skipped or did not write it."""
        return self.tables.get(step, {}).get(name)

    def skipped(self, step: str) -> str | None:
        """The reason a step was skipped, or None when it ran (or was cached)."""
        record = self.steps.get(step)
        if record is None:
            return "not run"
        return record.reason if record.status == "skipped" else None


class Progress:
    """One line per step on stderr (rich), or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.console = None
        if enabled:
            self.console = Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def status(self, text: str):
        if self.console is None:
            yield
            return
        with self.console.status(text):
            yield

    def done(self, record: StepRecord) -> None:
        if self.console is None:
            return
        mark = {"computed": "[green]✓[/]", "cached": "[cyan]●[/]", "skipped": "[yellow]–[/]"}[record.status]
        detail = f"{record.status}" + (f" in {record.seconds:.1f} s" if record.status == "computed" else "")
        if record.reason or record.note:
            detail += f": {record.reason or record.note}"
        self.console.print(f"{mark} {record.name}: {detail}")


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Every ``*.csv`` of a folder by file stem, identifiers read as text."""
    tables = {}
    for path in sorted(Path(folder).glob("*.csv")):
        try:
            header = pd.read_csv(path, nrows=0).columns
        except pd.errors.EmptyDataError:
            tables[path.stem] = pd.DataFrame()
            continue
        dtype = {c: str for c in ID_COLUMNS if c in header}
        tables[path.stem] = pd.read_csv(path, dtype=dtype, keep_default_na=True)
    return tables


def read_json(path: Path) -> dict:
    """A JSON file's object, or ``{}`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def config_record(lab) -> dict:
    """The lab's registry entry as it enters every cache key (without the file it came from)."""
    record = lab.config.as_dict()
    record.pop("source", None)
    return record


def analysed_lab(results: Results):
    """The lab with the library's predictions added to its label sources."""
    lab = results.lab
    if not results.predicted:
        return lab
    return dataclasses.replace(lab, label_sources={**lab.label_sources, **results.predicted})


class Runner:
    """Runs cached steps and records what happened."""

    def __init__(self, results: Results, progress: Progress):
        self.results = results
        self.progress = progress
        self.cache = ResultsCache(results.folder / "tables")
        lab = results.lab
        self.hasher = FileHasher(Path(lab.root).parent)

    def skip(self, step: str, reason: str) -> None:
        record = StepRecord(step, "skipped", reason)
        self.results.steps[step] = record
        self.progress.done(record)

    def run(
        self,
        step: str,
        files: Iterable[Path],
        parameters: dict,
        compute: Callable[[Path], object],
        version: int = 1,
        description: str = "",
    ) -> Path | None:
        """Load the step's tables from the cache, or compute them into its folder."""
        with self.progress.status(f"{step}: checking inputs"):
            digests = self.hasher.digests(files)
        key = cache_key(step, {"lab": config_record(self.results.lab), **parameters}, digests, version)
        folder, damaged = self.cache.verify(step, key)
        if folder is not None:
            record = StepRecord(step, "cached", key=key)
        else:
            started = time.perf_counter()
            # Computed beside the old folder and swapped in only when complete: an interrupted
            # update leaves the previous tables (and report) as they were.
            with atomic_dir(self.cache.root / step) as staging:
                with self.progress.status(description or f"{step}: computing"):
                    compute(staging)
            folder = self.cache.root / step
            seconds = time.perf_counter() - started
            self.cache.record(step, key, seconds, {"parameters": parameters, "n_inputs": len(digests)})
            why = f"recomputed: {damaged}" if damaged else ""
            record = StepRecord(step, "computed", seconds=seconds, key=key, note=why)
        self.results.steps[step] = record
        self.results.tables[step] = read_tables(folder)
        run_json = folder / "run.json"
        if run_json.is_file():
            self.results.runs[step] = read_json(run_json)
        self.progress.done(record)
        return folder
