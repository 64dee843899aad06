"""Record-level multi-label diagnosis (LUDB, CinC 2021): the multi-resolution representation per record.

Each 10-s multi-lead record is seen by four channel networks, as the MRR paper does for
its 8-lead records — the whole record at 100 Hz (``rhythm``, conv1d), the per-lead median
beat at full rate (``beat``, conv1d), per-lead wavelet sub-band log-energies (``wavelet``,
MLP) and the RR-interval sequence (``rr``, MLP) — each trained alone on the multi-hot
labels; their embeddings plus the record features — heart-rate variability and what a
cardiologist measures on the median beats (QRS axis and duration,
:mod:`hsickit.apps.ecg.measurements`) — feed a downstream multi-label classifier: by default
one L2-regularised logistic regression per label (scikit-learn) that weighs the embeddings
down (``channel_weight``), or a core MLP (:class:`~hsickit.core.estimators.DeepClassifier`,
backprop or HSIC bottleneck). On the 40 LUDB developer records (5-fold, pooled, 3 seeds;
benchmarks/ecg_records.py) the logistic downstream scored macro F1 / macro AUROC 0.63 / 0.79
(0.51 / 0.69 with the HRV features alone and the embeddings at full weight) where the MLP
scored 0.42 / 0.62: 32 training records are too few for a network on top.

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
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import wfdb
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from hsickit.apps.ecg.channels import RecordCNN, Standardizer
from hsickit.apps.ecg.features import hrv_features, wavelet_coefficients
from hsickit.apps.ecg.measurements import MEASUREMENT_LABELS, record_measurements
from hsickit.apps.ecg.metrics import record_metrics
from hsickit.apps.ecg.signal import conform_values, detect_rpeaks, resample
from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.files import atomic_write, read_json, write_json
from hsickit.core.parallel import map_processes
from hsickit.core.report import markdown_table
from hsickit.core.runs import RunFolder, check_output_folder, fit_or_load, resumable_training, staged_folder
from hsickit.core.serialization import load_sklearn, save_sklearn, saved_params
from hsickit.datasets.ecg import list_records, read_record, read_record_values, record_files, record_path, records_at
from hsickit.datasets.ecg_labels import read_cinc_labels, read_ludb_labels
from hsickit.datasets.ptbxl import TASKS as PTBXL_TASKS
from hsickit.datasets.ptbxl import is_ptbxl, ptbxl_folds, ptbxl_labels, ptbxl_record_path, ptbxl_records, read_ptbxl_database

__all__ = ["RecordConfig", "RecordSet", "load_record_set", "RecordClassifier", "train_records", "finetune_records", "evaluate_records",
           "predict_records", "load_record_run", "choose_thresholds", "record_source", "RECORD_CHANNELS"]

RECORD_CHANNELS = {"rhythm": ("conv1d", {"channels": (16, 32, 32), "kernel_size": 7}),
                   "beat": ("conv1d", {"channels": (16, 32, 32), "kernel_size": 7}),
                   "wavelet": ("mlp", {"hidden": (64, 32)}),
                   "rr": ("mlp", {"hidden": (32, 32)}),
                   "cnn": ("xresnet1d", {"channels": (32, 64, 64, 128), "kernel_size": 5})}
#: the view each channel reads (the CNN reads the whole record at ``rhythm_rate``, like ``rhythm``)
CHANNEL_VIEWS = {"cnn": "rhythm"}
#: record sets of at least this many training records get the CNN channel by default (train_records)
CNN_MIN_RECORDS = 200


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
    detector: str = "gqrs"  # detect_rpeaks method ("pantompkins": faster, not better on LUDB; see README)
    n_rr: int = 16
    #: the record features get the median beats' measurements (QRS axis, its sine and cosine, QRS
    #: duration; :func:`hsickit.apps.ecg.measurements.record_measurements`) after the 6 HRV ones
    measurements: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leads"] = list(self.leads)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RecordConfig":
        """The configuration a model was saved with; one saved without ``detector`` used gqrs, one
        saved without ``measurements`` read the 6 HRV features alone.

        >>> RecordConfig.from_dict({"sampling_rate": 100.0, "detector": "pantompkins"}).detector, RecordConfig().detector
        ('pantompkins', 'gqrs')
        >>> RecordConfig.from_dict({"sampling_rate": 500.0}).measurements, RecordConfig().measurements
        (False, True)
        """
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        d["leads"] = tuple(d.get("leads", cls.leads))
        d.setdefault("detector", "gqrs")
        d.setdefault("measurements", False)
        return cls(**d)


@dataclass
class RecordSet:
    """Per-record views (first axis = record) and the multi-hot labels."""

    rhythm: np.ndarray  # (n, leads, duration * rhythm_rate)
    beat: np.ndarray  # (n, leads, beat window) median beat at full rate
    wavelet: np.ndarray  # (n, leads * 5) log-energy per wavelet sub-band
    rr: np.ndarray  # (n, n_rr) RR intervals / median RR (log), padded with 0
    features: np.ndarray  # (n, 6) HRV, then (RecordConfig.measurements) the 4 median-beat measurements
    records: list[str]
    Y: np.ndarray | None = None  # (n, labels) 0/1
    labels: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    rhythm_rate: float = 100.0  # Hz of the rhythm view

    def __len__(self) -> int:
        return len(self.records)

    def view(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def subset(self, names: Sequence[str]) -> "RecordSet":
        idx = [self.records.index(r) for r in names]
        Y = None if self.Y is None else self.Y[idx]
        return RecordSet(self.rhythm[idx], self.beat[idx], self.wavelet[idx], self.rr[idx], self.features[idx],
                         [self.records[i] for i in idx], Y, list(self.labels), list(self.repairs), self.rhythm_rate)


def _views(path: str, config: RecordConfig) -> tuple[np.ndarray, ...]:
    x, info = conform_values(*read_record_values(path, flat_policy="keep", nan_policy="interpolate"), config.sampling_rate,
                             leads=config.leads)  # read_record and conform, without their DataArrays
    n = int(config.duration * config.sampling_rate)
    x = x[:, :n] if x.shape[1] >= n else np.pad(x, ((0, 0), (0, n - x.shape[1])))
    fs = config.sampling_rate
    lead = [v.lower() for v in info["lead"]]
    k = lead.index(config.rpeak_lead.lower()) if config.rpeak_lead.lower() in lead else 0
    peaks = detect_rpeaks(x[k], fs, method=config.detector)
    b, a = int(config.beat_before * fs), int(config.beat_after * fs)
    padded = np.pad(x, ((0, 0), (b, a)), mode="edge")
    if len(peaks):
        beat = np.median(padded[:, peaks[:, None] + np.arange(a + b)[None, :]], axis=1)
    else:
        beat = np.zeros((x.shape[0], a + b), np.float32)
    rhythm = resample(x, fs, config.rhythm_rate)
    bands = wavelet_coefficients(x, "db4", level=4, split=True)  # the 5 sub-bands of one transform
    wav = np.log1p(np.stack([(c ** 2).mean(axis=-1) for c in bands], axis=1)).reshape(-1)
    rr = np.zeros(config.n_rr, np.float32)
    if len(peaks) > 2:
        d = np.diff(peaks) / fs
        d = np.log(d / np.median(d))[: config.n_rr]
        rr[: len(d)] = d
    hrv, _ = hrv_features(peaks, fs)
    if config.measurements:
        hrv = np.concatenate([hrv, record_measurements(beat, lead, fs, r_index=b)[0] if len(peaks)
                              else np.zeros(len(MEASUREMENT_LABELS), np.float32)])
    repairs = [f"{Path(path).name}: {r}" for r in info["repairs"]]
    return rhythm.astype(np.float32), beat.astype(np.float32), wav.astype(np.float32), rr, hrv, repairs


def record_source(directory, records=None) -> tuple[list[str], list[str]]:
    """Record names and WFDB paths of a folder: PTB-XL (names are ``ecg_id``; ``ptbxl_database.csv``) or a flat folder."""
    if is_ptbxl(directory):
        db = read_ptbxl_database(directory)
        names = ptbxl_records(directory, records, database=db)
        return names, [ptbxl_record_path(directory, r, database=db) for r in names]
    names = list_records(directory, records)
    return names, [record_path(directory, r) for r in names]


def record_labels(directory, records=None, task: str | None = None) -> pd.DataFrame:
    """The label table of a folder: PTB-XL (``task``, see :mod:`hsickit.datasets.ptbxl`; records without a
    label for it are left out), LUDB (``ludb.csv``, diagnosis categories) or CinC 2021 (``# Dx:`` codes)."""
    directory = Path(directory)
    if is_ptbxl(directory):
        return ptbxl_labels(directory, task or "superdiagnostic", None if records is None else list(records))
    if task is not None:
        raise HsickitError(f"labels={task!r} names a PTB-XL task, but {directory} has no ptbxl_database.csv; "
                           "leave --label-task out for LUDB and CinC 2021 folders")
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
                    min_count: int = 3, labelled: bool = True, task: str | None = None, n_jobs: int | None = None,
                    verbose: int = 1) -> RecordSet:
    """Views and labels of the records in ``directory``; ``labels`` fixes the label columns (a trained model's).

    ``dropped_labels`` lists the labels left out: with fewer than ``min_count`` positive
    records, or (``labels`` given) carried by some of these records but not in ``labels``.
    ``labelled=False`` reads no label table (new records to predict): ``Y`` is None.
    ``task`` (PTB-XL folders only): the label task (default ``"superdiagnostic"``); records
    without a label for it are left out and listed in ``unlabelled``. ``n_jobs``: processes
    that read and prepare the records (:func:`hsickit.core.parallel.resolve_jobs`; None: the
    ``hsickit`` command's ``--threads``, else 1); the views do not depend on it.
    """
    config = config or RecordConfig()
    names, paths = record_source(directory, records)
    unlabelled = []
    if labelled:
        table = record_labels(directory, names, task)
        unlabelled = list(table.attrs.get("unlabelled", []))
        if unlabelled:
            keep = [i for i, r in enumerate(names) if r not in set(unlabelled)]
            names, paths = [names[i] for i in keep], [paths[i] for i in keep]
    parts = map_processes(partial(_views, config=config), paths, n_jobs, desc="records", verbose=verbose)
    stack = lambda i: np.stack([p[i] for p in parts])  # noqa: E731
    repairs = [r for p in parts for r in p[5]]
    if not labelled:
        rs = RecordSet(stack(0), stack(1), stack(2), stack(3), stack(4), names, None, list(labels or []), repairs, config.rhythm_rate)
        rs.dropped_labels, rs.unlabelled = [], []
        return rs
    counts = table.sum()
    if labels is None:
        dropped = sorted(counts[counts < min_count].index)
        labels = [c for c in table.columns if c not in dropped]
    else:
        dropped = sorted(c for c in table.columns if c not in labels and counts[c] > 0)
    Y = np.stack([table[c].to_numpy() if c in table.columns else np.zeros(len(table), int) for c in labels], axis=1)
    rs = RecordSet(stack(0), stack(1), stack(2), stack(3), stack(4), names, Y.astype(np.float32), list(labels), repairs,
                   config.rhythm_rate)
    rs.dropped_labels, rs.unlabelled = dropped, unlabelled
    return rs


