"""Signal functions, features, beat preparation and metrics of hsickit.apps.ecg."""
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hsickit import HsickitError
from hsickit.apps.ecg.beats import BeatConfig, beats_from_record, load_beats
from hsickit.apps.ecg.features import (ROBUST_LABELS, BeatFeaturizer, hrv_features, qrs_features, rr_features,
                                      neighbour_features, rr_sequence, template_features, wavelet_coefficients)
from hsickit.apps.ecg.metrics import beat_metrics, metrics_dataset, record_intervals, record_metrics
from hsickit.apps.ecg.signal import align_peaks, bandpass, drop_extra_peaks, conform, detect_rpeaks, remove_baseline, resample, select_leads
from hsickit.apps.ecg.synthetic import synthetic_record, write_synthetic_records

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return write_synthetic_records(tmp_path_factory.mktemp("ecg"), n_records=3, duration=40, random_state=3)


def test_resample_methods_keep_a_sine():
    x = np.sin(2 * np.pi * 2.0 * np.arange(3600) / 360)
    for method in ("poly", "fft", "linear"):
        y = resample(x, 360, 500, method=method)
        assert y.shape == (5000,)
        np.testing.assert_allclose(y[100:-100], np.sin(2 * np.pi * 2.0 * np.arange(5000) / 500)[100:-100], atol=0.02)
    with pytest.raises(HsickitError, match="method"):
        resample(x, 360, 500, method="cubic")


def test_bandpass_and_baseline_remove_wander_keep_qrs_band():
    fs = 360
    t = np.arange(20 * fs) / fs
    wander, qrs = 1.0 * np.sin(2 * np.pi * 0.1 * t), 0.5 * np.sin(2 * np.pi * 10 * t)
    for clean in (bandpass(wander + qrs, fs), remove_baseline(wander + qrs, fs, method="butter")):
        assert np.abs(clean[fs:-fs] - qrs[fs:-fs]).max() < 0.1
    med = remove_baseline(wander + qrs, fs)
    assert np.abs(med[fs:-fs]).mean() < np.abs(wander + qrs)[fs:-fs].mean()
    assert bandpass(np.zeros((2, 1000)), 128).shape == (2, 1000)  # high cut clipped below Nyquist


def test_detect_rpeaks_finds_synthetic_beats():
    sig, peaks, _ = synthetic_record(30, rates={"S": 0.0, "V": 0.0, "F": 0.0}, random_state=0)
    x = bandpass(sig[:, 0], 360)
    for method in ("gqrs", "xqrs", "pantompkins"):
        found = detect_rpeaks(x, 360, method=method)
        hits = np.abs(peaks[:, None] - found[None, :]).min(1) <= 0.05 * 360
        assert hits.mean() > 0.9, method
    with pytest.raises(HsickitError, match="one lead"):
        detect_rpeaks(np.zeros((2, 100)), 360)
    with pytest.raises(HsickitError, match="'pantompkins'"):
        detect_rpeaks(x, 360, method="pan")
    assert detect_rpeaks(np.zeros(3600), 360, method="pantompkins").size == 0  # a flat lead has no beats
    assert detect_rpeaks(x[:10], 360, method="pantompkins").size == 0  # too short to filter


@pytest.mark.skipif(not (SHARED / "mitdb-ds1").exists(), reason="shared MIT-BIH DS1 absent")
@pytest.mark.parametrize("record", ["106", "119", "208"])  # PVCs, bigeminy, PVCs and fusion beats
def test_pantompkins_finds_the_annotated_beats_of_real_records(record):
    """Five minutes of real records at 360 Hz and at PTB-XL's 100 Hz: sensitivity and +P against the reference beats."""
    import wfdb
    from wfdb import processing

    from hsickit.datasets.ecg import AAMI_MAP

    rec = wfdb.rdrecord(str(SHARED / "mitdb-ds1" / record), channels=[0], sampto=300 * 360)
    ann = wfdb.rdann(str(SHARED / "mitdb-ds1" / record), "atr", sampto=300 * 360)
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in AAMI_MAP])
    for fs in (360, 100):
        x = bandpass(resample(rec.p_signal[:, 0], 360, fs), fs)
        found = detect_rpeaks(x, fs, method="pantompkins")
        c = processing.compare_annotations(np.round(ref * fs / 360).astype(int), found, int(0.15 * fs))
        c.compare()
        assert c.tp / (c.tp + c.fn) > 0.98 and c.tp / (c.tp + c.fp) > 0.98, (record, fs, c.tp, c.fp, c.fn)


