"""Outline representations for the taxonomic classifier: EFDs, Fourier magnitudes, contour signals.

An outline reaches the classifier in one of two forms (read by :mod:`hsickit.datasets.outlines`):
a 1-D contour signature (n, N), such as the centroid distance, or a closed curve of (x, y)
points (n, N, 2), equally spaced by arc length and counter-clockwise. Each representation
removes what is arbitrary about an outline (its size, rotation and starting point):

- ``"efd"``: elliptic Fourier descriptors (Kuhl & Giardina 1982; ``pyefd``), normalised for
  size, rotation and starting point, with the two sign ambiguities of that normalisation (a
  half turn of the first ellipse, a start half-way round) fixed, so the features are the same
  for any rotation or starting point; fed to the residual MLP. A signature is read as a polar
  curve (radius ``r[k]`` at angle ``2 pi k / N``), so it must be positive (a raw centroid distance).
- ``"fourier"``: magnitudes of the discrete Fourier transform of the centroid distance,
  harmonics 1..K: unchanged by a cyclic shift (starting point), by rotation (which leaves the
  centroid distance as it is) and by reflection; scaled by the mean radius (curves) or taken
  after z-normalising the signature (signatures may come z-normalised, as the UCR leaf sets do).
  Fed to the residual MLP.
- ``"contour"``: the signal itself, channels x points, for the contour encoder ``contourcnn``
  (:mod:`hsickit.apps.plants.encoders`): a signature z-normalised; a curve as its centroid
  distance over its mean radius and its turning angle per point (both unchanged by rotation
  and size). The network learns invariance to the starting point and reflection from random
  cyclic shifts and reversals while training, and averages over shifts at test time.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
>>> curve = np.c_[2 * np.cos(t) + 0.3 * np.cos(3 * t), np.sin(t)][None]   # (1, 64, 2)
>>> efd_features(curve, order=10).shape, fourier_magnitudes(curve, harmonics=16).shape
((1, 37), (1, 16))
>>> contour_signals(curve).shape, contour_signals(curve[:, :, 0] + 3).shape   # curve; signature
((1, 2, 64), (1, 1, 64))
>>> turned = curve @ np.array([[0.0, -1.0], [1.0, 0.0]])   # a quarter turn
>>> bool(np.allclose(efd_features(np.roll(turned, 5, axis=1)), efd_features(curve)))
True
"""
from __future__ import annotations

import numpy as np

from hsickit.core.errors import HsickitError
from hsickit.datasets.outlines import centroid_distance

__all__ = ["REPRESENTATIONS", "DEFAULT_REPRESENTATION", "outline_kind", "efd_features", "fourier_magnitudes",
           "contour_signals", "represent", "align_outlines", "mean_outline"]

REPRESENTATIONS = ("efd", "fourier", "contour")
#: The representation ``hsickit plants train --outlines`` uses unless told otherwise: chosen on the
#: validation split of leaf-99 (inside its training data) with 128-point centroid-distance signatures,
#: the format of the held-out use case (benchmarks/plants_outlines.py; README, plants section).
DEFAULT_REPRESENTATION = "contour"
EFD_ORDER = 20


def outline_kind(X) -> str:
    """``"signatures"`` for (n, N) arrays, ``"outlines"`` for (n, N, 2) curves; anything else is an error."""
    shape = np.shape(X)
    if len(shape) == 2:
        return "signatures"
    if len(shape) == 3 and shape[-1] == 2:
        return "outlines"
    raise HsickitError(f"outlines must be 1-D signatures (n, points) or (x, y) curves (n, points, 2), got shape {shape}; "
                       "read them with hsickit.datasets.outlines.read_outlines or read_image_outlines")


