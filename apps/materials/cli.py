"""``hsickit materials``: train, evaluate, predict, finetune, matbench, demo.

Every command reads tables with :func:`hsickit.datasets.materials.read_formula_table` (strict
formula parsing; ``--skip-invalid`` skips bad rows and writes them to ``rejects.csv`` in the
output folder) and writes a run folder (config.json, history.csv, metrics.json, the model,
README.md model card, plots/).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from hsickit.core.errors import HsickitError

app = typer.Typer(rich_markup_mode=None, help="Materials: composition -> property with extra trees (small tables) or very deep "
                       "residual MLPs (IRNet; backprop or the HSIC bottleneck).", no_args_is_help=True)

from hsickit.apps.materials.runs import MODEL_DIR, card as _card, evaluate_into as _evaluate_into
from hsickit.apps.materials.runs import prediction_columns as _prediction_columns, read_table as _read_table
from hsickit.apps.materials.runs import write_reports as _write_reports

OVERWRITE = typer.Option(False, "--overwrite/--no-overwrite", help="Replace the finished run in --out (the folder is cleared first). "
                                                    "An unfinished run there resumes without it.")


def _threads():
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))


def _load(run_dir):
    """The model of a run folder; a clear error when the folder itself is missing or is another app's run."""
    from hsickit.apps.materials.estimator import load_estimator
    from hsickit.core.io import check_run_app

    if not Path(run_dir).is_dir():
        raise HsickitError(f"run folder {str(run_dir)!r} does not exist; give the folder written by "
                           "`hsickit materials train --out RUN`")
    check_run_app(run_dir, "materials", "`hsickit materials`")
    return load_estimator(Path(run_dir) / MODEL_DIR)


def _check_choices(model, features, training):
    """Refuse unknown --model / --features / --training names before any folder is made."""
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


def _check_target(table, task, classification):
    """A target with one value is refused for classification (warned for regression), naming the column."""
    import numpy as np

    values = np.unique(table.y.astype(str)) if table.y.dtype == object else np.unique(table.y)
    if len(values) > 1:
        return
    column = table.target_names[0]
    if classification:
        raise HsickitError(f"{table.source}: the target column {column!r} is constant (every row is {values[0]}); a "
                           "classifier needs at least two classes: check --target-col, or add rows of the other "
                           f"class{' (if it holds numbers to predict, --task regression)' if table.y.dtype != object else ''}")
    typer.echo(f"warning: {table.source}: the target column {column!r} is constant (every row is {values[0]}); "
               "the model can only learn that value", err=True)


TARGET_TYPES = {"regression": "number", "classification": "label", "auto": "auto"}


def _target_type(task):
    """How `train` reads the target column for --task (see read_formula_table's target_type)."""
    if task not in TARGET_TYPES:
        raise HsickitError(f"--task {task!r}: use regression, classification or auto")
    return TARGET_TYPES[task]


def _is_classification(y, task):
    """--task auto: class labels (text) or 0/1 targets are a classification."""
    import numpy as np

    if task == "auto":
        return y.dtype == object or set(np.unique(y).tolist()) <= {0, 1}
    return task == "classification"


def _class_targets(y):
    """Targets as a classifier gets them: 0/1 read as numbers become integers."""
    import numpy as np

    return y.astype(int) if y.dtype.kind == "f" and np.all(y == np.round(y)) else y


def _check_nonnegative(table, nonnegative, cls, why="--nonnegative"):
    """--nonnegative: only for regression, and every target must be >= 0 (the first negative row is named)."""
    import numpy as np

    if not nonnegative:
        return
    if cls.__name__ != "MaterialsRegressor":
        raise HsickitError("--nonnegative is for a regression target (numbers); this target is read as class labels "
                           "(--task regression if it holds numbers)")
    bad = np.flatnonzero(np.asarray(table.y, dtype=float) < 0)
    if len(bad):
        raise HsickitError(f"{table.source}: {why} but the target column {table.target_names[0]!r} has "
                           f"{len(bad)} negative value(s), the first {float(table.y[bad[0]]):g} in row "
                           f"{int(table.rows[bad[0]])}; fix those rows" + (" or leave out --nonnegative" if why == "--nonnegative" else ""))


