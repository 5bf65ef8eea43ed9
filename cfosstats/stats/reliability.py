"""Reliability across analyses: majority vote, reproducibility, variation per effect and model.

Pure functions on tidy DataFrames. An *analysis* is one label source (an annotator, the estimated
ground truth, a model or an ensemble) whose values were tested; an *effect* is one (region,
readout, pairwise comparison). Each analysis makes a *call* per effect: ``increase``,
``decrease`` (significant, by the direction of group B against group A) or ``none``.

The rules
---------
- **Who votes** (:data:`VOTING_STRATEGIES`): annotators, the estimated ground truth, expert
  models, consensus models, consensus ensembles (and expert ensembles) — every analysis that was
  tested. Ensemble members do *not* vote: they are already represented by their ensemble (the
  study's analyses were expert models, consensus models and consensus ensembles; annotators and
  est_GT join where they cover enough images). Members are still reported per strategy and in
  the variation per model.
- **Majority vote** (:func:`majority_vote`): the call made by the most analyses. A tie for the
  most votes gives ``none``: an effect must be found by more analyses than any alternative to
  count as reproducible (conservative; the tie is flagged).
- **Variation per effect** (:func:`variation_per_effect`): the SD (ddof 1) of eta² within each
  strategy, per effect; compared between strategies with a Kruskal-Wallis test over effects
  (:func:`compare_strategies`), as in the study.
- **Variation per model** (:func:`variation_per_model`): each analysis's eta² is centred by the
  effect's mean eta² over all voting analyses; the SD of the centred eta² over effects, and the
  number of calls that differ from the majority.

Examples
--------
>>> import pandas as pd
>>> calls = pd.DataFrame({"source": ["e1", "e2", "c1", "ens"], "strategy": ["expert_models"] * 2
...     + ["consensus_models", "consensus_ensembles"], "region": "CA1", "readout": "density",
...     "comparison": "H vs C+", "call": ["increase", "none", "increase", "increase"],
...     "eta2": [0.4, 0.1, 0.5, 0.45]})
>>> table = reproducibility_table(calls)
>>> table.loc[0, "majority_call"], table.loc[0, "summary"]
('increase', 'found by 1/2 expert models, 1/1 consensus model, 1/1 consensus ensemble')
>>> table.loc[0, "dissenters"]
'e2'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cfosstats.stats.counts import icc_absolute_agreement

__all__ = [
    "CALLS",
    "EFFECT_KEYS",
    "STRATEGY_NAMES",
    "VOTING_STRATEGIES",
    "calls_from_effects",
    "compare_strategies",
    "consistency_summary",
    "majority_vote",
    "reproducibility_table",
    "variation_per_effect",
    "variation_per_model",
]

CALLS = ("increase", "decrease", "none")
NO_EFFECT = "none"
#: Columns that name one effect.
EFFECT_KEYS = ("region", "readout", "comparison")
#: Strategies, in report order, with their (singular, plural) names for summaries.
STRATEGY_NAMES: dict[str, tuple[str, str]] = {
    "annotators": ("annotator", "annotators"),
    "estimated_gt": ("estimated ground truth", "estimated ground truths"),
    "expert_models": ("expert model", "expert models"),
    "consensus_models": ("consensus model", "consensus models"),
    "ensemble_members": ("ensemble member", "ensemble members"),
    "expert_ensembles": ("expert ensemble", "expert ensembles"),
    "consensus_ensembles": ("consensus ensemble", "consensus ensembles"),
}
#: Strategies whose analyses vote (ensemble members are represented by their ensembles).
VOTING_STRATEGIES = (
    "annotators",
    "estimated_gt",
    "expert_models",
    "consensus_models",
    "expert_ensembles",
    "consensus_ensembles",
)
#: Strategies compared by variation per effect (the study's three), when present.
VARIATION_STRATEGIES = ("expert_models", "consensus_models", "consensus_ensembles")

REPRODUCIBILITY_BASE_COLUMNS = (
    *EFFECT_KEYS,
    "majority_call",
    "tie",
    "n_analyses",
    "n_agree",
    "n_increase",
    "n_decrease",
    "n_none",
)
VARIATION_PER_EFFECT_COLUMNS = (*EFFECT_KEYS, "strategy", "n", "eta2_mean", "eta2_sd", "eta2_min", "eta2_max")
STRATEGY_COMPARISON_COLUMNS = (
    "strategy",
    "n_effects",
    "eta2_sd_median",
    "eta2_sd_mean",
    "eta2_sd_q25",
    "eta2_sd_q75",
    "kruskal_h",
    "kruskal_p",
    "n_strategies",
    "note",
)
VARIATION_PER_MODEL_COLUMNS = (
    "source",
    "strategy",
    "votes",
    "n_effects",
    "centred_eta2_mean",
    "centred_eta2_sd",
    "n_calls",
    "n_differ",
    "differ_effects",
)
CONSISTENCY_COLUMNS = ("level", "metric", "image_id", "value", "n", "n_sources", "sources", "note")


# -- calls and the vote -------------------------------------------------------------------------


def calls_from_effects(effects: pd.DataFrame) -> pd.DataFrame:
    """Add a ``call`` column to an effects table: the direction where significant, else ``none``.

    Only pairwise rows (``comparison`` other than ``"all"``) with a test result are kept.

    Parameters
    ----------
    effects : DataFrame
        Rows of :func:`cfosstats.stats.effects.group_tests` (or the animal-level / mixed-model
        variants) with ``comparison``, ``significant``, ``direction`` and ``eta2``, plus columns
        naming the analysis (``source``, ``strategy``) and effect (``region``, ``readout``).

    Returns
    -------
    DataFrame
        The pairwise rows, with ``call`` in :data:`CALLS`.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"comparison": ["all", "H vs C+", "H vs C-"], "significant": [True, True, False],
    ...     "direction": ["increase", "increase", "decrease"], "p_value": [0.01, 0.01, 0.5]})
    >>> calls_from_effects(rows)["call"].tolist()
    ['increase', 'none']
    """
    pairwise = effects[(effects["comparison"] != "all") & effects["p_value"].notna()].copy()
    significant = pairwise["significant"].map(lambda v: bool(v) if pd.notna(v) else False).astype(bool)
    direction = pairwise["direction"].where(pairwise["direction"].isin(["increase", "decrease"]), NO_EFFECT)
    pairwise["call"] = direction.where(significant, NO_EFFECT).astype(str)
    return pairwise.reset_index(drop=True)


def majority_vote(calls: Iterable[str]) -> tuple[str, bool]:
    """The call made by the most analyses; a tie for the most votes gives ``none``.

    Parameters
    ----------
    calls : iterable of str
        One call per analysis, each in :data:`CALLS`.

    Returns
    -------
    call : str
        The majority call (``none`` when there are no calls or a tie).
    tie : bool
        Whether two calls tied for the most votes.

    Examples
    --------
    >>> majority_vote(["increase", "increase", "none"])
    ('increase', False)
    >>> majority_vote(["increase", "none"])  # tie: not reproducible
    ('none', True)
    >>> majority_vote(["increase", "decrease", "none", "increase"])  # plurality
    ('increase', False)
    """
    counts = Counter(calls)
    if not counts:
        return NO_EFFECT, False
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return NO_EFFECT, True
    return ranked[0][0], False


def _strategy_order(strategies: Iterable[str]) -> list[str]:
    known = [s for s in STRATEGY_NAMES if s in set(strategies)]
    return known + sorted(set(strategies) - set(known))


def _strategy_name(strategy: str, n: int) -> str:
    singular, plural = STRATEGY_NAMES.get(strategy, (strategy, strategy))
    return singular if n == 1 else plural


def _summary(call: str, tie: bool, votes: pd.DataFrame, strategies: Sequence[str]) -> str:
    n = len(votes)
    if call != NO_EFFECT:
        parts = []
        for strategy in strategies:
            mine = votes[votes["strategy"] == strategy]
            if len(mine):
                agree = int((mine["call"] == call).sum())
                parts.append(f"{agree}/{len(mine)} {_strategy_name(strategy, len(mine))}")
        return "found by " + ", ".join(parts)
    found = [(c, int((votes["call"] == c).sum())) for c in ("increase", "decrease")]
    found = [(c, k) for c, k in found if k]
    prefix = "no effect by majority (tie)" if tie else "no effect by majority"
    if not found:
        return f"{prefix}: 0/{n} analyses call an effect"
    article = {"increase": "an increase", "decrease": "a decrease"}
    text = ", ".join(
        f"{k}/{n} {'analyses call ' if i == 0 else ''}{article[c]}" for i, (c, k) in enumerate(found)
    )
    return f"{prefix}: {text}"


def reproducibility_table(
    calls: pd.DataFrame,
    voting: Sequence[str] = VOTING_STRATEGIES,
    extra_levels: pd.DataFrame | None = None,
    strategies: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per effect: the majority call and how many analyses of each strategy agree.

    Parameters
    ----------
    calls : DataFrame
        One row per (analysis, effect): ``source``, ``strategy``, ``region``, ``readout``,
        ``comparison``, ``call`` (see :func:`calls_from_effects`).
    voting : sequence of str
        Strategies whose analyses vote (:data:`VOTING_STRATEGIES`); the others are counted per
        strategy but do not vote.
    extra_levels : DataFrame, optional
        Calls of the same analyses at other levels of analysis, with a ``level`` column (e.g.
        ``animal``, ``mixed``): each level adds ``majority_call_<level>`` and
        ``n_analyses_<level>`` columns (majority of the voting analyses at that level).
    strategies : sequence of str, optional
        Strategies that get ``<strategy>_agree`` / ``<strategy>_n`` columns even without a
        tested analysis (0 / 0: e.g. annotators that cover too few images); the strategies in
        `calls` always get them.

    Returns
    -------
    DataFrame
        Columns ``region, readout, comparison, majority_call, tie, n_analyses, n_agree,
        n_increase, n_decrease, n_none``, then per strategy present ``<strategy>_agree`` and
        ``<strategy>_n``, then ``summary`` (e.g. ``found by 2/2 consensus ensembles, 3/8 expert
        models``) and ``dissenters`` (voting analyses whose call differs, ``;``-separated), then
        any ``majority_call_<level>`` columns. Sorted by region, readout, comparison.

    Examples
    --------
    >>> import pandas as pd
    >>> calls = pd.DataFrame({"source": ["a", "b", "c"], "strategy": "expert_models",
    ...     "region": "CA1", "readout": "density", "comparison": "H vs C+",
    ...     "call": ["none", "none", "increase"]})
    >>> row = reproducibility_table(calls).iloc[0].to_dict()
    >>> row["majority_call"], row["n_agree"], row["expert_models_agree"], row["expert_models_n"]
    ('none', 2, 2, 3)
    >>> row["summary"]
    'no effect by majority: 1/3 analyses call an increase'
    """
    strategies = _strategy_order({*calls["strategy"].unique(), *(strategies or ())})
    rows = []
    for key, effect in calls.groupby(list(EFFECT_KEYS), sort=True):
        votes = effect[effect["strategy"].isin(voting)]
        call, tie = majority_vote(votes["call"])
        row = dict(zip(EFFECT_KEYS, key))
        row.update(
            majority_call=call,
            tie=tie,
            n_analyses=len(votes),
            n_agree=int((votes["call"] == call).sum()),
            **{f"n_{c}": int((votes["call"] == c).sum()) for c in CALLS},
        )
        for strategy in strategies:
            mine = effect[effect["strategy"] == strategy]
            row[f"{strategy}_agree"] = int((mine["call"] == call).sum())
            row[f"{strategy}_n"] = len(mine)
        row["summary"] = _summary(call, tie, votes, [s for s in strategies if s in voting])
        row["dissenters"] = ";".join(sorted(votes.loc[votes["call"] != call, "source"]))
        rows.append(row)
    columns = list(REPRODUCIBILITY_BASE_COLUMNS)
    for strategy in strategies:
        columns += [f"{strategy}_agree", f"{strategy}_n"]
    columns += ["summary", "dissenters"]
    table = pd.DataFrame(rows, columns=columns)
    if extra_levels is not None and len(extra_levels):
        table = _add_levels(table, extra_levels, voting)
    return table


