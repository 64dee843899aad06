"""A registry of block-structured networks: MLPs, IRNet residual MLPs, 1-D conv encoders.

Every model is a :class:`BlockModel`: ``.blocks`` (the hidden blocks a trainer can attach
a local loss to), ``.head`` (the output, or "format", layer) and ``.config`` (a dataclass
that rebuilds the model, saved beside the weights).

Examples
--------
>>> from hsickit.core.models import create_model, list_models
>>> "irnet17" in list_models()
True
>>> net = create_model("irnet17", in_features=145, out_features=1)
>>> len(net.blocks)  # 16 hidden blocks + the output layer = 17 layers
16
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from hsickit.core.errors import HsickitError

IRNET_PRESETS = {
    17: [1024] * 4 + [512] * 3 + [256] * 3 + [128] * 3 + [64] * 2 + [32],
    24: [1024] * 4 + [512] * 4 + [256] * 4 + [128] * 4 + [64] * 3 + [32] * 2 + [16] * 2,
    48: [1024] * 8 + [512] * 8 + [256] * 8 + [128] * 8 + [64] * 8 + [32] * 4 + [16] * 3,
}


class BlockModel(nn.Module):
    """Hidden blocks followed by an output head; ``features`` is the last block's output."""

    def __init__(self, config, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class MLPConfig:
    """HSIC-bottleneck reference MLP: blocks ``Linear -> BatchNorm1d(affine=False) -> ReLU``.

    ``init``: the blocks' weights, ``"default"`` (PyTorch's) or ``"orthogonal"`` (orthogonal
    weights, zero biases), which keeps a deep plain net trainable by HSIC (benchmarks/hsic_depth.py).
    """

    in_features: int
    out_features: int
    hidden: tuple[int, ...] = (1024,) * 5
    batchnorm: bool = True
    dropout: float = 0.0
    init: str = "default"
    architecture: str = "mlp"


@dataclass
class ResidualMLPConfig:
    """IRNet: each block ``h = ReLU(BN(Linear(x)))`` plus a shortcut (identity or projection)."""

    in_features: int
    out_features: int
    hidden: tuple[int, ...] = tuple(IRNET_PRESETS[17])
    residual: bool = True
    batchnorm: bool = True
    dropout: float = 0.0
    init: str = "default"
    architecture: str = "irnet"


@dataclass
class Conv1dConfig:
    """1-D convolutional encoder for signals shaped (n, in_channels, time).

    Each block is ``Conv1d -> BatchNorm1d -> ReLU -> MaxPool1d(2)``; the last block
    ends with global average pooling, so ``features`` is (n, channels[-1]).
    """

    in_channels: int
    out_features: int
    channels: tuple[int, ...] = (16, 32, 64)
    kernel_size: int = 7
    architecture: str = "conv1d"


class Block(nn.Module):
    """``act(norm(Linear(x)))`` plus an optional IRNet shortcut added after the activation."""

    def __init__(self, n_in: int, n_out: int, batchnorm: bool, affine: bool, residual: bool, dropout: float):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm = nn.BatchNorm1d(n_out, affine=affine) if batchnorm else nn.Identity()
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = None
        if residual:
            self.shortcut = nn.Identity() if n_in == n_out else nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.norm(self.linear(x))))
        if self.shortcut is not None:
            h = h + self.shortcut(x)
        return h


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, last: bool):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1) if last else nn.MaxPool1d(2, ceil_mode=True),
        )
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return h.flatten(1) if self.last else h


@dataclass
class ParallelConfig:
    """Several copies of one architecture side by side; ``features`` concatenates theirs.

    The HSIC bottleneck's "sigma-combined" network: each member is trained with its own
    kernel width, and one format layer reads the concatenated representations.
    """

    member: dict
    n_members: int
    out_features: int
    architecture: str = "parallel"


class ParallelModel(BlockModel):
    """Members (BlockModels without heads) whose last representations are concatenated."""

    def __init__(self, config: ParallelConfig, members: list[BlockModel], head: nn.Module):
        super().__init__(config, [], head)
        self.members = nn.ModuleList(members)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x) for m in self.members], dim=1)


def block_chains(model: BlockModel) -> list[list[nn.Module]]:
    """The sequences of blocks a trainer walks: one per member of a parallel model, else one."""
    if isinstance(model, ParallelModel):
        return [list(m.blocks) for m in model.members]
    return [list(model.blocks)]


