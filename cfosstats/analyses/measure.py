"""Per-image measurement of a validity run, mapped over worker processes, and its cache.

:func:`measure_image` is a pure function of file paths: it reads an image, its region and
ignored-region masks and several label sources' masks once, and returns the per-region
quantification, the whole-image object counts and the object-matching F1 of pairs of sources.
:func:`measure_all` plans the uncached work per image, maps it with
:func:`~cfosstats.core.parallel.map_tasks` and returns every result by cache key;
:class:`MeasurementCache` keeps the results keyed by the files' size and modification time, so
a second run over the same files reads no mask.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cfosstats.analyses.plan import SourcePlan, compared_pairs
from cfosstats.core.atomic import atomic_path
from cfosstats.core.errors import InputError
from cfosstats.core.hashing import sha256_bytes
from cfosstats.core.imageio import read_image, read_mask
from cfosstats.core.parallel import map_tasks, start_workers
from cfosstats.objects.label import drop_small_objects, index_labelled, label_foreground
from cfosstats.objects.matching import match_labels
from cfosstats.stats.quantify import analysed_areas, quantify_regions

__all__ = ["CACHE_VERSION", "MeasurementCache", "measure_all", "measure_image"]

CACHE_VERSION = 1


# -- the measurement cache -----------------------------------------------------------------------


class _Stamps:
    """What identifies a file's content cheaply: absolute path, size, modification time.

    Memoised for one run only (files may change between runs).
    """

    def __init__(self):
        self.known: dict[str, list] = {}

    def __call__(self, path: str | Path | None) -> list | None:
        if path is None:
            return None
        path = str(path)
        if path not in self.known:
            stat = os.stat(path)
            self.known[path] = [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]
        return self.known[path]


def _digest(*parts: Any) -> str:
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return sha256_bytes(text.encode("utf-8"))[:32]


class MeasurementCache:
    """A JSON file of measurements keyed by a digest of the files (size + mtime) and settings.

    Only the entries used by a run are saved again, so the file does not grow without bound.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.hits = 0
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = None
            if isinstance(loaded, dict) and loaded.get("version") == CACHE_VERSION:
                self.old = loaded.get("entries", {})

    def has(self, key: str) -> bool:
        """Whether `key` is cached (from an earlier run, or put in this one); counts hits."""
        if key in self.new:
            return True
        if key in self.old:
            self.hits += 1
            self.new[key] = self.old[key]
            return True
        return False

    def get(self, key: str) -> Any:
        """The cached value (None when absent)."""
        return self.new.get(key, self.old.get(key))

    def put(self, key: str, value: Any) -> None:
        self.new[key] = value

    def save(self, path: Path) -> None:
        # Streamed: the text of a large study's cache is never held whole in memory.
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"version": CACHE_VERSION, "entries": self.new}, handle, separators=(",", ":"))


# -- per-image work: a pure function of paths ------------------------------------------------------


def _check_shape(array: np.ndarray, shape: tuple | None, path: str, what: str) -> tuple:
    if shape is None:
        return array.shape
    if array.shape != tuple(shape):
        raise InputError(
            path,
            f"{what} shape {array.shape[0]}x{array.shape[1]} differs from the image's "
            f"({shape[0]}x{shape[1]})",
        )
    return shape


def measure_image(
    image_id: str,
    image_path: str | None,
    region_paths: Mapping[str, str],
    ignore_path: str | None,
    quantify: Mapping[str, str],
    whole: Mapping[str, str],
    pairs: Sequence[tuple[str, str]],
    min_size: int,
    um2_per_px: float | None,
    threshold: float = 0.5,
) -> dict:
    """Measure one image with several label sources (reads every file once).

    Parameters
    ----------
    image_id : str
    image_path : str or None
        The fluorescence image (needed for intensities; None when nothing is quantified).
    region_paths : mapping of str to str
        Region -> region mask file; empty: the whole image (region ``image``).
    ignore_path : str or None
        Ignored-region mask.
    quantify : mapping of str to str
        Label source -> mask file to quantify per region (:func:`quantify_image`).
    whole : mapping of str to str
        Label source -> mask file whose whole-image objects are counted (and matched in `pairs`).
    pairs : sequence of (str, str)
        Pairs of sources of `whole` to match object by object (F1 at IoU > `threshold`).
    min_size : int
        The lab's minimum object size.
    um2_per_px : float or None
        Pixel area (density per mm²).
    threshold : float
        IoU threshold of a true positive.

    Returns
    -------
    dict
        ``{"quantify": {source: [row, ...]}, "counts": {source: n}, "pairs": {"a|b": f1}}``.
    """
    del image_id  # part of the task for error messages and progress only
    shape = None
    image = None
    if quantify and image_path is not None:
        image = read_image(image_path)
        shape = image.shape
    masks: dict[str, np.ndarray] = {}
    for source, path in {**quantify, **whole}.items():
        if source not in masks:
            masks[source] = read_mask(path)
            shape = _check_shape(masks[source], shape, path, "mask")
    ignore = None
    if ignore_path is not None and masks:
        ignore = read_mask(ignore_path)
        _check_shape(ignore, shape, ignore_path, "ignored-region mask")
    regions = {}
    if quantify:
        for region, path in region_paths.items():
            regions[region] = read_mask(path)
            _check_shape(regions[region], shape, path, "region mask")
    out: dict[str, Any] = {"quantify": {}, "counts": {}, "pairs": {}}
    areas = analysed_areas(shape, regions, ignore) if quantify else None
    labels = {}
    for source in {**quantify, **whole}:
        # A mask that is also matched is labelled once: cut to each region for the readouts, then
        # size-filtered for the object count and matching (the same objects as labelling anew).
        mask = masks.pop(source)  # held no longer than needed
        labelled = label_foreground(mask, ignore) if source in whole else None
        if source in quantify:
            out["quantify"][source] = quantify_regions(
                mask, regions, image, min_size, ignore, um2_per_px, labelled=labelled, areas=areas
            )
        if labelled is not None:
            found = drop_small_objects(*labelled, min_size)
            # Indexed once: a source is matched with up to 8 others (each match indexed both).
            labels[source] = index_labelled(*found)
            out["counts"][source] = found[1]
    for a, b in pairs:
        out["pairs"][f"{a}|{b}"] = float(match_labels(labels[a], labels[b], threshold).f1)
    return out


