"""Median-beat measurements (QRS axis, QRS duration) and the record features and models that read them."""
import json
import shutil

import numpy as np
import pytest
import torch
import wfdb

from hsickit import HsickitError
from hsickit.apps.ecg.measurements import MEASUREMENT_LABELS, qrs_axis, qrs_bounds, qrs_duration, record_measurements
from hsickit.apps.ecg.records import RecordClassifier, RecordConfig, load_record_set

torch.set_num_threads(1)
FS = 500
LEADS = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]


def _beat(width=0.012, n=350, r=125, fs=FS):
    t = (np.arange(n) - r) / fs
    return np.exp(-0.5 * (t / width) ** 2)


def _limb_leads(axis_deg: float, qrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leads I and II of a heart whose QRS vector points at ``axis_deg`` (Einthoven's lead vectors)."""
    a = np.radians(axis_deg)
    i, avf = np.cos(a) * qrs, np.sqrt(3) / 2 * np.sin(a) * qrs
    return i, avf + i / 2


@pytest.mark.parametrize("axis", [-60, -45, 0, 30, 60, 90, 120])
def test_qrs_axis_of_known_limb_lead_deflections(axis):
    i, ii = _limb_leads(axis, _beat())
    assert qrs_axis(i, ii, sampling_rate=FS, r_index=125) == pytest.approx(axis, abs=1)
    assert qrs_axis(i, ii, sampling_rate=FS, r_index=125, method="amplitude") == pytest.approx(axis, abs=1)


def test_positive_lead_i_and_negative_avf_is_a_left_axis():
    qrs = _beat()
    i, avf = qrs, -qrs  # aVF as deep as I is tall: -49 degrees (aVF's lead vector is sqrt(3)/2 as long)
    angle = qrs_axis(i, avf + i / 2, sampling_rate=FS, r_index=125)
    assert -60 < angle < -30
    with pytest.raises(HsickitError, match="method"):
        qrs_axis(i, i, sampling_rate=FS, method="vector")


def test_qrs_bounds_and_duration_widen_with_the_qrs():
    on, off = qrs_bounds(_beat(0.01), sampling_rate=FS, r_index=125)
    assert on < 125 < off
    durations = [qrs_duration(_beat(w), sampling_rate=FS, r_index=125) for w in (0.008, 0.012, 0.02, 0.03)]
    assert durations == sorted(durations) and durations[0] < 80 and durations[-1] > 120
    assert qrs_duration(_beat(0.012, 70, 25, 100), sampling_rate=100, r_index=25) == pytest.approx(  # the same beat at 100 Hz
        qrs_duration(_beat(0.012), sampling_rate=FS, r_index=125), abs=20)


def test_record_measurements_columns_and_a_flat_beat():
    i, ii = _limb_leads(60, _beat())
    values, labels = record_measurements(np.stack([i, ii]), ["I", "II"], sampling_rate=FS, r_index=125)
    assert labels == MEASUREMENT_LABELS and values.dtype == np.float32
    assert values[0] == pytest.approx(60, abs=1)
    assert values[1] == pytest.approx(np.sin(np.radians(values[0]))) and values[2] == pytest.approx(np.cos(np.radians(values[0])))
    assert record_measurements(np.zeros((2, 350)), ["I", "II"], FS)[0].tolist() == [0, 0, 0, 0]
    assert record_measurements(np.stack([i, ii]), ["V1", "V2"], FS, 125)[0][:3].tolist() == [0, 0, 0]  # no limb leads: no axis


def _write_record(folder, name, axis_deg, bpm):
    """10 s of 12 leads at 500 Hz: QRS (and T) complexes at ``bpm`` whose QRS vector points at ``axis_deg``."""
    n = 10 * FS
    t = np.arange(n) / FS
    qrs, tw = np.zeros(n), np.zeros(n)
    for r in np.arange(0.4, 10, 60 / bpm):
        qrs += 1.2 * np.exp(-0.5 * ((t - r) / 0.012) ** 2)
        tw += 0.25 * np.exp(-0.5 * ((t - r - 0.3) / 0.04) ** 2)
    i, ii = _limb_leads(axis_deg, qrs)
    i, ii = i + tw, ii + tw
    iii = ii - i
    leads = {"i": i, "ii": ii, "iii": iii, "avr": -(i + ii) / 2, "avl": i - ii / 2, "avf": ii - i / 2}
    leads.update({f"v{k}": qrs * (k - 3) / 3 + tw for k in range(1, 7)})
    noise = np.random.default_rng(int(name)).normal(0, 0.01, (n, 12))  # no flat stretches between the beats
    sig = np.stack([leads[lead] for lead in LEADS], 1) + noise
    wfdb.wrsamp(name, fs=FS, units=["mV"] * 12, sig_name=LEADS, p_signal=sig, fmt=["16"] * 12, write_dir=str(folder))


@pytest.fixture(scope="module")
def axis_records(tmp_path_factory):
    d = tmp_path_factory.mktemp("axis")
    # record 1: a left axis at 50 bpm; 2: +60 degrees at 75 bpm; 3: +100 degrees (right) at 100 bpm
    for name, axis, bpm in (("1", -45, 50), ("2", 60, 75), ("3", 100, 100)):
        _write_record(d, name, axis, bpm)
    return d


def test_record_features_give_the_heart_rate_and_the_qrs_axis(axis_records):
    rs = load_record_set(axis_records, config=RecordConfig(rpeak_lead="V6"), labelled=False, verbose=0)
    assert rs.features.shape == (3, 6 + len(MEASUREMENT_LABELS))
    hr, axis, duration = rs.features[:, 0], rs.features[:, 6], rs.features[:, 9]
    np.testing.assert_allclose(hr, [50, 75, 100], atol=1.5)
    np.testing.assert_allclose(axis, [-45, 60, 100], atol=8)  # the band-pass filter reshapes the QRS a little
    assert ((duration > 30) & (duration < 100)).all()
    old = load_record_set(axis_records, config=RecordConfig.from_dict({"rpeak_lead": "V6"}), labelled=False, verbose=0)
    np.testing.assert_array_equal(old.features, rs.features[:, :6])  # a config saved before: the HRV features alone


def test_channel_weight_scales_the_embeddings_only(tmp_path):
    from hsickit.apps.ecg.records import RecordSet

    rng = np.random.default_rng(0)
    n = 12
    Y = np.stack([np.arange(n) % 2, (np.arange(n) // 2) % 2], 1).astype(np.float32)
    rs = RecordSet(rng.normal(size=(n, 8, 1000)).astype(np.float32), rng.normal(size=(n, 8, 350)).astype(np.float32),
                   rng.normal(size=(n, 40)).astype(np.float32), rng.normal(size=(n, 16)).astype(np.float32),
                   rng.normal(size=(n, 10)).astype(np.float32), [str(k) for k in range(n)], Y, ["a", "b"])
    Z = {}
    for w in (1.0, 0.2):
        clf = RecordClassifier(channels=("wavelet",), channel_epochs=2, channel_weight=w, random_state=0).fit(rs)
        Z[w] = clf.downstream_[0].transform(clf.representation(rs))
    np.testing.assert_allclose(Z[0.2][:, :-10], 0.2 * Z[1.0][:, :-10], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Z[0.2][:, -10:], Z[1.0][:, -10:], rtol=1e-5, atol=1e-6)
    with pytest.raises(HsickitError, match="channel_weight"):
        RecordClassifier(channels=("wavelet",), channel_epochs=1, channel_weight=0).fit(rs)


def test_a_record_model_saved_before_the_measurements_predicts_as_before(axis_records, tmp_path):
    """A run saved without ``measurements`` (record config) and ``channel_weight`` (model params): its
    records get the 6 HRV features again, the model loads with a channel weight of 1 and predicts as when saved."""
    from hsickit.apps.ecg.records import load_record_run, predict_records
    from hsickit.core.runs import RunFolder, staged_folder

    old_config = RecordConfig(rpeak_lead="V6", measurements=False)
    rs = load_record_set(axis_records, config=old_config, labelled=False, verbose=0)
    rs.Y, rs.labels = np.array([[1, 0], [0, 1], [0, 1]], np.float32), ["left", "other"]
    clf = RecordClassifier(channels=("wavelet",), channel_epochs=2, channel_weight=1.0, random_state=0).fit(rs)
    expected = clf.predict_proba(rs)
    run = tmp_path / "run"
    with staged_folder(run, False, app="ecg", command="train") as folder:
        clf.save(RunFolder(folder) / "model")
        config = old_config.to_dict()
        config.pop("measurements")  # as saved before the option existed
        RunFolder(folder).write_config({"task": "records", "record_config": config, "labels": clf.labels_})
    meta = json.loads((run / "model" / "records_model.json").read_text())
    meta["params"].pop("channel_weight")
    (run / "model" / "records_model.json").write_text(json.dumps(meta))
    loaded, config = load_record_run(run)
    assert config.measurements is False and loaded.channel_weight == 1.0
    predict_records(run, axis_records, tmp_path / "out", plots=False, verbose=0)
    rows = np.loadtxt(tmp_path / "out" / "record_predictions.csv", delimiter=",", skiprows=1, usecols=(1, 2))
    np.testing.assert_allclose(rows, expected, atol=1e-4)
    shutil.rmtree(run)
