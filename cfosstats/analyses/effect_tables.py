"""The effect tests of a validity run, per (label source, region, readout), and their tables.

Downstream of measurement and shared with reviewer mode (:mod:`cfosstats.analyses.reviewer`):
:func:`long_table` (the tested values, one row per readout), :func:`outlier_table` (Grubbs
outliers, reported only), :func:`analyse_unit` (all tests of one unit at every level of
:data:`LEVELS`: a pure function, mapped in parallel by :func:`effects_table`) and
:func:`tidy_effects` (the columns and calls of ``effects.csv``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cfosstats.analyses.effect_cache import frames_from_json, frames_to_json, unit_key
from cfosstats.analyses.grouping import Grouping
from cfosstats.analyses.quantification import MIN_IMAGES
from cfosstats.core.parallel import map_tasks
from cfosstats.stats import effects as effect_tests
from cfosstats.stats import outliers as outlier_tests
from cfosstats.stats.quantify import READOUTS

__all__ = ["LEVELS", "Unit", "analyse_unit", "effects_table", "long_table", "outlier_table", "tidy_effects"]


CI_LEVEL = 0.95  # of the bootstrap intervals of eta²

# -- levels of analysis: name -> test function (a registry, see effects.py) ----------------------


def _image_level(frame, value, order, alpha):
    return effect_tests.group_tests(frame, value, "group", order, alpha)


def _animal_level(frame, value, order, alpha):
    return effect_tests.animal_level_tests(frame, value, "group", "animal", order, alpha)


def _mixed_level(frame, value, order, alpha):
    return effect_tests.mixed_model_tests(frame, value, "group", "animal", order, alpha)


#: Level of analysis -> (test function, needs animals).
LEVELS = {
    "image": (_image_level, False),
    "animal": (_animal_level, True),
    "mixed": (_mixed_level, True),
}


def long_table(table: pd.DataFrame) -> pd.DataFrame:
    """Analysed rows, one per readout: the tested value is the normalised readout."""
    parts = []
    analysed = table[table["analysed"]]
    for readout in READOUTS:
        part = analysed[["image_id", "source", "strategy", "region", "group", "animal", readout]].copy()
        part = part.rename(columns={readout: "raw"})
        part["value"] = analysed[f"{readout}_normalised"].to_numpy()
        part["readout"] = readout
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def outlier_table(long: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``outliers.csv``: iterated Grubbs outliers per (source, region, readout, group)."""
    by = ["source", "strategy", "region", "readout", "group"]
    data = long[long["value"].notna()]
    candidates = data[_grubbs_candidates(data, by, alpha)]
    flagged = outlier_tests.flag_outliers(candidates, "value", by=by, id_column="image_id", alpha=alpha)
    flagged["value_name"] = flagged["readout"].astype(str) + "_normalised"
    keys = ["image_id", "region", "readout"]
    tested = data.groupby(keys)["source"].nunique().rename("n_sources_tested")
    flags = flagged.groupby(keys)["source"].nunique().rename("n_sources_flagged")
    flagged = flagged.merge(flags, left_on=keys, right_index=True, how="left")
    flagged = flagged.merge(tested, left_on=keys, right_index=True, how="left")
    columns = [
        "source",
        "strategy",
        "region",
        "readout",
        "group",
        "image_id",
        "value_name",
        "value",
        "grubbs_g",
        "g_critical",
        "rank",
        "n_tested",
        "n_sources_flagged",
        "n_sources_tested",
    ]
    return flagged[columns].sort_values(["region", "readout", "image_id", "source"]).reset_index(drop=True)


