"""The public API: every name resolves, is documented with a running example, and shows in help()."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys

import pytest

import cfosstats

FUNCTIONS = [name for name in cfosstats.__all__ if name != "__version__"]


def test_import_is_lazy():
    """`import cfosstats` loads none of the heavy libraries the API uses."""
    heavy = "('pandas', 'torch', 'plotnine', 'scipy')"
    code = f"import sys, cfosstats; print(sorted(m for m in {heavy} if m in sys.modules))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_function_has_a_numpydoc_docstring_with_an_example(name):
    function = getattr(cfosstats, name)
    assert inspect.isfunction(function), name
    doc = inspect.getdoc(function) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.endswith("."), (name, summary)
    examples = doc.partition("Examples\n--------\n")[2]
    assert ">>> " in examples, f"{name}: no running example"
    if inspect.signature(function).parameters:
        assert "Parameters\n----------\n" in doc, f"{name}: parameters undocumented"


def test_help_shows_the_public_api():
    text = pydoc.render_doc(cfosstats, renderer=pydoc.plaintext)
    for name in FUNCTIONS:
        assert f"{name}(" in text, name


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        cfosstats.nonsense  # noqa: B018
