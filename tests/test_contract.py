"""One estimator contract for every application estimator (README, "Estimator contract").

Each estimator is fitted once on small data and checked for: ``fit`` returns self; ``predict``
gives one answer per sample; ``predict_proba`` rows sum to 1 (single-label classifiers);
``score`` is scikit-learn's (accuracy, R², subset accuracy for multi-label); ``evaluate(X, y)``
returns the same keys, and the same numbers, as the metrics.json the application's own command
or pipeline writes for that data; ``save(path)`` / ``cls.load(path)`` predicts the same; and
fine-tuning is ``set_params(warm_start=True, frozen_blocks=k)`` then ``fit``: the frozen blocks
keep their weights, the others move, and ``get_params()`` is what it was before the fit.
"""
from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.metrics import accuracy_score, r2_score
from typer.testing import CliRunner

from hsickit import HsickitError

torch.set_num_threads(1)


@dataclass
class Case:
    """An application estimator with its data. ``labels`` None: the labels travel inside X (ECG)."""

    name: str
    make: Callable
    data: Callable  # () -> dict(train=(X, y), test=(X, y), new=(X, y), new_params={...})
    kind: str  # "classifier", "regressor", "multilabel"
    blocks: Callable | None  # est -> list of block sequences (one per network) whose weights fine-tuning may freeze
    frozen: int | str | None  # the frozen_blocks to fine-tune with (None: the estimator cannot be fine-tuned)
    app_metrics: Callable | None  # (est, data, tmp) -> (metrics.json dict, the evaluate dict of the same model and data)
    extra_json_keys: tuple = ()  # numbers metrics.json holds besides the scores (none but the core demo's timing)

    def fit(self, est, X, y):
        return est.fit(X) if y is None else est.fit(X, y)

    def call(self, est, method, X, y):
        return getattr(est, method)(X) if y is None else getattr(est, method)(X, y)


# --- core ---------------------------------------------------------------------------------------------------
def digits_data():
    """scikit-learn's handwritten digits (8 x 8), as the core demo's 10 classes."""
    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    tr, te, new = order[:400], order[400:600], order[600:800]
    return {"train": (X[tr] / 16, y[tr]), "test": (X[te] / 16, y[te]), "new": (X[new] / 16, y[new]), "new_params": {}}


def regression_data():
    X, y = make_regression(n_samples=160, n_features=5, noise=5.0, random_state=0)
    return {"train": (X[:100], y[:100]), "test": (X[100:130], y[100:130]), "new": (X[130:], y[130:]), "new_params": {}}


def core_blocks(est):
    return [est.model_.blocks]


def core_demo_metrics(est, data, tmp):
    """The core demo's run folder (hsickit.core.demo.write_run), for this model and test data."""
    from hsickit.core.demo import write_run

    X, y = data["test"]
    run = write_run(tmp / "demo", est, {"method": "backprop", "test_accuracy": 0.0, "seconds_per_epoch": 1.0},
                    X, y, est.predict(X))
    return json.loads((run.path / "metrics.json").read_text()), est.evaluate(X, y)


def core_classifier():
    from hsickit.core.estimators import DeepClassifier

    return DeepClassifier(model_params={"hidden": (16, 16)}, epochs=15, lr=1e-2, random_state=0, verbose=0)


def core_regressor():
    from hsickit.core.estimators import DeepRegressor

    return DeepRegressor(model_params={"hidden": (16, 16)}, epochs=15, lr=1e-2, random_state=0, verbose=0)


def no_app_metrics(est, data, tmp):
    """No command writes a DeepRegressor's metrics.json; its evaluate is core's regression_metrics."""
    from hsickit.core.metrics import regression_metrics

    X, y = data["test"]
    return {**regression_metrics(y, est.predict(X)), "split": "test"}, est.evaluate(X, y)


# --- materials ----------------------------------------------------------------------------------------------
def gap_table():
    from hsickit.datasets.materials import demo_table_path, read_formula_table

    return read_formula_table(demo_table_path())  # 1,000 experimental band gaps (Matbench expt_gap)


def materials_data(labels=False):
    t = gap_table()
    f, y = list(t.formulas[:200]), np.asarray(t.y[:200], float)
    if labels:
        y = np.where(y > 0, "nonmetal", "metal")
    return {"train": (f[:120], y[:120]), "test": (f[120:160], y[120:160]), "new": (f[160:], y[160:]), "new_params": {}}


def materials_blocks(est):
    return [m.model_.blocks for m in est.members_]


