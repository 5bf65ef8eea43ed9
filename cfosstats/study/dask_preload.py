"""Imported by a Dask worker when it starts: ``dask worker ... --preload cfosstats.study.dask_preload``.

A local pool's workers are forked from the command, so they start with its code imported. A Dask
worker imports the code of a task at its first task instead: pandas, scipy and the per-image
code when the first image is measured, and the effect tests with statsmodels' mixed model when
the first label source is tested, on every worker, in the middle of a command. With this preload
a long-running cluster pays for the imports (1.9 s in a fresh process) once, when it starts.
Measured on a 108-image simulated study, 2 workers: the first effect-test result came 2.7 s
after submission on workers that preloaded only the per-image code, 0.1-0.3 s on warm workers.

The model code (:mod:`cfosstats.segment`, with torch) is left out: torch adds 187 MB to every
worker and 1.6-1.8 s to its start, and only ``predict`` needs it.

Examples
--------
>>> from cfosstats.study import dask_preload
>>> "analyse_unit" in {f.__name__ for f in dask_preload.TASK_FUNCTIONS}
True
"""

from __future__ import annotations

# cfosstats.stats.mixed imports the mixed model lazily (the commands without effect tests do not
# need it): a worker imports it here, before its first task.
import statsmodels.regression.mixed_linear_model  # noqa: F401

from cfosstats.analyses.effect_tables import analyse_unit
from cfosstats.analyses.measure import measure_image
from cfosstats.analyses.models import model_f1_of_image, strategy_agreement_of_image
from cfosstats.analyses.objectivity import agreement_of_image, estimate_image
from cfosstats.simulate.study import _simulate_and_write

__all__ = ["TASK_FUNCTIONS"]

#: The functions the commands map over images or label sources without the model code: every
#: one of them is ready on a worker that ran this preload.
TASK_FUNCTIONS = (
    measure_image,
    analyse_unit,
    estimate_image,
    agreement_of_image,
    model_f1_of_image,
    strategy_agreement_of_image,
    _simulate_and_write,
)
