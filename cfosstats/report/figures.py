"""The report's figures: one function per figure, tidy tables in, a plotnine ``ggplot`` out.

Every function takes the tables the analysis wrote (columns as documented in
:mod:`cfosstats.analyses.objectivity` and :mod:`cfosstats.analyses.validity`) and returns a
``ggplot``, or raises
:class:`MissingData` naming what it needs when the table lacks it (the report then says what was
skipped and why). :func:`save` writes a PNG at a modest resolution.

plotnine is imported inside each function (lazy: about 1 s at start-up). Colours follow the
Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); every strategy keeps its colour in every figure.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"rater": ["a", "b"], "reference": ["b", "a"], "f1_mean": [0.8, 0.8]})
>>> plot = pairwise_f1_heatmap(table)
>>> type(plot).__name__
'ggplot'
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cfosstats.datasets.layout import ESTIMATED_GT
from cfosstats.stats.selection import truthy

DPI = 110
STRATEGY_LABELS = {
    "annotators": "annotators",
    "estimated_gt": "estimated GT",
    "expert_models": "expert models",
    "consensus_models": "consensus models",
    "ensemble_members": "ensemble members",
    "consensus_ensembles": "consensus ensembles",
    "expert_ensembles": "expert ensembles",
}
STRATEGY_COLOURS = {
    "annotators": "#CC79A7",
    "estimated GT": "#000000",
    "expert models": "#E69F00",
    "consensus models": "#56B4E9",
    "ensemble members": "#0072B2",
    "consensus ensembles": "#009E73",
    "expert ensembles": "#D55E00",
}
CALL_COLOURS = {"increase": "#D55E00", "decrease": "#0072B2", "none": "#999999"}


class MissingData(ValueError):
    """A figure cannot be drawn: its table is empty or lacks columns (the message says which)."""


def require(table: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Return `table` if it has rows and every column in `columns`, else raise MissingData.

    Examples
    --------
    >>> require(pd.DataFrame({"a": [1]}), ["a"], "t").shape
    (1, 1)
    >>> require(pd.DataFrame({"a": [1]}), ["a", "b"], "t")
    Traceback (most recent call last):
    ...
    cfosstats.report.figures.MissingData: t lacks column(s) b
    """
    if table is None:
        raise MissingData(f"{what} was not computed")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MissingData(f"{what} lacks column(s) {', '.join(missing)}")
    if table.empty:
        raise MissingData(f"{what} has no rows")
    return table


def strategy_label(strategy: str) -> str:
    """Readable name of a strategy (``consensus_ensembles`` -> ``consensus ensembles``).

    Examples
    --------
    >>> strategy_label("expert_models")
    'expert models'
    """
    return STRATEGY_LABELS.get(str(strategy), str(strategy).replace("_", " "))


def _strategy_factor(values: pd.Series) -> pd.Categorical:
    labels = values.map(strategy_label)
    order = [v for v in STRATEGY_COLOURS if v in set(labels)]
    order += sorted(set(labels) - set(order))
    return pd.Categorical(labels, categories=order, ordered=True)


def _colours(categories: Sequence[str]) -> list[str]:
    fallback = ["#F0E442", "#999999", "#882255", "#44AA99", "#117733", "#332288"]
    out, extra = [], iter(fallback * 4)
    for name in categories:
        out.append(STRATEGY_COLOURS.get(name) or next(extra))
    return out


def _theme(base_size: float = 10):
    from plotnine import element_blank, element_rect, element_text, theme, theme_bw  # lazy: plotnine

    return theme_bw(base_size=base_size) + theme(
        panel_grid_minor=element_blank(),
        strip_background=element_rect(fill="#eeeeee", color="#cccccc"),
        legend_position="bottom",
        legend_title=element_text(size=base_size),
        plot_background=element_rect(fill="white", color="white"),
    )


