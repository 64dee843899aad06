"""One training loop, two ways to get gradients: end-to-end backprop or the HSIC bottleneck.

In ``mode="hsic"`` every hidden block i learns from its own local objective
``nHSIC(Z_i, X) - beta * nHSIC(Z_i, Y)`` computed on its *detached* input, and the head
(format layer) learns the task loss on the detached last representation. On one process
each block's local loss is differentiated as soon as it is computed, so only one block's
graph is alive at a time (memory for the gradient independent of depth); under
``torchrun`` all local losses are summed and differentiated in one backward pass (what
DDP needs). Either way the cost per batch is linear in depth. A block whose output turns
NaN or inf stops the fit with an error naming the block and the epoch. ``format_epochs``
then trains the head alone on the frozen representation, as the reference method does.

Large batches: ``hsic_approx="rff"`` replaces every Gaussian kernel by ``n_features``
random Fourier features (O(m D) memory instead of O(m^2); see :mod:`hsickit.core.hsic`).

Several processes (``torchrun``): the same seeded per-epoch permutation is cut into global
batches of ``batch_size``, and rank r takes rows ``r, r + N, r + 2N, ...`` of each (what
``DistributedSampler`` does, but independent of N, so a run resumes exactly on another
number of processes). The step (all blocks' local losses and the head, summed) is one
forward and one backward of a ``DistributedDataParallel`` module, which averages the
gradients; each rank's loss is weighted by its share of the batch, so backprop gets the
gradient of the global batch's mean loss. HSIC is a statistic of a whole batch, not a mean
over samples: with ``distributed_hsic="local"`` (default) each rank builds its kernels on
its own m/N rows and the gradients of the N per-rank estimates are averaged: a noisier
estimate, biased like any HSIC estimate on m/N samples (the biased estimator's O(1/m) bias
grows N times; NOCCO's ``eps m`` regulariser shrinks with the local m), and not the gradient
of HSIC on the global batch. ``distributed_hsic="gather"`` all-gathers every block's output
(differentiably) and computes HSIC on the global batch on every rank: the same objective as
one process with the global batch, at N times the kernel work. BatchNorm normalises with
each rank's own batch statistics (running statistics are rank 0's); ``sync_batchnorm=True``
uses the global batch's (``SyncBatchNorm``, CUDA only). Rank 0 writes checkpoints; metrics
are reduced over all ranks.

Examples
--------
>>> import numpy as np
>>> from hsickit.core.models import create_model
>>> from hsickit.core.training import TrainConfig, train
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 5)).astype("float32"); y = (X[:, 0] > 0).astype("int64")
>>> net = create_model("mlp", in_features=5, out_features=2, hidden=(32, 32))
>>> history = train(net, X, y, TrainConfig(mode="hsic", epochs=3, batch_size=50, verbose=0))
>>> len(history)
3
"""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from hsickit.core import distributed, hsic
from hsickit.core.errors import HsickitError
from hsickit.core.models import block_chains
from hsickit.core.serialization import load_checkpoint, load_state_into, save_checkpoint

