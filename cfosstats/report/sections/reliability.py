"""Reliability: do the models agree with the annotators and with each other?

Tables: ``models/model_f1``, ``objectivity/expert_range``, ``models/model_summary``, the
library's (:mod:`cfosstats.report.sections.library`), ``effects/consistency``, ``effects/effects``
(image level), ``effects/variation_per_effect``, ``effects/variation_between_strategies``,
``effects/variation_per_model``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfosstats.datasets.layout import STRATEGY_ORDER
from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import (
    effect_strip,
    model_expert_range,
    strategy_label,
    variation_per_effect,
    variation_per_model,
)
from cfosstats.report.sections.library import ensemble_size_reliability, library_validation, within_strategy
from cfosstats.report.text import (
    MAX_TABLE_ROWS,
    as_text,
    has_columns,
    listing,
    plural,
    short_source,
)


def reliability_section(results, figures: FigureMaker) -> Section:
    """Models in the expert range, ensemble consistency, variation per effect and per model."""
    section = Section(
        "reliability",
        "Reliability: do the models agree with the annotators and with each other?",
        "A reliable analysis gives the same answer when it is repeated: another training run, another "
        "annotator to learn from. The study compared expert models (trained on one annotator), consensus "
        "models (trained on est_GT) and consensus ensembles (the mean of several consensus models).",
    )
    sub = section.sub("expert-range", "Models within the annotators' range")
    reason = results.skipped("models")
    model_f1 = results.table("models", "model_f1")
    summary = results.table("models", "model_summary")
    if reason:
        sub.add(Note(f"Not assessed: {reason}."))
    else:
        ranges = results.table("objectivity", "expert_range")
        n_images = 0 if model_f1 is None or model_f1.empty else model_f1["image_id"].nunique()
        n_models = 0 if model_f1 is None or model_f1.empty else model_f1["source"].nunique()
        in_sample = bool(
            has_columns(model_f1, "in_sample")
            and model_f1["in_sample"].astype(str).str.lower().eq("true").any()
        )
        sub.add(
            figures.make(
                "expert_range",
                model_expert_range,
                {"model_f1": model_f1, "expert_range": ranges},
                size=(7.5, min(10.0, 1.4 + 0.3 * max(n_images, 2))),  # fits a PDF page
                caption="Each model's object F1 against the estimated ground truth per annotated image; "
                "the grey bar "
                "spans the worst to the best annotator on that image. Look for points left of the bar: "
                "there the "
                "model is worse than every annotator (the study's selection rule rejects it)."
                + (
                    " Crosses mark images the model was trained on: their F1 is optimistic, and the "
                    "table below leaves them out."
                    if in_sample
                    else ""
                ),
                alt=f"Dot plot of {plural(n_models, 'model')}' object F1 on {plural(n_images, 'image')}, "
                "each drawn "
                "against a grey bar spanning the annotators' F1 range on that image.",
                what="expert range figure",
            )
        )
        if has_columns(summary, "source", "strategy", "f1_median"):
            rank = {name: i for i, name in enumerate(STRATEGY_ORDER)}
            summary = summary.assign(_rank=summary["strategy"].map(rank).fillna(len(rank)))
            summary = summary.sort_values(["_rank", "source"], kind="stable")
            compact = pd.DataFrame(
                {
                    "model": summary["source"].map(short_source),
                    "strategy": summary["strategy"].map(strategy_label),
                    "images (not trained on)": summary["n_images"],
                    "median F1": summary["f1_median"],
                    "worst F1": summary["f1_min"],
                    "below / within / above range": [
                        f"{a} / {b} / {c}"
                        for a, b, c in zip(summary["n_below"], summary["n_within"], summary["n_above"])
                    ],
                    "passes the rule": summary["passes_rule"],
                }
            )
            sub.add(
                Table(
                    "model-summary",
                    "Each model against the annotators' range (study's selection rule: "
                    "never below the worst annotator)",
                    compact,
                    "tables/models/model_summary.csv",
                )
            )

    library_validation(section, results)
    within_strategy(section, results)

    sub = section.sub("consistency", "Ensemble consistency")
    consistency = results.table("effects", "consistency")
    if results.skipped("effects"):
        sub.add(Note(f"Not assessed: {results.skipped('effects')}."))
    elif has_columns(consistency, "level", "metric", "value"):
        overall = consistency[consistency["image_id"].isna()] if "image_id" in consistency else consistency
        if overall.empty:
            sub.add(Note("No consistency summary: no group of models predicts the same images."))
        else:
            wide = overall.pivot_table(index="level", columns="metric", values="value", aggfunc="first")
            n_sources = overall.groupby("level")["n_sources"].first() if "n_sources" in overall else None
            wide = wide.reset_index()
            rows = pd.DataFrame({"compared label sets": wide["level"].map(_consistency_level)})
            if n_sources is not None:
                rows["label sets"] = wide["level"].map(n_sources).to_numpy()
            for metric, label in (
                ("object_f1_mean", "mean object F1 between them"),
                ("object_f1_sd", "SD of F1"),
                ("count_icc", "count ICC(2,1)"),
            ):
                if metric in wide.columns:
                    rows[label] = wide[metric].to_numpy()
            sub.add(
                Text(
                    "How alike are the masks of models that should agree? Object F1 between every pair of "
                    "label sets of one group on each image, and the ICC of their counts. Higher is more "
                    "consistent; the study found ensembles far more consistent than single models."
                )
            )
            sub.add(
                Table(
                    "consistency",
                    "Consistency of models and ensembles (over images)",
                    rows,
                    "tables/effects/consistency.csv",
                )
            )
    else:
        sub.add(Note("No consistency table: there are no ensembles or groups of models in these data."))

    ensemble_size_reliability(section, results, figures)

    sub = section.sub("variation-per-effect", "Variation per effect, by strategy")
    effects = results.table("effects", "effects")
    image_effects = None
    if has_columns(effects, "level", "comparison", "test"):
        image_effects = effects[
            (effects["level"] == "image") & (effects["comparison"] != "all") & (effects["test"] != "skipped")
        ]
        voters = image_effects[image_effects["strategy"] != "ensemble_members"]
        image_effects = voters if len(voters) else image_effects
    if results.skipped("effects"):
        sub.add(Note(f"Not assessed: {results.skipped('effects')}."))
    else:
        n_effects = (
            0
            if image_effects is None or image_effects.empty
            else image_effects[["region", "readout", "comparison"]].drop_duplicates().shape[0]
        )
        n_readouts = 1 if image_effects is None or image_effects.empty else image_effects["readout"].nunique()
        per_readout = max(1, int(np.ceil(n_effects / max(n_readouts, 1))))
        sub.add(
            figures.make(
                "effect_strip",
                effect_strip,
                {"effects": image_effects},
                groups=list(results.runs.get("effects", {}).get("groups", [])),
                size=(min(10, 3.4 * n_readouts + 1.6), 1.6 + 0.34 * per_readout),
                caption="Effect size (eta²) of every effect, one point per analysis, coloured by "
                "strategy, as in "
                "Figure 4 of the study. The grey band lies below the critical eta² (not significant after "
                "Bonferroni); "
                "○ significant, × not. Look for effects where one strategy's points straddle the band's "
                "edge: there "
                "the conclusion depends on which model was trained.",
                alt=f"Strip plot of eta² for {plural(n_effects, 'effect')} (rows) by strategy (colours), "
                "one panel per "
                "readout, with grey bands marking non-significant effect sizes.",
                what="effect-size strip plot",
            )
        )
        between = results.table("effects", "variation_between_strategies")
        variation = results.table("effects", "variation_per_effect")
        sub.add(
            figures.make(
                "variation_per_effect",
                variation_per_effect,
                {"table": variation},
                size=(6.5, 2.6),
                caption="Standard deviation of eta² within each strategy, one point per effect. Lower "
                "means the "
                "analyses of that strategy agree more; the study found consensus ensembles vary least.",
                alt="Box plots of the per-effect standard deviation of eta² for each strategy.",
                what="variation per effect figure",
            )
        )
        if has_columns(between, "strategy", "eta2_sd_median"):
            rows = pd.DataFrame(
                {
                    "strategy": between["strategy"].map(strategy_label),
                    "effects": between["n_effects"],
                    "median SD of eta²": between["eta2_sd_median"],
                    "IQR": [
                        f"{a:.3f}–{b:.3f}" for a, b in zip(between["eta2_sd_q25"], between["eta2_sd_q75"])
                    ],
                }
            )
            p = between["kruskal_p"].dropna()
            text = (
                "Kruskal-Wallis test of the SDs across strategies: H = "
                f"{between['kruskal_h'].dropna().iloc[0]:.2f}, "
                f"p = {p.iloc[0]:.2g}."
                if len(p)
                else "Too few strategies to compare."
            )
            sub.add(
                Table(
                    "variation-between",
                    "Variation of eta² within each strategy, over effects. " + text,
                    rows,
                    "tables/effects/variation_between_strategies.csv",
                )
            )

    sub = section.sub("variation-per-model", "Variation per model")
    per_model = results.table("effects", "variation_per_model")
    if results.skipped("effects"):
        sub.add(Note(f"Not assessed: {results.skipped('effects')}."))
    elif has_columns(per_model, "source", "strategy", "centred_eta2_sd", "n_differ"):
        sub.add(
            figures.make(
                "variation_per_model",
                variation_per_model,
                {"table": per_model},
                size=(6.5, 3.4),
                caption="Per analysis: the spread of its eta² around each effect's mean (x) and how many "
                "of its "
                "significance calls differ from the majority (y). Analyses far to the right or high up "
                "are the "
                "ones whose conclusions would mislead.",
                alt=f"Scatter plot of {plural(len(per_model), 'analysis', 'analyses')}: SD of centred "
                "eta² against the "
                "number of calls that differ from the majority, coloured by strategy.",
                what="variation per model figure",
            )
        )
        ordered = per_model.sort_values(["n_differ", "centred_eta2_sd"], ascending=[False, False])
        rows = pd.DataFrame(
            {
                "analysis": ordered["source"].map(short_source),
                "strategy": ordered["strategy"].map(strategy_label),
                "votes": ordered.get("votes"),
                "SD of centred eta²": ordered["centred_eta2_sd"],
                "calls differing": [
                    f"{int(d)}/{int(c)}" for d, c in zip(ordered["n_differ"], ordered["n_calls"])
                ],
                "effects where it differs": as_text(
                    ordered.get("differ_effects", pd.Series("", index=ordered.index)), ""
                ).map(lambda s: listing(str(s).split(";"), 4) if s else ""),
            }
        )
        sub.add(
            Table(
                "variation-per-model",
                "Variation per analysis (most disagreeing first)",
                rows.head(MAX_TABLE_ROWS),
                "tables/effects/variation_per_model.csv",
            )
        )
    else:
        sub.add(Note("No variation per model: no analysis could be compared with a majority."))
    return section


def _consistency_level(level: str) -> str:
    level = str(level)
    if level.startswith("members_of:"):
        return f"members of {short_source(level.removeprefix('members_of:'))}"
    return {
        "between_ensembles": "ensembles (each against each)",
        "consensus_models": "consensus models",
        "expert_models": "expert models",
    }.get(level, level.replace("_", " "))
