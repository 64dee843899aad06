"""Ctrl-C: one line, exit code 130, and for a training that can resume, that the same command resumes it."""
import sys

import pandas as pd
import pytest
import torch

from hsickit.core import cli

torch.set_num_threads(1)


def hsickit(capsys, monkeypatch, *args):
    """Run ``hsickit ARGS`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("HSICKIT_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["hsickit", *map(str, args)])
    capsys.readouterr()
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_interrupting_a_command_without_a_training(capsys, monkeypatch):
    monkeypatch.setattr("hsickit.core.runs.versions", interrupt)
    code, _, err = hsickit(capsys, monkeypatch, "info")
    assert (code, err) == (130, "interrupted\n")
    monkeypatch.setattr(sys, "argv", ["hsickit", "--debug", "info"])
    with pytest.raises(KeyboardInterrupt):  # --debug: the traceback
        cli.main()


@pytest.fixture
def band_gaps(tmp_path):
    pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")
    from hsickit.datasets.materials import demo_table_path

    pd.read_csv(demo_table_path()).head(40)[["formula", "target"]].to_csv(tmp_path / "gaps.csv", index=False)
    return tmp_path / "gaps.csv"


def test_interrupted_materials_training_says_the_same_command_resumes(band_gaps, tmp_path, capsys, monkeypatch):
    from hsickit.apps.materials.estimator import MaterialsRegressor

    run = tmp_path / "run"
    args = ["materials", "train", band_gaps, "--out", run, "--epochs", "2", "--patience", "5", "--quiet"]
    with monkeypatch.context() as m:
        m.setattr(MaterialsRegressor, "fit", interrupt)
        code, _, err = hsickit(capsys, monkeypatch, *args)
    assert code == 130 and "Traceback" not in err
    assert err == f"interrupted; what was trained is kept in {run}: run the same command again to resume\n"
    code, out, err = hsickit(capsys, monkeypatch, *args)  # ... and it does
    assert code == 0, err
    assert (run / "metrics.json").exists() and not (run / "training.json").exists()


def test_interrupted_ecg_training_names_the_kept_checkpoints(tmp_path, capsys, monkeypatch):
    from hsickit.apps.ecg.fusion import MultiResolutionClassifier
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    records = write_synthetic_records(tmp_path / "records", n_records=3, duration=20, random_state=0)

    def one_channel_then_ctrl_c(self, *args, **kwargs):  # as if the first channel network was trained and saved
        (self.checkpoint_dir / "rr").mkdir(parents=True)
        (self.checkpoint_dir / "rr" / "estimator.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(MultiResolutionClassifier, "fit", one_channel_then_ctrl_c)
    code, _, err = hsickit(capsys, monkeypatch, "ecg", "train", "--records", records, "--out", tmp_path / "run", "--quiet")
    home = tmp_path / ".run.training"
    assert code == 130 and err == f"interrupted; what was trained is kept in {home}: run the same command again to resume\n"
    assert (home / "checkpoints" / "rr").is_dir() and not (tmp_path / "run").exists()
