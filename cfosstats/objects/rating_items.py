"""Objects as rated items, for chance-corrected agreement (Fleiss' kappa) between label sets.

Kappa needs items that every rater rated. For segmentations the items are made as the study did:

* **object items**: the objects of all raters, matched across raters (every pair of raters
  matched one to one with :func:`cfosstats.objects.matching.match_labels`, IoU above the
  threshold), and joined into groups (union-find over the matches): each group is one item, and
  a rater rated it *present* when one of its objects is in the group, else *absent*;
* **background items**: random region proposals where no rater drew anything, each rated
  *absent* by every rater. Without them there would be no agreement on "no object" at all, and
  kappa would only see the items some rater found. Each proposal copies the footprint of a
  randomly chosen object item and is placed uniformly at random where it overlaps no rater's
  foreground, no ignored pixel and no earlier proposal (the proposals that do not fit after
  ``MAX_TRIES_PER_PROPOSAL`` tries are not made, and the count says so).

The share of background items sets the chance agreement: ``background_per_object`` = 1 (the
default) proposes as many background regions as there are object items. The study does not say
its ratio, so kappa values are comparable between strategies here (same ratio, same images), and
the ratio is recorded with them.

A group can, through a chain of matches, hold two objects of one rater (a1-b1, b1-c1, c1-a2);
the rater then counts once. On the real wue1 annotations this is rare (it needs two objects of
one rater that both overlap one object of another by IoU > 0.5, which one-to-one matching
forbids within a pair).

Examples
--------
>>> from cfosstats.objects.overlaps import index_objects
>>> a = np.array([[1, 1, 0, 0, 2, 2, 0, 0, 0, 0]])
>>> b = np.array([[1, 1, 0, 0, 0, 0, 0, 0, 0, 0]])
>>> items = rating_items({"a": index_objects(a), "b": index_objects(b)}, seed=0)
>>> items[["kind", "n_present", "n_raters"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
[{'kind': 'object', 'n_present': 2, 'n_raters': 2}, {'kind': 'object', 'n_present': 1, 'n_raters': 2},
 {'kind': 'background', 'n_present': 0, 'n_raters': 2}, {'kind': 'background', 'n_present': 0, 'n_raters': 2}]
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import pandas as pd

from cfosstats.objects.matching import MatchResult, match_labels
from cfosstats.objects.overlaps import ObjectIndex

ITEM_COLUMNS = ("item", "kind", "n_present", "n_raters")
MAX_TRIES_PER_PROPOSAL = 50


class _Groups:
    """Union-find over integer nodes."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, node: int) -> int:
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _codes(index: ObjectIndex, labels: np.ndarray) -> np.ndarray:
    return np.searchsorted(index.object_labels, np.asarray(labels, dtype=np.int64))


def object_groups(
    indices: Mapping[str, ObjectIndex],
    threshold: float = 0.5,
    criterion: str = "gt",
    matches: Mapping[tuple[str, str], MatchResult] | None = None,
):
    """Groups of matched objects across raters.

    `matches` may hold the raters' pairs already matched with these options (keys ``(a, b)``,
    ``a`` first in `indices`, as :func:`~cfosstats.objects.matching.match_pairs` gives them, also
    from a mapping with more label sets); the pairs not in it are matched here.

    Returns
    -------
    list of list of (str, int)
        Each group's members as (rater, object code), groups ordered by their first member
        (raters in the given order, objects in label order).
    """
    names = list(indices)
    offsets = np.cumsum([0] + [indices[n].n_objects for n in names])
    groups = _Groups(int(offsets[-1]))
    for (i, a), (j, b) in combinations(enumerate(names), 2):
        result = matches.get((a, b)) if matches is not None else None
        if result is None:
            result = match_labels(indices[a], indices[b], threshold, criterion)
        rater_labels, reference_labels = result.tp_labels
        for code_a, code_b in zip(
            _codes(indices[a], rater_labels).tolist(), _codes(indices[b], reference_labels).tolist()
        ):
            groups.join(int(offsets[i] + code_a), int(offsets[j] + code_b))
    members: dict[int, list[tuple[str, int]]] = {}
    for i, name in enumerate(names):
        for code in range(indices[name].n_objects):
            members.setdefault(groups.find(int(offsets[i] + code)), []).append((name, code))
    return [members[root] for root in sorted(members)]


