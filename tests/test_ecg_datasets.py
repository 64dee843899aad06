"""WFDB reading, bad input, beat tables, AAMI mapping, splits and label tables (hsickit.datasets.ecg*)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from hsickit import HsickitError
from hsickit.datasets.ecg import AAMI_MAP, beat_windows, list_records, read_beat_table, read_record, read_records
from hsickit.datasets.ecg_labels import cinc_code_map, read_cinc_labels, read_ludb_labels
from hsickit.datasets.ecg_splits import DS1, DS1_VALIDATION, DS2, inter_patient_split, patient_kfold

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg"
FS = 360


def _write(d, name="r1", n=3600, fs=FS, leads=("MLII", "V1"), fmt="212", signal=None):
    t = np.arange(n) / fs
    sig = signal if signal is not None else np.stack([np.sin(2 * np.pi * (1 + i) * t) for i in range(len(leads))], 1)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads), p_signal=sig, fmt=[fmt] * len(leads),
                adc_gain=[200.0] * len(leads), baseline=[0] * len(leads), write_dir=str(d))
    return str(Path(d) / name)


def test_read_record_dims_attrs_and_values(tmp_path):
    path = _write(tmp_path)
    da = read_record(path)
    assert da.dims == ("lead", "time") and da.shape == (2, 3600)
    assert da.attrs["fs"] == 360.0 and da.attrs["record"] == "r1" and "wfdb" in da.attrs["provenance"]
    assert list(da.lead.values) == ["MLII", "V1"] and list(da.units.values) == ["mV", "mV"]
    assert da.time.values[-1] == pytest.approx(3599 / 360)
    np.testing.assert_allclose(da.values[0], np.sin(2 * np.pi * np.arange(3600) / 360), atol=0.005)
    assert da.attrs["repairs"] == []


def test_read_record_selects_leads_by_name(tmp_path):
    path = _write(tmp_path, leads=("V5", "MLII"))
    da = read_record(path, leads=["mlii"])
    assert list(da.lead.values) == ["MLII"]
    with pytest.raises(HsickitError, match="lead 'V1' not found"):
        read_record(path, leads=["V1"])


@pytest.mark.parametrize("fmt", ["212", "16"])  # format 16: read without wfdb's parser when the file is whole
def test_missing_and_truncated_dat(tmp_path, fmt):
    path = _write(tmp_path, fmt=fmt)
    dat = Path(path + ".dat")
    data = dat.read_bytes()
    dat.write_bytes(data[: len(data) // 2])
    with pytest.raises(HsickitError, match="r1.*truncated"):
        read_record(path)
    dat.write_bytes(data + b"\x00" * 600)
    with pytest.raises(HsickitError, match="header disagrees with the data"):
        read_record(path)
    dat.unlink()
    with pytest.raises(HsickitError, match="r1.*missing"):
        read_record(path)
    with pytest.raises(HsickitError, match="not found"):
        read_record(tmp_path / "nope")


@pytest.mark.parametrize("fmt", ["212", "16"])
def test_checksum_mismatch_is_header_disagreement(tmp_path, fmt):
    path = _write(tmp_path, fmt=fmt)
    dat = Path(path + ".dat")
    data = bytearray(dat.read_bytes())
    data[300] ^= 0x5A  # corrupt one sample, file size unchanged
    dat.write_bytes(bytes(data))
    with pytest.raises(HsickitError, match="checksum mismatch"):
        read_record(path)
    assert read_record(path, check_checksum=False).shape == (2, 3600)


@pytest.mark.parametrize("line, old, new, message", [
    (0, " 360 ", " three-sixty ", "line 1: the sampling frequency field is 'three-sixty'"),  # wfdb alone: 250 Hz, silently
    (1, " 200", " two-hundred", "line 2: the ADC gain field is 'two-hundred"),  # wfdb alone: gain 200, units 'two-hundred'
    (1, " 0 ", " zero ", "line 2: the ADC zero field is 'zero'"),
    (0, " 2 ", " 3 ", "declares 3 signals on line 1 but has 2 signal line"),
    (1, "212", "999", "line 2: signal format 999 is not one wfdb reads"),
])
@pytest.mark.parametrize("fmt", ["212", "16"])
def test_malformed_header_field_is_named(tmp_path, line, old, new, message, fmt):
    path = _write(tmp_path, fmt=fmt)
    old = old.replace("212", fmt)
    header = Path(path + ".hea")
    lines = header.read_text().splitlines()
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new, 1)
    header.write_text("\n".join(lines) + "\n")
    with pytest.raises(HsickitError, match=f"record r1: .*{message}"):
        read_record(path)


def test_nan_runs_raise_or_interpolate(tmp_path):
    sig = np.stack([np.sin(np.arange(3600) / 50.0), np.cos(np.arange(3600) / 50.0)], 1)
    sig[1000:1010, 0] = np.nan  # written as the invalid sample value, read back as NaN
    path = _write(tmp_path, fmt="16", signal=sig)
    with pytest.raises(HsickitError, match="r1, lead MLII: 10 missing samples"):
        read_record(path)
    da = read_record(path, nan_policy="interpolate")
    assert not np.isnan(da.values).any()
    assert any("interpolated" in r for r in da.attrs["repairs"])
    np.testing.assert_allclose(da.values[0, 1005], np.sin(1005 / 50.0), atol=0.02)
    with pytest.raises(HsickitError, match="longer than max_gap.*dropouts='mask'"):
        read_record(path, nan_policy="interpolate", max_gap=0.01)


def test_dropouts_inside_a_lead_raise_or_are_masked(tmp_path):
    t = np.arange(36000) / FS
    sig = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], 1)
    sig[3600:7200, 0] = 0.25  # MLII flat from 10 s to 20 s: the electrode came off
    sig[18000:18900, 1] = np.nan  # V1 missing for 2.5 s from 50 s
    sig[25000:25010, 1] = np.nan  # and for 10 samples, which is bridged as before
    path = _write(tmp_path, n=len(t), fmt="16", signal=sig)
    with pytest.raises(HsickitError, match="lead MLII: flat from 10.0 s to 20.0 s.*dropouts='mask'"):
        read_record(path, nan_policy="interpolate")
    da = read_record(path, nan_policy="interpolate", dropouts="mask")
    assert not np.isnan(da.values).any()
    assert da.attrs["dropouts"] == [("MLII", 10.0, 20.0), ("V1", 50.0, 52.5)]
    assert sum("dropout" in r for r in da.attrs["repairs"]) == 2
    assert read_record(_write(tmp_path, "clean")).attrs["dropouts"] == []


def test_flat_lead_raise_drop_keep(tmp_path):
    sig = np.stack([np.sin(np.arange(3600) / 50.0), np.zeros(3600)], 1)
    path = _write(tmp_path, signal=sig)
    with pytest.raises(HsickitError, match="lead V1: flat lead"):
        read_record(path)
    dropped = read_record(path, flat_policy="drop")
    assert list(dropped.lead.values) == ["MLII"] and "dropped" in dropped.attrs["repairs"][0]
    assert read_record(path, flat_policy="keep").sizes["lead"] == 2


def test_read_records_stacks_and_rejects_mismatch(tmp_path):
    _write(tmp_path, "a")
    _write(tmp_path, "b")
    da = read_records(tmp_path)
    assert da.dims == ("record", "lead", "time") and list(da.record.values) == ["a", "b"]
    _write(tmp_path, "c", n=1800)
    with pytest.raises(HsickitError, match="record c .* does not match record a"):
        read_records(tmp_path)


def test_list_records(tmp_path):
    _write(tmp_path, "a")
    _write(tmp_path, "b")
    assert list_records(tmp_path) == ["a", "b"]
    _write(tmp_path, "a10")
    _write(tmp_path, "a9")
    assert list_records(tmp_path) == ["a", "a9", "a10", "b"]  # natural order
    (tmp_path / "RECORDS").write_text("b\na\n")
    assert list_records(tmp_path) == ["b", "a"]  # the folder's RECORDS file wins
    assert list_records(tmp_path, "b") == ["b"]
    with pytest.raises(HsickitError, match="record.*zz.*not found"):
        list_records(tmp_path, ["a", "zz"])


def test_beat_table_aami_and_rhythm(tmp_path):
    path = _write(tmp_path)
    wfdb.wrann("r1", "atr", np.array([5, 100, 400, 700, 1000, 1300, 1600]), np.array(["+", "N", "A", "V", "~", "F", "/"]),
               aux_note=["(AFIB", "", "", "", "", "", ""], write_dir=str(tmp_path))
    table = read_beat_table(path)
    assert table["symbol"].tolist() == ["N", "A", "V", "F", "/"]
    assert table["aami"].tolist() == ["N", "S", "V", "F", "Q"]
    assert table["rhythm"].tolist() == ["(AFIB"] * 5
    assert table["time"].iloc[0] == pytest.approx(100 / 360)
    assert table.attrs["n_non_beat"] == 2


def test_unknown_annotation_code(tmp_path):
    path = _write(tmp_path)
    custom = pd.DataFrame({"label_store": [42], "symbol": ["Z"], "description": ["made-up code"]})
    wfdb.wrann("r1", "atr", np.array([100, 400]), np.array(["N", "Z"]), custom_labels=custom, write_dir=str(tmp_path))
    with pytest.raises(HsickitError, match="record r1: unknown annotation code 'Z' at sample 400"):
        read_beat_table(path)
    table = read_beat_table(path, unknown="skip")
    assert table["symbol"].tolist() == ["N"] and table.attrs["skipped"] == ["r1: sample 400 code 'Z'"]
    with pytest.raises(HsickitError, match="annotation file .*qrs not found"):
        read_beat_table(path, "qrs")


def test_aami_map_matches_ec57():
    assert {s for s, c in AAMI_MAP.items() if c == "S"} >= set("AaJS")
    assert [AAMI_MAP[s] for s in "NLRej"] == ["N"] * 5
    assert AAMI_MAP["E"] == "V" and AAMI_MAP["F"] == "F" and AAMI_MAP["f"] == "Q"


def test_beat_windows_shape_and_padding():
    import xarray as xr

    x = np.arange(100, dtype="float32")[None, :]
    da = xr.DataArray(x, dims=("lead", "time"), coords={"lead": ["II"]}, attrs={"fs": 10.0, "record": "x"})
    w = beat_windows(da, [0, 50, 99], before=0.3, after=0.2)
    assert w.dims == ("beat", "lead", "time") and w.shape == (3, 1, 5)
    np.testing.assert_array_equal(w.values[1, 0], [47, 48, 49, 50, 51])
    np.testing.assert_array_equal(w.values[0, 0], [0, 0, 0, 0, 1])  # edge-padded
    assert w.attrs["n_padded"] == 2 and list(w.sample.values) == [0, 50, 99]


def test_splits_are_by_record_and_disjoint():
    split = inter_patient_split()
    assert set(split.train) | set(split.validation) == set(DS1)
    assert not set(split.train) & set(split.validation) and split.test == DS2
    assert set(split.validation) == set(DS1_VALIDATION)
    with pytest.raises(HsickitError, match="not in DS1"):
        inter_patient_split(["100"])
    folds = list(patient_kfold(list(DS1) + ["202"], n_splits=4, random_state=1))
    tests = [set(te) for _, te in folds]
    assert set().union(*tests) == set(DS1) | {"202"} and sum(map(len, tests)) == 23
    assert any({"201", "202"} <= t for t in tests)  # one subject stays in one fold


def test_ludb_labels_parse_multiline_cells(tmp_path):
    (tmp_path / "ludb.csv").write_text(
        'ID,Sex,Age,Rhythms,Electric axis of the heart,Hypertrophies,Ischemia\n'
        '1,"F\n",51,Sinus bradycardia,Electric axis of the heart: normal,"Left ventricular overload\nLeft ventricular hypertrophy",\n'
        '6,M,76,Sinus rhythm,Electric axis of the heart: left axis deviation,,"Ischemia: apical"\n')
    table = read_ludb_labels(tmp_path)
    assert table.loc["1", "Left ventricular hypertrophy"] == 1 and table.loc["1", "Left ventricular overload"] == 1
    assert table.loc["6"].sum() == 3 and "F" not in table.columns
    coarse = read_ludb_labels(tmp_path, level="category")
    assert coarse.loc["1", "Hypertrophies"] == 1 and coarse.loc["6", "Ischemia"] == 1
    # every record has an axis: the category keeps its statements apart, as for the rhythm
    assert "Electric axis of the heart" not in coarse.columns
    assert coarse.loc["6", "Electric axis of the heart: left axis deviation"] == 1 and coarse.loc["1", "Sinus bradycardia"] == 1


def test_cinc_labels_merge_equivalent_codes(tmp_path):
    (tmp_path / "dx_mapping_scored.csv").write_text(
        "Dx,SNOMEDCTCode,Abbreviation,Total,Notes\nsinus rhythm,426783006,NSR,1,\n"
        "complete right bundle branch block,713427006,CRBBB,1,\nright bundle branch block,59118001,RBBB,1,\n")
    (tmp_path / "dx_mapping_unscored.csv").write_text("Dx,SNOMEDCTCode,Abbreviation,Total\nleft atrial abnormality,253352002,LAA,1\n")
    (tmp_path / "weights.csv").write_text(",426783006,713427006|59118001\n426783006,1,0\n713427006|59118001,0,1\n")
    for name, dx in (("A1", "426783006,59118001"), ("A2", "713427006,253352002")):
        _write(tmp_path, name, n=500, fs=500)
        hea = tmp_path / f"{name}.hea"
        hea.write_text(hea.read_text() + f"# Dx: {dx}\n")
    assert cinc_code_map(tmp_path).loc["59118001", "class_code"] == "713427006"
    table = read_cinc_labels(tmp_path)
    assert list(table.columns) == ["CRBBB", "LAA", "NSR"]
    assert table.loc["A1"].tolist() == [1, 0, 1] and table.loc["A2"].tolist() == [1, 1, 0]
    assert list(read_cinc_labels(tmp_path, scored_only=True).columns) == ["CRBBB", "NSR"]


REAL_RECORDS = ["ptbxl-sample/records100/00000/00001_lr", "ptbxl-sample/records100/00000/00547_lr",
                "ptbxl-sample/records100/00000/00999_lr", "ludb-dev/1", "ludb-dev/56", "cinc2021-sample/HR06009",
                "cinc2021-sample/E07500", "mitdb-ds1/114"]


@pytest.mark.parametrize("record", REAL_RECORDS)
def test_real_records_read_as_wfdb_reads_them(record):
    """Format-16 records (PTB-XL, LUDB, CinC 2021 with its byte offset) are read without wfdb's header parser,
    MIT-BIH's format 212 by wfdb: both give wfdb.rdrecord's samples, names, units, rate and comments."""
    path = SHARED / record
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"shared record {record} absent")
    da, ref = read_record(path, flat_policy="keep", dropouts="mask"), wfdb.rdrecord(str(path))
    np.testing.assert_array_equal(da.values, ref.p_signal.T.astype(np.float32))
    assert list(da.lead.values) == ref.sig_name and list(da.units.values) == ref.units
    assert da.attrs["fs"] == float(ref.fs) and da.attrs["comments"] == "\n".join(ref.comments)


def test_format16_records_are_read_without_wfdb_rdrecord(tmp_path, monkeypatch):
    """The format-16 path is taken (wfdb.rdrecord is not called) and gives the values wfdb gives; any other
    record (format 212, or a format-16 file of the wrong size) still goes to wfdb, whose error is reported."""
    expected = read_record(_write(tmp_path, "plain", fmt="16"))
    other = _write(tmp_path, "other", fmt="212")
    short = _write(tmp_path, "short", fmt="16")
    Path(short + ".dat").write_bytes(Path(short + ".dat").read_bytes()[:-2])

    def no_wfdb(*args, **kwargs):
        raise RuntimeError("wfdb.rdrecord called")

    monkeypatch.setattr(wfdb, "rdrecord", no_wfdb)
    da = read_record(tmp_path / "plain")
    np.testing.assert_array_equal(da.values, expected.values)
    assert da.attrs == {**expected.attrs, "source": da.attrs["source"]}
    with pytest.raises(HsickitError, match="record other: wfdb could not read the signals.*rdrecord called"):
        read_record(other)
    with pytest.raises(HsickitError, match="record short: signal file .*short.dat is truncated"):
        read_record(short)  # wfdb's failed read, then the size check names the file


@pytest.mark.skipif(not (SHARED / "mitdb-ds1").exists(), reason="shared MIT-BIH DS1 data absent")
def test_real_mitdb_record_208():
    da = read_record(SHARED / "mitdb-ds1" / "208")
    assert da.shape == (2, 650000) and da.attrs["fs"] == 360.0
    counts = read_beat_table(SHARED / "mitdb-ds1" / "208")["aami"].value_counts().to_dict()
    assert counts == {"N": 1586, "V": 992, "F": 373, "S": 2, "Q": 2}
    assert list(read_record(SHARED / "mitdb-ds1" / "114", leads=["MLII"]).lead.values) == ["MLII"]


@pytest.mark.skipif(not (SHARED / "ludb-dev").exists(), reason="shared LUDB data absent")
def test_real_ludb_and_cinc():
    labels = read_ludb_labels(SHARED / "ludb-dev")
    assert labels.shape[0] == 40 and labels["Sinus rhythm"].sum() == 31
    da = read_records(SHARED / "ludb-dev", ["1", "6"])
    assert da.shape == (2, 12, 5000)
    if (SHARED / "cinc2021-sample").exists():
        cinc = read_cinc_labels(SHARED / "cinc2021-sample")
        assert cinc.shape == (50, 25) and cinc["PAC"].sum() == 20 and cinc["STach"].sum() == 23
        with pytest.raises(HsickitError, match="JS20004, lead V2: flat lead"):
            read_record(SHARED / "cinc2021-sample" / "JS20004")
