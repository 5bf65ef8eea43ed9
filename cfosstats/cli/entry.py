"""The ``cfosstats`` console entry point: Ctrl-C ends every command cleanly.

The handler is installed before the command line's (slow) imports, so an interrupt at any
moment prints ``interrupted`` and exits with code 130: no traceback, worker processes terminated
(:mod:`cfosstats.core.parallel`), temporary folders removed and earlier outputs left as they were
(:mod:`cfosstats.core.atomic`). An interrupt that arrives after the command has finished, while the
interpreter shuts down, is ignored: the outputs are complete and the exit code stays the command's.
"""

from __future__ import annotations

import os
import signal
import sys

_INTERRUPTED: list[bool] = []


def _interrupted(signum, frame) -> None:
    if not _INTERRUPTED:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    _INTERRUPTED.append(True)
    raise KeyboardInterrupt


def main() -> None:
    """Run the command line with the interrupt handler installed."""
    signal.signal(signal.SIGINT, _interrupted)
    try:
        from cfosstats.cli.app import app  # lazy: imported once the Ctrl-C handler is installed

        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        # An interrupt inside a C extension's import surfaces as another error (ImportError):
        # after Ctrl-C it is the interrupt, not a crash.
        if _INTERRUPTED:
            sys.exit(130)
        raise
    finally:
        # The command has finished (its outputs are complete and its exit code decided): a Ctrl-C
        # during interpreter shutdown must not turn that into an uncaught KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if _INTERRUPTED:
            # Every open write was cleaned up while the interrupt unwound. Interpreter shutdown
            # after an interrupt inside a library's import can still end the process by SIGINT
            # (exit -2, about 1 run in 12 in the interrupt test): exit 130 now instead.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