def _first_member_footprints(indices: Mapping[str, ObjectIndex], groups) -> list[np.ndarray]:
    """Each group's first member's pixels as (row, col) relative to its top-left corner.

    A rater's pixels are sorted by object once (a stable sort keeps them increasing within an
    object), so each object is a slice, not a pass over all the rater's pixels."""
    by_rater: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    footprints = []
    for group in groups:
        rater, code = group[0]
        if rater not in by_rater:
            index = indices[rater]
            order = np.argsort(index.foreground_codes, kind="stable")
            rows, cols = np.divmod(index.foreground[order], index.shape[1])
            bounds = np.searchsorted(index.foreground_codes[order], np.arange(index.n_objects + 1))
            by_rater[rater] = (np.stack([rows, cols], axis=1), bounds)
        coordinates, bounds = by_rater[rater]
        pixels = coordinates[bounds[code] : bounds[code + 1]]
        footprints.append(pixels - pixels.min(axis=0))
    return footprints


def background_proposals(
    indices: Mapping[str, ObjectIndex],
    footprints: list[np.ndarray],
    n: int,
    rng: np.random.Generator,
    ignore: np.ndarray | None = None,
) -> int:
    """Place up to `n` copies of randomly chosen footprints where nothing is; return how many fit.

    Parameters
    ----------
    indices : mapping of str to ObjectIndex
        The raters' objects (their foreground is off limits).
    footprints : list of ndarray of int, shape (P, 2)
        Pixel coordinates (row, col) of object shapes, each relative to its top-left corner.
    n : int
        Proposals wanted.
    rng : numpy.random.Generator
    ignore : bool ndarray, optional
        Ignored pixels (off limits too).
    """
    shape = next(iter(indices.values())).shape
    occupied = np.zeros(shape, bool) if ignore is None else ignore.astype(bool, copy=True)
    flat = occupied.reshape(-1)
    for index in indices.values():
        flat[index.foreground] = True
    placed = 0
    for _ in range(n):
        footprint = footprints[int(rng.integers(len(footprints)))]
        height, width = footprint.max(axis=0) + 1
        if height > shape[0] or width > shape[1]:
            continue
        for _ in range(MAX_TRIES_PER_PROPOSAL):
            top = int(rng.integers(shape[0] - height + 1))
            left = int(rng.integers(shape[1] - width + 1))
            rows, cols = footprint[:, 0] + top, footprint[:, 1] + left
            if not occupied[rows, cols].any():
                occupied[rows, cols] = True
                placed += 1
                break
    return placed


def rating_items(
    indices: Mapping[str, ObjectIndex],
    threshold: float = 0.5,
    criterion: str = "gt",
    background_per_object: float = 1.0,
    seed: int = 0,
    ignore: np.ndarray | None = None,
    matches: Mapping[tuple[str, str], MatchResult] | None = None,
) -> pd.DataFrame:
    """The items of one image rated by every rater: object groups, then background proposals.

    Parameters
    ----------
    indices : mapping of str to ObjectIndex
        Rater -> its objects (labelled, size-filtered, ignored regions removed), at least 2.
    threshold, criterion
        The true-positive rule of :func:`~cfosstats.objects.matching.match_labels`.
    background_per_object : float
        Background proposals per object item (rounded).
    seed : int
        Fixes the proposals' footprints and places.
    ignore : bool ndarray, optional
        Ignored pixels: no proposal lies there.
    matches : mapping, optional
        Pairs already matched with these options (see :func:`object_groups`).

    Returns
    -------
    DataFrame
        One row per item, columns :data:`ITEM_COLUMNS`: ``item`` (0..), ``kind`` (``object`` or
        ``background``), ``n_present`` (raters that found it), ``n_raters``.
    """
    if len(indices) < 2:
        raise ValueError(f"rating items need at least 2 raters, got {len(indices)}")
    groups = object_groups(indices, threshold, criterion, matches)
    present = [len({rater for rater, _ in group}) for group in groups]
    footprints = _first_member_footprints(indices, groups)
    wanted = int(round(background_per_object * len(groups)))
    rng = np.random.default_rng(seed)
    n_background = background_proposals(indices, footprints, wanted, rng, ignore) if groups else 0
    kinds = ["object"] * len(groups) + ["background"] * n_background
    return pd.DataFrame(
        {
            "item": np.arange(len(kinds), dtype=np.int64),
            "kind": kinds,
            "n_present": np.array(present + [0] * n_background, dtype=np.int64),
            "n_raters": len(indices),
        },
        columns=list(ITEM_COLUMNS),
    )
