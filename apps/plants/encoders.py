"""Encoders for plant specimens: a CNN for leaf images and one for leaf outlines, registered in the core model registry.

Feature vectors use the core residual MLP (``"residual_mlp"``); images use ``"leafcnn"``,
registered here. Its blocks are stages of ``convs_per_block`` x ``Conv2d -> BatchNorm2d ->
ReLU`` (optionally with a residual shortcut) followed by ``MaxPool2d(2)``; the last block
is global average+max pooling and a fully connected layer. During training the first block
applies random flips, 90-degree turns, shifts, scalings and (``max_rotation``) small
rotations, since leaf silhouettes have no canonical orientation; at prediction time it is
the identity. With ``tta=True`` the network averages its log-probabilities over the eight
flips/turns of the image in eval mode (test-time augmentation).

:data:`LEAFCNN_PRESETS` names a few configurations (``model_params``) for 128x128 silhouettes;
the defaults of :class:`LeafCNNConfig` are the small 64-pixel network.

Outlines use ``"contourcnn"`` (:class:`ContourCNNConfig`): a 1-D CNN over the points of a
closed contour (channels x points, :func:`hsickit.apps.plants.outlines.contour_signals`) with
circular padding, so the curve has no ends. While training its first block shifts each
contour cyclically by a random number of points (the starting point is arbitrary), reverses
it with probability 1/2 (a mirrored leaf traced the same way round), scales it by up to
+-``max_scale`` and adds Gaussian noise of ``noise`` times its standard deviation; in eval
mode the network averages its log-probabilities over ``tta_shifts`` evenly spaced cyclic
shifts (and their reversals, with ``reflect``).

The networks take inputs flattened to (n, C*H*W) or (n, C*N), like every other core model
takes (n, features), and restore ``image_shape`` / ``signal_shape`` in their first block, so
the core estimators and trainer (backprop or the HSIC bottleneck) handle them unchanged.

Examples
--------
>>> import torch
>>> from hsickit.core.models import create_model
>>> import hsickit.apps.plants.encoders  # registers "leafcnn"
>>> net = create_model("leafcnn", in_features=32 * 32, out_features=5, image_shape=(1, 32, 32),
...                    channels=(4, 8), width=16, convs_per_block=2, residual=True, tta=True)
>>> net.eval()(torch.zeros(2, 32 * 32)).shape   # images come flattened, (n, C*H*W)
torch.Size([2, 5])
>>> net = create_model("contourcnn", in_features=2 * 64, out_features=5, signal_shape=(2, 64), channels=(8, 16))
>>> net.eval()(torch.zeros(3, 2 * 64)).shape   # contours come flattened, (n, channels*points)
torch.Size([3, 5])
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hsickit.core.errors import HsickitError
from hsickit.core.models import BlockModel, list_models, register_model

__all__ = ["LeafCNNConfig", "LeafCNN", "RandomFlipShift", "build_leafcnn", "dihedral_views", "LEAFCNN_PRESETS",
           "FEATURE_ENCODER", "IMAGE_ENCODER", "CONTOUR_ENCODER", "ContourCNNConfig", "ContourCNN", "ContourJitter",
           "build_contourcnn", "cyclic_views"]

FEATURE_ENCODER = "residual_mlp"
IMAGE_ENCODER = "leafcnn"
CONTOUR_ENCODER = "contourcnn"

#: ``model_params`` for 128x128 silhouettes, cheapest first: 64 px (``downsample=2``) or full resolution.
LEAFCNN_PRESETS: dict[str, dict] = {
    # the original network at 64 px with the stronger augmentation and test-time averaging
    "small64": {"channels": (16, 32, 64, 128), "width": 256, "downsample": 2, "max_rotation": 20.0,
                "max_scale": 0.15, "tta": True},
    # wider, two convolutions in the inner stages, 64 px
    "deep64": {"channels": (32, 64, 128, 256), "convs_per_block": (1, 2, 2, 2), "width": 256, "downsample": 2,
               "dropout": 0.3, "max_rotation": 20.0, "max_scale": 0.15, "tta": True},
    # five stages at 128 px, two convolutions in the inner stages
    "deep128": {"channels": (32, 64, 128, 256, 256), "convs_per_block": (1, 2, 2, 2, 1), "width": 256,
                "downsample": 1, "dropout": 0.3, "max_rotation": 20.0, "max_scale": 0.15, "tta": True},
    # the same, residual and wider
    "res128": {"channels": (32, 64, 128, 256, 384), "convs_per_block": (1, 2, 2, 2, 2), "residual": True,
               "width": 384, "downsample": 1, "dropout": 0.3, "max_rotation": 20.0, "max_scale": 0.15, "tta": True},
}


@dataclass
class LeafCNNConfig:
    """2-D CNN for images in [0, 1], given flattened as (n, C*H*W).

    ``channels`` gives one stage (block) each; ``convs_per_block`` is an int or one int per
    stage; ``residual`` adds a (1x1 projection) shortcut around each stage's convolutions.
    ``downsample`` average-pools the input first. Augmentation (training only): random
    flips/90-degree turns, shifts up to ``max_shift`` (fraction of the half-width), scaling by
    up to +-``max_scale`` (None: ``max_shift / 2``), rotation by up to +-``max_rotation`` degrees.
    ``tta``: average the log-probabilities over the 8 flips/turns in eval mode.
    """

    in_features: int
    out_features: int
    image_shape: tuple[int, ...] = (1, 128, 128)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    width: int = 256
    downsample: int = 2
    convs_per_block: int | tuple[int, ...] = 1
    residual: bool = False
    augment: bool = True
    max_shift: float = 0.1
    max_scale: float | None = None
    max_rotation: float = 0.0
    dropout: float = 0.2
    tta: bool = False
    architecture: str = IMAGE_ENCODER


class RandomFlipShift(nn.Module):
    """Per-sample random flips, 90-degree turns, shifts, scalings and rotations while training; identity in eval mode."""

    def __init__(self, max_shift: float = 0.1, max_scale: float | None = None, max_rotation: float = 0.0):
        super().__init__()
        self.max_shift = max_shift
        self.max_scale = max_shift / 2 if max_scale is None else max_scale
        self.max_rotation = max_rotation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n = x.shape[0]
        dev = x.device
        flip_h = torch.rand(n, device=dev) < 0.5
        flip_v = torch.rand(n, device=dev) < 0.5
        x = torch.where(flip_h[:, None, None, None], x.flip(-1), x)
        x = torch.where(flip_v[:, None, None, None], x.flip(-2), x)
        if x.shape[-1] == x.shape[-2]:
            turn = torch.rand(n, device=dev) < 0.5
            x = torch.where(turn[:, None, None, None], x.transpose(-1, -2), x)
        if self.max_shift > 0 or self.max_scale > 0 or self.max_rotation > 0:
            u = torch.rand(n, 4, device=dev, dtype=x.dtype) * 2 - 1  # uniform in [-1, 1]
            scale = 1.0 + u[:, 0] * self.max_scale
            angle = u[:, 1] * math.radians(self.max_rotation)
            cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
            theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * self.max_shift], 1),
                                 torch.stack([sin, cos, u[:, 3] * self.max_shift], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
        return x


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips/turns of square images (n, C, H, W) (4 flips if not square)."""
    views = [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)]
    if x.shape[-1] == x.shape[-2]:
        views += [v.transpose(-1, -2) for v in views]
    return views


