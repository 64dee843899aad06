"""Channel networks: each sees the ECG at one resolution and learns an embedding.

Four views of every beat (see :class:`~hsickit.apps.ecg.beats.BeatSet`):

======== ================================================ =======================
name     input                                            network (core registry)
======== ================================================ =======================
beat     the beat window at full rate (360 Hz, 0.7 s)     ``conv1d``
rhythm   a 4-s multi-beat context at 60 Hz                ``conv1d``
wavelet  DWT sub-bands A4, D4, D3, D2 (db4) of the beat   ``mlp``

(signal views also carry their difference from the record's median view)
rr       the 16 RR intervals around the beat / median RR  ``mlp``
======== ================================================ =======================

Each :class:`ChannelNetwork` is a :class:`hsickit.core.estimators.DeepClassifier` trained
on its own (``training="backprop"`` or ``"hsic"``) on the AAMI labels; ``transform`` gives
its last block's output (the embedding) and ``predict`` its own classification, so each
channel can be scored alone.

Example
-------
>>> from hsickit.apps.ecg.synthetic import write_synthetic_records
>>> from hsickit.apps.ecg.beats import load_beats
>>> import tempfile
>>> bs = load_beats(write_synthetic_records(tempfile.mkdtemp(), 2, 30, random_state=1), verbose=0)
>>> net = ChannelNetwork("rr", epochs=2, random_state=0).fit(bs)
>>> net.transform(bs).shape == (len(bs), 32)
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from hsickit.apps.ecg.beats import BeatSet
from hsickit.apps.ecg.features import wavelet_coefficients
from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.io import read_json, saved_params, write_json

__all__ = ["CHANNELS", "ChannelSpec", "channel_input", "minus_record_median", "ChannelNetwork", "class_weights", "fit_batch_size"]


@dataclass(frozen=True)
class ChannelSpec:
    """Which view of a BeatSet a channel sees and which core model learns from it."""

    view: str
    model: str
    model_params: dict = field(default_factory=dict)
    description: str = ""


CHANNELS: dict[str, ChannelSpec] = {
    "beat": ChannelSpec("beat", "conv1d", {"channels": (8, 16, 32), "kernel_size": 7}, "beat window at full rate"),
    "rhythm": ChannelSpec("rhythm", "conv1d", {"channels": (8, 16, 32), "kernel_size": 5}, "4-s rhythm context at 60 Hz"),
    "wavelet": ChannelSpec("wavelet", "mlp", {"hidden": (128, 64)}, "db4 wavelet sub-bands A4, D4, D3, D2"),
    "rr": ChannelSpec("rr", "mlp", {"hidden": (64, 32)}, "RR-interval sequence over the record median"),
}


def minus_record_median(x: np.ndarray, records: np.ndarray) -> np.ndarray:
    """``x`` minus the median over its record's beats (the patient's typical beat), beat by beat."""
    out = np.empty_like(x)
    for r in np.unique(records):
        m = records == r
        out[m] = x[m] - np.median(x[m], axis=0)
    return out


def _with_delta(x: np.ndarray, beats: BeatSet) -> np.ndarray:
    """Stack a view with its difference from the record's median view along the lead axis."""
    return np.concatenate([x, minus_record_median(x, beats.record)], axis=1)


def channel_input(name: str, beats: BeatSet) -> np.ndarray:
    """The array channel ``name`` sees: (n, 2 * leads, time) for conv1d views, (n, d) otherwise.

    The signal views carry each lead twice: as recorded, and minus the record's median view
    (the patient's own typical beat), which is what lets morphology generalise across patients.
    """
    if name not in CHANNELS:
        raise HsickitError(f"unknown channel {name!r}; choose from {', '.join(CHANNELS)}")
    view = CHANNELS[name].view
    if view == "beat":
        return _with_delta(beats.beat, beats)
    if view == "rhythm":
        return _with_delta(beats.rhythm, beats)
    if view == "wavelet":
        coeffs = wavelet_coefficients(_with_delta(beats.beat, beats), "db4", level=4, bands=[0, 1, 2, 3])  # (n, 2 leads, d)
        return coeffs.reshape(len(beats), -1)
    if view == "rr":
        return np.log(np.clip(beats.rr, 0.05, 20.0))
    raise HsickitError(f"channel {name!r} has an unknown view {view!r}")


def fit_batch_size(batch_size: int, n: int) -> int:
    """``batch_size``, made no larger than the training part of ``n`` samples (small fine-tuning sets)."""
    from hsickit.core.checks import check_batch_size

    return int(max(2, min(check_batch_size(batch_size), int(0.85 * n))))


def class_weights(y: np.ndarray, mode: str | dict | None) -> dict | None:
    """Class weights for imbalance: None, ``"balanced"`` (n / (k n_c)), ``"sqrt"`` (its square root) or a dict."""
    if mode is None or isinstance(mode, dict):
        return mode
    classes, counts = np.unique(np.asarray(y, dtype=str), return_counts=True)
    w = len(y) / (len(classes) * counts)
    if mode == "sqrt":
        w = np.sqrt(w)
    elif mode != "balanced":
        raise HsickitError(f"class_weight={mode!r}; use None, 'balanced', 'sqrt' or a dict class -> weight")
    return {str(c): float(v) for c, v in zip(classes, w)}


