"""ECG signal processing as plain functions ``(signal, sampling_rate=..., method=...)``.

Every function takes a NumPy array with time on the last axis (one lead ``(time,)`` or
several ``(lead, time)``) and returns a NumPy array, so they chain like NeuroKit2's.
:func:`conform` applies them to a ``(lead, time)`` :class:`xarray.DataArray` from
:func:`hsickit.datasets.ecg.read_record` and records what it did in ``attrs["repairs"]``.

Example
-------
>>> import numpy as np
>>> x = np.sin(2 * np.pi * 1.0 * np.arange(3600) / 360)
>>> resample(x, sampling_rate=360, target_rate=180).shape
(1800,)
>>> clean = bandpass(x + 0.5, sampling_rate=360)
>>> bool(abs(clean.mean()) < 0.05)
True
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import numpy as np
import xarray as xr
from scipy import signal as sps

from hsickit.core.errors import HsickitError

__all__ = ["resample", "bandpass", "remove_baseline", "detect_rpeaks", "RPEAK_METHODS", "align_peaks", "ALIGN_METHODS", "drop_extra_peaks", "select_leads", "conform", "conform_values", "LEAD_ALIASES"]

#: Lead names treated as the same lead when selecting (MIT-BIH's modified lead II is lead II).
LEAD_ALIASES: dict[str, tuple[str, ...]] = {"mlii": ("mlii", "ii", "ml2"), "ii": ("ii", "mlii")}


def resample(signal: np.ndarray, sampling_rate: float, target_rate: float, method: str = "poly") -> np.ndarray:
    """Resample along the last axis from ``sampling_rate`` to ``target_rate`` Hz.

    ``method="poly"``: polyphase FIR (:func:`scipy.signal.resample_poly`, anti-aliased);
    ``"fft"``: :func:`scipy.signal.resample`; ``"linear"``: linear interpolation (fast, no anti-aliasing).
    """
    signal = np.asarray(signal, dtype=np.float32)
    if sampling_rate <= 0 or target_rate <= 0:
        raise HsickitError(f"sampling rates must be positive (got {sampling_rate} -> {target_rate} Hz)")
    if sampling_rate == target_rate:
        return signal
    n_out = int(round(signal.shape[-1] * target_rate / sampling_rate))
    if method == "poly":
        frac = Fraction(float(target_rate) / float(sampling_rate)).limit_denominator(1000)
        out = sps.resample_poly(signal, frac.numerator, frac.denominator, axis=-1)
        out = out[..., :n_out] if out.shape[-1] >= n_out else np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, n_out - out.shape[-1])], mode="edge")
    elif method == "fft":
        out = sps.resample(signal, n_out, axis=-1)
    elif method == "linear":
        t_old = np.arange(signal.shape[-1]) / sampling_rate
        t_new = np.arange(n_out) / target_rate
        flat = signal.reshape(-1, signal.shape[-1])
        out = np.stack([np.interp(t_new, t_old, row) for row in flat]).reshape(*signal.shape[:-1], n_out)
    else:
        raise HsickitError(f"resample method={method!r}; use 'poly', 'fft' or 'linear'")
    return out.astype(np.float32)


def bandpass(
    signal: np.ndarray, sampling_rate: float, low: float = 0.5, high: float = 40.0, method: str = "butter", order: int = 3
) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (``method="butter"``).

    ``low=0`` makes it a low-pass, ``high=None`` a high-pass. The cut-offs are clipped to
    just below Nyquist so the same call works at 128, 250, 360 or 500 Hz.
    """
    if method != "butter":
        raise HsickitError(f"bandpass method={method!r}; use 'butter'")
    nyq = sampling_rate / 2
    if high is not None and high >= nyq:
        high = 0.95 * nyq
    if not (low or high):
        return np.asarray(signal, dtype=np.float32)
    sos = _butter_sos(order, float(low or 0), None if high is None else float(high), float(sampling_rate))
    return sps.sosfiltfilt(sos, np.asarray(signal, dtype=np.float64), axis=-1).astype(np.float32)


@lru_cache(maxsize=64)
def _butter_sos(order: int, low: float, high: float | None, sampling_rate: float) -> np.ndarray:
    """The filter's second-order sections, designed once per setting (the design costs as much as filtering a 10-s record)."""
    if low and high:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=sampling_rate, output="sos")
    elif low:
        sos = sps.butter(order, low, btype="highpass", fs=sampling_rate, output="sos")
    else:
        sos = sps.butter(order, high, btype="lowpass", fs=sampling_rate, output="sos")
    return sos  # shared by every call with these settings; scipy only reads it


