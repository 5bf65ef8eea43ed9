"""Mapping pure per-image functions over a lab: inline, in worker processes, or on a Dask cluster.

Per-image work (measuring a mask, matching two masks) is a top-level function of paths and
plain values, so tasks pickle cheaply and run anywhere that sees the same files. An
:class:`~cfosstats.core.errors.InputError` raised in a worker travels back and is raised again
in the caller.

Where the work runs:

local processes
    The default: a local process pool of ``jobs`` workers (inline for ``jobs=1``). Needs nothing
    beyond the standard library.
a Dask cluster
    A Dask distributed cluster (the optional extra ``cfosstats[distributed]``): the scheduler at
    an address (``tcp://host:8786``), or ``local`` / ``local:N`` for a cluster of ``N`` (default
    ``jobs``) single-threaded worker processes started on this machine. Workers need the same
    cfosstats and the same files (a shared filesystem, as on an HPC cluster). A worker that dies
    is replaced and its tasks are run again by Dask. Small tasks go in batches of a few (Dask's
    own cost per task is about 10 ms of CPU).

Commands choose with :func:`use_scheduler`; results come back in task order either way, so the
tables written are byte-identical whatever the engine and the number of workers.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from cfosstats.core.errors import InputError

__all__ = ["DISTRIBUTED_MISSING", "map_tasks", "progress_bar", "start_workers", "use_scheduler"]

DISTRIBUTED_MISSING = (
    "--scheduler needs Dask distributed, which is not installed: pip install 'cfosstats[distributed]'"
)

# The Dask client of the running command (None: the local process pool). A context variable, so
# the per-image steps deep inside a command need no scheduler argument of their own.
_CLIENT: contextvars.ContextVar[Any] = contextvars.ContextVar("cfosstats_dask_client", default=None)


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
    result = function(*arguments)
    _return_freed_memory()
    return result


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _return_freed_memory() -> None:
    """Give the pages a pool worker's task freed back to the system (glibc keeps them).

    A worker's heap otherwise holds on to its largest tasks' arrays: measured on a simulated
    1008-image study, a worker sat 16 MB above its start after 100 images (0 MB with this), at
    about 3% of the time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# -- engines: each maps `function` over `tasks` and yields (results in task order, a stop hook) --


class _CommandPool:
    """The local process pool of one command: forked at its first per-image step, reused by the
    later ones. A pool forked later, after the measurements, would copy the parent's tables into
    every worker (the process tree's memory would grow with the study)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool: ProcessPoolExecutor | None = None

    def get(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=_ignore_interrupts)
        return self.pool

    def start(self) -> None:
        """Fork every worker now (the first submitted task forks them all: fork start method)."""
        self.get().submit(int).result()

    def stop(self) -> None:
        if self.pool is not None:
            _stop(self.pool)
            self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


_POOL: contextvars.ContextVar[_CommandPool | None] = contextvars.ContextVar("cfosstats_pool", default=None)


def _process_results(function, tasks, jobs):
    """The local engine: inline for one job or one task, else a forked process pool (the
    command's, when :func:`use_scheduler` set one up with as many workers)."""
    if jobs <= 1 or len(tasks) <= 1:
        return (function(*task) for task in tasks), None
    shared = _POOL.get()
    if shared is not None and shared.jobs == jobs:
        pool = shared.get()
    else:
        shared = None
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), initializer=_ignore_interrupts)
    # Executor.map submits every task now, so the workers are forked before the progress bar
    # starts its refresh thread.
    results = pool.map(_call, [(function, task) for task in tasks])

    def finish(interrupted: bool) -> None:
        if interrupted and shared is not None:
            shared.stop()  # within seconds, however long the running tasks would take
        elif interrupted:
            _stop(pool)
        elif shared is not None:
            results.close()  # an early stop (an input error): the tasks not yet started are dropped
        else:
            # When the caller stops early (an input error), drop the work not yet started.
            pool.shutdown(wait=True, cancel_futures=True)

    return results, finish


def _call_batch(function: Callable, tasks: Sequence[tuple]) -> list:
    """`function(*task)` for each of a few tasks: one Dask task."""
    return [function(*task) for task in tasks]


#: Dask spends about 10 ms of CPU on each task (client, scheduler and worker together; measured
#: with 300 trivial tasks on 2 workers), as much as a small per-image step. Tasks are submitted in
#: batches of up to this many, while every worker thread still gets at least
#: :data:`_BATCHES_PER_THREAD` batches to balance the load.
_MAX_BATCH = 8
_BATCHES_PER_THREAD = 16


