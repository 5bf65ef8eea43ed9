"""Test hold-out and stratified k-fold split of a lab's annotated images, fixed by a seed.

The study's set-up: a test set that no model ever trains on (one image per sampling stratum for
wue1, i.e. 9 of 36), and k-fold cross-validation on the rest (k = 4 for wue1, 5 elsewhere), with
every stratum spread over the folds. The same seed gives the same split for every strategy
(consensus and each annotator), so models of different strategies are compared on the same
images.

How
---
Strata are visited in sorted order, and images within a stratum in an order shuffled by the
seed. The first image(s) of each stratum go to the test set; the rest are dealt to folds 1..k
in turn, the dealing continuing across strata, so fold sizes differ by at most one and each
stratum's images land in different folds. A lab without strata is one stratum, and its test set
is a fifth of the images (at least one).

Examples
--------
>>> ids = [f"{i:02d}" for i in range(12)]
>>> strata = {i: str(int(i) % 3) for i in ids}
>>> split = split_images(ids, strata, k=3, seed=1)
>>> len(split.test), [len(f) for f in split.folds]
(3, [3, 3, 3])
>>> sorted(strata[i] for i in split.test)
['0', '1', '2']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

UNSTRATIFIED_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """A test set and k validation folds; fold numbers are 1-based (they name ``unet_<fold>``).

    Attributes
    ----------
    seed : int
        The seed the split was drawn with.
    test : tuple of str
        Held-out test images (sorted).
    folds : tuple of tuple of str
        Validation images of folds 1..k (each sorted).
    """

    seed: int
    test: tuple[str, ...]
    folds: tuple[tuple[str, ...], ...]

    @property
    def k(self) -> int:
        return len(self.folds)

    def validation(self, fold: int) -> tuple[str, ...]:
        """Validation images of `fold` (1..k)."""
        self._check(fold)
        return self.folds[fold - 1]

    def training(self, fold: int) -> tuple[str, ...]:
        """Training images of `fold`: every non-test image outside its validation set."""
        self._check(fold)
        return tuple(sorted(i for f, ids in enumerate(self.folds, 1) if f != fold for i in ids))

    def _check(self, fold: int) -> None:
        if not 1 <= fold <= self.k:
            raise ValueError(f"fold {fold} is not within 1..{self.k}")

    def as_dict(self) -> dict:
        return {"seed": self.seed, "test": list(self.test), "folds": [list(f) for f in self.folds]}


def _groups(image_ids: Sequence[str], strata: Mapping[str, object] | None) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for image_id in sorted(image_ids):
        value = None if strata is None else strata.get(image_id)
        key = "" if value is None or value != value else str(value)  # value != value: NaN / NA
        groups.setdefault(key, []).append(image_id)
    return dict(sorted(groups.items()))


def split_images(
    image_ids: Sequence[str],
    strata: Mapping[str, object] | None = None,
    k: int = 4,
    seed: int = 0,
    test_per_stratum: int = 1,
) -> Split:
    """Hold out a test set (per stratum) and deal the rest into `k` stratified folds.

    Parameters
    ----------
    image_ids : sequence of str
        The annotated images.
    strata : mapping, optional
        image id -> stratum; missing or NA values form one extra stratum. None: unstratified.
    k : int
        Number of folds (at least 2).
    seed : int
        Fixes the split.
    test_per_stratum : int
        Test images drawn from each stratum; 0 for no test set. Without strata, a fifth of all
        images (at least one) is held out instead, unless this is 0.

    Raises
    ------
    ValueError
        When there are too few images for `k` folds, or ids repeat.
    """
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("image ids repeat")
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    rng = np.random.default_rng(seed)
    groups = _groups(image_ids, strata)
    stratified = strata is not None and any(key != "" for key in groups)
    test: list[str] = []
    rest: list[list[str]] = []
    for members in groups.values():
        shuffled = [members[i] for i in rng.permutation(len(members))]
        if stratified:
            n_test = min(test_per_stratum, len(shuffled))
        else:
            n_test = max(1, round(UNSTRATIFIED_TEST_FRACTION * len(shuffled))) if test_per_stratum else 0
        test += shuffled[:n_test]
        rest.append(shuffled[n_test:])
    n_rest = sum(map(len, rest))
    if n_rest < k:
        raise ValueError(f"{n_rest} images left after the test hold-out: too few for {k} folds")
    folds: list[list[str]] = [[] for _ in range(k)]
    dealt = 0
    for members in rest:
        for image_id in members:
            folds[dealt % k].append(image_id)
            dealt += 1
    return Split(seed, tuple(sorted(test)), tuple(tuple(sorted(f)) for f in folds))
