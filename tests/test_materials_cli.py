"""`hsickit materials` commands on small real data (rows of the band-gap table hsickit ships)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from hsickit import HsickitError
from hsickit.apps.materials.cli import app
from hsickit.datasets.materials import demo_table_path

pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")
torch.set_num_threads(1)
runner = CliRunner()
FAST = ["--model", "irnet17", "--epochs", "2", "--patience", "5", "--quiet"]
COLS = ["--formula-col", "composition", "--target-col", "gap_eV"]  # the fixture tables' columns


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("materials")
    df = pd.read_csv(demo_table_path()).head(80)
    df.head(60)[["formula", "target"]].rename(columns={"formula": "composition", "target": "gap_eV"}).to_csv(d / "train.csv", index=False)
    # the columns training was told (--formula-col composition --target-col gap_eV): the run remembers them
    df.tail(20)[["formula", "target"]].rename(columns={"formula": "composition", "target": "gap_eV"}).to_csv(d / "test.csv", index=False)
    df.tail(20)[["formula"]].rename(columns={"formula": "composition"}).to_csv(d / "new.csv", index=False)
    return d


@pytest.fixture(scope="module")
def trained(data):
    run = data / "run"
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV",
               "--out", run, "--n-models", "2", "--unit", "eV", *FAST)
    assert r.exit_code == 0, r.output
    return run


def test_train_writes_run_folder(trained):
    for name in ("config.json", "history.csv", "metrics.json", "README.md", "plots/learning_curves.png",
                 "model/materials.json", "model/member_0/model.safetensors", "model/member_1/model.safetensors"):
        assert (trained / name).exists(), name
    cfg = json.loads((trained / "config.json").read_text())
    p = cfg["params"]  # the modern recipe: AdamW, batch 256 (cut to the rows there are), warm-up + cosine
    assert p["model"] == "irnet17" and p["lr"] == 1e-3 and p["batch_size"] == 256 and p["optimizer"] == "adamw"
    assert p["train_params__lr_schedule"] == "warmup_cosine"
    card = (trained / "README.md").read_text()
    assert "model `irnet17`" in card and "adamw" in card and "warm-up then cosine" in card
    m = json.loads((trained / "metrics.json").read_text())
    assert m["model"] == "irnet17" and m["model_choice"] == "given by --model"


def test_training_metrics_are_the_validation_scores_in_the_unit(trained):
    """metrics.json after training: the ensemble's MAE / R² on its 6 validation rows (10 % of 60),
    the best epoch (the one the model keeps), shown in the model card."""
    m = json.loads((trained / "metrics.json").read_text())
    assert m["split"] == "validation" and m["n_samples"] == 6 and m["unit"] == "eV"
    assert {"mae", "rmse", "r2"} <= set(m) and m["mae"] > 0 and "6 validation rows" in m["validation"]
    hist = pd.read_csv(trained / "history.csv")
    best = hist.loc[hist.val_loss.idxmin()]
    assert m["best_epoch"] == best.epoch and m["best_val_loss"] == pytest.approx(best.val_loss) and m["epochs_run"] == 2
    card = (trained / "README.md").read_text()
    assert f"keeps the weights of epoch {int(best.epoch)}" in card and f"| {m['mae']:.4g} |" in card


def test_evaluate(trained, data):
    out = data / "eval"
    r = invoke("evaluate", trained, data / "test.csv", "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert {"mae", "rmse", "r2", "n_samples"} <= set(m) and m["n_samples"] == 20
    pred = pd.read_csv(out / "predictions.csv")
    assert m["mae"] == pytest.approx(np.abs(pred.predicted - pred.target).mean())
    assert (out / "plots" / "parity.png").exists() and (out / "plots" / "residuals.png").exists()
    lines = r.stdout.splitlines()  # a table for people, in the training's unit, and where it wrote
    assert lines[0].split()[:3] == ["metric", "value", "unit"] and lines[1].split() == ["mae", f"{m['mae']:.4g}", "eV"]
    assert f"written: {out}" in r.stdout and "{" not in r.stdout
    r = invoke("evaluate", trained, data / "test.csv", "--out", data / "eval_json", "--quiet", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads((data / "eval_json" / "metrics.json").read_text())


def test_a_run_remembers_its_columns(trained, data, tmp_path):
    """evaluate / predict / finetune read the columns the run was trained with unless told otherwise."""
    assert json.loads((trained / "config.json").read_text())["formula_col"] == "composition"
    other = pd.read_csv(data / "test.csv").rename(columns={"composition": "formula", "gap_eV": "target"})
    other.to_csv(tmp_path / "other.csv", index=False)
    r = invoke("evaluate", trained, tmp_path / "other.csv", "--quiet")
    message = str(r.exception)  # the column was the run's: the error says so
    assert isinstance(r.exception, HsickitError) and "--formula-col 'composition'" in message and "trained with" in message
    r = invoke("evaluate", trained, "--table", tmp_path / "other.csv", "--formula-col", "formula", "--target-col", "target",
               "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((trained / "eval-other" / "metrics.json").read_text())["n_samples"] == 20
    assert json.loads((trained / "metrics.json").read_text())["split"] == "validation"  # training's metrics kept


def test_predict_with_ensemble_std(trained, data):
    from hsickit.apps.materials import load_estimator

    out = data / "pred.csv"
    r = invoke("predict", trained, data / "new.csv", "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["row", "formula", "predicted", "std", "in_domain", "unseen_elements"] and len(df) == 20
    mean, std = load_estimator(trained / "model").predict(df.formula.tolist(), return_std=True)
    np.testing.assert_allclose(df.predicted, mean, rtol=1e-5)
    assert (df["std"] > 0).all()


def test_finetune(trained, data):
    out = data / "ft"
    r = invoke("finetune", trained, data / "test.csv", "--out", out, "--frozen-blocks", "3", "--epochs", "3", "--quiet")
    assert r.exit_code == 0, r.output
    assert (out / "model" / "materials.json").exists() and (out / "history.csv").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["frozen_blocks"] == 3 and cfg["epochs"] == 3 and cfg["from"] == str(trained)
    assert cfg["params"]["frozen_blocks"] == 3 and cfg["params"]["epochs"] == 3  # the fine-tuning's, not the original's
    assert cfg["unit"] == "eV" and cfg["source_target_col"] == "gap_eV" and cfg["target_col"] == "gap_eV"
    card = (out / "README.md").read_text()
    assert "up to 3 epochs" in card and "in eV" in card and "(fine-tuned)" in card and str(trained) in card
    hist = pd.read_csv(out / "history.csv")
    before, after = hist[hist.phase == "main"], hist[hist.phase == "finetune"]
    assert len(before) == 2 and len(after) == 3 and after.epoch.tolist() == [3, 4, 5]
    r = invoke("finetune", trained, data / "test.csv", "--out", out, "--freeze-blocks", "3", "--epochs", "3", "--quiet")
    assert isinstance(r.exception, HsickitError) and "finished run" in str(r.exception)  # the old spelling still works
    assert "--freeze-blocks is deprecated; use --frozen-blocks" in r.stderr
    for run, name in ((trained, "a.csv"), (out, "b.csv")):
        assert invoke("predict", run, data / "new.csv", "-o", data / name, "--quiet").exit_code == 0
    a, b = pd.read_csv(data / "a.csv"), pd.read_csv(data / "b.csv")
    assert not np.allclose(a.predicted, b.predicted)


def test_bad_rows_stop_or_are_skipped(data):
    bad = data / "bad.csv"
    rows = pd.read_csv(data / "train.csv", dtype=str)
    rows.loc[3, "composition"] = "Xx2O"
    rows.loc[7, "gap_eV"] = "n/a"
    rows.to_csv(bad, index=False)
    r = invoke("train", bad, "--formula-col", "composition", "--target-col", "gap_eV", "--out", data / "bad_run", *FAST)
    assert r.exit_code != 0 and isinstance(r.exception, HsickitError)
    assert "row 4" in str(r.exception) and "Xx2O" in str(r.exception) and "row 8" in str(r.exception)
    r = invoke("train", bad, "--formula-col", "composition", "--target-col", "gap_eV", "--out", data / "bad_run",
               "--skip-invalid", *FAST)
    assert r.exit_code == 0, r.output
    rej = pd.read_csv(data / "bad_run" / "rejects.csv")
    assert rej.row.tolist() == [4, 8]


def test_classification_auto(data):
    df = pd.read_csv(data / "train.csv")
    df["metal"] = (df.gap_eV == 0).astype(int)
    df.to_csv(data / "cls.csv", index=False)
    r = invoke("train", data / "cls.csv", "--formula-col", "composition", "--target-col", "metal", "--out", data / "cls", *FAST)
    assert r.exit_code == 0, r.output
    assert json.loads((data / "cls" / "config.json").read_text())["estimator"] == "MaterialsClassifier"
    r = invoke("evaluate", data / "cls", data / "cls.csv", "--formula-col", "composition", "--target-col", "metal",
               "--out", data / "cls_eval", "--quiet")
    assert r.exit_code == 0, r.output
    m = json.loads((data / "cls_eval" / "metrics.json").read_text())
    assert 0 <= m["rocauc"] <= 1 and m["n_samples"] == 60
    # evaluate's per-row output has predict's columns (p_<class>, no 'probability'), plus the target
    assert invoke("predict", data / "cls", data / "cls.csv", "--formula-col", "composition", "-o", data / "cls_pred.csv",
                  "--quiet").exit_code == 0
    pred, ev = pd.read_csv(data / "cls_pred.csv"), pd.read_csv(data / "cls_eval" / "predictions.csv")
    assert list(ev.columns) == ["row", "formula", "target"] + list(pred.columns)[2:]
    assert {"p_0", "p_1"} <= set(pred.columns) and "probability" not in ev.columns
    pd.testing.assert_frame_equal(ev.drop(columns="target"), pred)


def test_matbench_command(tmp_path):
    src = pd.read_csv(demo_table_path()).head(100)
    src.to_csv(tmp_path / "matbench_expt_gap.csv", index=False)
    pd.DataFrame([{"task": "matbench_expt_gap", "algorithm": "Dummy", "metric": "mae", "mean": 1.1435, "std": 0.031,
                   "source": "test"}]).to_csv(tmp_path / "leaderboard_matbench_v0.1.csv", index=False)
    out = tmp_path / "mb"
    r = invoke("matbench", "expt_gap", "--data", tmp_path, "--out", out, "--fold", "0", "--fold", "2",
               "--epochs", "1", "--quiet")
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"mae_fold0", "mae_fold2", "mae", "mae_std", "n_folds"} and m["n_folds"] == 2
    assert m["mae"] == pytest.approx((m["mae_fold0"] + m["mae_fold2"]) / 2)
    res = json.loads((out / "matbench.json").read_text())
    assert [r["algorithm"] for r in res["leaderboard"]].count("Dummy") == 1
    assert res["folds"][0]["n_samples"] == int((src.fold == 0).sum())
    assert "Dummy" in r.output and "this run" in r.output
    assert "mae = " in r.output and " eV" in r.output and "not comparable" in r.output  # 2 of 5 folds: not ranked
    assert [row["rank"] for row in res["leaderboard"] if row["algorithm"].startswith("this run")] == [None]
    assert [row["rank"] for row in res["leaderboard"] if row["algorithm"] == "Dummy"] == [1]
    r = invoke("matbench", "expt_gap", "--data", tmp_path, "--out", tmp_path / "mb_et", "--fold", "1",
               "--model", "extra_trees,random_forest", "--features", "ward145+fractions118", "--inner-folds", "2",
               "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "mb_et" / "metrics.json").read_text())["n_folds"] == 1
    chosen = json.loads((tmp_path / "mb_et" / "matbench.json").read_text())["folds"][0]["chosen"]
    assert chosen["model"] in ("extra_trees", "random_forest") and chosen["features"] == "ward145+fractions118"


def test_demo(tmp_path):
    out = tmp_path / "demo"
    r = invoke("demo", "--out", out, "--epochs", "1", "--trees", "10", "--quiet")
    assert r.exit_code == 0, r.output
    assert "IRNet-17" in r.output and "random forest" in r.output and "extra trees" in r.output
    m = json.loads((out / "eval-test" / "metrics.json").read_text())  # the test fold, beside the run
    assert m["n_samples"] == 219 and m["mae"] > 0
    assert (out / "eval-test" / "plots" / "parity.png").exists() and (out / "model" / "materials.json").exists()
    assert json.loads((out / "metrics.json").read_text())["split"] == "validation"  # as train writes it
    for name in ("config.json", "history.csv", "README.md", "plots/learning_curves.png"):
        assert (out / name).exists(), name


def test_extra_trees_train_predict_and_no_finetune(data, tmp_path):
    run = tmp_path / "et"
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", "--out", run,
               "--model", "extra_trees", "--features", "ward145+fractions118", "--quiet")
    assert r.exit_code == 0, r.output
    assert "extra_trees" in (run / "README.md").read_text()
    assert (run / "model" / "member_0" / "forest.skops").exists()
    m = json.loads((run / "metrics.json").read_text())  # trees: a copy fitted on 54 rows scores the other 6
    assert m["n_samples"] == 6 and m["mae"] > 0 and "held-out" in m["validation"] and "best_val_loss" not in m
    r = invoke("predict", run, data / "new.csv", "-o", tmp_path / "p.csv", "--quiet")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert len(p) == 20 and {"predicted", "std"} <= set(p.columns) and (p["std"] >= 0).all()
    r = invoke("finetune", run, data / "test.csv", "--out", tmp_path / "ft", "--quiet")
    assert r.exit_code != 0 and "cannot be fine-tuned" in str(r.exception)


def test_train_chooses_among_models_by_cross_validation(data, tmp_path):
    run = tmp_path / "choose"
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", "--out", run,
               "--model", "extra_trees,random_forest", "--features", "ward145+fractions118", "--inner-folds", "3")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(run / "model_selection.csv")
    assert sorted(table["model"]) == ["extra_trees", "random_forest"] and sorted(table["rank"]) == [1, 2]
    best = table.loc[table["rank"] == 1, "model"].item()
    assert f"'model': '{best}'" in r.output and "Model selection" in (run / "README.md").read_text()
    assert json.loads((run / "model" / "materials.json").read_text())["params"]["model"] == best


@pytest.mark.slow
def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(data, tmp_path, monkeypatch):
    """Stopped in the second model's third epoch, the same command keeps the first model and resumes the second."""
    from safetensors.torch import load_file

    from hsickit.core.estimators import DeepRegressor
    from hsickit.core.training import Trainer

    args = ["train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", "--n-models", "2",
            "--epochs", "4", "--patience", "10", "--batch-size", "16", "--model", "irnet17"]
    assert invoke(*args, "--out", tmp_path / "straight", "--quiet").exit_code == 0
    epochs_seen = []

    train_epoch = Trainer.train_epoch

    def interrupt(self, *args, **kwargs):  # the second model's third epoch: its first two are checkpointed
        epochs_seen.append(args[2] if len(args) > 2 else kwargs.get("epoch", 0))
        if len(epochs_seen) == 4 + 3:
            raise RuntimeError("interrupted")
        return train_epoch(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_epoch", interrupt)
        r = invoke(*args, "--out", tmp_path / "cut", "--quiet")
    assert isinstance(r.exception, RuntimeError)
    cut = tmp_path / "cut"
    assert (cut / "training.json").exists() and not (cut / "config.json").exists()
    assert (cut / "model/member_0/estimator.json").exists() and (cut / "model/member_1/checkpoint.safetensors").exists()

    fits = []
    fit = DeepRegressor.fit
    monkeypatch.setattr(DeepRegressor, "fit", lambda self, *a, **k: fits.append(1) or fit(self, *a, **k))
    r = invoke(*args, "--out", cut)
    assert r.exit_code == 0, r.output
    assert "resuming the unfinished run" in r.output and "model 1/2: already trained" in r.output
    assert "3 epoch(s) already done" not in r.output and "2 epoch(s) already done" in r.output
    assert len(fits) == 1  # only the interrupted model trains
    assert not list(cut.rglob("checkpoint.safetensors")) and not (cut / "training.json").exists()
    for i in (0, 1):
        a, b = load_file(cut / f"model/member_{i}/model.safetensors"), load_file(tmp_path / f"straight/model/member_{i}/model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_csv(cut / "history.csv"), pd.read_csv(tmp_path / "straight/history.csv"))
    assert "checkpoint_dir" not in json.loads((cut / "model/materials.json").read_text())["params"]


def test_run_folder_rules(data, tmp_path):
    """A finished run is refused unless --overwrite, which clears it; bad input creates no folder."""
    run = tmp_path / "run"
    args = ["train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", *FAST]
    assert invoke(*args, "--out", run, "--n-models", "2").exit_code == 0
    (run / "eval-old").mkdir()
    r = invoke(*args, "--out", run)
    assert isinstance(r.exception, HsickitError) and "finished run" in str(r.exception) and "--overwrite" in str(r.exception)
    r = invoke(*args, "--out", run, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (run / "eval-old").exists() and not (run / "model/member_1").exists()
    r = invoke(*args, "--out", run, "--epochs", "3", "--overwrite")  # a changed command needs --overwrite too
    assert r.exit_code == 0, r.output
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = invoke(*args, "--out", other, "--overwrite")
    assert isinstance(r.exception, HsickitError) and "holds no hsickit run" in str(r.exception)
    assert (other / "notes.txt").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("composition,gap_eV\nXx2O,1.0\nNaCl,5.0\n")
    r = invoke("train", bad, "--formula-col", "composition", "--target-col", "gap_eV", "--out", tmp_path / "never", *FAST)
    assert isinstance(r.exception, HsickitError) and not (tmp_path / "never").exists()


def test_predict_flags_formulas_with_elements_never_seen_in_training(trained, data):
    """Applicability domain: a formula with an element absent from the training data is out of it."""
    seen = pd.read_csv(data / "train.csv").composition[0]
    (data / "edge.csv").write_text(f"composition\n{seen}\nHe\nAr2\nOg\n")  # the run's formula column
    r = invoke("predict", trained, data / "edge.csv", "-o", data / "edge_pred.csv", "--quiet")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(data / "edge_pred.csv", keep_default_na=False)
    assert p.in_domain.tolist() == [True, False, False, False]
    assert p.unseen_elements.tolist() == ["", "He", "Ar", "Og"]
    assert "3 of 4 formulas" in r.output and "never saw in training" in r.output


@pytest.mark.parametrize("model", [pytest.param("extra_trees", marks=pytest.mark.slow), "mlp"])
def test_classification_with_text_labels(data, tmp_path, model):
    df = pd.read_csv(data / "train.csv")
    df["kind"] = np.where(df.gap_eV == 0, "metal", "nonmetal")
    df.to_csv(tmp_path / "labels.csv", index=False)
    args = ["--formula-col", "composition", "--target-col", "kind"]
    for task in ("classification", "auto"):
        r = invoke("train", tmp_path / "labels.csv", *args, "--out", tmp_path / task, "--target-type", task, *FAST, "--model", model)
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / task / "config.json").read_text())["estimator"] == "MaterialsClassifier"
    m = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert {"accuracy", "rocauc"} <= set(m) and m["n_samples"] == 6
    r = invoke("predict", tmp_path / "auto", data / "new.csv", "-o", tmp_path / "p.csv", "--quiet")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert set(p.predicted) <= {"metal", "nonmetal"} and {"p_metal", "p_nonmetal"} <= set(p.columns)
    r = invoke("evaluate", tmp_path / "auto", tmp_path / "labels.csv", *args, "--out", tmp_path / "ev", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n_samples"] == 60
    df["kind"] = df["kind"].replace("metal", "conductor")
    df.to_csv(tmp_path / "other.csv", index=False)
    r = invoke("evaluate", tmp_path / "auto", tmp_path / "other.csv", *args, "--out", tmp_path / "ev2", "--quiet")
    assert isinstance(r.exception, HsickitError) and "['conductor']" in str(r.exception)


def test_clear_errors_for_a_missing_run_an_unknown_model_and_bad_input(trained, data, tmp_path):
    r = invoke("predict", tmp_path / "nosuchrun", data / "new.csv", "-o", tmp_path / "p.csv")
    assert isinstance(r.exception, HsickitError) and "run folder" in str(r.exception) and "does not exist" in str(r.exception)
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV",
               "--out", tmp_path / "cnn", *FAST, "--model", "leafcnn")
    msg = str(r.exception)
    assert isinstance(r.exception, HsickitError) and "irnet17" in msg and "extra_trees" in msg
    assert not any(name in msg.split("valid names")[1] for name in ("conv1d", "leafcnn", "parallel"))
    (tmp_path / "bad.csv").write_text("formula,target\nfe2o3,1.0\n")
    r = invoke("evaluate", trained, tmp_path / "bad.csv", "--out", tmp_path / "never", "--quiet",
               "--formula-col", "formula", "--target-col", "target")
    assert isinstance(r.exception, HsickitError) and "capital letter" in str(r.exception)
    assert not (tmp_path / "never").exists()  # the output folder comes only after the input is read and checked


def test_default_model_is_auto_trees_up_to_the_threshold_irnet_above(data, tmp_path):
    """`train` without --model: extra trees on Ward + fractions for a table of up to --auto-threshold rows,
    IRNet-17 (modern recipe) above; metrics.json and the model card say which and why."""
    base = ["train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", "--quiet"]
    r = invoke(*base, "--out", tmp_path / "small")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "small" / "metrics.json").read_text())
    assert m["model"] == "extra_trees" and m["features"] == "ward145+fractions118"
    assert "60 training rows, not above the auto threshold of 16000" in m["model_choice"]
    saved = json.loads((tmp_path / "small" / "model" / "materials.json").read_text())
    assert saved["params"]["model"] == "auto" and saved["model_used"] == "extra_trees"
    assert "Chosen by `--model auto`: 60 training rows, not above" in (tmp_path / "small" / "README.md").read_text()
    r = invoke(*base, "--out", tmp_path / "large", "--auto-threshold", "59", "--epochs", "2")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "large" / "metrics.json").read_text())
    assert m["model"] == "irnet17" and m["features"] == "ward145" and "above the auto threshold of 59" in m["model_choice"]
    assert m["epochs_run"] == 2
    card = (tmp_path / "large" / "README.md").read_text()
    assert "model `irnet17`" in card and "adamw" in card and "Chosen by `--model auto`" in card
    r = invoke("predict", tmp_path / "large", data / "new.csv", "-o", tmp_path / "p.csv", "--quiet")
    assert r.exit_code == 0, r.output


