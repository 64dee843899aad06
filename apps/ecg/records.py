"""Record-level multi-label diagnosis (LUDB, CinC 2021): the multi-resolution representation per record.

Each 10-s multi-lead record is seen by four channel networks, as the MRR paper does for
its 8-lead records — the whole record at 100 Hz (``rhythm``, conv1d), the per-lead median
beat at full rate (``beat``, conv1d), per-lead wavelet sub-band log-energies (``wavelet``,
MLP) and the RR-interval sequence (``rr``, MLP) — each trained alone on the multi-hot
labels; their embeddings plus heart-rate-variability features feed a downstream
multi-label classifier: by default one L2-regularised logistic regression per label
(scikit-learn), or a core MLP (:class:`~hsickit.core.estimators.DeepClassifier`, backprop or
HSIC bottleneck). On the 40 LUDB developer records (5-fold, pooled, 3 seeds;
benchmarks/ecg_records.py) the logistic downstream scored macro F1 / macro AUROC 0.51 / 0.69
where the MLP scored 0.41 / 0.59: 32 training records are too few for a network on top.

Labels come from ``ludb.csv`` (LUDB) or the ``# Dx:`` header lines mapped with the
Challenge's code tables (CinC 2021); labels with fewer than ``min_count`` positive records
are left out and listed in the record set's ``dropped_labels``.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from hsickit.apps.ecg.channels import _Standardizer
from hsickit.apps.ecg.features import hrv_features, wavelet_coefficients
from hsickit.apps.ecg.metrics import record_metrics
from hsickit.apps.ecg.signal import conform, detect_rpeaks, resample
from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.io import (RunFolder, atomic_write, check_output_folder, fit_or_load, load_sklearn, markdown_table, read_json,
                             resumable_training, save_sklearn, saved_params, staged_folder, write_json)
from hsickit.datasets.ecg import list_records, read_record, record_files, record_path, records_at
from hsickit.datasets.ecg_labels import read_cinc_labels, read_ludb_labels

__all__ = ["RecordConfig", "RecordSet", "load_record_set", "RecordClassifier", "train_records", "finetune_records", "evaluate_records",
           "predict_records", "load_record_run", "RECORD_CHANNELS"]

RECORD_CHANNELS = {"rhythm": ("conv1d", {"channels": (16, 32, 32), "kernel_size": 7}),
                   "beat": ("conv1d", {"channels": (16, 32, 32), "kernel_size": 7}),
                   "wavelet": ("mlp", {"hidden": (64, 32)}),
                   "rr": ("mlp", {"hidden": (32, 32)})}


@dataclass
class RecordConfig:
    """How a record becomes the record-level views (saved with the model)."""

    sampling_rate: float = 500.0
    leads: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    duration: float = 10.0
    rhythm_rate: float = 100.0
    beat_before: float = 0.25
    beat_after: float = 0.45
    rpeak_lead: str = "II"
    detector: str = "gqrs"
    n_rr: int = 16

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leads"] = list(self.leads)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RecordConfig":
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        d["leads"] = tuple(d.get("leads", cls.leads))
        return cls(**d)


@dataclass
class RecordSet:
    """Per-record views (first axis = record) and the multi-hot labels."""

    rhythm: np.ndarray  # (n, leads, duration * rhythm_rate)
    beat: np.ndarray  # (n, leads, beat window) median beat at full rate
    wavelet: np.ndarray  # (n, leads * 5) log-energy per wavelet sub-band
    rr: np.ndarray  # (n, n_rr) RR intervals / median RR (log), padded with 0
    features: np.ndarray  # (n, 6) HRV
    records: list[str]
    Y: np.ndarray | None = None  # (n, labels) 0/1
    labels: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def view(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def subset(self, names: Sequence[str]) -> "RecordSet":
        idx = [self.records.index(r) for r in names]
        Y = None if self.Y is None else self.Y[idx]
        return RecordSet(self.rhythm[idx], self.beat[idx], self.wavelet[idx], self.rr[idx], self.features[idx],
                         [self.records[i] for i in idx], Y, list(self.labels), list(self.repairs))


def _views(path: str, config: RecordConfig) -> tuple[np.ndarray, ...]:
    da = read_record(path, flat_policy="keep", nan_policy="interpolate")
    sig = conform(da, config.sampling_rate, leads=config.leads)
    x = sig.values
    n = int(config.duration * config.sampling_rate)
    x = x[:, :n] if x.shape[1] >= n else np.pad(x, ((0, 0), (0, n - x.shape[1])))
    fs = config.sampling_rate
    lead = [str(v).lower() for v in sig.lead.values]
    k = lead.index(config.rpeak_lead.lower()) if config.rpeak_lead.lower() in lead else 0
    peaks = detect_rpeaks(x[k], fs, method=config.detector)
    b, a = int(config.beat_before * fs), int(config.beat_after * fs)
    padded = np.pad(x, ((0, 0), (b, a)), mode="edge")
    if len(peaks):
        beat = np.median(padded[:, peaks[:, None] + np.arange(a + b)[None, :]], axis=1)
    else:
        beat = np.zeros((x.shape[0], a + b), np.float32)
    rhythm = resample(x, fs, config.rhythm_rate)
    bands = [wavelet_coefficients(x, "db4", level=4, bands=[j]) for j in range(5)]
    wav = np.log1p(np.stack([(c ** 2).mean(axis=-1) for c in bands], axis=1)).reshape(-1)
    rr = np.zeros(config.n_rr, np.float32)
    if len(peaks) > 2:
        d = np.diff(peaks) / fs
        d = np.log(d / np.median(d))[: config.n_rr]
        rr[: len(d)] = d
    hrv, _ = hrv_features(peaks, fs)
    repairs = [f"{Path(path).name}: {r}" for r in sig.attrs.get("repairs", [])]
    return rhythm.astype(np.float32), beat.astype(np.float32), wav.astype(np.float32), rr, hrv, repairs


def record_labels(directory, records=None) -> pd.DataFrame:
    """The label table of a folder: LUDB (``ludb.csv``, diagnosis categories) or CinC 2021 (``# Dx:`` codes)."""
    directory = Path(directory)
    if (directory / "ludb.csv").exists():
        table = read_ludb_labels(directory, level="category")
        table.index = table.index.astype(str)
        return table.loc[[str(r) for r in list_records(directory, records)]]
    if (directory / "dx_mapping_scored.csv").exists():
        return read_cinc_labels(directory, records)
    raise HsickitError(f"{directory} has no record labels: expected ludb.csv (LUDB) or dx_mapping_scored.csv "
                       "with '# Dx:' header lines (CinC 2021); to predict on unlabelled records, pass labelled=False "
                       "to load_record_set (or run 'hsickit ecg predict')")


def load_record_set(directory, records=None, config: RecordConfig | None = None, *, labels: Sequence[str] | None = None,
                    min_count: int = 3, labelled: bool = True, verbose: int = 1) -> RecordSet:
    """Views and labels of the records in ``directory``; ``labels`` fixes the label columns (a trained model's).

    ``dropped_labels`` lists the labels left out: with fewer than ``min_count`` positive
    records, or (``labels`` given) carried by some of these records but not in ``labels``.
    ``labelled=False`` reads no label table (new records to predict): ``Y`` is None.
    """
    config = config or RecordConfig()
    names = list_records(directory, records)
    parts = [_views(record_path(directory, r), config) for r in tqdm(names, desc="records", disable=not verbose)]
    stack = lambda i: np.stack([p[i] for p in parts])  # noqa: E731
    repairs = [r for p in parts for r in p[5]]
    if not labelled:
        rs = RecordSet(stack(0), stack(1), stack(2), stack(3), stack(4), names, None, list(labels or []), repairs)
        rs.dropped_labels = []
        return rs
    table = record_labels(directory, names)
    counts = table.sum()
    if labels is None:
        dropped = sorted(counts[counts < min_count].index)
        labels = [c for c in table.columns if c not in dropped]
    else:
        dropped = sorted(c for c in table.columns if c not in labels and counts[c] > 0)
    Y = np.stack([table[c].to_numpy() if c in table.columns else np.zeros(len(table), int) for c in labels], axis=1)
    rs = RecordSet(stack(0), stack(1), stack(2), stack(3), stack(4), names, Y.astype(np.float32), list(labels), repairs)
    rs.dropped_labels = dropped
    return rs


class RecordClassifier(BaseEstimator):
    """Four record-level channel networks + HRV features, fused, then a multi-label downstream.

    Parameters
    ----------
    channels : names from :data:`RECORD_CHANNELS` (empty: the HRV features alone).
    downstream : "logistic" (default: per label, a logistic regression with C = 0.1 and
        balanced classes on the standardised representation) or "mlp" (core MLP).
    training : "backprop" or "hsic" for the "mlp" downstream.
    epochs, channel_epochs, lr, batch_size : training of the MLP downstream and the channels.
    warm_start : refit from the fitted model (fine-tuning on new records with the same labels):
        the channel networks (and an MLP downstream) continue training, their first
        ``frozen_blocks`` blocks fixed; the feature scalers stay; the logistic downstream,
        cheap and convex, is refitted per label on the new records' representation, except
        for labels that every new record or none carries: those keep the model's own
        classifier (listed in ``kept_labels_``) instead of becoming constant.
    threshold : a record carries a label when its probability is at least this (one
        number, or one per label in the order of ``labels_``); used by :meth:`predict` and
        the run folders' metrics.
    random_state : seed of every network.
    checkpoint_dir : folder where every channel network is saved once trained (and checkpointed
        every epoch while it trains); a ``fit`` interrupted and started again with the same
        settings and records loads the networks already trained and resumes the one in progress
        (:func:`hsickit.core.io.fit_or_load`). Not saved with the model.

    Attributes
    ----------
    labels_ : the label names, the column order of :meth:`predict` and :meth:`predict_proba`.
    """

    def __init__(self, channels=("rhythm", "beat", "wavelet", "rr"), downstream="logistic", training="backprop", epochs=40,
                 channel_epochs=30, lr=1e-3, batch_size=16, warm_start=False, frozen_blocks=0, threshold=0.5, random_state=None,
                 checkpoint_dir=None, verbose="auto"):
        self.channels = channels
        self.downstream = downstream
        self.training = training
        self.epochs = epochs
        self.channel_epochs = channel_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.warm_start = warm_start
        self.frozen_blocks = frozen_blocks
        self.threshold = threshold
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    def _batch_size(self, n: int) -> int:
        from hsickit.core.checks import check_batch_size

        return int(max(2, min(check_batch_size(self.batch_size), n)))

    def _continue(self, net: DeepClassifier, epochs: int, n: int) -> DeepClassifier:
        return net.set_params(warm_start=True, epochs=epochs, frozen_blocks=self.frozen_blocks, lr=self.lr,
                              batch_size=self._batch_size(n))

    def _net(self, model, params, epochs, n, training="backprop"):
        return DeepClassifier(model=model, model_params=params, training=training, epochs=epochs, lr=self.lr,
                              batch_size=self._batch_size(n), patience=None, validation_fraction=0.0,
                              format_epochs=5 if training == "hsic" else 0, random_state=self.random_state, verbose=self.verbose)

    def representation(self, rs: RecordSet) -> np.ndarray:
        parts = [self.nets_[c].transform(self.scalers_[c](rs.view(c))) for c in self.channels]
        parts.append(self.scalers_["features"](rs.features))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def fit(self, rs: RecordSet) -> "RecordClassifier":
        if rs.Y is None:
            raise HsickitError("these records were loaded without labels (labelled=False); load labelled records to train")
        if rs.Y.shape[1] == 0:
            raise HsickitError("no labels to learn: every label has fewer positive records than min_count")
        if self.warm_start and hasattr(self, "nets_"):
            return self._fine_tune(rs)
        self.labels_ = list(rs.labels)
        self.nets_, self.scalers_ = {}, {"features": _Standardizer().fit(rs.features)}
        for c in self.channels:
            if c not in RECORD_CHANNELS:
                raise HsickitError(f"unknown record channel {c!r}; choose from {', '.join(RECORD_CHANNELS)}")
            model, params = RECORD_CHANNELS[c]
            self.scalers_[c] = _Standardizer().fit(rs.view(c))
            self.nets_[c] = self._fit_net(c, self._net(model, params, self.channel_epochs, len(rs)), rs)
        if self.downstream == "logistic":
            if self.training != "backprop":
                raise HsickitError(f"training={self.training!r} trains a network; the logistic downstream has none: pass downstream='mlp'")
            self.downstream_ = make_pipeline(StandardScaler(), OneVsRestClassifier(
                LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)))
        elif self.downstream == "mlp":
            self.downstream_ = self._net("mlp", {"hidden": (64, 64)}, self.epochs, len(rs), self.training)
        else:
            raise HsickitError(f"downstream={self.downstream!r}; use 'logistic' or 'mlp'")
        with warnings.catch_warnings():  # a label every record carries: constant, listed in train_records' model card
            warnings.filterwarnings("ignore", "Label .* is present in all training examples", UserWarning)
            self.downstream_.fit(self.representation(rs), rs.Y)
        return self

    def _fit_net(self, channel: str, net: DeepClassifier, rs: RecordSet) -> DeepClassifier:
        folder = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / channel
        return fit_or_load(net, folder, lambda n: n.fit(self.scalers_[channel](rs.view(channel)), rs.Y), self.verbose)

    def _fine_tune(self, rs: RecordSet) -> "RecordClassifier":
        if list(rs.labels) != self.labels_:
            raise HsickitError(f"fine-tuning records carry labels {rs.labels}, the model {self.labels_}; "
                               "load them with load_record_set(..., labels=model.labels_)")
        for c in self.channels:
            self.nets_[c] = self._fit_net(c, self._continue(self.nets_[c], self.channel_epochs, len(rs)), rs)
        self.kept_labels_ = []
        if isinstance(self.downstream_, DeepClassifier):
            self._continue(self.downstream_, self.epochs, len(rs)).fit(self.representation(rs), rs.Y)
            return self
        # Logistic: the standardisation stays; a label the new records do not vary on keeps its regression.
        Z, per_label = self.downstream_[:-1].transform(self.representation(rs)), self.downstream_[-1]
        for j, label in enumerate(self.labels_):
            if 0 < rs.Y[:, j].sum() < len(rs):
                per_label.estimators_[j] = clone(per_label.estimator).fit(Z, rs.Y[:, j])
            else:
                self.kept_labels_.append(label)
        return self

    def predict_proba(self, rs: RecordSet) -> np.ndarray:
        """Per-label probabilities, shape (records, labels) in the order of ``labels_``."""
        return self.downstream_.predict_proba(self.representation(rs))

    def thresholds(self) -> np.ndarray:
        """The threshold of each label (``threshold`` spread over ``labels_``)."""
        t = np.asarray(self.threshold, dtype=float)
        if t.ndim and t.shape != (len(self.labels_),):
            raise HsickitError(f"threshold has {t.size} values for {len(self.labels_)} labels; pass one number or one per label")
        return np.broadcast_to(t, (len(self.labels_),))

    def predict(self, rs: RecordSet) -> np.ndarray:
        """The 0/1 indicator matrix (records, labels) in the order of ``labels_`` (scikit-learn's multi-label form)."""
        return (self.predict_proba(rs) >= self.thresholds()).astype(int)

    def channel_proba(self, rs: RecordSet, channel: str) -> np.ndarray:
        """A channel network's own multi-label probabilities (to score it alone)."""
        return self.nets_[channel].predict_proba(self.scalers_[channel](rs.view(channel)))

    def save(self, path) -> Path:
        path = Path(path)
        for c, net in self.nets_.items():
            net.save(path / "channels" / c)
        if isinstance(self.downstream_, DeepClassifier):
            self.downstream_.save(path / "downstream")
        else:
            save_sklearn(path / "downstream" / "model.skops", self.downstream_)
        write_json(path / "records_model.json", {"params": saved_params(self),
                                                 "labels": self.labels_,
                                                 "scalers": {k: s.state() for k, s in self.scalers_.items()}})
        return path

    @classmethod
    def load(cls, path) -> "RecordClassifier":
        path = Path(path)
        meta = read_json(path / "records_model.json")
        clf = cls(**{"downstream": "mlp", **meta["params"], "channels": tuple(meta["params"]["channels"])})  # older models: an MLP
        clf.labels_ = meta["labels"]
        clf.scalers_ = {k: _Standardizer.from_state(s) for k, s in meta["scalers"].items()}
        clf.nets_ = {c: DeepClassifier.load(path / "channels" / c) for c in clf.channels}
        clf.downstream_ = (load_sklearn(path / "downstream" / "model.skops") if clf.downstream == "logistic"
                           else DeepClassifier.load(path / "downstream"))
        return clf