def choose_thresholds(Y_true, Y_score) -> np.ndarray:
    """Per label, the probability threshold that maximises F1 on these (validation) records.

    Candidates are the midpoints between consecutive distinct scores; a label without a
    positive record gets 0.5.

    >>> choose_thresholds(np.array([[1], [1], [0], [0]]), np.array([[0.9], [0.4], [0.3], [0.1]])).round(2).tolist()
    [0.35]
    """
    Y_true, Y_score = np.asarray(Y_true).astype(int), np.asarray(Y_score, dtype=float)
    out = np.full(Y_true.shape[1], 0.5)
    for j in range(Y_true.shape[1]):
        y, p = Y_true[:, j], Y_score[:, j]
        if y.sum() == 0:
            continue
        u = np.unique(p)
        cands = np.concatenate([(u[:-1] + u[1:]) / 2, [u[0]]]) if len(u) > 1 else u
        pred = p[None, :] >= cands[:, None]
        tp = (pred & (y[None, :] == 1)).sum(1)
        f1 = 2 * tp / (pred.sum(1) + y.sum())
        out[j] = float(cands[int(np.argmax(f1))])
    return out


def inner_split(Y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of a multi-label set, stratified on the rarest label where possible."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(Y))
    counts = Y.sum(axis=0)
    order = [j for j in np.argsort(counts) if counts[j] >= 2 and len(Y) - counts[j] >= 2]
    strat = Y[:, order[0]] if order else None
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(va)


class RecordClassifier(BaseEstimator):
    """Record-level channel networks + record features (HRV, median-beat measurements), fused, then a multi-label downstream.

    Parameters
    ----------
    channels : names from :data:`RECORD_CHANNELS` (empty: the record features alone): the four
        views of the multi-resolution representation, and ``cnn``, a small xresnet1d over the
        whole record (:class:`~hsickit.apps.ecg.channels.RecordCNN`: augmented random crops,
        per-label weighted BCE) for record sets of hundreds of records.
    downstream : "logistic" (default: per label, a logistic regression with C = 0.1 and
        balanced classes on the standardised representation) or "mlp" (core MLP).
    channel_weight : the logistic downstream's weight of the channel embeddings (``fusion="stack"``):
        after standardisation they are multiplied by it, the record features (HRV and
        measurements) are not. The channel networks fit their training records almost perfectly,
        (LUDB developer records: training-record macro AUROC 0.83-0.98 per channel, 0.46-0.66 on
        the test folds), so at weight 1 the downstream learns from their embeddings of those records
        and leaves the features aside (on the 40 LUDB developer records, 5-fold, 3 seeds: sinus
        bradycardia AUROC 0.51 where the HRV features alone reach 0.94). 0.2 was chosen by that
        cross-validation (``python benchmarks/ecg_records.py --channel-weights ...``, macro AUROC at
        0.05 / 0.1 / 0.15 / 0.2 / 0.25 / 0.3 / 0.5 / 1: 0.776 / 0.784 / 0.790 / 0.792 / 0.788 /
        0.779 / 0.747 / 0.698; the record features alone 0.778). Models saved before it existed
        keep their weight of 1 (it is part of the saved scaler).
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
        the run folders' metrics. ``"tune"``: ``fit`` holds out ``threshold_fraction`` of its
        records (stratified on the rarest label), trains on the rest, and chooses each label's
        threshold on the held-out records (:func:`choose_thresholds`; ``fit``'s ``validation``
        records instead when given); the CNN channel keeps its epoch with the lowest loss on them.
    cnn_training, cnn_epochs : training ("backprop" or "hsic") and epochs of the ``cnn`` channel.
    fusion : "stack" (the downstream learns from the channels' embeddings and the record features
        of the training records) or "vote" (needs validation records: ``threshold="tune"`` or
        ``fit``'s ``validation``): the mean of the probabilities of the members whose macro AUROC
        on the validation records is within ``vote_margin`` of the best member's; members are the
        channels and a logistic regression on the record features (the downstream then holds it).
        On PTB-XL (superdiagnostic, trained on folds 1-7, scored on fold 8:
        ``python benchmarks/ecg_records.py --dataset ptbxl --select fusion``) the stacked
        downstream fell below the CNN channel alone (macro AUROC 0.870 against 0.903), its
        embeddings being those of records the channels trained on; the vote reached 0.904.
    random_state : seed of every network.
    checkpoint_dir : folder where every channel network is saved once trained (and checkpointed
        every epoch while it trains); a ``fit`` interrupted and started again with the same
        settings and records loads the networks already trained and resumes the one in progress
        (:func:`hsickit.core.runs.fit_or_load`). Not saved with the model.
    device : torch device ("cpu", "cuda", "cuda:1", "auto") where every network (channels, the
        CNN, an MLP downstream) trains, fine-tuning included; prediction runs where the weights
        are (a loaded model: the CPU). Models saved before it existed load with "cpu".

    Attributes
    ----------
    labels_ : the label names, the column order of :meth:`predict` and :meth:`predict_proba`.
    """

    def __init__(self, channels=("rhythm", "beat", "wavelet", "rr"), downstream="logistic", training="backprop", epochs=40,
                 channel_epochs=30, lr=1e-3, batch_size=16, warm_start=False, frozen_blocks=0, threshold=0.5, threshold_fraction=0.2,
                 cnn_training="backprop", cnn_epochs=30, fusion="stack", vote_margin=0.05, channel_weight=0.2, random_state=None,
                 checkpoint_dir=None, verbose="auto", device="cpu"):
        self.channels = channels
        self.channel_weight = channel_weight
        self.fusion = fusion
        self.vote_margin = vote_margin
        self.threshold_fraction = threshold_fraction
        self.cnn_training = cnn_training
        self.cnn_epochs = cnn_epochs
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
        self.device = device

    def _batch_size(self, n: int) -> int:
        from hsickit.core.checks import check_batch_size

        return int(max(2, min(check_batch_size(self.batch_size), n)))

    def _continue(self, net, epochs: int, n: int):
        if isinstance(net, RecordCNN):
            return net.set_params(warm_start=True, epochs=epochs, frozen_blocks=self.frozen_blocks, lr=self.lr, device=self.device)
        return net.set_params(warm_start=True, epochs=epochs, frozen_blocks=self.frozen_blocks, lr=self.lr,
                              batch_size=self._batch_size(n), device=self.device)

    def _view(self, rs: RecordSet, channel: str) -> np.ndarray:
        return self.scalers_[channel](rs.view(CHANNEL_VIEWS.get(channel, channel)))

    def _cnn(self, rate: float) -> RecordCNN:
        return RecordCNN(model_params=dict(RECORD_CHANNELS["cnn"][1]), training=self.cnn_training, epochs=self.cnn_epochs,
                         sampling_rate=rate, random_state=self.random_state, verbose=self.verbose, device=self.device)

    def _net(self, model, params, epochs, n, training="backprop"):
        return DeepClassifier(model=model, model_params=params, training=training, epochs=epochs, lr=self.lr,
                              batch_size=self._batch_size(n), patience=None, validation_fraction=0.0,
                              hsic_params={"format_epochs": 5 if training == "hsic" else 0}, random_state=self.random_state, verbose=self.verbose,
                              device=self.device)

    def representation(self, rs: RecordSet) -> np.ndarray:
        parts = [self.nets_[c].transform(self._view(rs, c)) for c in self.channels]
        parts.append(self.scalers_["features"](rs.features))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _downstream_input(self, rs: RecordSet) -> np.ndarray:
        if self.fusion == "vote":
            return self.scalers_["features"](rs.features)
        return self.representation(rs)

    def _choose_vote(self, validation: RecordSet) -> None:
        scores = {c: record_metrics(validation.Y, self.channel_proba(validation, c), self.labels_)["macro_auroc"]
                  for c in [*self.channels, "hrv"]}
        scores = {c: (0.0 if np.isnan(v) else float(v)) for c, v in scores.items()}
        best = max(scores.values())
        self.vote_ = [c for c, v in scores.items() if v >= best - self.vote_margin]
        self.vote_auroc_ = scores

    def fit(self, rs: RecordSet, validation: RecordSet | None = None) -> "RecordClassifier":
        """Train on labelled records; ``validation`` (other labelled records, same labels) chooses the
        thresholds and the CNN's epoch when ``threshold="tune"``."""
        if rs.Y is None:
            raise HsickitError("these records were loaded without labels (labelled=False); load labelled records to train")
        if rs.Y.shape[1] == 0:
            raise HsickitError("no labels to learn: every label has fewer positive records than min_count")
        if self.warm_start and hasattr(self, "nets_"):
            return self._fine_tune(rs)
        tune = isinstance(self.threshold, str)
        if tune and self.threshold != "tune":
            raise HsickitError(f"threshold={self.threshold!r}; pass a number, one per label, or 'tune'")
        if self.fusion not in ("stack", "vote"):
            raise HsickitError(f"fusion={self.fusion!r}; use 'stack' or 'vote'")
        if self.fusion == "vote" and not tune and validation is None:
            raise HsickitError("fusion='vote' chooses its members on validation records: pass threshold='tune' or fit(rs, validation=...)")
        if self.fusion == "vote" and self.downstream != "logistic":
            raise HsickitError("fusion='vote' averages the channels' probabilities; its HRV member is logistic: leave downstream='logistic'")
        if validation is None and (tune or self.fusion == "vote"):
            tr, va = inner_split(rs.Y, self.threshold_fraction, 0 if self.random_state is None else int(self.random_state))
            rs, validation = rs.subset([rs.records[i] for i in tr]), rs.subset([rs.records[i] for i in va])
        if validation is not None and list(validation.labels) != list(rs.labels):
            raise HsickitError(f"validation records carry labels {validation.labels}, the training records {rs.labels}; "
                               "load them with load_record_set(..., labels=<the training labels>)")
        self.labels_ = list(rs.labels)
        self.nets_, self.scalers_ = {}, {"features": Standardizer().fit(rs.features)}
        for c in self.channels:
            if c not in RECORD_CHANNELS:
                raise HsickitError(f"unknown record channel {c!r}; choose from {', '.join(RECORD_CHANNELS)}")
            model, params = RECORD_CHANNELS[c]
            self.scalers_[c] = Standardizer().fit(rs.view(CHANNEL_VIEWS.get(c, c)))
            if c == "cnn":
                self.nets_[c] = self._fit_net(c, self._cnn(rs.rhythm_rate), rs, validation)
            else:
                self.nets_[c] = self._fit_net(c, self._net(model, params, self.channel_epochs, len(rs)), rs)
        X = self._downstream_input(rs)
        weighted = self.downstream == "logistic" and self.fusion == "stack" and bool(self.channels)
        if self.downstream == "logistic":
            if self.training != "backprop":
                raise HsickitError(f"training={self.training!r} trains a network; the logistic downstream has none: pass downstream='mlp'")
            self.downstream_ = make_pipeline(StandardScaler(), OneVsRestClassifier(
                LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)))
            if weighted:
                self._weigh_channels(X, rs.features.shape[1])
        elif self.downstream == "mlp":
            self.downstream_ = self._net("mlp", {"hidden": (64, 64)}, self.epochs, len(rs), self.training)
        else:
            raise HsickitError(f"downstream={self.downstream!r}; use 'logistic' or 'mlp'")
        with warnings.catch_warnings():  # a label every record carries: constant, listed in train_records' model card
            warnings.filterwarnings("ignore", "Label .* is present in all training examples", UserWarning)
            if weighted:  # the scaler is already fitted and weighted: fit the regressions on its output
                self.downstream_[-1].fit(self.downstream_[0].transform(X), rs.Y)
            else:
                self.downstream_.fit(X, rs.Y)
        if self.fusion == "vote":
            self._choose_vote(validation)
        if tune:
            self.thresholds_ = choose_thresholds(validation.Y, self.predict_proba(validation)).tolist()
            self.threshold_records_ = list(validation.records)
        return self

    def _weigh_channels(self, X: np.ndarray, n_features: int) -> None:
        """Fit the logistic downstream's scaler on ``X`` and scale its channel-embedding columns (all but
        the last ``n_features``) by ``channel_weight`` after standardisation (saved in the scaler itself)."""
        if not np.isfinite(self.channel_weight) or self.channel_weight <= 0:
            raise HsickitError(f"channel_weight={self.channel_weight!r}; give a positive number (1: the embeddings as standardised)")
        scaler = self.downstream_[0].fit(X)
        scaler.scale_ = scaler.scale_.copy()
        scaler.scale_[: X.shape[1] - n_features] /= float(self.channel_weight)

    def _fit_net(self, channel: str, net, rs: RecordSet, validation: RecordSet | None = None):
        folder = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / channel
        if isinstance(net, RecordCNN):
            val = {} if validation is None else {"X_val": self._view(validation, channel), "Y_val": validation.Y}
            fit = lambda n: n.fit(self._view(rs, channel), rs.Y, **val)  # noqa: E731
        else:
            fit = lambda n: n.fit(self._view(rs, channel), rs.Y)  # noqa: E731
        return fit_or_load(net, folder, fit, self.verbose)

    def _fine_tune(self, rs: RecordSet) -> "RecordClassifier":
        if list(rs.labels) != self.labels_:
            raise HsickitError(f"fine-tuning records carry labels {rs.labels}, the model {self.labels_}; "
                               "load them with load_record_set(..., labels=model.labels_)")
        for c in self.channels:
            epochs = self.cnn_epochs if c == "cnn" else self.channel_epochs
            self.nets_[c] = self._fit_net(c, self._continue(self.nets_[c], epochs, len(rs)), rs)
        self.kept_labels_ = []
        if isinstance(self.downstream_, DeepClassifier):
            self._continue(self.downstream_, self.epochs, len(rs)).fit(self._downstream_input(rs), rs.Y)
            return self
        # Logistic: the standardisation stays; a label the new records do not vary on keeps its regression.
        Z, per_label = self.downstream_[:-1].transform(self._downstream_input(rs)), self.downstream_[-1]
        for j, label in enumerate(self.labels_):
            if 0 < rs.Y[:, j].sum() < len(rs):
                per_label.estimators_[j] = clone(per_label.estimator).fit(Z, rs.Y[:, j])
            else:
                self.kept_labels_.append(label)
        return self

    def predict_proba(self, rs: RecordSet) -> np.ndarray:
        """Per-label probabilities, shape (records, labels) in the order of ``labels_``."""
        if self.fusion == "vote":
            return np.mean([self.channel_proba(rs, c) for c in self.vote_], axis=0)
        return self.downstream_.predict_proba(self._downstream_input(rs))

    def thresholds(self) -> np.ndarray:
        """The threshold of each label (``threshold`` spread over ``labels_``, or those chosen with ``"tune"``)."""
        if isinstance(self.threshold, str):
            if not hasattr(self, "thresholds_"):
                raise HsickitError("threshold='tune' but the model has no chosen thresholds; fit it first")
            return np.asarray(self.thresholds_, dtype=float)
        t = np.asarray(self.threshold, dtype=float)
        if t.ndim and t.shape != (len(self.labels_),):
            raise HsickitError(f"threshold has {t.size} values for {len(self.labels_)} labels; pass one number or one per label")
        return np.broadcast_to(t, (len(self.labels_),))

    def predict(self, rs: RecordSet) -> np.ndarray:
        """The 0/1 indicator matrix (records, labels) in the order of ``labels_`` (scikit-learn's multi-label form)."""
        return (self.predict_proba(rs) >= self.thresholds()).astype(int)

    def _labels(self, rs: RecordSet, Y) -> np.ndarray:
        Y = rs.Y if Y is None else np.asarray(Y)
        if Y is None:
            raise HsickitError("these records were loaded without labels (labelled=False); load labelled records or pass Y")
        if Y.shape != (len(rs.records), len(self.labels_)):
            raise HsickitError(f"Y has shape {Y.shape}; give a 0/1 matrix (records, labels) with the model's labels "
                               f"{self.labels_} (load_record_set(..., labels=clf.labels_))")
        return Y.astype(int)

    def score(self, rs: RecordSet, Y=None) -> float:
        """Subset accuracy: the share of records with every label right (scikit-learn's meaning of a
        multi-label classifier's score); ``Y``: the records' own labels by default."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(self._labels(rs, Y), self.predict(rs)))

    def evaluate(self, rs: RecordSet, Y=None) -> dict:
        """What ``hsickit ecg evaluate`` writes to a record model's metrics.json: F1 and AUROC per label,
        macro and micro F1 and AUROC at the model's thresholds (:func:`~hsickit.apps.ecg.metrics.record_metrics`),
        and ``n_samples`` (records); ``Y``: the records' own labels by default."""
        return {**record_metrics(self._labels(rs, Y), self.predict_proba(rs), self.labels_, self.thresholds()),
                "n_samples": len(rs.records)}

    def channel_proba(self, rs: RecordSet, channel: str) -> np.ndarray:
        """A channel network's own multi-label probabilities (to score it alone); ``"hrv"``: the vote's HRV member."""
        if channel == "hrv" and self.fusion == "vote":
            return self.downstream_.predict_proba(self._downstream_input(rs))
        return self.nets_[channel].predict_proba(self._view(rs, channel))

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
                                                 "thresholds": getattr(self, "thresholds_", None),
                                                 "threshold_records": getattr(self, "threshold_records_", None),
                                                 "vote": getattr(self, "vote_", None), "vote_auroc": getattr(self, "vote_auroc_", None),
                                                 "scalers": {k: s.state() for k, s in self.scalers_.items()}})
        return path

    @classmethod
    def load(cls, path) -> "RecordClassifier":
        path = Path(path)
        meta = read_json(path / "records_model.json")
        # older models: an MLP downstream; saved before channel_weight, a weight of 1 (their scaler holds it)
        clf = cls(**{"downstream": "mlp", "channel_weight": 1.0, **meta["params"], "channels": tuple(meta["params"]["channels"])})
        clf.labels_ = meta["labels"]
        clf.scalers_ = {k: Standardizer.from_state(s) for k, s in meta["scalers"].items()}
        clf.nets_ = {c: (RecordCNN if c == "cnn" else DeepClassifier).load(path / "channels" / c) for c in clf.channels}
        if meta.get("vote") is not None:
            clf.vote_, clf.vote_auroc_ = meta["vote"], meta["vote_auroc"]
        if meta.get("thresholds") is not None:
            clf.thresholds_, clf.threshold_records_ = np.asarray(meta["thresholds"]), meta["threshold_records"]
        clf.downstream_ = (load_sklearn(path / "downstream" / "model.skops") if clf.downstream == "logistic"
                           else DeepClassifier.load(path / "downstream"))
        return clf


