"""Tree ensembles as materials models: extremely randomised trees or a random forest
(scikit-learn) behind the interface of the deep members (``fit(X, y, X_val, y_val)``,
``predict``, ``predict_proba``, ``history_``, ``save`` / ``load``), saved with skops (no pickle).

On small tables of alloy compositions (Matbench steels, 312 rows) extremely randomised trees on
element fractions beat a 17-layer IRNet by a wide margin; see the README's benchmark table.

A regression forest predicts the **median** of its trees by default: the networks here are fitted
for absolute error (L1), and the median is the point estimate that minimises it. On targets
with a mass at one value (band gaps: about half the rows are metals at 0 eV) the mean of the
trees is pulled off that value and the median is not. ``model_params={"aggregate": "mean"}``
gives scikit-learn's mean.

Example
-------
>>> import numpy as np
>>> X, y = np.random.default_rng(0).random((40, 3)), np.arange(40.0)
>>> m = ForestMember("extra_trees", model_params={"n_estimators": 20}, random_state=0).fit(X, y)
>>> m.tree_predictions(X[:2]).shape
(20, 2)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import log_loss, mean_absolute_error

from hsickit.core.errors import HsickitError
from hsickit.core.files import read_json, write_json

__all__ = ["FORESTS", "ForestMember", "is_forest"]

#: name -> (regressor, classifier, default number of trees)
FORESTS = {
    "extra_trees": (ExtraTreesRegressor, ExtraTreesClassifier, 500),
    "random_forest": (RandomForestRegressor, RandomForestClassifier, 300),
}


def is_forest(model) -> bool:
    """True when `model` names a tree ensemble ("extra_trees", "random_forest")."""
    return isinstance(model, str) and model in FORESTS


class ForestMember:
    """One tree ensemble; ``history_`` holds a single row (training and validation loss:
    mean absolute error, or log-loss for classification)."""

    def __init__(self, model="extra_trees", classification=False, model_params=None, random_state=None):
        self.model = model
        self.classification = classification
        self.model_params = model_params
        self.random_state = random_state

    def _loss(self, X, y):
        if self.classification:
            return float(log_loss(y, self.predict_proba(X), labels=self.classes_))
        return float(mean_absolute_error(y, self.predict(X)))

    def fit(self, X, y, X_val=None, y_val=None, callbacks=()):
        """Fit on (X, y); the validation rows, when given, are only scored."""
        if not is_forest(self.model):
            raise HsickitError(f"unknown tree model {self.model!r}; choose one of {sorted(FORESTS)}")
        reg, clf, n_trees = FORESTS[self.model]
        params = {"n_estimators": n_trees, "n_jobs": -1, **(self.model_params or {})}
        self.aggregate_ = params.pop("aggregate", "median")
        if self.aggregate_ not in ("median", "mean"):
            raise HsickitError(f"aggregate={self.aggregate_!r}: a forest's prediction is the 'median' or 'mean' of its trees")
        y = np.asarray(y)
        self.model_ = (clf if self.classification else reg)(random_state=self.random_state, **params)
        self.model_.fit(X, y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y)
        row = {"epoch": 1, "train_loss": self._loss(X, y)}
        if X_val is not None and y_val is not None:
            row["val_loss"] = self._loss(X_val, y_val)
        self.history_ = [row]
        return self

    @property
    def classes_(self):
        return self.model_.classes_

    def predict(self, X):
        if self.classification or self.aggregate_ == "mean":
            return self.model_.predict(X)
        return np.median(self.tree_predictions(X), axis=0)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def tree_predictions(self, X) -> np.ndarray:
        """Each tree's prediction, shape (n_trees, n_samples) (regression)."""
        return np.stack([t.predict(np.asarray(X, dtype=np.float32)) for t in self.model_.estimators_])

    def save(self, path) -> Path:
        """Write ``forest.skops`` and ``forest.json`` into the folder `path`."""
        from hsickit.core.serialization import save_sklearn

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_sklearn(path / "forest.skops", self.model_)
        write_json(path / "forest.json", {"model": self.model, "classification": self.classification,
                                          "model_params": self.model_params, "random_state": self.random_state,
                                          "history": self.history_})
        return path

    @classmethod
    def load(cls, path):
        """Load a member written by :meth:`save`; only scikit-learn and NumPy types are loaded."""
        from hsickit.core.serialization import load_sklearn

        path = Path(path)
        file = path / "forest.skops"
        if not file.exists() or not (path / "forest.json").exists():
            raise HsickitError(f"{path} holds no saved tree model (forest.skops / forest.json missing); "
                               "give the model folder written by .save() or `hsickit materials train`")
        meta = read_json(path / "forest.json")
        model = load_sklearn(file)
        member = cls(meta["model"], meta["classification"], meta["model_params"], meta["random_state"])
        member.model_, member.history_ = model, meta["history"]
        member.aggregate_ = (meta["model_params"] or {}).get("aggregate", "median")
        return member
