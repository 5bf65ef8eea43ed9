"""Reliability subsections on the model library: how its models were selected out of fold, how
alike the analyses of one strategy are (object F1, IoU, Fleiss' kappa) and how the spread of an
ensemble's F1 shrinks with its size.

Tables: ``predictions/library_folds``, ``predictions/library_variants``, ``models/within_strategy``,
``models/fleiss_kappa``, ``ensemble_size/ensemble_size``, ``ensemble_size/ensemble_size_scores``,
``ensemble_size/ensemble_size_fit``.

Examples
--------
>>> kappa_phrase({"kappa": 0.526, "landis_koch": "moderate"})
'κ = 0.526 (moderate on the Landis & Koch scale)'
"""

from __future__ import annotations

import pandas as pd

from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import ensemble_size, strategy_label
from cfosstats.report.text import MAX_TABLE_ROWS, has_columns, listing, plural, short_source
from cfosstats.stats.selection import truthy
from cfosstats.study.steps import partial_predictions

# The study's Figure 3 (lab-wue1 test images): between consensus ensembles of different seeds.
STUDY_ENSEMBLE_F1, STUDY_ENSEMBLE_IOU = 0.94, 0.91


def kappa_phrase(row) -> str:
    """``κ = 0.526 (moderate on the Landis & Koch scale)``."""
    return f"κ = {row['kappa']:.3f} ({row['landis_koch']} on the Landis & Koch scale)"


def library_validation(section: Section, results) -> None:
    """How each library model fared on its out-of-fold validation images (the selection rule)."""
    folds = results.table("predictions", "library_folds")
    variants = results.table("predictions", "library_variants")
    if results.skipped("predictions") or not has_columns(folds, "variant", "model", "model_f1", "passed"):
        return
    if folds.empty:  # a library of ensembles whose cards hold no validation
        return
    sub = section.sub(
        "library-validation",
        "How the library's models were selected",
        "Each fold model of the library was validated on the images its fold held out, against the "
        "estimated ground truth, with the study's rule: it passes when its object F1 is at least the "
        "worst annotator's on every validation image; only passing models enter a shipped ensemble. These "
        "numbers come from the model cards, measured when the models were trained.",
    )
    if has_columns(variants, "record", "variant", "n_folds_passed"):
        rows = pd.DataFrame(
            {
                "record": variants["record"],
                "lab": variants["lab"],
                "ensemble or variant": variants["variant"],
                "folds passed": [f"{a}/{b}" for a, b in zip(variants["n_folds_passed"], variants["n_folds"])],
                "validation images": variants["n_images"],
                "median out-of-fold F1": variants["model_f1_median"],
                "median annotator F1": variants["annotator_f1_median"],
                "median worst / best annotator": [
                    f"{a:.3f} / {b:.3f}"
                    for a, b in zip(
                        variants["worst_annotator_f1_median"], variants["best_annotator_f1_median"]
                    )
                ],
            }
        )
        sub.add(
            Table(
                "library-variants",
                "Out-of-fold F1 of the library's models against the annotators' on the same images"
                + (
                    " (and the training variants compared: scratch, fine-tuned from lab-wue1, frozen "
                    "lab-wue1 models)"
                    if variants["record"].ne("shipped library").any()
                    else ""
                ),
                rows,
                "tables/predictions/library_variants.csv",
            )
        )
    per_model = []
    for (variant, model), group in folds.groupby(["variant", "model"], sort=False):
        ids = group["image_id"].astype(str).tolist()
        per_model.append(
            {
                "ensemble": variant,
                "model": model,
                "fold": int(group["fold"].iloc[0]),
                "initialization": group["initialization"].iloc[0] if "initialization" in group else "",
                "validation image(s)": listing(ids, 2),
                "F1 vs est_GT (median)": float(group["model_f1"].median()),
                "worst annotator": float(group["worst_annotator_f1"].median()),
                "best annotator": float(group["best_annotator_f1"].median()),
                "images passed": f"{int(truthy(group['passed']).sum())}/{len(group)}",
                "verdict": group["verdict"].iloc[0] if "verdict" in group else "",
            }
        )
    sub.add(
        Table(
            "library-folds",
            "Each library model on its out-of-fold validation images (medians where a fold has several)",
            pd.DataFrame(per_model).head(MAX_TABLE_ROWS),
            "tables/predictions/library_folds.csv",
        )
    )


