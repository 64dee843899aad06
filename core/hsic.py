"""Kernels and Hilbert-Schmidt independence criterion (HSIC) estimators.

Everything works on torch tensors, is differentiable and batched: a kernel takes
samples of shape ``(..., m, d)`` and returns ``(..., m, m)``; an estimator takes two
kernel matrices of shape ``(..., m, m)`` and returns ``(...)``.

For large m the ``*_features`` estimators take explicit feature maps instead
(``K ~= Phi Phi^T``, Phi of shape ``(..., m, D)``): random Fourier features of the
Gaussian kernel, exact one-hot features of the label kernel; O(m D^2) time, O(m D) memory.

Examples
--------
>>> import torch
>>> from hsickit.core import hsic
>>> _ = torch.manual_seed(0)
>>> x, z = torch.randn(64, 1), torch.randn(64, 1)
>>> y = x ** 2  # depends on x, not linearly; z does not
>>> K, L, M = (hsic.gaussian_kernel(a, sigma=hsic.median_sigma(a)) for a in (x, y, z))
>>> float(hsic.cka(K, L)) > 0.3 > float(hsic.cka(K, M))
True
>>> phi = hsic.random_fourier_features(x, hsic.median_sigma(x), n_features=2048, random_state=0)
>>> psi = hsic.random_fourier_features(y, hsic.median_sigma(y), n_features=2048, random_state=1)
>>> abs(float(hsic.hsic_biased_features(phi, psi) / hsic.hsic_biased(K, L)) - 1) < 0.2
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
    if bool((info > 0).any()) and K.dtype != torch.float64:
        # float32 rounding can leave eigenvalues below -eps*m (features on very different
        # scales): redo this one in float64, where it cannot
        return nocco_operator(K.double(), eps).to(K.dtype)
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


# --- Approximate HSIC: explicit feature maps, O(m D) instead of O(m^2) ----------------------
#
# A kernel with an explicit (approximate) feature map, K ~= Phi Phi^T with Phi of shape (m, D),
# turns every estimator above into products of (m, D) matrices: centring is a column mean,
# tr(K H L H) = |Phi_c^T Psi_c|_F^2, and the NOCCO operator Kc (Kc + eps m I)^-1 equals
# Phi_c (Phi_c^T Phi_c + eps m I_D)^-1 Phi_c^T (push-through / Woodbury identity), so
# tr(R_K R_L) = |U^T V|_F^2 with whitened features U = Phi_c C^-T, C C^T = Phi_c^T Phi_c + eps m I.
# Memory O(m D), time O(m D^2 + D^3); the class-indicator (delta) kernel has the exact
# feature map one_hot(labels), so HSIC(Z, Y) of a classifier is only approximate in Z.


def _generator(random_state, device: torch.device) -> torch.Generator | None:
    if random_state is None or isinstance(random_state, torch.Generator):
        return random_state
    return torch.Generator(device=device).manual_seed(int(random_state))


def rff_frequencies(d: int, n: int, orthogonal: bool = False, random_state: int | torch.Generator | None = None,
                    device=None, dtype=None) -> torch.Tensor:
    """``n`` frequencies ``w ~ N(0, I_d)`` as rows of an (n, d) matrix (unit kernel width).

    ``orthogonal=True``: rows drawn in blocks of at most d mutually orthogonal directions
    (thin QR of a Gaussian matrix, Haar-distributed), each rescaled to an independent
    chi_d length, so every row is still N(0, I_d) but rows of a block are orthogonal.
    """
    gen = _generator(random_state, torch.device(device) if device is not None else torch.device("cpu"))
    if not orthogonal:
        return torch.randn(n, d, generator=gen, device=device, dtype=dtype)
    blocks = []
    for start in range(0, n, d):
        k = min(d, n - start)
        q, r = torch.linalg.qr(torch.randn(d, k, generator=gen, device=device, dtype=dtype))
        q = q * torch.sign(torch.diagonal(r))[None, :]
        lengths = torch.randn(k, d, generator=gen, device=device, dtype=dtype).norm(dim=1)
        blocks.append(q.T * lengths[:, None])
    return torch.cat(blocks)


def random_fourier_features(x: torch.Tensor, sigma: float | torch.Tensor, n_features: int = 1024,
                            convention: str = "plain", random_state: int | torch.Generator | None = None,
                            orthogonal: bool = False) -> torch.Tensor:
    """Random Fourier features of the Gaussian kernel (Rahimi & Recht 2007).

    Returns ``Phi`` of shape ``(..., m, n_features)`` with ``Phi Phi^T`` an unbiased
    estimate of ``gaussian_kernel(x, sigma, convention)``: ``n_features / 2`` frequencies
    ``w ~ N(0, I / s^2)`` (``s^2 = sigma^2``, times d for ``convention="reference"``), each
    giving the pair ``cos(w.x), sin(w.x)`` scaled by ``sqrt(2 / n_features)``, so the
    diagonal of ``Phi Phi^T`` is exactly 1. Entry-wise error ~ ``1 / sqrt(n_features)``.
    ``orthogonal=True`` draws the frequencies as scaled orthogonal blocks (Yu et al. 2016),
    which lowers the variance at the price of one QR factorisation per draw.
    ``random_state`` (an int or a ``torch.Generator`` on x's device) makes the draw
    reproducible; the result is differentiable in x (the frequencies are constants).

    Examples
    --------
    >>> x = torch.randn(500, 3, dtype=torch.float64)
    >>> phi = random_fourier_features(x, 2.0, n_features=4096, random_state=0)
    >>> bool((phi @ phi.T - gaussian_kernel(x, 2.0)).abs().max() < 0.1)
    True
    """
    _check_sigma(sigma)
    if convention not in CONVENTIONS:
        raise HsickitError(f"unknown kernel convention {convention!r}; use one of {CONVENTIONS}")
    if n_features < 2 or n_features % 2:
        raise HsickitError(f"n_features must be an even number >= 2 (cos/sin pairs), got {n_features}")
    x = _flat(x)
    x = x - x.mean(-2, keepdim=True)  # shift-invariant kernel: centring keeps cos() arguments small
    d, half = x.shape[-1], n_features // 2
    gen = _generator(random_state, x.device)
    w = rff_frequencies(d, half, orthogonal, gen, x.device, x.dtype)
    s2 = sigma ** 2 if not torch.is_tensor(sigma) else sigma.pow(2)[..., None, None]
    if convention == "reference":
        s2 = s2 * d
    proj = (x @ w.T) / (s2 ** 0.5)
    return torch.cat([torch.cos(proj), torch.sin(proj)], -1) * (1.0 / half) ** 0.5


def label_features(labels: torch.Tensor, n_classes: int | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Exact feature map of :func:`delta_kernel`: one-hot rows, ``Phi Phi^T = delta_kernel(labels)``."""
    n = int(labels.max()) + 1 if n_classes is None else n_classes
    return torch.nn.functional.one_hot(labels.long(), n).to(dtype or torch.get_default_dtype())


def _center_features(phi: torch.Tensor) -> torch.Tensor:
    """``H Phi``: the features of the centred kernel ``H Phi Phi^T H``."""
    return phi - phi.mean(-2, keepdim=True)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.transpose(-1, -2) @ b


def hsic_biased_features(phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """:func:`hsic_biased` of the kernels ``Phi Phi^T`` and ``Psi Psi^T``: ``|Phi_c^T Psi_c|^2 / (m-1)^2``."""
    m = phi.shape[-2]
    return _cross(_center_features(phi), _center_features(psi)).pow(2).sum((-2, -1)) / (m - 1) ** 2


def hsic_unbiased_features(phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """:func:`hsic_unbiased` of the kernels ``Phi Phi^T`` and ``Psi Psi^T`` in O(m D^2)."""
    m = phi.shape[-2]
    if m < 4:
        raise HsickitError(f"unbiased HSIC needs at least 4 samples, got {m}; use a larger batch")
    k, l = phi.pow(2).sum(-1), psi.pow(2).sum(-1)  # kernel diagonals
    trace = _cross(phi, psi).pow(2).sum((-2, -1)) - (k * l).sum(-1)  # tr(Kt Lt)
    kt1 = (phi @ phi.sum(-2).unsqueeze(-1)).squeeze(-1) - k  # Kt 1
    lt1 = (psi @ psi.sum(-2).unsqueeze(-1)).squeeze(-1) - l
    sums = kt1.sum(-1) * lt1.sum(-1) / ((m - 1) * (m - 2))
    cross = 2.0 * (kt1 * lt1).sum(-1) / (m - 2)
    return (trace + sums - cross) / (m * (m - 3))


def _self_hsic_rff(a: torch.Tensor) -> torch.Tensor:
    """``tr(K H K H)`` from centred i.i.d. random Fourier features without same-frequency terms.

    With ``K~ = mean_j k_j`` over h frequencies, ``|a^T a|^2 = h^-2 sum_jl tr(k_j H k_l H)``;
    the j = l terms (a 2 x 2 Gram per frequency) carry the positive bias, the rest is a
    U-statistic whose expectation is ``tr(K H K H)``.
    """
    h = a.shape[-1] // 2
    c, s = a[..., :h], a[..., h:]
    same = ((c * c).sum(-2) ** 2 + (s * s).sum(-2) ** 2 + 2 * (c * s).sum(-2) ** 2).sum(-1)
    return (_cross(a, a).pow(2).sum((-2, -1)) - same) * h / (h - 1)


def cka_features(phi: torch.Tensor, psi: torch.Tensor, debias: bool | tuple[bool, bool] = False) -> torch.Tensor:
    """:func:`cka` of the kernels ``Phi Phi^T`` and ``Psi Psi^T``.

    ``debias`` (one bool, or one per side): that side's features are i.i.d. random Fourier
    features (:func:`random_fourier_features` with ``orthogonal=False``), drawn
    independently of the other side's; its denominator ``HSIC(K, K)`` then drops the
    same-frequency terms, whose positive bias otherwise lowers CKA by several per cent at
    a few hundred features. Leave it False for exact features (e.g. :func:`label_features`).
    """
    a, b = _center_features(phi), _center_features(psi)
    da, db = (debias, debias) if isinstance(debias, bool) else debias
    kl = _cross(a, b).pow(2).sum((-2, -1))
    kk = _self_hsic_rff(a) if da else _cross(a, a).pow(2).sum((-2, -1))
    ll = _self_hsic_rff(b) if db else _cross(b, b).pow(2).sum((-2, -1))
    return kl / (kk * ll).clamp_min(1e-30).sqrt()


def nocco_features(phi: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Whitened features ``U`` with ``U U^T`` = :func:`nocco_operator` of ``Phi Phi^T``.

    ``U = Phi_c C^-T`` where ``C C^T = Phi_c^T Phi_c + eps m I_D`` (a D x D Cholesky).
    """
    m, D = phi.shape[-2], phi.shape[-1]
    a = _center_features(phi)
    gram = _cross(a, a) + eps * m * torch.eye(D, dtype=phi.dtype, device=phi.device)
    chol, info = torch.linalg.cholesky_ex(gram)
    if bool((info > 0).any()):
        raise HsickitError("normalised HSIC: the feature Gram matrix is not positive definite (NaN or inf in the inputs?); check the data for NaN/inf or raise eps")
    return torch.linalg.solve_triangular(chol, a.transpose(-1, -2), upper=False).transpose(-1, -2)


def nocco_pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``tr(R_K R_L) = |U^T V|_F^2`` for whitened features from :func:`nocco_features`."""
    return _cross(u, v).pow(2).sum((-2, -1))


def nhsic_nocco_features(phi: torch.Tensor, psi: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """:func:`nhsic_nocco` of the kernels ``Phi Phi^T`` and ``Psi Psi^T``, in O(m D^2 + D^3)."""
    return nocco_pair_features(nocco_features(phi, eps), nocco_features(psi, eps))


FEATURE_ESTIMATORS = {"nocco": nhsic_nocco_features, "cka": cka_features, "biased": hsic_biased_features,
                      "unbiased": hsic_unbiased_features}
