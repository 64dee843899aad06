"""The materials pipelines behind ``hsickit materials``: train, evaluate, predict, finetune.

Plain arguments in, a run folder out; the command line only parses its options and calls
these, and a Python user runs the same pipeline without it. Tables are read with
:func:`hsickit.datasets.materials.read_formula_table` (``skip_invalid``: bad rows are skipped and
written to ``rejects.csv`` beside the outputs). A training run remembers its inputs in
config.json (``formula_col``, ``target_col``, ``unit``): ``evaluate``, ``predict`` and ``finetune``
use them when not told otherwise.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> table = os.path.join(folder, "gaps.csv")
>>> rows = [("NaCl", 8.5), ("KCl", 8.4), ("Si", 1.1), ("GaAs", 1.4), ("ZnO", 3.4), ("Cu", 0.0)] * 3
>>> _ = open(table, "w").write("composition,gap\\n" + "".join(f"{f},{g}\\n" for f, g in rows))
>>> run = os.path.join(folder, "run")
>>> _ = train(table, run, formula_col="composition", target_col="gap", model="extra_trees", quiet=True)
>>> metrics = evaluate(run, table, quiet=True)   # the run remembers its columns
>>> metrics["n_samples"]
18
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from hsickit.apps.materials.runs import MODEL_DIR, card, evaluate_into, prediction_columns, read_table, write_reports
from hsickit.core.errors import HsickitError

__all__ = ["train", "evaluate", "predict", "finetune", "load_run", "run_inputs"]

TARGET_TYPES = {"regression": "number", "classification": "label", "auto": "auto"}


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line)


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def limit_threads():
    """At most 4 torch threads (the networks here gain nothing from more); fewer when fewer are set."""
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))


def load_run(run):
    """The model of a run folder; a clear error when the folder itself is missing or is another app's run."""
    from hsickit.apps.materials.estimator import load_estimator
    from hsickit.core.io import check_run_app

    if not Path(run).is_dir():
        raise HsickitError(f"run folder {str(run)!r} does not exist; give the folder written by "
                           "`hsickit materials train --out RUN`")
    check_run_app(run, "materials", "`hsickit materials`")
    return load_estimator(Path(run) / MODEL_DIR)


def run_inputs(run) -> dict:
    """What a run remembers of its inputs (config.json): formula_col, target_col, unit; {} for none."""
    from hsickit.core.io import read_json

    path = Path(run) / "config.json"
    cfg = read_json(path) if path.exists() else {}
    return {k: cfg[k] for k in ("formula_col", "target_col", "unit") if cfg.get(k) is not None}


def _read_run_table(run, remembered, data, formula_col, target_col, *args, **kwargs):
    """read_table with the columns given or remembered by the run; a missing remembered column says where it came from."""
    try:
        return read_table(data, formula_col, target_col, *args, **kwargs)
    except HsickitError as err:
        from_run = [f"{opt} {remembered[key]!r}" for key, opt, given in
                    (("formula_col", "--formula-col", formula_col), ("target_col", "--target-col", target_col))
                    if remembered.get(key) is not None and given == remembered[key]]
        if "not found" in str(err) and from_run:
            raise HsickitError(f"{err} ({' and '.join(from_run)}: the column(s) {run} was trained with, read from its "
                               "config.json; name this table's with --formula-col / --target-col)") from None
        raise


def check_choices(model, features, training):
    """Refuse unknown model / features / training names before any folder is made."""
    from hsickit.apps.materials.estimator import NETWORKS
    from hsickit.apps.materials.featurizers import get_featurizer
    from hsickit.apps.materials.forest import FORESTS, is_forest
    from hsickit.apps.materials.selection import candidates_from

    if training not in ("backprop", "hsic"):
        raise HsickitError(f"--training {training!r}: use backprop or hsic")
    candidates = candidates_from(model, features)
    if not candidates:
        raise HsickitError("--model and --features need at least one name each")
    for c in candidates:
        if c["model"] != "auto" and not is_forest(c["model"]) and c["model"] not in NETWORKS:
            raise HsickitError(f"--model {c['model']!r} is not a materials model; valid names: auto, {', '.join(NETWORKS)}, "
                               f"or a tree ensemble: {', '.join(FORESTS)}")
        if c["features"] != "auto":
            get_featurizer(c["features"])


