"""``build_report``: from a lab to ``report.qmd``, ``report.html`` and ``report.pdf``.

The steps, each cached by the checksums of its inputs (:mod:`cfosstats.core.cache`) under
``<out>/<lab>/tables/<step>/``:

``objectivity``
    :func:`cfosstats.analyses.objectivity.run_agreement` (annotator agreement, counts, Bland-Altman).
``groundtruth``
    :func:`cfosstats.analyses.objectivity.estimate_groundtruth` with STAPLE: per-annotator sensitivity
    and specificity, and the STAPLE masks used where no ``est_GT`` is published.
``predictions``
    Where the model library holds models of the lab (``data/models/<lab>/``): every ensemble
    and every single model that is no ensemble's member predicts every image
    (:func:`cfosstats.segment.pipeline.predict_lab`: masks and uncertainty maps). The
    predictions join the lab's label sources.
``models``
    Each predicted label set's object F1 against the estimated ground truth per annotated
    image, placed in the annotators' range (:mod:`cfosstats.analyses.models`).
``effects``
    :func:`cfosstats.analyses.validity.run_effects`: quantification, outliers, effects, reproducibility,
    variation, consistency.

Then the figures (cached by the content of the tables they draw), the image panel, the
document (``report.qmd``, :mod:`cfosstats.report.content`) and the outputs (cached by the
document's and figures' checksums; :mod:`cfosstats.report.render`). What a step cannot do (no
annotators, no groups, no models) is recorded and said in the report.

Output folder ``<out>/<lab>/``: ``report.qmd``, ``report.html``, ``report.pdf``, ``report.css``,
``figures/*.png``, ``tables/<step>/*.csv`` and ``tables/manifest.json`` (the cache keys),
``tables/inputs.csv`` (every input file's SHA-256).

Examples
--------
>>> from cfosstats.datasets import load_lab  # doctest: +SKIP
>>> result = build_report(load_lab("demo"), "reports", formats=("html", "pdf"))  # doctest: +SKIP
>>> result.outputs["html"]  # doctest: +SKIP
PosixPath('reports/demo/report.html')
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cfosstats.core.atomic import atomic_dir, write_csv, write_text
from cfosstats.core.cache import FileHasher, ResultsCache, cache_key, canonical_json
from cfosstats.core.hashing import sha256_file
from cfosstats.core.version import __version__
from cfosstats.datasets.layout import ESTIMATED_GT

ID_COLUMNS = ("image_id", "group", "condition", "stratum", "animal", "experiment", "group_a", "group_b")
RENDER_VERSION = 1
PANEL_VERSION = 1
PANEL_SIZE = 256


@dataclass
class StepRecord:
    """What happened to one step: ``computed``, ``cached`` or ``skipped`` (with the reason)."""

    name: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    key: str = ""
    note: str = ""  # said on the terminal only (e.g. a damaged cache recomputed), not in the report


@dataclass
class Results:
    """Everything the document is built from."""

    lab: Any
    folder: Path
    parameters: dict
    tables: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)  # name -> LabelSource (library predictions)
    prediction_root: Path | None = None
    model_cards: list[dict] = field(default_factory=list)
    inputs: pd.DataFrame | None = None
    published: list = field(default_factory=list)  # SetResult of published tables (reviewer mode)

    def table(self, step: str, name: str) -> pd.DataFrame | None:
        """A table of a step, or None when the step was skipped or did not write it."""
        return self.tables.get(step, {}).get(name)

    def skipped(self, step: str) -> str | None:
        """The reason a step was skipped, or None when it ran (or was cached)."""
        record = self.steps.get(step)
        if record is None:
            return "not run"
        return record.reason if record.status == "skipped" else None


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    lab: str
    folder: Path
    qmd: Path
    outputs: dict[str, Path]
    steps: dict[str, StepRecord]
    seconds: float
    results: Results | None = None
    published: list = field(default_factory=list)  # SetResult of published tables (reviewer mode)

    @property
    def cached(self) -> bool:
        """Whether nothing at all had to be computed or rendered."""
        return all(r.status in ("cached", "skipped") for r in self.steps.values())


# -- helpers ---------------------------------------------------------------------------------


class Progress:
    """One line per step on stderr (rich), or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def status(self, text: str):
        if self.console is None:
            yield
            return
        with self.console.status(text):
            yield

    def done(self, record: StepRecord) -> None:
        if self.console is None:
            return
        mark = {"computed": "[green]✓[/]", "cached": "[cyan]●[/]", "skipped": "[yellow]–[/]"}[record.status]
        detail = f"{record.status}" + (f" in {record.seconds:.1f} s" if record.status == "computed" else "")
        if record.reason or record.note:
            detail += f": {record.reason or record.note}"
        self.console.print(f"{mark} {record.name}: {detail}")


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """Every ``*.csv`` of a folder by file stem, identifiers read as text."""
    tables = {}
    for path in sorted(Path(folder).glob("*.csv")):
        try:
            header = pd.read_csv(path, nrows=0).columns
        except pd.errors.EmptyDataError:
            tables[path.stem] = pd.DataFrame()
            continue
        dtype = {c: str for c in ID_COLUMNS if c in header}
        tables[path.stem] = pd.read_csv(path, dtype=dtype, keep_default_na=True)
    return tables


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _files_of(lab, strategies: Iterable[str] | None = None, names: Iterable[str] | None = None) -> list[Path]:
    out: list[Path] = []
    for source in lab.label_sources.values():
        if (strategies is not None and source.strategy in strategies) or (
            names is not None and source.name in names
        ):
            out += [Path(p) for _, p in sorted(source.files.items())]
    return out


