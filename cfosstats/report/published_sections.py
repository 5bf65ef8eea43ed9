"""Report sections from published analysis sets (reviewer mode).

:func:`published_verdict` leads with one figure (effects x analyses grouped by strategy, each
cell the analysis' eta² with its call marked, the majority per row) and at most five plain
sentences per set; :func:`published_section` shows, per set, what was read, whether the study's
numbers were reproduced, and its reliability and validity tables; :func:`published_methods`
the preset against cfosstats's defaults and where every number came from.
"""

from __future__ import annotations

import pandas as pd

from cfosstats.report.document import Note, Section, Table, Text
from cfosstats.report.figures import call_matrix, normalised_values, variation_per_effect
from cfosstats.stats.presets import preset_differences
from cfosstats.stats.reliability import STRATEGY_NAMES

__all__ = ["published_methods", "published_section", "published_verdict"]

VARIANT_ORDER = {"from scratch": 0, "fine-tuned": 1, "frozen": 2}


def _strategy_words(strategy: str, n: int) -> str:
    singular, plural = STRATEGY_NAMES.get(strategy, (strategy.replace("_", " "),) * 2)
    return singular if n == 1 else plural


def _effect_phrase(comparison: str, call: str) -> str:
    a, b = comparison.split(" vs ")
    if call == "increase":
        return f"higher in {b} than {a}"
    if call == "decrease":
        return f"lower in {b} than {a}"
    return f"no {a} vs {b} difference"


def _findings(repro: pd.DataFrame, order: list[str]) -> list[str]:
    """One phrase per (region, readout): what the majority finds, and how many agree."""
    phrases = []
    for (region, readout), part in repro.groupby(["region", "readout"], sort=True):
        found = part[part["majority_call"] != "none"]
        if found.empty:
            continue
        bits = []
        for _, row in part.sort_values(
            "comparison", key=lambda s: s.map(lambda c: _pair_rank(c, order))
        ).iterrows():
            agree = f"{int(row['n_agree'])}/{int(row['n_analyses'])}"
            bits.append(f"{_effect_phrase(row['comparison'], row['majority_call'])} ({agree})")
        phrases.append(f"{region} {readout}: " + ", ".join(bits))
    return phrases


def _pair_rank(comparison: str, order: list[str]) -> tuple:
    a, _, b = comparison.partition(" vs ")
    return (order.index(a) if a in order else 99, order.index(b) if b in order else 99)


def _who_found_all(result) -> str:
    """Per strategy, how many analyses make every majority call (the study's Figure 4 point)."""
    repro = result.tables["reproducibility"]
    found = repro[repro["majority_call"] != "none"][["region", "readout", "comparison", "majority_call"]]
    if found.empty:
        return ""
    effects = result.tables["effects"]
    calls = effects[(effects["level"] == "image") & (effects["comparison"] != "all")]
    calls = calls.merge(found, on=["region", "readout", "comparison"])
    complete = (
        calls.assign(hit=calls["call"] == calls["majority_call"]).groupby(["strategy", "source"])["hit"].all()
    )
    parts = []
    for strategy, hits in complete.groupby(level=0):
        parts.append(f"{int(hits.sum())}/{len(hits)} {_strategy_words(strategy, len(hits))}")
    return "Analyses that find every majority effect: " + ", ".join(parts) + "."


def _reproduction_sentence(result) -> str:
    summary = result.tables.get("reproduction_summary")
    if summary is not None and len(summary):
        n, equal = int(summary["n_published"].sum()), int(summary["n_equal"].sum())
        analyses = int(summary["n_analyses"].max())
        largest = float(summary["max_abs_difference"].max())
        return (
            f"From the study's per-image table, cfosstats ({result.settings.name} preset) recomputes "
            f"{equal} of {n} published statistics of {analyses} analyses exactly (largest difference "
            f"{largest:.1g}; normalisation recomputed from raw counts and areas)."
        )
    variation = result.tables.get("variation_reproduction")
    if variation is not None and len(variation):
        between = result.tables["variation_between_strategies"]
        test = result.tables.get("variation_test_reproduction")
        published = ""
        if test is not None and len(test):
            h = test.set_index("quantity")["published"].get("kruskal_h")
            published = f" (published: H = {h:.3f})" if h is not None else ""
        return (
            f"From the published statistics, the variation per effect of {len(variation)} "
            f"effect x strategy pairs equals the study's (largest difference "
            f"{variation['abs_difference'].max():.1g}); Kruskal-Wallis across strategies H = "
            f"{between['kruskal_h'].iloc[0]:.3f}, p = {between['kruskal_p'].iloc[0]:.2g}{published}."
        )
    return ""


