"""``hsickit ecg`` commands on small generated WFDB records (typer CliRunner)."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from typer.testing import CliRunner

from hsickit.apps.ecg.cli import app
from hsickit.apps.ecg.synthetic import write_synthetic_records

torch.set_num_threads(1)
runner = CliRunner()
pytestmark = pytest.mark.slow  # every test here takes over 10 s (most share the 25 s `trained` run)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    records = write_synthetic_records(base / "records", n_records=5, duration=40, random_state=11)
    run = base / "run"
    res = runner.invoke(app, ["train", "--records", records, "--records-list", "s00,s01,s02,s03,s04", "--validation-list",
                              "s04", "--task", "beats", "--out", str(run), "--channels", "beat,rr", "--ventricular-channels", "beat", "--channel-epochs", "2",
                              "--epochs", "4", "--param", "record_balance=0", "--quiet"])
    assert res.exit_code == 0, res.output
    return base, records, run


def test_train_writes_run_folder(trained):
    _, _, run = trained
    for name in ("config.json", "history.csv", "metrics.json", "metrics.nc", "README.md", "plots/confusion_matrix.png",
                 "model/fusion.json", "model/downstream/model.skops", "model/channels/beat/model.safetensors"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["validation_records"] == "s04" and config["model"]["channels"] == ["beat", "rr"]
    assert config["model"]["ventricular_channels"] == ["beat"] and config["model"]["record_balance"] == 0  # --param
    card = (run / "README.md").read_text()
    assert "| measured |" in card and "95 % low" not in card  # one validation record: no interval rows


def test_model_card_shows_intervals_over_records(trained, tmp_path):
    from hsickit.apps.ecg.api import write_model_card, load_run
    from hsickit.apps.ecg.metrics import beat_metrics, record_intervals
    from hsickit.core.runs import RunFolder

    clf, config = load_run(trained[2])
    y, pred = ["N", "S", "N", "S", "N", "V"], ["N", "S", "N", "N", "N", "V"]
    metrics = {**beat_metrics(y, pred), **record_intervals(y, pred, ["a", "a", "b", "b", "c", "c"])}
    write_model_card(RunFolder(tmp_path), clf, config, {}, metrics)
    rows = [line for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("| 95 %")]
    assert [r.split(" | ")[0] for r in rows] == ["| 95 % low", "| 95 % high"]


def test_evaluate_writes_required_metrics_beside_the_run(trained):
    _, records, run = trained
    training = (run / "metrics.json").read_bytes()
    res = runner.invoke(app, ["evaluate", str(run), "--records", records, "--records-list", "s04", "--quiet"])
    assert res.exit_code == 0, res.output
    folder = run / f"eval-{Path(records).name}"  # RUN/eval-<records folder>, as in every application
    m = json.loads((folder / "metrics.json").read_text())
    lines = res.stdout.splitlines()  # a short table for people and where the file is, not metrics.json
    assert lines[0].split()[:2] == ["metric", "value"] and lines[1].split()[:2] == ["accuracy", f"{m['accuracy']:.4g}"]
    assert f"written: {folder / 'metrics.json'}" in res.stdout and "{" not in res.stdout and len(lines) < 20
    for key in ["accuracy", "kappa", "n_beats", "ppv_S_ec57", "ppv_V_ec57"] + [f"{k}_{c}" for c in "NSVF" for k in ("sensitivity", "ppv", "f1")]:
        assert key in m, key
    assert any(line.split()[:1] == ["ppv_V_ec57"] for line in lines)  # +P as AAMI EC57 counts it, in the printed table
    assert m["n_beats"] == len(wfdb.rdann(f"{records}/s04", "atr").sample)
    assert 0.0 <= m["accuracy"] <= 1.0 and m["split"] == "evaluation"
    assert m["records"] == "s04" and m["records_dir"] == str(records)
    assert (run / "metrics.json").read_bytes() == training  # the training's validation metrics are never overwritten
    assert json.loads((run / "metrics.json").read_text())["split"] == "validation"
    assert (folder / "plots" / "confusion_matrix.png").exists() and (folder / "config.json").exists()
    import xarray as xr

    with xr.open_dataset(folder / "metrics.nc", engine="scipy") as ds:
        assert ds.attrs["records"] == "s04" and ds.attrs["split"] == "evaluation"
    assert m["accuracy_low"] is None and "drawing whole records" in m["intervals"]  # one record: nothing to draw
    res = runner.invoke(app, ["evaluate", str(run), "--records", records, "--records-list", "s03,s04", "--quiet", "--json",
                              "--out", str(run / "eval-two")])
    m = json.loads((run / "eval-two" / "metrics.json").read_text())
    assert m["accuracy_low"] <= m["accuracy"] <= m["accuracy_high"] and m["macro_f1_low"] <= m["macro_f1_high"]
    assert json.loads(res.stdout) == m  # --json: metrics.json itself


def test_old_option_spellings_still_work_and_warn(trained, tmp_path):
    """--features (now --handcrafted-features) and --labels (now --label-task) stay one release, with a warning."""
    _, records, _ = trained
    res = runner.invoke(app, ["train", "--records", records, "--records-list", "s00,s01", "--validation-list", "none",
                              "--out", str(tmp_path / "r"), "--channel-epochs", "1", "--no-features", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "warning: --no-features is deprecated; use --no-handcrafted-features" in res.stderr
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["use_features"] is False
    res = runner.invoke(app, ["train", "--records", records, "--out", str(tmp_path / "b"), "--labels", "rhythm"])
    assert "--label-task picks a PTB-XL label task" in str(res.exception)


def test_predict_writes_wfdb_annotations_and_csv(trained):
    base, records, run = trained
    out = base / "pred"
    res = runner.invoke(app, ["predict", str(run), f"{records}/s03", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    ann = wfdb.rdann(str(out / "s03"), "hsk")
    ref = wfdb.rdann(f"{records}/s03", "atr")
    np.testing.assert_array_equal(ann.sample, ref.sample)
    assert set(ann.symbol) <= {"N", "S", "V", "F", "Q"}
    rows = list(csv.DictReader(open(out / "s03_beats.csv")))
    assert len(rows) == len(ref.sample) and rows[0]["record"] == "s03"
    assert [r["predicted"] for r in rows] == list(ann.symbol)
    res = runner.invoke(app, ["predict", str(run), records, "--out", str(base / "pred_all"), "--quiet"])
    assert res.exit_code == 0 and len(list((base / "pred_all").glob("*.hsk"))) == 5


def test_predict_on_a_folder_goes_past_a_bad_record(trained, tmp_path):
    import shutil

    _, records, run = trained
    for name in ("s00", "s01"):
        for ext in ("hea", "dat", "atr"):
            shutil.copy(f"{records}/{name}.{ext}", tmp_path / f"{name}.{ext}")
    (tmp_path / "s00.dat").write_bytes((tmp_path / "s00.dat").read_bytes()[:1000])  # truncated
    res = runner.invoke(app, ["predict", str(run), str(tmp_path), "--out", str(tmp_path / "pred"), "--quiet"])
    assert res.exit_code != 0 and "labelled 1 of 2 records" in str(res.exception) and "s00" in str(res.exception)
    assert (tmp_path / "pred" / "s01.hsk").exists() and not (tmp_path / "pred" / "s00.hsk").exists()


def test_finetune_writes_new_run(trained):
    base, records, run = trained
    own = write_synthetic_records(base / "hospital", n_records=2, duration=30, random_state=5, prefix="h")
    res = runner.invoke(app, ["finetune", str(run), "--records", own, "--out", str(base / "run2"), "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((base / "run2" / "config.json").read_text())
    assert cfg["data"]["base_run"].endswith("run") and (base / "run2" / "model" / "fusion.json").exists()


def test_bad_input_is_one_clear_error(trained, tmp_path):
    from hsickit import HsickitError

    _, records, run = trained
    res = runner.invoke(app, ["evaluate", str(run), "--records", records, "--records-list", "s99"])
    assert isinstance(res.exception, HsickitError) and "s99" in str(res.exception)
    res = runner.invoke(app, ["evaluate", str(tmp_path), "--records", records])
    assert res.exit_code != 0
    res = runner.invoke(app, ["train", "--records", records, "--out", str(tmp_path / "r"), "--task", "rhythm"])
    assert isinstance(res.exception, HsickitError) and "--task" in str(res.exception)
    for extra, message in ((["--param", "no_such=1"], "MultiResolutionClassifier has no parameter 'no_such'"),
                           (["--task", "records", "--param", "record_balance=0"], "--param sets beat-model parameters")):
        res = runner.invoke(app, ["train", "--records", records, "--out", str(tmp_path / "p"), *extra])
        assert isinstance(res.exception, HsickitError) and message in str(res.exception), res.output
        assert not (tmp_path / "p").exists()  # refused before anything was read or written


def test_a_finished_run_is_replaced_only_with_overwrite(trained, tmp_path):
    _, records, run = trained
    out = tmp_path / "run"
    args = ["train", "--records", records, "--records-list", "s00,s01", "--validation-list", "none", "--out", str(out),
            "--channels", "none", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, args)
    assert "holds a finished run; pass --overwrite" in str(res.exception) and (out / "notes.txt").exists()
    res = runner.invoke(app, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert not (out / "notes.txt").exists() and (out / "config.json").exists()
    res = runner.invoke(app, ["finetune", str(run), "--records", records, "--records-list", "s02", "--out", str(out), "--quiet"])
    assert "holds a finished run" in str(res.exception)


def test_demo_runs_end_to_end(tmp_path):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--quiet"])  # a second demo replaces the first
    assert res.exit_code == 0, res.output
    assert "sensitivity_V=" in res.output
    assert (tmp_path / "demo" / "records" / "s00.atr").exists() and (tmp_path / "demo" / "predictions" / "s07.hsk").exists()
    assert (tmp_path / "demo" / "finetuned" / "metrics.json").exists() is False  # no validation records given
    assert (tmp_path / "demo" / "finetuned" / "model" / "fusion.json").exists()
    assert json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())["split"] == "validation"
    assert json.loads((tmp_path / "demo" / "run" / "eval-records" / "metrics.json").read_text())["split"] == "evaluation"


def test_train_on_normal_and_ventricular_beats_only_says_what_it_holds_out(tmp_path):
    records = write_synthetic_records(tmp_path / "nv", n_records=3, duration=40, random_state=3, rates={"V": 0.1})  # like MIT-BIH 119
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--records", records, "--out", str(run), "--channel-epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "no validation records" in res.output and not (run / "metrics.json").exists()
    res = runner.invoke(app, ["evaluate", str(run), "--records", records, "--records-list", "s02", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert not (run / "metrics.json").exists()  # the evaluation went beside the run
    assert m["sensitivity_S"] is None and m["support_S"] == 0 and "NaN" not in res.stdout  # no S beats: undefined, not 0
    res = runner.invoke(app, ["train", "--records", records, "--validation-list", "s02", "--out", str(tmp_path / "run2"),
                              "--channel-epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "validation records, held out of training (as asked" in res.output and ": s02;" in res.output
    res = runner.invoke(app, ["train", "--records", records, "--records-list", "s00,s02", "--validation-list", "none",
                              "--out", str(tmp_path / "run3"), "--channels", "none"])
    assert res.exit_code == 0, res.output
    assert "no validation records (--validation-list none)" in res.output and "training on 2 record(s)" in res.output


def test_a_failed_train_leaves_no_run_folder(trained, tmp_path, monkeypatch):
    from hsickit import HsickitError
    from hsickit.apps.ecg import api
    from hsickit.apps.ecg.fusion import MultiResolutionClassifier

    _, records, run = trained
    args = ["train", "--records", records, "--records-list", "s00,s01,s02", "--channels", "none", "--quiet"]
    monkeypatch.setattr(api, "write_model_card", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "new")])
    assert isinstance(res.exception, OSError) and not (tmp_path / "new").exists()  # the model was written, then the card failed
    assert list(tmp_path.iterdir()) == []
    before = (run / "model" / "fusion.json").read_bytes()
    res = runner.invoke(app, [*args, "--out", str(run), "--overwrite"])  # an earlier run folder stays as it was
    assert isinstance(res.exception, OSError) and (run / "model" / "fusion.json").read_bytes() == before
    monkeypatch.setattr(MultiResolutionClassifier, "fit", lambda *a: 1 / 0)
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "new")])
    assert isinstance(res.exception, HsickitError) and "nothing was written" in str(res.exception)
    assert not (tmp_path / "new").exists()


def test_an_interrupted_train_resumes_with_the_channel_networks_it_had_trained(trained, tmp_path, monkeypatch):
    from hsickit.apps.ecg.channels import ChannelNetwork

    _, records, _ = trained
    args = ["train", "--records", records, "--records-list", "s00,s01,s02,s03", "--validation-list", "none",
            "--channels", "beat,rr", "--channel-epochs", "2"]
    fits, real_fit = [], ChannelNetwork.fit

    def interrupted_fit(net, *a, **k):  # the fourth of eight fits (3 crossfit groups x 2 channels, then 2) is interrupted
        fits.append(net.channel)
        if len(fits) == 4 and not resumed:
            raise KeyboardInterrupt
        return real_fit(net, *a, **k)

    monkeypatch.setattr(ChannelNetwork, "fit", interrupted_fit)
    resumed, out = False, tmp_path / "run"
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 130 and not out.exists()  # typer turns KeyboardInterrupt into exit code 130
    kept = tmp_path / ".run.training"
    from hsickit.core.cli import interrupted_line  # what `hsickit` prints on Ctrl-C (the CliRunner skips its main)

    line = interrupted_line()
    assert line.startswith("interrupted; what was trained is kept in") and str(kept) in line
    assert line.endswith("run the same command again to resume")
    assert sorted(p.name for p in (kept / "checkpoints").iterdir()) == [
        "crossfit0-beat", "crossfit0-rr", "crossfit1-beat"]
    res = runner.invoke(app, [*args, "--out", str(out), "--epochs", "3"])  # other settings: not mixed with the kept networks
    assert "unfinished run started with other settings" in str(res.exception) and "epochs" in str(res.exception)
    fits.clear()
    resumed = True
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "resuming the unfinished training" in res.output and len(fits) == 5 and not kept.exists()
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "straight")])  # the same run, never interrupted
    assert res.exit_code == 0, res.output
    from hsickit.apps.ecg.api import load_run
    from hsickit.apps.ecg.beats import load_beats

    (resumed_model, config), (straight_model, _) = load_run(out), load_run(tmp_path / "straight")
    for name in ("beat", "rr"):
        a, b = (m.channels_[name].estimator_.model_.state_dict() for m in (resumed_model, straight_model))
        assert all(torch.equal(a[k], b[k]) for k in a)
    beats = load_beats(records, ["s04"], config, annotated=True, verbose=0)
    np.testing.assert_array_equal(resumed_model.predict_proba(beats), straight_model.predict_proba(beats))


def test_a_class_missing_from_training_is_named_and_not_scored_as_zero(tmp_path):
    """Issue 27, item 7: no F beats in training -> a warning naming F with count 0; evaluate on F beats reports
    F's Se / +P as 'not a class of this model' (null in the JSON), not 0."""
    no_f = write_synthetic_records(tmp_path / "nof", n_records=3, duration=40, random_state=3, rates={"S": 0.06, "V": 0.08})
    with_f = write_synthetic_records(tmp_path / "withf", n_records=2, duration=60, random_state=8, rates={"F": 0.1, "V": 0.08},
                                     prefix="w")
    assert "F" in set(wfdb.rdann(f"{with_f}/w00", "atr").symbol) or "F" in set(wfdb.rdann(f"{with_f}/w01", "atr").symbol)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"hold no beats of class\(es\) F \(F 0; N \d+, S \d+, V \d+\).*not a class of this model"):
        res = runner.invoke(app, ["train", "--records", no_f, "--validation-list", "none", "--out", str(run),
                                  "--channels", "none", "--epochs", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate", str(run), "--records", with_f, "--quiet"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line for line in res.stdout.splitlines() if line.strip()}
    assert "not a class of this model" in rows["sensitivity_F"] and "not a class of this model" in rows["ppv_F"]
    assert "not a class" not in rows["sensitivity_V"]  # V is a class of the model: a number
    assert "beat(s) here count as errors" in res.stdout
    res = runner.invoke(app, ["evaluate", str(run), "--records", with_f, "--quiet", "--json"])
    m = json.loads(res.stdout)
    assert m["not_model_classes"] == "F" and "not a class of this model" in m["not_model_classes_note"]
    assert m["sensitivity_F"] is None and m["ppv_F"] is None and m["support_F"] > 0
    assert m["sensitivity_V"] is not None and m["not_model_classes"] != "V"