def test_align_peaks_moves_jittered_marks_to_the_same_point_of_the_qrs():
    sig, truth, _ = synthetic_record(60, random_state=1)
    x = bandpass(sig[:, 0], 360)
    jitter = np.random.default_rng(0).integers(-4, 5, size=len(truth))
    moved = align_peaks(x, truth + jitter, 360)
    assert np.abs(moved - truth).max() <= 1 < np.abs(jitter).max()
    assert np.array_equal(align_peaks(x, truth + jitter, 360, max_shift=0), truth + jitter)
    assert np.array_equal(align_peaks(np.zeros(5000), np.array([1000, 2000]), 360), [1000, 2000])  # flat: stays
    with pytest.raises(HsickitError, match="align_peaks method='peak'"):
        align_peaks(x, truth, 360, method="peak")
    with pytest.raises(HsickitError, match=r"BeatConfig\(align='peak'\): use one of 'template', None"):
        BeatConfig(align="peak")
    with pytest.raises(HsickitError, match=r"BeatConfig\(detector='qrs'\)"):
        BeatConfig(detector="qrs")


def test_beats_are_cut_at_aligned_marks_and_keep_the_annotation_samples(records, tmp_path):
    import wfdb

    rec, ann = wfdb.rdrecord(f"{records}/s00"), wfdb.rdann(f"{records}/s00", "atr")
    shifted = ann.sample + np.where(np.array(ann.symbol) == "S", 4, 0)  # S marks 11 ms late, as in some SVDB records
    wfdb.wrsamp("late", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=rec.p_signal, fmt=["16", "16"],
                write_dir=str(tmp_path))
    wfdb.wrann("late", "atr", shifted, ann.symbol, write_dir=str(tmp_path))
    asis = beats_from_record(f"{records}/s00", BeatConfig(align=None))
    aligned = beats_from_record(tmp_path / "late", BeatConfig())
    unaligned = beats_from_record(tmp_path / "late", BeatConfig(align=None))
    assert np.array_equal(aligned.sample, shifted)
    s = aligned.y == "S"
    assert s.any()
    err = lambda bs: np.abs(bs.beat[s] - asis.beat[s]).mean()  # noqa: E731
    assert err(aligned) < 0.2 * err(unaligned)
    assert BeatConfig.from_dict({"leads": ["MLII"]}).align is None and BeatConfig().align == "template"


def test_drop_extra_peaks_keeps_early_beats_with_a_pause_and_drops_small_splits():
    t = np.arange(20 * 360)
    wave = lambda c, height: height * np.exp(-0.5 * ((t - c) / 4.0) ** 2)  # noqa: E731
    normal = list(range(180, 20 * 360 - 180, 288))
    early = normal[10] - 100  # an ectopic beat 100 samples early, then a compensatory pause: normal[10] is skipped
    small_early = normal[20] - 100  # as small as a T wave, but with the pause of a real early beat
    beats = [c for c in normal if c not in (normal[10], normal[20])] + [early, small_early]
    extra = [normal[5] + 144, normal[15] + 100]  # small deflections halfway through one RR interval
    sig = sum(wave(c, 1.0) for c in beats if c != small_early) + wave(small_early, 0.3) + sum(wave(c, 0.25) for c in extra)
    peaks = np.sort(np.r_[beats, extra])
    kept = drop_extra_peaks(sig, peaks, 360)
    assert sorted(kept.tolist()) == sorted(beats)
    big = sig + sum(wave(c, 0.8) for c in extra)  # the same positions, now as tall as a QRS: kept
    assert len(drop_extra_peaks(big, peaks, 360)) == len(peaks)
    assert BeatConfig().drop_extra_peaks and not BeatConfig.from_dict({"leads": ["MLII"]}).drop_extra_peaks


