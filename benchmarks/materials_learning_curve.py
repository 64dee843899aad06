"""Materials learning curves on big data: MAE and fit time against the number of training rows,
for extra trees, a random forest, IRNet and its plain twin, on Matbench ``mp_e_form`` / ``mp_gap``.

Where the deep residual networks of the IRNet paper should win is "in the presence of big data";
this measures it. For each task: official Matbench fold 0; training sets of ``--sizes`` rows drawn
from fold 0's training part (nested: one shuffle of the training part, the first n rows, so the
1k set is inside the 4k set); every model scored on the same rows of fold 0's test part (a fixed
random subset of ``--test-size`` rows, or all of them with 0). Networks carve their early-stopping
split from their own training rows; nothing is chosen on the test rows.

    python benchmarks/materials_learning_curve.py --tasks mp_e_form --sizes 1000 4000 16000 \\
        --models extra_trees rf irnet17 plain17 --features-cache /tmp/matbench-features

Models: ``extra_trees`` (500 trees, Ward 145 attributes + 118 element fractions, median of the
trees: hsickit's small-table default), ``rf`` (random forest on the 145 attributes, mean of its
trees; ``--rf-trees``), ``irnet17`` / ``plain17`` / ``irnet48`` / ``plain48`` (``--recipe``,
default the modern one: AdamW, batch 256, warm-up + cosine, early stopping; see
:data:`hsickit.apps.materials.estimator.RECIPES`). ``--deep-max-size`` leaves the 48-layer pair out
of sizes above it.

The run is resumable: each finished (task, model, size) cell is appended to the JSON at once, and
a rerun with the same settings skips the cells already there (``--fresh`` starts over). A
progress line per cell. ``--plot-only`` redraws the log-log plot (MAE vs training rows) from
the JSON. Machine: whatever runs it (the figures in the README: the 2-core shared CPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "materials_learning_curve.json"
NETWORKS = ("irnet17", "plain17", "irnet48", "plain48")
MODELS = ("extra_trees", "rf") + NETWORKS
#: settings shared by every cell of a result file (other values: a new file's worth of cells)
SIGNATURE = ("fold", "test_size", "seed")


def draw_rows(train_idx, test_idx, sizes, test_size, seed):
    """(training rows per size, test rows): nested training sets (the first n of one shuffle of
    `train_idx`; 0, or a size above it, is all of it) and a fixed random subset of `test_idx`
    (all with ``test_size`` 0), sorted."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(train_idx))
    test = np.asarray(test_idx)
    if test_size and test_size < len(test):
        test = np.sort(rng.choice(test, size=test_size, replace=False))
    return {int(n): np.sort(order[: min(int(n) or len(order), len(order))]) for n in sizes}, test


def make_model(name, args, n_rows):
    """An unfitted MaterialsRegressor (precomputed features) for a model name of :data:`MODELS`."""
    from hsickit.apps.materials.estimator import RECIPES, MaterialsRegressor

    if name == "extra_trees":
        return MaterialsRegressor(features="precomputed", model="extra_trees",
                                  model_params={"n_estimators": args.et_trees}, random_state=args.seed)
    if name == "rf":
        return MaterialsRegressor(features="precomputed", model="random_forest",
                                  model_params={"n_estimators": args.rf_trees, "aggregate": "mean"},
                                  random_state=args.seed)
    recipe = dict(RECIPES[args.recipe])
    if args.epochs:
        recipe["epochs"] = args.epochs
    if args.patience:
        recipe["patience"] = args.patience
    return MaterialsRegressor(features="precomputed", model=name, random_state=args.seed, time_limit=args.time_limit,
                              **recipe)


def features_of(name, table, X, mb):
    """Ward 145 + element fractions for extra trees, the 145 attributes for the others."""
    return mb.features_for({"features": "ward145+fractions118"} if name == "extra_trees" else {}, table, X)


