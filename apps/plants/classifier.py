"""``TaxonomicClassifier``: species classifier with tree-consistent predictions at every level.

One softmax over the species (leaves) of a :class:`~hsickit.datasets.plants.Taxonomy`,
trained with the taxonomic loss (``core.losses.GroupedLoss``: negative log-likelihood of
the true species, genus, family ... with the group probabilities as sums of species
probabilities) or plain cross-entropy, by backprop or the HSIC bottleneck. Feature
vectors use a residual MLP, images (n, 1, H, W) the small CNN ``leafcnn``. Leaf outlines
(1-D contour signatures (n, N) or (x, y) curves (n, N, 2)) are classified with
``representation`` set: elliptic Fourier descriptors or Fourier magnitudes into the residual
MLP, or the contour itself into the 1-D CNN ``contourcnn`` (:mod:`hsickit.apps.plants.outlines`).

Examples
--------
>>> import io, numpy as np
>>> from hsickit.datasets.plants import read_taxonomy
>>> from hsickit.apps.plants import TaxonomicClassifier
>>> tax = read_taxonomy(io.StringIO("species,genus,family\\nA a,A,F\\nA b,A,F\\nB c,B,G\\n"))
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(["A a", "A b", "B c"], 20)
>>> X = rng.normal(size=(60, 4)) + np.repeat(np.eye(3, 4) * 4, 20, axis=0)
>>> clf = TaxonomicClassifier(tax, epochs=30, random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9
True
>>> sorted(clf.predict_levels(X[:1]))
['family', 'genus', 'species']
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from hsickit.core.errors import HsickitError
from hsickit.core.estimators import DeepClassifier
from hsickit.core.files import read_json, write_json
from hsickit.core.params import GroupedParams, signature
from hsickit.core.serialization import saved_params
from hsickit.core.losses import GroupedLoss
from hsickit.core.models import block_chains
from hsickit.core.training import param_defaults, validation_split
from hsickit.datasets.plants import Taxonomy, read_taxonomy

from hsickit.apps.plants.encoders import CONTOUR_ENCODER, FEATURE_ENCODER, IMAGE_ENCODER
from hsickit.apps.plants.hierarchy import level_probabilities, prediction_table
from hsickit.apps.plants.metrics import taxonomic_metrics

__all__ = ["TaxonomicClassifier", "LOSSES"]

LOSSES = ("taxonomic", "ce")
FEATURE_DEFAULTS = {"hidden": (512, 512), "dropout": 0.2}
FINETUNE_LR = 3e-4
"""Learning rate ``hsickit plants finetune`` fine-tunes with (the output layer only, by default)."""
FINETUNE_VALIDATION = 0.2
"""Share of the new specimens ``hsickit plants finetune`` holds out (stratified) for early stopping and the reported score."""


def _as_taxonomy(taxonomy) -> Taxonomy:
    if isinstance(taxonomy, Taxonomy):
        return taxonomy
    if taxonomy is None:
        raise HsickitError("TaxonomicClassifier needs a taxonomy: pass a Taxonomy or the path of a taxonomy CSV")
    return read_taxonomy(taxonomy)


class TaxonomicClassifier(GroupedParams, ClassifierMixin, BaseEstimator):
    """Hierarchical (species -> genus -> family ...) classifier with the taxonomic loss.

    Parameters
    ----------
    taxonomy : Taxonomy or path
        The tree; its leaves are the classes (``classes_``, in taxonomy order; the fitted tree is
        ``taxonomy_``). When fine-tuning (``warm_start=True``), the species of this taxonomy that
        ``taxonomy_`` lacks are added to it (a whole tree or just the rows of the new species).
    loss : {"taxonomic", "ce"}
        Grouped log-space taxonomic loss, or plain cross-entropy over the species.
    level_weights : sequence of float, optional
        Weight of each level in the taxonomic loss, leaf level first (default all 1).
    encoder : {"auto", "residual_mlp", "leafcnn", "contourcnn", or any core model name}
        "auto": residual MLP for feature vectors (and outline descriptors), ``leafcnn`` for
        images, ``contourcnn`` for contours (``representation="contour"``).
    representation : {None, "efd", "fourier", "contour"}
        None: ``X`` is feature vectors or images. Otherwise ``X`` is leaf outlines, 1-D signatures
        (n, N) or (x, y) curves (n, N, 2), turned into this representation (see
        :mod:`hsickit.apps.plants.outlines`) before every fit and prediction.
    representation_params : dict, optional
        Options of the representation: ``{"order": 20}`` (efd), ``{"harmonics": 32}`` (fourier).
    model_params : dict, optional
        Overrides of the encoder's config (e.g. ``{"hidden": (256, 256)}``).
    training : {"backprop", "hsic"}
    label_smoothing : float
        Label smoothing of the species term of the loss (0: off; see ``GroupedLoss``).
    epochs, batch_size, lr, optimizer, patience, validation_fraction :
        Passed to :class:`hsickit.core.estimators.DeepClassifier`.
    train_params : dict, optional
        Optimiser and trainer details, the keys of :mod:`hsickit.core.estimators` (``weight_decay``:
        1e-4 here, ``lr_schedule``: None, ``momentum``, ``precision``, ...); keys not given keep their defaults.
    hsic_params : dict, optional
        HSIC-bottleneck settings (``training="hsic"``), the keys of :mod:`hsickit.core.estimators`
        (``beta``, ``sigma``, ``format_epochs``, ...).
    standardize : bool
        z-score feature vectors with the training mean and standard deviation.
    random_state, verbose, device
    checkpoint_dir : path, optional
        Folder for the network's ``checkpoint.safetensors`` while it trains: an interrupted
        :meth:`fit` called again resumes from its last finished epoch (not saved with the model).
    warm_start : bool
        ``fit`` on a fitted model fine-tunes it on the new specimens instead of training anew
        (see :meth:`fit`): ``set_params(warm_start=True, frozen_blocks="encoder").fit(X_new, y_new)``.
    frozen_blocks : "encoder" or int
        When fine-tuning, the encoder blocks kept fixed: "encoder" (all; only the output layer
        learns), or the first k (0: none). Not used by a first fit.
    keep_known : bool
        When fine-tuning with new species, only the new species' output weights learn (those of
        the species the model knew stay fixed, without weight decay).
    """

    param_groups = {"hsic_params": param_defaults("hsic_params"),
                    "train_params": {**param_defaults("train_params"), "weight_decay": 1e-4}}
    renamed = {"beta": ("hsic_params", "beta"), "format_epochs": ("hsic_params", "format_epochs"),
               "weight_decay": ("train_params", "weight_decay"), "lr_schedule": ("train_params", "lr_schedule")}

    @signature()
    def __init__(self, taxonomy=None, loss="taxonomic", level_weights=None, encoder="auto", model_params=None,
                 training="backprop", epochs=200, batch_size=64, lr=1e-3, train_params=None, patience=30,
                 validation_fraction=0.15, hsic_params=None, standardize=True,
                 random_state=None, verbose="auto", device="cpu", optimizer="adam", label_smoothing=0.0,
                 checkpoint_dir=None, representation=None, representation_params=None, warm_start=False,
                 frozen_blocks=0, keep_known=True, **renamed_params):
        self.taxonomy = taxonomy
        self.loss = loss
        self.level_weights = level_weights
        self.encoder = encoder
        self.model_params = model_params
        self.training = training
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.train_params = train_params
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.hsic_params = hsic_params
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.optimizer = optimizer
        self.label_smoothing = label_smoothing
        self.checkpoint_dir = checkpoint_dir
        self.representation = representation
        self.representation_params = representation_params
        self.warm_start = warm_start
        self.frozen_blocks = frozen_blocks
        self.keep_known = keep_known
        self.take_renamed(renamed_params)  # TaxonomicClassifier(beta=50): the old spelling, one release

    # --- helpers ------------------------------------------------------------------------
    def _loss_fn(self, taxonomy: Taxonomy) -> GroupedLoss:
        if self.loss not in LOSSES:
            raise HsickitError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.loss == "ce":
            return GroupedLoss(label_smoothing=self.label_smoothing)
        weights = self.level_weights
        if weights is not None and len(weights) != len(taxonomy.levels):
            raise HsickitError(f"level_weights has {len(weights)} entries but the taxonomy has levels "
                               f"{list(taxonomy.levels)}; give one weight per level, leaf level first")
        return GroupedLoss(taxonomy.group_maps(), weights, label_smoothing=self.label_smoothing)

    def _y(self, y, taxonomy: Taxonomy) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype.kind in "iu":
            if len(y) and (y.min() < 0 or y.max() >= taxonomy.n_leaves):
                raise HsickitError(f"leaf indices must lie in 0..{taxonomy.n_leaves - 1}; pass species labels instead")
            return y.astype(np.int64)
        return taxonomy.index_of(y)

    def _represent(self, X) -> np.ndarray:
        """Outlines -> their representation (``representation`` set); else float32, images with a channel axis."""
        if self.representation is None:
            X = np.asarray(X, dtype=np.float32)
            return X[:, None] if X.ndim == 3 else X
        from hsickit.apps.plants.outlines import outline_kind, represent

        kind, fitted = outline_kind(X), getattr(self, "outline_kind_", None)
        if fitted is not None and kind != fitted:
            what = {"signatures": "1-D contour signatures (n, points)", "outlines": "(x, y) outlines (n, points, 2)"}
            raise HsickitError(f"the model was trained on {what[fitted]} but got {what[kind]}; "
                               "pass outlines read the same way as for training")
        return represent(X, self.representation, **(self.representation_params or {}))

    def _scale(self, X) -> np.ndarray:
        """Represent outlines; flatten images and contours (the CNN restores their shape); z-score feature vectors."""
        return self._standardize(self._represent(X))

    def _standardize(self, X) -> np.ndarray:
        if self.image_shape_ is not None:
            if X.shape[1:] != tuple(self.image_shape_) and X.ndim > 2:
                what = "contours" if X.ndim == 3 else "images"
                raise HsickitError(f"{what} have shape {X.shape[1:]} but the model was trained on {tuple(self.image_shape_)}; "
                                   + ("resample the outlines to the same number of points" if X.ndim == 3
                                      else "read them with the same image size"))
            return X.reshape(len(X), -1)
        if self.mean_ is None:
            return X
        if X.ndim != 2 or X.shape[1] != len(self.mean_):
            raise HsickitError(f"X has shape {X.shape} but the model was trained on {len(self.mean_)} features; "
                               "pass the same feature columns as in training")
        return (X - self.mean_) / self.scale_

    def _batch_size(self, n: int, has_val: bool, patience="unset"):
        """``batch_size`` capped to the training samples left after the validation split."""
        if self.batch_size == "auto":
            return "auto"
        from hsickit.core.checks import check_batch_size

        patience = self.patience if patience == "unset" else patience
        frac = 0.0 if has_val or patience is None else self.validation_fraction
        return int(max(2, min(check_batch_size(self.batch_size), int(n * (1 - frac)) - 1)))

    def _encoder_name(self, X) -> str:
        if self.encoder != "auto":
            return self.encoder
        return {4: IMAGE_ENCODER, 3: CONTOUR_ENCODER}.get(np.ndim(X), FEATURE_ENCODER)

    def _model_params(self, name: str) -> dict:
        if self.model_params is not None:
            return dict(self.model_params)
        return dict(FEATURE_DEFAULTS) if name == FEATURE_ENCODER else {}

    def _encoder_params(self, name: str, X) -> dict:
        params = self._model_params(name)
        if X.ndim > 2:
            params["image_shape" if X.ndim == 4 else "signal_shape"] = tuple(int(v) for v in X.shape[1:])
        return params

    # --- fitting --------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, callbacks=()):
        """Train on specimens ``X`` (features (n, d), images (n, C, H, W), or outlines with
        ``representation``) with species labels ``y``.

        ``callbacks``: callables ``(row) -> bool`` called after every epoch with its history row;
        returning True stops training (the best validation epoch is kept), e.g. a time limit.

        With ``warm_start=True`` on a fitted model, ``fit`` fine-tunes it on the new specimens
        (``epochs``, ``lr`` as set now; ``frozen_blocks`` encoder blocks fixed). Species of
        ``taxonomy`` that the model lacks grow the output layer (``taxonomy_`` and ``classes_``
        grow; ``taxonomy`` itself is left as given); their output weights start from the mean of
        their genus (else family, else all) rows. A few dozen specimens of a handful of species
        cannot retrain the features (and their BatchNorm statistics) without erasing what the model
        knew, hence ``frozen_blocks="encoder"``, a low ``lr`` and ``keep_known``. Training stops
        early on ``X_val`` or, without it, on a stratified ``validation_fraction`` of the new
        specimens (their indices: ``validation_index_``). The feature scaling of the first fit stays.
        """
        if self.warm_start and hasattr(self, "net_"):
            return self._fit_warm(X, y, X_val, y_val, callbacks)
        tax = _as_taxonomy(self.taxonomy)
        self.outline_kind_ = None
        if self.representation is not None:
            from hsickit.apps.plants.outlines import outline_kind

            self.outline_kind_ = outline_kind(X)
        X = self._represent(X)  # (n, H, W) grayscale images get a channel axis
        y_idx = self._y(y, tax)
        self.taxonomy_ = tax
        self.classes_ = tax.leaves
        self.mean_ = self.scale_ = None
        self.image_shape_ = list(X.shape[1:]) if X.ndim > 2 else None
        if self.standardize and X.ndim == 2:
            self.mean_ = X.mean(0)
            sd = X.std(0)
            self.scale_ = np.where(sd > 0, sd, 1.0).astype(np.float32)
        name = self._encoder_name(X)
        self.net_ = DeepClassifier(model=name, model_params=self._encoder_params(name, X), training=self.training,
                         epochs=self.epochs, batch_size=self._batch_size(len(X), X_val is not None), lr=self.lr,
                         optimizer=self.optimizer, train_params=self.group("train_params"),
                         loss=self._loss_fn(tax), patience=self.patience, validation_fraction=self.validation_fraction,
                         hsic_params=self.group("hsic_params"),
                         classes=np.arange(tax.n_leaves), checkpoint_dir=self.checkpoint_dir,
                         random_state=self.random_state, verbose=self.verbose, device=self.device)
        if X_val is not None:
            X_val, y_val = self._scale(X_val), self._y(y_val, tax)
        self.net_.fit(self._standardize(X), y_idx, X_val=X_val, y_val=y_val, callbacks=callbacks)
        self.history_ = self.net_.history_
        return self

    def _fit_warm(self, X, y, X_val, y_val, callbacks):
        """Fine-tune the fitted network on new specimens (:meth:`fit` with ``warm_start=True``)."""
        tax = self.taxonomy_
        if self.taxonomy is not None:
            given = _as_taxonomy(self.taxonomy)
            if given is not self.taxonomy_:
                grown = self.taxonomy_.extend(given)
                tax = grown if grown.n_leaves > self.taxonomy_.n_leaves else self.taxonomy_
        y_idx = self._y(y, tax)
        X = np.asarray(X, dtype=np.float32)
        n_blocks = len(block_chains(self.net_.model_)[0])
        frozen_blocks = n_blocks if self.frozen_blocks == "encoder" else self.frozen_blocks
        if isinstance(frozen_blocks, str) or not 0 <= int(frozen_blocks) <= n_blocks:
            raise HsickitError(f"frozen_blocks must be 'encoder' or an integer in 0..{n_blocks}, got {self.frozen_blocks!r}")
        self.validation_index_ = np.arange(0)
        if X_val is None:
            train_idx, self.validation_index_ = validation_split(len(y_idx), self.validation_fraction, self.net_.seed_, y_idx)
            if len(self.validation_index_):
                X_val, y_val = X[self.validation_index_], y_idx[self.validation_index_]
                X, y_idx = X[train_idx], y_idx[train_idx]
        old = self.taxonomy_.n_leaves
        if tax.n_leaves > old:
            self._grow_head(tax, old)
        net = self.net_
        net.set_params(classes=np.arange(tax.n_leaves), loss=self._loss_fn(tax), warm_start=True,
                       batch_size=self._batch_size(len(y_idx), X_val is not None, net.patience),
                       frozen_blocks=int(frozen_blocks), epochs=self.epochs, lr=self.lr, verbose=self.verbose)
        net.classes_ = np.arange(tax.n_leaves)
        if X_val is not None:
            X_val, y_val = self._scale(X_val), self._y(y_val, tax)
        hooks, train_params = [], net.train_params
        if self.keep_known and tax.n_leaves > old:
            head = net.model_.head
            learn = (torch.arange(tax.n_leaves) >= old).to(head.weight)
            hooks = [head.weight.register_hook(lambda g: g * learn[:, None]), head.bias.register_hook(lambda g: g * learn)]
            net.set_params(train_params__weight_decay=0.0)
        try:
            net.fit(self._scale(X), y_idx, X_val=X_val, y_val=y_val, callbacks=callbacks)
        finally:
            for h in hooks:
                h.remove()
            net.set_params(train_params=train_params)
        self.taxonomy_, self.classes_ = tax, tax.leaves
        self.history_ = net.history_
        return self

    def finetune(self, X, y, taxonomy=None, epochs: int | None = None, lr: float = FINETUNE_LR,
                 frozen_blocks: int | str = "encoder", X_val=None, y_val=None,
                 validation_fraction: float = FINETUNE_VALIDATION, keep_known: bool = True):
        """Deprecated: use ``set_params(warm_start=True, frozen_blocks="encoder", lr=3e-4).fit(X, y)``
        (``taxonomy=`` for new species). Kept for one release; fine-tunes as :meth:`fit` does with
        ``warm_start=True``, and leaves the parameters as they were (``taxonomy`` included)."""
        warnings.warn("TaxonomicClassifier.finetune(...) is deprecated and will be removed in the next release; use "
                      "clf.set_params(warm_start=True, frozen_blocks='encoder', lr=3e-4[, taxonomy=NEW_ROWS]).fit(X, y)",
                      FutureWarning, stacklevel=2)
        check_is_fitted(self, "net_")
        new = {"warm_start": True, "frozen_blocks": frozen_blocks, "lr": lr, "validation_fraction": validation_fraction,
               "keep_known": keep_known, "epochs": epochs or self.epochs,
               "taxonomy": self.taxonomy if taxonomy is None else taxonomy}
        before = {k: getattr(self, k) for k in new}
        try:
            return self.set_params(**new).fit(X, y, X_val=X_val, y_val=y_val)
        finally:
            self.set_params(**before)

    @torch.no_grad()
    def _grow_head(self, tax: Taxonomy, old: int) -> None:
        head = self.net_.model_.head
        if not isinstance(head, torch.nn.Linear):
            raise HsickitError(f"cannot grow an output layer of type {type(head).__name__}; fine-tune needs a Linear head")
        new = torch.nn.Linear(head.in_features, tax.n_leaves).to(head.weight.device)
        new.weight[:old] = head.weight
        new.bias[:old] = head.bias
        gen = torch.Generator().manual_seed(int(self.net_.seed_) + tax.n_leaves)
        for j in range(old, tax.n_leaves):
            rows = np.arange(old)
            for lvl in tax.levels[1:]:
                codes = tax.group_index(lvl)
                same = np.nonzero(codes[:old] == codes[j])[0]
                if len(same):
                    rows = same
                    break
            w = head.weight[rows].mean(0)
            noise = torch.randn(w.shape, generator=gen).to(w) * head.weight.std() * 0.1
            new.weight[j] = w + noise
            new.bias[j] = head.bias[rows].mean()
        self.net_.model_.head = new
        self.net_.model_.config.out_features = tax.n_leaves

    # --- prediction -----------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """Species (leaf) probabilities, (n, n_leaves), columns in ``classes_`` order."""
        check_is_fitted(self, "net_")
        return self.net_.predict_proba(self._scale(X)).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]

    def predict_levels(self, X) -> dict[str, np.ndarray]:
        """Tree-consistent probabilities at every level: ``{level: (n, n_groups)}``."""
        return level_probabilities(self.predict_proba(X), self.taxonomy_)

    def predict_table(self, X, ids=None, k: int = 5, threshold: float = 0.5) -> pd.DataFrame:
        """Predicted lineage with each level's probability, top-k species and the back-off answer
        (``backoff_level`` "none" and an empty name when no level reaches ``threshold``), one row per sample."""
        return prediction_table(self.predict_proba(X), self.taxonomy_, ids=ids, k=k, threshold=threshold)

    def transform(self, X) -> np.ndarray:
        """The encoder's representation (last block output)."""
        check_is_fitted(self, "net_")
        return self.net_.transform(self._scale(X))

    def score(self, X, y, sample_weight=None) -> float:
        """Species accuracy (labels matched through the taxonomy)."""
        y_idx = self._y(y, self.taxonomy_)
        ok = self.predict_proba(X).argmax(1) == y_idx
        return float(np.average(ok, weights=sample_weight))

    def evaluate(self, X, y, k: int = 5, thresholds: Sequence[float] = (0.5, 0.7, 0.9)) -> dict:
        """All taxonomic metrics (see :func:`hsickit.apps.plants.metrics.taxonomic_metrics`)."""
        return taxonomic_metrics(self._y(y, self.taxonomy_), self.predict_proba(X), self.taxonomy_, k=k,
                                 thresholds=thresholds)

    # --- persistence ----------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the network (safetensors + JSON) and ``plants.json`` (taxonomy, scaling, settings)."""
        check_is_fitted(self, "net_")
        path = Path(path)
        self.net_.save(path)
        write_json(path / "plants.json", {
            "params": saved_params(self, leave_out=["taxonomy"]), "taxonomy": self.taxonomy_.to_dict(),
            "mean": None if self.mean_ is None else self.mean_.tolist(),
            "scale": None if self.scale_ is None else self.scale_.tolist(), "image_shape": self.image_shape_,
            "outline_kind": self.outline_kind_})
        return path

    @classmethod
    def load(cls, path) -> "TaxonomicClassifier":
        """Load a classifier written by :meth:`save` (a run folder)."""
        path = Path(path)
        meta = read_json(path / "plants.json")
        tax = Taxonomy.from_dict(meta["taxonomy"], source=str(path / "plants.json"))
        params = cls.upgrade_params(meta["params"])  # flat HSIC / optimiser keywords: saved before they were grouped
        if params.get("model_params"):
            params["model_params"] = {k: tuple(v) if isinstance(v, list) else v for k, v in params["model_params"].items()}
        if params.get("level_weights") is not None:
            params["level_weights"] = tuple(params["level_weights"])
        clf = cls(taxonomy=tax, **{k: v for k, v in params.items() if k in cls._get_param_names()})
        clf.taxonomy_, clf.classes_ = tax, tax.leaves
        clf.mean_ = None if meta["mean"] is None else np.asarray(meta["mean"], dtype=np.float32)
        clf.scale_ = None if meta["scale"] is None else np.asarray(meta["scale"], dtype=np.float32)
        clf.image_shape_ = meta.get("image_shape")
        clf.outline_kind_ = meta.get("outline_kind")
        clf.net_ = DeepClassifier.load(path, loss=clf._loss_fn(tax))
        clf.history_ = clf.net_.history_
        n_out, n_in = len(clf.net_.classes_), clf.net_.n_features_in_
        if tax.n_leaves != n_out or (clf.mean_ is not None and clf.mean_.shape[-1] != n_in and not clf.image_shape_):
            raise HsickitError(f"{path / 'plants.json'} does not match the network in {path} (taxonomy of {tax.n_leaves} "
                               f"species for {n_out} outputs; {None if clf.mean_ is None else clf.mean_.shape[-1]} feature "
                               f"scales for {n_in} inputs): the file was edited or comes from another run; restore it "
                               "from a copy or retrain")
        return clf