def materials_metrics(est, data, tmp):
    """`hsickit materials evaluate`'s metrics.json (runs.evaluate_into) on the test rows."""
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.apps.materials.runs import evaluate_into
    from hsickit.core.io import RunFolder
    from hsickit.datasets.materials import read_formula_table

    X, y = data["test"]
    pd.DataFrame({"formula": X, "target": y}).to_csv(tmp / "test.csv", index=False)
    label = isinstance(est, MaterialsClassifier)
    table = read_formula_table(tmp / "test.csv", target_type="label" if label else "number")
    run = RunFolder(tmp / "eval")
    evaluate_into(run, est, table)
    return json.loads((run.path / "metrics.json").read_text()), est.evaluate(table.formulas, table.y)


def materials_regressor():
    from hsickit.apps.materials import MaterialsRegressor

    return MaterialsRegressor(features="ward145", model="mlp", model_params={"hidden": (32, 32)}, n_models=2, epochs=8,
                              batch_size=32, patience=None, random_state=0, verbose=0)


def materials_classifier():
    from hsickit.apps.materials import MaterialsClassifier

    return MaterialsClassifier(features="ward145", model="mlp", model_params={"hidden": (32, 32)}, epochs=8,
                               batch_size=32, patience=None, random_state=0, verbose=0)


def materials_trees():
    from hsickit.apps.materials import MaterialsRegressor

    return MaterialsRegressor(model="extra_trees", model_params={"n_estimators": 30}, random_state=0, verbose=0)


# --- plants -------------------------------------------------------------------------------------------------
IRIS_TAXONOMY = ("species,genus,family\nIris setosa,Iris,Iridaceae\nIris versicolor,Iris,Iridaceae\n"
                 "Iris virginica,Iris,Iridaceae\n")


def taxonomy(species=None):
    from hsickit.datasets.plants import read_taxonomy

    rows = IRIS_TAXONOMY.splitlines()
    keep = [rows[0]] + [r for r in rows[1:] if species is None or r.split(",")[0] in species]
    return read_taxonomy(io.StringIO("\n".join(keep) + "\n"))


def plants_data():
    """Fisher's iris as specimens; the first fit knows two species, fine-tuning adds the third."""
    X, y = load_iris(return_X_y=True)
    names = np.array(["Iris setosa", "Iris versicolor", "Iris virginica"])[y]
    order = np.random.default_rng(0).permutation(len(y))
    two = order[np.isin(names[order], ["Iris setosa", "Iris versicolor"])]
    tr, te = two[:60], two[60:]
    new = order[np.isin(names[order], ["Iris virginica"])][:30]
    new = np.r_[new, tr[:20]]
    return {"train": (X[tr].astype(np.float32), names[tr]), "test": (X[te].astype(np.float32), names[te]),
            "new": (X[new].astype(np.float32), names[new]), "new_params": {"taxonomy": taxonomy()}}


def plants_classifier():
    from hsickit.apps.plants import TaxonomicClassifier

    return TaxonomicClassifier(taxonomy(["Iris setosa", "Iris versicolor"]), model_params={"hidden": (16, 16)}, epochs=15,
                               patience=None, batch_size=16, random_state=0, verbose=0)


def plants_blocks(est):
    return [est.net_.model_.blocks]


def plants_metrics(est, data, tmp):
    """`hsickit plants train` then `hsickit plants evaluate` (the CLI) on the test specimens; evaluate of the run's model."""
    from hsickit.apps.plants import TaxonomicClassifier
    from hsickit.apps.plants.cli import app

    frames = []
    for split in ("train", "test"):
        X, y = data[split]
        frames.append(pd.DataFrame({"id": [f"{split}{i}" for i in range(len(y))], "species": y, "split": split,
                                    **{f"f{j}": X[:, j] for j in range(X.shape[1])}}))
    pd.concat(frames).to_csv(tmp / "specimens.csv", index=False)
    (tmp / "taxonomy.csv").write_text(IRIS_TAXONOMY)
    runner = CliRunner()
    for args in (["train", "--features", tmp / "specimens.csv", "--taxonomy", tmp / "taxonomy.csv", "--split", "train",
                  "--epochs", 10, "--out", tmp / "run", "--quiet"],
                 ["evaluate", tmp / "run", "--features", tmp / "specimens.csv", "--split", "test", "--out", tmp / "ev",
                  "--quiet"]):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, (res.output, res.exception)
    X, y = data["test"]
    return json.loads((tmp / "ev" / "metrics.json").read_text()), TaxonomicClassifier.load(tmp / "run").evaluate(X, y)


# --- ECG ----------------------------------------------------------------------------------------------------
def ecg_beat_data():
    import tempfile

    from hsickit.apps.ecg import load_beats, write_synthetic_records

    folder = write_synthetic_records(tempfile.mkdtemp(), 4, 30, random_state=0)
    beats = load_beats(folder, verbose=0)
    names = sorted(set(beats.record.astype(str)))
    return {"train": (beats.records(names[:2]), None), "test": (beats.records(names[2:3]), None),
            "new": (beats.records(names[3:]), None), "new_params": {}, "folder": folder}


