"""Read WFDB (PhysioNet) ECG records and their beat annotations into named arrays.

Signals become :class:`xarray.DataArray` objects with dims ``(lead, time)`` (one record),
``(record, lead, time)`` (several records of equal length) or ``(beat, lead, time)``
(beat windows); ``fs``, units, lead names and provenance are in the coordinates and attrs.
Beat annotations become a :class:`pandas.DataFrame` (the *beat table*) with the AAMI
class (N, S, V, F, Q) of every MIT-BIH beat code.

Bad input is checked before anything is trained on it, and every problem is either a
:class:`~hsickit.core.errors.HsickitError` that names the record and says how to fix it,
or a documented repair that is listed in ``attrs["repairs"]``:

- a header field that is not what the WFDB format allows there (a sampling frequency or gain that
  is not a number, more or fewer signal lines than the header declares): error naming the line;
- missing or truncated signal file, a file longer than the header says: error;
- a header checksum that disagrees with the samples: error (``check_checksum=False`` skips it);
- an annotation code that is neither a beat nor a known non-beat code: error, or skipped
  and reported with ``unknown="skip"``;
- runs of missing samples (NaN): error, or linear interpolation with ``nan_policy="interpolate"``;
- a flat lead (peak-to-peak below ``flat_threshold`` mV): error, or dropped with
  ``flat_policy="drop"``, or kept with ``flat_policy="keep"``;
- a dropout inside a lead (a NaN run longer than ``max_gap`` seconds, or a stretch of at least
  ``min_flat`` seconds that stays within ``flat_threshold``: the electrode was off or the
  amplifier saturated): error, or with ``dropouts="mask"`` bridged by a straight line and listed
  in ``attrs["dropouts"]`` as ``(lead, start_s, end_s)``, so that beats in it can be left out.

A sampling rate other than a model's is handled where the model is applied
(:func:`hsickit.apps.ecg.signal.resample` repairs it and reports it).

Example
-------
>>> import numpy as np, wfdb, tempfile, os
>>> d = tempfile.mkdtemp()
>>> sig = np.sin(np.linspace(0, 20, 3600))[:, None]
>>> wfdb.wrsamp("r", fs=360, units=["mV"], sig_name=["MLII"], p_signal=sig, fmt=["212"], write_dir=d)
>>> da = read_record(os.path.join(d, "r"))
>>> da.dims, da.attrs["fs"], da.lead.values.tolist()
(('lead', 'time'), 360.0, ['MLII'])
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import wfdb
import xarray as xr
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from hsickit.core.errors import HsickitError

__all__ = [
    "AAMI_CLASSES",
    "AAMI_MAP",
    "NON_BEAT_SYMBOLS",
    "list_records",
    "find_records",
    "records_at",
    "read_record",
    "read_record_values",
    "record_files",
    "read_records",
    "read_beat_table",
    "beat_windows",
    "record_path",
]

#: AAMI EC57 classes in the order used everywhere in hsickit.
AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: MIT-BIH beat code -> AAMI class (ANSI/AAMI EC57 as used by de Chazal 2004). The codes
#: ``B`` (bundle branch block beat, unspecified), ``n`` (supraventricular escape) and ``r``
#: (R-on-T premature ventricular contraction) do not occur in MIT-BIH but do in other
#: WFDB databases; they are mapped to N, S and V as in EC57's extended table.
AAMI_MAP: dict[str, str] = {
    **dict.fromkeys("NLRejB", "N"),
    **dict.fromkeys("AaJSn", "S"),
    **dict.fromkeys("VEr", "V"),
    "F": "F",
    **dict.fromkeys("/fQ?", "Q"),
}

#: WFDB annotation codes that are not beats (rhythm, signal quality, waves, comments, ...).
NON_BEAT_SYMBOLS: frozenset[str] = frozenset(
    ["+", "~", "|", "!", "[", "]", "x", '"', "(", ")", "p", "t", "u", "`", "'", "^", "s", "T", "*", "D", "=", "@"]
)

# Bytes per sample of the WFDB storage formats, used to check a signal file's size.
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}


def record_path(directory: str | os.PathLike, record: str | int) -> str:
    """The WFDB record path (no extension) of ``record`` inside ``directory``."""
    return str(Path(directory) / str(record))


def record_files(directory: str | os.PathLike, records: Iterable[str | int]) -> list[Path]:
    """Every file of the named records in ``directory`` (header, signals, annotations, segments)."""
    return sorted(p for r in records for p in Path(directory).glob(f"{r}[._]*") if p.is_file())


def folders(directories: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Record folders from one folder, a comma-separated string of folders, or a sequence of them.

    >>> [p.name for p in folders("a/mitdb,b/svdb")]
    ['mitdb', 'svdb']
    """
    if isinstance(directories, (str, os.PathLike)):
        directories = [d for d in str(directories).split(",") if d.strip()]
    out = [Path(str(d).strip()) for d in directories]
    if not out:
        raise HsickitError("no records folder given; pass --records DIR (several: DIR1,DIR2)")
    return out


