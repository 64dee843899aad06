"""MaterialsRegressor / MaterialsClassifier: fit, ensemble, save/load (no pickle), fine-tune, HSIC."""
import numpy as np
import pytest
import torch

from hsickit import HsickitError
from hsickit.apps.materials import MaterialsClassifier, MaterialsRegressor, load_estimator
from hsickit.datasets.materials import demo_table_path, read_formula_table

pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gaps():
    t = read_formula_table(demo_table_path())
    return t.formulas[:300], t.y[:300]


SMALL = dict(model="mlp", model_params={"hidden": (64, 64)}, lr=1e-3, batch_size=32)


def test_learns_better_than_mean(gaps):
    f, y = gaps
    reg = MaterialsRegressor(epochs=40, patience=None, random_state=0, **SMALL).fit(f[:240], y[:240])
    pred = reg.predict(f[240:])
    assert pred.shape == (60,)
    mae = np.abs(pred - y[240:]).mean()
    baseline = np.abs(y[:240].mean() - y[240:]).mean()
    assert mae < 0.8 * baseline, (mae, baseline)


def test_ensemble_save_load_roundtrip(gaps, tmp_path):
    f, y = gaps
    reg = MaterialsRegressor(epochs=3, n_models=2, random_state=1, **SMALL).fit(f[:100], y[:100])
    mean, std = reg.predict(["Fe2O3", "NaCl", "GaAs"], return_std=True)
    assert mean.shape == std.shape == (3,) and (std > 0).all()
    reg.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").rglob("*") if p.is_file())
    assert "materials.json" in files and files.count("model.safetensors") == 2
    assert not any(n.endswith((".pkl", ".pickle", ".pt", ".joblib")) for n in files)
    back = MaterialsRegressor.load(tmp_path / "m")
    m2, s2 = back.predict(["Fe2O3", "NaCl", "GaAs"], return_std=True)
    np.testing.assert_allclose(m2, mean, rtol=1e-6)
    np.testing.assert_allclose(s2, std, rtol=1e-6)
    np.testing.assert_allclose(back.feature_mean_, reg.feature_mean_)
    assert isinstance(load_estimator(tmp_path / "m"), MaterialsRegressor)
    with pytest.raises(HsickitError, match="MaterialsClassifier.load|holds a MaterialsRegressor"):
        MaterialsClassifier.load(tmp_path / "m")


