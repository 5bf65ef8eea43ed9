"""What the commands share: the consoles, the one-line error contract, checks and reading a lab.

Commands raise `InputError` for bad input; :func:`reports_input_errors` (applied to every command
by :mod:`cfosstats.cli.app`) prints it as one line on stderr and exits with code 2, no traceback.

Library modules that pull in numpy, pandas and the rest are imported inside the functions that
need them (``# lazy``): ``cfosstats --help`` and a mistyped option stay fast.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer
from rich.console import Console

from cfosstats.core.errors import InputError
from cfosstats.core.outputs import check_output, lab_inputs

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str) -> None:
    """Print one line to stderr and exit with code 2."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code=2)


def reports_input_errors(command):
    """Turn `InputError` (and a missing file) into one stderr line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"{exc.filename}: file not found")

    return wrapper


def echo(line: str) -> None:
    """Print one line of a command's summary to stdout, as it is (no markup, no wrapping)."""
    console.print(line, markup=False, soft_wrap=True)


def check_alpha(alpha: float) -> None:
    """``--alpha`` is a significance level, between 0 and 1."""
    if not 0 < alpha < 1:
        raise InputError(None, f"--alpha must be between 0 and 1, got {alpha}")


def check_jobs(jobs: int) -> None:
    """``--jobs`` is at least 1."""
    if jobs < 1:
        raise InputError(None, f"--jobs must be at least 1, got {jobs}")


def on_scheduler(scheduler: str | None, jobs: int):
    """The engine of ``--scheduler`` for the command's per-image work (a context manager)."""
    from cfosstats.core.parallel import use_scheduler  # lazy: only the standard library, but not at start-up

    return use_scheduler(scheduler, jobs)


def check_out(out: Path, found=None, *extra: Path | None) -> None:
    """The output contract (:func:`cfosstats.core.outputs.check_output`) before any work."""
    inputs = (lab_inputs(found) if found is not None else []) + [p for p in extra if p is not None]
    check_output(out, inputs)


def read_lab(lab, data: Path | None, lab_config: Path | None):
    """The lab of ``--lab``/``--data``/``--lab-config``; the demo lab's data is simulated on first use.

    Parameters
    ----------
    lab : str or LabConfig
        Registry name, or its already loaded entry.
    """
    from cfosstats.simulate.demo import load_lab  # lazy: pandas, the readers and the simulator

    return load_lab(lab, data=data, config_path=lab_config)
