"""PTB-XL record labels, the record CNN channel, its augmentation, thresholds chosen on validation records,
and the record CLI on real PTB-XL records (skipped where the shared sample is absent)."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hsickit import HsickitError
from hsickit.apps.ecg import channels as channels_module
from hsickit.apps.ecg.channels import RecordCNN, augment_records, label_weights
from hsickit.apps.ecg.cli import app
from hsickit.apps.ecg.records import RecordClassifier, RecordSet, choose_thresholds
from hsickit.datasets.ptbxl import ptbxl_folds, ptbxl_labels, ptbxl_record_path, ptbxl_records, read_ptbxl_database

torch.set_num_threads(1)
PTBXL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg" / "ptbxl-sample"
needs_ptbxl = pytest.mark.skipif(not (PTBXL / "ptbxl_database.csv").exists(), reason="shared PTB-XL sample absent")

STATEMENTS = """,description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass
NORM,normal ECG,1.0,,,NORM,NORM
IMI,inferior MI,1.0,,,MI,IMI
ASMI,anteroseptal MI,1.0,,,MI,AMI
NDT,non-diagnostic T,1.0,1.0,,STTC,STTC
LVOLT,low QRS voltages,,1.0,,,
SR,sinus rhythm,,,1.0,,
AFIB,atrial fibrillation,,,1.0,,
"""


def _write_db(d: Path, rows: list[tuple]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "scp_statements.csv").write_text(STATEMENTS)
    lines = ["ecg_id,scp_codes,strat_fold,filename_lr,filename_hr"]
    for ecg_id, codes, fold in rows:
        lines.append(f'{ecg_id},"{codes}",{fold},records100/00000/{ecg_id:05d}_lr,records500/00000/{ecg_id:05d}_hr')
    (d / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture
def tiny_db(tmp_path):
    return _write_db(tmp_path / "ptbxl", [
        (1, "{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", 3),
        (2, "{'IMI': 50.0, 'ASMI': 100.0, 'NDT': 100.0, 'AFIB': 0.0}", 9),
        (3, "{'LVOLT': 100.0, 'SR': 0.0}", 10),
        (4, "{'IMI': 15.0, 'NORM': 100.0}", 1),
    ])


def test_label_aggregation_follows_the_benchmark_code(tiny_db):
    sup = ptbxl_labels(tiny_db, "superdiagnostic")
    assert list(sup.columns) == ["NORM", "MI", "STTC"]  # the superclass order
    assert sup.loc["2"].to_dict() == {"NORM": 0, "MI": 1, "STTC": 1}
    assert sup.loc["4"].to_dict() == {"NORM": 1, "MI": 1, "STTC": 0}  # every likelihood counts
    assert sup.attrs["unlabelled"] == ["3"]  # no diagnostic statement: left out
    assert ptbxl_labels(tiny_db, "subdiagnostic").loc["2"].to_dict() == {"AMI": 1, "IMI": 1, "NORM": 0, "STTC": 1}
    assert list(ptbxl_labels(tiny_db, "diagnostic").columns) == ["ASMI", "IMI", "NDT", "NORM"]
    form = ptbxl_labels(tiny_db, "form")
    assert list(form.index) == ["1", "2", "3"] and list(form.columns) == ["LVOLT", "NDT"]
    rhythm = ptbxl_labels(tiny_db, "rhythm")
    assert rhythm.to_dict("index") == {"1": {"AFIB": 0, "SR": 1}, "2": {"AFIB": 1, "SR": 0}, "3": {"AFIB": 0, "SR": 1}}
    assert ptbxl_labels(tiny_db, "all").shape == (4, 7)
    assert ptbxl_labels(tiny_db, "superdiagnostic", min_likelihood=50).loc["4"].to_dict() == {"NORM": 1, "MI": 0, "STTC": 0}
    assert list(ptbxl_labels(tiny_db, "rhythm", ["3", "1"]).index) == ["3", "1"]
    assert ptbxl_folds(tiny_db) == {"1": 3, "2": 9, "3": 10, "4": 1}


def test_reader_errors_name_the_input(tiny_db, tmp_path):
    with pytest.raises(HsickitError, match="unknown PTB-XL task 'sub'"):
        ptbxl_labels(tiny_db, "sub")
    with pytest.raises(HsickitError, match="records100/00000/00001_lr.hea"):
        ptbxl_records(tiny_db)  # the records are not there
    with pytest.raises(HsickitError, match="not in .*ptbxl_database.csv"):
        ptbxl_labels(tiny_db, "all", ["7"])
    bad = _write_db(tmp_path / "bad", [(1, "{'NORM': 100.0", 3)])
    with pytest.raises(HsickitError, match=r"row 1: scp_codes"):
        read_ptbxl_database(bad)
    (bad / "ptbxl_database.csv").write_text("ecg_id,scp_codes\n1,{}\n")
    with pytest.raises(HsickitError, match="no column.*strat_fold"):
        read_ptbxl_database(bad)


def test_the_500_hz_release_is_read_when_only_it_is_there(tiny_db):
    hr = tiny_db / "records500" / "00000"
    hr.mkdir(parents=True)
    for r in (1, 2):
        (hr / f"{r:05d}_hr.hea").write_text("")
    assert ptbxl_records(tiny_db) == ["1", "2"]
    assert ptbxl_record_path(tiny_db, "2").endswith("records500/00000/00002_hr")
    with pytest.raises(HsickitError, match="100 or 500 Hz"):
        ptbxl_records(tiny_db, sampling_rate=250)


@needs_ptbxl
def test_real_sample_labels_and_folds():
    names = ptbxl_records(PTBXL)
    assert len(names) == 859
    folds = ptbxl_folds(PTBXL, names)
    assert [sum(f == k for f in folds.values()) for k in range(1, 10)] == [101, 92, 77, 97, 85, 76, 108, 87, 136]  # README
    sup = ptbxl_labels(PTBXL, "superdiagnostic", names)
    assert list(sup.columns) == ["NORM", "MI", "STTC", "CD", "HYP"] and len(sup) + len(sup.attrs["unlabelled"]) == 859
    counts = sup.sum()
    assert counts["NORM"] > counts["STTC"] > counts["HYP"] > 0
    assert "SR" in ptbxl_labels(PTBXL, "rhythm", names).columns


def test_augmentation_crops_scales_and_wanders():
    x = torch.arange(2 * 3 * 100, dtype=torch.float32).reshape(2, 3, 100)
    g = torch.Generator().manual_seed(0)
    plain = augment_records(x, 100.0, 40, g, scale=0.0, wander=0.0, noise=0.0)
    assert plain.shape == (2, 3, 40)
    for i in range(2):  # a contiguous span of the record, the same on every lead
        s = int(plain[i, 0, 0] - x[i, 0, 0])
        torch.testing.assert_close(plain[i], x[i, :, s:s + 40])
    a = augment_records(x, 100.0, 100, torch.Generator().manual_seed(1), wander=0.0, noise=0.0)
    ratio = a[:, :, 1:] / x[:, :, 1:]
    assert torch.allclose(ratio, ratio[:, :, :1]) and ratio.min() >= 0.8 and ratio.max() <= 1.2 and ratio.std() > 0
    w = augment_records(torch.zeros(64, 1, 1000), 100.0, 1000, torch.Generator().manual_seed(2), scale=0.0, noise=0.0)
    assert w.abs().max() <= 0.3 and w.abs().max() > 0.05
    assert (w[:, :, 1:] - w[:, :, :-1]).abs().max() < 0.01  # slow: below 0.5 Hz
    b = augment_records(x, 100.0, 40, torch.Generator().manual_seed(0))
    torch.testing.assert_close(b, augment_records(x, 100.0, 40, torch.Generator().manual_seed(0)))


def _toy_records(n=32, seed=0):
    """Label 0: a 7 Hz oscillation on lead 0; label 1: sharp spikes on lead 1; noise elsewhere."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, 2)) > 0.5).astype(np.float32)
    t = np.arange(400) / 100.0
    X = rng.normal(0, 0.3, size=(n, 2, 400)).astype(np.float32)
    X[:, 0] += Y[:, :1] * 1.5 * np.sin(2 * np.pi * 7 * t)
    X[:, 1, ::40] += Y[:, 1:] * 6.0
    return X, Y