def find_records(directories: str | os.PathLike | Sequence[str | os.PathLike],
                 records: Sequence[str | int] | str | None = None) -> dict[str, str]:
    """Record id -> record path (no extension) over one or several folders of WFDB records.

    The id is the record's name; a name found in several folders becomes ``<folder>/<name>``
    in each. ``records`` (a list or a comma-separated string, as ``--records-list``) keeps
    the named records: a name or an id, each of which must be in some folder.

    >>> import tempfile, pathlib
    >>> a, b = pathlib.Path(tempfile.mkdtemp(), "a"), pathlib.Path(tempfile.mkdtemp(), "b")
    >>> for d, names in ((a, ["100", "101"]), (b, ["100", "800"])):
    ...     d.mkdir(); _ = [(d / f"{n}.hea").write_text(f"{n} 1 360 10") for n in names]
    >>> list(find_records([a, b]))
    ['a/100', '101', 'b/100', '800']
    """
    dirs = folders(directories)
    found = [(d, name) for d in dirs for name in list_records(d)]
    counts: dict[str, int] = {}
    for _, name in found:
        counts[name] = counts.get(name, 0) + 1
    ids = {(f"{d.name}/{name}" if counts[name] > 1 else name): record_path(d, name) for d, name in found}
    if isinstance(records, str):
        records = [r.strip() for r in records.split(",") if r.strip()]
    if not records:
        return ids
    chosen, missing = {}, []
    for r in map(str, records):
        hits = {i: p for i, p in ids.items() if i == r or (counts.get(r, 0) and Path(p).name == r)}
        if not hits:
            missing.append(r)
        chosen.update(hits)
    where = ", ".join(str(d) for d in dirs)
    outside = [r for r in missing if ".." in Path(r).parts or Path(r).is_absolute()]
    if outside:
        raise HsickitError(f"record name(s) {', '.join(outside)} point outside the records folder(s) {where}; "
                           "--records-list takes names inside --records (as their RECORDS files list them): "
                           "pass the other folder as --records too (--records DIR1,DIR2)")
    if missing:
        raise HsickitError(f"record(s) {', '.join(missing)} not found in {where} (no .hea file); "
                           "check --records-list against the folders' RECORDS files")
    return chosen


def list_records(directory: str | os.PathLike, records: Sequence[str | int] | str | None = None) -> list[str]:
    """Record names in ``directory``: ``records`` if given (checked), else ``RECORDS`` or ``*.hea`` (natural order).

    ``records`` may be a list or a comma-separated string (``"101,106"``).

    >>> import tempfile
    >>> list_records(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    hsickit.core.errors.HsickitError: no WFDB records (*.hea) in ...
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise HsickitError(f"records folder {directory} does not exist; pass the folder that holds the .hea files")
    if isinstance(records, str):
        records = [r.strip() for r in records.split(",") if r.strip()]
    if records:
        names = [str(r) for r in records]
        root = directory.resolve()
        outside = [r for r in names if not (directory / r).resolve().is_relative_to(root)]
        if outside:
            raise HsickitError(f"record name(s) {', '.join(outside)} point outside the records folder {directory}; "
                               "--records-list takes names inside --records (as its RECORDS file lists them): "
                               "pass the other folder as --records instead")
        missing = [r for r in names if not (directory / f"{r}.hea").exists()]
        if missing:
            raise HsickitError(
                f"record(s) {', '.join(missing)} not found in {directory} (no .hea file); "
                "check --records-list against the folder's RECORDS file"
            )
        return names
    listing = directory / "RECORDS"
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        names = [n for n in names if (directory / f"{n}.hea").exists()]
    else:
        names = sorted((p.stem for p in directory.glob("*.hea")), key=_natural_key)
    if not names:
        raise HsickitError(f"no WFDB records (*.hea) in {directory}; pass a folder of PhysioNet-format records")
    return names


def records_at(target: str | os.PathLike) -> tuple[Path, list[str]]:
    """The folder and record names of ``target``: a record path without extension, or a folder of records."""
    target = Path(target)
    if target.is_dir():
        return target, list_records(target)
    if Path(f"{target}.hea").exists():
        return target.parent, [target.name]
    raise HsickitError(f"{target} is neither a folder of records nor a record (no {target}.hea); pass one of those")


def _natural_key(name: str) -> list:
    """Sort key that puts record 2 before record 10."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _name(path: str) -> str:
    return Path(path).name


