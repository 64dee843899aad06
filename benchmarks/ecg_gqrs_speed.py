"""gqrs R-peak detection: hsickit's (filters by NumPy) against wfdb's own code, side by side on the same leads.

Both run on every lead as the apps prepare it (band-passed 0.5-40 Hz, at the rate the model
reads): MIT-BIH DS1 and SVDB at the beat model's 360 Hz (30-min records; SVDB resampled from
128 Hz), PTB-XL lead II at 100 Hz and LUDB lead II at 500 Hz (10-s records, as the record model
reads them). Reported per data set: CPU seconds of each, their ratio, and whether every lead gave
the same peaks (it must: :mod:`hsickit.apps.ecg.gqrs` changes how the filters are computed,
not what they compute).

    python benchmarks/ecg_gqrs_speed.py                    # about 6 CPU minutes, wfdb's code most of it
    python benchmarks/ecg_gqrs_speed.py --records 5        # the first 5 records of each set

Writes benchmarks/results/ecg_gqrs_speed.json and prints a table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import wfdb
from wfdb.processing import gqrs_detect as wfdb_gqrs

from hsickit.apps.ecg.gqrs import gqrs_detect
from hsickit.apps.ecg.records import record_source
from hsickit.apps.ecg.signal import bandpass, resample
from hsickit.core.io import markdown_table, write_json
from hsickit.datasets.ecg import find_records

ROOT = Path(__file__).resolve().parent
#: data set -> (lead read, the rate the model reads it at)
SETS = {"mitdb-ds1": (0, 360.0), "svdb": (0, 360.0), "ptbxl-sample": (1, 100.0), "ludb-dev": (1, 500.0)}


def leads(folder: Path, lead: int, rate: float, limit: int | None):
    paths = record_source(folder)[1] if (folder / "ptbxl_database.csv").exists() else list(find_records(folder).values())
    for path in paths[:limit]:
        record = wfdb.rdrecord(path, channels=[lead])
        x = np.nan_to_num(record.p_signal[:, 0]).astype(np.float32)
        x = resample(x, float(record.fs), rate) if record.fs != rate else x
        yield bandpass(x, rate).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg"))
    ap.add_argument("--records", type=int, default=None, help="the first N records of each set (default: all)")
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_gqrs_speed.json"))
    args = ap.parse_args()
    rows = []
    for name, (lead, rate) in SETS.items():
        folder = Path(args.data) / name
        if not folder.exists():
            continue
        cpu, same, n, peaks = {"wfdb": 0.0, "hsickit": 0.0}, 0, 0, 0
        for x in leads(folder, lead, rate, args.records):
            t0 = time.process_time()
            theirs = wfdb_gqrs(sig=x, fs=rate)
            t1 = time.process_time()
            ours = gqrs_detect(x, rate)
            t2 = time.process_time()
            cpu["wfdb"] += t1 - t0
            cpu["hsickit"] += t2 - t1
            same += int(np.array_equal(theirs, ours))
            n, peaks = n + 1, peaks + len(theirs)
        rows.append({"data": name, "rate_hz": rate, "leads": n, "peaks": peaks, "same_peaks": f"{same}/{n}",
                     "wfdb_cpu_s": round(cpu["wfdb"], 2), "hsickit_cpu_s": round(cpu["hsickit"], 2),
                     "speedup": round(cpu["wfdb"] / max(cpu["hsickit"], 1e-9), 2)})
        print(markdown_table(rows[-1:]), flush=True)
    write_json(args.out, {"machine": "2-core CPU shared with other jobs; CPU seconds of one process", "rows": rows})
    print("\n" + markdown_table(rows))


if __name__ == "__main__":
    main()