TASKS = ("classification", "regression", "multilabel")
#: The kernels of a regression target in HSIC mode (``TrainConfig.target_kernel``; ``HSICObjective.target_kernel``).
TARGET_KERNELS = ("gaussian", "rank", "multiscale")
#: The widths of ``target_kernel="multiscale"``, as multiples of the median-heuristic width.
MULTISCALE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The kernels of a multi-label 0/1 target in HSIC mode (``TrainConfig.label_kernel``).
LABEL_KERNELS = ("gaussian", "linear", "balanced")
MODES = ("backprop", "hsic")
CHECKPOINT = "checkpoint.safetensors"
#: The BatchNorm layers whose running statistics :meth:`Trainer.recalibrate_batchnorm` recomputes.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained (saved in ``config.json``).

    Parameters
    ----------
    mode : "backprop" or "hsic".
    task : "classification" (y = class indices), "regression" or "multilabel" (y 0/1).
    loss : "auto" (cross-entropy, L1 for regression, BCE for multi-label), "ce", "l1",
        "mse", "bce", or a callable ``(output, target) -> scalar``.
    patience : stop when the validation loss has not improved for this many epochs
        (None: train all epochs); the best epoch's weights are restored.
    sigma : Gaussian kernel width for HSIC on X and the blocks' outputs; None = median heuristic
        per batch. A tuple gives one width per member of a ``"parallel"`` model (the
        sigma-combined network). A regression target never gets it: its kernel is chosen by
        ``target_kernel``; classes get the delta kernel.
    target_kernel : kernel of a regression target in HSIC mode (``HSICObjective.target_kernel``):
        "gaussian" (Gaussian on the standardised y, median-heuristic width), "rank" (the same
        on y's ranks within the batch, scaled to [0, 1]: robust to skewed targets and outliers)
        or "multiscale" (the mean of Gaussian kernels at 1/4, 1/2, 1, 2 and 4 times the
        median-heuristic width). Measured on Matbench (benchmarks/hsic_regression.py).
    label_kernel : kernel of a multi-label 0/1 target in HSIC mode: "balanced" (default: the
        linear kernel on the labels standardised within the batch, so a rare label counts as
        much as a common one), "linear" (``Y Y^T``, the number of labels two rows share: the
        delta kernel of classes, extended to label sets) or "gaussian" (Gaussian on the label
        vectors, width ``sigma`` or the median heuristic; the only kernel before). Chosen on
        PTB-XL folds 1-7 -> 8 (benchmarks/hsic_multilabel.py).
    beta : weight of nHSIC(Z, Y) against nHSIC(Z, X).
    hsic_estimator : "nocco" (the reference), "cka", "biased" or "unbiased".
    kernel_convention : "reference" (width 2 sigma^2 d) or "plain" (2 sigma^2).
    hsic_lr : learning rate of the blocks in HSIC mode (None: ``lr``).
    format_epochs : HSIC mode: epochs of head-only training on the frozen representation.
    frozen_blocks : the first k blocks are not trained (fine-tuning).
    device : "cpu", "cuda", "cuda:1", or "auto" (CUDA when available); under ``torchrun``
        "cuda" means the process's own GPU.
    precision : "float32", or "bf16" (bfloat16 autocast for the blocks and the head; HSIC
        kernels and their solves always run in float32 with autocast off).
    hsic_approx : None (exact m x m kernels) or "rff" (random Fourier features, O(m D):
        for batches of thousands). The trainer never switches on its own: the error of the
        approximation depends on the estimator and the kernel width (see benchmarks/scale.py).
    n_features : number of random Fourier features D per kernel (``hsic_approx="rff"``).
    distributed_hsic : under torchrun, "local" (each rank's HSIC on its own rows) or
        "gather" (HSIC on the global batch, block outputs all-gathered); module docs above.
    sync_batchnorm : under torchrun on GPUs, BatchNorm statistics of the global batch.
    keep_epoch : HSIC mode without validation rows: the main-phase epoch whose blocks a fit keeps,
        "best" (the lowest head training loss; default) or "last". With validation rows the lowest
        validation loss decides either way. Measured (benchmarks/hsic_depth.py): "last" with
        ``recalibrate_bn`` and a format phase run long enough lifted 50-layer leaf nets from chance,
        where "best" kept a random early epoch (the head's loss stays at ln 99 there); alone, "last"
        left 100-layer MNIST nets at chance where "best" gave 0.605.
    recalibrate_bn : HSIC mode: recompute the blocks' BatchNorm running statistics on the
        training data after the main phase (:meth:`Trainer.recalibrate_batchnorm`). Off by
        default: measured (benchmarks/hsic_depth.py) it rescued nothing that worked (50-layer
        leaf net 0.010 -> 0.094) and cost accuracy where HSIC held (leaf 20 layers 0.998 -> 0.931).
    """

    mode: str = "backprop"
    task: str = "classification"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str | Callable = "auto"
    class_weight: Sequence[float] | None = None
    lr_schedule: str | None = None
    patience: int | None = None
    sigma: float | tuple[float, ...] | None = None
    beta: float = 100.0
    hsic_estimator: str = "nocco"
    target_kernel: str = "gaussian"
    label_kernel: str = "balanced"
    kernel_convention: str = "plain"
    hsic_lr: float | None = None
    format_epochs: int = 0
    format_lr: float | None = None
    frozen_blocks: int = 0
    probe_size: int = 256
    seed: int = 0
    device: str = "cpu"
    precision: str = "float32"
    hsic_approx: str | None = None
    n_features: int = 1024
    distributed_hsic: str = "local"
    sync_batchnorm: bool = False
    recalibrate_bn: bool = False
    keep_epoch: str = "best"
    verbose: int = 1

    def check(self) -> None:
        if self.mode not in MODES:
            raise HsickitError(f"unknown training mode {self.mode!r}; use one of {MODES}")
        if self.task not in TASKS:
            raise HsickitError(f"unknown task {self.task!r}; use one of {TASKS}")
        sigmas = self.sigma if isinstance(self.sigma, (tuple, list)) else [self.sigma]
        if any(s is not None and not s > 0 for s in sigmas):
            raise HsickitError(f"sigma must be > 0, got {self.sigma}; pass a positive kernel width or None for the median heuristic")
        if self.hsic_estimator not in hsic.ESTIMATORS:
            raise HsickitError(f"unknown HSIC estimator {self.hsic_estimator!r}; use one of {sorted(hsic.ESTIMATORS)}")
        if self.target_kernel not in TARGET_KERNELS:
            raise HsickitError(f"unknown target_kernel {self.target_kernel!r}; use one of {TARGET_KERNELS}")
        if self.label_kernel not in LABEL_KERNELS:
            raise HsickitError(f"unknown label_kernel {self.label_kernel!r}; use one of {LABEL_KERNELS}")
        if self.epochs < 1 or self.batch_size < 2:
            raise HsickitError(f"epochs must be >= 1 and batch_size >= 2 (got {self.epochs}, {self.batch_size})")
        if self.lr_schedule not in (None, "cosine", "plateau", "warmup_cosine"):
            raise HsickitError(f"unknown lr_schedule {self.lr_schedule!r}; use None, 'cosine', 'plateau' or 'warmup_cosine'")
        if self.precision not in ("float32", "bf16"):
            raise HsickitError(f"unknown precision {self.precision!r}; use 'float32' or 'bf16'")
        if self.hsic_approx not in (None, "rff"):
            raise HsickitError(f"unknown hsic_approx {self.hsic_approx!r}; use None (exact kernels) or 'rff' (random Fourier features)")
        if self.hsic_approx is not None and (self.n_features < 2 or self.n_features % 2):
            raise HsickitError(f"n_features must be an even number >= 2 (cos/sin pairs), got {self.n_features}")
        if self.keep_epoch not in ("best", "last"):
            raise HsickitError(f"unknown keep_epoch {self.keep_epoch!r}; use 'best' (lowest head training loss) or 'last'")
        if self.distributed_hsic not in ("local", "gather"):
            raise HsickitError(f"unknown distributed_hsic {self.distributed_hsic!r}; use 'local' or 'gather'")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if callable(self.loss):
            d["loss"] = getattr(self.loss, "__qualname__", type(self.loss).__name__)
        return d


#: The estimators' ``hsic_params`` keys -> the :class:`TrainConfig` field each sets (HSIC training only).
HSIC_PARAMS = {"sigma": "sigma", "beta": "beta", "estimator": "hsic_estimator", "kernel_convention": "kernel_convention",
               "target_kernel": "target_kernel", "label_kernel": "label_kernel",
               "lr": "hsic_lr", "format_epochs": "format_epochs", "format_lr": "format_lr", "approx": "hsic_approx",
               "n_features": "n_features", "distributed": "distributed_hsic", "recalibrate_bn": "recalibrate_bn", "keep_epoch": "keep_epoch",
               "probe_size": "probe_size"}
#: The estimators' ``train_params`` keys: :class:`TrainConfig` fields forwarded as they are (optimiser and trainer details).
TRAIN_PARAMS = ("weight_decay", "lr_schedule", "momentum", "precision", "sync_batchnorm")


def param_defaults(group: str) -> dict:
    """The defaults of the estimators' ``hsic_params`` or ``train_params`` keys: :class:`TrainConfig`'s.

    >>> param_defaults("hsic_params")["beta"], param_defaults("train_params")["weight_decay"]
    (100.0, 0.0)
    """
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if group == "hsic_params":
        return {key: fields[field] for key, field in HSIC_PARAMS.items()}
    if group == "train_params":
        return {key: fields[key] for key in TRAIN_PARAMS}
    raise HsickitError(f"unknown parameter group {group!r}; use 'hsic_params' or 'train_params'")


def config_fields(hsic_params: dict, train_params: dict) -> dict:
    """:class:`TrainConfig` keyword arguments from an estimator's ``hsic_params`` and ``train_params``."""
    if isinstance(hsic_params.get("sigma"), list):
        hsic_params = {**hsic_params, "sigma": tuple(hsic_params["sigma"])}
    return {**{HSIC_PARAMS[k]: v for k, v in hsic_params.items()}, **train_params}


def config_kwargs(params: dict) -> dict:
    """:class:`TrainConfig` keyword arguments from estimator parameters (``training`` -> ``mode``;
    the keys of ``hsic_params`` and ``train_params`` unfolded; the others as they are).

    >>> config_kwargs({"training": "hsic", "lr": 5e-3, "hsic_params": {"beta": 200.0, "lr": 1e-3}})
    {'mode': 'hsic', 'lr': 0.005, 'beta': 200.0, 'hsic_lr': 0.001}
    """
    out = {("mode" if k == "training" else k): v for k, v in params.items() if k not in ("hsic_params", "train_params")}
    return {**out, **config_fields(params.get("hsic_params") or {}, params.get("train_params") or {})}


def check_data(X: np.ndarray, y: np.ndarray, task: str, name: str = "training data", min_classes: int = 2) -> None:
    """Clear errors for the usual ways a dataset is unusable."""
    if len(X) == 0:
        raise HsickitError(f"{name} is empty (0 samples); pass at least a few labelled samples")
    if len(X) != len(y):
        raise HsickitError(f"{name}: X has {len(X)} samples but y has {len(y)}; pass one target per sample")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(1))
        raise HsickitError(f"{name}: X contains NaN or inf in {len(bad)} sample(s), first at row {bad[0]}; impute or drop those rows")
    if task != "classification" and not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y.reshape(len(y), -1)).all(1))
        raise HsickitError(f"{name}: y contains NaN or inf in {len(bad)} sample(s), first at row {bad[0]}; drop those rows")
    if task == "classification" and len(np.unique(y)) < min_classes:
        raise HsickitError(f"{name} has only one class ({np.unique(y)[0]!r}); a classifier needs at least two")


