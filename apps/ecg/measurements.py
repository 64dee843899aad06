"""What a cardiologist measures on a record's median beats: QRS onset and offset, QRS duration and the QRS axis.

The functions are plain ``(signal, sampling_rate=...)`` functions on median beats (one lead
``(time,)`` or several ``(lead, time)``, the R peak at ``r_index``), as
:func:`hsickit.apps.ecg.records.RecordConfig`'s record views keep them; :func:`record_measurements`
gathers them into the record features of :class:`~hsickit.apps.ecg.records.RecordClassifier`.

The electrical axis of the QRS is read from the limb leads I and aVF, the way it is taught
(the hexaxial reference system): lead I looks at 0 degrees, aVF at +90 degrees. The record
model keeps the 8 independent leads I, II, V1-V6, so aVF is derived: aVF = II - I/2
(Goldberger). With Einthoven's lead vectors, lead I reads ``|E| cos(axis)`` and aVF
``(sqrt(3)/2) |E| sin(axis)``, so ``axis = atan2(aVF / (sqrt(3)/2), I)``.

Example
-------
>>> import numpy as np
>>> fs = 500
>>> t = np.arange(350) / fs - 0.25                      # 0.25 s before the R peak, 0.45 s after
>>> qrs = np.exp(-0.5 * (t / 0.012) ** 2)               # a QRS complex about 60 ms wide
>>> lead_i, lead_ii = 1.0 * qrs, 0.5 * qrs              # aVF = II - I/2 = 0: an axis of 0 degrees
>>> round(qrs_axis(lead_i, lead_ii, sampling_rate=fs, r_index=125))
0
"""
from __future__ import annotations

import numpy as np

from hsickit.core.errors import HsickitError

__all__ = ["qrs_bounds", "qrs_axis", "qrs_duration", "record_measurements", "MEASUREMENT_LABELS"]

#: The columns of :func:`record_measurements`.
MEASUREMENT_LABELS = ("qrs_axis_deg", "qrs_axis_sin", "qrs_axis_cos", "qrs_duration_ms")


def _leads(signal) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 3:
        raise HsickitError(f"median beats of shape {np.shape(signal)}; give (time,) or (lead, time) with at least 3 samples")
    return x


def qrs_bounds(signal, sampling_rate: float = 500.0, r_index: int | None = None, threshold: float = 0.2,
               search: float = 0.1) -> tuple[int, int]:
    """QRS onset and offset (sample indices) of a median beat, from its spatial velocity.

    The spatial velocity is the sum over leads of the absolute first difference, smoothed over
    10 ms; the QRS is the stretch around its peak near the R peak where it stays above
    ``threshold`` times that peak (dips shorter than 20 ms, such as the one at the R peak
    itself, do not end it), searched at most ``search`` seconds before the peak and twice that
    after (a wide QRS, e.g. a bundle branch block, ends late).

    Parameters
    ----------
    signal : (time,) or (lead, time) median beat(s), mV.
    sampling_rate : Hz.
    r_index : the R peak's sample (None: the middle of the beat).
    threshold : fraction of the peak velocity that bounds the QRS.
    search : seconds searched before the velocity peak (twice this after it).

    Returns
    -------
    onset, offset : sample indices, ``onset <= r_index <= offset`` where the beat has a QRS.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(350) / 500 - 0.25
    >>> on, off = qrs_bounds(np.exp(-0.5 * (t / 0.012) ** 2), sampling_rate=500, r_index=125)
    >>> 95 < on < 125 < off < 155
    True
    """
    x = _leads(signal)
    n = x.shape[1]
    r = n // 2 if r_index is None else int(np.clip(r_index, 0, n - 1))
    v = np.abs(np.diff(x, axis=1)).sum(axis=0)
    w = max(1, int(round(0.01 * sampling_rate)))
    v = np.convolve(v, np.ones(w) / w, mode="same")
    near = int(round(0.05 * sampling_rate))
    lo, hi = max(0, r - near), min(len(v), r + near + 1)
    if hi <= lo or v[lo:hi].max() <= 0:
        return r, r
    peak = lo + int(np.argmax(v[lo:hi]))
    level = threshold * v[peak]
    s = int(round(search * sampling_rate))
    gap = max(1, int(round(0.02 * sampling_rate)))  # the velocity dips at the R peak and between waves of the QRS
    first, last = max(0, peak - s), min(len(v) - 1, peak + 2 * s)
    on = peak
    while on > first:
        above = np.flatnonzero(v[max(first, on - gap):on] >= level)
        if not len(above):
            break
        on = max(first, on - gap) + int(above[0])
    off = peak
    while off < last:
        above = np.flatnonzero(v[off + 1:min(last, off + gap) + 1] >= level)
        if not len(above):
            break
        off = off + 1 + int(above[-1])
    return min(on, r), max(off + 1, r)


