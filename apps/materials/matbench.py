"""The official Matbench v0.1 protocol for any formula -> property estimator.

For each official fold k: fit on the rows with ``fold != k`` (the estimator carves its own
validation split from them, for early stopping and any choice of settings), score on
``fold == k``; report per-fold scores and their mean and std (``np.std``, ddof 0, as Matbench),
next to the leaderboard rows of the same task.

Example
-------
>>> from hsickit.apps.materials.matbench import run_matbench  # doctest: +SKIP
>>> res = run_matbench("steels", "matbench_v0.1_composition", lambda: MaterialsRegressor())  # doctest: +SKIP
>>> res["mean"]  # doctest: +SKIP
"""
from __future__ import annotations

import time

import numpy as np
from sklearn import metrics as skm

from hsickit.core.errors import HsickitError
from hsickit.core.metrics import regression_metrics  # mae, rmse, r2, n_samples: one definition for core and apps
from hsickit.datasets.materials import MATBENCH_TASKS, task_name, load_leaderboard, load_matbench, matbench_folds

__all__ = ["regression_metrics", "classification_metrics", "run_matbench", "leaderboard_comparison", "MATBENCH_UNITS"]


def classification_metrics(y_true, proba, classes) -> dict:
    """rocauc (binary), accuracy, f1 (binary), n_samples."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    pred = np.asarray(classes)[proba.argmax(1)]
    out = {"accuracy": float(skm.accuracy_score(y_true, pred)), "n_samples": int(len(y_true))}
    if len(classes) == 2 and len(np.unique(y_true)) == 2:
        out["rocauc"] = float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
        out["f1"] = float(skm.f1_score(y_true == classes[1], pred == classes[1]))
    return out


#: Unit of each regression task's target (and so of its MAE); ROC-AUC has none.
MATBENCH_UNITS = {"expt_gap": "eV", "steels": "MPa", "mp_e_form": "eV/atom", "mp_gap": "eV"}


def leaderboard_comparison(task, data_dir, score, metric, n_folds=5) -> list:
    """Leaderboard rows of `task` (best first) with this run inserted as ``"this run"``.

    The leaderboard's scores are means over all 5 folds: a run over fewer folds is listed at
    its place by score but not ranked (its ``rank`` is None).
    """
    lb = load_leaderboard(data_dir, task)
    rows = [{"algorithm": r.algorithm, "mean": float(r["mean"]), "std": float(r["std"])} for _, r in lb.iterrows()
            if r.metric == metric]
    rows.append({"algorithm": "this run" if n_folds == 5 else f"this run ({n_folds} of 5 folds, not ranked)",
                 "mean": float(score["mean"]), "std": float(score["std"]), "mine": True})
    higher_better = metric == "rocauc"
    rows.sort(key=lambda r: -r["mean"] if higher_better else r["mean"])
    rank = 0
    for r in rows:
        ranked = n_folds == 5 or not r.pop("mine", False)
        r.pop("mine", None)
        rank += ranked
        r["rank"] = rank if ranked else None
    return rows


def run_matbench(task, data_dir, make_estimator, folds=None, verbose=0, on_fold=None, table=None, X=None) -> dict:
    """Run the official 5-fold protocol on ``matbench_<task>.csv`` in `data_dir`.

    Parameters
    ----------
    task : str — e.g. "expt_gap", "steels", "expt_is_metal", "glass" (with or without "matbench_").
    data_dir : folder holding ``matbench_<task>.csv`` (and ``leaderboard_matbench_v0.1.csv``).
    make_estimator : callable () -> estimator with ``fit(formulas, y)`` and ``predict(formulas)``
        (regression) or ``predict_proba`` + ``classes_`` (classification): a
        :class:`~hsickit.apps.materials.MaterialsRegressor`, or a scikit-learn Pipeline starting
        with a featuriser.
    folds : iterable of int, optional — a subset of 0..4 (the mean is then over those folds only).
    on_fold : callable (k, estimator, fold_result) -> None, optional — called after each fold.
    table : FormulaTable, optional — the task table, if already read.
    X : array (n, d), optional — precomputed features of the table's rows (same order); the
        estimator is then fit on and predicts rows of `X` instead of formulas (e.g.
        ``MaterialsRegressor(features="precomputed")``), so the table is featurised once.

    Returns
    -------
    dict with task, metric, unit (of a regression task's MAE), folds (list of per-fold dicts), mean,
    std, complete (all 5 folds: comparable with the leaderboard), leaderboard.
    """
    t = task_name(task)
    kind, metric = MATBENCH_TASKS[t]
    table = table if table is not None else load_matbench(t, data_dir)
    splits = matbench_folds(table, kind)
    folds = list(range(5)) if folds is None else [int(k) for k in folds]
    if any(k not in range(5) for k in folds):
        raise HsickitError(f"folds {folds}: Matbench has folds 0..4")
    formulas = np.asarray(table.formulas, dtype=object)
    if X is not None and len(X) != len(formulas):
        raise HsickitError(f"X has {len(X)} rows but the {t} table has {len(formulas)}; give one feature row per table row")
    rows = (lambda idx: list(formulas[idx])) if X is None else (lambda idx: X[idx])
    y = table.y
    results = []
    for k in folds:
        tr, te = splits[k]
        est = make_estimator()
        start = time.perf_counter()
        est.fit(rows(tr), y[tr])
        fit_s = time.perf_counter() - start
        if kind == "regression":
            res = regression_metrics(y[te], est.predict(rows(te)))
        else:
            res = classification_metrics(y[te], est.predict_proba(rows(te)), est.classes_)
        res.update({"fold": k, "n_train": int(len(tr)), "fit_seconds": fit_s})
        hist = getattr(est, "history_", None) if hasattr(est, "members_") else None
        if hist:
            res["epochs_run"] = int(max(r["epoch"] for r in hist))
        results.append(res)
        if verbose:
            print(f"{t} fold {k}: {metric} = {res[metric]:.4f} (n_test {res['n_samples']}, fit {fit_s:.0f} s)", flush=True)
        if on_fold is not None:
            on_fold(k, est, res)
    scores = np.array([r[metric] for r in results])
    summary = {"task": f"matbench_{t}", "metric": metric, "unit": MATBENCH_UNITS.get(t, ""), "folds": results,
               "mean": float(scores.mean()), "std": float(scores.std()), "complete": len(results) == 5}
    summary["leaderboard"] = leaderboard_comparison(t, data_dir, summary, metric, n_folds=len(results))
    return summary
