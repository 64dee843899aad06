"""Materials benchmark: IRNet on Matbench (official folds) against its plain twin and a random forest;
featuriser throughput against matminer; one transfer run mp_gap -> expt_gap.

Everything is configurable so that a shortened run fits a small machine:

    python benchmarks/materials_matbench.py --tasks steels expt_gap \
        --models irnet17_backprop irnet17_hsic plain17_backprop rf --folds 0 1 2 3 4 \
        --max-epochs 300 --patience 30 --throughput 10000 --transfer

Settings (lr 1e-4, batch 32, L1 loss, early stopping on 10 % of each training fold) are the IRNet
paper's and are fixed in advance; no setting is chosen on the test folds. Results are written to
benchmarks/results/materials_matbench[<suffix>].json after every step (partial runs keep what they measured).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition"
TARGETS = {"expt_gap": 0.33, "steels": 95.0}
MODELS = {
    "irnet17_backprop": dict(model="irnet17", training="backprop"),
    "irnet17_hsic": dict(model="irnet17", training="hsic"),
    "plain17_backprop": dict(model="plain17", training="backprop"),
    "irnet48_backprop": dict(model="irnet48", training="backprop"),
    "plain48_backprop": dict(model="plain48", training="backprop"),
}


def save(results, path):
    from hsickit.core.io import write_json

    write_json(path, results)


def throughput(data_dir, n, seed=0):
    """Our WardAttributes vs matminer's four featurisers on the same n formulas; values checked."""
    import pandas as pd
    from pymatgen.core import Composition
    import matminer.featurizers.composition as mc

    from hsickit.apps.materials.featurizers import WardAttributes

    frames = [pd.read_csv(Path(data_dir) / f"matbench_{t}.csv") for t in ("expt_gap", "glass", "steels", "mp_gap")]
    pool = pd.concat(frames)["formula"].drop_duplicates()
    formulas = pool.sample(n=min(n, len(pool)), random_state=seed).tolist()
    comps = [Composition(f) for f in formulas]
    ours = WardAttributes()
    ours.featurize_many(comps[:10])  # load element tables once (both sides get warm caches)
    t0 = time.perf_counter()
    X = ours.featurize_many(comps)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_str = ours.featurize_many(formulas)  # including our strict parsing
    t_ours_str = time.perf_counter() - t0
    refs = [mc.Stoichiometry(), mc.ElementProperty.from_preset("magpie"), mc.ValenceOrbital(props=["frac"]),
            mc.IonProperty(fast=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [r.featurize(comps[0]) for r in refs]
        t0 = time.perf_counter()
        M = np.array([[v for r in refs for v in r.featurize(c)] for c in comps], dtype=float)
        t_mm = time.perf_counter() - t0
    diff = float(np.nanmax(np.abs(X - M)))
    return {"n_formulas": len(formulas), "ours_seconds": t_ours, "ours_seconds_from_strings": t_ours_str,
            "matminer_seconds": t_mm, "speedup": t_mm / t_ours, "speedup_from_strings": t_mm / t_ours_str,
            "max_abs_difference": diff, "equal_1e-6": bool(diff <= 1e-6 and np.array_equal(np.isnan(X), np.isnan(M))),
            "strings_equal_compositions": bool(np.allclose(X, X_str, equal_nan=True))}


def rf_factory(seed):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    from hsickit.apps.materials.featurizers import WardAttributes

    return lambda: make_pipeline(WardAttributes(), RandomForestRegressor(n_estimators=300, n_jobs=1, random_state=seed))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tasks", nargs="+", default=["expt_gap", "steels"])
    p.add_argument("--models", nargs="+", default=["rf", "irnet17_backprop", "plain17_backprop", "irnet17_hsic"])
    p.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--throughput", type=int, default=0, help="Number of formulas for the featuriser timing (0: skip).")
    p.add_argument("--transfer", action="store_true", help="Pre-train on mp_gap (fold 0's training part), fine-tune on expt_gap.")
    p.add_argument("--transfer-rows", type=int, default=0, help="Use only this many mp_gap rows for pre-training (0: all).")
    p.add_argument("--transfer-epochs", type=int, default=20)
    p.add_argument("--transfer-folds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suffix", default="", help="Appended to the result file name (parallel shortened runs).")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hsickit.apps.materials import MaterialsRegressor
    from hsickit.apps.materials.matbench import regression_metrics, run_matbench
    from hsickit.core.io import markdown_table
    from hsickit.datasets.materials import load_matbench, matbench_folds

    out = ROOT / "benchmarks" / "results" / f"materials_matbench{args.suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "matbench": {}, "targets": TARGETS}
    if args.throughput:
        print(f"featuriser throughput on {args.throughput} formulas ...", flush=True)
        results["throughput"] = throughput(args.data, args.throughput, args.seed)
        print(json.dumps(results["throughput"], indent=1), flush=True)
        save(results, out)

    def nn_factory(spec):
        return lambda: MaterialsRegressor(features="ward145", epochs=args.max_epochs, patience=args.patience,
                                          batch_size=args.batch_size, lr=args.lr, random_state=args.seed, **spec)

    rows = []
    for task in args.tasks:
        results["matbench"].setdefault(task, {})
        for name in args.models:
            make = rf_factory(args.seed) if name == "rf" else nn_factory(MODELS[name])
            print(f"== {task} / {name}", flush=True)
            start = time.perf_counter()
            partial = results["matbench"][task].setdefault(name, {"folds": [], "complete": False})

            def keep_fold(k, est, fold_result, partial=partial):  # partial runs keep what they measured
                partial["folds"].append(fold_result)
                save(results, out)

            res = run_matbench(task, args.data, make, folds=args.folds, verbose=1, on_fold=keep_fold)
            res["complete"] = True
            res["seconds"] = time.perf_counter() - start
            res.pop("leaderboard_rows", None)
            results["matbench"][task][name] = res
            save(results, out)
            rows.append({"task": task, "model": name, "folds": len(res["folds"]), res["metric"]: res["mean"],
                         "std": res["std"], "target": TARGETS.get(task, ""), "minutes": res["seconds"] / 60})
            print(markdown_table(rows), flush=True)

    if args.transfer:
        mp = load_matbench("mp_gap", args.data)
        tr0, _ = matbench_folds(mp)[0]
        rng = np.random.default_rng(args.seed)
        if args.transfer_rows:
            tr0 = rng.choice(tr0, size=min(args.transfer_rows, len(tr0)), replace=False)
        f_mp = np.asarray(mp.formulas, dtype=object)
        print(f"== transfer: pre-train on {len(tr0)} mp_gap rows (fold 0 training part)", flush=True)
        start = time.perf_counter()
        pre = MaterialsRegressor(epochs=args.transfer_epochs, patience=max(3, args.patience // 5), batch_size=args.batch_size,
                                 lr=args.lr, random_state=args.seed).fit(list(f_mp[tr0]), mp.y[tr0])
        pre_s = time.perf_counter() - start
        eg = load_matbench("expt_gap", args.data)
        f_eg = np.asarray(eg.formulas, dtype=object)
        tr_rows = []
        for k in args.transfer_folds:
            tr, te = matbench_folds(eg)[k]
            import copy

            ft = copy.deepcopy(pre).fine_tune(list(f_eg[tr]), eg.y[tr], epochs=args.max_epochs, patience=args.patience)
            scratch = nn_factory(MODELS["irnet17_backprop"])().fit(list(f_eg[tr]), eg.y[tr])
            tr_rows.append({"fold": k,
                            "fine_tuned_mae": regression_metrics(eg.y[te], ft.predict(list(f_eg[te])))["mae"],
                            "scratch_mae": regression_metrics(eg.y[te], scratch.predict(list(f_eg[te])))["mae"],
                            "pretrained_only_mae": regression_metrics(eg.y[te], pre.predict(list(f_eg[te])))["mae"]})
            print(markdown_table(tr_rows), flush=True)
        results["transfer"] = {"pretrain_rows": int(len(tr0)), "pretrain_seconds": pre_s,
                               "pretrain_epochs_run": len(pre.history_), "folds": tr_rows}
        save(results, out)
    print(f"results written to {out}")
    return results


if __name__ == "__main__":
    main()