def save(plot, path: str | Path, width: float, height: float, dpi: int = DPI) -> Path:
    """Write `plot` to a PNG (`width` x `height` inches at `dpi`) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plotnine's notes on removed rows / fonts
        plot.save(path, width=width, height=height, dpi=dpi, verbose=False, limitsize=False)
    return path


# -- objectivity ------------------------------------------------------------------------------


def _rater_order(names) -> list[str]:
    names = sorted(set(map(str, names)) - {ESTIMATED_GT})
    return names + [ESTIMATED_GT]


def pairwise_f1_heatmap(pairwise_f1: pd.DataFrame, statistic: str = "f1_mean"):
    """Heatmap of the mean object F1 of every pair of annotators (and the estimated GT).

    Parameters
    ----------
    pairwise_f1 : DataFrame
        ``pairwise_f1.csv`` of :func:`cfosstats.analyses.objectivity.run_agreement` (``rater``,
        ``reference``, `statistic`).
    statistic : str, default "f1_mean"
    """
    from plotnine import (  # lazy: plotnine
        aes,
        coord_equal,
        element_text,
        geom_text,
        geom_tile,
        ggplot,
        labs,
        scale_fill_gradient,
        theme,
    )

    table = require(pairwise_f1, ["rater", "reference", statistic], "pairwise F1 table").copy()
    order = _rater_order(pd.concat([table["rater"], table["reference"]]))
    table = table[table["rater"] != table["reference"]]
    diagonal = pd.DataFrame({"rater": order, "reference": order, statistic: np.nan})
    table = pd.concat([table, diagonal], ignore_index=True)
    table["rater"] = pd.Categorical(table["rater"], categories=order)
    table["reference"] = pd.Categorical(table["reference"], categories=order[::-1])
    table["text"] = table[statistic].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    low = float(np.nanmin(table[statistic])) if table[statistic].notna().any() else 0.4
    low = min(0.4, np.floor(low * 10) / 10)
    return (
        ggplot(table, aes("rater", "reference", fill=statistic))
        + geom_tile(color="white", size=0.6)
        + geom_text(aes(label="text"), size=8, color="black")
        + scale_fill_gradient(
            low="#f7fbff", high="#2171b5", limits=(low, 1), na_value="#dddddd", name="mean F1"
        )
        + coord_equal()
        + labs(x="compared label set", y="reference label set")
        + _theme()
        + theme(axis_text_x=element_text(rotation=30, ha="right"), legend_position="right")
    )


def _boxes_with_points(table: pd.DataFrame, x: str, y: str):
    """Grey box plots of `y` per `x` with every value as a jittered point (one per image)."""
    from plotnine import aes, geom_boxplot, geom_point, ggplot, position_jitter  # lazy: plotnine

    return (
        ggplot(table, aes(x, y))
        + geom_boxplot(outlier_shape="", fill="#f2f2f2", width=0.6)
        + geom_point(
            position=position_jitter(width=0.15, height=0, random_state=1),
            alpha=0.6,
            size=1.4,
            color="#CC79A7",
        )
    )


def annotator_f1(objects: pd.DataFrame, reference: str = ESTIMATED_GT):
    """Per-image object F1 of each annotator against the estimated ground truth (box + points)."""
    from plotnine import coord_flip, labs, ylim  # lazy: plotnine

    table = require(objects, ["image_id", "rater", "reference", "f1"], "objects table")
    table = table[(table["reference"] == reference) & (table["rater"] != reference)].dropna(subset=["f1"])
    if table.empty:
        raise MissingData(f"no annotator was compared with {reference}")
    table = table.assign(
        rater=pd.Categorical(table["rater"], categories=sorted(table["rater"].unique())[::-1])
    )
    return (
        _boxes_with_points(table, "rater", "f1")
        + coord_flip()
        + ylim(0, 1)
        + labs(x="", y=f"object F1 against {reference} (one point per image)")
        + _theme()
    )


def staple_performance(annotators: pd.DataFrame):
    """STAPLE's per-annotator sensitivity and specificity estimates, one point per image."""
    from plotnine import coord_flip, facet_wrap, labs  # lazy: plotnine

    table = require(annotators, ["image_id", "annotator", "sensitivity", "specificity"], "STAPLE table")
    long = table.melt(
        id_vars=["image_id", "annotator"], value_vars=["sensitivity", "specificity"], var_name="measure"
    ).dropna(subset=["value"])
    if long.empty:
        raise MissingData("STAPLE table has no estimates")
    long["annotator"] = pd.Categorical(long["annotator"], categories=sorted(long["annotator"].unique())[::-1])
    return (
        _boxes_with_points(long, "annotator", "value")
        + coord_flip()
        + facet_wrap("measure", scales="free_x")
        + labs(x="", y="STAPLE estimate (pixel level; one point per image)")
        + _theme()
    )


