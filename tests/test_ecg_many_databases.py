"""Beats from several databases at once: folders, sampling rates, unnamed leads, bad headers,
annotations outside the signal, and the features that survive frequent ectopy."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from typer.testing import CliRunner

from hsickit.apps.ecg.beats import BeatConfig, load_beats
from hsickit.apps.ecg.cli import app
from hsickit.apps.ecg.features import BeatFeaturizer, p_wave_features, rr_features, sinus_rr_features
from hsickit.apps.ecg.synthetic import synthetic_record, write_synthetic_records
from hsickit.apps.ecg.signal import resample
from hsickit.core.errors import HsickitError
from hsickit.datasets.ecg import find_records, read_record

torch.set_num_threads(1)
runner = CliRunner()


def write_svdb_like(directory, names=("800", "801"), fs=128, duration=40, seed=0):
    """Records as SVDB stores them: 128 Hz, leads named ECG1 and ECG2."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        sig, peaks, kinds = synthetic_record(duration, random_state=seed + i)
        low = resample(sig.T, 360, fs).T
        wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["ECG1", "ECG2"], p_signal=low, fmt=["212", "212"],
                    adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=str(directory))
        wfdb.wrann(name, "atr", np.round(np.asarray(peaks) * fs / 360).astype(int), np.asarray(kinds), write_dir=str(directory))
    return directory


@pytest.fixture(scope="module")
def two_databases(tmp_path_factory):
    base = tmp_path_factory.mktemp("dbs")
    mit = write_synthetic_records(base / "mit", n_records=3, duration=40, random_state=3)
    svdb = write_svdb_like(base / "svdb")
    return base, mit, str(svdb)


def test_find_records_spans_folders_and_names_clashes(tmp_path):
    for folder, names in (("a", ["100", "101"]), ("b", ["100", "800"])):
        write_synthetic_records(tmp_path / folder, n_records=0)
        for n in names:
            (tmp_path / folder / f"{n}.hea").write_text(f"{n} 1 360 10\n")
    (tmp_path / "a" / "RECORDS").unlink()
    (tmp_path / "b" / "RECORDS").unlink()
    both = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    assert list(find_records(both)) == ["a/100", "101", "b/100", "800"]
    assert list(find_records(both, "800,100")) == ["800", "a/100", "b/100"]
    with pytest.raises(HsickitError, match="999 not found"):
        find_records(both, "999")


def test_load_beats_from_two_rates_and_unnamed_leads(two_databases, capsys):
    _, mit, svdb = two_databases
    beats = load_beats(f"{mit},{svdb}", config=BeatConfig(), annotated=True, verbose=1)
    assert set(beats.record) == {"s00", "s01", "s02", "800", "801"}
    assert beats.beat.shape[1:] == (1, 252)  # every record at the model's 360 Hz
    printed = capsys.readouterr().out
    assert "2 records (800, 801): resampled from 128 Hz to 360 Hz" in printed
    assert "lead 'MLII' not found (leads: ECG1, ECG2): used the first lead, ECG1" in printed
    # the same record read at 128 Hz and at 360 Hz gives nearly the same features
    svdb_beats = beats.records(["800"])
    assert np.isfinite(svdb_beats.features).all()


def test_beats_read_by_two_processes_are_the_same(two_databases):
    _, mit, svdb = two_databases
    one = load_beats(f"{mit},{svdb}", config=BeatConfig(), annotated=True, verbose=0, n_jobs=1)
    two = load_beats(f"{mit},{svdb}", config=BeatConfig(), annotated=True, verbose=0, n_jobs=2)
    for view in ("beat", "rhythm", "rr", "features", "y", "record", "sample"):
        np.testing.assert_array_equal(getattr(two, view), getattr(one, view))
    assert two.repairs == one.repairs


def test_lead_fallback_raise_and_numbers(two_databases):
    _, _, svdb = two_databases
    with pytest.raises(HsickitError, match="lead 'MLII' not found"):
        load_beats(svdb, config=BeatConfig(lead_fallback="raise"), verbose=0)
    by_number = load_beats(svdb, config=BeatConfig(leads=("1",)), verbose=0)
    by_name = load_beats(svdb, config=BeatConfig(leads=("ECG2",)), verbose=0)
    np.testing.assert_array_equal(by_number.beat, by_name.beat)
    with pytest.raises(HsickitError, match="lead number 5"):
        load_beats(svdb, config=BeatConfig(leads=("5",)), verbose=0)


