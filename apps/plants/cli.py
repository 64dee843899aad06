"""``hsickit plants``: train, evaluate, predict, finetune and demo for taxonomic classification.

Examples (the leaf set as shipped)::

    hsickit plants train --features train.csv --taxonomy taxonomy.csv --label-col species \\
        --splits labels.csv --split train --val-split val --loss taxonomic --out RUN
    hsickit plants evaluate RUN --features train.csv --splits labels.csv --split test
    hsickit plants predict RUN --features NEW.csv -o predictions.csv
    hsickit plants finetune RUN --features MINE.csv --taxonomy MINE_TAXONOMY.csv --out RUN2
    hsickit plants train --images images_128.npz --labels labels.csv --label-col label \\
        --taxonomy taxonomy.csv --split train --val-split val --out RUN_IMG
    hsickit plants train --outlines contours.csv --taxonomy taxonomy.csv --split train --out RUN_OUTLINES
    hsickit plants train --images images_128.npz --as-outlines --labels labels.csv --label-col label \\
        --taxonomy taxonomy.csv --split train --val-split val --representation contour --out RUN_IMG_OUTLINES
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from hsickit.core.errors import HsickitError
from hsickit.core.io import RunFolder, atomic_write, evaluation_folder, markdown_table, read_json

# the readers (numpy, pandas) are imported inside the commands: `hsickit plants --help` stays quick
if TYPE_CHECKING:
    from hsickit.datasets.plants import PlantSamples, Taxonomy

app = typer.Typer(rich_markup_mode=None, help="Hierarchical plant classification (species -> genus -> family) with the taxonomic loss.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

FEATURES = typer.Option(None, "--features", help="CSV of specimens: a label column and numeric feature columns.")
OUTLINES = typer.Option(None, "--outlines", help="CSV of leaf outlines: one specimen per row with ordered columns of a "
                        "1-D contour signature (e.g. centroid distance), or (x, y) points, one row per point "
                        "(columns specimen, point, x, y and the label).")
AS_OUTLINES = typer.Option(False, "--as-outlines/--no-as-outlines", help="With --images: classify the outline of each silhouette "
                           "(outer boundary of its largest connected component) instead of its pixels.")
N_POINTS = typer.Option(None, "--n-points", help="Points per outline: (x, y) outlines are resampled to this many by arc "
                        "length (default 128); signatures must have at least this many values.")
IMAGES = typer.Option(None, "--images", help="Images: a folder of species folders, an .npz (images, ids) or an index CSV.")
LABELS = typer.Option(None, "--labels", help="For an .npz of images: CSV with the id and label columns (e.g. labels.csv).")
LABEL_COL = typer.Option("species", "--label-col", help="Column holding each specimen's label.")
ID_COL = typer.Option("id", "--id-col", help="Column holding specimen ids.")
SPLITS = typer.Option(None, "--splits", help="CSV with id and split columns (e.g. labels.csv of the leaf set).")
SPLIT = typer.Option(None, "--split", help="Use only the specimens of this split (e.g. train, test).")
SKIP = typer.Option(False, "--skip-bad-rows/--no-skip-bad-rows", help="Skip rows with bad values or labels not in the taxonomy "
                    "(each listed on stderr: its row and why).")
SEED = typer.Option(0, "--seed", help="Random seed.")
QUIET = typer.Option(False, "--quiet/--no-quiet", help="No progress bars or tables.")
DEVICE = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda.")


def _read(features: Optional[Path], images: Optional[Path], taxonomy: Optional[Taxonomy], *, label_col: str,
          id_col: str, splits: Optional[Path], split: Optional[str], labels: Optional[Path], skip: bool,
          feature_cols=None, image_size: int = 128, require_labels: bool = True, report: bool = True,
          outlines: Optional[Path] = None, as_outlines: bool = False, n_points: Optional[int] = None) -> PlantSamples:
    """Read --features, --images (their outlines with ``as_outlines``) or --outlines; rows skipped with ``skip``
    are listed on stderr as one report instead of the readers' Python warning (``report=False``: that file's
    rows were reported already)."""
    from hsickit.datasets.plants import read_feature_table, read_images, skipped_report

    if sum(x is not None for x in (features, images, outlines)) != 1:
        raise HsickitError("pass exactly one of --features CSV, --images DIR|NPZ|CSV or --outlines CSV")
    if as_outlines and images is None:
        raise HsickitError("--as-outlines extracts outlines from silhouette images: it needs --images "
                           "(an outline table goes to --outlines)")
    from hsickit.datasets.outlines import DEFAULT_POINTS, read_image_outlines, read_outlines

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*skipped \d+ bad row")
        if features is not None:
            s = read_feature_table(features, taxonomy, label_col=label_col, id_col=id_col, feature_cols=feature_cols,
                                   splits=splits, split=split, require_labels=require_labels, ignore_errors=skip)
        elif outlines is not None:
            s = read_outlines(outlines, taxonomy, label_col=label_col, id_col=id_col, n_points=n_points, splits=splits,
                              split=split, require_labels=require_labels, ignore_errors=skip, signature_cols=feature_cols)
        else:
            kwargs = dict(label_col=label_col, id_col=id_col, splits=splits, split=split, size=image_size, ignore_errors=skip)
            if labels is not None:
                kwargs["labels"] = labels
            if Path(images).suffix.lower() == ".npz" and labels is None and label_col == "species":
                kwargs["label_col"] = "label"
            if as_outlines:
                s = read_image_outlines(images, taxonomy, n_points=n_points or DEFAULT_POINTS, **kwargs)
            else:
                s = read_images(images, taxonomy, **kwargs)
    if images is not None and require_labels and s.labels is None:
        raise HsickitError(f"{images} carries no labels; pass --labels CSV (id and label columns) or a folder of species folders")
    if report and s.skipped:
        typer.echo("warning: " + skipped_report(s.source, s.skipped), err=True)
    return s


def _data_info(s: PlantSamples, label_col: str, id_col: str, image_size: int, as_outlines: bool = False) -> dict:
    return {"kind": s.kind, "source": s.source, "n_samples": len(s),
            "feature_names": s.feature_names if s.kind in ("features", "signatures") else [],
            "label_col": label_col, "id_col": id_col, "image_size": image_size,
            "image_shape": list(s.X.shape[1:]) if s.kind == "images" else None, "as_outlines": as_outlines,
            "n_points": int(s.X.shape[1]) if s.kind in OUTLINE_KINDS else None, "skipped_rows": s.skipped}


OUTLINE_KINDS = ("signatures", "outlines")


def _outline_options(data: dict, images, as_outlines: bool, n_points: Optional[int]) -> dict:
    """Reading options of a run's outlines: images are read as outlines when the run was trained on theirs;
    (x, y) outlines are resampled to the run's number of points."""
    kind = data.get("kind")
    return {"as_outlines": as_outlines or (images is not None and bool(data.get("as_outlines"))),
            "n_points": n_points or (data.get("n_points") if kind == "outlines" else None)}