def qrs_duration(signal, sampling_rate: float = 500.0, r_index: int | None = None) -> float:
    """QRS duration (ms) of median beats: offset minus onset of :func:`qrs_bounds` over all the leads given.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(350) / 500 - 0.25
    >>> narrow, wide = (np.exp(-0.5 * (t / s) ** 2) for s in (0.01, 0.03))
    >>> qrs_duration(narrow, sampling_rate=500, r_index=125) < 80 < 100 < qrs_duration(wide, sampling_rate=500, r_index=125)
    True
    """
    on, off = qrs_bounds(signal, sampling_rate, r_index)
    return 1000.0 * (off - on) / sampling_rate


def qrs_axis(lead_i, lead_ii, sampling_rate: float = 500.0, r_index: int | None = None, method: str = "area",
             bounds: tuple[int, int] | None = None) -> float:
    """The QRS electrical axis (degrees, -180 to 180) from the median beats of leads I and II.

    aVF is derived as II - I/2; each lead's net QRS deflection is its area between the QRS
    onset and offset (``method="area"``, above the level at the onset) or its largest positive
    minus its largest negative deflection there (``method="amplitude"``). Normal axes lie
    between -30 and +90 degrees; below -30 is a left axis deviation, above +90 a right one.

    Parameters
    ----------
    lead_i, lead_ii : (time,) median beats of leads I and II, mV.
    sampling_rate : Hz.
    r_index : the R peak's sample (None: the middle of the beat).
    method : "area" or "amplitude".
    bounds : QRS onset and offset (default: :func:`qrs_bounds` of both leads).

    Examples
    --------
    A positive QRS in lead I and a negative one in aVF is a left axis (about -45 degrees
    when aVF's deflection is sqrt(3)/2 times I's):

    >>> import numpy as np
    >>> t = np.arange(350) / 500 - 0.25
    >>> qrs = np.exp(-0.5 * (t / 0.012) ** 2)
    >>> i, avf = qrs, -np.sqrt(3) / 2 * qrs
    >>> round(qrs_axis(i, avf + i / 2, sampling_rate=500, r_index=125))
    -45
    """
    i, ii = np.asarray(lead_i, dtype=np.float64), np.asarray(lead_ii, dtype=np.float64)
    if i.shape != ii.shape or i.ndim != 1:
        raise HsickitError(f"leads I and II of shapes {i.shape} and {ii.shape}; give two (time,) median beats of one length")
    on, off = bounds if bounds is not None else qrs_bounds(np.stack([i, ii]), sampling_rate, r_index)
    avf = ii - i / 2
    if method == "area":
        net = [float((x[on:off + 1] - x[on]).sum() / sampling_rate) for x in (i, avf)]
    elif method == "amplitude":
        net = [float(max((x[on:off + 1] - x[on]).max(), 0) + min((x[on:off + 1] - x[on]).min(), 0)) for x in (i, avf)]
    else:
        raise HsickitError(f"method={method!r}; use 'area' or 'amplitude'")
    return float(np.degrees(np.arctan2(net[1] / (np.sqrt(3) / 2), net[0])))


def record_measurements(beats, leads, sampling_rate: float = 500.0, r_index: int | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The QRS axis (degrees, its sine and cosine) and the QRS duration (ms) of a record's median beats.

    Parameters
    ----------
    beats : (lead, time) median beats, mV.
    leads : the lead names of ``beats``' rows (leads I and II give the axis; without them it is 0).
    sampling_rate : Hz.
    r_index : the R peak's sample (None: the middle of the beat).

    Returns
    -------
    values : (4,) float32, the columns of :data:`MEASUREMENT_LABELS`; zeros for a flat beat.
    labels : :data:`MEASUREMENT_LABELS`.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(350) / 500 - 0.25
    >>> qrs = np.exp(-0.5 * (t / 0.012) ** 2)
    >>> values, labels = record_measurements(np.stack([qrs, 1.5 * qrs]), ["I", "II"], sampling_rate=500, r_index=125)
    >>> round(float(dict(zip(labels, values))["qrs_axis_deg"]), 1)   # aVF = I: tan(axis) = 1 / (sqrt(3)/2)
    49.1
    """
    x = _leads(beats)
    names = [str(n).lower() for n in leads]
    if len(names) != len(x):
        raise HsickitError(f"{len(names)} lead names for {len(x)} median beats")
    if not np.any(x):
        return np.zeros(len(MEASUREMENT_LABELS), np.float32), MEASUREMENT_LABELS
    bounds = qrs_bounds(x, sampling_rate, r_index)
    duration = 1000.0 * (bounds[1] - bounds[0]) / sampling_rate
    if "i" in names and "ii" in names:
        axis = qrs_axis(x[names.index("i")], x[names.index("ii")], sampling_rate, r_index, bounds=bounds)
        a = np.radians(axis)
        values = [axis, np.sin(a), np.cos(a), duration]
    else:
        values = [0.0, 0.0, 0.0, duration]
    return np.asarray(values, np.float32), MEASUREMENT_LABELS
