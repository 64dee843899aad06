"""Run-folder helpers shared by the materials CLI and demo: read a table into a run folder
(rejects and duplicates written beside the outputs), evaluate a model into it (metrics.json,
predictions.csv, parity plot and residual histogram, or a confusion matrix), write the model card.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

MODEL_DIR = "model"


def read_table(data, formula_col, target_col, skip_invalid, duplicates="keep", quiet=False):
    """Read and validate a formula table; writes nothing (:func:`write_reports` writes its rejects)."""
    import typer

    from hsickit.datasets.materials import read_formula_table

    with warnings.catch_warnings():  # skipped rows are not lost: write_reports writes them
        warnings.filterwarnings("ignore", message=r".*skipped \d+ invalid row")
        table = read_formula_table(data, formula_col, target_col, skip_invalid=skip_invalid, duplicates=duplicates)
    if not quiet:
        typer.echo(table.summary())
    return table


def write_reports(out, table, duplicates="keep", quiet=False):
    """rejects.csv (rows skipped) and duplicates.csv (rows sharing a composition) of `table`, into `out`."""
    import typer

    from hsickit.core.io import atomic_write

    out = Path(out)
    if len(table.rejects):
        atomic_write(out / "rejects.csv", table.rejects.to_csv(index=False))
        if not quiet:
            typer.echo(f"  rejected rows written to {out / 'rejects.csv'}")
    if len(table.duplicates):
        atomic_write(out / "duplicates.csv", table.duplicates.to_csv(index=False))
        if not quiet:
            typer.echo(f"  {len(table.duplicates)} groups of rows share a composition "
                       f"(policy {duplicates!r}); listed in {out / 'duplicates.csv'}")


def read_into(data, formula_col, target_col, skip_invalid, out, duplicates="keep", quiet=False):
    """Read a formula table; rejects.csv / duplicates.csv go into `out`."""
    table = read_table(data, formula_col, target_col, skip_invalid, duplicates, quiet)
    write_reports(out, table, duplicates, quiet)
    return table


def evaluate_into(run, est, table, unit=""):
    """Metrics + plots + predictions of `est` on `table`, written into RunFolder `run`."""
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.apps.materials.matbench import classification_metrics, regression_metrics
    from hsickit.core import plots
    from hsickit.core.io import atomic_write

    if isinstance(est, MaterialsClassifier):
        proba = est.predict_proba(table.formulas)
        y = table.y.astype(est.classes_.dtype) if table.y.dtype != est.classes_.dtype else table.y
        m = classification_metrics(y, proba, est.classes_)
        pred = pd.DataFrame({"formula": table.formulas, "row": table.rows, "target": table.y,
                             "predicted": est.classes_[proba.argmax(1)], "probability": proba[:, -1]})
        from sklearn.metrics import confusion_matrix

        plots.confusion_matrix(confusion_matrix(y, pred["predicted"], labels=est.classes_), [str(c) for c in est.classes_],
                               run.plots / "confusion_matrix.png")
    else:
        y = table.y
        if y.ndim > 1:
            y = y[:, 0]
        p = est.predict(table.formulas)
        m = regression_metrics(y, p)
        pred = pd.DataFrame({"formula": table.formulas, "row": table.rows, "target": y, "predicted": p})
        plots.parity(y, p, run.plots / "parity.png", unit=unit)
        plots.residual_histogram(y, p, run.plots / "residuals.png", unit=unit)
    run.write_metrics(m, split="test")
    atomic_write(run / "predictions.csv", pred.to_csv(index=False))
    return m


def card(run, title, est, table, extra=None, unit=""):
    """README.md model card of a materials run (`unit`: of the target)."""
    from hsickit.apps.materials.forest import is_forest
    from hsickit.core.io import markdown_table

    p = est.get_params()
    if is_forest(p["model"]):
        model = (f"{type(est).__name__}: features `{p['features']}`, tree ensemble `{p['model']}` "
                 f"({est.members_[0].model_.n_estimators} trees), fitted on all training rows.")
    else:
        model = (f"{type(est).__name__}: features `{p['features']}`, model `{p['model']}`, training "
                 f"`{p['training']}`, {p['n_models']} model(s); batch {p['batch_size']}, lr {p['lr']}, "
                 f"up to {p['epochs']} epochs, early stopping patience {p['patience']} on a "
                 f"{p['validation_fraction']:.0%} validation split carved from the training data.")
    sections = {
        "Model": model,
        "Data": f"{table.summary()}; target column(s) {table.target_names}" + (f", in {unit}." if unit else "."),
        "Intended use": ("Predict the property of inorganic compositions similar to the training data. "
                         "Composition-only: polymorphs of one composition get one prediction."),
    }
    if extra:
        sections.update(extra)
    hist = est.history_
    if hist:
        last = hist[-1]
        sections["Training"] = markdown_table([{k: last[k] for k in ("epoch", "train_loss", "val_loss") if k in last}])
    run.write_model_card(title, sections)
