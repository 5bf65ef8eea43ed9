"""A Dask worker plugin for the distributed tests: it kills the first worker that starts a task.

Importable by the test's worker processes (they run with the repository on ``PYTHONPATH``).
"""

from __future__ import annotations

import os

from distributed.diagnostics.plugin import WorkerPlugin


class ExitOnFirstTask(WorkerPlugin):
    """Kill the worker process (``os._exit``, as a crash or the OOM killer would) when it starts
    its first task; once per marker file, so the replacement worker runs normally."""

    name = "exit-on-first-task"

    def __init__(self, marker: str):
        self.marker = marker

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing":
            return
        try:
            # O_EXCL: of two workers starting at once, only one dies.
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)