def _check_files(path: str, header: wfdb.Record) -> None:
    """Check that every signal file exists and has the size the header implies."""
    base = Path(path).parent
    files: dict[str, list[int]] = {}
    for i, f in enumerate(header.file_name or []):
        files.setdefault(f, []).append(i)
    for fname, idx in files.items():
        fpath = base / fname
        if not fpath.exists():
            raise HsickitError(
                f"record {_name(path)}: signal file {fpath} is missing; copy the record's {fname} "
                f"next to {_name(path)}.hea"
            )
        fmt = header.fmt[idx[0]]
        bps = _BYTES_PER_SAMPLE.get(str(fmt))
        samps = (header.samps_per_frame or [1] * header.n_sig)
        if bps is None or header.sig_len is None or any(samps[i] != 1 for i in idx):
            continue
        offset = (header.byte_offset or [0] * header.n_sig)[idx[0]] or 0
        expected = int(np.ceil(offset + bps * len(idx) * header.sig_len))
        actual = fpath.stat().st_size
        if actual < expected - 1:
            raise HsickitError(
                f"record {_name(path)}: signal file {fpath} is truncated ({actual} bytes, the header's "
                f"{header.n_sig} signal(s) x {header.sig_len} samples need {expected}); re-copy the file, "
                "or correct the sample count in the .hea"
            )
        if actual > expected + 4:  # format 212/310 may pad a few bytes
            raise HsickitError(
                f"record {_name(path)}: the header disagrees with the data: {fpath} holds {actual} bytes but "
                f"{header.n_sig} signal(s) x {header.sig_len} samples in format {fmt} need {expected}; "
                "correct the signal count or sample count in the .hea"
            )


#: Sampling frequencies (Hz) accepted in a header: ECG recorders sample between these.
FS_RANGE = (50.0, 10_000.0)

_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_RECORD_FIELDS = (  # (field, pattern) of a record line after the name, as the WFDB header format defines them
    ("number of signals", r"\d+"),
    ("sampling frequency", rf"{_NUMBER}(/{_NUMBER})?(\({_NUMBER}\))?"),
    ("number of samples", r"\d+"),
)
_SIGNAL_FIELDS = (  # (field, pattern) of a signal line after the file name; the description follows
    ("format", r"\d+(x\d+)?(:\d+)?(\+\d+)?"),
    ("ADC gain", rf"{_NUMBER}(\([-+]?\d+\))?(/\S+)?"),
    ("ADC resolution", r"\d+"),
    ("ADC zero", r"[-+]?\d+"),
    ("initial value", r"[-+]?\d+"),
    ("checksum", r"[-+]?\d+"),
    ("block size", r"\d+"),
)


def _check_header_text(path: str) -> bool:
    """Check every field of a single-segment header against the WFDB format before wfdb reads it;
    return whether the header is a multi-segment one (whose segments wfdb checks).

    wfdb reads a field it cannot parse as absent and uses its default (250 Hz for a malformed
    sampling frequency, a gain of 200 with the text as the units), so such a record would be
    read with the wrong scale or time base without a word.
    """
    file = f"{path}.hea"
    lines = [(i, line.split("#", 1)[0].split()) for i, line in enumerate(Path(file).read_text(errors="replace").splitlines(), 1)]
    lines = [(i, tokens) for i, tokens in lines if tokens]
    if not lines or "/" in lines[0][1][0]:  # empty (wfdb reports it) or multi-segment: segment lines, not signal lines
        return bool(lines)

    def check(number, tokens, fields):
        for value, (field, pattern) in zip(tokens, fields):
            if not re.fullmatch(pattern, value):
                raise HsickitError(f"record {_name(path)}: {file} line {number}: the {field} field is {value!r}, which "
                                   f"is not a valid WFDB {field}; correct that field in the header")

    (number, tokens), signals = lines[0], lines[1:]
    check(number, tokens[1:], _RECORD_FIELDS)
    if len(tokens) > 2:
        fs = float(re.match(_NUMBER, tokens[2]).group())
        if not FS_RANGE[0] <= fs <= FS_RANGE[1]:
            raise HsickitError(f"record {_name(path)}: {file} line {number}: sampling frequency {tokens[2]} Hz is outside "
                               f"the range of ECG recordings ({FS_RANGE[0]:g}-{FS_RANGE[1]:g} Hz), so every time-based "
                               "step would be wrong; correct the sampling frequency field in the header")
    if len(tokens) > 1 and tokens[1].isdigit() and int(tokens[1]) != len(signals):
        raise HsickitError(f"record {_name(path)}: {file} declares {tokens[1]} signals on line {number} but has "
                           f"{len(signals)} signal line(s); correct the number of signals or the signal lines")
    for number, tokens in signals:
        check(number, tokens[1:], _SIGNAL_FIELDS)
        fmt = re.match(r"\d+", tokens[1]).group() if len(tokens) > 1 else None
        known = None if fmt is None else _formats_if_unreadable(fmt)
        if known is not None:
            raise HsickitError(f"record {_name(path)}: {file} line {number}: signal format {fmt} is not one wfdb reads "
                               f"({known}); correct the format field or convert the record")
    return False


