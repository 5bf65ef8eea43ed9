"""Calibration of the effect tests on simulated studies: false-positive rate, power, variation.

Every study is simulated in the full study layout (:func:`cfosstats.datasets.simulate_study`),
read back with :func:`cfosstats.datasets.load_lab` and analysed with the real pipeline
(:func:`cfosstats.analyses.validity.run_effects`: masks read from disk, objects cut to the region,
normalised to the control mean per experiment, then tested). The design is one area (CA1), two
conditions (H, C+: one comparison, so no Bonferroni), ``--n-animals`` animals per condition with
``--images-per-animal`` images each, ``--size`` px images; no annotated training subset (so no
model prediction is in-sample).

Scenarios
---------
``null_animals``
    No effect, realistic between-animal variation (``--animal-sd``, default 0.3 on the log
    density). Images of one animal share its factor, so images are *not* independent: the
    study's image-level analysis is expected to be inflated; the animal-level analysis (images
    averaged per animal) and the mixed model (random intercept per animal) should hold alpha.
    Analysed label source: consensus ensemble 1.
``null_no_animals``
    No effect, no between-animal variation: images are independent and every level should hold
    alpha. Same source.
``effect``
    A planted effect (``--effect``, default 0.5: C+ has x1.5 density and brightness) with the
    same animal variation; every label source is analysed (expert models, consensus models,
    ensemble members, consensus ensembles) at the image and animal levels: power per strategy,
    and the variation per effect (SD of eta² within a strategy) of consensus ensembles against
    expert models.

A false positive is a significant H vs C+ test (p <= 0.05) of one readout; rates come with
Wilson 95% intervals. Each study is one independent draw (seed = its number), so the binomial
intervals hold per readout (density and intensity of one study are correlated, and are
reported separately).

Usage::

    python benchmarks/calibration.py [--n-studies 200] [--jobs 2] [--scenarios null_animals ...]
        [--out benchmarks/results/calibration]

Writes ``studies.csv`` (one row per study, analysis, level and readout), ``variation.csv``,
``summary.csv`` (the printed table), ``run.json`` and the figures ``fpr.png``, ``pvalues.png``,
``power.png`` and ``variation.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from cfosstats.analyses.validity import run_effects  # noqa: E402
from cfosstats.datasets import load_lab  # noqa: E402
from cfosstats.datasets.registry import load_lab_config  # noqa: E402
from cfosstats.simulate.study import simulate_study  # noqa: E402

ENSEMBLE = "scratch/consensus_ensembles/ensemble_1/ensemble"
ALPHA = 0.05
BAND = (0.02, 0.08)  # 0.05 +- 0.03


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One simulated design and what is analysed in it."""

    effect: float
    animal_sd: float
    sources: tuple[str, ...] | None  # None: every label source
    levels: tuple[str, ...]


def scenarios(effect: float, animal_sd: float) -> dict[str, Scenario]:
    return {
        "null_animals": Scenario(0.0, animal_sd, (ENSEMBLE,), ("image", "animal", "mixed")),
        "null_no_animals": Scenario(0.0, 0.0, (ENSEMBLE,), ("image", "animal", "mixed")),
        "effect": Scenario(effect, animal_sd, None, ("image", "animal")),
    }


def calibration_config():
    """The demo lab reduced to one area and two conditions (H control, C+)."""
    demo = load_lab_config("demo")
    return dataclasses.replace(demo, conditions=("H", "C+"), areas=("CA1",), regions={"CA1": ("CA1",)})