def _defaults_sentence(result) -> str:
    differ = result.tables.get("call_differences")
    if differ is None:
        return ""
    if differ.empty:
        return "cfosstats's own default settings make the same call as the study's rules for every effect."
    return f"cfosstats's own defaults change {len(differ)} call(s); the methods list them with the reason."


def published_verdict(results: list, figures, order: list[str]) -> list:
    """Verdict blocks: per set, the call-matrix figure and at most five sentences."""
    blocks = []
    for result in results:
        repro = result.tables["reproducibility"]
        found = repro[repro["majority_call"] != "none"]
        n_analyses = int(repro["n_analyses"].max()) if len(repro) else 0
        findings = _findings(repro, order)
        sentences = [
            f"The majority of {n_analyses} analyses finds {len(found)} of {len(repro)} effects"
            + (": " + "; ".join(findings) + "." if findings else ".")
        ]
        extra = (_who_found_all(result), _reproduction_sentence(result), _defaults_sentence(result))
        sentences += [s for s in extra if s]
        bullets = "\n".join(f"- {s}" for s in sentences[:5])
        blocks.append(Text(f"**{result.title}**\n\n{bullets}"))
        effects = result.tables["effects"]
        pairs = effects[(effects["level"] == "image") & (effects["comparison"] != "all")]
        n_sources = pairs["source"].nunique()
        n_effects = len(repro)
        blocks.append(
            figures.make(
                f"verdict_{result.name}",
                call_matrix,
                {"effects": pairs, "reproducibility": repro},
                size=(
                    min(11.0, 5.0 + 0.1 * n_sources),
                    min(10.0, 1.6 + 0.28 * n_effects + (1.6 if n_sources <= 20 else 0)),
                ),
                caption=f"{result.title}: each analysis' eta² per effect (darker = larger), "
                "▲ significant increase, ▼ decrease; the last column is the majority call.",
                alt=f"Grid of {n_effects} effects by {n_sources} analyses grouped by strategy, "
                "coloured by eta².",
                order=order,
                what="call matrix",
            )
        )
    return blocks


def _read_table(result) -> pd.DataFrame:
    if "quantification" in result.tables:
        frame = result.tables["quantification"]
        rows = frame.groupby("strategy", sort=False).agg(
            analyses=("source", "nunique"), images=("image_id", "nunique"), rows=("image_id", "size")
        )
        return rows.reset_index().assign(strategy=lambda t: t["strategy"].str.replace("_", " "))
    effects = result.tables["effects"]
    pairs = effects[effects["comparison"] != "all"]
    rows = pairs.groupby("strategy", sort=False).agg(analyses=("source", "nunique"), rows=("source", "size"))
    return rows.reset_index().assign(strategy=lambda t: t["strategy"].str.replace("_", " "))


def _repro_table(repro: pd.DataFrame) -> pd.DataFrame:
    columns = {
        "region": "region",
        "readout": "readout",
        "comparison": "comparison",
        "majority_call": "majority",
    }
    table = repro[list(columns)].rename(columns=columns)
    for strategy in ("consensus_ensembles", "consensus_models", "expert_models", "expert_ensembles"):
        if f"{strategy}_n" in repro.columns and repro[f"{strategy}_n"].sum() > 0:
            name = STRATEGY_NAMES[strategy][1]
            table[name] = (
                repro[f"{strategy}_agree"].astype(int).astype(str)
                + "/"
                + repro[f"{strategy}_n"].astype(int).astype(str)
            )
    return table


