"""Whether pairwise Mann-Whitney tests can reach significance at all with the group sizes tested.

With few units (animals, or images) per group the exact two-sided Mann-Whitney test has a
smallest possible p of ``2 / C(n_a + n_b, n_a)``: with 4 animals per group that is 0.029, above
a Bonferroni alpha of 0.05 / 3, so no comparison can be significant whatever the data.
:func:`animal_level_power` reads that off an effects table (:func:`cfosstats.analyses.validity.run_effects`).

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"level": "animal", "comparison": "H vs C+", "test": "mann_whitney",
...     "n_a": [4], "n_b": [4], "alpha_comparison": [0.05 / 3]})
>>> animal_level_power(rows)["powerless"]
True
"""

from __future__ import annotations

from math import comb

import pandas as pd

POWER_COLUMNS = ("level", "comparison", "n_a", "n_b")


def smallest_mann_whitney_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided exact Mann-Whitney p of groups of `n_a` and `n_b`: 2 / C(n_a + n_b, n_a).

    Parameters
    ----------
    n_a, n_b : int
        Group sizes.

    Examples
    --------
    >>> round(smallest_mann_whitney_p(4, 4), 4), round(smallest_mann_whitney_p(3, 3), 3)
    (0.0286, 0.1)
    """
    return 2 / comb(int(n_a) + int(n_b), int(n_a))


def animal_level_power(effects: pd.DataFrame | None, level: str = "animal") -> dict | None:
    """Whether the pairwise Mann-Whitney tests of one level can reach significance at all.

    With few units (animals, or images) per group the exact two-sided Mann-Whitney test has a
    smallest possible p of ``2 / C(n_a + n_b, n_a)``; when that is above the per-pair alpha
    (Bonferroni), no comparison of that level can be significant whatever the data.

    Returns
    -------
    dict or None
        ``n_a``, ``n_b`` (the largest groups tested), ``min_p``, ``alpha_pair`` and
        ``powerless`` (True when no pair can be significant); None without rows of `level`.

    Examples
    --------
    >>> rows = pd.DataFrame({"level": "animal", "comparison": "H vs C+", "test": "mann_whitney",
    ...     "n_a": [4], "n_b": [4], "alpha_comparison": [0.05 / 3]})
    >>> info = animal_level_power(rows)
    >>> round(info["min_p"], 4), info["powerless"]
    (0.0286, True)
    """
    if effects is None or effects.empty or not all(c in effects.columns for c in POWER_COLUMNS):
        return None
    rows = effects[(effects["level"] == level) & (effects["comparison"] != "all")]
    if "test" in rows.columns:
        rows = rows[rows["test"].astype(str).str.startswith("mann_whitney")]
    rows = rows.dropna(subset=["n_a", "n_b"])
    if rows.empty:
        return None
    if "alpha_comparison" in rows.columns and rows["alpha_comparison"].notna().any():
        alpha_pair = float(rows["alpha_comparison"].dropna().max())
    else:
        alpha_pair = float("nan")
    sizes = rows[["n_a", "n_b"]].astype(int).drop_duplicates()
    best = min(smallest_mann_whitney_p(a, b) for a, b in sizes.itertuples(index=False))
    largest = sizes.assign(total=sizes.sum(axis=1)).sort_values("total").iloc[-1]
    return {
        "n_a": int(largest["n_a"]),
        "n_b": int(largest["n_b"]),
        "min_p": min(1.0, best),
        "alpha_pair": alpha_pair,
        "powerless": bool(best > alpha_pair) if alpha_pair == alpha_pair else False,
    }