def bland_altman(table: pd.DataFrame):
    """Bland-Altman plots of each annotator's object count against the estimated GT's."""
    from plotnine import aes, facet_wrap, geom_hline, geom_point, ggplot, labs  # lazy: plotnine

    table = require(
        table, ["rater", "mean", "diff", "bias", "loa_low", "loa_high"], "Bland-Altman table"
    ).dropna(subset=["mean", "diff"])
    if table.empty:
        raise MissingData("Bland-Altman table has no complete pairs")
    lines = table.drop_duplicates("rater")[["rater", "bias", "loa_low", "loa_high"]]
    return (
        ggplot(table, aes("mean", "diff"))
        + geom_hline(yintercept=0, color="#bbbbbb")
        + geom_hline(aes(yintercept="bias"), data=lines, color="#D55E00")
        + geom_hline(aes(yintercept="loa_low"), data=lines, color="#D55E00", linetype="dashed")
        + geom_hline(aes(yintercept="loa_high"), data=lines, color="#D55E00", linetype="dashed")
        + geom_point(size=1.5, alpha=0.7, color="#0072B2")
        + facet_wrap("rater", ncol=min(5, lines.shape[0]))
        + labs(
            x=f"mean of the annotator's and {ESTIMATED_GT}'s object count",
            y=f"annotator minus {ESTIMATED_GT} (objects)",
        )
        + _theme()
    )


# -- reliability ------------------------------------------------------------------------------


def model_expert_range(model_f1: pd.DataFrame, expert_range: pd.DataFrame):
    """Each model's F1 against the estimated GT per image, drawn inside the annotators' range.

    Parameters
    ----------
    model_f1 : DataFrame
        ``image_id``, ``source``, ``strategy``, ``f1`` (one row per model and annotated image);
        optional ``in_sample`` (the model trained on the image: drawn as a cross).
    expert_range : DataFrame
        ``image_id``, ``f1_min``, ``f1_max`` (the worst and best annotator per image).
    """
    from plotnine import (  # lazy: plotnine
        aes,
        coord_flip,
        geom_linerange,
        geom_point,
        ggplot,
        labs,
        position_dodge,
        scale_color_manual,
        scale_shape_manual,
    )

    models = require(model_f1, ["image_id", "source", "strategy", "f1"], "model F1 table")
    ranges = require(expert_range, ["image_id", "f1_min", "f1_max"], "expert range table").copy()
    models = models.dropna(subset=["f1"]).copy()
    images = sorted(set(models["image_id"].astype(str)) & set(ranges["image_id"].astype(str)))
    if not images:
        raise MissingData("no image has both a model F1 and an expert range")
    models["image_id"] = pd.Categorical(models["image_id"].astype(str), categories=images[::-1])
    ranges = ranges[ranges["image_id"].astype(str).isin(images)]
    ranges["image_id"] = pd.Categorical(ranges["image_id"].astype(str), categories=images[::-1])
    models["strategy_label"] = _strategy_factor(models["strategy"])
    categories = list(models["strategy_label"].cat.categories)
    trained = truthy(models["in_sample"]) if "in_sample" in models else np.zeros(len(models), bool)
    # In-sample F1 is optimistic: crosses, so the eye judges the rule on the dots alone.
    models["data"] = pd.Categorical(
        np.where(trained, "trained on", "unseen"),
        categories=["unseen", "trained on"],
    )
    dodge = position_dodge(width=0.7)
    return (
        ggplot()
        + geom_linerange(aes("image_id", ymin="f1_min", ymax="f1_max"), data=ranges, size=5, color="#dddddd")
        + geom_point(
            aes("image_id", "f1", color="strategy_label", shape="data", group="source"),
            data=models,
            position=dodge,
            size=1.3,
            alpha=0.85,
        )
        + scale_color_manual(values=_colours(categories), name="strategy")
        + scale_shape_manual(values={"unseen": "o", "trained on": "x"}, name="image", drop=False)
        + coord_flip()
        + labs(x="image", y="object F1 against the estimated ground truth (grey bar: annotators' range)")
        + _theme()
    )


def _effect_label(table: pd.DataFrame) -> pd.Series:
    parts = [table["region"].astype(str).replace({"image": "whole image"})]
    if "comparison" in table.columns:
        parts.append(
            table["comparison"].astype(object).where(table["comparison"].notna(), "all groups").astype(str)
        )
    label = parts[0]
    for part in parts[1:]:
        label = label + ": " + part
    return label


