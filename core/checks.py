"""Up-front checks of values a user gives (options, estimator parameters), shared by the CLI and the estimators.

A command checks its options before it reads data or creates a folder, so a typo never leaves
a half-made run behind; an estimator checks its parameters in ``fit`` instead of quietly using
another value.

Examples
--------
>>> check_batch_size(32)
32
>>> check_batch_size(0)
Traceback (most recent call last):
...
hsickit.core.errors.HsickitError: batch_size 0: must be a whole number >= 2 (HSIC and batch normalisation need two samples per batch)
"""
from __future__ import annotations

import math

import numpy as np

from hsickit.core.errors import HsickitError

#: Option name -> (check, what it must be): :func:`check_options` refuses other values up front.
OPTION_RULES = {
    "lr": (lambda v: v > 0, "a number > 0"),
    "epochs": (lambda v: v >= 1, "a whole number >= 1"),
    "channel_epochs": (lambda v: v >= 1, "a whole number >= 1"),
    "batch_size": (lambda v: v >= 2, "a whole number >= 2 (HSIC and batch normalisation need two samples per batch)"),
    "validation_fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1) (0: no validation rows)"),
    "holdout_fraction": (lambda v: 0 < v < 1, "a fraction strictly between 0 and 1"),
    "patience": (lambda v: v >= 0, "a whole number >= 0"),
    "n_models": (lambda v: v >= 1, "a whole number >= 1"),
    "inner_folds": (lambda v: v >= 2, "a whole number >= 2"),
    "freeze_blocks": (lambda v: v >= 0, "a whole number >= 0"),
    "frozen_blocks": (lambda v: v >= 0, "a whole number >= 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "image_size": (lambda v: v >= 8, "a whole number >= 8 (pixels)"),
    "top_k": (lambda v: v >= 1, "a whole number >= 1"),
    "threshold": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "trees": (lambda v: v >= 1, "a whole number >= 1"),
}


def check_options(**values) -> None:
    """Refuse option values outside their range before a command reads data or creates a folder.

    Keyword names are the options' Python names (``batch_size`` for ``--batch-size``); None
    (not given) passes; names without a rule in :data:`OPTION_RULES` are ignored.

    >>> check_options(lr=1e-3, epochs=5, validation_fraction=0.1)
    >>> check_options(lr=-1)
    Traceback (most recent call last):
    ...
    hsickit.core.errors.HsickitError: --lr -1: must be a number > 0
    """
    for name, value in values.items():
        if value is None or name not in OPTION_RULES or isinstance(value, str):
            continue
        ok, what = OPTION_RULES[name]
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise HsickitError(f"--{name.replace('_', '-')} {value}: must be {what}")


def check_batch_size(batch_size, name: str = "batch_size") -> int:
    """``batch_size`` as an int when it is a whole number >= 2, else an error (never a silent substitute)."""
    ok, what = OPTION_RULES["batch_size"]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not ok(batch_size):
        raise HsickitError(f"{name} {batch_size!r}: must be {what}")
    return int(batch_size)


def check_device(device, option: str = "--device"):
    """The torch device ``device`` names (:func:`~hsickit.core.distributed.resolve_device`: ``"auto"``
    is CUDA when there is a GPU), or an error naming ``option`` and the fix when this machine
    lacks it; a command calls it before it reads data.

    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    hsickit.core.errors.HsickitError: --device gpu: not a torch device; use --device cpu, cuda, cuda:1 or auto (CUDA when there is a GPU)
    """
    import torch

    from hsickit.core.distributed import resolve_device

    fix = f"use {option} cpu, or {option} auto (CUDA when there is a GPU)"
    try:
        dev = resolve_device(device)
    except HsickitError:  # a CUDA device on a machine (or torch build) without one
        build = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA GPU visible"
        raise HsickitError(f"{option} {device}: this machine has no CUDA GPU ({build}); {fix}") from None
    except (RuntimeError, ValueError, TypeError):
        raise HsickitError(f"{option} {device}: not a torch device; use {option} cpu, cuda, cuda:1 or auto "
                           "(CUDA when there is a GPU)") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HsickitError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                           f"cuda:0 to cuda:{torch.cuda.device_count() - 1}; {fix}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise HsickitError(f"{option} {device}: this machine has no Apple GPU (MPS); {fix}")
    return dev
