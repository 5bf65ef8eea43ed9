"""The exact one-to-one assignment of overlapping objects, and its rules (:data:`ASSIGNMENTS`).

A rule turns IoU and true-positive status into integer weights that encode its lexicographic
objective exactly; the bipartite graph of overlapping pairs is split into connected components
and each is solved exactly (a pure-Python Hungarian on Python ints for small components and
where float64 sums would not stay exact, else scipy's solver). See
:mod:`cfosstats.objects.matching` for the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from cfosstats.objects.overlaps import _Overlaps

__all__ = ["ASSIGNMENTS"]

# Components of at most this many cells (rows x columns) go to the exact pure-Python solver:
# as fast as scipy's at this size, and a command that meets only these never imports scipy.optimize.
_SMALL_COMPONENT = 36


# --------------------------------------------------------------------------------------------
# Assignment rules: integer weights that encode a lexicographic objective exactly
# --------------------------------------------------------------------------------------------


def _iou_sum_weights(scaled_iou: list[int], is_tp: list[bool], scale: int, capacity: int):
    """Maximise summed IoU; among equal sums, the most TPs.

    `scaled_iou` is IoU * `scale` (exact ints); at most `capacity` pairs can be matched, so the
    TP count (< capacity + 1) can never outweigh one unit of scaled IoU.
    """
    return [s * (capacity + 1) + int(t) for s, t in zip(scaled_iou, is_tp, strict=True)]


def _tp_count_weights(scaled_iou: list[int], is_tp: list[bool], scale: int, capacity: int):
    """Maximise the number of TPs; among equal counts, the largest summed IoU.

    The summed scaled IoU of a matching is at most capacity * scale, below one TP's bonus.
    """
    bonus = capacity * scale + 1
    return [s + bonus * int(t) for s, t in zip(scaled_iou, is_tp, strict=True)]


@dataclass(frozen=True)
class _AssignmentRule:
    weights: Callable[[list[int], list[bool], int, int], list[int]]
    tp_pairs_only: bool  # whether only pairs passing the threshold take part in the assignment
    description: str


#: How the one-to-one assignment is chosen (see the module docstring).
ASSIGNMENTS: dict[str, _AssignmentRule] = {
    "iou_sum": _AssignmentRule(
        _iou_sum_weights,
        tp_pairs_only=False,
        description="maximise summed IoU over all overlapping pairs, then threshold (the study)",
    ),
    "tp_count": _AssignmentRule(
        _tp_count_weights,
        tp_pairs_only=True,
        description="maximise the number of pairs passing the threshold (stardist)",
    ),
}


def _hungarian_max(weight: list[list[int]]) -> list[tuple[int, int]]:
    """Maximum-weight assignment of a dense matrix of Python ints, exactly (no floats).

    Shortest augmenting paths with potentials, O(n^2 m) for n <= m; used only for components
    whose integer weights are too large for scipy's float64 solver to stay exact.
    Returns (row, col) pairs covering every row when n <= m (every column otherwise).
    """
    n_rows, n_cols = len(weight), len(weight[0])
    if n_rows > n_cols:
        transposed = [list(column) for column in zip(*weight, strict=True)]
        return [(row, col) for col, row in _hungarian_max(transposed)]
    cost = [[0] + [-w for w in row] for row in weight]  # minimise -weight; 1-based columns
    cost.insert(0, [0] * (n_cols + 1))
    row_potential = [0] * (n_rows + 1)
    col_potential = [0] * (n_cols + 1)
    row_of_col = [0] * (n_cols + 1)  # 0 = column free
    previous_col = [0] * (n_cols + 1)
    for row in range(1, n_rows + 1):
        row_of_col[0] = row
        col = 0
        min_slack: list[int | None] = [None] * (n_cols + 1)
        used = [False] * (n_cols + 1)
        while True:
            used[col] = True
            current_row = row_of_col[col]
            delta: int | None = None
            next_col = 0
            for j in range(1, n_cols + 1):
                if used[j]:
                    continue
                slack = cost[current_row][j] - row_potential[current_row] - col_potential[j]
                if min_slack[j] is None or slack < min_slack[j]:
                    min_slack[j] = slack
                    previous_col[j] = col
                if delta is None or min_slack[j] < delta:
                    delta = min_slack[j]
                    next_col = j
            for j in range(n_cols + 1):
                if used[j]:
                    row_potential[row_of_col[j]] += delta
                    col_potential[j] -= delta
                else:
                    min_slack[j] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:  # augment along the path back to the virtual column 0
            prev = previous_col[col]
            row_of_col[col] = row_of_col[prev]
            col = prev
    return [(row_of_col[j] - 1, j - 1) for j in range(1, n_cols + 1) if row_of_col[j]]


def _solve_component(
    rows: list[int],
    cols: list[int],
    intersection: list[int],
    union: list[int],
    is_tp: list[bool],
    rule: _AssignmentRule,
    float_exact_limit: int,
) -> list[int]:
    """Positions (in the given lists of pairs) of the optimal assignment of one component.

    Components are small (a handful of pairs), so plain Python beats numpy's per-call overhead.
    Components of up to ``_SMALL_COMPONENT`` cells, and those whose weights times the matrix size
    reach `float_exact_limit`, go to the exact pure-Python solver; the others to scipy's float64
    solver (exact below that limit).
    """
    row_index = {row: i for i, row in enumerate(dict.fromkeys(rows))}
    col_index = {col: j for j, col in enumerate(dict.fromkeys(cols))}
    n_rows, n_cols = len(row_index), len(col_index)
    if n_rows == 1 or n_cols == 1:
        # A star (one object overlapping several): only one pair can be taken. Both rules rank
        # pairs by IoU and TP status, and TP status never falls as IoU rises, so the pair with
        # the best IoU is optimal; pairs with equal IoU are interchangeable (same TP status).
        # Compared exactly as fractions; the first best pair wins.
        best = max(range(len(rows)), key=lambda k: Fraction(intersection[k], union[k]))
        return [best]
    capacity = min(n_rows, n_cols)
    # IoU = I / U exactly, as integers over the common denominator lcm(U).
    scale = math.lcm(*set(union))
    scaled_iou = [(scale // u) * i for i, u in zip(intersection, union, strict=True)]
    weights = rule.weights(scaled_iou, is_tp, scale, capacity)
    local_rows = [row_index[row] for row in rows]
    local_cols = [col_index[col] for col in cols]
    pair_at = {(r, c): k for k, (r, c) in enumerate(zip(local_rows, local_cols, strict=True))}
    if n_rows * n_cols <= _SMALL_COMPONENT or max(weights) * (n_rows + n_cols + 2) >= float_exact_limit:
        dense_ints = [[0] * n_cols for _ in range(n_rows)]
        for r, c, w in zip(local_rows, local_cols, weights, strict=True):
            dense_ints[r][c] = w
        chosen = _hungarian_max(dense_ints)
    else:
        # lazy: scipy.optimize takes 0.3 s to import, and only large components need it
        from scipy.optimize import linear_sum_assignment

        dense = np.zeros((n_rows, n_cols))
        dense[local_rows, local_cols] = weights
        chosen = zip(*linear_sum_assignment(dense, maximize=True), strict=True)
    # Cells without a pair weigh 0: assigning them is the same as leaving both unmatched.
    return [pair_at[cell] for cell in map(tuple, chosen) if cell in pair_at]


def _components(rows: list[int], cols: list[int]) -> list[list[int]]:
    """Connected components of a bipartite graph given as edges, as lists of edge positions."""
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def root(node: tuple[int, int]) -> tuple[int, int]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving
            node = parent[node]
        return node

    for row, col in zip(rows, cols, strict=True):
        parent[root((0, row))] = root((1, col))
    groups: dict[tuple[int, int], list[int]] = {}
    for k, row in enumerate(rows):
        groups.setdefault(root((0, row)), []).append(k)
    return list(groups.values())


def _assign(
    overlaps: _Overlaps, is_tp: np.ndarray, rule: _AssignmentRule, float_exact_limit: int
) -> np.ndarray:
    """Indices of the overlapping pairs chosen by the one-to-one assignment.

    `float_exact_limit`: see :func:`_solve_component`.
    """
    candidates = np.flatnonzero(is_tp) if rule.tp_pairs_only else np.arange(overlaps.iou.size)
    if candidates.size == 0:
        return candidates
    rows = overlaps.pair_rater[candidates]
    cols = overlaps.pair_reference[candidates]
    # A pair whose two objects have no other candidate partner is its own component: any
    # optimal assignment takes it (its weight is > 0). That is nearly every pair in practice.
    rater_degree = np.bincount(rows, minlength=overlaps.n_rater)
    reference_degree = np.bincount(cols, minlength=overlaps.n_reference)
    isolated = (rater_degree[rows] == 1) & (reference_degree[cols] == 1)
    chosen = candidates[isolated].tolist()

    rest = candidates[~isolated]
    if rest.size:
        rest_rows = overlaps.pair_rater[rest].tolist()
        rest_cols = overlaps.pair_reference[rest].tolist()
        rest_intersection = overlaps.intersection[rest].tolist()
        rest_union = overlaps.union[rest].tolist()
        rest_tp = is_tp[rest].tolist()
        rest_ids = rest.tolist()
        for group in _components(rest_rows, rest_cols):
            local = _solve_component(
                [rest_rows[k] for k in group],
                [rest_cols[k] for k in group],
                [rest_intersection[k] for k in group],
                [rest_union[k] for k in group],
                [rest_tp[k] for k in group],
                rule,
                float_exact_limit,
            )
            chosen.extend(rest_ids[group[k]] for k in local)
    return np.sort(np.asarray(chosen, dtype=np.int64))