def effect_strip(effects: pd.DataFrame, groups: Sequence[str] = ()):
    """eta² of every effect by strategy (like Figure 4 of the study), with significance bands.

    One facet per readout; each row is an effect (region: comparison); each point one analysis
    (label source), coloured by strategy. The grey band marks eta² below the critical value
    (not significant at the chosen alpha); a filled point is a significant analysis.
    """
    from plotnine import (  # lazy: plotnine
        aes,
        coord_flip,
        facet_wrap,
        geom_col,
        geom_point,
        ggplot,
        labs,
        position_dodge,
        scale_color_manual,
        scale_shape_manual,
    )

    table = require(effects, ["strategy", "region", "readout", "eta2", "significant"], "effects table")
    table = table.dropna(subset=["eta2"]).copy()
    if table.empty:
        raise MissingData("effects table has no effect sizes")
    table["effect"] = _effect_label(table)
    rank = {str(g): i for i, g in enumerate(groups)}

    def key(row) -> tuple:
        parts = str(row["comparison"]).split(" vs ") if "comparison" in row else []
        return (str(row["region"]), *[rank.get(p, len(rank)) for p in parts], str(row["effect"]))

    firsts = table.drop_duplicates("effect")
    order = [e for _, e in sorted(((key(r), r["effect"]) for _, r in firsts.iterrows()), reverse=True)]
    table["effect"] = pd.Categorical(table["effect"], categories=order)
    table["strategy_label"] = _strategy_factor(table["strategy"])
    table["call"] = np.where(truthy(table["significant"]), "significant", "not significant")
    categories = list(table["strategy_label"].cat.categories)
    plot = ggplot(table, aes("effect", "eta2"))
    if "eta2_critical" in table.columns and table["eta2_critical"].notna().any():
        bands = (
            table.dropna(subset=["eta2_critical"])
            .groupby(["readout", "effect"], observed=True, as_index=False)["eta2_critical"]
            .median()
        )
        plot += geom_col(
            aes("effect", "eta2_critical"), data=bands, inherit_aes=False, fill="#e6e6e6", width=0.9
        )
    plot += geom_point(
        aes(color="strategy_label", shape="call"),
        position=position_dodge(width=0.75),
        size=1.6,
        alpha=0.85,
    )
    return (
        plot
        + scale_color_manual(values=_colours(categories), name="strategy")
        + scale_shape_manual(values={"significant": "o", "not significant": "x"}, name="test")
        + facet_wrap("readout", nrow=1)
        + coord_flip()
        + labs(x="", y="effect size eta² (grey: below the significance border)")
        + _theme()
    )


def variation_per_effect(table: pd.DataFrame):
    """SD of eta² within each strategy, per effect: how much analyses of one kind disagree."""
    from plotnine import (  # lazy: plotnine
        aes,
        coord_flip,
        geom_boxplot,
        geom_point,
        ggplot,
        labs,
        position_jitter,
        scale_color_manual,
    )

    value = _first_column(table, ["sd", "eta2_sd", "sd_eta2", "value"], "variation per effect table")
    table = require(table, ["strategy", value], "variation per effect table").dropna(subset=[value]).copy()
    if table.empty:
        raise MissingData("variation per effect table has no values")
    table["strategy_label"] = _strategy_factor(table["strategy"])
    categories = list(table["strategy_label"].cat.categories)
    table["strategy_label"] = pd.Categorical(
        table["strategy_label"].astype(str), categories=categories[::-1], ordered=True
    )
    return (
        ggplot(table, aes("strategy_label", value))
        + geom_boxplot(outlier_shape="", fill="#f2f2f2", width=0.6)
        + geom_point(
            aes(color="strategy_label"),
            position=position_jitter(width=0.15, height=0, random_state=1),
            size=1.5,
            alpha=0.8,
        )
        + scale_color_manual(values=_colours(categories[::-1]), guide=None)
        + coord_flip()
        + labs(x="", y="SD of eta² within the strategy (one point per effect)")
        + _theme()
    )


