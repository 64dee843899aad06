"""Grouped (hierarchical) classification losses and simple multi-label losses.

The grouped loss ("taxonomic loss", Wu et al. 2019) keeps *one* softmax over the leaf
classes. The probability of a group (a genus, a family, any coarser class) is the sum of
the probabilities of its leaves, and the loss adds the weighted negative log-likelihoods
of the true leaf and of each true group. Everything is computed in log space:
``log_softmax`` over the leaves, then ``logsumexp`` within each group, so it stays finite
with thousands of leaves and extreme logits.

This module knows nothing about any domain: a level is just an integer array mapping
each leaf index to a group index.

Examples
--------
>>> import torch
>>> from hsickit.core.losses import GroupedLoss
>>> # 4 leaves; level 1 groups {0,1},{2,3}; level 2 puts all leaves in one group
>>> loss = GroupedLoss([[0, 0, 1, 1], [0, 0, 0, 0]])
>>> logits = torch.zeros(2, 4)
>>> round(float(loss(logits, torch.tensor([0, 3]))), 4)   # -log(1/4) - log(1/2) - log(1)
2.0794
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hsickit.core.errors import HsickitError

__all__ = [
    "group_logsumexp",
    "grouped_log_probs",
    "GroupedLoss",
    "TaxonomicLoss",
    "grouped_loss",
    "MultiLabelBCELoss",
    "FocalBCELoss",
]


def group_logsumexp(values: torch.Tensor, group_index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``logsumexp`` of ``values`` (..., n_leaves) within groups along the last axis.

    Parameters
    ----------
    values : tensor (..., n_leaves)
        Log-values, typically leaf log-probabilities.
    group_index : long tensor (n_leaves,)
        Group of each leaf, in ``0 .. n_groups - 1``.
    n_groups : int
        Number of groups; groups without leaves get ``-inf``.

    Returns
    -------
    tensor (..., n_groups)

    Examples
    --------
    >>> import torch
    >>> v = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    >>> group_logsumexp(v, torch.tensor([0, 0, 1]), 2).exp()
    tensor([[0.3000, 0.7000]])
    """
    group_index = group_index.to(values.device)
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])
    idx = group_index.unsqueeze(0).expand_as(flat)
    # per-group maximum, used only as a shift: logsumexp does not depend on it, so no gradient
    with torch.no_grad():
        gmax = torch.full((flat.shape[0], n_groups), float("-inf"), dtype=flat.dtype, device=flat.device)
        gmax = gmax.scatter_reduce(1, idx, flat, reduce="amax", include_self=True)
        gmax = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))
    shifted = torch.exp(flat - gmax.gather(1, idx))
    sums = torch.zeros((flat.shape[0], n_groups), dtype=flat.dtype, device=flat.device)
    sums = sums.scatter_add(1, idx, shifted)
    out = torch.log(sums) + gmax
    return out.reshape(*lead, n_groups)


def _as_index(group_map, n_leaves: int | None, level: int) -> tuple[torch.Tensor, int]:
    arr = np.asarray(group_map)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise HsickitError(
            f"group map for level {level} must be a 1-D integer array (leaf index -> group index), "
            f"got shape {arr.shape} dtype {arr.dtype}; build it e.g. with numpy.unique(names, return_inverse=True)[1]."
        )
    if n_leaves is not None and arr.shape[0] != n_leaves:
        raise HsickitError(
            f"group map for level {level} has {arr.shape[0]} entries but level 1 has {n_leaves} leaves; "
            "give every level one group index per leaf, in the same leaf order."
        )
    if arr.size and arr.min() < 0:
        raise HsickitError(f"group map for level {level} has a negative group index; use indices 0..n_groups-1.")
    n_groups = int(arr.max()) + 1 if arr.size else 0
    return torch.as_tensor(arr, dtype=torch.long), n_groups


def grouped_log_probs(logits: torch.Tensor, group_maps: Sequence) -> list[torch.Tensor]:
    """Log-probabilities at every level: leaves first, then one tensor per group map.

    Examples
    --------
    >>> import torch
    >>> lp = grouped_log_probs(torch.zeros(1, 4), [[0, 0, 0, 1]])
    >>> [t.exp().round(decimals=2).tolist() for t in lp]
    [[[0.25, 0.25, 0.25, 0.25]], [[0.75, 0.25]]]
    """
    leaf = F.log_softmax(logits, dim=-1)
    out = [leaf]
    for level, gm in enumerate(group_maps, start=2):
        idx, n_groups = _as_index(gm, logits.shape[-1], level)
        out.append(group_logsumexp(leaf, idx, n_groups))
    return out


