"""The scores an estimator's ``evaluate`` returns and a run folder's ``metrics.json`` holds.

One function per kind of target, so that ``evaluate(X, y)`` in Python and the command that
writes ``metrics.json`` compute the same keys the same way (scikit-learn's metrics).

Example
-------
>>> regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
0.3333333333333333
>>> classification_metrics(["a", "b", "b"], ["a", "b", "a"])
{'accuracy': 0.6666666666666666, 'n_samples': 3}
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

__all__ = ["regression_metrics", "classification_metrics"]


def regression_metrics(y_true, y_pred) -> dict:
    """mae, rmse, r2 (NaN for fewer than 2 rows; several targets: their mean), n_samples."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    return {"mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
            "n_samples": int(len(y_true))}


def classification_metrics(y_true, y_pred) -> dict:
    """accuracy (for a 0/1 indicator matrix: the share of rows with every label right, as
    scikit-learn's ``accuracy_score``), n_samples."""
    return {"accuracy": float(skm.accuracy_score(np.asarray(y_true), np.asarray(y_pred))), "n_samples": int(len(y_true))}
