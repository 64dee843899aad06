"""scikit-learn estimators around hsickit's models and trainer.

``DeepClassifier`` and ``DeepRegressor`` drop into ``Pipeline`` and ``GridSearchCV``;
``training="hsic"`` trains with the HSIC bottleneck, ``"backprop"`` end to end.
``warm_start=True`` continues from the fitted model on new data (fine-tuning), optionally
with the first ``frozen_blocks`` blocks frozen.

Settings that only reach the trainer come in two dicts, each key a parameter of its own for
scikit-learn (``hsic_params__beta`` in ``get_params``, ``set_params`` and ``GridSearchCV``;
:mod:`hsickit.core.params`), with :class:`~hsickit.core.training.TrainConfig`'s defaults
(:func:`~hsickit.core.training.param_defaults`):

- ``train_params``: optimiser and trainer details: ``weight_decay``, ``lr_schedule``
  (None, "cosine", "plateau", "warmup_cosine"), ``momentum`` (SGD), ``precision``
  ("float32", "bf16"), ``sync_batchnorm``.
- ``hsic_params`` (``training="hsic"`` only): ``sigma``, ``beta``, ``estimator`` ("nocco",
  "cka", "biased", "unbiased"), ``target_kernel`` ("gaussian", "rank", "multiscale": a regression
  target's kernel), ``kernel_convention``, ``lr`` (the blocks'), ``format_epochs``,
  ``format_lr``, ``approx`` (None or "rff"), ``n_features``, ``distributed`` ("local",
  "gather"), ``recalibrate_bn``, ``probe_size``, ``target_kernel``, ``label_kernel``. The regressors
  default to the CKA estimator and a format phase (:data:`REGRESSION_HSIC`), which measured far
  closer to backprop on continuous targets; multi-label classifiers to CKA (:data:`MULTILABEL_HSIC`).

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from hsickit.core.estimators import DeepClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = DeepClassifier(model_params={"hidden": (32, 32)}, epochs=30, random_state=0)
>>> clf.fit(X, y).score(X, y) > 0.8
True
>>> sorted(clf.evaluate(X, y))  # the keys a run folder's metrics.json gets
['accuracy', 'n_samples']
>>> hsic = DeepClassifier(training="hsic", hsic_params={"beta": 50.0, "format_epochs": 5},
...                       train_params={"weight_decay": 1e-4}, epochs=5, random_state=0).fit(X, y)
>>> hsic.train_config_["beta"], hsic.train_config_["format_epochs"], hsic.train_config_["weight_decay"]
(50.0, 5, 0.0001)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from hsickit.core.errors import HsickitError
from hsickit.core.files import read_json, write_json
from hsickit.core.metrics import classification_metrics, regression_metrics
from hsickit.core.serialization import load_model, save_model, saved_params
from hsickit.core.models import create_model, model_config, model_config_type
from hsickit.core.params import GroupedParams, signature
from hsickit.core.progress import resolve_verbose
from hsickit.core.training import (CHECKPOINT, HSIC_PARAMS, TrainConfig, config_fields, param_defaults, train,
                                   validation_split)


#: The flat keywords that ``hsic_params`` replaced in this release (still accepted one release, with a warning).
_FLAT_HSIC = ("sigma", "beta", "hsic_estimator", "kernel_convention", "hsic_lr", "format_epochs", "hsic_approx",
              "n_features", "distributed_hsic")


#: ``hsic_params`` defaults of the regressors (the rest are TrainConfig's): with NOCCO and no format phase IRNet-17
#: reached 235 MPa on Matbench steels against backprop's 106; with these 113, and 0.435 eV on expt_gap against 0.366
#: (benchmarks/hsic_regression.py; chosen on a hold-out of steels fold 0's training part)
REGRESSION_HSIC = {"estimator": "cka", "format_epochs": 100, "format_lr": 0.01}
#: A multi-label ``DeepClassifier`` in HSIC mode uses these unless ``hsic_params`` names them: with NOCCO
#: (the multi-class default) an MLP on PTB-XL's HRV + median-beat features reached macro AUROC 0.770 on
#: fold 8 (10 seeds, trained on folds 1-7), with CKA 0.798, backprop 0.811 (benchmarks/hsic_multilabel.py).
MULTILABEL_HSIC = {"estimator": "cka"}


class _DeepEstimator(GroupedParams, TransformerMixin, BaseEstimator):
    _task = "regression"
    param_groups = {"hsic_params": param_defaults("hsic_params"), "train_params": param_defaults("train_params")}
    renamed = {**{field: ("hsic_params", key) for key, field in HSIC_PARAMS.items() if field in _FLAT_HSIC},
               **{name: ("train_params", name) for name in ("weight_decay", "lr_schedule", "precision")}}

    @signature()
    def __init__(self, *, model="mlp", model_params=None, training="backprop", epochs=50, batch_size="auto",
                 lr=1e-3, optimizer="adam", train_params=None, loss="auto", hsic_params=None, validation_fraction=0.1,
                 patience=10, frozen_blocks=0, warm_start=False, checkpoint_dir=None, random_state=None, verbose="auto",
                 device="cpu", **renamed_params):
        self.model = model
        self.model_params = model_params
        self.training = training
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.train_params = train_params
        self.loss = loss
        self.hsic_params = hsic_params
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.frozen_blocks = frozen_blocks
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.take_renamed(renamed_params)  # DeepClassifier(beta=50): the old spelling, one release

    # --- hooks the two subclasses fill in ------------------------------------------------
    def _encode_targets(self, y, fitting: bool):
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _class_weight(self, y_enc):
        return None

    # --- shared machinery ----------------------------------------------------------------
    def _takes_signals(self) -> bool:
        """Models with ``in_channels`` (conv encoders) take (n, channels, ...) arrays."""
        try:
            return "in_channels" in {f.name for f in dataclasses.fields(model_config_type(self.model))}
        except HsickitError:
            return False

    def _validate_X(self, X, reset: bool):
        return validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=self._takes_signals())

    def _validate_Xy(self, X, y, reset: bool):
        X, y = validate_data(self, X, y, reset=reset, dtype=np.float32, allow_nd=self._takes_signals(),
                             ensure_min_samples=2, multi_output=True, y_numeric=self._task == "regression")
        if self._task == "classification" and y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _train_config(self, n_train: int, y_enc) -> TrainConfig:
        bs = self.batch_size
        if bs == "auto":
            bs = max(2, min(128, n_train))
        elif not isinstance(bs, (int, np.integer)) or bs < 2:
            raise HsickitError(f"batch_size must be an integer >= 2 or 'auto', got {bs!r}")
        elif bs > n_train:
            raise HsickitError(f"batch_size={bs} is larger than the {n_train} training samples (after the validation split); pass batch_size <= {n_train} or 'auto'")
        if self.training not in ("backprop", "hsic"):
            raise HsickitError(f"training must be 'backprop' or 'hsic', got {self.training!r}")
        return TrainConfig(
            mode=self.training, task=self._task, epochs=self.epochs, batch_size=int(bs), lr=self.lr,
            optimizer=self.optimizer, loss=self.loss, class_weight=self._class_weight(y_enc), patience=self.patience,
            frozen_blocks=self.frozen_blocks, seed=self.seed_, device=self.device, verbose=resolve_verbose(self.verbose),
            **config_fields(self.group("hsic_params"), self.group("train_params")))

    def _build_model(self, X) -> torch.nn.Module:
        params = dict(self.model_params or {})
        key = "in_channels" if self._takes_signals() else "in_features"
        params.setdefault(key, X.shape[1])
        params.setdefault("out_features", self._n_outputs())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            sigma = self.group("hsic_params")["sigma"]
            if isinstance(sigma, (tuple, list)):  # sigma-combined: one member per kernel width
                member = dataclasses.asdict(model_config(self.model, **params))
                return create_model("parallel", member=member, n_members=len(sigma), out_features=params["out_features"])
            return create_model(self.model, **params)

    def fit(self, X, y, X_val=None, y_val=None, callbacks=()):
        """Train on (X, y); validation data default to a split carved from X.

        ``callbacks``: callables ``(row) -> bool`` called after every epoch with its history
        row; one returning True stops training (the best validation epoch is kept).
        """
        warm = self.warm_start and hasattr(self, "model_")
        X, y = self._validate_Xy(X, y, reset=not warm)
        y_enc = self._encode_targets(y, fitting=not warm)
        if not warm:
            self.seed_ = int(check_random_state(self.random_state).randint(2**31 - 1))
            self.model_ = self._build_model(X)
        if X_val is None:
            strat = y_enc if self._task == "classification" else None
            tr, va = validation_split(len(X), self.validation_fraction if self.patience is not None else 0.0, self.seed_, strat)
            X_tr, y_tr, X_va, y_va = X[tr], y_enc[tr], X[va], y_enc[va]
        else:
            X_tr, y_tr = X, y_enc
            X_va, y_va = self._validate_X(X_val, reset=False), self._encode_targets(np.asarray(y_val), fitting=False)
        config = self._train_config(len(X_tr), y_tr)
        ckpt = Path(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        history = train(self.model_, X_tr, y_tr, config, X_val=X_va, y_val=y_va, run_dir=ckpt, resume=ckpt is not None,
                        callbacks=callbacks)
        if warm:  # fine-tuning: its rows continue the epoch count, in phases of their own
            before = getattr(self, "history_", [])
            offset = max((r["epoch"] for r in before), default=0)
            history = [{**r, "phase": "finetune" if r["phase"] == "main" else f"finetune_{r['phase']}",
                        "epoch": r["epoch"] + offset} for r in history]
        self.history_ = (before if warm else []) + history
        self.train_config_ = config.to_dict()
        if ckpt is not None:
            (ckpt / CHECKPOINT).unlink(missing_ok=True)  # several processes (torchrun) may race here
        return self

    @torch.no_grad()
    def _forward(self, X, features: bool = False) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = self._validate_X(X, reset=False)
        self.model_.eval()
        dev = next(self.model_.parameters()).device
        outs = []
        for i in range(0, len(X), 4096):
            xb = torch.as_tensor(X[i:i + 4096], device=dev)
            outs.append((self.model_.features(xb) if features else self.model_(xb)).float().cpu())
        return torch.cat(outs).numpy()

    def transform(self, X) -> np.ndarray:
        """The last block's representation of X (an embedding, e.g. for fusion)."""
        return self._forward(X, features=True)

    def fit_transform(self, X, y=None, **fit_params):
        return self.fit(X, y, **fit_params).transform(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.target_tags.required = True
        return tags

    # --- persistence ---------------------------------------------------------------------
    def _state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def save(self, path) -> Path:
        """Write ``model.safetensors`` and ``estimator.json`` into the folder ``path``."""
        check_is_fitted(self, "model_")
        path = Path(path)
        save_model(self.model_, path / "model.safetensors")
        write_json(path / "estimator.json", {
            "estimator": type(self).__name__, "params": saved_params(self), "n_features_in_": self.n_features_in_,
            "seed": self.seed_, "history": self.history_, "train_config": self.train_config_, **self._state()})
        return path

    @classmethod
    def load(cls, path, **overrides):
        """Load an estimator saved with :meth:`save` (a callable loss must be passed again in ``overrides``)."""
        path = Path(path)
        meta = read_json(path / "estimator.json")
        if meta.get("estimator") != cls.__name__:
            raise HsickitError(f"{path} holds a {meta.get('estimator')}, not a {cls.__name__}; load it with {meta.get('estimator')}.load")
        params = {**cls.upgrade_params(meta["params"]), **overrides}  # flat HSIC / optimiser keywords: saved before 0.y
        if params.get("model_params"):
            params["model_params"] = {k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()}
        est = cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})
        est.model_ = load_model(path / "model.safetensors")
        est.n_features_in_, est.seed_ = meta["n_features_in_"], meta["seed"]
        est.history_, est.train_config_ = meta["history"], meta["train_config"]
        est._set_state(meta)
        est._check_loaded(path)
        return est

    def _check_loaded(self, path: Path) -> None:
        """estimator.json must describe the network it sits beside (an edited or swapped file is an error)."""
        config = self.model_.config
        outputs, inputs = getattr(config, "out_features", None), getattr(config, "in_features", None)
        n_out = len(self.classes_) if hasattr(self, "classes_") else getattr(self, "n_outputs_", None)
        problems = []
        if outputs is not None and n_out is not None and n_out != outputs:
            what = "classes" if hasattr(self, "classes_") else "target columns"
            problems.append(f"it lists {n_out} {what} but the network has {outputs} outputs")
        if inputs is not None and not self._takes_signals() and self.n_features_in_ != inputs:
            problems.append(f"it says {self.n_features_in_} input features but the network takes {inputs}")
        if problems:
            raise HsickitError(f"{path / 'estimator.json'} does not match {path / 'model.safetensors'} "
                               f"({'; '.join(problems)}): the file was edited or comes from another run; restore it "
                               "from a copy or retrain")