def test_select_leads_aliases_and_conform_reports_resampling():
    da = xr.DataArray(np.random.default_rng(0).normal(size=(2, 1000)).astype("float32"), dims=("lead", "time"),
                      coords={"lead": ["V5", "MLII"]}, attrs={"fs": 500.0, "record": "114", "repairs": []})
    assert list(select_leads(da, ["II"]).lead.values) == ["MLII"]
    out = conform(da, 360, leads=["MLII"])
    assert out.shape == (1, 720) and out.attrs["fs"] == 360.0 and out.attrs["resampled_from"] == 500.0
    assert out.attrs["repairs"] == ["resampled from 500 Hz to 360 Hz"]
    with pytest.raises(HsickitError, match="record 114: lead 'V1' not found"):
        select_leads(da, ["V1"])


def test_rr_features_and_sequence():
    peaks = np.array([0, 360, 720, 900, 1440, 1800])  # one premature beat at 900
    X, labels = rr_features(peaks, 360, local_window=3)
    i = labels.index("rr_pre_norm")
    assert X[3, labels.index("rr_pre")] == pytest.approx(0.5) and X[3, labels.index("rr_post")] == pytest.approx(1.5)
    assert X[3, i] == pytest.approx(0.5) and X[1, i] == pytest.approx(1.0)  # record median RR is 1 s
    seq = rr_sequence(peaks, 360, context=2)
    assert seq.shape == (6, 4)
    np.testing.assert_allclose(seq[3], [1.0, 0.5, 1.5, 1.0])
    with pytest.raises(HsickitError, match="at least 2 beats"):
        rr_features([5], 360)


def test_centred_rr_features_tell_a_premature_beat_from_atrial_fibrillation():
    rng = np.random.default_rng(0)
    regular = np.full(60, 360.0)
    regular[30], regular[31] = 230.0, 490.0  # one premature beat and its pause
    af = rng.uniform(200, 520, 60)  # irregularly irregular
    Xr, names = rr_features(np.cumsum(regular).astype(int), 360)
    Xa, _ = rr_features(np.cumsum(af).astype(int), 360)
    prem, irr = names.index("rr_prematurity"), names.index("rr_irregularity")
    assert Xr[30, prem] > 10 and Xr[30, irr] < 0.05  # premature beat (peak 30 ends interval 30)
    assert np.abs(Xr[[10, 20, 45], prem]).max() < 1e-6  # regular beats: neither premature nor irregular
    assert np.median(Xa[:, irr]) > 0.2 and np.median(np.abs(Xa[:, prem])) < 2
    Xs, _ = rr_features([0, 360, 700], 360)  # shorter than the window: no crash, finite
    assert np.isfinite(Xs).all()


def test_qrs_width_separates_wide_beats():
    fs, r = 360, 90
    t = (np.arange(252) - r) / fs
    narrow = np.exp(-0.5 * (t / 0.012) ** 2)
    wide = np.exp(-0.5 * (t / 0.045) ** 2)
    X, labels = qrs_features(np.stack([narrow, narrow, wide]), fs, r)
    w = X[:, labels.index("qrs_width_ms")]
    assert w[2] > 2 * w[0]
    assert X[0, labels.index("corr_to_median")] == pytest.approx(1.0, abs=1e-4)
    assert X[2, labels.index("dist_to_median")] > X[0, labels.index("dist_to_median")]


