"""Run-folder helpers shared by the materials pipelines and demo: read a table into a run folder
(rejects and duplicates written beside the outputs), evaluate a model into it (metrics.json,
predictions.csv, parity plot and residual histogram, or a confusion matrix), write the model card.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from hsickit.core.errors import HsickitError

MODEL_DIR = "model"


def read_table(data, formula_col, target_col, skip_invalid, duplicates="keep", quiet=False, target_type="number"):
    """Read and validate a formula table; writes nothing (:func:`write_reports` writes its rejects).
    `target_type`: "number", "label" (class labels) or "auto", as read_formula_table's."""
    from hsickit.datasets.materials import read_formula_table

    with warnings.catch_warnings():  # skipped rows are not lost: write_reports writes them
        warnings.filterwarnings("ignore", message=r".*skipped \d+ invalid row")
        table = read_formula_table(data, formula_col, target_col, skip_invalid=skip_invalid, duplicates=duplicates,
                                   target_type=target_type)
    if not quiet:
        print(table.summary())
    return table


def write_reports(out, table, duplicates="keep", quiet=False):
    """rejects.csv (rows skipped) and duplicates.csv (rows sharing a composition) of `table`, into `out`."""
    from hsickit.core.io import atomic_write

    out = Path(out)
    if len(table.rejects):
        atomic_write(out / "rejects.csv", table.rejects.to_csv(index=False))
        if not quiet:
            print(f"  rejected rows written to {out / 'rejects.csv'}")
    if len(table.duplicates):
        atomic_write(out / "duplicates.csv", table.duplicates.to_csv(index=False))
        if not quiet:
            print(f"  {len(table.duplicates)} groups of rows share a composition "
                       f"(policy {duplicates!r}); listed in {out / 'duplicates.csv'}")


def domain_columns(est, formulas):
    """Applicability domain of each formula: ``in_domain`` (every element occurs in the training
    data) and ``unseen_elements`` (those that do not, space-separated), plus a warning line for
    the console (None when all are in the domain). Both empty / None for a model that does not
    know its training elements (saved by an older hsickit)."""
    if getattr(est, "elements_", None) is None:
        return {}, None
    unseen = est.unseen_elements(formulas)
    cols = {"in_domain": [not u for u in unseen], "unseen_elements": [" ".join(u) for u in unseen]}
    out = [f for f, u in zip(formulas, unseen) if u]
    if not out:
        return cols, None
    elements = sorted({e for u in unseen for e in u})
    shown = ", ".join(out[:5]) + (", ..." if len(out) > 5 else "")
    return cols, (f"warning: {len(out)} of {len(unseen)} formulas ({shown}) contain elements the model never saw in "
                  f"training ({', '.join(elements)}); their predictions are extrapolations (in_domain = False)")


def prediction_columns(est, formulas):
    """The per-formula columns that ``predict`` writes and ``evaluate`` adds to its predictions.csv.

    ``predicted``; for a classifier ``p_<class>`` per class (an ensemble adds ``p_<last class>_std``),
    for a regressor ``std`` with an ensemble or a tree model; then ``in_domain`` and ``unseen_elements``
    (see :func:`domain_columns`).

    Returns
    -------
    columns : dict
    output : numpy.ndarray
        Class probabilities (n, n_classes) or the predicted values.
    warning : str or None
        The out-of-domain warning for the console.
    """
    from hsickit.apps.materials.estimator import MaterialsClassifier
    from hsickit.apps.materials.forest import is_forest

    ens = len(est.members_) > 1
    if isinstance(est, MaterialsClassifier):
        out, std = est.predict_proba(formulas, return_std=True) if ens else (est.predict_proba(formulas), None)
        cols = {"predicted": est.classes_[out.argmax(1)], **{f"p_{c}": out[:, j] for j, c in enumerate(est.classes_)}}
        if std is not None:
            cols[f"p_{est.classes_[-1]}_std"] = std[:, -1]
    else:
        ens = ens or is_forest(est.model_used_)  # a tree ensemble's spread comes from its trees
        out, std = est.predict(formulas, return_std=True) if ens else (est.predict(formulas), None)
        cols = {"predicted": out} if std is None else {"predicted": out, "std": std}
    domain, warning = domain_columns(est, formulas)
    return {**cols, **domain}, out, warning


def evaluate_into(run, est, table, unit=""):
    """Metrics + plots + predictions of `est` on `table`, written into RunFolder `run`.

    predictions.csv holds ``row``, ``formula``, ``target`` and the columns of :func:`prediction_columns`.
    """
    import numpy as np
    import pandas as pd

    from hsickit.apps.materials.estimator import MaterialsClassifier, evaluation_metrics
    from hsickit.core import plots
    from hsickit.core.io import atomic_write

    if isinstance(est, MaterialsClassifier):
        classes = est.classes_.tolist()
        unknown = sorted({str(v) for v in table.y.tolist() if v not in classes})
        if unknown:
            raise HsickitError(f"{table.source}: labels {unknown[:5]} of column {table.target_names[0]!r} are not among the "
                               f"model's classes {classes}; score data labelled with the model's classes")
        y = np.array([classes[classes.index(v)] for v in table.y.tolist()])  # as the model writes them (1.0 -> 1)
    else:
        y = table.y if table.y.ndim == 1 else table.y[:, 0]
    cols, out, warning = prediction_columns(est, table.formulas)
    pred = pd.DataFrame({"row": table.rows, "formula": table.formulas, "target": y, **cols})
    m = evaluation_metrics(est, y, out, cols.get("in_domain"))  # what est.evaluate returns
    if isinstance(est, MaterialsClassifier):
        from sklearn.metrics import confusion_matrix

        plots.confusion_matrix(confusion_matrix(y, pred["predicted"], labels=est.classes_), [str(c) for c in est.classes_],
                               run.plots / "confusion_matrix.png")
    else:
        plots.parity(y, out, run.plots / "parity.png", unit=unit)
        plots.residual_histogram(y, out, run.plots / "residuals.png", unit=unit)
    run.write_metrics(m, split="test")
    atomic_write(run / "predictions.csv", pred.to_csv(index=False))
    if warning:
        print(warning, file=sys.stderr)
    return m


