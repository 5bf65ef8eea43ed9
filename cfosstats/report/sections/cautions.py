"""The verdict's cautions: one sentence per thing a reader should distrust (or may trust).

Each function reads one table (or the results) and returns its sentences, gravest first; the
verdict (:mod:`.verdict`) shows the first few and lists the rest under "Also note".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.report.text import (
    effect_name,
    has_columns,
    listing,
    plural,
    short_source,
)
from cfosstats.stats.power import animal_level_power
from cfosstats.stats.selection import truthy


def unit_of_analysis(repro: pd.DataFrame, lab, effects: pd.DataFrame | None = None) -> list[str]:
    out = []
    image_power = animal_level_power(effects, "image")
    if image_power is not None and image_power["powerless"]:
        out.append(
            "**No pairwise comparison can be significant with these group sizes:** with "
            f"{image_power['n_a']} and {image_power['n_b']} images per group the smallest possible two-sided "
            f"Mann-Whitney p is {image_power['min_p']:.3g}, above the per-pair alpha "
            f"{image_power['alpha_pair']:.3g} (Bonferroni). 'No effect' here means 'not testable', not "
            "'absent'."
        )
    if not lab.metadata["animal"].notna().any():
        out.append(
            "**Images are the only unit:** the data names no animals, so images of one animal count as "
            "independent and p-values may be too small."
        )
        return out
    power = animal_level_power(effects)
    for level, label in (("animal", "animal level (images averaged per animal)"), ("mixed", "mixed model")):
        column = f"majority_call_{level}"
        if column not in repro.columns:
            continue
        differ = repro[
            (repro["majority_call"].astype(str) != repro[column].astype(str)) & repro[column].notna()
        ]
        lost = differ[differ["majority_call"].isin(["increase", "decrease"])]
        gained = differ[~differ["majority_call"].isin(["increase", "decrease"])]
        if level == "animal" and power is not None and power["powerless"]:
            out.append(
                "**The animal-level test cannot find any effect here:** with "
                f"{power['n_a']} and {power['n_b']} animals per group the smallest possible two-sided "
                f"Mann-Whitney p is {power['min_p']:.3g}, above the per-pair alpha {power['alpha_pair']:.3g} "
                "(Bonferroni). Missing animal-level effects are no evidence against the image-level ones; "
                "read "
                "the mixed model (random intercept per animal) instead."
            )
            continue
        if len(lost):
            out.append(
                f"**{plural(len(lost), 'majority effect')} {'does' if len(lost) == 1 else 'do'} not hold at "
                f"the {label}:** "
                + listing([effect_name(r) for _, r in lost.iterrows()])
                + ". Images of one animal are not independent: treat these effects with caution."
            )
        if len(gained):
            out.append(
                f"{plural(len(gained), 'effect')} not found at image level "
                f"{'is' if len(gained) == 1 else 'are'}"
                f" called by the majority at the {label}: "
                + listing([f"{effect_name(r)} ({r[column]})" for _, r in gained.iterrows()])
                + "."
            )
    return out


def disagreeing_analyses(variation: pd.DataFrame | None) -> list[str]:
    if not has_columns(variation, "source", "n_differ"):
        return []
    voting = (
        variation[variation["votes"].astype(str).str.lower() == "true"] if "votes" in variation else variation
    )
    differ = voting[voting["n_differ"] > 0].sort_values("n_differ", ascending=False)
    if differ.empty:
        return ["Every voting analysis agrees with the majority on every effect."]
    n_calls = differ["n_calls"] if "n_calls" in differ.columns else pd.Series(np.nan, index=differ.index)
    items = [
        f"{short_source(s)} ({int(n)}/{int(c) if pd.notna(c) else '?'})"
        for s, n, c in zip(differ["source"], differ["n_differ"], n_calls)
    ]
    return [
        f"**{plural(len(differ), 'analysis', 'analyses')} of {len(voting)} disagree with the majority on at "
        "least one effect** (calls that differ / calls): " + listing(items, 8) + "."
    ]


def annotator_cautions(results) -> list[str]:
    out = []
    summary = results.table("objectivity", "annotator_summary")
    if has_columns(summary, "rater", "f1_median"):
        ordered = summary.sort_values("f1_median")
        worst, best = ordered.iloc[0], ordered.iloc[-1]
        out.append(
            f"Annotators agree with the estimated ground truth at a median object F1 from "
            f"{worst['f1_median']:.2f} ({worst['rater']}) to {best['f1_median']:.2f} ({best['rater']}): "
            "a model trained on one annotator inherits that annotator's view."
        )
    ba = results.table("objectivity", "bland_altman")
    if has_columns(ba, "rater", "bias", "loa_low", "loa_high"):
        per = ba.drop_duplicates("rater")
        biased = per[(per["loa_low"] > 0) | (per["loa_high"] < 0)]
        for _, row in biased.iterrows():
            direction = "fewer" if row["bias"] < 0 else "more"
            out.append(
                f"**{row['rater']} counts systematically {direction} objects** than the estimated ground "
                "truth "
                f"(mean difference {row['bias']:+.1f} per image, limits of agreement "
                f"{row['loa_low']:+.1f} to "
                f"{row['loa_high']:+.1f})."
            )
    icc = results.table("objectivity", "count_agreement")
    if has_columns(icc, "shrout_fleiss", "value"):
        row = icc[icc["shrout_fleiss"] == "ICC(2,1)"]
        if len(row) and pd.notna(row["value"].iloc[0]) and row["value"].iloc[0] < 0.75:
            out.append(
                f"Count agreement between annotators is only moderate (ICC(2,1), absolute agreement = "
                f"{row['value'].iloc[0]:.2f}): single-annotator counts differ systematically."
            )
    return out


def model_cautions(summary: pd.DataFrame | None) -> list[str]:
    if not has_columns(summary, "source", "passes_rule"):
        return []
    # passes_rule is None for a model trained on every annotated image: the rule cannot judge it.
    judged = summary[summary["passes_rule"].astype(str).str.lower().isin(["true", "false"])]
    failing = judged[~truthy(judged["passes_rule"])]
    images = (
        "image they were not trained on"
        if has_columns(summary, "n_in_sample")
        and (pd.to_numeric(summary["n_in_sample"], errors="coerce").fillna(0) > 0).any()
        else "annotated image"
    )
    out = []
    if len(judged) and failing.empty:
        out.append(
            f"All {plural(len(judged), 'model')} reach at least the worst annotator's F1 on every {images} "
            "(the study's selection rule)."
        )
    elif len(failing):
        out.append(
            f"**{plural(len(failing), 'model')} of {len(judged)} fall below the worst annotator on at least "
            f"one {images}** (the study's selection rule would reject them): "
            + listing([short_source(s) for s in failing["source"]], 8)
            + "."
        )
    if len(judged) < len(summary):
        unjudged = summary[~summary.index.isin(judged.index)]
        out.append(
            f"{plural(len(unjudged), 'model')} trained on every annotated image, so the selection rule "
            "cannot be checked: " + listing([short_source(s) for s in unjudged["source"]], 8) + "."
        )
    return out


def untested_sources(effects: pd.DataFrame | None) -> list[str]:
    """Label sets quantified but never tested (every image-level test skipped), and why.

    Examples
    --------
    >>> table = pd.DataFrame({"source": ["m", "m", "a"], "level": "image",
    ...     "test": ["skipped", "skipped", "mann_whitney"], "n_in_sample_left_out": [20, 20, 0]})
    >>> print(untested_sources(table)[0])  # doctest: +NORMALIZE_WHITESPACE
    **1 label set could not be tested**: fewer than 3 images were left in a group once the images
    its model was trained on were left out (m); it is quantified (quantification.csv) but takes no
    part in the vote.
    """
    if not has_columns(effects, "source", "level", "test"):
        return []
    image = effects[effects["level"] == "image"]
    skipped = image.groupby("source")["test"].agg(lambda tests: (tests == "skipped").all())
    untested = list(skipped[skipped].index)
    if not untested:
        return []
    left_out = (
        image.groupby("source")["n_in_sample_left_out"].max()
        if "n_in_sample_left_out" in image
        else pd.Series(0, index=skipped.index)
    )
    in_sample = [s for s in untested if left_out.fillna(0).get(s, 0) > 0]
    out = []
    if in_sample:
        out.append(
            f"**{plural(len(in_sample), 'label set')} could not be tested**: fewer than 3 images were left "
            f"in a group once the images {'its model was' if len(in_sample) == 1 else 'their models were'} "
            f"trained on were left out ({listing([short_source(s) for s in in_sample], 10)}); "
            + (
                "it is quantified (quantification.csv) but takes"
                if len(in_sample) == 1
                else "they are quantified (quantification.csv) but take"
            )
            + " no part in the vote."
            + (
                " The consensus models take part through their out-of-fold predictions (each image "
                "predicted by the fold model that did not train on it)."
                if effects["source"].astype(str).str.endswith("/out_of_fold").any()
                else ""
            )
        )
    other = [s for s in untested if s not in in_sample]
    if other:
        notes = image.loc[image["source"].isin(other), "note"] if "note" in image else pd.Series(dtype=str)
        notes = notes.dropna().astype(str).str.replace("skipped: ", "", regex=False)
        example = f", e.g. {notes.iloc[0]}" if len(notes) else ""
        out.append(
            f"**{plural(len(other), 'label set')} could not be tested** (too few images per group{example}; "
            f"see effects.csv): {listing([short_source(s) for s in other], 10)}."
        )
    return out


def outlier_cautions(outliers: pd.DataFrame | None) -> list[str]:
    if outliers is None:
        return []
    if outliers.empty:
        return ["Grubbs' test flags no outlier."]
    images = sorted(outliers["image_id"].astype(str).unique()) if "image_id" in outliers else []
    return [
        f"Grubbs' test flags {plural(len(outliers), 'value')} in {plural(len(images), 'image')} "
        f"({listing(images, 8)}); none was removed (removal needs the lab's exclusion list)."
    ]
