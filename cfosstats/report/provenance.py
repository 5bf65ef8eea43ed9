"""Provenance of a report: package and tool versions, the git commit, data-locating variables.

Examples
--------
>>> set(environment_summary()) <= {"CFOSSTATS_DATA", "CFOSSTATS_CACHE"}
True
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from cfosstats.core.version import software_versions
from cfosstats.report.render import tool_versions


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages behind the numbers."""
    names = [
        "numpy", "scipy", "pandas", "scikit-image", "SimpleITK", "statsmodels", "krippendorff",
        "plotnine", "matplotlib", "jinja2", "pypandoc-binary", "typst", "torch",
    ]  # fmt: skip
    versions = software_versions(names)
    versions.update(tool_versions())
    versions["platform"] = platform.platform()
    return versions


def git_commit() -> str:
    """The git commit of a source checkout of cfosstats (``+dirty`` when modified), or ``''``."""
    root = Path(__file__).resolve().parent.parent.parent  # the checkout above cfosstats/report/
    if not (root / ".git").exists():
        return ""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if head and dirty else "")


def environment_summary() -> dict[str, str]:
    """Environment variables that change where data is read from (for provenance)."""
    return {k: os.environ[k] for k in ("CFOSSTATS_DATA", "CFOSSTATS_CACHE") if k in os.environ}