def _table1(result) -> pd.DataFrame | None:
    """The paper's Table 1 row: ensembles per initialization variant (density)."""
    effects = result.tables["effects"]
    quantification = result.tables["quantification"]
    if not (quantification["initialization"] != "").any():
        return None
    ensembles = effects[
        (effects["strategy"] == "consensus_ensembles")
        & (effects["readout"] == "density")
        & (effects["level"] == "image")
    ]
    names = quantification.drop_duplicates("source").set_index("source")
    rows = []
    for _, row in ensembles.iterrows():
        variant = names.loc[row["source"], "initialization"] or "(not in the study's statistics)"
        rows.append(
            {
                "initialization": variant,
                "ensemble": names.loc[row["source"], "published_name"] or row["source"],
                f"mean {row['group_a']}": f"{row['mean_a']:.3f}",
                f"mean {row['group_b']}": f"{row['mean_b']:.3f}",
                "U": f"{row['statistic']:g}",
                "p": f"{row['p_value']:.2g}",
                "eta²": f"{row['eta2']:.3f}",
                "call": row["call"],
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(
        "initialization", key=lambda s: s.map(lambda v: VARIANT_ORDER.get(v, 9)), kind="stable"
    )


def published_section(result, figures, order: list[str]) -> Section:
    """One published set: what was read, reproduction, reliability and validity tables."""
    section = Section(f"published-{result.name}", result.title)
    where = (
        "shipped with cfosstats from the study's source data"
        if result.shipped
        else "given on the command line"
    )
    section.add(Text(f"Tables {where}: " + ", ".join(f"`{p.split('/')[-1]}`" for p in result.inputs) + "."))
    section.add(Table(f"read_{result.name}", "What was read, per strategy.", _read_table(result)))
    summary = result.tables.get("reproduction_summary")
    if summary is not None:
        section.add(
            Table(
                f"reproduction_{result.name}",
                "The study's published statistics against cfosstats's recomputation (tolerance 1e-9; "
                "call: exact).",
                summary.rename(columns={"max_abs_difference": "largest difference"}),
                source=f"tables/published/{result.name}/reproduction.csv",
            )
        )
    section.add(
        Table(
            f"majority_{result.name}",
            "Majority call per effect and how many analyses of each strategy agree with it.",
            _repro_table(result.tables["reproducibility"]),
            source=f"tables/published/{result.name}/reproducibility.csv",
        )
    )
    table1 = _table1(result) if "quantification" in result.tables else None
    if table1 is not None:
        section.add(
            Table(
                f"table1_{result.name}",
                "The paper's Table 1 for this lab: each consensus ensemble by initialization (from scratch, "
                "fine-tuned from lab-wue1, frozen lab-wue1 models), normalised density.",
                table1,
            )
        )
    if "quantification" in result.tables:
        q = result.tables["quantification"]
        long = pd.concat(
            [
                q[["strategy", "region", "group"]].assign(readout=r, normalised=q[f"{r}_normalised"])
                for r in ("density", "intensity")
            ],
            ignore_index=True,
        )
        section.add(
            figures.make(
                f"values_{result.name}",
                normalised_values,
                {"quantification": long},
                size=(8.0, 5.0),
                caption="Per-image values normalised to the control mean (per analysis, region and "
                "experiment), by group and strategy.",
                alt="Box plots of normalised density and intensity per group and strategy.",
                conditions=order,
                what="normalised values",
            )
        )
    variation = result.tables["variation_per_effect"]
    between = result.tables["variation_between_strategies"]
    n_effects = len(variation.groupby(["region", "readout", "comparison"])) if len(variation) else 0
    if n_effects >= 5 and len(between):  # a spread over fewer effects says little
        h, p = between["kruskal_h"].iloc[0], between["kruskal_p"].iloc[0]
        section.add(
            figures.make(
                f"variation_{result.name}",
                variation_per_effect,
                {"table": variation},
                size=(7.0, 3.0),
                caption=f"Variation per effect: SD of eta² within each strategy; Kruskal-Wallis across "
                f"strategies H = {h:.3f}, p = {p:.2g}.",
                alt="Box plots of the SD of eta² per effect for each strategy.",
                what="variation per effect",
            )
        )
    per_model = result.tables["variation_per_model"]
    if len(per_model):
        top = per_model.sort_values(["n_differ", "centred_eta2_sd"], ascending=False).head(10)
        section.add(
            Table(
                f"per_model_{result.name}",
                "Variation per model: the 10 analyses whose calls differ most often from the majority.",
                top[["source", "strategy", "n_differ", "n_calls", "centred_eta2_sd"]],
                source=f"tables/published/{result.name}/variation_per_model.csv",
            )
        )
    return section


def published_methods(results: list) -> list:
    """Methods blocks: the preset against the defaults, calls that differ, the inputs' checksums."""
    blocks = []
    if results:
        settings = results[0].settings
        blocks.append(
            Text(
                f"Published tables were analysed with the **{settings.name}** preset "
                "(`--preset`, recorded in `run.json`). Where it differs from cfosstats's defaults:"
            )
        )
        blocks.append(
            Table(
                "preset_differences",
                "The study's settings against cfosstats's defaults.",
                preset_differences(),
            )
        )
    for result in results:
        differ = result.tables.get("call_differences")
        if differ is not None and len(differ):
            blocks.append(Table(f"calls_{result.name}", f"{result.title}: calls that differ.", differ))
        elif differ is not None:
            blocks.append(
                Note(f"{result.title}: cfosstats's defaults make the same call for every effect.", "info")
            )
    files = pd.DataFrame(
        [
            {"file": path.split("/")[-1], "sha256": digest}
            for r in results
            for path, digest in r.inputs.items()
        ]
    )
    if len(files):
        blocks.append(
            Table(
                "published_inputs",
                "Where the numbers come from: the study's source data (Segebarth et al., eLife 2020, "
                "Apache-2.0), unchanged.",
                files,
            )
        )
    return blocks