def _add_levels(table: pd.DataFrame, extra: pd.DataFrame, voting: Sequence[str]) -> pd.DataFrame:
    for level, calls in extra.groupby("level", sort=True):
        votes = calls[calls["strategy"].isin(voting)]
        rows = []
        for key, effect in votes.groupby(list(EFFECT_KEYS), sort=True):
            call, _ = majority_vote(effect["call"])
            rows.append(
                {
                    **dict(zip(EFFECT_KEYS, key)),
                    f"majority_call_{level}": call,
                    f"n_analyses_{level}": len(effect),
                }
            )
        if rows:
            table = table.merge(pd.DataFrame(rows), on=list(EFFECT_KEYS), how="left")
    return table


# -- variation ----------------------------------------------------------------------------------


def variation_per_effect(calls: pd.DataFrame, strategies: Sequence[str] | None = None) -> pd.DataFrame:
    """SD of eta² within each strategy, per effect ("variation per effect").

    Parameters
    ----------
    calls : DataFrame
        One row per (analysis, effect) with ``strategy``, ``region``, ``readout``,
        ``comparison`` and ``eta2``.
    strategies : sequence of str, optional
        Strategies to report (default: every strategy present, in report order).

    Returns
    -------
    DataFrame
        One row per effect and strategy, columns ``region, readout, comparison, strategy, n,
        eta2_mean, eta2_sd, eta2_min, eta2_max``; ``eta2_sd`` (ddof 1) is NaN when n < 2.

    Examples
    --------
    >>> import pandas as pd
    >>> calls = pd.DataFrame({"strategy": ["expert_models"] * 3, "region": "CA1",
    ...     "readout": "density", "comparison": "H vs C+", "eta2": [0.1, 0.3, 0.5]})
    >>> variation_per_effect(calls)[["strategy", "n", "eta2_mean", "eta2_sd"]].round(3)
            strategy  n  eta2_mean  eta2_sd
    0  expert_models  3        0.3      0.2
    """
    strategies = list(strategies) if strategies is not None else _strategy_order(calls["strategy"].unique())
    data = calls[calls["strategy"].isin(strategies) & calls["eta2"].notna()]
    if data.empty:
        return pd.DataFrame(columns=list(VARIATION_PER_EFFECT_COLUMNS))
    grouped = data.groupby([*EFFECT_KEYS, "strategy"], sort=False)["eta2"]
    table = grouped.agg(n="count", eta2_mean="mean", eta2_sd="std", eta2_min="min", eta2_max="max")
    table = table.reset_index()
    order = {s: i for i, s in enumerate(strategies)}
    table = table.assign(_o=table["strategy"].map(order)).sort_values([*EFFECT_KEYS, "_o"])
    return table.drop(columns="_o").reset_index(drop=True)[list(VARIATION_PER_EFFECT_COLUMNS)]


