"""The ECG pipelines behind ``hsickit ecg``: train, evaluate, predict, finetune and demo.

Plain arguments in, a run folder out; the command line only parses its options and calls
these, and a Python user runs the same pipeline without it. Each takes the records as one
folder of WFDB records or several (``"DIR1,DIR2"`` or a list) and dispatches on the kind of
model: beat models (``task="beats"``, :mod:`hsickit.apps.ecg.api`) or record models
(``task="records"``, :mod:`hsickit.apps.ecg.records`); ``evaluate``, ``predict`` and
``finetune`` read the kind, the leads and the label task from the run.

Example
-------
>>> import os, tempfile
>>> from hsickit.apps.ecg.synthetic import write_synthetic_records
>>> records = write_synthetic_records(tempfile.mkdtemp(), 3, 30, random_state=0)
>>> run = os.path.join(tempfile.mkdtemp(), "run")
>>> _ = train(records, run, channels="rr", channel_epochs=1, epochs=1, quiet=True)
>>> metrics = evaluate(run, records, quiet=True)   # beside the run, in eval-<records folder>
>>> os.path.exists(os.path.join(run, "eval-" + os.path.basename(records), "metrics.json"))
True
"""
from __future__ import annotations

from pathlib import Path

from hsickit.core.errors import HsickitError

__all__ = ["train", "evaluate", "predict", "finetune", "demo", "is_record_model", "evaluation_out"]


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _names(text) -> tuple[str, ...]:
    """Comma-separated names (or a sequence of them) as a tuple; 'none' and blanks left out."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(str(t).strip() for t in items if str(t).strip() and str(t).strip() != "none")


def _leads(text) -> tuple[str, ...] | None:
    return _names(text) or None


def records_text(records) -> str:
    """Records folder(s) as one comma-separated string (a list of folders, or a string that may hold commas)."""
    if isinstance(records, (str, Path)):
        return str(records)
    return ",".join(str(r) for r in records)


def _one_folder(records) -> Path:
    text = records_text(records)
    if "," in text:
        raise HsickitError("--task records reads one --records folder; pass one (several folders: beat models)")
    return Path(text)


def is_record_model(run) -> bool:
    """Whether ``run`` holds a record model (``task="records"``) rather than a beat model."""
    from hsickit.core.io import check_run_app, read_json

    check_run_app(run, "ecg", "`hsickit ecg`")
    if not (Path(run) / "config.json").exists():
        raise HsickitError(f"{run} is not a run folder (no config.json); pass the --out folder of 'hsickit ecg train'")
    return read_json(Path(run) / "config.json").get("task") == "records"


def evaluation_out(run, records) -> Path:
    """Where ``evaluate`` writes by default: ``RUN/eval-<records folder name>``."""
    from hsickit.apps.ecg.api import evaluation_out as beats_out

    return beats_out(run, records_text(records))


def train(records, out, *, task="beats", records_list=None, validation_list=None, label_task=None, channels="rr",
          handcrafted_features=True, downstream=None, ventricular_channels="rr", training="backprop",
          channel_training="backprop", epochs=15, channel_epochs=6, batch_size=None, class_weight="balanced",
          stacking="crossfit", holdout_fraction=0.3, tune_bias=False, leads=None, seed=0, overwrite=False,
          quiet=False, device="cpu", params=None) -> Path:
    """Train a beat model (``task="beats"``: AAMI classes per beat) or a record model (``"records"``: multi-label
    per record) on annotated records and write run folder ``out``; returns ``out``.

    ``validation_list``: records held out for early stopping and the model card (beats: 'none' for none).
    ``label_task``: the PTB-XL label task of a record model. ``channels`` / ``ventricular_channels``:
    comma-separated channel networks ('none' for none). ``batch_size`` None: the model's default.
    ``device``: where every network trains ("cpu", "cuda", "cuda:1", "auto"; checked before any record is read).
    ``params``: further :class:`~hsickit.apps.ecg.fusion.MultiResolutionClassifier` parameters of a beat model
    (``--param KEY=VALUE``), e.g. ``{"record_balance": 0}``; they take precedence over the options above.
    """
    from hsickit.core.checks import check_device, check_options

    check_options(epochs=epochs, channel_epochs=channel_epochs, holdout_fraction=holdout_fraction, batch_size=batch_size)
    check_device(device)
    params = dict(params or {})
    if params and task == "records":
        raise HsickitError(f"--param {next(iter(params))}=...: --param sets beat-model parameters; record models "
                           "(--task records) take the options listed by 'hsickit ecg train --help'")
    if params:  # a wrong key is an error before any record is read
        from hsickit.apps.ecg.fusion import MultiResolutionClassifier
        from hsickit.core.cli_options import apply_params

        apply_params(MultiResolutionClassifier(), params)
    _seed(seed)
    verbose = 0 if quiet else 1
    out = Path(out)
    if task == "records":
        from hsickit.apps.ecg.records import train_records

        train_records(_one_folder(records), out, records_list, validation_list, labels=label_task, epochs=epochs,
                      training=training, downstream=downstream, batch_size=batch_size, random_state=seed,
                      overwrite=overwrite, verbose=verbose, device=device)
        return out
    if task != "beats":
        raise HsickitError(f"--task {task!r}; use 'beats' or 'records'")
    if label_task is not None:
        raise HsickitError("--label-task picks a PTB-XL label task for --task records; beat labels come from the .atr "
                           "annotations")
    from hsickit.apps.ecg.api import train_beats
    from hsickit.apps.ecg.beats import BeatConfig

    config = BeatConfig(leads=_leads(leads)) if leads else None
    model = dict(channels=_names(channels), use_features=handcrafted_features,
                 downstream=downstream or "ventricular_first", ventricular_channels=_names(ventricular_channels),
                 training=training, channel_training=channel_training, epochs=epochs, channel_epochs=channel_epochs,
                 class_weight=None if class_weight == "none" else class_weight, stacking=stacking,
                 holdout_fraction=holdout_fraction, tune_bias=tune_bias, random_state=seed, verbose=verbose, device=device,
                 **({} if batch_size is None else {"batch_size": batch_size}))
    train_beats(records_text(records), out, records_list, beat_config=config, validation_records=validation_list,
                overwrite=overwrite, **(model | params))
    return out


def evaluate(run, records, *, records_list=None, leads=None, out=None, quiet=False) -> dict:
    """Score run ``run``'s model on annotated records; writes metrics.json (beat models also metrics.nc,
    the confusion matrix and its plot) into ``out`` (default ``RUN/eval-<records folder>``; the run's own
    validation metrics are never overwritten). ``leads`` None: the model's. Returns the metrics."""
    verbose = 0 if quiet else 1
    out = Path(out) if out is not None else evaluation_out(run, records)
    if is_record_model(run):
        from hsickit.apps.ecg.records import evaluate_records

        return evaluate_records(run, _one_folder(records), records_list, out=out, verbose=verbose)
    from hsickit.apps.ecg.api import evaluate_beats

    return evaluate_beats(run, records_text(records), records_list, leads=_leads(leads), out=out, verbose=verbose)


