"""The verdict: a figure of every call, then what holds up and what to distrust, briefly.

Tables: ``effects/reproducibility``, ``effects/variation_per_model``, ``effects/effects``,
``effects/outliers``, ``objectivity/annotator_summary``, ``objectivity/bland_altman``,
``objectivity/count_agreement``, ``models/model_summary`` (the cautions: :mod:`.cautions`).
"""

from __future__ import annotations

import pandas as pd

from cfosstats.datasets.layout import STRATEGY_ORDER
from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.figures import call_matrix, strategy_label
from cfosstats.report.sections.cautions import (
    annotator_cautions,
    disagreeing_analyses,
    model_cautions,
    outlier_cautions,
    unit_of_analysis,
    untested_sources,
)
from cfosstats.report.text import (
    MAX_TABLE_ROWS,
    as_text,
    effect_name,
    has_columns,
    listing,
    plural,
    region_label,
    short_source,
    sort_effects,
)
from cfosstats.stats.reliability import VOTING_STRATEGIES


def _image_calls(effects: pd.DataFrame | None) -> pd.DataFrame | None:
    if not has_columns(effects, "source", "strategy", "region", "readout", "comparison", "call"):
        return None
    level = effects["level"] if "level" in effects.columns else pd.Series("image", index=effects.index)
    test = effects["test"] if "test" in effects.columns else pd.Series("", index=effects.index)
    rows = effects[(level == "image") & (effects["comparison"] != "all") & (test != "skipped")]
    rows = rows[rows["call"].isin(["increase", "decrease", "none"])]
    return rows


VERDICT_SENTENCES = 5  # the verdict says at most this many things; the rest follow its tables


def _call_matrix_figure(results, figures: FigureMaker | None):
    """The verdict's figure: effects x analyses by strategy, eta² and call, majority last."""
    effects = results.table("effects", "effects")
    repro = results.table("effects", "reproducibility")
    if (
        figures is None
        or not has_columns(effects, "level", "comparison", "call", "eta2")
        or not has_columns(repro, "majority_call")
    ):
        return None
    pairs = effects[
        (effects["level"] == "image") & (effects["comparison"] != "all") & (effects["call"] != "")
    ]
    pairs = pairs.dropna(subset=["eta2"])
    pairs = pairs.assign(source=pairs["source"].map(short_source))
    if pairs.empty or repro.empty or not pairs["call"].isin(["increase", "decrease"]).any():
        return None  # a grid of blank cells shows nothing the verdict's sentence does not say
    n_sources, n_effects = pairs["source"].nunique(), len(repro)
    return figures.make(
        "verdict_calls",
        call_matrix,
        {"effects": pairs, "reproducibility": repro},
        size=(
            min(11.0, 5.0 + 0.1 * n_sources),
            min(10.0, 1.6 + 0.28 * n_effects + (1.6 if n_sources <= 20 else 0)),
        ),
        caption="Every analysis' eta² per effect (darker = larger), ▲ significant increase, ▼ decrease; "
        "analyses grouped by strategy, the last column the majority call.",
        alt=f"Grid of {n_effects} effects by {n_sources} analyses grouped by strategy, coloured by eta².",
        order=list(results.runs.get("effects", {}).get("groups", [])),
        what="call matrix",
    )