def compare_strategies(
    variation: pd.DataFrame, strategies: Sequence[str] = VARIATION_STRATEGIES
) -> pd.DataFrame:
    """Compare the variation per effect between strategies: Kruskal-Wallis over effects.

    Parameters
    ----------
    variation : DataFrame
        From :func:`variation_per_effect`.
    strategies : sequence of str
        Strategies to compare (those present with at least one defined SD take part).

    Returns
    -------
    DataFrame
        One row per strategy, columns ``strategy, n_effects, eta2_sd_median, eta2_sd_mean,
        eta2_sd_q25, eta2_sd_q75, kruskal_h, kruskal_p, n_strategies, note``; the Kruskal-Wallis
        H and p (:func:`scipy.stats.kruskal` of the per-effect SDs grouped by strategy) repeat on
        every row; NaN with a note when fewer than two strategies have SDs or all SDs are equal.

    Examples
    --------
    >>> import pandas as pd
    >>> variation = pd.DataFrame({"strategy": ["expert_models"] * 3 + ["consensus_ensembles"] * 3,
    ...     "eta2_sd": [0.20, 0.25, 0.30, 0.01, 0.02, 0.03]})
    >>> table = compare_strategies(variation)
    >>> table[["strategy", "n_effects", "eta2_sd_median"]]
                  strategy  n_effects  eta2_sd_median
    0        expert_models          3            0.25
    1  consensus_ensembles          3            0.02
    >>> round(float(table.loc[0, "kruskal_p"]), 4)
    0.0495
    """
    data = variation[variation["strategy"].isin(strategies) & variation["eta2_sd"].notna()]
    present = [s for s in strategies if (data["strategy"] == s).any()]
    samples = [data.loc[data["strategy"] == s, "eta2_sd"].to_numpy(float) for s in present]
    h = p = np.nan
    note = ""
    if len(samples) < 2:
        note = "fewer than two strategies with a defined SD of eta² (each needs >= 2 analyses)"
    elif np.unique(np.concatenate(samples)).size < 2:
        note = "all SDs equal: Kruskal-Wallis undefined"
    else:
        h, p = (float(x) for x in stats.kruskal(*samples))
    rows = [
        {
            "strategy": s,
            "n_effects": x.size,
            "eta2_sd_median": float(np.median(x)),
            "eta2_sd_mean": float(np.mean(x)),
            "eta2_sd_q25": float(np.quantile(x, 0.25)),
            "eta2_sd_q75": float(np.quantile(x, 0.75)),
            "kruskal_h": h,
            "kruskal_p": p,
            "n_strategies": len(samples),
            "note": note,
        }
        for s, x in zip(present, samples)
    ]
    return pd.DataFrame(rows, columns=list(STRATEGY_COMPARISON_COLUMNS))


