"""``hsickit ecg``: train, evaluate, predict, finetune and demo.

``--records DIR [--records-list 101,106,...]`` selects records the same way in every command;
several folders (``--records DIR1,DIR2`` or ``--records DIR1 --records DIR2``) are read as one set.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List, Optional

import typer

from hsickit.core.errors import HsickitError

app = typer.Typer(rich_markup_mode=None, help="ECG arrhythmia classification from a multi-resolution representation (WFDB records).",
                  no_args_is_help=True, pretty_exceptions_enable=False)

_RECORDS = typer.Option(..., "--records", help="Folder of WFDB records (.hea + .dat, and .atr beat annotations where there are any); several: DIR1,DIR2 or the option repeated (beats).")
_LEADS = typer.Option(None, "--leads", help="Leads the beat model reads: names, aliases (MLII = II) or numbers from 0, comma-separated. Default: the model's (MLII at training); a record without it gives its first lead, reported.")
_LIST = typer.Option(None, "--records-list", help="Comma-separated record names to use (default: all in the folder).")
_SEED = typer.Option(0, "--seed", help="Random seed.")
_QUIET = typer.Option(False, "--quiet/--no-quiet", help="No progress bars.")
_OVERWRITE = typer.Option(False, "--overwrite/--no-overwrite", help="Replace the finished run in --out (swapped in only once the new run is complete).")
_JSON = typer.Option(False, "--json/--no-json", help="Print the metrics as JSON (all of metrics.json) instead of the table.")

#: The rows of the table train and evaluate print (metrics.json holds every metric and interval).
_BEAT_ROWS = ["accuracy", "kappa", "macro_f1"] + [f"{m}_{c}" for c in "NSVF" for m in ("sensitivity", "ppv")] + ["n_samples"]
_RECORD_ROWS = ["macro_f1", "micro_f1", "macro_auroc", "n_samples"]


def _print_metrics(path: Path, task: str, as_json: bool) -> None:
    """The scores in ``path`` (a metrics.json) as a short table and where it is, or as JSON."""
    from hsickit.core.io import read_json
    from hsickit.core.report import print_metrics

    metrics = read_json(path)
    units = {"n_samples": "records" if task == "records" else "beats"}
    absent = [] if as_json else [c for c in str(metrics.get("not_model_classes") or "").split(",") if c]
    if absent:  # a class the model does not have: say so instead of a number (null in metrics.json)
        from hsickit.apps.ecg.metrics import NOT_A_MODEL_CLASS

        metrics = {k: v for k, v in metrics.items() if not (k.endswith(("_low", "_high")) and k.split("_")[1] in absent)}
        metrics.update({f"{m}_{c}": NOT_A_MODEL_CLASS for c in absent for m in ("sensitivity", "ppv")})
    print_metrics(metrics, _RECORD_ROWS if task == "records" else _BEAT_ROWS, units, written=None if absent else str(path),
                  as_json=as_json, echo=typer.echo)
    for c in absent:
        typer.echo(f"{c}: {NOT_A_MODEL_CLASS} (its training beats held none); "
                   f"{metrics.get(f'support_{c}', 0)} {c} beat(s) here count as errors")
    if absent:
        typer.echo(f"written: {path}")


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _records_model(run: Path) -> bool:
    """Whether ``run`` holds a record model (``--task records``) rather than a beat model."""
    from hsickit.core.io import check_run_app, read_json

    check_run_app(run, "ecg", "`hsickit ecg`")
    return read_json(run / "config.json").get("task") == "records"


def _folders(records: List[Path]) -> str:
    """The --records folders as one comma-separated string (the option may repeat, and may hold commas)."""
    return ",".join(str(r) for r in records)


def _one_folder(records: List[Path]) -> Path:
    if len(records) != 1 or "," in str(records[0]):
        raise HsickitError("--task records reads one --records folder; pass one (several folders: beat models)")
    return records[0]


def _leads(text: Optional[str]) -> Optional[tuple[str, ...]]:
    return tuple(t.strip() for t in text.split(",") if t.strip()) or None if text else None


def _channels(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip() and c.strip() != "none")


@app.command()
def train(
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    task: str = typer.Option("beats", "--task", help="beats (AAMI classes per beat) or records (multi-label per record)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="--task records on a PTB-XL folder: the label task, superdiagnostic (default), subdiagnostic, diagnostic, form, rhythm or all; labels come from ptbxl_database.csv + scp_statements.csv."),
    validation_list: Optional[str] = typer.Option(None, "--validation-list", help="Records held out for early stopping and the model card (default: DS1 validation records if present, else every 5th; beats: 'none' for none)."),
    channels: str = typer.Option("rr", help="Channel networks of the beat model (comma-separated, or 'none'): beat, rhythm, wavelet, rr. The default two-stage downstream reads only rr (--ventricular-channels); the others feed the one-stage downstreams. --task records always fuses its four record channels."),
    features: bool = typer.Option(True, "--features/--no-features", help="Append the hand-crafted features."),
    downstream: Optional[str] = typer.Option(None, help="Downstream classifier. Beats: ventricular_first (default; two-stage gradient boosting), gradient_boosting, residual_mlp or mlp. Records: logistic (default; mlp with --training hsic) or mlp."),
    ventricular_channels: str = typer.Option("rr", help="Channels whose outputs the V stage of ventricular_first reads (comma-separated, or 'none')."),
    training: str = typer.Option("backprop", help="Downstream training: backprop or hsic."),
    channel_training: str = typer.Option("backprop", help="Channel training: backprop or hsic."),
    epochs: int = typer.Option(15, help="Downstream epochs."),
    channel_epochs: int = typer.Option(6, help="Epochs per channel network."),
    class_weight: str = typer.Option("balanced", help="Class weighting: none, sqrt or balanced."),
    stacking: str = typer.Option("crossfit", help="holdout: the downstream learns on records the channels never saw; crossfit: on every record, scored by channels trained without it; insample."),
    holdout_fraction: float = typer.Option(0.3, help="Share of training records held out for the downstream classifier."),
    tune_bias: bool = typer.Option(False, "--tune-bias/--no-tune-bias", help="Tune per-class bias on the validation records (needs representative validation records)."),
    leads: Optional[str] = _LEADS,
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
    as_json: bool = _JSON,
) -> None:
    """Train a model on annotated records and write a run folder."""
    from hsickit.core.checks import check_options

    check_options(epochs=epochs, channel_epochs=channel_epochs, holdout_fraction=holdout_fraction)
    _seed(seed)
    verbose = 0 if quiet else 1
    if task == "records":
        from hsickit.apps.ecg.records import train_records

        train_records(_one_folder(records), out, records_list, validation_list, labels=labels, epochs=epochs, training=training,
                      downstream=downstream, random_state=seed, overwrite=overwrite, verbose=verbose)
        if (out / "metrics.json").exists():
            _print_metrics(out / "metrics.json", "records", as_json)
        typer.echo(f"run folder: {out}")
        return
    if task != "beats":
        raise HsickitError(f"--task {task!r}; use 'beats' or 'records'")
    if labels is not None:
        raise HsickitError("--labels picks a PTB-XL label task for --task records; beat labels come from the .atr annotations")
    from hsickit.apps.ecg.api import train_beats
    from hsickit.apps.ecg.beats import BeatConfig

    config = BeatConfig(leads=_leads(leads)) if leads else None
    train_beats(_folders(records), out, records_list, beat_config=config, validation_records=validation_list, channels=_channels(channels), use_features=features,
                downstream=downstream or "ventricular_first", ventricular_channels=_channels(ventricular_channels), training=training,
                channel_training=channel_training, epochs=epochs,
                channel_epochs=channel_epochs, class_weight=None if class_weight == "none" else class_weight,
                stacking=stacking, holdout_fraction=holdout_fraction, tune_bias=tune_bias, random_state=seed, overwrite=overwrite,
                verbose=verbose)
    metrics = out / "metrics.json"
    if metrics.exists():
        from hsickit.core.io import read_json

        if not as_json:
            typer.echo(f"validation metrics on records {read_json(metrics)['records']} (held out of training):")
        _print_metrics(metrics, "beats", as_json)
    else:
        typer.echo("no validation records, so no validation metrics; score the model with 'hsickit ecg evaluate'")
    typer.echo(f"run folder: {out}")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by 'hsickit ecg train'."),
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    leads: Optional[str] = _LEADS,
    quiet: bool = _QUIET,
    as_json: bool = _JSON,
) -> None:
    """Score a trained model on annotated records; writes RUN/metrics.json (training's validation
    metrics stay in RUN/validation_metrics.json) and prints the main scores (--json: all of it; undefined ratios are null)."""
    task = "records" if _records_model(run) else "beats"
    if task == "records":
        from hsickit.apps.ecg.records import evaluate_records

        evaluate_records(run, _one_folder(records), records_list, verbose=0 if quiet else 1)
    else:
        from hsickit.apps.ecg.api import evaluate_beats

        evaluate_beats(run, _folders(records), records_list, leads=_leads(leads), verbose=0 if quiet else 1)
    _print_metrics(run / "metrics.json", task, as_json)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder written by 'hsickit ecg train' (beat or record model)."),
    record_or_dir: Path = typer.Argument(..., help="A record path without extension, or a folder of records (no labels needed)."),
    out: Path = typer.Option(..., "--out", help="Folder for the predictions: beat models write <record>.hsk annotations and <record>_beats.csv, record models record_predictions.csv and plots/<record>.png."),
    leads: Optional[str] = _LEADS,
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Record models: a PNG per record of its leads with the predicted labels."),
    quiet: bool = _QUIET,
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace prediction files already in --out."),
) -> None:
    """Beat model: label every beat (WFDB annotations, extension hsk, and CSV). Record model: per-label probabilities and the predicted labels of every record (CSV)."""
    verbose = 0 if quiet else 1
    if _records_model(run):
        from hsickit.apps.ecg.records import predict_records

        typer.echo(str(predict_records(run, record_or_dir, out, plots=plots, overwrite=overwrite, verbose=verbose)))
        return
    from hsickit.apps.ecg.api import predict_beats

    for path in predict_beats(run, record_or_dir, out, leads=_leads(leads), overwrite=overwrite, verbose=verbose):
        typer.echo(str(path))


@app.command()
def finetune(
    run: Path = typer.Argument(..., help="Run folder of the model to start from."),
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    out: Path = typer.Option(..., "--out", help="Run folder for the fine-tuned model."),
    validation_list: Optional[str] = typer.Option(None, "--validation-list", help="Records held out for early stopping."),
    epochs: int = typer.Option(5, help="Epochs per network."),
    frozen_blocks: int = typer.Option(1, help="Blocks kept fixed at the start of every network."),
    lr: float = typer.Option(3e-4, help="Learning rate."),
    leads: Optional[str] = _LEADS,
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
    quiet: bool = _QUIET,
) -> None:
    """Fine-tune a beat or record model on your own labelled records."""
    from hsickit.apps.ecg.api import finetune_beats
    from hsickit.apps.ecg.records import finetune_records
    from hsickit.core.checks import check_options

    check_options(epochs=epochs, frozen_blocks=frozen_blocks, lr=lr)
    _seed(seed)
    if _records_model(run):
        finetune_records(run, _one_folder(records), out, records_list, validation_list, epochs=epochs, frozen_blocks=frozen_blocks,
                         lr=lr, overwrite=overwrite, verbose=0 if quiet else 1)
    else:
        finetune_beats(run, _folders(records), out, records_list, validation_list, epochs=epochs, frozen_blocks=frozen_blocks, lr=lr,
                       leads=_leads(leads), overwrite=overwrite, verbose=0 if quiet else 1)
    typer.echo(f"run folder: {out}")


@app.command()
def demo(
    out: Path = typer.Option(Path("hsickit-demo/ecg"), "--out", help="Folder for the records and run folders."),
    seed: int = _SEED,
    quiet: bool = _QUIET,
) -> None:
    """End to end in well under a minute on synthetic records written as real WFDB files.

    No ECG records ship with an installed package, so the demo writes 8 synthetic two-lead
    records (wfdb.wrsamp + wfdb.wrann) and runs train -> evaluate -> predict -> finetune on them.
    """
    from hsickit.apps.ecg.api import evaluate_beats, finetune_beats, predict_beats, train_beats
    from hsickit.apps.ecg.synthetic import write_synthetic_records

    _seed(seed)
    start = time.perf_counter()
    verbose = 0 if quiet else 1
    records = Path(write_synthetic_records(out / "records", n_records=8, duration=60, random_state=seed))
    hospital = Path(write_synthetic_records(out / "hospital", n_records=2, duration=60, random_state=seed + 1, prefix="h"))
    train_beats(records, out / "run", validation_records="s06,s07", channels=("beat", "rhythm", "wavelet", "rr"),
                channel_epochs=3, epochs=5, random_state=seed, overwrite=True, verbose=verbose)
    metrics = evaluate_beats(out / "run", records, "s06,s07", verbose=verbose)
    predict_beats(out / "run", records / "s07", out / "predictions", overwrite=True, verbose=verbose)
    finetune_beats(out / "run", hospital, out / "finetuned", epochs=2, overwrite=True, verbose=verbose)
    keys = ["accuracy", "kappa"] + [f"{m}_{c}" for c in ("N", "S", "V", "F") for m in ("sensitivity", "ppv")]
    typer.echo(" ".join(f"{k}={'n/a' if math.isnan(metrics[k]) else format(metrics[k], '.3f')}" for k in keys))
    typer.echo(f"synthetic records: {records}; run folders: {out / 'run'}, {out / 'finetuned'}; "
               f"predictions: {out / 'predictions'} ({time.perf_counter() - start:.0f} s)")
