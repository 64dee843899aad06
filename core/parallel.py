"""Run one function over many inputs (records) on several processes, results in input order.

Reading and preparing ECG records is NumPy/SciPy/wfdb work, one record at a time and in pure
Python in places (wfdb's header parser, gqrs): threads do not help, processes do. Workers are
forked, so they start in milliseconds with everything already imported; where the system
cannot fork (Windows, and macOS by default), the work runs in this process.

Examples
--------
>>> map_processes(abs, [-3, 1, -2], n_jobs=2)
[3, 1, 2]
>>> resolve_jobs(-1, n_items=1_000, cpus=2), resolve_jobs(8, n_items=3, cpus=2)
(2, 3)
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, TypeVar

from tqdm.auto import tqdm

from hsickit.core.errors import HsickitError
from hsickit.core.threads import available_cpus, chosen

T = TypeVar("T")
R = TypeVar("R")


def resolve_jobs(n_jobs: int | None, n_items: int, cpus: int | None = None) -> int:
    """Processes to use, never more than the items: ``-1`` every core, ``-2`` all but one (joblib's rule);
    ``None``: the thread count the ``hsickit`` command chose (``--threads``, ``HSICKIT_THREADS``,
    ``OMP_NUM_THREADS`` or the idle cores; :mod:`hsickit.core.threads`), else 1."""
    cpus = available_cpus() if cpus is None else cpus
    if n_jobs is None:
        n_jobs = chosen.get("threads", 1)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise HsickitError(f"n_jobs={n_jobs!r}: give a number of processes (1, 2, ...) or -1 for every core (--jobs)")
    n = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)
    return max(1, min(n, n_items))


def map_processes(func: Callable[[T], R], items: Iterable[T], n_jobs: int | None = 1, *, desc: str | None = None,
                  verbose: int = 0) -> list[R]:
    """``[func(x) for x in items]`` on ``n_jobs`` forked processes (see :func:`resolve_jobs`), with a progress bar.

    ``func`` must be a module-level function (or a ``functools.partial`` of one). An error in
    a worker is raised here as it was raised there.
    """
    items = list(items)
    n = resolve_jobs(n_jobs, len(items))
    if n == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [func(x) for x in tqdm(items, desc=desc, disable=not verbose)]
    chunk = max(1, min(16, len(items) // (4 * n)))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(tqdm(pool.map(func, items, chunksize=chunk), total=len(items), desc=desc, disable=not verbose))