def variation_per_model(
    calls: pd.DataFrame, majority: pd.DataFrame, voting: Sequence[str] = VOTING_STRATEGIES
) -> pd.DataFrame:
    """Per analysis: SD of its centred eta² across effects and its calls that differ from the majority.

    Each effect's eta² is centred by the effect's mean eta² over the voting analyses, so that an
    analysis that is consistently high or low (a biased model) has a non-zero mean but a small SD,
    and one that is erratic has a large SD.

    Parameters
    ----------
    calls : DataFrame
        One row per (analysis, effect): ``source``, ``strategy``, effect keys, ``call``, ``eta2``.
    majority : DataFrame
        From :func:`reproducibility_table` (effect keys and ``majority_call``).
    voting : sequence of str
        Strategies whose analyses define the effect's mean eta² (:data:`VOTING_STRATEGIES`).

    Returns
    -------
    DataFrame
        One row per analysis (voting or not), columns ``source, strategy, votes, n_effects,
        centred_eta2_mean, centred_eta2_sd, n_calls, n_differ, differ_effects`` (the effects
        whose call differs, ``region/readout/comparison`` joined by ``;``).

    Examples
    --------
    >>> import pandas as pd
    >>> calls = pd.DataFrame({"source": ["a", "b"] * 2, "strategy": "expert_models",
    ...     "region": "CA1", "readout": ["density"] * 2 + ["intensity"] * 2,
    ...     "comparison": "H vs C+", "call": ["increase", "none", "none", "none"],
    ...     "eta2": [0.5, 0.3, 0.2, 0.2]})
    >>> majority = pd.DataFrame({"region": "CA1", "readout": ["density", "intensity"],
    ...     "comparison": "H vs C+", "majority_call": ["none", "none"]})
    >>> variation_per_model(calls, majority)[["source", "centred_eta2_mean", "centred_eta2_sd", "n_differ"]]
      source  centred_eta2_mean  centred_eta2_sd  n_differ
    0      a               0.05         0.070711         1
    1      b              -0.05         0.070711         0
    """
    keys = list(EFFECT_KEYS)
    voters = calls[calls["strategy"].isin(voting)]
    centre = voters.groupby(keys)["eta2"].mean().rename("_centre")
    data = calls.merge(centre, left_on=keys, right_index=True, how="left")
    data = data.merge(majority[[*keys, "majority_call"]], on=keys, how="left")
    data["_centred"] = data["eta2"] - data["_centre"]
    data["_differs"] = data["call"] != data["majority_call"]
    rows = []
    for (source, strategy), mine in data.groupby(["source", "strategy"], sort=False):
        differ = mine[mine["_differs"]]
        rows.append(
            {
                "source": source,
                "strategy": strategy,
                "votes": strategy in voting,
                "n_effects": int(mine["_centred"].notna().sum()),
                "centred_eta2_mean": float(mine["_centred"].mean()),
                "centred_eta2_sd": float(mine["_centred"].std()),
                "n_calls": len(mine),
                "n_differ": len(differ),
                "differ_effects": ";".join(
                    "/".join(map(str, k)) for k in differ[keys].itertuples(index=False)
                ),
            }
        )
    table = pd.DataFrame(rows, columns=list(VARIATION_PER_MODEL_COLUMNS))
    order = {s: i for i, s in enumerate(_strategy_order(table["strategy"]))}
    table = table.assign(_o=table["strategy"].map(order)).sort_values(["_o", "source"], kind="stable")
    return table.drop(columns="_o").reset_index(drop=True)