@lru_cache(maxsize=None)
def _formats_if_unreadable(fmt: str) -> str | None:
    """None when wfdb reads signal format ``fmt``; else the formats it reads, for the message.

    Asked through wfdb's public ``Record.check_field`` (its list of formats, ``DAT_FMTS``, lives in
    the private ``wfdb.io._signal``; the ValueError carries it as its second argument).
    """
    try:
        wfdb.Record(fmt=[fmt], n_sig=1).check_field("fmt", "all")
    except ValueError as err:
        known = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], (list, tuple)) else None
        return ", ".join(map(str, known)) if known else str(err)
    return None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges of the True runs of a boolean array."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _fill_nan_runs(x: np.ndarray, max_run: int) -> int:
    """Linearly interpolate the NaN runs of at most ``max_run`` samples in place; return the longest run."""
    bad = np.isnan(x)
    runs = _runs(bad)
    if not runs or bad.all():
        return max((e - s for s, e in runs), default=0)
    short = np.zeros_like(bad)
    for start, end in runs:
        short[start:end] = end - start <= max_run
    good = ~bad
    x[short] = np.interp(np.flatnonzero(short), np.flatnonzero(good), x[good])
    return max(e - s for s, e in runs)


def _flat_stretches(x: np.ndarray, width: int, threshold: float) -> np.ndarray:
    """Samples inside a window of ``width`` samples whose peak-to-peak stays below ``threshold``, along the last axis
    (of one lead ``(time,)`` or of each of several ``(lead, time)``)."""
    width |= 1  # odd, so that the window is centred on its sample
    if width < 3 or x.shape[-1] < width:
        return np.zeros(x.shape, dtype=bool)
    span = maximum_filter1d(x, width, axis=-1) - minimum_filter1d(x, width, axis=-1)
    return maximum_filter1d((span < threshold).astype(np.int8), width, axis=-1) > 0


