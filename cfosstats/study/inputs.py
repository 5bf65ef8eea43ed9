"""The input files of each step (their checksums key the cache) and ``tables/inputs.csv``.

Examples
--------
>>> from types import SimpleNamespace
>>> lab = SimpleNamespace(label_sources={}, image_ids=["1"], image_path=lambda i: f"images/{i}.png")
>>> files_of(lab, strategies=("annotators",)), image_files(lab)
([], [PosixPath('images/1.png')])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from cfosstats.core.atomic import write_csv
from cfosstats.core.hashing import sha256_bytes
from cfosstats.study.runner import Runner, analysed_lab


def files_of(lab, strategies: Iterable[str] | None = None, names: Iterable[str] | None = None) -> list[Path]:
    """The mask files of the label sources of some strategies, or of some names."""
    out: list[Path] = []
    for source in lab.label_sources.values():
        if (strategies is not None and source.strategy in strategies) or (
            names is not None and source.name in names
        ):
            out += [Path(p) for _, p in sorted(source.files.items())]
    return out


def image_files(lab, image_ids: Iterable[str] | None = None) -> list[Path]:
    """The image files of the lab (or of some of its images)."""
    ids = lab.image_ids if image_ids is None else list(image_ids)
    return [Path(lab.image_path(i)) for i in ids]


def metadata_digest(lab) -> str:
    """SHA-256 of the lab's image metadata (groups, animals, ...) without the file paths."""
    text = lab.metadata.drop(columns=["path"], errors="ignore").to_csv(index=False)
    return sha256_bytes(text.encode("utf-8"))


def all_inputs(lab) -> list[tuple[str, Path]]:
    """(group, file) of every input of the lab: images, masks, regions, metadata, registry entry."""
    groups: list[tuple[str, Path]] = [("images", Path(lab.image_path(i))) for i in lab.image_ids]
    for source in lab.label_sources.values():
        group = source.name if not source.is_prediction else f"{source.strategy}: {source.name}"
        groups += [(group, Path(p)) for _, p in sorted(source.files.items())]
    for region, files in lab.region_files.items():
        groups += [(f"region {region}", Path(p)) for _, p in sorted(files.items())]
    groups += [("ignored regions", Path(p)) for _, p in sorted(lab.ignore_files.items())]
    root = Path(lab.root)
    for extra in (root.parent / "image_mapping.xlsx", root / (lab.config.strata_file or "")):
        if extra.is_file():
            groups.append(("metadata", extra))
    if lab.config.source is not None and Path(lab.config.source).is_file():
        groups.append(("lab registry entry", Path(lab.config.source)))
    return groups


def write_inputs(runner: Runner) -> None:
    """Write ``tables/inputs.csv``: every input file's SHA-256 and size (only when it changed)."""
    results = runner.results
    rows = []
    for group, path in all_inputs(analysed_lab(results)):
        digest = runner.hasher.sha256(path)
        rows.append(
            {"group": group, "file": runner.hasher.name(path), "sha256": digest, "bytes": path.stat().st_size}
        )
    table = pd.DataFrame(rows, columns=["group", "file", "sha256", "bytes"])
    path = results.folder / "tables" / "inputs.csv"
    previous = None
    if path.is_file():
        with contextlib.suppress(OSError, pd.errors.ParserError):
            previous = pd.read_csv(path)
    if previous is None or not previous.equals(table):
        write_csv(path, table)
    results.inputs = table