@pytest.mark.parametrize("training", ["backprop", "hsic"])
def test_record_cnn_learns_tiny_records_and_roundtrips(training, tmp_path):
    X, Y = _toy_records()
    net = RecordCNN(model_params={"channels": (8, 16)}, training=training, epochs=25, batch_size=16, crop=200, lr=1e-2,
                    random_state=0).fit(X, Y)
    Xt, Yt = _toy_records(seed=1)
    p = net.predict_proba(Xt)
    assert p.shape == (32, 2) and net.transform(Xt).shape == (32, 32)
    for j in range(2):
        assert p[Yt[:, j] == 1, j].mean() > p[Yt[:, j] == 0, j].mean() + 0.2
    assert len(net.history_) == 25 and all(np.isfinite(r["train_loss"]) for r in net.history_)
    net.save(tmp_path / "cnn")
    np.testing.assert_allclose(RecordCNN.load(tmp_path / "cnn").predict_proba(Xt), p, atol=1e-6)


def test_record_cnn_keeps_its_best_validation_epoch_and_resumes(tmp_path, monkeypatch):
    X, Y = _toy_records(16)
    Xv, Yv = _toy_records(8, seed=2)
    kw = dict(model_params={"channels": (4, 8)}, epochs=4, batch_size=8, crop=200, random_state=0)
    straight = RecordCNN(**kw).fit(X, Y, Xv, Yv)
    val = [r["val_loss"] for r in straight.history_]
    assert len(val) == 4
    real, calls = channels_module.augment_records, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 5:  # epoch 3's first batch
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(channels_module, "augment_records", interrupted)
    net = RecordCNN(**kw, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, Xv, Yv)
    assert (tmp_path / "ckpt" / "checkpoint.safetensors").exists()
    resumed = RecordCNN(**kw, checkpoint_dir=tmp_path / "ckpt").fit(X, Y, Xv, Yv)
    assert [r["val_loss"] for r in resumed.history_] == pytest.approx(val, rel=1e-5)
    np.testing.assert_allclose(resumed.predict_proba(Xv), straight.predict_proba(Xv), atol=1e-5)
    assert not (tmp_path / "ckpt" / "checkpoint.safetensors").exists()


