"""Progress output by default only when a person is watching.

The estimators take ``verbose="auto"`` by default: a progress bar when standard error is a
terminal or the code runs in a Jupyter notebook, nothing in pipelines, batch jobs and tests
(whose standard error is a file or a pipe). ``verbose=0`` or ``1`` says it outright.

Examples
--------
>>> resolve_verbose(0), resolve_verbose(2)
(0, 2)
>>> resolve_verbose("auto") == default_verbose()
True
"""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, JupyterLab, VS Code's notebooks)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


def default_verbose() -> int:
    """1 (progress bars) when a person watches, standard error being a terminal or the code running in a
    notebook; 0 otherwise."""
    try:
        tty = bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        tty = False
    return int(tty or in_notebook())


def resolve_verbose(verbose) -> int:
    """An estimator's ``verbose`` as a number: ``"auto"`` is :func:`default_verbose`, a number stays."""
    if isinstance(verbose, str):
        if verbose != "auto":
            from hsickit.core.errors import HsickitError

            raise HsickitError(f"verbose={verbose!r}: use 'auto' (progress bars when a person watches), 0 or 1")
        return default_verbose()
    return int(verbose or 0)
