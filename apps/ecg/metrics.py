"""Metrics for beats (per-class Se, +P, F1, accuracy, Cohen's kappa, confusion matrix, and
their intervals over records) and records (per-label and macro/micro F1 and AUROC), and their
``(class, metric, fold)`` Dataset.

All numbers come from :mod:`sklearn.metrics`.

Example
-------
>>> m = beat_metrics(["N", "N", "S", "V"], ["N", "S", "S", "V"])
>>> m["sensitivity_S"], m["ppv_S"], m["n_beats"]
(1.0, 0.5, 4)
>>> m["sensitivity_F"]  # no F beats: undefined, not 0
nan
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr
from sklearn import metrics as skm

from hsickit.core.errors import HsickitError
from hsickit.datasets.ecg import AAMI_CLASSES

__all__ = ["beat_metrics", "beat_confusion", "beat_scores", "record_intervals", "record_metrics", "metrics_dataset",
           "BEAT_METRICS", "EC57_NOT_FALSE_ALARMS", "not_model_classes", "NOT_A_MODEL_CLASS"]

BEAT_METRICS = ("sensitivity", "ppv", "f1", "specificity", "support")

#: Reference classes whose beats called ``c`` are not false alarms of ``c`` in the ANSI/AAMI EC57
#: gross statistics (PhysioNet's ``bxb``: VEB +P counts N, S and unmatched beats called V, not
#: fusion or unclassifiable ones; SVEB +P not unclassifiable ones). The published beat classifiers
#: (de Chazal 2004 and those after it) report these; ``ppv_<c>_ec57`` is that figure.
EC57_NOT_FALSE_ALARMS = {"V": ("F", "Q"), "S": ("Q",)}


def beat_confusion(y_true, y_pred, classes: Sequence[str] = AAMI_CLASSES) -> np.ndarray:
    """Confusion matrix (rows = reference, columns = predicted) over ``classes``."""
    return skm.confusion_matrix(np.asarray(y_true, str), np.asarray(y_pred, str), labels=list(classes))


def beat_metrics(y_true, y_pred, classes: Sequence[str] = ("N", "S", "V", "F")) -> dict:
    """Flat dict: accuracy, kappa, macro_f1 and ``sensitivity_c``, ``ppv_c``, ``f1_c``,
    ``specificity_c``, ``support_c`` per class, plus ``n_beats``.

    Se = TP / (TP + FN), +P = TP / (TP + FP), F1 = 2 TP / (2 TP + FP + FN) (scikit-learn's);
    a ratio with nothing to count is NaN, not 0 (Se of a class without reference beats, +P of a
    class never predicted, F1 of a class neither present nor predicted; null in metrics.json).
    macro_f1 averages the classes that occur in y_true or y_pred. Accuracy and kappa count every beat (Q included when present).
    ``ppv_V_ec57`` and ``ppv_S_ec57``: +P as the AAMI EC57 standard counts it (:data:`EC57_NOT_FALSE_ALARMS`:
    a fusion beat called V is no false V), the figure published beat classifiers report.

    >>> m = beat_metrics(["N", "V", "F", "V"], ["N", "V", "V", "V"])
    >>> round(m["ppv_V"], 3), m["ppv_V_ec57"]
    (0.667, 1.0)
    """
    y_true, y_pred = np.asarray(y_true, str), np.asarray(y_pred, str)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise HsickitError(f"y_true and y_pred must be non-empty and equally long (got {y_true.size} and {y_pred.size})")
    classes = list(classes)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=np.nan)
    out = {"accuracy": float(skm.accuracy_score(y_true, y_pred)),
           "kappa": float(skm.cohen_kappa_score(y_true, y_pred)) if len(set(y_true) | set(y_pred)) > 1 else 1.0,
           "macro_f1": float(np.mean([f[i] for i, c in enumerate(classes) if s[i] > 0 or c in set(y_pred)] or [0.0])), "n_beats": int(y_true.size)}
    for i, c in enumerate(classes):
        neg = y_true != c
        spec = float(((y_pred != c) & neg).sum() / neg.sum()) if neg.any() else float("nan")
        out.update({f"sensitivity_{c}": float(r[i]), f"ppv_{c}": float(p[i]), f"f1_{c}": float(f[i]),
                    f"specificity_{c}": spec, f"support_{c}": int(s[i])})
    for c, ignored in EC57_NOT_FALSE_ALARMS.items():
        called = (y_pred == c) & ~np.isin(y_true, ignored)
        out[f"ppv_{c}_ec57"] = float(((y_true == c) & called).sum() / called.sum()) if called.any() else float("nan")
    return out


def beat_scores(y_true, y_pred, records, classes: Sequence[str] = ("N", "S", "V", "F"),
                model_classes: Sequence[str] | None = None) -> dict:
    """What a beat model's ``evaluate`` returns and its run folder's metrics.json holds: the pooled
    :func:`beat_metrics`, their 95 % :func:`record_intervals` over ``records`` (``<metric>_low``,
    ``<metric>_high``) and ``n_samples`` (the number of beats). With ``model_classes``, the per-class
    metrics of a class the model does not have are NaN (:func:`not_model_classes`).

    >>> sorted(beat_scores(["N", "S"], ["N", "N"], ["a", "b"]))[:4]
    ['accuracy', 'accuracy_high', 'accuracy_low', 'f1_F']
    """
    scores = {**beat_metrics(y_true, y_pred, classes), **record_intervals(y_true, y_pred, records, classes),
              "n_samples": int(np.asarray(y_true).size)}
    return scores if model_classes is None else not_model_classes(scores, model_classes, classes)[0]


#: How a metric of a class the model does not have is reported (the printed tables; null in metrics.json).
NOT_A_MODEL_CLASS = "not a class of this model"


def not_model_classes(metrics: dict, model_classes: Sequence[str], classes: Sequence[str] = ("N", "S", "V", "F")) -> tuple[dict, list]:
    """``(metrics, absent)``: the classes of ``classes`` that the model does not have (its training beats
    held none) and a copy of ``metrics`` in which their Se, +P, F1 and specificity (and the intervals
    ``_low`` / ``_high`` of these) are NaN — null in metrics.json, "not a class of this model" in the
    printed tables — instead of a 0 that reads as a measured failure. ``support_c`` (the reference beats
    of the class) and the overall figures (accuracy, kappa, macro F1, which count those beats as errors)
    are kept.

    >>> m = beat_metrics(["N", "F", "V"], ["N", "N", "V"])
    >>> m["sensitivity_F"]
    0.0
    >>> marked, absent = not_model_classes(m, model_classes=["N", "S", "V"])
    >>> absent, marked["sensitivity_F"], marked["support_F"]
    (['F'], nan, 1)
    """
    have = {str(c) for c in model_classes}
    absent = [c for c in classes if str(c) not in have]
    marked = dict(metrics)
    for c in absent:
        for name in ("sensitivity", "ppv", "f1", "specificity"):
            for key in (f"{name}_{c}", f"{name}_{c}_low", f"{name}_{c}_high", f"{name}_{c}_ec57", f"{name}_{c}_ec57_low",
                        f"{name}_{c}_ec57_high"):
                if key in marked:
                    marked[key] = float("nan")
    return marked, absent


def record_intervals(y_true, y_pred, records, classes: Sequence[str] = ("N", "S", "V", "F"), confidence_level: float = 0.95,
                     n_resamples: int = 2000, random_state=0) -> dict:
    """Percentile bootstrap intervals of the pooled beat metrics, drawing whole records.

    The beats of one record are not independent: a model that misreads one patient's ectopic
    beats misreads most of them (in the MIT-BIH DS1 cross-validation, records 124 and 201 hold
    most of the missed S beats). So the records are drawn with replacement ``n_resamples``
    times, every beat of a drawn record counts, and the interval of ``accuracy``, ``macro_f1``
    and ``sensitivity_c``, ``ppv_c``, ``f1_c`` of each class (and ``ppv_V_ec57``, ``ppv_S_ec57``) is returned as keys
    ``<metric>_low`` and ``<metric>_high``. A draw in which a ratio is undefined (no S beat
    drawn) is left out of that ratio's interval; with fewer than two records every bound is NaN.

    >>> y = ["N", "S", "N", "S", "N", "S"]; pred = ["N", "S", "N", "N", "N", "S"]
    >>> iv = record_intervals(y, pred, ["a", "a", "b", "b", "c", "c"])
    >>> iv["sensitivity_S_low"], iv["sensitivity_S_high"]
    (0.0, 1.0)
    """
    y_true, y_pred, records = (np.asarray(a, str) for a in (y_true, y_pred, records))
    if not (y_true.shape == y_pred.shape == records.shape) or y_true.size == 0:
        raise HsickitError(f"y_true, y_pred and records must be non-empty and equally long (got {y_true.size}, {y_pred.size}, {records.size})")
    classes = list(classes)
    labels = sorted(set(classes) | set(y_true) | set(y_pred))
    names = (["accuracy", "macro_f1"] + [f"{k}_{c}" for c in classes for k in ("sensitivity", "ppv", "f1")]
             + [f"ppv_{c}_ec57" for c in EC57_NOT_FALSE_ALARMS if c in classes])
    groups, group = np.unique(records, return_inverse=True)
    if len(groups) < 2:
        return {f"{n}_{b}": float("nan") for n in names for b in ("low", "high")}
    per_record = np.zeros((len(groups), len(labels), len(labels)), dtype=np.int64)  # a confusion matrix per record
    np.add.at(per_record, (group, np.searchsorted(labels, y_true), np.searchsorted(labels, y_pred)), 1)
    rng = np.random.default_rng(random_state)
    draws = rng.multinomial(len(groups), np.full(len(groups), 1 / len(groups)), size=n_resamples)
    cm = np.einsum("br,rkl->bkl", draws, per_record).astype(float)
    tp, row, col = np.diagonal(cm, axis1=1, axis2=2), cm.sum(axis=2), cm.sum(axis=1)
    at = [labels.index(c) for c in classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (row + col)
        values = {"accuracy": tp.sum(1) / cm.sum((1, 2)), "macro_f1": np.nanmean(f1[:, at], axis=1)}
        for c, j in zip(classes, at):
            values.update({f"sensitivity_{c}": tp[:, j] / row[:, j], f"ppv_{c}": tp[:, j] / col[:, j], f"f1_{c}": f1[:, j]})
            if c in EC57_NOT_FALSE_ALARMS:
                ignored = [labels.index(k) for k in EC57_NOT_FALSE_ALARMS[c] if k in labels]
                values[f"ppv_{c}_ec57"] = tp[:, j] / (col[:, j] - cm[:, ignored, j].sum(axis=1))
    tail = 100 * (1 - confidence_level) / 2
    out = {}
    for name in names:
        v = values[name][~np.isnan(values[name])]
        low, high = np.percentile(v, [tail, 100 - tail]) if v.size else (np.nan, np.nan)
        out.update({f"{name}_low": float(low), f"{name}_high": float(high)})
    return out


def record_metrics(Y_true, Y_score, labels: Sequence[str], threshold: float | Sequence[float] = 0.5) -> dict:
    """Multi-label record metrics: ``f1_<label>``, ``auroc_<label>``, macro/micro F1 and AUROC.

    A record carries a label when its score is at least ``threshold`` (one number, or one
    per label). ``f1_<label>`` is NaN for a label no record carries in ``Y_true`` and none
    is predicted to carry (undefined), 0 when it is only predicted. ``macro_f1`` averages
    the labels present in ``Y_true`` (at least one positive record), so labels absent from
    the evaluation records neither count as 0 nor reward; false positives of absent labels
    count in ``micro_f1``. AUROC of a label that is all-positive or all-negative in
    ``Y_true`` is NaN and left out of the macro average. Averages over no label are NaN.
    """
    Y_true = np.asarray(Y_true).astype(int)
    Y_score = np.asarray(Y_score, dtype=float)
    if Y_true.shape != Y_score.shape or Y_true.ndim != 2 or Y_true.shape[1] != len(labels):
        raise HsickitError(f"Y_true {Y_true.shape} and Y_score {Y_score.shape} must both be (records, {len(labels)} labels)")
    Y_pred = (Y_score >= np.asarray(threshold, dtype=float)).astype(int)
    f1 = skm.f1_score(Y_true, Y_pred, average=None, zero_division=np.nan)
    present = Y_true.sum(axis=0) > 0
    out = {"macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
           "micro_f1": float(skm.f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
           "n_records": int(Y_true.shape[0])}
    aucs = []
    for j, name in enumerate(labels):
        out[f"f1_{name}"] = float(f1[j])
        auc = float(skm.roc_auc_score(Y_true[:, j], Y_score[:, j])) if 0 < Y_true[:, j].sum() < len(Y_true) else float("nan")
        out[f"auroc_{name}"] = auc
        aucs.append(auc)
    valid = [a for a in aucs if not np.isnan(a)]
    out["macro_auroc"] = float(np.mean(valid)) if valid else float("nan")
    pos = Y_true.ravel()
    out["micro_auroc"] = float(skm.roc_auc_score(pos, Y_score.ravel())) if 0 < pos.sum() < pos.size else float("nan")
    return out


def metrics_dataset(per_fold: Sequence[dict], classes: Sequence[str] = ("N", "S", "V", "F"),
                    metrics: Sequence[str] = BEAT_METRICS, folds: Sequence | None = None) -> xr.Dataset:
    """Stack flat metric dicts (one per fold) into an ``xarray.Dataset``.

    Variable ``per_class`` has dims ``(class, metric, fold)``; overall numbers (accuracy,
    kappa, macro_f1, n_beats) are variables with dim ``fold``. ``ds.to_netcdf(engine="scipy")`` gives the
    netCDF bytes (scipy engine, no HDF5 needed) for :func:`hsickit.core.files.atomic_write`.

    >>> ds = metrics_dataset([beat_metrics(["N", "S"], ["N", "S"])])
    >>> ds["per_class"].dims
    ('class', 'metric', 'fold')
    """
    folds = list(range(len(per_fold))) if folds is None else list(folds)
    data = np.array([[[m.get(f"{k}_{c}", np.nan) for m in per_fold] for k in metrics] for c in classes], dtype=float)
    ds = xr.Dataset({"per_class": (("class", "metric", "fold"), data)},
                    coords={"class": list(classes), "metric": list(metrics), "fold": [str(f) for f in folds]})
    overall = sorted({k for m in per_fold for k in m if not any(k.startswith(f"{x}_") for x in metrics)})
    for k in overall:
        ds[k] = ("fold", np.array([m.get(k, np.nan) for m in per_fold], dtype=float))
    return ds
