"""Whole pipelines behind ``hsickit ecg``: train, evaluate, predict and fine-tune a beat model.

A *run folder* holds ``config.json`` (beat preparation + model parameters), the model
(``model/``: safetensors + JSON per channel and for the downstream classifier),
``history.csv``, ``metrics.json`` (+ ``metrics.nc``: the validation records' scores; a copy in
``validation_metrics.json``), ``plots/`` and a ``README.md`` model card; each ``evaluate``
writes its own folder beside them, ``eval-<records folder>/``. It is built in a temporary folder next to it and
takes its name only once complete, so a failed run leaves no folder that other commands load.
The channel networks trained so far are kept meanwhile in ``.<name>.training`` beside it:
the same command, run again after an interruption, loads them and resumes.

Example
-------
>>> from hsickit.apps.ecg.synthetic import write_synthetic_records
>>> import tempfile, os
>>> d = write_synthetic_records(tempfile.mkdtemp(), 3, 30, random_state=0)
>>> run = os.path.join(tempfile.mkdtemp(), "run")
>>> _ = train_beats(d, run, channels=("rr",), channel_epochs=1, epochs=1, random_state=0, verbose=0)
>>> m = evaluate_beats(run, d, verbose=0)  # three records: 95 % intervals that draw whole records
>>> m["accuracy_low"] <= m["accuracy"] <= m["accuracy_high"]
True
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import wfdb

from hsickit.apps.ecg.beats import BeatConfig, BeatSet, load_beats, summarise_repairs
from hsickit.apps.ecg.fusion import MultiResolutionClassifier
from hsickit.apps.ecg.metrics import NOT_A_MODEL_CLASS, beat_confusion, beat_scores, metrics_dataset, not_model_classes
from hsickit.core.errors import HsickitError
from hsickit.core.io import (RunFolder, atomic_write, check_output_folder, markdown_table, read_json, resumable_training,
                             saved_params, staged_folder)
from hsickit.datasets.ecg import AAMI_CLASSES, find_records, folders, record_files, records_at

__all__ = ["train_beats", "evaluate_beats", "predict_beats", "finetune_beats", "load_run", "evaluation_out"]

_AAMI_SYMBOL = {"N": "N", "S": "S", "V": "V", "F": "F", "Q": "Q"}  # AAMI class -> WFDB code written by predict


def _history(clf: MultiResolutionClassifier) -> list[dict]:
    rows = []
    for name, net in clf.channels_.items():
        rows += [{"model": f"channel:{name}", **r} for r in net.estimator_.history_]
    if hasattr(clf.downstream_, "history_"):
        rows += [{"model": "downstream", **r} for r in clf.downstream_.history_]
    return rows


def _downstream_records(clf: MultiResolutionClassifier) -> str:
    if getattr(clf, "holdout_records_", None):
        return "records " + ", ".join(clf.holdout_records_)
    if clf.stacking == "crossfit" and clf.channels:
        return f"every training record, each scored by channels trained on the other {clf.crossfit_folds - 1} of {clf.crossfit_folds} record groups"
    return "records shared with the channels"


def write_model_card(run: RunFolder, clf: MultiResolutionClassifier, config: BeatConfig, data: dict, metrics: dict | None) -> None:
    sections = {
        "Model": (f"Multi-resolution beat classifier (AAMI classes {', '.join(clf.classes_)}): channels "
                  f"{', '.join(clf.channels) or '(none)'}, hand-crafted features {'on' if clf.use_features else 'off'}, "
                  f"downstream {clf.downstream} trained by {clf.training}, channels by {clf.channel_training}, "
                  f"class weighting {clf.class_weight}, stacking {clf.stacking} (downstream trained on "
                  f"{_downstream_records(clf)}), "
                  f"class bias {dict(zip(clf.classes_.tolist(), np.round(clf.class_bias_, 2).tolist()))}."),
        "Input": (f"Leads {', '.join(config.leads)} at {config.sampling_rate:g} Hz (other rates are resampled and reported), "
                  f"filter {config.filter}; second lead for the lead2_* morphology features: {config.second_lead}; beat positions from '{config.annotation}' annotations, else {config.detector} R-peak detection"
                  f"{' less small peaks that split one RR interval' if config.drop_extra_peaks else ''}"
                  f"{', moved to the same point of every QRS (' + config.align + ')' if config.align else ''}."),
        "Training data": "\n".join(f"- {k}: {v}" for k, v in data.items()),
    }
    if metrics:
        keys = ["accuracy", "kappa", "macro_f1"] + [f"{m}_{c}" for c in ("N", "S", "V", "F") for m in ("sensitivity", "ppv", "f1")]
        has_intervals = not np.isnan(metrics.get("accuracy_low", np.nan))  # one validation record: nothing to draw
        rows = [("measured", "")] + ([("95 % low", "_low"), ("95 % high", "_high")] if has_intervals else [])
        sections["Validation metrics (records not trained on)"] = (
            markdown_table([{"": name, **{k: metrics.get(f"{k}{end}") for k in keys if k in metrics}} for name, end in rows]) +
            ("\n\nThe 95 % rows draw whole records (bootstrap)." if has_intervals else "") +
            "\n\nThese records also chose the early-stopping epoch and the class bias, so the numbers are "
            "optimistic; score other records with `hsickit ecg evaluate`.")
    sections["Limits"] = ("Trained and validated by record (inter-patient); beats of one patient are correlated, so "
                          "scores on a random beat split are not comparable. Q beats are too rare to learn.")
    run.write_model_card("hsickit ECG beat model", sections)


def _fit_and_write(clf: MultiResolutionClassifier, out, overwrite: bool, config: BeatConfig, train: BeatSet,
                   validation: BeatSet | None, data: dict, verbose: int, inputs: Sequence = ()) -> MultiResolutionClassifier:
    """Fit ``clf``, then write run folder ``out`` whole; the channel networks trained so far are
    kept beside it, so that the same command, run again after an interruption, resumes
    (:func:`hsickit.core.io.resumable_training`)."""
    start = time.perf_counter()
    model = saved_params(clf, leave_out=["verbose"])
    settings = {"task": "beats", "beat_config": config.to_dict(),
                **{k: data[k] for k in ("base_run", "records_dir", "train_records", "validation_records") if k in data}}
    files = _record_files(data["records_dir"], sorted({*train.record, *(() if validation is None else validation.record)}))
    command = "finetune" if "base_run" in data else "train"
    with resumable_training(clf, out, settings, [*inputs, *files], overwrite, verbose, app="ecg", command=command):
        try:
            clf.fit(train, validation)
        except HsickitError:
            raise
        except Exception as err:
            raise HsickitError(f"training on records {data['train_records']} of {data['records_dir']} failed "
                               f"({type(err).__name__}: {err}); nothing was written to {out}. Check those records (the "
                               "classes each holds); if they are sound, report this with the command") from err
        seconds = time.perf_counter() - start
        data["beats_left_out_of_training"] = clf.left_out_
        data["n_train_beats"] = len(train) - sum(clf.left_out_.values())
        if getattr(clf, "holdout_records_", None):
            data["downstream_trained_on_records"] = ",".join(clf.holdout_records_)
        with staged_folder(out, overwrite, app="ecg", command=command) as folder:
            run = RunFolder(folder)
            clf.save(run / "model")
            run.write_config({"task": "beats", "beat_config": config.to_dict(), "model": model, "data": data,
                              "fit_seconds": seconds})
            history = _history(clf)
            if history:
                run.write_history(history)
            metrics = None
            if validation is not None and len(validation):
                metrics = _write_evaluation(run, clf, validation, "validation", data["records_dir"])
                atomic_write(run / "validation_metrics.json", (run / "metrics.json").read_bytes())
            write_model_card(run, clf, config, data, metrics)
    return clf


#: What the ``<metric>_low`` / ``<metric>_high`` keys of a beat model's metrics.json are.
INTERVALS = ("95 % percentile bootstrap intervals drawing whole records (hsickit.apps.ecg.metrics.record_intervals; "
             "null with one record): <metric>_low, <metric>_high")


def _write_evaluation(run: RunFolder, clf: MultiResolutionClassifier, beats: BeatSet, split: str, records_dir) -> dict:
    """Score ``beats``; write metrics.json (with 95 % intervals over records) and metrics.nc (naming the
    records scored), the confusion matrix and its plot."""
    from hsickit.core.plots import confusion_matrix

    y_pred = clf.predict(beats)
    y_true = beats.y.astype(str)
    classes = [c for c in ("N", "S", "V", "F")]
    scores = beat_scores(y_true, y_pred, beats.record, classes, model_classes=clf.classes_)  # = clf.evaluate(beats)
    info = {"records_dir": _folders_text(records_dir), "records": ",".join(sorted(set(beats.record.astype(str))))}
    absent = not_model_classes({}, clf.classes_, classes)[1]
    info["not_model_classes"] = ",".join(absent)  # their per-class metrics are null: the model cannot predict them
    if absent:
        info["not_model_classes_note"] = (f"{', '.join(absent)}: {NOT_A_MODEL_CLASS} (its training beats held none), so "
                                          "its Se, +P, F1 and specificity are null; its reference beats count as errors "
                                          "in accuracy, kappa and macro F1")
    run.write_metrics(scores, split=split, info={**info, "intervals": INTERVALS})
    pooled = {k: v for k, v in scores.items() if not k.endswith(("_low", "_high")) and k != "n_samples"}
    ds = metrics_dataset([pooled], classes, folds=[split]).assign_attrs(split=split, **info)
    atomic_write(run / "metrics.nc", ds.to_netcdf(engine="scipy"))
    labels = [c for c in AAMI_CLASSES if c in set(y_true) | set(y_pred)]
    cm = beat_confusion(y_true, y_pred, labels)
    run.write_json("confusion.json", {"labels": labels, "matrix": cm.tolist()})
    confusion_matrix(cm, labels, run.plots / "confusion_matrix.png", title=f"AAMI beats ({split}, {len(beats)} beats)")
    return scores


def _folders_text(directories) -> str:
    """The records folder(s) as written to config.json and metrics.json: absolute, comma-separated."""
    return ",".join(os.path.abspath(d) for d in folders(directories))


def _record_files(directories, records: Sequence[str]) -> list[Path]:
    """Every file of the records with these ids (header, signals, annotations), for resume checks."""
    paths = find_records(directories, records)
    return sorted(p for path in paths.values() for p in record_files(Path(path).parent, [Path(path).name]))


def load_run(run: str | os.PathLike, leads: Sequence[str] | None = None) -> tuple[MultiResolutionClassifier, BeatConfig]:
    """The model and beat configuration saved in a run folder; ``leads`` replaces the model's leads."""
    from hsickit.core.io import check_run_app

    run = Path(run)
    check_run_app(run, "ecg", "`hsickit ecg`")
    if not (run / "config.json").exists():
        raise HsickitError(f"{run} is not a run folder (no config.json); pass the --out folder of 'hsickit ecg train'")
    cfg = read_json(run / "config.json")
    if cfg.get("task") is None:
        raise HsickitError(f"{run} is not an ECG run (its config.json names no ECG task); pass the --out folder of "
                           "'hsickit ecg train'")
    if cfg.get("task") != "beats":
        raise HsickitError(f"{run} holds a '{cfg.get('task')}' model; this command needs a beat model (--task beats)")
    config = BeatConfig.from_dict(cfg["beat_config"])
    if leads:
        config.leads = tuple(leads)
    return MultiResolutionClassifier.load(run / "model"), config


