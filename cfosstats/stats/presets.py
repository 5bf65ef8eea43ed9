"""Named analysis settings: cfosstats's own defaults and the study's exact rules.

A :class:`Settings` holds every choice that changes a test result or a call. :data:`PRESETS`
is the registry, chosen by name (``--preset``): ``cfosstats`` (the default) and
``segebarth2020``, the rules of the study's ``compute_statistics*.ipynb`` notebooks, with which
the published statistics are reproduced exactly. :func:`preset_differences` is the table the
report's methods show.

Examples
--------
>>> study = get_preset("segebarth2020")
>>> study.mann_whitney_method, study.min_per_group, study.bonferroni_rule, study.omnibus_rule
('asymptotic', 4, 'groups', '<')
>>> get_preset("cfosstats").levels
('image', 'animal', 'mixed')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from cfosstats.core.errors import InputError
from cfosstats.stats.rules import BONFERRONI_RULES

__all__ = ["DEFAULT_PRESET", "PRESETS", "Settings", "get_preset", "preset_differences"]


@dataclass(frozen=True)
class Settings:
    """The choices behind the effect tests and the vote.

    Attributes
    ----------
    name : str
        Registry name.
    mann_whitney_method : str
        ``scipy.stats.mannwhitneyu`` method of the pairwise p (``auto``: exact for small untied
        samples; ``asymptotic``: normal approximation with continuity and tie correction, what
        the study's scipy < 1.7 always did).
    min_per_group : int
        Fewest values per group for an analysis to be tested.
    bonferroni_rule : str
        Key of :data:`cfosstats.stats.rules.BONFERRONI_RULES` (alpha divided by the number of
        pairs, or by the number of groups as the study did).
    omnibus_rule : str
        Key of :data:`cfosstats.stats.rules.OMNIBUS_RULES` (Kruskal-Wallis ``p <= alpha`` or
        the study's ``p < alpha``).
    levels : tuple of str
        Levels of analysis (``image``; ``animal`` and ``mixed`` where animals are named).
    members_vote : bool
        Whether ensemble members vote in the majority (the study: every analysis votes).
    """

    name: str
    mann_whitney_method: str
    min_per_group: int
    bonferroni_rule: str
    omnibus_rule: str
    levels: tuple[str, ...]
    members_vote: bool

    def record(self) -> dict:
        """The settings as a plain dict (for ``run.json``)."""
        return dataclasses.asdict(self)

    def bonferroni_divisor(self, k: int) -> int:
        """What alpha is divided by for the pairs of ``k`` groups, by :attr:`bonferroni_rule`.

        Readers of published statistics (lower layers) get the rule from here, not from stats.

        Examples
        --------
        >>> get_preset("segebarth2020").bonferroni_divisor(2), get_preset("cfosstats").bonferroni_divisor(4)
        (1, 6)
        """
        return BONFERRONI_RULES[self.bonferroni_rule](k)


CFOSSTATS = Settings(
    name="cfosstats",
    mann_whitney_method="auto",
    min_per_group=3,
    bonferroni_rule="pairs",
    omnibus_rule="<=",
    levels=("image", "animal", "mixed"),
    members_vote=False,
)
SEGEBARTH2020 = Settings(
    name="segebarth2020",
    mann_whitney_method="asymptotic",
    min_per_group=4,
    bonferroni_rule="groups",
    omnibus_rule="<",
    levels=("image",),
    members_vote=True,
)
#: Settings by name.
PRESETS: dict[str, Settings] = {s.name: s for s in (CFOSSTATS, SEGEBARTH2020)}
DEFAULT_PRESET = CFOSSTATS.name

#: Why cfosstats's default differs from the study's setting, per attribute.
_WHY = {
    "mann_whitney_method": (
        "scipy's exact p for small untied samples is correct where the normal approximation is "
        "not; for the study's group sizes (> 8) with ties both are the same asymptotic p"
    ),
    "min_per_group": (
        "3 values per group suffice for a rank test; the study skipped analyses with 3 or fewer"
    ),
    "bonferroni_rule": (
        "alpha / number of pairs controls the family-wise error for any number of groups; the "
        "study's alpha / number of groups is the same for its 2 and 3 groups"
    ),
    "omnibus_rule": "p <= alpha, as for the pairs; the study used p < alpha for Kruskal-Wallis only",
    "levels": (
        "images of one animal are not independent: animal-level tests and a mixed model are "
        "reported beside the study's image-level tests (only where the data names animals)"
    ),
    "members_vote": (
        "an ensemble member is already represented by its ensemble; the study let every analysis vote"
    ),
}


def get_preset(name: str) -> Settings:
    """The settings registered under ``name``.

    Raises
    ------
    InputError
        An unknown name (the message lists the known ones).

    Examples
    --------
    >>> get_preset("segebarth2020").min_per_group
    4
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(None, f"unknown preset '{name}': choose from {', '.join(PRESETS)}") from None


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def preset_differences(a: Settings = CFOSSTATS, b: Settings = SEGEBARTH2020) -> pd.DataFrame:
    """Where two presets differ, with the reason cfosstats chose its default.

    Returns
    -------
    DataFrame
        Columns ``setting``, ``<a.name>``, ``<b.name>``, ``why``; one row per differing attribute.

    Examples
    --------
    >>> table = preset_differences()
    >>> table["setting"].tolist()[:3]
    ['mann_whitney_method', 'min_per_group', 'bonferroni_rule']
    """
    rows = []
    for field in dataclasses.fields(Settings):
        if field.name == "name":
            continue
        va, vb = getattr(a, field.name), getattr(b, field.name)
        if va != vb:
            rows.append(
                {
                    "setting": field.name,
                    a.name: _shown(va),
                    b.name: _shown(vb),
                    "why": _WHY.get(field.name, ""),
                }
            )
    return pd.DataFrame(rows, columns=["setting", a.name, b.name, "why"])