# -- planning the per-image tasks -----------------------------------------------------------------


@dataclass
class _ImagePlan:
    image_id: str
    image_path: str
    regions: dict[str, str]
    ignore: str | None
    quantify: dict[str, str] = field(default_factory=dict)
    whole: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)


def _eligible(plan: SourcePlan, image_id: str, excluded: Mapping[str, str]) -> bool:
    return image_id in plan.files and image_id not in excluded and image_id not in plan.in_sample


def _plan_images(lab, plans, levels, excluded, settings, cache) -> tuple[list[_ImagePlan], dict]:
    """Per image: what is not cached yet; and every cache key, to read the results back."""
    by_name = {p.name: p for p in plans}
    _stamp = _Stamps()
    keys: dict[str, Any] = {"quantify": {}, "counts": {}, "pairs": {}}
    tasks = []
    for image_id in lab.image_ids:
        region_paths = {r: str(lab.region_files[r][image_id]) for r in lab.regions_of(image_id)}
        ignore = lab.ignore_files.get(image_id)
        task = _ImagePlan(
            image_id, str(lab.image_path(image_id)), region_paths, None if ignore is None else str(ignore)
        )
        image_stamp = _stamp(task.image_path)
        ignore_stamp = _stamp(task.ignore)
        region_stamps = sorted((r, _stamp(p)) for r, p in region_paths.items())
        for plan in plans:
            if image_id not in plan.files:
                continue
            mask = str(plan.files[image_id])
            key = _digest("quantify", _stamp(mask), image_stamp, region_stamps, ignore_stamp, *settings)
            keys["quantify"][(image_id, plan.name)] = key
            if not cache.has(key):
                task.quantify[plan.name] = mask
        needed = set()
        for sources in levels.values():
            eligible = [s for s in sources if _eligible(by_name[s], image_id, excluded)]
            if len(eligible) < 2:
                continue
            needed.update(eligible)
            for a, b in compared_pairs(eligible):
                pair_key = _digest(
                    "pair",
                    _stamp(by_name[a].files[image_id]),
                    _stamp(by_name[b].files[image_id]),
                    ignore_stamp,
                    *settings,
                )
                keys["pairs"][(image_id, a, b)] = pair_key
                if not cache.has(pair_key):
                    task.pairs.append((a, b))
        for source in sorted(needed):
            mask = by_name[source].files[image_id]
            key = _digest("count", _stamp(mask), ignore_stamp, settings[0])
            keys["counts"][(image_id, source)] = key
            if not cache.has(key) or any(source in pair for pair in task.pairs):
                task.whole[source] = str(mask)
        if task.quantify or task.whole:
            tasks.append(task)
    return tasks, keys


def measure_all(lab, plans, levels, excluded, settings, cache, jobs, progress) -> dict:
    """Run the uncached per-image work and return every result (cached or new) by cache key."""
    min_size, um2_per_px, threshold = settings
    if not cache.old:
        # A cold run will use the pool: fork it before the plan, whose keys grow with the
        # study and would otherwise be copied into every worker. A rerun may need no worker.
        start_workers(jobs)
    tasks, keys = _plan_images(lab, plans, levels, excluded, settings, cache)
    arguments = [
        (
            t.image_id,
            t.image_path if t.quantify else None,
            t.regions,
            t.ignore,
            t.quantify,
            t.whole,
            t.pairs,
            min_size,
            um2_per_px,
            threshold,
        )
        for t in tasks
    ]
    for task, result in zip(tasks, map_tasks(measure_image, arguments, jobs, progress, "measuring images")):
        for source, rows in result["quantify"].items():
            cache.put(keys["quantify"][(task.image_id, source)], rows)
        for source, count in result["counts"].items():
            if (task.image_id, source) in keys["counts"]:
                cache.put(keys["counts"][(task.image_id, source)], count)
        for pair, f1 in result["pairs"].items():
            a, b = pair.split("|", 1)
            cache.put(keys["pairs"][(task.image_id, a, b)], f1)
    return {kind: {k: cache.get(v) for k, v in table.items()} for kind, table in keys.items()}
