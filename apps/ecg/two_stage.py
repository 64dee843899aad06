"""A two-stage beat classifier: ventricular beats first, then the rest (:class:`VentricularFirst`).

Ventricular beats are told apart by their morphology; supraventricular beats by their timing,
with morphology features that do not transfer from patient to patient. One classifier over
all features learns both at once and lets the morphology steer the S decision too. Here a
first stage decides V against the rest on every column; a second stage decides among the
other classes without the ``ventricular_columns``, trained on the non-V beats only.
Probabilities compose: ``P(V) = p1``, ``P(c) = (1 - p1) * p2(c)``. Without V beats to
train on, the second stage is the whole model.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 3)); y = np.where(X[:, 2] > 1, "V", np.where(X[:, 0] > 0, "S", "N"))
>>> clf = VentricularFirst(ventricular_columns=[2], random_state=0).fit(X, y)
>>> clf.classes_.tolist(), float(clf.score(X, y)) > 0.9
(['N', 'S', 'V'], True)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

from hsickit.core.errors import HsickitError

__all__ = ["VentricularFirst"]


class VentricularFirst(ClassifierMixin, BaseEstimator):
    """V-vs-rest on all columns, then the other classes on the columns that remain.

    Parameters
    ----------
    estimator : the classifier of both stages (default: scikit-learn's
        HistGradientBoostingClassifier, 200 iterations, early stopping).
    ventricular_columns : indices of the columns only the first stage reads.
    ventricular_class : the label of ventricular beats.
    class_weight : "balanced" (each stage balances its own classes: V against the rest, then
        the remaining classes among themselves) or None.
    warm_start : refit from the fitted stages, adding ``warm_iterations`` boosting iterations
        to each (fine-tuning on new records).
    warm_iterations : iterations added per stage by a warm refit.
    random_state : seed of both stages.
    """

    def __init__(self, estimator=None, ventricular_columns: Sequence[int] = (), ventricular_class: str = "V",
                 class_weight="balanced", warm_start: bool = False, warm_iterations: int = 150, random_state=None):
        self.estimator = estimator
        self.ventricular_columns = ventricular_columns
        self.ventricular_class = ventricular_class
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.warm_iterations = warm_iterations
        self.random_state = random_state

    def _stage(self, name: str):
        if self.warm_start and getattr(self, name, None) is not None:
            stage = getattr(self, name)
            return stage.set_params(warm_start=True, max_iter=stage.n_iter_ + self.warm_iterations)
        est = HistGradientBoostingClassifier(max_iter=200) if self.estimator is None else clone(self.estimator)
        return est.set_params(random_state=self.random_state) if "random_state" in est.get_params() else est

    def _weights(self, y: np.ndarray, base: np.ndarray) -> np.ndarray:
        if self.class_weight is None:
            return base
        if self.class_weight != "balanced":
            raise HsickitError(f"VentricularFirst balances its two stages itself: class_weight must be 'balanced' or None, "
                               f"not {self.class_weight!r}; for other weights use a one-stage downstream='gradient_boosting'")
        return base * compute_sample_weight("balanced", y)

    def fit(self, X, y, sample_weight=None) -> "VentricularFirst":
        """Fit both stages; ``sample_weight`` multiplies the class balancing (0 drops a row)."""
        X, y = np.asarray(X, dtype=np.float32), np.asarray(y).astype(str)
        base = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        is_v = y == self.ventricular_class
        if is_v.all():
            raise HsickitError(f"VentricularFirst got only {self.ventricular_class!r} beats; it needs beats of other classes too")
        first, second = self._stage("first_"), self._stage("second_")
        self.first_ = first.fit(X, is_v, sample_weight=self._weights(is_v, base)) if is_v.any() else None
        self.columns_ = np.setdiff1d(np.arange(X.shape[1]), np.asarray(self.ventricular_columns, dtype=int))
        rest = ~is_v
        self.second_ = second.fit(X[rest][:, self.columns_], y[rest], sample_weight=self._weights(y[rest], base[rest]))
        self.classes_ = np.array(sorted({*self.second_.classes_.astype(str), *([self.ventricular_class] if self.first_ is not None else [])}))
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities in the order of ``classes_``."""
        check_is_fitted(self, "second_")
        X = np.asarray(X, dtype=np.float32)
        p = np.zeros((len(X), len(self.classes_)))
        p_v = np.zeros(len(X)) if self.first_ is None else self.first_.predict_proba(X)[:, list(self.first_.classes_).index(True)]
        p[:, np.searchsorted(self.classes_, self.second_.classes_.astype(str))] = (1 - p_v)[:, None] * self.second_.predict_proba(X[:, self.columns_])
        if self.first_ is not None:
            p[:, np.searchsorted(self.classes_, self.ventricular_class)] = p_v
        return p

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
