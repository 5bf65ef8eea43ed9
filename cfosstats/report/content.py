"""What the report says: the sections, in the order a reviewer reads them, built from the tables.

Each ``*_section`` function turns the tables of :class:`~cfosstats.study.runner.Results`
into a :class:`~cfosstats.report.document.Section` of text, figures, compact tables and notes.
Every section renders from whatever tables exist: a missing table or column becomes a
:class:`~cfosstats.report.document.Note` that says what was skipped and why.

Sections and the tables behind them
-----------------------------------
Verdict
    ``effects/reproducibility``, ``effects/variation_per_model``, ``effects/effects`` (animal
    and mixed-model levels), ``effects/outliers``, ``objectivity/annotator_summary``,
    ``objectivity/bland_altman``, ``objectivity/count_agreement``, ``models/model_summary``.
Objectivity
    ``objectivity/pairwise_f1``, ``objectivity/objects``, ``objectivity/annotator_summary``,
    ``groundtruth/annotators`` (STAPLE), ``objectivity/count_agreement``,
    ``objectivity/bland_altman``; the image panel reads the masks themselves.
Reliability
    ``models/model_f1``, ``objectivity/expert_range``, ``models/model_summary``,
    ``effects/consistency``, ``effects/effects`` (image level), ``effects/variation_per_effect``,
    ``effects/variation_between_strategies``, ``effects/variation_per_model``.
Validity
    ``effects/quantification``, ``effects/effects`` (all levels), ``effects/outliers``.
Methods and provenance
    ``tables/manifest.json``, ``tables/inputs.csv``, the lab registry entry, model cards or
    ``simulation.json``, package versions, parameters, the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cfosstats.core.cache import canonical_json
from cfosstats.core.hashing import sha256_file
from cfosstats.core.version import __version__
from cfosstats.datasets.layout import ESTIMATED_GT, STRATEGY_ORDER
from cfosstats.report.document import Code, Figure, Note, Section, Table, Text
from cfosstats.report.figures import MissingData, strategy_label, truthy
from cfosstats.stats.reliability import VOTING_STRATEGIES

FIGURES_VERSION = 3
MAX_TABLE_ROWS = 30


# -- small helpers ---------------------------------------------------------------------------


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
    return f"{region_label(row['region'])} {row['readout']}, {row['comparison']}"


def _has(table: pd.DataFrame | None, *columns: str) -> bool:
    return table is not None and not table.empty and all(c in table.columns for c in columns)


def _text(values: pd.Series, default: str) -> pd.Series:
    """A column as text, missing values replaced by `default` (whatever the column's dtype)."""
    return values.astype(object).where(values.notna(), default)


def _table_digest(table: pd.DataFrame | None) -> str:
    if table is None:
        return "none"
    digest = hashlib.sha256(canonical_json(list(map(str, table.columns))).encode())
    digest.update(table.to_csv(index=False).encode("utf-8"))
    return digest.hexdigest()


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


# -- figures, cached by the content of their tables --------------------------------------------


def _code_digest() -> str:
    """SHA-256 of the drawing code (figures.py, panel.py): a code change redraws every figure."""
    from cfosstats.report import figures, panel

    digest = hashlib.sha256()
    for module in (figures, panel):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


class FigureMaker:
    """Draws figures into ``<report>/figures/``, reusing a PNG whose tables did not change."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / "figures"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path = self.folder / "figures.json"
        try:
            self.index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.index = {}
        self.used: set[str] = set()
        self.drawn: list[str] = []

    def key(self, name: str, tables: dict, options: dict) -> str:
        document = {
            "name": name,
            "version": FIGURES_VERSION,
            "code": _code_digest(),
            "tables": {k: _table_digest(v) for k, v in tables.items()},
            "options": options,
        }
        return hashlib.sha256(canonical_json(document).encode()).hexdigest()

    def make(
        self,
        name: str,
        draw: Callable[..., object],
        tables: dict[str, pd.DataFrame | None],
        *,
        size: tuple[float, float],
        caption: str,
        alt: str,
        width: int | None = None,
        what: str = "",
        **options,
    ) -> Figure | Note:
        """The figure (drawn now or reused), or a Note saying why it could not be drawn."""
        path = self.folder / f"{name}.png"
        key = self.key(name, tables, {"size": size, **options})
        self.used.add(path.name)
        if not self._intact(name, key, path):
            from cfosstats.report.figures import save

            try:
                plot = draw(**tables, **options)
            except MissingData as exc:
                self.index.pop(name, None)
                return Note(f"{what or name}: {exc}.")
            save(plot, path, *size)
            self._remember(name, key, path)
        if width is None:  # about the natural size in the HTML (text ~900 px wide, figures at 110 dpi)
            width = max(30, min(100, round(size[0] * 12)))
        return Figure(name, f"figures/{path.name}", caption, alt, width)

    def file(self, name: str, key_document: dict, draw: Callable[[Path], object]) -> Path:
        """A figure drawn by `draw(path)` (not plotnine), cached by `key_document`."""
        path = self.folder / f"{name}.png"
        key_document = {"v": FIGURES_VERSION, "code": _code_digest(), **key_document}
        key = hashlib.sha256(canonical_json(key_document).encode()).hexdigest()
        self.used.add(path.name)
        if not self._intact(name, key, path):
            draw(path)
            self._remember(name, key, path)
        return path

    def _intact(self, name: str, key: str, path: Path) -> bool:
        """Whether the PNG was drawn for `key` and is byte for byte what was drawn."""
        entry = self.index.get(name)
        if not isinstance(entry, dict) or entry.get("key") != key or not path.is_file():
            return False
        return sha256_file(path) == entry.get("sha256")

    def _remember(self, name: str, key: str, path: Path) -> None:
        self.index[name] = {"key": key, "sha256": sha256_file(path)}
        self.drawn.append(name)
        self._write_index()

    def _write_index(self) -> None:
        from cfosstats.core.atomic import write_text

        write_text(self.index_path, json.dumps(self.index, indent=1, sort_keys=True) + "\n")

    def prune(self) -> None:
        """Remove figures of an earlier run that this report no longer shows."""
        for path in self.folder.glob("*.png"):
            if path.name not in self.used:
                path.unlink()
                self.index.pop(path.stem, None)
        self._write_index()


# -- verdict ---------------------------------------------------------------------------------


def _image_calls(effects: pd.DataFrame | None) -> pd.DataFrame | None:
    if not _has(effects, "source", "strategy", "region", "readout", "comparison", "call"):
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
        or not _has(effects, "level", "comparison", "call", "eta2")
        or not _has(repro, "majority_call")
    ):
        return None
    pairs = effects[
        (effects["level"] == "image") & (effects["comparison"] != "all") & (effects["call"] != "")
    ]
    pairs = pairs.dropna(subset=["eta2"])
    pairs = pairs.assign(source=pairs["source"].map(short_source))
    if pairs.empty or repro.empty or not pairs["call"].isin(["increase", "decrease"]).any():
        return None  # a grid of blank cells shows nothing the verdict's sentence does not say
    from cfosstats.report.figures import call_matrix

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

    if _has(repro, "region", "readout", "comparison", "majority_call"):
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
        distrust += _unit_of_analysis(repro, lab, effects)
    else:
        reason = results.skipped("effects") or "the effects table lacks the reproducibility columns"
        distrust.append(f"**No treatment effects were tested:** {reason}.")

    for line in _disagreeing_analyses(results.table("effects", "variation_per_model")):
        (trust if line.startswith("Every voting analysis") else distrust).append(line)
    distrust += _annotator_cautions(results)
    distrust += _model_cautions(results.table("models", "model_summary"))
    distrust += _untested_sources(results.table("effects", "effects"))
    distrust += _outlier_cautions(results.table("effects", "outliers"))

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


def animal_level_power(effects: pd.DataFrame | None, level: str = "animal") -> dict | None:
    """Whether the pairwise Mann-Whitney tests of one level can reach significance at all.

    With few units (animals, or images) per group the exact two-sided Mann-Whitney test has a
    smallest possible p of ``2 / C(n_a + n_b, n_a)``; when that is above the per-pair alpha
    (Bonferroni), no comparison of that level can be significant whatever the data.

    Returns
    -------
    dict or None
        ``n_a``, ``n_b`` (the largest groups tested), ``min_p``, ``alpha_pair`` and
        ``powerless`` (True when no pair can be significant); None without rows of `level`.

    Examples
    --------
    >>> rows = pd.DataFrame({"level": "animal", "comparison": "H vs C+", "test": "mann_whitney",
    ...     "n_a": [4], "n_b": [4], "alpha_comparison": [0.05 / 3]})
    >>> info = animal_level_power(rows)
    >>> round(info["min_p"], 4), info["powerless"]
    (0.0286, True)
    """
    from math import comb

    if not _has(effects, "level", "comparison", "n_a", "n_b"):
        return None
    rows = effects[(effects["level"] == level) & (effects["comparison"] != "all")]
    if "test" in rows.columns:
        rows = rows[rows["test"].astype(str).str.startswith("mann_whitney")]
    rows = rows.dropna(subset=["n_a", "n_b"])
    if rows.empty:
        return None
    if "alpha_comparison" in rows.columns and rows["alpha_comparison"].notna().any():
        alpha_pair = float(rows["alpha_comparison"].dropna().max())
    else:
        alpha_pair = float("nan")
    sizes = rows[["n_a", "n_b"]].astype(int).drop_duplicates()
    best = min(2 / comb(int(a) + int(b), int(a)) for a, b in sizes.itertuples(index=False))
    largest = sizes.assign(total=sizes.sum(axis=1)).sort_values("total").iloc[-1]
    return {
        "n_a": int(largest["n_a"]),
        "n_b": int(largest["n_b"]),
        "min_p": min(1.0, best),
        "alpha_pair": alpha_pair,
        "powerless": bool(best > alpha_pair) if alpha_pair == alpha_pair else False,
    }


def _unit_of_analysis(repro: pd.DataFrame, lab, effects: pd.DataFrame | None = None) -> list[str]:
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


def _disagreeing_analyses(variation: pd.DataFrame | None) -> list[str]:
    if not _has(variation, "source", "n_differ"):
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


def _annotator_cautions(results) -> list[str]:
    out = []
    summary = results.table("objectivity", "annotator_summary")
    if _has(summary, "rater", "f1_median"):
        ordered = summary.sort_values("f1_median")
        worst, best = ordered.iloc[0], ordered.iloc[-1]
        out.append(
            f"Annotators agree with the estimated ground truth at a median object F1 from "
            f"{worst['f1_median']:.2f} ({worst['rater']}) to {best['f1_median']:.2f} ({best['rater']}): "
            "a model trained on one annotator inherits that annotator's view."
        )
    ba = results.table("objectivity", "bland_altman")
    if _has(ba, "rater", "bias", "loa_low", "loa_high"):
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
    if _has(icc, "shrout_fleiss", "value"):
        row = icc[icc["shrout_fleiss"] == "ICC(2,1)"]
        if len(row) and pd.notna(row["value"].iloc[0]) and row["value"].iloc[0] < 0.75:
            out.append(
                f"Count agreement between annotators is only moderate (ICC(2,1), absolute agreement = "
                f"{row['value'].iloc[0]:.2f}): single-annotator counts differ systematically."
            )
    return out


def _model_cautions(summary: pd.DataFrame | None) -> list[str]:
    if not _has(summary, "source", "passes_rule"):
        return []
    # passes_rule is None for a model trained on every annotated image: the rule cannot judge it.
    judged = summary[summary["passes_rule"].astype(str).str.lower().isin(["true", "false"])]
    failing = judged[~truthy(judged["passes_rule"])]
    images = (
        "image they were not trained on"
        if _has(summary, "n_in_sample")
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


def _untested_sources(effects: pd.DataFrame | None) -> list[str]:
    """Label sets quantified but never tested (every image-level test skipped), and why.

    Examples
    --------
    >>> table = pd.DataFrame({"source": ["m", "m", "a"], "level": "image",
    ...     "test": ["skipped", "skipped", "mann_whitney"], "n_in_sample_left_out": [20, 20, 0]})
    >>> print(_untested_sources(table)[0])  # doctest: +NORMALIZE_WHITESPACE
    **1 label set could not be tested**: fewer than 3 images were left in a group once the images
    its model was trained on were left out (m); it is quantified (quantification.csv) but takes no
    part in the vote.
    """
    if not _has(effects, "source", "level", "test"):
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


def _outlier_cautions(outliers: pd.DataFrame | None) -> list[str]:
    if outliers is None:
        return []
    if outliers.empty:
        return ["Grubbs' test flags no outlier."]
    images = sorted(outliers["image_id"].astype(str).unique()) if "image_id" in outliers else []
    return [
        f"Grubbs' test flags {plural(len(outliers), 'value')} in {plural(len(images), 'image')} "
        f"({listing(images, 8)}); none was removed (removal needs the lab's exclusion list)."
    ]


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


def _strategy_table(results) -> Table | None:
    """Per effect and voting strategy: analyses agreeing with the majority / analyses."""
    repro = results.table("effects", "reproducibility")
    if not _has(repro, "region", "readout", "comparison", "majority_call"):
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
        contested = table["n_agree"] < table["n_analyses"] if _has(table, "n_agree", "n_analyses") else found
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
    if _has(repro, "region", "readout", "comparison", "majority_call"):
        table = sort_effects(repro, groups)
        table["_found"] = (~table["majority_call"].isin(["increase", "decrease"])).astype(int)
        if _has(table, "n_agree", "n_analyses"):
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
                rows[label] = _text(table[f"majority_call_{level}"], "–").map(_bold_call).to_numpy()
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


# -- objectivity -----------------------------------------------------------------------------


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
    if _has(images, "reference_source"):
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
    if _has(pairwise, "rater", "reference", "f1_mean"):
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
            _draw("pairwise_f1_heatmap"),
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
    sub.add(
        figures.make(
            "annotator_f1",
            _draw("annotator_f1"),
            {"objects": objects},
            size=(6.5, 1.2 + 0.42 * max(n_raters, 2)),
            caption="Each annotator's object F1 against the estimated ground truth, one point per image. "
            "Look "
            "for an annotator whose box sits lower or spreads wider: models trained on that annotator "
            "inherit it.",
            alt=_annotator_alt(summary),
            what="annotator F1 figure",
        )
    )
    if _has(summary, "rater", "f1_median"):
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
        sub.add(
            figures.make(
                "staple",
                _draw("staple_performance"),
                {"annotators": staple},
                size=(7.5, 1.3 + 0.42 * max(n_ann, 2)),
                caption="STAPLE's pixel sensitivity and specificity of each annotator, one point per "
                "image. Low "
                "sensitivity marks a conservative annotator (fewer or smaller objects); lower specificity "
                "a liberal one.",
                alt=_staple_alt(staple),
                what="STAPLE figure",
            )
        )
        if _has(staple, "annotator", "sensitivity", "specificity"):
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
    if _has(icc, "statistic", "value"):
        rows = pd.DataFrame(
            {
                "statistic": [
                    sf if isinstance(sf, str) and sf else f"Krippendorff's α ({t})"
                    for sf, t in zip(icc.get("shrout_fleiss", ""), icc["type"])
                ],
                "model": _text(icc["description"], "–").replace("", "–"),
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
            _draw("bland_altman"),
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


def _draw(name: str):
    def draw(**kwargs):
        from cfosstats.report import figures

        return getattr(figures, name)(**kwargs)

    return draw


def _annotator_alt(summary) -> str:
    if not _has(summary, "rater", "f1_median"):
        return "Box plots of each annotator's per-image object F1 against the estimated ground truth."
    parts = [f"{r} median {v:.2f}" for r, v in zip(summary["rater"], summary["f1_median"])]
    return (
        "Box plots of each annotator's per-image object F1 against the estimated ground truth: "
        + "; ".join(parts)
    )


def _staple_alt(staple) -> str:
    if not _has(staple, "annotator", "sensitivity", "specificity"):
        return "Box plots of STAPLE sensitivity and specificity per annotator."
    med = staple.groupby("annotator")[["sensitivity", "specificity"]].median()
    parts = [
        f"{a}: sensitivity {r.sensitivity:.2f}, specificity {r.specificity:.3f}" for a, r in med.iterrows()
    ]
    return "Box plots of STAPLE sensitivity and specificity per annotator (medians): " + "; ".join(parts)


def _bland_altman_alt(ba) -> str:
    if not _has(ba, "rater", "bias"):
        return "Bland-Altman plots of each annotator's counts against the estimated ground truth."
    per = ba.drop_duplicates("rater")
    parts = [f"{r} bias {b:+.1f}" for r, b in zip(per["rater"], per["bias"])]
    return "Bland-Altman plots, one panel per annotator, count difference against mean count: " + "; ".join(
        parts
    )


# -- the image panel -------------------------------------------------------------------------


def _panel_inputs(results):
    """What the panel shows: image id, the outlines' sources, the ensemble, the uncertainty."""
    from cfosstats.study.runner import analysed_lab

    lab = analysed_lab(results)
    counts = results.table("objectivity", "counts")
    references = _reference_files(results)
    candidates = [i for i in lab.annotated_image_ids() if i in references]
    if not candidates:
        return None
    image_id = candidates[0]
    if _has(counts, "image_id", "rater", "count"):
        gt = counts[(counts["rater"] == ESTIMATED_GT) & counts["image_id"].isin(candidates)]
        if len(gt):
            image_id = str(gt.sort_values(["count", "image_id"], ascending=[False, True]).iloc[0]["image_id"])
    ensembles = [
        s for s in lab.label_sources.values() if s.strategy == "consensus_ensembles" and image_id in s.files
    ]
    ensembles.sort(key=lambda s: (not s.name.startswith("library/"), s.name))
    ensemble = ensembles[0] if ensembles else None
    if ensemble is None:
        singles = [
            s for s in lab.label_sources.values() if s.strategy == "consensus_models" and image_id in s.files
        ]
        ensemble = sorted(singles, key=lambda s: s.name)[0] if singles else None
    return lab, image_id, references[image_id], ensemble


def _reference_files(results) -> dict[str, Path]:
    from cfosstats.study.runner import _reference_paths

    return _reference_paths(results)


def _uncertainty_of(results, lab, image_id: str, ensemble) -> tuple[Path | list[Path] | None, str]:
    """The ensemble's uncertainty map file, or its members' masks (vote entropy), and a title."""
    if ensemble is None:
        return None, ""
    if ensemble.name.startswith("library/") and results.prediction_root is not None:
        parts = ensemble.name.removeprefix("library/").split("/")
        folder = results.prediction_root / lab.config.folder / "uncertainty" / Path(*parts)
        for kind, title in (("epistemic", "uncertainty (epistemic)"), ("total", "uncertainty (total)")):
            path = folder / f"{image_id}_{kind}.png"
            if path.is_file():
                return path, title
    if ensemble.unet == "ensemble":
        members = [
            s
            for s in lab.label_sources.values()
            if s.strategy == "ensemble_members"
            and s.initialization == ensemble.initialization
            and s.model_type == ensemble.model_type
            and s.model == ensemble.model
            and image_id in s.files
        ]
        if len(members) >= 2:
            return [
                Path(m.files[image_id]) for m in sorted(members, key=lambda m: m.name)
            ], "uncertainty (members' vote)"
    return None, ""


def panel_section(results, figures: FigureMaker) -> Section:
    """One field of view: every annotator's outline, est_GT, the ensemble and its uncertainty."""
    section = Section("image-panel", "One field of view, outlined by everyone")
    inputs = _panel_inputs(results)
    if inputs is None:
        section.add(Note("No image panel: no annotated image has an estimated ground truth."))
        return section
    lab, image_id, reference_path, ensemble = inputs
    from cfosstats.report.panel import ENSEMBLE_COLOUR, GT_COLOUR, OUTLINE_COLOURS

    annotators = [a for a in lab.annotators if image_id in lab.label_sources[a].files]
    uncertainty, uncertainty_title = _uncertainty_of(results, lab, image_id, ensemble)
    files = [Path(lab.image_path(image_id)), Path(reference_path)] + [
        Path(lab.mask_path(a, image_id)) for a in annotators
    ]
    if ensemble is not None:
        files.append(Path(ensemble.files[image_id]))
    if isinstance(uncertainty, Path):
        files.append(uncertainty)
    elif isinstance(uncertainty, list):
        files += uncertainty
    from cfosstats.core.hashing import sha256_file

    key_document = {
        "panel": 1,
        "image": image_id,
        "files": [sha256_file(p) for p in files],
        "annotators": annotators,
        "ensemble": None if ensemble is None else ensemble.name,
        "size": 256,
        "uncertainty": uncertainty_title,
    }
    field_info: dict = {}

    def draw(path: Path) -> None:
        from cfosstats.core.imageio import read_image, read_mask
        from cfosstats.report.panel import Outline, choose_field, crop, draw_panel, entropy_of_votes

        reference = read_mask(reference_path)
        field = choose_field(reference, size=256)
        field_info["field"] = field
        outlines = [
            Outline(
                a,
                crop(read_mask(lab.mask_path(a, image_id)), field),
                OUTLINE_COLOURS[i % len(OUTLINE_COLOURS)],
            )
            for i, a in enumerate(annotators)
        ]
        outlines.append(Outline("est_GT", crop(reference, field), GT_COLOUR))
        if ensemble is not None:
            outlines.append(
                Outline(
                    _panel_title(ensemble), crop(read_mask(ensemble.files[image_id]), field), ENSEMBLE_COLOUR
                )
            )
        map_ = None
        if isinstance(uncertainty, Path):
            from PIL import Image

            with Image.open(uncertainty) as im:
                map_ = np.asarray(im, dtype=np.float64) / 65535.0
        elif isinstance(uncertainty, list):
            map_ = entropy_of_votes([read_mask(p) for p in uncertainty])
        draw_panel(
            crop(read_image(lab.image_path(image_id)), field),
            outlines,
            path,
            uncertainty=crop(map_, field),
            uncertainty_title=uncertainty_title,
            ncols=min(4, 1 + len(outlines) + (map_ is not None)),
        )

    figures.file("panel", key_document, draw)
    shape = lab.image_shape(image_id)
    side = min(256, *shape)
    what = [
        "the image",
        *[f"{a}'s outline" for a in annotators],
        "the estimated ground truth (est_GT, white)",
    ]
    if ensemble is not None:
        what.append(f"the {strategy_label(ensemble.strategy)[:-1]} {short_source(ensemble.name)} (green)")
    if uncertainty_title:
        what.append(f"its {uncertainty_title} (dark = certain, bright = uncertain)")
    notes = []
    if ensemble is None:
        notes.append(
            Note("No model prediction of this image: the panel shows the annotators and est_GT only.")
        )
    elif not uncertainty_title:
        notes.append(
            Note("No uncertainty map: the prediction has no stored probability maps and no members.")
        )
    section.add(
        Figure(
            "panel",
            "figures/panel.png",
            f"Image {image_id} ({side}×{side} px field of view with the most est_GT objects of the annotated "
            f"image with the most objects). Panels: {listing(what, 12)}. Look where the outlines disagree "
            "— objects "
            "one annotator leaves out, boundaries drawn wider — and whether the uncertainty is bright "
            "exactly there.",
            f"Microscopy field of view of image {image_id} shown "
            f"{1 + len(annotators) + 1 + (ensemble is not None)} "
            "times with outlines of "
            f"{listing(annotators + ['est_GT'] + ([short_source(ensemble.name)] if ensemble else []), 12)}"
            + (f", and an {uncertainty_title} heat map" if uncertainty_title else "")
            + ".",
            100,
        ),
        *notes,
    )
    return section


def _panel_title(source) -> str:
    short = short_source(source.name)
    return "prediction: " + short.removeprefix("library ")


# -- reliability -----------------------------------------------------------------------------


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
            _has(model_f1, "in_sample") and model_f1["in_sample"].astype(str).str.lower().eq("true").any()
        )
        sub.add(
            figures.make(
                "expert_range",
                _draw("model_expert_range"),
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
        if _has(summary, "source", "strategy", "f1_median"):
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

    sub = section.sub("consistency", "Ensemble consistency")
    consistency = results.table("effects", "consistency")
    if results.skipped("effects"):
        sub.add(Note(f"Not assessed: {results.skipped('effects')}."))
    elif _has(consistency, "level", "metric", "value"):
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

    sub = section.sub("variation-per-effect", "Variation per effect, by strategy")
    effects = results.table("effects", "effects")
    image_effects = None
    if _has(effects, "level", "comparison", "test"):
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
                _draw("effect_strip"),
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
                _draw("variation_per_effect"),
                {"table": variation},
                size=(6.5, 2.6),
                caption="Standard deviation of eta² within each strategy, one point per effect. Lower "
                "means the "
                "analyses of that strategy agree more; the study found consensus ensembles vary least.",
                alt="Box plots of the per-effect standard deviation of eta² for each strategy.",
                what="variation per effect figure",
            )
        )
        if _has(between, "strategy", "eta2_sd_median"):
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
    elif _has(per_model, "source", "strategy", "centred_eta2_sd", "n_differ"):
        sub.add(
            figures.make(
                "variation_per_model",
                _draw("variation_per_model"),
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
                "effects where it differs": _text(
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


# -- validity --------------------------------------------------------------------------------


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
    if _has(quantification, "analysed", "strategy"):
        shown = quantification[quantification["analysed"].astype(str).str.lower() == "true"]
        long = _normalised_long(shown)
        n_regions = 1 if long is None else long["region"].nunique()
        n_readouts = 1 if long is None else long["readout"].nunique()
        sub.add(
            figures.make(
                "normalised",
                _draw("normalised_values"),
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
    skipped = effects[effects["test"] == "skipped"] if _has(effects, "test", "note") else None
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
    if not _has(effects, "level", "comparison", "test", "significant"):
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


# -- methods and provenance ------------------------------------------------------------------


def methods_section(results) -> Section:
    """Every parameter, the registry entry, checksums, models, versions, command line, date."""
    from cfosstats.study.runner import environment_summary, git_commit, package_versions

    lab = results.lab
    params = results.parameters
    section = Section(
        "methods",
        "Methods and provenance",
        "Everything needed to rerun this report exactly and to check that its inputs are the ones "
        "described here.",
    )
    sub = section.sub("rerun", "How to rerun it")
    commit = git_commit()
    data_hint = "" if lab.config.simulated else f" --data {Path(lab.root).parent}"
    sub.add(Text("The command that produced this report, and the software it ran on:"))
    sub.add(
        Code(
            f"{params['command']}\n# installed: cfosstats {_version()}"
            + (f" (git {commit})" if commit else "")
            + f"\n# lab data: {lab.root}"
            + (f" (pass{data_hint})" if data_hint else ""),
            "bash",
        )
    )
    sub.add(
        Text(
            "A second identical run reuses every result whose inputs are unchanged: each analysis step is "
            "keyed by the SHA-256 of its input files, the lab's registry entry, its parameters and the "
            "cfosstats version (`tables/manifest.json`)."
        )
    )
    env = environment_summary()
    if env:
        sub.add(
            Table(
                "environment",
                "Environment variables that locate data",
                pd.DataFrame({"variable": list(env), "value": list(env.values())}),
            )
        )

    sub = section.sub("parameters", "Parameters")
    run = results.runs.get("effects", {})
    rows = [
        ("label", lab.config.label, "label name in the mask files"),
        (
            "minimum object size",
            f"{lab.config.min_object_size} px",
            "smaller 8-connected objects are not counted",
        ),
        (
            "pixel size",
            f"{lab.config.pixel_size_px_per_um} px/µm" if lab.config.pixel_size_px_per_um else "unknown",
            "densities per mm² need it",
        ),
        (
            "IoU threshold",
            f"> {params['threshold']}" if params["criterion"] == "gt" else f">= {params['threshold']}",
            "a matched pair of objects is a true positive",
        ),
        ("object matching", "one-to-one, maximum summed IoU", "as in the study"),
        (
            "estimated ground truth",
            "published est_GT where present, else STAPLE (threshold 0.5)",
            "SimpleITK STAPLE",
        ),
        ("alpha", params["alpha"], "family-wise, Bonferroni over pairwise comparisons"),
        ("outlier test", "two-sided Grubbs, alpha 0.05", "reported, never removed"),
        (
            "excluded images",
            listing(params["exclude"] + list(lab.config.exclude))
            if params["exclude"] or lab.config.exclude
            else "none",
            "registry exclusion list and --exclude",
        ),
    ]
    if run:
        rows += [
            ("groups", listing(run.get("groups", []), 12), run.get("grouping_note", "")),
            ("levels of analysis", listing(run.get("levels", [])), "image; animal means; mixed model"),
            (
                "bootstrap",
                f"{run.get('n_boot', '–')} resamples, seed {run.get('seed', '–')}",
                "confidence intervals of eta²",
            ),
            (
                "voting strategies",
                listing([strategy_label(s) for s in run.get("voting_strategies", [])], 10),
                run.get("vote_rule", ""),
            ),
            ("in-sample predictions", "left out of the tests", run.get("in_sample_policy", "")),
        ]
    rows += [
        ("worker processes", params["jobs"], "does not change results"),
        ("engine", params["engine"], "pandoc (bundled) or quarto"),
        ("random seeds", _seeds(results), "every random draw is seeded"),
    ]
    sub.add(
        Table(
            "parameters",
            "Every parameter of the analysis",
            pd.DataFrame(rows, columns=["parameter", "value", "meaning"]),
        )
    )

    sub = section.sub("registry", "Lab registry entry")
    source = lab.config.source
    if source is not None and Path(source).is_file():
        sub.add(Text(f"`{Path(source).name}` (SHA-256 `{_sha(source)[:16]}…`):"))
        sub.add(Code(Path(source).read_text(encoding="utf-8").strip(), "toml"))
    else:
        sub.add(Code(json.dumps(lab.config.as_dict(), indent=1, default=str), "json"))

    sub = section.sub("data", "Data")
    from cfosstats.datasets.summary import lab_summary

    summary = lab_summary(lab)
    sub.add(
        Table(
            "data",
            f"What was found in {lab.root}",
            pd.DataFrame({"item": list(summary), "found": list(summary.values())}),
        )
    )
    inputs = results.inputs
    if inputs is not None and not inputs.empty:
        grouped = (
            inputs.groupby("group", sort=False)
            .agg(files=("file", "size"), bytes=("bytes", "sum"), digests=("sha256", lambda s: "".join(s)))
            .reset_index()
        )
        grouped["combined SHA-256"] = grouped["digests"].map(
            lambda s: hashlib.sha256(s.encode()).hexdigest()[:16]
        )
        grouped["size"] = grouped["bytes"].map(_size)
        grouped = grouped.drop(columns=["digests", "bytes"]).rename(columns={"group": "input files"})
        grouped["input files"] = grouped["input files"].map(_short_group)
        sub.add(
            Table(
                "inputs",
                "Input files by group: the SHA-256 of each file is in the CSV; the combined "
                "value is the SHA-256 of the files' digests in name order",
                grouped.head(60),
                "tables/inputs.csv",
            )
        )

    sub = section.sub("models", "Models")
    sub.add(*_model_blocks(results))

    sub = section.sub("steps", "Analysis steps")
    manifest = _read_manifest(results.folder)
    rows = []
    for name, record in results.steps.items():
        stored = manifest.get(name, {})
        rows.append(
            {
                "step": name,
                "computed": str(stored.get("created", "–"))[:16].replace("T", " ")
                if record.status != "skipped"
                else "–",
                "seconds": stored.get("seconds", np.nan) if record.status != "skipped" else np.nan,
                "cache key": (record.key or stored.get("key", ""))[:12] or "–",
                "note": f"skipped: {record.reason}" if record.status == "skipped" else "",
            }
        )
    sub.add(
        Table(
            "steps",
            "Analysis steps: when each result was computed, and its cache key",
            pd.DataFrame(rows),
            "tables/manifest.json",
        )
    )
    warnings = _warnings(results)
    if warnings is not None:
        sub.add(warnings)

    sub = section.sub("software", "Software")
    versions = package_versions()
    sub.add(
        Table(
            "software",
            "Package versions",
            pd.DataFrame({"package": list(versions), "version": list(versions.values())}),
        )
    )
    return section


def _version() -> str:
    return __version__


def _sha(path) -> str:
    from cfosstats.core.hashing import sha256_file

    return sha256_file(path)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _short_group(group: str) -> str:
    if ": " in group:
        strategy, name = group.split(": ", 1)
        return f"{short_source(name)} ({strategy.replace('_', ' ')[:-1]})"
    return group


def _seeds(results) -> str:
    parts = []
    simulation = Path(results.lab.root) / "simulation.json"
    if simulation.is_file():
        with open(simulation, encoding="utf-8") as handle:
            seed = json.load(handle).get("parameters", {}).get("seed")
        if seed is not None:
            parts.append(f"simulation {seed}")
    run = results.runs.get("effects", {})
    if "seed" in run:
        parts.append(f"bootstrap {run['seed']}")
    seeds = sorted({str(c.get("seed")) for c in results.model_cards if c.get("seed") is not None})
    if seeds:
        parts.append("model training " + ", ".join(seeds))
    parts.append("figure jitter 1")
    return "; ".join(parts)


def _model_blocks(results) -> list:
    lab = results.lab
    blocks: list = []
    if results.model_cards:
        rows = []
        for card in results.model_cards:
            selection = card.get("selection") or {}
            rows.append(
                {
                    "model": card.get("name"),
                    "kind": card.get("kind", "model"),
                    "strategy": card.get("strategy"),
                    "fold": card.get("fold"),
                    "trained on": card.get("target"),
                    "selection": selection.get("verdict", "–")
                    if isinstance(selection, dict)
                    else str(selection),
                    "SHA-256 (weights)": str(card.get("sha256") or "–")[:16],
                    "training data SHA-256": str(card.get("training_data_sha256") or "–")[:16],
                    "created": card.get("created", "–"),
                }
            )
        blocks.append(
            Text(
                "Model cards of the pretrained library used for the predictions (full cards in "
                "`data/models/`; each prediction's settings in "
                "`tables/predictions/<lab>/uncertainty/.../prediction.json`)."
            )
        )
        blocks.append(Table("model-cards", "Models of the library", pd.DataFrame(rows)))
    elif results.skipped("predictions"):
        blocks.append(Note(f"Pretrained library: {results.skipped('predictions')}.", level="info"))
    simulation = Path(lab.root) / "simulation.json"
    predicted = [s for s in lab.label_sources.values() if s.is_prediction]
    if predicted:
        counts = pd.Series([s.strategy for s in predicted]).value_counts()
        blocks.append(
            Text(
                "Predicted label sets found in the data: "
                + listing([f"{n} {strategy_label(s)}" for s, n in counts.items()])
                + "."
            )
        )
    if simulation.is_file():
        with open(simulation, encoding="utf-8") as handle:
            record = json.load(handle)
        params = record.get("parameters", {})
        blocks.append(
            Text(
                "These data are **simulated** (`cfosstats simulate`): annotators and models are "
                "simulated labellers with known biases; the planted effect is known. Parameters:"
            )
        )
        blocks.append(
            Table(
                "simulation",
                "Simulation parameters (`simulation.json`)",
                pd.DataFrame({"parameter": list(params), "value": [str(v) for v in params.values()]}),
            )
        )
    return blocks or [Note("No models: the data holds no predictions and the library no models of this lab.")]


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "tables" / "manifest.json").read_text(encoding="utf-8")).get(
            "steps", {}
        )
    except (OSError, ValueError):
        return {}


def _warnings(results) -> Table | None:
    frames = []
    for step in ("objectivity", "groundtruth", "effects"):
        table = results.table(step, "warnings")
        if table is not None and len(table) and "message" in table.columns:
            frames.append(table.assign(step=step))
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    # Group repeated messages: the same text for many label sets reads as one line.
    table["message"] = table["message"].astype(str)
    pattern = re.compile(r"\s+")
    table["message"] = table["message"].map(lambda s: pattern.sub(" ", s))
    grouped = (
        table.groupby(["step", "message"], sort=False)
        .agg(
            where=(
                "source",
                lambda s: (
                    listing(sorted({short_source(x) for x in s.dropna().astype(str) if x}), 4)
                    if s.dropna().astype(str).str.len().gt(0).any()
                    else "–"
                ),
            )
            if "source" in table.columns
            else ("message", "size"),
            count=("message", "size"),
        )
        .reset_index()
    )
    return Table(
        "warnings",
        "Warnings of the analysis steps (identical messages grouped)",
        grouped[["step", "message", "where", "count"]].head(MAX_TABLE_ROWS),
    )


# -- all sections ----------------------------------------------------------------------------


def build_sections(results, runner=None) -> dict:
    """The document context: title, subtitle, date and the sections in reading order."""
    figures = FigureMaker(results.folder)
    sections = [
        verdict_section(results, figures),
        objectivity_section(results, figures),
        reliability_section(results, figures),
        validity_section(results, figures),
        methods_section(results),
    ]
    if results.published:
        from cfosstats.report.published_report import published_context

        verdict, published, methods = published_context(results.published, results.lab.config, figures)
        sections[0].blocks[:0] = [*verdict, Text("**From the images given with --data:**")]
        sections[-1:-1] = published
        sections[-1].add(*methods)
    figures.prune()
    manifest = _read_manifest(results.folder)
    dates = sorted(
        r.get("created", "") for name, r in manifest.items() if name != "render" and r.get("created")
    )
    lab = results.lab
    return {
        "title": f"Is the effect real? Validity report for lab {lab.config.name}",
        "subtitle": "Objectivity, reliability and validity of a deep-learning bioimage analysis "
        "(after Segebarth et al., eLife 2020)",
        "date": f"Results computed {dates[-1][:19].replace('T', ' ')}" if dates else "",
        "lab": lab.config.name,
        "sections": sections,
    }