def ecg_beat_classifier():
    from hsickit.apps.ecg import MultiResolutionClassifier

    # one-stage boosting: the default two-stage downstream (5 seeds x 2 stages) takes ~6 CPU-s to save with skops
    return MultiResolutionClassifier(channels=("rr",), downstream="gradient_boosting", channel_epochs=2, epochs=3,
                                     random_state=0, verbose=0)


def ecg_beat_blocks(est):
    return [net.estimator_.model_.blocks for net in est.channels_.values()]


def ecg_beat_metrics(est, data, tmp):
    """train_beats then evaluate_beats (the pipelines behind `hsickit ecg train` / `evaluate`); evaluate of the run's model."""
    from hsickit.apps.ecg.api import evaluate_beats, load_run, train_beats
    from hsickit.apps.ecg.beats import load_beats

    folder = data["folder"]
    names = sorted({*data["train"][0].record.astype(str), *data["test"][0].record.astype(str)})
    train_beats(folder, tmp / "run", names[:2], "none", channels=("rr",), downstream="gradient_boosting", channel_epochs=1,
                epochs=1, random_state=0, verbose=0)
    evaluate_beats(tmp / "run", folder, names[2:3], out=tmp / "ev", verbose=0)
    clf, config = load_run(tmp / "run")
    beats = load_beats(folder, names[2:3], config, annotated=True, verbose=0)
    return json.loads((tmp / "ev" / "metrics.json").read_text()), clf.evaluate(beats)


LEADS = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]


def ludb_like_folder(d: Path) -> Path:
    """Ten 10-s 12-lead records in LUDB's layout: every other one with ventricular extrasystoles."""
    from hsickit.apps.ecg.signal import resample
    from hsickit.apps.ecg.synthetic import synthetic_record

    d.mkdir(parents=True, exist_ok=True)
    rows = ["ID,Sex,Age,Rhythms,Extrasystolies"]
    for i in range(10):
        ectopic = i % 2 == 1
        sig, _, _ = synthetic_record(10, rates={"S": 0.0, "V": 0.35 if ectopic else 0.0, "F": 0.0}, random_state=i)
        x = resample(sig.T, 360, 500)
        leads = np.stack([x[k % 2] * (1 + 0.1 * k) for k in range(12)], 1).astype(float)
        wfdb.wrsamp(str(i + 1), fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=leads, fmt=["16"] * 12, write_dir=str(d))
        rows.append(f'{i + 1},F,50,Sinus rhythm,{"Ventricular extrasystole" if ectopic else ""}')
    (d / "ludb.csv").write_text("\n".join(rows) + "\n")
    return d


def ecg_record_data():
    import tempfile

    from hsickit.apps.ecg.records import load_record_set

    folder = ludb_like_folder(Path(tempfile.mkdtemp()) / "ludb")
    rs = load_record_set(folder, verbose=0)
    r = list(rs.records)
    return {"train": (rs.subset(r[:6]), None), "test": (rs.subset(r[6:8]), None), "new": (rs.subset(r[6:]), None),
            "new_params": {}, "folder": folder, "records": r}


def ecg_record_classifier():
    from hsickit.apps.ecg.records import RecordClassifier

    return RecordClassifier(channels=("rr",), downstream="mlp", epochs=5, channel_epochs=5, random_state=0, verbose=0)


def ecg_record_blocks(est):
    return [net.model_.blocks for net in est.nets_.values()] + [est.downstream_.model_.blocks]


def ecg_record_metrics(est, data, tmp):
    """train_records then evaluate_records (behind `hsickit ecg train --task records` / `evaluate`)."""
    from hsickit.apps.ecg.records import evaluate_records, load_record_run, load_record_set, train_records

    folder, r = data["folder"], data["records"]
    train_records(folder, tmp / "run", r[:6], r[6:8], channels=("rr",), epochs=2, verbose=0)
    evaluate_records(tmp / "run", folder, r[6:], out=tmp / "ev", verbose=0)
    clf, config = load_record_run(tmp / "run")
    return (json.loads((tmp / "ev" / "metrics.json").read_text()),
            clf.evaluate(load_record_set(folder, r[6:], config, labels=clf.labels_, verbose=0)))


