"""Outliers: the iterated two-sided Grubbs test, as the study ran it per group.

The study (Segebarth et al., eLife 2020) flagged outliers per (label source, region, condition)
with ``outliers.smirnov_grubbs.two_sided_test_indices(x, alpha=0.05)``: remove the value farthest
from the mean while its Grubbs statistic exceeds the critical value, and repeat on the rest. The
same procedure is implemented here without that package.

At each step, with ``n`` values of mean ``m`` and sample standard deviation ``s`` (``ddof=1``)

* ``G = max_i |x_i - m| / s``;
* ``G_crit = (n - 1) / sqrt(n) * sqrt(t**2 / (n - 2 + t**2))`` with
  ``t = t.ppf(1 - alpha / (2 n), n - 2)`` (two-sided);
* the value is an outlier when ``G > G_crit`` (strictly, like the ``outliers`` package).

``s`` uses ``ddof=1`` (Grubbs 1969; NIST/SEMATECH e-Handbook 1.3.5.17). The ``outliers`` package
calls ``data.std()``, which is ``ddof=1`` for the pandas Series the study passed it (and would be
``ddof=0`` for a NumPy array). Flagged rows are only reported here; removing them is the job of an
explicit, recorded exclusion list.

Examples
--------
>>> nist = [199.31, 199.53, 200.19, 200.82, 201.92, 201.95, 202.18, 245.57]
>>> grubbs_outliers(nist).tolist()
[7]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

OUTLIER_COLUMNS_TAIL = ("value_name", "value", "grubbs_g", "g_critical", "rank", "n_tested")
GRUBBS_STEP_COLUMNS = ("step", "position", "value", "n", "mean", "sd", "grubbs_g", "g_critical", "outlier")


def grubbs_critical(n: int, alpha: float = 0.05) -> float:
    """Critical value of the two-sided Grubbs statistic for ``n`` values.

    Parameters
    ----------
    n : int
        Number of values tested (at least 3).
    alpha : float
        Significance level of the two-sided test.

    Returns
    -------
    float
        ``(n - 1) / sqrt(n) * sqrt(t**2 / (n - 2 + t**2))`` with
        ``t = t.ppf(1 - alpha / (2 n), n - 2)``; NaN for ``n < 3``.

    Examples
    --------
    >>> round(grubbs_critical(8, 0.05), 4)  # NIST/SEMATECH e-Handbook example
    2.1266
    """
    if n < 3:
        return float("nan")
    t = stats.t.ppf(1.0 - alpha / (2.0 * n), n - 2)
    return float((n - 1) / np.sqrt(n) * np.sqrt(t**2 / (n - 2 + t**2)))


def grubbs_steps(values, alpha: float = 0.05, max_outliers: int | None = None) -> pd.DataFrame:
    """Every step of the iterated two-sided Grubbs test, including the final non-significant one.

    Parameters
    ----------
    values : array-like of float
        The values of one group. NaNs are ignored (they keep their positions).
    alpha : float
        Significance level of each two-sided test.
    max_outliers : int, optional
        Stop after this many outliers (default: until no more or fewer than 3 values are left).

    Returns
    -------
    pandas.DataFrame
        One row per test, columns ``step`` (1-based), ``position`` (index into ``values`` of the
        value farthest from the mean), ``value``, ``n`` (values tested), ``mean``, ``sd``
        (``ddof=1``), ``grubbs_g``, ``g_critical``, ``outlier`` (``grubbs_g > g_critical``).
        Empty when fewer than 3 values or all values are equal (``sd == 0``).

    Examples
    --------
    >>> steps = grubbs_steps([199.31, 199.53, 200.19, 200.82, 201.92, 201.95, 202.18, 245.57])
    >>> steps[["position", "n", "grubbs_g", "g_critical", "outlier"]].round(4)
       position  n  grubbs_g  g_critical  outlier
    0         7  8    2.4688      2.1266     True
    1         0  7    1.2749      2.0200    False
    """
    data = np.asarray(values, dtype=float).ravel()
    positions = np.flatnonzero(np.isfinite(data))
    limit = np.inf if max_outliers is None else max_outliers
    rows = []
    n_found = 0
    while positions.size >= 3 and n_found < limit:
        current = data[positions]
        mean = float(current.mean())
        sd = float(current.std(ddof=1))
        if not sd > 0:
            break
        deviation = np.abs(current - mean)
        farthest = int(np.argmax(deviation))  # first of equally far values, like the package
        g = float(deviation[farthest] / sd)
        g_crit = grubbs_critical(current.size, alpha)
        outlier = bool(g > g_crit)
        rows.append(
            {
                "step": len(rows) + 1,
                "position": int(positions[farthest]),
                "value": float(current[farthest]),
                "n": int(current.size),
                "mean": mean,
                "sd": sd,
                "grubbs_g": g,
                "g_critical": g_crit,
                "outlier": outlier,
            }
        )
        if not outlier:
            break
        n_found += 1
        positions = np.delete(positions, farthest)
    table = pd.DataFrame(rows, columns=list(GRUBBS_STEP_COLUMNS))
    return table.astype({"step": int, "position": int, "n": int, "outlier": bool})


def grubbs_outliers(values, alpha: float = 0.05, max_outliers: int | None = None) -> np.ndarray:
    """Positions of the outliers found by the iterated two-sided Grubbs test.

    Like ``outliers.smirnov_grubbs.two_sided_test_indices``: the value farthest from the mean is
    removed while its statistic exceeds the critical value (see the module notes), then the test
    is repeated on the remaining values.

    Parameters
    ----------
    values : array-like of float
        The values of one group. NaNs are ignored; positions count them.
    alpha : float
        Significance level of each two-sided test.
    max_outliers : int, optional
        Flag at most this many values.

    Returns
    -------
    numpy.ndarray of int
        Indices into ``values`` of the flagged values, in removal order; empty when fewer than 3
        (non-NaN) values are left, or all values are equal.

    Examples
    --------
    >>> grubbs_outliers([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, np.nan, 9.0]).tolist()
    [7]
    >>> grubbs_outliers([1.0, 2.0]).tolist()
    []
    """
    steps = grubbs_steps(values, alpha=alpha, max_outliers=max_outliers)
    return steps.loc[steps["outlier"], "position"].to_numpy(dtype=np.intp)


def flag_outliers(
    frame: pd.DataFrame,
    value: str,
    by: Sequence[str] | str,
    id_column: str = "image_id",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Flag outliers of ``value`` per group of ``by`` with the iterated two-sided Grubbs test.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy table, one row per image (for example the quantification table).
    value : str
        Column tested (e.g. ``"objects_per_mm2"``).
    by : sequence of str or str
        Grouping columns, e.g. ``["source", "region", "readout", "condition"]``; each group is
        tested on its own. An empty sequence tests the whole table as one group.
    id_column : str
        Column that names the row (image), copied into the output.
    alpha : float
        Significance level of each two-sided test.

    Returns
    -------
    pandas.DataFrame
        One row per flagged row of ``frame``: ``[*by, id_column, "value_name", "value",
        "grubbs_g", "g_critical", "rank", "n_tested"]``. ``value_name`` is ``value``; ``grubbs_g``
        and ``g_critical`` are those of the step at which the row was removed; ``rank`` is the
        1-based removal order within its group; ``n_tested`` the number of values in that step.
        An empty frame with these columns when nothing is flagged.

    Examples
    --------
    >>> table = pd.DataFrame(
    ...     {
    ...         "condition": ["H"] * 8 + ["C+"] * 4,
    ...         "image_id": [f"i{i}" for i in range(12)],
    ...         "count": [199.31, 199.53, 200.19, 200.82, 201.92, 201.95, 202.18, 245.57, 1, 2, 3, 4],
    ...     }
    ... )
    >>> flagged = flag_outliers(table, "count", by=["condition"])
    >>> flagged[["condition", "image_id", "value", "rank"]]
      condition image_id   value  rank
    0         H       i7  245.57     1
    """
    by_columns = [by] if isinstance(by, str) else list(by)
    columns = [*by_columns, id_column, *OUTLIER_COLUMNS_TAIL]
    missing = [c for c in [*by_columns, id_column, value] if c not in frame.columns]
    if missing:
        raise KeyError(f"flag_outliers: columns not in the table: {missing}")
    rows = []
    if by_columns:
        grouped = frame.groupby(by_columns, sort=False, dropna=False, observed=True)
        groups = ((key if isinstance(key, tuple) else (key,), part) for key, part in grouped)
    else:
        groups = iter([((), frame)])
    for key, part in groups:
        steps = grubbs_steps(
            pd.to_numeric(part[value], errors="coerce").to_numpy(dtype=float, na_value=np.nan), alpha=alpha
        )
        for rank, step in enumerate(steps[steps["outlier"]].itertuples(index=False), start=1):
            row = dict(zip(by_columns, key))
            row[id_column] = part[id_column].iloc[step.position]
            row.update(
                {
                    "value_name": value,
                    "value": step.value,
                    "grubbs_g": step.grubbs_g,
                    "g_critical": step.g_critical,
                    "rank": rank,
                    "n_tested": step.n,
                }
            )
            rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        dtypes = {c: frame[c].dtype for c in [*by_columns, id_column]}
        dtypes.update({"value_name": object, "value": float, "grubbs_g": float, "g_critical": float})
        dtypes.update({"rank": int, "n_tested": int})
        return table.astype(dtypes)
    return table.astype({"rank": int, "n_tested": int})