def _check_target(table, target_type, classification):
    """A target with one value is refused for classification (warned for regression), naming the column."""
    import numpy as np

    values = np.unique(table.y.astype(str)) if table.y.dtype == object else np.unique(table.y)
    if len(values) > 1:
        return
    column = table.target_names[0]
    if classification:
        raise HsickitError(f"{table.source}: the target column {column!r} is constant (every row is {values[0]}); a "
                           "classifier needs at least two classes: check --target-col, or add rows of the other "
                           f"class{' (if it holds numbers to predict, --target-type regression)' if table.y.dtype != object else ''}")
    _warn(f"warning: {table.source}: the target column {column!r} is constant (every row is {values[0]}); "
          "the model can only learn that value")


def _check_nonnegative(table, nonnegative, cls, why="--nonnegative"):
    """--nonnegative: only for regression, and every target must be >= 0 (the first negative row is named)."""
    import numpy as np

    if not nonnegative:
        return
    if cls.__name__ != "MaterialsRegressor":
        raise HsickitError("--nonnegative is for a regression target (numbers); this target is read as class labels "
                           "(--target-type regression if it holds numbers)")
    bad = np.flatnonzero(np.asarray(table.y, dtype=float) < 0)
    if len(bad):
        raise HsickitError(f"{table.source}: {why} but the target column {table.target_names[0]!r} has "
                           f"{len(bad)} negative value(s), the first {float(table.y[bad[0]]):g} in row "
                           f"{int(table.rows[bad[0]])}; fix those rows" + (" or leave out --nonnegative" if why == "--nonnegative" else ""))


def _target_type(target_type):
    if target_type not in TARGET_TYPES:
        raise HsickitError(f"--target-type {target_type!r}: use regression, classification or auto")
    return TARGET_TYPES[target_type]


def _is_classification(y, target_type):
    """auto: class labels (text) or 0/1 targets are a classification."""
    import numpy as np

    if target_type == "auto":
        return y.dtype == object or set(np.unique(y).tolist()) <= {0, 1}
    return target_type == "classification"


def _class_targets(y):
    """Targets as a classifier gets them: 0/1 read as numbers become integers."""
    import numpy as np

    return y.astype(int) if y.dtype.kind == "f" and np.all(y == np.round(y)) else y


def warn_hsic_regression(training, cls, params=None):
    """HSIC training is behind backprop on regression targets: say so on stderr, with what the
    estimator in effect measured (the regressors default to CKA + a format phase; NOCCO is far behind)."""
    if training == "hsic" and cls.__name__ == "MaterialsRegressor":
        from hsickit.core.estimators import REGRESSION_HSIC

        params = params or {}
        estimator = params.get("hsic_params__estimator", (params.get("hsic_params") or {}).get("estimator", REGRESSION_HSIC["estimator"]))
        measured = ("IRNet-17 reached 113 MPa MAE on Matbench steels against backprop's 106, and 0.435 eV on expt_gap against "
                    "0.366 (CKA estimator and a format phase, the default for a regression target)")
        if estimator != "cka":
            measured = (f"with the {estimator} estimator IRNet-17 reached 235 MPa MAE on Matbench steels against backprop's 106 "
                        "(NOCCO, no format phase), about a constant predictor; the default, CKA with a format phase, reached 113")
        _warn(f"warning: --training hsic on a regression target: {measured} (benchmarks/results/hsic_regression_*.json); "
              "prefer --training backprop")


def recipe_settings(name, **given):
    """The training settings of recipe ``name``, with the options given over them."""
    from hsickit.apps.materials.estimator import RECIPES

    if name not in RECIPES:
        raise HsickitError(f"--recipe {name!r}: use {' or '.join(RECIPES)}")
    return {**RECIPES[name], **{k: v for k, v in given.items() if v is not None}}


def _model_info(est):
    """metrics.json lines saying which model and features were fitted, and why (model auto)."""
    choice = getattr(est, "auto_choice_", None)
    return {"model": est.model_used_, "features": est.features_used_,
            "model_choice": choice["reason"] if choice else "given by --model"}


