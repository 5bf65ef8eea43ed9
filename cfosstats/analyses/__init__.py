"""Analyses: objectivity (annotators), validity and reliability (effects of every label source).

:mod:`~.objectivity` (ground truth, agreement), :mod:`~.validity` (the effects run, built from
:mod:`~.grouping`, :mod:`~.plan`, :mod:`~.measure`, :mod:`~.quantification` and
:mod:`~.effect_tables`), :mod:`~.reviewer` and :mod:`~.published` (the same from published
tables), :mod:`~.models` (model selection).
"""