#: rows of a batch that the median heuristic looks at in approximate mode (O(m^2) otherwise)
MEDIAN_ROWS = 512


def _kernel_input(a: torch.Tensor) -> torch.Tensor:
    """Kernels are computed in float32 (or float64 when given), never in bf16/fp16."""
    return a if a.dtype in (torch.float32, torch.float64) else a.float()


def _ranks(y: torch.Tensor) -> torch.Tensor:
    """Each column's ranks 0 .. m-1 (ties share their mean rank), in y's dtype."""
    out = torch.empty_like(y)
    for j in range(y.shape[1]):
        _, inverse, counts = torch.unique(y[:, j], return_inverse=True, return_counts=True)
        counts = counts.to(y.dtype)
        out[:, j] = (counts.cumsum(0) - (counts + 1) / 2)[inverse]  # the mean of a tied run's ranks
    return out


class HSICObjective:
    """The per-block HSIC-bottleneck loss for one batch: ``nHSIC(Z, X) - beta nHSIC(Z, Y)``.

    The X and Y kernels (and their NOCCO operators) are built once per batch; each block
    then costs one kernel and, for NOCCO, one Cholesky solve. With
    ``config.hsic_approx="rff"`` the kernels are ``config.n_features`` random Fourier
    features instead (``KX``, ``KY`` then hold features; the class-label kernel has exact
    one-hot features), drawn from ``random_state`` in a fixed order, so a step draws the
    same frequencies on every rank and after a resume; the median heuristic then looks at
    the batch's first ``MEDIAN_ROWS`` rows (a random subset: batches are shuffled).
    Frequencies are orthogonal blocks except for CKA, whose self-similarity terms are
    debiased instead (that correction needs i.i.d. frequencies). Autocast is off inside.
    """

    def __init__(self, config: TrainConfig, x: torch.Tensor, y: torch.Tensor, task: str, random_state: int = 0):
        self.config = config
        self.approx = config.hsic_approx is not None
        self.estimator = (hsic.FEATURE_ESTIMATORS if self.approx else hsic.ESTIMATORS)[config.hsic_estimator]
        self.y_exact = task == "classification" or (task == "multilabel" and config.label_kernel != "gaussian")
        self.generator = torch.Generator(device=x.device).manual_seed(int(random_state)) if self.approx else None
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            if not torch.isfinite(x).all():
                raise HsickitError("HSIC bottleneck: the batch contains NaN or inf; check the inputs (or lower the learning rate if training diverged)")
            x = _kernel_input(x.flatten(1))
            self.KX = self.kernel(x)
            if task == "classification":
                self.KY = hsic.label_features(y, dtype=x.dtype) if self.approx else hsic.delta_kernel(y).to(x.dtype)
            elif task == "regression":
                self.KY = self.target_kernel(y.reshape(len(y), -1).to(x.dtype))
            else:
                self.KY = self.label_kernel(y.reshape(len(y), -1).to(x.dtype))
            if config.hsic_estimator == "nocco":
                operator = hsic.nocco_features if self.approx else hsic.nocco_operator
                self.RX, self.RY = operator(self.KX), operator(self.KY)

    def kernel(self, a: torch.Tensor) -> torch.Tensor:
        """Gaussian kernel matrix of ``a``'s rows, or their random Fourier features."""
        c = self.config
        if c.sigma is not None:
            sigma = c.sigma
        else:
            sigma = hsic.median_sigma(a[:MEDIAN_ROWS] if self.approx else a, c.kernel_convention)
        if self.approx:
            return hsic.random_fourier_features(a, sigma, c.n_features, c.kernel_convention, random_state=self.generator,
                                                orthogonal=c.hsic_estimator != "cka")
        return hsic.gaussian_kernel(a, sigma, c.kernel_convention)

    def target_kernel(self, y: torch.Tensor) -> torch.Tensor:
        """Kernel of a continuous target (or its random Fourier features), by ``config.target_kernel``:

        - "gaussian": Gaussian on y standardised per column, width by the median heuristic;
        - "rank": the same on each column's ranks within the batch, scaled to [0, 1] (ties
          share their mean rank): only the order of y counts, not its spread or outliers;
        - "multiscale": the mean of Gaussian kernels on the standardised y at
          ``MULTISCALE_FACTORS`` times the median-heuristic width (a mean of positive
          semi-definite kernels is one; with ``hsic_approx="rff"`` the features of each width
          are concatenated, each block scaled by 1/sqrt(number of widths)).

        ``config.sigma`` is a width for X and the representations; a target in its own unit
        (MPa, eV) never gets it: a width of 6 on targets spread over hundreds makes the kernel
        the identity and HSIC(Z, Y) blind to the target's order.
        """
        name = self.config.target_kernel
        if name not in TARGET_KERNELS:
            raise HsickitError(f"unknown target_kernel {name!r}; use one of {TARGET_KERNELS}")
        if name == "rank" and len(y) > 1:
            y = _ranks(y) / (len(y) - 1)
        y = (y - y.mean(0)) / y.std(0).clamp_min(1e-12) if len(y) > 1 else y
        sigma = hsic.median_sigma(y[:MEDIAN_ROWS] if self.approx else y)
        factors = MULTISCALE_FACTORS if name == "multiscale" else (1.0,)
        if self.approx:
            parts = [hsic.random_fourier_features(y, f * sigma, self.config.n_features, random_state=self.generator,
                                                  orthogonal=self.config.hsic_estimator != "cka") for f in factors]
            return torch.cat(parts, -1) / len(parts) ** 0.5 if len(parts) > 1 else parts[0]
        return sum(hsic.gaussian_kernel(y, f * sigma) for f in factors) / len(factors)

    def label_kernel(self, y: torch.Tensor) -> torch.Tensor:
        """Kernel of a multi-label 0/1 target (or its features), by ``config.label_kernel``.

        "linear" and "balanced" are exact with features: the (standardised) label matrix itself.
        """
        name = self.config.label_kernel
        if name == "gaussian":
            return self.kernel(y)
        if name == "balanced" and len(y) > 1:
            y = (y - y.mean(0)) / y.std(0).clamp_min(1e-6)
        return y if self.approx else hsic.linear_kernel(y)

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """HSIC(Z, X) and HSIC(Z, Y) for one block's output."""
        with torch.autocast(z.device.type, enabled=False):
            KZ = self.kernel(_kernel_input(z.flatten(1)))
            if self.config.hsic_estimator == "nocco":
                if self.approx:
                    UZ = hsic.nocco_features(KZ)
                    return hsic.nocco_pair_features(UZ, self.RX), hsic.nocco_pair_features(UZ, self.RY)
                RZ = hsic.nocco_operator(KZ)
                return hsic.nocco_pair(RZ, self.RX), hsic.nocco_pair(RZ, self.RY)
            if self.approx and self.config.hsic_estimator == "cka":
                return (hsic.cka_features(KZ, self.KX, debias=True),
                        hsic.cka_features(KZ, self.KY, debias=(True, not self.y_exact)))
            return self.estimator(KZ, self.KX), self.estimator(KZ, self.KY)


