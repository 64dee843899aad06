"""R-peak detection: the vectorised Pan-Tompkins detector against wfdb's gqrs, side by side, on annotated beats.

:func:`hsickit.apps.ecg.signal.detect_rpeaks` finds the beats of records without beat
annotations (every record of the record-level model, PTB-XL included). This script scores
each method against the reference beat annotations (every annotated beat of the AAMI classes;
a detection within 150 ms of one is a true positive, ANSI/AAMI EC57's window, counted with
:func:`wfdb.processing.compare_annotations`): sensitivity and positive predictivity per record
and pooled, and CPU seconds. Every signal is prepared as the apps prepare it: band-passed
0.5-40 Hz (:func:`~hsickit.apps.ecg.signal.bandpass`), and, at 100 Hz, first resampled to
PTB-XL's rate (:func:`~hsickit.apps.ecg.signal.resample`).

Data (``--data``, default ``../shared/data/ecg``):

- ``mitdb-ds1`` (22 records, 30 min, lead MLII) at 360 Hz and resampled to 100 Hz. The
  Pan-Tompkins settings were chosen on DS1 at 100 Hz (about 20 variants of the threshold
  fraction and percentile, the P/T-wave rule and the band-pass tried), and detection at 100 Hz
  for every rate on DS1 at 360 Hz: DS1 is where they were chosen, not a held-out figure;
- ``svdb`` (78 other patients, 30 min, first lead) at its own 128 Hz and at 100 Hz: nothing was
  chosen on it;
- ``ludb-dev`` (40 records, 10 s, lead II, 500 Hz and 100 Hz; 10-s 12-lead records like
  PTB-XL's): the QRS peaks of lead II's delineation; LUDB leaves the first and last beat
  unannotated, so detections outside the annotated stretch (first QRS onset to last QRS
  offset, widened by 150 ms) are not counted.

Also the CPU time of each method on lead II of the 859 records of ``ptbxl-sample`` (no beat
annotations: the share of gqrs's beats the fast detector finds within 150 ms is reported).

    python benchmarks/ecg_rpeaks.py        # about 5 minutes of CPU (gqrs takes nearly all of it)

Writes benchmarks/results/ecg_rpeaks.json and prints a table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import wfdb
from wfdb import processing

from hsickit.apps.ecg.signal import bandpass, detect_rpeaks, resample
from hsickit.core.io import markdown_table, write_json
from hsickit.datasets.ecg import AAMI_MAP, list_records

ROOT = Path(__file__).resolve().parent
METHODS = ("gqrs", "pantompkins")
WINDOW = 0.15  # s, EC57's matching window


def _prepare(x: np.ndarray, fs: float, rate: float) -> np.ndarray:
    x = resample(x, fs, rate) if rate != fs else np.asarray(x, np.float32)
    return bandpass(x, rate).astype(np.float64)


def _beats_mitdb(path: str) -> tuple[np.ndarray, float, np.ndarray, tuple[float, float] | None]:
    rec = wfdb.rdrecord(path, channels=[0])
    ann = wfdb.rdann(path, "atr")
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in AAMI_MAP], dtype=float)
    return rec.p_signal[:, 0], float(rec.fs), ref, None


def beats_ludb(path: str) -> tuple[np.ndarray, float, np.ndarray, tuple[float, float] | None]:
    rec = wfdb.rdrecord(path, channel_names=["ii"])
    ann = wfdb.rdann(path, "ii")
    sym, smp = list(ann.symbol), np.asarray(ann.sample)
    ref = np.array([smp[i] for i, s in enumerate(sym) if s == "N"], dtype=float)
    onsets = [smp[i - 1] for i, s in enumerate(sym) if s == "N" and i > 0 and sym[i - 1] == "("]
    offsets = [smp[i + 1] for i, s in enumerate(sym) if s == "N" and i + 1 < len(sym) and sym[i + 1] == ")"]
    fs = float(rec.fs)
    span = (min(onsets, default=ref.min()) / fs - WINDOW, max(offsets, default=ref.max()) / fs + WINDOW)
    return rec.p_signal[:, 0], fs, ref, span


def score(folder: Path, reader, rates, label: str) -> tuple[list[dict], list[dict]]:
    """Per record and pooled detection figures of every method at every rate."""
    per_record, pooled = [], []
    for rate in rates:
        totals = {m: [0, 0, 0, 0.0] for m in METHODS}
        for r in list_records(folder):
            x, fs, ref, span = reader(str(folder / r))
            target = fs if rate is None else float(rate)
            xs = _prepare(x, fs, target)
            ref_t = np.round(ref * target / fs).astype(int)
            row = {"data": label, "rate": target, "record": r, "beats": int(ref_t.size)}
            for m in METHODS:
                t0 = time.process_time()
                found = detect_rpeaks(xs, target, method=m)
                cpu = time.process_time() - t0
                if span is not None:
                    found = found[(found >= span[0] * target) & (found <= span[1] * target)]
                c = processing.compare_annotations(ref_t, found, int(WINDOW * target))
                c.compare()
                tot = totals[m]
                tot[0] += c.tp; tot[1] += c.fp; tot[2] += c.fn; tot[3] += cpu  # noqa: E702
                row.update({f"{m}_se": round(c.tp / max(c.tp + c.fn, 1), 4), f"{m}_ppv": round(c.tp / max(c.tp + c.fp, 1), 4),
                            f"{m}_fp": int(c.fp), f"{m}_fn": int(c.fn)})
            per_record.append(row)
        for m, (tp, fp, fn, cpu) in totals.items():
            pooled.append({"data": label, "rate": per_record[-1]["rate"], "method": m, "sensitivity": round(tp / (tp + fn), 4),
                           "ppv": round(tp / (tp + fp), 4), "tp": tp, "fp": fp, "fn": fn, "cpu_s": round(cpu, 2)})
            print(markdown_table(pooled[-1:]), flush=True)
    return per_record, pooled


def ptbxl_timing(folder: Path) -> dict:
    """CPU seconds of each method on lead II of every record of the PTB-XL sample, and their agreement."""
    from hsickit.apps.ecg.records import RecordConfig, record_source
    from hsickit.apps.ecg.signal import conform
    from hsickit.datasets.ecg import read_record

    names, paths = record_source(folder)
    cpu = dict.fromkeys(METHODS, 0.0)
    found = dict.fromkeys(METHODS, 0)
    matched = 0
    for p in paths:
        sig = conform(read_record(p, flat_policy="keep", nan_policy="interpolate"), 100.0, leads=RecordConfig.leads)
        x = sig.values[1].astype(np.float64)  # lead II, as the record model detects
        peaks = {}
        for m in METHODS:
            t0 = time.process_time()
            peaks[m] = detect_rpeaks(x, 100.0, method=m)
            cpu[m] += time.process_time() - t0
            found[m] += peaks[m].size
        g, f = peaks["gqrs"], peaks["pantompkins"]
        if g.size and f.size:
            matched += int((np.abs(g[:, None] - f[None, :]).min(1) <= WINDOW * 100).sum())
    return {"records": len(paths), "cpu_s": {m: round(v, 3) for m, v in cpu.items()},
            "records_per_cpu_s": {m: round(len(paths) / v, 1) for m, v in cpu.items()},
            "peaks": found, "gqrs_peaks_matched_by_pantompkins": round(matched / max(found["gqrs"], 1), 4),
            "speedup": round(cpu["gqrs"] / cpu["pantompkins"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg"))
    ap.add_argument("--skip", nargs="*", default=[], choices=("mitdb-ds1", "svdb", "ludb-dev", "ptbxl-sample"))
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_rpeaks.json"))
    args = ap.parse_args()
    data = Path(args.data)
    per_record, pooled, out = [], [], {"window_s": WINDOW, "methods": list(METHODS), "machine": "shared 2-core CPU, 1 thread"}
    for label, reader, rates in (("mitdb-ds1", _beats_mitdb, (None, 100)), ("svdb", _beats_mitdb, (None, 100)),
                                 ("ludb-dev", beats_ludb, (None, 100))):
        if label in args.skip or not (data / label).exists():
            continue
        rows, pool = score(data / label, reader, rates, label)
        per_record += rows
        pooled += pool
    if "ptbxl-sample" not in args.skip and (data / "ptbxl-sample").exists():
        out["ptbxl_sample_lead_ii_100hz"] = ptbxl_timing(data / "ptbxl-sample")
        print(out["ptbxl_sample_lead_ii_100hz"], flush=True)
    out.update(pooled=pooled, per_record=per_record)
    write_json(args.out, out)
    print("\n" + markdown_table(pooled))


if __name__ == "__main__":
    main()