def _representation(name: Optional[str], s: PlantSamples) -> Optional[str]:
    """The outline representation for training data ``s`` (None for features and images)."""
    from hsickit.apps.plants.outlines import DEFAULT_REPRESENTATION, REPRESENTATIONS

    if s.kind not in OUTLINE_KINDS:
        if name is not None:
            raise HsickitError("--representation applies to outlines; pass --outlines CSV or --images with --as-outlines")
        return None
    name = name or DEFAULT_REPRESENTATION
    if name not in REPRESENTATIONS:
        raise HsickitError(f"unknown --representation {name!r}; choose one of {', '.join(REPRESENTATIONS)}")
    return name


def _input_flag(data: dict) -> str:
    if data.get("kind") in OUTLINE_KINDS:
        return "--images NEW --as-outlines" if data.get("as_outlines") else "--outlines NEW.csv"
    return "--images NEW" if data.get("kind") == "images" else "--features NEW.csv"


def _load_run(run: Path):
    from hsickit.apps.plants.classifier import TaxonomicClassifier
    from hsickit.core.io import check_run_app

    check_run_app(run, "plants", "`hsickit plants`")
    if not (Path(run) / "plants.json").exists():
        raise HsickitError(f"{run} is not a plants run folder (no plants.json); pass the --out folder of 'hsickit plants train'")
    return TaxonomicClassifier.load(run), read_json(Path(run) / "config.json")