def _warn_hsic_regression(training, cls):
    """HSIC training is far behind backprop on regression targets: say so on stderr."""
    if training == "hsic" and cls.__name__ == "MaterialsRegressor":
        typer.echo("warning: --training hsic on a regression target: on Matbench steels it reached 234 MPa MAE against "
                   "backprop's 106 (expt_gap: 1.42 eV against plain-17 backprop's 0.39; benchmarks/results/materials_matbench_*.json); "
                   "prefer --training backprop", err=True)


@app.command()
def train(
    data: Path = typer.Argument(..., help="Table (CSV, TSV, Excel, JSON, Parquet) with formulas and targets."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
    formula_col: str = typer.Option("formula", help="Formula column."),
    target_col: str = typer.Option("target", help="Target column."),
    task: str = typer.Option("auto", help="regression, classification (class labels such as metal / nonmetal, or "
                                          "numbers), or auto (text labels or 0/1 targets -> classification)."),
    features: str = typer.Option("auto", help="auto (the model's own: Ward + fractions for trees, ward145 for IRNet), "
                                              "ward145, elemnet86, fractions118, or several joined by '+' "
                                              "(ward145+fractions118); a comma-separated list to choose among."),
    model: str = typer.Option("auto", help="auto (extra trees up to --auto-threshold rows, IRNet-17 above), "
                                           "irnet17/24/48, plain17/24/48, elemnet17, mlp; or extra_trees / "
                                           "random_forest; a comma-separated list to choose among."),
    auto_threshold: Optional[int] = typer.Option(None, help="--model auto trains IRNet-17 instead of extra trees on "
                                                           "more rows than this (default 16000, README)."),
    recipe: str = typer.Option("modern", help="Network training recipe: modern (AdamW, batch 256, warm-up + cosine, "
                                              "100 epochs, patience 20) or paper (IRNet paper: Adam lr 1e-4, batch 32, "
                                              "500 epochs, patience 50). --epochs etc. override it."),
    inner_folds: int = typer.Option(5, help="With several models / features: cross-validation folds on DATA "
                                            "that choose among them."),
    training: str = typer.Option("backprop", help="backprop or hsic."),
    n_models: int = typer.Option(1, help="Ensemble size (seeds); >1 gives an uncertainty."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (default: the recipe's)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size (default: the recipe's; IRNet paper: 32)."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (default: the recipe's; IRNet paper: 1e-4)."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs (default: the recipe's)."),
    validation_fraction: float = typer.Option(0.1, help="Share of the training rows held out for early stopping."),
    duplicates: str = typer.Option("keep", help="Duplicate compositions: keep, mean or min."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid/--no-skip-invalid", help="Skip bad rows (written to OUT/rejects.csv)."),
    unit: str = typer.Option("", help="Unit of the target, for plots and the model card."),
    nonnegative: bool = typer.Option(False, "--nonnegative/--no-nonnegative",
                                     help="The target cannot be negative (a band gap, a modulus): predictions are "
                                          "clipped at 0 and a negative target in DATA is an error (regression)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet", help="No progress output."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train a model on DATA and write the run folder OUT.

    Each model keeps a checkpoint in OUT while it trains: rerunning the same command after an
    interruption resumes (models already trained are kept). A finished OUT is refused unless --overwrite.
    """
    # what decides the result; an unfinished run resumes only with the same (first line: only the parameters so far)
    settings = {k: v for k, v in locals().items() if k not in ("out", "unit", "quiet", "device", "overwrite")}
    from hsickit.apps.materials.estimator import MaterialsClassifier, MaterialsRegressor
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, finish_training_run, start_training_run

    check_options(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, n_models=n_models,
                  inner_folds=inner_folds, validation_fraction=validation_fraction)
    _check_choices(model, features, training)
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)  # before the table is read: a refused --out costs nothing
    _threads()
    table = _read_table(data, formula_col, target_col, skip_invalid, duplicates, quiet, target_type=_target_type(task))
    _check_target(table, task, _is_classification(table.y, task))
    _check_nonnegative(table, nonnegative, MaterialsClassifier if _is_classification(table.y, task) else MaterialsRegressor)
    run, resumed = start_training_run(out, settings, inputs=[data], overwrite=overwrite, app="materials", command="train")
    if resumed and not quiet:
        typer.echo(f"resuming the unfinished run in {out}")
    _write_reports(out, table, duplicates, quiet)
    cls = MaterialsClassifier if _is_classification(table.y, task) else MaterialsRegressor
    _warn_hsic_regression(training, cls)
    y = _class_targets(table.y) if cls is MaterialsClassifier else table.y
    est = cls(training=training, n_models=n_models, validation_fraction=validation_fraction, random_state=seed,
              verbose=0 if quiet else 1, device=device, checkpoint_dir=run / MODEL_DIR,
              **_recipe(recipe, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience),
              **({} if auto_threshold is None else {"auto_threshold": auto_threshold}),
              **({"nonnegative": True} if nonnegative else {}))
    start = time.perf_counter()
    est, extra = _fit_or_choose(est, model, features, inner_folds, seed, table.formulas, y, run, quiet, unit)
    seconds = time.perf_counter() - start
    est.set_params(checkpoint_dir=None).save(run / MODEL_DIR)
    run.write_config({"command": "train", "data": str(data), "formula_col": formula_col, "target_col": target_col,
                      "unit": unit, "estimator": type(est).__name__, "params": est.get_params(),
                      "train_seconds": seconds})
    run.write_history(est.history_)
    plots.learning_curves(est.history_, run.plots / "learning_curves.png", unit=unit)
    validation = _write_validation(run, est, table.formulas, y, unit, seconds)
    _card(run, f"hsickit materials model: {target_col}", est, table, extra, unit=unit, validation=validation)
    finish_training_run(run)
    if not quiet:
        typer.echo(f"trained {type(est).__name__} ({est.model_used_} on {est.features_used_}) in {seconds:.0f} s; "
                   f"{_score_line(validation, unit)}; run folder {out}")


def _recipe(name, **given):
    """The training settings of --recipe `name`, with the options given on the command line over them."""
    from hsickit.apps.materials.estimator import RECIPES

    if name not in RECIPES:
        raise HsickitError(f"--recipe {name!r}: use {' or '.join(RECIPES)}")
    return {**RECIPES[name], **{k: v for k, v in given.items() if v is not None}}


def _model_info(est):
    """metrics.json lines saying which model and features were fitted, and why (--model auto)."""
    choice = getattr(est, "auto_choice_", None)
    return {"model": est.model_used_, "features": est.features_used_,
            "model_choice": choice["reason"] if choice else "given by --model"}


def _write_validation(run, est, formulas, y, unit, seconds, phase=None):
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
    if not quiet:
        typer.echo(markdown_table(rows))
        typer.echo(f"chosen by {inner_folds}-fold cross-validation: {search.best_params_}")
    score = {"mae": f"mean absolute error{f' in {unit}' if unit else ''}", "log_loss": "log-loss"}.get(
        score_name(search), score_name(search))
    return search.best_estimator_, {"Model selection": f"Chosen among {len(candidates)} candidates by "
                                    f"{inner_folds}-fold cross-validation on the training data "
                                    f"(score: {score}, lower is better).\n\n" + markdown_table(rows)}


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run folder written by `train` or `finetune`."),
    data: Path = typer.Argument(..., help="Table with formulas and true targets."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json, plots, predictions (default RUN/eval-<data name>)."),
    formula_col: str = typer.Option("formula"),
    target_col: str = typer.Option("target"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid/--no-skip-invalid", help="Skip bad rows (written to rejects.csv)."),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet"),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print metrics.json instead of the table."),
) -> None:
    """Score a trained model on DATA: metrics.json (mae, rmse, r2, n_samples), parity plot, residual histogram
    (classification: accuracy, ROC-AUC, F1, confusion matrix), and predictions.csv: predict's columns plus target."""
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.core.io import evaluation_folder, open_output_folder, read_json

    _threads()
    est = _load(run_dir)
    out = out or evaluation_folder(run_dir, data)
    table = _read_table(data, formula_col, target_col, skip_invalid, "keep", quiet,
                        target_type="label" if isinstance(est, MaterialsClassifier) else "number")
    run = open_output_folder(out, "materials", "evaluate")  # created only once the input is read and checked
    _write_reports(out, table, "keep", quiet)
    unit = read_json(run_dir / "config.json").get("unit", "") if (run_dir / "config.json").exists() else ""
    _evaluate_into(run, est, table, unit)
    run.write_config({"command": "evaluate", "run": str(run_dir), "data": str(data)})
    from hsickit.core.report import print_metrics

    print_metrics(read_json(out / "metrics.json"), units={"mae": unit, "rmse": unit, "n_samples": "rows", "n_out_of_domain": "rows"},
                  written=f"{out} (metrics.json, predictions.csv, plots/)", as_json=as_json, echo=typer.echo)


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., help="Run folder written by `train` or `finetune`."),
    formulas: Path = typer.Argument(..., help="Table with a formula column."),
    output: Path = typer.Option(Path("predictions.csv"), "--output", "-o", help="CSV to write (never the input table)."),
    formula_col: str = typer.Option("formula"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid/--no-skip-invalid", help="Skip bad rows (written to rejects.csv beside OUTPUT)."),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet"),
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace OUTPUT when it exists."),
) -> None:
    """Predict the property (or class and its probabilities, p_<class>) of every formula; with an
    ensemble (or a tree model) also its std."""
    import pandas as pd

    from hsickit.core.io import atomic_write, check_output_file

    check_output_file(output, inputs=[formulas], overwrite=overwrite)
    _threads()
    est = _load(run_dir)
    table = _read_table(formulas, formula_col, None, skip_invalid, "keep", quiet)
    cols, _, warning = _prediction_columns(est, table.formulas)
    df = pd.DataFrame({"row": table.rows, "formula": table.formulas, **cols})
    _write_reports(output.parent, table, "keep", quiet)
    atomic_write(output, df.to_csv(index=False))
    if warning:
        typer.echo(warning, err=True)
    if not quiet:
        typer.echo(f"{len(df)} predictions written to {output}")


@app.command()
def finetune(
    run_dir: Path = typer.Argument(..., help="Run folder of the pre-trained model."),
    data: Path = typer.Argument(..., help="Table with formulas and targets to fine-tune on."),
    out: Path = typer.Option(..., "--out", "-o", help="New run folder."),
    formula_col: str = typer.Option("formula"),
    target_col: str = typer.Option("target"),
    freeze_blocks: int = typer.Option(0, help="Freeze the first k blocks."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (default: as the pre-trained model)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: as the pre-trained model)."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid/--no-skip-invalid"),
    duplicates: str = typer.Option("keep", help="keep, mean or min."),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Fine-tune a trained model on new data (warm start; optionally freeze early blocks).

    OUT records the fine-tuning's own settings; it resumes and is refused as `train`'s run folder is.
    """
    settings = {k: v for k, v in locals().items() if k not in ("out", "quiet", "overwrite")}
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, finish_training_run, read_json, start_training_run

    check_options(freeze_blocks=freeze_blocks, epochs=epochs, lr=lr, patience=patience)
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)
    _threads()
    est = _load(run_dir)
    source = read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
    unit = source.get("unit", "")
    classifier = isinstance(est, MaterialsClassifier)
    table = _read_table(data, formula_col, target_col, skip_invalid, duplicates, quiet,
                        target_type="label" if classifier else "number")
    if getattr(est, "nonnegative", False):
        _check_nonnegative(table, True, type(est), why=f"{run_dir} was trained with --nonnegative")
    run, resumed = start_training_run(out, settings, inputs=[data, run_dir / MODEL_DIR / "materials.json"],
                                      overwrite=overwrite, app="materials", command="finetune")
    if resumed and not quiet:
        typer.echo(f"resuming the unfinished fine-tuning in {out}")
    _write_reports(out, table, duplicates, quiet)
    y = _class_targets(table.y) if classifier else table.y
    start = time.perf_counter()
    est.set_params(checkpoint_dir=run / MODEL_DIR, verbose=0 if quiet else 1)
    est.fine_tune(table.formulas, y, freeze_blocks=freeze_blocks, epochs=epochs, lr=lr, patience=patience)
    seconds = time.perf_counter() - start
    est.set_params(checkpoint_dir=None).save(run / MODEL_DIR)
    p = est.get_params()
    run.write_config({"command": "finetune", "from": str(run_dir), "data": str(data), "formula_col": formula_col,
                      "target_col": target_col, "source_target_col": source.get("target_col"), "unit": unit,
                      "estimator": type(est).__name__, "freeze_blocks": freeze_blocks, "epochs": p["epochs"],
                      "lr": p["lr"], "patience": p["patience"], "params": p, "train_seconds": seconds})
    run.write_history(est.history_)
    plots.learning_curves(est.history_, run.plots / "learning_curves.png", unit=unit)
    validation = _write_validation(run, est, table.formulas, y, unit, seconds, phase="finetune")
    _card(run, f"hsickit materials model: {target_col} (fine-tuned)", est, table,
          {"Fine-tuning": f"Warm start from {run_dir} (trained on {source.get('target_col', 'unknown target')}); "
                          f"first {freeze_blocks} block(s) frozen, up to {p['epochs']} epochs, lr {p['lr']}. "
                          "History rows of the fine-tuning have phase `finetune`."}, unit=unit, validation=validation)
    finish_training_run(run)
    if not quiet:
        typer.echo(f"fine-tuned in {seconds:.0f} s; {_score_line(validation, unit)}; run folder {out}")


@app.command()
def matbench(
    task: str = typer.Argument(..., help="expt_gap, steels, expt_is_metal, glass, mp_e_form or mp_gap."),
    data: Path = typer.Option(..., "--data", help="Folder holding matbench_<task>.csv and the leaderboard csv."),
    out: Path = typer.Option(Path("matbench-run"), "--out", "-o", help="Run folder."),
    folds: Optional[List[int]] = typer.Option(None, "--fold", help="Run only these folds (repeatable); default all 5."),
    features: str = typer.Option("auto", help="As for `train`, e.g. ward145+fractions118; a comma-separated list "
                                              "to choose among in each fold."),
    model: str = typer.Option("auto", help="As for `train`, e.g. auto, irnet17 or extra_trees; a comma-separated list "
                                           "to choose among in each fold (by inner CV on its training part)."),
    auto_threshold: Optional[int] = typer.Option(None, help="As for `train`."),
    recipe: str = typer.Option("modern", help="As for `train`: modern or paper."),
    inner_folds: int = typer.Option(5, help="Inner cross-validation folds when choosing among several models."),
    training: str = typer.Option("backprop"),
    n_models: int = typer.Option(1),
    epochs: Optional[int] = typer.Option(None, help="Default: the recipe's."),
    batch_size: Optional[int] = typer.Option(None, help="Default: the recipe's."),
    lr: Optional[float] = typer.Option(None, help="Default: the recipe's."),
    patience: Optional[int] = typer.Option(None, help="Default: the recipe's."),
    validation_fraction: float = typer.Option(0.1),
    seed: int = typer.Option(0),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet"),
    device: str = typer.Option("cpu"),
) -> None:
    """The official Matbench 5-fold protocol: per-fold and mean ± std MAE (ROC-AUC), vs the leaderboard."""
    from hsickit.apps.materials.estimator import MaterialsClassifier, MaterialsRegressor
    from hsickit.apps.materials.matbench import run_matbench
    from hsickit.apps.materials.selection import candidates_from, model_search
    from hsickit.core.checks import check_options
    from hsickit.core.io import markdown_table, open_output_folder
    from hsickit.datasets.materials import MATBENCH_TASKS, _task_name

    check_options(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, n_models=n_models,
                  inner_folds=inner_folds, validation_fraction=validation_fraction)
    _check_choices(model, features, training)
    t = _task_name(task)
    _threads()
    run = open_output_folder(out, "materials", "matbench")
    cls = MaterialsClassifier if MATBENCH_TASKS[t][0] == "classification" else MaterialsRegressor
    _warn_hsic_regression(training, cls)
    params = dict(training=training, n_models=n_models, validation_fraction=validation_fraction, random_state=seed,
                  verbose=0, device=device, **_recipe(recipe, epochs=epochs, batch_size=batch_size, lr=lr,
                                                      patience=patience),
                  **({} if auto_threshold is None else {"auto_threshold": auto_threshold}))
    candidates = candidates_from(model, features)

    def make():
        if len(candidates) == 1:
            return cls(**params, **candidates[0])
        return model_search(cls(**params), candidates, cv=inner_folds, random_state=seed)

    def save_fold(k, est, res):
        if hasattr(est, "best_estimator_"):
            res["chosen"] = est.best_params_
            est = est.best_estimator_
        res.update({"model": est.model_used_, "features": est.features_used_})
        run.write_history(est.history_, name=f"history_fold{k}.csv")

    res = run_matbench(t, data, make, folds=folds, verbose=0 if quiet else 1, on_fold=save_fold)
    metric = res["metric"]
    flat = {f"{metric}_fold{r['fold']}": r[metric] for r in res["folds"]}
    flat.update({metric: res["mean"], f"{metric}_std": res["std"], "n_folds": len(res["folds"])})
    run.write_metrics(flat, split="matbench_test_folds", n_samples=sum(r["n_samples"] for r in res["folds"]),
                      info={"unit": res["unit"], "comparable_with_leaderboard": "yes" if res["complete"] else
                            "no: the leaderboard scores are means over all 5 folds"})
    run.write_json("matbench.json", res)
    run.write_config({"command": "matbench", "task": t, "data": str(data), "folds": folds, "params": params,
                      "candidates": candidates, "inner_folds": inner_folds if len(candidates) > 1 else None})
    unit = f" {res['unit']}" if res["unit"] else ""
    table = markdown_table([{"rank": "—" if r["rank"] is None else r["rank"], "algorithm": r["algorithm"],
                             f"mean{unit}": r["mean"], f"std{unit}": r["std"]} for r in res["leaderboard"]])
    done = [r["fold"] for r in res["folds"]]
    caveat = ("" if res["complete"] else
              f"Only {len(done)} of the 5 folds ({done}): the leaderboard's scores are means over all 5 folds, so this "
              "score is not comparable with them and is not ranked.")
    run.write_model_card(f"Matbench {t}: {cls.__name__}", {
        "Protocol": "Official Matbench v0.1 folds; validation (early stopping) carved from each training fold. "
                    + caveat,
        "Per fold": markdown_table([{**{k: r[k] for k in ("fold", metric, "n_samples", "n_train", "model", "features")},
                                     **({"chosen": r["chosen"]} if "chosen" in r else {})} for r in res["folds"]]),
        "Leaderboard": table})
    spread = f" ± {res['std']:.4g}{unit} (std over folds)" if len(done) > 1 else ""
    typer.echo(f"\n{res['task']}: {metric} = {res['mean']:.4g}{unit}{spread} over folds {done}\n")
    if caveat:
        typer.echo(caveat + "\n")
    typer.echo(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("hsickit-materials-demo"), "--out", "-o", help="Run folder."),
    epochs: int = typer.Option(15, help="Maximum training epochs of IRNet-17 (early stopping patience 10)."),
    trees: int = typer.Option(100, help="Trees of the random-forest and extra-trees baselines."),
    seed: int = typer.Option(0),
    quiet: bool = typer.Option(False, "--quiet/--no-quiet"),
) -> None:
    """Train IRNet-17 on experimental band gaps shipped with hsickit (no network) and score it on held-out rows."""
    from hsickit.apps.materials.demo import run_demo

    _threads()
    rows = run_demo(out, epochs=epochs, seed=seed, n_trees=trees, verbose=0 if quiet else 1)
    from hsickit.core.io import markdown_table

    typer.echo(markdown_table(rows))
    typer.echo(f"\nRun folder: {out}")