def _read_format16(path: str) -> wfdb.Record | None:
    """The record ``wfdb.rdrecord(path, physical=False)`` returns, read without wfdb's header parser; None where
    the record is not a plain format-16 one (wfdb then reads it).

    A plain record: one header of a single segment, every signal in format 16 (little-endian
    16-bit samples, as PTB-XL, LUDB and CinC 2021 store them) in one signal file, one sample per
    frame, no skew, a gain and a baseline (or ADC zero) given, and a signal file of exactly the
    size the header implies. wfdb's parser looks every field's type up in a pandas table, most of
    the time it takes to read a 10-s record; this one splits the lines with wfdb's own patterns
    (:mod:`wfdb.io.header`) and converts the fields as wfdb does. Anything else, a malformed header
    or a file of another size included, is left to wfdb, whose errors :func:`read_record` reports.
    """
    from wfdb.io.header import parse_header_content, rx_record, rx_signal

    with open(path + ".hea", encoding="ascii", errors="ignore") as f:  # as wfdb.rdheader opens it
        lines, comments = parse_header_content(f.read())
    record = rx_record.match(lines[0]) if lines else None
    if record is None or record["n_seg"] or not (record["n_sig"] and record["fs"] and record["sig_len"]):
        return None
    n_sig, sig_len = int(record["n_sig"]), int(record["sig_len"])
    try:
        fs = float(record["fs"])
    except ValueError:  # "." matches wfdb's pattern
        return None
    signals = [rx_signal.match(line) for line in lines[1:]]
    if n_sig == 0 or len(signals) != n_sig or any(
            m is None or m["fmt"] != "16" or m["samps_per_frame"] not in ("", "1") or m["skew"] not in ("", "0")
            or m["file_name"] != signals[0]["file_name"] or m["byte_offset"] != signals[0]["byte_offset"]
            or not m["adc_gain"] or not (m["baseline"] or m["adc_zero"]) or not m["sig_name"] for m in signals):
        return None
    dat = Path(path).parent / signals[0]["file_name"]
    offset = int(signals[0]["byte_offset"] or 0)
    if not dat.is_file() or dat.stat().st_size != offset + 2 * n_sig * sig_len:
        return None
    optional = lambda field: [int(m[field]) if m[field] else None for m in signals]  # noqa: E731
    try:  # a field wfdb's pattern takes but a number cannot be ("-", "."): left to wfdb
        fields = dict(byte_offset=optional("byte_offset"), adc_res=optional("adc_res"), adc_zero=optional("adc_zero"),
                      init_value=optional("init_value"), checksum=optional("checksum"), block_size=optional("block_size"),
                      adc_gain=[float(m["adc_gain"]) or 200.0 for m in signals],  # wfdb: a gain of 0 means 200
                      baseline=[int(m["baseline"] or m["adc_zero"]) for m in signals])
    except ValueError:
        return None
    return wfdb.Record(
        d_signal=np.fromfile(dat, dtype="<i2", count=n_sig * sig_len, offset=offset).reshape(sig_len, n_sig).astype(np.int64),
        record_name=record["record_name"], n_sig=n_sig, fs=int(fs) if round(fs, 8) == float(int(fs)) else fs, sig_len=sig_len,
        file_name=[m["file_name"] for m in signals], fmt=["16"] * n_sig, samps_per_frame=[1] * n_sig, skew=[None] * n_sig,
        units=[m["units"] or "mV" for m in signals], sig_name=[m["sig_name"] for m in signals],
        comments=[line.strip(" \t#") for line in comments], **fields)


def read_record(
    path: str | os.PathLike,
    *,
    leads: Sequence[str] | None = None,
    nan_policy: str = "raise",
    max_gap: float = 0.5,
    flat_policy: str = "raise",
    flat_threshold: float = 1e-3,
    dropouts: str = "raise",
    min_flat: float = 1.0,
    check_checksum: bool = True,
) -> xr.DataArray:
    """Read one WFDB record (single- or multi-segment) into a ``(lead, time)`` DataArray in physical units.

    Parameters
    ----------
    path : record path without extension (``".../mitdb-ds1/208"``).
    leads : lead names to keep, in this order (names compared case-insensitively); None keeps all.
    nan_policy : ``"raise"`` or ``"interpolate"`` (NaN runs up to ``max_gap`` seconds, reported).
    flat_policy : ``"raise"``, ``"drop"`` (reported) or ``"keep"`` for a lead whose peak-to-peak
        amplitude is below ``flat_threshold`` (in the record's units).
    dropouts : ``"raise"`` or ``"mask"`` (bridged and listed in ``attrs["dropouts"]``) for NaN
        runs longer than ``max_gap`` s (with ``nan_policy="interpolate"``) and for stretches of
        ``min_flat`` s or more within ``flat_threshold``.
    check_checksum : compare the header's per-signal checksums with the samples.

    Returns
    -------
    DataArray (lead, time), float32; coords ``lead``, ``time`` (s), ``units`` (per lead);
    attrs ``fs``, ``record``, ``source``, ``provenance``, ``comments``, ``repairs``, ``dropouts``.
    """
    signal, attrs = read_record_values(path, leads=leads, nan_policy=nan_policy, max_gap=max_gap, flat_policy=flat_policy,
                                       flat_threshold=flat_threshold, dropouts=dropouts, min_flat=min_flat,
                                       check_checksum=check_checksum)
    names, units = attrs.pop("lead"), attrs.pop("units")
    return xr.DataArray(signal, dims=("lead", "time"), name="ecg", attrs=attrs,
                        coords={"lead": names, "time": np.arange(signal.shape[1]) / attrs["fs"], "units": ("lead", units)})


