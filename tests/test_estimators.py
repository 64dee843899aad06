"""scikit-learn compatibility of DeepClassifier / DeepRegressor, fine-tuning and persistence."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from hsickit import HsickitError
from hsickit.core.estimators import DeepClassifier, DeepRegressor

SMALL = {"hidden": (16, 16)}

#: Checks that fail for a reason, not a bug.
EXPECTED_FAILURES = {
    "check_class_weight_classifiers": "asks for macro F1 > 0.87 from 40 epochs of a small net on 60 samples "
                                      "with extreme weights; class_weight itself is tested in test_class_weight_balanced",
}
HSIC_FAILURES = {
    **EXPECTED_FAILURES,
    "check_classifiers_train": "HSIC-mode blocks never see the task loss; 40 epochs on 60-sample toy data "
                               "stay below the check's fixed 0.83 accuracy (learning is tested in test_training.py)",
}


def _expected(est):
    return HSIC_FAILURES if est.training == "hsic" else EXPECTED_FAILURES


@parametrize_with_checks([
    DeepClassifier(model_params=SMALL, epochs=40, random_state=0),
    DeepClassifier(model_params=SMALL, epochs=40, training="hsic", random_state=0),
    DeepRegressor(model_params=SMALL, epochs=40, random_state=0),
], expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def iris():
    X, y = load_iris(return_X_y=True)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def test_pipeline_and_grid_search():
    X, y = iris()
    pipe = make_pipeline(StandardScaler(), DeepClassifier(model_params=SMALL, epochs=30, random_state=0))
    grid = GridSearchCV(pipe, {"deepclassifier__training": ["backprop", "hsic"], "deepclassifier__lr": [1e-2]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85
    assert set(grid.predict(X[:5])) <= set(y)


def test_same_seed_same_numbers():
    X, y = iris()
    a = DeepClassifier(model_params=SMALL, epochs=5, random_state=3).fit(X, y).predict_proba(X)
    b = DeepClassifier(model_params=SMALL, epochs=5, random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_fit_callbacks_see_every_epoch_and_can_stop():
    X, y = make_regression(n_samples=80, n_features=5, random_state=0)
    seen = []
    reg = DeepRegressor(model_params=SMALL, epochs=20, patience=None, random_state=0)
    reg.fit(X, y, callbacks=[lambda row: seen.append(row["epoch"]) or row["epoch"] >= 3])
    assert seen == [1, 2, 3] and len(reg.history_) == 3
    assert len(DeepRegressor(model_params=SMALL, epochs=4, patience=None, random_state=0).fit(X, y).history_) == 4


def test_warm_start_fine_tunes_with_frozen_blocks():
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, epochs=10, random_state=0).fit(X, y)
    first_block = {k: v.clone() for k, v in clf.model_.blocks[0].state_dict().items()}
    head = clf.model_.head.weight.detach().clone()
    n_hist = len(clf.history_)
    clf.set_params(warm_start=True, frozen_blocks=1, epochs=5, lr=1e-2)
    clf.fit(X[:60], y[:60])
    for k, v in clf.model_.blocks[0].state_dict().items():
        torch.testing.assert_close(v, first_block[k])
    assert not torch.equal(clf.model_.head.weight, head)
    assert len(clf.history_) > n_hist


def test_regressor_reports_in_user_units_and_scores_r2():
    X, y = make_regression(n_samples=300, n_features=6, noise=1.0, random_state=0)
    y = y * 1000 + 5e4
    reg = DeepRegressor(model_params={"hidden": (64, 64)}, epochs=60, lr=3e-3, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert abs(pred.mean() - 5e4) < 0.1 * y.std()
    assert reg.score(X, y) > 0.8


def test_multilabel_classifier():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5], 1).astype(int)
    clf = DeepClassifier(model_params=SMALL, epochs=40, lr=1e-2, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (300, 2)
    assert (clf.predict(X) == Y).mean() > 0.9
    assert clf.predict_proba(X).shape == (300, 2)


def test_multilabel_hsic_defaults_to_cka_and_the_balanced_label_kernel_unless_named():
    """Chosen on PTB-XL folds 1-7 -> 8 (benchmarks/hsic_multilabel.py); multi-class keeps NOCCO."""
    from hsickit.apps.ecg.channels import RecordCNN

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5], 1).astype(int)
    kw = dict(model_params=SMALL, training="hsic", epochs=2, random_state=0, verbose=0)
    multi = DeepClassifier(**kw).fit(X, Y)
    assert (multi.train_config_["hsic_estimator"], multi.train_config_["label_kernel"]) == ("cka", "balanced")
    named = DeepClassifier(**kw, hsic_params={"estimator": "nocco", "label_kernel": "gaussian"}).fit(X, Y)
    assert (named.train_config_["hsic_estimator"], named.train_config_["label_kernel"]) == ("nocco", "gaussian")
    assert DeepClassifier(**kw).fit(X, Y[:, 0]).train_config_["hsic_estimator"] == "nocco"
    cnn = RecordCNN(training="hsic", epochs=1, crop=100, model_params={"channels": (8, 8)}, random_state=0)
    cnn.fit(rng.normal(size=(16, 2, 200)).astype(np.float32), (rng.random((16, 2)) > 0.5).astype(np.float32))
    params = cnn.get_params()
    assert (params["hsic_params__estimator"], params["hsic_params__label_kernel"]) == ("cka", "balanced")
    with pytest.raises(HsickitError, match="unknown label_kernel"):
        DeepClassifier(**{**kw, "hsic_params": {"label_kernel": "delta"}}).fit(X, Y)


def test_class_weight_balanced():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] > 1.2).astype(int)  # about 12 % positives
    plain = DeepClassifier(model_params=SMALL, epochs=20, random_state=0).fit(X, y)
    balanced = DeepClassifier(model_params=SMALL, epochs=20, class_weight="balanced", random_state=0).fit(X, y)
    assert balanced.train_config_["class_weight"][1] > 3 * balanced.train_config_["class_weight"][0]
    assert plain.train_config_["class_weight"] is None
    assert balanced.predict(X).mean() >= plain.predict(X).mean()


def test_fixed_classes_and_unknown_labels():
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, epochs=2, classes=["setosa", "versicolor", "virginica", "unseen"]).fit(X, y)
    assert clf.predict_proba(X).shape == (150, 4)
    clf.set_params(warm_start=True)
    with pytest.raises(HsickitError, match="not among the model's classes"):
        clf.fit(X[:3], ["setosa", "rosa", "rosa"])


def test_save_load_round_trip(tmp_path):
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, epochs=3, random_state=0).fit(X, y)
    clf.save(tmp_path / "clf")
    again = DeepClassifier.load(tmp_path / "clf")
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    reg = DeepRegressor(model_params=SMALL, epochs=3, random_state=0).fit(X[:, :3], X[:, 3] * 100)
    reg.save(tmp_path / "reg")
    np.testing.assert_allclose(DeepRegressor.load(tmp_path / "reg").predict(X[:, :3]), reg.predict(X[:, :3]))
    with pytest.raises(HsickitError, match="holds a DeepRegressor"):
        DeepClassifier.load(tmp_path / "reg")


def test_conv1d_estimator_and_embeddings():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 64)
    y = rng.integers(0, 2, 120)
    X = np.stack([np.sin(2 * np.pi * (3 + 4 * c) * t) for c in y])[:, None, :] + 0.1 * rng.normal(size=(120, 1, 64))
    clf = DeepClassifier(model="conv1d", model_params={"channels": (8, 8)}, epochs=15, lr=1e-2, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9
    assert clf.transform(X).shape == (120, 8)


def test_bad_input_errors():
    X, y = iris()
    with pytest.raises(HsickitError, match="batch_size=500 is larger"):
        DeepClassifier(batch_size=500, epochs=1).fit(X, y)
    with pytest.raises(HsickitError, match="valid names"):
        DeepClassifier(model="nope", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        DeepClassifier(epochs=1).fit(np.where(X > 7, np.nan, X), y)
    with pytest.raises(HsickitError, match="only one class"):
        DeepClassifier(epochs=1).fit(X, ["a"] * len(X))


def test_scale_options_reach_the_trainer():
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, epochs=2, training="hsic", hsic_params={"approx": "rff", "n_features": 64},
                         train_params={"precision": "bf16"}, random_state=0).fit(X, y)
    cfg = clf.train_config_
    assert (cfg["hsic_approx"], cfg["n_features"], cfg["precision"]) == ("rff", 64, "bf16")
    assert clf.predict_proba(X).shape == (150, 3)


def test_deep_hsic_preset_keeps_the_last_epoch_with_batchnorm_recomputed_on_an_orthogonal_net():
    from hsickit.core.demo import DEEP_HSIC, REFERENCE_HSIC

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = DeepClassifier(model="mlp", model_params={"hidden": (16,) * 4, "init": "orthogonal"}, epochs=2, batch_size=64,
                         patience=None, random_state=0, **DEEP_HSIC).fit(X, y)
    cfg = clf.train_config_
    assert (cfg["keep_epoch"], cfg["recalibrate_bn"], cfg["format_epochs"], cfg["format_lr"]) == ("last", True, 50, 0.05)
    assert cfg["beta"] == REFERENCE_HSIC["hsic_params"]["beta"] and clf.model_.config.init == "orthogonal"
    assert clf.score(X, y) > 0.7