class GroupedLoss(nn.Module):
    """Weighted sum of negative log-likelihoods of the true leaf and its true groups.

    ``loss = w_1 * -log p(leaf) + sum_l w_l * -log sum_{j in group_l(leaf)} p(j)``
    with one softmax over the leaves. With no group maps (or all group weights 0) it is
    plain cross-entropy. ``label_smoothing`` eps replaces the leaf term by
    ``(1 - eps) * -log p(leaf) + eps * mean_j -log p(j)`` (as ``torch.nn.functional.cross_entropy``);
    the group terms are not smoothed.

    Parameters
    ----------
    group_maps : sequence of int arrays (n_leaves,)
        One per coarser level (e.g. species->genus, species->family), leaf order as the logits.
    weights : sequence of float, optional
        One per level, leaf level first (length ``1 + len(group_maps)``). Default all 1.
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1)

    Examples
    --------
    >>> import torch
    >>> loss = GroupedLoss([[0, 0, 1]], weights=(1.0, 0.5))
    >>> round(float(loss(torch.zeros(1, 3), torch.tensor([2]))), 4)  # -log(1/3) - 0.5 log(1/3)
    1.6479
    """

    def __init__(self, group_maps: Sequence = (), weights: Sequence[float] | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        n_leaves = None
        idxs, sizes = [], []
        for level, gm in enumerate(group_maps, start=2):
            idx, n_groups = _as_index(gm, n_leaves, level)
            n_leaves = idx.shape[0]
            idxs.append(idx)
            sizes.append(n_groups)
        n_levels = 1 + len(idxs)
        if weights is None:
            weights = (1.0,) * n_levels
        weights = tuple(float(w) for w in weights)
        if len(weights) != n_levels:
            raise HsickitError(
                f"got {len(weights)} level weights for {n_levels} levels (leaf + {len(idxs)} group maps); "
                f"give one weight per level, leaf level first, e.g. {(1.0,) * n_levels}."
            )
        if any(w < 0 or not np.isfinite(w) for w in weights):
            raise HsickitError(f"level weights must be finite and >= 0, got {weights}.")
        if reduction not in ("mean", "sum", "none"):
            raise HsickitError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise HsickitError(f"label_smoothing must lie in [0, 1), got {label_smoothing}; 0 turns it off, 0.1 is usual.")
        self.label_smoothing = float(label_smoothing)
        self.n_leaves = n_leaves
        self.n_groups = tuple(sizes)
        self.weights = weights
        self.reduction = reduction
        for i, idx in enumerate(idxs):
            self.register_buffer(f"group_index_{i}", idx, persistent=False)

    @property
    def group_indices(self) -> list[torch.Tensor]:
        return [getattr(self, f"group_index_{i}") for i in range(len(self.n_groups))]

    def level_log_probs(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Log-probabilities at every level (leaf level first)."""
        leaf = F.log_softmax(logits, dim=-1)
        return [leaf] + [group_logsumexp(leaf, idx, n) for idx, n in zip(self.group_indices, self.n_groups)]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2:
            raise HsickitError(f"logits must be (batch, n_leaves), got shape {tuple(logits.shape)}.")
        if self.n_leaves is not None and logits.shape[1] != self.n_leaves:
            raise HsickitError(
                f"logits have {logits.shape[1]} leaf columns but the group maps describe {self.n_leaves} leaves; "
                "build the loss from the same class list as the model's output layer."
            )
        target = target.long().reshape(-1)
        leaf = F.log_softmax(logits, dim=-1)
        nll_leaf = -leaf.gather(1, target[:, None])[:, 0]
        if self.label_smoothing:
            nll_leaf = (1.0 - self.label_smoothing) * nll_leaf - self.label_smoothing * leaf.mean(1)
        nll = self.weights[0] * nll_leaf
        for w, idx, n in zip(self.weights[1:], self.group_indices, self.n_groups):
            if w == 0.0:
                continue
            idx = idx.to(logits.device)
            lp = group_logsumexp(leaf, idx, n)
            nll = nll - w * lp.gather(1, idx[target][:, None])[:, 0]
        if self.reduction == "mean":
            return nll.mean()
        if self.reduction == "sum":
            return nll.sum()
        return nll

    def extra_repr(self) -> str:
        return (f"n_leaves={self.n_leaves}, n_groups={self.n_groups}, weights={self.weights}"
                f"{f', label_smoothing={self.label_smoothing}' if self.label_smoothing else ''}")


#: The taxonomic loss of Wu et al. (2019) is the grouped loss with species as leaves.
TaxonomicLoss = GroupedLoss


def grouped_loss(logits: torch.Tensor, target: torch.Tensor, group_maps: Sequence = (),
                 weights: Sequence[float] | None = None, reduction: str = "mean") -> torch.Tensor:
    """Functional form of :class:`GroupedLoss`.

    Examples
    --------
    >>> import torch
    >>> round(float(grouped_loss(torch.zeros(1, 2), torch.tensor([0]))), 4)  # plain CE
    0.6931
    """
    return GroupedLoss(group_maps, weights, reduction).to(logits.device)(logits, target)


class MultiLabelBCELoss(nn.Module):
    """Binary cross-entropy with logits over (n, k) 0/1 targets, optional per-label ``pos_weight``.

    Examples
    --------
    >>> import torch
    >>> round(float(MultiLabelBCELoss()(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))), 4)
    0.6931
    """

    def __init__(self, pos_weight: Sequence[float] | None = None):
        super().__init__()
        pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        self.register_buffer("pos_weight", pw, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=self.pos_weight)


class FocalBCELoss(nn.Module):
    """Multi-label focal loss (Lin et al. 2017): BCE scaled by ``(1 - p_t) ** gamma``.

    ``gamma=0`` is plain binary cross-entropy.

    Examples
    --------
    >>> import torch
    >>> round(float(FocalBCELoss(gamma=0.0)(torch.zeros(1, 1), torch.ones(1, 1))), 4)
    0.6931
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None):
        super().__init__()
        self.gamma = float(gamma)
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        log_pt = -bce
        loss = (1.0 - log_pt.exp()).clamp_min(0.0) ** self.gamma * bce
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss.mean()
