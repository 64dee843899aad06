"""The thread count the command chooses (core/threads.py) and `hsickit --threads N`."""
import os
import subprocess
import sys

import pytest
import torch

from hsickit import HsickitError
from hsickit.core import cli
from hsickit.core.threads import choose_threads


@pytest.mark.parametrize("cpus, load, expected", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.4, 1), (2, 15.6, 1),  # a busy 2-core machine: one thread
    (16, 3.2, 13), (16, 0.0, 16), (8, 7.6, 1), (4, None, 4)])  # no load average (Windows): every core
def test_idle_cores_rule(cpus, load, expected):
    n, why = choose_threads(cpu_count=cpus, load=load, environ={})
    assert n == expected and f"cpu count {cpus}" in why


def test_the_user_says_otherwise():
    env = {"HSICKIT_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert choose_threads(2, cpu_count=2, load=9.0, environ=env) == (2, "--threads 2")  # the option first
    assert choose_threads(cpu_count=2, load=9.0, environ=env) == (3, "HSICKIT_THREADS=3")  # then hsickit's variable
    assert choose_threads(cpu_count=2, load=9.0, environ={"OMP_NUM_THREADS": "5"}) == (5, "OMP_NUM_THREADS=5")
    assert choose_threads(cpu_count=2, load=9.0, environ={"OMP_NUM_THREADS": " "})[0] == 1  # blank: not set
    with pytest.raises(HsickitError, match="HSICKIT_THREADS='two'.*whole number"):
        choose_threads(environ={"HSICKIT_THREADS": "two"})
    with pytest.raises(HsickitError, match="OMP_NUM_THREADS='0'"):
        choose_threads(environ={"OMP_NUM_THREADS": "0"})


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def run_main(capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["hsickit", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_threads_option_and_info(capsys, monkeypatch, keep_threads):
    monkeypatch.setenv("HSICKIT_THREADS", "1")
    code, out, _ = run_main(capsys, monkeypatch, "--threads", "3", "info")
    assert code in (0, None) and torch.get_num_threads() == 3
    assert "torch threads  3; chosen from --threads 3" in out
    code, out, _ = run_main(capsys, monkeypatch, "info")
    assert torch.get_num_threads() == 1 and "chosen from HSICKIT_THREADS=1" in out
    code, _, err = run_main(capsys, monkeypatch, "--threads", "0", "info")
    assert code == 2 and "--threads" in err


@pytest.mark.slow  # two fresh processes that import torch
def test_a_busy_machine_gets_the_idle_cores_before_torch_is_imported():
    """A fresh process without any thread setting: the choice reaches torch through OMP_NUM_THREADS."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HSICKIT_THREADS")}
    code = ("import sys; from hsickit.core.cli import main; sys.argv = ['hsickit'] + sys.argv[1:]; main()")
    out = subprocess.run([sys.executable, "-c", code, "--threads", "1", "info"], env=env, capture_output=True, text=True,
                         timeout=300).stdout
    assert "torch threads  1; chosen from --threads 1" in out
    out = subprocess.run([sys.executable, "-c", code, "info"], env=env, capture_output=True, text=True, timeout=300).stdout
    line = next(line for line in out.splitlines() if line.startswith("torch threads"))
    assert "load average" in line or "no load average" in line  # the rule, not torch's own default