CASES = [
    Case("core-DeepClassifier", core_classifier, digits_data, "classifier", core_blocks, 1, core_demo_metrics,
         extra_json_keys=("seconds_per_epoch",)),
    Case("core-DeepRegressor", core_regressor, regression_data, "regressor", core_blocks, 1, no_app_metrics),
    Case("materials-MaterialsRegressor", materials_regressor, materials_data, "regressor", materials_blocks, 1,
         materials_metrics),
    Case("materials-MaterialsClassifier", materials_classifier, lambda: materials_data(labels=True), "classifier",
         materials_blocks, 1, materials_metrics),
    Case("materials-extra_trees", materials_trees, materials_data, "regressor", None, None, materials_metrics),
    Case("plants-TaxonomicClassifier", plants_classifier, plants_data, "classifier", plants_blocks, 1, plants_metrics),
    Case("ecg-MultiResolutionClassifier", ecg_beat_classifier, ecg_beat_data, "classifier", ecg_beat_blocks, 1,
         ecg_beat_metrics),
    Case("ecg-RecordClassifier", ecg_record_classifier, ecg_record_data, "multilabel", ecg_record_blocks, 1,
         ecg_record_metrics),
]


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def fitted(request):
    case = request.param
    data = case.data()
    est = case.make()
    params = est.get_params()
    returned = case.fit(est, *data["train"])
    assert est.get_params() == params  # a first fit changes no parameter either
    return case, est, returned, data


def _labels(case, X, y):
    if y is not None:
        return np.asarray(y)
    return X.Y if case.kind == "multilabel" else X.y.astype(str)


def test_fit_returns_self(fitted):
    case, est, returned, _ = fitted
    assert returned is est


def test_predict_and_predict_proba(fitted):
    case, est, _, data = fitted
    X, y = data["test"]
    n = len(_labels(case, X, y))
    pred = est.predict(X)
    assert len(pred) == n
    if case.kind == "classifier":
        proba = est.predict_proba(X)
        assert proba.shape == (n, len(est.classes_))
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(est.classes_)[proba.argmax(1)], pred)
    elif case.kind == "multilabel":
        proba = est.predict_proba(X)
        assert proba.shape == pred.shape and ((proba >= 0) & (proba <= 1)).all()  # one probability per label


def test_score_is_scikit_learns(fitted):
    case, est, _, data = fitted
    X, y = data["test"]
    score = case.call(est, "score", X, y)
    assert isinstance(score, float)
    truth = _labels(case, X, y)
    expected = r2_score(truth, est.predict(X)) if case.kind == "regressor" else accuracy_score(truth, est.predict(X))
    assert score == pytest.approx(expected)


def _same(a, b):
    if a is None or b is None:  # NaN is written as null
        return (a is None or np.isnan(a)) and (b is None or np.isnan(b))
    return a == pytest.approx(b, rel=1e-6, abs=1e-9)


def test_evaluate_gives_what_metrics_json_gets(fitted, tmp_path):
    case, est, _, data = fitted
    written, evaluated = case.app_metrics(est, data, tmp_path)
    assert isinstance(evaluated, dict)
    scores = {k for k, v in written.items() if k != "split" and not isinstance(v, str)} - set(case.extra_json_keys)
    assert set(evaluated) == scores  # run-folder notes (split, which records / data) are strings beside them
    for k in scores:  # the same function computed both, on the same model and data
        assert _same(written[k], evaluated[k]), (k, written[k], evaluated[k])


def test_save_load_round_trip(fitted, tmp_path):
    case, est, _, data = fitted
    X, _ = data["test"]
    est.save(tmp_path / "saved")
    back = type(est).load(tmp_path / "saved")
    assert type(back) is type(est)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if case.kind != "regressor":
        np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X), rtol=1e-5, atol=1e-6)


def _weights(blocks):
    return [[p.detach().clone() for p in block.parameters()] for net in blocks for block in net]


def test_warm_start_fine_tunes_with_frozen_blocks(fitted):
    case, est, _, data = fitted
    est = copy.deepcopy(est)
    X, y = data["new"]
    est.set_params(warm_start=True, frozen_blocks=case.frozen if case.frozen is not None else 1, **data["new_params"])
    params = est.get_params()
    if case.frozen is None:  # tree ensembles do not continue training
        with pytest.raises(HsickitError, match="cannot be fine-tuned"):
            case.fit(est, X, y)
        return
    per_net = [len(net) for net in case.blocks(est)]
    before = _weights(case.blocks(est))
    assert case.fit(est, X, y) is est
    after = _weights(case.blocks(est))
    assert est.get_params() == params  # fitting changed no parameter (taxonomy included)
    start = 0
    for n in per_net:
        for i in range(n):
            same = all(torch.equal(a, b) for a, b in zip(before[start + i], after[start + i]))
            assert same == (i < case.frozen), f"block {i} of a network with {n}: {'unchanged' if same else 'changed'}"
        start += n
    if data["new_params"].get("taxonomy") is not None:  # plants: the new species grew the output layer
        assert len(est.classes_) == 3 and set(est.predict(X)) <= set(est.classes_)