def _validation_note(validation: list[str], train_names: list[str], how: str) -> str:
    """One line on the records held out for validation (chosen ``how``), and on those trained on."""
    if not validation:
        return (f"no validation records ({how}): no validation metrics are written; "
                f"training on {len(train_names)} record(s)")
    return (f"validation records, held out of training ({how}; choose others with --validation-list): "
            f"{', '.join(validation)}; training on {len(train_names)} record(s)")


def train_beats(records_dir, out, records: Sequence[str] | str | None = None, validation_records: Sequence[str] | str | None = None,
                *, beat_config: BeatConfig | None = None, overwrite: bool = False, verbose: int = 1,
                **model_params) -> MultiResolutionClassifier:
    """Train a multi-resolution beat classifier on annotated records and write a run folder.

    ``records_dir`` is one folder of WFDB records or several (``"DIR1,DIR2"`` or a list; for
    instance MIT-BIH and SVDB): records at other sampling rates are resampled, and a record
    without the model's lead gives its first lead (``beat_config.leads``; both reported).
    A finished run already in ``out`` is replaced only with ``overwrite``.

    ``validation_records`` (record ids; "none": no validation) are held out
    for early stopping and the model card's metrics; by default the MIT-BIH DS1 validation
    records when they are present, else every fifth record. Which records were held out is
    printed (``verbose``) and written to config.json. ``model_params`` go to
    :class:`MultiResolutionClassifier`.
    """
    from hsickit.datasets.ecg_splits import DS1_VALIDATION

    check_output_folder(out, overwrite)
    config = beat_config or BeatConfig()
    names = list(find_records(records_dir, records))
    if validation_records == "none":
        validation, how = [], "--validation-list none"
    elif validation_records is not None:
        validation, how = list(find_records(records_dir, validation_records)), "as asked"
    elif any(r in DS1_VALIDATION for r in names):
        validation, how = [r for r in names if r in DS1_VALIDATION], "the MIT-BIH DS1 validation records among them"
    else:
        validation, how = names[4::5], f"every 5th of the {len(names)} records"
    train_names = [r for r in names if r not in validation]
    if not train_names:
        raise HsickitError("every record is a validation record; leave some records for training "
                           "(--validation-list names the validation records; 'none' for none)")
    if verbose:
        print(_validation_note(validation, train_names, how))
    beats = load_beats(records_dir, sorted(set(train_names) | set(validation)), config, annotated=True, verbose=verbose)
    train, val = beats.records(train_names), beats.records(validation)
    data = {"records_dir": _folders_text(records_dir), "train_records": ",".join(train_names),
            "validation_records": ",".join(validation), "n_validation_beats": len(val),
            "repairs": "; ".join(beats.repairs) or "none"}
    model_params.setdefault("verbose", verbose)
    clf = MultiResolutionClassifier(**model_params)
    return _fit_and_write(clf, out, overwrite, config, train, val if len(val) else None, data, verbose)


