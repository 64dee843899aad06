"""Record-level multi-label task (LUDB-style folder written here; the shared LUDB/CinC data when present)."""
import csv
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from typer.testing import CliRunner

from hsickit import HsickitError
from hsickit.apps.ecg.cli import app
from hsickit.apps.ecg.records import RecordClassifier, load_record_set, record_labels
from hsickit.apps.ecg.signal import resample
from hsickit.apps.ecg.synthetic import synthetic_record

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg"
LEADS = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]


@pytest.fixture(scope="module")
def ludb_like(tmp_path_factory):
    d = tmp_path_factory.mktemp("ludb")
    rows = ["ID,Sex,Age,Rhythms,Extrasystolies"]
    for i in range(10):
        ectopic = i % 2 == 1
        sig, _, _ = synthetic_record(10, rates={"S": 0.0, "V": 0.35 if ectopic else 0.0, "F": 0.0}, random_state=i)
        x = resample(sig.T, 360, 500)  # (2, 5000)
        leads = np.stack([x[k % 2] * (1 + 0.1 * k) for k in range(12)], 1).astype(float)
        wfdb.wrsamp(str(i + 1), fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=leads, fmt=["16"] * 12, write_dir=str(d))
        rows.append(f'{i + 1},F,50,Sinus rhythm,{"Ventricular extrasystole" if ectopic else ""}')
    (d / "ludb.csv").write_text("\n".join(rows) + "\n")
    return d


def test_record_set_views_and_labels(ludb_like):
    rs = load_record_set(ludb_like, verbose=0)
    assert rs.rhythm.shape == (10, 8, 1000) and rs.beat.shape == (10, 8, 350)
    assert rs.wavelet.shape == (10, 40) and rs.rr.shape == (10, 16) and rs.features.shape == (10, 10)  # HRV + measurements
    assert rs.labels == ["Extrasystolies", "Sinus rhythm"] and rs.Y[:, 0].tolist() == [0, 1] * 5
    with pytest.raises(HsickitError, match="no record labels"):
        record_labels(ludb_like / "nothing")


def test_record_set_is_the_same_read_by_several_processes(ludb_like):
    one = load_record_set(ludb_like, verbose=0, n_jobs=1)
    two = load_record_set(ludb_like, verbose=0, n_jobs=2)
    assert two.records == one.records
    for view in ("rhythm", "beat", "wavelet", "rr", "features", "Y"):
        np.testing.assert_array_equal(two.view(view), one.view(view))


@pytest.mark.parametrize("downstream", ["logistic", "mlp"])
def test_record_classifier_learns_and_roundtrips(ludb_like, tmp_path, downstream):
    rs = load_record_set(ludb_like, verbose=0)
    clf = RecordClassifier(downstream=downstream, epochs=30, channel_epochs=20, random_state=0).fit(rs)
    p = clf.predict_proba(rs)
    assert p.shape == (10, 2)
    assert p[rs.Y[:, 0] == 1, 0].mean() > p[rs.Y[:, 0] == 0, 0].mean()  # ectopy is learnt
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(RecordClassifier.load(tmp_path / "m").predict_proba(rs), p, atol=1e-5)
    if downstream == "logistic":
        with pytest.raises(HsickitError, match="downstream='mlp'"):
            RecordClassifier(training="hsic", channel_epochs=1).fit(rs)