def _evaluate(run: RunFolder, clf: RecordClassifier, rs: RecordSet, split: str) -> dict:
    metrics = clf.evaluate(rs)
    run.write_metrics({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}, split=split)
    return metrics


@contextlib.contextmanager
def _resumable(out, overwrite: bool, clf: RecordClassifier, config: RecordConfig, records_dir, rs: RecordSet, val: list[str],
               settings: dict, verbose: int, inputs=()):
    """Train ``clf`` with its channel networks kept beside ``out`` (:func:`hsickit.core.runs.resumable_training`)."""
    settings = {"task": "records", "record_config": config.to_dict(), "records_dir": os.path.abspath(records_dir),
                "records": list(rs.records), "validation_records": list(val), "labels": list(rs.labels), **settings}
    if is_ptbxl(records_dir):
        files = [Path(records_dir) / "ptbxl_database.csv", Path(records_dir) / "scp_statements.csv"]
        files += sorted(p for path in record_source(records_dir, rs.records)[1] for p in Path(path).parent.glob(Path(path).name + ".*"))
    else:
        files = record_files(records_dir, rs.records)
    with resumable_training(clf, out, settings, [*inputs, *files], overwrite, verbose,
                            app="ecg", command="finetune" if "base_run" in settings else "train"):
        yield