def read_record_values(
    path: str | os.PathLike,
    *,
    leads: Sequence[str] | None = None,
    nan_policy: str = "raise",
    max_gap: float = 0.5,
    flat_policy: str = "raise",
    flat_threshold: float = 1e-3,
    dropouts: str = "raise",
    min_flat: float = 1.0,
    check_checksum: bool = True,
) -> tuple[np.ndarray, dict]:
    """:func:`read_record`'s signal and what it knows of it, without the DataArray (what a loop over many records needs).

    Parameters
    ----------
    path, leads, nan_policy, max_gap, flat_policy, flat_threshold, dropouts, min_flat, check_checksum :
        as in :func:`read_record`.

    Returns
    -------
    signal : (lead, time) float32 array in physical units.
    info : dict of ``lead`` (names) and ``units`` (per lead), then :func:`read_record`'s attrs.
    """
    path = str(path)
    name = _name(path)
    if nan_policy not in ("raise", "interpolate"):
        raise HsickitError(f"nan_policy={nan_policy!r}; use 'raise' or 'interpolate'")
    if flat_policy not in ("raise", "drop", "keep"):
        raise HsickitError(f"flat_policy={flat_policy!r}; use 'raise', 'drop' or 'keep'")
    if dropouts not in ("raise", "mask"):
        raise HsickitError(f"dropouts={dropouts!r}; use 'raise' or 'mask'")
    if not Path(path + ".hea").exists():
        raise HsickitError(f"record {name}: header {path}.hea not found; pass the record path without extension")
    multi = _check_header_text(path)
    physical = not (check_checksum and not multi)
    try:  # wfdb parses the header once here (plain records: _read_format16); only a failed read parses it again, to say what is wrong
        rec = (None if physical else _read_format16(path)) or wfdb.rdrecord(path, physical=physical, m2s=True)
    except Exception as exc:
        try:
            header = wfdb.rdheader(path)
        except Exception as header_exc:  # wfdb raises many types on a malformed header
            raise HsickitError(f"record {name}: cannot parse header {path}.hea ({header_exc}); fix or re-copy the header") from header_exc
        if not isinstance(header, wfdb.MultiRecord):
            _check_files(path, header)
        raise HsickitError(
            f"record {name}: wfdb could not read the signals ({type(exc).__name__}: {exc}); "
            "the header probably disagrees with the signal file(s): check them against each other"
        ) from exc
    if not multi:
        _check_files(path, rec)  # a signal file longer than the header says is read without complaint
    repairs: list[str] = []
    if not multi and check_checksum:
        if rec.checksum is not None and rec.d_signal is not None:
            actual = rec.calc_checksum()
            bad = [rec.sig_name[i] for i, (a, b) in enumerate(zip(actual, rec.checksum)) if (int(a) - int(b)) % 65536]
            if bad:
                raise HsickitError(
                    f"record {name}: the header disagrees with the data: checksum mismatch on lead(s) "
                    f"{', '.join(bad)}; the signal file is corrupt or belongs to another header "
                    "(re-copy it, or pass check_checksum=False to read anyway)"
                )
        signal = rec.dac(return_res=64)
    else:
        signal = rec.p_signal
    signal = np.asarray(signal, dtype=np.float64).T.copy()  # (lead, time)
    names = [str(n) for n in rec.sig_name]
    units = [u or "mV" for u in (rec.units or ["mV"] * len(names))]
    fs = float(rec.fs)

    if leads is not None:
        lower = [n.lower() for n in names]
        idx = []
        for lead in leads:
            if lead.lower() not in lower:
                raise HsickitError(f"record {name}: lead {lead!r} not found (leads: {', '.join(names)}); pick one of those")
            idx.append(lower.index(lead.lower()))
        signal, names, units = signal[idx], [names[i] for i in idx], [units[i] for i in idx]

    keep, spans = [], []
    width = int(round(min_flat * fs))
    # every lead's flat stretches at once, unless NaN runs are filled below first (the same values as lead by lead)
    stretches = None if np.isnan(signal).any() else _flat_stretches(signal, width, flat_threshold)
    for i, lead in enumerate(names):
        x = signal[i]
        gone = np.zeros(x.size, dtype=bool)
        if np.isnan(x).any():
            if nan_policy == "raise":
                n_nan = int(np.isnan(x).sum())
                raise HsickitError(
                    f"record {name}, lead {lead}: {n_nan} missing samples (NaN); pass nan_policy='interpolate' "
                    f"to fill runs up to {max_gap} s, or select other leads"
                )
            longest = _fill_nan_runs(x, int(round(max_gap * fs)))
            gone = np.isnan(x)
            if gone.all():
                raise HsickitError(f"record {name}, lead {lead}: every sample is missing (NaN); select other leads")
            if gone.any():
                if dropouts == "raise":
                    raise HsickitError(
                        f"record {name}, lead {lead}: a run of {longest / fs:.2f} s of missing samples is longer than "
                        f"max_gap={max_gap} s; pass dropouts='mask' to leave out the beats in it, select other "
                        "leads, or raise max_gap"
                    )
                x[gone] = np.interp(np.flatnonzero(gone), np.flatnonzero(~gone), x[~gone])
            repairs.append(f"lead {lead}: interpolated NaN runs up to {max_gap} s (longest {longest / fs:.3f} s)")
        ptp = float(np.ptp(x)) if x.size else 0.0
        if ptp < flat_threshold:
            if flat_policy == "raise":
                raise HsickitError(
                    f"record {name}, lead {lead}: flat lead (peak-to-peak {ptp:.2g} {units[i]}); the electrode was "
                    "probably off: select other leads, or pass flat_policy='drop' (or 'keep')"
                )
            if flat_policy == "drop":
                repairs.append(f"lead {lead}: dropped, flat (peak-to-peak {ptp:.2g})")
                continue
            repairs.append(f"lead {lead}: flat (peak-to-peak {ptp:.2g}), kept")
        else:
            flat = _flat_stretches(x, width, flat_threshold) if stretches is None else stretches[i]
            if flat.any() and dropouts == "raise":
                start, end = _runs(flat)[0]
                raise HsickitError(
                    f"record {name}, lead {lead}: flat from {start / fs:.1f} s to {end / fs:.1f} s (the electrode "
                    f"was off or the signal saturated); pass dropouts='mask' to leave out the beats in it, "
                    "or select other leads"
                )
            gone |= flat
        for start, end in _runs(gone):
            spans.append((lead, round(start / fs, 3), round(end / fs, 3)))
            repairs.append(f"lead {lead}: dropout from {start / fs:.1f} s to {end / fs:.1f} s masked")
        keep.append(i)
    if not keep:
        raise HsickitError(f"record {name}: every lead was dropped as flat; the record has no usable signal")
    signal = signal[keep].astype(np.float32)
    return signal, {
        "lead": [names[i] for i in keep],
        "units": [units[i] for i in keep],
        "fs": fs,
        "record": name,
        "source": os.path.abspath(path),
        "provenance": f"wfdb {wfdb.__version__} rdrecord({path!r})",
        "comments": "\n".join(rec.comments or []),
        "repairs": repairs,
        "dropouts": spans,
    }