def _evaluate(run: RunFolder, clf: RecordClassifier, rs: RecordSet, split: str) -> dict:
    metrics = record_metrics(rs.Y, clf.predict_proba(rs), clf.labels_, clf.thresholds())
    run.write_metrics({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()},
                      split=split, n_samples=len(rs.records))
    return metrics


@contextlib.contextmanager
def _resumable(out, overwrite: bool, clf: RecordClassifier, config: RecordConfig, records_dir, rs: RecordSet, val: list[str],
               settings: dict, verbose: int, inputs=()):
    """Train ``clf`` with its channel networks kept beside ``out`` (:func:`hsickit.core.io.resumable_training`)."""
    settings = {"task": "records", "record_config": config.to_dict(), "records_dir": os.path.abspath(records_dir),
                "records": list(rs.records), "validation_records": list(val), "labels": list(rs.labels), **settings}
    with resumable_training(clf, out, settings, [*inputs, *record_files(records_dir, rs.records)], overwrite, verbose,
                            app="ecg", command="finetune" if "base_run" in settings else "train"):
        yield


def _write_run(out, overwrite: bool, clf: RecordClassifier, config: RecordConfig, rs: RecordSet, train: RecordSet, val: list[str],
               data: dict, title: str, labels_note: str = "") -> dict:
    """Save ``clf`` into run folder ``out`` with its config, history, validation metrics and model card
    (built whole in a temporary sibling, see :func:`hsickit.core.io.staged_folder`)."""
    with staged_folder(out, overwrite, app="ecg", command="finetune" if "base_run" in data else "train") as folder:
        return _write_run_into(RunFolder(folder), clf, config, rs, train, val, data, title, labels_note)


