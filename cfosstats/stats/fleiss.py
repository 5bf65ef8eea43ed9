"""Fleiss' kappa: chance-corrected agreement of several raters sorting items into categories.

For N items, each rated by the same number n of raters into k categories, with ``counts[i, j]``
the raters who put item i into category j (Fleiss 1971)::

    P_i   = (sum_j counts[i, j]**2 - n) / (n (n - 1))      agreement on item i
    P_bar = mean_i P_i                                     observed agreement
    p_j   = sum_i counts[i, j] / (N n)                     share of category j
    P_e   = sum_j p_j**2                                   agreement expected by chance
    kappa = (P_bar - P_e) / (1 - P_e)

The arithmetic is statsmodels' ``fleiss_kappa(table, method="fleiss")`` (the tests check it
against statsmodels and a hand-worked case), done here in numpy so that the agreement tables do
not import statsmodels (about a second). Kappa is read on the scale of Landis and Koch (1977),
as the study did (:func:`landis_koch`).

Examples
--------
>>> counts = np.array([[3, 0], [0, 3], [2, 1]])  # 3 raters, 3 items, present / absent
>>> round(fleiss_kappa(counts), 4)  # P_bar = 7/9, P_e = 41/81
0.55
>>> landis_koch(0.55)
'moderate'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Upper bounds (inclusive) of the Landis & Koch (1977) bands; below 0: "poor".
LANDIS_KOCH = (
    (0.0, "poor"),
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.00, "almost perfect"),
)


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of an items x categories table of rating counts.

    Parameters
    ----------
    counts : array_like of int, shape (N, k)
        Raters per item and category; every row must sum to the same number of raters n >= 2.

    Returns
    -------
    float
        Kappa; NaN when there are no items or every rating falls into one category (chance
        agreement 1: kappa is undefined, as in statsmodels).

    Raises
    ------
    ValueError
        For rows with different rater totals, negative counts, fewer than 2 raters, or not 2-D.

    Examples
    --------
    >>> fleiss_kappa([[2, 0], [0, 2]]), fleiss_kappa([[1, 1], [1, 1]])
    (1.0, -1.0)
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"counts must be 2-D (items x categories), got {table.ndim}-D")
    if table.shape[0] == 0:
        return float("nan")
    if (table < 0).any():
        raise ValueError("counts must not be negative")
    raters = table.sum(axis=1)
    n = raters[0]
    if not np.all(raters == n):
        raise ValueError("every item needs the same number of raters")
    if n < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 raters per item, got {n:g}")
    per_item = ((table**2).sum(axis=1) - n) / (n * (n - 1))
    observed = per_item.mean()
    shares = table.sum(axis=0) / (table.shape[0] * n)
    chance = float((shares**2).sum())
    if np.isclose(chance, 1.0, rtol=0, atol=1e-15):
        return float("nan")
    return float((observed - chance) / (1 - chance))


def landis_koch(kappa: float) -> str:
    """The Landis & Koch (1977) band of a kappa: poor (< 0), slight (0-0.20), fair (0.21-0.40),
    moderate (0.41-0.60), substantial (0.61-0.80), almost perfect (0.81-1); ``""`` for NaN.

    Examples
    --------
    >>> [landis_koch(k) for k in (-0.1, 0.1, 0.3, 0.5, 0.7, 0.9)]
    ['poor', 'slight', 'fair', 'moderate', 'substantial', 'almost perfect']
    """
    if kappa != kappa:
        return ""
    if kappa < 0:
        return LANDIS_KOCH[0][1]
    for upper, name in LANDIS_KOCH[1:]:
        if kappa <= upper:
            return name
    return LANDIS_KOCH[-1][1]


#: Columns of :func:`kappa_by_strategy`.
KAPPA_COLUMNS = (
    "strategy",
    "n_raters",
    "n_images",
    "n_object_items",
    "n_background_items",
    "kappa",
    "landis_koch",
)


def kappa_by_strategy(items: pd.DataFrame) -> pd.DataFrame:
    """Fleiss' kappa of each strategy's raters, over the rated items of all its images.

    Parameters
    ----------
    items : DataFrame
        Rated items (:func:`cfosstats.objects.rating_items.rating_items` rows) with columns
        ``image_id``, ``strategy``, ``kind``, ``n_present`` and ``n_raters``.

    Returns
    -------
    DataFrame
        One row per strategy, columns :data:`KAPPA_COLUMNS`. Kappa needs the same raters on
        every item, so only the images where the strategy had its most raters count
        (``n_images``); ``landis_koch`` is the kappa's band.

    Examples
    --------
    >>> items = pd.DataFrame({"image_id": "1", "strategy": "annotators",
    ...                       "kind": ["object", "object", "background"],
    ...                       "n_present": [3, 2, 0], "n_raters": 3})
    >>> kappa_by_strategy(items)[["n_object_items", "kappa"]].round(4).to_dict("records")
    [{'n_object_items': 2, 'kappa': 0.55}]
    """
    rows = []
    for strategy, group in items.groupby("strategy", sort=True):
        n_raters = int(group["n_raters"].max())
        group = group[group["n_raters"] == n_raters]
        present = group["n_present"].to_numpy(np.int64)
        kappa = fleiss_kappa(np.stack([present, n_raters - present], axis=1)) if n_raters >= 2 else np.nan
        rows.append(
            {
                "strategy": strategy,
                "n_raters": n_raters,
                "n_images": int(group["image_id"].nunique()),
                "n_object_items": int((group["kind"] == "object").sum()),
                "n_background_items": int((group["kind"] == "background").sum()),
                "kappa": kappa,
                "landis_koch": landis_koch(kappa),
            }
        )
    return pd.DataFrame(rows, columns=list(KAPPA_COLUMNS))