class _ConvBlock(nn.Module):
    """``n_convs`` x (Conv3x3 -> BN -> ReLU), an optional shortcut, then ``MaxPool2d(2)``."""

    def __init__(self, c_in: int, c_out: int, pre: nn.Module | None = None, n_convs: int = 1, residual: bool = False):
        super().__init__()
        if n_convs < 1:
            raise HsickitError(f"leafcnn: convs_per_block must be >= 1, got {n_convs}")
        self.pre = pre if pre is not None else nn.Identity()
        layers = []
        for i in range(n_convs):
            last = residual and i == n_convs - 1  # the shortcut is added before the last ReLU
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
            if not last:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)
        self.shortcut = None
        if residual:
            self.shortcut = nn.Identity() if c_in == c_out else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        h = self.body(x)
        if self.shortcut is not None:
            h = torch.relu(h + self.shortcut(x))
        return self.pool(h)


class _PoolFC(nn.Module):
    """Global average and max pooling, then ``Linear -> BatchNorm1d -> ReLU -> Dropout``."""

    def __init__(self, c_in: int, width: int, dropout: float):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * c_in, width), nn.BatchNorm1d(width), nn.ReLU(),
                                nn.Dropout(dropout) if dropout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.mean((-1, -2)), x.amax((-1, -2))], 1))