def evaluation_out(run, records_dir) -> Path:
    """Where ``evaluate`` writes by default: ``RUN/eval-<records folder name>`` (several folders: their
    names joined by ``+``), beside the run, never over its own metrics.json."""
    from hsickit.core.io import evaluation_folder

    return evaluation_folder(run, "+".join(Path(d).name for d in folders(records_dir)))


def evaluate_beats(run, records_dir, records: Sequence[str] | str | None = None, *, leads: Sequence[str] | None = None,
                   out=None, verbose: int = 1) -> dict:
    """Score a run's model on annotated records (one folder or several); writes ``metrics.json`` (+ .nc, confusion
    plot) into ``out`` (default :func:`evaluation_out`: ``RUN/eval-<records folder>``; the run's own validation
    metrics are kept). ``leads`` replaces the model's leads (names, aliases or numbers from 0)."""
    from hsickit.core.io import open_output_folder

    clf, config = load_run(run, leads)
    beats = load_beats(records_dir, records, config, annotated=True, verbose=verbose)
    folder = open_output_folder(out if out is not None else evaluation_out(run, records_dir), "ecg", "evaluate")
    folder.write_config({"command": "evaluate", "run": os.path.abspath(run), "records_dir": _folders_text(records_dir),
                         "records": ",".join(sorted(set(beats.record.astype(str)))), "leads": list(config.leads)})
    return _write_evaluation(folder, clf, beats, "evaluation", records_dir)