def _report(run: RunFolder, clf, samples: PlantSamples, split: str, thresholds, quiet: bool, name="metrics.json") -> dict:
    from hsickit.apps.plants.plots import level_accuracy_plot, level_confusion_plot

    proba = clf.predict_proba(samples.X)
    from hsickit.apps.plants.metrics import taxonomic_metrics

    metrics = taxonomic_metrics(samples.y, proba, clf.taxonomy_, thresholds=thresholds)
    run.write_metrics(metrics, split=split, name=name)
    level_accuracy_plot(metrics, clf.taxonomy_, run.plots / f"level_accuracy_{split}.png")
    level = "family" if "family" in clf.taxonomy_.levels else clf.taxonomy_.levels[-1]
    level_confusion_plot(samples.y, proba, clf.taxonomy_, run.plots / f"confusion_{level}_{split}.png", level=level)
    if samples.kind in OUTLINE_KINDS:
        from hsickit.apps.plants.plots import confused_pairs_plot

        confused_pairs_plot(samples.X, samples.y, proba.argmax(1), clf.taxonomy_, run.plots / f"confused_pairs_{split}.png")
    if not quiet:
        keys = [k for k in metrics if k.startswith(("accuracy_", "top5_")) and not k.endswith("_from_leaf")]
        keys += ["hierarchical_f1", "mistake_severity", "n_samples"]
        typer.echo(markdown_table([{"metric": k, "value": metrics[k]} for k in keys]))
    return metrics


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise HsickitError(f"--thresholds must be comma-separated numbers in [0, 1], got {text!r}") from err
    if not all(0 <= v <= 1 for v in values):
        raise HsickitError(f"--thresholds must be comma-separated numbers in [0, 1], got {text!r}")
    return values


def _choice(option: str, value, choices) -> None:
    if value not in choices:
        raise HsickitError(f"{option} {value!r}: choose one of {', '.join(str(c) for c in choices if c is not None)}")