def _image_files(lab, image_ids: Iterable[str] | None = None) -> list[Path]:
    ids = lab.image_ids if image_ids is None else list(image_ids)
    return [Path(lab.image_path(i)) for i in ids]


def _config_record(lab) -> dict:
    record = lab.config.as_dict()
    record.pop("source", None)
    return record


def _metadata_digest(lab) -> str:
    import hashlib

    text = lab.metadata.drop(columns=["path"], errors="ignore").to_csv(index=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- the step runner -------------------------------------------------------------------------


class Runner:
    """Runs cached steps and records what happened."""

    def __init__(self, results: Results, progress: Progress):
        self.results = results
        self.progress = progress
        self.cache = ResultsCache(results.folder / "tables")
        lab = results.lab
        self.hasher = FileHasher(Path(lab.root).parent)

    def skip(self, step: str, reason: str) -> None:
        record = StepRecord(step, "skipped", reason)
        self.results.steps[step] = record
        self.progress.done(record)

    def run(
        self,
        step: str,
        files: Iterable[Path],
        parameters: dict,
        compute: Callable[[Path], object],
        version: int = 1,
        description: str = "",
    ) -> Path | None:
        """Load the step's tables from the cache, or compute them into its folder."""
        with self.progress.status(f"{step}: checking inputs"):
            digests = self.hasher.digests(files)
        key = cache_key(step, {"lab": _config_record(self.results.lab), **parameters}, digests, version)
        folder, damaged = self.cache.verify(step, key)
        if folder is not None:
            record = StepRecord(step, "cached", key=key)
        else:
            started = time.perf_counter()
            # Computed beside the old folder and swapped in only when complete: an interrupted
            # update leaves the previous tables (and report) as they were.
            with atomic_dir(self.cache.root / step) as staging:
                with self.progress.status(description or f"{step}: computing"):
                    compute(staging)
            folder = self.cache.root / step
            seconds = time.perf_counter() - started
            self.cache.record(step, key, seconds, {"parameters": parameters, "n_inputs": len(digests)})
            why = f"recomputed: {damaged}" if damaged else ""
            record = StepRecord(step, "computed", seconds=seconds, key=key, note=why)
        self.results.steps[step] = record
        self.results.tables[step] = read_tables(folder)
        run_json = folder / "run.json"
        if run_json.is_file():
            self.results.runs[step] = _read_json(run_json)
        self.progress.done(record)
        return folder


# -- steps -----------------------------------------------------------------------------------


def _objectivity(runner: Runner) -> None:
    results = runner.results
    lab = results.lab
    if not lab.annotators:
        runner.skip("objectivity", "no annotators: the data holds no annotators' masks to compare")
        runner.skip("groundtruth", "no annotators: no ground truth can be estimated")
        return
    from cfosstats.analyses.objectivity import estimate_groundtruth, run_agreement

    params = results.parameters
    annotated = lab.annotated_image_ids()
    files = (
        _files_of(lab, strategies=("annotators", "estimated_gt"))
        + [Path(p) for i, p in sorted(lab.ignore_files.items()) if i in set(annotated)]
        + _image_files(lab, annotated)
    )
    runner.run(
        "objectivity",
        files,
        {"threshold": params["threshold"], "criterion": params["criterion"]},
        lambda folder: run_agreement(
            lab,
            folder,
            threshold=params["threshold"],
            jobs=params["jobs"],
            criterion=params["criterion"],
            progress=False,
        ),
        description=f"objectivity: agreement of {len(lab.annotators)} annotators on {len(annotated)} images",
    )
    runner.run(
        "groundtruth",
        _files_of(lab, strategies=("annotators",)) + _image_files(lab, annotated),
        {"method": "staple"},
        lambda folder: estimate_groundtruth(lab, "staple", folder, jobs=params["jobs"], progress=False),
        description=f"groundtruth: STAPLE of {len(lab.annotators)} annotators on {len(annotated)} images",
    )


def library_cards(lab_name: str, library: Path | None = None) -> list[tuple[Path, dict]]:
    """Model cards of a lab in the model library: (card path, card), read without torch."""
    if library is None:
        from cfosstats.core.resources import data_dir

        library = data_dir() / "models"
    folder = Path(library) / lab_name
    if not folder.is_dir():
        return []
    cards = []
    for path in sorted(folder.glob("*.json")):
        card = _read_json(path)
        if card.get("name"):
            cards.append((path, card))
    return cards


def _prediction_plan(cards: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """Ensembles, plus single models that are no ensemble's member."""
    members = {m for _, c in cards if c.get("kind") == "ensemble" for m in c.get("members", [])}
    ensembles = [(p, c) for p, c in cards if c.get("kind") == "ensemble"]
    singles = [(p, c) for p, c in cards if c.get("kind") != "ensemble" and c.get("name") not in members]
    return ensembles + singles


def _predictions(runner: Runner) -> None:
    results = runner.results
    lab = results.lab
    params = results.parameters
    if not params.get("predict", True):
        runner.skip("predictions", "model predictions not requested (--no-predict)")
        return
    cards = library_cards(lab.config.name, params.get("library"))
    if not cards:
        runner.skip(
            "predictions",
            f"no models: the model library holds no models of lab {lab.config.name}, so no pretrained "
            "predictions are available for this lab",
        )
        return
    from cfosstats.segment.predict import Settings

    plan = _prediction_plan(cards)
    results.model_cards = [card for _, card in cards]
    files = _image_files(lab) + [p for p, _ in cards]
    for path, card in cards:
        weights = path.with_suffix(".pt")
        if card.get("kind") != "ensemble" and weights.is_file():
            files.append(weights)

    def compute(folder: Path) -> None:
        from cfosstats.segment.pipeline import predict_lab

        for replicate, (path, _card) in enumerate(plan, 1):
            predict_lab(lab, path, folder, replicate=replicate, show_progress=False)

    try:
        folder = runner.run(
            "predictions",
            files,
            {"models": [c.get("name") for _, c in plan], "settings": Settings().resolved().as_dict()},
            compute,
            description=f"predictions: {len(plan)} model(s) of the library on {len(lab.image_ids)} images",
        )
    except (RuntimeError, OSError) as exc:
        runner.cache.forget("predictions")
        runner.skip("predictions", f"the library's models could not predict ({type(exc).__name__}: {exc})")
        return
    results.prediction_root = folder
    from cfosstats.datasets.predictions import predicted_label_sources

    results.predicted = predicted_label_sources(lab, folder, prefix="library")
    uncertainty = {}
    for csv in sorted((folder / lab.config.folder / "uncertainty").glob("*/*/*/*/uncertainty.csv")):
        name = "library/" + "/".join(csv.parent.relative_to(folder / lab.config.folder / "uncertainty").parts)
        table = pd.read_csv(csv, dtype={"image_id": str})
        table.insert(0, "source", name)
        uncertainty[name] = table
    if uncertainty:
        results.tables["predictions"]["uncertainty"] = pd.concat(uncertainty.values(), ignore_index=True)


def analysed_lab(results: Results):
    """The lab with the library's predictions added to its label sources."""
    lab = results.lab
    if not results.predicted:
        return lab
    return dataclasses.replace(lab, label_sources={**lab.label_sources, **results.predicted})


def _reference_paths(results: Results) -> dict[str, Path]:
    """image id -> its estimated ground truth mask (published, else this run's STAPLE)."""
    lab = results.lab
    out: dict[str, Path] = {}
    if lab.has_published_gt:
        out.update({i: Path(p) for i, p in lab.label_sources[ESTIMATED_GT].files.items()})
    gt_folder = results.folder / "tables" / "groundtruth"
    if results.skipped("groundtruth") is None:
        for image_id in lab.annotated_image_ids():
            if image_id not in out:
                path = gt_folder / f"{image_id}_{lab.config.label}.png"
                if path.is_file():
                    out[image_id] = path
    return out


def _models(runner: Runner) -> None:
    results = runner.results
    lab = analysed_lab(results)
    params = results.parameters
    predicted = {n: s for n, s in lab.label_sources.items() if s.is_prediction}
    if not predicted:
        runner.skip(
            "models",
            "no models: the data holds no predicted label sets and the library no models of "
            f"lab {lab.config.name}",
        )
        return
    if results.skipped("objectivity") is not None:
        runner.skip("models", "no annotators: models cannot be placed in the annotators' range")
        return
    references = _reference_paths(results)
    images = [i for i in lab.annotated_image_ids() if i in references]
    if not images:
        runner.skip("models", "no annotated image has an estimated ground truth")
        return
    from cfosstats.analyses.models import model_f1_of_image, model_summary

    tasks = []
    files: list[Path] = []
    for image_id in images:
        sources = {
            n: (s.strategy, Path(s.files[image_id])) for n, s in predicted.items() if image_id in s.files
        }
        if not sources:
            continue
        ignore = lab.ignore_files.get(image_id)
        tasks.append(
            (
                image_id,
                sources,
                references[image_id],
                None if ignore is None else Path(ignore),
                int(lab.config.min_object_size),
                params["threshold"],
                params["criterion"],
            )
        )
        files += (
            [p for _, p in sources.values()] + [references[image_id]] + ([Path(ignore)] if ignore else [])
        )
    if not tasks:
        runner.skip("models", "no predicted label set covers an annotated image")
        return
    in_sample = _in_sample(results, lab)

    def compute(folder: Path) -> None:
        from cfosstats.stats.agreement import place_in_expert_range

        rows: list[dict] = []
        for part in _map(model_f1_of_image, tasks, params["jobs"]):
            rows += part
        table = pd.DataFrame(rows)
        table["in_sample"] = [
            i in in_sample.get(s, set()) for i, s in zip(table["image_id"], table["source"])
        ]
        ranges = results.table("objectivity", "expert_range")
        if ranges is not None and not ranges.empty:
            table = place_in_expert_range(table, ranges[ranges["image_id"].isin(table["image_id"])])
            table = table[table["image_id"].isin(ranges["image_id"])]
        else:
            table["f1_min"], table["f1_max"], table["placement"] = float("nan"), float("nan"), "undefined"
        write_csv(folder / "model_f1.csv", table)
        write_csv(folder / "model_summary.csv", model_summary(table))

    runner.run(
        "models",
        files,
        {
            "threshold": params["threshold"],
            "criterion": params["criterion"],
            "in_sample": {k: sorted(v) for k, v in in_sample.items()},
        },
        compute,
        version=2,  # 2: the summary judges the selection rule on images the model was not trained on
        description=f"models: F1 of {len(predicted)} predicted label sets on {len(tasks)} annotated images",
    )


def _map(function: Callable, tasks: list[tuple], jobs: int):
    """`function(*task)` for every task, in order; worker processes when `jobs` > 1."""
    from cfosstats.core.parallel import map_tasks

    return map_tasks(function, tasks, jobs, False, "models")


def _in_sample(results: Results, lab) -> dict[str, set[str]]:
    """Predicted label source -> images its model was trained on (where known)."""
    out: dict[str, set[str]] = {}
    if results.prediction_root is not None:
        from cfosstats.datasets.predictions import predicted_training_images

        out.update(predicted_training_images(lab, results.prediction_root, prefix="library"))
    flagged = set(lab.metadata.loc[lab.metadata["training"].fillna(False).astype(bool), "image_id"])
    for name, source in lab.label_sources.items():
        if source.is_prediction and name not in out and not name.startswith("library/"):
            out[name] = flagged & set(source.files)
    return out


def _effects(runner: Runner) -> None:
    results = runner.results
    params = results.parameters
    lab = analysed_lab(results)
    files = _image_files(lab) + _files_of(lab, strategies=None, names=list(lab.label_sources))
    for region in lab.region_files.values():
        files += [Path(p) for _, p in sorted(region.items())]
    files += [Path(p) for _, p in sorted(lab.ignore_files.items())]
    training: dict[str, set[str]] = {}
    if results.prediction_root is not None:
        training = {k: v for k, v in _in_sample(results, lab).items() if k.startswith("library/")}
    from cfosstats.core.errors import InputError, NothingToAnalyse

    try:
        runner.run(
            "effects",
            files,
            {
                "alpha": params["alpha"],
                "exclude": sorted(params["exclude"]),
                "metadata": _metadata_digest(lab),
                "threshold": params["threshold"],
                "training_images": {k: sorted(v) for k, v in training.items()},
            },
            lambda folder: _run_effects(
                lab,
                folder,
                alpha=params["alpha"],
                exclude=params["exclude"],
                jobs=params["jobs"],
                progress=False,
                threshold=params["threshold"],
                training_images=training or None,
            ),
            version=2,  # 2: out-of-fold sources carry their members' prefix (library/...)
            description=f"effects: {len(lab.label_sources)} label sets x {len(lab.image_ids)} images "
            "(quantification, tests, reproducibility)",
        )
    except NothingToAnalyse as exc:
        # A property of the data (no conditions): the report says so and goes on.
        runner.cache.forget("effects")
        runner.skip("effects", exc.message if exc.path is None else f"{exc.message} ({exc.path})")
    except InputError:
        # Bad input is never a "skipped" step: the command ends with the one-line error.
        runner.cache.forget("effects")
        raise


def _run_effects(*args, **kwargs):
    from cfosstats.analyses.validity import run_effects

    return run_effects(*args, **kwargs)


# -- inputs, provenance ----------------------------------------------------------------------


def _all_inputs(lab) -> list[tuple[str, Path]]:
    groups: list[tuple[str, Path]] = [("images", Path(lab.image_path(i))) for i in lab.image_ids]
    for source in lab.label_sources.values():
        group = source.name if not source.is_prediction else f"{source.strategy}: {source.name}"
        groups += [(group, Path(p)) for _, p in sorted(source.files.items())]
    for region, files in lab.region_files.items():
        groups += [(f"region {region}", Path(p)) for _, p in sorted(files.items())]
    groups += [("ignored regions", Path(p)) for _, p in sorted(lab.ignore_files.items())]
    root = Path(lab.root)
    for extra in (root.parent / "image_mapping.xlsx", root / (lab.config.strata_file or "")):
        if extra.is_file():
            groups.append(("metadata", extra))
    if lab.config.source is not None and Path(lab.config.source).is_file():
        groups.append(("lab registry entry", Path(lab.config.source)))
    return groups


def _write_inputs(runner: Runner) -> None:
    results = runner.results
    rows = []
    for group, path in _all_inputs(analysed_lab(results)):
        digest = runner.hasher.sha256(path)
        rows.append(
            {"group": group, "file": runner.hasher.name(path), "sha256": digest, "bytes": path.stat().st_size}
        )
    table = pd.DataFrame(rows, columns=["group", "file", "sha256", "bytes"])
    path = results.folder / "tables" / "inputs.csv"
    previous = None
    if path.is_file():
        with contextlib.suppress(OSError, pd.errors.ParserError):
            previous = pd.read_csv(path)
    if previous is None or not previous.equals(table):
        write_csv(path, table)
    results.inputs = table


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages behind the numbers."""
    import importlib.metadata as metadata
    import platform

    names = [
        "numpy", "scipy", "pandas", "scikit-image", "SimpleITK", "statsmodels", "pingouin", "krippendorff",
        "plotnine", "matplotlib", "jinja2", "pypandoc-binary", "typst", "torch",
    ]  # fmt: skip
    versions = {"python": platform.python_version(), "cfosstats": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    from cfosstats.report.render import tool_versions

    versions.update(tool_versions())
    versions["platform"] = platform.platform()
    return versions


def git_commit() -> str:
    """The git commit of a source checkout of cfosstats (``+dirty`` when modified), or ``''``."""
    import subprocess

    root = Path(__file__).resolve().parent.parent.parent  # the checkout above cfosstats/study/
    if not (root / ".git").exists():
        return ""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if head and dirty else "")


# -- rendering, cached -----------------------------------------------------------------------


def _render(
    results: Results, qmd: Path, formats: Sequence[str], engine: str, runner: Runner
) -> dict[str, Path]:
    from cfosstats.core.resources import templates_dir
    from cfosstats.report.render import render

    folder = qmd.parent
    figure_files = sorted((folder / "figures").glob("*.png"))
    support = [templates_dir() / n for n in ("report.css", "report.typst", "fig-alt.lua")]
    digests = {"report.qmd": sha256_file(qmd)}
    digests.update({f"figures/{p.name}": sha256_file(p) for p in figure_files})
    digests.update({f"templates/{p.name}": sha256_file(p) for p in support if p.is_file()})
    outputs = {name: folder / f"report.{name}" for name in formats}
    key = cache_key("render", {"engine": engine, "formats": list(formats)}, digests, RENDER_VERSION)
    record = runner.cache.steps.get("render", {})
    rendered = record.get("outputs", {})
    intact = all(p.is_file() and rendered.get(p.name) == sha256_file(p) for p in outputs.values())
    if record.get("key") == key and intact:
        step = StepRecord("render", "cached", key=key)
    else:
        started = time.perf_counter()
        with runner.progress.status(f"render: {', '.join(formats)} with {engine}"):
            outputs = render(qmd, formats, engine)
        from cfosstats.report.render import FORMATS

        for stale in (folder / f"report.{name}" for name in FORMATS if name not in formats):
            stale.unlink(missing_ok=True)  # an output of an older document would mislead
        step = StepRecord("render", "computed", seconds=time.perf_counter() - started, key=key)
        runner.cache.steps["render"] = {
            "key": key,
            "files": [],
            "outputs": {p.name: sha256_file(p) for p in outputs.values()},
            "seconds": round(step.seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "info": {},
        }
        write_text(
            runner.cache.manifest_path, json.dumps(runner.cache._manifest, indent=1, sort_keys=True) + "\n"
        )
    results.steps["render"] = step
    runner.progress.done(step)
    return outputs


def build_report(
    lab,
    out: str | Path = "reports",
    formats: str | Sequence[str] = ("html", "pdf"),
    engine: str = "pandoc",
    progress: bool = False,
    *,
    jobs: int = 2,
    threshold: float = 0.5,
    criterion: str = "gt",
    alpha: float = 0.05,
    exclude: Iterable[str] = (),
    predict: bool = True,
    library: str | Path | None = None,
    command: str | None = None,
    published: Sequence = (),
) -> ReportResult:
    """Build the validity report of one lab: run or load every analysis, write and render it.

    Parameters
    ----------
    lab : Lab
        From :func:`cfosstats.datasets.load_lab`.
    out : str or Path, default "reports"
        Output root; the report goes to ``<out>/<lab>/``.
    formats : str or sequence of str, default ("html", "pdf")
        ``html``, ``pdf`` or both (``"html,pdf"`` works too).
    engine : str, default "pandoc"
        A key of :data:`cfosstats.report.render.ENGINES` (``pandoc`` or ``quarto``).
    progress : bool, default False
        Print one line per step (and a spinner while it runs) on stderr.
    jobs : int, default 2
        Worker processes for per-image work.
    threshold, criterion : float, str
        Object matching rule (IoU > 0.5 as in the study).
    alpha : float, default 0.05
        Significance level of the effect tests (Bonferroni over pairs).
    exclude : iterable of str
        Image ids to exclude from the effect tests (added to the registry's list; recorded).
    predict : bool, default True
        Predict with the library's models of the lab, where it has some.
    library : str or Path, optional
        Model library folder (default: the shipped one).
    command : str, optional
        The command line to record (default: the equivalent ``cfosstats report`` command).
    published : sequence of SetResult, optional
        Published analysis sets (:func:`cfosstats.analyses.published.analyse_set`) whose verdict leads
        the report and whose sections precede the methods.

    Returns
    -------
    ReportResult

    Raises
    ------
    cfosstats.report.render.RenderError
        The engine is unknown, unavailable or failed.
    ValueError
        An unknown format.
    """
    from cfosstats.cli.report import command_line
    from cfosstats.report.render import ENGINES, RenderError, check_formats

    started = time.perf_counter()
    formats = check_formats(formats)
    if engine not in ENGINES:
        raise RenderError(f"unknown engine '{engine}': choose from {', '.join(sorted(ENGINES))}")
    if engine == "quarto" and shutil.which("quarto") is None:
        raise RenderError("engine 'quarto' needs a quarto binary on PATH; use --engine pandoc")
    folder = Path(out) / lab.config.name
    folder.mkdir(parents=True, exist_ok=True)
    parameters = {
        "threshold": float(threshold),
        "criterion": criterion,
        "alpha": float(alpha),
        "exclude": sorted(set(map(str, exclude))),
        "jobs": int(jobs),
        "predict": bool(predict),
        "library": None if library is None else Path(library),
        "formats": list(formats),
        "engine": engine,
        "command": command
        if command is not None
        else command_line(
            lab.config.name,
            data=Path(lab.root).parent,
            lab_config=lab.config.source if lab.config.source and not _shipped(lab.config.source) else None,
            out=Path(out),
            formats=formats,
            engine=engine,
            jobs=jobs,
            alpha=alpha,
            exclude=sorted(set(map(str, exclude))),
            predict=predict,
        ),
    }
    results = Results(lab=lab, folder=folder, parameters=parameters, published=list(published))
    if results.published:
        from cfosstats.report.published_report import write_set_tables

        write_set_tables(folder, results.published, lab.config, alpha)
    runner = Runner(results, Progress(progress))
    _objectivity(runner)
    _predictions(runner)
    _models(runner)
    _effects(runner)
    _write_inputs(runner)

    from cfosstats.report.content import build_sections
    from cfosstats.report.document import render_document

    with runner.progress.status("figures and document"):
        context = build_sections(results, runner)
        text = render_document(context)
    qmd = folder / "report.qmd"
    if not qmd.is_file() or qmd.read_text(encoding="utf-8") != text:
        write_text(qmd, text)
    _shipped_css(folder)
    outputs = _render(results, qmd, formats, engine, runner)
    return ReportResult(
        lab=lab.config.name,
        folder=folder,
        qmd=qmd,
        outputs=outputs,
        steps=results.steps,
        seconds=time.perf_counter() - started,
        results=results,
        published=results.published,
    )


def _shipped_css(folder: Path) -> None:
    """Copy the report's style sheet beside it (only when it changed)."""
    from cfosstats.core.resources import templates_dir

    css = folder / "report.css"
    source_css = templates_dir() / "report.css"
    if not css.is_file() or css.read_bytes() != source_css.read_bytes():
        shutil.copyfile(source_css, css)


def _shipped(path: Path) -> bool:
    """Whether a registry file is the shipped entry (no --lab-config needed to rerun)."""
    from cfosstats.datasets.registry import labs_dir

    try:
        return Path(path).resolve().parent == labs_dir().resolve()
    except OSError:
        return False


def environment_summary() -> dict[str, str]:
    """Environment variables that change where data is read from (for provenance)."""
    return {k: os.environ[k] for k in ("CFOSSTATS_DATA", "CFOSSTATS_CACHE") if k in os.environ}


__all__ = [
    "ReportResult",
    "Results",
    "StepRecord",
    "build_report",
    "canonical_json",
    "library_cards",
    "package_versions",
    "read_tables",
]
