"""Published analysis sets: the tables a study published for a lab, analysed and checked.

An *analysis set* is what one figure of a study published: a per-image quantification table
(with, optionally, the statistics the authors computed from it) or only per-analysis statistics
(with, optionally, their variation per effect). :func:`analyse_set` runs cfosstats on it under
a preset, compares every published number it can recompute, and, for a quantification table,
also runs cfosstats's default settings to show where their calls differ.
:func:`shipped_sets` lists the study's sets shipped in ``data/published/<lab>/`` (each file's
SHA-256 checked against ``SHA256SUMS`` before it is read).

Examples
--------
>>> from cfosstats.datasets.registry import load_lab_config
>>> result = analyse_set(shipped_sets("mue")[0], load_lab_config("mue"))
>>> result.name, bool(result.tables["reproduction"]["equal"].all())
('figure5', True)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cfosstats.analyses.reviewer import analyse_table, reliability_tables
from cfosstats.core.errors import InputError
from cfosstats.core.hashing import sha256_file
from cfosstats.core.resources import data_dir
from cfosstats.datasets.statistics import read_statistics, read_variation_per_effect, read_variation_test
from cfosstats.datasets.tables import read_quantification
from cfosstats.stats.presets import CFOSSTATS, Settings, get_preset
from cfosstats.stats.reproduce import compare_variation, compare_with_published, reproduction_summary

__all__ = ["AnalysisSet", "SetResult", "analyse_set", "call_differences", "shipped_sets"]

STUDY_PRESET = "segebarth2020"


@dataclass(frozen=True)
class AnalysisSet:
    """The files of one published analysis set (any of them may be None)."""

    name: str
    title: str
    quantification: Path | None = None
    statistics: Path | None = None
    effect_sizes: Path | None = None
    variation: Path | None = None
    variation_test: Path | None = None
    shipped: bool = False

    def files(self) -> dict[str, Path]:
        """Role -> file, for the files the set has."""
        roles = ("quantification", "statistics", "effect_sizes", "variation", "variation_test")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}


@dataclass
class SetResult:
    """What :func:`analyse_set` computed: tables by name, the settings, the input checksums."""

    name: str
    title: str
    settings: Settings
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    shipped: bool = False

    @property
    def kind(self) -> str:
        """``quantification`` (per-image values) or ``statistics`` (per-analysis results only)."""
        return "quantification" if "quantification" in self.tables else "statistics"


def _verify(folder: Path, names: list[str]) -> None:
    sums_path = folder / "SHA256SUMS"
    sums = {}
    for line in sums_path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        sums[name] = digest
    for name in names:
        if name not in sums:
            raise InputError(folder / name, "not listed in SHA256SUMS: broken install?")
        if sha256_file(folder / name) != sums[name]:
            raise InputError(folder / name, "checksum differs from SHA256SUMS: the shipped table was changed")


def shipped_sets(lab: str) -> list[AnalysisSet]:
    """The study's analysis sets shipped for ``lab`` (empty when none), checksums verified.

    Examples
    --------
    >>> [s.name for s in shipped_sets("wue1")], shipped_sets("demo")
    (['figure3', 'figure4'], [])
    """
    folder = data_dir() / "published" / lab
    manifest = folder / "published.toml"
    if not manifest.is_file():
        return []
    entries = tomllib.loads(manifest.read_text(encoding="utf-8")).get("set", [])
    sets = []
    for entry in entries:
        names = ("quantification", "statistics", "effect_sizes", "variation", "variation_test")
        roles = {r: entry.get(r) for r in names}
        _verify(folder, [v for v in roles.values() if v])
        sets.append(
            AnalysisSet(
                entry["name"],
                entry.get("title", entry["name"]),
                **{r: folder / v if v else None for r, v in roles.items()},
                shipped=True,
            )
        )
    return sets


def call_differences(
    preset_effects: pd.DataFrame, default_effects: pd.DataFrame, preset: str
) -> pd.DataFrame:
    """Pairwise calls that differ between the study preset and cfosstats's defaults.

    Returns
    -------
    DataFrame
        ``source, strategy, region, readout, comparison, call_<preset>, call_cfosstats, p_value_<preset>,
        p_value_cfosstats, why``; empty when every call agrees.
    """
    keys = ["source", "strategy", "region", "readout", "comparison"]

    def pairs(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[(frame["level"] == "image") & (frame["comparison"] != "all")]
        frame = frame.assign(call=frame["call"].where(frame["call"] != "", "untested"))
        return frame[[*keys, "call", "p_value", "alpha_comparison"]]

    merged = pairs(preset_effects).merge(
        pairs(default_effects), on=keys, suffixes=(f"_{preset}", "_cfosstats")
    )
    differ = merged[merged[f"call_{preset}"] != merged["call_cfosstats"]].copy()

    def why(row) -> str:
        if row[f"call_{preset}"] == "untested" or row["call_cfosstats"] == "untested":
            return "group size rule (the study needs more than 3 values per group)"
        if abs(row[f"alpha_comparison_{preset}"] - row["alpha_comparison_cfosstats"]) > 1e-15:
            return "Bonferroni divisor (groups vs pairs)"
        return "p-value method (asymptotic vs exact Mann-Whitney p)"

    differ["why"] = [why(r) for _, r in differ.iterrows()] if len(differ) else []
    columns = [*keys, f"call_{preset}", "call_cfosstats", f"p_value_{preset}", "p_value_cfosstats", "why"]
    return differ.reindex(columns=columns).reset_index(drop=True)


def analyse_set(
    analysis_set: AnalysisSet,
    config,
    settings: Settings | None = None,
    alpha: float = 0.05,
    columns=None,
    strategies=None,
) -> SetResult:
    """Analyse one published set under ``settings`` (default: the study's preset).

    Returns
    -------
    SetResult
        Tables: for a quantification table ``quantification, normalisation_check, outliers,
        effects`` and the reliability tables, ``effects_cfosstats`` and ``call_differences``
        (cfosstats's defaults on the same table); for published statistics ``effects`` (read
        from them) and the reliability tables; ``reproduction`` and ``reproduction_summary``
        where the study's statistics are given; ``variation_reproduction`` where its variation
        per effect is.
    """
    settings = settings or get_preset(STUDY_PRESET)
    result = SetResult(analysis_set.name, analysis_set.title, settings, shipped=analysis_set.shipped)
    result.inputs = {str(p): sha256_file(p) for p in analysis_set.files().values() if Path(p).is_file()}
    if analysis_set.quantification is not None:
        table = read_quantification(analysis_set.quantification, config, columns, strategies)
        result.tables.update(analyse_table(table, config, settings, alpha))
        if settings.name != CFOSSTATS.name:
            defaults = analyse_table(table, config, CFOSSTATS, alpha)
            result.tables["effects_cfosstats"] = defaults["effects"]
            result.tables["reproducibility_cfosstats"] = defaults["reproducibility"]
            result.tables["call_differences"] = call_differences(
                result.tables["effects"], defaults["effects"], settings.name
            )
        if analysis_set.statistics is not None:
            published = read_statistics(analysis_set.statistics, config, settings, alpha)
            comparison = compare_with_published(result.tables, published, config, settings)
            result.tables["published_statistics"] = published
            result.tables["reproduction"] = comparison
            result.tables["reproduction_summary"] = reproduction_summary(comparison)
    else:
        source = analysis_set.effect_sizes or analysis_set.statistics
        if source is None:
            raise InputError(
                None, f"analysis set {analysis_set.name} has neither a quantification nor statistics"
            )
        effects = read_statistics(source, config, settings, alpha)
        result.tables["effects"] = effects
        result.tables.update(reliability_tables(effects, settings, effects["strategy"].unique()))
    if analysis_set.variation is not None:
        published = read_variation_per_effect(analysis_set.variation, config)
        result.tables["published_variation"] = published
        result.tables["variation_reproduction"] = compare_variation(
            result.tables["variation_per_effect"], published
        )
    if analysis_set.variation_test is not None:
        test = read_variation_test(analysis_set.variation_test)
        between = result.tables["variation_between_strategies"]
        computed = {"kruskal_h": between["kruskal_h"].iloc[0], "kruskal_p": between["kruskal_p"].iloc[0]}
        test["computed"] = test["quantity"].map(computed)
        test["abs_difference"] = (test["computed"] - test["published"]).abs()
        result.tables["variation_test_reproduction"] = test.dropna(subset=["computed"]).reset_index(drop=True)
    return result