@pytest.mark.parametrize("fs", ["0", "-360", "1", "100000"])
def test_implausible_sampling_frequency_is_an_error_naming_the_record(tmp_path, fs):
    d = write_synthetic_records(tmp_path, n_records=1, duration=10, random_state=0)
    header = tmp_path / "s00.hea"
    first, *rest = header.read_text().splitlines()
    tokens = first.split()
    tokens[2] = fs
    header.write_text("\n".join([" ".join(tokens), *rest]) + "\n")
    with pytest.raises(HsickitError, match=r"record s00: .*sampling frequency .* outside the range .*correct"):
        read_record(f"{d}/s00")


def test_annotations_past_the_end_are_left_out_and_reported(tmp_path):
    d = write_synthetic_records(tmp_path, n_records=1, duration=20, random_state=0)
    ann = wfdb.rdann(f"{d}/s00", "atr")
    n = wfdb.rdheader(f"{d}/s00").sig_len
    wfdb.wrann("s00", "atr", np.concatenate([ann.sample, [n, n + 500]]), np.concatenate([ann.symbol, ["N", "N"]]), write_dir=d)
    beats = load_beats(d, config=BeatConfig(), verbose=0)
    assert len(beats) == len(ann.sample)
    assert any("2 beat annotation(s) outside the signal" in r for r in beats.repairs)


@pytest.mark.slow
def test_cli_trains_on_two_folders_with_leads_and_evaluates(two_databases):
    base, mit, svdb = two_databases
    run = base / "run"
    res = runner.invoke(app, ["train", "--records", f"{mit},{svdb}", "--validation-list", "s02", "--channels", "none",
                              "--leads", "MLII", "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["train_records"] == "s00,s01,800,801"
    assert config["data"]["records_dir"].count(",") == 1
    res = runner.invoke(app, ["evaluate", str(run), "--records", mit, "--records", svdb, "--records-list", "800,s02", "--quiet"])
    assert res.exit_code == 0, res.output
    folder = run / f"eval-{Path(mit).name}+{Path(svdb).name}"  # several folders: their names joined by +
    assert json.loads((folder / "metrics.json").read_text())["records"] == "800,s02"


def test_sinus_reference_survives_ectopy_where_the_median_does_not():
    rr = np.tile([0.42, 0.42, 0.42, 0.8], 60)  # atrial tachycardia, three premature beats in four
    peaks = np.concatenate([[0], np.cumsum(rr)]) * 360
    robust, names = sinus_rr_features(peaks, 360)
    median, median_names = rr_features(peaks, 360)
    early = np.r_[False, np.isclose(rr, 0.42)]
    assert robust[early, names.index("rr_pre_lq90")].max() < 0.6
    assert median[early, median_names.index("rr_pre_norm")].min() > 0.95  # the median takes the ectopy for the norm


def test_p_wave_features_tell_another_p_and_no_p():
    t = np.linspace(0, 1, 90)
    p = np.exp(-((t - 0.3) / 0.05) ** 2)
    rng = np.random.default_rng(0)
    sinus = np.tile(np.concatenate([p, np.zeros(60)]), (80, 1))
    sinus[10, :90] = -p
    X, names = p_wave_features(sinus, 360, 90, np.ones(80, bool))
    assert X[10, 0] < 0 < 0.9 < X[11, 0]
    fibrillation = np.concatenate([rng.normal(size=(80, 90)), np.zeros((80, 60))], axis=1)
    Xf, _ = p_wave_features(fibrillation, 360, 90, np.ones(80, bool))
    c = names.index("p_consistency")
    assert Xf[:, c].mean() < 0.5 < X[:, c].mean()


def test_robust_is_the_default_and_relative_is_kept_for_saved_models():
    assert BeatConfig().feature_set == "robust"
    fs = 360
    peaks = np.arange(1, 40) * fs
    sig = np.zeros(41 * fs, "float32")
    sig[peaks] = 1.0
    robust, relative = BeatFeaturizer(feature_set="robust"), BeatFeaturizer(feature_set="relative")
    assert "rr_pre_norm" not in robust.feature_labels() and "rr_pre_lq90" in robust.feature_labels()
    assert len(relative.feature_labels()) == 26 and relative.featurize(sig, peaks).shape == (39, 26)