def run_study(name: str, scenario: Scenario, seed: int, design: dict, workdir: str) -> dict:
    """Simulate and analyse one study; return its effect rows and variation rows (plain records)."""
    root = Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=workdir))
    try:
        config = calibration_config()
        study = simulate_study(
            root / "study",
            config=config,
            seed=seed,
            effect=scenario.effect,
            animal_sd=scenario.animal_sd,
            n_training=0,
            **design,
        )
        lab = load_lab(config, data=study)
        result = run_effects(
            lab,
            root / "effects",
            jobs=1,
            n_boot=0,
            levels=scenario.levels,
            sources=scenario.sources,
            cache=False,
            consistency=False,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    effects = result.tables["effects"]
    pairs = effects[(effects["comparison"] == "H vs C+") & (effects["test"] != "skipped")]
    keep = ["source", "strategy", "readout", "level", "p_value", "significant", "call", "eta2", "note"]
    rows = pairs[keep].assign(scenario=name, seed=seed).to_dict("records")
    variation = result.tables["variation_per_effect"].assign(scenario=name, seed=seed).to_dict("records")
    repro = result.tables["reproducibility"][["readout", "majority_call"]].assign(scenario=name, seed=seed)
    return {"effects": rows, "variation": variation, "majority": repro.to_dict("records")}


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of a binomial proportion."""
    if n == 0:
        return (np.nan, np.nan)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def summarise(effects: pd.DataFrame, majority: pd.DataFrame) -> pd.DataFrame:
    """Rates per scenario, level, readout and strategy (FPR under the null, power with an effect)."""
    rows = []
    for (scenario, level, readout, strategy), part in effects.groupby(
        ["scenario", "level", "readout", "strategy"], sort=False
    ):
        significant = part["significant"].astype(bool)
        k, n = int(significant.sum()), len(part)
        low, high = wilson(k, n)
        rows.append(
            {
                "scenario": scenario,
                "measure": "false-positive rate" if scenario.startswith("null") else "power",
                "level": level,
                "readout": readout,
                "strategy": strategy,
                "n_tests": n,
                "n_significant": k,
                "rate": k / n,
                "ci95_low": low,
                "ci95_high": high,
                "n_studies": part["seed"].nunique(),
            }
        )
    for (scenario, readout), part in majority.groupby(["scenario", "readout"], sort=False):
        if scenario.startswith("null"):
            continue
        k, n = int((part["majority_call"] == "increase").sum()), len(part)
        low, high = wilson(k, n)
        rows.append(
            {
                "scenario": scenario,
                "measure": "power",
                "level": "image",
                "readout": readout,
                "strategy": "majority vote",
                "n_tests": n,
                "n_significant": k,
                "rate": k / n,
                "ci95_low": low,
                "ci95_high": high,
                "n_studies": part["seed"].nunique(),
            }
        )
    return pd.DataFrame(rows)


def variation_summary(variation: pd.DataFrame) -> pd.DataFrame:
    """Variation per effect (SD of eta² within a strategy) by strategy, and ensembles vs experts."""
    data = variation[(variation["scenario"] == "effect") & variation["eta2_sd"].notna()]
    if data.empty:
        return pd.DataFrame()
    rows = []
    for (readout, strategy), part in data.groupby(["readout", "strategy"], sort=False):
        rows.append(
            {
                "readout": readout,
                "strategy": strategy,
                "n_effects": len(part),
                "eta2_sd_median": part["eta2_sd"].median(),
                "eta2_sd_q25": part["eta2_sd"].quantile(0.25),
                "eta2_sd_q75": part["eta2_sd"].quantile(0.75),
            }
        )
    table = pd.DataFrame(rows)
    wide = data.pivot_table(index=["seed", "readout"], columns="strategy", values="eta2_sd")
    if {"consensus_ensembles", "expert_models"} <= set(wide.columns):
        paired = wide[["consensus_ensembles", "expert_models"]].dropna()
        lower = (paired["consensus_ensembles"] < paired["expert_models"]).mean()
        test = stats.wilcoxon(paired["consensus_ensembles"], paired["expert_models"])
        table.attrs["ensembles_lower_fraction"] = float(lower)
        table.attrs["wilcoxon_p"] = float(test.pvalue)
        table.attrs["n_paired"] = len(paired)
    strategies = [
        s for s in ("expert_models", "consensus_models", "consensus_ensembles") if s in wide.columns
    ]
    if len(strategies) >= 2:
        table.attrs["kruskal_p"] = float(stats.kruskal(*[wide[s].dropna() for s in strategies]).pvalue)
    return table


# -- figures ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_fpr(summary: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    null = summary[summary["measure"] == "false-positive rate"]
    labels = [f"{r.scenario}\n{r.level} / {r.readout}" for r in null.itertuples()]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(null)), 4.2))
    x = np.arange(len(null))
    ax.axhspan(*BAND, color="0.9", label="0.05 ± 0.03")
    ax.axhline(ALPHA, color="0.4", lw=1, ls="--")
    err = [null["rate"] - null["ci95_low"], null["ci95_high"] - null["rate"]]
    colours = [
        "tab:red" if lvl == "image" else "tab:blue" if lvl == "animal" else "tab:green"
        for lvl in null["level"]
    ]
    ax.bar(x, null["rate"], color=colours, yerr=err, capsize=3)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("false-positive rate (alpha 0.05)")
    ax.set_title(
        "No planted effect: red image level (study), blue animal level, green mixed model", fontsize=9
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def figure_pvalues(effects: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    null = effects[effects["scenario"].str.startswith("null") & (effects["readout"] == "density")]
    groups = list(null.groupby(["scenario", "level"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(2.6 * len(groups), 2.8), sharey=True, squeeze=False)
    for ax, ((scenario, level), part) in zip(axes[0], groups):
        ax.hist(part["p_value"].dropna(), bins=np.linspace(0, 1, 21), color="0.5")
        ax.axhline(len(part) / 20, color="k", lw=1, ls="--")
        ax.set_title(f"{scenario}\n{level}", fontsize=8)
        ax.set_xlabel("p (density)")
    axes[0][0].set_ylabel("studies")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def figure_power(summary: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    power = summary[summary["measure"] == "power"]
    if power.empty:
        return
    labels = [f"{r.strategy}\n{r.level} / {r.readout}" for r in power.itertuples()]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(power)), 4.2))
    x = np.arange(len(power))
    err = [power["rate"] - power["ci95_low"], power["ci95_high"] - power["rate"]]
    ax.bar(
        x,
        power["rate"],
        yerr=err,
        capsize=3,
        color=["tab:red" if lv == "image" else "tab:blue" for lv in power["level"]],
    )
    ax.set_xticks(x, labels, rotation=70, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("power (share of significant increases)")
    ax.set_title("Planted effect: power per strategy (red image level, blue animal level)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def figure_variation(variation: pd.DataFrame, path: Path) -> None:
    plt = _plt()
    data = variation[(variation["scenario"] == "effect") & variation["eta2_sd"].notna()]
    if data.empty:
        return
    order = [
        s
        for s in ("expert_models", "consensus_models", "ensemble_members", "consensus_ensembles")
        if s in set(data["strategy"])
    ]
    readouts = list(dict.fromkeys(data["readout"]))
    fig, axes = plt.subplots(1, len(readouts), figsize=(4 * len(readouts), 3.4), sharey=True, squeeze=False)
    for ax, readout in zip(axes[0], readouts):
        part = data[data["readout"] == readout]
        ax.boxplot([part.loc[part["strategy"] == s, "eta2_sd"] for s in order], showfliers=False)
        ax.set_xticks(range(1, len(order) + 1), [s.replace("_", "\n") for s in order], fontsize=7)
        ax.set_title(f"variation per effect: {readout}", fontsize=9)
    axes[0][0].set_ylabel("SD of eta² within strategy")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# -- driver ----------------------------------------------------------------------------------------


def _print_table(summary: pd.DataFrame, varsum: pd.DataFrame) -> None:
    shown = summary.copy()
    for column in ("rate", "ci95_low", "ci95_high"):
        shown[column] = shown[column].map(lambda v: f"{v:.3f}")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(shown.drop(columns=["n_studies"]).to_string(index=False))
        if not varsum.empty:
            print()
            print(varsum.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            for key, value in varsum.attrs.items():
                print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-studies", type=int, default=200, help="studies per scenario")
    parser.add_argument("--n-studies-effect", type=int, default=None, help="studies of the effect scenario")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scenarios", nargs="*", default=None)
    parser.add_argument("--effect", type=float, default=0.5)
    parser.add_argument("--animal-sd", type=float, default=0.3)
    parser.add_argument("--n-animals", type=int, default=6)
    parser.add_argument("--images-per-animal", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "calibration")
    args = parser.parse_args(argv)
    table = scenarios(args.effect, args.animal_sd)
    chosen = args.scenarios or list(table)
    design = {"n_animals": args.n_animals, "images_per_animal": args.images_per_animal, "size": args.size}
    tasks = []
    for name in chosen:
        n = args.n_studies_effect if (name == "effect" and args.n_studies_effect) else args.n_studies
        tasks += [(name, table[name], seed, design) for seed in range(n)]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    effects, variation, majority = [], [], []
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None  # tmpfs: thousands of small files
    with tempfile.TemporaryDirectory(prefix="calibration-", dir=scratch) as workdir:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_study, *task, workdir) for task in tasks]
            for done, future in enumerate(futures, 1):
                result = future.result()
                effects += result["effects"]
                variation += result["variation"]
                majority += result["majority"]
                if done % 50 == 0 or done == len(futures):
                    elapsed = time.perf_counter() - started
                    print(f"{done}/{len(futures)} studies, {elapsed:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    effects_table = pd.DataFrame(effects)
    variation_table = pd.DataFrame(variation)
    summary = summarise(effects_table, pd.DataFrame(majority))
    varsum = variation_summary(variation_table)
    effects_table.to_csv(args.out / "studies.csv", index=False)
    variation_table.to_csv(args.out / "variation.csv", index=False)
    summary.to_csv(args.out / "summary.csv", index=False)
    varsum.to_csv(args.out / "variation_summary.csv", index=False)
    figure_fpr(summary, args.out / "fpr.png")
    figure_pvalues(effects_table, args.out / "pvalues.png")
    figure_power(summary, args.out / "power.png")
    figure_variation(variation_table, args.out / "variation.png")
    record = {
        "scenarios": {k: dataclasses.asdict(table[k]) for k in chosen},
        "design": design,
        "n_studies": args.n_studies,
        "n_studies_effect": args.n_studies_effect or args.n_studies,
        "jobs": args.jobs,
        "seconds": round(elapsed, 1),
        "seconds_per_study": round(elapsed * args.jobs / max(len(tasks), 1), 2),
        "variation": varsum.attrs,
    }
    (args.out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    _print_table(summary, varsum)
    print(f"\n{len(tasks)} studies in {elapsed:.0f} s ({record['seconds_per_study']} s per study per core)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