def remove_baseline(signal: np.ndarray, sampling_rate: float, method: str = "median") -> np.ndarray:
    """Remove baseline wander along the last axis.

    ``method="median"``: subtract two cascaded median filters of 200 ms and 600 ms
    (de Chazal 2004); ``"butter"``: 0.5 Hz zero-phase high-pass.
    """
    x = np.asarray(signal, dtype=np.float32)
    if method == "butter":
        return bandpass(x, sampling_rate, low=0.5, high=None)
    if method != "median":
        raise HsickitError(f"remove_baseline method={method!r}; use 'median' or 'butter'")
    k1 = int(0.2 * sampling_rate) // 2 * 2 + 1
    k2 = int(0.6 * sampling_rate) // 2 * 2 + 1
    from scipy.ndimage import median_filter

    size1 = [1] * (x.ndim - 1) + [k1]
    size2 = [1] * (x.ndim - 1) + [k2]
    base = median_filter(median_filter(x, size=size1, mode="nearest"), size=size2, mode="nearest")
    return (x - base).astype(np.float32)


def _windows(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Rows ``values[lo[i]:hi[i]]``, padded with NaN to the longest (for nan-aware reductions along axis 1)."""
    idx = lo[:, None] + np.arange(max(int((hi - lo).max()), 1))[None, :]
    return np.where(idx < hi[:, None], values[np.minimum(idx, values.size - 1)], np.nan)


def _pan_tompkins(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS positions of one lead, Pan-Tompkins style, vectorised (see :func:`detect_rpeaks`); found at 100 Hz."""
    if fs > 100:  # the thresholds were chosen at 100 Hz (PTB-XL's rate): detect there, place the peaks at the full rate
        return np.round(_pan_tompkins(resample(x, fs, 100.0), 100.0) * (fs / 100.0)).astype(np.int64)
    sos = _butter_sos(2, 5.0, float(min(18.0, 0.45 * fs)), float(fs))
    if x.size <= 3 * (2 * len(sos) + 1):  # sosfiltfilt's padding needs a few samples more
        return np.zeros(0, np.int64)
    f = sps.sosfiltfilt(sos, x)
    d = np.gradient(f) * fs
    w = max(1, int(round(0.15 * fs)))
    energy = np.convolve(d * d, np.ones(w) / w, mode="same")  # moving-window integration, 150 ms
    cand, _ = sps.find_peaks(energy, distance=max(1, int(0.2 * fs)))  # 200 ms refractory period
    if cand.size == 0:
        return cand.astype(np.int64)
    h = energy[cand]
    # robust level: the 75th percentile of the candidates' heights within 5 s either side
    lo, hi = np.searchsorted(cand, cand - 5.0 * fs), np.searchsorted(cand, cand + 5.0 * fs)
    ranked = np.sort(_windows(h, lo, hi), axis=1)  # NaN padding sorts last
    pos = 0.75 * (hi - lo - 1)  # np.percentile's linear interpolation, row by row
    below = np.floor(pos).astype(np.int64)
    a = ranked[np.arange(cand.size), below]
    b = ranked[np.arange(cand.size), np.minimum(below + 1, hi - lo - 1)]
    level = a + (pos - below) * (b - a)
    # P and T waves: a candidate with one more than twice its height within 360 ms is not a QRS
    near = np.nanmax(_windows(h, np.searchsorted(cand, cand - 0.36 * fs), np.searchsorted(cand, cand + 0.36 * fs, side="right")), axis=1)
    keep = (h >= 0.3 * level) & (h >= 0.5 * near) & (h > 0)
    peaks = cand[keep]
    if peaks.size > 2:  # search back: the highest rejected candidate above half the level in a gap > 1.66 median RR
        rr = np.diff(peaks)
        extra = []
        for i in np.flatnonzero(rr > 1.66 * np.median(rr)):
            inside = (cand > peaks[i] + 0.36 * fs) & (cand < peaks[i + 1] - 0.36 * fs) & ~keep & (h >= 0.15 * level)
            if inside.any():
                j = np.flatnonzero(inside)
                extra.append(cand[j[np.argmax(h[j])]])
        peaks = np.sort(np.concatenate([peaks, extra])) if extra else peaks
    return peaks.astype(np.int64)


#: R-peak detectors of :func:`detect_rpeaks`
RPEAK_METHODS = ("pantompkins", "gqrs", "xqrs")


def detect_rpeaks(signal: np.ndarray, sampling_rate: float, method: str = "xqrs") -> np.ndarray:
    """R-peak sample indices of one lead (``(time,)``), for records without beat annotations.

    ``method="pantompkins"`` (the record model's default): at 100 Hz (a lead at a higher rate
    is resampled for it), band-pass 5-18 Hz, derivative, squaring, 150-ms moving-window
    integration, peaks 200 ms apart above 0.3 times a robust local level (the 75th percentile
    of the peaks within ±5 s), P and T waves dropped (less than half a peak within 360 ms),
    and a search back in gaps longer than 1.66 median RR; NumPy/SciPy, many times faster
    than ``"gqrs"`` (figures in benchmarks/ecg_rpeaks.py).
    ``"xqrs"``: :class:`wfdb.processing.XQRS`; ``"gqrs"``: :func:`wfdb.processing.gqrs_detect`'s
    peaks, its filters computed by NumPy (:func:`hsickit.apps.ecg.gqrs.gqrs_detect`, several times faster).
    Every method's peaks are then moved to the local extremum within ±50 ms
    (:func:`wfdb.processing.correct_peaks`).

    >>> from hsickit.apps.ecg.synthetic import synthetic_record
    >>> sig, beats, _ = synthetic_record(20, random_state=0)
    >>> found = detect_rpeaks(bandpass(sig[:, 0], 360), 360, method="pantompkins")
    >>> bool((np.abs(beats[:, None] - found[None, :]).min(1) <= 18).mean() > 0.95)
    True
    """
    from wfdb import processing

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise HsickitError(f"detect_rpeaks needs one lead (time,), got shape {x.shape}; select a lead first")
    if method == "pantompkins":
        peaks = _pan_tompkins(x, sampling_rate)
    elif method == "xqrs":
        xq = processing.XQRS(sig=x, fs=sampling_rate)
        xq.detect(verbose=False)
        peaks = np.asarray(xq.qrs_inds, dtype=np.int64)
    elif method == "gqrs":
        from hsickit.apps.ecg.gqrs import gqrs_detect

        peaks = np.asarray(gqrs_detect(x, sampling_rate), dtype=np.int64)
    else:
        raise HsickitError(f"detect_rpeaks method={method!r}; use one of {', '.join(map(repr, RPEAK_METHODS))}")
    if peaks.size == 0:
        return peaks
    radius = int(0.05 * sampling_rate)
    corrected = processing.correct_peaks(x, peaks, search_radius=radius, smooth_window_size=max(3, int(0.03 * sampling_rate)), peak_dir="compare")
    return np.unique(np.clip(np.asarray(corrected, dtype=np.int64), 0, x.size - 1))


#: Ways :func:`align_peaks` moves beat marks
ALIGN_METHODS = ("template",)


def align_peaks(signal: np.ndarray, peaks: np.ndarray, sampling_rate: float, method: str = "template",
                max_shift: float = 0.015, half_width: float = 0.1) -> np.ndarray:
    """Beat marks moved to the same point of every QRS complex of one lead (``(time,)``).

    Annotated marks are not always at the same point of the QRS: in some MIT-BIH SVDB records
    the S beats' marks sit about 10 ms off the normal beats', so every window cut at them is
    shifted and looks abnormal. ``method="template"``: each mark moves by at most
    ``max_shift`` s to where its ±``half_width`` s window correlates best with the record's
    median beat (windows normalised to zero mean and unit norm); done twice, the second time
    with the median of the moved beats. A mark whose window is flat stays.

    >>> t = np.arange(3600)
    >>> beat = lambda c: np.exp(-0.5 * ((t - c) / 4.0) ** 2)
    >>> marks = np.array([400, 800, 1200, 1600, 2000, 2400])
    >>> sig = sum(beat(c) for c in marks)
    >>> align_peaks(sig, marks + [0, 0, 3, 0, -4, 0], 360).tolist()
    [400, 800, 1200, 1600, 2000, 2400]
    """
    if method not in ALIGN_METHODS:
        raise HsickitError(f"align_peaks method={method!r}; use one of {', '.join(map(repr, ALIGN_METHODS))} (or no alignment)")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise HsickitError(f"align_peaks needs one lead (time,), got shape {x.shape}; select a lead first")
    peaks = np.asarray(peaks, dtype=np.int64)
    h, s = int(round(half_width * sampling_rate)), int(round(max_shift * sampling_rate))
    if peaks.size == 0 or s == 0:
        return peaks.copy()
    padded = np.pad(x, h + s, mode="edge")
    span, offsets = np.arange(-h, h + 1), np.arange(-s, s + 1)
    prefer_still = 1e-6 * np.abs(offsets)  # ties (flat windows) keep the mark where it is
    aligned = peaks
    for _ in range(2):
        template = _unit(np.median(_unit(padded[aligned[:, None] + h + s + span]), axis=0))
        shifts = np.empty(peaks.size, dtype=np.int64)
        for start in range(0, peaks.size, 4096):  # (block, shift, time) windows fit in memory
            block = peaks[start:start + 4096, None, None] + h + s + offsets[None, :, None] + span
            shifts[start:start + 4096] = offsets[np.argmax(_unit(padded[block]) @ template - prefer_still, axis=1)]
        aligned = np.clip(peaks + shifts, 0, x.size - 1)
    return aligned


def drop_extra_peaks(signal: np.ndarray, peaks: np.ndarray, sampling_rate: float, max_height: float = 0.4,
                     max_span: float = 1.4, half_width: float = 0.06) -> np.ndarray:
    """Detected R peaks less the extra ones: small deflections (T waves, noise) that split one RR interval.

    A peak is dropped when its peak-to-peak amplitude within ±``half_width`` s is under
    ``max_height`` times the median of all peaks' and the RR intervals either side of it add up
    to less than ``max_span`` median RR intervals: a real early beat (an S or V beat) is followed
    by a pause, so its two intervals span more. Defaults were chosen on MIT-BIH DS1's gqrs
    detections against its annotations (106 of 400 false detections dropped, 5 of 50,924 beats
    lost; ``benchmarks/ecg_detected_beats.py`` measures the effect on other patients).

    >>> t = np.arange(3600)
    >>> wave = lambda c, height: height * np.exp(-0.5 * ((t - c) / 4.0) ** 2)
    >>> sig = sum(wave(c, 1.0) for c in range(200, 3600, 300)) + wave(1880, 0.2)
    >>> peaks = np.sort(np.r_[np.arange(200, 3600, 300), 1880])
    >>> kept = drop_extra_peaks(sig, peaks, 360)
    >>> len(peaks), len(kept), 1880 in kept
    (13, 12, False)
    """
    x = np.asarray(signal, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.int64)
    if peaks.size < 3:
        return peaks.copy()
    h = max(1, int(round(half_width * sampling_rate)))
    padded = np.pad(x, h, mode="edge")
    height = np.ptp(padded[peaks[:, None] + np.arange(2 * h + 1)[None, :]], axis=1)
    rr = np.diff(peaks)
    span = np.full(peaks.size, np.inf)
    span[1:-1] = (rr[:-1] + rr[1:]) / np.median(rr)
    extra = (height < max_height * np.median(height)) & (span < max_span)
    return peaks[~extra]


def _unit(windows: np.ndarray) -> np.ndarray:
    """Windows (last axis time) with zero mean and unit norm; flat windows stay zero."""
    centred = windows - windows.mean(axis=-1, keepdims=True)
    return centred / (np.linalg.norm(centred, axis=-1, keepdims=True) + 1e-12)


def select_leads(signal: xr.DataArray, leads: Sequence[str | int], fallback: str = "raise") -> xr.DataArray:
    """Select ``leads`` from a DataArray: names (case-insensitive; ``MLII`` and ``II`` are aliases) or positions.

    A lead given as a number (``0``, ``"1"``) is taken by position. ``fallback="first"`` takes
    the record's first lead in place of a named lead the record lacks (unnamed leads such as
    SVDB's ``ECG1``) and says so in ``attrs["repairs"]``; ``"raise"`` makes that an error.

    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((2, 5)), dims=("lead", "time"), coords={"lead": ["V5", "MLII"]}, attrs={"record": "114"})
    >>> select_leads(da, ["ii"]).lead.values.tolist(), select_leads(da, ["1"]).lead.values.tolist()
    (['MLII'], ['MLII'])
    >>> svdb = da.assign_coords(lead=["ECG1", "ECG2"])
    >>> picked = select_leads(svdb, ["MLII"], fallback="first")
    >>> picked.lead.values.tolist(), picked.attrs["repairs"][-1]
    (['ECG1'], "lead 'MLII' not found (leads: ECG1, ECG2): used the first lead, ECG1 (choose with --leads)")
    """
    idx, notes = _lead_indices([str(n) for n in signal.coords["lead"].values], leads, fallback, signal.attrs.get("record", "?"))
    out = signal.isel(lead=idx)
    if notes:
        out.attrs = {**signal.attrs, "repairs": [*signal.attrs.get("repairs", []), *notes]}
    return out


def _lead_indices(names: Sequence[str], leads: Sequence[str | int], fallback: str, record: str) -> tuple[list[int], list[str]]:
    """Positions in ``names`` of ``leads`` and the notes on leads taken in place of others (see :func:`select_leads`)."""
    if fallback not in ("raise", "first"):
        raise HsickitError(f"lead fallback={fallback!r}; use 'raise' or 'first'")
    lower = [n.lower() for n in names]
    idx, notes = [], []
    for lead in leads:
        if isinstance(lead, (int, np.integer)) or str(lead).strip().isdigit():
            hit = int(lead)
            if hit >= len(names):
                raise HsickitError(f"record {record}: lead number {hit} asked for, but the record has "
                                   f"{len(names)} lead(s) ({', '.join(names)}), numbered from 0; choose another (--leads)")
        else:
            options = LEAD_ALIASES.get(str(lead).lower(), (str(lead).lower(),))
            hit = next((lower.index(o) for o in options if o in lower), None)
        if hit is None and fallback == "first":
            hit = 0
            notes.append(f"lead {lead!r} not found (leads: {', '.join(names)}): used the first lead, {names[0]} (choose with --leads)")
        if hit is None:
            raise HsickitError(
                f"record {record}: lead {lead!r} not found (leads: {', '.join(names)}); "
                "choose leads the record has (--leads: names, aliases or numbers from 0)"
            )
        idx.append(hit)
    return idx, notes


def conform(
    signal: xr.DataArray,
    sampling_rate: float,
    *,
    leads: Sequence[str] | None = None,
    filter: str | None = "bandpass",
    lead_fallback: str = "raise",
) -> xr.DataArray:
    """Bring a ``(lead, time)`` record to a model's leads and sampling rate, and filter it.

    A record at another sampling rate is resampled (reported in ``attrs["repairs"]`` and
    ``attrs["resampled_from"]``); sample indices in the record's own rate must then be scaled
    by ``sampling_rate / resampled_from``. ``filter``: ``"bandpass"`` (0.5-40 Hz),
    ``"baseline"`` (median baseline removal) or None. ``lead_fallback``: see :func:`select_leads`.
    """
    names = [str(n) for n in signal.coords["lead"].values]
    x, info = conform_values(signal.values, {**signal.attrs, "lead": names}, sampling_rate, leads=leads, filter=filter,
                             lead_fallback=lead_fallback)
    attrs = {k: v for k, v in info.items() if k != "lead"}
    coords = {"lead": signal.coords["lead"].values[info["lead_index"]], "time": np.arange(x.shape[-1]) / sampling_rate}
    if "units" in signal.coords:
        coords["units"] = ("lead", signal.coords["units"].values[info["lead_index"]])
    del attrs["lead_index"]
    return xr.DataArray(x, dims=("lead", "time"), coords=coords, name=signal.name, attrs=attrs)


def conform_values(x: np.ndarray, info: dict, sampling_rate: float, *, leads: Sequence[str] | None = None,
                   filter: str | None = "bandpass", lead_fallback: str = "raise") -> tuple[np.ndarray, dict]:
    """:func:`conform` on a ``(lead, time)`` array without the DataArray (what a loop over many records needs).

    Parameters
    ----------
    x : (lead, time) signal.
    info : its ``lead`` names and ``fs`` (and ``record``, ``repairs``, ...), as
        :func:`hsickit.datasets.ecg.read_record_values` gives them.
    sampling_rate, leads, filter, lead_fallback : as in :func:`conform`.

    Returns
    -------
    x : (lead, time) float32, conformed.
    info : ``info`` with ``lead``, ``fs`` and ``repairs`` updated, ``lead_index`` (the positions of
        the kept leads in the input) and, after resampling, ``resampled_from``.
    """
    names = list(info["lead"])
    idx = list(range(len(names)))
    repairs = list(info.get("repairs", []))
    if leads:
        idx, notes = _lead_indices(names, leads, lead_fallback, info.get("record", "?"))
        x, names, repairs = x[idx], [names[i] for i in idx], repairs + notes
    fs = float(info["fs"])
    out = {**info}
    if fs != sampling_rate:
        x = resample(x, fs, sampling_rate)
        repairs.append(f"resampled from {fs:g} Hz to {sampling_rate:g} Hz")
        out["resampled_from"] = fs
    if filter == "bandpass":
        x = bandpass(x, sampling_rate)
    elif filter == "baseline":
        x = remove_baseline(x, sampling_rate)
    elif filter is not None:
        raise HsickitError(f"filter={filter!r}; use 'bandpass', 'baseline' or None")
    out.update(lead=names, lead_index=idx, fs=float(sampling_rate), repairs=repairs)
    return np.asarray(x, np.float32), out