def test_wavelet_and_hrv_and_featurizer_labels():
    beats = np.random.default_rng(0).normal(size=(4, 252))
    assert wavelet_coefficients(beats, "db4", 4).shape[0] == 4
    a4 = wavelet_coefficients(beats, "db4", 4, bands=[0])
    assert a4.shape[1] < 30
    split = wavelet_coefficients(beats, "db4", 4, split=True)  # one transform, every band (the record views read it)
    assert len(split) == 5 and np.array_equal(split[0], a4)
    np.testing.assert_array_equal(np.concatenate(split, axis=-1), wavelet_coefficients(beats, "db4", 4))
    hrv, names = hrv_features(np.arange(0, 3600, 360), 360)
    assert hrv[names.index("hr_mean")] == pytest.approx(60.0) and hrv[names.index("sdnn")] == pytest.approx(0.0)
    sig, peaks, _ = synthetic_record(20, random_state=1)
    full = BeatFeaturizer(feature_set="all")
    X_all = full.featurize(bandpass(sig[:, 0], 360), peaks)
    assert X_all.shape == (len(peaks), len(full.feature_labels())) and np.isfinite(X_all).all()
    f = BeatFeaturizer()
    X = f.featurize(bandpass(sig[:, 0], 360), peaks)
    assert f.feature_labels() == list(ROBUST_LABELS) and X.shape == (len(peaks), 36)
    np.testing.assert_array_equal(X, X_all[:, [full.feature_labels().index(n) for n in f.feature_labels()]])
    assert f.citations()
    with pytest.raises(HsickitError, match="feature_set"):
        BeatFeaturizer(feature_set="some").featurize(sig[:, 0], peaks)


def test_second_lead_features_read_the_second_lead():
    sig, peaks, _ = synthetic_record(20, random_state=1)
    first = bandpass(sig[:, 0], 360)
    second = first.copy()
    k = peaks[7]
    second[k - 40:k + 60] *= -1  # beat 7 inverted on the second lead only
    f = BeatFeaturizer()
    one, two = f.featurize(first, peaks), f.featurize(np.stack([first, second]), peaks)
    labels = f.feature_labels()
    lead2 = [labels.index(n) for n in labels if n.startswith("lead2_")]
    rest = [i for i in range(len(labels)) if i not in lead2]
    np.testing.assert_array_equal(one[:, rest], two[:, rest])
    np.testing.assert_array_equal(one[:, labels.index("lead2_corr_to_median")], one[:, labels.index("corr_to_median")])
    corr2 = two[:, labels.index("lead2_corr_to_median")]
    assert corr2[7] < 0 < np.delete(corr2, 7).min()


def test_template_features_follow_the_regular_beats():
    t = np.linspace(-1, 1, 100)
    normal, ventricular = np.exp(-(t / 0.05) ** 2), -0.6 * np.exp(-(t / 0.25) ** 2)
    beats = np.array([ventricular if i % 2 else normal for i in range(60)])  # bigeminy: every other beat V
    regular = np.arange(60) % 2 == 0  # the V beats are premature
    X, names = template_features(beats, 100, 50, regular)
    assert X[1::2, names.index("corr_to_regular")].max() < 0.5 < X[0::2, names.index("corr_to_regular")].min()
    assert X[1::2, names.index("qrs_width_local")].min() > 2 * X[0::2, names.index("qrs_width_local")].max()
    drift = np.array([normal * (1 + 0.02 * i) + 0.3 * (i / 200) * np.roll(normal, 10) for i in range(200)])  # slow change
    X, _ = template_features(drift, 100, 50, np.ones(200, bool))
    assert X[:, names.index("corr_to_local")].min() > X[:, names.index("corr_to_regular")].min()


def test_neighbour_features_average_over_look_alikes_of_the_same_record():
    t = np.linspace(-1, 1, 100)
    normal, ventricular = np.exp(-(t / 0.05) ** 2), -0.6 * np.exp(-(t / 0.25) ** 2)
    rng = np.random.default_rng(0)
    is_v = np.arange(300) % 5 == 0
    beats = np.where(is_v[:, None], ventricular, normal) + 0.01 * rng.normal(size=(300, 100))
    beats[150] = normal + 0.5 * np.sin(40 * t)  # one noisy normal beat
    early = is_v & (np.arange(300) % 20 != 0)  # three V beats in four come early; every 20th does not
    for block in (4096, 64):  # all beats of the record are candidates, or only the nearest 64
        X, names = neighbour_features(beats, 100, 50, {"early": early.astype(float)}, k=10, block=block)
        assert names == ("nbr_early", "nbr_rarity")
        on_time_v = is_v & ~early
        assert X[on_time_v, 0].min() > 0.5 > 0.1 > X[~is_v, 0].max()  # on time, but its look-alikes are early
        rarity = X[:, 1]
        assert rarity[150] > 3 * np.delete(rarity, 150).max()


