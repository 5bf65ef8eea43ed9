"""Small text helpers of the report: names of label sources and regions, plurals, lists, sorting.

Examples
--------
>>> listing([plural(1, "image"), short_source("scratch/expert_models/expert_1/unet_2")])
'1 image and expert_1/unet_2'
"""

from __future__ import annotations

import pandas as pd

MAX_TABLE_ROWS = 30


def short_source(name: str) -> str:
    """A short, readable name of a label source.

    Examples
    --------
    >>> short_source("scratch/expert_models/expert_1/unet_2")
    'expert_1/unet_2'
    >>> short_source("scratch/consensus_ensembles/ensemble_1/ensemble")
    'ensemble_1'
    >>> short_source("library/scratch/consensus_ensembles/ensemble_1/ensemble")
    'library ensemble_1'
    >>> short_source("expert_3")
    'expert_3'
    """
    name = str(name)
    library = name.startswith("library/")
    parts = name.removeprefix("library/").split("/")
    if len(parts) < 4:
        return name
    initialization, _model_type, model, unet = parts[-4:]
    short = model if unet == "ensemble" else f"{model}/{unet}"
    if initialization != "scratch":
        short = f"{initialization}: {short}"
    return f"library {short}" if library else short


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 image``, ``2 images``.

    Examples
    --------
    >>> plural(1, "image"), plural(3, "analysis", "analyses")
    ('1 image', '3 analyses')
    """
    return f"{n} {word if n == 1 else (words or word + 's')}"


def listing(items: list[str], limit: int = 6) -> str:
    """``a, b and c``; long lists end in ``and N more``.

    Examples
    --------
    >>> listing(["a", "b", "c"]), listing(["a"]), listing(list("abcdefgh"), 3)
    ('a, b and c', 'a', 'a, b, c and 5 more')
    """
    items = [str(i) for i in items]
    if not items:
        return "none"
    if len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def region_label(region) -> str:
    """Display name of a region (``image``, the whole image minus ignored parts, spelled out).

    Examples
    --------
    >>> region_label("image"), region_label("CA1")
    ('whole image', 'CA1')
    """
    return "whole image" if str(region) == "image" else str(region)


def effect_name(row) -> str:
    """``CA1 count, H vs C+``: an effect (a row with ``region``, ``readout``, ``comparison``)."""
    return f"{region_label(row['region'])} {row['readout']}, {row['comparison']}"


def has_columns(table: pd.DataFrame | None, *columns: str) -> bool:
    """Whether `table` exists, has rows and has every one of `columns`."""
    return table is not None and not table.empty and all(c in table.columns for c in columns)


def as_text(values: pd.Series, default: str) -> pd.Series:
    """A column as text, missing values replaced by `default` (whatever the column's dtype)."""
    return values.astype(object).where(values.notna(), default)


def comparison_key(comparison: str, groups) -> tuple:
    """Sort key of ``A vs B`` comparisons in the order of the groups (control first).

    Examples
    --------
    >>> sorted(["C- vs C+", "H vs C+", "H vs C-"], key=lambda c: comparison_key(c, ["H", "C-", "C+"]))
    ['H vs C-', 'H vs C+', 'C- vs C+']
    """
    order = {str(g): i for i, g in enumerate(groups)}
    parts = str(comparison).split(" vs ")
    return tuple(order.get(p, len(order)) for p in parts) + (str(comparison),)


def sort_effects(table: pd.DataFrame, groups) -> pd.DataFrame:
    """Effects sorted by region, readout, then comparison in group order."""
    key = table["comparison"].map(lambda c: comparison_key(c, groups))
    return (
        table.assign(_key=key).sort_values(["region", "readout", "_key"], kind="stable").drop(columns="_key")
    )