def _finite(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise HsickitError("outlines contain missing or infinite values; read them with hsickit.datasets.outlines, "
                           "which names the specimens to fix")
    return X


def _znorm(x: np.ndarray) -> np.ndarray:
    sd = x.std(-1, keepdims=True)
    return (x - x.mean(-1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def _polar(signatures: np.ndarray) -> np.ndarray:
    if (signatures <= 0).any():
        raise HsickitError("EFDs of a 1-D signature read it as a polar curve and need positive radii, but some values are "
                           "<= 0 (a z-normalised signature?); use representation 'fourier' or 'contour', or pass (x, y) outlines")
    t = 2 * np.pi * np.arange(signatures.shape[1]) / signatures.shape[1]
    return np.stack([signatures * np.cos(t), signatures * np.sin(t)], axis=-1)


def efd_features(X, order: int = EFD_ORDER) -> np.ndarray:
    """Normalised elliptic Fourier descriptors, (n, 4 * order - 3).

    ``pyefd.elliptic_fourier_descriptors(normalize=True)``, then the overall sign is fixed so
    that the first harmonic's ``a`` is positive (a half turn) and the sign of the even harmonics
    so that their largest coefficient is positive (a start half-way round); the three constant
    coefficients of the first harmonic (1, 0, 0) are dropped.
    """
    import pyefd

    X = _finite(X)
    curves = _polar(X) if outline_kind(X) == "signatures" else X
    if order < 2:
        raise HsickitError(f"EFD order must be at least 2, got {order}")
    out = np.empty((len(curves), 4 * order - 3))
    for i, c in enumerate(curves):
        d = pyefd.elliptic_fourier_descriptors(c, order=order, normalize=True)
        d *= np.sign(d[0, 0]) or 1.0
        even = d[1::2]
        s = np.sign(even.flat[int(np.argmax(np.abs(even)))]) if even.size else 1.0
        d[1::2] *= s or 1.0
        out[i] = d.ravel()[3:]
    return out.astype(np.float32)


def fourier_magnitudes(X, harmonics: int | None = None) -> np.ndarray:
    """|DFT| of the centroid distance at harmonics 1..K (default K = N // 2), (n, K).

    Curves: the centroid distance over its mean (so the magnitudes are relative to the mean
    radius); signatures: z-normalised first, the magnitudes divided by sqrt(N).
    """
    X = _finite(X)
    if outline_kind(X) == "outlines":
        r = centroid_distance(X)
        r = r / r.mean(1, keepdims=True)
        spec = np.abs(np.fft.rfft(r, axis=1)) / r.shape[1]
    else:
        spec = np.abs(np.fft.rfft(_znorm(X), axis=1)) / np.sqrt(X.shape[1])
    k = spec.shape[1] - 1 if harmonics is None else int(harmonics)
    if not 1 <= k <= spec.shape[1] - 1:
        raise HsickitError(f"harmonics must lie in 1..{spec.shape[1] - 1} for outlines of {X.shape[1]} points, got {harmonics}")
    return spec[:, 1:k + 1].astype(np.float32)


def _turning_angle(curves: np.ndarray) -> np.ndarray:
    """Signed change of direction at each point of closed curves (n, N, 2), radians in (-pi, pi]."""
    d = np.roll(curves, -1, axis=1) - curves                       # edge k: point k -> k+1
    ang = np.arctan2(d[..., 1], d[..., 0])
    turn = ang - np.roll(ang, 1, axis=1)                            # at point k: edge k-1 -> edge k
    return (turn + np.pi) % (2 * np.pi) - np.pi


def contour_signals(X) -> np.ndarray:
    """Signals for the contour encoder, (n, channels, N): see the module notes."""
    X = _finite(X)
    if outline_kind(X) == "signatures":
        return _znorm(X)[:, None].astype(np.float32)
    r = centroid_distance(X)
    r = r / r.mean(1, keepdims=True) - 1.0
    return np.stack([r, _turning_angle(X)], axis=1).astype(np.float32)


def represent(X, representation: str, **params) -> np.ndarray:
    """Outlines -> the named representation (``params``: ``order`` for efd, ``harmonics`` for fourier)."""
    if representation not in REPRESENTATIONS:
        raise HsickitError(f"unknown outline representation {representation!r}; choose one of {list(REPRESENTATIONS)}")
    allowed = {"efd": {"order"}, "fourier": {"harmonics"}, "contour": set()}[representation]
    unknown = set(params) - allowed
    if unknown:
        raise HsickitError(f"outline representation {representation!r} takes {sorted(allowed) or 'no options'}, "
                           f"not {sorted(unknown)}")
    fn = {"efd": efd_features, "fourier": fourier_magnitudes, "contour": contour_signals}[representation]
    return fn(X, **params)


def _normalised(X: np.ndarray) -> np.ndarray:
    """Signatures z-normalised; curves centred and scaled to unit RMS radius, as complex numbers (n, N)."""
    if outline_kind(X) == "signatures":
        return _znorm(X)
    z = X[..., 0] + 1j * X[..., 1]
    z = z - z.mean(1, keepdims=True)
    return z / np.sqrt((np.abs(z) ** 2).mean(1, keepdims=True))


def align_outlines(X, reference=None) -> np.ndarray:
    """Outlines brought into register with ``reference`` (default: the first), for averaging and plotting.

    Signatures are z-normalised and cyclically shifted to the best correlation with the
    reference; curves are centred, scaled to unit RMS radius, then cyclically shifted and
    rotated (orthogonal Procrustes over every starting point). Returns the same shape as ``X``.
    """
    X = _finite(X)
    kind = outline_kind(X)
    Z = _normalised(X)
    ref = Z[0] if reference is None else _normalised(np.asarray(reference, dtype=np.float64)[None])[0]
    F, R = np.fft.fft(Z, axis=1), np.fft.fft(ref)
    corr = np.fft.ifft(F * np.conj(R)[None], axis=1)         # corr[i, s] = sum_k Z[i, k + s] conj(ref[k])
    if kind == "signatures":
        shift = np.argmax(corr.real, axis=1)
        return np.stack([np.roll(z, -s) for z, s in zip(Z, shift)])
    shift = np.argmax(np.abs(corr), axis=1)
    rot = np.exp(-1j * np.angle(corr[np.arange(len(Z)), shift]))
    out = np.stack([np.roll(z, -s) * r for z, s, r in zip(Z, shift, rot)])
    return np.stack([out.real, out.imag], axis=-1)


def mean_outline(X, rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The mean of outlines after alignment (generalised Procrustes: align to the first, then to the mean),
    and the aligned outlines: ``(mean (N,) or (N, 2), aligned like X)``."""
    aligned = align_outlines(X)
    for _ in range(max(0, rounds - 1)):
        aligned = align_outlines(X, reference=aligned.mean(0))
    return aligned.mean(0), aligned
