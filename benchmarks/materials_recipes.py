"""IRNet training recipes side by side: the modern one (AdamW, batch 256, warm-up + cosine,
early stopping; hsickit's default) against the IRNet paper's (Adam, lr 1e-4, batch 32), on Matbench
training folds only.

For each task, the training part of official fold ``--fold`` is split once more: ``--inner-test``
rows (a fraction, or a number of rows) are held out and scored, the rest (at most ``--train-rows``)
is what each recipe trains on (it carves its own 10 % early-stopping split from it). The official
test fold is never read, so this comparison may choose the default recipe. Reported per (task,
recipe): inner-test MAE, wall time of the fit, epochs run, best epoch, seconds per epoch.
Extra trees (hsickit's small-table default) on the same rows as a reference.

    python benchmarks/materials_recipes.py --tasks expt_gap mp_e_form --train-rows 4000 \\
        --paper-time-limit 600 --features-cache /tmp/matbench-features

``--paper-time-limit`` stops a paper-recipe fit after the epoch that passes it (its 500 epochs of
batch 32 take hours on a CPU); the JSON says whether it stopped so. Resumable like
materials_learning_curve.py: finished cells are kept in the JSON and skipped by a rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "materials_recipes.json"
SIGNATURE = ("fold", "inner_test", "train_rows", "seed", "model")


def inner_split(train_idx, inner_test, train_rows, seed):
    """(inner training rows, inner test rows) of an official fold's training part: `inner_test`
    (a fraction < 1 or a number of rows) held out, at most `train_rows` of the rest (0: all)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(train_idx))
    n_test = int(round(inner_test * len(order))) if inner_test < 1 else int(inner_test)
    test, rest = order[:n_test], order[n_test:]
    if train_rows:
        rest = rest[:train_rows]
    return np.sort(rest), np.sort(test)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition")
    p.add_argument("--tasks", nargs="+", default=["expt_gap", "mp_e_form"])
    p.add_argument("--model", default="irnet17")
    p.add_argument("--recipes", nargs="+", default=["modern", "paper"], choices=["modern", "paper"])
    p.add_argument("--reference", nargs="*", default=["extra_trees"], choices=["extra_trees", "rf"])
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--inner-test", type=float, default=0.2, help="Held-out share (< 1) or rows of the training part.")
    p.add_argument("--train-rows", type=int, default=4000, help="At most this many inner training rows (0: all).")
    p.add_argument("--paper-time-limit", type=float, default=None, help="Seconds per paper-recipe fit.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--features-cache", type=Path, default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hsickit.core.files import write_json
    from hsickit.core.report import markdown_table
    from hsickit.datasets.materials import matbench_folds

    import materials_learning_curve as lc  # beside this script
    import materials_matbench as mb
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["machine"] = f"cpu, {torch.get_num_threads()} torch thread(s)"
    results = lc.load_results(args.out, settings, signature=SIGNATURE)
    results.setdefault("inner_rows", {})
    results["command"] = " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        table, X, _ = mb.task_data(task, args.data, args.features_cache)
        tr, te = inner_split(matbench_folds(table)[args.fold][0], args.inner_test, args.train_rows, args.seed)
        results["inner_rows"][task] = {"train": int(len(tr)), "test": int(len(te))}
        for name in list(args.recipes) + list(args.reference):
            run = argparse.Namespace(recipe=name if name in ("modern", "paper") else "modern", epochs=0, patience=0,
                                     time_limit=args.paper_time_limit if name == "paper" else None,
                                     et_trees=500, rf_trees=100, seed=args.seed)
            model = args.model if name in ("modern", "paper") else name
            cell_settings = lc.cell_settings(model, run)
            if lc.done(results, task, name, len(tr), cell_settings):
                print(f"{task} {name}: already measured, skipped", flush=True)
                continue
            F = lc.features_of(model, table, X, mb)
            print(f"{task} {name} ({model}): fitting on {len(tr)} rows of fold {args.fold}'s training part ...", flush=True)
            cell = lc.run_cell(model, F[tr], table.y[tr], F[te], table.y[te], run)
            if "epochs_run" in cell:
                cell["seconds_per_epoch"] = cell["fit_seconds"] / cell["epochs_run"]
            results["cells"].append({"task": task, "model": name, "size": int(len(tr)), "network": model,
                                     "settings": cell_settings, **cell})
            write_json(args.out, results)
            print(f"{task} {name}: inner-test MAE {cell['mae']:.4f} ({len(te)} rows), fit {cell['fit_seconds']:.0f} s"
                  + (f", {cell['epochs_run']} epochs, best {cell['best_epoch']}"
                     f"{', stopped by the time limit' if cell['stopped_by_time_limit'] else ''}"
                     if "epochs_run" in cell else ""), flush=True)
    rows = [{"task": c["task"], "recipe": c["model"], "train rows": c["size"], "MAE": round(c["mae"], 4),
             "fit s": round(c["fit_seconds"]), "epochs": c.get("epochs_run", ""), "best": c.get("best_epoch", ""),
             "s/epoch": round(c["seconds_per_epoch"], 2) if "seconds_per_epoch" in c else "",
             "time-limited": c.get("stopped_by_time_limit", "")} for c in lc.latest(results["cells"])]
    print(markdown_table(rows))
    print(f"results in {args.out}")
    return results


if __name__ == "__main__":
    main()