def test_label_weights_and_thresholds():
    assert label_weights(np.array([[1, 1], [0, 1], [0, 1], [0, 0]]), "sqrt").round(3).tolist() == [1.732, 0.577]
    with pytest.raises(HsickitError, match="pos_weight"):
        label_weights(np.ones((2, 1)), "inverse")
    Y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    P = np.array([[0.9, 0.2], [0.6, 0.1], [0.7, 0.3], [0.1, 0.8]])
    t = choose_thresholds(Y, P)
    assert t[0] == pytest.approx(0.35) and t[1] == pytest.approx(0.55)  # F1 1.0 for label 1, 0.8 for label 0 (0.65 would give 0.67)
    assert choose_thresholds(np.zeros((3, 1)), np.ones((3, 1))).tolist() == [0.5]


def _record_set(n, seed, names_from=0):
    X, Y = _toy_records(n, seed)
    rhythm = np.repeat(X, 4, axis=1)[:, :, :1000] if X.shape[2] >= 1000 else np.tile(X, (1, 4, 3))[:, :, :1000]
    rng = np.random.default_rng(seed)
    return RecordSet(rhythm.astype(np.float32), rng.normal(size=(n, 8, 70)).astype(np.float32),
                     rng.normal(size=(n, 40)).astype(np.float32), rng.normal(size=(n, 16)).astype(np.float32),
                     rng.normal(size=(n, 6)).astype(np.float32), [str(names_from + i) for i in range(n)], Y, ["osc", "spike"])


