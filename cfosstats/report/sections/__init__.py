"""The report's sections, one module each, in the order a reviewer reads them.

:mod:`~.verdict` (with the cautions of :mod:`~.cautions`), :mod:`~.objectivity` (with the image
panel of :mod:`~.panel`), :mod:`~.reliability`, :mod:`~.validity` and :mod:`~.methods`; each
``*_section`` function turns the tables of :class:`~cfosstats.study.runner.Results` into a
:class:`~cfosstats.report.document.Section` (assembled by :func:`cfosstats.report.content.build_sections`).
"""
