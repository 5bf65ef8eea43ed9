"""Objectivity: do the annotators agree? Agreement, STAPLE, counts, and the image panel.

Tables: ``objectivity/pairwise_f1``, ``objectivity/objects``, ``objectivity/annotator_summary``,
``groundtruth/annotators`` (STAPLE), ``objectivity/count_agreement``, ``objectivity/bland_altman``;
the image panel (:mod:`.panel`) reads the masks themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import annotator_f1, bland_altman, pairwise_f1_heatmap, staple_performance
from cfosstats.report.sections.library import kappa_phrase
from cfosstats.report.sections.panel import panel_section
from cfosstats.report.text import (
    as_text,
    has_columns,
    listing,
    plural,
)


def objectivity_section(results, figures: FigureMaker) -> Section:
    """Annotator agreement, STAPLE, counts, and the image panel."""
    section = Section(
        "objectivity",
        "Objectivity: do the annotators agree?",
        "An analysis is objective when it does not depend on who annotated the images. Several "
        "annotators labelled the same images; their agreement with each other and with the estimated "
        "ground truth (est_GT, STAPLE of all annotators) shows how much one person's judgement matters.",
    )
    reason = results.skipped("objectivity")
    if reason:
        section.add(Note(f"Objectivity not assessed: {reason}."))
        return section
    objects = results.table("objectivity", "objects")
    pairwise = results.table("objectivity", "pairwise_f1")
    summary = results.table("objectivity", "annotator_summary")
    images = results.table("objectivity", "images")
    n_images = 0 if images is None else len(images)
    reference = ""
    if has_columns(images, "reference_source"):
        counts = images["reference_source"].value_counts()
        reference = (
            " Reference: "
            + listing(
                [
                    f"{'the published est_GT' if k == 'published' else 'STAPLE computed here'} "
                    f"({plural(v, 'image')})"
                    for k, v in counts.items()
                ]
            )
            + "."
        )

    sub = section.sub("pairwise-agreement", "Agreement between annotators")
    sub.add(
        Text(
            f"Object-level F1 (objects matched one to one at IoU > {results.parameters['threshold']}) "
            f"on {plural(n_images, 'annotated image')}.{reference}"
        )
    )
    if has_columns(pairwise, "rater", "reference", "f1_mean"):
        low = pairwise[pairwise["rater"] != pairwise["reference"]]["f1_mean"]
        alt = (
            "Heatmap of the mean object F1 between every pair of "
            f"{plural(pairwise['rater'].nunique(), 'label set')}"
            f" (annotators and est_GT); values range from {low.min():.2f} to {low.max():.2f}."
        )
    else:
        alt = "Heatmap of the mean object F1 between every pair of annotators."
    n = 0 if pairwise is None or "rater" not in pairwise else pairwise["rater"].nunique()
    side = max(3.2, 0.5 * n + 1.8)
    sub.add(
        figures.make(
            "pairwise_f1",
            pairwise_f1_heatmap,
            {"pairwise_f1": pairwise},
            size=(side + 1.1, side),
            caption="Mean object F1 between every pair of annotators and the estimated ground truth. Look "
            "for a "
            "row or column of paler cells: an annotator who agrees less with everyone else.",
            alt=alt,
            what="pairwise F1 heatmap",
        )
    )
    n_raters = 0 if summary is None or summary.empty else len(summary)
    sub.add(_per_annotator(figures, "annotator_f1", {"objects": objects}, n_raters, _annotator_alt(summary)))
    if has_columns(summary, "rater", "f1_median"):
        compact = pd.DataFrame(
            {
                "annotator": summary["rater"],
                "images": summary["n_images"],
                "median F1": summary["f1_median"],
                "F1 IQR": [f"{a:.2f}–{b:.2f}" for a, b in zip(summary["f1_q25"], summary["f1_q75"])],
                "median precision": summary.get("precision_median"),
                "median recall": summary.get("recall_median"),
                "median IoU of matches": summary.get("mean_iou_median"),
            }
        )
        sub.add(
            Table(
                "annotator-summary",
                "Each annotator against the estimated ground truth (per-image medians)",
                compact,
                "tables/objectivity/annotator_summary.csv",
            )
        )

    kappa = results.table("objectivity", "fleiss_kappa")
    if has_columns(kappa, "strategy", "kappa", "landis_koch"):
        for row in kappa[kappa["strategy"] == "annotators"].to_dict("records"):
            sub.add(
                Text(
                    f"Fleiss' kappa of the {row['n_raters']} annotators over "
                    f"{row['n_object_items']} objects (matched across annotators at IoU > "
                    f"{results.parameters['threshold']}) and as many random background regions on "
                    f"{plural(int(row['n_images']), 'image')}: {kappa_phrase(row)}. "
                    "Source: `tables/objectivity/fleiss_kappa.csv`."
                )
            )

    sub = section.sub("staple", "STAPLE: each annotator's sensitivity and specificity")
    staple = results.table("groundtruth", "annotators")
    if results.skipped("groundtruth"):
        sub.add(Note(f"STAPLE not run: {results.skipped('groundtruth')}."))
    else:
        sub.add(
            Text(
                "STAPLE estimates the ground truth and, with it, how often each annotator marks a "
                "foreground pixel of it (sensitivity) and leaves background unmarked (specificity)."
            )
        )
        n_ann = 0 if staple is None or "annotator" not in staple else staple["annotator"].nunique()
        sub.add(_per_annotator(figures, "staple", {"annotators": staple}, n_ann, _staple_alt(staple)))
        if has_columns(staple, "annotator", "sensitivity", "specificity"):
            medians = (
                staple.groupby("annotator")
                .agg(
                    images=("image_id", "nunique"),
                    sensitivity=("sensitivity", "median"),
                    specificity=("specificity", "median"),
                )
                .reset_index()
            )
            medians = medians.rename(
                columns={"sensitivity": "median sensitivity", "specificity": "median specificity"}
            )
            sub.add(
                Table(
                    "staple-summary",
                    "STAPLE estimates per annotator (medians over images)",
                    medians,
                    "tables/groundtruth/annotators.csv",
                )
            )

    sub = section.sub("counts", "Do the annotators count the same?")
    icc = results.table("objectivity", "count_agreement")
    if has_columns(icc, "statistic", "value"):
        rows = pd.DataFrame(
            {
                "statistic": [
                    sf if isinstance(sf, str) and sf else f"Krippendorff's α ({t})"
                    for sf, t in zip(icc.get("shrout_fleiss", ""), icc["type"])
                ],
                "model": as_text(icc["description"], "–").replace("", "–"),
                "value": icc["value"],
                "95% CI": [
                    ("–" if pd.isna(a) else f"{a:.2f}–{b:.2f}")
                    for a, b in zip(icc["ci95_low"], icc["ci95_high"])
                ],
                "images": icc["n_images"],
                "annotators": icc["n_raters"],
            }
        )
        sub.add(
            Text(
                "Intraclass correlations (Shrout & Fleiss) and Krippendorff's α of the annotators' object "
                "counts per image. ICC(2,1) asks whether annotators give the *same* counts, ICC(3,1) "
                "whether they rank images alike; a gap between them means a systematic offset."
            )
        )
        sub.add(
            Table(
                "count-agreement",
                "Agreement of the annotators' object counts",
                rows,
                "tables/objectivity/count_agreement.csv",
            )
        )
    else:
        sub.add(Note("Count agreement needs at least two annotators with counts on the same images."))
    ba = results.table("objectivity", "bland_altman")
    n_ba = 0 if ba is None or "rater" not in ba else ba["rater"].nunique()
    ncol = min(5, max(n_ba, 1))
    sub.add(
        figures.make(
            "bland_altman",
            bland_altman,
            {"table": ba},
            size=(min(10, 2.3 * ncol + 0.6), 2.6 * int(np.ceil(max(n_ba, 1) / ncol)) + 0.8),
            caption="Bland-Altman plots: each annotator's object count minus the estimated ground "
            "truth's, against "
            "their mean, one point per image. Solid line: mean difference (bias); dashed: 95% limits of "
            "agreement. "
            "Look for a bias far from zero or differences that grow with the count.",
            alt=_bland_altman_alt(ba),
            what="Bland-Altman figure",
        )
    )
    section.subsections.append(panel_section(results, figures))
    return section


#: figure name -> (drawing function, width, height without the rows, what it is, caption)
PER_ANNOTATOR = {
    "annotator_f1": (
        annotator_f1,
        6.5,
        1.2,
        "annotator F1 figure",
        "Each annotator's object F1 against the estimated ground truth, one point per image. Look "
        "for an annotator whose box sits lower or spreads wider: models trained on that annotator "
        "inherit it.",
    ),
    "staple": (
        staple_performance,
        7.5,
        1.3,
        "STAPLE figure",
        "STAPLE's pixel sensitivity and specificity of each annotator, one point per image. Low "
        "sensitivity marks a conservative annotator (fewer or smaller objects); lower specificity "
        "a liberal one.",
    ),
}


def _per_annotator(figures: FigureMaker, name: str, tables: dict, n_annotators: int, alt: str):
    """A figure of :data:`PER_ANNOTATOR` with one row of boxes per annotator (at least two rows high)."""
    draw, width, height, what, caption = PER_ANNOTATOR[name]
    size = (width, height + 0.42 * max(n_annotators, 2))
    return figures.make(name, draw, tables, size=size, caption=caption, alt=alt, what=what)


def _annotator_alt(summary) -> str:
    if not has_columns(summary, "rater", "f1_median"):
        return "Box plots of each annotator's per-image object F1 against the estimated ground truth."
    parts = [f"{r} median {v:.2f}" for r, v in zip(summary["rater"], summary["f1_median"])]
    return (
        "Box plots of each annotator's per-image object F1 against the estimated ground truth: "
        + "; ".join(parts)
    )


def _staple_alt(staple) -> str:
    if not has_columns(staple, "annotator", "sensitivity", "specificity"):
        return "Box plots of STAPLE sensitivity and specificity per annotator."
    med = staple.groupby("annotator")[["sensitivity", "specificity"]].median()
    parts = [
        f"{a}: sensitivity {r.sensitivity:.2f}, specificity {r.specificity:.3f}" for a, r in med.iterrows()
    ]
    return "Box plots of STAPLE sensitivity and specificity per annotator (medians): " + "; ".join(parts)


def _bland_altman_alt(ba) -> str:
    if not has_columns(ba, "rater", "bias"):
        return "Bland-Altman plots of each annotator's counts against the estimated ground truth."
    per = ba.drop_duplicates("rater")
    parts = [f"{r} bias {b:+.1f}" for r, b in zip(per["rater"], per["bias"])]
    return "Bland-Altman plots, one panel per annotator, count difference against mean count: " + "; ".join(
        parts
    )