def test_thresholds_are_chosen_on_validation_records_only():
    train, val_a, val_b = _record_set(40, 0), _record_set(16, 1, 100), _record_set(16, 2, 200)
    kw = dict(channels=("rr",), channel_epochs=2, threshold="tune", random_state=0)
    a = RecordClassifier(**kw).fit(train, validation=val_a)
    assert a.thresholds() == pytest.approx(choose_thresholds(val_a.Y, a.predict_proba(val_a)))
    assert a.threshold_records_ == val_a.records
    b = RecordClassifier(**kw).fit(train, validation=val_b)
    np.testing.assert_allclose(a.predict_proba(val_b), b.predict_proba(val_b))  # the same model ...
    assert a.thresholds() != pytest.approx(b.thresholds())  # ... thresholds from other validation records
    inner = RecordClassifier(**kw).fit(train)  # no validation records: held out of the training records
    assert len(inner.threshold_records_) == 8 and set(inner.threshold_records_) <= set(train.records)
    assert inner.scalers_["features"].mean.shape == (6,) and len(inner.nets_["rr"].history_) == 2
    with pytest.raises(HsickitError, match="'tune'"):
        RecordClassifier(channels=("rr",), threshold="best").fit(train)


def test_fused_classifier_with_the_cnn_channel_roundtrips(tmp_path):
    train, val = _record_set(24, 0), _record_set(8, 1, 100)
    clf = RecordClassifier(channels=("rr", "cnn"), channel_epochs=2, cnn_epochs=2, cnn_training="hsic", threshold="tune",
                           random_state=0).fit(train, validation=val)
    assert clf.nets_["cnn"].training == "hsic" and clf.representation(val).shape == (8, 32 + 256 + 6)
    assert clf.channel_proba(val, "cnn").shape == (8, 2)
    clf.save(tmp_path / "m")
    back = RecordClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(back.predict_proba(val), clf.predict_proba(val), atol=1e-5)
    assert back.thresholds() == pytest.approx(clf.thresholds())
    before = {k: v.clone() for k, v in back.nets_["cnn"].model_.state_dict().items()}
    back.set_params(warm_start=True, frozen_blocks=1, channel_epochs=1, cnn_epochs=1).fit(_record_set(12, 3, 300))
    after = back.nets_["cnn"].model_.state_dict()
    stem = [k for k in before if k.startswith("blocks.0.")]
    assert stem and all(torch.equal(before[k], after[k]) for k in stem)  # the frozen stem
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in stem)
    assert len(back.nets_["cnn"].history_) == len(clf.nets_["cnn"].history_) + 1