class LeafCNN(BlockModel):
    """A :class:`BlockModel` that, with ``config.tta``, averages log-probabilities over flips/turns in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.config.tta:
            return super().forward(x)
        shape = (len(x), *self.config.image_shape)
        outs = [F.log_softmax(super(LeafCNN, self).forward(v.reshape(len(x), -1)), -1)
                for v in dihedral_views(x.reshape(shape))]
        return torch.stack(outs).mean(0)


def _per_block(value: int | Sequence[int], n: int) -> list[int]:
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    value = [int(v) for v in value]
    if len(value) != n:
        raise HsickitError(f"leafcnn: convs_per_block has {len(value)} entries for {n} stages (channels); "
                           "give one int, or one per entry of channels")
    return value


def build_leafcnn(cfg: LeafCNNConfig) -> LeafCNN:
    shape = tuple(int(v) for v in cfg.image_shape)
    if len(shape) != 3 or int(np.prod(shape)) != cfg.in_features:
        raise HsickitError(f"leafcnn: image_shape {shape} (C, H, W) does not match in_features={cfg.in_features}; "
                           "pass image_shape=(channels, height, width) of the flattened images")
    cfg.image_shape = shape
    cfg.channels = tuple(int(c) for c in cfg.channels)
    if not isinstance(cfg.convs_per_block, (int, np.integer)):
        cfg.convs_per_block = tuple(int(v) for v in cfg.convs_per_block)
    convs = _per_block(cfg.convs_per_block, len(cfg.channels))
    pre = [nn.Unflatten(1, shape)]
    if cfg.augment:
        pre.append(RandomFlipShift(cfg.max_shift, cfg.max_scale, cfg.max_rotation))
    if cfg.downsample > 1:
        pre.append(nn.AvgPool2d(cfg.downsample))
    widths = [shape[0], *cfg.channels]
    blocks = [_ConvBlock(a, b, nn.Sequential(*pre) if i == 0 else None, n_convs=k, residual=cfg.residual)
              for i, (a, b, k) in enumerate(zip(widths[:-1], widths[1:], convs))]
    blocks.append(_PoolFC(widths[-1], cfg.width, cfg.dropout))
    return LeafCNN(cfg, blocks, nn.Linear(cfg.width, cfg.out_features))


if IMAGE_ENCODER not in list_models():
    register_model(IMAGE_ENCODER, LeafCNNConfig, build_leafcnn)


# --- contours ------------------------------------------------------------------------------------
@dataclass
class ContourCNNConfig:
    """1-D CNN over closed contours (channels x points), given flattened as (n, C*N).

    ``channels`` gives one stage (block) each: ``convs_per_block`` x (circularly padded
    ``Conv1d(kernel_size)`` -> BatchNorm1d -> ReLU), then ``MaxPool1d(2)``; the last block is
    global average+max pooling and ``Linear(width) -> BatchNorm1d -> ReLU -> Dropout``.
    Augmentation (training only, ``augment``): random cyclic shifts, reversal (``reflect``),
    scaling by up to +-``max_scale``, Gaussian noise of ``noise`` x the contour's standard
    deviation. ``tta_shifts``: in eval mode, average the log-probabilities over this many evenly
    spaced cyclic shifts (x2 with ``reflect``); 1 turns it off.
    """

    in_features: int
    out_features: int
    signal_shape: tuple[int, ...] = (1, 128)
    channels: tuple[int, ...] = (16, 32, 64)
    kernel_size: int = 5
    convs_per_block: int = 2
    width: int = 128
    dropout: float = 0.2
    augment: bool = True
    reflect: bool = True
    max_scale: float = 0.1
    noise: float = 0.02
    tta_shifts: int = 8
    architecture: str = CONTOUR_ENCODER


class ContourJitter(nn.Module):
    """Per-contour random cyclic shift, reversal, scaling and noise while training; identity in eval mode."""

    def __init__(self, reflect: bool = True, max_scale: float = 0.1, noise: float = 0.02):
        super().__init__()
        self.reflect, self.max_scale, self.noise = reflect, max_scale, noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, m = x.shape
        dev = x.device
        shift = torch.randint(0, m, (n, 1, 1), device=dev)
        idx = (torch.arange(m, device=dev).view(1, 1, m) + shift) % m
        x = torch.gather(x, 2, idx.expand_as(x))
        if self.reflect:
            flip = torch.rand(n, 1, 1, device=dev) < 0.5
            x = torch.where(flip, x.flip(-1), x)
        if self.max_scale > 0:
            x = x * (1 + (torch.rand(n, 1, 1, device=dev, dtype=x.dtype) * 2 - 1) * self.max_scale)
        if self.noise > 0:
            x = x + torch.randn_like(x) * self.noise * x.std(-1, keepdim=True)
        return x


def cyclic_views(x: torch.Tensor, shifts: int, reflect: bool) -> list[torch.Tensor]:
    """``shifts`` evenly spaced cyclic shifts of contours (n, C, N), and their reversals with ``reflect``."""
    m = x.shape[-1]
    steps = sorted({round(k * m / max(1, shifts)) % m for k in range(max(1, shifts))})
    views = [torch.roll(x, s, dims=-1) for s in steps]
    return views + [v.flip(-1) for v in views] if reflect else views


class _Conv1dStage(nn.Module):
    """``n_convs`` x (circular Conv1d -> BN -> ReLU), then ``MaxPool1d(2)``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_convs: int, pre: nn.Module | None = None):
        super().__init__()
        if n_convs < 1:
            raise HsickitError(f"contourcnn: convs_per_block must be >= 1, got {n_convs}")
        self.pre = pre if pre is not None else nn.Identity()
        layers = []
        for i in range(n_convs):
            layers += [nn.Conv1d(c_in if i == 0 else c_out, c_out, kernel_size, padding=kernel_size // 2,
                                 padding_mode="circular", bias=False), nn.BatchNorm1d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.MaxPool1d(2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.pre(x))


class _GlobalPoolFC(nn.Module):
    """Global average and max pooling over the points, then ``Linear -> BatchNorm1d -> ReLU -> Dropout``."""

    def __init__(self, c_in: int, width: int, dropout: float):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * c_in, width), nn.BatchNorm1d(width), nn.ReLU(),
                                nn.Dropout(dropout) if dropout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.mean(-1), x.amax(-1)], 1))


