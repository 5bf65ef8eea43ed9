"""How the spread of an ensemble's accuracy shrinks with its size (the study's Figure 3 analysis).

From n trained models, ensembles of i = 1..n members are drawn repeatedly (every combination
when there are few, else random draws without repetition within an ensemble); each ensemble's
F1 against the estimated ground truth is measured on the test images. The standard deviation of
those F1 values across draws, per i, falls roughly as ``a / sqrt(i)`` — as the mean of i
independent members' errors would; the study found a = 0.096 and chose i = 4.

The fit is least squares of ``sd_i = a / sqrt(i)`` over the sizes with at least two different
ensembles (a size with one possible ensemble has SD 0 by construction), in closed form::

    a = sum_i sd_i / sqrt(i)  /  sum_i 1 / i

Examples
--------
>>> sizes = np.array([1, 2, 3, 4])
>>> round(fit_inverse_sqrt(sizes, 0.1 / np.sqrt(sizes)), 12)
0.1
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np
import pandas as pd

#: Columns of :func:`ensemble_size_summary`.
SIZE_COLUMNS = ("size", "n_ensembles", "f1_mean", "f1_sd", "fitted_sd")


def member_subsets(n: int, size: int, n_draws: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """The ensembles of `size` members out of `n` to evaluate: all combinations when there are at
    most `n_draws`, else `n_draws` distinct random ones (members sorted within each).

    Examples
    --------
    >>> member_subsets(4, 2, 10, np.random.default_rng(0))
    [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    >>> len(member_subsets(12, 6, 20, np.random.default_rng(0)))
    20
    """
    if not 1 <= size <= n:
        raise ValueError(f"ensemble size {size} outside 1..{n}")
    if comb(n, size) <= n_draws:
        return list(combinations(range(n), size))
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < n_draws:
        chosen.add(tuple(sorted(int(i) for i in rng.choice(n, size, replace=False))))
    return sorted(chosen)


def fit_inverse_sqrt(sizes, sds) -> float:
    """Least-squares `a` of ``sd = a / sqrt(size)``.

    Examples
    --------
    >>> fit_inverse_sqrt([1, 4], [0.2, 0.1])
    0.2
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    sds = np.asarray(sds, dtype=np.float64)
    keep = np.isfinite(sds)
    if not keep.any():
        return float("nan")
    sizes, sds = sizes[keep], sds[keep]
    return float((sds / np.sqrt(sizes)).sum() / (1.0 / sizes).sum())


def ensemble_size_summary(scores: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per ensemble size: how many ensembles, the mean and SD of their F1, and the fitted SD.

    Parameters
    ----------
    scores : DataFrame
        One row per evaluated ensemble: ``size`` (members) and ``f1`` (its F1 against the
        estimated ground truth, e.g. the mean over the test images).

    Returns
    -------
    (DataFrame, float)
        Columns :data:`SIZE_COLUMNS` (``f1_sd`` is the sample SD, ddof 1; NaN for a size with one
        ensemble) and the fitted `a` (over sizes with at least two ensembles).

    Examples
    --------
    >>> scores = pd.DataFrame({"size": [1, 1, 2, 2, 3], "f1": [0.7, 0.9, 0.78, 0.84, 0.8]})
    >>> table, a = ensemble_size_summary(scores)
    >>> table[["size", "n_ensembles"]].values.tolist(), round(a, 4)
    ([[1, 2], [2, 2], [3, 1]], 0.1143)
    """
    rows = []
    for size, group in scores.groupby("size", sort=True):
        values = group["f1"].to_numpy(np.float64)
        rows.append(
            {
                "size": int(size),
                "n_ensembles": int(values.size),
                "f1_mean": float(values.mean()),
                "f1_sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    a = fit_inverse_sqrt(table["size"], table["f1_sd"]) if rows else float("nan")
    table["fitted_sd"] = a / np.sqrt(table["size"]) if rows else []
    return table.reindex(columns=list(SIZE_COLUMNS)), a