def predict_beats(run, record_or_dir, out, *, leads: Sequence[str] | None = None, overwrite: bool = False,
                  verbose: int = 1) -> list[Path]:
    """Label every beat of a record (path without extension) or of every record in a folder.

    Writes ``<record>.<ext>`` WFDB annotations (extension ``hsk``; the beat's AAMI class as
    its code, at the record's sample positions) and ``<record>_beats.csv``; R peaks are
    taken from the record's annotations when present, else detected; beats in signal dropouts
    are left out (printed with the other repairs). In a folder, a record that cannot be read
    does not stop the others: the error lists them at the end. ``leads`` replaces the model's
    leads. Prediction files already in ``out`` are replaced only with ``overwrite``. Returns the CSV paths.
    """
    from hsickit.core.io import check_output_file

    clf, config = load_run(run, leads)
    directory, names = records_at(record_or_dir)
    paths = [directory / r for r in names]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HsickitError(f"--out {out} is a file; give a folder for the predictions")
    for name in names:
        for written in (out / f"{Path(name).name}_beats.csv", out / f"{Path(name).name}.hsk"):
            check_output_file(written, overwrite=overwrite, option="--out")
    out.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    from hsickit.apps.ecg.beats import beats_from_record

    for path in paths:
        try:
            beats = beats_from_record(path, config)
        except HsickitError as exc:
            if len(paths) == 1:
                raise
            failed.append(str(exc))
            continue
        if verbose:
            for repair in summarise_repairs(beats.repairs):
                print(f"repaired: {repair}")
        proba = clf.predict_proba(beats)
        pred = clf.decide(proba)
        fs = wfdb.rdheader(str(path)).fs
        wfdb.wrann(path.name, "hsk", beats.sample, np.array([_AAMI_SYMBOL[p] for p in pred]), fs=fs, write_dir=str(out))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["record", "sample", "time_s", "predicted", "reference"] + [f"p_{c}" for c in clf.classes_])
        for i in range(len(beats)):
            w.writerow([path.name, int(beats.sample[i]), f"{beats.sample[i] / fs:.4f}", pred[i],
                        beats.y[i] if beats.y[i] is not None else ""] + [f"{p:.4f}" for p in proba[i]])
        written.append(atomic_write(out / f"{path.name}_beats.csv", buf.getvalue()))
    if failed:
        raise HsickitError(f"labelled {len(written)} of {len(paths)} records (written to {out}); these could not be read:\n"
                           + "\n".join(failed))
    return written


