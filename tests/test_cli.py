"""The hsickit command: info, demo, and the apps' sub-commands through entry points."""
import json
import sys
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from hsickit.core import cli
from hsickit.core.cli import build_app

runner = CliRunner()


def test_help_lists_core_and_app_commands():
    result = runner.invoke(build_app(), ["--help"])
    assert result.exit_code == 0
    for name in ("info", "demo", "ecg", "materials", "plants"):
        assert name in result.output


def test_every_command_prints_its_help():
    import typer.main

    def paths(group, prefix=()):
        for name, cmd in group.commands.items():
            yield prefix + (name,)
            if hasattr(cmd, "commands"):
                yield from paths(cmd, prefix + (name,))

    for path in paths(typer.main.get_command(build_app())):
        result = runner.invoke(build_app(), [*path, "--help"])
        assert result.exit_code == 0, f"hsickit {' '.join(path)} --help: {result.exception!r}"


def test_info():
    result = runner.invoke(build_app(), ["info"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "threads" in result.output


@pytest.mark.slow  # 31 s
def test_demo_writes_two_run_folders(tmp_path):
    result = runner.invoke(build_app(), ["demo", "--out", str(tmp_path), "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "hsic" in result.output and "backprop" in result.output
    for method in ("hsic", "backprop"):
        run = tmp_path / method
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["n_samples"] == 1000
        assert metrics["accuracy"] > 0.8  # one epoch of either method on real digits
        for name in ("config.json", "history.csv", "model.safetensors", "estimator.json", "README.md",
                     "plots/learning_curves.png", "plots/information_plane.png", "plots/confusion_matrix.png"):
            assert (run / name).exists(), name
        history = pd.read_csv(run / "history.csv")
        assert {"hsic_zx_0", "hsic_zy_4"} <= set(history.columns)


def test_the_command_shows_warnings_as_one_plain_line(monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    monkeypatch.setattr(sys, "argv", ["hsickit", "info"])
    with pytest.raises(SystemExit):
        cli.main()
    shown = warnings.formatwarning("training beats: left out 8 beat(s)", UserWarning, "/x/api.py", 99, "clf.fit(train)")
    assert shown == "warning: training beats: left out 8 beat(s)\n"  # no file name, line number or source line