def _write_run_into(run: RunFolder, clf: RecordClassifier, config: RecordConfig, rs: RecordSet, train: RecordSet,
                    val: list[str], data: dict, title: str, labels_note: str) -> dict:
    clf.save(run / "model")
    run.write_config({"task": "records", "record_config": config.to_dict(), "labels": clf.labels_, "train_records": train.records,
                      "validation_records": val, "model": saved_params(clf), **data})
    history = [{"model": f"channel:{c}", **r} for c, n in clf.nets_.items() for r in n.history_]
    run.write_history(history + [{"model": "downstream", **r} for r in getattr(clf.downstream_, "history_", [])])
    metrics = _evaluate(run, clf, rs.subset(val), "validation") if val else {}
    rows = [{"model": "fused", "macro_f1": metrics.get("macro_f1"), "micro_f1": metrics.get("micro_f1")}]
    if val:
        vs = rs.subset(val)
        for c in clf.channels:
            m = record_metrics(vs.Y, clf.channel_proba(vs, c), clf.labels_, clf.thresholds())
            rows.append({"model": f"channel:{c}", "macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"]})
    head = "MLP (" + clf.training + ")" if clf.downstream == "mlp" else "logistic regression per label"
    run.write_model_card(title, {
        "Model": f"Channels {', '.join(clf.channels)} + HRV features, downstream {head}.",
        "Labels": ", ".join(clf.labels_) + labels_note,
        "Validation (records not trained on)": markdown_table(rows) if val else "no validation records",
        "Repairs": "; ".join(rs.repairs) or "none"})
    return metrics