def test_beats_from_records_views_and_labels(records):
    bs = load_beats(records, verbose=0)
    n = len(bs)
    assert bs.beat.shape == (n, 1, 252) and bs.rhythm.shape == (n, 1, 240) and bs.rr.shape == (n, 16)
    assert bs.features.shape == (n, len(bs.feature_labels)) and set(bs.y) <= {"N", "S", "V", "F"}
    assert bs.labelled and set(bs.record) == {"s00", "s01", "s02"}
    # premature S beats have a short normalised previous RR interval
    pre = bs.features[:, bs.feature_labels.index("rr_pre_lq90")]  # over the local sinus reference
    assert pre[bs.y == "S"].mean() < 0.8 < pre[bs.y == "N"].mean()
    assert len(bs.records(["s01"])) == (bs.record == "s01").sum()


def test_second_lead_is_chosen_per_record_and_a_one_lead_record_is_reported(records, tmp_path):
    import wfdb

    def lead2(bs, name="corr_to_median"):
        return bs.features[:, bs.feature_labels.index(f"lead2_{name}")], bs.features[:, bs.feature_labels.index(name)]

    auto = beats_from_record(f"{records}/s00", BeatConfig())
    named = beats_from_record(f"{records}/s00", BeatConfig(second_lead="V1"))
    none = beats_from_record(f"{records}/s00", BeatConfig(second_lead=None))
    np.testing.assert_array_equal(lead2(auto)[0], lead2(named)[0])
    assert not np.allclose(*lead2(auto, "qrs_width_norm")) and np.array_equal(*lead2(none, "qrs_width_norm"))
    with pytest.raises(HsickitError, match="lead 'V5' not found"):
        beats_from_record(f"{records}/s00", BeatConfig(second_lead="V5"))
    rec = wfdb.rdrecord(f"{records}/s00", channels=[0])
    wfdb.wrsamp("one", fs=360, units=["mV"], sig_name=["MLII"], p_signal=rec.p_signal, fmt=["16"], write_dir=str(tmp_path))
    one = beats_from_record(tmp_path / "one", BeatConfig())
    assert any("one lead only" in r for r in one.repairs) and np.array_equal(*lead2(one))


def test_unannotated_record_uses_detector_and_other_rate_is_resampled(records, tmp_path):
    import wfdb

    rec = wfdb.rdrecord(f"{records}/s00")
    sig = resample(rec.p_signal.T, 360, 250).T
    wfdb.wrsamp("u", fs=250, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig.astype(float), fmt=["16", "16"],
                write_dir=str(tmp_path))
    bs = beats_from_record(tmp_path / "u", BeatConfig())
    assert not bs.labelled and bs.beat.shape[2] == 252
    assert any("resampled from 250 Hz to 360 Hz" in r for r in bs.repairs)
    truth = wfdb.rdann(f"{records}/s00", "atr").sample * 250 / 360
    hits = np.abs(truth[:, None] - bs.sample[None, :]).min(1) <= 0.05 * 250
    assert hits.mean() > 0.9  # beat positions come back in the record's own (250 Hz) samples


