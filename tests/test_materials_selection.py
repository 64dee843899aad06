"""Choosing a materials model by cross-validation on the training rows (GridSearchCV)."""
import numpy as np
import pytest

from hsickit import HsickitError
from hsickit.apps.materials import MaterialsClassifier, MaterialsRegressor
from hsickit.apps.materials.selection import candidates_from, model_search, selection_table
from hsickit.datasets.materials import demo_table_path, read_formula_table

pytest.importorskip("matminer", reason="the Magpie element tables ship with matminer")


@pytest.fixture(scope="module")
def gaps():
    t = read_formula_table(demo_table_path())
    return t.formulas[:300], t.y[:300]


def test_the_candidate_with_the_lowest_cv_error_is_chosen_and_refitted(gaps):
    f, y = gaps
    good = {"model": "extra_trees", "features": "ward145+fractions118", "model_params": {"n_estimators": 30}}
    poor = {"model": "random_forest", "features": "fractions118",  # depth-1 trees: nearly a constant
            "model_params": {"n_estimators": 5, "max_depth": 1}}
    search = model_search(MaterialsRegressor(random_state=0), [poor, good], cv=3).fit(f[:240], y[:240])
    rows = selection_table(search)
    assert [r["rank"] for r in rows] == [2, 1] and 0 < rows[1]["cv_mae"] < rows[0]["cv_mae"]  # MAE, positive
    assert rows[1]["cv_mae"] == pytest.approx(-search.cv_results_["mean_test_score"][1])
    assert search.best_params_["model"] == "extra_trees"
    assert len(search.best_estimator_.members_[0].model_.estimators_) == 30  # refitted on all 240 rows
    assert search.best_estimator_.members_[0].model_.n_features_in_ == 263
    mae = np.abs(search.predict(f[240:]) - y[240:]).mean()
    assert mae < 0.8 * np.abs(y[:240].mean() - y[240:]).mean()


def test_classifier_folds_are_stratified_and_scored_by_log_loss():
    search = model_search(MaterialsClassifier(), [{"model": "random_forest", "model_params": {"n_estimators": 10}}], cv=2)
    assert search.scoring == "neg_log_loss" and type(search.cv).__name__ == "StratifiedKFold"
    search.fit(["Fe", "Cu", "Ni3Al", "NaCl", "MgO", "SiO2"] * 3, [1, 1, 1, 0, 0, 0] * 3)
    assert search.predict(["Co"]).tolist() == [1]


def test_candidates_and_errors():
    assert candidates_from("irnet17, extra_trees", "ward145,fractions118") == [
        {"model": "irnet17", "features": "ward145"}, {"model": "irnet17", "features": "fractions118"},
        {"model": "extra_trees", "features": "ward145"}, {"model": "extra_trees", "features": "fractions118"}]
    with pytest.raises(HsickitError, match="no candidate"):
        model_search(MaterialsRegressor(), [])
    with pytest.raises(HsickitError, match=r"\['depth'\].*MaterialsRegressor does not have"):
        model_search(MaterialsRegressor(), [{"model": "irnet17", "depth": 3}])
