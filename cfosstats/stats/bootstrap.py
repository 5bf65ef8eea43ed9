"""Bootstrap confidence intervals of the study's effect sizes (stratified or by animal).

Percentile intervals of the eta² of :func:`group_tests <cfosstats.stats.effects.group_tests>`:
every resample is a vector of weights on the images, so all resamples are computed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from cfosstats.stats.effect_table import (
    MIN_ANIMALS,
    MIN_VALUES,
    OMNIBUS,
    _check_order,
    _group_note,
    _join,
    _numeric,
)
from cfosstats.stats.ranks import mann_whitney_effect

BOOTSTRAP_COLUMNS = ("comparison", "eta2_ci_low", "eta2_ci_high", "n_boot", "level")
BOOTSTRAP_EXTRA_COLUMNS = ("test", "eta2", "unit", "note")


def bootstrap_weights(
    frame: pd.DataFrame,
    value: str,
    group: str,
    order: Sequence,
    n_boot: int = 1000,
    seed: int = 0,
    cluster: str | None = None,
) -> np.ndarray:
    """Resampling weights of the stratified (or cluster) bootstrap, one row per resample.

    A weight is how often a row of ``frame`` is drawn into a bootstrap sample. Within each group
    of ``order`` (in that order, from ``np.random.default_rng(seed)``), either the rows are
    drawn with replacement, as many as the group has (stratified bootstrap), or, with
    ``cluster``, the animals are drawn with replacement, as many as the group has, each with all
    its images (cluster bootstrap; animals are nested in groups). Rows with a NaN value (or a
    missing animal), or outside ``order``, get weight 0.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_boot, len(frame))``, integer counts as floats.

    Examples
    --------
    >>> table = pd.DataFrame({"g": ["H", "H", "C", "C"], "v": [1.0, 2.0, 3.0, 4.0]})
    >>> weights = bootstrap_weights(table, "v", "g", ["H", "C"], n_boot=3, seed=1)
    >>> weights.shape, weights[:, :2].sum(axis=1).tolist()
    ((3, 4), [2.0, 2.0, 2.0])
    """
    return _resample_counts(frame, value, group, order, n_boot, seed, cluster).astype(float)


def _resample_counts(frame, value, group, order, n_boot, seed, cluster) -> np.ndarray:
    """:func:`bootstrap_weights` in the smallest unsigned integer type that holds the counts."""
    order = _check_order(order)
    rng = np.random.default_rng(seed)
    values = _numeric(frame[value])
    keep = ~np.isnan(values)
    if cluster is not None:
        keep &= frame[cluster].notna().to_numpy()
    labels = frame[group].to_numpy(dtype=object)
    # A count is at most a group's size: uint16 for any study below 65,536 images (1/4 of float64).
    counts_of_rows = np.zeros((n_boot, len(frame)), dtype=np.min_scalar_type(len(frame)))
    for g in order:
        rows = np.flatnonzero(keep & (labels == g))
        if rows.size == 0:
            continue
        if cluster is None:
            codes, n_units = np.arange(rows.size), rows.size
        else:
            codes, uniques = pd.factorize(frame[cluster].to_numpy(dtype=object)[rows])
            n_units = len(uniques)
        counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot)
        counts_of_rows[:, rows] = counts[:, codes]
    return counts_of_rows


# Resamples are scored in blocks of this many, so that the working arrays stay
# ``O(BLOCK * n)`` whatever the number of resamples (memory flat in the study size).
BLOCK = 128


def _blockwise(score, weights: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """``score`` of each block of resamples (its weights of each set of ``columns``), concatenated.

    Only one block's columns are copied (as float64) at a time, never all of ``weights``.
    """
    blocks = (weights[i : i + BLOCK] for i in range(0, max(len(weights), 1), BLOCK))
    return np.concatenate([score(*(block[:, c].astype(np.float64) for c in columns)) for block in blocks])


def _runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order of ``x``, the start of each run of equal sorted values, and each value's run."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    new_run = np.r_[True, ordered[1:] != ordered[:-1]]
    run_of = np.empty(x.size, dtype=np.intp)
    run_of[order] = np.cumsum(new_run) - 1
    return order, np.flatnonzero(new_run), run_of


def _weighted_mwu_eta2(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, x_columns: np.ndarray, y_columns: np.ndarray
) -> np.ndarray:
    """The study's eta² of every resample (U of x with half ties; weights of x and y in columns).

    For each y, the weighted counts of x above and equal to it come from the cumulative
    weights of the sorted x (``O(n log n)`` time, ``O(n)`` memory per resample). Weights are
    counts, so every sum is an exact integer or half-integer, whatever the summation order.
    """
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    below = np.searchsorted(ordered, y, side="left")
    upto = np.searchsorted(ordered, y, side="right")

    def score(wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
        cumulative = np.zeros((len(wx), x.size + 1))
        np.cumsum(wx[:, order], axis=1, out=cumulative[:, 1:])
        total = cumulative[:, -1:]
        wins = (total - cumulative[:, upto]) + 0.5 * (cumulative[:, upto] - cumulative[:, below])
        u = (wins * wy).sum(axis=1)
        n1, n2 = wx.sum(axis=1), wy.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (u - n1 * n2 / 2.0) / np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
            return z**2 / (n1 + n2)

    return _blockwise(score, weights, x_columns, y_columns)


def _weighted_kruskal_eta2(
    x: np.ndarray, codes: np.ndarray, k: int, weights: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """eta²_H of every resample (weights of x in ``columns``; midranks, tie-corrected H as scipy).

    Midranks come from the cumulative weights of the runs of equal sorted values (``O(n)``
    memory per resample); all sums are exact (weights are counts), so the order they are
    taken in does not change a bit.
    """
    order, starts, run_of = _runs(x)
    indicator = np.eye(k)[codes]  # (n_values, k)

    def score(block: np.ndarray) -> np.ndarray:
        run_weight = np.add.reduceat(block[:, order], starts, axis=1)  # weighted count of each value
        run_rank = np.cumsum(run_weight, axis=1) - run_weight + (run_weight + 1.0) / 2.0
        ranks, tied = run_rank[:, run_of], run_weight[:, run_of]
        n = block.sum(axis=1)
        rank_sums = (block * ranks) @ indicator
        sizes = block @ indicator
        with np.errstate(invalid="ignore", divide="ignore"):
            h = 12.0 / (n * (n + 1)) * np.sum(rank_sums**2 / sizes, axis=1) - 3.0 * (n + 1)
            tie_sum = np.sum(block * (tied**2 - 1.0), axis=1)
            h = h / (1.0 - tie_sum / (n**3 - n))
            return (h - k + 1) / (n - k)

    return _blockwise(score, weights, columns)


def bootstrap_eta2_ci(
    frame: pd.DataFrame,
    value: str,
    group: str,
    order: Sequence,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of the effect sizes of :func:`group_tests`.

    Resamples are drawn within groups (stratified; see :func:`bootstrap_weights`), or, with
    ``cluster`` (the animal column), whole animals within groups (cluster bootstrap of the
    image-level effect sizes). Each resample is a vector of weights on the images, so U (and
    the Kruskal-Wallis rank sums, with midranks and scipy's tie correction) of all resamples are
    computed from cumulative weights of the sorted values: ``O(n_boot * n log n)`` time for
    ``n`` images, and working memory of a block of resamples at a time.

    Parameters
    ----------
    frame, value, group, order
        As in :func:`group_tests`.
    n_boot : int
        Number of resamples.
    seed : int
        Seed of ``np.random.default_rng``; the result is deterministic given it.
    level : float
        Coverage of the interval (quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` of the
        finite resampled values).
    cluster : str, optional
        Animal column: resample animals instead of images.

    Returns
    -------
    pandas.DataFrame
        :data:`BOOTSTRAP_COLUMNS` then :data:`BOOTSTRAP_EXTRA_COLUMNS`: one row per row of
        :func:`group_tests` (``comparison`` ``"all"`` for eta²_H), with ``test``, the point
        estimate ``eta2`` (of the original images), ``unit`` (``"image"`` or ``"animal"``, what
        was resampled) and a ``note``. Groups with fewer than 3 values (or, with ``cluster``,
        fewer than 2 animals) give NaN intervals with a note.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"g": np.repeat(["H", "C+"], 15), "v": rng.normal(size=30)})
    >>> table.loc[table["g"] == "C+", "v"] += 1.5
    >>> ci = bootstrap_eta2_ci(table, "v", "g", ["H", "C+"], n_boot=200, seed=0)
    >>> ci.loc[0, "eta2_ci_low"] < ci.loc[0, "eta2"] < ci.loc[0, "eta2_ci_high"]
    np.True_
    """
    order = _check_order(order)
    weights = _resample_counts(frame, value, group, order, n_boot, seed, cluster)
    values = _numeric(frame[value])
    labels = frame[group].to_numpy(dtype=object)
    used = ~np.isnan(values)
    if cluster is not None:
        used &= frame[cluster].notna().to_numpy()
    rows_of = {g: np.flatnonzero(used & (labels == g)) for g in order}
    invalid = {g: _group_note(g, rows_of[g].size) for g in order if rows_of[g].size < MIN_VALUES}
    if cluster is not None:
        for g in order:
            n_animals = pd.unique(frame[cluster].to_numpy(dtype=object)[rows_of[g]]).size
            if g not in invalid and n_animals < MIN_ANIMALS:
                invalid[g] = _group_note(g, n_animals, "animals", MIN_ANIMALS)
    quantiles = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    unit = "image" if cluster is None else "animal"
    records = []

    def record(comparison: str, test: str, point: float, replicates, notes) -> None:
        low = high = float("nan")
        if replicates is not None:
            finite = replicates[np.isfinite(replicates)]
            if finite.size:
                low, high = (float(q) for q in np.quantile(finite, quantiles))
        records.append(
            {
                "comparison": comparison,
                "eta2_ci_low": low,
                "eta2_ci_high": high,
                "n_boot": int(n_boot),
                "level": float(level),
                "test": test,
                "eta2": point,
                "unit": unit,
                "note": _join(notes),
            }
        )

    if len(order) >= 3:
        if invalid:
            record(OMNIBUS, "kruskal", float("nan"), None, invalid.values())
        else:
            rows = np.concatenate([rows_of[g] for g in order])
            codes = np.concatenate([np.full(rows_of[g].size, i) for i, g in enumerate(order)])
            x = values[rows]
            every = np.arange(rows.size)
            point = float(_weighted_kruskal_eta2(x, codes, len(order), np.ones((1, rows.size)), every)[0])
            replicates = _weighted_kruskal_eta2(x, codes, len(order), weights, rows)
            record(OMNIBUS, "kruskal", point, replicates, [])
    for a, b in combinations(order, 2):
        notes = [invalid.get(a, ""), invalid.get(b, "")]
        if any(notes):
            record(f"{a} vs {b}", "mann_whitney", float("nan"), None, notes)
            continue
        ra, rb = rows_of[a], rows_of[b]
        xa, xb = values[ra], values[rb]
        point = mann_whitney_effect(xa, xb)["eta2"]
        replicates = _weighted_mwu_eta2(xa, xb, weights, ra, rb)
        record(f"{a} vs {b}", "mann_whitney", point, replicates, [])
    return pd.DataFrame(records, columns=[*BOOTSTRAP_COLUMNS, *BOOTSTRAP_EXTRA_COLUMNS])