def read_records(
    directory: str | os.PathLike,
    records: Sequence[str | int] | str | None = None,
    **kwargs,
) -> xr.DataArray:
    """Read records of equal length and sampling rate into a ``(record, lead, time)`` DataArray.

    Made for 10-s 12-lead sets (LUDB, CinC 2021). ``kwargs`` go to :func:`read_record`;
    pass ``leads=`` so that every record has the same leads. Repairs are in
    ``attrs["repairs"]`` as ``"record: repair"`` strings.
    """
    names = list_records(directory, records)
    arrays = [read_record(record_path(directory, r), **kwargs) for r in names]
    first = arrays[0]
    for da in arrays[1:]:
        if da.shape != first.shape or da.attrs["fs"] != first.attrs["fs"] or list(da.lead.values) != list(first.lead.values):
            raise HsickitError(
                f"record {da.attrs['record']} ({da.sizes['lead']} leads {list(da.lead.values)}, {da.sizes['time']} samples "
                f"at {da.attrs['fs']} Hz) does not match record {first.attrs['record']} ({first.sizes['lead']} leads, "
                f"{first.sizes['time']} samples at {first.attrs['fs']} Hz); pass leads=... and crop or resample first"
            )
    out = xr.concat([da.drop_vars("units") for da in arrays], dim=xr.DataArray(names, dims="record", name="record"))
    out = out.assign_coords(units=("lead", list(first.units.values)))
    out.attrs = {
        "fs": first.attrs["fs"],
        "source": os.path.abspath(directory),
        "provenance": first.attrs["provenance"].split(" rdrecord")[0] + " rdrecord",
        "repairs": [f"{da.attrs['record']}: {r}" for da in arrays for r in da.attrs["repairs"]],
    }
    out.name = "ecg"
    return out


