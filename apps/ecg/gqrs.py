"""wfdb's gqrs QRS detector with its filters computed by NumPy: the same peaks, several times faster.

:func:`wfdb.processing.gqrs_detect` runs the smoothing filter and the QRS matched filter one
sample at a time in Python, most of its time. Both are linear in the signal, so
:func:`gqrs_detect` computes them for the whole signal at once and leaves wfdb's peak logic
(learning pass, thresholds, T-wave and missed-beat search) as it is: :class:`GQRS` only
replaces ``qf`` (and the ``sm`` it alone calls), keeping the matched filter's circular buffer, its
running sum and the end-of-signal flag (and ``qfv_at`` and ``putann`` do what wfdb's do, with
fewer look-ups and a shallow copy of each annotation).
Where that equivalence is not certain (a learning minute longer than wfdb's buffer, i.e. above
about 500 Hz, or a signal shorter than two seconds) it runs wfdb's own filters (``GQRS.fast`` is
then False).

Example
-------
>>> import numpy as np
>>> from wfdb.processing import gqrs_detect as wfdb_gqrs
>>> from hsickit.apps.ecg.synthetic import synthetic_record
>>> sig, _, _ = synthetic_record(20, random_state=0)
>>> np.array_equal(gqrs_detect(sig[:, 0], 360), wfdb_gqrs(sig=sig[:, 0], fs=360))
True
"""
from __future__ import annotations

import copy
import inspect
from functools import partial

import numpy as np
from wfdb.io.record import Record
from wfdb.processing import qrs

__all__ = ["gqrs_detect", "GQRS"]

#: wfdb.processing.gqrs_detect's detector settings and their defaults (``threshold``, ``hr``, ``RRmin``, ...)
DETECTOR_DEFAULTS = {name: p.default for name, p in inspect.signature(qrs.gqrs_detect).parameters.items()
                     if name not in ("sig", "fs", "d_sig", "adc_gain", "adc_zero")}


class GQRS(qrs.GQRS):
    """:class:`wfdb.processing.qrs.GQRS` whose filters read precomputed arrays (see the module)."""

    def _prepare(self) -> None:
        c, x = self.c, np.asarray(self.x, dtype=np.int64)
        smdt, dt4, n = int(c.smdt), c.dt4, len(x)
        end = n + c.sps + 4 * dt4 + 2  # the last time sm() is asked for, with room
        self._offset = 2 * dt4 + smdt + 1  # index of time 0 in the arrays below (qf reads down to -2 dt4)
        times = np.arange(-self._offset, end + 1)
        xp = x[np.clip(times, 0, n - 1)]  # wfdb's at(): the first / last sample outside the signal
        at = lambda shift: xp[np.clip(np.arange(len(times)) + shift, 0, len(times) - 1)]  # noqa: E731
        # the smoothed signal: 0 up to time 0 (never computed), wfdb's start-up sum up to smt0, then its recursion
        s = np.zeros(len(times), dtype=np.int64)
        i0 = self._offset
        smt0 = int(c.smt0)
        if smdt > 1:
            window = sum(at(j) + at(-j) for j in range(1, smdt)) + at(0)
            start = (window << 1) + at(smdt) + at(-smdt) - self.adc_zero * (smdt << 2)
            s[i0 + 1:i0 + smt0 + 1] = start[i0 + 1:i0 + smt0 + 1]
        step = at(smdt) + at(smdt - 1) - at(-smdt) - at(-smdt - 1)
        s[i0 + smt0 + 1:] = s[i0 + smt0] + np.cumsum(step[i0 + smt0 + 1:])
        d = lambda k: np.roll(s, -k) - np.roll(s, k)  # noqa: E731  S(t + k) - S(t - k); the rolled-in ends are never read
        dv1 = d(c.dt)
        dv = (((dv1 << 1) - d(c.dt2)) << 1) + dv1 - d(c.dt3)
        # wfdb's at() leaves the flag of the last sample it read: in sm()'s recursion, at_t - smdt - 1
        last = np.where(times > smt0, times - smdt - 1, times - smdt if smdt > 1 else times)
        self._dv, self._valid = ((dv << 1) + d(dt4)).tolist(), (last <= n - 1).tolist()
        self._v1norm = c.v1norm

    def qf(self):
        t = self.t
        at_t = t + self.c.dt4
        if at_t > self.c.smt:  # what wfdb's sm(at_t), called by qf alone, leaves: the flag and how far it smoothed
            self.sample_valid = self._valid[at_t + self._offset]
            self.c.smt = at_t
        self.v1 += self._dv[t + self._offset]
        v0 = int(self.v1 / self._v1norm)
        self.qfv[t & self._mask] = v0 * v0

    def qfv_at(self, t):
        return self.qfv[t & self._mask]

    def putann(self, annotation):
        self.annotations.append(copy.copy(annotation))  # wfdb deep-copies it: two numbers and a string, at every beat

    def gqrs(self, from_sample, to_sample):
        if not hasattr(self, "fast"):  # the learning pass, the first of detect()'s two
            c = self.c
            self._mask = len(self.qfv) - 1  # wfdb's circular buffer, a power of 2 long
            #: whether the filters are NumPy's: sure to match wfdb where its learning pass stays inside its buffer
            self.fast = c.spm + c.sps + 2 * c.dt4 < len(self.qfv) and len(self.x) >= 2 * c.sps
            if self.fast:
                self._prepare()
                self.qfv = self.qfv.tolist()  # a Python list: faster one value at a time
            else:
                self.qf = partial(qrs.GQRS.qf, self)
        return super().gqrs(from_sample, to_sample)


def gqrs_detect(signal, sampling_rate: float, **params) -> np.ndarray:
    """QRS sample indices of one lead in physical units: the peaks of
    :func:`wfdb.processing.gqrs_detect` with ``sig=signal, fs=sampling_rate`` and its other
    keyword arguments (``threshold``, ``hr``, ``RRmin``, ...)."""
    sig = np.asarray(signal, dtype=np.float64)
    record = Record(p_signal=sig.reshape([-1, 1]), fmt=["24"])
    record.set_d_features(do_adc=True)
    d_sig, adc_gain = record.d_signal[:, 0], record.adc_gain[0]
    settings = {**DETECTOR_DEFAULTS, **params}
    conf = qrs.GQRS.Conf(fs=sampling_rate, adc_gain=adc_gain, thresh=settings.pop("threshold"), **settings)
    return np.array([a.time for a in GQRS().detect(x=d_sig, conf=conf, adc_zero=0)])
