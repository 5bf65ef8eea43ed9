"""Errors that name the offending file: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: a file that is missing, unreadable, or inconsistent with the rest of a lab.

    Parameters
    ----------
    path : str or Path or None
        The file or folder at fault (named first in the message).
    message : str
        What is wrong, in one line.

    Examples
    --------
    >>> str(InputError("lab-x/images/1.png", "cannot be read as an image"))
    'lab-x/images/1.png: cannot be read as an image'
    """

    def __init__(self, path: str | Path | None, message: str):
        self.path = None if path is None else Path(path)
        self.message = message
        super().__init__(f"{path}: {message}" if path is not None else message)

    def __reduce__(self):
        # Errors raised in worker processes travel back to the parent by pickling.
        return (type(self), (self.path, self.message))


class NothingToAnalyse(InputError):
    """The data lack what an analysis needs (no conditions, one group): a property, not an error.

    A report skips the analysis and says why; a command that exists for that analysis ends with
    the message and exit code 2, like any :class:`InputError`.
    """


class InputWarning(UserWarning):
    """A problem with the input that analysis can go on without (recorded, never silent)."""