def test_paper_recipe_option(data, tmp_path):
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV",
               "--out", tmp_path / "paper", "--recipe", "paper", *FAST)
    assert r.exit_code == 0, r.output
    p = json.loads((tmp_path / "paper" / "config.json").read_text())["params"]
    assert (p["optimizer"], p["lr"], p["batch_size"], p["train_params__lr_schedule"], p["epochs"]) == ("adam", 1e-4, 32, None, 2)
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV",
               "--out", tmp_path / "never", "--recipe", "fast", *FAST)
    assert isinstance(r.exception, HsickitError) and "--recipe 'fast'" in str(r.exception)


def test_param_sets_an_estimator_parameter_over_the_recipe(data, tmp_path):
    r = invoke("train", data / "train.csv", *COLS, "--out", tmp_path / "p", "--param", "train_params__weight_decay=0",
               "--param", "hsic_params__beta=50", *FAST)
    assert r.exit_code == 0, r.output
    p = json.loads((tmp_path / "p" / "config.json").read_text())["params"]
    assert p["train_params"] == {"weight_decay": 0, "lr_schedule": "warmup_cosine"}  # the recipe's schedule kept
    assert p["hsic_params"] == {"beta": 50} and p["optimizer"] == "adamw"
    assert "weight decay 0)" in (tmp_path / "p" / "README.md").read_text()
    r = invoke("train", data / "train.csv", *COLS, "--out", tmp_path / "bad", "--param", "train_params__wd=0", *FAST)
    assert isinstance(r.exception, HsickitError) and "MaterialsRegressor has no parameter 'train_params__wd'" in str(r.exception)
    assert not (tmp_path / "bad").exists()