def read_beat_table(
    path: str | os.PathLike,
    extension: str = "atr",
    *,
    unknown: str = "raise",
) -> pd.DataFrame:
    """Read a WFDB beat annotation file into a beat table (one row per beat).

    Columns: ``record``, ``sample`` (int), ``time`` (s), ``symbol`` (MIT-BIH code),
    ``aami`` (N, S, V, F or Q), ``rhythm`` (the last rhythm label, e.g. ``"(AFIB"``).
    Non-beat annotations (rhythm changes, noise, waves) are not beats and are counted in
    ``attrs["n_non_beat"]``. An annotation code that is neither a beat code nor a known
    non-beat code raises :class:`HsickitError` (naming the record, sample and code), or
    with ``unknown="skip"`` is skipped and listed in ``attrs["skipped"]``.
    """
    path = str(path)
    name = _name(path)
    if unknown not in ("raise", "skip"):
        raise HsickitError(f"unknown={unknown!r}; use 'raise' or 'skip'")
    if not Path(f"{path}.{extension}").exists():
        raise HsickitError(
            f"record {name}: annotation file {path}.{extension} not found; training and scoring need reference beat "
            "labels (MIT-BIH: 'atr'): copy the annotation file beside the record, or leave the record out "
            "(--records-list); 'hsickit ecg predict' labels unannotated records"
        )
    try:
        ann = wfdb.rdann(path, extension)
    except Exception as exc:
        raise HsickitError(f"record {name}: cannot read {path}.{extension} ({exc}); re-copy the annotation file") from exc
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = list(ann.symbol)
    aux = list(ann.aux_note) if ann.aux_note is not None else [""] * len(symbols)
    rows, skipped, n_non_beat, rhythm = [], [], 0, ""
    for s, sym, note in zip(samples, symbols, aux):
        if sym == "+" and note:
            rhythm = note.strip("\x00").strip()
        if sym in AAMI_MAP:
            rows.append((name, int(s), sym, AAMI_MAP[sym], rhythm))
        elif sym in NON_BEAT_SYMBOLS:
            n_non_beat += 1
        elif unknown == "raise":
            raise HsickitError(
                f"record {name}: unknown annotation code {sym!r} at sample {int(s)} in {path}.{extension}; "
                "it is neither an MIT-BIH beat code nor a known non-beat code: fix the file, or pass "
                "unknown='skip' to skip (and report) such annotations"
            )
        else:
            skipped.append(f"{name}: sample {int(s)} code {sym!r}")
    table = pd.DataFrame(rows, columns=["record", "sample", "symbol", "aami", "rhythm"])
    table.insert(2, "time", table["sample"] / float(ann.fs) if ann.fs else np.nan)
    table.attrs = {"fs": float(ann.fs) if ann.fs else None, "n_non_beat": n_non_beat, "skipped": skipped}
    return table


def beat_windows(
    signal: xr.DataArray,
    samples: Iterable[int],
    *,
    before: float = 0.25,
    after: float = 0.45,
) -> xr.DataArray:
    """Cut a window around each beat: ``(lead, time)`` -> ``(beat, lead, time)``.

    ``before``/``after`` are seconds around the fiducial ``samples`` (R peaks). Windows
    that reach past either end of the record are padded with the edge value; the count
    is in ``attrs["n_padded"]``. Time coordinates are relative to the R peak.

    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((1, 1000), "float32"), dims=("lead", "time"), attrs={"fs": 100.0})
    >>> beat_windows(da, [10, 500], before=0.2, after=0.3).shape
    (2, 1, 50)
    """
    fs = float(signal.attrs["fs"])
    b, a = int(round(before * fs)), int(round(after * fs))
    samples = np.asarray(list(samples), dtype=np.int64)
    x = np.asarray(signal.values)
    n = x.shape[-1]
    padded = np.pad(x, ((0, 0), (b, a)), mode="edge")
    idx = samples[:, None] + np.arange(-b, a)[None, :] + b  # (beat, time) in padded coords
    idx = np.clip(idx, 0, padded.shape[1] - 1)
    out = padded[:, idx].transpose(1, 0, 2)  # (beat, lead, time)
    n_padded = int(((samples - b) < 0).sum() + ((samples + a) > n).sum())
    return xr.DataArray(
        out,
        dims=("beat", "lead", "time"),
        coords={"lead": signal.coords["lead"].values if "lead" in signal.coords else np.arange(x.shape[0]),
                "time": np.arange(-b, a) / fs, "sample": ("beat", samples)},
        name="beats",
        attrs={**{k: v for k, v in signal.attrs.items() if k != "repairs"}, "n_padded": n_padded,
               "repairs": list(signal.attrs.get("repairs", []))},
    )
