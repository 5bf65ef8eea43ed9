"""The groups a lab's effects compare: its conditions, else its sampling strata.

:func:`resolve_grouping` reads them off the lab's metadata (see :mod:`cfosstats.analyses.validity`,
"Groups"); :class:`Grouping` names them, their column and their order (control first).
"""

from __future__ import annotations

from dataclasses import dataclass

from cfosstats.core.errors import NothingToAnalyse

__all__ = ["Grouping", "resolve_grouping", "stratum_key"]


@dataclass(frozen=True)
class Grouping:
    """What the groups are: ``conditions`` or ``strata``, their column and order."""

    name: str
    column: str
    order: tuple[str, ...]

    @property
    def control(self) -> str:
        return self.order[0]


def stratum_key(value: str) -> tuple:
    """Sort key of a stratum (or fold) name: numbers in numeric order, then other names.

    Examples
    --------
    >>> sorted(["10", "2", "b"], key=stratum_key)
    ['2', '10', 'b']
    """
    return (0, int(value), "") if str(value).isdigit() else (1, 0, str(value))


def resolve_grouping(lab) -> Grouping:
    """The groups to compare: the lab's conditions, else its sampling strata.

    Raises
    ------
    InputError
        When the metadata names neither conditions nor strata, or only one group.
    """
    metadata = lab.metadata
    if metadata["condition"].notna().any():
        present = set(metadata["condition"].dropna().astype(str))
        order = tuple(c for c in lab.config.conditions if c in present)
        grouping = Grouping("conditions", "condition", order)
    elif "stratum" in metadata and metadata["stratum"].notna().any():
        order = tuple(sorted(set(metadata["stratum"].dropna().astype(str)), key=stratum_key))
        grouping = Grouping("strata", "stratum", order)
    else:
        raise NothingToAnalyse(
            lab.root,
            "no groups to compare: the metadata names no conditions (image_mapping.xlsx) and no "
            f"strata ({lab.config.strata_file or f'groups_{lab.config.name}.csv'})",
        )
    if len(grouping.order) < 2:
        singular = {"conditions": "condition", "strata": "stratum"}[grouping.name]
        raise NothingToAnalyse(lab.root, f"only one {singular} ({grouping.order[0]}): nothing to compare")
    return grouping