def finetune_beats(run, records_dir, out, records: Sequence[str] | str | None = None, validation_records=None, *,
                   epochs: int = 5, frozen_blocks: int = 1, lr: float = 3e-4, leads: Sequence[str] | None = None,
                   overwrite: bool = False, verbose: int = 1, device: str = "cpu") -> MultiResolutionClassifier:
    """Continue training a run's model on new annotated records (e.g. a hospital's; one folder or several);
    writes run folder ``out`` (a finished run there is replaced only with ``overwrite``).

    The first ``frozen_blocks`` blocks of every network stay fixed; the classes stay those of
    the original model. ``leads`` replaces the model's leads for the new records. ``device``: where
    the networks train (whatever device the base model trained on).
    """
    check_output_folder(out, overwrite)
    clf, config = load_run(run, leads)
    names = list(find_records(records_dir, records))
    validation = list(find_records(records_dir, validation_records)) if validation_records else []
    train_names = [r for r in names if r not in validation]
    beats = load_beats(records_dir, sorted(set(names) | set(validation)), config, annotated=True, verbose=verbose)
    train, val = beats.records(train_names), beats.records(validation)
    known = np.isin(train.y.astype(str), clf.classes_)
    n_unknown = int((~known).sum())
    if n_unknown and verbose:
        print(f"fine-tuning: {n_unknown} beats of classes the model does not know were left out of training")
    train = train.subset(known)
    clf.set_params(warm_start=True, epochs=epochs, channel_epochs=epochs, frozen_blocks=frozen_blocks, lr=lr, device=device)
    data = {"n_beats_of_unknown_classes_left_out": n_unknown, "base_run": os.path.abspath(run), "records_dir": _folders_text(records_dir),
            "train_records": ",".join(train_names), "validation_records": ",".join(validation),
            "repairs": "; ".join(beats.repairs) or "none"}
    return _fit_and_write(clf, out, overwrite, config, train, val if len(val) else None, data, verbose,
                          inputs=[Path(run) / "model" / "fusion.json"])
