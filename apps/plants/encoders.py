"""Encoders for plant specimens: a small CNN for leaf images, registered in the core model registry.

Feature vectors use the core residual MLP (``"residual_mlp"``); images use ``"leafcnn"``,
registered here: blocks of ``Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d(2)``, global
average+max pooling, then a fully connected block. During training the first block
applies random flips, 90-degree turns and small shifts (leaf silhouettes have no
canonical orientation); at prediction time it is the identity.

The network takes images flattened to (n, C*H*W), like every other core model takes
(n, features), and restores ``image_shape`` in its first block, so the core estimators
and trainer handle it unchanged.

Examples
--------
>>> import torch
>>> from hsickit.core.models import create_model
>>> import hsickit.apps.plants.encoders  # registers "leafcnn"
>>> net = create_model("leafcnn", in_features=32 * 32, out_features=5, image_shape=(1, 32, 32),
...                    channels=(4, 8), width=16)
>>> net.eval()(torch.zeros(2, 32 * 32)).shape   # images come flattened, (n, C*H*W)
torch.Size([2, 5])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hsickit.core.errors import HsickitError
from hsickit.core.models import BlockModel, list_models, register_model

__all__ = ["LeafCNNConfig", "RandomFlipShift", "build_leafcnn", "FEATURE_ENCODER", "IMAGE_ENCODER"]

FEATURE_ENCODER = "residual_mlp"
IMAGE_ENCODER = "leafcnn"


@dataclass
class LeafCNNConfig:
    """Small 2-D CNN for images in [0, 1], given flattened as (n, C*H*W)."""

    in_features: int
    out_features: int
    image_shape: tuple[int, ...] = (1, 128, 128)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    width: int = 256
    downsample: int = 2
    augment: bool = True
    max_shift: float = 0.1
    dropout: float = 0.2
    architecture: str = IMAGE_ENCODER


class RandomFlipShift(nn.Module):
    """Per-sample random flips, 90-degree rotations and shifts while training; identity in eval mode."""

    def __init__(self, max_shift: float = 0.1):
        super().__init__()
        self.max_shift = max_shift

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
        if self.max_shift > 0:
            theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
            scale = 1.0 + (torch.rand(n, device=dev, dtype=x.dtype) - 0.5) * self.max_shift
            theta[:, 0, 0] = scale
            theta[:, 1, 1] = scale
            theta[:, :, 2] = (torch.rand(n, 2, device=dev, dtype=x.dtype) - 0.5) * 2 * self.max_shift
            grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
            x = torch.nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
        return x


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, pre: nn.Module | None = None):
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.MaxPool2d(2, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.pre(x))


class _PoolFC(nn.Module):
    """Global average and max pooling, then ``Linear -> BatchNorm1d -> ReLU -> Dropout``."""

    def __init__(self, c_in: int, width: int, dropout: float):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * c_in, width), nn.BatchNorm1d(width), nn.ReLU(),
                                nn.Dropout(dropout) if dropout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([x.mean((-1, -2)), x.amax((-1, -2))], 1))


def build_leafcnn(cfg: LeafCNNConfig) -> BlockModel:
    shape = tuple(int(v) for v in cfg.image_shape)
    if len(shape) != 3 or int(np.prod(shape)) != cfg.in_features:
        raise HsickitError(f"leafcnn: image_shape {shape} (C, H, W) does not match in_features={cfg.in_features}; "
                           "pass image_shape=(channels, height, width) of the flattened images")
    cfg.image_shape = shape
    pre = [nn.Unflatten(1, shape)]
    if cfg.augment:
        pre.append(RandomFlipShift(cfg.max_shift))
    if cfg.downsample > 1:
        pre.append(nn.AvgPool2d(cfg.downsample))
    widths = [shape[0], *cfg.channels]
    blocks = [_ConvBlock(a, b, nn.Sequential(*pre) if i == 0 else None)
              for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    blocks.append(_PoolFC(widths[-1], cfg.width, cfg.dropout))
    return BlockModel(cfg, blocks, nn.Linear(cfg.width, cfg.out_features))


if IMAGE_ENCODER not in list_models():
    register_model(IMAGE_ENCODER, LeafCNNConfig, build_leafcnn)