@pytest.mark.slow
def test_cli_train_and_evaluate_records(ludb_like, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--records", str(ludb_like), "--task", "records", "--out", str(tmp_path / "run"),
                              "--validation-list", "9,10", "--epochs", "10", "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("macro_f1", "micro_f1", "macro_auroc", "f1_Extrasystolies", "auroc_Extrasystolies"):
        assert key in m
    assert m["n_samples"] == 2 and "channel:rhythm" in (tmp_path / "run" / "README.md").read_text()
    assert "macro_f1" in res.stdout and "{" not in res.stdout  # a table, not JSON
    res = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--records", str(ludb_like), "--records-list", "1,2,3,4", "--quiet",
                              "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "run" / f"eval-{ludb_like.name}" / "metrics.json").read_text())  # beside the run
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n_samples"] == 2  # training's are kept
    assert m["n_samples"] == 4 and None in m.values()  # an AUROC over 4 records is undefined: null
    assert "NaN" not in res.stdout and json.loads(res.stdout) == m  # the console shows metrics.json, not Python's NaN


@pytest.mark.slow
def test_cli_finetunes_a_record_model_on_new_records(ludb_like, tmp_path):
    runner = CliRunner()
    base, tuned = tmp_path / "run", tmp_path / "tuned"
    res = runner.invoke(app, ["train", "--records", str(ludb_like), "--records-list", "1,2,3,4,5,6", "--task", "records",
                              "--out", str(base), "--validation-list", "5,6", "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["finetune", str(base), "--records", str(ludb_like), "--records-list", "7,8,9,10", "--validation-list", "9,10",
                              "--out", str(tuned), "--epochs", "3", "--quiet"])
    assert res.exit_code == 0, res.output
    before, after = RecordClassifier.load(base / "model"), RecordClassifier.load(tuned / "model")
    assert after.labels_ == before.labels_
    w0, w1 = (m.nets_["rhythm"].model_.state_dict() for m in (before, after))
    first = [k for k in w0 if k.startswith("blocks.0.")]
    assert first and all(torch.equal(w0[k], w1[k]) for k in first)  # the frozen first block
    assert any(not torch.equal(w0[k], w1[k]) for k in w0 if k not in first)  # the rest trained on the new records
    config = json.loads((tuned / "config.json").read_text())
    assert config["base_run"] == str(base.resolve()) and config["train_records"] == ["7", "8"]
    assert json.loads((tuned / "metrics.json").read_text())["n_samples"] == 2
    other = load_record_set(ludb_like, ["7", "8"], labels=before.labels_[:1], verbose=0)
    assert other.dropped_labels == before.labels_[1:]  # carried by these records, not asked for
    assert config["ignored_labels"] == []
    with pytest.raises(HsickitError, match=r"labels=model.labels_"):
        before.set_params(warm_start=True).fit(other)


@pytest.fixture(scope="module")
def record_run(ludb_like, tmp_path_factory):
    """A record model trained on records 1-6 (5 and 6 for validation)."""
    run = tmp_path_factory.mktemp("records_run") / "run"
    res = CliRunner().invoke(app, ["train", "--records", str(ludb_like), "--records-list", "1,2,3,4,5,6", "--task", "records",
                                   "--out", str(run), "--validation-list", "5,6", "--quiet"])
    assert res.exit_code == 0, res.output
    return run


@pytest.mark.slow
def test_predict_records_without_labels(ludb_like, record_run, tmp_path):
    new = tmp_path / "new"  # records 7-10 without ludb.csv: nothing to read labels from
    new.mkdir()
    for r in ("7", "8", "9", "10"):
        for ext in (".hea", ".dat"):
            shutil.copy(ludb_like / f"{r}{ext}", new)
    assert "Carried by every training record (predicted for every record): Sinus rhythm" in (record_run / "README.md").read_text()
    clf = RecordClassifier.load(record_run / "model")
    with pytest.raises(HsickitError, match="labelled=False"):
        load_record_set(new, labels=clf.labels_, verbose=0)
    rs = load_record_set(new, labels=clf.labels_, labelled=False, verbose=0)
    assert rs.Y is None and rs.labels == clf.labels_ and rs.records == ["7", "8", "9", "10"]
    with pytest.raises(HsickitError, match="without labels"):
        RecordClassifier().fit(rs)
    proba, pred = clf.predict_proba(rs), clf.predict(rs)
    assert proba.shape == pred.shape == (4, len(clf.labels_)) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (proba >= 0.5).astype(int))
    assert clf.set_params(threshold=[1.0, 0.0]).predict(rs)[:, 1].all()  # one threshold per label
    with pytest.raises(HsickitError, match="one per label"):
        clf.set_params(threshold=[0.5]).predict(rs)

    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(record_run), str(new), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "out" / "record_predictions.csv").open()))
    assert [r["record"] for r in rows] == rs.records
    assert list(rows[0]) == ["record"] + [f"p_{lab}" for lab in clf.labels_] + ["predicted"]
    np.testing.assert_allclose([[float(r[f"p_{lab}"]) for lab in clf.labels_] for r in rows], proba, atol=1e-4)
    assert [r["predicted"] for r in rows] == [";".join(lab for lab, on in zip(clf.labels_, y) if on) for y in pred]
    res = runner.invoke(app, ["predict", str(record_run), str(new / "8"), "--out", str(tmp_path / "one"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "one" / "record_predictions.csv").open()))
    assert [r["record"] for r in rows] == ["8"] and float(rows[0]["p_Extrasystolies"]) == pytest.approx(proba[1, 0], abs=1e-4)
    res = runner.invoke(app, ["predict", str(record_run), str(new / "99"), "--out", str(tmp_path / "none")])
    assert res.exit_code != 0 and "neither a folder of records nor a record" in str(res.exception)