def _write_run(out, overwrite: bool, clf: RecordClassifier, config: RecordConfig, rs: RecordSet, train: RecordSet, val: list[str],
               data: dict, title: str, labels_note: str = "") -> dict:
    """Save ``clf`` into run folder ``out`` with its config, history, validation metrics and model card
    (built whole in a temporary sibling, see :func:`hsickit.core.runs.staged_folder`)."""
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
    rows = [{"model": "fused", "macro_f1": metrics.get("macro_f1"), "micro_f1": metrics.get("micro_f1"),
             "macro_auroc": metrics.get("macro_auroc")}]
    if val:
        vs = rs.subset(val)
        for c in clf.channels:
            m = record_metrics(vs.Y, clf.channel_proba(vs, c), clf.labels_, clf.thresholds())
            rows.append({"model": f"channel:{c}", "macro_f1": m["macro_f1"], "micro_f1": m["micro_f1"], "macro_auroc": m["macro_auroc"]})
    feats = "HRV features and median-beat measurements (QRS axis, QRS duration)" if config.measurements else "HRV features"
    head = "MLP (" + clf.training + ")" if clf.downstream == "mlp" else "logistic regression per label"
    if clf.downstream == "logistic" and clf.fusion == "stack" and clf.channels:
        head += f" (channel embeddings weighted {clf.channel_weight:g} against the standardised record features)"
    if clf.fusion == "vote":
        head = ("the mean probability of " + ", ".join(clf.vote_) + " (members within " + f"{clf.vote_margin}" +
                " of the best macro AUROC on the held-out training records: " +
                ", ".join(f"{c} {v:.3f}" for c, v in clf.vote_auroc_.items()) + f"; hrv: logistic regression on the {feats})")
    run.write_model_card(title, {
        "Model": f"Channels {', '.join(clf.channels)} + {feats}, fused by {head}.",
        "Labels": ", ".join(clf.labels_) + labels_note,
        "Validation (records not trained on)": markdown_table(rows) if val else "no validation records",
        "Repairs": "; ".join(rs.repairs) or "none"})
    return metrics