def write_validation(run, est, formulas, y, unit, seconds, phase=None):
    """metrics.json of a training run: the validation scores in the target's unit (which rows:
    key ``validation``), and for a network its best epoch; returns (metrics, how)."""
    from hsickit.apps.materials.forest import is_forest
    from hsickit.apps.materials.runs import best_epoch, validation_summary

    metrics, how = validation_summary(est, formulas, y)
    extra = {"train_seconds": seconds}
    hist = [r for r in est.history_ if phase is None or str(r.get("phase")).startswith(phase)]
    if not is_forest(est.model_used_) and hist:
        best = best_epoch(hist)
        extra.update({"best_epoch": best["epoch"], "best_val_loss": best.get("val_loss"),
                      "epochs_run": len(hist)})
    info = {"validation": how, "unit": unit, **_model_info(est)}
    if "best_val_loss" in extra:
        info["loss"] = ("cross-entropy" if "Classifier" in type(est).__name__
                        else "L1 on the standardised target (MAE / std of the training target)")
    run.write_metrics({**metrics, **extra}, split="validation", n_samples=metrics.get("n_samples", 0), info=info)
    return metrics, how


def _score_line(validation, unit):
    from hsickit.apps.materials.runs import score_line

    metrics, _ = validation
    if not metrics:
        return "no validation rows to score"
    return f"validation ({metrics['n_samples']} rows): {score_line(metrics, unit)}"


def _fit_or_choose(est, models, features, inner_folds, seed, formulas, y, run, quiet, unit=""):
    """Fit the one (model, features) candidate, or choose among several by cross-validation
    (model_selection.csv in the run folder); returns the fitted estimator and model-card sections."""
    import pandas as pd

    from hsickit.apps.materials.selection import candidates_from, model_search, score_name, selection_table
    from hsickit.core.io import atomic_write, markdown_table

    candidates = candidates_from(models, features)
    if len(candidates) == 1:
        return est.set_params(**candidates[0]).fit(formulas, y), None
    # no checkpoints in the search: its fits on the folds would resume from one another
    search = model_search(est.set_params(verbose=0, checkpoint_dir=None), candidates, cv=inner_folds,
                          random_state=seed).fit(formulas, y)
    rows = selection_table(search)
    atomic_write(run / "model_selection.csv", pd.DataFrame(rows).to_csv(index=False))
    _say(quiet, markdown_table(rows))
    _say(quiet, f"chosen by {inner_folds}-fold cross-validation: {search.best_params_}")
    score = {"mae": f"mean absolute error{f' in {unit}' if unit else ''}", "log_loss": "log-loss"}.get(
        score_name(search), score_name(search))
    return search.best_estimator_, {"Model selection": f"Chosen among {len(candidates)} candidates by "
                                    f"{inner_folds}-fold cross-validation on the training data "
                                    f"(score: {score}, lower is better).\n\n" + markdown_table(rows)}


