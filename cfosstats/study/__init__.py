"""The study of one lab: every analysis step of a report, run or loaded from the results cache.

* :mod:`~cfosstats.study.runner` -- :class:`~cfosstats.study.runner.Runner` (one cached step),
  :class:`~cfosstats.study.runner.Results` (every step's tables) and the step records;
* :mod:`~cfosstats.study.steps` -- the steps in order (:func:`~cfosstats.study.steps.run_steps`);
* :mod:`~cfosstats.study.predictions` -- the model library's predictions of the lab;
* :mod:`~cfosstats.study.inputs` -- the input files of each step and ``tables/inputs.csv``.

The document is made from these results by :mod:`cfosstats.report`.
"""