def test_beat_metrics_values():
    y_true = ["N"] * 6 + ["S"] * 2 + ["V"] * 2
    y_pred = ["N"] * 5 + ["S"] + ["S", "N"] + ["V", "V"]
    m = beat_metrics(y_true, y_pred)
    assert m["sensitivity_S"] == 0.5 and m["ppv_S"] == 0.5 and m["f1_S"] == 0.5
    assert m["sensitivity_V"] == 1.0 and m["ppv_V"] == 1.0 and m["accuracy"] == 0.8 and m["n_beats"] == 10
    assert m["specificity_N"] == 0.75 and m["support_F"] == 0
    # F has no reference beats and is never predicted: its Se, +P and F1 are undefined, not 0
    assert np.isnan(m["sensitivity_F"]) and np.isnan(m["ppv_F"]) and np.isnan(m["f1_F"])
    m2 = beat_metrics(["N", "N", "V"], ["N", "S", "N"])
    assert np.isnan(m2["sensitivity_S"]) and m2["ppv_S"] == 0.0 and m2["f1_S"] == 0.0  # S predicted once, wrongly
    assert m2["sensitivity_V"] == 0.0 and np.isnan(m2["ppv_V"]) and m2["f1_V"] == 0.0  # V never predicted
    assert 0 < m["kappa"] < 1
    assert m["macro_f1"] == pytest.approx(np.mean([m["f1_N"], m["f1_S"], m["f1_V"]]))  # F absent: not averaged
    with pytest.raises(HsickitError):
        beat_metrics(["N"], ["N", "S"])


def test_ec57_positive_predictivity_counts_false_alarms_as_bxb_does():
    """AAMI EC57 (PhysioNet's bxb): fusion or unclassifiable beats called V are no false V, unclassifiable beats
    called S no false S; every other beat called V or S is, and sensitivity is unchanged."""
    from hsickit.apps.ecg.metrics import record_intervals

    y_true = ["N", "V", "F", "V", "Q", "S", "N", "Q", "S", "V"]
    y_pred = ["N", "V", "V", "V", "V", "S", "S", "S", "V", "N"]
    m = beat_metrics(y_true, y_pred)
    assert m["ppv_V"] == pytest.approx(2 / 5) and m["ppv_V_ec57"] == pytest.approx(2 / 3)  # F->V and Q->V left out, S->V kept
    assert m["ppv_S"] == pytest.approx(1 / 3) and m["ppv_S_ec57"] == pytest.approx(1 / 2)  # Q->S left out, N->S kept
    assert m["sensitivity_V"] == pytest.approx(2 / 3)
    # three identical records: every bootstrap draw has the pooled value
    iv = record_intervals(y_true * 3, y_pred * 3, [r for r in "abc" for _ in y_true])
    assert iv["ppv_V_ec57_low"] == pytest.approx(2 / 3) == iv["ppv_V_ec57_high"]
    assert iv["ppv_S_ec57_low"] == pytest.approx(1 / 2) == iv["ppv_S_ec57_high"]
    assert np.isnan(beat_metrics(["N", "F"], ["N", "V"])["ppv_V_ec57"])  # only a fusion beat called V: nothing to count


def _records(hits_per_record, n_s=10, n_n=40):
    """Beats of records that each hold ``n_s`` S beats, of which ``hits`` are found, and ``n_n`` N beats."""
    y, p, r = [], [], []
    for i, hits in enumerate(hits_per_record):
        y += ["S"] * n_s + ["N"] * n_n
        p += ["S"] * hits + ["N"] * (n_s - hits) + ["N"] * n_n
        r += [f"r{i}"] * (n_s + n_n)
    return y, p, r


def test_record_intervals_draw_whole_records():
    # the same pooled S Se (0.8) with the misses spread over every record or all in two records
    spread, lumped = _records([8] * 10), _records([10] * 8 + [0] * 2)
    for y, p, r in (spread, lumped):
        iv = record_intervals(y, p, r)
        assert beat_metrics(y, p)["sensitivity_S"] == pytest.approx(0.8)
        assert iv["sensitivity_S_low"] <= 0.8 <= iv["sensitivity_S_high"] and iv["accuracy_low"] <= iv["accuracy_high"]
    # identical records: every draw gives the pooled value; misses in a few records: wide
    same = record_intervals(*spread)
    assert same["sensitivity_S_low"] == same["sensitivity_S_high"] == pytest.approx(0.8)
    wide = record_intervals(*lumped)
    assert wide["sensitivity_S_high"] - wide["sensitivity_S_low"] > 0.3 and wide["ppv_S_low"] == wide["ppv_S_high"] == 1.0
    assert record_intervals(*lumped, random_state=0) == wide  # reproducible
    # V never occurs: undefined in every draw; one record: nothing to draw from
    assert np.isnan(wide["sensitivity_V_low"]) and np.isnan(wide["ppv_V_high"])
    assert np.isnan(record_intervals(["N", "S"], ["N", "S"], ["a", "a"])["accuracy_low"])
    with pytest.raises(HsickitError, match="equally long"):
        record_intervals(["N"], ["N"], ["a", "b"])


