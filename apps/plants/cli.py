"""``hsickit plants``: train, evaluate, predict, finetune and demo for taxonomic classification.

Examples (the leaf set as shipped)::

    hsickit plants train --table train.csv --taxonomy taxonomy.csv --label-col species \\
        --splits labels.csv --split train --validation-split val --loss taxonomic --out RUN
    hsickit plants evaluate RUN --table train.csv --splits labels.csv --split test
    hsickit plants predict RUN --table NEW.csv -o predictions.csv
    hsickit plants finetune RUN --table MINE.csv --taxonomy MINE_TAXONOMY.csv --out RUN2
    hsickit plants train --images images_128.npz --labels labels.csv --label-col label \\
        --taxonomy taxonomy.csv --split train --validation-split val --out RUN_IMG
    hsickit plants train --outlines contours.csv --taxonomy taxonomy.csv --split train --out RUN_OUTLINES
    hsickit plants train --images images_128.npz --as-outlines --labels labels.csv --label-col label \\
        --taxonomy taxonomy.csv --split train --validation-split val --representation contour --out RUN_IMG_OUTLINES

The commands only parse their options: the work is done by :mod:`hsickit.apps.plants.pipelines`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

import hsickit.core.cli_options as opt

app = typer.Typer(rich_markup_mode=None, help="Hierarchical plant classification (species -> genus -> family) with the taxonomic loss.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

#: Old option spellings of this application (besides core's), kept one release: --features was a CSV path here;
#: the optimiser's and the loss's details are now estimator parameters (--param).
ALIASES = {"--features": "--table", "--optimizer": "--param optimizer",
           "--weight-decay": "--param train_params__weight_decay", "--lr-schedule": "--param train_params__lr_schedule",
           "--label-smoothing": "--param label_smoothing"}

TABLE = opt.table(help="CSV of specimens: a label column and numeric feature columns.")
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
SKIP = opt.skip_invalid("Skip rows with bad values or labels not in the taxonomy (each listed on stderr: its row and why).")
QUIET = opt.quiet("No progress bars or tables.")


def _inputs(table, images, labels, outlines, as_outlines, n_points) -> dict:
    return dict(table=table, images=images, labels=labels, outlines=outlines, as_outlines=as_outlines, n_points=n_points)


@opt.command(app, ALIASES)
def train(
    taxonomy: Path = typer.Option(..., "--taxonomy", help="Taxonomy CSV: species, genus, family [, order, ...] (optional label column)."),
    out: Path = opt.out(),
    table: Optional[Path] = TABLE, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    representation: Optional[str] = typer.Option(None, "--representation", help="Outlines: efd (elliptic Fourier "
                                                 "descriptors), fourier (centroid-distance Fourier magnitudes) or contour "
                                                 "(1-D CNN on the contour; the default, chosen on leaf-99 validation)."),
    label_col: str = LABEL_COL, id_col: str = ID_COL,
    feature_cols: Optional[str] = typer.Option(None, "--feature-cols", help="Comma-separated feature columns or prefixes (e.g. shape); with --outlines, the signature's columns."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    validation_split: Optional[str] = opt.validation_split(),
    validation_fraction: float = opt.validation_fraction(0.15, "Without --validation-split: the stratified share of "
                                                         "the training specimens held out for early stopping."),
    loss: str = typer.Option("taxonomic", "--loss", help="taxonomic or ce."),
    level_weights: Optional[str] = typer.Option(None, "--level-weights", help="Taxonomic loss weights, leaf level first, e.g. 1,1,1."),
    training: str = typer.Option("backprop", "--training", help="backprop or hsic."),
    epochs: int = opt.epochs(200, "Maximum epochs (early stopping on validation)."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    batch_size: int = opt.batch_size(64),
    patience: int = typer.Option(30, help="Early-stopping patience in epochs."),
    image_size: int = typer.Option(128, "--image-size", help="Images are fitted into this square size."),
    encoder_preset: Optional[str] = typer.Option(None, "--encoder-preset", help="Image CNN configuration: "
                                                 "small64, deep64, deep128 or res128 (default: the small leafcnn)."),
    param: Optional[List[str]] = opt.param("A TaxonomicClassifier parameter, KEY=VALUE (repeatable), e.g. "
                                           "optimizer=adamw (default adam), train_params__weight_decay=0.05 (default "
                                           "1e-4), train_params__lr_schedule=cosine (helps the image CNN), "
                                           "label_smoothing=0.1, hsic_params__beta=50."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds reported in the metrics."),
    skip_invalid: bool = SKIP, seed: int = opt.seed(), quiet: bool = QUIET, device: str = opt.device(),
    overwrite: bool = opt.overwrite("Replace the finished run in --out (the folder is cleared first). An unfinished "
                                    "run there resumes without it."),
) -> None:
    """Train a taxonomic classifier on feature vectors, images or leaf outlines.

    The network keeps a checkpoint in OUT while it trains: rerunning the same command after an
    interruption resumes from the last finished epoch. A finished OUT is refused unless --overwrite.
    """
    from hsickit.apps.plants import pipelines

    pipelines.train(taxonomy, out, **_inputs(table, images, labels, outlines, as_outlines, n_points),
                    representation=representation, label_col=label_col, id_col=id_col, feature_cols=feature_cols,
                    splits=splits, split=split, validation_split=validation_split,
                    validation_fraction=validation_fraction, loss=loss, level_weights=level_weights,
                    training=training, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience,
                    image_size=image_size, encoder_preset=encoder_preset, params=opt.parse_params(param),
                    thresholds=thresholds, skip_invalid=skip_invalid, seed=seed, quiet=quiet, device=device,
                    overwrite=overwrite)


@opt.command(app, ALIASES)
def evaluate(
    run: Path = opt.run("Run folder written by 'hsickit plants train' or 'finetune'."),
    table: Optional[Path] = TABLE, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    label_col: Optional[str] = typer.Option(None, "--label-col", help="Label column (default: as in training)."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    out: Optional[Path] = opt.out(None, "Folder for metrics.json and plots "
                                  "(default RUN/eval-<data name>[-<split>]; the run's own metrics.json is kept)."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds."),
    skip_invalid: bool = SKIP, quiet: bool = QUIET, as_json: bool = opt.as_json(),
) -> None:
    """Metrics on labelled specimens: metrics.json (accuracy and top-5 per level, hierarchical F1, mistake severity,
    back-off) and plots, in RUN/eval-<data name>[-<split>] unless --out says otherwise."""
    from hsickit.apps.plants import pipelines
    from hsickit.core.io import evaluation_folder, read_json
    from hsickit.core.report import print_metrics

    out = out or evaluation_folder(run, table or images or outlines or "data", split)
    pipelines.evaluate(run, **_inputs(table, images, labels, outlines, as_outlines, n_points), label_col=label_col,
                       splits=splits, split=split, out=out, thresholds=thresholds, skip_invalid=skip_invalid,
                       quiet=quiet or as_json)
    if as_json:
        print_metrics(read_json(out / "metrics.json"), as_json=True, echo=typer.echo)


@opt.command(app, ALIASES)
def predict(
    run: Path = opt.run("Run folder written by 'hsickit plants train' or 'finetune'."),
    output: Path = opt.output(..., "CSV to write, one row per specimen."),
    table: Optional[Path] = TABLE, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    top_k: int = typer.Option(5, "--top-k", help="Number of species listed per specimen."),
    threshold: float = typer.Option(0.5, "--threshold", help="Back-off: deepest level of the predicted lineage whose probability reaches this "
                                   "(backoff_level 'none', empty name, when none does)."),
    skip_invalid: bool = SKIP, quiet: bool = QUIET,
    overwrite: bool = opt.overwrite("Replace OUTPUT when it exists."),
) -> None:
    """Predictions at every level with probabilities, the top-k species and the back-off answer."""
    from hsickit.apps.plants import pipelines

    pipelines.predict(run, output, **_inputs(table, images, labels, outlines, as_outlines, n_points), splits=splits,
                      split=split, top_k=top_k, threshold=threshold, skip_invalid=skip_invalid, quiet=quiet,
                      overwrite=overwrite)


@opt.command(app, ALIASES)
def finetune(
    run: Path = opt.run("Run folder to start from."),
    out: Path = opt.out(help="New run folder."),
    table: Optional[Path] = TABLE, images: Optional[Path] = IMAGES, labels: Optional[Path] = LABELS,
    outlines: Optional[Path] = OUTLINES, as_outlines: bool = AS_OUTLINES, n_points: Optional[int] = N_POINTS,
    taxonomy: Optional[Path] = typer.Option(None, "--taxonomy", help="Taxonomy rows for your species (new ones are added)."),
    label_col: Optional[str] = typer.Option(None, "--label-col", help="Label column (default: as in training)."),
    splits: Optional[Path] = SPLITS, split: Optional[str] = SPLIT,
    validation_split: Optional[str] = opt.validation_split(),
    epochs: int = opt.epochs(100, "Maximum fine-tuning epochs."),
    lr: float = typer.Option(3e-4, help="Learning rate (the output layer only, by default)."),
    frozen_blocks: str = opt.frozen_blocks("encoder", "Encoder blocks kept fixed: 'encoder' (all: only the output "
                                           "layer learns, which keeps what the model knew) or a number k (the first "
                                           "k; 0 retrains everything)."),
    train_known: bool = typer.Option(False, "--train-known-species/--no-train-known-species", help="Also train the output weights of the "
                                     "species the model already knew (default: only new species' weights learn)."),
    thresholds: str = typer.Option("0.5,0.7,0.9", help="Back-off thresholds."),
    skip_invalid: bool = SKIP, quiet: bool = QUIET,
    overwrite: bool = opt.overwrite(),
) -> None:
    """Fine-tune on your own collection; species new to the model grow the output layer.

    Without --validation-split, a stratified fifth of your specimens is held out for early
    stopping, and the model card reports the score on them.
    """
    from hsickit.apps.plants import pipelines

    pipelines.finetune(run, out, **_inputs(table, images, labels, outlines, as_outlines, n_points), taxonomy=taxonomy,
                       label_col=label_col, splits=splits, split=split, validation_split=validation_split,
                       epochs=epochs, lr=lr, frozen_blocks=frozen_blocks, train_known_species=train_known,
                       thresholds=thresholds, skip_invalid=skip_invalid, quiet=quiet, overwrite=overwrite)


@opt.command(app, ALIASES)
def demo(
    out: Path = opt.out(Path("hsickit-demo/plants"), "Folder for the demo run folders (ce/ and taxonomic/)."),
    data: Optional[Path] = typer.Option(None, "--data", help="leaf-classification-99 folder (default: $HSICKIT_PLANTS_DATA or ../shared/data/plants/...)."),
    epochs: int = opt.epochs(60, "Maximum epochs per model."),
    seed: int = opt.seed(), quiet: bool = QUIET,
) -> None:
    """Cross-entropy vs the taxonomic loss end to end (< 1 minute, no network).

    Uses the Kew leaf set (64 shape features; 99 species, 34 genera, 24 families) when its
    folder is found; otherwise Fisher's iris measurements shipped with scikit-learn, whose
    three species share one genus, so only the species level is informative there.
    """
    from hsickit.apps.plants import pipelines

    pipelines.demo(out, data=data, epochs=epochs, seed=seed, quiet=quiet)
