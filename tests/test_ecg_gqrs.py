"""hsickit's gqrs finds exactly wfdb's peaks, at every sampling rate the applications read."""
from pathlib import Path

import numpy as np
import pytest
import wfdb
from wfdb.processing import gqrs_detect as wfdb_gqrs

from hsickit.apps.ecg import gqrs
from hsickit.apps.ecg.signal import detect_rpeaks, resample
from hsickit.apps.ecg.synthetic import synthetic_record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg"


def leads():
    """(name, signal, rate): a PTB-XL, an MIT-BIH, an SVDB (native and at the beat model's 360 Hz) and a LUDB record."""
    picks = [("ptbxl-sample/records100/00000/00042_lr", 100, None), ("mitdb-ds1/203", 360, 120), ("svdb/881", 128, 300),
             ("ludb-dev/1", 500, None)]
    for path, rate, seconds in picks:
        if not (SHARED / f"{path}.hea").exists():
            continue
        record = wfdb.rdrecord(str(SHARED / path), sampto=None if seconds is None else int(seconds * rate))
        for lead in range(2):
            x = np.nan_to_num(record.p_signal[:, lead])
            yield f"{path} lead {lead}", x, rate
            if path.startswith("svdb"):
                yield f"{path} lead {lead} at 360 Hz", resample(x[None], rate, 360)[0], 360


@pytest.mark.parametrize("name,x,rate", list(leads()), ids=lambda v: v if isinstance(v, str) else "")
def test_gqrs_finds_wfdbs_peaks_on_real_records(name, x, rate):
    assert np.array_equal(gqrs.gqrs_detect(x, rate), wfdb_gqrs(sig=x, fs=rate))


def test_gqrs_matches_wfdb_on_noise_short_signals_and_other_thresholds_and_falls_back_above_500_hz():
    sig, _, _ = synthetic_record(30, random_state=3)
    x = sig[:, 0] + np.random.default_rng(0).normal(0, 0.2, len(sig))
    for rate, params in [(360, {}), (360, {"threshold": 0.5, "hr": 120}), (128, {"RRmin": 0.2})]:
        y = resample(x[None], 360, rate)[0] if rate != 360 else x
        assert np.array_equal(gqrs.gqrs_detect(y, rate, **params), wfdb_gqrs(sig=y, fs=rate, **params))
    short = x[:500]  # under two seconds: wfdb's own code
    assert np.array_equal(gqrs.gqrs_detect(short, 360), wfdb_gqrs(sig=short, fs=360))
    fast = resample(x[None], 360, 1000)[0]  # a learning minute longer than wfdb's buffer: wfdb's own filters
    assert np.array_equal(gqrs.gqrs_detect(fast, 1000), wfdb_gqrs(sig=fast, fs=1000))
    for rate, signal, expected in [(1000, fast, False), (360, x, True), (360, short, False)]:
        detector = gqrs.GQRS()
        detector.detect(x=np.round(signal * 200).astype(np.int64), conf=wfdb_conf(rate), adc_zero=0)
        assert detector.fast is expected


def wfdb_conf(rate):
    from wfdb.processing.qrs import GQRS

    return GQRS.Conf(fs=rate, adc_gain=200.0, hr=75, RRdelta=0.2, RRmin=0.28, RRmax=2.4, QS=0.07, QT=0.35, RTmin=0.25,
                     RTmax=0.33, QRSa=750, QRSamin=130, thresh=1.0)


def test_detect_rpeaks_uses_it():
    sig, beats, _ = synthetic_record(20, random_state=0)
    found = detect_rpeaks(sig[:, 0], 360, method="gqrs")
    assert (np.abs(beats[:, None] - found[None, :]).min(1) <= 18).mean() > 0.95
