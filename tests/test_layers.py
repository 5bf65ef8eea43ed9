"""The package's imports go one way: core -> datasets -> objects -> stats -> analyses | segment |
simulate -> study -> report -> cli -> the package root (its lazy public API).

A module may import its own package and any lower layer, never a higher one or a sibling of its
own layer (analyses, segment and simulate are independent of each other); function-level imports
count as imports. No two modules may import each other, directly or round a longer cycle.
The checker is run on the real package and on small planted trees, to show it would fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cfosstats"
LAYERS = {
    "core": 0,
    "datasets": 1,
    "objects": 2,
    "stats": 3,
    "analyses": 4,
    "segment": 4,
    "simulate": 4,
    "study": 5,
    "report": 6,
    "cli": 7,
}
ROOT_RANK = 8  # cfosstats/__init__.py and __main__.py: the public API and `python -m cfosstats`


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, at any depth of the file.

    ``from a.b import c`` imports the module ``a.b.c`` where there is one, else ``a.b``.
    """
    package = root.name
    name = _module_name(path, root)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in found if m == package or m.startswith(package + ".")}


def _rank(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return ROOT_RANK, ""
    area = parts[1]
    if area not in LAYERS:
        raise AssertionError(f"{module}: not in any layer (add its package to LAYERS)")
    return LAYERS[area], area


def layer_violations(root: Path) -> list[str]:
    """Upward and sideways imports, and import cycles, of the package at ``root``."""
    modules = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    problems = []
    for name, path in modules.items():
        rank, area = _rank(name)
        targets = {t for t in _imports(path, root, set(modules)) if t in modules and t != name}
        graph[name] = targets
        for target in sorted(targets):
            target_rank, target_area = _rank(target)
            if target_area == area:
                continue
            if target_rank > rank or (target_rank == rank and target_area != area):
                problems.append(
                    f"{name} imports {target} (layer {target_area or 'root'} above {area or 'root'})"
                )
    problems.extend(f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), closed on its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [[*group, group[0]] for group in groups]


def test_the_package_imports_one_way():
    problems = layer_violations(PACKAGE)
    assert problems == [], "\n".join(problems)


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "cfosstats"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # stats reaching up into the report
            {"stats/effects.py": "def f():\n    from cfosstats.report.figures import save\n",
             "report/figures.py": ""},
            ["cfosstats.stats.effects imports cfosstats.report.figures (layer report above stats)"],
        ),
        (  # a sibling of the same layer
            {"analyses/validity.py": "from cfosstats.segment import unet\n", "segment/unet.py": ""},
            ["cfosstats.analyses.validity imports cfosstats.segment.unet (layer segment above analyses)"],
        ),
        (  # a relative import counts the same
            {"core/io.py": "from ..datasets import lab\n", "datasets/lab.py": ""},
            ["cfosstats.core.io imports cfosstats.datasets.lab (layer datasets above core)"],
        ),
        (  # a cycle inside one package
            {"report/a.py": "from cfosstats.report import b\n", "report/b.py": "import cfosstats.report.a\n"},
            ["import cycle: cfosstats.report.a -> cfosstats.report.b -> cfosstats.report.a"],
        ),
        (  # downward imports are what the layers are for
            {"report/a.py": "from cfosstats.stats import x\nfrom cfosstats.core import y\n", "stats/x.py": "",
             "core/y.py": ""},
            [],
        ),
    ],
)  # fmt: skip
def test_a_planted_upward_import_or_cycle_is_found(tmp_path, files, expected):
    assert layer_violations(_plant(tmp_path, files)) == expected