@needs_ptbxl
@pytest.mark.slow
def test_cli_trains_evaluates_and_predicts_on_ptbxl_records(tmp_path):
    folds = ptbxl_folds(PTBXL, ptbxl_records(PTBXL))
    train = [r for r in folds if folds[r] <= 8][:36]
    val = [r for r in folds if folds[r] == 9][:4]
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task", "records", "--records", str(PTBXL), "--label-task", "superdiagnostic",
                              "--records-list", ",".join(train + val), "--out", str(run), "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["labels_task"] == "superdiagnostic" and config["validation_records"]
    assert set(config["validation_records"]) <= set(val) and not set(config["train_records"]) & set(val)  # fold 9 validates
    assert config["record_config"]["sampling_rate"] == 100.0 and set(config["labels"]) <= {"NORM", "MI", "STTC", "CD", "HYP"}
    assert json.loads((run / "metrics.json").read_text())["n_samples"] == len(config["validation_records"])
    res = runner.invoke(app, ["train", "--task", "beats", "--records", str(PTBXL), "--label-task", "rhythm", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "--label-task" in str(res.exception)
    new = tmp_path / "new"
    new.mkdir()
    for r in val[:2]:
        for ext in (".hea", ".dat"):
            shutil.copy(ptbxl_record_path(PTBXL, r) + ext, new)
    res = runner.invoke(app, ["predict", str(run), str(new), "--out", str(tmp_path / "pred"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "pred" / "record_predictions.csv").open()))
    assert [r["record"] for r in rows] == sorted(p.stem for p in new.glob("*.hea"))
    assert sorted(p.name for p in (tmp_path / "pred" / "plots").iterdir()) == sorted(f"{r['record']}.png" for r in rows)
    assert (tmp_path / "pred" / "plots" / f"{rows[0]['record']}.png").read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["predict", str(run), str(new), "--out", str(tmp_path / "noplots"), "--no-plots", "--quiet"])
    assert res.exit_code == 0 and not (tmp_path / "noplots" / "plots").exists()
    part = tmp_path / "ptbxl-part"  # a PTB-XL folder as released (nested records100/), three of its records
    (part / "records100" / "00000").mkdir(parents=True)
    shutil.copy(PTBXL / "scp_statements.csv", part)
    lines = (PTBXL / "ptbxl_database.csv").read_text().splitlines()
    keep = [line for line in lines[1:] if line.split(",")[0] in val[:3]]
    (part / "ptbxl_database.csv").write_text("\n".join([lines[0], *keep]) + "\n")
    for r in val[:3]:
        for ext in (".hea", ".dat"):
            shutil.copy(ptbxl_record_path(PTBXL, r) + ext, part / "records100" / "00000")
    res = runner.invoke(app, ["predict", str(run), str(part), "--out", str(tmp_path / "part_pred"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "part_pred" / "record_predictions.csv").open()))
    assert [r["record"] for r in rows] == val[:3] and len(list((tmp_path / "part_pred" / "plots").glob("*.png"))) == 3
    res = runner.invoke(app, ["evaluate", str(run), "--records", str(PTBXL), "--records-list", ",".join(val), "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_samples"] == len(ptbxl_labels(PTBXL, "superdiagnostic", val))


@pytest.mark.slow
def test_vote_fusion_averages_the_members_chosen_on_validation_records(tmp_path):
    train, val = _record_set(32, 0), _record_set(16, 1, 100)
    clf = RecordClassifier(channels=("rr", "cnn"), channel_epochs=2, cnn_epochs=15, threshold="tune", fusion="vote",
                           vote_margin=0.05, random_state=0).fit(train, validation=val)
    assert set(clf.vote_auroc_) == {"rr", "cnn", "hrv"}
    best = max(clf.vote_auroc_.values())
    assert clf.vote_ == [c for c, v in clf.vote_auroc_.items() if v >= best - 0.05] and "cnn" in clf.vote_  # rr and HRV are noise here
    np.testing.assert_allclose(clf.predict_proba(val), np.mean([clf.channel_proba(val, c) for c in clf.vote_], axis=0), atol=1e-6)
    clf.save(tmp_path / "m")
    back = RecordClassifier.load(tmp_path / "m")
    assert back.vote_ == clf.vote_
    np.testing.assert_allclose(back.predict_proba(val), clf.predict_proba(val), atol=1e-5)
    with pytest.raises(HsickitError, match="validation records"):
        RecordClassifier(channels=("rr",), fusion="vote").fit(train)


def test_benchmark_bootstrap_weights_are_the_drawn_records():
    import importlib.util

    from hsickit.apps.ecg.metrics import record_metrics

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ecg_records.py"
    spec = importlib.util.spec_from_file_location("ecg_records_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    Y = (rng.random((60, 3)) < 0.3).astype(int)
    P = np.clip(0.3 * Y + 0.8 * rng.random((60, 3)), 0, 1).round(2)  # ties included
    one = bench.bootstrap(Y, P, np.full(3, 0.5), n=1, seed=4)
    draw = np.random.default_rng(4).multinomial(60, np.full(60, 1 / 60))
    idx = np.repeat(np.arange(60), draw)
    m = record_metrics(Y[idx], P[idx], ["a", "b", "c"], 0.5)
    assert one["macro_auroc_low"] == pytest.approx(m["macro_auroc"]) and one["macro_f1_high"] == pytest.approx(m["macro_f1"])
    iv = bench.bootstrap(Y, P, np.full(3, 0.5), n=500)
    full = record_metrics(Y, P, ["a", "b", "c"], 0.5)
    assert iv["macro_auroc_low"] < full["macro_auroc"] < iv["macro_auroc_high"]