def load_results(path, settings, fresh=False, signature=SIGNATURE):
    """The result file's cells measured with the same `settings` (those named in `signature`;
    else they are dropped), or a new file."""
    from hsickit.core.files import read_json

    if fresh or not Path(path).exists():
        return {"settings": settings, "cells": []}
    old = read_json(path)
    same = {k: old.get("settings", {}).get(k) for k in signature} == {k: settings.get(k) for k in signature}
    if not same:
        print(f"{path} holds cells of other settings; starting a new set (use another --out to keep both)", flush=True)
        return {"settings": settings, "cells": []}
    old["settings"] = {**old["settings"], **{k: v for k, v in settings.items() if k not in signature}}
    return old  # each cell keeps the settings it was measured with


def cell_settings(name, args):
    """The settings that decide one model's result (kept in its cell; a rerun with other values
    measures the cell again, and the latest measurement is the one tabled and plotted)."""
    if name == "extra_trees":
        return {"trees": args.et_trees}
    if name == "rf":
        return {"trees": args.rf_trees}
    return {"recipe": args.recipe, "epochs": args.epochs or None, "patience": args.patience or None,
            "time_limit": args.time_limit}


def include(results, paths):
    """`results` with the cells of the result files `paths` added (those it lacks; the files must
    share its fold, test size and seed)."""
    from hsickit.core.errors import HsickitError
    from hsickit.core.files import read_json

    for path in paths:
        other = read_json(path)
        if any(other["settings"].get(k) != results["settings"].get(k) for k in SIGNATURE):
            raise HsickitError(f"{path}: other {', '.join(SIGNATURE)} than this result file; its cells do not compare")
        for c in other["cells"]:
            if not done(results, c["task"], c["model"], c["size"], c.get("settings")):
                results["cells"].append(c)
        results.setdefault("test_rows", {}).update(other.get("test_rows", {}))
    return results


def done(results, task, model, size, settings):
    return any(c["task"] == task and c["model"] == model and c["size"] == size and c.get("settings") == settings
               for c in results["cells"])


def latest(cells):
    """The last cell of each (task, model, size)."""
    out = {}
    for c in cells:
        out[(c["task"], c["model"], c["size"])] = c
    return list(out.values())


def run_cell(name, X_tr, y_tr, X_te, y_te, args):
    """Fit one model, score it on the test rows: a cell dict (mae, rmse, r2, fit_seconds, ...)."""
    from hsickit.apps.materials.matbench import regression_metrics

    est = make_model(name, args, len(X_tr))
    start, cpu = time.perf_counter(), time.process_time()
    est.fit(X_tr, y_tr)
    fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    # on a shared machine the wall time depends on the load; the CPU time of this process (all its threads) less so
    cell = {**regression_metrics(y_te, est.predict(X_te)), "fit_seconds": fit_s, "fit_cpu_seconds": cpu_s,
            "load_average": os.getloadavg()[0], "n_train": int(len(X_tr))}
    if name == "extra_trees":  # the first k trees are a k-tree forest: how many trees are worth their time
        trees = est.members_[0].tree_predictions(est.scale_features(X_te))
        cell["mae_by_trees"] = {str(k): float(np.abs(np.median(trees[:k], 0) - y_te).mean())
                                for k in (50, 100, 200, 300, 500) if k <= len(trees)}
    if name in NETWORKS:
        hist = est.history_
        best = min(hist, key=lambda r: r.get("val_loss", r["train_loss"]))
        cell.update({"epochs_run": len(hist), "best_epoch": int(best["epoch"]),
                     "stopped_by_time_limit": any(bool(r.get("stopped_by_time_limit")) for r in hist)})
    return cell