def best_epoch(history):
    """The history row whose weights a network keeps: lowest validation loss (training loss
    without validation rows) of the last phase (a fine-tuning restores its own best epoch)."""
    last = [r for r in history if r.get("phase") == history[-1].get("phase")]
    return min(last, key=lambda r: r.get("val_loss", r["train_loss"]))


def validation_summary(est, formulas, y):
    """(metrics, how) after training: the scores on the validation rows in the target's unit
    (``est.validation_metrics_``; for a tree ensemble, fitted on all rows, those of a copy fitted on
    the other rows: :meth:`holdout_metrics`), and one sentence saying which rows they are.
    Metrics are {} when there are none (``--patience`` none or ``--validation-fraction 0``)."""
    from hsickit.apps.materials.forest import is_forest

    frac = est.get_params()["validation_fraction"]
    if is_forest(est.model_used_):
        m = est.holdout_metrics(formulas, y)
        how = (f"{m['n_samples']} held-out rows ({frac:.0%}), by a copy of the model fitted on the other "
               f"{len(y) - m['n_samples']} rows; the saved model is fitted on all {len(y)} rows") if m else None
    else:
        m = est.validation_metrics_
        shared = ", the same for every model of the ensemble" if len(est.members_) > 1 else ""
        how = (f"the {m['n_samples']} validation rows ({frac:.0%}{shared}): never trained on, but used for early "
               "stopping, so slightly optimistic; score a test set with `hsickit materials evaluate`") if m else None
    return (dict(m), how) if m else ({}, "no rows: none were held out (patience none or validation fraction 0)")


def score_line(metrics, unit=""):
    """'MAE 0.43 eV, RMSE 0.61 eV, R² 0.71' or 'accuracy 0.87, ROC-AUC 0.93' (metrics present only)."""
    u = f" {unit}" if unit else ""
    parts = [("mae", "MAE", u), ("rmse", "RMSE", u), ("r2", "R²", ""), ("accuracy", "accuracy", ""),
             ("rocauc", "ROC-AUC", ""), ("f1", "F1", "")]
    return ", ".join(f"{name} {metrics[k]:.4g}{suffix}" for k, name, suffix in parts if k in metrics)


def card(run, title, est, table, extra=None, unit="", validation=None):
    """README.md model card of a materials run (`unit`: of the target; `validation`: the
    (metrics, how) of :func:`validation_summary`)."""
    from hsickit.apps.materials.forest import is_forest
    from hsickit.core.io import markdown_table

    p = est.get_params()
    name, features = est.model_used_, est.features_used_
    forest = is_forest(name)
    if forest:
        model = (f"{type(est).__name__}: features `{features}`, tree ensemble `{name}` "
                 f"({est.members_[0].model_.n_estimators} trees), fitted on all training rows.")
    else:
        schedule = {"warmup_cosine": ", linear warm-up then cosine decay", "cosine": ", cosine decay",
                    "plateau": ", halved on plateaus"}.get(p["train_params__lr_schedule"], "")
        model = (f"{type(est).__name__}: features `{features}`, model `{name}`, training "
                 f"`{p['training']}`, {p['n_models']} model(s); {p['optimizer']} (weight decay {p['train_params__weight_decay']}), "
                 f"batch {p['batch_size']}, lr {p['lr']}{schedule}, "
                 f"up to {p['epochs']} epochs, early stopping patience {p['patience']} on a "
                 f"{p['validation_fraction']:.0%} validation split carved from the training data.")
    choice = getattr(est, "auto_choice_", None)
    if choice:
        model += f"\n\nChosen by `--model auto`: {choice['reason']}."
    elements = getattr(est, "elements_", None)
    sections = {
        "Model": model,
        "Data": f"{table.summary()}; target column(s) {table.target_names}" + (f", in {unit}." if unit else "."),
        "Intended use": ("Predict the property of inorganic compositions similar to the training data. "
                         "Composition-only: polymorphs of one composition get one prediction."
                         + (f" Training elements ({len(elements)}): {', '.join(elements)}; `predict` flags formulas "
                            "with any other element (`in_domain` false)." if elements else "")),
    }
    if extra:
        sections.update(extra)
    hist = est.history_
    if hist and not forest:
        best = best_epoch(hist)
        loss = "cross-entropy" if "Classifier" in type(est).__name__ else "L1 on the standardised target (MAE / std)"
        sections["Training"] = (
            f"{hist[-1]['epoch']} epochs run; the model keeps the weights of epoch {best['epoch']}, "
            f"{'the lowest validation loss' if 'val_loss' in best else 'the lowest training loss'} "
            f"(losses: {loss}; model 1 of the ensemble; all epochs in history.csv).\n\n"
            + markdown_table([{k: best[k] for k in ("epoch", "train_loss", "val_loss") if k in best}]))
    if validation is not None:
        metrics, how = validation
        body = f"Scored on {how}."
        if metrics:
            body += "\n\n" + markdown_table([{**{k: v for k, v in metrics.items()}, **({"unit": unit} if unit else {})}])
        sections["Validation"] = body
    run.write_model_card(title, sections)