def test_irnet_fine_tune_freezes_blocks(gaps):
    f, y = gaps
    reg = MaterialsRegressor(model="irnet17", epochs=1, patience=None, random_state=0).fit(f[:64], y[:64])
    net = reg.members_[0].model_
    before = [p.detach().clone() for p in net.blocks[0].parameters()] + [p.detach().clone() for p in net.blocks[1].parameters()]
    later = [p.detach().clone() for p in net.blocks[5].parameters()]
    p0 = reg.predict(f[200:210])
    params = reg.get_params()
    reg.set_params(warm_start=True, frozen_blocks=2, epochs=2).fit(f[64:128], y[64:128] + 1.0)
    assert reg.get_params() == {**params, "warm_start": True, "frozen_blocks": 2, "epochs": 2}  # fit changed none
    net = reg.members_[0].model_
    after = list(net.blocks[0].parameters()) + list(net.blocks[1].parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert not all(torch.equal(a, b) for a, b in zip(later, net.blocks[5].parameters()))
    assert not np.allclose(p0, reg.predict(f[200:210]))
    assert reg.fine_tuned_ == 1
    with pytest.raises(HsickitError, match="frozen_blocks=99"):
        reg.set_params(frozen_blocks=99).fit(f[:10], y[:10])
    reg.set_params(frozen_blocks=2, warm_start=False)
    with pytest.warns(FutureWarning, match="set_params.warm_start=True"):  # the old spelling, one release
        reg.fine_tune(f[64:80], y[64:80], freeze_blocks=1, epochs=1)
    assert reg.fine_tuned_ == 2 and reg.frozen_blocks == 1 and reg.epochs == 1 and reg.warm_start is False
    with pytest.warns(FutureWarning), pytest.raises(HsickitError, match="frozen_blocks=99"):
        reg.fine_tune(f[:10], y[:10], freeze_blocks=99)
    assert reg.frozen_blocks == 1  # a refused call leaves the parameters as they were


def test_hsic_training_and_validation_data(gaps):
    f, y = gaps
    reg = MaterialsRegressor(training="hsic", epochs=2, random_state=0, **SMALL)
    reg.fit(f[:80], y[:80], formulas_val=f[80:100], y_val=y[80:100])
    assert any("hsic_zy_0" in r for r in reg.history_)
    assert any("val_loss" in r for r in reg.history_)
    assert np.isfinite(reg.predict(f[100:110])).all()


def test_classifier(gaps, tmp_path):
    f, y = gaps
    labels = (y > 0).astype(int)  # metal (gap 0) vs non-metal
    clf = MaterialsClassifier(epochs=5, n_models=2, random_state=0, **SMALL).fit(f[:150], labels[:150])
    proba, std = clf.predict_proba(f[150:170], return_std=True)
    assert proba.shape == (20, 2) and np.allclose(proba.sum(1), 1)
    assert set(clf.predict(f[150:170])) <= {0, 1}
    clf.save(tmp_path / "c")
    np.testing.assert_allclose(MaterialsClassifier.load(tmp_path / "c").predict_proba(f[150:170]), proba, rtol=1e-5)


def test_errors(gaps):
    f, y = gaps
    with pytest.raises(HsickitError, match="n_models"):
        MaterialsRegressor(n_models=0).fit(f[:10], y[:10])
    with pytest.raises(HsickitError, match="10 formulas but 9 targets"):
        MaterialsRegressor(**SMALL).fit(f[:10], y[:9])
    reg = MaterialsRegressor(epochs=1, random_state=0, **SMALL).fit(f[:40], y[:40])
    with pytest.raises(HsickitError, match="return_std needs an ensemble"):
        reg.predict(["NaCl"], return_std=True)
    with pytest.raises(HsickitError, match="'Xx' is not a chemical element"):
        reg.predict(["NaCl", "Xx2O"])
    with pytest.raises(HsickitError, match="list of formulas"):
        reg.predict("NaCl")


def test_precomputed_features_match_formulas_and_run_matbench(gaps, tmp_path):
    import pandas as pd

    from hsickit.apps.materials import WardAttributes
    from hsickit.apps.materials.matbench import run_matbench

    f, y = gaps
    X = WardAttributes().featurize_many(f)
    by_formula = MaterialsRegressor(epochs=3, random_state=0, **SMALL).fit(f[:100], y[:100])
    by_row = MaterialsRegressor(features="precomputed", epochs=3, random_state=0, **SMALL).fit(X[:100], y[:100])
    np.testing.assert_allclose(by_row.predict(X[100:120]), by_formula.predict(f[100:120]), rtol=1e-5, atol=1e-6)
    assert by_row.feature_names_[:2] == ["feature_0", "feature_1"] and by_row.n_features_in_ == 145
    with pytest.raises(HsickitError, match="2-D feature matrix"):
        by_row.predict(X[0])
    bad = X[:5].copy()
    bad[3, 7] = np.nan
    with pytest.raises(HsickitError, match="feature row 3"):
        by_row.predict(bad)
    # the Matbench loop on precomputed rows gives the same scores as on formulas
    pd.read_csv(demo_table_path()).head(60).to_csv(tmp_path / "matbench_expt_gap.csv", index=False)
    t = read_formula_table(tmp_path / "matbench_expt_gap.csv")
    kw = dict(epochs=2, random_state=0, **SMALL)
    a = run_matbench("expt_gap", tmp_path, lambda: MaterialsRegressor(**kw), folds=[1])
    b = run_matbench("expt_gap", tmp_path, lambda: MaterialsRegressor(features="precomputed", **kw), folds=[1],
                     X=WardAttributes().featurize_many(t.formulas))
    assert b["folds"][0]["mae"] == pytest.approx(a["folds"][0]["mae"], rel=1e-5)
    with pytest.raises(HsickitError, match="X has 5 rows but the expt_gap table has 60"):
        run_matbench("expt_gap", tmp_path, lambda: MaterialsRegressor(**kw), X=X[:5])


def test_time_limit_stops_training_and_marks_the_epoch():
    X = np.random.default_rng(0).normal(size=(80, 6))
    reg = MaterialsRegressor(features="precomputed", epochs=50, patience=None, time_limit=0, random_state=0, **SMALL)
    reg.fit(X, X[:, 0])
    assert len(reg.history_) == 1 and reg.history_[-1]["stopped_by_time_limit"] == 1
    reg.set_params(time_limit=None, warm_start=True, epochs=3).fit(X, X[:, 0])
    assert len(reg.history_) == 4 and not any(r.get("stopped_by_time_limit") for r in reg.history_[1:])


def test_features_outside_the_training_range_are_clipped(gaps, tmp_path):
    f, y = gaps
    reg = MaterialsRegressor(epochs=2, patience=None, random_state=0, **SMALL).fit(f[:100], y[:100])
    X = reg.featurize(f[100:110])
    far = X.copy()
    far[:, 0] = reg.feature_max_[0] + 1e6 * (np.abs(reg.feature_max_[0]) + 1)  # far beyond anything seen
    edge = X.copy()
    edge[:, 0] = reg.feature_max_[0]
    np.testing.assert_array_equal(reg.scale_features(far), reg.scale_features(edge))
    assert np.abs(reg.scale_features(far)).max() <= np.abs(reg.scale_features(reg.featurize(f[:100]))).max() + 1e-4
    reg.save(tmp_path / "m")
    again = MaterialsRegressor.load(tmp_path / "m")
    np.testing.assert_array_equal(again.scale_features(far), reg.scale_features(far))


def test_extra_trees_member_save_load_std_and_no_fine_tune(gaps, tmp_path):
    f, y = gaps
    reg = MaterialsRegressor(features="ward145+fractions118", model="extra_trees",
                             model_params={"n_estimators": 40}, random_state=0).fit(f[:240], y[:240])
    mae = np.abs(reg.predict(f[240:]) - y[240:]).mean()
    assert mae < 0.8 * np.abs(y[:240].mean() - y[240:]).mean()
    mean, std = reg.predict(["Fe2O3", "NaCl", "Cu"], return_std=True)
    assert mean.shape == std.shape == (3,) and (std > 0).any()
    assert reg.history_[0]["epoch"] == 1 and reg.history_[0]["train_loss"] < mae
    reg.save(tmp_path / "et")
    files = sorted(p.name for p in (tmp_path / "et").rglob("*") if p.is_file())
    assert "forest.skops" in files and not any(n.endswith((".pkl", ".joblib")) for n in files)
    back = load_estimator(tmp_path / "et")
    np.testing.assert_allclose(back.predict(["Fe2O3", "NaCl", "Cu"], return_std=True), (mean, std))
    with pytest.raises(HsickitError, match="cannot be fine-tuned"):
        reg.set_params(warm_start=True).fit(f[:20], y[:20])
    reg.set_params(warm_start=False)
    skops_file = tmp_path / "et" / "member_0" / "forest.skops"
    skops_file.write_bytes(skops_file.read_bytes()[:200])
    with pytest.raises(HsickitError, match="forest.skops is corrupted or truncated"):
        load_estimator(tmp_path / "et")


def test_random_forest_classifier(tmp_path):
    clf = MaterialsClassifier(model="random_forest", model_params={"n_estimators": 20}, random_state=0)
    clf.fit(["Fe", "Cu", "Ni3Al", "NaCl", "MgO", "SiO2"] * 4, [1, 1, 1, 0, 0, 0] * 4)
    assert clf.predict(["Co", "KCl"]).tolist() == [1, 0]
    clf.save(tmp_path / "rf")
    np.testing.assert_allclose(load_estimator(tmp_path / "rf").predict_proba(["Co", "KCl"]),
                               clf.predict_proba(["Co", "KCl"]))


def test_forest_predicts_the_median_of_its_trees_unless_asked_for_the_mean(gaps):
    f, y = gaps
    X = np.random.default_rng(0).random((60, 4))
    t = (X[:, 0] > 0.5) * X[:, 1] * 3  # half the targets exactly 0, as band gaps of metals
    med = MaterialsRegressor(features="precomputed", model="extra_trees", model_params={"n_estimators": 30},
                             random_state=0).fit(X, t)
    trees = med.members_[0].tree_predictions(med.scale_features(X[:5]))
    np.testing.assert_allclose(med.predict(X[:5]), np.median(trees, 0))
    mean = MaterialsRegressor(features="precomputed", model="extra_trees",
                              model_params={"n_estimators": 30, "aggregate": "mean"}, random_state=0).fit(X, t)
    np.testing.assert_allclose(mean.predict(X[:5]), mean.members_[0].model_.predict(mean.scale_features(X[:5])))
    with pytest.raises(HsickitError, match="unknown model 'extra_tree'.*irnet17.*tree ensemble: extra_trees, random_forest"):
        MaterialsRegressor(features="precomputed", model="extra_tree").fit(X, t)
    with pytest.raises(HsickitError, match="aggregate='mode'"):
        MaterialsRegressor(features="precomputed", model="extra_trees", model_params={"aggregate": "mode"}).fit(X, t)


def test_validation_metrics_are_the_ensembles_scores_on_its_validation_rows(gaps):
    f, y = gaps
    reg = MaterialsRegressor(epochs=3, n_models=2, random_state=0, **SMALL).fit(f[:100], y[:100])
    rows = reg.validation_rows_
    assert len(rows) == reg.validation_metrics_["n_samples"] == 10
    pred = reg.predict([f[i] for i in rows])
    assert reg.validation_metrics_["mae"] == pytest.approx(np.abs(pred - y[rows]).mean())
    # the validation rows are held out of every model: each model's own validation loss is on them
    for m in reg.members_:
        best = min(r["val_loss"] for r in m.history_)
        err = np.abs(m.predict(reg.scale_features(reg.featurize([f[i] for i in rows]))) - y[rows]).mean()
        assert err / m.y_scale_[0] == pytest.approx(best, rel=1e-4)
    trees = MaterialsRegressor(model="extra_trees", model_params={"n_estimators": 20}, random_state=0)
    assert trees.fit(f[:100], y[:100]).validation_metrics_ is None  # fitted on all rows
    held = trees.holdout_metrics(f[:100], y[:100])
    assert held["n_samples"] == 10 and held["mae"] > 0


def test_unseen_elements_mark_the_applicability_domain(gaps, tmp_path):
    f, y = gaps
    reg = MaterialsRegressor(epochs=1, random_state=0, **SMALL).fit(f[:100], y[:100])
    assert "O" in reg.elements_ and "He" not in reg.elements_
    assert reg.unseen_elements([f[0], "He", "HeOg", "Ag2O"]) == [[], ["He"], ["He", "Og"], []]
    assert load_estimator(reg.save(tmp_path / "m")).elements_ == reg.elements_
    reg.set_params(warm_start=True, epochs=1).fit(["He"] * 8, [20.0] * 8)
    assert reg.unseen_elements(["He"]) == [[]]  # fine-tuning data widen the domain


def test_classifier_takes_text_labels(tmp_path):
    clf = MaterialsClassifier(model="mlp", model_params={"hidden": (16,)}, epochs=3, random_state=0)
    clf.fit(["Fe", "Cu", "Ni3Al", "NaCl", "MgO", "SiO2"] * 4, ["metal"] * 3 * 4 + ["nonmetal"] * 3 * 4)
    assert clf.classes_.tolist() == ["metal", "nonmetal"] and clf.predict(["Co"]).item() in ("metal", "nonmetal")
    assert load_estimator(clf.save(tmp_path / "c")).classes_.tolist() == ["metal", "nonmetal"]
    with pytest.raises(HsickitError, match="only one class"):
        MaterialsClassifier(model="mlp", epochs=1).fit(["Fe", "Cu", "Ni"] * 4, ["metal"] * 12)


def test_nonnegative_clips_every_models_prediction_and_refuses_negative_targets(gaps, tmp_path):
    """Issue 27, item 12: a band gap cannot be negative. Trained on targets near -1 (allowed without the option),
    the networks predict about -1; with nonnegative=True every model's prediction is clipped at 0, so the mean
    and the spread are 0, validation metrics too; the option is saved with the model."""
    f, y = gaps
    reg = MaterialsRegressor(epochs=3, n_models=2, random_state=0, verbose=0, **SMALL).fit(f[:100], y[:100] * 0.01 - 1.0)
    raw = reg.predict(f[100:120])
    assert (raw < 0).all()
    reg.set_params(nonnegative=True)
    mean, std = reg.predict(f[100:120], return_std=True)
    assert (mean == 0).all() and (std == 0).all()
    reg.save(tmp_path / "m")
    loaded = load_estimator(tmp_path / "m")
    assert loaded.nonnegative is True and (loaded.predict(f[100:120]) == 0).all()
    # a target of the right sign is kept: nonnegative changes nothing where the networks predict >= 0
    pos = MaterialsRegressor(epochs=3, random_state=0, verbose=0, nonnegative=True, **SMALL).fit(f[:100], y[:100])
    same = pos.set_params(nonnegative=False).predict(f[100:120])
    assert np.allclose(pos.set_params(nonnegative=True).predict(f[100:120]), np.maximum(same, 0))
    bad = np.array(y[:100], dtype=float)
    bad[7] = -0.5
    with pytest.raises(HsickitError, match=r"nonnegative=True but training targets has 1 negative value\(s\), the first -0.5 at entry 7"):
        MaterialsRegressor(epochs=1, nonnegative=True, **SMALL).fit(f[:100], bad)
    with pytest.raises(HsickitError, match="nonnegative=True is for regression"):
        MaterialsClassifier(epochs=1, nonnegative=True, **SMALL).fit(f[:20], [0, 1] * 10)


def test_regressor_history_gives_the_validation_mae_in_the_targets_unit():
    """Issue 27, item 12: the learning curve's validation MAE is in the target's unit, not standardised."""
    from hsickit.core.estimators import DeepRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = 1000.0 * X[:, 0] + 50.0
    reg = DeepRegressor(model="mlp", model_params={"hidden": (16,)}, epochs=3, random_state=0, verbose=0).fit(X, y)
    assert reg.y_scale_[0] > 500
    for row in reg.history_:
        assert row["val_mae"] == pytest.approx(row["val_mae_standardised"] * reg.y_scale_[0])
    # by hand, on the validation rows the estimator held out: the last epoch's model is the kept one only
    # when it was best, so compare the best epoch's figure with the model's own error
    best = [r for r in reg.history_ if r.get("best")][-1]
    from hsickit.core.training import validation_split

    _, va = validation_split(len(X), reg.validation_fraction, reg.seed_, None)
    assert best["val_mae"] == pytest.approx(np.abs(reg.predict(X[va]) - y[va]).mean(), rel=1e-3)
