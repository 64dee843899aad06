"""Synthetic MIT-BIH-like records written as real WFDB files (for the demo and the tests).

No ECG records ship inside an installed package, so :func:`write_synthetic_records`
makes a few: two leads (MLII, V1) at 360 Hz in format 212, beats built from Gaussian
P-QRS-T waves (as in McSharry's ECGSYN) with N, S (premature, normal QRS, abnormal P),
V (premature, wide QRS, no P, compensatory pause) and F (fusion of N and V) beats, each
record with its own heart rate, amplitudes and noise. Reference annotations are written
with :func:`wfdb.wrann` (extension ``atr``), so everything downstream runs the real
WFDB reading path.

Example
-------
>>> import tempfile, wfdb
>>> d = write_synthetic_records(tempfile.mkdtemp(), n_records=1, duration=10, random_state=0)
>>> rec = wfdb.rdrecord(f"{d}/s00")
>>> rec.fs, rec.sig_name
(360, ['MLII', 'V1'])
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import wfdb

__all__ = ["write_synthetic_records", "synthetic_record"]

# (centre s, width s, amplitude) of P, Q, R, S, T for each beat kind, lead MLII; V1 flips R/S.
_WAVES = {
    "N": [(-0.20, 0.025, 0.15), (-0.03, 0.010, -0.12), (0.0, 0.012, 1.0), (0.03, 0.010, -0.25), (0.28, 0.060, 0.30)],
    "S": [(-0.16, 0.020, -0.12), (-0.03, 0.010, -0.12), (0.0, 0.012, 0.95), (0.03, 0.010, -0.25), (0.26, 0.060, 0.28)],
    "V": [(0.0, 0.045, 1.3), (0.07, 0.040, -0.6), (0.34, 0.080, -0.45)],
}
_FS = 360


def _wave(kind: str, t: np.ndarray, scale: float, width: float) -> np.ndarray:
    if kind == "F":
        return 0.5 * (_wave("N", t, scale, width) + _wave("V", t, scale, width))
    out = np.zeros_like(t)
    for c, w, a in _WAVES[kind]:
        out += a * scale * np.exp(-0.5 * ((t - c) / (w * width)) ** 2)
    return out


def synthetic_record(duration: float = 60.0, rates: dict | None = None, random_state=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One synthetic record: signal (time, 2) in mV, R-peak samples and beat symbols.

    ``rates``: probability of each ectopic kind per beat, default ``{"S": 0.06, "V": 0.08, "F": 0.02}``.
    """
    rng = np.random.default_rng(random_state)
    rates = rates or {"S": 0.06, "V": 0.08, "F": 0.02}
    n = int(duration * _FS)
    rr_mean = rng.uniform(0.65, 1.05)
    scale = rng.uniform(0.7, 1.4)
    width = rng.uniform(0.85, 1.2)
    kinds, peaks = [], []
    t = 0.4
    prev = "N"
    while t < duration - 0.6:
        u = rng.random()
        kind = "N"
        if prev == "N":
            acc = 0.0
            for k, p in rates.items():
                acc += p
                if u < acc:
                    kind = k
                    break
        kinds.append(kind)
        peaks.append(int(t * _FS))
        rr = rr_mean * rng.normal(1.0, 0.03)
        nxt = rr
        if kind in ("S", "V", "F"):
            # this beat was premature: move it earlier, then pause
            premature = {"S": 0.62, "V": 0.7, "F": 0.9}[kind]
            if len(peaks) > 1:
                peaks[-1] = int((peaks[-2] / _FS + rr_mean * premature) * _FS)
            nxt = rr_mean * ({"S": 1.1, "V": 1.4, "F": 1.1}[kind])
        t = peaks[-1] / _FS + nxt
        prev = kind
    sig = np.zeros((n, 2))
    time = np.arange(n) / _FS
    for p, kind in zip(peaks, kinds):
        lo, hi = max(0, p - int(0.4 * _FS)), min(n, p + int(0.6 * _FS))
        w = _wave(kind, time[lo:hi] - p / _FS, scale, width)
        sig[lo:hi, 0] += w
        sig[lo:hi, 1] += -0.6 * w if kind == "N" or kind == "S" else 0.8 * w
    sig += 0.1 * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * time)[:, None]  # baseline wander
    sig += rng.normal(0, 0.02, size=sig.shape)
    return sig, np.asarray(peaks, dtype=np.int64), kinds


def write_synthetic_records(
    directory: str | os.PathLike, n_records: int = 6, duration: float = 60.0, random_state=0, prefix: str = "s",
    rates: dict | None = None,
) -> str:
    """Write ``n_records`` synthetic two-lead records (``.hea``, ``.dat``, ``.atr``) and a RECORDS file;
    ``rates`` as in :func:`synthetic_record`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(random_state)
    names = []
    for i in range(n_records):
        name = f"{prefix}{i:02d}"
        sig, peaks, kinds = synthetic_record(duration, rates, random_state=int(rng.integers(2**31)))
        wfdb.wrsamp(name, fs=_FS, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig, fmt=["212", "212"],
                    adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=str(directory),
                    comments=["synthetic record written by hsickit.apps.ecg.synthetic"])
        wfdb.wrann(name, "atr", peaks, np.asarray(kinds), write_dir=str(directory))
        names.append(name)
    (directory / "RECORDS").write_text("\n".join(names) + "\n")
    return str(directory)
