"""No file reaches into another module's private names.

The rule: a name with one leading underscore (``_name``; dunders such as ``__version__`` are
public) belongs to the module that defines it. A Python file under ``apps/``, ``core/``,
``datasets/``, ``benchmarks/`` or ``tests/`` may use a private name only where it defines that
name itself (a function, class, variable or ``self._x = ...`` in the same file). So these fail:

- ``from M import _x``, ``from M._x import y``, ``import M._x`` (a private name or module imported);
- ``module._x`` where ``module`` is an imported module;
- ``obj._x`` where this file defines no ``_x`` (``trainer._epoch``, ``net_._seed_``);
- ``getattr/setattr/hasattr/delattr(obj, "_x")``, ``monkeypatch.setattr(obj, "_x", ...)``, and
  dotted strings such as ``"hsickit.core.runs._x"`` (what monkeypatch takes).

Tests have no exception: they test private helpers through the public names that use them, or
the helper is made public. Third-party private names that have no public route are listed in
:data:`ALLOWED`, each with the reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("apps", "core", "datasets", "benchmarks", "tests")

#: (file, private name) -> why: third-party private names with no public route.
ALLOWED = {
    **{(f, "_get_param_names"): "scikit-learn's BaseEstimator._get_param_names (the constructor's parameter names, "
                                "what get_params uses); load() keeps only those of the saved parameters"
       for f in ("core/estimators.py", "apps/materials/estimator.py", "apps/plants/classifier.py")},
    ("tests/test_readme_cli.py", "_protected_args"): "click's Context keeps a group's not-yet-parsed arguments there "
                                                      "(its protected_args property is deprecated); parsing a command "
                                                      "line without running it needs them",
    ("benchmarks/scale.py", "_python_dispatch"): "torch's TorchDispatchMode is importable only from "
                                                 "torch.utils._python_dispatch",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(source: str, path: str = "<source>") -> list[tuple[int, str, str]]:
    """``(line, private name, what)`` for each use of a private name that ``source`` does not define."""
    tree = ast.parse(source, path)
    defined, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.attr)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            for part in parts:
                if _private(part):
                    found.append((node.lineno, part, f"from {node.module} import ..."))
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, alias.name, f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found += [(node.lineno, p, f"import {alias.name}") for p in alias.name.split(".") if _private(p)]
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and _private(node.attr):
            on_module = isinstance(node.value, ast.Name) and node.value.id in modules
            if on_module or node.attr not in defined:
                found.append((node.lineno, node.attr, ast.unparse(node)))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _private(arg.value) \
                        and arg.value not in defined:
                    found.append((node.lineno, arg.value, ast.unparse(node)[:80]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("hsickit."):
            parts = node.value.split(".")
            if all(p.isidentifier() for p in parts):
                found += [(node.lineno, p, repr(node.value)) for p in parts if _private(p)]
    return sorted(set(found))


def test_the_rule_catches_each_kind_of_private_use():
    source = '''
import hsickit.core.plots as plots
from hsickit.core.training import Trainer, _Step
from hsickit.core import _hidden
from hsickit.core._internal import thing

def test(monkeypatch, trainer, net_):
    trainer._epoch(None, None, 0)
    plots._save(None, "x.png")
    seed = net_._seed_
    monkeypatch.setattr(Trainer, "_callbacks", None)
    monkeypatch.setattr("hsickit.core.runs._LOCKS", {})
    return getattr(trainer, "_step_seed")
'''
    names = [name for _, name, _ in violations(source)]
    assert names == ["_Step", "_hidden", "_internal", "_epoch", "_save", "_seed_", "_callbacks", "_LOCKS", "_step_seed"]


def test_the_rule_lets_a_module_use_its_own_private_names():
    source = '''
import numpy as np
from hsickit import __version__

_CACHE = {}

def _helper(x):
    return x.__class__

class Model:
    def __init__(self):
        self._state = _helper(np.zeros(1))

    def same(self, other):
        return self._state == other._state and _CACHE.get(__version__)
'''
    assert violations(source) == []
    assert [name for _, name, _ in violations("import wfdb\nwfdb._CACHE = None\nx = wfdb._CACHE\n")] == ["_CACHE"]


def python_files():
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_no_file_uses_another_modules_private_names():
    files = python_files()
    assert {p.relative_to(ROOT).parts[0] for p in files} == set(FOLDERS) and len(files) > 50  # the walk found them
    bad, used = [], set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for line, name, what in violations(path.read_text(), rel):
            if (rel, name) in ALLOWED:
                used.add((rel, name))
            else:
                bad.append(f"{rel}:{line}: {what}")
    assert not bad, "private names used outside the module that defines them (make them public, or use the " \
                    "public route):\n" + "\n".join(bad)
    assert used == set(ALLOWED), f"ALLOWED lists uses that are gone: {sorted(set(ALLOWED) - used)}"

