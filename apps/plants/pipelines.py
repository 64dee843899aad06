"""The plant pipelines behind ``hsickit plants``: train, evaluate, predict, finetune and demo.

Plain arguments in, a run folder out; the command line only parses its options and calls
these, and a Python user runs the same pipeline without it. Specimens come from exactly one of
``table`` (CSV: a label column and numeric feature columns), ``images`` (a folder of species
folders, an .npz or an index CSV) or ``outlines`` (leaf contours). A run remembers how its data
was read (label and id columns, feature columns, image size, outline points) in config.json:
``evaluate``, ``predict`` and ``finetune`` read new data the same way unless told otherwise.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> tax = os.path.join(folder, "taxonomy.csv")
>>> _ = open(tax, "w").write("species,genus,family\\nA a,A,F1\\nA b,A,F1\\nB c,B,F2\\n")
>>> table = os.path.join(folder, "leaves.csv")
>>> species = ["A a", "A b", "B c"]
>>> _ = open(table, "w").write("id,species,f1,f2\\n" + "".join(f"s{i},{species[i % 3]},{i % 3},{(i * 7) % 5}\\n" for i in range(30)))
>>> run = os.path.join(folder, "run")
>>> _ = train(tax, run, table=table, epochs=3, quiet=True)
>>> evaluate(run, table=table, quiet=True)["n_samples"]
30
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hsickit.core.errors import HsickitError
from hsickit.core.io import RunFolder, atomic_write, evaluation_folder, markdown_table, read_json

if TYPE_CHECKING:
    from hsickit.datasets.plants import PlantSamples, Taxonomy

__all__ = ["train", "evaluate", "predict", "finetune", "demo", "load_run"]


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line)


def _read(table: Optional[Path], images: Optional[Path], taxonomy: Optional[Taxonomy], *, label_col: str,
          id_col: str, splits: Optional[Path], split: Optional[str], labels: Optional[Path], skip: bool,
          feature_cols=None, image_size: int = 128, require_labels: bool = True, report: bool = True,
          outlines: Optional[Path] = None, as_outlines: bool = False, n_points: Optional[int] = None) -> PlantSamples:
    """Read --table, --images (their outlines with ``as_outlines``) or --outlines; rows skipped with ``skip``
    are listed on stderr as one report instead of the readers' Python warning (``report=False``: that file's
    rows were reported already)."""
    from hsickit.datasets.plants import read_feature_table, read_images, skipped_report

    if sum(x is not None for x in (table, images, outlines)) != 1:
        raise HsickitError("pass exactly one of --table CSV, --images DIR|NPZ|CSV or --outlines CSV")
    if as_outlines and images is None:
        raise HsickitError("--as-outlines extracts outlines from silhouette images: it needs --images "
                           "(an outline table goes to --outlines)")
    from hsickit.datasets.outlines import DEFAULT_POINTS, read_image_outlines, read_outlines

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*skipped \d+ bad row")
        if table is not None:
            s = read_feature_table(table, taxonomy, label_col=label_col, id_col=id_col, feature_cols=feature_cols,
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
        print("warning: " + skipped_report(s.source, s.skipped), file=sys.stderr)
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
    return "--images NEW" if data.get("kind") == "images" else "--table NEW.csv"


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
        print(markdown_table([{"metric": k, "value": metrics[k]} for k in keys]))
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




def load_run(run):
    """The classifier and config.json of a plants run folder."""
    return _load_run(Path(run))


def train(taxonomy, out, *, table=None, images=None, labels=None, outlines=None, as_outlines=False, n_points=None,
          representation=None, label_col="species", id_col="id", feature_cols=None, splits=None, split=None,
          validation_split=None, validation_fraction=0.15, loss="taxonomic", level_weights=None, training="backprop",
          epochs=200, lr=1e-3, batch_size=64, patience=30, image_size=128, encoder_preset=None, params=None,
          thresholds="0.5,0.7,0.9", skip_invalid=False, seed=0, quiet=False, device="cpu", overwrite=False):
    """Train a taxonomic classifier on feature vectors (``table``), ``images`` or leaf ``outlines`` and write
    run folder ``out``; returns the fitted classifier.

    The network keeps a checkpoint in ``out`` while it trains: the same call after an interruption
    resumes from the last finished epoch. A finished ``out`` is refused unless ``overwrite``.
    Early stopping uses split ``validation_split`` of ``splits``, else a stratified ``validation_fraction``
    of the training specimens. ``params``: further :class:`~hsickit.apps.plants.TaxonomicClassifier`
    parameters (``hsickit plants train --param KEY=VALUE``), e.g. ``{"optimizer": "adamw",
    "train_params__weight_decay": 0.05, "label_smoothing": 0.1}``.
    """
    params = dict(params or {})
    out = Path(out)
    # what decides the result; an unfinished run resumes only with the same
    settings = {"taxonomy": taxonomy, "features": table, "images": images, "labels": labels, "outlines": outlines,
                "as_outlines": as_outlines, "n_points": n_points, "representation": representation,
                "label_col": label_col, "id_col": id_col, "feature_cols": feature_cols, "splits": splits, "split": split,
                "val_split": validation_split, "validation_fraction": validation_fraction, "loss": loss,
                "level_weights": level_weights, "training": training, "epochs": epochs, "lr": lr,
                "batch_size": batch_size, "patience": patience, "image_size": image_size,
                "encoder_preset": encoder_preset, "params": params, "thresholds": thresholds, "skip_bad_rows": skip_invalid, "seed": seed}
    from hsickit.apps.plants.classifier import TaxonomicClassifier
    from hsickit.core import plots
    from hsickit.core.checks import check_device, check_options
    from hsickit.core.cli_options import apply_params
    from hsickit.core.io import check_output_folder, finish_training_run, start_training_run
    from hsickit.datasets.plants import read_taxonomy

    check_device(device)
    check_options(epochs=epochs, lr=lr, batch_size=batch_size, patience=patience, image_size=image_size,
                  validation_fraction=validation_fraction)
    _choice("--loss", loss, ("taxonomic", "ce"))
    _choice("--training", training, ("backprop", "hsic"))
    model_params, weights, backoff = _preset(encoder_preset, images), _weights(level_weights), _thresholds(thresholds)
    clf = apply_params(TaxonomicClassifier(loss=loss, level_weights=weights, training=training, epochs=epochs, lr=lr,
                                           batch_size=batch_size, patience=patience, random_state=seed,
                                           verbose=0 if quiet else 1, device=device, model_params=model_params,
                                           validation_fraction=validation_fraction), params)
    _choice("--param optimizer", clf.optimizer, ("adam", "adamw"))
    _choice("--param train_params__lr_schedule", clf.group("train_params")["lr_schedule"], (None, "cosine", "plateau"))
    clf.group("hsic_params")  # a wrong key is refused before any data is read
    if not (out / "training.json").exists():
        check_output_folder(out, overwrite)  # before any data is read: a refused --out costs nothing
    start = time.perf_counter()
    tax = read_taxonomy(taxonomy)
    read = dict(label_col=label_col, id_col=id_col, splits=splits, labels=labels, skip=skip_invalid,
                feature_cols=feature_cols, image_size=image_size, outlines=outlines, as_outlines=as_outlines,
                n_points=n_points)
    tr = _read(table, images, tax, split=split, **read)
    va = _read(table, images, tax, split=validation_split, report=False, **read) if validation_split else None
    representation = _representation(representation, tr)
    run, resumed = start_training_run(out, settings, inputs=[taxonomy, table, images, labels, splits, outlines],
                                      overwrite=overwrite, app="plants", command="train")
    if resumed:
        _say(quiet, f"resuming the unfinished run in {out}")
    clf.set_params(taxonomy=tax, checkpoint_dir=run.path, representation=representation)
    clf.fit(tr.X, tr.y, X_val=None if va is None else va.X, y_val=None if va is None else va.y)
    clf.set_params(checkpoint_dir=None).save(run.path)
    atomic_write(run / "taxonomy.csv", tax.to_frame().to_csv(index=False))
    run.write_config({"command": "plants train", "classifier": clf.get_params() | {"taxonomy": str(taxonomy)},
                      "data": _data_info(tr, label_col, id_col, image_size, as_outlines), "split": split,
                      "val_split": validation_split, "seed": seed})
    run.write_history(clf.history_)
    plots.learning_curves(clf.history_, run.plots / "learning_curves.png")
    if training == "hsic":
        plots.information_plane(clf.history_, run.plots / "information_plane.png")
    if tr.kind in OUTLINE_KINDS:
        from hsickit.apps.plants.plots import outline_page

        outline_page(tr.X, tr.y, tax, run.plots / "outlines.png")
    metrics = _report(run, clf, va if va is not None else tr, validation_split or split or "train", backoff, quiet)
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
    _say(quiet, f"wrote {out} ({time.perf_counter() - start:.0f} s)")
    return clf


def evaluate(run, *, table=None, images=None, labels=None, outlines=None, as_outlines=False, n_points=None,
             label_col=None, splits=None, split=None, out=None, thresholds="0.5,0.7,0.9", skip_invalid=False,
             quiet=False) -> dict:
    """Metrics of run ``run``'s model on labelled specimens: metrics.json (accuracy and top-5 per level,
    hierarchical F1, mistake severity, back-off) and plots, in ``out`` (default
    ``RUN/eval-<data name>[-<split>]``; the run's own metrics.json is kept). Returns the metrics."""
    from hsickit.core.io import open_output_folder

    run = Path(run)
    backoff = _thresholds(thresholds)
    clf, cfg = _load_run(run)
    data = cfg.get("data", {})
    s = _read(table, images, clf.taxonomy_, label_col=label_col or data.get("label_col", "species"),
              id_col=data.get("id_col", "id"), splits=splits, split=split, labels=labels, skip=skip_invalid,
              feature_cols=data.get("feature_names") or None if table or outlines else None,
              image_size=data.get("image_size", 128), outlines=outlines,
              **_outline_options(data, images, as_outlines, n_points))
    folder = open_output_folder(out or evaluation_folder(run, table or images or outlines, split), "plants", "evaluate")
    metrics = _report(folder, clf, s, split or "test", backoff, quiet)
    folder.write_config({"command": "plants evaluate", "run": str(run), "data": str(table or images or outlines),
                         "splits": None if splits is None else str(splits), "split": split})
    _say(quiet, f"wrote {folder.path}")
    return metrics


def predict(run, output, *, table=None, images=None, labels=None, outlines=None, as_outlines=False, n_points=None,
            splits=None, split=None, top_k=5, threshold=0.5, skip_invalid=False, quiet=False, overwrite=False) -> Path:
    """Predictions at every level with probabilities, the top-k species and the back-off answer, into CSV
    ``output`` (one row per specimen). Returns ``output``."""
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_file

    check_options(top_k=top_k, threshold=threshold)
    output = Path(output)
    check_output_file(output, inputs=[table, images, labels, splits], overwrite=overwrite)
    clf, cfg = _load_run(Path(run))
    data = cfg.get("data", {})
    s = _read(table, images, None, label_col=data.get("label_col", "species"), id_col=data.get("id_col", "id"),
              splits=splits, split=split, labels=labels, skip=skip_invalid,
              feature_cols=data.get("feature_names") or None if table or outlines else None,
              image_size=data.get("image_size", 128), require_labels=False, outlines=outlines,
              **_outline_options(data, images, as_outlines, n_points))
    frame = clf.predict_table(s.X, ids=s.ids, k=top_k, threshold=threshold)
    atomic_write(output, frame.to_csv(index=False))
    _say(quiet, f"wrote {len(frame)} predictions to {output}")
    return output


def finetune(run, out, *, table=None, images=None, labels=None, outlines=None, as_outlines=False, n_points=None,
             taxonomy=None, label_col=None, splits=None, split=None, validation_split=None, epochs=100, lr=3e-4,
             frozen_blocks="encoder", train_known_species=False, thresholds="0.5,0.7,0.9", skip_invalid=False,
             quiet=False, overwrite=False):
    """Fine-tune run ``run``'s classifier on your own collection and write run folder ``out``; species new to
    the model (rows of ``taxonomy``) grow the output layer. ``frozen_blocks``: 'encoder' (only the output
    layer learns) or a number k (the first k encoder blocks stay fixed). Without ``validation_split``, a
    stratified fifth of the specimens is held out for early stopping and the model card's metrics."""
    from hsickit.core import plots
    from hsickit.core.checks import check_options
    from hsickit.core.io import check_output_folder, staged_folder
    from hsickit.datasets.plants import read_taxonomy

    run, out = Path(run), Path(out)
    check_options(epochs=epochs, lr=lr)
    frozen = frozen_blocks if frozen_blocks == "encoder" else _count(str(frozen_blocks), "--frozen-blocks")
    backoff = _thresholds(thresholds)
    check_output_folder(out, overwrite)
    clf, cfg = _load_run(run)
    data = cfg.get("data", {})
    tax = clf.taxonomy_ if taxonomy is None else clf.taxonomy_.extend(read_taxonomy(taxonomy))
    read = dict(label_col=label_col or data.get("label_col", "species"), id_col=data.get("id_col", "id"),
                splits=splits, labels=labels, skip=skip_invalid,
                feature_cols=data.get("feature_names") or None if table or outlines else None,
                image_size=data.get("image_size", 128), outlines=outlines,
                **_outline_options(data, images, as_outlines, n_points))
    tr = _read(table, images, tax, split=split, **read)
    va = _read(table, images, tax, split=validation_split, report=False, **read) if validation_split else None
    n_old = clf.taxonomy_.n_leaves
    from hsickit.apps.plants.classifier import FINETUNE_VALIDATION

    clf.set_params(verbose=0 if quiet else 1, warm_start=True, taxonomy=tax, epochs=epochs, lr=lr, frozen_blocks=frozen,
                   keep_known=not train_known_species, validation_fraction=FINETUNE_VALIDATION)
    clf.fit(tr.X, tr.y, X_val=None if va is None else va.X, y_val=None if va is None else va.y)
    carved = va is None
    if carved:
        va, validation_split = tr.subset(clf.validation_index_), "validation"
    with staged_folder(out, overwrite, app="plants", command="finetune") as folder:
        new_run = RunFolder(folder)
        clf.save(new_run.path)
        atomic_write(new_run / "taxonomy.csv", clf.taxonomy_.to_frame().to_csv(index=False))
        new_run.write_config({**{k: v for k, v in cfg.items() if k != "versions"}, "command": "plants finetune",
                              "parent_run": str(run), "data": _data_info(tr, read["label_col"], read["id_col"], read["image_size"], read["as_outlines"]),
                              "split": split, "val_split": validation_split, "new_species": clf.taxonomy_.leaves[n_old:].tolist(),
                              "frozen_blocks": frozen, "lr": lr, "train_known_species": train_known_species})
        new_run.write_history(clf.history_)
        plots.learning_curves(clf.history_, new_run.plots / "learning_curves.png")
        metrics = _report(new_run, clf, va, validation_split, backoff, quiet) if len(va) else {}
        new_run.write_model_card("Fine-tuned taxonomic plant classifier", {
            "Parent": str(run),
            "New species": ", ".join(clf.taxonomy_.leaves[n_old:].tolist()) or "none",
            "Training": f"{len(tr) - (len(va) if carved else 0)} specimens of {tr.source}, encoder blocks frozen: "
                        f"{frozen}, lr {lr}; early stopping on the validation specimens",
            f"Metrics (validation: {len(va)} specimens "
            f"{'held out of ' + str(tr.source) if carved else 'of split ' + str(validation_split)}, not trained on)":
                markdown_table([{"metric": k, "value": v} for k, v in metrics.items()]) or "too few specimens to hold any out",
        })
    _say(quiet, f"wrote {out}: {clf.taxonomy_.n_leaves - n_old} new species, {clf.taxonomy_.n_leaves} in all")
    return clf


def demo(out="hsickit-demo/plants", *, data=None, epochs=60, seed=0, quiet=False) -> list[dict]:
    """Cross-entropy vs the taxonomic loss end to end: two run folders, ``out/ce`` and ``out/taxonomic``
    (each as ``train`` writes one, with the test split's metrics in ``eval-test/``); returns one row per loss.

    Uses the Kew leaf set (64 shape features; 99 species, 34 genera, 24 families) when its folder is
    found (``data``, $HSICKIT_PLANTS_DATA or ../shared/data/plants/leaf-classification-99); otherwise
    Fisher's iris measurements shipped with scikit-learn, whose three species share one genus.
    """
    import numpy as np

    from hsickit.apps.plants.classifier import TaxonomicClassifier
    from hsickit.core import plots
    from hsickit.core.io import open_output_folder
    from hsickit.datasets.plants import PlantSamples, read_feature_table, read_taxonomy

    out = Path(out)
    for loss in ("ce", "taxonomic"):  # refused up front, not after training
        open_output_folder(out / loss, "plants", "demo")
    start = time.perf_counter()
    folder = _leaf_folder(None if data is None else Path(data))
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
        fit_start = time.perf_counter()
        clf.fit(tr.X, tr.y, X_val=va.X, y_val=va.y)
        run = RunFolder(out / loss)
        clf.save(run.path)
        atomic_write(run / "taxonomy.csv", tax.to_frame().to_csv(index=False))
        run.write_config({"command": "plants demo", "classifier": clf.get_params() | {"taxonomy": "demo taxonomy"},
                          "data": {"kind": "features", "source": what, "n_samples": len(tr), "n_validation": len(va),
                                   "n_test": len(te)}, "seed": seed, "fit_seconds": time.perf_counter() - fit_start})
        run.write_history(clf.history_)
        plots.learning_curves(clf.history_, run.plots / "learning_curves.png")
        test = open_output_folder(run / "eval-test", "plants", "evaluate")
        with warnings.catch_warnings():  # iris: one genus and family, so their confusion matrices have one label
            warnings.filterwarnings("ignore", message="A single label was found")
            val = _report(run, clf, va, "val", (0.5, 0.7, 0.9), quiet=True)  # the run's own metrics: validation
            m = _report(test, clf, te, "test", (0.5, 0.7, 0.9), quiet=True)
        test.write_config({"command": "plants demo", "run": str(run.path), "data": what, "split": "test"})
        run.write_model_card(f"Taxonomic plant classifier (demo, {loss} loss)", {
            "Model": f"{clf.net_.model} encoder, {loss} loss; levels {', '.join(tax.levels)}",
            "Data": what,
            "Validation metrics": markdown_table([{"metric": k, "value": v} for k, v in val.items()]),
            "Test metrics (eval-test/)": markdown_table([{"metric": k, "value": v} for k, v in m.items()]),
        }, command=f"hsickit plants demo --out {out}")
        rows.append({"loss": loss, **{k: m[k] for k in ("accuracy_species", "accuracy_genus", "accuracy_family",
                                                        "top5_species", "hierarchical_f1", "mistake_severity")}})
    _say(quiet, f"data: {what}\n")
    _say(quiet, markdown_table(rows, floatfmt=".3f"))
    _say(quiet, f"\nrun folders: {out}/ce, {out}/taxonomic ({time.perf_counter() - start:.0f} s)")
    return rows