def within_strategy(section: Section, results) -> None:
    """Agreement between the analyses of one strategy: object F1, IoU and Fleiss' kappa."""
    sub = section.sub(
        "within-strategy",
        "Do analyses of one strategy agree with each other?",
        "Every pair of label sets of one strategy compared object by object (matched as above) on the "
        "images none of them was trained on, and Fleiss' kappa "
        "over the same objects: objects matched across all raters, plus as many random background regions "
        "to estimate chance agreement (the study's procedure). The study found consensus ensembles of "
        f"different seeds agreeing at mean F1 {STUDY_ENSEMBLE_F1} and IoU {STUDY_ENSEMBLE_IOU} on its test "
        "images, expert models far less.",
    )
    if results.skipped("models"):
        sub.add(Note(f"Not assessed: {results.skipped('models')}."))
        return
    within = results.table("models", "within_strategy")
    kappa = results.table("models", "fleiss_kappa")
    if not has_columns(within, "strategy", "pairs", "f1_mean") or within.empty:
        sub.add(Note("No strategy has two or more label sets on common images: nothing to compare."))
    else:
        table = within.copy()
        if has_columns(kappa, "strategy", "kappa", "landis_koch"):
            by_strategy = kappa.drop_duplicates("strategy").set_index("strategy")
            all_pairs = table["pairs"] == "all"
            table["Fleiss' kappa"] = table["strategy"].map(by_strategy["kappa"]).where(all_pairs)
            table["Landis & Koch"] = table["strategy"].map(by_strategy["landis_koch"]).where(all_pairs, "")
        rows = pd.DataFrame(
            {
                "strategy": table["strategy"].map(strategy_label),
                "pairs": table["pairs"]
                .map({"all": "all", "replicates": "same training data, other seed"})
                .fillna(table["pairs"]),
                "label sets": table["n_sets"],
                "pairs compared": table["n_pairs"],
                "images": [
                    f"{n} ({'held out' if kind == 'held out' else 'all: each set trained on some'})"
                    for n, kind in zip(table["n_images"], table["images"])
                ],
                "mean F1": table["f1_mean"],
                "SD": table["f1_sd"],
                "mean IoU": table["mean_iou_mean"],
                **(
                    {"Fleiss' kappa": table["Fleiss' kappa"], "Landis & Koch": table["Landis & Koch"]}
                    if "Fleiss' kappa" in table
                    else {}
                ),
            }
        )
        sub.add(
            Table(
                "within-strategy",
                "Agreement within each strategy (mean over image x pair)",
                rows,
                "tables/models/within_strategy.csv",
            )
        )
    if has_columns(kappa, "strategy", "kappa"):
        annotators = kappa[kappa["strategy"] == "annotators"]
        if len(annotators):
            row = annotators.iloc[0]
            sub.add(
                Text(
                    f"For comparison, the {row['n_raters']} annotators on "
                    f"{plural(int(row['n_images']), 'image')}: "
                    f"{kappa_phrase(row)} (table `tables/models/fleiss_kappa.csv`)."
                )
            )
    partial = partial_predictions(results)
    if partial:
        sub.add(
            Text(
                f"{plural(len(partial), 'replicate label set')} "
                f"({listing([short_source(p) for p in partial], 4)}) "
                "predict only the held-out test images: they measure another training run's effect here and "
                "do not enter the effect tests."
            )
        )


def ensemble_size_reliability(section: Section, results, figures: FigureMaker) -> None:
    """SD of an ensemble's F1 against its size, with the fit of a / sqrt(i)."""
    sub = section.sub(
        "ensemble-size",
        "How many models should an ensemble have?",
        "Ensembles of 1..n consensus fold models, drawn repeatedly from the library, each scored by its mean "
        "object F1 against the estimated ground truth on the held-out test images. The spread of F1 across "
        "ensembles of one size is what another training run would change; it falls as a / sqrt(i) if the "
        "members' errors are independent. The study found a = 0.096 and chose i = 4.",
    )
    reason = results.skipped("ensemble_size")
    if reason:
        sub.add(Note(f"Not assessed: {reason}."))
        return
    summary = results.table("ensemble_size", "ensemble_size")
    scores = results.table("ensemble_size", "ensemble_size_scores")
    fit = results.table("ensemble_size", "ensemble_size_fit")
    if not has_columns(fit, "a", "n_models", "n_images"):
        sub.add(Note("Not assessed: the ensemble-size tables are missing."))
        return
    row = fit.iloc[0]
    sub.add(
        figures.make(
            "ensemble_size",
            ensemble_size,
            {"scores": scores, "summary": summary},
            size=(7.5, 2.9),
            caption=f"Left: the F1 of each drawn ensemble of i of the {int(row['n_models'])} models. Right: "
            f"their SD per i (points) and the fit a / sqrt(i), a = {row['a']:.3f} (line). Look for where the "
            "SD levels off: more members than that buy little reliability.",
            alt=f"Two panels: F1 of ensembles of 1 to {int(row['n_models'])} members as points by size, and "
            f"the standard deviation of F1 per size with a fitted curve a/sqrt(i), a = {row['a']:.3f}.",
            what="ensemble-size figure",
        )
    )
    if has_columns(summary, "size", "n_ensembles", "f1_mean", "f1_sd", "fitted_sd"):
        sub.add(
            Table(
                "ensemble-size",
                f"F1 of ensembles by size on {plural(int(row['n_images']), 'test image')}: fitted a = "
                f"{row['a']:.3f} (the study: {row['study_a']:.3f})",
                pd.DataFrame(
                    {
                        "members i": summary["size"],
                        "ensembles drawn": summary["n_ensembles"],
                        "mean F1": summary["f1_mean"],
                        "SD of F1": summary["f1_sd"],
                        "a / sqrt(i)": summary["fitted_sd"],
                    }
                ),
                "tables/ensemble_size/ensemble_size.csv",
            )
        )