def _batch_size(n_tasks: int, threads: int) -> int:
    """Tasks per Dask task for `n_tasks` tasks on a cluster of `threads` worker threads.

    Examples
    --------
    >>> _batch_size(150, 2), _batch_size(1000, 2), _batch_size(150, 64), _batch_size(3, 0)
    (4, 8, 1, 3)
    """
    return max(1, min(_MAX_BATCH, n_tasks // max(1, threads * _BATCHES_PER_THREAD)))


def _dask_results(client, function, tasks):
    """The Dask engine: one future per batch of tasks; results yielded in task order as they arrive."""
    from distributed import as_completed  # lazy: only with --scheduler

    size = _batch_size(len(tasks), sum(client.nthreads().values()))
    batches = [tasks[i : i + size] for i in range(0, len(tasks), size)]
    # A fresh key per run (pure=False would do that too): two runs over the same files must not
    # share results the cluster still holds. The key's prefix is the function's name, so the
    # dashboard and the task stream show what runs.
    prefix = f"{getattr(function, '__name__', type(function).__name__)}-{uuid.uuid4().hex}"
    futures = [
        client.submit(_call_batch, function, batch, key=f"{prefix}-{i}") for i, batch in enumerate(batches)
    ]
    index = {future.key: i for i, future in enumerate(futures)}

    def ordered() -> Iterator[Any]:
        done: dict[int, list] = {}
        next_index = 0
        for future in as_completed(futures, loop=client.loop):
            # result() raises the task's own exception (an InputError names its file).
            done[index[future.key]] = future.result()
            futures[index[future.key]] = None  # free it on the cluster as soon as it is read
            while next_index in done:
                yield from done.pop(next_index)
                next_index += 1

    def finish(interrupted: bool) -> None:
        client.cancel([f for f in futures if f is not None])

    return ordered(), finish


def start_workers(jobs: int) -> None:
    """Fork the running command's local pool now, if it has one of `jobs` > 1 workers.

    A step calls this before it builds tables that grow with the study (cache keys, plans):
    workers forked later would each hold a copy of them, so the process tree's memory would
    grow with the study. Nothing happens on a Dask cluster or with one job.

    Examples
    --------
    >>> start_workers(1)  # one job: nothing to fork
    """
    shared = _POOL.get()
    if jobs > 1 and _CLIENT.get() is None and shared is not None and shared.jobs == jobs:
        shared.start()


def map_tasks(
    function: Callable,
    tasks: Sequence[tuple],
    jobs: int,
    progress: bool,
    description: str,
) -> Iterator[Any]:
    """Apply `function(*task)` to every task, yielding results in task order.

    The engine is the running command's (:func:`use_scheduler`): a Dask cluster if one is set,
    else the local process pool.

    Parameters
    ----------
    function : callable
        A top-level (picklable) function.
    tasks : sequence of tuple
        Positional arguments of each call.
    jobs : int
        Local worker processes; 1 (or a single task) runs inline. Ignored on a Dask cluster,
        which has its own workers.
    progress : bool
        Show a rich progress bar.
    description : str
        The progress bar's label.

    Examples
    --------
    >>> list(map_tasks(pow, [(2, 3), (3, 2)], jobs=1, progress=False, description="powers"))
    [8, 9]
    """
    client = _CLIENT.get()
    if client is not None and tasks:
        results, finish = _dask_results(client, function, tasks)
    else:
        results, finish = _process_results(function, tasks, jobs)
    tracker = None
    interrupted = False
    try:
        if progress:
            tracker = progress_bar()
            tracker.start()
            task_id = tracker.add_task(description, total=len(tasks))
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
        if finish is not None:
            finish(interrupted)


# -- choosing the engine ---------------------------------------------------------------------------


def _local_cluster(spec: str, jobs: int):
    """``local`` or ``local:N``: a cluster of single-threaded worker processes on this machine."""
    from distributed import LocalCluster  # lazy: only with --scheduler

    _, _, count = spec.partition(":")
    if count and not (count.isdigit() and int(count) >= 1):
        raise InputError(None, f"--scheduler local:N needs a whole number of workers N >= 1, got {spec!r}")
    workers = int(count) if count else max(1, jobs)
    # processes=True: the per-image work holds the GIL (numpy, scipy.ndimage), threads would not help.
    return LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    )


@contextlib.contextmanager
def use_scheduler(address: str | None, jobs: int = 1, timeout: float = 20.0) -> Iterator[Any]:
    """Run the per-image work inside the block on a Dask cluster (or locally for ``None``).

    Parameters
    ----------
    address : str or None
        A Dask scheduler address (``tcp://host:8786``, ``host:8786``), ``local`` / ``local:N``
        for a local cluster of ``N`` worker processes (default ``jobs``), or None for the local
        process pool (nothing to install): one pool of ``jobs`` workers for the whole block,
        forked when first used.
    jobs : int
        Workers of the local pool, or of a ``local`` cluster without ``:N``.
    timeout : float
        Seconds to wait for the scheduler before giving up with an :class:`InputError`.

    Yields
    ------
    distributed.Client or None
        The connected client (None without a scheduler).

    Examples
    --------
    >>> with use_scheduler(None) as client:
    ...     list(map_tasks(pow, [(2, 3)], jobs=1, progress=False, description="powers"))
    [8]
    """
    if not address:
        shared = _CommandPool(jobs)
        token = _POOL.set(shared)
        try:
            yield None
        finally:
            _POOL.reset(token)
            shared.close()
        return
    try:
        import distributed  # lazy: the optional extra
    except ImportError:
        raise InputError(None, DISTRIBUTED_MISSING) from None
    with contextlib.ExitStack() as stack:
        if address == "local" or address.startswith("local:"):
            target = stack.enter_context(_local_cluster(address, jobs))
        else:
            target = address
        try:
            client = stack.enter_context(distributed.Client(target, timeout=timeout, set_as_default=False))
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(None, f"cannot reach the Dask scheduler at {address}: {exc}") from None
        token = _CLIENT.set(client)
        try:
            yield client
        finally:
            _CLIENT.reset(token)