def _grubbs_candidates(data: pd.DataFrame, by: list[str], alpha: float) -> pd.Series:
    """Rows of the groups whose first Grubbs step flags a value (only they can have outliers).

    The iterated test stops at its first step without an outlier, so a group whose largest
    ``|x - mean| / sd`` is not above the critical value has none: computing that statistic for
    all groups at once and testing only the others is exact and much faster.
    """
    grouped = data.groupby(by, sort=False, dropna=False)["value"]
    n = grouped.transform("count")
    deviation = (data["value"] - grouped.transform("mean")).abs()
    with np.errstate(divide="ignore", invalid="ignore"):
        g = deviation.groupby([data[c] for c in by], sort=False, dropna=False).transform("max")
        g = g / grouped.transform("std")
    critical = n.map({k: outlier_tests.grubbs_critical(int(k), alpha) for k in n.unique()})
    return (n >= 3) & (g > critical)


@dataclass(frozen=True)
class Unit:
    """One (label source, region, readout) to test."""

    source: str
    strategy: str
    region: str
    readout: str
    frame: pd.DataFrame  # group, animal, value, raw


def _skip_reason(unit: Unit, order: Sequence[str]) -> str:
    counts = unit.frame.groupby("group")[["image_id", "value", "raw"]].count().reindex(list(order)).fillna(0)
    for group, row in counts.iterrows():
        if row["image_id"] < MIN_IMAGES:
            return (
                f"skipped: group {group} has {int(row['image_id'])} analysed image(s) (< {MIN_IMAGES}) "
                "with a mask from this source"
            )
    for group, row in counts.iterrows():
        if row["value"] >= MIN_IMAGES:
            continue
        if row["raw"] >= MIN_IMAGES:
            return (
                f"skipped: normalised {unit.readout} undefined (control group mean is 0 or missing; "
                f"see warnings.csv)"
            )
        return f"skipped: {unit.readout} undefined in group {group} (no objects in its images)"
    return ""


def analyse_unit(
    unit: Unit,
    order: Sequence[str],
    alpha: float,
    levels: Sequence[str],
    n_boot: int,
    seed: int,
    ci_level: float = CI_LEVEL,
) -> list[pd.DataFrame]:
    """All tests of one (label source, region, readout): a pure function, mapped in parallel."""
    head = {"source": unit.source, "strategy": unit.strategy, "region": unit.region, "readout": unit.readout}
    reason = _skip_reason(unit, order)
    if reason:
        return [pd.DataFrame([{**head, "level": "image", "test": "skipped", "note": reason}])]
    frames = []
    for level in levels:
        function, _ = LEVELS[level]
        table = function(unit.frame, "value", list(order), alpha)
        table.insert(0, "level", level)
        table = _with_ci(table, unit, order, level, n_boot, seed, ci_level)
        frames.append(table.assign(**head))
    return frames


def _with_ci(table, unit, order, level, n_boot, seed, ci_level) -> pd.DataFrame:
    table["eta2_ci_low"] = np.nan
    table["eta2_ci_high"] = np.nan
    table["ci_level"] = ci_level
    table["n_boot"] = 0
    if n_boot <= 0 or level == "mixed":
        return table
    frame = unit.frame
    if level == "animal":
        frame = effect_tests.animal_means(frame, "value", "group", "animal")
    ci = effect_tests.bootstrap_eta2_ci(
        frame, "value", "group", list(order), n_boot=n_boot, seed=seed, level=ci_level
    )
    ci = ci.set_index("comparison")
    table["eta2_ci_low"] = table["comparison"].map(ci["eta2_ci_low"])
    table["eta2_ci_high"] = table["comparison"].map(ci["eta2_ci_high"])
    table["n_boot"] = n_boot
    return table


def _units(long: pd.DataFrame) -> list[Unit]:
    units = []
    for (source, strategy, region, readout), part in long.groupby(
        ["source", "strategy", "region", "readout"], sort=False
    ):
        frame = part[["image_id", "group", "animal", "value", "raw"]].reset_index(drop=True)
        units.append(Unit(source, strategy, region, readout, frame))
    return units


