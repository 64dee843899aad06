"""``hsickit ecg``: train, evaluate, predict, finetune and demo.

``--records DIR [--records-list 101,106,...]`` selects records the same way in every command;
several folders (``--records DIR1,DIR2`` or ``--records DIR1 --records DIR2``) are read as one set.
The commands only parse their options: the work is done by :mod:`hsickit.apps.ecg.pipelines`.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List, Optional

import typer

import hsickit.core.cli_options as opt

app = typer.Typer(rich_markup_mode=None, help="ECG arrhythmia classification from a multi-resolution representation (WFDB records).",
                  no_args_is_help=True, pretty_exceptions_enable=False)

_RECORDS = typer.Option(..., "--records", help="Folder of WFDB records (.hea + .dat, and .atr beat annotations where there are any); several: DIR1,DIR2 or the option repeated (beats).")
_LEADS = typer.Option(None, "--leads", help="Leads the beat model reads: names, aliases (MLII = II) or numbers from 0, comma-separated. Default: the model's (MLII at training); a record without it gives its first lead, reported.")
_LIST = typer.Option(None, "--records-list", help="Comma-separated record names to use (default: all in the folder).")

#: Old option spellings of this application (besides core's), kept one release: --features is materials' featuriser
#: preset, --labels plants' CSV of image labels.
ALIASES = {"--features": "--handcrafted-features", "--no-features": "--no-handcrafted-features", "--labels": "--label-task"}

#: The rows of the table train and evaluate print (metrics.json holds every metric and interval).
_BEAT_ROWS = (["accuracy", "kappa", "macro_f1"] + [f"{m}_{c}" for c in "NSVF" for m in ("sensitivity", "ppv")]
              + ["ppv_S_ec57", "ppv_V_ec57", "n_samples"])  # +P as the AAMI EC57 standard counts it (metrics.EC57_NOT_FALSE_ALARMS)
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
        metrics.update({k: NOT_A_MODEL_CLASS for c in absent for k in (f"sensitivity_{c}", f"ppv_{c}", f"ppv_{c}_ec57")})
    print_metrics(metrics, _RECORD_ROWS if task == "records" else _BEAT_ROWS, units, written=None if absent else str(path),
                  as_json=as_json, echo=typer.echo)
    for c in absent:
        typer.echo(f"{c}: {NOT_A_MODEL_CLASS} (its training beats held none); "
                   f"{metrics.get(f'support_{c}', 0)} {c} beat(s) here count as errors")
    if absent:
        typer.echo(f"written: {path}")


@opt.command(app, ALIASES)
def train(
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    out: Path = opt.out(),
    task: str = typer.Option("beats", "--task", help="beats (AAMI classes per beat) or records (multi-label per record)."),
    label_task: Optional[str] = typer.Option(None, "--label-task", help="--task records on a PTB-XL folder: the label task, superdiagnostic (default), subdiagnostic, diagnostic, form, rhythm or all; labels come from ptbxl_database.csv + scp_statements.csv."),
    validation_list: Optional[str] = typer.Option(None, "--validation-list", help="Records held out for early stopping and the model card (default: DS1 validation records if present, else every 5th; beats: 'none' for none)."),
    channels: str = typer.Option("rr", help="Channel networks of the beat model (comma-separated, or 'none'): beat, rhythm, wavelet, rr. The default two-stage downstream reads only rr (--ventricular-channels); the others feed the one-stage downstreams. --task records always fuses its four record channels."),
    handcrafted_features: bool = typer.Option(True, "--handcrafted-features/--no-handcrafted-features", help="Append the hand-crafted beat features."),
    downstream: Optional[str] = typer.Option(None, help="Downstream classifier. Beats: ventricular_first (default; two-stage gradient boosting), gradient_boosting, residual_mlp or mlp. Records: logistic (default; mlp with --training hsic) or mlp."),
    ventricular_channels: str = typer.Option("rr", help="Channels whose outputs the V stage of ventricular_first reads (comma-separated, or 'none')."),
    training: str = typer.Option("backprop", help="Downstream training: backprop or hsic."),
    channel_training: str = typer.Option("backprop", help="Channel training: backprop or hsic."),
    epochs: int = opt.epochs(15, "Downstream epochs."),
    channel_epochs: int = typer.Option(6, help="Epochs per channel network."),
    batch_size: Optional[int] = opt.batch_size(None, "Mini-batch size of the networks (default: beats 256, records 16)."),
    class_weight: str = typer.Option("balanced", help="Class weighting: none, sqrt or balanced."),
    stacking: str = typer.Option("crossfit", help="holdout: the downstream learns on records the channels never saw; crossfit: on every record, scored by channels trained without it; insample."),
    holdout_fraction: float = typer.Option(0.3, help="Share of training records held out for the downstream classifier."),
    tune_bias: bool = typer.Option(False, "--tune-bias/--no-tune-bias", help="Tune per-class bias on the validation records (needs representative validation records)."),
    param: Optional[List[str]] = opt.param("A MultiResolutionClassifier parameter of a beat model, KEY=VALUE (repeatable), "
                                           "e.g. record_balance=0 (weigh every beat alike, not every record; default 1), "
                                           "s_odds=1 (the most probable class; default 2 calls more beats S), af_rule=false, crossfit_folds=5."),
    leads: Optional[str] = _LEADS,
    seed: int = opt.seed(),
    device: str = opt.device(help="torch device of every network: cpu, cuda, cuda:1 or auto (CUDA when there is a GPU)."),
    overwrite: bool = opt.overwrite(),
    quiet: bool = opt.quiet("No progress bars."),
    as_json: bool = opt.as_json(),
) -> None:
    """Train a model on annotated records and write a run folder."""
    from hsickit.apps.ecg import pipelines
    from hsickit.core.io import read_json

    pipelines.train(records, out, task=task, records_list=records_list, validation_list=validation_list,
                    label_task=label_task, channels=channels, handcrafted_features=handcrafted_features,
                    downstream=downstream, ventricular_channels=ventricular_channels, training=training,
                    channel_training=channel_training, epochs=epochs, channel_epochs=channel_epochs,
                    batch_size=batch_size, class_weight=class_weight, stacking=stacking,
                    holdout_fraction=holdout_fraction, tune_bias=tune_bias, leads=leads, seed=seed,
                    overwrite=overwrite, quiet=quiet, device=device, params=opt.parse_params(param))
    metrics = out / "metrics.json"
    if metrics.exists():
        if task == "beats" and not as_json:
            typer.echo(f"validation metrics on records {read_json(metrics)['records']} (held out of training):")
        _print_metrics(metrics, task, as_json)
    elif task == "beats":
        typer.echo("no validation records, so no validation metrics; score the model with 'hsickit ecg evaluate'")
    typer.echo(f"run folder: {out}")


@opt.command(app, ALIASES)
def evaluate(
    run: Path = opt.run("Run folder written by 'hsickit ecg train' or 'finetune'."),
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    leads: Optional[str] = _LEADS,
    out: Optional[Path] = opt.out(None, "Folder for metrics.json and plots (default RUN/eval-<records folder>; "
                                  "the run's own metrics.json is kept)."),
    quiet: bool = opt.quiet("No progress bars."),
    as_json: bool = opt.as_json(),
) -> None:
    """Score a trained model on annotated records; writes metrics.json (+ confusion matrix and plot) into
    RUN/eval-<records folder> and prints the main scores (--json: all of it; undefined ratios are null)."""
    from hsickit.apps.ecg import pipelines

    out = out or pipelines.evaluation_out(run, records)
    pipelines.evaluate(run, records, records_list=records_list, leads=leads, out=out, quiet=quiet)
    _print_metrics(out / "metrics.json", "records" if pipelines.is_record_model(run) else "beats", as_json)


@opt.command(app, ALIASES)
def predict(
    run: Path = opt.run("Run folder written by 'hsickit ecg train' (beat or record model)."),
    record_or_dir: Path = typer.Argument(..., metavar="RECORD_OR_DIR", help="A record path without extension, or a folder of records (no labels needed)."),
    out: Path = opt.out(..., "Folder for the predictions: beat models write <record>.hsk annotations and <record>_beats.csv, record models record_predictions.csv and plots/<record>.png."),
    leads: Optional[str] = _LEADS,
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Record models: a PNG per record of its leads with the predicted labels."),
    quiet: bool = opt.quiet("No progress bars."),
    overwrite: bool = opt.overwrite("Replace prediction files already in --out."),
) -> None:
    """Beat model: label every beat (WFDB annotations, extension hsk, and CSV). Record model: per-label probabilities and the predicted labels of every record (CSV)."""
    from hsickit.apps.ecg import pipelines

    for path in pipelines.predict(run, record_or_dir, out, leads=leads, plots=plots, overwrite=overwrite, quiet=quiet):
        typer.echo(str(path))


@opt.command(app, ALIASES)
def finetune(
    run: Path = opt.run("Run folder of the model to start from."),
    records: List[Path] = _RECORDS,
    records_list: Optional[str] = _LIST,
    out: Path = opt.out(help="Run folder for the fine-tuned model."),
    validation_list: Optional[str] = typer.Option(None, "--validation-list", help="Records held out for early stopping."),
    epochs: int = opt.epochs(5, "Epochs per network."),
    frozen_blocks: int = opt.frozen_blocks(1, "Blocks kept fixed at the start of every network."),
    lr: float = typer.Option(3e-4, help="Learning rate."),
    leads: Optional[str] = _LEADS,
    seed: int = opt.seed(),
    device: str = opt.device(help="torch device of every network (whatever the model trained on): cpu, cuda, cuda:1 or auto."),
    overwrite: bool = opt.overwrite(),
    quiet: bool = opt.quiet("No progress bars."),
) -> None:
    """Fine-tune a beat or record model on your own labelled records."""
    from hsickit.apps.ecg import pipelines

    pipelines.finetune(run, records, out, records_list=records_list, validation_list=validation_list, epochs=epochs,
                       frozen_blocks=frozen_blocks, lr=lr, leads=leads, seed=seed, overwrite=overwrite, quiet=quiet,
                       device=device)
    typer.echo(f"run folder: {out}")


@opt.command(app, ALIASES)
def demo(
    out: Path = opt.out(Path("hsickit-demo/ecg"), "Folder for the records and run folders."),
    seed: int = opt.seed(),
    quiet: bool = opt.quiet("No progress bars."),
) -> None:
    """End to end in well under a minute on synthetic records written as real WFDB files.

    No ECG records ship with an installed package, so the demo writes 8 synthetic two-lead
    records (wfdb.wrsamp + wfdb.wrann) and runs train -> evaluate -> predict -> finetune on them.
    """
    from hsickit.apps.ecg import pipelines

    start = time.perf_counter()
    metrics = pipelines.demo(out, seed=seed, quiet=quiet)
    keys = ["accuracy", "kappa"] + [f"{m}_{c}" for c in ("N", "S", "V", "F") for m in ("sensitivity", "ppv")]
    typer.echo(" ".join(f"{k}={'n/a' if math.isnan(metrics[k]) else format(metrics[k], '.3f')}" for k in keys))
    typer.echo(f"synthetic records: {out / 'records'}; run folders: {out / 'run'} (evaluation: "
               f"{out / 'run' / 'eval-records'}), {out / 'finetuned'}; predictions: {out / 'predictions'} "
               f"({time.perf_counter() - start:.0f} s)")
