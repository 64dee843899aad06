"""``hsickit materials``: train, evaluate, predict, finetune, matbench, demo.

Every command reads tables with :func:`hsickit.datasets.materials.read_formula_table` (strict
formula parsing; ``--skip-invalid`` skips bad rows and writes them to ``rejects.csv`` in the
output folder) and writes a run folder (config.json, history.csv, metrics.json, the model,
README.md model card, plots/). The commands only parse their options: the work is done by
:mod:`hsickit.apps.materials.pipelines`, which a Python user can call the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import hsickit.core.cli_options as opt

app = typer.Typer(rich_markup_mode=None, help="Materials: composition -> property with extra trees (small tables) or very deep "
                       "residual MLPs (IRNet; backprop or the HSIC bottleneck).", no_args_is_help=True)

#: Old option spellings of this application (besides core's), kept one release.
ALIASES = {"--task": "--target-type"}

OVERWRITE = opt.overwrite("Replace the finished run in --out (the folder is cleared first). "
                          "An unfinished run there resumes without it.")
DATA = typer.Argument(None, metavar="DATA", show_default=False,
                      help="Table (CSV, TSV, Excel, JSON, Parquet) with formulas and targets (or --table).")
TABLE = opt.table(help="The table, as an option instead of DATA.")
FORMULA_COL = typer.Option(None, "--formula-col", help="Formula column (default: the run's; train: formula).")
TARGET_COL = typer.Option(None, "--target-col", help="Target column (default: the run's; train: target).")


@opt.command(app, ALIASES)
def train(
    data: Optional[Path] = DATA,
    table: Optional[Path] = TABLE,
    out: Path = opt.out(),
    formula_col: str = typer.Option("formula", "--formula-col", help="Formula column (remembered by the run)."),
    target_col: str = typer.Option("target", "--target-col", help="Target column (remembered by the run)."),
    target_type: str = typer.Option("auto", "--target-type", help="regression, classification (class labels such as "
                                    "metal / nonmetal, or numbers), or auto (text labels or 0/1 targets -> "
                                    "classification)."),
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
    epochs: Optional[int] = opt.epochs(None, "Maximum epochs (default: the recipe's)."),
    batch_size: Optional[int] = opt.batch_size(None, "Batch size (default: the recipe's; IRNet paper: 32)."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (default: the recipe's; IRNet paper: 1e-4)."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs (default: the recipe's)."),
    validation_fraction: float = opt.validation_fraction(0.1),
    duplicates: str = typer.Option("keep", help="Duplicate compositions: keep, mean or min."),
    skip_invalid: bool = opt.skip_invalid("Skip bad rows (written to OUT/rejects.csv)."),
    unit: str = typer.Option("", help="Unit of the target, for plots and the model card."),
    nonnegative: bool = typer.Option(False, "--nonnegative/--no-nonnegative",
                                     help="The target cannot be negative (a band gap, a modulus): predictions are "
                                          "clipped at 0 and a negative target in DATA is an error (regression)."),
    param: Optional[List[str]] = opt.param("An estimator parameter over the recipe, KEY=VALUE (repeatable), e.g. "
                                           "train_params__weight_decay=0, train_params__lr_schedule=cosine, "
                                           "hsic_params__beta=50, model_params='{\"hidden\": [256, 256]}'."),
    seed: int = opt.seed(),
    quiet: bool = opt.quiet(),
    device: str = opt.device(),
    overwrite: bool = OVERWRITE,
) -> None:
    """Train a model on DATA and write the run folder OUT.

    Each model keeps a checkpoint in OUT while it trains: rerunning the same command after an
    interruption resumes (models already trained are kept). A finished OUT is refused unless --overwrite.
    """
    from hsickit.apps.materials import pipelines

    pipelines.train(opt.one_table(data, table), out, formula_col=formula_col, target_col=target_col,
                    target_type=target_type, features=features, model=model, auto_threshold=auto_threshold,
                    recipe=recipe, inner_folds=inner_folds, training=training, n_models=n_models, epochs=epochs,
                    batch_size=batch_size, lr=lr, patience=patience, validation_fraction=validation_fraction,
                    duplicates=duplicates, skip_invalid=skip_invalid, unit=unit, nonnegative=nonnegative,
                    params=opt.parse_params(param), seed=seed, quiet=quiet, device=device, overwrite=overwrite)


@opt.command(app, ALIASES)
def evaluate(
    run: Path = opt.run(),
    data: Optional[Path] = typer.Argument(None, metavar="DATA", show_default=False,
                                          help="Table with formulas and true targets (or --table)."),
    table: Optional[Path] = TABLE,
    out: Optional[Path] = opt.out(None, "Folder for metrics.json, plots, predictions (default RUN/eval-<data name>)."),
    formula_col: Optional[str] = FORMULA_COL,
    target_col: Optional[str] = TARGET_COL,
    skip_invalid: bool = opt.skip_invalid("Skip bad rows (written to rejects.csv)."),
    quiet: bool = opt.quiet(),
    as_json: bool = opt.as_json(),
) -> None:
    """Score a trained model on DATA: metrics.json (mae, rmse, r2, n_samples), parity plot, residual histogram
    (classification: accuracy, ROC-AUC, F1, confusion matrix), and predictions.csv: predict's columns plus target,
    in RUN/eval-<data name> (the run's own metrics.json is kept)."""
    from hsickit.apps.materials import pipelines
    from hsickit.core.io import evaluation_folder, read_json
    from hsickit.core.report import print_metrics

    data = opt.one_table(data, table)
    out = out or evaluation_folder(run, data)
    pipelines.evaluate(run, data, out, formula_col=formula_col, target_col=target_col, skip_invalid=skip_invalid,
                       quiet=quiet)
    unit = pipelines.run_inputs(run).get("unit", "")
    print_metrics(read_json(out / "metrics.json"), units={"mae": unit, "rmse": unit, "n_samples": "rows", "n_out_of_domain": "rows"},
                  written=f"{out} (metrics.json, predictions.csv, plots/)", as_json=as_json, echo=typer.echo)


@opt.command(app, ALIASES)
def predict(
    run: Path = opt.run(),
    data: Optional[Path] = typer.Argument(None, metavar="DATA", show_default=False,
                                          help="Table with a formula column (or --table)."),
    table: Optional[Path] = TABLE,
    output: Path = opt.output(Path("predictions.csv"), "CSV to write (never the input table)."),
    formula_col: Optional[str] = FORMULA_COL,
    skip_invalid: bool = opt.skip_invalid("Skip bad rows (written to rejects.csv beside OUTPUT)."),
    quiet: bool = opt.quiet(),
    overwrite: bool = opt.overwrite("Replace OUTPUT when it exists."),
) -> None:
    """Predict the property (or class and its probabilities, p_<class>) of every formula; with an
    ensemble (or a tree model) also its std."""
    from hsickit.apps.materials import pipelines

    pipelines.predict(run, opt.one_table(data, table), output, formula_col=formula_col, skip_invalid=skip_invalid,
                      quiet=quiet, overwrite=overwrite)


@opt.command(app, ALIASES)
def finetune(
    run: Path = opt.run("Run folder of the pre-trained model."),
    data: Optional[Path] = typer.Argument(None, metavar="DATA", show_default=False,
                                          help="Table with formulas and targets to fine-tune on (or --table)."),
    table: Optional[Path] = TABLE,
    out: Path = opt.out(help="New run folder."),
    formula_col: Optional[str] = FORMULA_COL,
    target_col: Optional[str] = TARGET_COL,
    frozen_blocks: int = opt.frozen_blocks(0, "Freeze the first k blocks."),
    epochs: Optional[int] = opt.epochs(None, "Maximum epochs (default: as the pre-trained model)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: as the pre-trained model)."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience."),
    skip_invalid: bool = opt.skip_invalid("Skip bad rows (written to OUT/rejects.csv)."),
    duplicates: str = typer.Option("keep", help="keep, mean or min."),
    quiet: bool = opt.quiet(),
    overwrite: bool = OVERWRITE,
) -> None:
    """Fine-tune a trained model on new data (warm start; optionally freeze early blocks).

    OUT records the fine-tuning's own settings; it resumes and is refused as `train`'s run folder is.
    """
    from hsickit.apps.materials import pipelines

    pipelines.finetune(run, opt.one_table(data, table), out, formula_col=formula_col, target_col=target_col,
                       frozen_blocks=frozen_blocks, epochs=epochs, lr=lr, patience=patience,
                       skip_invalid=skip_invalid, duplicates=duplicates, quiet=quiet, overwrite=overwrite)


@opt.command(app, ALIASES)
def matbench(
    task: str = typer.Argument(..., help="expt_gap, steels, expt_is_metal, glass, mp_e_form or mp_gap."),
    data: Path = typer.Option(..., "--data", help="Folder holding matbench_<task>.csv and the leaderboard csv."),
    out: Path = opt.out(Path("matbench-run"), "Run folder."),
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
    epochs: Optional[int] = opt.epochs(None, "Default: the recipe's."),
    batch_size: Optional[int] = opt.batch_size(None, "Default: the recipe's."),
    lr: Optional[float] = typer.Option(None, help="Default: the recipe's."),
    patience: Optional[int] = typer.Option(None, help="Default: the recipe's."),
    validation_fraction: float = opt.validation_fraction(0.1),
    seed: int = opt.seed(),
    quiet: bool = opt.quiet(),
    device: str = opt.device(),
) -> None:
    """The official Matbench 5-fold protocol: per-fold and mean ± std MAE (ROC-AUC), vs the leaderboard."""
    from hsickit.apps.materials.estimator import MaterialsClassifier, MaterialsRegressor
    from hsickit.apps.materials.matbench import run_matbench
    from hsickit.apps.materials.pipelines import limit_threads, check_choices, recipe_settings, warn_hsic_regression
    from hsickit.apps.materials.selection import candidates_from, model_search
    from hsickit.core.checks import check_options
    from hsickit.core.io import markdown_table, open_output_folder
    from hsickit.datasets.materials import MATBENCH_TASKS, task_name

    check_options(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, n_models=n_models,
                  inner_folds=inner_folds, validation_fraction=validation_fraction)
    check_choices(model, features, training)
    t = task_name(task)
    limit_threads()
    run = open_output_folder(out, "materials", "matbench")
    cls = MaterialsClassifier if MATBENCH_TASKS[t][0] == "classification" else MaterialsRegressor
    warn_hsic_regression(training, cls)
    params = dict(training=training, n_models=n_models, validation_fraction=validation_fraction, random_state=seed,
                  verbose=0, device=device, **recipe_settings(recipe, epochs=epochs, batch_size=batch_size, lr=lr,
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


@opt.command(app, ALIASES)
def demo(
    out: Path = opt.out(Path("hsickit-demo/materials"), "Run folder."),
    epochs: int = opt.epochs(15, "Maximum training epochs of IRNet-17 (early stopping patience 10)."),
    trees: int = typer.Option(100, help="Trees of the random-forest and extra-trees baselines."),
    seed: int = opt.seed(),
    quiet: bool = opt.quiet(),
) -> None:
    """Train IRNet-17 on experimental band gaps shipped with hsickit (no network) and score it on held-out rows."""
    from hsickit.apps.materials.demo import run_demo
    from hsickit.apps.materials.pipelines import limit_threads

    limit_threads()
    rows = run_demo(out, epochs=epochs, seed=seed, n_trees=trees, verbose=0 if quiet else 1)
    from hsickit.core.io import markdown_table

    typer.echo(markdown_table(rows))
    typer.echo(f"\nRun folder: {out}")
