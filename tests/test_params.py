"""Grouped parameters (``hsic_params``, ``train_params``): first-class in scikit-learn, old flat keywords one release."""
import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hsickit import HsickitError
from hsickit.core.estimators import DeepClassifier, DeepRegressor
from hsickit.core.training import param_defaults

torch.set_num_threads(1)
SMALL = {"hidden": (8,)}


def iris():
    X, y = load_iris(return_X_y=True)
    return X.astype("float32"), y


def test_get_params_lists_every_key_with_the_value_in_effect():
    clf = DeepClassifier(hsic_params={"beta": 50.0}, train_params={"weight_decay": 1e-3})
    params = clf.get_params()
    assert params["hsic_params"] == {"beta": 50.0} and params["hsic_params__beta"] == 50.0
    assert params["hsic_params__estimator"] == param_defaults("hsic_params")["estimator"] == "nocco"
    assert params["train_params__weight_decay"] == 1e-3 and params["train_params__lr_schedule"] is None
    assert "hsic_params__beta" not in clf.get_params(deep=False)
    assert set(param_defaults("hsic_params")) <= {k.split("__")[1] for k in params if k.startswith("hsic_params__")}


def test_set_params_sets_one_key_on_a_copy():
    mine = {"beta": 50.0}
    clf = DeepClassifier(hsic_params=mine)
    assert clf.set_params(hsic_params__sigma=2.0, epochs=3) is clf
    assert clf.hsic_params == {"beta": 50.0, "sigma": 2.0} and clf.epochs == 3
    assert mine == {"beta": 50.0}  # the caller's dict is never changed
    assert DeepClassifier().set_params(train_params__lr_schedule="cosine").train_params == {"lr_schedule": "cosine"}
    with pytest.raises(ValueError, match="hsic_params takes the keys"):
        clf.set_params(hsic_params__bta=1.0)
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(no_such_param=1)


def test_clone_and_pipeline_keep_the_keys():
    clf = DeepClassifier(hsic_params={"beta": 50.0})
    twin = clone(clf)
    assert twin.hsic_params == {"beta": 50.0} and twin.hsic_params is not clf.hsic_params
    pipe = make_pipeline(StandardScaler(), DeepClassifier())
    pipe.set_params(deepclassifier__hsic_params__beta=7.0)
    assert pipe[-1].hsic_params == {"beta": 7.0}
    assert pipe.get_params()["deepclassifier__hsic_params__beta"] == 7.0


def test_grid_search_over_a_key_reaches_the_trainer():
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, training="hsic", epochs=3, patience=None, random_state=0)
    grid = GridSearchCV(clf, {"hsic_params__beta": [10.0, 200.0], "train_params__weight_decay": [0.0]}, cv=2)
    grid.fit(X, y)
    assert [p["hsic_params__beta"] for p in grid.cv_results_["params"]] == [10.0, 200.0]
    best = grid.best_estimator_
    assert best.train_config_["beta"] == grid.best_params_["hsic_params__beta"]
    assert best.hsic_params == {"beta": grid.best_params_["hsic_params__beta"]}
    assert clf.hsic_params is None  # the search's estimator is left as it was


def test_a_wrong_key_or_group_is_a_clear_error_at_fit():
    X, y = iris()
    with pytest.raises(HsickitError, match=r"hsic_params has unknown key\(s\) \['bta'\]; it takes"):
        DeepClassifier(hsic_params={"bta": 1.0}, epochs=1).fit(X, y)
    with pytest.raises(HsickitError, match="train_params must be a dict"):
        DeepClassifier(train_params=0.1, epochs=1).fit(X, y)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        DeepClassifier(epoch=3)


def test_old_flat_keywords_work_one_release_with_a_warning():
    with pytest.warns(FutureWarning, match=r"beta= is now hsic_params=\{'beta': 50\.0\}") as caught:
        clf = DeepClassifier(beta=50.0, hsic_params={"sigma": 2.0})
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert clf.hsic_params == {"sigma": 2.0, "beta": 50.0}
    with pytest.warns(FutureWarning, match=r"weight_decay= is now train_params=\{'weight_decay': 0\.01\}"):
        reg = DeepRegressor(weight_decay=0.01)
    assert reg.train_params == {"weight_decay": 0.01}
    with pytest.warns(FutureWarning, match=r"hsic_estimator= is now hsic_params=\{'estimator': 'cka'\}"):
        clf.set_params(hsic_estimator="cka")
    assert clf.hsic_params == {"sigma": 2.0, "beta": 50.0, "estimator": "cka"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepClassifier(hsic_params={"beta": 50.0}).set_params(hsic_params__beta=1.0)  # the new spelling is silent


def test_a_model_saved_with_flat_params_loads_and_predicts_the_same(tmp_path):
    X, y = iris()
    clf = DeepClassifier(model_params=SMALL, training="hsic", epochs=2, random_state=0,
                         hsic_params={"beta": 20.0, "sigma": 3.0, "estimator": "cka"},
                         train_params={"weight_decay": 1e-3}).fit(X, y)
    clf.save(tmp_path)
    meta = json.loads((tmp_path / "estimator.json").read_text())
    params = meta["params"]  # rewrite it as hsickit wrote it before the grouped parameters
    hsic, train = params.pop("hsic_params"), params.pop("train_params")
    params.update(beta=hsic["beta"], sigma=hsic["sigma"], hsic_estimator=hsic["estimator"], hsic_lr=None,
                  format_epochs=0, weight_decay=train["weight_decay"], lr_schedule=None, precision="float32")
    (tmp_path / "estimator.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file of an older hsickit is not the user's code: no warning
        back = DeepClassifier.load(tmp_path)
    assert back.hsic_params == {"beta": 20.0, "sigma": 3.0, "estimator": "cka", "lr": None, "format_epochs": 0}
    assert back.train_params == {"weight_decay": 1e-3, "lr_schedule": None, "precision": "float32"}
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
