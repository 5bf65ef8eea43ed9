"""Mapping pure per-image functions over a lab: inline, or in worker processes, with progress.

Per-image work (measuring a mask, matching two masks) is a top-level function of paths and
plain values, so tasks pickle cheaply. An :class:`~cfosstats.core.errors.InputError` raised in a
worker travels back and is raised again in the caller.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group; only the parent handles it
    (it stops the workers), so a worker never prints a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool at once: cancel what has not started and terminate the running workers."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def progress_bar(*columns, enabled: bool = True, transient: bool = True):
    """A rich progress bar on stderr, shown only on a terminal (a pipe or a log gets no bar and
    no stray blank line before an error message)."""
    from rich.console import Console  # lazy: rich costs start-up time, needed only with a bar
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(
        *columns, console=console, transient=transient, disable=not (enabled and console.is_terminal)
    )


def _call(function_and_arguments: tuple[Callable, tuple]) -> Any:
    function, arguments = function_and_arguments
    return function(*arguments)


def map_tasks(
    function: Callable,
    tasks: Sequence[tuple],
    jobs: int,
    progress: bool,
    description: str,
    while_waiting: Callable[[], object] | None = None,
) -> Iterator[Any]:
    """Apply `function(*task)` to every task, yielding results in task order.

    Parameters
    ----------
    function : callable
        A top-level (picklable) function.
    tasks : sequence of tuple
        Positional arguments of each call.
    jobs : int
        Worker processes; 1 (or a single task) runs inline.
    progress : bool
        Show a rich progress bar.
    description : str
        The progress bar's label.
    while_waiting : callable, optional
        Called once in this process after the workers have their tasks (they exist by then,
        so nothing forks while it runs): a slow import can overlap the work.

    Examples
    --------
    >>> list(map_tasks(pow, [(2, 3), (3, 2)], jobs=1, progress=False, description="powers"))
    [8, 9]
    """
    pool = None
    if jobs > 1 and len(tasks) > 1:
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_ignore_interrupts)
        # Executor.map submits every task now, so the workers are forked before the progress
        # bar starts its refresh thread.
        results: Iterable[Any] = pool.map(_call, [(function, task) for task in tasks])
    else:
        results = (function(*task) for task in tasks)
    tracker = None
    interrupted = False
    try:
        if progress:
            tracker = progress_bar()
            tracker.start()
            task_id = tracker.add_task(description, total=len(tasks))
        if pool is not None and while_waiting is not None:
            while_waiting()
        for result in results:
            if tracker is not None:
                tracker.advance(task_id)
            yield result
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
        raise
    finally:
        if tracker is not None:
            tracker.stop()
        if pool is not None and interrupted:
            _stop(pool)  # within seconds, however long the running tasks would take
        elif pool is not None:
            # When the caller stops early (an input error), drop the work not yet started.
            pool.shutdown(wait=True, cancel_futures=True)
