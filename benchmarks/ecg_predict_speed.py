"""How fast a trained PTB-XL record model diagnoses records: each step timed, one process against several.

``hsickit ecg predict RUN RECORDS`` reads every WFDB record, prepares its views (filter,
R-peaks, median beat, wavelet bands, RR) and runs the networks. This script times those steps
on the 859 records of ``ptbxl-sample`` with the model of a run folder (``--run``; without it, the
default superdiagnostic model is trained first into ``--cache``, about 2 CPU minutes), for
each R-peak detector (the run's record configuration with ``detector`` set to each):

- reading and preparing the records with 1 process (the baseline) and with ``--jobs``
  processes (:func:`hsickit.core.parallel.map_processes`); the ratio is the speed-up;
- the networks (``predict_proba``) with 1 torch thread and with ``--jobs`` threads;
- the start-up in a fresh process: the imports and loading the model, what the command does
  before its first record.

Records per second are wall-clock figures of this machine; on a machine shared with other jobs
several processes gain less. CPU seconds are given beside them.

    python benchmarks/ecg_predict_speed.py --jobs 2

Writes benchmarks/results/ecg_predict_speed.json and prints a table.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.ecg.records import load_record_run, load_record_set, train_records
from hsickit.core.files import write_json

ROOT = Path(__file__).resolve().parent


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    children = os.times()
    out = fn()
    after = os.times()
    child_cpu = (after.children_user + after.children_system) - (children.children_user + children.children_system)
    return out, time.perf_counter() - wall, time.process_time() - cpu + child_cpu


def startup_seconds(run: str) -> float:
    """A fresh process's imports and model loading: what ``hsickit ecg predict`` does before its first record."""
    wall = time.perf_counter()
    code = f"from hsickit.apps.ecg.records import load_record_run; load_record_run({run!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "ptbxl-sample"))
    ap.add_argument("--run", default=None, help="a trained record run folder (default: train one into --cache)")
    ap.add_argument("--cache", default="runs/benchmark-ptbxl-superdiagnostic", help="where the trained run is kept (runs/ is not committed)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_predict_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = args.run
    if run is None:
        run = args.cache
        if not (Path(run) / "metrics.json").exists():
            train_records(args.data, run, labels="superdiagnostic", verbose=0, overwrite=True)
    clf, config = load_record_run(run)
    rows = {}
    for detector in ("gqrs", "pantompkins"):
        cfg = dataclasses.replace(config, detector=detector)
        row = {}
        for jobs in (1, args.jobs):
            rs, wall, cpu = timed(lambda: load_record_set(args.data, None, cfg, labels=clf.labels_, labelled=False,
                                                          n_jobs=jobs, verbose=0))
            row[f"read_{jobs}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "records_per_s": round(len(rs) / wall, 1)}
        clf.predict_proba(rs.subset(rs.records[:16]))  # the first call allocates what later calls reuse
        for threads in (1, args.jobs):
            torch.set_num_threads(threads)
            proba, wall, cpu = timed(lambda: clf.predict_proba(rs))
            row[f"networks_{threads}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "records_per_s": round(len(rs) / wall, 1)}
        torch.set_num_threads(1)
        serial = row["read_1"]["wall_s"] + row["networks_1"]["wall_s"]
        parallel = row[f"read_{args.jobs}"]["wall_s"] + row[f"networks_{args.jobs}"]["wall_s"]
        row.update(n_records=len(rs), serial_records_per_s=round(len(rs) / serial, 1),
                   parallel_records_per_s=round(len(rs) / parallel, 1), speedup=round(serial / parallel, 2),
                   mean_probability=float(np.round(proba.mean(), 6)))
        rows[detector] = row
    start = startup_seconds(run)
    result = {"run": os.path.abspath(run), "data": os.path.abspath(args.data), "jobs": args.jobs, "cpus": os.cpu_count(),
              "load_average_at_end": os.getloadavg()[0], "startup_s": round(start, 2), "detectors": rows,
              "machine": "CPU; records/s are wall-clock and depend on what else the machine runs"}
    write_json(args.out, result)
    print(f"start-up (imports, model): {start:.2f} s (load average {result['load_average_at_end']:.1f})")
    print(f"{'detector':12s} {'read 1 proc':>12s} {f'read {args.jobs} procs':>13s} {'nets 1 thr':>11s} "
          f"{f'nets {args.jobs} thr':>11s} {'serial rec/s':>13s} {'parallel rec/s':>15s} {'speed-up':>9s}")
    for det, r in rows.items():
        print(f"{det:12s} {r['read_1']['wall_s']:11.2f}s {r[f'read_{args.jobs}']['wall_s']:12.2f}s "
              f"{r['networks_1']['wall_s']:10.2f}s {r[f'networks_{args.jobs}']['wall_s']:10.2f}s "
              f"{r['serial_records_per_s']:13.1f} {r['parallel_records_per_s']:15.1f} {r['speedup']:8.2f}x")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