def _count(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise HsickitError(f"{option} must be 'encoder' or a whole number, got {text!r}") from err


def _weights(text: Optional[str]):
    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError as err:
        raise HsickitError(f"--level-weights must be comma-separated numbers, leaf level first, got {text!r}") from err


def _preset(name, images):
    """model_params of a named image-encoder preset (None: the encoder's defaults)."""
    if name is None:
        return None
    from hsickit.apps.plants.encoders import LEAFCNN_PRESETS

    if images is None:
        raise HsickitError("--encoder-preset configures the image CNN; it needs --images")
    if name not in LEAFCNN_PRESETS:
        raise HsickitError(f"unknown --encoder-preset {name!r}; choose one of {sorted(LEAFCNN_PRESETS)}")
    return dict(LEAFCNN_PRESETS[name])


@app.command()
def train(
    taxonomy: Path = typer.Option(..., "--taxonomy", help="Taxonomy CSV: species, genus, family [, order, ...] (optional label column)."),
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    features: Optional[Path] = FEATURES, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    representation: Optional[str] = typer.Option(None, "--representation", help="Outlines: efd (elliptic Fourier "
                                                 "descriptors), fourier (centroid-distance Fourier magnitudes) or contour "
                                                 "(1-D CNN on the contour; the default, chosen on leaf-99 validation)."),
    label_col: str = LABEL_COL, id_col: str = ID_COL,
    feature_cols: Optional[str] = typer.Option(None, "--feature-cols", help="Comma-separated feature columns or prefixes (e.g. shape); with --outlines, the signature's columns."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    val_split: Optional[str] = typer.Option(None, "--val-split", help="Split (same file) used for early stopping / model selection."),
    loss: str = typer.Option("taxonomic", "--loss", help="taxonomic or ce."),
    level_weights: Optional[str] = typer.Option(None, "--level-weights", help="Taxonomic loss weights, leaf level first, e.g. 1,1,1."),
    training: str = typer.Option("backprop", "--training", help="backprop or hsic."),
    epochs: int = typer.Option(200, help="Maximum epochs (early stopping on validation)."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    batch_size: int = typer.Option(64, "--batch-size", help="Batch size."),
    patience: int = typer.Option(30, help="Early-stopping patience in epochs."),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="None, cosine or plateau (cosine helps the image CNN)."),
    image_size: int = typer.Option(128, "--image-size", help="Images are fitted into this square size."),
    encoder_preset: Optional[str] = typer.Option(None, "--encoder-preset", help="Image CNN configuration: "
                                                 "small64, deep64, deep128 or res128 (default: the small leafcnn)."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam or adamw."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="Weight decay."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Label smoothing of the species loss."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds reported in the metrics."),
    skip_bad_rows: bool = SKIP, seed: int = SEED, quiet: bool = QUIET, device: str = DEVICE,
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace the finished run in --out (the folder is "
                                   "cleared first). An unfinished run there resumes without it."),
) -> None:
    """Train a taxonomic classifier on feature vectors, images or leaf outlines.

    The network keeps a checkpoint in OUT while it trains: rerunning the same command after an
    interruption resumes from the last finished epoch. A finished OUT is refused unless --overwrite.
    """
    # what decides the result; an unfinished run resumes only with the same (first line: only the parameters so far)
    settings = {k: v for k, v in locals().items() if k not in ("out", "quiet", "device", "overwrite")}
    from hsickit.apps.plants.classifier import TaxonomicClassifier
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, finish_training_run, start_training_run
    from hsickit.datasets.plants import read_taxonomy

    check_options(epochs=epochs, lr=lr, batch_size=batch_size, patience=patience, image_size=image_size,
                  weight_decay=weight_decay, label_smoothing=label_smoothing)
    _choice("--loss", loss, ("taxonomic", "ce"))
    _choice("--training", training, ("backprop", "hsic"))
    _choice("--optimizer", optimizer, ("adam", "adamw"))
    _choice("--lr-schedule", lr_schedule, (None, "cosine", "plateau"))
    model_params, weights, backoff = _preset(encoder_preset, images), _weights(level_weights), _thresholds(thresholds)
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)  # before any data is read: a refused --out costs nothing
    start = time.perf_counter()
    tax = read_taxonomy(taxonomy)
    read = dict(label_col=label_col, id_col=id_col, splits=splits, labels=labels, skip=skip_bad_rows,
                feature_cols=feature_cols, image_size=image_size, outlines=outlines, as_outlines=as_outlines,
                n_points=n_points)
    tr = _read(features, images, tax, split=split, **read)
    va = _read(features, images, tax, split=val_split, report=False, **read) if val_split else None
    representation = _representation(representation, tr)
    run, resumed = start_training_run(out, settings, inputs=[taxonomy, features, images, labels, splits, outlines],
                                      overwrite=overwrite, app="plants", command="train")
    if resumed and not quiet:
        typer.echo(f"resuming the unfinished run in {out}")
    clf = TaxonomicClassifier(tax, loss=loss, level_weights=weights, training=training, epochs=epochs,
                              lr=lr, batch_size=batch_size, patience=patience, lr_schedule=lr_schedule, random_state=seed,
                              verbose=0 if quiet else 1, device=device, model_params=model_params,
                              optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing,
                              checkpoint_dir=run.path, representation=representation)
    clf.fit(tr.X, tr.y, X_val=None if va is None else va.X, y_val=None if va is None else va.y)
    clf.set_params(checkpoint_dir=None).save(run.path)
    atomic_write(run / "taxonomy.csv", tax.to_frame().to_csv(index=False))
    run.write_config({"command": "plants train", "classifier": clf.get_params() | {"taxonomy": str(taxonomy)},
                      "data": _data_info(tr, label_col, id_col, image_size, as_outlines), "split": split,
                      "val_split": val_split, "seed": seed})
    run.write_history(clf.history_)
    plots.learning_curves(clf.history_, run.plots / "learning_curves.png")
    if training == "hsic":
        plots.information_plane(clf.history_, run.plots / "information_plane.png")
    if tr.kind in OUTLINE_KINDS:
        from hsickit.apps.plants.plots import outline_page

        outline_page(tr.X, tr.y, tax, run.plots / "outlines.png")
    metrics = _report(run, clf, va if va is not None else tr, val_split or split or "train", backoff, quiet)
    run.write_model_card("Taxonomic plant classifier", {
        "Model": f"{clf.net_.model} encoder{f' on {representation} outline representation' if representation else ''}, "
                 f"{loss} loss, {training} training; levels {', '.join(tax.levels)} "
                 f"({', '.join(str(len(tax.names(l))) for l in tax.levels)} classes)",
        "Data": f"{tr.source}: {len(tr)} training specimens ({tr.kind}); validation: {len(va) if va is not None else 'carved from training'}",
        "Metrics": markdown_table([{"metric": k, "value": v} for k, v in metrics.items()]),
        "Use": f"hsickit plants predict {out} {_input_flag(_data_info(tr, label_col, id_col, image_size, as_outlines))} "
               "-o predictions.csv",
    })
    finish_training_run(run)
    if not quiet:
        typer.echo(f"wrote {out} ({time.perf_counter() - start:.0f} s)")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by 'hsickit plants train'."),
    features: Optional[Path] = FEATURES, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    label_col: Optional[str] = typer.Option(None, "--label-col", help="Label column (default: as in training)."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for metrics.json and plots "
                                       "(default RUN/eval-<data name>[-<split>]; the run's own metrics.json is kept)."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds."),
    skip_bad_rows: bool = SKIP, quiet: bool = QUIET,
) -> None:
    """Metrics on labelled specimens: metrics.json (accuracy and top-5 per level, hierarchical F1, mistake severity,
    back-off) and plots, in RUN/eval-<data name>[-<split>] unless --out says otherwise."""
    from hsickit.core.io import open_output_folder

    backoff = _thresholds(thresholds)
    clf, cfg = _load_run(run)
    data = cfg.get("data", {})
    s = _read(features, images, clf.taxonomy_, label_col=label_col or data.get("label_col", "species"),
              id_col=data.get("id_col", "id"), splits=splits, split=split, labels=labels, skip=skip_bad_rows,
              feature_cols=data.get("feature_names") or None if features or outlines else None,
              image_size=data.get("image_size", 128), outlines=outlines,
              **_outline_options(data, images, as_outlines, n_points))
    folder = open_output_folder(out or evaluation_folder(run, features or images or outlines, split), "plants", "evaluate")
    _report(folder, clf, s, split or "test", backoff, quiet)
    folder.write_config({"command": "plants evaluate", "run": str(run), "data": str(features or images or outlines),
                         "splits": None if splits is None else str(splits), "split": split})
    if not quiet:
        typer.echo(f"wrote {folder.path}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder written by 'hsickit plants train' or 'finetune'."),
    output: Path = typer.Option(..., "-o", "--output", help="CSV to write, one row per specimen."),
    features: Optional[Path] = FEATURES, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    top_k: int = typer.Option(5, "--top-k", help="Number of species listed per specimen."),
    threshold: float = typer.Option(0.5, "--threshold", help="Back-off: deepest level of the predicted lineage whose probability reaches this "
                                   "(backoff_level 'none', empty name, when none does)."),
    skip_bad_rows: bool = SKIP, quiet: bool = QUIET,
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace OUTPUT when it exists."),
) -> None:
    """Predictions at every level with probabilities, the top-k species and the back-off answer."""
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_file

    check_options(top_k=top_k, threshold=threshold)
    check_output_file(output, inputs=[features, images, labels, splits], overwrite=overwrite)
    clf, cfg = _load_run(run)
    data = cfg.get("data", {})
    s = _read(features, images, None, label_col=data.get("label_col", "species"), id_col=data.get("id_col", "id"),
              splits=splits, split=split, labels=labels, skip=skip_bad_rows,
              feature_cols=data.get("feature_names") or None if features or outlines else None,
              image_size=data.get("image_size", 128), require_labels=False, outlines=outlines,
              **_outline_options(data, images, as_outlines, n_points))
    table = clf.predict_table(s.X, ids=s.ids, k=top_k, threshold=threshold)
    atomic_write(output, table.to_csv(index=False))
    if not quiet:
        typer.echo(f"wrote {len(table)} predictions to {output}")


@app.command()
def finetune(
    run: Path = typer.Argument(..., help="Run folder to start from."),
    out: Path = typer.Option(..., "--out", help="New run folder."),
    features: Optional[Path] = FEATURES, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    taxonomy: Optional[Path] = typer.Option(None, "--taxonomy", help="Taxonomy rows for your species (new ones are added)."),
    label_col: Optional[str] = typer.Option(None, "--label-col", help="Label column (default: as in training)."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    val_split: Optional[str] = typer.Option(None, "--val-split", help="Split (same file) for early stopping."),
    epochs: int = typer.Option(100, help="Maximum fine-tuning epochs."),
    lr: float = typer.Option(3e-4, help="Learning rate (the output layer only, by default)."),
    frozen_blocks: str = typer.Option("encoder", "--frozen-blocks", help="Encoder blocks kept fixed: 'encoder' (all: "
                                      "only the output layer learns, which keeps what the model knew) or a number k "
                                      "(the first k; 0 retrains everything)."),
    train_known: bool = typer.Option(False, "--train-known-species/--no-train-known-species", help="Also train the output weights of the "
                                     "species the model already knew (default: only new species' weights learn)."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds."),
    skip_bad_rows: bool = SKIP, quiet: bool = QUIET,
    overwrite: bool = typer.Option(False, "--overwrite/--no-overwrite", help="Replace the finished run in --out (swapped in only "
                                   "once the new run is complete)."),
) -> None:
    """Fine-tune on your own collection; species new to the model grow the output layer.

    Without --val-split, a stratified fifth of your specimens is held out for early stopping,
    and the model card reports the score on them.
    """
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, staged_folder
    from hsickit.datasets.plants import read_taxonomy

    check_options(epochs=epochs, lr=lr)
    frozen = frozen_blocks if frozen_blocks == "encoder" else _count(frozen_blocks, "--frozen-blocks")
    backoff = _thresholds(thresholds)
    check_output_folder(out, overwrite)
    clf, cfg = _load_run(run)
    data = cfg.get("data", {})
    tax = clf.taxonomy_ if taxonomy is None else clf.taxonomy_.extend(read_taxonomy(taxonomy))
    read = dict(label_col=label_col or data.get("label_col", "species"), id_col=data.get("id_col", "id"),
                splits=splits, labels=labels, skip=skip_bad_rows,
                feature_cols=data.get("feature_names") or None if features or outlines else None,
                image_size=data.get("image_size", 128), outlines=outlines,
                **_outline_options(data, images, as_outlines, n_points))
    tr = _read(features, images, tax, split=split, **read)
    va = _read(features, images, tax, split=val_split, report=False, **read) if val_split else None
    n_old = clf.taxonomy_.n_leaves
    from hsickit.apps.plants.classifier import FINETUNE_VALIDATION

    clf.set_params(verbose=0 if quiet else 1, warm_start=True, taxonomy=tax, epochs=epochs, lr=lr, frozen_blocks=frozen,
                   keep_known=not train_known, validation_fraction=FINETUNE_VALIDATION)
    clf.fit(tr.X, tr.y, X_val=None if va is None else va.X, y_val=None if va is None else va.y)
    carved = va is None
    if carved:
        va, val_split = tr.subset(clf.validation_index_), "validation"
    with staged_folder(out, overwrite, app="plants", command="finetune") as folder:
        new_run = RunFolder(folder)
        clf.save(new_run.path)
        atomic_write(new_run / "taxonomy.csv", clf.taxonomy_.to_frame().to_csv(index=False))
        new_run.write_config({**{k: v for k, v in cfg.items() if k != "versions"}, "command": "plants finetune",
                              "parent_run": str(run), "data": _data_info(tr, read["label_col"], read["id_col"], read["image_size"], read["as_outlines"]),
                              "split": split, "val_split": val_split, "new_species": clf.taxonomy_.leaves[n_old:].tolist(),
                              "frozen_blocks": frozen, "lr": lr, "train_known_species": train_known})
        new_run.write_history(clf.history_)
        plots.learning_curves(clf.history_, new_run.plots / "learning_curves.png")
        metrics = _report(new_run, clf, va, val_split, backoff, quiet) if len(va) else {}
        new_run.write_model_card("Fine-tuned taxonomic plant classifier", {
            "Parent": str(run),
            "New species": ", ".join(clf.taxonomy_.leaves[n_old:].tolist()) or "none",
            "Training": f"{len(tr) - (len(va) if carved else 0)} specimens of {tr.source}, encoder blocks frozen: "
                        f"{frozen}, lr {lr}; early stopping on the validation specimens",
            f"Metrics (validation: {len(va)} specimens "
            f"{'held out of ' + str(tr.source) if carved else 'of split ' + str(val_split)}, not trained on)":
                markdown_table([{"metric": k, "value": v} for k, v in metrics.items()]) or "too few specimens to hold any out",
        })
    if not quiet:
        typer.echo(f"wrote {out}: {clf.taxonomy_.n_leaves - n_old} new species, {clf.taxonomy_.n_leaves} in all")


IRIS_TAXONOMY = ("species,genus,family,order\nIris setosa,Iris,Iridaceae,Asparagales\n"
                 "Iris versicolor,Iris,Iridaceae,Asparagales\nIris virginica,Iris,Iridaceae,Asparagales\n")


def _leaf_folder(data: Optional[Path]) -> Optional[Path]:
    candidates = [data] if data is not None else []
    if os.environ.get("HSICKIT_PLANTS_DATA"):
        candidates.append(Path(os.environ["HSICKIT_PLANTS_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "data" / "plants" / "leaf-classification-99")
    for c in candidates:
        if c is not None and (c / "train.csv").exists() and (c / "taxonomy.csv").exists():
            return c
    if data is not None:
        raise HsickitError(f"{data} does not hold the leaf set (train.csv, taxonomy.csv, labels.csv)")
    return None


@app.command()
def demo(
    out: Path = typer.Option(Path("hsickit-plants-demo"), "--out", help="Folder for the demo run folders."),
    data: Optional[Path] = typer.Option(None, "--data", help="leaf-classification-99 folder (default: $HSICKIT_PLANTS_DATA or ../shared/data/plants/...)."),
    epochs: int = typer.Option(60, help="Maximum epochs per model."),
    seed: int = SEED, quiet: bool = QUIET,
) -> None:
    """Cross-entropy vs the taxonomic loss end to end (< 1 minute, no network).

    Uses the Kew leaf set (64 shape features; 99 species, 34 genera, 24 families) when its
    folder is found; otherwise Fisher's iris measurements shipped with scikit-learn, whose
    three species share one genus, so only the species level is informative there.
    """
    from hsickit.apps.plants.classifier import TaxonomicClassifier
    import numpy as np

    from hsickit.apps.plants.plots import level_accuracy_plot
    from hsickit.core.io import open_output_folder
    from hsickit.datasets.plants import PlantSamples, read_feature_table, read_taxonomy

    for loss in ("ce", "taxonomic"):  # refused up front, not after training
        open_output_folder(out / loss, "plants", "demo")
    start = time.perf_counter()
    folder = _leaf_folder(data)
    if folder is not None:
        tax = read_taxonomy(folder / "taxonomy.csv")
        get = lambda sp: read_feature_table(folder / "train.csv", tax, feature_cols="shape",  # noqa: E731
                                            splits=folder / "labels.csv", split=sp)
        tr, va, te = get("train"), get("val"), get("test")
        what = f"Kew leaf set ({folder}), 64 shape features, suggested split"
    else:
        import io

        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split

        tax = read_taxonomy(io.StringIO(IRIS_TAXONOMY))
        iris = load_iris()
        names = np.array(["Iris " + n for n in iris.target_names])[iris.target]
        idx = np.arange(len(names))
        i_tr, i_te = train_test_split(idx, test_size=0.3, stratify=iris.target, random_state=seed)
        i_tr, i_va = train_test_split(i_tr, test_size=0.2, stratify=iris.target[i_tr], random_state=seed)
        mk = lambda i: PlantSamples(X=iris.data[i].astype(np.float32), ids=i.astype(str).astype(object),  # noqa: E731
                                    labels=names[i], y=tax.index_of(names[i]), taxonomy=tax, source="sklearn iris")
        tr, va, te = mk(i_tr), mk(i_va), mk(i_te)
        what = "Fisher's iris (shipped with scikit-learn; one genus, so genus/family are trivially right)"
    rows = []
    for loss in ("ce", "taxonomic"):
        clf = TaxonomicClassifier(tax, loss=loss, epochs=epochs, patience=15, random_state=seed, verbose=0)
        clf.fit(tr.X, tr.y, X_val=va.X, y_val=va.y)
        run = RunFolder(out / loss)
        clf.save(run.path)
        m = clf.evaluate(te.X, te.y)
        run.write_metrics(m, split="test")
        level_accuracy_plot(m, tax, run.plots / "level_accuracy_test.png")
        rows.append({"loss": loss, **{k: m[k] for k in ("accuracy_species", "accuracy_genus", "accuracy_family",
                                                        "top5_species", "hierarchical_f1", "mistake_severity")}})
    if not quiet:
        typer.echo(f"data: {what}\n")
        typer.echo(markdown_table(rows, floatfmt=".3f"))
        typer.echo(f"\nrun folders: {out}/ce, {out}/taxonomic ({time.perf_counter() - start:.0f} s)")
