"""Time every Python example of README.md as written, and the import time of every command's ``--help``.

Each ```python block runs as written in a fresh ``python`` process, in a new empty folder that has
``../shared`` linked to the project's ``../shared`` (so the README's data paths resolve as they do from
the project's root); wall and CPU time (user + system of the process) are recorded against the
README's target of about 2 minutes per example. ``--baseline REV`` runs the examples of README.md at
another commit the same way, side by side (against this tree's code; ``--timeout`` stops one that
runs too long, recorded as such).

Every command's ``--help`` (``hsickit --help``, each application's, each sub-command's) runs in a
fresh ``python -X importtime`` process (``benchmarks/startup.py``'s measurement): Python's import time,
CPU time and which heavy libraries it imported, against the target of under a second of imports.

    nice -n 15 python benchmarks/readme_examples.py --threads 1 --out benchmarks/results/readme_examples.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import startup  # noqa: E402  (benchmarks/startup.py: one fresh -X importtime process per command)

TARGET_SECONDS = 120.0
IMPORT_TARGET_SECONDS = 1.0
APPS = ("ecg", "materials", "plants")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block of a Markdown text."""
    blocks, start, lines = [], None, text.splitlines()
    for i, line in enumerate(lines, 1):
        if start is None and line.strip() == "```python":
            start, body = i + 1, []
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(body) + "\n"))
            start = None
        elif start is not None:
            body.append(line)
    return blocks


def title(code: str) -> str:
    """A block's name: its first hsickit import."""
    found = re.search(r"^from (hsickit\.\S+) import (\w+)", code, re.M)
    return f"{found.group(1)}.{found.group(2)}" if found else code.strip().splitlines()[0][:60]


def run_example(code: str, threads: int, timeout: float) -> dict:
    """Run one block as written in a fresh process and folder; wall and CPU seconds, exit code, output tail."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "project"
        home.mkdir()
        shared = ROOT.parent / "shared"
        if shared.exists():
            (Path(tmp) / "shared").symlink_to(shared)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), HSICKIT_THREADS=str(threads), MPLBACKEND="Agg")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", code], cwd=home, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            rc, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = None, exc.stdout or "", exc.stderr or ""
            out, err = (o.decode() if isinstance(o, bytes) else o for o in (out, err))
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_seconds": round(wall, 2),
            "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            "exit_code": rc, "timed_out": rc is None, "stdout_tail": out[-1500:], "stderr_tail": err[-1500:] if rc else "",
            "within_target": rc == 0 and wall <= TARGET_SECONDS}


def commands() -> list[list[str]]:
    """``--help`` of the command, of each application and of each of their sub-commands."""
    import importlib

    found = [["--help"]]
    for name in APPS:
        app = importlib.import_module(f"hsickit.apps.{name}.cli").app
        found.append([name, "--help"])
        found += [[name, c.name or c.callback.__name__.replace("_", "-"), "--help"] for c in app.registered_commands]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS / HSICKIT_THREADS of each example")
    ap.add_argument("--baseline", default=None, help="also run README.md's examples at this commit (e.g. main)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before an example is stopped")
    ap.add_argument("--skip-examples", action="store_true", help="only the --help import times")
    ap.add_argument("--only", default=None, help="run only the examples whose name contains this, and replace their "
                                                 "rows in --out (the other rows are kept; each row has its own date)")
    ap.add_argument("--out", default="benchmarks/results/readme_examples.json")
    args = ap.parse_args()
    versions = [("this tree", (ROOT / "README.md").read_text())]
    if args.baseline:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.baseline}:README.md"], check=True,
                              capture_output=True, text=True).stdout
        versions.append((f"README.md at {args.baseline}", text))
    examples = []
    for version, text in ([] if args.skip_examples else versions):
        for line, code in python_blocks(text):
            if args.only and args.only not in title(code):
                continue
            row = {"readme": version, "line": line, "example": title(code),
                   "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                   "load_average_before": os.getloadavg()[0], **run_example(code, args.threads, args.timeout)}
            examples.append(row)
            print(f"{version}, line {line} ({row['example']}): {row['wall_seconds']:.1f} s wall, "
                  f"{row['cpu_seconds']:.1f} s CPU, exit {row['exit_code']}", flush=True)
    out = Path(args.out)
    if args.only:  # keep the other rows of the earlier run, and its --help figures
        earlier = json.loads(out.read_text())
        fresh = {(r["readme"], r["example"]) for r in examples}
        examples = [r for r in earlier["examples"] if (r["readme"], r["example"]) not in fresh] + examples
        earlier.update(examples=examples, updated_by=" ".join([Path(sys.executable).name] + sys.argv))
        out.write_text(json.dumps(earlier, indent=1) + "\n")
        print(f"written: {out}")
        return
    helps = []
    with tempfile.TemporaryDirectory() as tmp:
        home = startup.tree("current", "HEAD", Path(tmp))
        for cmd in commands():
            row = {"command": "hsickit " + " ".join(cmd), **startup.run(home, cmd)}
            row["import_within_target"] = row["import_seconds"] < IMPORT_TARGET_SECONDS
            helps.append(row)
            print(f"{row['command']}: imports {row['import_seconds']:.2f} s, CPU {row['cpu_seconds']:.2f} s, "
                  f"heavy: {', '.join(row['heavy_imported']) or 'none'}", flush=True)
    result = {"command": " ".join([Path(sys.executable).name] + sys.argv), "machine": platform.platform(),
              "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "threads": args.threads,
              "target_seconds_per_example": TARGET_SECONDS, "import_target_seconds": IMPORT_TARGET_SECONDS,
              "examples": examples, "help": helps}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