def predict(run, record_or_dir, out, *, leads=None, plots=True, overwrite=False, quiet=False) -> list[Path]:
    """Beat model: label every beat of a record (path without extension) or of every record in a folder
    (WFDB annotations, extension hsk, and CSV). Record model: per-label probabilities and predicted labels
    (record_predictions.csv, and with ``plots`` a PNG per record). Writes into folder ``out``; returns the files."""
    verbose = 0 if quiet else 1
    if is_record_model(run):
        from hsickit.apps.ecg.records import predict_records

        return [predict_records(run, record_or_dir, out, plots=plots, overwrite=overwrite, verbose=verbose)]
    from hsickit.apps.ecg.api import predict_beats

    return predict_beats(run, record_or_dir, out, leads=_leads(leads), overwrite=overwrite, verbose=verbose)


def finetune(run, records, out, *, records_list=None, validation_list=None, epochs=5, frozen_blocks=1, lr=3e-4,
             leads=None, seed=0, overwrite=False, quiet=False, device="cpu") -> Path:
    """Fine-tune run ``run``'s beat or record model on your own labelled records and write run folder ``out``
    (the first ``frozen_blocks`` blocks of every network stay fixed). ``device``: where the networks train,
    whatever device the model was trained on. Returns ``out``."""
    from hsickit.core.checks import check_device, check_options

    check_options(epochs=epochs, frozen_blocks=frozen_blocks, lr=lr)
    check_device(device)
    _seed(seed)
    verbose = 0 if quiet else 1
    if is_record_model(run):
        from hsickit.apps.ecg.records import finetune_records

        finetune_records(run, _one_folder(records), out, records_list, validation_list, epochs=epochs,
                         frozen_blocks=frozen_blocks, lr=lr, overwrite=overwrite, verbose=verbose, device=device)
    else:
        from hsickit.apps.ecg.api import finetune_beats

        finetune_beats(run, records_text(records), out, records_list, validation_list, epochs=epochs,
                       frozen_blocks=frozen_blocks, lr=lr, leads=_leads(leads), overwrite=overwrite, verbose=verbose,
                       device=device)
    return Path(out)


def demo(out="hsickit-demo/ecg", *, seed=0, quiet=False) -> dict:
    """train -> evaluate -> predict -> finetune on synthetic records written as real WFDB files (no ECG records
    ship with an installed package): 8 two-lead records to train on, 2 of another "hospital" to fine-tune on.
    Writes ``out/records``, ``out/hospital``, the run ``out/run`` (its evaluation in ``out/run/eval-records``),
    ``out/predictions`` and ``out/finetuned``; returns the evaluation's metrics."""
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    out = Path(out)
    records = Path(write_synthetic_records(out / "records", n_records=8, duration=60, random_state=seed))
    hospital = Path(write_synthetic_records(out / "hospital", n_records=2, duration=60, random_state=seed + 1, prefix="h"))
    train(records, out / "run", validation_list="s06,s07", channels="beat,rhythm,wavelet,rr", channel_epochs=3,
          epochs=5, seed=seed, overwrite=True, quiet=quiet)
    metrics = evaluate(out / "run", records, records_list="s06,s07", quiet=quiet)
    predict(out / "run", records / "s07", out / "predictions", overwrite=True, quiet=quiet)
    finetune(out / "run", hospital, out / "finetuned", epochs=2, seed=seed, overwrite=True, quiet=quiet)
    return metrics