def test_hsic_training_on_a_regression_target_warns(data, tmp_path):
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV", "--training", "hsic",
               "--out", tmp_path / "hsic", *FAST)
    assert r.exit_code == 0, r.output
    assert "warning: --training hsic on a regression target" in r.stderr and "113 MPa" in r.stderr  # CKA + format phase, the default
    assert "235 MPa" not in r.stderr
    r = invoke("train", data / "train.csv", *COLS, "--training", "hsic", "--out", tmp_path / "nocco",
               "--param", "hsic_params__estimator=nocco", "--param", "hsic_params__target_kernel=rank", *FAST)
    assert r.exit_code == 0, r.output
    assert "warning: --training hsic on a regression target: with the nocco estimator" in r.stderr and "235 MPa" in r.stderr
    p = json.loads((tmp_path / "nocco" / "config.json").read_text())["params"]
    assert p["hsic_params"] == {"estimator": "nocco", "target_kernel": "rank"}
    r = invoke("train", data / "train.csv", *COLS, "--training", "hsic", "--out", tmp_path / "bad",
               "--param", "hsic_params__target_kernel=ranks", *FAST)
    assert isinstance(r.exception, HsickitError) and "unknown target_kernel 'ranks'" in str(r.exception)
    r = invoke("train", data / "train.csv", "--formula-col", "composition", "--target-col", "gap_eV",
               "--out", tmp_path / "bp", *FAST)
    assert r.exit_code == 0 and "warning" not in r.stderr