def _member_config(config: TrainConfig, j: int) -> TrainConfig:
    """The config with member j's kernel width (sigma-combined networks)."""
    if isinstance(config.sigma, (tuple, list)):
        return dataclasses.replace(config, sigma=config.sigma[j])
    return config


def hsic_bottleneck_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                         loss_fn: Callable, *, random_state: int = 0, weight: float = 1.0,
                         global_batch: tuple | None = None, report: dict | None = None,
                         backward: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of every trainable block's local loss plus the head's task loss, for one batch.

    Each block sees its input detached, so the gradient of this sum with respect to a
    block's parameters is the gradient of that block's own objective: one backward pass
    trains all blocks independently. Returns (total, head loss).

    ``random_state`` seeds approximate HSIC's random features. ``weight`` multiplies the
    head loss and the HSIC terms (a rank's share of the global batch under DDP).
    ``global_batch=(x_all, y_all, sizes)`` (``distributed_hsic="gather"``): the kernels are
    built on the global batch (every rank's rows, in rank order, ``sizes`` rows each) and
    every block output is all-gathered before its HSIC terms, which are then not weighted.

    Divergence: when a block's output holds NaN or inf (or its kernels cannot be built),
    nothing more is computed, both returned losses are NaN and ``report`` (a dict, if
    given) gets ``block`` (numbered from 1), ``n_blocks``, ``member`` and ``reason``; the
    trainer turns that into an error naming the block and the epoch.

    ``backward=True`` (one process): each block's local loss is differentiated as soon as
    it is computed, and the head's at the end, so only one block's graph is alive at a
    time: memory for the gradients does not grow with depth. The gradients are the same
    as those of one backward of the sum; the returned losses are then detached.
    """
    total, outputs = 0.0, []
    kx, ky = (x, y) if global_batch is None else global_batch[:2]
    hsic_weight = weight if global_batch is None else 1.0
    for j, chain in enumerate(block_chains(model)):
        cfg = _member_config(config, j)
        objective = HSICObjective(cfg, kx, ky, config.task, random_state=random_state + 7919 * j)
        h = x
        for i, block in enumerate(chain):
            z = block(h.detach())
            reason = None if bool(torch.isfinite(z).all()) else f"its output holds NaN or inf (largest finite |z| {_largest_finite(z):.3g})"
            if reason is None and i >= config.frozen_blocks:
                try:
                    zx, zy = objective(z if global_batch is None else distributed.gather_rows(z, global_batch[2]))
                    term = hsic_weight * (zx - config.beta * zy)
                    if backward:
                        term.backward()
                        term = term.detach()
                    total = total + term
                except HsickitError as err:  # kernels of a degenerate representation
                    reason = f"its HSIC terms could not be computed ({err})"
            if reason is not None:
                if report is not None:
                    report.update(block=i + 1, n_blocks=len(chain), member=j, reason=reason)
                nan = torch.full((), float("nan"), device=x.device)
                return nan, nan
            h = z
        outputs.append(h.detach())
    head_loss = loss_fn(model.head(torch.cat(outputs, 1) if len(outputs) > 1 else outputs[0]), y)
    if backward:
        (weight * head_loss).backward()
        head_loss = head_loss.detach()
    return total + weight * head_loss, head_loss


def _largest_finite(z: torch.Tensor) -> float:
    finite = z.detach()[torch.isfinite(z.detach())]
    return float(finite.abs().max()) if finite.numel() else float("nan")


class Step(nn.Module):
    """One training step's loss as one module call, so that ``DistributedDataParallel`` sees
    the whole computation (every block's local loss and the head, summed) as one forward
    and one backward, and averages the gradients once. :meth:`Trainer.make_step` builds it."""

    def __init__(self, model: nn.Module, config: TrainConfig, loss_fn: Callable):
        super().__init__()
        self.model = model
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "loss_fn", loss_fn)  # not a submodule, even when the loss is an nn.Module
        self.report: dict = {}  # the last step's divergence report (hsic_bottleneck_loss)
        self.streamed = False  # HSIC on one process: each block's loss differentiated at once (the trainer sets it)

    def forward(self, x, y, weight: float = 1.0, random_state: int = 0, global_batch=None):
        self.report.clear()
        if self.config.mode == "backprop":
            head_loss = self.loss_fn(self.model(x), y)
            return weight * head_loss, head_loss
        return hsic_bottleneck_loss(self.model, x, y, self.config, self.loss_fn, random_state=random_state,
                                    weight=weight, global_batch=global_batch, report=self.report, backward=self.streamed)


def task_loss(config: TrainConfig, device: torch.device | str = "cpu") -> Callable:
    if callable(config.loss):
        return config.loss
    name = config.loss
    if name == "auto":
        name = {"classification": "ce", "regression": "l1", "multilabel": "bce"}[config.task]
    weight = None if config.class_weight is None else torch.as_tensor(config.class_weight, dtype=torch.float32, device=device)
    losses = {
        "ce": lambda out, t: F.cross_entropy(out, t, weight=weight),
        "bce": lambda out, t: F.binary_cross_entropy_with_logits(out, t, pos_weight=weight),
        "l1": lambda out, t: F.l1_loss(out, t.reshape(out.shape)),
        "mse": lambda out, t: F.mse_loss(out, t.reshape(out.shape)),
    }
    if name not in losses:
        raise HsickitError(f"unknown loss {name!r}; use 'auto', one of {sorted(losses)}, or a callable (output, target) -> loss")
    return losses[name]


def _optimizer(config: TrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise HsickitError(f"unknown optimizer {config.optimizer!r}; use 'adam', 'adamw' or 'sgd'")


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """``opt.state_dict()`` as (tensors named ``optim.<param>.<key>``, JSON-able rest) for one
    safetensors checkpoint (:func:`hsickit.core.serialization.save_checkpoint`); :func:`unflatten_optimizer`
    undoes it."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The optimizer state dict that :func:`flatten_optimizer` split into ``tensors`` and ``meta``
    (other tensors in ``tensors``, such as model weights, are ignored).

    >>> net = torch.nn.Linear(3, 1); opt = torch.optim.Adam(net.parameters())
    >>> net(torch.ones(2, 3)).sum().backward(); opt.step()
    >>> back = torch.optim.Adam(net.parameters()); back.load_state_dict(unflatten_optimizer(*flatten_optimizer(opt)))
    >>> torch.equal(back.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    True
    """
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def warmup_cosine(epochs: int) -> Callable[[int], float]:
    """Learning-rate factor per epoch of ``lr_schedule="warmup_cosine"``: linear warm-up over the
    first ``max(1, epochs // 20)`` epochs (5 %), then a cosine decay to 0 at `epochs`.

    >>> f = warmup_cosine(100)
    >>> [round(f(e), 3) for e in (0, 4, 5, 99)]
    [0.2, 1.0, 1.0, 0.0]
    """
    warm = max(1, epochs // 20)

    def factor(epoch: int) -> float:
        if epoch < warm:
            return (epoch + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (epoch - warm + 1) / max(1, epochs - warm))))

    return factor


class Trainer:
    """State of one training run; :func:`train` is the usual entry point."""

    def __init__(self, model: nn.Module, config: TrainConfig, run_dir: str | Path | None = None,
                 callbacks: Sequence[Callable[[dict], bool | None]] = ()):
        config.check()
        self.model, self.config, self.callbacks = model, config, list(callbacks)
        self.device = distributed.resolve_device(config.device)
        distributed.init_from_env(self.device)
        self.world, self.rank = distributed.world_size(), distributed.rank()
        if config.sync_batchnorm and self.world > 1:
            if self.device.type != "cuda":
                raise HsickitError("sync_batchnorm=True needs CUDA devices (torch's SyncBatchNorm has no CPU/gloo path); "
                                   "use sync_batchnorm=False (per-rank batch statistics) or train on GPUs")
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.checkpoint = Path(run_dir) / CHECKPOINT if run_dir is not None else None
        self.loss_fn = task_loss(config, self.device)
        c = config
        chains = block_chains(model)
        if isinstance(c.sigma, (tuple, list)) and len(c.sigma) != len(chains):
            raise HsickitError(f"{len(c.sigma)} kernel widths for a model with {len(chains)} member network(s); "
                               "pass one sigma per member of a 'parallel' model, or a single sigma")
        self.frozen = [b for chain in chains for b in chain[: c.frozen_blocks]]
        for block in self.frozen:
            block.requires_grad_(False)
        self.trainable_blocks = [p for chain in chains for b in chain[c.frozen_blocks:] for p in b.parameters()]
        block_lr = c.hsic_lr if (c.mode == "hsic" and c.hsic_lr is not None) else c.lr
        self.optimizer = _optimizer(c, [{"params": self.trainable_blocks, "lr": block_lr},
                                        {"params": list(model.head.parameters()), "lr": c.lr}])
        self.head_optimizer = None
        self.scheduler = None
        if c.lr_schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.epochs)
        elif c.lr_schedule == "warmup_cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(c.epochs))
        elif c.lr_schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=max(1, (c.patience or 10) // 3))
        self.history: list[dict] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score = math.inf
        self.bad_epochs = 0
        self.stopped = False
        self.step = self.head_step = None

    def _distributed(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped in DistributedDataParallel when there are several processes."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def make_step(self) -> nn.Module:
        """The training step (a :class:`Step`, wrapped in DistributedDataParallel under ``torchrun``):
        ``step(x, y, weight, random_state, global_batch)`` returns ``(loss, head_loss)`` for one batch.
        HSIC on one process differentiates block by block as it goes (memory flat in depth), so
        its loss needs no ``backward()``; :meth:`train_epoch` runs it over an epoch's batches."""
        step = Step(self.model, self.config, self.loss_fn)
        step.streamed = self.config.mode == "hsic" and self.world == 1
        return self._distributed(step)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def _shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's rows of a global batch and its weight ``n_rank * world / n_global``."""
        if self.world == 1:
            return idx, 1.0
        local = idx[self.rank::self.world]
        return local, len(local) * self.world / len(idx)

    def _step_seed(self, epoch: int, step: int) -> int:
        return ((self.config.seed * 1_000_003 + epoch) * 100_003 + step) % (2**62)

    # --- one epoch -------------------------------------------------------------------
    def _batches(self, n: int, epoch: int):
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g)
        bs = self.config.batch_size
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if len(idx) >= 2 * self.world:  # every rank needs 2 rows
                yield idx

    def _check_finite(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        if distributed.any_rank(not torch.isfinite(loss), self.device):  # all ranks stop together
            report = getattr(getattr(self.step, "module", self.step), "report", None) or {}
            if report and step >= 0:
                c = self.config
                member = f" of member {report['member'] + 1}" if len(block_chains(self.model)) > 1 else ""
                raise HsickitError(
                    f"HSIC training diverged at block {report['block']} of {report['n_blocks']}{member}, epoch {epoch + 1}, "
                    f"batch {step + 1}: {report['reason']}. The data were checked and are finite; the network's "
                    f"representation blew up. Lower the learning rate (hsic_lr={c.hsic_lr}, lr={c.lr}), lower beta "
                    f"(beta={c.beta}), set the kernel width sigma explicitly (sigma={c.sigma}; None is the per-batch "
                    "median heuristic) or keep normalisation between blocks (the models' batchnorm=True)")
            raise HsickitError(
                f"training diverged at epoch {epoch + 1}{f', batch {step + 1}' if step >= 0 else ' (validation)'}: the loss is {loss.item()}; "
                f"lower the learning rate (lr={self.config.lr}, hsic_lr={self.config.hsic_lr}) or beta={self.config.beta}, "
                "or check the inputs for extreme values")

    def train_epoch(self, X, y, epoch: int = 0, bar=None) -> dict:
        """One epoch of the main phase over ``X``, ``y`` (tensors on :attr:`device`, or arrays):
        the batches of epoch ``epoch``'s seeded permutation, one optimiser step each. Returns
        ``{"train_loss": mean loss of the task head over the rows}``. :meth:`fit` calls it once
        per epoch (adding validation, callbacks, checkpoints and the learning-rate schedule);
        call it directly to time or drive training step by step. ``bar``: a tqdm bar to show
        the running loss on.

        >>> from hsickit.core.models import create_model
        >>> X = torch.randn(64, 4); y = (X[:, 0] > 0).long()
        >>> trainer = Trainer(create_model("mlp", in_features=4, out_features=2, hidden=(8,)), TrainConfig(batch_size=16, verbose=0))
        >>> sorted(trainer.train_epoch(X, y))
        ['train_loss']
        """
        X = X if torch.is_tensor(X) else self._tensor(X)
        y = y if torch.is_tensor(y) else self._target(y)
        model, c = self.model, self.config
        model.train()
        for block in self.frozen:
            block.eval()
        if self.step is None:  # built by fit(), or here on the first call
            self.step = self.make_step()
        streamed = getattr(self.step, "streamed", False)
        gather = self.world > 1 and c.mode == "hsic" and c.distributed_hsic == "gather"
        total = torch.zeros(2, dtype=torch.float64, device=self.device)  # sum of losses, rows
        for step, idx in enumerate(self._batches(len(X), epoch)):
            local, weight = self._shard(idx)
            global_batch = None
            if gather:
                shards = [idx[r::self.world] for r in range(self.world)]
                order = torch.cat(shards)
                global_batch = (X[order], y[order], tuple(len(sh) for sh in shards))
            if streamed:  # the step differentiates block by block
                self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss, head_loss = self.step(X[local], y[local], weight, self._step_seed(epoch, step), global_batch)
            self._check_finite(loss, epoch, step)
            if not streamed:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.optimizer.step()
            total[0] += head_loss.detach().double() * len(local)
            total[1] += len(local)
            if bar is not None and not bar.disable:
                bar.set_postfix(loss=f"{float(total[0] / total[1]):.4g}", refresh=False)
        total = distributed.all_reduce_sum(total)
        distributed.broadcast_buffers(model)  # every rank evaluates and saves rank 0's BatchNorm statistics
        return {"train_loss": float(total[0] / total[1].clamp_min(1))}

    def _format_epoch(self, F_train: torch.Tensor, y: torch.Tensor, epoch: int) -> dict:
        """Head-only training on a frozen representation (HSIC mode's format layer)."""
        head = self.model.head
        head.train()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for step, idx in enumerate(self._batches(len(F_train), epoch)):
            local, weight = self._shard(idx)
            with self._autocast():
                loss = self.loss_fn((head if self.head_step is None else self.head_step)(F_train[local]), y[local])
            self._check_finite(loss, epoch, step)
            self.head_optimizer.zero_grad(set_to_none=True)
            (weight * loss).backward()
            self.head_optimizer.step()
            total[0] += loss.detach().double() * len(local)
            total[1] += len(local)
        total = distributed.all_reduce_sum(total)
        return {"train_loss": float(total[0] / total[1].clamp_min(1))}

    # --- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs for X; with several processes each rank predicts a slice and all gather."""
        self.model.eval()
        n, sizes, part = len(X), None, X
        if self.world > 1 and n >= self.world:
            per = -(-n // self.world)
            sizes = tuple(min(n, (r + 1) * per) - min(n, r * per) for r in range(self.world))
            part = X[min(n, self.rank * per):min(n, (self.rank + 1) * per)]
        outs = [self.model(part[i:i + batch_size]) for i in range(0, len(part), batch_size)]
        out = torch.cat(outs) if outs else self.model(X[:1])[:0]  # a rank can get no rows (n < world * per)
        return out if sizes is None else distributed.gather_rows(out, sizes)

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor, y: torch.Tensor, prefix: str) -> dict:
        out = self.predict(X)
        row = {f"{prefix}_loss": float(self.loss_fn(out, y))}
        if self.config.task == "classification":
            row[f"{prefix}_accuracy"] = float((out.argmax(1) == y).float().mean())
        elif self.config.task == "multilabel":
            row[f"{prefix}_accuracy"] = float(((out > 0).float() == y).float().mean())
        else:
            row[f"{prefix}_mae"] = float((out.reshape(y.shape) - y).abs().mean())
        return row

    @torch.no_grad()
    def information_plane(self, X: torch.Tensor, y: torch.Tensor) -> dict:
        """HSIC(Z_i, X) and HSIC(Z_i, Y) for every block on a fixed probe batch.

        A diagnostic: it never stops training. A block whose representation is not finite
        (or whose kernels cannot be built) gets NaN for itself and every later block, with
        a warning; training's own divergence check decides whether the fit goes on.
        """
        m = min(self.config.probe_size, len(X))
        if m < 4:
            return {}
        self.model.eval()
        xb, yb = X[:m], y[:m]
        row, k, failed = {}, 0, []
        for j, chain in enumerate(block_chains(self.model)):
            try:
                objective = HSICObjective(_member_config(self.config, j), xb, yb, self.config.task,
                                          random_state=self.config.seed + 7919 * j)
            except HsickitError as err:
                objective = None
                failed.append(f"the probe batch: {err}")
            h = xb
            for i, block in enumerate(chain):
                zx = zy = float("nan")
                if objective is not None:
                    h = block(h)
                    if not torch.isfinite(h).all():
                        objective, why = None, "its representation holds NaN or inf"
                    else:
                        try:
                            zx, zy = (float(v) for v in objective(h))
                        except (HsickitError, RuntimeError) as err:
                            objective, why = None, str(err)
                    if objective is None:
                        failed.append(f"block {i + 1}: {why}")
                row[f"hsic_zx_{k}"], row[f"hsic_zy_{k}"] = zx, zy
                k += 1
        if failed and self.rank == 0:
            warnings.warn(f"information plane: NaN recorded from {'; '.join(failed)} (monitoring only, training goes on)",
                          RuntimeWarning, stacklevel=2)
        return row

    # --- early stopping and checkpoints ---------------------------------------------------
    def _track(self, row: dict) -> None:
        score = row.get("val_loss", row["train_loss"])
        if self.config.keep_epoch == "last" and self.config.mode == "hsic" and row["phase"] == "main" and "val_loss" not in row:
            score = -float(row["epoch"])  # every later main epoch counts as better
        if score < self.best_score - 1e-12:
            self.best_score, self.bad_epochs = score, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            row["best"] = 1
        else:
            self.bad_epochs += 1
            row["best"] = 0
        if self.config.patience is not None and self.bad_epochs >= self.config.patience:
            self.stopped = True

    def _save(self, phase: str, epoch: int) -> None:
        if self.checkpoint is None or self.rank != 0:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_state.items()})
        opt_tensors, opt_meta = flatten_optimizer(self.optimizer)
        tensors.update(opt_tensors)
        state = {
            "phase": phase, "epoch": epoch, "history": self.history, "best_score": self.best_score,
            "bad_epochs": self.bad_epochs, "stopped": self.stopped, "optimizer": opt_meta,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "config": self.config.to_dict(),
        }
        if self.head_optimizer is not None:
            head_tensors, head_meta = flatten_optimizer(self.head_optimizer)
            tensors.update({f"head_{k}": v for k, v in head_tensors.items()})
            state["head_optimizer"] = head_meta
        save_checkpoint(self.checkpoint, tensors, state)

    def _restore(self) -> tuple[str, int] | None:
        """Load the checkpoint (read by rank 0, sent to the others); None when there is none."""
        payload = None
        if self.rank == 0 and self.checkpoint.exists():
            payload = load_checkpoint(self.checkpoint)
        payload = distributed.broadcast_object(payload, self.device)
        if payload is None:
            return None
        tensors, state = payload
        now = self.config.to_dict()
        defaults = TrainConfig().to_dict()  # options added since the checkpoint was written
        saved = {**{k: defaults[k] for k in now if k not in state["config"]}, **state["config"]}
        for key in ("verbose", "device", "epochs", "format_epochs", "patience"):
            saved.pop(key, None), now.pop(key, None)
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(now)):
            diff = sorted(k for k in now if saved.get(k) != now.get(k))
            raise HsickitError(f"{self.checkpoint} was written with different training settings ({diff}); resume with the same settings or use a new run folder")
        load_state_into(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, self.checkpoint)
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self.best_state = best or None
        self.optimizer.load_state_dict(unflatten_optimizer(tensors, state["optimizer"]))
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("head_optimizer") is not None:
            self._make_head_optimizer()
            head = {k[len("head_"):]: v for k, v in tensors.items() if k.startswith("head_optim.")}
            self.head_optimizer.load_state_dict(unflatten_optimizer(head, state["head_optimizer"]))
        self.history, self.best_score = state["history"], state["best_score"]
        self.bad_epochs, self.stopped = state["bad_epochs"], state["stopped"]
        return state["phase"], state["epoch"]

    def _make_head_optimizer(self) -> None:
        c = self.config
        self.head_optimizer = torch.optim.SGD(self.model.head.parameters(), lr=c.format_lr or c.lr, momentum=c.momentum)

    # --- the loop ---------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, resume: bool = False) -> list[dict]:
        c = self.config
        X, y = self._tensor(X), self._target(y)
        has_val = X_val is not None and len(X_val) > 0
        if has_val:
            X_val, y_val = self._tensor(X_val), self._target(y_val)
        if c.batch_size > len(X):
            raise HsickitError(f"batch_size={c.batch_size} is larger than the {len(X)} training samples; pass a batch size <= {len(X)}")
        if c.batch_size < 2 * self.world:
            raise HsickitError(f"batch_size={c.batch_size} is the global batch, split over {self.world} processes; "
                               f"pass a batch size >= {2 * self.world} (2 rows per process)")
        self.model.to(self.device)
        phase, start = "main", 0
        if resume and self.checkpoint is not None:
            restored = self._restore()
            if restored is not None:
                phase, start = restored[0], restored[1] + 1
                if c.verbose and self.rank == 0:
                    tqdm.write(f"resuming from {self.checkpoint}: {len(self.history)} epoch(s) already done")
        self.step = self.make_step()
        probe_X, probe_y = (X_val, y_val) if has_val else (X, y)

        def finish_epoch(row: dict) -> None:
            if has_val:
                row.update(self.evaluate(X_val, y_val, "val"))
                if not math.isfinite(row["val_loss"]) and self.rank == 0:  # monitoring: an epoch that cannot be best
                    warnings.warn(f"epoch {row['epoch']}: the validation loss is {row['val_loss']} (training loss "
                                  f"{row['train_loss']:.4g}); the epoch is kept out of early stopping's choice", RuntimeWarning, stacklevel=2)
            self._track(row)
            if row["phase"] == "main":
                row.update(self.information_plane(probe_X, probe_y))
            row["lr"] = self.optimizer.param_groups[-1]["lr"] if row["phase"] == "main" else self.head_optimizer.param_groups[0]["lr"]
            self.history.append(row)
            stop = False
            for cb in self.callbacks:
                if cb(row):
                    stop = True
            if distributed.any_rank(stop, self.device):  # a callback on any rank stops every rank
                self.stopped = True

        bar = tqdm(total=c.epochs + (c.format_epochs if c.mode == "hsic" else 0), initial=start if phase == "main" else c.epochs + start,
                   disable=c.verbose == 0 or self.rank != 0, desc=f"{c.mode} training", unit="epoch", leave=c.verbose > 1)
        if phase == "main":
            for epoch in range(start, c.epochs):
                if self.stopped:
                    break
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(c.seed * 7919 + epoch + 104_729 * self.rank)  # dropout: other masks per rank
                    row = {"phase": "main", "epoch": epoch + 1, **self.train_epoch(X, y, epoch, bar)}
                finish_epoch(row)
                if self.scheduler is not None:
                    self.scheduler.step(row.get("val_loss", row["train_loss"])) if c.lr_schedule == "plateau" else self.scheduler.step()
                self._save("main", epoch)
                bar.update(1)
            phase, start = "format", 0
        if c.mode == "hsic" and start == 0:  # main phase done (now or before a resume into the format phase)
            if self.best_state is not None and (c.format_epochs > 0 or c.recalibrate_bn):
                self.model.load_state_dict(self.best_state)
            if c.recalibrate_bn:
                self.recalibrate_batchnorm(X)
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if c.mode == "hsic" and c.format_epochs > 0:
            if self.head_optimizer is None:
                self._make_head_optimizer()
            self.step = None  # release the main phase's DDP (and its gradient hooks on the head)
            self.head_step = self._distributed(self.model.head)
            if start == 0:  # a format epoch is kept only if it beats the model the main phase left (a diverged one never is)
                entry = self.evaluate(X_val, y_val, "val")["val_loss"] if has_val else math.inf
                self.stopped, self.bad_epochs, self.best_score = False, 0, entry if math.isfinite(entry) else math.inf
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            F_train = self.representation(X)
            for epoch in range(start, c.format_epochs):
                if self.stopped:
                    break
                row = {"phase": "format", "epoch": c.epochs + epoch + 1, **self._format_epoch(F_train, y, epoch)}
                finish_epoch(row)
                self._save("format", epoch)
                bar.update(1)
        bar.close()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return self.history

    @torch.no_grad()
    def recalibrate_batchnorm(self, X: torch.Tensor) -> None:
        """Recompute the trained blocks' BatchNorm running statistics on X with the final weights.

        HSIC training moves every block at once with large local steps, so the running
        averages (momentum 0.1) lag behind the weights; in eval mode each block then
        normalises with stale statistics and the error compounds with depth (a 50-block
        plain MLP's eval-mode features came out ~600x too wide and the format layer diverged).
        One pass over the training batches with a cumulative average makes eval mode match
        the final weights (``TrainConfig.recalibrate_bn``; off by default, see there). Frozen
        blocks keep their statistics.
        """
        norms = [m for chain in block_chains(self.model) for b in chain[self.config.frozen_blocks:]
                 for m in b.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
        self.model.train()
        for block in self.frozen:
            block.eval()
        for idx in self._batches(len(X), 0):
            self.model.features(X[self._shard(idx)[0]])
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        distributed.broadcast_buffers(self.model)
        self.model.eval()

    @torch.no_grad()
    def representation(self, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.model.features(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])

    def _tensor(self, X) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device)

    def _target(self, y) -> torch.Tensor:
        dtype = np.int64 if self.config.task == "classification" else np.float32
        return torch.as_tensor(np.asarray(y, dtype=dtype), device=self.device)


def train(model: nn.Module, X, y, config: TrainConfig, *, X_val=None, y_val=None, run_dir=None,
          resume: bool = False, callbacks: Sequence[Callable[[dict], bool | None]] = ()) -> list[dict]:
    """Train ``model`` in place; returns the per-epoch history (a list of dicts).

    ``run_dir`` keeps an atomic checkpoint after every epoch; ``resume=True`` continues
    from it and reaches the same numbers as an uninterrupted run with the same seed.
    Validation data (``X_val``, ``y_val``) drive early stopping; carve them from the
    training data with :func:`validation_split`, never from the test set.
    """
    X, y = np.asarray(X), np.asarray(y)
    check_data(X, y, config.task)
    if X_val is not None and len(X_val):
        check_data(np.asarray(X_val), np.asarray(y_val), config.task, name="validation data", min_classes=1)
    return Trainer(model, config, run_dir, callbacks).fit(X, y, X_val, y_val, resume=resume)


def validation_split(n: int, fraction: float, seed: int, stratify=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) carved from the training data; stratified where possible."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    if fraction <= 0 or n < 4:
        return idx, idx[:0]
    n_val = max(1, int(round(fraction * n)))
    if stratify is not None:
        stratify = np.asarray(stratify)
        classes, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 2 or n_val < len(classes):
            stratify = None
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(tr), np.sort(va)