def _ptbxl_split(records_dir, records, validation_records) -> tuple[list[str], list[str]]:
    """PTB-XL's official split: training folds 1-8 and validation fold 9 (fold 10, the test fold, is left out)."""
    folds = ptbxl_folds(records_dir)
    if records:
        names = ptbxl_records(records_dir, records)
    else:
        names = [r for r in ptbxl_records(records_dir) if folds[r] <= 9]
    if validation_records:
        val = ptbxl_records(records_dir, validation_records)
    else:
        val = [r for r in names if folds[r] == 9]
    return names, val


def train_records(records_dir, out, records=None, validation_records=None, *, labels: str | None = None, epochs: int = 40,
                  training: str = "backprop", downstream: str | None = None, channels: Sequence[str] | None = None,
                  threshold=None, min_count: int = 3, batch_size: int | None = None, random_state=0, overwrite: bool = False,
                  verbose: int = 1, device: str = "cpu") -> dict:
    """Train the record-level multi-label model; writes a run folder and returns validation metrics.

    A finished run already in ``out`` is replaced only with ``overwrite``.

    ``labels``: the PTB-XL task (:data:`hsickit.datasets.ptbxl.TASKS`; PTB-XL folders only,
    default ``"superdiagnostic"``). In a PTB-XL folder the default split is the official one:
    training folds 1-8, validation fold 9 (fold 10 is never used unless listed in ``records``),
    and records are read at their release's rate (100 Hz from ``records100/``).
    ``downstream`` (None: "logistic", or "mlp" when ``training`` is not "backprop") goes to
    :class:`RecordClassifier` (as does ``batch_size``, None: its default). ``channels`` None: the four views, plus the ``cnn`` channel when
    there are at least :data:`CNN_MIN_RECORDS` training records. ``threshold`` None: 0.5, or
    ``"tune"`` (chosen on an inner split of the training records) with at least that many, and
    then ``fusion="vote"`` (see :class:`RecordClassifier`). ``device``: where the networks train.
    """
    check_output_folder(out, overwrite)
    ptbxl = is_ptbxl(records_dir)
    if labels is not None and not ptbxl:
        raise HsickitError(f"--label-task {labels} names a PTB-XL task, but {records_dir} has no ptbxl_database.csv; "
                           "leave --label-task out for LUDB and CinC 2021 folders")
    if ptbxl:
        task = labels or "superdiagnostic"
        if task not in PTBXL_TASKS:
            raise HsickitError(f"--label-task {task!r}: choose a PTB-XL task from {', '.join(PTBXL_TASKS)}")
        names, val = _ptbxl_split(records_dir, records, validation_records)
        config = RecordConfig(sampling_rate=float(wfdb.rdheader(record_source(records_dir, names[:1])[1][0]).fs))
    else:
        task, config = None, RecordConfig()
        names = list_records(records_dir, records)
        val = list_records(records_dir, validation_records) if validation_records else names[4::5]
    rs = load_record_set(records_dir, names + [v for v in val if v not in names], config, min_count=min_count, task=task,
                         verbose=verbose)
    val = [v for v in val if v in set(rs.records)]  # PTB-XL: records without a label for the task are left out
    train = rs.subset([r for r in rs.records if r not in val])
    large = len(train) >= CNN_MIN_RECORDS
    channels = tuple(channels) if channels is not None else ("rhythm", "beat", "wavelet", "rr") + (("cnn",) if large else ())
    threshold = threshold if threshold is not None else ("tune" if large else 0.5)
    downstream = downstream or ("logistic" if training == "backprop" else "mlp")
    fusion = "vote" if large and threshold == "tune" and downstream == "logistic" else "stack"
    clf = RecordClassifier(channels=channels, downstream=downstream, training=training, epochs=epochs, threshold=threshold,
                           fusion=fusion, random_state=random_state, verbose=0, device=device,
                           **({} if batch_size is None else {"batch_size": batch_size}))
    with _resumable(out, overwrite, clf, config, records_dir, rs, val, {"min_count": min_count, "labels_task": task}, verbose):
        constant = [lab for lab, n in zip(clf.fit(train).labels_, train.Y.sum(axis=0)) if n == len(train)]
        note = "".join(f"\n\n{head}: {', '.join(items)}" for head, items in
                       ((f"Left out (< {min_count} positive records)", rs.dropped_labels),
                        ("Records without a label of this task (left out)", rs.unlabelled),
                        ("Carried by every training record (predicted for every record)", constant)) if items)
        if threshold == "tune":
            note += (f"\n\nThresholds chosen on {len(clf.threshold_records_)} of the training records held out of training "
                     f"(not the validation records): " + ", ".join(f"{lab} {t:.3f}" for lab, t in zip(clf.labels_, clf.thresholds())))
        return _write_run(out, overwrite, clf, config, rs, train, val, {"dropped_labels": rs.dropped_labels, "labels_task": task,
                                                                       "unlabelled_records": rs.unlabelled},
                          "hsickit ECG record model (multi-label)", note)


