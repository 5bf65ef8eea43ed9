"""What the report says: the sections, in the order a reviewer reads them, built from the tables.

:func:`build_sections` assembles the document context. Each ``*_section`` function (one module
each under :mod:`cfosstats.report.sections`) turns the tables of :class:`~cfosstats.study.runner.Results`
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
    ``objectivity/fleiss_kappa``,
    ``groundtruth/annotators`` (STAPLE), ``objectivity/count_agreement``,
    ``objectivity/bland_altman``; the image panel reads the masks themselves.
Reliability
    ``models/model_f1``, ``objectivity/expert_range``, ``models/model_summary``,
    ``predictions/library_folds``, ``predictions/library_variants``, ``models/within_strategy``,
    ``models/fleiss_kappa``, ``ensemble_size/*``, ``effects/consistency``, ``effects/effects``
    (image level), ``effects/variation_per_effect``, ``effects/variation_between_strategies``,
    ``effects/variation_per_model``.
Validity
    ``effects/quantification``, ``effects/effects`` (all levels), ``effects/outliers``.
Methods and provenance
    ``tables/manifest.json``, ``tables/inputs.csv``, the lab registry entry, model cards or
    ``simulation.json``, package versions, parameters, the command line.
"""

from __future__ import annotations

from cfosstats.report.document import Text
from cfosstats.report.figure_cache import FigureMaker
from cfosstats.report.published_report import published_context
from cfosstats.report.sections.methods import methods_section, read_manifest
from cfosstats.report.sections.objectivity import objectivity_section
from cfosstats.report.sections.reliability import reliability_section
from cfosstats.report.sections.validity import validity_section
from cfosstats.report.sections.verdict import verdict_section

__all__ = [
    "FigureMaker",
    "build_sections",
    "methods_section",
    "objectivity_section",
    "reliability_section",
    "validity_section",
    "verdict_section",
]


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
        verdict, published, methods = published_context(results.published, results.lab.config, figures)
        sections[0].blocks[:0] = [*verdict, Text("**From the images given with --data:**")]
        sections[-1:-1] = published
        sections[-1].add(*methods)
    figures.prune()
    manifest = read_manifest(results.folder)
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