def test_nonnegative_target_option(data, tmp_path):
    """--nonnegative: the model clips its predictions at 0 (saved in the run); a negative target is an error that
    names the file, the column and the row; a class-label target refuses it."""
    run = tmp_path / "run"
    r = invoke("train", data / "test.csv", *COLS, "--out", run, "--nonnegative", "--unit", "eV", *FAST)
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["params"]["nonnegative"] is True
    r = invoke("predict", run, data / "new.csv", "-o", tmp_path / "p.csv", "--quiet")
    assert r.exit_code == 0, r.output
    assert (pd.read_csv(tmp_path / "p.csv")["predicted"] >= 0).all()
    df = pd.read_csv(data / "test.csv")
    df.loc[3, "gap_eV"] = -0.25
    df.to_csv(tmp_path / "neg.csv", index=False)
    r = invoke("train", tmp_path / "neg.csv", *COLS, "--out", tmp_path / "run2", "--nonnegative", *FAST)
    assert r.exit_code != 0 and isinstance(r.exception, HsickitError)
    assert "--nonnegative but the target column 'gap_eV' has 1 negative value(s), the first -0.25 in row 4" in str(r.exception)
    assert not (tmp_path / "run2").exists()
    r = invoke("finetune", run, tmp_path / "neg.csv", "--out", tmp_path / "run4", "--epochs", "1", "--quiet")
    assert isinstance(r.exception, HsickitError) and "was trained with --nonnegative but the target column" in str(r.exception)
    assert not (tmp_path / "run4").exists()
    df["gap_eV"] = np.where(df.index % 2, "metal", "nonmetal")
    df.to_csv(tmp_path / "labels.csv", index=False)
    r = invoke("train", tmp_path / "labels.csv", *COLS, "--out", tmp_path / "run3", "--nonnegative", *FAST)
    assert isinstance(r.exception, HsickitError) and "--nonnegative is for a regression target" in str(r.exception)
