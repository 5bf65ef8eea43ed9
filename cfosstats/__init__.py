"""cfosstats: is a treatment effect measured by deep-learning segmentation objective, reliable and valid?

Implements the analyses of Segebarth et al., eLife 2020 ("On the objectivity, reliability, and
validity of deep learning enabled bioimage analyses") for one lab at a time.

The public API (each name is imported on first use, so ``import cfosstats`` stays instant):

Data
    :func:`load_lab`, :func:`load_lab_config`, :func:`simulate_study`, :func:`read_quantification`
Objectivity (annotators, estimated ground truth, agreement)
    :func:`estimate_groundtruth`, :func:`run_agreement`, :func:`staple`, :func:`label_objects`,
    :func:`match_labels`
Reliability and validity (effects of every label source, their reproducibility)
    :func:`run_effects`, :func:`analyse_table`, :func:`group_tests`, :func:`reproducibility_table`
Models (train, predict, the library)
    :func:`train_lab`, :func:`predict_lab`, :func:`load_model`, :func:`list_models`
The report
    :func:`build_report`

The layers behind them are described in ``docs/ARCHITECTURE.md``.

Examples
--------
>>> import cfosstats
>>> lab = cfosstats.load_lab("mue", data="../shared/data/train_data")
>>> lab.name, len(lab.image_ids), lab.annotators
('mue', 5, ['expert_1', 'expert_3', 'expert_4', 'expert_5'])
"""

from __future__ import annotations

from importlib import import_module

from cfosstats.core.version import __version__

#: public name -> the module that defines it
_API = {
    "load_lab": "cfosstats.simulate.demo",  # makes the demo lab's data on first use
    "load_lab_config": "cfosstats.datasets.registry",
    "simulate_study": "cfosstats.simulate.study",
    "read_quantification": "cfosstats.datasets.tables",
    "estimate_groundtruth": "cfosstats.analyses.objectivity",
    "run_agreement": "cfosstats.analyses.objectivity",
    "staple": "cfosstats.objects.groundtruth",
    "label_objects": "cfosstats.objects.label",
    "match_labels": "cfosstats.objects.matching",
    "run_effects": "cfosstats.analyses.validity",
    "analyse_table": "cfosstats.analyses.reviewer",
    "group_tests": "cfosstats.stats.effects",
    "reproducibility_table": "cfosstats.stats.reliability",
    "train_lab": "cfosstats.segment.pipeline",
    "predict_lab": "cfosstats.segment.pipeline",
    "load_model": "cfosstats.segment.library",
    "list_models": "cfosstats.segment.library",
    "build_report": "cfosstats.report.build",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # lazy: the API pulls in pandas, scipy, torch and plotnine, which `import cfosstats` must not
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cfosstats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