def train_records(records_dir, out, records=None, validation_records=None, *, epochs: int = 40, training: str = "backprop",
                  downstream: str | None = None, min_count: int = 3, random_state=0, overwrite: bool = False, verbose: int = 1) -> dict:
    """Train the record-level multi-label model; writes a run folder and returns validation metrics.

    A finished run already in ``out`` is replaced only with ``overwrite``.

    ``downstream`` (None: "logistic", or "mlp" when ``training`` is not "backprop") goes to
    :class:`RecordClassifier`.
    """
    check_output_folder(out, overwrite)
    config = RecordConfig()
    names = list_records(records_dir, records)
    val = list_records(records_dir, validation_records) if validation_records else names[4::5]
    rs = load_record_set(records_dir, names + [v for v in val if v not in names], config, min_count=min_count, verbose=verbose)
    train = rs.subset([r for r in rs.records if r not in val])
    downstream = downstream or ("logistic" if training == "backprop" else "mlp")
    clf = RecordClassifier(downstream=downstream, training=training, epochs=epochs, random_state=random_state, verbose=0)
    with _resumable(out, overwrite, clf, config, records_dir, rs, val, {"min_count": min_count}, verbose):
        constant = [lab for lab, n in zip(clf.fit(train).labels_, train.Y.sum(axis=0)) if n == len(train)]
        note = "".join(f"\n\n{head}: {', '.join(items)}" for head, items in
                       ((f"Left out (< {min_count} positive records)", rs.dropped_labels),
                        ("Carried by every training record (predicted for every record)", constant)) if items)
        return _write_run(out, overwrite, clf, config, rs, train, val, {"dropped_labels": rs.dropped_labels},
                          "hsickit ECG record model (multi-label)", note)


