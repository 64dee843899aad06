"""How many CPU threads torch uses: the ``hsickit`` command chooses at start-up.

torch's own default is one thread per core. On a shared machine whose cores are already
busy (other users' jobs: load average above the core count) those threads wait for one
another at every parallel step, and a training runs several times slower than with one
thread. :func:`choose_threads` takes what the user says (``--threads``, then the
environment variables ``HSICKIT_THREADS`` and ``OMP_NUM_THREADS``), else the cores that
are idle: ``cpu count - round(load average)``, at least 1 and at most the cpu count.

Examples
--------
>>> choose_threads(cpu_count=2, load=0.1, environ={})
(2, 'cpu count 2, load average 0.10: 2 idle core(s)')
>>> choose_threads(cpu_count=2, load=5.3, environ={})
(1, 'cpu count 2, load average 5.30: 1 thread, as the cores are busy')
>>> choose_threads(4, cpu_count=2, environ={})
(4, '--threads 4')
"""
from __future__ import annotations

import os
from typing import Mapping

#: Environment variables that set the thread count, in the order they are read (after --threads).
THREAD_VARIABLES = ("HSICKIT_THREADS", "OMP_NUM_THREADS")


def available_cpus() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average, or None where the system has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _positive(text: str, source: str) -> int:
    from hsickit.core.errors import HsickitError

    try:
        n = int(str(text).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise HsickitError(f"{source}={text!r}: give a whole number of threads, 1 or more")
    return n


_UNSET = object()


def choose_threads(requested: int | None = None, *, cpu_count: int | None = None, load=_UNSET,
                   environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """The number of torch threads to use and why: ``(n, reason)``.

    ``requested`` (``--threads``) wins, then ``HSICKIT_THREADS``, then ``OMP_NUM_THREADS``; otherwise
    ``max(1, cpu_count - round(load))``, capped at ``cpu_count``. ``cpu_count``, ``load`` and
    ``environ`` default to this machine's (:func:`available_cpus`, :func:`load_average`, ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    if requested is not None:
        return _positive(requested, "--threads"), f"--threads {requested}"
    for name in THREAD_VARIABLES:
        if environ.get(name, "").strip():
            return _positive(environ[name], name), f"{name}={environ[name].strip()}"
    cpus = cpu_count if cpu_count is not None else available_cpus()
    load = load_average() if load is _UNSET else load
    if load is None:
        return cpus, f"cpu count {cpus} (no load average on this system)"
    n = max(1, min(cpus, cpus - round(load)))
    why = f"{n} idle core(s)" if cpus - round(load) >= 1 else "1 thread, as the cores are busy"
    return n, f"cpu count {cpus}, load average {load:.2f}: {why}"


#: What the ``hsickit`` command chose at start-up (:func:`apply_threads`), for ``hsickit info``.
chosen: dict = {}


def apply_threads(requested: int | None = None) -> tuple[int, str]:
    """Choose the thread count (:func:`choose_threads`) and make torch use it, without importing torch:
    torch is told through ``OMP_NUM_THREADS`` when it is not imported yet (it reads it at import),
    else through ``torch.set_num_threads``. (torch reads ``OMP_NUM_THREADS`` capped at the core count.)
    Returns ``(n, reason)``."""
    import sys

    n, reason = choose_threads(requested)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
    chosen.update(threads=n, reason=reason)
    return n, reason