def _build_parallel(cfg: ParallelConfig) -> ParallelModel:
    members = [model_from_config({**cfg.member, "out_features": 1}) for _ in range(cfg.n_members)]
    for m in members:
        m.head = nn.Identity()
    width = sum((m.config.hidden if hasattr(m.config, "hidden") else m.config.channels)[-1] for m in members)
    return ParallelModel(cfg, members, nn.Linear(width, cfg.out_features))


#: block weight initialisations of the MLPs (``init``)
INITS = ("default", "orthogonal")


def _build_mlp(cfg: MLPConfig | ResidualMLPConfig, affine: bool, residual: bool) -> BlockModel:
    if cfg.init not in INITS:
        raise HsickitError(f"init={cfg.init!r}; use one of {', '.join(INITS)}")
    widths = [cfg.in_features, *cfg.hidden]
    blocks = [Block(a, b, cfg.batchnorm, affine, residual, cfg.dropout) for a, b in zip(widths[:-1], widths[1:])]
    model = BlockModel(cfg, blocks, nn.Linear(widths[-1], cfg.out_features))
    if cfg.init == "orthogonal":
        for block in model.blocks:
            nn.init.orthogonal_(block.linear.weight)
            nn.init.zeros_(block.linear.bias)
    return model


def _build(cfg) -> BlockModel:
    if isinstance(cfg, MLPConfig):
        return _build_mlp(cfg, affine=False, residual=False)
    if isinstance(cfg, ResidualMLPConfig):
        return _build_mlp(cfg, affine=True, residual=cfg.residual)
    widths = [cfg.in_channels, *cfg.channels]
    n = len(cfg.channels)
    blocks = [ConvBlock(a, b, cfg.kernel_size, i == n - 1) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    return BlockModel(cfg, blocks, nn.Linear(widths[-1], cfg.out_features))


_REGISTRY: dict[str, tuple[type, dict, Callable]] = {}
_CONFIG_TYPES: dict[str, type] = {}


def register_model(name: str, config_type: type, builder: Callable | None = None, **defaults) -> None:
    """Register ``name`` as ``builder(config_type(**defaults, **overrides))``.

    ``builder`` defaults to hsickit's own builder; an application may register a model
    of its own (a ``BlockModel`` built from a config dataclass with an ``architecture`` field).
    """
    _REGISTRY[name] = (config_type, {**defaults, "architecture": name}, builder or _build)
    _CONFIG_TYPES[name] = config_type


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def model_config_type(name: str) -> type:
    """The config dataclass type of a registered model."""
    if name not in _REGISTRY:
        raise HsickitError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _REGISTRY[name][0]


def model_config(name: str, **overrides):
    """The config dataclass that ``create_model(name, **overrides)`` would build from."""
    if name not in _REGISTRY:
        raise HsickitError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    config_type, defaults, _ = _REGISTRY[name]
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = set(overrides) - known
    if unknown:
        raise HsickitError(f"model {name!r} has no option(s) {sorted(unknown)}; its options are {sorted(known - {'architecture'})}")
    params = {**defaults, **overrides}
    missing = [f.name for f in dataclasses.fields(config_type)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in params]
    if missing:
        raise HsickitError(f"model {name!r} needs {missing}, e.g. create_model({name!r}, {missing[0]}=...)")
    for key in ("hidden", "channels"):
        if key in params:
            params[key] = tuple(int(v) for v in params[key])
    return config_type(**params)


def create_model(name: str, **overrides) -> BlockModel:
    """Build a registered model, e.g. ``create_model("mlp", in_features=784, out_features=10)``."""
    cfg = model_config(name, **overrides)
    return _REGISTRY[name][2](cfg)


def model_from_config(config: dict) -> BlockModel:
    """Rebuild a model from ``dataclasses.asdict(model.config)`` (as saved beside the weights)."""
    config = dict(config)
    name = config.pop("architecture", None)
    if name not in _REGISTRY:
        raise HsickitError(f"saved config names unknown architecture {name!r}; valid names: {', '.join(list_models())}")
    return create_model(name, **config)


register_model("mlp", MLPConfig)
for _depth, _hidden in IRNET_PRESETS.items():
    register_model(f"irnet{_depth}", ResidualMLPConfig, hidden=tuple(_hidden), residual=True)
    register_model(f"plain{_depth}", ResidualMLPConfig, hidden=tuple(_hidden), residual=False)
register_model("residual_mlp", ResidualMLPConfig, hidden=(256, 256, 256), residual=True)
register_model("elemnet17", MLPConfig, hidden=tuple(IRNET_PRESETS[17]), batchnorm=False, dropout=0.1)
register_model("conv1d", Conv1dConfig)
register_model("parallel", ParallelConfig, _build_parallel)
