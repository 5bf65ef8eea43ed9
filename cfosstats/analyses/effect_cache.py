"""The cache of effect tests: a unit's tests are rerun only when its tested values or choices change.

A unit (label source, region, readout) is keyed by the SHA-256 of its tested rows (image id,
group, animal, normalised and raw value, floats written exactly), the groups' order, the test
choices (alpha, levels, bootstrap resamples and seed) and the versions of cfosstats and of the
libraries whose arithmetic the tests use. A rerun over unchanged files and options reads every
unit's tables back instead of recomputing them; the tables are stored column by column with their
dtypes, so ``effects.csv`` comes out byte-identical.

Examples
--------
>>> import pandas as pd
>>> frames = [pd.DataFrame({"p": [0.5, float("nan")], "n": [3, 4], "call": ["none", None],
...                         "k": pd.array([1, None], dtype="Int64")})]
>>> back = frames_from_json(frames_to_json(frames))
>>> back[0].equals(frames[0]) and list(back[0].dtypes) == list(frames[0].dtypes)
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from cfosstats.core.hashing import sha256_bytes
from cfosstats.core.version import software_versions

__all__ = ["TESTS_CACHE_VERSION", "frames_from_json", "frames_to_json", "unit_key"]

TESTS_CACHE_VERSION = 1
# The libraries behind the tests' numbers: a new release may change a p value in its last digit.
_TEST_LIBRARIES = ("numpy", "pandas", "scipy", "statsmodels")


@cache
def _versions() -> tuple:
    return tuple(sorted(software_versions(_TEST_LIBRARIES).items()))


def unit_key(
    unit, order: Sequence[str], alpha: float, levels: Sequence[str], n_boot: int, seed: int, ci_level: float
) -> str:
    """The cache key of one unit's tests.

    Parameters
    ----------
    unit : Unit
        From :mod:`cfosstats.analyses.effect_tables`: its ``frame`` holds the tested rows.
    order, alpha, levels, n_boot, seed, ci_level
        The arguments of :func:`~cfosstats.analyses.effect_tables.analyse_unit`.

    Returns
    -------
    str
        Hex SHA-256.
    """
    frame = unit.frame
    rows = [frame[c].tolist() for c in ("image_id", "group", "animal", "value", "raw")]
    document = [
        TESTS_CACHE_VERSION,
        _versions(),
        [unit.source, unit.strategy, unit.region, unit.readout],
        list(order),
        float(alpha),
        list(levels),
        int(n_boot),
        int(seed),
        float(ci_level),
        rows,
    ]
    # json writes floats by repr: exact, so two values that differ in the last bit differ in the key.
    return sha256_bytes(json.dumps(document, default=str).encode("utf-8"))


def frames_to_json(frames: Sequence[pd.DataFrame]) -> list[dict[str, Any]]:
    """Tables as JSON-able columns with their dtypes (exact for floats, NaN and None).

    Parameters
    ----------
    frames : sequence of DataFrame

    Returns
    -------
    list of dict
        ``{"columns", "dtypes", "data"}`` per table.
    """
    return [
        {
            "columns": [str(c) for c in f.columns],
            "dtypes": [str(t) for t in f.dtypes],
            "data": [[_plain(v) for v in f[c].tolist()] for c in f.columns],
        }
        for f in frames
    ]


def _plain(value: Any) -> Any:
    """A JSON value for a cell: pd.NA as None (its dtype restores it), numpy scalars as Python's."""
    if value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def frames_from_json(stored: Sequence[dict[str, Any]]) -> list[pd.DataFrame]:
    """The tables :func:`frames_to_json` stored.

    Parameters
    ----------
    stored : sequence of dict

    Returns
    -------
    list of DataFrame
    """
    frames = []
    for table in stored:
        columns = {
            name: _column(values, dtype)
            for name, dtype, values in zip(table["columns"], table["dtypes"], table["data"], strict=True)
        }
        frames.append(pd.DataFrame(columns, columns=table["columns"], copy=False))
    return frames


def _column(values: list, dtype: str):
    """One stored column: a numpy array for numpy dtypes (fast), a pandas array for the others."""
    if dtype in _NUMPY_DTYPES:
        return np.array(values, dtype=dtype)
    return pd.array(values, dtype=dtype)


_NUMPY_DTYPES = frozenset({"float64", "int64", "bool", "object"})