def finetune_records(run, records_dir, out, records=None, validation_records=None, *, epochs: int = 10, frozen_blocks: int = 1,
                     lr: float = 3e-4, overwrite: bool = False, verbose: int = 1, device: str = "cpu") -> dict:
    """Continue training a run's record model on new labelled records (e.g. a hospital's); writes run folder ``out``.

    The labels stay the model's: the new records' other labels are ignored (listed in the
    model card and config). A model label none (or all) of the training records carries keeps
    the base model's logistic regression (``labels_kept_from_base_model``); an MLP downstream
    learns it as absent (present). ``device``: where the networks train (whatever device the
    base model trained on).
    """
    check_output_folder(out, overwrite)
    clf, config = load_record_run(run)
    task = read_json(Path(run) / "config.json").get("labels_task") if is_ptbxl(records_dir) else None
    names = record_source(records_dir, records)[0]
    val = record_source(records_dir, validation_records)[0] if validation_records else []
    rs = load_record_set(records_dir, names + [v for v in val if v not in names], config, labels=clf.labels_, task=task,
                         verbose=verbose)
    val = [v for v in val if v in set(rs.records)]
    ignored = rs.dropped_labels
    train = rs.subset([r for r in rs.records if r not in val])
    clf.set_params(warm_start=True, epochs=epochs, channel_epochs=epochs, cnn_epochs=epochs, frozen_blocks=frozen_blocks, lr=lr,
                   device=device)
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
    from hsickit.core.runs import check_run_app

    check_run_app(run, "ecg", "`hsickit ecg`")
    cfg = read_json(Path(run) / "config.json")
    if cfg.get("task") != "records":
        raise HsickitError(f"{run} holds a {cfg.get('task', 'beats')!r} model; this command needs a record model (--task records)")
    return RecordClassifier.load(Path(run) / "model"), RecordConfig.from_dict(cfg["record_config"])


