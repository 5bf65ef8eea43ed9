"""Published quantification tables -> the package's per-image quantification frame.

A reviewer rarely has the images; they have the authors' per-image table. :func:`read_quantification`
reads one, in any of three formats, validates it and returns one row per (image, analysis,
region) with raw counts, areas and intensities (the normalisation is recomputed downstream;
normalised values the table gives are kept only to be compared):

``cfosstats``
    The package's own ``quantification.csv`` (columns ``image_id, source, region, n_objects,
    region_area_px``, ``condition``; optional ``strategy, experiment, animal, intensity``).
``segebarth2020``
    The study's source data (``quantifications_*.csv``), detected by its columns ``Nummer,
    count, Neun_Area, Kondition``: the analysis is ``unet`` (an ensemble when ``unet == ens``,
    else one of its member models), the region ``subarea`` or ``Area``, the intensity ``mean``,
    the experiment ``Experiment``. A table without ``unet`` (the study's
    ``quantifications_wue2.csv``) cannot be split into analyses and is refused. Conditions are
    the lab's when they match, else read through the study's ``Group`` number (0 = control,
    registry order: lab-wue1's ``-`` / ``+`` are ``C-`` / ``C+``). Where a
    ``stat_results_<name>.csv`` lies beside the table, its ``initialization`` (from scratch /
    fine-tuned / frozen) and paper names (``ens_clean``, ``models_clean``) are joined.
``mapped``
    Any tidy per-image table (QuPath, CellProfiler, ImageJ exports) through a column mapping
    (:func:`parse_mapping`: ``image=Nummer,source=unet,count=count,area=Neun_Area,
    condition=Kondition``; optional ``region, intensity, experiment, animal, strategy, ensemble``).

Strategies come from a mapping of name patterns (``--strategies 'regex=strategy,...'``) first,
then from the study's naming (:data:`STRATEGY_PATTERNS`, a registry of patterns); an analysis
no rule names is an error.

Columns returned (:data:`TABLE_COLUMNS`)
----------------------------------------
``image_id`` (str), ``source`` (analysis; an ensemble's member is ``<ensemble>/<model>``),
``strategy``, ``ensemble`` (the ensemble a row's model belongs to, or its own name),
``initialization`` (``from scratch``, ``fine-tuned``, ``frozen`` or empty), ``published_name``
(the paper's name where known), ``region``, ``group`` (the lab's condition name), ``condition``
(as written in the table), ``experiment``, ``animal`` (str or NA), ``n_objects`` (int),
``region_area_px`` (float), ``intensity`` (mean grey value of the objects; NaN without),
``line`` (line of the file, header = 1), ``given_density_normalised``,
``given_intensity_normalised`` (the table's normalised values, NaN where it has none).

Examples
--------
>>> from cfosstats.datasets.registry import load_lab_config
>>> table = read_quantification(
...     "../shared/data/source_data/Figure_5_source_data/quantifications_mue.csv",
...     load_lab_config("mue"))
>>> table["source"].nunique(), sorted(table["group"].unique()), table["region"].unique().tolist()
(50, ['Ext', 'Ret'], ['PVT'])
>>> table.groupby("strategy")["source"].nunique().to_dict()
{'consensus_ensembles': 10, 'consensus_models': 40}
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cfosstats.core.errors import InputError

__all__ = [
    "FORMATS",
    "STRATEGY_PATTERNS",
    "TABLE_COLUMNS",
    "detect_format",
    "infer_strategy",
    "parse_mapping",
    "read_quantification",
]

TABLE_COLUMNS = (
    "image_id",
    "source",
    "strategy",
    "ensemble",
    "initialization",
    "published_name",
    "region",
    "group",
    "condition",
    "experiment",
    "animal",
    "n_objects",
    "region_area_px",
    "intensity",
    "line",
    "given_density_normalised",
    "given_intensity_normalised",
)
#: Mapping keys a ``mapped`` table needs, and those it may have.
REQUIRED_KEYS = ("image", "source", "count", "area", "condition")
OPTIONAL_KEYS = ("region", "intensity", "experiment", "animal", "strategy", "ensemble")
#: The columns of each format, by mapping key (what the study and cfosstats call them).
FORMATS: dict[str, dict[str, str]] = {
    "cfosstats": {
        "image": "image_id",
        "source": "source",
        "count": "n_objects",
        "area": "region_area_px",
        "condition": "condition",
        "region": "region",
        "intensity": "intensity",
        "experiment": "experiment",
        "animal": "animal",
        "strategy": "strategy",
        "given_density": "density_normalised",
        "given_intensity": "intensity_normalised",
    },
    "segebarth2020": {
        "image": "Nummer",
        "source": "unet",
        "count": "count",
        "area": "Neun_Area",
        "condition": "Kondition",
        "region": "subarea|Area",
        "intensity": "mean",
        "experiment": "Experiment",
        "ensemble": "ens",
        "given_density": "norm_cfos_per_area",
        "given_intensity": "norm_mean_intensity",
    },
}
#: A format is detected when at least three of its typical columns are present (so that a table
#: missing one required column is still recognised and that column named).
_SIGNATURES = {
    "cfosstats": ("image_id", "source", "n_objects", "region_area_px", "condition"),
    "segebarth2020": ("Nummer", "unet", "ens", "count", "Neun_Area", "Kondition"),
}
#: What each required column is, for error messages.
_MEANING = {
    "image": "the image id",
    "source": "the analysis: which model or ensemble made each row",
    "count": "objects counted in the region",
    "area": "the analysed region's area in px",
    "condition": "the experimental condition",
}

#: The study's naming -> strategy, tried in order (first match wins); ``name`` is the model's
#: name, ``ensemble`` its ensemble's (the study's ``ens``).
STRATEGY_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"(^|_)consensus\d*_ensemble$", "consensus_ensembles"),
    (r"(^|_)expert\d*_ensemble$", "expert_ensembles"),
    (r"(^|_)consensus\d*_model\d+$", "consensus_models"),
    (r"(^|_)expert\d*_model\d+$", "expert_models"),
    (r"_staple_", "consensus_models"),  # trained on the STAPLE estimate: sc_cyc8_cFOS_staple_3.0007.h5
    (r"_(?:cfos|parv|neun|gaba)_[A-Za-z]+_\d", "expert_models"),  # trained on one annotator's masks
)


def parse_mapping(text: str | Path | None, what: str = "column") -> dict[str, str]:
    """``key=value,key=value`` (or a TOML file of ``key = "value"``) as a dict.

    Examples
    --------
    >>> parse_mapping("image=Nummer, source=unet,count=count")
    {'image': 'Nummer', 'source': 'unet', 'count': 'count'}
    """
    if text is None or text == "":
        return {}
    path = Path(str(text))
    if str(text).endswith(".toml"):
        try:
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(path, f"cannot read the {what} mapping: {exc}") from None
        table = loaded.get(f"{what}s", loaded)
        return {str(k): str(v) for k, v in table.items()}
    mapping = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(None, f"bad {what} mapping '{part.strip()}': expected key=value")
        mapping[key.strip()] = value.strip()
    return mapping


def infer_strategy(name: str, ensemble: str = "", rules: Mapping[str, str] | None = None) -> str | None:
    """The strategy of an analysis from its name (user rules first, then the study's naming).

    Examples
    --------
    >>> infer_strategy("ens_f27", ensemble="ens_f27")
    'consensus_ensembles'
    >>> infer_strategy("sc_cyc0_cFOS_corinna_4.0011.h5", ensemble="ens_corinna")
    'expert_models'
    >>> infer_strategy("wue1_expert3_model2"), infer_strategy("my_model") is None
    ('expert_models', True)
    """
    for pattern, strategy in (rules or {}).items():
        if re.search(pattern, name):
            return strategy
    if ensemble and name == ensemble:
        is_expert = any(
            re.search(p, name, re.IGNORECASE) for p, s in STRATEGY_PATTERNS if s == "expert_models"
        )
        return "expert_ensembles" if is_expert else "consensus_ensembles"
    for pattern, strategy in STRATEGY_PATTERNS:
        if re.search(pattern, name, re.IGNORECASE):
            return strategy
    return None


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=object)
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
        return pd.read_csv(path, sep=sep, engine="python", dtype=object, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"cannot be read as a table: {str(exc).splitlines()[0]}") from None


def detect_format(columns: Sequence[str]) -> str | None:
    """``cfosstats`` or ``segebarth2020`` from a table's columns, or None (needs a mapping).

    Examples
    --------
    >>> detect_format(["ens", "unet", "Nummer", "count", "Neun_Area", "Kondition"])
    'segebarth2020'
    """
    for name, signature in _SIGNATURES.items():
        if sum(c in columns for c in signature) >= 3:
            return name
    return None


def _resolve(spec: str, columns: Sequence[str]) -> str | None:
    for candidate in spec.split("|"):
        if candidate in columns:
            return candidate
    return None


def _columns(path: Path, frame: pd.DataFrame, fmt: str | None, mapping: Mapping[str, str]) -> dict[str, str]:
    known = dict(FORMATS.get(fmt, {})) if fmt else {}
    unknown_keys = sorted(set(mapping) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown_keys:
        raise InputError(
            None,
            f"unknown column mapping key(s) {', '.join(unknown_keys)}; "
            f"use {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}",
        )
    known.update(mapping)
    if fmt is None and not mapping:
        raise InputError(
            path,
            "not a table cfosstats knows (neither its own quantification.csv nor the study's "
            "source data): pass a column mapping, e.g. --columns image=ID,source=model,count=n,"
            "area=area_px,condition=group",
        )
    resolved, missing = {}, []
    for key, spec in known.items():
        column = _resolve(spec, list(frame.columns))
        if column is None:
            if key in mapping:
                raise InputError(path, f"mapped column '{spec}' (for {key}) is not in the table")
            if key in REQUIRED_KEYS:
                missing.append(key)
            continue
        resolved[key] = column
    missing += [key for key in REQUIRED_KEYS if key not in known]
    if missing:
        named = ", ".join(f"'{known.get(k, k)}' ({_MEANING[k]})" for k in missing)
        why = "; this table cannot be split into analyses" if "source" in missing else ""
        raise InputError(path, f"missing column{'s' if len(missing) > 1 else ''} {named}{why}")
    return resolved


def _numbers(path: Path, frame: pd.DataFrame, column: str, *, integer: bool, required: bool) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    missing = raw.isna().to_numpy()
    bad = np.isnan(values) & ~missing
    if required:
        bad |= missing
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = "empty" if missing[i] else f"'{raw.iloc[i]}' is not a number"
        raise InputError(path, f"line {i + 2}, column '{column}': {shown}")
    negative = values < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise InputError(path, f"line {i + 2}, column '{column}': {raw.iloc[i]} is negative")
    if integer:
        fractional = np.isfinite(values) & (values != np.round(values))
        if fractional.any():
            i = int(np.flatnonzero(fractional)[0])
            raise InputError(path, f"line {i + 2}, column '{column}': {raw.iloc[i]} is not a whole count")
    return values


def _text(frame: pd.DataFrame, column: str | None) -> pd.Series:
    if column is None:
        return pd.Series(pd.NA, index=frame.index, dtype=object)
    values = frame[column]
    # Whole numbers read as text ("12.0") keep their integer spelling as ids.
    as_number = pd.to_numeric(values, errors="coerce")
    whole = as_number.notna() & (as_number == as_number.round())
    text = values.astype(object).where(values.isna(), values.astype(str).str.strip())
    text = text.where(~whole, as_number.round().astype("Int64").astype(str))
    return text.where(values.notna(), pd.NA)


def _groups(
    path: Path, frame: pd.DataFrame, written: pd.Series, column: str, conditions: Sequence[str], lab: str
) -> pd.Series:
    if written.isna().any():
        i = int(np.flatnonzero(written.isna().to_numpy())[0])
        raise InputError(path, f"line {i + 2}, column '{column}': empty condition")
    known = set(conditions)
    if set(written) <= known:
        groups = written
    elif "Group" in frame.columns:
        # The study numbers groups from 0 (control) in its own order; read them in the registry's.
        number = pd.to_numeric(frame["Group"], errors="coerce")
        pairs = pd.DataFrame({"c": written, "g": number}).drop_duplicates()
        mapping = {}
        for c, g in zip(pairs["c"], pairs["g"]):
            if c in known:
                mapping.setdefault(c, c)
            elif pd.notna(g) and 0 <= int(g) < len(conditions) and g == int(g):
                if mapping.setdefault(c, conditions[int(g)]) != conditions[int(g)]:
                    raise InputError(path, f"column 'Group': condition '{c}' has more than one group number")
        groups = written.map(lambda c: mapping.get(c, pd.NA))
    else:
        groups = written.where(written.isin(list(known)), pd.NA)
    unknown = groups.isna()
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            path,
            f"line {i + 2}, column '{column}': condition '{written.iloc[i]}' is not one of lab {lab}'s "
            f"conditions ({', '.join(conditions)})",
        )
    if not (groups == conditions[0]).any():
        raise InputError(
            path,
            f"no row of the control group '{conditions[0]}' (column '{column}'): nothing to normalise to",
        )
    return groups.astype(str)


def _study_names(path: Path) -> pd.DataFrame | None:
    """``initialization`` and paper names from a ``stat_results_<name>.csv`` beside the table."""
    sibling = path.with_name(f"stat_results_{path.stem}.csv")
    if not sibling.is_file():
        return None
    try:
        stats = pd.read_csv(sibling, dtype=object)
    except (OSError, ValueError):
        return None
    if not {"ens", "unet"} <= set(stats.columns):
        return None
    keep = [c for c in ("ens", "unet", "initialization", "ens_clean", "models_clean") if c in stats.columns]
    return stats[keep].drop_duplicates(["ens", "unet"])


def _strategies(path, names, ensembles, lines, rules) -> list[str]:
    cache: dict[tuple[str, str], str | None] = {}
    out = []
    for name, ensemble, line in zip(names, ensembles, lines):
        key = (name, ensemble)
        if key not in cache:
            cache[key] = infer_strategy(name, ensemble, rules)
        if cache[key] is None:
            raise InputError(
                path,
                f"line {line}: cannot tell the strategy of analysis '{name}' from its name; pass a "
                "strategy mapping, e.g. --strategies 'pattern=consensus_ensembles,other=expert_models'",
            )
        out.append(cache[key])
    return out


def read_quantification(
    path: str | Path,
    config,
    columns: Mapping[str, str] | str | None = None,
    strategies: Mapping[str, str] | str | None = None,
) -> pd.DataFrame:
    """Read and validate a per-image quantification table (see the module notes).

    Parameters
    ----------
    path : str or Path
        CSV, TSV or XLSX file.
    config : LabConfig
        The lab (its conditions, control first).
    columns : mapping or str, optional
        Column mapping (:func:`parse_mapping`), required for tables of no known format and
        applied over the detected format's names otherwise.
    strategies : mapping or str, optional
        Regular expression -> strategy for analysis names, tried before the study's naming.

    Returns
    -------
    DataFrame
        :data:`TABLE_COLUMNS`, one row per (image, analysis, region), in file order.

    Raises
    ------
    InputError
        Naming the file, and the line and column where known: a missing or unmapped column, a
        duplicate (image, analysis, region), a non-numeric or negative count or area, a
        condition not in the lab's registry, no control group, an analysis of unknown strategy.

    Examples
    --------
    The study's lab-mue table (Figure 5), shipped in ``data/published/``:

    >>> from cfosstats.datasets.registry import load_lab_config
    >>> table = read_quantification("data/published/mue/quantifications_mue.csv", load_lab_config("mue"))
    >>> len(table), table["strategy"].value_counts().to_dict()
    (1200, {'consensus_models': 960, 'consensus_ensembles': 240})
    """
    path = Path(path)
    mapping = parse_mapping(columns) if not isinstance(columns, Mapping) else dict(columns)
    rules = parse_mapping(strategies, "strategy") if not isinstance(strategies, Mapping) else dict(strategies)
    frame = _read_frame(path)
    if frame.empty:
        raise InputError(path, "the table has no rows")
    fmt = detect_format(list(frame.columns))
    cols = _columns(path, frame, fmt, mapping)
    out = pd.DataFrame(index=frame.index)
    out["image_id"] = _text(frame, cols["image"])
    model = _text(frame, cols["source"])
    for key, values in (("image", out["image_id"]), ("source", model)):
        empty = values.isna().to_numpy()
        if empty.any():
            raise InputError(path, f"line {int(np.flatnonzero(empty)[0]) + 2}, column '{cols[key]}': empty")
    ensemble = _text(frame, cols.get("ensemble")).fillna("")
    is_member = (ensemble != "") & (ensemble != model)
    out["source"] = np.where(is_member, ensemble + "/" + model, model)
    out["ensemble"] = np.where(ensemble != "", ensemble, model)
    lines = (frame.index + 2).tolist()
    if "strategy" in cols:
        out["strategy"] = _text(frame, cols["strategy"]).fillna("")
    else:
        out["strategy"] = _strategies(path, model.tolist(), ensemble.tolist(), lines, rules)
    out["region"] = _text(frame, cols.get("region")).fillna("image")
    out["condition"] = _text(frame, cols["condition"])
    out["group"] = _groups(
        path, frame, out["condition"], cols["condition"], list(config.conditions), config.name
    )
    out["experiment"] = _text(frame, cols.get("experiment"))
    out["animal"] = _text(frame, cols.get("animal"))
    out["n_objects"] = _numbers(path, frame, cols["count"], integer=True, required=True).astype(np.int64)
    out["region_area_px"] = _numbers(path, frame, cols["area"], integer=False, required=True)
    if "intensity" in cols:
        out["intensity"] = pd.to_numeric(frame[cols["intensity"]], errors="coerce").astype(float)
    else:
        out["intensity"] = np.nan
    out["line"] = lines
    for key, name in (
        ("given_density", "given_density_normalised"),
        ("given_intensity", "given_intensity_normalised"),
    ):
        out[name] = pd.to_numeric(frame[cols[key]], errors="coerce").astype(float) if key in cols else np.nan
    _check_duplicates(path, out)
    out["initialization"], out["published_name"] = "", ""
    names = _study_names(path) if fmt == "segebarth2020" else None
    if names is not None:
        _join_study_names(out, names, model, ensemble)
    return out[list(TABLE_COLUMNS)].reset_index(drop=True)


def _check_duplicates(path: Path, out: pd.DataFrame) -> None:
    keys = ["image_id", "source", "region"]
    duplicated = out.duplicated(keys, keep=False)
    if duplicated.any():
        rows = out[duplicated]
        first = rows.iloc[0]
        same = rows[(rows[keys] == first[keys]).all(axis=1)]
        raise InputError(
            path,
            f"lines {same['line'].iloc[0]} and {same['line'].iloc[1]}: duplicate rows for image "
            f"{first['image_id']}, analysis {first['source']}, region {first['region']}",
        )


def _join_study_names(out: pd.DataFrame, names: pd.DataFrame, model: pd.Series, ensemble: pd.Series) -> None:
    keyed = names.set_index(["ens", "unet"])
    by_ensemble = names.drop_duplicates("ens").set_index("ens")
    pairs = list(zip(ensemble, model))
    if "initialization" in names.columns:
        init = by_ensemble["initialization"].astype(str).str.strip()
        out["initialization"] = [init.get(e, "") for e in ensemble]
    if "ens_clean" in names.columns:
        clean = by_ensemble["ens_clean"].astype(str)
        member = keyed["models_clean"].astype(str) if "models_clean" in names.columns else None
        out["published_name"] = [
            f"{clean[e]} {member[(e, m)] if member is not None and (e, m) in member.index else ''}".strip()
            if e in clean.index
            else ""
            for e, m in pairs
        ]