class ContourCNN(BlockModel):
    """A :class:`BlockModel` that, in eval mode, averages log-probabilities over cyclic shifts (and reversals)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.config.tta_shifts <= 1:
            return super().forward(x)
        shape = (len(x), *self.config.signal_shape)
        outs = [F.log_softmax(super(ContourCNN, self).forward(v.reshape(len(x), -1)), -1)
                for v in cyclic_views(x.reshape(shape), self.config.tta_shifts, self.config.reflect)]
        return torch.stack(outs).mean(0)


def build_contourcnn(cfg: ContourCNNConfig) -> ContourCNN:
    shape = tuple(int(v) for v in cfg.signal_shape)
    if len(shape) != 2 or int(np.prod(shape)) != cfg.in_features:
        raise HsickitError(f"contourcnn: signal_shape {shape} (channels, points) does not match "
                           f"in_features={cfg.in_features}; pass signal_shape=(channels, points) of the flattened contours")
    if cfg.kernel_size % 2 == 0:
        raise HsickitError(f"contourcnn: kernel_size must be odd (centred on each point), got {cfg.kernel_size}")
    cfg.signal_shape = shape
    cfg.channels = tuple(int(c) for c in cfg.channels)
    pre = [nn.Unflatten(1, shape)]
    if cfg.augment:
        pre.append(ContourJitter(cfg.reflect, cfg.max_scale, cfg.noise))
    widths = [shape[0], *cfg.channels]
    blocks = [_Conv1dStage(a, b, cfg.kernel_size, int(cfg.convs_per_block), nn.Sequential(*pre) if i == 0 else None)
              for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    blocks.append(_GlobalPoolFC(widths[-1], cfg.width, cfg.dropout))
    return ContourCNN(cfg, blocks, nn.Linear(cfg.width, cfg.out_features))


if CONTOUR_ENCODER not in list_models():
    register_model(CONTOUR_ENCODER, ContourCNNConfig, build_contourcnn)