def evaluate_records(run, records_dir, records=None, *, out=None, verbose: int = 1) -> dict:
    """Score a record model on labelled records; writes ``metrics.json`` into ``out`` (default
    ``RUN/eval-<records folder>``, beside the run: its own validation metrics are kept)."""
    from hsickit.core.io import evaluation_folder, open_output_folder

    clf, config = load_record_run(run)
    task = read_json(Path(run) / "config.json").get("labels_task") if is_ptbxl(records_dir) else None
    rs = load_record_set(records_dir, records, config, labels=clf.labels_, task=task, verbose=verbose)
    folder = open_output_folder(out if out is not None else evaluation_folder(run, Path(records_dir).name), "ecg", "evaluate")
    folder.write_config({"command": "evaluate", "run": os.path.abspath(run), "records_dir": os.path.abspath(records_dir),
                         "records": ",".join(rs.records), "labels_task": task})
    return _evaluate(folder, clf, rs, "evaluation")


def plot_record(path, title: str, out) -> Path:
    """The record's leads one above the other (mV against seconds) under ``title``; a PNG at ``out``."""
    from hsickit.core.plots import plt, save_figure

    da = read_record(path, flat_policy="keep", nan_policy="interpolate")
    x, fs = da.values, float(da.attrs["fs"])
    t = np.arange(x.shape[1]) / fs
    fig, axes = plt.subplots(len(x), 1, figsize=(12, 0.9 * len(x) + 0.6), sharex=True, squeeze=False)
    for ax, lead, sig in zip(axes[:, 0], da.lead.values, x):
        ax.plot(t, sig, lw=0.7, color="k")
        ax.set_ylabel(str(lead), rotation=0, ha="right", va="center")
        ax.grid(True, lw=0.3, color="#e8a0a0")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=9, ha="left", x=0.05)
    return save_figure(fig, out)


