"""What the benchmarks share: the source tree of a baseline commit, to run beside this checkout."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def export_tree(commit: str, folder: Path) -> Path:
    """Unpack the files of `commit` into `folder` (git archive: nothing is written to the repository)."""
    archive = folder / "tree.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit], check=True)
    tree = folder / "baseline"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree
