"""Published per-analysis statistics -> the package's effects frame.

When only statistics are published (no per-image values), the reliability layer still runs on
them: majority vote, variation per effect and per model. Two formats are read, detected from
the file:

``workbook``
    The study's Figure 4 workbook (``stat_results_quantifications_wue1.xlsx``): one sheet per
    ``<region>-<readout>``, two header rows, one row per analysis; ``group mean (normalized to
    <control>)`` per condition, ``Kruskal-Wallis ANOVA`` (H, p) and per pair
    ``Mann-Whitney-U-test: A vs. B`` (U, p, eta²). The call of a pair is recomputed: significant
    when ``p <= alpha / divisor`` (the preset's Bonferroni rule), its direction from the group
    means (the workbook's only direction; the study used medians, which it does not publish).
``stat_results``
    The study's ``stat_results_quantifications_*.csv``: one row per (analysis, readout) with
    ``eta^2_mwuI_vs_J``, ``p_mwuI_vs_J``, critical values, the call ``mwuI_vs_J`` (0, or the
    number of the group with the higher median; groups numbered from 1 in the lab's order) and,
    where published, ``U_mwuI_vs_J`` and group means, medians and SDs. The published call is
    kept as it is.

Columns returned (:data:`STATISTICS_COLUMNS`): ``source, strategy, region, readout, level``
(``image``), ``comparison`` (``A vs B`` in the lab's condition names; ``all`` for
Kruskal-Wallis), ``test``, ``group_a, group_b, statistic, p_value, eta2, eta2_critical, mean_a,
mean_b, median_a, median_b, sd_a, sd_b`` (``eta2_critical_0.01``, ``eta2_critical_0.001`` after
``eta2_critical``), ``significant, direction, call, published_call``
(the study's code), ``initialization``, ``published_name``, ``origin`` (file and sheet).

Examples
--------
>>> from cfosstats.stats.presets import get_preset
>>> from cfosstats.datasets.registry import load_lab_config
>>> stats = read_statistics(
...     "../shared/data/source_data/Figure_4_source_data/stat_results_quantifications_wue1.xlsx",
...     load_lab_config("wue1"), get_preset("segebarth2020"))
>>> pairs = stats[stats["comparison"] != "all"]
>>> pairs["source"].nunique(), len(pairs.groupby(["region", "readout", "comparison"]))
(65, 30)
>>> pairs.groupby("strategy")["source"].nunique().to_dict()
{'consensus_ensembles': 9, 'consensus_models': 36, 'expert_models': 20}
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.datasets.tables import infer_strategy

__all__ = ["READOUT_NAMES", "STATISTICS_COLUMNS", "read_statistics"]

STATISTICS_COLUMNS = (
    "source",
    "strategy",
    "region",
    "readout",
    "level",
    "comparison",
    "test",
    "group_a",
    "group_b",
    "statistic",
    "p_value",
    "eta2",
    "eta2_critical",
    "eta2_critical_0.01",
    "eta2_critical_0.001",
    "mean_a",
    "mean_b",
    "median_a",
    "median_b",
    "sd_a",
    "sd_b",
    "significant",
    "direction",
    "call",
    "published_call",
    "initialization",
    "published_name",
    "origin",
)
#: Published readout names -> the package's readouts (tested normalised).
READOUT_NAMES = {
    "norm_cfos_per_area": "density",
    "norm_mean_intensity": "intensity",
    "#cfos+ nuclei": "density",
    "cfos signal intensity": "intensity",
}


def _readout(name: str) -> str:
    key = str(name).strip().lower()
    if key in READOUT_NAMES:
        return READOUT_NAMES[key]
    if "intensity" in key:
        return "intensity"
    if "#" in key or "nuclei" in key or "count" in key or "density" in key or "per_area" in key:
        return "density"
    return key


def _condition(path: Path, name: str, conditions: list[str]) -> str:
    name = str(name).strip()
    if name in conditions:
        return name
    raise InputError(path, f"condition '{name}' is not one of the lab's conditions ({', '.join(conditions)})")


def _call(significant: bool, mean_a: float, mean_b: float) -> str:
    if not significant or not (np.isfinite(mean_a) and np.isfinite(mean_b)) or mean_a == mean_b:
        return "none"
    return "increase" if mean_b > mean_a else "decrease"


def _row(source, region, readout, comparison, test, a="", b="", **values) -> dict:
    row = dict.fromkeys(STATISTICS_COLUMNS, np.nan)
    row.update(
        source=source,
        strategy=infer_strategy(source) or "",
        region=region,
        readout=readout,
        level="image",
        comparison=comparison,
        test=test,
        group_a=a,
        group_b=b,
        initialization="",
        published_name="",
        call="" if comparison == "all" else "none",
        direction="" if comparison == "all" else "none",
        significant=False,
        published_call=np.nan,
    )
    row.update(values)
    return row


def _sheet_rows(path: Path, sheet: str, frame: pd.DataFrame, conditions, alpha, divisor) -> list[dict]:
    region, _, readout_name = sheet.partition("-")
    readout = _readout(readout_name)
    top = frame.columns.get_level_values(0)
    sub = frame.columns.get_level_values(1)
    names = frame.iloc[:, 0].astype(str).str.strip()
    means = {}
    for i, (block, label) in enumerate(zip(top, sub)):
        if str(block).lower().startswith("group mean"):
            means[_condition(path, label, conditions)] = pd.to_numeric(frame.iloc[:, i], errors="coerce")
    rows = []
    blocks: dict[str, dict[str, pd.Series]] = {}
    for i, (block, label) in enumerate(zip(top, sub)):
        blocks.setdefault(str(block), {})[str(label).strip().lower()] = pd.to_numeric(
            frame.iloc[:, i], errors="coerce"
        )
    for block, values in blocks.items():
        if block.lower().startswith("kruskal"):
            for j, source in enumerate(names):
                rows.append(
                    _row(
                        source,
                        region,
                        readout,
                        "all",
                        "kruskal",
                        statistic=values["h-statistic"].iloc[j],
                        p_value=values["p-value"].iloc[j],
                        origin=f"{path.name}:{sheet}",
                    )
                )
        match = re.match(r"mann-whitney-u-test:\s*(.+?)\s+vs\.?\s+(.+)$", block, re.IGNORECASE)
        if not match:
            continue
        a, b = (_condition(path, g, conditions) for g in match.groups())
        for column in ("u-statistic", "p-value", "eta^2"):
            if column not in values:
                raise InputError(path, f"sheet '{sheet}', block '{block}': no '{column}' column")
        for j, source in enumerate(names):
            p = float(values["p-value"].iloc[j])
            ma = float(means[a].iloc[j]) if a in means else np.nan
            mb = float(means[b].iloc[j]) if b in means else np.nan
            significant = bool(np.isfinite(p) and p <= alpha / divisor)
            call = _call(significant, ma, mb)
            rows.append(
                _row(
                    source, region, readout, f"{a} vs {b}", "mann_whitney", a, b,
                    statistic=float(values["u-statistic"].iloc[j]), p_value=p,
                    eta2=float(values["eta^2"].iloc[j]), mean_a=ma, mean_b=mb, significant=significant,
                    direction=call, call=call, origin=f"{path.name}:{sheet}",
                )
            )  # fmt: skip
    return rows


def _read_workbook(path: Path, conditions, settings, alpha) -> pd.DataFrame:
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=[0, 1])
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as a workbook: {str(exc).splitlines()[0]}") from None
    divisor = settings.bonferroni_divisor(len(conditions))  # the preset's Bonferroni rule
    rows = []
    for sheet, frame in sheets.items():
        if "-" not in sheet:
            raise InputError(path, f"sheet '{sheet}' is not named <region>-<readout>")
        rows += _sheet_rows(path, sheet, frame, conditions, alpha, divisor)
    if not rows:
        raise InputError(path, "no Mann-Whitney or Kruskal-Wallis results found in any sheet")
    return pd.DataFrame(rows, columns=list(STATISTICS_COLUMNS))


def _source(ens: str, unet: str) -> str:
    return ens if ens == unet else f"{ens}/{unet}"


def _read_stat_results(path: Path, conditions, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("ens", "unet", "type") if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    region_column = "subarea" if "subarea" in frame.columns else None
    rows = []
    for line, record in zip(frame.index + 2, frame.to_dict("records")):
        ens, unet = str(record["ens"]), str(record["unet"])
        source = _source(ens, unet)
        common = {
            "strategy": infer_strategy(unet, ens) or "",
            "initialization": str(record.get("initialization", "") or "").strip(),
            "published_name": f"{record.get('ens_clean', '')} {record.get('models_clean', '')}".strip(),
            "origin": f"{path.name}:{line}",
        }
        region = str(record[region_column]) if region_column else "image"
        readout = _readout(record["type"])
        if "eta^2_kwa_all" in record and pd.notna(record.get("eta^2_kwa_all")):
            rows.append(
                _row(source, region, readout, "all", "kruskal", p_value=record["p_kwa_all"],
                     eta2=record["eta^2_kwa_all"], eta2_critical=record.get("c_kwa_all"),
                     significant=bool(record.get("kwa_all")), **common)
            )  # fmt: skip
        for key in record:
            match = re.fullmatch(r"mwu(\d+)_vs_(\d+)", key)
            if not match:
                continue
            i, j = (int(g) for g in match.groups())
            if max(i, j) > len(conditions):
                raise InputError(path, f"column '{key}': the lab has only {len(conditions)} conditions")
            a, b = conditions[i - 1], conditions[j - 1]
            code = record[key]
            if pd.isna(code):
                continue
            code = int(float(code))
            call = "none" if code == 0 else ("increase" if code == j else "decrease")
            tag = f"{i}_vs_{j}"

            def get(name, tag=tag, record=record, i=i, j=j):
                value = record.get(name.format(tag=tag, i=i, j=j))
                return float(value) if value is not None and pd.notna(value) else np.nan

            rows.append(
                _row(
                    source, region, readout, f"{a} vs {b}", "mann_whitney", a, b,
                    statistic=get("U_mwu{tag}"), p_value=get("p_mwu{tag}"), eta2=get("eta^2_mwu{tag}"),
                    eta2_critical=get("c_mwu{tag}"), mean_a=get("grp_mean_{i}"), mean_b=get("grp_mean_{j}"),
                    median_a=get("grp_median_{i}"), median_b=get("grp_median_{j}"), sd_a=get("grp_std_{i}"),
                    sd_b=get("grp_std_{j}"), significant=code != 0, direction=call, call=call,
                    published_call=code, **common,
                    **{f"eta2_critical_{lv}": get(f"c{lv}_mwu{{tag}}") for lv in ("0.01", "0.001")},
                )
            )  # fmt: skip
    return pd.DataFrame(rows, columns=list(STATISTICS_COLUMNS))


def read_statistics(path: str | Path, config, settings, alpha: float = 0.05) -> pd.DataFrame:
    """Read published per-analysis statistics into an effects frame (see the module notes).

    Parameters
    ----------
    path : str or Path
        The study's Figure 4 workbook (``.xlsx``) or a ``stat_results_*.csv``.
    config : LabConfig
        The lab (condition names, control first).
    settings : Settings
        The preset (its Bonferroni rule decides a workbook pair's significance).
    alpha : float, default 0.05

    Returns
    -------
    DataFrame
        :data:`STATISTICS_COLUMNS`.

    Raises
    ------
    InputError
        A missing file, an unreadable workbook, a sheet or condition that does not fit the lab.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    conditions = list(config.conditions)
    if path.suffix.lower() in (".xlsx", ".xls"):
        return _read_workbook(path, conditions, settings, alpha)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as a table: {str(exc).splitlines()[0]}") from None
    if not any(re.fullmatch(r"mwu\d+_vs_\d+", c) for c in frame.columns):
        raise InputError(path, "no study statistics columns (mwuI_vs_J): not a stat_results table")
    return _read_stat_results(path, conditions, frame)


#: The study's strategy names (``model_type``) -> the package's.
STUDY_STRATEGIES = {
    "ens": "consensus_ensembles",
    "single": "consensus_models",
    "single_coder": "expert_models",
}


def read_variation_per_effect(path: str | Path, config) -> pd.DataFrame:
    """The study's ``variation_per_effect.xlsx`` in the package's names.

    Returns
    -------
    DataFrame
        ``region, readout, comparison, strategy, eta_std, eta_var, eta_mean, FDR`` (analyses
        whose call differs from the majority) and ``vote_diff_count`` (their share), one row
        per effect and strategy.

    Examples
    --------
    >>> from cfosstats.datasets.registry import load_lab_config
    >>> table = read_variation_per_effect(
    ...     "../shared/data/source_data/Figure_4_source_data/variation_per_effect.xlsx",
    ...     load_lab_config("wue1"))
    >>> len(table), sorted(table["strategy"].unique())
    (90, ['consensus_ensembles', 'consensus_models', 'expert_models'])
    """
    path = Path(path)
    try:
        frame = pd.read_excel(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as a workbook: {str(exc).splitlines()[0]}") from None
    needed = ["subarea", "type", "model_type", "effect", "eta_std", "eta_mean"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    conditions = list(config.conditions)

    def comparison(effect: str) -> str:
        match = re.fullmatch(r"mwu(\d+)_vs_(\d+)", str(effect))
        if not match or max(int(g) for g in match.groups()) > len(conditions):
            raise InputError(path, f"column 'effect': '{effect}' is not mwuI_vs_J of the lab's conditions")
        i, j = (int(g) for g in match.groups())
        return f"{conditions[i - 1]} vs {conditions[j - 1]}"

    out = pd.DataFrame(
        {
            "region": frame["subarea"].astype(str),
            "readout": frame["type"].map(_readout),
            "comparison": frame["effect"].map(comparison),
            "strategy": frame["model_type"].map(lambda s: STUDY_STRATEGIES.get(str(s), str(s))),
        }
    )
    for column in ("eta_std", "eta_var", "eta_mean", "FDR", "vote_diff_count"):
        out[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame.columns else np.nan
    return out


def read_variation_test(path: str | Path) -> pd.DataFrame:
    """The study's test of the variation per effect between strategies (Figure 4).

    Reads ``stat_results_variation_per_effect.xlsx``.

    Returns
    -------
    DataFrame
        One row per published quantity: ``quantity`` (``kruskal_h``, ``kruskal_p``, ``mwu_u_<a>_<b>``,
        ``mwu_p_<a>_<b>`` with strategies numbered 1 = consensus ensembles, 2 = consensus models,
        3 = expert models, as the study), ``published``.

    Examples
    --------
    >>> table = read_variation_test(
    ...     "../shared/data/source_data/Figure_4_source_data/stat_results_variation_per_effect.xlsx")
    >>> round(float(table.set_index("quantity").loc["kruskal_h", "published"]), 3)
    26.472
    """
    path = Path(path)
    try:
        frame = pd.read_excel(path)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot be read as a workbook: {str(exc).splitlines()[0]}") from None
    if "Kruskal_Wallis_ANOVA_H_stat" not in frame.columns:
        raise InputError(path, "missing column Kruskal_Wallis_ANOVA_H_stat")
    row = frame.iloc[0]
    rows = [
        {"quantity": "kruskal_h", "published": float(row["Kruskal_Wallis_ANOVA_H_stat"])},
        {"quantity": "kruskal_p", "published": float(row["Kruskal_Wallis_ANOVA_pval"])},
    ]
    for column in frame.columns:
        match = re.fullmatch(r"MWU_(U_stat|pval)_grp(\d)_(\d)", str(column))
        if match:
            kind = "u" if match.group(1) == "U_stat" else "p"
            rows.append(
                {"quantity": f"mwu_{kind}_{match.group(2)}_{match.group(3)}", "published": float(row[column])}
            )
    return pd.DataFrame(rows, columns=["quantity", "published"])
