"""Choosing a materials model on the training rows only.

Each candidate is a set of estimator parameters (for instance IRNet-17 on the 145 Ward
attributes, or extremely randomised trees on the attributes plus element fractions). Every
candidate is scored by k-fold cross-validation on the training rows, the best is refitted on all
of them, and its test score is the only one to report. This is scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV`, with one grid point per candidate.

Example
-------
>>> from hsickit.apps.materials import MaterialsRegressor
>>> search = model_search(MaterialsRegressor(), [
...     {"model": "extra_trees", "features": "ward145+fractions118"},
...     {"model": "random_forest", "features": "ward145", "model_params": {"n_estimators": 50}}], cv=3)
>>> search = search.fit(["NaCl", "KCl", "MgO", "CaO", "Fe2O3", "Al2O3", "SiO2", "ZnO"] * 3,
...                     [5.0, 5.1, 7.8, 7.1, 2.2, 8.8, 9.0, 3.4] * 3)  # doctest: +SKIP
>>> search.best_params_["model"] in ("extra_trees", "random_forest")  # doctest: +SKIP
True
"""
from __future__ import annotations

import itertools

from sklearn.base import is_classifier
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from hsickit.core.errors import HsickitError

__all__ = ["model_search", "candidates_from", "selection_table", "score_name"]


def model_search(estimator, candidates, cv=5, random_state=0, scoring=None, verbose=0) -> GridSearchCV:
    """An unfitted GridSearchCV over `candidates` (a list of parameter dicts of `estimator`).

    Folds are shuffled with `random_state` (stratified for a classifier). The score is the mean
    absolute error for a regressor and the log-loss for a classifier (both reported negated, as
    scikit-learn does), unless `scoring` says otherwise.
    """
    candidates = list(candidates)
    if not candidates:
        raise HsickitError("no candidate models given; pass at least one, e.g. [{'model': 'irnet17'}]")
    names = set(estimator.get_params())
    for c in candidates:
        unknown = sorted(set(c) - names)
        if unknown:
            raise HsickitError(f"candidate {c} sets {unknown}, which {type(estimator).__name__} does not have")
    splitter = (StratifiedKFold if is_classifier(estimator) else KFold)(cv, shuffle=True, random_state=random_state)
    if scoring is None:
        scoring = "neg_log_loss" if is_classifier(estimator) else "neg_mean_absolute_error"
    grid = [{k: [v] for k, v in c.items()} for c in candidates]
    return GridSearchCV(estimator, grid, scoring=scoring, cv=splitter, refit=True, verbose=verbose, error_score="raise")


def candidates_from(models, features) -> list:
    """Every (model, features) pair of two comma-separated lists, as candidate dicts.

    >>> candidates_from("irnet17,extra_trees", "ward145")
    [{'model': 'irnet17', 'features': 'ward145'}, {'model': 'extra_trees', 'features': 'ward145'}]
    """
    split = lambda text: [s.strip() for s in str(text).split(",") if s.strip()]
    return [{"model": m, "features": f} for m, f in itertools.product(split(models), split(features))]


def score_name(search) -> str:
    """The cross-validated score as reported: "mae" and "log_loss" for scikit-learn's negated
    ``neg_mean_absolute_error`` / ``neg_log_loss`` (reported positive), else the scorer's name."""
    names = {"neg_mean_absolute_error": "mae", "neg_log_loss": "log_loss"}
    return names.get(search.scoring, str(search.scoring))


def selection_table(search) -> list:
    """One row per candidate: its parameters, mean and std of the cross-validated score
    (``cv_mae``, ``cv_log_loss``: positive, lower is better; see :func:`score_name`), rank."""
    res = search.cv_results_
    name = score_name(search)
    sign = -1.0 if str(search.scoring).startswith("neg_") else 1.0
    return [{**{k: (str(v) if isinstance(v, dict) else v) for k, v in params.items()},
             f"cv_{name}": sign * float(res["mean_test_score"][i]), f"cv_{name}_std": float(res["std_test_score"][i]),
             "rank": int(res["rank_test_score"][i])}
            for i, params in enumerate(res["params"])]