def plot(results, path):
    """Log-log plot of test MAE against training rows, one line per model, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hsickit.apps.materials.matbench import MATBENCH_UNITS
    from hsickit.core.files import atomic_write

    cells_all = latest(results["cells"])
    tasks = sorted({c["task"] for c in cells_all})
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for model in MODELS:
            cells = sorted((c for c in cells_all if c["task"] == task and c["model"] == model),
                           key=lambda c: c["size"])
            if cells:
                ax.plot([c["n_train"] for c in cells], [c["mae"] for c in cells], "o-" if model in NETWORKS[:2] else "s--",
                        label=model)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training rows (Matbench fold 0)")
        ax.set_ylabel(f"test MAE ({MATBENCH_UNITS.get(task, '')})")
        ax.set_title(f"matbench_{task}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path


def table_rows(results):
    """One row per (task, size): each model's MAE and fit seconds side by side."""
    rows, cells = [], latest(results["cells"])
    for task in sorted({c["task"] for c in cells}):
        for size in sorted({c["size"] for c in cells if c["task"] == task}):
            row = {"task": task, "rows": size}
            for c in cells:
                if c["task"] == task and c["size"] == size:
                    row[f"{c['model']} MAE"] = round(c["mae"], 4)
                    row[f"{c['model']} s"] = round(c["fit_seconds"])
                    if "fit_cpu_seconds" in c:
                        row[f"{c['model']} cpu s"] = round(c["fit_cpu_seconds"])
            rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tasks", nargs="+", default=["mp_e_form"], choices=["mp_e_form", "mp_gap", "expt_gap"])
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 4000, 16000],
                   help="Training rows (0: the whole training part of the fold).")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--deep-max-size", type=int, default=4000, help="irnet48 / plain48 only at sizes up to this.")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--test-size", type=int, default=5000, help="Rows of the fold's test part to score on (0: all).")
    p.add_argument("--recipe", default="modern", choices=["modern", "paper"])
    p.add_argument("--epochs", type=int, default=0, help="Override the recipe's maximum epochs (0: the recipe's).")
    p.add_argument("--patience", type=int, default=0, help="Override the recipe's patience (0: the recipe's).")
    p.add_argument("--time-limit", type=float, default=None, help="Seconds per network fit (stops after that epoch).")
    p.add_argument("--et-trees", type=int, default=500)
    p.add_argument("--rf-trees", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--features-cache", type=Path, default=None, help="Folder of per-task feature files (.npz).")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--fresh", action="store_true", help="Ignore cells already in --out.")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--include", nargs="*", type=Path, default=[], metavar="JSON",
                   help="Merge the cells of these result files (parallel runs with the same fold, test size, seed).")
    args = p.parse_args(argv)

    from hsickit.core.files import read_json, write_json
    from hsickit.core.report import markdown_table

    png = args.out.with_suffix(".png")
    if args.plot_only:
        results = include(read_json(args.out), args.include)
        print(markdown_table(table_rows(results)))
        print(f"plot written to {plot(results, png)}")
        return results
    import torch

    torch.set_num_threads(args.threads)
    from hsickit.apps.materials.matbench import MATBENCH_UNITS
    from hsickit.datasets.materials import matbench_folds

    import materials_matbench as mb  # beside this script
    settings = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("fresh", "plot_only")},
                "units": {t: MATBENCH_UNITS.get(t, "") for t in args.tasks},
                "machine": f"cpu, {torch.get_num_threads()} torch thread(s)"}
    results = include(load_results(args.out, settings, args.fresh), args.include)
    results["command"] = " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        table, X, _ = mb.task_data(task, args.data, args.features_cache)
        train_idx, test_idx = matbench_folds(table)[args.fold]
        sets, test = draw_rows(train_idx, test_idx, args.sizes, args.test_size, args.seed)
        results.setdefault("test_rows", {})[task] = {"n": int(len(test)), "of": int(len(test_idx))}
        feats = {}
        for size in args.sizes:
            for name in args.models:
                if name in ("irnet48", "plain48") and size > args.deep_max_size:
                    continue
                settings_ = cell_settings(name, args)
                if done(results, task, name, size, settings_):
                    print(f"{task} n={size} {name}: already measured, skipped", flush=True)
                    continue
                if name not in feats:
                    feats[name] = features_of(name, table, X, mb)
                F, tr = feats[name], sets[size]
                print(f"{task} n={size} {name}: fitting on {len(tr)} rows ...", flush=True)
                cell = run_cell(name, F[tr], table.y[tr], F[test], table.y[test], args)
                results["cells"].append({"task": task, "model": name, "size": size, "settings": settings_, **cell})
                write_json(args.out, results)
                print(f"{task} n={size} {name}: MAE {cell['mae']:.4f} on {len(test)} test rows, "
                      f"fit {cell['fit_seconds']:.0f} s" + (f", {cell['epochs_run']} epochs (best {cell['best_epoch']})"
                                                            if "epochs_run" in cell else ""), flush=True)
    print(markdown_table(table_rows(results)))
    print(f"results in {args.out}; plot {plot(results, png)}")
    return results


if __name__ == "__main__":
    main()