def verdict_section(results, figures: FigureMaker | None = None) -> Section:
    """The verdict: a figure of every call, then what holds up and what to distrust, briefly."""
    lab = results.lab
    section = Section("verdict", "Verdict")
    section.add(_call_matrix_figure(results, figures))
    repro = results.table("effects", "reproducibility")
    effects = results.table("effects", "effects")
    run = results.runs.get("effects", {})
    trust: list[str] = []
    distrust: list[str] = []
    groups = run.get("groups", [])

    section.add(Text(_what_was_analysed(results)))

    if has_columns(repro, "region", "readout", "comparison", "majority_call"):
        found = repro[repro["majority_call"].isin(["increase", "decrease"])]
        grouping = run.get("grouping", "conditions")
        if grouping == "strata":
            distrust.append(
                "**The groups are sampling strata, not experimental conditions** "
                f"({run.get('grouping_note', 'the data names no conditions')}; "
                f"{run.get('n_pairwise_comparisons', 'all')} pairwise comparisons, "
                f"{run.get('bonferroni', 'Bonferroni-corrected')}): an effect between strata "
                "says nothing about a treatment."
            )
        if len(found):
            items = [
                f"{effect_name(r)} ({r['majority_call']})" for _, r in sort_effects(found, groups).iterrows()
            ]
            trust.append(
                f"**{plural(len(found), 'effect')} of {len(repro)} "
                f"{'is' if len(found) == 1 else 'are'} found by the majority of the analyses:** "
                + listing(items, 12)
                + " (details per strategy in the table below)."
            )
            complete = _who_found_everything(_image_calls(effects), found)
            if complete:
                trust.append(complete)
        else:
            trust.append(
                f"**No effect is found by the majority of the analyses** ({len(repro)} effects tested at "
                "image level)."
            )
        ties = (
            repro[repro["tie"].astype(str).str.lower() == "true"]
            if "tie" in repro.columns
            else repro.iloc[:0]
        )
        if len(ties):
            distrust.append(
                f"**{plural(len(ties), 'effect')} ended in a tie of the vote** (counted as no effect): "
                + listing([effect_name(r) for _, r in ties.iterrows()])
                + "."
            )
        distrust += unit_of_analysis(repro, lab, effects)
    else:
        reason = results.skipped("effects") or "the effects table lacks the reproducibility columns"
        distrust.append(f"**No treatment effects were tested:** {reason}.")

    for line in disagreeing_analyses(results.table("effects", "variation_per_model")):
        (trust if line.startswith("Every voting analysis") else distrust).append(line)
    distrust += annotator_cautions(results)
    distrust += model_cautions(results.table("models", "model_summary"))
    distrust += untested_sources(results.table("effects", "effects"))
    distrust += outlier_cautions(results.table("effects", "outliers"))

    # At most VERDICT_SENTENCES points up front: what holds first, then the gravest cautions.
    shown_trust = trust[:VERDICT_SENTENCES]
    shown_distrust = distrust[: max(1, VERDICT_SENTENCES - len(shown_trust))]
    more = trust[len(shown_trust) :] + distrust[len(shown_distrust) :]
    if shown_trust:
        section.add(Text("**What holds up**\n\n" + "\n".join(f"- {t}" for t in shown_trust)))
    section.add(
        Text(
            "**What to distrust**\n\n" + "\n".join(f"- {d}" for d in shown_distrust)
            if shown_distrust
            else "**What to distrust:** nothing stood out."
        )
    )
    table = _verdict_table(results)
    section.add(table)
    section.add(_strategy_table(results))
    if more:
        section.add(Text("**Also note**\n\n" + "\n".join(f"- {m}" for m in more)))
    skipped = [f"{r.name}: {r.reason}" for r in results.steps.values() if r.status == "skipped"]
    if skipped and table.source != "tables/manifest.json":
        section.add(
            Note(
                "Parts of the analysis could not run on these data — " + "; ".join(skipped) + ".",
                level="info",
            )
        )
    return section


def _what_was_analysed(results) -> str:
    lab = results.lab
    meta = lab.metadata
    sources = lab.sources_table() if hasattr(lab, "sources_table") else pd.DataFrame()
    predicted = [s for s in lab.label_sources.values() if s.is_prediction] + list(results.predicted.values())
    strategies = pd.Series([s.strategy for s in predicted]).value_counts()
    model_text = (
        listing([f"{n} {strategy_label(s)}" for s, n in strategies.items()])
        if len(strategies)
        else "no models"
    )
    if meta["condition"].notna().any():
        groups = ", ".join(
            f"{c} ({lab.config.condition_names.get(c, c)})"
            for c in lab.config.conditions
            if c in set(meta["condition"].dropna())
        )
        group_text = f"conditions {groups}; control {lab.config.control}"
    elif meta["stratum"].notna().any():
        group_text = f"no conditions in the data; {meta['stratum'].nunique()} sampling strata"
    else:
        group_text = "no conditions and no strata in the data"
    animals = f"{meta['animal'].nunique()} animals" if meta["animal"].notna().any() else "animals not named"
    del sources
    return (
        f"Lab **{lab.config.name}** ({lab.config.description or lab.config.label}): "
        f"{plural(len(meta), 'image')}, {plural(len(lab.annotators), 'annotator')}, {model_text}; "
        f"{group_text}; {animals}. Label: {lab.config.label}, objects of at least "
        f"{lab.config.min_object_size} px (8-connected), matched at IoU > {results.parameters['threshold']}."
    )


def _who_found_everything(calls: pd.DataFrame | None, found: pd.DataFrame) -> str | None:
    """How many analyses of each strategy found every majority effect (the study's key finding)."""
    if calls is None or calls.empty or found.empty:
        return None
    keys = ["region", "readout", "comparison"]
    majority = found[keys + ["majority_call"]]
    merged = calls.merge(majority, on=keys, how="inner")
    merged = merged[merged["strategy"].isin(VOTING_STRATEGIES)]
    if merged.empty:
        return None
    per_source = (
        merged.assign(hit=merged["call"] == merged["majority_call"])
        .groupby(["strategy", "source"])["hit"]
        .all()
    )
    parts = []
    for strategy, hits in per_source.groupby(level=0):
        parts.append(f"{int(hits.sum())}/{len(hits)} {strategy_label(strategy)}")
    return "Analyses that found **every** majority effect: " + listing(parts, 10) + "."


def _summary_caption(n: int) -> str:
    return (
        f"Reproducibility of the {n} effects, per region and readout: every analysis agrees on every effect "
        "and none is found by the majority (one row per effect in the CSV)"
    )


