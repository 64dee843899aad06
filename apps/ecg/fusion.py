"""The multi-resolution representation and its downstream classifier (Wang et al. 2020, for beats).

:class:`MultiResolutionClassifier` trains each channel network on its own, concatenates
their embeddings with the (standardised) hand-crafted features into the multi-resolution
representation, and trains a downstream classifier on it: a core residual MLP or MLP
(:class:`~hsickit.core.estimators.DeepClassifier`, backprop or HSIC bottleneck) or any
scikit-learn classifier. Class weighting counters the N-beat majority.

Example
-------
>>> from hsickit.apps.ecg.synthetic import write_synthetic_records
>>> from hsickit.apps.ecg.beats import load_beats
>>> import tempfile
>>> bs = load_beats(write_synthetic_records(tempfile.mkdtemp(), 2, 30, random_state=1), verbose=0)
>>> clf = MultiResolutionClassifier(channels=("rr", "wavelet"), channel_epochs=2, epochs=2, random_state=0)
>>> clf.fit(bs).predict(bs).shape == (len(bs),)
True
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.utils.validation import has_fit_parameter

from hsickit.apps.ecg.beats import BeatSet
from hsickit.apps.ecg.channels import CHANNELS, ChannelNetwork, Standardizer, class_weights, fit_batch_size, record_weights
from hsickit.apps.ecg.features import VENTRICULAR_LABELS, atrial_fibrillation, rr_disorder
from hsickit.apps.ecg.two_stage import VentricularFirst, continue_boosting
from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.files import read_json, write_json
from hsickit.core.params import GroupedParams, signature
from hsickit.core.runs import fit_or_load
from hsickit.core.serialization import load_sklearn, save_sklearn, saved_params
from hsickit.core.training import param_defaults

__all__ = ["MultiResolutionClassifier", "DOWNSTREAM_MODELS", "SKLEARN_DOWNSTREAM", "check_s_odds", "holdout_records", "tune_class_bias"]

#: Core models the downstream classifier can be (name -> model_params).
DOWNSTREAM_MODELS = {"residual_mlp": {"hidden": (128, 128, 128)}, "mlp": {"hidden": (128, 64)}}

#: scikit-learn downstream classifiers by name (saved with skops, never pickled): a factory of
#: (random seed, columns the V stage reads, columns only the V stage reads) of the representation.
SKLEARN_DOWNSTREAM = {
    "ventricular_first": lambda seed, first, ventricular: VentricularFirst(first_columns=first, ventricular_columns=ventricular,
                                                                           random_state=seed),
    "gradient_boosting": lambda seed, first, ventricular: HistGradientBoostingClassifier(max_iter=200, random_state=seed),
}
_TRUSTED = [f"{VentricularFirst.__module__}.{VentricularFirst.__qualname__}"]


def check_s_odds(value) -> float:
    """``value`` as an S odds (a positive, finite number), else an error that says what it means."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < np.inf:
        raise HsickitError(f"s_odds={value!r}; give a positive number (1: the most probable class; "
                           "above 1 more beats are called S, with more false S)")
    return float(value)


def holdout_records(beats: BeatSet, fraction: float, random_state=None, tries: int = 50) -> list[str]:
    """Records to hold out for training the downstream classifier (empty with fewer than 3 records).

    Among ``tries`` random choices of ``ceil(fraction * n_records)`` records, the one whose
    two sides share the most classes (then: the most balanced rare-class split) wins.
    """
    records = np.array(sorted(set(beats.record)))
    if len(records) < 3:
        return []
    k = int(min(len(records) - 1, max(1, np.ceil(fraction * len(records)))))
    rng = np.random.default_rng(random_state)
    counts = {r: {c: int(((beats.record == r) & (beats.y == c)).sum()) for c in set(beats.y)} for r in records}
    best, best_score = None, None
    for _ in range(tries):
        held = set(rng.choice(records, size=k, replace=False).tolist())
        score = []
        for c in sorted(set(beats.y)):
            a = sum(counts[r][c] for r in held)
            b = sum(counts[r][c] for r in records if r not in held)
            score.append(min(a, b) / max(a + b, 1))
        key = (sum(s > 0 for s in score), sum(score))
        if best_score is None or key > best_score:
            best, best_score = held, key
    return sorted(best)