def predict_records(run, record_or_dir, out, *, plots: bool = True, overwrite: bool = False, verbose: int = 1) -> Path:
    """Diagnose a record (path without extension) or every record in a folder (PTB-XL folders too); no labels needed.

    Writes ``out/record_predictions.csv``, one row per record: ``record``, ``p_<label>`` per
    model label, and ``predicted``, the labels whose probability reaches the model's
    threshold, joined by ``;``; with ``plots``, ``out/plots/<record>.png``: the record's
    leads with the predicted labels and their probabilities above them. Returns the CSV's path. An existing
    CSV is replaced only with ``overwrite``.
    """
    from hsickit.core.runs import check_output_file

    check_output_file(Path(out) / "record_predictions.csv", overwrite=overwrite, option="--out")
    clf, config = load_record_run(run)
    if Path(record_or_dir).is_dir() and is_ptbxl(record_or_dir):
        directory, names = Path(record_or_dir), None
    else:
        directory, names = records_at(record_or_dir)
    rs = load_record_set(directory, names, config, labels=clf.labels_, labelled=False, verbose=verbose)
    proba = clf.predict_proba(rs)
    pred = proba >= clf.thresholds()  # clf.predict, without computing the probabilities twice
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["record"] + [f"p_{lab}" for lab in clf.labels_] + ["predicted"])
    for name, p, y in zip(rs.records, proba, pred):
        w.writerow([name] + [f"{v:.4f}" for v in p] + [";".join(lab for lab, on in zip(clf.labels_, y) if on)])
    Path(out).mkdir(parents=True, exist_ok=True)
    if plots:
        paths = dict(zip(*record_source(directory, rs.records)))
        for name, p, y in zip(tqdm(rs.records, desc="plots", disable=not verbose), proba, pred):
            found = ", ".join(f"{lab} ({v:.2f})" for lab, v, on in zip(clf.labels_, p, y) if on) or "none"
            top = ", ".join(f"{clf.labels_[j]} {p[j]:.2f}" for j in np.argsort(-p)[:5])
            plot_record(paths[name], f"record {name} - predicted: {found}\nhighest probabilities: {top}",
                        Path(out) / "plots" / f"{name.replace('/', '_')}.png")
    return atomic_write(Path(out) / "record_predictions.csv", buf.getvalue())
