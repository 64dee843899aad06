"""Start-up of the command: ``hsickit --help``, each app's ``--help`` and ``hsickit info``, this
tree against a baseline commit, side by side.

Each command runs in a fresh ``python -X importtime`` process (``hsickit.core.cli.main`` with the
command's arguments), once per version per repeat, the versions interleaved. Reported: the import
time Python measured (sum over top-level imports), the process's CPU time (user + system, which
load on a shared machine changes less than wall time), its wall time, and which heavy libraries it
imported. The baseline is ``git archive BASELINE`` unpacked as a package named ``hsickit`` placed
first on PYTHONPATH; the current tree is this checkout, placed the same way.

    nice -n 15 python benchmarks/startup.py --baseline caa8600 --out benchmarks/results/startup.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["ecg", "--help"], ["materials", "--help"], ["plants", "--help"], ["ecg", "train", "--help"],
            ["info"]]
HEAVY = ("torch", "pymatgen", "matplotlib", "sklearn", "pandas", "scipy", "numpy")
MAIN = "import sys; from hsickit.core.cli import main; sys.argv = ['hsickit'] + sys.argv[1:]; main()"


def tree(kind: str, rev: str, tmp: Path) -> Path:
    """A folder holding a package ``hsickit``: the baseline commit's files, or this checkout."""
    home = tmp / kind
    (home / "hsickit").parent.mkdir(parents=True)
    if kind == "baseline":
        (home / "hsickit").mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(home / "hsickit")], input=archive, check=True)
    else:
        (home / "hsickit").symlink_to(ROOT)
    return home


def run(home: Path, args: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(home), HSICKIT_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", MAIN, *args], cwd=home, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0,):
        raise SystemExit(f"hsickit {' '.join(args)} failed in {home}: {done.stderr[-2000:]}")
    total, imported = 0, set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if not name.startswith("  "):  # top level: its cumulative time counts once
            total += int(parts[1])
        imported.add(name.strip().split(".")[0])
    return {"import_seconds": total / 1e6, "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "wall_seconds": wall, "heavy_imported": sorted(imported & set(HEAVY))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="caa8600", help="commit to compare with (default: before issue 27's work)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/startup.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        homes = {kind: tree(kind, args.baseline, Path(tmp)) for kind in ("baseline", "current")}
        for kind, home in homes.items():  # both really import their own tree
            where = subprocess.run([sys.executable, "-c", "import hsickit.core.cli as c; print(c.__file__)"], cwd=home,
                                   env={**os.environ, "PYTHONPATH": str(home)}, capture_output=True, text=True).stdout
            assert where.startswith(str(home)), (kind, where)
        for r in range(args.repeats):
            for command in COMMANDS:
                for kind, home in homes.items():
                    row = {"version": kind, "command": "hsickit " + " ".join(command), "repeat": r,
                           "load_average": os.getloadavg()[0], **run(home, command)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = []
    for command in COMMANDS:
        name = "hsickit " + " ".join(command)
        entry = {"command": name}
        for kind in ("baseline", "current"):
            mine = [x for x in rows if x["command"] == name and x["version"] == kind]
            for key in ("import_seconds", "cpu_seconds", "wall_seconds"):
                entry[f"{kind}_{key}"] = statistics.median(x[key] for x in mine)
            entry[f"{kind}_heavy_imported"] = mine[0]["heavy_imported"]
        entry["cpu_ratio"] = entry["current_cpu_seconds"] / entry["baseline_cpu_seconds"]
        summary.append(entry)
    result = {"benchmark": "hsickit start-up: --help of every app and info, baseline vs current",
              "baseline": subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.baseline], capture_output=True,
                                         text=True).stdout.strip(),
              "current": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                        text=True).stdout.strip() + " (+ uncommitted changes, if any)",
              "how": "python -X importtime -c 'hsickit.core.cli.main()' ARGS, fresh process, HSICKIT_THREADS=1; "
                     "import_seconds: sum of top-level cumulative import times; cpu_seconds: user+system of the process",
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
              "summary": summary, "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{'command':32s} {'import s (base -> now)':>24s} {'CPU s (base -> now)':>22s}  heavy imports now")
    for e in summary:
        print(f"{e['command']:32s} {e['baseline_import_seconds']:10.2f} -> {e['current_import_seconds']:5.2f}     "
              f"{e['baseline_cpu_seconds']:8.2f} -> {e['current_cpu_seconds']:5.2f}   {','.join(e['current_heavy_imported']) or '-'}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
