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

``--baseline REV`` measures hsickit as it was at git revision ``REV`` (its tree extracted into a
temporary folder) in the same run, alternating with this tree's code ``--rounds`` times (each
measurement in a fresh process; the fastest round of each step is kept), and reports the
ratios and the largest difference between the two versions' probabilities.

    python benchmarks/ecg_predict_speed.py --jobs 2
    python benchmarks/ecg_predict_speed.py --jobs 2 --baseline main --out benchmarks/results/ecg_predict_speed_fast_read.json

Writes benchmarks/results/ecg_predict_speed.json (or ``--out``) and prints a table.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.ecg.records import load_record_run, load_record_set, train_records
from hsickit.core.files import read_json, write_json

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


def measure(run: str, data: str, jobs: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Each step timed for each detector, with the hsickit this process imports; and the probabilities."""
    import hsickit

    torch.set_num_threads(1)
    clf, config = load_record_run(run)
    rows, probas = {"hsickit": str(Path(hsickit.__file__).parent)}, {}
    for detector in ("gqrs", "pantompkins"):
        cfg = dataclasses.replace(config, detector=detector)
        row = {}
        for n_jobs in (1, jobs):
            rs, wall, cpu = timed(lambda: load_record_set(data, None, cfg, labels=clf.labels_, labelled=False,
                                                          n_jobs=n_jobs, verbose=0))
            row[f"read_{n_jobs}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "records_per_s": round(len(rs) / wall, 1)}
        clf.predict_proba(rs.subset(rs.records[:16]))  # the first call allocates what later calls reuse
        for threads in (1, jobs):
            torch.set_num_threads(threads)
            proba, wall, cpu = timed(lambda: clf.predict_proba(rs))
            row[f"networks_{threads}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "records_per_s": round(len(rs) / wall, 1)}
        torch.set_num_threads(1)
        row["n_records"] = len(rs)
        rows[detector], probas[detector] = row, proba
    return rows, probas


def measured(run: str, data: str, jobs: int, tree: Path | None, folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """:func:`measure` in a fresh process, importing hsickit from ``tree`` (a folder holding ``hsickit/``) or as this process does."""
    out = folder / "measured.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"PYTHONPATH": str(tree)} if tree is not None else {})}
    subprocess.run([sys.executable, __file__, "--run", run, "--data", data, "--jobs", str(jobs), "--measure-only", str(out)],
                   check=True, env=env)
    rows = read_json(out)
    with np.load(out.with_suffix(".npz")) as z:
        return rows, {k: z[k] for k in z.files}


def fastest(rounds: list[dict]) -> dict:
    """Per detector and step, the fastest of the rounds (wall-clock)."""
    best = dict(rounds[0])
    for det in ("gqrs", "pantompkins"):
        best[det] = {step: min((r[det][step] for r in rounds), key=lambda m: m["wall_s"]) if isinstance(value, dict) else value
                     for step, value in rounds[0][det].items()}
    return best


def summarise(row: dict, jobs: int, proba: np.ndarray) -> dict:
    n = row["n_records"]
    serial = row["read_1"]["wall_s"] + row["networks_1"]["wall_s"]
    parallel = row[f"read_{jobs}"]["wall_s"] + row[f"networks_{jobs}"]["wall_s"]
    return {**row, "serial_records_per_s": round(n / serial, 1), "parallel_records_per_s": round(n / parallel, 1),
            "speedup": round(serial / parallel, 2), "read_cpu_ms_per_record": round(1e3 * row["read_1"]["cpu_s"] / n, 2),
            "mean_probability": float(np.round(proba.mean(), 6))}


def print_table(title: str, rows: dict, jobs: int) -> None:
    print(title)
    print(f"{'detector':12s} {'read 1 proc':>12s} {f'read {jobs} procs':>13s} {'nets 1 thr':>11s} "
          f"{f'nets {jobs} thr':>11s} {'serial rec/s':>13s} {'parallel rec/s':>15s} {'speed-up':>9s}")
    for det in ("gqrs", "pantompkins"):
        r = rows[det]
        print(f"{det:12s} {r['read_1']['wall_s']:11.2f}s {r[f'read_{jobs}']['wall_s']:12.2f}s "
              f"{r['networks_1']['wall_s']:10.2f}s {r[f'networks_{jobs}']['wall_s']:10.2f}s "
              f"{r['serial_records_per_s']:13.1f} {r['parallel_records_per_s']:15.1f} {r['speedup']:8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "ptbxl-sample"))
    ap.add_argument("--run", default=None, help="a trained record run folder (default: train one into --cache)")
    ap.add_argument("--cache", default="runs/benchmark-ptbxl-superdiagnostic", help="where the trained run is kept (runs/ is not committed)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_predict_speed.json"))
    ap.add_argument("--baseline", default=None, help="a git revision whose hsickit is measured in the same run (e.g. main)")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: measurements of each version, alternating")
    ap.add_argument("--measure-only", default=None, help=argparse.SUPPRESS)  # a worker of measured(): writes JSON + NPZ there
    args = ap.parse_args()
    if args.measure_only:
        rows, probas = measure(args.run, args.data, args.jobs)
        write_json(args.measure_only, rows)
        np.savez(Path(args.measure_only).with_suffix(".npz"), **probas)
        return
    run = args.run
    if run is None:
        run = args.cache
        if not (Path(run) / "metrics.json").exists():
            train_records(args.data, run, labels="superdiagnostic", verbose=0, overwrite=True)
    run = os.path.abspath(run)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        baseline_tree = None
        if args.baseline:
            baseline_tree = tmp / "baseline"
            (baseline_tree / "hsickit").mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(ROOT.parent), "archive", args.baseline], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(baseline_tree / "hsickit")], input=archive, check=True)
        current, baseline = [], []
        for _ in range(args.rounds if args.baseline else 1):
            if args.baseline:
                baseline.append(measured(run, args.data, args.jobs, baseline_tree, tmp))
            current.append(measured(run, args.data, args.jobs, None, tmp))
    probas = current[-1][1]
    rows = fastest([r for r, _ in current])
    result_rows = {det: summarise(rows[det], args.jobs, probas[det]) for det in ("gqrs", "pantompkins")}
    start = startup_seconds(run)
    result = {"run": run, "data": os.path.abspath(args.data), "jobs": args.jobs, "cpus": os.cpu_count(),
              "hsickit": rows["hsickit"], "load_average_at_end": os.getloadavg()[0], "startup_s": round(start, 2),
              "detectors": result_rows, "machine": "CPU; records/s are wall-clock and depend on what else the machine runs"}
    if args.baseline:
        base_rows = fastest([r for r, _ in baseline])
        base = {det: summarise(base_rows[det], args.jobs, baseline[-1][1][det]) for det in ("gqrs", "pantompkins")}
        ratio = lambda a, b: round(a / b, 2)  # noqa: E731
        result["baseline"] = {"revision": args.baseline, "rounds": args.rounds, "detectors": base,
                              "read_1_cpu_ratio": {d: ratio(base[d]["read_1"]["cpu_s"], result_rows[d]["read_1"]["cpu_s"]) for d in base},
                              "read_1_wall_ratio": {d: ratio(base[d]["read_1"]["wall_s"], result_rows[d]["read_1"]["wall_s"]) for d in base},
                              "serial_ratio": {d: ratio(result_rows[d]["serial_records_per_s"], base[d]["serial_records_per_s"]) for d in base},
                              "parallel_ratio": {d: ratio(result_rows[d]["parallel_records_per_s"], base[d]["parallel_records_per_s"]) for d in base},
                              "max_abs_probability_difference": {d: float(np.abs(baseline[-1][1][d] - probas[d]).max()) for d in base}}
    write_json(args.out, result)
    print(f"start-up (imports, model): {start:.2f} s (load average {result['load_average_at_end']:.1f})")
    if args.baseline:
        print_table(f"baseline ({args.baseline}):", result["baseline"]["detectors"], args.jobs)
    print_table("this tree:" if args.baseline else "", result_rows, args.jobs)
    if args.baseline:
        b = result["baseline"]
        print(f"reading on 1 process, baseline / this tree: CPU {b['read_1_cpu_ratio']}, wall {b['read_1_wall_ratio']}; "
              f"records/s, this tree / baseline: serial {b['serial_ratio']}, parallel {b['parallel_ratio']}; "
              f"largest probability difference {b['max_abs_probability_difference']}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