def tune_class_bias(proba: np.ndarray, y: np.ndarray, classes: np.ndarray, min_support: int = 20,
                    grid: np.ndarray = np.arange(-4.0, 4.01, 0.25), passes: int = 3) -> np.ndarray:
    """Per-class log-probability offsets that maximise macro F1 on validation beats.

    Coordinate ascent over the classes (the most frequent one stays at 0); the macro F1
    averages the classes with at least ``min_support`` validation beats, so a class with a
    handful of beats does not steer the others. Returns zeros when no class qualifies.

    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]] * 10)  # S beats score highest, below 0.5
    >>> y = np.array(["N", "N", "S"] * 10)
    >>> bool(tune_class_bias(p, y, np.array(["N", "S"]), min_support=5)[1] > 0)
    True
    """
    from sklearn.metrics import f1_score

    y = np.asarray(y, str)
    classes = np.asarray(classes, str)
    scored = [c for c in classes if (y == c).sum() >= min_support]
    bias = np.zeros(len(classes))
    if len(scored) < 2:
        return bias
    logp = np.log(np.clip(proba, 1e-12, 1.0))
    ref = int(np.argmax([(y == c).sum() for c in classes]))

    def score(b):
        return f1_score(y, classes[(logp + b).argmax(1)], labels=scored, average="macro", zero_division=0)

    best = score(bias)
    for _ in range(passes):
        for j in range(len(classes)):
            if j == ref:
                continue
            for v in grid:
                trial = bias.copy()
                trial[j] = v
                s = score(trial)
                if s > best + 1e-9:
                    best, bias = s, trial
    return bias


def _af_columns(feature_labels) -> list[int]:
    labels = list(feature_labels)
    cols = [labels.index(n) for n in ("p_consistency", "lead2_p_consistency") if n in labels]
    if not cols:
        raise HsickitError("af_rule needs the P-wave consistency among the beat features (feature_set='robust', the "
                           f"default; these beats have {len(labels)} others); read them with BeatConfig(feature_set='robust') "
                           "or set af_rule=False")
    return cols


def af_evidence(beats: BeatSet) -> tuple[np.ndarray, np.ndarray]:
    """Each beat's :func:`~hsickit.apps.ecg.features.rr_disorder` (over its record, in R-peak order)
    and its P-wave consistency (the better of the leads), in the beats' order."""
    cols = _af_columns(beats.feature_labels)
    disorder = np.zeros(len(beats), np.float32)
    records = beats.record.astype(str)
    for r in dict.fromkeys(records):
        k = np.flatnonzero(records == r)
        k = k[np.argsort(beats.sample[k], kind="stable")]
        disorder[k] = rr_disorder(beats.sample[k])
    return disorder, beats.features[:, cols].max(axis=1)


def in_atrial_fibrillation(beats: BeatSet) -> np.ndarray:
    """:func:`~hsickit.apps.ecg.features.atrial_fibrillation` of every beat."""
    return atrial_fibrillation(*af_evidence(beats))