def test_a_record_model_predicts_with_the_detector_it_was_saved_with(ludb_like, record_run, tmp_path, monkeypatch):
    """New runs save gqrs (the default); a run saved with pantompkins predicts with it, one saved before the
    option existed with gqrs."""
    import hsickit.apps.ecg.records as records

    assert json.loads((record_run / "config.json").read_text())["record_config"]["detector"] == "gqrs"
    used = []
    real = records.detect_rpeaks
    monkeypatch.setattr(records, "detect_rpeaks", lambda x, fs, method: used.append(method) or real(x, fs, method=method))
    for name, edit, expected in (("fast", lambda c: c.update(detector="pantompkins"), "pantompkins"),
                                 ("unset", lambda c: c.pop("detector"), "gqrs"), ("new", lambda c: None, "gqrs")):
        old = tmp_path / name
        shutil.copytree(record_run, old)
        config = json.loads((old / "config.json").read_text())
        edit(config["record_config"])
        (old / "config.json").write_text(json.dumps(config))
        used.clear()
        res = CliRunner().invoke(app, ["predict", str(old), str(ludb_like / "3"), "--out", str(tmp_path / f"out_{name}"),
                                       "--no-plots", "--quiet"])
        assert res.exit_code == 0, res.output
        assert used == [expected], name


def test_finetuning_without_a_label_keeps_its_classifier(ludb_like, record_run, tmp_path):
    base = RecordClassifier.load(record_run / "model")
    j = base.labels_.index("Extrasystolies")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no raw scikit-learn warning about constant labels
        res = CliRunner().invoke(app, ["finetune", str(record_run), "--records", str(ludb_like), "--records-list", "7,9",
                                       "--out", str(tmp_path / "tuned"), "--epochs", "3", "--quiet"])
    assert res.exit_code == 0, res.output  # records 7 and 9: no extrasystole, both sinus rhythm
    tuned = RecordClassifier.load(tmp_path / "tuned" / "model")
    rs = load_record_set(ludb_like, labels=base.labels_, verbose=0)
    p = tuned.predict_proba(rs)[:, j]
    assert p.std() > 1e-3  # not a constant classifier
    assert p[rs.Y[:, j] == 1].mean() > p[rs.Y[:, j] == 0].mean()  # and it still tells ectopy apart
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["labels_kept_from_base_model"] == ["Extrasystolies", "Sinus rhythm"]
    assert "classifier kept" in (tmp_path / "tuned" / "README.md").read_text()


@pytest.mark.skipif(not (SHARED / "cinc2021-sample").exists(), reason="shared CinC 2021 sample absent")
def test_real_cinc_record_set():
    rs = load_record_set(SHARED / "cinc2021-sample", ["E07500", "JS20004", "HR06000"], min_count=1, verbose=0)
    assert rs.rhythm.shape == (3, 8, 1000) and "PAC" in rs.labels
    assert any("JS20004" in r and "flat" in r for r in rs.repairs)  # flat leads kept and reported


@pytest.mark.slow
def test_an_interrupted_record_train_resumes(ludb_like, tmp_path, monkeypatch):
    from hsickit.core.estimators import DeepClassifier

    args = ["train", "--records", str(ludb_like), "--records-list", "1,2,3,4,5,6", "--task", "records",
            "--validation-list", "5,6", "--quiet"]
    fits, real_fit, state = [], DeepClassifier.fit, {"interrupt": True}

    def interrupted_fit(net, *a, **k):  # the third of the four channel networks is interrupted
        fits.append(net)
        if len(fits) == 3 and state["interrupt"]:
            raise KeyboardInterrupt
        return real_fit(net, *a, **k)

    monkeypatch.setattr(DeepClassifier, "fit", interrupted_fit)
    runner = CliRunner()
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 130 and not (tmp_path / "run").exists()
    assert sorted(p.name for p in (tmp_path / ".run.training" / "checkpoints").iterdir()) == ["beat", "rhythm"]
    fits.clear()
    state["interrupt"] = False
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert len(fits) == 2 and not (tmp_path / ".run.training").exists()
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "straight")]).exit_code == 0
    rs = load_record_set(ludb_like, ["7", "8", "9", "10"], verbose=0)
    resumed, straight = (RecordClassifier.load(tmp_path / name / "model") for name in ("run", "straight"))
    np.testing.assert_array_equal(resumed.predict_proba(rs), straight.predict_proba(rs))
