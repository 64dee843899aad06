"""CliRunner tests for ``hsickit plants``: train, evaluate, predict, finetune, demo, errors."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from hsickit.apps.plants.cli import app

torch.set_num_threads(1)  # the test machine is shared; small models run faster single-threaded

runner = CliRunner()

TAX = """label,species,genus,family
Q_rob,Quercus robur,Quercus,Fagaceae
Q_ile,Quercus ilex,Quercus,Fagaceae
F_syl,Fagus sylvatica,Fagus,Fagaceae
A_opa,Acer opalus,Acer,Sapindaceae
A_mon,Acer mono,Acer,Sapindaceae
"""
NEW_TAX = "label,species,genus,family\nA_rub,Acer rubrum,Acer,Sapindaceae\n"


def make_table(labels, n_per, seed, d=6):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(scale=3, size=(10, d))
    rows = []
    k = 0
    for i, lab in enumerate(labels):
        for _ in range(n_per):
            x = centres[i] + rng.normal(scale=0.5, size=d)
            rows.append({"id": f"s{k}", "species": lab, **{f"f{j + 1}": x[j] for j in range(d)},
                         "split": ["train", "train", "val", "test"][k % 4]})
            k += 1
    return pd.DataFrame(rows)


@pytest.fixture
def files(tmp_path):
    labels = ["Q_rob", "Q_ile", "F_syl", "A_opa", "A_mon"]
    make_table(labels, 16, 0).to_csv(tmp_path / "specimens.csv", index=False)
    (tmp_path / "taxonomy.csv").write_text(TAX)
    new = make_table(labels + ["A_rub"], 8, 1)
    new = new[new.species.isin(["A_rub", "A_mon"])]
    new.to_csv(tmp_path / "mine.csv", index=False)
    (tmp_path / "mine_tax.csv").write_text(NEW_TAX)
    return tmp_path


def invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_train_evaluate_predict_finetune(files):
    run = files / "run"
    invoke(["train", "--table", files / "specimens.csv", "--taxonomy", files / "taxonomy.csv",
            "--label-col", "species", "--split", "train", "--validation-split", "val", "--loss", "taxonomic",
            "--epochs", 40, "--out", run, "--quiet"])
    for name in ("model.safetensors", "plants.json", "config.json", "history.csv", "metrics.json", "README.md",
                 "taxonomy.csv", "plots/learning_curves.png", "plots/level_accuracy_val.png",
                 "plots/confusion_family_val.png"):
        assert (run / name).exists(), name
    result = invoke(["evaluate", run, "--table", files / "specimens.csv", "--split", "test", "--quiet", "--json"])
    assert json.loads((run / "metrics.json").read_text())["split"] == "val"  # the run's own metrics are kept
    m = json.loads((run / "eval-specimens-test" / "metrics.json").read_text())
    assert json.loads(result.stdout) == m  # --json: metrics.json itself
    assert (run / "eval-specimens-test" / "plots" / "level_accuracy_test.png").exists()
    for key in ("accuracy_species", "accuracy_genus", "accuracy_family", "top5_species", "hierarchical_f1",
                "mistake_severity", "n_samples"):
        assert key in m, key
    assert m["n_samples"] == 20 and m["split"] == "test"
    assert m["accuracy_species"] > 0.8

    pred = files / "pred.csv"
    # prediction needs no labels: drop the label column
    pd.read_csv(files / "specimens.csv").drop(columns=["species"]).to_csv(files / "new.csv", index=False)
    invoke(["predict", run, "--table", files / "new.csv", "-o", pred, "--threshold", "0.6", "--quiet"])
    table = pd.read_csv(pred)
    for col in ("id", "species", "p_species", "genus", "p_genus", "family", "p_family", "label",
                "top5_species", "backoff_level", "backoff_name", "backoff_p"):
        assert col in table.columns, col
    assert len(table) == 80
    assert (table.p_genus >= table.p_species - 1e-9).all() and (table.p_family >= table.p_genus - 1e-9).all()
    assert ((table.backoff_p >= 0.6) == (table.backoff_level != "none")).all()

    run2 = files / "run2"
    invoke(["finetune", run, "--table", files / "mine.csv", "--taxonomy", files / "mine_tax.csv",
            "--epochs", 40, "--out", run2, "--quiet"])
    cfg = json.loads((run2 / "config.json").read_text())
    assert cfg["new_species"] == ["A_rub"]
    m2 = json.loads((run2 / "metrics.json").read_text())  # scored on specimens held out of mine.csv, not trained on
    assert m2["split"] == "validation" and m2["n_samples"] == round(0.2 * len(pd.read_csv(files / "mine.csv")))
    assert "held out of" in (run2 / "README.md").read_text() and cfg["frozen_blocks"] == "encoder"
    invoke(["predict", run2, "--table", files / "mine.csv", "-o", files / "pred2.csv", "--quiet"])
    p2 = pd.read_csv(files / "pred2.csv")
    truth = pd.read_csv(files / "mine.csv").species.map({"A_rub": "Acer rubrum", "A_mon": "Acer mono"})
    assert (p2.species == truth).mean() > 0.8


def test_images_npz_route(tmp_path):
    (tmp_path / "taxonomy.csv").write_text(TAX)
    rng = np.random.default_rng(0)
    labels = ["Q_rob", "Q_ile", "F_syl", "A_opa", "A_mon"]
    imgs, rows = [], []
    for i, lab in enumerate(labels):
        for j in range(6):
            im = np.zeros((16, 16), np.uint8)
            im[: 3 + 2 * i, : 3 + 2 * i] = 255
            imgs.append(np.roll(im, rng.integers(0, 3), axis=0))
            rows.append({"id": len(rows), "label": lab, "split": "train" if j < 4 else "test"})
    np.savez(tmp_path / "images.npz", images=np.stack(imgs), ids=np.arange(len(imgs)))
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    run = tmp_path / "run"
    invoke(["train", "--images", tmp_path / "images.npz", "--labels", tmp_path / "labels.csv", "--label-col", "label",
            "--taxonomy", tmp_path / "taxonomy.csv", "--split", "train", "--epochs", 2, "--patience", 5,
            "--out", run, "--quiet"])
    invoke(["evaluate", run, "--images", tmp_path / "images.npz", "--labels", tmp_path / "labels.csv",
            "--split", "test", "--quiet"])
    assert json.loads((run / "eval-images-test" / "metrics.json").read_text())["n_samples"] == 10
    invoke(["predict", run, "--images", tmp_path / "images.npz", "-o", tmp_path / "p.csv", "--quiet"])
    assert len(pd.read_csv(tmp_path / "p.csv")) == 30
    common = ["train", "--images", tmp_path / "images.npz", "--labels", tmp_path / "labels.csv", "--label-col", "label",
              "--taxonomy", tmp_path / "taxonomy.csv", "--split", "train", "--epochs", 1, "--image-size", 32, "--quiet"]
    invoke(common + ["--encoder-preset", "small64", "--param", "optimizer=adamw", "--param", "label_smoothing=0.1",
                     "--param", "train_params__weight_decay=0.05", "--out", tmp_path / "run64"])
    params = json.loads((tmp_path / "run64" / "config.json").read_text())["classifier"]
    assert params["model_params"]["channels"] == [16, 32, 64, 128] and params["optimizer"] == "adamw"
    assert params["label_smoothing"] == 0.1 and params["train_params__weight_decay"] == 0.05
    result = runner.invoke(app, [str(a) for a in common + ["--encoder-preset", "huge", "--out", tmp_path / "r"]])
    assert "unknown --encoder-preset 'huge'" in str(result.exception)


def test_errors_are_one_clear_message(files):
    bad = pd.read_csv(files / "specimens.csv")
    bad.loc[3, "species"] = "Q_xyz"
    bad.to_csv(files / "bad.csv", index=False)
    result = runner.invoke(app, ["train", "--table", str(files / "bad.csv"), "--taxonomy", str(files / "taxonomy.csv"),
                                 "--out", str(files / "r"), "--quiet"])
    assert result.exit_code != 0
    assert "Q_xyz" in str(result.exception) and "--skip-invalid" in str(result.exception)
    result = runner.invoke(app, ["train", "--table", str(files / "bad.csv"), "--taxonomy", str(files / "taxonomy.csv"),
                                 "--out", str(files / "r"), "--quiet", "--skip-invalid", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["evaluate", str(files), "--table", str(files / "specimens.csv")])
    assert "not a plants run folder" in str(result.exception)
    result = runner.invoke(app, ["train", "--taxonomy", str(files / "taxonomy.csv"), "--out", str(files / "r2")])
    assert "exactly one of --table" in str(result.exception)
    result = runner.invoke(app, ["train", "--taxonomy", str(files / "taxonomy.csv"), "--out", str(files / "r")])
    assert "holds a finished run" in str(result.exception)  # --out is checked before any data is read


def test_skipped_rows_are_reported_once_by_row_as_errors_number_them(files, recwarn):
    bad = pd.read_csv(files / "specimens.csv")
    bad["f2"] = bad["f2"].astype(object)
    bad.loc[3, "species"], bad.loc[5, "f2"], bad.loc[1, "species"] = "Q_xyz", "abc", ""
    bad.to_csv(files / "bad.csv", index=False)
    args = ["train", "--table", str(files / "bad.csv"), "--taxonomy", str(files / "taxonomy.csv"),
            "--label-col", "species", "--validation-split", "val", "--out", str(files / "r"), "--quiet", "--epochs", "1"]
    error = str(runner.invoke(app, args).exception)
    assert "row 6: column 'f2' has a non-numeric or missing value 'abc'" in error
    assert "rows numbered from 1 after the header" in error
    result = runner.invoke(app, args + ["--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("skipped 3 bad rows") == 1  # the validation split reads the same file: not twice
    assert result.stderr.splitlines() == [
        f"warning: {files / 'bad.csv'}: skipped 3 bad rows (rows numbered from 1 after the header):",
        "  row 6: column 'f2' has a non-numeric or missing value 'abc'",
        "  row 2: no label",
        "  row 4: label 'Q_xyz' is not in the taxonomy"]
    assert not [w for w in recwarn if "skipped" in str(w.message)]  # a report, not a Python warning
    bad.loc[5, "f2"] = 1.0
    bad.to_csv(files / "bad.csv", index=False)
    error = str(runner.invoke(app, args[:-5] + ["--out", str(files / "r2"), "--quiet", "--epochs", "1"]).exception)
    assert "'Q_xyz' (1 samples of" in error and "first at row 4" in error  # not row 3: the blank label counts


def test_demo_runs_without_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ../shared here: the demo falls back to the iris data shipped with scikit-learn
    monkeypatch.delenv("HSICKIT_PLANTS_DATA", raising=False)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--epochs", "20"])
    assert result.exit_code == 0, result.output
    assert "iris" in result.output and "taxonomic" in result.output
    for loss in ("ce", "taxonomic"):  # each a run folder as `train` writes one, its test scores beside it
        run = tmp_path / "demo" / loss
        for name in ("README.md", "config.json", "history.csv", "metrics.json", "plants.json", "taxonomy.csv",
                     "plots/learning_curves.png", "eval-test/metrics.json", "eval-test/plots/level_accuracy_test.png"):
            assert (run / name).exists(), (loss, name)
        assert json.loads((run / "metrics.json").read_text())["split"] == "val"
    m = json.loads((tmp_path / "demo" / "taxonomic" / "eval-test" / "metrics.json").read_text())
    assert m["accuracy_species"] > 0.8 and m["split"] == "test"


def test_validation_fraction_without_a_validation_split(files, tmp_path):
    invoke(["train", "--table", files / "specimens.csv", "--taxonomy", files / "taxonomy.csv", "--split", "train",
            "--validation-fraction", "0.3", "--epochs", 1, "--out", tmp_path / "r", "--quiet"])
    assert json.loads((tmp_path / "r" / "config.json").read_text())["classifier"]["validation_fraction"] == 0.3
    result = runner.invoke(app, [str(a) for a in ["train", "--table", files / "specimens.csv", "--taxonomy",
                                                  files / "taxonomy.csv", "--validation-fraction", "1.5",
                                                  "--out", tmp_path / "r2"]])
    assert "--validation-fraction" in str(result.exception) and not (tmp_path / "r2").exists()


def test_old_option_spellings_still_work_and_warn(files, tmp_path):
    """--features (now --table), --val-split (--validation-split), --skip-bad-rows (--skip-invalid): one release."""
    result = runner.invoke(app, [str(a) for a in ["train", "--features", files / "specimens.csv", "--taxonomy",
                                                  files / "taxonomy.csv", "--split", "train", "--val-split", "val",
                                                  "--skip-bad-rows", "--epochs", 1, "--out", tmp_path / "old", "--quiet"]])
    assert result.exit_code == 0, result.output
    for old, new in (("--features", "--table"), ("--val-split", "--validation-split"), ("--skip-bad-rows", "--skip-invalid")):
        assert f"warning: {old} is deprecated; use {new}" in result.stderr
    assert json.loads((tmp_path / "old" / "config.json").read_text())["val_split"] == "val"
    assert "--features" not in runner.invoke(app, ["train", "--help"]).output  # hidden


def test_optimiser_options_are_params_and_the_old_spellings_warn(files, tmp_path):
    """--optimizer, --weight-decay, --lr-schedule, --label-smoothing became --param KEY=VALUE: one release."""
    args = ["train", "--table", files / "specimens.csv", "--taxonomy", files / "taxonomy.csv", "--split", "train",
            "--epochs", 1, "--quiet", "--optimizer", "adamw", "--weight-decay=0.02", "--lr-schedule", "cosine",
            "--label-smoothing", "0.1", "--param", "hsic_params__beta=50", "--out", tmp_path / "old"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    for old, new in (("--optimizer", "optimizer"), ("--weight-decay", "train_params__weight_decay"),
                     ("--lr-schedule", "train_params__lr_schedule"), ("--label-smoothing", "label_smoothing")):
        assert f"warning: {old} is deprecated; use --param {new}=VALUE" in result.stderr
    p = json.loads((tmp_path / "old" / "config.json").read_text())["classifier"]
    assert (p["optimizer"], p["train_params"], p["label_smoothing"], p["hsic_params"]) == (
        "adamw", {"weight_decay": 0.02, "lr_schedule": "cosine"}, 0.1, {"beta": 50})
    help_text = runner.invoke(app, ["train", "--help"]).output
    assert "--param" in help_text and "--weight-decay" not in help_text
    for bad, message in ((["--param", "no_such=1"], "--param no_such=...: TaxonomicClassifier has no parameter 'no_such'"),
                         (["--param", "train_params__weight_decay=-1"], "must be a number >= 0"),
                         (["--param", "hsic_params__bta=1"], "hsic_params__bta"),
                         (["--param", "optimizer=sgdx"], "--param optimizer 'sgdx': choose one of adam, adamw"),
                         (["--param", "beta"], "write KEY=VALUE")):
        result = runner.invoke(app, [str(a) for a in args[:10] + bad + ["--out", tmp_path / "bad"]])
        assert result.exit_code != 0 and message in str(result.exception), (bad, result.exception)
        assert not (tmp_path / "bad").exists()  # refused before anything is read or written


def test_interrupted_training_resumes_and_finished_runs_are_kept(files, monkeypatch):
    """Killed after 2 epochs, the same command resumes to the uninterrupted result; a finished run needs --overwrite."""
    from safetensors.torch import load_file

    from hsickit.apps.plants.classifier import TaxonomicClassifier

    args = ["train", "--table", files / "specimens.csv", "--taxonomy", files / "taxonomy.csv", "--split", "train",
            "--validation-split", "val", "--epochs", 5, "--patience", 10]
    invoke(args + ["--out", files / "straight", "--quiet"])

    def interrupt(row):
        if row["epoch"] == 3:
            raise RuntimeError("interrupted")

    fit = TaxonomicClassifier.fit
    with monkeypatch.context() as m:
        m.setattr(TaxonomicClassifier, "fit", lambda self, X, y, **kw: fit(self, X, y, callbacks=(interrupt,), **kw))
        result = runner.invoke(app, [str(a) for a in args + ["--out", files / "cut", "--quiet"]])
    assert isinstance(result.exception, RuntimeError)
    assert (files / "cut" / "checkpoint.safetensors").exists() and not (files / "cut" / "config.json").exists()
    result = invoke(args + ["--out", files / "cut"])
    assert "resuming the unfinished run" in result.output and "2 epoch(s) already done" in result.output
    assert not (files / "cut" / "checkpoint.safetensors").exists() and not (files / "cut" / "training.json").exists()
    a, b = load_file(files / "cut" / "model.safetensors"), load_file(files / "straight" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_csv(files / "cut" / "history.csv"), pd.read_csv(files / "straight" / "history.csv"))

    (files / "cut" / "stale.csv").write_text("old")
    result = runner.invoke(app, [str(a) for a in args + ["--out", files / "cut", "--quiet"]])
    assert "finished run" in str(result.exception) and "--overwrite" in str(result.exception)
    invoke(args + ["--out", files / "cut", "--quiet", "--overwrite"])
    assert not (files / "cut" / "stale.csv").exists() and (files / "cut" / "config.json").exists()