def ensemble_size(scores: pd.DataFrame, summary: pd.DataFrame):
    """F1 of ensembles of 1..n models (points, one per drawn ensemble) and the SD per size with
    the fitted ``a / sqrt(i)`` (the study's Figure 3 analysis), in two panels."""
    from plotnine import (  # lazy: plotnine
        aes,
        facet_wrap,
        geom_jitter,
        geom_line,
        geom_point,
        ggplot,
        labs,
        scale_x_continuous,
    )

    scores = require(scores, ["size", "f1"], "ensemble-size scores")
    summary = require(summary, ["size", "f1_sd", "fitted_sd"], "ensemble-size summary")
    panel_f1, panel_sd = "F1 of each drawn ensemble", "SD of F1 across ensembles"
    points = pd.concat(
        [
            pd.DataFrame({"size": scores["size"], "value": scores["f1"], "panel": panel_f1}),
            pd.DataFrame({"size": summary["size"], "value": summary["f1_sd"], "panel": panel_sd}),
        ],
        ignore_index=True,
    ).dropna(subset=["value"])
    fitted = pd.DataFrame({"size": summary["size"], "value": summary["fitted_sd"], "panel": panel_sd})
    order = [panel_f1, panel_sd]
    points["panel"] = pd.Categorical(points["panel"], categories=order)
    fitted["panel"] = pd.Categorical(fitted["panel"], categories=order)
    return (
        ggplot(points, aes("size", "value"))
        + geom_jitter(
            points[points["panel"] == panel_f1],
            width=0.15,
            height=0,
            alpha=0.5,
            size=1.2,
            color="#009E73",
            random_state=1,
        )
        + geom_line(fitted, color="#D55E00")
        + geom_point(points[points["panel"] == panel_sd], size=2, color="#000000")
        + facet_wrap("panel", scales="free_y", ncol=2)
        + scale_x_continuous(breaks=list(range(1, int(summary["size"].max()) + 1)))  # whole members
        + labs(x="ensemble size i (members)", y="")
        + _theme()
    )


def variation_per_model(table: pd.DataFrame):
    """Per model: spread of its centred eta² against how many of its calls differ from the majority."""
    # lazy: plotnine
    from plotnine import aes, geom_point, ggplot, labs, scale_color_manual, scale_y_continuous

    sd = _first_column(
        table, ["centred_eta2_sd", "sd_centred_eta2", "eta2_sd", "sd", "sd_eta2"], "variation per model table"
    )
    differ = _first_column(
        table,
        ["n_differ", "n_differing", "n_disagree", "differs_from_majority", "n_different"],
        "variation per model table",
    )
    table = require(table, ["strategy", sd, differ], "variation per model table").dropna(subset=[sd]).copy()
    table["strategy_label"] = _strategy_factor(table["strategy"])
    categories = list(table["strategy_label"].cat.categories)
    top = int(np.nanmax(pd.to_numeric(table[differ], errors="coerce").fillna(0).to_numpy(), initial=0))
    # A count axis: whole numbers from 0 (a vertical jitter would suggest negative or fractional calls).
    step = max(1, int(np.ceil((top + 1) / 6)))
    return (
        ggplot(table, aes(sd, differ, color="strategy_label"))
        + geom_point(size=2.2, alpha=0.7)
        + scale_y_continuous(breaks=list(range(0, top + step + 1, step)), limits=(-0.3, top + 0.5))
        + scale_color_manual(values=_colours(categories), name="strategy")
        + labs(
            x="SD of the model's centred eta² across effects",
            y="calls differing from the majority",
        )
        + _theme()
    )


def _first_column(table: pd.DataFrame | None, candidates: Sequence[str], what: str) -> str:
    if table is None:
        raise MissingData(f"{what} was not computed")
    for name in candidates:
        if name in table.columns:
            return name
    raise MissingData(f"{what} lacks a column named any of {', '.join(candidates)}")


# -- validity ---------------------------------------------------------------------------------


def normalised_values(quantification: pd.DataFrame, conditions: Sequence[str] = (), value: str | None = None):
    """Per region and readout, the values normalised to the control mean, per group and strategy."""
    from plotnine import (  # lazy: plotnine
        aes,
        facet_grid,
        geom_boxplot,
        geom_hline,
        ggplot,
        labs,
        position_dodge,
        scale_fill_manual,
    )

    value = value or _first_column(
        quantification, ["normalised", "normalized", "value_normalised", "normalised_value"], "quantification"
    )
    group = _first_column(quantification, ["condition", "group"], "quantification")
    table = require(quantification, ["strategy", "region", "readout", group, value], "quantification")
    table = table.dropna(subset=[value]).copy()
    if table.empty:
        raise MissingData("quantification has no normalised values")
    table = (
        table[~table["strategy"].isin(["annotators", "estimated_gt"])]
        if (~table["strategy"].isin(["annotators", "estimated_gt"])).any()
        else table
    )
    present = [str(c) for c in conditions if str(c) in set(table[group].astype(str))]
    present += sorted(set(table[group].astype(str)) - set(present))
    table[group] = pd.Categorical(table[group].astype(str), categories=present, ordered=True)
    table["strategy_label"] = _strategy_factor(table["strategy"])
    categories = list(table["strategy_label"].cat.categories)
    return (
        ggplot(table, aes(group, value, fill="strategy_label"))
        + geom_hline(yintercept=1, color="#999999", linetype="dashed")
        + geom_boxplot(position=position_dodge(width=0.8), width=0.7, outlier_size=0.6, size=0.3)
        + scale_fill_manual(values=_colours(categories), name="strategy")
        + facet_grid("readout ~ region", scales="free_y")
        + labs(x="group", y="value / mean of the control group")
        + _theme()
    )


