"""core.parallel: results in input order from forked workers, a worker's error raised in the caller."""
import pytest

from hsickit import HsickitError
from hsickit.core.parallel import map_processes, resolve_jobs
from hsickit.core.threads import chosen


def _square_or_fail(x):
    if x == 7:
        raise HsickitError("record 7: bad header; fix it")
    return x * x


def test_map_processes_keeps_the_order_of_the_inputs():
    items = list(range(40))
    assert map_processes(_square_or_fail, [i for i in items if i != 7], n_jobs=2) == [i * i for i in items if i != 7]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_an_error_in_a_worker_reaches_the_caller(n_jobs):
    with pytest.raises(HsickitError, match="record 7: bad header"):
        map_processes(_square_or_fail, range(10), n_jobs=n_jobs)


def test_resolve_jobs(monkeypatch):
    assert resolve_jobs(-1, 100, cpus=4) == 4 and resolve_jobs(-2, 100, cpus=4) == 3 and resolve_jobs(3, 2, cpus=4) == 2
    monkeypatch.setitem(chosen, "threads", 3)  # what `hsickit --threads 3` leaves
    assert resolve_jobs(None, 100, cpus=4) == 3
    monkeypatch.delitem(chosen, "threads")
    assert resolve_jobs(None, 100, cpus=4) == 1
    for bad in (0, "2", 1.5, True):
        with pytest.raises(HsickitError, match="n_jobs"):
            resolve_jobs(bad, 10, cpus=2)