class DeepClassifier(ClassifierMixin, _DeepEstimator):
    """Deep classifier (multi-class, or multi-label from a 2-D 0/1 ``y``).

    Extra parameters: ``class_weight`` (None or "balanced"), ``classes`` (fix the label
    set and its order, e.g. all species of a taxonomy, even those absent from ``y``).
    See :class:`~hsickit.core.training.TrainConfig` for the training parameters. A multi-label
    ``y`` in HSIC mode gets the CKA estimator unless ``hsic_params`` names one
    (:data:`MULTILABEL_HSIC`) and the "balanced" label kernel (``hsic_params["label_kernel"]``).
    """

    _task = "classification"

    @signature(_DeepEstimator.__init__)
    def __init__(self, *, class_weight=None, classes=None, **params):
        super().__init__(**params)
        self.class_weight = class_weight
        self.classes = classes

    def _train_config(self, n_train: int, y_enc) -> TrainConfig:
        config = super()._train_config(n_train, y_enc)
        if self._task == "multilabel":
            named = self.hsic_params or {}
            for key, value in MULTILABEL_HSIC.items():
                if key not in named:
                    setattr(config, HSIC_PARAMS[key], value)
        return config

    def _encode_targets(self, y, fitting: bool):
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            if fitting:
                self.multilabel_, self.classes_ = True, np.arange(y.shape[1])
            elif not getattr(self, "multilabel_", False) or y.shape[1] != len(self.classes_):
                raise HsickitError(f"y has {y.shape[1]} label columns but the model was fitted on {len(self.classes_)}")
            self._task = "multilabel"
            return y.astype(np.float32)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {kind!r}. DeepClassifier needs class labels or a 2-D 0/1 indicator matrix (for regression targets use DeepRegressor)")
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
        if fitting:
            self.multilabel_ = False
            self.classes_ = np.unique(y) if self.classes is None else np.asarray(self.classes)
            if self.classes is None and len(self.classes_) < 2:
                raise HsickitError(f"y is constant: it has only one class ({self.classes_.tolist()[0]!r}); a classifier "
                                   "needs at least two (numbers to predict: use DeepRegressor)")
        self._task = "classification"
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = sorted({v for v in y.tolist() if v not in index}, key=str)
        if unknown:
            raise HsickitError(f"labels {unknown[:5]} are not among the model's classes; add them to `classes` or fine-tune with a grown output layer")
        return np.fromiter((index[v] for v in y.tolist()), dtype=np.int64, count=len(y))

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _class_weight(self, y_enc):
        if self.class_weight is None or self._task != "classification":
            return None
        w = np.ones(len(self.classes_))
        if isinstance(self.class_weight, dict):
            for i, c in enumerate(self.classes_.tolist()):
                w[i] = self.class_weight.get(c, 1.0)
        elif self.class_weight == "balanced":
            present = np.unique(y_enc)
            w[present] = compute_class_weight("balanced", classes=present, y=y_enc)
        else:
            raise HsickitError(f"class_weight must be None, 'balanced' or a dict class -> weight, got {self.class_weight!r}")
        return w.tolist()

    def decision_function(self, X) -> np.ndarray:
        """Logits; for two classes, the positive class's log-odds (scikit-learn's convention)."""
        logits = self._forward(X)
        if not self.multilabel_ and logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X) -> np.ndarray:
        logits = torch.as_tensor(self._forward(X))
        return (torch.sigmoid(logits) if self.multilabel_ else torch.softmax(logits, 1)).numpy()

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba > 0.5).astype(np.int64)
        return self.classes_[proba.argmax(1)]

    def evaluate(self, X, y) -> dict:
        """Scores on labelled data (:func:`hsickit.core.metrics.classification_metrics`: accuracy,
        n_samples), the keys a run folder's ``metrics.json`` gets (``hsickit demo``)."""
        return classification_metrics(y, self.predict(X))

    def _state(self) -> dict:
        return {"classes": self.classes_.tolist(), "multilabel": bool(self.multilabel_)}

    def _set_state(self, state: dict) -> None:
        self.classes_, self.multilabel_ = np.asarray(state["classes"]), state["multilabel"]
        self._task = "multilabel" if self.multilabel_ else "classification"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class DeepRegressor(RegressorMixin, _DeepEstimator):
    """Deep regressor; targets are standardised internally, predictions come in y's units.

    See :class:`~hsickit.core.training.TrainConfig` for the training parameters.
    ``training="hsic"`` defaults to ``hsic_params={"estimator": "cka", "format_epochs": 100,
    "format_lr": 0.01}`` here (:data:`REGRESSION_HSIC`; the classifiers keep NOCCO without a
    format phase). With those, IRNet-17 came within 20 % of backprop: Matbench steels 113 MPa
    against 106 (1.07x), expt_gap 0.435 eV against 0.366 over 5 folds, each training cut at
    400 s (1.19x; per fold 1.09x to 1.32x). With NOCCO and no format phase it was far behind,
    whatever ``hsic_params["target_kernel"]`` ("gaussian", "rank", "multiscale"): steels
    235 / 222 / 221 MPa. Figures: benchmarks/hsic_regression.py,
    ``benchmarks/results/hsic_regression_*.json``. Backprop is still the better choice.
    """

    _task = "regression"
    param_groups = {**_DeepEstimator.param_groups, "hsic_params": {**param_defaults("hsic_params"), **REGRESSION_HSIC}}

    def fit(self, X, y, X_val=None, y_val=None, callbacks=()):
        """As :meth:`_DeepEstimator.fit`; the history's ``val_mae`` / ``train_mae`` are then in y's unit
        (the trainer sees the standardised target: its figure stays in ``val_mae_standardised``).
        With several target columns, whose units differ, only ``val_mae_standardised`` is kept."""
        super().fit(X, y, X_val=X_val, y_val=y_val, callbacks=callbacks)
        for row in self.history_:  # rows already converted (a fine-tuning's earlier rows) keep their figures
            for key in ("train_mae", "val_mae"):
                if key in row and f"{key}_standardised" not in row:
                    row[f"{key}_standardised"] = row.pop(key)
                    if self.n_outputs_ == 1:
                        row[key] = row[f"{key}_standardised"] * float(self.y_scale_[0])
        return self

    def _encode_targets(self, y, fitting: bool):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim not in (1, 2):
            raise HsickitError(f"y must be 1-D or 2-D, got shape {y.shape}")
        y2 = y.reshape(len(y), -1)
        if fitting:
            self.n_outputs_, self.y_1d_ = y2.shape[1], y.ndim == 1
            self.y_mean_ = np.nanmean(y2, 0) if len(y2) else np.zeros(y2.shape[1])
            scale = np.nanstd(y2, 0) if len(y2) else np.ones(y2.shape[1])
            self.y_scale_ = np.where(scale > 0, scale, 1.0)
        elif y2.shape[1] != self.n_outputs_:
            raise HsickitError(f"y has {y2.shape[1]} target columns but the model was fitted on {self.n_outputs_}")
        return ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags

    def predict(self, X) -> np.ndarray:
        out = self._forward(X).astype(np.float64) * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_1d_ else out

    def evaluate(self, X, y) -> dict:
        """Scores in y's units (:func:`hsickit.core.metrics.regression_metrics`: mae, rmse, r2, n_samples)."""
        return regression_metrics(y, self.predict(X))

    def _state(self) -> dict:
        return {"y_mean": self.y_mean_.tolist(), "y_scale": self.y_scale_.tolist(), "y_1d": self.y_1d_}

    def _set_state(self, state: dict) -> None:
        self.y_mean_, self.y_scale_ = np.asarray(state["y_mean"]), np.asarray(state["y_scale"])
        self.y_1d_, self.n_outputs_ = state["y_1d"], len(self.y_mean_)