def call_matrix(effects: pd.DataFrame, reproducibility: pd.DataFrame, order: Sequence[str] = ()):
    """Effects (rows) x analyses grouped by strategy (columns): eta² with the call, majority last."""
    from plotnine import (  # lazy: plotnine
        aes,
        element_blank,
        element_text,
        facet_grid,
        geom_text,
        geom_tile,
        ggplot,
        labs,
        scale_fill_gradient,
        theme,
    )

    table = require(
        effects, ["source", "strategy", "region", "readout", "comparison", "eta2", "call"], "effects"
    )
    table = table.copy()
    repro = require(reproducibility, ["region", "readout", "comparison", "majority_call"], "reproducibility")
    rank = {c: i for i, c in enumerate(order)}

    def effect_key(row) -> tuple:
        a, _, b = str(row["comparison"]).partition(" vs ")
        return (row["region"], row["readout"], rank.get(a, 99), rank.get(b, 99))

    labels = repro.assign(_k=repro.apply(effect_key, axis=1)).sort_values("_k")
    names = [f"{r} {o} {c}" for r, o, c in zip(labels["region"], labels["readout"], labels["comparison"])]
    table["effect"] = pd.Categorical(
        table["region"] + " " + table["readout"] + " " + table["comparison"], categories=names[::-1]
    )
    marks = {"increase": "▲", "decrease": "▼"}
    table["mark"] = table["call"].map(marks).fillna("")
    table["strategy_label"] = _strategy_factor(table["strategy"])
    majority = labels.assign(
        effect=pd.Categorical(names, categories=names[::-1]),
        source="majority",
        strategy_label="majority",
        eta2=float("nan"),
        mark=labels["majority_call"].map(marks).fillna("–"),
    )
    # Two-line strip labels, so that a narrow panel (two ensembles) still shows its whole name.
    table["strategy_label"] = table["strategy_label"].cat.rename_categories(
        lambda c: str(c).replace(" ", "\n", 1)
    )
    categories = [*table["strategy_label"].cat.categories, "majority"]
    # Axis labels: a model's own name (an ensemble member's without its ensemble and extension).
    short = table["source"].map(lambda s: str(s).rsplit("/", 1)[-1].removesuffix(".h5")[:28])
    if short.groupby(short).transform(lambda x: table.loc[x.index, "source"].nunique()).max() == 1:
        table["source"] = short
    sources = list(dict.fromkeys(table.sort_values(["strategy_label", "source"])["source"]))
    frame = pd.concat([table, majority[table.columns.intersection(majority.columns)]], ignore_index=True)
    frame["strategy_label"] = pd.Categorical(frame["strategy_label"].astype(str), categories=categories)
    frame["source"] = pd.Categorical(frame["source"], categories=[*sources, "majority"])
    n_sources = len(sources)
    return (
        ggplot(frame, aes("source", "effect"))
        + geom_tile(aes(fill="eta2"), color="white", size=0.2)
        + geom_text(aes(label="mark"), size=5 if n_sources > 20 else 7, color="#222222")
        + scale_fill_gradient(low="#f4f4f4", high="#3b6ea8", na_value="#ffffff", name="eta²", limits=(0, 1))
        + facet_grid(". ~ strategy_label", scales="free_x", space="free_x")
        + labs(x="analysis (grouped by strategy)", y="")
        + _theme(8)
        + theme(
            axis_text_x=element_blank() if n_sources > 20 else element_text(rotation=90, size=6),
            axis_ticks_major_x=element_blank(),
            strip_text_x=element_text(size=7),
            panel_grid_major=element_blank(),
        )
    )
