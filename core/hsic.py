"""Kernels and Hilbert-Schmidt independence criterion (HSIC) estimators.

Everything works on torch tensors, is differentiable and batched: a kernel takes
samples of shape ``(..., m, d)`` and returns ``(..., m, m)``; an estimator takes two
kernel matrices of shape ``(..., m, m)`` and returns ``(...)``.

Examples
--------
>>> import torch
>>> from hsickit.core import hsic
>>> x = torch.randn(64, 5)
>>> y = x[:, :1] ** 2
>>> K = hsic.gaussian_kernel(x, sigma=hsic.median_sigma(x))
>>> L = hsic.gaussian_kernel(y, sigma=hsic.median_sigma(y))
>>> float(hsic.cka(K, L)) > 0.1
True
"""
from __future__ import annotations

import torch

from hsickit.core.errors import HsickitError

CONVENTIONS = ("plain", "reference")


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.ndim == 1:
        return x[:, None]
    return x


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, clamped at zero (float32-safe).

    The samples are centred first: distances do not change, and the cancellation in
    ``|a|^2 + |b|^2 - 2 a.b`` that breaks float32 for data far from the origin goes away.
    """
    x = _flat(x)
    x = x - x.mean(-2, keepdim=True)
    sq = (x * x).sum(-1)
    d2 = sq[..., :, None] + sq[..., None, :] - 2.0 * x @ x.transpose(-1, -2)
    return d2.clamp_min(0.0)


def _check_sigma(sigma) -> None:
    if torch.is_tensor(sigma):
        if bool((sigma <= 0).any()):
            raise HsickitError(f"kernel width sigma must be > 0, got {sigma}; pass a positive sigma or sigma=None for the median heuristic")
    elif not sigma > 0:
        raise HsickitError(f"kernel width sigma must be > 0, got {sigma}; pass a positive sigma or sigma=None for the median heuristic")


def gaussian_kernel(x: torch.Tensor, sigma: float | torch.Tensor, convention: str = "plain") -> torch.Tensor:
    """Gaussian kernel matrix.

    ``convention="plain"``: ``K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))``.
    ``convention="reference"``: the HSIC-bottleneck reference code's width scaled by the
    column count d, ``exp(-|x_i - x_j|^2 / (2 sigma^2 d))``.

    Examples
    --------
    >>> gaussian_kernel(torch.zeros(3, 2), sigma=1.0).sum().item()
    9.0
    """
    _check_sigma(sigma)
    if convention not in CONVENTIONS:
        raise HsickitError(f"unknown kernel convention {convention!r}; use one of {CONVENTIONS}")
    x = _flat(x)
    scale = 2.0 * (sigma ** 2 if not torch.is_tensor(sigma) else sigma.pow(2)[..., None, None])
    if convention == "reference":
        scale = scale * x.shape[-1]
    return torch.exp(-squared_distances(x) / scale)


def linear_kernel(x: torch.Tensor) -> torch.Tensor:
    """Linear kernel ``K = X X^T``."""
    x = _flat(x)
    return x @ x.transpose(-1, -2)


def delta_kernel(labels: torch.Tensor) -> torch.Tensor:
    """Label (delta) kernel ``K_ij = 1 if labels_i == labels_j else 0`` for class indices."""
    return (labels[..., :, None] == labels[..., None, :]).to(torch.get_default_dtype())


def center(K: torch.Tensor) -> torch.Tensor:
    """Double-centred kernel ``H K H`` with ``H = I - 11^T/m``, without forming H."""
    K = K - K.mean(-1, keepdim=True)
    return K - K.mean(-2, keepdim=True)


def median_sigma(x: torch.Tensor, convention: str = "plain") -> torch.Tensor:
    """Median heuristic: sigma = median pairwise distance (not squared distance).

    With ``convention="reference"`` the result is divided by sqrt(d), so that
    ``2 sigma^2 d`` equals twice the squared median distance, as in the plain case.
    Falls back to 1.0 when all points coincide.
    """
    x = _flat(x).detach()
    m = x.shape[-2]
    d2 = squared_distances(x)
    iu = torch.triu_indices(m, m, offset=1, device=x.device)
    dist = d2[..., iu[0], iu[1]].sqrt()
    med = dist.median(-1).values
    med = torch.where(med > 0, med, torch.ones_like(med))
    if convention == "reference":
        med = med / x.shape[-1] ** 0.5
    return med


def hsic_biased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Biased HSIC estimator ``tr(K H L H) / (m-1)^2`` (Gretton et al. 2005)."""
    m = K.shape[-1]
    return (center(K) * L).sum((-2, -1)) / (m - 1) ** 2


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator of Song et al. (2012); needs m >= 4."""
    m = K.shape[-1]
    if m < 4:
        raise HsickitError(f"unbiased HSIC needs at least 4 samples, got {m}; use a larger batch")
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    Kt = K * (1 - eye)
    Lt = L * (1 - eye)
    KL = Kt @ Lt
    trace = KL.diagonal(dim1=-2, dim2=-1).sum(-1)
    sums = Kt.sum((-2, -1)) * Lt.sum((-2, -1)) / ((m - 1) * (m - 2))
    cross = 2.0 * KL.sum((-2, -1)) / (m - 2)
    return (trace + sums - cross) / (m * (m - 3))


def nocco_operator(K: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``R = Kc (Kc + eps m I)^-1`` with ``Kc`` the centred kernel, by a Cholesky solve.

    ``Kc`` and ``(Kc + eps m I)^-1`` commute, so R is computed as the solve
    ``(Kc + eps m I) R = Kc``; the result is symmetric.
    """
    m = K.shape[-1]
    Kc = center(K)
    eye = torch.eye(m, dtype=K.dtype, device=K.device)
    chol, info = torch.linalg.cholesky_ex(Kc + eps * m * eye)
    if bool((info > 0).any()):
        raise HsickitError("normalised HSIC: the centred kernel is not positive semi-definite (NaN or inf in the inputs?); check the data for NaN/inf or raise eps")
    return torch.cholesky_solve(Kc, chol)


def nhsic_nocco(K: torch.Tensor, L: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalised HSIC of NOCCO type, ``tr(R_K R_L)``, as the HSIC-bottleneck code trains with."""
    return nocco_pair(nocco_operator(K, eps), nocco_operator(L, eps))


def nocco_pair(RK: torch.Tensor, RL: torch.Tensor) -> torch.Tensor:
    """``tr(R_K R_L)`` for precomputed (symmetric) NOCCO operators."""
    return (RK * RL.transpose(-1, -2)).sum((-2, -1))


def cka(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """CKA-normalised HSIC ``HSIC(K,L) / sqrt(HSIC(K,K) HSIC(L,L))`` (biased estimator)."""
    Kc, Lc = center(K), center(L)
    kl = (Kc * Lc).sum((-2, -1))
    kk = (Kc * Kc).sum((-2, -1))
    ll = (Lc * Lc).sum((-2, -1))
    return kl / (kk * ll).clamp_min(1e-30).sqrt()


ESTIMATORS = {"nocco": nhsic_nocco, "cka": cka, "biased": hsic_biased, "unbiased": hsic_unbiased}
