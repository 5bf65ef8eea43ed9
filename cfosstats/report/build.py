"""``build_report``: from a lab to ``report.qmd``, ``report.html`` and ``report.pdf``.

The analysis steps (:func:`cfosstats.study.steps.run_steps`), each cached by the checksums of its
inputs (:mod:`cfosstats.core.cache`) under ``<out>/<lab>/tables/<step>/``:

``objectivity``
    :func:`cfosstats.analyses.objectivity.run_agreement` (annotator agreement, counts, Bland-Altman).
``groundtruth``
    :func:`cfosstats.analyses.objectivity.estimate_groundtruth` with STAPLE: per-annotator sensitivity
    and specificity, and the STAPLE masks used where no ``est_GT`` is published.
``predictions``
    Where the model library holds models of the lab (``data/models/<lab>/``): every ensemble
    and every single model that is no ensemble's member predicts every image
    (:func:`cfosstats.segment.pipeline.predict_lab`: masks and uncertainty maps;
    :mod:`cfosstats.study.predictions`). The predictions join the lab's label sources.
``models``
    Each predicted label set's object F1 against the estimated ground truth per annotated
    image, placed in the annotators' range (:mod:`cfosstats.analyses.models`).
``ensemble_size``
    Where the library holds three or more consensus fold models sharing held-out test images:
    ensembles of 1..n of them drawn repeatedly, the SD of their F1 fitted by a / sqrt(i)
    (:mod:`cfosstats.study.ensemble_size`).
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

import json
import shlex
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from cfosstats.core.atomic import write_text
from cfosstats.core.cache import cache_key
from cfosstats.core.hashing import sha256_file
from cfosstats.core.resources import templates_dir
from cfosstats.datasets.registry import labs_dir
from cfosstats.report.content import build_sections
from cfosstats.report.document import render_document
from cfosstats.report.output import ReportResult, write_document
from cfosstats.report.published_report import write_set_tables
from cfosstats.report.render import ENGINES, FORMATS, RenderError, check_formats, render
from cfosstats.study.runner import Results, Runner, StepRecord
from cfosstats.study.steps import run_steps

RENDER_VERSION = 1


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

    Examples
    --------
    >>> from cfosstats.datasets import load_lab  # doctest: +SKIP
    >>> result = build_report(load_lab("demo"), "reports", formats="html")  # doctest: +SKIP
    >>> result.outputs["html"]  # doctest: +SKIP
    PosixPath('reports/demo/report.html')
    """
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
        write_set_tables(folder, results.published, lab.config, alpha)
    runner = run_steps(results, progress)
    with runner.progress.status("figures and document"):
        context = build_sections(results, runner)
        text = render_document(context)
    qmd = write_document(folder, text)
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


def command_line(
    lab: str,
    data: Path | None = None,
    lab_config: Path | None = None,
    out: Path = Path("reports"),
    formats: str | Sequence[str] = "html,pdf",
    engine: str = "pandoc",
    jobs: int = 2,
    alpha: float = 0.05,
    exclude: Sequence[str] = (),
    predict: bool = True,
) -> str:
    """The ``cfosstats report`` command line that reproduces a report (recorded in it).

    Examples
    --------
    >>> command_line("wue1", data=Path("train_data"), out=Path("reports"))
    'cfosstats report --lab wue1 --data train_data --out reports --format html,pdf --engine pandoc'
    """
    if not isinstance(formats, str):
        formats = ",".join(formats)
    parts = ["cfosstats", "report", "--lab", lab]
    if data is not None:
        parts += ["--data", str(data)]
    if lab_config is not None:
        parts += ["--lab-config", str(lab_config)]
    parts += ["--out", str(out), "--format", formats.replace(" ", ""), "--engine", engine]
    if jobs != 2:
        parts += ["--jobs", str(jobs)]
    if alpha != 0.05:
        parts += ["--alpha", f"{alpha:g}"]
    for image_id in exclude:
        parts += ["--exclude", str(image_id)]
    if not predict:
        parts.append("--no-predict")
    return shlex.join(parts)


def _shipped(path: Path) -> bool:
    """Whether a registry file is the shipped entry (no --lab-config needed to rerun)."""
    try:
        return Path(path).resolve().parent == labs_dir().resolve()
    except OSError:
        return False


def _render(
    results: Results, qmd: Path, formats: Sequence[str], engine: str, runner: Runner
) -> dict[str, Path]:
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


__all__ = ["ReportResult", "build_report", "command_line"]