def _unit_seed(seed: int, unit: Unit) -> int:
    return (seed * 1_000_003 + zlib.crc32(f"{unit.source}|{unit.region}|{unit.readout}".encode())) % 2**32


def effects_table(
    long, table, grouping, alpha, levels, n_boot, seed, jobs, progress, store=None
) -> pd.DataFrame:
    """``effects.csv``: :func:`analyse_unit` mapped over the units, plus the skipped sources.

    `store` (a :class:`~cfosstats.analyses.measure.MeasurementCache`) holds earlier runs' tests
    by :func:`~cfosstats.analyses.effect_cache.unit_key`: only new or changed units are tested.
    """
    units = _units(long)
    tasks = [(u, grouping.order, alpha, levels, n_boot, _unit_seed(seed, u), CI_LEVEL) for u in units]
    keys = [unit_key(*task) for task in tasks] if store is not None else [None] * len(tasks)
    results: list = [None] * len(tasks)
    todo = []
    for i, key in enumerate(keys):
        if key is not None and store.has(key):
            results[i] = frames_from_json(store.get(key))
        else:
            todo.append(i)
    tested = map_tasks(analyse_unit, [tasks[i] for i in todo], jobs, progress, "testing effects")
    for i, result in zip(todo, tested):
        results[i] = result
        if store is not None:
            store.put(keys[i], frames_to_json(result))
    frames = [frame for result in results for frame in result]
    frames += _skipped_without_rows(table, long, grouping)
    effects = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    return tidy_effects(effects, table, grouping)


def _skipped_without_rows(table, long, grouping) -> list[pd.DataFrame]:
    """Sources with masks but no analysed row at all (e.g. only in-sample or excluded images)."""
    tested = set(zip(long["source"], long["region"])) if len(long) else set()
    frames = []
    for (source, strategy, region), part in table.groupby(["source", "strategy", "region"], sort=False):
        if (source, region) in tested:
            continue
        why = (
            "all its images are in-sample predictions"
            if part["in_sample"].all()
            else "no analysed image (excluded, in-sample or without a group)"
        )
        for readout in READOUTS:
            frames.append(
                pd.DataFrame(
                    [
                        {
                            "source": source,
                            "strategy": strategy,
                            "region": region,
                            "readout": readout,
                            "level": "image",
                            "test": "skipped",
                            "note": f"skipped: {why}",
                        }
                    ]
                )
            )
    return frames


def tidy_effects(effects: pd.DataFrame, table: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    """The columns of ``effects.csv`` in order, with ``n_in_sample_left_out`` and the calls."""
    head = ["source", "strategy", "region", "readout", "level", "grouping", "value"]
    tail = [
        *effect_tests.EFFECT_COLUMNS,
        *effect_tests.EFFECT_EXTRA_COLUMNS,
        "eta2_ci_low",
        "eta2_ci_high",
        "ci_level",
        "n_boot",
        "n_in_sample_left_out",
        "call",
    ]
    if effects.empty:
        return pd.DataFrame(columns=head + tail)
    effects = effects.reindex(columns=sorted(set(effects.columns) | set(head) | set(tail)))
    effects["grouping"] = grouping.name
    effects["value"] = effects["readout"].astype(str) + "_normalised"
    in_sample = table[table["in_sample"]].groupby(["source", "region"]).size()
    effects["n_in_sample_left_out"] = [
        int(in_sample.get((s, r), 0)) for s, r in zip(effects["source"], effects["region"])
    ]
    pairwise = (effects["comparison"] != "all") & effects["p_value"].notna() & (effects["test"] != "skipped")
    significant = effects["significant"].map(lambda v: bool(v) if pd.notna(v) else False).astype(bool)
    direction = effects["direction"].where(effects["direction"].isin(["increase", "decrease"]), "none")
    effects["call"] = np.where(pairwise, np.where(significant, direction, "none"), "")
    effects["note"] = effects["note"].fillna("")
    return effects[head + tail].reset_index(drop=True)