def test_metrics_dataset_roundtrips_netcdf(tmp_path):
    folds = [beat_metrics(["N", "S", "V"], ["N", "S", "N"]), beat_metrics(["N", "V"], ["N", "V"])]
    ds = metrics_dataset(folds, folds=["a", "b"])
    assert ds["per_class"].dims == ("class", "metric", "fold") and ds["per_class"].shape == (4, 5, 2)
    assert float(ds["per_class"].sel({"class": "V", "metric": "sensitivity", "fold": "a"})) == 0.0
    (tmp_path / "m.nc").write_bytes(ds.to_netcdf(engine="scipy"))
    back = xr.open_dataset(tmp_path / "m.nc", engine="scipy")
    np.testing.assert_allclose(back["accuracy"].values, ds["accuracy"].values)


def test_record_metrics():
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    S = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.4], [0.2, 0.1]])
    m = record_metrics(Y, S, ["AF", "LVH"])
    assert m["auroc_AF"] == 1.0 and m["f1_AF"] == 1.0 and m["f1_LVH"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2) and m["n_records"] == 4
    assert 0 < m["micro_auroc"] <= 1


def test_beats_in_a_signal_dropout_are_left_out_and_reported(records, tmp_path):
    import shutil

    import wfdb

    rec = wfdb.rdrecord(f"{records}/s00")
    sig = rec.p_signal.copy()
    sig[3600:7200, 1] = sig[3600, 1]  # V1 (the second lead's features) flat from 10 s to 20 s
    wfdb.wrsamp("d", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig, fmt=["16", "16"], write_dir=str(tmp_path))
    shutil.copy(f"{records}/s00.atr", tmp_path / "d.atr")
    whole, cut = beats_from_record(f"{records}/s00", BeatConfig()), beats_from_record(tmp_path / "d", BeatConfig())
    t = whole.sample / 360
    outside = (t + 0.45 <= 10) | (t - 0.25 >= 20)
    np.testing.assert_array_equal(cut.sample, whole.sample[outside])
    assert any(f"{(~outside).sum()} beats in signal dropouts left out" in r for r in cut.repairs)
    with pytest.raises(HsickitError, match="V1: flat from 10.0 s to 20.0 s"):
        beats_from_record(tmp_path / "d", BeatConfig(dropouts="raise"))


def test_record_macro_f1_averages_the_labels_present_in_the_reference():
    Y = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0]])  # "b" and "c" absent from these records
    S = np.array([[0.9, 0.1, 0.8], [0.2, 0.1, 0.1], [0.3, 0.2, 0.1]])  # "c" predicted once (a false positive)
    m = record_metrics(Y, S, ["a", "b", "c"])
    assert m["f1_a"] == pytest.approx(2 / 3) and np.isnan(m["f1_b"]) and m["f1_c"] == 0.0
    assert m["macro_f1"] == pytest.approx(2 / 3)  # not (2/3 + 0 + 0) / 3
    assert m["micro_f1"] == pytest.approx(0.5)  # the false positive of "c" counts here
    assert np.isnan(record_metrics(np.zeros((2, 1)), np.zeros((2, 1)), ["a"])["macro_f1"])
    assert record_metrics(Y, S, ["a", "b", "c"], threshold=[0.25, 0.5, 0.5])["f1_a"] == 1.0  # one threshold per label