def finetune_records(run, records_dir, out, records=None, validation_records=None, *, epochs: int = 10, frozen_blocks: int = 1,
                     lr: float = 3e-4, overwrite: bool = False, verbose: int = 1) -> dict:
    """Continue training a run's record model on new labelled records (e.g. a hospital's); writes run folder ``out``.

    The labels stay the model's: the new records' other labels are ignored (listed in the
    model card and config). A model label none (or all) of the training records carries keeps
    the base model's logistic regression (``labels_kept_from_base_model``); an MLP downstream
    learns it as absent (present).
    """
    check_output_folder(out, overwrite)
    clf, config = load_record_run(run)
    names = list_records(records_dir, records)
    val = list_records(records_dir, validation_records) if validation_records else []
    rs = load_record_set(records_dir, names + [v for v in val if v not in names], config, labels=clf.labels_, verbose=verbose)
    ignored = rs.dropped_labels
    train = rs.subset([r for r in rs.records if r not in val])
    clf.set_params(warm_start=True, epochs=epochs, channel_epochs=epochs, frozen_blocks=frozen_blocks, lr=lr)
    with _resumable(out, overwrite, clf, config, records_dir, rs, val, {"base_run": os.path.abspath(run)}, verbose,
                    inputs=[Path(run) / "model" / "records_model.json"]):
        clf.fit(train)
        absent = [lab for lab, n in zip(clf.labels_, train.Y.sum(axis=0)) if n == 0]
        kept = "the base model's classifier kept (every fine-tuning record or none carries them)"
        note = "".join(f"\n\n{head}: {', '.join(items)}" for head, items in
                       (("Labels of the new records the model does not know (ignored)", ignored),
                        ("Model labels no fine-tuning record carries", absent),
                        (f"Labels with {kept}", clf.kept_labels_)) if items)
        return _write_run(out, overwrite, clf, config, rs, train, val, {"base_run": os.path.abspath(run), "records_dir": os.path.abspath(records_dir),
                                                             "ignored_labels": ignored, "labels_without_positive_records": absent,
                                                             "labels_kept_from_base_model": clf.kept_labels_},
                          "hsickit ECG record model (multi-label, fine-tuned)", note)