def _effects_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per region and readout: effects tested, found by majority, contested."""
    rows = []
    for (region, readout), group in table.groupby(["region", "readout"], sort=True):
        rows.append(
            {
                "region": region_label(region),
                "readout": readout,
                "effects tested": len(group),
                "found by majority": int((group["_found"] == 0).sum()),
                "contested (not unanimous)": int((group["_agreement"] < 1).sum()),
                "analyses per effect": listing(sorted({str(int(n)) for n in group.get("n_analyses", [])})),
            }
        )
    return pd.DataFrame(rows)


def _bold_call(call) -> str:
    return f"**{call}**" if call in ("increase", "decrease") else call


def _strategy_table(results) -> Table | None:
    """Per effect and voting strategy: analyses agreeing with the majority / analyses."""
    repro = results.table("effects", "reproducibility")
    if not has_columns(repro, "region", "readout", "comparison", "majority_call"):
        return None
    table = sort_effects(repro, results.runs.get("effects", {}).get("groups", []))
    rows = pd.DataFrame(
        {"effect": table["region"].map(region_label) + " " + table["readout"] + " " + table["comparison"]}
    )
    for strategy in (s for s in STRATEGY_ORDER if s in VOTING_STRATEGIES):
        if f"{strategy}_agree" in table.columns:
            rows[strategy_label(strategy)] = [
                "–" if pd.isna(n) or n == 0 else f"{int(a)}/{int(n)}"
                for a, n in zip(table[f"{strategy}_agree"], table[f"{strategy}_n"])
            ]
    if rows.shape[1] == 1:
        return None
    caption = (
        "Per strategy: analyses that agree with the majority call / analyses of the strategy (– none tested)"
    )
    if len(rows) > MAX_TABLE_ROWS:
        # As the verdict table: only effects found by the majority or contested, when there are many.
        found = table["majority_call"].isin(["increase", "decrease"])
        contested = (
            table["n_agree"] < table["n_analyses"] if has_columns(table, "n_agree", "n_analyses") else found
        )
        keep = (found | contested).to_numpy()
        if not keep.any():
            return None
        caption += f"; the {int(keep.sum())} of {len(rows)} effects found by majority or contested"
        rows = rows[keep].head(MAX_TABLE_ROWS)
    return Table(
        "verdict_strategies",
        caption,
        rows.reset_index(drop=True),
        "tables/effects/reproducibility.csv",
    )


def _verdict_table(results) -> Table:
    repro = results.table("effects", "reproducibility")
    groups = results.runs.get("effects", {}).get("groups", [])
    if has_columns(repro, "region", "readout", "comparison", "majority_call"):
        table = sort_effects(repro, groups)
        table["_found"] = (~table["majority_call"].isin(["increase", "decrease"])).astype(int)
        if has_columns(table, "n_agree", "n_analyses"):
            table["_agreement"] = table["n_agree"] / table["n_analyses"].where(table["n_analyses"] > 0)
        else:
            table["_agreement"] = 1.0
        rows = pd.DataFrame(
            {
                "region": table["region"].map(region_label),
                "readout": table["readout"],
                "comparison": table["comparison"],
                "majority call": table["majority_call"].map(_bold_call),
                "agreeing analyses": [
                    f"{a}/{n}" for a, n in zip(table.get("n_agree", ""), table.get("n_analyses", ""))
                ],
            }
        )
        for level, label in (("animal", "animal level"), ("mixed", "mixed model")):
            if f"majority_call_{level}" in table.columns:
                rows[label] = as_text(table[f"majority_call_{level}"], "–").map(_bold_call).to_numpy()
        if "dissenters" in table.columns:
            rows["dissenting analyses"] = [
                "" if pd.isna(d) or not str(d) else listing([short_source(s) for s in str(d).split(";")], 3)
                for d in table["dissenters"]
            ]
        rows.insert(
            0, "effect", rows.pop("region") + " " + rows.pop("readout") + " " + rows.pop("comparison")
        )
        caption = (
            "Reproducibility of every effect: the majority call of the analyses at image level, how many "
            "analyses agree with it, the majority calls at the animal level and by the mixed model, and "
            "the analyses that disagree (per strategy in the next table)"
        )
        if len(rows) > MAX_TABLE_ROWS:
            interesting = table[(table["_found"] == 0) | (table["_agreement"] < 1)]
            if interesting.empty:
                return Table(
                    "verdict",
                    _summary_caption(len(table)),
                    _effects_summary(table),
                    "tables/effects/reproducibility.csv",
                )
            keep = interesting.sort_values(["_found", "_agreement"], kind="stable").index[:MAX_TABLE_ROWS]
            keep = [i for i in table.index if i in set(keep)]
            rows = rows.loc[keep]
            caption += (
                f" (the {len(rows)} of {len(table)} effects found by majority or contested; all in the CSV)"
            )
        return Table("verdict", caption, rows.reset_index(drop=True), "tables/effects/reproducibility.csv")
    checks = []
    for record in results.steps.values():
        checks.append(
            {
                "analysis": record.name,
                "done": "no" if record.status == "skipped" else "yes",
                "detail": record.reason or "see the sections below",
            }
        )
    return Table(
        "verdict", "What could be checked on these data", pd.DataFrame(checks), "tables/manifest.json"
    )
