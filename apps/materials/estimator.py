"""Composition -> property estimators: featuriser + feature scaler + deep model (+ ensemble).

:class:`MaterialsRegressor` and :class:`MaterialsClassifier` take formulas (strings or pymatgen
compositions), compute composition features (default: the 145 Ward et al. 2016 attributes),
standardise them, and train one or several (``n_models``, different seeds) core
:class:`~hsickit.core.estimators.DeepRegressor` / ``DeepClassifier`` models — IRNet
("irnet17/24/48"), their plain twins ("plain17/24/48") or ElemNet ("elemnet17", with
``features="elemnet86"``) — with backprop or the HSIC bottleneck — or a tree ensemble.

The default, ``model="auto"``, picks by the number of training rows: extremely randomised
trees on the Ward attributes plus element fractions up to :data:`AUTO_THRESHOLD` rows, IRNet-17
on the Ward attributes above it (``benchmarks/materials_learning_curve.py``: on mp_e_form IRNet-17
overtook the trees between 4,000 and 16,000 rows, on mp_gap it was still behind at 16,000; see the README). Networks train with the modern
recipe by default (:data:`RECIPES`: AdamW, batch 256, linear warm-up then cosine decay, early
stopping on a validation split carved from the training data); ``**RECIPES["paper"]`` gives the
IRNet paper's (Adam, lr 1e-4, batch 32). The loss is L1 either way.

Example
-------
>>> from hsickit.apps.materials import MaterialsRegressor
>>> reg = MaterialsRegressor(model="mlp", model_params={"hidden": (32, 32)}, epochs=5,
...                          n_models=2, random_state=0)
>>> reg = reg.fit(["NaCl", "KCl", "MgO", "CaO", "Fe2O3", "Al2O3", "SiO2", "ZnO"] * 4,
...               [5.0, 5.1, 7.8, 7.1, 2.2, 8.8, 9.0, 3.4] * 4)
>>> mean, std = reg.predict(["LiF", "NaCl"], return_std=True)
>>> mean.shape, std.shape
((2,), (2,))
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from hsickit.apps.materials.featurizers import CompositionMatrix, get_featurizer
from hsickit.apps.materials.forest import FORESTS, ForestMember, is_forest
from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier, DeepRegressor
from hsickit.core.files import read_json, write_json
from hsickit.core.params import GroupedParams, signature
from hsickit.core.serialization import saved_params
from hsickit.core.progress import resolve_verbose
from hsickit.core.training import param_defaults, validation_split

__all__ = ["MaterialsRegressor", "MaterialsClassifier", "load_estimator", "evaluation_metrics", "RECIPES", "AUTO_THRESHOLD"]

#: The core networks that take a composition's feature vector (conv1d, leafcnn and parallel do not).
NETWORKS = ("irnet17", "irnet24", "irnet48", "plain17", "plain24", "plain48", "elemnet17", "mlp", "residual_mlp")

#: Training settings of the networks. "modern" (the default of the estimators and the CLI):
#: AdamW, batch 256, peak lr 1e-3 after a linear warm-up over 5 % of the epochs, cosine decay to 0,
#: at most 100 epochs, early stopping (patience 20) on the validation split. "paper": the IRNet
#: paper's Adam, lr 1e-4, batch 32, up to 500 epochs (patience 50). Compared side by side in
#: ``benchmarks/materials_recipes.py`` (README).
RECIPES = {
    "modern": {"optimizer": "adamw", "lr": 1e-3, "batch_size": 256, "epochs": 100, "patience": 20,
               "train_params": {"weight_decay": 1e-4, "lr_schedule": "warmup_cosine"}},
    "paper": {"optimizer": "adam", "lr": 1e-4, "batch_size": 32, "epochs": 500, "patience": 50,
              "train_params": {"weight_decay": 0.0, "lr_schedule": None}},
}

#: ``model="auto"``: tables with more training rows than this get IRNet-17, the others extra trees.
#: benchmarks/materials_learning_curve.py (Matbench fold 0, 2-core CPU):
#: IRNet-17 was 2 % ahead of the trees at 1,000 rows, 2 % behind at 4,000 and 11 % ahead at 16,000 on
#: mp_e_form; on mp_gap 19 %, 22 % and 13 % behind at 1,000, 4,000 and 16,000 (on expt_gap's 2,946
#: training rows 8 % behind). Trees up to 16,000 rows, IRNet above (README; benchmarks/README.md).
AUTO_THRESHOLD = 16_000
#: What ``model="auto"`` fits on each side of the threshold (with ``features="auto"``).
AUTO_SMALL = {"model": "extra_trees", "features": "ward145+fractions118"}
AUTO_LARGE = {"model": "irnet17", "features": "ward145"}


class _MaterialsEstimator(GroupedParams, BaseEstimator):
    _member_cls = DeepRegressor
    param_groups = {"hsic_params": param_defaults("hsic_params"),
                    "train_params": {**param_defaults("train_params"), **RECIPES["modern"]["train_params"]}}
    renamed = {"sigma": ("hsic_params", "sigma"), "beta": ("hsic_params", "beta"),
               "format_epochs": ("hsic_params", "format_epochs"), "hsic_lr": ("hsic_params", "lr"),
               "weight_decay": ("train_params", "weight_decay"), "lr_schedule": ("train_params", "lr_schedule")}

    @signature()
    def __init__(self, features="auto", model="auto", model_params=None, training="backprop", n_models=1,
                 epochs=100, batch_size=256, lr=1e-3, train_params=None, patience=20, validation_fraction=0.1,
                 optimizer="adamw", auto_threshold=AUTO_THRESHOLD, hsic_params=None, frozen_blocks=0, time_limit=None,
                 checkpoint_dir=None, random_state=None, verbose="auto", device="cpu", warm_start=False,
                 nonnegative=False, **renamed_params):
        self.features = features
        self.model = model
        self.model_params = model_params
        self.training = training
        self.n_models = n_models
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.train_params = train_params
        self.patience = patience
        self.optimizer = optimizer
        self.auto_threshold = auto_threshold
        self.validation_fraction = validation_fraction
        self.hsic_params = hsic_params
        self.frozen_blocks = frozen_blocks
        self.warm_start = warm_start
        self.time_limit = time_limit
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.nonnegative = nonnegative
        self.take_renamed(renamed_params)  # MaterialsRegressor(beta=50): the old spelling, one release

    # --- model="auto" / features="auto" -------------------------------------------------------
    def _choose(self, n_rows):
        """(model, features, why) that a fit on `n_rows` rows uses: ``model="auto"`` picks
        :data:`AUTO_SMALL` up to ``auto_threshold`` rows and :data:`AUTO_LARGE` above it;
        ``features="auto"`` gives the features that model is meant for (``why``: None unless auto
        picked the model)."""
        model, why = self.model, None
        if model == "auto":
            threshold = self.auto_threshold
            if not isinstance(threshold, (int, float, np.integer, np.floating)) or threshold < 0:
                raise HsickitError(f"auto_threshold must be a number of rows >= 0, got {threshold!r}")
            large = n_rows > threshold
            model = (AUTO_LARGE if large else AUTO_SMALL)["model"]
            why = (f"{n_rows} training rows, {'above' if large else 'not above'} the auto threshold of "
                   f"{threshold:g} rows: " + ("IRNet-17 with the modern recipe" if large else
                                              "extra trees on Ward attributes + element fractions")
                   + " (threshold from the Matbench learning curves, README)")
        features = self.features
        if features == "auto":
            features = ("ward145+fractions118" if is_forest(model) else "elemnet86" if model == "elemnet17"
                        else AUTO_LARGE["features"])
        return model, features, why

    def _model_name(self):
        """The model fitted (what ``model="auto"`` chose), or ``model`` before a fit."""
        return getattr(self, "model_used_", None) or self.model

    def _features_name(self):
        """The features the model uses (what ``features="auto"`` means for it)."""
        used = getattr(self, "features_used_", None)
        if used is not None:
            return used
        if self.features == "auto" and self.model == "auto":
            raise HsickitError("features='auto' with model='auto' are decided by fit (they depend on the table's "
                               "size); fit first, or name the features (e.g. features='ward145')")
        return self._choose(0)[1]

    # --- features ---------------------------------------------------------------------------
    def featurize(self, formulas) -> np.ndarray:
        """Raw (unscaled) features of a list of formulas / compositions, shape (n, d)
        (with ``features="precomputed"``: the given feature matrix, checked)."""
        return self._featurize(formulas)[0]

    def _featurize(self, formulas):
        """(features, CompositionMatrix of the formulas, or None for precomputed features)."""
        if self._features_name() == "precomputed":
            X = np.asarray(formulas, dtype=float)
            if X.ndim != 2 or not len(X):
                raise HsickitError(f"features='precomputed' takes a non-empty 2-D feature matrix (n_samples, n_features), "
                                   f"got shape {X.shape}; pass e.g. WardAttributes().featurize_many(formulas)")
            bad = ~np.isfinite(X).all(1)
            if bad.any():
                raise HsickitError(f"feature row {int(np.flatnonzero(bad)[0])} is not finite; remove that row")
            return X, None
        if isinstance(formulas, str):
            raise HsickitError("pass a list of formulas, e.g. ['Fe2O3'], not a single string")
        formulas = list(formulas)
        if not formulas:
            raise HsickitError("no formulas given; pass a non-empty list such as ['Fe2O3', 'NaCl']")
        cm = CompositionMatrix.from_compositions(formulas)
        X = get_featurizer(self._features_name()).featurize_many(cm)
        bad = ~np.isfinite(X).all(1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise HsickitError(f"formula {formulas[i]!r} (entry {i}) gives non-finite features; "
                               "it may contain elements without element data; remove it")
        return X, cm

    def unseen_elements(self, formulas) -> list:
        """Applicability domain: for each formula, the sorted list of its elements that no
        training formula contains (empty: every element was seen in training).

        A prediction for a formula with an unseen element is an extrapolation. The training
        set's elements are in ``elements_`` (None for precomputed features, or a model saved
        before hsickit recorded them: then this raises).
        """
        check_is_fitted(self, "members_")
        if getattr(self, "elements_", None) is None:
            raise HsickitError("this model does not know its training elements (precomputed features, or saved by an "
                               "older hsickit); retrain it to get the applicability-domain check")
        from pymatgen.core import Element

        cm = CompositionMatrix.from_compositions(list(formulas))
        seen = {Element(e).Z for e in self.elements_}
        return [sorted((Element.from_Z(int(z)).symbol for z in set(row[m].tolist()) - seen), key=lambda e: Element(e).Z)
                for row, m in zip(cm.z, cm.mask)]

    def _feature_names(self, n_features):
        if self._features_name() == "precomputed":
            return [f"feature_{i}" for i in range(n_features)]
        return list(get_featurizer(self._features_name()).feature_labels())

    def _callbacks(self):
        """Trainer callbacks for one model: stop after the epoch that ends past ``time_limit``
        (that epoch's history row gets ``stopped_by_time_limit = 1``)."""
        if self.time_limit is None:
            return ()
        stop_at = time.monotonic() + float(self.time_limit)

        def time_limit(row):
            if time.monotonic() < stop_at:
                return False
            row["stopped_by_time_limit"] = 1
            return True

        return (time_limit,)

    def scale_features(self, X):
        """Features ``X`` (from :meth:`featurize`) as the member models take them: standardised with the training statistics. Features are first clipped to the
        training range: a composition outside it (a near-constant training column, e.g. one
        element property seen ~0 in training) would otherwise be scaled by ~1/std to values
        in the millions, and a ReLU network extrapolates such inputs without bound."""
        lo, hi = getattr(self, "feature_min_", None), getattr(self, "feature_max_", None)
        if lo is not None:
            X = np.clip(X, lo, hi)
        return ((X - self.feature_mean_) / self.feature_scale_).astype(np.float32)

    def _check_n_models(self):
        if not isinstance(self.n_models, (int, np.integer)) or self.n_models < 1:
            raise HsickitError(f"n_models must be an integer >= 1, got {self.n_models!r}")

    def _member(self, seed, batch_size, y=None):
        model = self._model_name()
        if not is_forest(model) and model not in NETWORKS:
            raise HsickitError(f"unknown model {model!r} for materials; valid names: auto, {', '.join(NETWORKS)}, "
                               f"or a tree ensemble: {', '.join(FORESTS)}")
        if is_forest(model):
            return ForestMember(model, classification=self._member_cls is DeepClassifier,
                                model_params=self.model_params, random_state=int(seed))
        # a classifier knows every class of y, also one that only the validation rows hold
        classes = {"classes": np.unique(y).tolist()} if self._member_cls is DeepClassifier and y is not None else {}
        return self._member_cls(**classes,
            model=model, model_params=self.model_params, training=self.training, epochs=self.epochs,
            batch_size=batch_size, lr=self.lr, optimizer=self.optimizer, train_params=self.group("train_params"),
            patience=self.patience, validation_fraction=self.validation_fraction,
            hsic_params=self.group("hsic_params"), frozen_blocks=self.frozen_blocks,
            random_state=int(seed), verbose=self.verbose, device=self.device)

    def _batch_size(self, n_train):
        """``batch_size``, reduced to the number of training rows (after the validation split)."""
        from hsickit.core.checks import check_batch_size

        return int(max(2, min(check_batch_size(self.batch_size), n_train)))

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, formulas, y, formulas_val=None, y_val=None):
        """Featurise, fit the scaler on the training formulas, train ``n_models`` models.

        Validation data (early stopping) are `formulas_val`, `y_val` when given, else a
        ``validation_fraction`` split carved from the training data, the same rows for every
        model of the ensemble (none with ``patience=None``, and none for a tree ensemble, which
        is fitted on all rows). The ensemble's scores on them are in ``validation_metrics_``
        (None without validation rows); their row numbers in ``validation_rows_``. The
        training formulas' elements are kept in ``elements_`` (see :meth:`unseen_elements`).
        The model and features used are in ``model_used_`` and ``features_used_``; with
        ``model="auto"``, ``auto_choice_`` says what it picked and why (else None).

        With ``warm_start=True`` on a fitted network, ``fit`` fine-tunes instead: every model
        continues from its weights on the new data (``epochs``, ``lr``, ``patience`` as set now), the
        first ``frozen_blocks`` blocks fixed. The feature scaler and target scaling of the first fit
        are kept (so the model's inputs mean the same); the clipping range and ``elements_`` widen to
        the new data; ``fine_tuned_`` counts the fine-tunings. A tree ensemble cannot be fine-tuned.
        """
        if self.warm_start and hasattr(self, "members_"):
            return self._fit_warm(formulas, y, formulas_val, y_val)
        self._check_n_models()
        if isinstance(formulas, str):
            raise HsickitError("pass a list of formulas, e.g. ['Fe2O3'], not a single string")
        formulas = formulas if hasattr(formulas, "__len__") else list(formulas)
        self.model_used_ = self.features_used_ = None
        model, features, why = self._choose(len(formulas))
        self.model_used_, self.features_used_ = model, features
        self.auto_choice_ = None if why is None else {"model": model, "features": features, "n_rows": len(formulas),
                                                      "threshold": self.auto_threshold, "reason": why}
        if why is not None and self.verbose:
            print(f"model auto: {why}", flush=True)
        X, cm = self._featurize(formulas)
        y = np.asarray(y)
        if len(y) != len(X):
            raise HsickitError(f"{len(X)} formulas but {len(y)} targets; give one target per formula")
        self._check_nonnegative(y, "training targets")
        if self._member_cls is DeepClassifier and len(np.unique(y)) < 2:
            raise HsickitError(f"the target is constant: it has only one class ({y.tolist()[0]!r}); a classifier needs at "
                               "least two (numbers to predict: MaterialsRegressor, CLI --task regression)")
        self.feature_mean_ = X.mean(0)
        self.feature_min_, self.feature_max_ = X.min(0), X.max(0)
        scale = X.std(0)
        self.feature_scale_ = np.where(scale > 0, scale, 1.0)
        self.feature_names_ = self._feature_names(X.shape[1])
        self.elements_ = None if cm is None else _symbols(cm.z[cm.mask])
        Xs = self.scale_features(X)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(2**31 - 1, size=self.n_models)
        tr, va, Xv, y_val = self._validation_data(Xs, y, formulas_val, y_val, rng.randint(2**31 - 1))
        batch_size = self._batch_size(len(tr))
        members = [self._member(seed, batch_size, y) for seed in seeds]
        self.members_ = self._train_members(members, Xs[tr], y[tr], Xv, y_val)
        self.n_features_in_ = X.shape[1]
        self._score_validation(Xv, y_val, va)
        return self

    def _check_nonnegative(self, y, what):
        """``nonnegative=True`` is for a regression target that cannot be below 0 (a band gap, a
        modulus): refuse it for a classifier, and refuse negative targets, naming the first."""
        if not self.nonnegative:
            return
        if self._member_cls is DeepClassifier:
            raise HsickitError("nonnegative=True is for regression (MaterialsRegressor, CLI --target-type regression); "
                               "a classifier predicts classes")
        values = np.asarray(y, dtype=float)
        bad = np.flatnonzero(values < 0)
        if len(bad):
            raise HsickitError(f"nonnegative=True but {what} has {len(bad)} negative value(s), the first {values[bad[0]]:g} "
                               f"at entry {int(bad[0])}; fix the data or leave nonnegative off (CLI: drop --nonnegative)")

    def _validation_data(self, Xs, y, formulas_val, y_val, seed):
        """(training rows, validation rows of Xs, validation X, validation y): the given
        validation data, else rows carved from Xs (stratified for a classifier), else none."""
        rows = np.arange(len(Xs))
        if formulas_val is not None:
            if y_val is None or len(y_val) != len(formulas_val):
                raise HsickitError("give y_val with formulas_val, one target per validation formula")
            return rows, None, self.scale_features(self.featurize(formulas_val)), np.asarray(y_val)
        fraction = 0.0 if self.patience is None or is_forest(self._model_name()) else self.validation_fraction
        tr, va = self._split(y, seed, fraction)
        if not len(va):
            return rows, None, None, None
        return tr, va, Xs[va], y[va]

    def _split(self, y, seed, fraction):
        """(train, validation) indices: `fraction` of the rows, stratified for a classifier."""
        return validation_split(len(y), fraction, int(seed), y if self._member_cls is DeepClassifier else None)

    def holdout_metrics(self, formulas, y):
        """Scores of a copy of this estimator fitted on all but a ``validation_fraction`` share of
        (formulas, y) and scored on that share (dict as ``validation_metrics_``; None when the
        share is empty). For a tree ensemble, which is fitted on all rows and so has no
        validation rows of its own; the copy costs one more fit on ~90 % of the rows."""
        from sklearn.base import clone

        y = np.asarray(y)
        tr, va = self._split(y, check_random_state(self.random_state).randint(2**31 - 1), self.validation_fraction)
        if not len(va):
            return None
        formulas = list(formulas)
        held = clone(self).set_params(checkpoint_dir=None, verbose=0, model=self._model_name(),
                                      features=self._features_name())
        return held.fit([formulas[i] for i in tr], y[tr], [formulas[i] for i in va], y[va]).validation_metrics_

    def _score_validation(self, Xv, y_val, rows):
        """``validation_metrics_`` (the ensemble on the validation data, in the target's unit) and
        ``validation_rows_`` (indices of the training rows held out, or None)."""
        self.validation_rows_ = None if rows is None else np.asarray(rows)
        self.validation_metrics_ = None if Xv is None else self._metrics(Xv, y_val)

    def _metrics(self, Xs, y):
        from hsickit.apps.materials.matbench import classification_metrics, regression_metrics

        if self._member_cls is DeepClassifier:
            return classification_metrics(y, self._predict_proba_scaled(Xs), self.classes_)
        return regression_metrics(y, self._predict_scaled(Xs))

    def _train_members(self, members, Xs, y, Xv, y_val):
        """Fit each member; with ``checkpoint_dir``, checkpointed, and those already trained there are loaded."""
        done = []
        for i, m in enumerate(members):
            folder = (None if self.checkpoint_dir is None or is_forest(self._model_name())
                      else Path(self.checkpoint_dir) / f"member_{i}")
            if folder is not None and (folder / "estimator.json").exists():
                done.append(self._finished_member(m, folder, i))
                continue
            if folder is not None:
                m.set_params(checkpoint_dir=folder)
            m.fit(Xs, y, X_val=Xv, y_val=None if y_val is None else np.asarray(y_val), callbacks=self._callbacks())
            if folder is not None:
                m.set_params(checkpoint_dir=None).save(folder)
            done.append(m)
        return done

    def _finished_member(self, member, folder, i):
        """Model `i` saved in `folder` by an interrupted :meth:`fit` with the same settings."""
        saved = type(member).load(folder)
        ignore = ("verbose", "device", "checkpoint_dir")
        mine, theirs = ({k: v for k, v in json.loads(json.dumps(e.get_params(), default=str)).items() if k not in ignore}
                        for e in (member, saved))
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise HsickitError(f"{folder} holds a model trained with other settings ({', '.join(diff)}); "
                               "use another checkpoint_dir or delete that folder")
        if resolve_verbose(self.verbose):
            print(f"model {i + 1}/{self.n_models}: already trained, loaded from {folder}")
        return saved.set_params(verbose=self.verbose, device=self.device)

    def _fit_warm(self, formulas, y, formulas_val, y_val):
        """Fine-tune every member on new data (``fit`` with ``warm_start=True`` on a fitted model)."""
        if is_forest(self._model_name()):
            raise HsickitError(f"a {self._model_name()} model cannot be fine-tuned (trees do not continue training on "
                               "new rows); train a new model on the old and new rows together (warm_start=False), or use "
                               "a network (model='irnet17') when fine-tuning is the plan")
        X, cm = self._featurize(formulas)
        y = np.asarray(y)
        if len(y) != len(X):
            raise HsickitError(f"{len(X)} formulas but {len(y)} targets; give one target per formula")
        n_blocks = len(self.members_[0].model_.blocks)
        if not isinstance(self.frozen_blocks, (int, np.integer)) or not 0 <= self.frozen_blocks < n_blocks:
            raise HsickitError(f"frozen_blocks={self.frozen_blocks!r}: the model has {n_blocks} blocks; freeze 0..{n_blocks - 1}")
        self._check_nonnegative(y, "fine-tuning targets")
        if getattr(self, "feature_min_", None) is not None:
            self.feature_min_ = np.minimum(self.feature_min_, X.min(0))
            self.feature_max_ = np.maximum(self.feature_max_, X.max(0))
        if getattr(self, "elements_", None) is not None and cm is not None:  # the domain grows by the new elements
            self.elements_ = _symbols(list(self.elements_) + _symbols(cm.z[cm.mask]))
        Xs = self.scale_features(X)
        tr, va, Xv, y_val = self._validation_data(Xs, y, formulas_val, y_val,
                                                  check_random_state(self.random_state).randint(2**31 - 1))
        for m in self.members_:
            m.set_params(warm_start=True, frozen_blocks=int(self.frozen_blocks), epochs=self.epochs, lr=self.lr,
                         patience=self.patience, verbose=self.verbose, batch_size=self._batch_size(len(tr)))
        self.members_ = self._train_members(self.members_, Xs[tr], y[tr], Xv, y_val)
        self.fine_tuned_ = getattr(self, "fine_tuned_", 0) + 1
        self._score_validation(Xv, y_val, va)
        return self

    def fine_tune(self, formulas, y, freeze_blocks=0, epochs=None, lr=None, patience=None,
                  formulas_val=None, y_val=None):
        """Deprecated: use ``set_params(warm_start=True, frozen_blocks=k).fit(formulas, y)``.

        Kept for one release; it sets ``frozen_blocks`` (and the given ``epochs``, ``lr``,
        ``patience``) as parameters, as it did, and fits with a warm start. Returns self.
        """
        warnings.warn("fine_tune(..., freeze_blocks=k) is deprecated and will be removed in the next release; use "
                      "est.set_params(warm_start=True, frozen_blocks=k).fit(formulas, y)", FutureWarning, stacklevel=2)
        check_is_fitted(self, "members_")
        given = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("patience", patience)) if v is not None}
        before = {k: getattr(self, k) for k in ("frozen_blocks", "warm_start", *given)}
        self.set_params(frozen_blocks=freeze_blocks, **given)
        try:
            self.set_params(warm_start=True).fit(formulas, y, formulas_val, y_val)
        except Exception:
            self.set_params(**before)
            raise
        return self.set_params(warm_start=before["warm_start"])

    def evaluate(self, formulas, y) -> dict:
        """Scores on labelled formulas, in the target's unit: the dict ``hsickit materials evaluate``
        writes to metrics.json (:func:`evaluation_metrics`: mae, rmse, r2 or accuracy, rocauc, f1;
        n_samples; n_out_of_domain when the model knows its training elements)."""
        check_is_fitted(self, "members_")
        if isinstance(formulas, str):
            raise HsickitError("pass a list of formulas, e.g. ['Fe2O3'], not a single string")
        formulas = formulas if hasattr(formulas, "__len__") else list(formulas)
        if isinstance(self, ClassifierMixin):
            output = self.predict_proba(formulas)
        else:
            output = self.predict(formulas)
        in_domain = None
        if getattr(self, "elements_", None) is not None:
            in_domain = [not u for u in self.unseen_elements(formulas)]
        return evaluation_metrics(self, y, output, in_domain)

    @property
    def history_(self):
        """Per-epoch training history of the first model."""
        check_is_fitted(self, "members_")
        return self.members_[0].history_

    # --- persistence (safetensors + JSON, never pickle) ------------------------------------
    def save(self, path) -> Path:
        """Write ``materials.json`` (parameters, feature scaler) and one folder per model."""
        check_is_fitted(self, "members_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(self.members_):
            m.save(path / f"member_{i}")
        write_json(path / "materials.json", {
            "estimator": type(self).__name__, "params": saved_params(self), "n_features_in": self.n_features_in_,
            "feature_names": self.feature_names_, "feature_mean": self.feature_mean_.tolist(),
            "feature_scale": self.feature_scale_.tolist(), "feature_min": self.feature_min_.tolist(),
            "feature_max": self.feature_max_.tolist(), "n_members": len(self.members_),
            "elements": getattr(self, "elements_", None),
            "model_used": self._model_name(), "features_used": self._features_name(),
            "auto_choice": getattr(self, "auto_choice_", None),
            "fine_tuned": getattr(self, "fine_tuned_", 0)})
        return path

    @classmethod
    def load(cls, path):
        """Load an estimator written by :meth:`save`."""
        path = Path(path)
        if not (path / "materials.json").exists():
            raise HsickitError(f"{path} holds no saved materials model (materials.json missing); "
                               "give the folder written by `hsickit materials train` or .save()")
        meta = read_json(path / "materials.json")
        if meta["estimator"] != cls.__name__:
            raise HsickitError(f"{path} holds a {meta['estimator']}; load it with {meta['estimator']}.load")
        params = cls.upgrade_params(meta["params"])  # flat HSIC / optimiser keywords: saved before they were grouped
        if "optimizer" not in params:  # saved before the modern recipe: trained (and fine-tuned) as the paper
            params.update(optimizer="adam", train_params={**(params.get("train_params") or {}), "lr_schedule": None})
        if params.get("model_params"):
            params["model_params"] = {k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()}
        est = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
        est.feature_mean_ = np.asarray(meta["feature_mean"])
        est.feature_scale_ = np.asarray(meta["feature_scale"])
        if "feature_min" in meta:  # models saved before range clipping have none
            est.feature_min_, est.feature_max_ = np.asarray(meta["feature_min"]), np.asarray(meta["feature_max"])
        est.feature_names_ = meta["feature_names"]
        est.elements_ = meta.get("elements")  # None: precomputed features, or saved before it was recorded
        est.n_features_in_ = meta["n_features_in"]
        est.model_used_ = meta.get("model_used", params.get("model"))  # saved before model="auto": the model given
        est.features_used_ = meta.get("features_used") or est._choose(0)[1]
        est.auto_choice_ = meta.get("auto_choice")
        member_cls = ForestMember if is_forest(est.model_used_) else cls._member_cls
        est.members_ = [member_cls.load(path / f"member_{i}") for i in range(meta["n_members"])]
        if meta.get("fine_tuned"):
            est.fine_tuned_ = meta["fine_tuned"]
        sizes = {len(est.feature_mean_), len(est.feature_scale_), len(est.feature_names_), est.n_features_in_,
                 *(getattr(m, "n_features_in_", est.n_features_in_) for m in est.members_)}
        if len(sizes) > 1:
            raise HsickitError(f"{path / 'materials.json'} does not match its models (feature lists of sizes "
                               f"{sorted(sizes)}): the file was edited or comes from another run; restore it or retrain")
        return est


class MaterialsRegressor(RegressorMixin, _MaterialsEstimator):
    """Formula -> property regressor (extra trees or IRNet, by table size; ensemble with ``n_models > 1``).

    Parameters
    ----------
    features : {"auto", "ward145", "elemnet86", "fractions118", "precomputed"}, several joined
        by "+", or a featuriser — "auto": Ward + element fractions for a tree ensemble, "elemnet86"
        for ElemNet, the 145 Ward attributes for the other networks; "precomputed": fit / predict
        take a feature matrix (n, d) instead of formulas (e.g. features computed once for all
        folds of a benchmark).
    model : "auto" (default: extra trees up to ``auto_threshold`` training rows, IRNet-17 above;
        ``auto_choice_`` says which and why), a core model name ("irnet17", "irnet24",
        "irnet48", "plain17", ..., "elemnet17", "mlp"), or a tree ensemble, "extra_trees" (500
        trees) or "random_forest" (300 trees): no training settings apply to those, they predict
        the median of their trees (the L1 point estimate; ``model_params={"aggregate": "mean"}``
        for the mean), and they cannot be fine-tuned.
    model_params : dict, optional — overrides for the model (e.g. ``{"hidden": (256, 256)}``,
        or ``{"n_estimators": 1000}`` for a tree ensemble)
    training : "backprop" or "hsic"
    n_models : int — ensemble size; predictions are the mean, the spread their std
    epochs, batch_size, lr, patience, validation_fraction, optimizer, train_params :
        training settings of a network; defaults are the modern recipe ``RECIPES["modern"]``
        (AdamW lr 1e-3, ``train_params`` weight decay 1e-4 and lr schedule "warmup_cosine": linear
        warm-up over 5 % of the 100 epochs then cosine decay; batch 256, early stopping with patience
        20 on a 10 % validation split); ``**RECIPES["paper"]`` for the IRNet paper's (Adam lr 1e-4,
        batch 32, 500 epochs, patience 50). ``train_params`` takes the keys of
        :mod:`hsickit.core.estimators`' (keys not given keep the recipe's). The loss is L1.
    auto_threshold : int — ``model="auto"`` fits IRNet instead of extra trees on more rows than this.
    hsic_params : dict, optional — HSIC-bottleneck settings (``sigma``, ``beta``, ``format_epochs``,
        ``lr`` ...; the keys of :mod:`hsickit.core.estimators`); a regression target defaults to the
        CKA estimator and 100 format-layer epochs at lr 0.01 (``REGRESSION_HSIC``).
    frozen_blocks : int — the first k blocks stay fixed when fine-tuning (``warm_start=True``).
    warm_start : bool — ``fit`` on a fitted network fine-tunes it on the new data instead of training
        anew (``set_params(warm_start=True, frozen_blocks=k).fit(formulas, y)``; see :meth:`fit`).
    time_limit : float, optional — seconds per model; its training stops after the first epoch
        that ends past it, keeping its best validation epoch (None: no limit).
    checkpoint_dir : path, optional — model i keeps ``checkpoint.safetensors`` in
        ``checkpoint_dir/member_i`` while it trains (removed when it ends) and is then saved there;
        a :meth:`fit` interrupted and called again with the same settings and data loads the models
        already trained and resumes the interrupted one from its last finished epoch (the result
        equals an uninterrupted fit). Not used by tree ensembles.
    random_state, verbose, device
    nonnegative : bool — for a property that cannot be negative (a band gap, a modulus): every
        model's prediction is clipped at 0 (ensemble mean and spread are taken over the clipped
        predictions, validation metrics too), and negative training targets are an error. Clipping
        is the projection onto the possible values, so it never increases the absolute error of
        any prediction whose true value is >= 0; training (L1 on the standardised target) is
        unchanged. Off by default.
    """

    _member_cls = DeepRegressor
    param_groups = {**_MaterialsEstimator.param_groups, "hsic_params": DeepRegressor.param_groups["hsic_params"]}

    def _predict_scaled(self, Xs, members=False):
        """Prediction from scaled features (with ``members``: also each tree's / model's)."""
        if is_forest(self._model_name()):
            preds = np.concatenate([m.tree_predictions(Xs) for m in self.members_])
        else:
            preds = np.stack([m.predict(Xs) for m in self.members_])
        if self.nonnegative:  # each model's prediction projected onto [0, inf): no error grows for a target >= 0
            preds = np.maximum(preds, 0.0)
        if is_forest(self._model_name()):
            mean = np.median(preds, 0) if self.members_[0].aggregate_ == "median" else preds.mean(0)
        else:
            mean = preds.mean(0)
        return (mean, preds) if members else mean

    def predict(self, formulas, return_std=False):
        """Predicted property (the ensemble mean; for a tree ensemble the median of its trees,
        see :mod:`~hsickit.apps.materials.forest`); with ``return_std`` also the ensemble std
        (needs ``n_models >= 2``, or a tree ensemble: the spread over its trees)."""
        check_is_fitted(self, "members_")
        mean, preds = self._predict_scaled(self.scale_features(self.featurize(formulas)), members=True)
        if not return_std:
            return mean
        if len(preds) < 2:
            raise HsickitError("return_std needs an ensemble: fit with n_models >= 2")
        return mean, preds.std(0)


class MaterialsClassifier(ClassifierMixin, _MaterialsEstimator):
    """Formula -> yes/no (or multi-class) property classifier, e.g. is-metal or glass-forming.

    Same parameters as :class:`MaterialsRegressor`; the loss is cross-entropy. Probabilities are
    averaged over the ensemble.

    Example
    -------
    >>> clf = MaterialsClassifier(model="mlp", model_params={"hidden": (16,)}, epochs=3, random_state=0)
    >>> clf = clf.fit(["Fe", "Cu", "NaCl", "MgO"] * 5, [1, 1, 0, 0] * 5)
    >>> clf.predict_proba(["Ni"]).shape
    (1, 2)
    """

    _member_cls = DeepClassifier

    @property
    def classes_(self):
        check_is_fitted(self, "members_")
        return self.members_[0].classes_

    def _predict_proba_scaled(self, Xs, members=False):
        """Class probabilities from scaled features (ensemble mean, or with ``members`` each model's)."""
        probs = np.stack([m.predict_proba(Xs) for m in self.members_])
        return probs if members else probs.mean(0)

    def predict_proba(self, formulas, return_std=False):
        """Class probabilities (ensemble mean), shape (n, n_classes); with ``return_std`` also
        their std over the ensemble."""
        check_is_fitted(self, "members_")
        probs = self._predict_proba_scaled(self.scale_features(self.featurize(formulas)), members=True)
        if not return_std:
            return probs.mean(0)
        if len(self.members_) < 2:
            raise HsickitError("return_std needs an ensemble: fit with n_models >= 2")
        return probs.mean(0), probs.std(0)

    def predict(self, formulas):
        return self.classes_[self.predict_proba(formulas).argmax(1)]


def _symbols(atomic_numbers) -> list:
    """Element symbols of atomic numbers (or symbols), unique, in atomic-number order."""
    from pymatgen.core import Element

    els = {Element.from_Z(int(z)) if not isinstance(z, str) else Element(z) for z in np.asarray(atomic_numbers).tolist()}
    return [e.symbol for e in sorted(els, key=lambda e: e.Z)]


def evaluation_metrics(est, y, output, in_domain=None) -> dict:
    """The scores of a materials model: what :meth:`~MaterialsRegressor.evaluate` returns and
    ``hsickit materials evaluate`` writes to metrics.json.

    ``output``: the predicted values (regressor) or class probabilities (classifier) of the
    rows whose targets are ``y``; ``in_domain``: per row, whether every element was seen in
    training (adds ``n_out_of_domain``), None when the model does not know.
    """
    from hsickit.apps.materials.matbench import classification_metrics, regression_metrics

    if isinstance(est, MaterialsClassifier):
        m = classification_metrics(y, output, est.classes_)
    else:
        m = regression_metrics(y, output)
    if in_domain is not None:
        m["n_out_of_domain"] = int(len(in_domain) - sum(bool(v) for v in in_domain))
    return m


def load_estimator(path):
    """Load a saved :class:`MaterialsRegressor` or :class:`MaterialsClassifier` (whichever it is)."""
    path = Path(path)
    if not (path / "materials.json").exists():
        raise HsickitError(f"{path} holds no saved materials model (materials.json missing); "
                           "give the folder written by `hsickit materials train` or .save()")
    kind = read_json(path / "materials.json")["estimator"]
    classes = {"MaterialsRegressor": MaterialsRegressor, "MaterialsClassifier": MaterialsClassifier}
    if kind not in classes:
        raise HsickitError(f"{path}: unknown estimator {kind!r}")
    return classes[kind].load(path)