def train(data, out, *, formula_col="formula", target_col="target", target_type="auto", features="auto", model="auto",
          auto_threshold=None, recipe="modern", inner_folds=5, training="backprop", n_models=1, epochs=None,
          batch_size=None, lr=None, patience=None, validation_fraction=0.1, duplicates="keep", skip_invalid=False,
          unit="", nonnegative=False, params=None, seed=0, quiet=False, device="cpu", overwrite=False):
    """Train a model on table ``data`` and write run folder ``out``; returns the fitted estimator.

    Each model keeps a checkpoint in ``out`` while it trains: the same call after an interruption
    resumes (models already trained are kept). A finished ``out`` is refused unless ``overwrite``.
    ``target_type``: regression, classification or auto (text labels or 0/1 targets -> classification).
    ``nonnegative``: the target cannot be negative (a band gap): predictions are clipped at 0 (regression).
    ``params``: further estimator parameters over the recipe (``hsickit materials train --param KEY=VALUE``), e.g.
    ``{"train_params__weight_decay": 0.0, "hsic_params__beta": 50}``.
    """
    data, out, params = Path(data), Path(out), dict(params or {})
    # what decides the result; an unfinished run resumes only with the same (first line: only the parameters so far)
    settings = {"data": data, "formula_col": formula_col, "target_col": target_col, "task": target_type,
                "features": features, "model": model, "auto_threshold": auto_threshold, "recipe": recipe,
                "inner_folds": inner_folds, "training": training, "n_models": n_models, "epochs": epochs,
                "batch_size": batch_size, "lr": lr, "patience": patience, "validation_fraction": validation_fraction,
                "duplicates": duplicates, "skip_invalid": skip_invalid, "nonnegative": nonnegative, "seed": seed,
                **({"params": params} if params else {})}
    from hsickit.apps.materials.estimator import MaterialsClassifier, MaterialsRegressor
    from hsickit.core import plots
    from hsickit.core.checks import check_device, check_options
    from hsickit.core.io import check_output_folder, finish_training_run, start_training_run

    check_device(device)
    check_options(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, n_models=n_models,
                  inner_folds=inner_folds, validation_fraction=validation_fraction)
    check_choices(model, features, training)
    from hsickit.core.cli_options import apply_params

    probe = apply_params(MaterialsRegressor(), params)  # a wrong KEY or group key is refused before the table is read
    probe.group("train_params"), probe.group("hsic_params")
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)  # before the table is read: a refused --out costs nothing
    limit_threads()
    table = read_table(data, formula_col, target_col, skip_invalid, duplicates, quiet, target_type=_target_type(target_type))
    _check_target(table, target_type, _is_classification(table.y, target_type))
    _check_nonnegative(table, nonnegative, MaterialsClassifier if _is_classification(table.y, target_type) else MaterialsRegressor)
    run, resumed = start_training_run(out, settings, inputs=[data], overwrite=overwrite, app="materials", command="train")
    if resumed:
        _say(quiet, f"resuming the unfinished run in {out}")
    write_reports(out, table, duplicates, quiet)
    cls = MaterialsClassifier if _is_classification(table.y, target_type) else MaterialsRegressor
    warn_hsic_regression(training, cls, params)
    y = _class_targets(table.y) if cls is MaterialsClassifier else table.y
    est = cls(training=training, n_models=n_models, validation_fraction=validation_fraction, random_state=seed,
              verbose=0 if quiet else 1, device=device, checkpoint_dir=run / MODEL_DIR,
              **recipe_settings(recipe, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience),
              **({} if auto_threshold is None else {"auto_threshold": auto_threshold}),
              **({"nonnegative": True} if nonnegative else {}))
    apply_params(est, params)
    start = time.perf_counter()
    est, extra = _fit_or_choose(est, model, features, inner_folds, seed, table.formulas, y, run, quiet, unit)
    seconds = time.perf_counter() - start
    est.set_params(checkpoint_dir=None).save(run / MODEL_DIR)
    run.write_config({"command": "train", "data": str(data), "formula_col": formula_col, "target_col": target_col,
                      "target_type": target_type, "unit": unit, "estimator": type(est).__name__,
                      "params": est.get_params(), "train_seconds": seconds})
    run.write_history(est.history_)
    plots.learning_curves(est.history_, run.plots / "learning_curves.png", unit=unit)
    validation = write_validation(run, est, table.formulas, y, unit, seconds)
    card(run, f"hsickit materials model: {target_col}", est, table, extra, unit=unit, validation=validation)
    finish_training_run(run)
    _say(quiet, f"trained {type(est).__name__} ({est.model_used_} on {est.features_used_}) in {seconds:.0f} s; "
                f"{_score_line(validation, unit)}; run folder {out}")
    return est


def evaluate(run, data, out=None, *, formula_col=None, target_col=None, skip_invalid=False, quiet=False) -> dict:
    """Score run ``run``'s model on table ``data``; writes metrics.json (mae, rmse, r2, n_samples; classification:
    accuracy, ROC-AUC, F1), plots and predictions.csv into ``out`` (default ``RUN/eval-<data name>``; the run's
    own metrics.json is never touched). Columns default to those the run was trained with. Returns the metrics."""
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.core.io import evaluation_folder, open_output_folder

    run, data = Path(run), Path(data)
    limit_threads()
    est = load_run(run)
    remembered = run_inputs(run)
    formula_col = formula_col or remembered.get("formula_col", "formula")
    target_col = target_col or remembered.get("target_col", "target")
    out = Path(out) if out is not None else evaluation_folder(run, data)
    table = _read_run_table(run, remembered, data, formula_col, target_col, skip_invalid, "keep", quiet,
                            target_type="label" if isinstance(est, MaterialsClassifier) else "number")
    folder = open_output_folder(out, "materials", "evaluate")  # created only once the input is read and checked
    write_reports(out, table, "keep", quiet)
    metrics = evaluate_into(folder, est, table, remembered.get("unit", ""))
    folder.write_config({"command": "evaluate", "run": str(run), "data": str(data), "formula_col": formula_col,
                         "target_col": target_col})
    return metrics


