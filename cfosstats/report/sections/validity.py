"""Validity: what do the analyses find? Normalised values, the tests at every level, outliers.

Tables: ``effects/quantification``, ``effects/effects`` (all levels), ``effects/outliers``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import normalised_values
from cfosstats.report.text import (
    MAX_TABLE_ROWS,
    has_columns,
    listing,
    plural,
    region_label,
    short_source,
    sort_effects,
)


def validity_section(results, figures: FigureMaker) -> Section:
    """Normalised values per group, the tests at every level side by side, outliers."""
    section = Section(
        "validity",
        "Validity: what do the analyses find?",
        "Every label set (annotators, est_GT, models, ensembles) is an analysis of the same images. For each "
        "region and readout the values are normalised to the control group's mean (per label set, region and "
        "experiment) and compared between groups: Kruskal-Wallis, then pairwise Mann-Whitney U with "
        "Bonferroni "
        "correction; eta² is the effect size.",
    )
    reason = results.skipped("effects")
    if reason:
        section.add(Note(f"Validity not assessed: {reason}."))
        return section
    run = results.runs.get("effects", {})
    if run.get("grouping") == "strata":
        section.add(
            Note(
                f"No conditions: {run.get('grouping_note', 'the sampling strata are the groups')}. "
                "Differences between strata are not treatment effects.",
                level="warning",
            )
        )
    if run.get("levels") and "animal" not in run.get("levels", []):
        section.add(
            Note(
                "No animals: the data names no animals, so only the image-level analysis was run "
                "(no animal-level or mixed-model sensitivity analysis).",
                level="warning",
            )
        )
    quantification = results.table("effects", "quantification")
    sub = section.sub("values", "Normalised values per group")
    if has_columns(quantification, "analysed", "strategy"):
        shown = quantification[quantification["analysed"].astype(str).str.lower() == "true"]
        long = _normalised_long(shown)
        n_regions = 1 if long is None else long["region"].nunique()
        n_readouts = 1 if long is None else long["readout"].nunique()
        sub.add(
            figures.make(
                "normalised",
                normalised_values,
                {"quantification": long},
                size=(max(6.5, min(10, 2.6 * n_regions + 1.4)), 2.3 * n_readouts + 1.0),  # legend fits
                conditions=list(run.get("groups", [])),
                value="normalised",
                caption="Per region (columns) and readout (rows): each image's value normalised to its "
                "control group's "
                "mean (dashed line = 1), by group and strategy (boxes pool the analyses of a strategy; "
                "the models' strategies where there are models, else the annotators; images a model "
                "was trained on are left out). Look for "
                "groups whose boxes sit away from 1 for every strategy, and for a strategy that disagrees.",
                alt="Box plots of normalised values by group and strategy in "
                f"{plural(n_regions, 'region')} and "
                f"{plural(n_readouts, 'readout')}.",
                what="normalised values figure",
            )
        )
    else:
        sub.add(Note("No quantification table with normalised values."))

    sub = section.sub("tests", "Test results: image level, animal level and mixed model side by side")
    effects = results.table("effects", "effects")
    side = _tests_side_by_side(effects, run.get("groups", []))
    all_negative = False
    if side is not None and len(side) > MAX_TABLE_ROWS:
        level_columns = [c for c in side.columns if c not in ("region", "readout", "comparison")]
        significant = side[level_columns].apply(lambda c: ~c.astype(str).str.startswith(("0/", "–")))
        if significant.any(axis=1).any():
            side = side[significant.any(axis=1)]
        else:
            all_negative = True
            sub.add(
                Text(
                    f"No analysis finds a significant difference in any of the {len(side)} comparisons at "
                    "any "
                    f"level ({listing(level_columns)}). Every test is in `tables/effects/effects.csv`."
                )
            )
    if side is None:
        sub.add(Note("No pairwise test results."))
    elif not all_negative:
        sub.add(
            Text(
                "For every effect, how many analyses call a significant change at each level: images as the "
                "unit (as in the study), images averaged per animal, and a mixed model with a random "
                "intercept per animal. Ensemble members are left out (their ensemble is counted). Cells: "
                "significant analyses / analyses (direction), median adjusted p."
            )
        )
        sub.add(
            Table(
                "tests",
                "Significant analyses per effect and level of analysis",
                side,
                "tables/effects/effects.csv",
            )
        )
    skipped = effects[effects["test"] == "skipped"] if has_columns(effects, "test", "note") else None
    if skipped is not None and len(skipped):
        why = skipped.groupby("note")["source"].unique()
        sub.add(
            Note(
                "Some label sets could not be tested: "
                + "; ".join(
                    f"{listing([short_source(s) for s in sources], 6)} — "
                    f"{str(note).removeprefix('skipped: ')}"
                    for note, sources in why.items()
                )
                + ".",
                level="info",
            )
        )

    sub = section.sub("outliers", "Outliers")
    outliers = results.table("effects", "outliers")
    if outliers is None:
        sub.add(Note("No outlier table."))
    elif outliers.empty:
        sub.add(
            Text(
                "Grubbs' test (two-sided, alpha 0.05, per label set, region, readout and group) flags no "
                "value."
            )
        )
    else:
        grouped = (
            outliers.groupby(["image_id", "region", "readout", "group"], dropna=False)
            .agg(flagged=("source", "nunique"), tested=("n_sources_tested", "max"), value=("value", "median"))
            .reset_index()
            .sort_values(["flagged", "image_id"], ascending=[False, True])
        )
        rows = pd.DataFrame(
            {
                "image": grouped["image_id"],
                "region": grouped["region"],
                "readout": grouped["readout"],
                "group": grouped["group"],
                "label sets flagging it": [
                    f"{int(f)}/{int(t)}" if pd.notna(t) else str(f)
                    for f, t in zip(grouped["flagged"], grouped["tested"])
                ],
                "median normalised value": grouped["value"],
            }
        )
        sub.add(
            Text(
                "Grubbs' test (two-sided, alpha 0.05) per label set, region, readout and group. Flagged "
                "values are reported, never removed: removal needs the lab's exclusion list. An image "
                "flagged by most label sets is unusual in itself; one flagged by a single label set points "
                "at that label set."
            )
        )
        sub.add(
            Table(
                "outliers",
                "Images flagged as outliers",
                rows.head(MAX_TABLE_ROWS),
                "tables/effects/outliers.csv",
            )
        )
    return section


def _normalised_long(quantification: pd.DataFrame) -> pd.DataFrame | None:
    columns = [c for c in quantification.columns if c.endswith("_normalised")]
    if not columns or "group" not in quantification.columns:
        return None
    keep = ["image_id", "source", "strategy", "region", "group"]
    long = quantification.melt(id_vars=keep, value_vars=columns, var_name="readout", value_name="normalised")
    long["readout"] = long["readout"].str.removesuffix("_normalised")
    voters = long[long["strategy"] != "ensemble_members"]
    return (voters if len(voters) else long).dropna(subset=["normalised"])


def _tests_side_by_side(effects: pd.DataFrame | None, groups=()) -> pd.DataFrame | None:
    if not has_columns(effects, "level", "comparison", "test", "significant"):
        return None
    rows = effects[
        (effects["comparison"] != "all")
        & (effects["test"] != "skipped")
        & (effects["strategy"] != "ensemble_members")
    ]
    if rows.empty:
        return None
    keys = ["region", "readout", "comparison"]
    out = sort_effects(rows[keys].drop_duplicates(), groups).reset_index(drop=True)
    labels = {"image": "image level", "animal": "animal level", "mixed": "mixed model"}
    for level, label in labels.items():
        part = rows[rows["level"] == level]
        if part.empty:
            continue
        cells = {}
        for key, group in part.groupby(keys):
            significant = group["significant"].astype(str).str.lower() == "true"
            directions = (
                group.loc[significant, "direction"].value_counts() if "direction" in group else pd.Series()
            )
            direction = f" ({directions.index[0]})" if len(directions) else ""
            p = group["p_adjusted"].median() if "p_adjusted" in group else np.nan
            p_text = "" if pd.isna(p) else f", p {'<0.001' if p < 0.001 else f'{p:.3f}'}"
            cells[key] = f"{int(significant.sum())}/{len(group)}{direction}{p_text}"
        out[label] = [cells.get(tuple(r), "–") for r in out[keys].itertuples(index=False)]
    out["region"] = out["region"].map(region_label)
    return out
