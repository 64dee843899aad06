"""The examples in the docstrings of ``core/``, ``apps/`` and ``datasets/``, run on the modules as users import them.

The repository's top level is the package ``hsickit`` (``package-dir`` in pyproject.toml), so
pytest's ``--doctest-modules`` would import every file a second time under the checkout folder's
name (``<folder>.core.io`` next to ``hsickit.core.io``). Here each module is imported once, by its
``hsickit`` name, and each docstring with examples is one test (its id: the object's dotted name).
Run one module's examples with ``pytest tests/test_doctests.py -k hsickit.core.runs``.
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "apps", "datasets")
#: Docstrings whose examples take over 10 s (marked slow: ``pytest -m "not slow"`` leaves them out).
SLOW = {"hsickit.apps.ecg.api", "hsickit.core.demo"}


def module_names() -> list[str]:
    """``hsickit.<folder>.<module>`` for every Python file of the package folders (and ``hsickit`` itself)."""
    names = ["hsickit"]
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(("hsickit", *(parts[:-1] if parts[-1] == "__init__" else parts))))
    return names


def _docstrings():
    finder = doctest.DocTestFinder()
    found = []
    for name in module_names():
        module = importlib.import_module(name)
        found += [pytest.param(test, id=test.name, marks=[pytest.mark.slow] if test.name in SLOW else [])
                  for test in finder.find(module, name) if test.examples]
    return found


DOCSTRINGS = _docstrings()


def test_the_modules_are_this_checkouts():
    """hsickit imports from this folder (an editable install), so the examples run on the code checked here."""
    import hsickit

    assert Path(hsickit.__file__).resolve().parent == ROOT, (
        f"hsickit is imported from {hsickit.__file__}, not from {ROOT}; install this checkout with pip install -e .")
    assert len(DOCSTRINGS) > 50  # the walk found the examples


@pytest.mark.parametrize("test", DOCSTRINGS)
def test_docstring_examples(test):
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=report.append, clear_globs=False)
    if result.attempted == 0:
        pytest.skip("every example is marked +SKIP")
    assert result.failed == 0, "".join(report)
