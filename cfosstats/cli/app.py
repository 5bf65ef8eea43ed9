"""The `cfosstats` command line: the Typer app, built from one module of commands per area.

Every command is a thin call into the library: :mod:`~cfosstats.cli.data` (labs, inspect, fetch,
simulate), :mod:`~cfosstats.cli.objectivity` (groundtruth, agreement),
:mod:`~cfosstats.cli.effects`, :mod:`~cfosstats.cli.report` and :mod:`~cfosstats.cli.segment`
(train, predict, validate, models). Bad input ends a command with one line on stderr naming the file and
what is wrong, exit code 2, and no traceback (:func:`~cfosstats.cli.common.reports_input_errors`).
The console script is :func:`cfosstats.cli.entry.main`, which also handles Ctrl-C.
"""

from __future__ import annotations

import typer

from cfosstats.cli import data, effects, objectivity, report, segment
from cfosstats.cli.common import reports_input_errors

app = typer.Typer(
    name="cfosstats",
    help="Is a treatment effect measured by deep-learning segmentation objective, reliable and valid?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMANDS = {  # in the order `cfosstats --help` lists them
    "labs": data.labs,
    "inspect": data.inspect,
    "fetch": data.fetch,
    "simulate": data.simulate,
    "groundtruth": objectivity.groundtruth,
    "agreement": objectivity.agreement,
    "effects": effects.effects,
    "report": report.report,
    "train": segment.train,
    "predict": segment.predict,
    "validate": segment.validate,
    "models": segment.models,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(reports_input_errors(_command))