class _Standardizer:
    """Per-feature (flat inputs) or per-lead (signals) standardisation fitted on training data."""

    def fit(self, X: np.ndarray) -> "_Standardizer":
        axes = (0, 2) if X.ndim == 3 else (0,)
        self.mean = X.mean(axis=axes, keepdims=True).astype(np.float32)[0]
        self.scale = (X.std(axis=axes, keepdims=True) + 1e-6).astype(np.float32)[0]
        return self

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> "_Standardizer":
        s = cls()
        s.mean, s.scale = np.asarray(state["mean"], np.float32), np.asarray(state["scale"], np.float32)
        return s


class ChannelNetwork(BaseEstimator):
    """One channel network, trained alone on AAMI labels; an embedding via ``transform``.

    Parameters
    ----------
    channel : one of :data:`CHANNELS`.
    training : "backprop" or "hsic" (HSIC bottleneck; the format layer is then trained for
        ``format_epochs``).
    model_params : overrides of the channel's default model parameters.
    class_weight : None, "balanced", "sqrt" or a dict (see :func:`class_weights`).
    checkpoint_dir : folder for the network's per-epoch checkpoint while it trains (an
        interrupted ``fit`` resumes from it; see :class:`~hsickit.core.estimators.DeepClassifier`).
    """

    def __init__(self, channel="beat", training="backprop", epochs=10, batch_size=256, lr=1e-3, model_params=None,
                 class_weight="sqrt", patience=3, beta=100.0, sigma=5.0, format_epochs=3, frozen_blocks=0, warm_start=False,
                 checkpoint_dir=None, random_state=None, verbose="auto"):
        self.channel = channel
        self.training = training
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.model_params = model_params
        self.class_weight = class_weight
        self.patience = patience
        self.beta = beta
        self.sigma = sigma
        self.format_epochs = format_epochs
        self.frozen_blocks = frozen_blocks
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.verbose = verbose

    def _estimator(self, y) -> DeepClassifier:
        spec = CHANNELS[self.channel]
        return DeepClassifier(
            model=spec.model, model_params={**spec.model_params, **(self.model_params or {})}, training=self.training,
            epochs=self.epochs, batch_size=fit_batch_size(self.batch_size, len(y)), lr=self.lr, class_weight=class_weights(y, self.class_weight),
            patience=self.patience, beta=self.beta, sigma=self.sigma, format_epochs=self.format_epochs if self.training == "hsic" else 0,
            frozen_blocks=self.frozen_blocks, checkpoint_dir=self.checkpoint_dir, random_state=self.random_state, verbose=self.verbose)

    def fit(self, beats: BeatSet, validation: BeatSet | None = None) -> "ChannelNetwork":
        """Train on the labelled beats; ``validation`` (other records) drives early stopping."""
        if not beats.labelled:
            raise HsickitError("training beats have no labels (records without annotation files); pass annotated records")
        X = channel_input(self.channel, beats)
        y = beats.y.astype(str)
        warm = self.warm_start and hasattr(self, "estimator_")
        if not warm:
            self.standardizer_ = _Standardizer().fit(X)
            self.estimator_ = self._estimator(y)
        else:
            self.estimator_.set_params(warm_start=True, frozen_blocks=self.frozen_blocks, epochs=self.epochs, lr=self.lr,
                                       batch_size=fit_batch_size(self.batch_size, len(y)), checkpoint_dir=self.checkpoint_dir)
        Xv = yv = None
        if validation is not None and len(validation):
            Xv, yv = self.standardizer_(channel_input(self.channel, validation)), validation.y.astype(str)
            known = np.isin(yv, self.estimator_.classes_) if warm else np.isin(yv, np.unique(y))
            Xv, yv = Xv[known], yv[known]
        self.estimator_.fit(self.standardizer_(X), y, X_val=Xv, y_val=yv)
        self.classes_ = self.estimator_.classes_
        return self

    def transform(self, beats: BeatSet) -> np.ndarray:
        """The channel's embedding of every beat (its last block's output)."""
        return self.estimator_.transform(self.standardizer_(channel_input(self.channel, beats)))

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        return self.estimator_.predict_proba(self.standardizer_(channel_input(self.channel, beats)))

    def predict(self, beats: BeatSet) -> np.ndarray:
        return self.classes_[self.predict_proba(beats).argmax(1)]

    def save(self, path) -> Path:
        path = Path(path)
        self.estimator_.save(path)
        write_json(path / "channel.json", {"params": saved_params(self), "standardizer": self.standardizer_.state()})
        return path

    @classmethod
    def load(cls, path) -> "ChannelNetwork":
        path = Path(path)
        meta = read_json(path / "channel.json")
        net = cls(**meta["params"])
        net.estimator_ = DeepClassifier.load(path)
        net.standardizer_ = _Standardizer.from_state(meta["standardizer"])
        net.classes_ = net.estimator_.classes_
        return net