class MultiResolutionClassifier(GroupedParams, BaseEstimator):
    """Channel networks + hand-crafted features, fused, then a downstream classifier.

    Parameters
    ----------
    channels : names from :data:`~hsickit.apps.ecg.channels.CHANNELS` (empty: features only).
        Default ``("rr",)``: the only channel the default two-stage downstream reads (see
        ``ventricular_channels``); ``("beat", "rhythm", "wavelet", "rr")`` is the full
        multi-resolution set, for the one-stage downstreams or a V stage that reads them all.
        Each channel's seed follows its name, so a channel trains alike whatever others are fused.
    use_features : append the hand-crafted features to the embeddings.
    downstream : "ventricular_first" (default: gradient boosting in two stages,
        :class:`~hsickit.apps.ecg.two_stage.VentricularFirst` — V against the rest on the
        hand-crafted features and the ``ventricular_channels``' outputs, then N/S/F on the
        hand-crafted features without the ventricular morphology), "gradient_boosting"
        (one scikit-learn HistGradientBoostingClassifier), both saved with skops; "residual_mlp",
        "mlp" (core DeepClassifier); or any scikit-learn classifier object (not saveable:
        hsickit never pickles).
    ventricular_channels : the channels whose outputs the V stage of the two-stage downstream
        reads (names not in ``channels`` are ignored); the other downstreams read every channel.
        Leaving one record of MIT-BIH DS1 out at a time (22 folds, pooled), V Se / +P was
        0.901 / 0.903 with the V stage reading the rr channel, 0.888 / 0.878 reading all four
        channels, 0.904 / 0.901 for the features alone (4 patient-wise folds: 0.895 / 0.922,
        0.903 / 0.923, 0.892 / 0.922; benchmarks/ecg_mitdb.py).
    training : "backprop" or "hsic" for a core downstream model.
    hsic_params : HSIC-bottleneck settings (HSIC training only) of the channels and the
        downstream network, the keys of :mod:`hsickit.core.estimators`. ``sigma`` defaults to 5
        because the median heuristic (``None``) failed on the fused representation (core's
        Cholesky reported a non-PSD kernel); ``format_epochs`` to 3.
    channel_training : "backprop" or "hsic" for the channel networks.
    class_weight : None, "balanced", "sqrt" or a dict, for channels and downstream.
    record_balance : how far a gradient-boosting downstream weighs every training record alike
        within a class (:func:`~hsickit.apps.ecg.channels.record_weights`: a beat weighs
        ``1 / n(record, class) ** record_balance``); 0 weighs every beat alike. SVDB holds records
        with 1,800 and 650 S beats whose rhythms other patients do not share; weighed per beat,
        they taught the model their own pattern. Default 1, chosen on the cross-database protocols
        (benchmarks/ecg_cross_database.py, the same splits with 1 and 0): S Se / +P trained on SVDB,
        scored on MIT-BIH DS1 0.825 / 0.596 against 0.725 / 0.575 (record 209: 118 S missed, then
        14); DS1 -> SVDB 0.626 / 0.660 against 0.626 / 0.625; 5 patient-wise folds 0.661 / 0.576
        against 0.666 / 0.574, where V +P is lower, 0.825 against 0.841. Models saved before it
        existed load with 0.
    stacking : "crossfit" (default) or "holdout". "holdout": the channels are trained on part of the training records
        and the downstream classifier on the embeddings of the other ``holdout_fraction`` of
        records, which the channels never saw — so it learns how far each channel can be
        trusted on a new patient. "crossfit": the training records are split into
        ``crossfit_folds`` groups by record; each group's beats are scored by channels trained
        on the other groups, so the downstream classifier learns from *every* training record
        as seen by channels that never saw it; its inputs are then each channel's class
        log-probabilities (comparable across the separately trained channels, unlike their
        embeddings), and the final channels are trained on all records. Pooled over 4
        patient-wise folds of MIT-BIH DS1, crossfit + gradient boosting detected S beats with
        Se / +P 0.60 / 0.41 where holdout + residual MLP reached 0.08 / 0.05. "insample": channels
        and downstream see the same beats (used when there are fewer than 3 records, and when
        fine-tuning).
    crossfit_folds : number of record groups for ``stacking="crossfit"``.
    classes : the beat classes to learn (default the AAMI N, S, V, F; None: every class in the
        training beats). Beats of other classes — Q (unclassifiable), which a few MIT-BIH records
        carry by the handful — are left out of training and validation, with a warning; their count
        per class is ``left_out_``. Trained on, two Q beats made a fifth class that balanced class
        weighting inflated (MIT-BIH 201, 208, 223 -> 119, 118: V Se 0.15 with them, 0.83 without).
    tune_bias : with ``validation`` beats, tune per-class log-probability offsets on them to
        maximise macro F1 (:func:`tune_class_bias`). Off by default: on MIT-BIH DS1 a few
        validation records did not represent new patients well enough (benchmarks/ecg_mitdb.py).
    af_rule : beats in atrial fibrillation or flutter (an irregular rhythm without a repeating P
        wave, :func:`~hsickit.apps.ecg.features.atrial_fibrillation`) cannot be S: their S
        probability goes to N (MIT-BIH labels them N). Needs the P-wave consistency of the
        ``"robust"`` features. Trained on SVDB (no AF annotated) and scored on MIT-BIH DS1, the
        default model's S +P was 0.300 without the rule and 0.575 with it, at S Se 0.731 and
        0.725 (record 203: 799 false S, then 4; benchmarks/ecg_cross_database.py, where the
        rule's thresholds come from DS1's rhythm annotations). Models saved before the rule
        existed load with it off.
    s_odds : the S decision's operating point: a beat's S probability is multiplied by it before
        the most probable class is taken (:meth:`decide`; ``predict_proba`` is unchanged). Above 1
        more beats are called S, with more false S; 1 takes the most probable class. Default 2: the
        largest of 1, 1.5, 2, 3, 4, 6 and 10 whose pooled S +P stayed at 0.50 or more in all three
        cross-database protocols (benchmarks/ecg_cross_database.py --s-odds, the same fitted models):
        S Se / +P trained on DS1, scored on SVDB 0.733 / 0.593 against 0.680 / 0.637 at 1; trained
        on SVDB, scored on DS1 0.831 / 0.519 against 0.767 / 0.650; 5 patient-wise folds over both
        0.704 / 0.528 against 0.666 / 0.570 (at 3: +P 0.563, 0.428, 0.498). Macro F1 moves by -0.017
        to -0.001 and V +P rises (fewer false V). Models saved before it existed load with 1.
    checkpoint_dir : folder where every channel network is saved once trained (and checkpointed
        every epoch while it trains); a ``fit`` interrupted and started again with the same
        settings and beats loads the networks already trained and resumes the one in progress.
        Not saved with the model.
    device : torch device ("cpu", "cuda", "cuda:1", "auto") where every network (channels, and
        a residual_mlp or mlp downstream) trains, fine-tuning included; prediction runs where the
        weights are (a loaded model: the CPU). Models saved before it existed load with "cpu".
    """

    param_groups = {"hsic_params": {**param_defaults("hsic_params"), "sigma": 5.0, "format_epochs": 3}}
    renamed = {"beta": ("hsic_params", "beta"), "sigma": ("hsic_params", "sigma")}

    @signature()
    def __init__(self, channels: Sequence[str] = ("rr",), use_features=True,
                 downstream="ventricular_first", ventricular_channels: Sequence[str] = ("rr",), training="backprop",
                 channel_training="backprop", epochs=15,
                 channel_epochs=6, batch_size=256, lr=1e-3, class_weight="balanced", record_balance=1.0, hsic_params=None, patience=4,
                 stacking="crossfit", holdout_fraction=0.3, crossfit_folds=3, classes: Sequence[str] | None = ("N", "S", "V", "F"),
                 tune_bias=False, af_rule=True, s_odds=2.0, frozen_blocks=0, warm_start=False, checkpoint_dir=None, random_state=None,
                 verbose="auto", device="cpu", **renamed_params):
        self.channels = channels
        self.af_rule = af_rule
        self.s_odds = s_odds
        self.classes = classes
        self.hsic_params = hsic_params
        self.tune_bias = tune_bias
        self.stacking = stacking
        self.holdout_fraction = holdout_fraction
        self.crossfit_folds = crossfit_folds
        self.use_features = use_features
        self.downstream = downstream
        self.ventricular_channels = ventricular_channels
        self.training = training
        self.channel_training = channel_training
        self.epochs = epochs
        self.channel_epochs = channel_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.class_weight = class_weight
        self.record_balance = record_balance
        self.patience = patience
        self.frozen_blocks = frozen_blocks
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.take_renamed(renamed_params)  # MultiResolutionClassifier(beta=50): the old spelling, one release

    # ------------------------------------------------------------------------------------
    def _check(self) -> None:
        unknown = [c for c in (*self.channels, *self.ventricular_channels) if c not in CHANNELS]
        if unknown:
            raise HsickitError(f"unknown channel(s) {unknown}; choose from {', '.join(CHANNELS)}")
        if not self.channels and not self.use_features:
            raise HsickitError("nothing to classify from: give at least one channel or use_features=True")
        if self.classes is not None and (isinstance(self.classes, str) or not len(self.classes)):
            raise HsickitError(f"classes={self.classes!r}; give a sequence of class labels such as ('N', 'S', 'V', 'F'), or None for all")
        if isinstance(self.record_balance, bool) or not isinstance(self.record_balance, (int, float)) or not 0 <= self.record_balance <= 1:
            raise HsickitError(f"record_balance={self.record_balance!r}; give a number from 0 (every beat alike) "
                               "to 1 (every record alike within a class, the default)")
        check_s_odds(self.s_odds)

    def _known(self, beats: BeatSet, what: str) -> BeatSet:
        """The beats of ``classes`` (all when None); the others are counted and warned about."""
        if self.classes is None:
            return beats
        keep = np.isin(beats.y.astype(str), [str(c) for c in self.classes])
        if keep.all():
            return beats
        labels, counts = np.unique(beats.y[~keep].astype(str), return_counts=True)
        left_out = dict(zip(labels.tolist(), counts.tolist()))
        if what == "training":
            if not keep.any():
                raise HsickitError(f"the training beats have none of the classes {tuple(self.classes)} (only {sorted(left_out)}); "
                                   "pass records with such beats, or set classes")
            self.left_out_ = left_out
        warnings.warn(f"{what} beats: left out {int((~keep).sum())} beat(s) of classes outside classes={tuple(self.classes)}: "
                      f"{left_out}", stacklevel=4)
        return beats.subset(keep)

    def _channel_view(self, channels: dict, beats: BeatSet) -> list[np.ndarray]:
        """Each channel's embedding, or (crossfit) its log-probabilities over ``channel_classes_``."""
        if self.stacking != "crossfit":
            return [channels[c].transform(beats) for c in self.channels]
        views = []
        for c in self.channels:
            net = channels[c]
            logp = np.full((len(beats), len(self.channel_classes_)), np.log(1e-6), dtype=np.float32)
            logp[:, np.searchsorted(self.channel_classes_, net.classes_.astype(str))] = np.log(np.clip(net.predict_proba(beats), 1e-6, 1.0))
            views.append(logp)
        return views

    def representation(self, beats: BeatSet, channels: dict | None = None) -> np.ndarray:
        """The multi-resolution representation: channel embeddings (crossfit: log-probabilities)
        + standardised features; ``channels`` replaces the fitted channels (crossfit groups)."""
        parts = self._channel_view(self.channels_ if channels is None else channels, beats)
        if self.use_features:
            position = {name: i for i, name in enumerate(beats.feature_labels)}  # a model saved before new features reads its own
            missing = [n for n in self.feature_labels_ if n not in position]
            if missing:
                raise HsickitError(f"the beats lack hand-crafted features the model was trained on (missing {missing}): the model "
                                   "comes from another hsickit version or feature_set; retrain it (hsickit ecg train) on these records")
            columns = [position[n] for n in self.feature_labels_]
            parts.append(self.feature_scaler_(np.nan_to_num(beats.features[:, columns])))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _channel(self, name: str, offset: int = 0) -> ChannelNetwork:
        i = offset + list(CHANNELS).index(name)
        return ChannelNetwork(name, training=self.channel_training, epochs=self.channel_epochs, batch_size=self.batch_size,
                              lr=self.lr, class_weight=self.class_weight, hsic_params=self.group("hsic_params"),
                              patience=self.patience, random_state=None if self.random_state is None else self.random_state + i,
                              verbose=self.verbose, device=self.device)

    def _fit_channel(self, net: ChannelNetwork, key: str, beats: BeatSet, stop_on: BeatSet | None) -> ChannelNetwork:
        folder = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / key
        return fit_or_load(net, folder, lambda n: n.fit(beats, stop_on), self.verbose)

    def _crossfit_representation(self, beats: BeatSet) -> np.ndarray:
        """Out-of-group channel log-probabilities + features of every training beat."""
        from sklearn.model_selection import GroupKFold

        records = beats.record.astype(str)
        k = min(self.crossfit_folds, len(set(records)))
        groups = GroupKFold(n_splits=k, shuffle=True, random_state=self.random_state).split(records, groups=records)
        Z = None
        for g, (tr, held) in enumerate(groups):
            inner, outer = beats.subset(tr), beats.subset(held)
            nets = {name: self._fit_channel(self._channel(name, 100 * (g + 1)), f"crossfit{g}-{name}", inner, outer)
                    for name in self.channels}
            Z_held = self.representation(outer, nets)
            Z = np.empty((len(beats), Z_held.shape[1]), np.float32) if Z is None else Z
            Z[held] = Z_held
        return Z

    def _stage_columns(self, n_columns: int) -> tuple[list[int] | None, list[int]]:
        """The columns the first (V) stage of a two-stage downstream reads (every feature and the
        ``ventricular_channels``' outputs; None: all), and those only it reads (every channel output
        and the :data:`VENTRICULAR_LABELS` features); the N/S/F stage keeps the other features.

        The channel networks learn beat shape, which misleads the S decision (pooled over 4
        patient-wise folds of MIT-BIH DS1, S Se / +P 0.79 / 0.48 when only the V stage reads
        them, 0.44 / 0.35 when both stages do).
        """
        if not self.use_features:
            return None, []
        offset = n_columns - len(self.feature_labels_)
        start = np.cumsum([0, *self.channel_widths_])
        first = [j for i, c in enumerate(self.channels) if c in self.ventricular_channels for j in range(start[i], start[i + 1])]
        first += list(range(offset, n_columns))
        return first, list(range(offset)) + [offset + i for i, name in enumerate(self.feature_labels_) if name in VENTRICULAR_LABELS]

    def _downstream(self, y, n_columns: int) -> object:
        if self.training != "backprop" and not (isinstance(self.downstream, str) and self.downstream in DOWNSTREAM_MODELS):
            raise HsickitError(f"training={self.training!r} trains a residual_mlp or mlp downstream, not {self.downstream!r}; "
                               "pass downstream='residual_mlp' (CLI: --downstream residual_mlp)")
        if isinstance(self.downstream, str) and self.downstream not in SKLEARN_DOWNSTREAM:
            if self.downstream not in DOWNSTREAM_MODELS:
                raise HsickitError(f"downstream={self.downstream!r}; use one of "
                                   f"{', '.join([*DOWNSTREAM_MODELS, *SKLEARN_DOWNSTREAM])} or a scikit-learn classifier")
            return DeepClassifier(model=self.downstream, model_params=DOWNSTREAM_MODELS[self.downstream],
                                  training=self.training, epochs=self.epochs, batch_size=fit_batch_size(self.batch_size, len(y)), lr=self.lr,
                                  class_weight=class_weights(y, self.class_weight), patience=self.patience,
                                  hsic_params={**self.group("hsic_params"), **({} if self.training == "hsic" else {"format_epochs": 0})},
                                  frozen_blocks=self.frozen_blocks,
                                  random_state=self.random_state, verbose=self.verbose, device=self.device)
        if isinstance(self.downstream, str):
            est = SKLEARN_DOWNSTREAM[self.downstream](self.random_state, *self._stage_columns(n_columns))
        else:
            est = clone(self.downstream)
        if isinstance(est, VentricularFirst):
            return est.set_params(class_weight=self.class_weight)
        if not has_fit_parameter(est, "sample_weight") and "class_weight" in est.get_params():
            est.set_params(class_weight=class_weights(y, self.class_weight))
        return est

    def _fit_sklearn(self, Z: np.ndarray, y: np.ndarray, warm: bool = False, records: np.ndarray | None = None) -> None:
        """Fit a scikit-learn downstream, class and record weighting as sample weights where it takes them.

        Fine-tuning (``warm``) a gradient-boosting downstream adds ``10 * epochs`` boosting
        iterations fitted on the new beats (:func:`~hsickit.apps.ecg.two_stage.continue_boosting`);
        a class the new beats lack is kept by one zero-weight placeholder row (boosting needs
        every known class in ``y``)."""
        if warm and not isinstance(self.downstream_, (HistGradientBoostingClassifier, VentricularFirst)):
            raise HsickitError(f"the downstream classifier {type(self.downstream_).__name__} cannot be fine-tuned; "
                               "train a new model on the combined records")
        w = np.ones(len(y)) if records is None else record_weights(y, records, self.record_balance)
        if not isinstance(self.downstream_, VentricularFirst):  # which balances its stages itself
            weights = class_weights(y, self.class_weight) or {c: 1.0 for c in np.unique(y)}
            w = w * np.array([weights[c] for c in y], dtype=float)
        if warm:
            missing = [c for c in self.classes_ if c not in set(y)]
            Z = np.concatenate([Z, np.repeat(Z[:1], len(missing), axis=0)])
            y, w = np.concatenate([y, np.asarray(missing, dtype=y.dtype)]), np.concatenate([w, np.zeros(len(missing))])
            if isinstance(self.downstream_, VentricularFirst):
                self.downstream_.set_params(warm_start=True, warm_iterations=10 * self.epochs)
            else:
                continue_boosting(self.downstream_, 10 * self.epochs)
        if has_fit_parameter(self.downstream_, "sample_weight"):
            self.downstream_.fit(Z, y, sample_weight=w)
        else:
            self.downstream_.fit(Z, y)

    def fit(self, beats: BeatSet, validation: BeatSet | None = None) -> "MultiResolutionClassifier":
        """Train channels, then the downstream classifier. ``validation``: beats of other records."""
        return self.fit_downstream(*self.fit_channels(beats, validation))

    def fit_channels(self, beats: BeatSet, validation: BeatSet | None = None):
        """Train the channel networks; return the downstream's training data ``(Z, y, Z_val, y_val, records)``.

        ``Z`` is the representation of the beats the downstream learns from (the held-out
        records for "holdout", out-of-group for "crossfit"); :meth:`fit_downstream` takes it,
        so one set of channels can serve several downstream classifiers (as in
        benchmarks/ecg_mitdb.py).
        """
        self._check()
        if self.af_rule:
            _af_columns(beats.feature_labels)  # before training: the features the rule needs are there
        if not beats.labelled:
            raise HsickitError("training beats have no labels (records without annotation files); pass annotated records")
        self.left_out_ = {}
        beats = self._known(beats, "training")
        if validation is not None and len(validation):
            validation = self._known(validation, "validation")
        y = beats.y.astype(str)
        warm = self.warm_start and hasattr(self, "downstream_")
        if not warm:
            wanted = [str(c) for c in (self.classes if self.classes is not None else ("N", "S", "V", "F"))]
            absent = [c for c in wanted if c not in set(y)]
            records = ", ".join(sorted(set(beats.record.astype(str))))
            if len(set(y)) < 2:
                raise HsickitError(f"the training beats (records {records}) are all of class {y[0] if len(y) else 'none'}; "
                                   f"the classes {', '.join(absent)} are missing: a classifier needs at least two, so add "
                                   "records that hold such beats (--records-list), or train on more records")
            if absent:
                values, counts = np.unique(y, return_counts=True)
                held = ", ".join(f"{c} {n:,}" for c, n in zip(values, counts))
                zero = ", ".join(f"{c} 0" for c in absent)
                warnings.warn(f"the training beats (records {records}) hold no beats of class(es) {', '.join(absent)} "
                              f"({zero}; {held}): the model will have no such class and never predict it, and evaluations "
                              "report its Se, +P and F1 as 'not a class of this model'; add records with such beats",
                              stacklevel=2)
        if warm:
            unknown = sorted(str(c) for c in set(y) - set(self.classes_.tolist()))
            if unknown:
                raise HsickitError(f"fine-tuning beats have classes {unknown} the model was not trained on; drop them or train anew")
        if self.stacking not in ("holdout", "crossfit", "insample"):
            raise HsickitError(f"stacking={self.stacking!r}; use 'holdout', 'crossfit' or 'insample'")
        Z = None
        if not warm:
            self.channels_ = {}
            self.feature_scaler_ = Standardizer().fit(np.nan_to_num(beats.features))
            self.feature_labels_ = list(beats.feature_labels)
            self.channel_classes_ = np.unique(y)
            if self.stacking == "crossfit" and self.channels and len(set(beats.record)) >= 2:
                Z = self._crossfit_representation(beats)
        # fine-tuning (warm) retrains channels and downstream on the same beats, as "insample" does
        channel_beats, fusion_beats = beats, beats
        if self.stacking == "holdout" and not warm and self.channels:
            held = holdout_records(beats, self.holdout_fraction, self.random_state)
            if held:
                channel_beats = beats.subset(~np.isin(beats.record, held))
                fusion_beats = beats.subset(np.isin(beats.record, held))
        self.holdout_records_ = sorted(set(fusion_beats.record)) if fusion_beats is not beats else []
        for name in self.channels:
            if warm:
                net = self.channels_[name].set_params(warm_start=True, epochs=self.channel_epochs, frozen_blocks=self.frozen_blocks,
                                                     lr=self.lr, device=self.device)
            else:
                net = self._channel(name)
            # channels stop early on the held-out records (unseen by them), else on ``validation``
            stop_on = fusion_beats if fusion_beats is not beats else validation
            self.channels_[name] = self._fit_channel(net, name, channel_beats, stop_on)
        Z = Z if Z is not None else self.representation(fusion_beats)
        if not warm:
            self.channel_widths_ = [v.shape[1] for v in self._channel_view(self.channels_, beats.subset([0]))]
        Zv = yv = None
        if validation is not None and len(validation):
            Zv, yv = self.representation(validation), validation.y.astype(str)
        return Z, fusion_beats.y.astype(str), Zv, yv, fusion_beats.record.astype(str)

    def fit_downstream(self, Z: np.ndarray, y: np.ndarray, Z_val: np.ndarray | None = None,
                       y_val: np.ndarray | None = None, records: np.ndarray | None = None) -> "MultiResolutionClassifier":
        """Train the downstream classifier on a representation from :meth:`fit_channels`.

        ``records``: the record of each row of ``Z``, for ``record_balance`` (None: every row alike)."""
        y = np.asarray(y, str)
        Zv, yv = Z_val, None if y_val is None else np.asarray(y_val, str)
        warm = self.warm_start and hasattr(self, "downstream_")
        if warm and isinstance(self.downstream_, DeepClassifier):
            self.downstream_.set_params(warm_start=True, frozen_blocks=self.frozen_blocks, epochs=self.epochs, lr=self.lr,
                                        batch_size=fit_batch_size(self.batch_size, len(y)), device=self.device)
        elif not warm:
            self.downstream_ = self._downstream(y, Z.shape[1])
        if isinstance(self.downstream_, DeepClassifier):
            if yv is not None:
                known = np.isin(yv, self.downstream_.classes_ if warm else np.unique(y))
                Zv, yv = Zv[known], yv[known]
            self.downstream_.fit(Z, y, X_val=Zv, y_val=yv)
        else:
            self._fit_sklearn(Z, y, warm, records)
        self.classes_ = np.asarray(self.downstream_.classes_).astype(str)
        self.class_bias_ = np.zeros(len(self.classes_))
        if self.tune_bias and yv is not None and len(yv):
            self.class_bias_ = tune_class_bias(self.downstream_.predict_proba(Zv), yv, self.classes_)
        return self

    def predict_proba(self, beats: BeatSet) -> np.ndarray:
        """Class probabilities, including the class bias tuned on validation records and the ``af_rule``."""
        p = self.downstream_.predict_proba(self.representation(beats))
        bias = getattr(self, "class_bias_", None)
        if bias is not None and np.any(bias):
            p = p * np.exp(bias)
            p = p / p.sum(axis=1, keepdims=True)
        classes = [str(c) for c in self.classes_]
        if self.af_rule and "S" in classes and "N" in classes:
            af = in_atrial_fibrillation(beats)
            s, n = classes.index("S"), classes.index("N")
            p[af, n] += p[af, s]
            p[af, s] = 0.0
        return p

    def decide(self, proba: np.ndarray, s_odds: float | None = None) -> np.ndarray:
        """The class of each row of :meth:`predict_proba`'s ``proba``: the most probable once S's
        probability is multiplied by ``s_odds`` (None: the model's own), so that one set of
        probabilities can be read at several operating points."""
        odds = check_s_odds(self.s_odds if s_odds is None else s_odds)
        return self.classes_[(np.asarray(proba) * np.where(self.classes_.astype(str) == "S", odds, 1.0)).argmax(1)]

    def predict(self, beats: BeatSet) -> np.ndarray:
        return self.decide(self.predict_proba(beats))

    def _labels(self, beats: BeatSet, y) -> np.ndarray:
        if y is None:
            if not beats.labelled:
                raise HsickitError("these beats have no labels (records without annotation files); pass annotated records or y")
            y = beats.y
        y = np.asarray(y).astype(str)
        if len(y) != len(beats):
            raise HsickitError(f"y has {len(y)} labels for {len(beats)} beats; give one label per beat")
        return y

    def score(self, beats: BeatSet, y=None) -> float:
        """Beat accuracy (scikit-learn's meaning of a classifier's score); ``y``: the beats' own labels by default."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(self._labels(beats, y), self.predict(beats)))

    def evaluate(self, beats: BeatSet, y=None) -> dict:
        """Every score ``hsickit ecg evaluate`` writes to metrics.json (:func:`~hsickit.apps.ecg.metrics.beat_scores`:
        Se, +P, F1, specificity and support per AAMI class, accuracy, kappa, macro F1, their 95 % intervals over
        the records, n_samples; null (NaN) for a class the model does not have); ``y``: the beats' own labels by default."""
        from hsickit.apps.ecg.metrics import beat_scores

        return beat_scores(self._labels(beats, y), self.predict(beats), beats.record, model_classes=self.classes_)

    # ------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write every channel and the downstream model (safetensors + JSON) into folder ``path``."""
        if not isinstance(self.downstream_, DeepClassifier) and not isinstance(self.downstream, str):
            raise HsickitError("a scikit-learn classifier passed as an object cannot be saved; name it instead "
                               f"(downstream={' or '.join(repr(n) for n in SKLEARN_DOWNSTREAM)}), or use 'residual_mlp' / 'mlp'")
        path = Path(path)
        for name, net in self.channels_.items():
            net.save(path / "channels" / name)
        if isinstance(self.downstream_, DeepClassifier):
            self.downstream_.save(path / "downstream")
        else:
            (path / "downstream").mkdir(parents=True, exist_ok=True)
            save_sklearn(path / "downstream" / "model.skops", self.downstream_)
        write_json(path / "fusion.json", {"params": saved_params(self), "feature_scaler": self.feature_scaler_.state(),
                                          "feature_labels": self.feature_labels_, "classes": self.classes_.tolist(),
                                          "class_bias": np.asarray(getattr(self, "class_bias_", np.zeros(len(self.classes_)))).tolist(),
                                          "holdout_records": list(getattr(self, "holdout_records_", [])),
                                          "channel_classes": np.asarray(getattr(self, "channel_classes_", self.classes_)).tolist()})
        return path

    @classmethod
    def load(cls, path) -> "MultiResolutionClassifier":
        path = Path(path)
        if not (path / "fusion.json").exists():
            raise HsickitError(f"{path} holds no multi-resolution model (fusion.json missing); pass a run folder written by 'hsickit ecg train'")
        meta = read_json(path / "fusion.json")
        params = cls.upgrade_params(meta["params"])  # flat beta, sigma: saved before they were grouped
        params.setdefault("af_rule", False)  # saved before the rule existed: predict as it did
        params.setdefault("record_balance", 0.0)  # saved before it existed: fine-tunes as it was trained
        params.setdefault("s_odds", 1.0)  # saved before it existed: predict as it did
        params["channels"] = tuple(params["channels"])
        if params.get("classes") is not None:
            params["classes"] = tuple(params["classes"])
        clf = cls(**params)
        clf.channels_ = {name: ChannelNetwork.load(path / "channels" / name) for name in clf.channels}
        clf.downstream_ = (load_sklearn(path / "downstream" / "model.skops", trusted=_TRUSTED) if clf.downstream in SKLEARN_DOWNSTREAM
                           else DeepClassifier.load(path / "downstream"))
        clf.feature_scaler_ = Standardizer.from_state(meta["feature_scaler"])
        clf.feature_labels_ = meta["feature_labels"]
        clf.classes_ = np.asarray(meta["classes"])
        clf.class_bias_ = np.asarray(meta.get("class_bias", np.zeros(len(clf.classes_))), dtype=float)
        clf.holdout_records_ = meta.get("holdout_records", [])
        clf.channel_classes_ = np.asarray(meta.get("channel_classes", meta["classes"]), dtype=str)
        return clf