def predict(run, data, output="predictions.csv", *, formula_col=None, skip_invalid=False, quiet=False,
            overwrite=False) -> Path:
    """Predict the property (or class and its probabilities, p_<class>) of every formula of table ``data``
    into CSV ``output``; with an ensemble (or a tree model) also its std. Returns ``output``."""
    import pandas as pd

    from hsickit.core.io import atomic_write, check_output_file

    run, data, output = Path(run), Path(data), Path(output)
    check_output_file(output, inputs=[data], overwrite=overwrite)
    limit_threads()
    est = load_run(run)
    remembered = run_inputs(run)
    formula_col = formula_col or remembered.get("formula_col", "formula")
    table = _read_run_table(run, remembered, data, formula_col, None, skip_invalid, "keep", quiet)
    cols, _, warning = prediction_columns(est, table.formulas)
    df = pd.DataFrame({"row": table.rows, "formula": table.formulas, **cols})
    write_reports(output.parent, table, "keep", quiet)
    atomic_write(output, df.to_csv(index=False))
    if warning:
        _warn(warning)
    _say(quiet, f"{len(df)} predictions written to {output}")
    return output


def finetune(run, data, out, *, formula_col=None, target_col=None, frozen_blocks=0, epochs=None, lr=None,
             patience=None, skip_invalid=False, duplicates="keep", quiet=False, overwrite=False):
    """Fine-tune run ``run``'s model on table ``data`` (warm start; the first ``frozen_blocks`` blocks fixed) and
    write run folder ``out``, which resumes and is refused as ``train``'s is. Columns default to the run's."""
    run, data, out = Path(run), Path(data), Path(out)
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, finish_training_run, read_json, start_training_run

    check_options(frozen_blocks=frozen_blocks, epochs=epochs, lr=lr, patience=patience)
    remembered = run_inputs(run) if run.is_dir() else {}
    formula_col = formula_col or remembered.get("formula_col", "formula")
    target_col = target_col or remembered.get("target_col", "target")
    settings = {"run_dir": run, "data": data, "formula_col": formula_col, "target_col": target_col,
                "freeze_blocks": frozen_blocks, "epochs": epochs, "lr": lr, "patience": patience,
                "skip_invalid": skip_invalid, "duplicates": duplicates}
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)
    limit_threads()
    est = load_run(run)
    source = read_json(run / "config.json") if (run / "config.json").exists() else {}
    unit = source.get("unit", "")
    classifier = isinstance(est, MaterialsClassifier)
    table = _read_run_table(run, remembered, data, formula_col, target_col, skip_invalid, duplicates, quiet,
                            target_type="label" if classifier else "number")
    if getattr(est, "nonnegative", False):
        _check_nonnegative(table, True, type(est), why=f"{run} was trained with --nonnegative")
    folder, resumed = start_training_run(out, settings, inputs=[data, run / MODEL_DIR / "materials.json"],
                                         overwrite=overwrite, app="materials", command="finetune")
    if resumed:
        _say(quiet, f"resuming the unfinished fine-tuning in {out}")
    write_reports(out, table, duplicates, quiet)
    y = _class_targets(table.y) if classifier else table.y
    start = time.perf_counter()
    est.set_params(checkpoint_dir=folder / MODEL_DIR, verbose=0 if quiet else 1)
    est.set_params(warm_start=True, frozen_blocks=frozen_blocks,
                   **{k: v for k, v in (("epochs", epochs), ("lr", lr), ("patience", patience)) if v is not None})
    est.fit(table.formulas, y)
    seconds = time.perf_counter() - start
    est.set_params(checkpoint_dir=None).save(folder / MODEL_DIR)
    p = est.get_params()
    folder.write_config({"command": "finetune", "from": str(run), "data": str(data), "formula_col": formula_col,
                         "target_col": target_col, "source_target_col": source.get("target_col"), "unit": unit,
                         "estimator": type(est).__name__, "frozen_blocks": frozen_blocks, "epochs": p["epochs"],
                         "lr": p["lr"], "patience": p["patience"], "params": p, "train_seconds": seconds})
    folder.write_history(est.history_)
    plots.learning_curves(est.history_, folder.plots / "learning_curves.png", unit=unit)
    validation = write_validation(folder, est, table.formulas, y, unit, seconds, phase="finetune")
    card(folder, f"hsickit materials model: {target_col} (fine-tuned)", est, table,
         {"Fine-tuning": f"Warm start from {run} (trained on {source.get('target_col', 'unknown target')}); "
                         f"first {frozen_blocks} block(s) frozen, up to {p['epochs']} epochs, lr {p['lr']}. "
                         "History rows of the fine-tuning have phase `finetune`."}, unit=unit, validation=validation)
    finish_training_run(folder)
    _say(quiet, f"fine-tuned in {seconds:.0f} s; {_score_line(validation, unit)}; run folder {out}")
    return est
