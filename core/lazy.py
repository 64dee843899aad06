"""Packages whose public names load on first use, so that ``--help`` does not import torch.

Example
-------
>>> import types, sys
>>> m = types.ModuleType("demo_pkg"); sys.modules["demo_pkg"] = m
>>> m.__getattr__, m.__dir__ = lazy_api("demo_pkg", ["pi"], lambda: {"pi": 3.14})
>>> m.pi, "pi" in vars(m)
(3.14, True)
"""
from __future__ import annotations

import sys
from typing import Callable, Sequence

__all__ = ["lazy_api"]


def lazy_api(module: str, names: Sequence[str], load: Callable[[], dict]):
    """``(__getattr__, __dir__)`` for package ``module``: the first use of one of ``names`` runs ``load``
    (which imports and returns them) and keeps them in the package, as a plain import would."""

    def __getattr__(name: str):
        if name in names:
            vars(sys.modules[module]).update(load())
            return vars(sys.modules[module])[name]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module]), *names})

    return __getattr__, __dir__
