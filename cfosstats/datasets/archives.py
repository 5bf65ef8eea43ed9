"""The public archives that hold the study's lab folders, and choosing one for a fetch.

:data:`SOURCES` is the registry (``github``, ``dryad``); :func:`resolve_source` picks the source of
a :func:`cfosstats.datasets.fetch.fetch` call, or makes an ad-hoc one for a URL or local archive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from cfosstats.core.errors import InputError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LAB = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Source:
    """One public archive holding lab folders.

    Attributes
    ----------
    name : str
        Registry key; also the folder name in the cache.
    description : str
        What the archive is, in one line.
    labs : tuple of str
        Labs (``wue1``) the archive provides.
    url : str or None
        Direct download URL; None when the archive must be downloaded by hand (see `manual`).
    sha256 : str or None
        Published SHA-256 of the archive; None when none is known (see
        :mod:`cfosstats.datasets.fetch`).
    format : str
        ``"zip"`` or ``"tar.gz"`` (informative: the archive type is read from its content).
    prefix : str or None
        Folder in the archive that holds the ``lab-<id>/`` folders; None: found by looking for
        ``lab-<id>/`` (the shallowest place it occurs).
    page : str or None
        Landing page of the data (for citation).
    manual : str
        What to do when there is no `url`.
    """

    name: str
    description: str
    labs: tuple[str, ...]
    url: str | None = None
    sha256: str | None = None
    format: str = "zip"
    prefix: str | None = None
    page: str | None = None
    manual: str = ""


SOURCES: dict[str, Source] = {
    "github": Source(
        name="github",
        description="train_data/ of github.com/matjesg/bioimage_analysis (Apache-2.0)",
        labs=("wue1", "mue", "wue2"),
        url="https://github.com/matjesg/bioimage_analysis/archive/refs/heads/master.zip",
        sha256=None,  # branch archives are built on demand: no stable digest to publish
        format="zip",
        prefix="bioimage_analysis-master/train_data/",
        page="https://github.com/matjesg/bioimage_analysis",
    ),
    "dryad": Source(
        name="dryad",
        description="full study data bioimage_data.zip, Dryad doi:10.5061/dryad.4b8gtht9d",
        labs=("wue1", "mue", "wue2", "inns1", "inns2"),  # the labs the paper analyses
        url=None,  # no stable direct file URL is known
        sha256=None,
        format="zip",
        prefix=None,
        page="https://doi.org/10.5061/dryad.4b8gtht9d",
        manual=(
            "download bioimage_data.zip by hand from https://doi.org/10.5061/dryad.4b8gtht9d "
            "and pass it with --archive PATH"
        ),
    ),
}


def lab_name(lab: str) -> str:
    """The lab id without its ``lab-`` prefix; `InputError` for a name unfit for a folder."""
    name = lab.removeprefix("lab-")
    if not _LAB.match(name):
        raise InputError(None, f"invalid lab name '{lab}' (letters, digits, '_' and '-' only)")
    return name


def normalise_sha256(sha256: str | None) -> str | None:
    """``--sha256`` in lower case; `InputError` unless it is 64 hexadecimal digits."""
    if sha256 is None:
        return None
    digest = sha256.strip().lower()
    if not _SHA256.match(digest):
        raise InputError(None, f"--sha256 must be 64 hexadecimal digits, got '{sha256}'")
    return digest


def resolve_source(lab: str, source: str | None, url: str | None, sha256: str | None, local: bool) -> Source:
    """The named source, an ad-hoc one (``custom-<lab>``) for a URL or local archive, or the default;
    with the given `url` and `sha256` replacing the registry's."""
    if source is not None:
        base = _named_source(source, lab)
    elif url is not None or local:
        base = Source(name=f"custom-{lab}", description="archive given by the user", labs=(lab,))
    else:
        base = _default_source(lab)
    return replace(base, url=url or base.url, sha256=sha256 or base.sha256)


def _named_source(source: str, lab: str) -> Source:
    if source not in SOURCES:
        raise InputError(None, f"unknown source '{source}': known sources are {', '.join(SOURCES)}")
    found = SOURCES[source]
    if lab not in found.labs:
        raise InputError(
            None, f"source '{source}' does not provide lab '{lab}' (it has {', '.join(found.labs)})"
        )
    return found


def _default_source(lab: str) -> Source:
    candidates = [s for s in SOURCES.values() if lab in s.labs]
    if not candidates:
        raise InputError(None, f"no public source provides lab '{lab}'; pass --url URL or --archive PATH")
    return next((s for s in candidates if s.url), candidates[0])