# -- ensemble consistency -----------------------------------------------------------------------


def consistency_summary(
    pairs: pd.DataFrame, counts: pd.DataFrame, levels: dict[str, Sequence[str]]
) -> pd.DataFrame:
    """Ensemble consistency: object F1 and count ICC among the label sources of each level.

    Parameters
    ----------
    pairs : DataFrame
        Object agreement per image and unordered pair of sources: ``image_id``, ``source_a``,
        ``source_b``, ``f1``.
    counts : DataFrame
        Objects per image and source: ``image_id``, ``source``, ``count``.
    levels : dict
        Level name (``members_of:<ensemble>``, ``between_ensembles``, ``consensus_models``,
        ``expert_models``) -> the sources compared.

    Returns
    -------
    DataFrame
        Columns ``level, metric, image_id, value, n, n_sources, sources, note``. Per image:
        ``object_f1_mean`` (mean F1 over the level's pairs, ``n`` = pairs). Per level (no
        image_id): ``object_f1_mean`` and ``object_f1_sd`` over images (``n`` = images) and
        ``count_icc`` = ICC(2,1) of the per-image counts (two-way random, absolute agreement,
        single rater; :func:`cfosstats.stats.counts.icc_absolute_agreement`), on images counted by
        every source of the level.

    Examples
    --------
    >>> import pandas as pd
    >>> pairs = pd.DataFrame({"image_id": ["1", "2"], "source_a": "m1", "source_b": "m2", "f1": [0.8, 0.9]})
    >>> counts = pd.DataFrame({"image_id": ["1", "1", "2", "2", "3", "3"], "source": ["m1", "m2"] * 3,
    ...     "count": [10, 11, 20, 19, 30, 30]})
    >>> table = consistency_summary(pairs, counts, {"members_of:ens": ["m1", "m2"]})
    >>> table[table["image_id"].isna()][["metric", "value", "n"]].round(3)
               metric  value  n
    2  object_f1_mean  0.850  2
    3    object_f1_sd  0.071  2
    4       count_icc  0.997  3
    """
    rows = []
    for level, sources in levels.items():
        sources = list(sources)
        common = {"level": level, "n_sources": len(sources), "sources": ";".join(sources)}
        mine = pairs[pairs["source_a"].isin(sources) & pairs["source_b"].isin(sources)]
        per_image = mine.groupby("image_id", sort=True)["f1"].agg(["mean", "count"])
        for image_id, record in per_image.iterrows():
            rows.append(
                {
                    **common,
                    "metric": "object_f1_mean",
                    "image_id": image_id,
                    "value": float(record["mean"]),
                    "n": int(record["count"]),
                    "note": "",
                }
            )
        values = per_image["mean"]
        rows.append(
            {
                **common,
                "metric": "object_f1_mean",
                "image_id": pd.NA,
                "value": float(values.mean()) if len(values) else np.nan,
                "n": len(values),
                "note": "" if len(values) else "no image with two of these sources",
            }
        )
        rows.append(
            {
                **common,
                "metric": "object_f1_sd",
                "image_id": pd.NA,
                "value": float(values.std()) if len(values) > 1 else np.nan,
                "n": len(values),
                "note": "",
            }
        )
        rows.append({**common, "metric": "count_icc", "image_id": pd.NA, **_count_icc(counts, sources)})
    return pd.DataFrame(rows, columns=list(CONSISTENCY_COLUMNS))


def _count_icc(counts: pd.DataFrame, sources: Sequence[str]) -> dict:
    mine = counts[counts["source"].isin(sources)].rename(columns={"source": "rater"})
    complete = mine.pivot_table(index="image_id", columns="rater", values="count", aggfunc="first").dropna()
    if complete.shape[1] < 2 or len(complete) < 3:
        return {
            "value": np.nan,
            "n": len(complete),
            "note": "needs >= 2 sources and >= 3 images counted by all",
        }
    if np.unique(complete.to_numpy()).size < 2:
        return {"value": np.nan, "n": len(complete), "note": "all counts equal: ICC undefined"}
    # ICC(2,1) only: count_agreement's full table (Krippendorff's alpha on every count) took
    # seconds and GBs per level for hundreds of images.
    value = icc_absolute_agreement(complete.to_numpy(dtype=float))
    return {"value": value, "n": len(complete), "note": ""}
