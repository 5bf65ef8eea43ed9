"""The package's version, and the versions of the software behind a result, in one place below every
layer (the package root re-exports ``__version__``)."""

from __future__ import annotations

from collections.abc import Iterable

__version__ = "0.1.0"


def software_versions(names: Iterable[str] = ()) -> dict[str, str]:
    """Versions of Python, cfosstats and the named distributions (recorded with a result).

    Parameters
    ----------
    names : iterable of str
        Distribution names as installed (``numpy``, ``scikit-image``); one that is not installed
        is recorded as ``"not installed"``.

    Examples
    --------
    >>> versions = software_versions(["numpy", "no-such-distribution"])
    >>> list(versions), versions["cfosstats"], versions["no-such-distribution"]
    (['python', 'cfosstats', 'numpy', 'no-such-distribution'], '0.1.0', 'not installed')
    """
    import platform  # lazy: `python -m cfosstats` imports this module before the Ctrl-C handler is set
    from importlib import metadata  # lazy: 20 ms, and every command imports this module at start-up

    versions = {"python": platform.python_version(), "cfosstats": __version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
