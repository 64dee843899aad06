"""A small end-to-end materials run on real data that needs no network.

Trains IRNet-17 (backprop, the paper's settings, a short budget) on the 1,000 experimental band
gaps shipped with hsickit (Matbench folds 1-4, ~780 rows; early stopping on 10 % of them) and
scores it on fold 0 (219 rows), next to a 100-tree random forest on the same 145 attributes,
100 extremely randomised trees on the attributes plus element fractions, and the mean-value
baseline. A band gap cannot be negative, so both hsickit models clip their predictions at 0
(``nonnegative=True``). Writes a run folder as ``train`` does (model, validation metrics.json, history,
learning curves with the validation MAE in eV, model card) with the test fold's scores beside it in
``eval-test/`` (metrics.json, predictions.csv, parity plot, residuals).

Example
-------
>>> from hsickit.apps.materials.demo import run_demo
>>> rows = run_demo("demo-run", epochs=2, verbose=0)  # doctest: +SKIP
"""
from __future__ import annotations

import time

import numpy as np

from hsickit.apps.materials.estimator import MaterialsRegressor
from hsickit.apps.materials.featurizers import WardAttributes
from hsickit.apps.materials.matbench import regression_metrics
from hsickit.apps.materials.pipelines import write_validation
from hsickit.apps.materials.runs import MODEL_DIR, card, evaluate_into
from hsickit.core import plots
from hsickit.core.report import markdown_table
from hsickit.core.runs import open_output_folder
from hsickit.datasets.materials import FormulaTable, demo_table_path, read_formula_table

__all__ = ["run_demo"]


def _subset(table: FormulaTable, idx) -> FormulaTable:
    return FormulaTable(formulas=[table.formulas[i] for i in idx], compositions=[table.compositions[i] for i in idx],
                        y=table.y[idx], target_names=table.target_names, rows=table.rows[idx],
                        frame=table.frame.iloc[idx].reset_index(drop=True), source=table.source)


def run_demo(out, epochs=15, seed=0, n_trees=100, verbose=1) -> list:
    """Train and score; returns one row per model (test MAE in eV, fit seconds)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    run = open_output_folder(out, "materials", "demo")
    table = read_formula_table(demo_table_path())
    fold = table.frame["fold"].astype(int).to_numpy()
    tr, te = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    train, test = _subset(table, tr), _subset(table, te)
    rows = [{"model": "mean of training targets", **_row(test.y, np.full(len(te), train.y.mean())), "fit_seconds": 0.0}]
    start = time.perf_counter()
    rf = make_pipeline(WardAttributes(), RandomForestRegressor(n_estimators=n_trees, random_state=seed, n_jobs=1))
    rf.fit(train.formulas, train.y)
    rows.append({"model": f"random forest ({n_trees} trees, 145 attributes)", **_row(test.y, rf.predict(test.formulas)),
                 "fit_seconds": time.perf_counter() - start})
    start = time.perf_counter()
    et = MaterialsRegressor(model="extra_trees", features="ward145+fractions118", model_params={"n_estimators": n_trees},
                            nonnegative=True, random_state=seed).fit(train.formulas, train.y)
    rows.append({"model": f"extra trees ({n_trees} trees, 145 attributes + fractions, median of trees)",
                 **_row(test.y, et.predict(test.formulas)), "fit_seconds": time.perf_counter() - start})
    est = MaterialsRegressor(model="irnet17", training="backprop", epochs=epochs, patience=10, random_state=seed,
                             nonnegative=True, verbose=verbose)
    start = time.perf_counter()
    est.fit(train.formulas, train.y)
    fit_s = time.perf_counter() - start
    est.save(run / MODEL_DIR)
    validation = write_validation(run, est, train.formulas, train.y, "eV", fit_s)  # the run's own metrics.json
    scored = open_output_folder(run / "eval-test", "materials", "evaluate")  # the test fold, beside the run
    evaluate_into(scored, est, test, unit="eV")
    scored.write_config({"command": "demo", "run": str(run.path), "data": str(demo_table_path()), "split": "fold 0"})
    rows.append({"model": f"IRNet-17 backprop ({len(est.history_)} epochs, predictions clipped at 0)",
                 **_row(test.y, est.predict(test.formulas)), "fit_seconds": fit_s})
    run.write_history(est.history_)
    plots.learning_curves(est.history_, run.plots / "learning_curves.png", unit="eV")
    run.write_config({"command": "demo", "data": str(demo_table_path()), "formula_col": "formula", "target_col": "target",
                      "train_rows": len(tr), "test_rows": len(te), "params": est.get_params(), "unit": "eV"})
    card(run, "hsickit materials demo: experimental band gap (eV)", est, train,
         {"Test (Matbench fold 0 of the shipped 1,000-row sample; eval-test/)": markdown_table(rows)},
         unit="eV", validation=validation)
    return rows


def _row(y, p):
    m = regression_metrics(y, p)
    return {"test_mae": m["mae"], "test_r2": m["r2"]}
