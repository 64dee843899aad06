"""Grouped estimator parameters: dicts such as ``hsic_params`` that scikit-learn sees key by key.

An estimator whose settings only forward to the trainer keeps them in a few dict parameters
(``model_params``, ``train_params``, ``hsic_params``) instead of one keyword each.
:class:`GroupedParams` makes every key of such a dict a parameter of its own for
scikit-learn: ``get_params()`` lists ``hsic_params__beta`` (the value in effect: the key given,
else the estimator's default), ``set_params(hsic_params__beta=50)`` sets one key (on a copy:
the caller's dict is never changed), so ``clone``, ``Pipeline`` and
``GridSearchCV(param_grid={"hsic_params__beta": [...]})`` work as for any other parameter.

The flat keywords these dicts replaced (``beta=50``) still work for one release, in the
constructor and in ``set_params``, with a ``FutureWarning`` naming the new spelling; models
saved with flat parameters load as they are (:meth:`GroupedParams.upgrade_params`).

Examples
--------
>>> from hsickit.core.estimators import DeepClassifier
>>> clf = DeepClassifier(hsic_params={"beta": 50.0})
>>> clf.get_params()["hsic_params__beta"], clf.get_params()["hsic_params__sigma"]
(50.0, None)
>>> clf.set_params(hsic_params__sigma=2.0).hsic_params
{'beta': 50.0, 'sigma': 2.0}
"""
from __future__ import annotations

import inspect
import warnings
from typing import Callable

from hsickit.core.errors import HsickitError

__all__ = ["GroupedParams", "signature"]


class GroupedParams:
    """Mixin (before ``BaseEstimator``) for estimators with dict parameters of known keys.

    Subclasses set :attr:`param_groups` (dict parameter -> {key: default}) and
    :attr:`renamed` (old flat keyword -> (dict parameter, key)); their ``__init__`` takes
    ``**renamed_params`` (hidden from the signature by :func:`signature`) and ends with
    ``self.take_renamed(renamed_params)``.
    """

    #: dict parameter -> {key: its default}: the keys it takes, and the values in effect when absent
    param_groups: dict[str, dict] = {}
    #: old flat keyword -> (dict parameter, key), accepted one release with a FutureWarning
    renamed: dict[str, tuple[str, str]] = {}

    # --- reading -----------------------------------------------------------------------------
    def group(self, name: str) -> dict:
        """The settings of dict parameter ``name`` in effect: its defaults updated by the keys given
        (an unknown key is an error naming the keys it takes)."""
        given = getattr(self, name)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise HsickitError(f"{name} must be a dict or None, got {given!r}; e.g. {name}={{{next(iter(self.param_groups[name]))!r}: ...}}")
        defaults = self.param_groups[name]
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise HsickitError(f"{name} has unknown key(s) {unknown}; it takes {sorted(defaults)}")
        return {**defaults, **given}

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        if deep:
            for name, defaults in self.param_groups.items():
                given = params.get(name)
                effective = {**defaults, **(given if isinstance(given, dict) else {})}
                params.update({f"{name}__{key}": value for key, value in effective.items()})
        return params

    # --- writing -----------------------------------------------------------------------------
    def set_params(self, **params):
        """As scikit-learn's; ``GROUP__KEY=value`` sets one key of dict parameter GROUP (on a copy),
        and an old flat keyword (``beta=50``) sets its key, with a FutureWarning."""
        keys: dict[str, dict] = {}
        for name in list(params):
            group, sep, key = name.partition("__")
            if name in self.renamed:
                group, key = self.renamed[name]
                _warn_renamed(type(self).__name__, name, group, key, params[name], stacklevel=3)
            elif not (sep and group in self.param_groups):
                continue
            if key not in self.param_groups[group]:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}: {group} takes the keys "
                                 f"{sorted(self.param_groups[group])}")
            keys.setdefault(group, {})[key] = params.pop(name)
        if params:
            super().set_params(**params)
        for group, values in keys.items():
            current = getattr(self, group)
            setattr(self, group, {**(current if isinstance(current, dict) else {}), **values})
        return self

    def take_renamed(self, renamed_params: dict) -> None:
        """``__init__``'s old flat keywords, folded into their dicts (one release, with a FutureWarning)."""
        for name, value in renamed_params.items():
            if name not in self.renamed:
                raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {name!r}")
            group, key = self.renamed[name]
            _warn_renamed(type(self).__name__, name, group, key, value, stacklevel=_caller_of_init(self))
            current = getattr(self, group)
            setattr(self, group, {**(current if isinstance(current, dict) else {}), key: value})

    @classmethod
    def upgrade_params(cls, params: dict) -> dict:
        """Saved parameters (``estimator.json`` of an older hsickit, flat keywords) in today's layout;
        no warning: the file is not the user's code."""
        out = {k: v for k, v in params.items() if k not in cls.renamed}
        for name, (group, key) in cls.renamed.items():
            if name in params:
                out[group] = {**(out.get(group) or {}), key: params[name]}
        return out


def _caller_of_init(obj) -> int:
    """The stacklevel of the code that called ``obj``'s (possibly chained) ``__init__``, seen from ``_warn_renamed``."""
    frame, level = inspect.currentframe().f_back.f_back, 3  # take_renamed's caller: the innermost __init__
    while frame is not None and frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is obj:
        frame, level = frame.f_back, level + 1
    return level


def _warn_renamed(owner: str, name: str, group: str, key: str, value, stacklevel: int) -> None:
    warnings.warn(f"{owner}: {name}= is now {group}={{{key!r}: {value!r}}} (or set_params({group}__{key}=...)); "
                  "the old keyword goes in the next release", FutureWarning, stacklevel=stacklevel)


def signature(parent_init: Callable | None = None) -> Callable:
    """Decorator for an ``__init__`` taking ``**renamed_params``: the signature scikit-learn reads
    (``get_params``, its checks, ``help``) lists the real parameters only, the old keywords staying
    hidden aliases. With ``parent_init``, for a subclass ``__init__(self, *, own=..., **params)``
    that passes ``**params`` on to it: the parent's parameters come first, then its own, so the
    subclass does not list the parent's by hand."""
    def decorate(init: Callable) -> Callable:
        params = [p for p in inspect.signature(init).parameters.values() if p.kind != p.VAR_KEYWORD]
        if parent_init is not None:
            parent = [p for p in inspect.signature(parent_init).parameters.values() if p.kind != p.VAR_KEYWORD]
            params = parent + [p for p in params if p.name != "self"]
        init.__signature__ = inspect.Signature(params)
        return init
    return decorate