def load_record_run(run) -> tuple[RecordClassifier, RecordConfig]:
    """The record model and record configuration saved in a run folder."""
    from hsickit.core.io import check_run_app

    check_run_app(run, "ecg", "`hsickit ecg`")
    cfg = read_json(Path(run) / "config.json")
    if cfg.get("task") != "records":
        raise HsickitError(f"{run} holds a {cfg.get('task', 'beats')!r} model; this command needs a record model (--task records)")
    return RecordClassifier.load(Path(run) / "model"), RecordConfig.from_dict(cfg["record_config"])


def evaluate_records(run, records_dir, records=None, *, verbose: int = 1) -> dict:
    """Score a record model on labelled records; writes ``metrics.json`` into the run folder."""
    clf, config = load_record_run(run)
    rs = load_record_set(records_dir, records, config, labels=clf.labels_, verbose=verbose)
    return _evaluate(RunFolder(run), clf, rs, "evaluation")


def predict_records(run, record_or_dir, out, *, overwrite: bool = False, verbose: int = 1) -> Path:
    """Diagnose a record (path without extension) or every record in a folder; no labels needed.

    Writes ``out/record_predictions.csv``, one row per record: ``record``, ``p_<label>`` per
    model label, and ``predicted``, the labels whose probability reaches the model's
    threshold, joined by ``;``. Returns the CSV's path. An existing CSV is replaced only with ``overwrite``.
    """
    from hsickit.core.io import check_output_file

    check_output_file(Path(out) / "record_predictions.csv", overwrite=overwrite, option="--out")
    clf, config = load_record_run(run)
    directory, names = records_at(record_or_dir)
    rs = load_record_set(directory, names, config, labels=clf.labels_, labelled=False, verbose=verbose)
    proba, pred = clf.predict_proba(rs), clf.predict(rs)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["record"] + [f"p_{lab}" for lab in clf.labels_] + ["predicted"])
    for name, p, y in zip(rs.records, proba, pred):
        w.writerow([name] + [f"{v:.4f}" for v in p] + [";".join(lab for lab, on in zip(clf.labels_, y) if on)])
    Path(out).mkdir(parents=True, exist_ok=True)
    return atomic_write(Path(out) / "record_predictions.csv", buf.getvalue())
