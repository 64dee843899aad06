"""Materials benchmark: IRNet on Matbench (official folds) against its plain twin and a random forest;
featuriser throughput against matminer; one transfer run mp_gap -> expt_gap.

Everything is configurable so that a shortened run fits a small machine:

    python benchmarks/materials_matbench.py --tasks steels expt_gap \
        --models irnet17_backprop irnet17_hsic plain17_backprop rf --folds 0 1 2 3 4 \
        --max-epochs 300 --patience 30 --throughput 10000 --transfer

Settings (lr 1e-4, batch 32, L1 loss, early stopping on 10 % of each training fold) are the IRNet
paper's and are fixed in advance; no setting is chosen on the test folds. Besides the networks and
the leaderboard-style random forest (``rf``: 300 trees on the 145 attributes) the models include
extremely randomised trees (``extra_trees_ward_fractions``: 500 trees on the 145 attributes plus
the element fractions; ``extra_trees_fractions``: fractions only; both predict the median of
their trees, the ``*_mean`` twins the mean).

``--select`` answers "which model should I use" without the test folds: per official fold, each of
``--models`` is scored by an inner 5-fold cross-validation on the training part, the best is
retrained on the whole training part, and only its test MAE is reported:

    python benchmarks/materials_matbench.py --tasks steels --select \
        --models rf extra_trees_ward_fractions extra_trees_fractions irnet17_backprop --max-epochs 500 --patience 50

Results are written to benchmarks/results/materials_matbench[<suffix>].json (or --out) after every step (partial runs keep
what they measured).

Each task is featurised once (the 145 Ward attributes, float32) and the models get the feature rows
(``MaterialsRegressor(features="precomputed")``). With ``--features-cache DIR`` the features, targets,
folds and formulas are stored per task in DIR/<name>.npz (and the leaderboard copied there); a run
that finds them there needs neither the data folder nor pymatgen / matminer, e.g. on a GPU box:

    python benchmarks/materials_matbench.py --features-cache .gpucache --tasks expt_gap \
        --models irnet48_backprop --folds 3 --device cuda --time-budget 360 --out /tmp/f3.json

``--time-budget`` bounds a run's training time: each training may use what is left divided by the
trainings still to come, and stops after the epoch that passes it (keeping its best validation
epoch). ``--merge A.json B.json ...`` combines the result files of parallel runs (per fold MAE,
mean and std per task and model) into --out.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
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
    "extra_trees_ward_fractions": dict(model="extra_trees", features="ward145+fractions118"),
    "extra_trees_fractions": dict(model="extra_trees", features="fractions118"),
    "extra_trees_ward_fractions_mean": dict(model="extra_trees", features="ward145+fractions118",
                                            model_params={"aggregate": "mean"}),
    "extra_trees_fractions_mean": dict(model="extra_trees", features="fractions118", model_params={"aggregate": "mean"}),
}


def save(results, path):
    from hsickit.core.files import write_json

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


#: The paper's optimiser (Adam, constant lr, no weight decay); MaterialsRegressor's default is now the modern
#: recipe (benchmarks/materials_recipes.py), and this benchmark keeps the settings its figures were made with.
PAPER_OPTIMIZER = dict(optimizer="adam", train_params={"weight_decay": 0.0, "lr_schedule": None})

#: --select candidates that differ from MODELS: the random forest as a MaterialsRegressor
SELECT_SPECS = {"rf": dict(model="random_forest", features="ward145", model_params={"aggregate": "mean"})}


def rf_factory(seed):
    from sklearn.ensemble import RandomForestRegressor

    return lambda: RandomForestRegressor(n_estimators=300, n_jobs=1, random_state=seed)


class TimeBudget:
    """Wall-clock seconds shared by the trainings of one run: :meth:`share` gives the next training
    what is left divided by the trainings still to come (None when there is no budget)."""

    def __init__(self, seconds, n_trainings):
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.left = max(1, n_trainings)

    def share(self):
        if self.deadline is None:
            return None
        seconds = max(0.0, self.deadline - time.monotonic()) / max(1, self.left)
        self.left -= 1
        return seconds


def _store(path, **arrays):
    import io

    from hsickit.core.files import atomic_write

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def ward_features(compositions):
    """The 145 Ward (2016) composition attributes of ``compositions``, float32."""
    from hsickit.apps.materials.featurizers import WardAttributes

    return WardAttributes().featurize_many(compositions).astype(np.float32)


def task_data(task, data_dir, cache=None):
    """(table, X, data_dir) of a Matbench task: the table and its 145 Ward features (float32), read
    from `cache`/matbench_<task>.npz when there (no pymatgen / matminer needed), else computed from
    `data_dir` (and stored in `cache`). The returned data_dir holds the leaderboard."""
    import pandas as pd

    from hsickit.datasets.materials import FormulaTable, load_matbench, matbench_folds

    path = None if cache is None else Path(cache) / f"matbench_{task}.npz"
    if path is not None and path.exists():
        z = np.load(path)
        formulas = z["formulas"].tolist()
        frame = pd.DataFrame({"formula": formulas, "target": z["y"], "fold": z["fold"]})
        table = FormulaTable(formulas=formulas, compositions=None, y=z["y"], target_names=["target"],  # features cached
                             rows=np.arange(1, len(formulas) + 1), frame=frame, source=str(path))
        return table, z["X"], Path(cache)
    table = load_matbench(task, data_dir)
    X = ward_features(table.compositions)
    if path is not None:
        fold = np.empty(len(table), dtype=np.int64)
        for k, (_, te) in enumerate(matbench_folds(table)):
            fold[te] = k
        _store(path, X=X, y=table.y, fold=fold, formulas=np.asarray(table.formulas, dtype=str))
        leaderboard = Path(data_dir) / "leaderboard_matbench_v0.1.csv"
        if leaderboard.exists():
            shutil.copyfile(leaderboard, Path(cache) / leaderboard.name)
        print(f"stored {path}", flush=True)
    return table, X, data_dir


def features_for(spec, table, X):
    """The feature matrix a model spec asks for (``features``, default the 145 Ward attributes
    `X`); other featurisers are computed from the table's formulas (fractions: well under a second)."""
    from hsickit.apps.materials.featurizers import get_featurizer

    names = spec.get("features", "ward145").split("+")
    entries = table.compositions if table.compositions is not None else table.formulas
    return np.hstack([X if n == "ward145" else get_featurizer(n).featurize_many(entries).astype(np.float32)
                      for n in names])


def transfer_data(data_dir, rows, seed, cache=None):
    """(X, y) of the mp_gap pre-training rows: fold 0's training part, `rows` of them drawn with
    `seed` (0: all); from / into `cache` like :func:`task_data`."""
    from hsickit.datasets.materials import load_matbench, matbench_folds

    path = None if cache is None else Path(cache) / f"mp_gap_fold0_train_{rows or 'all'}_seed{seed}.npz"
    if path is not None and path.exists():
        z = np.load(path)
        return z["X"], z["y"]
    mp = load_matbench("mp_gap", data_dir)
    tr0, _ = matbench_folds(mp)[0]
    if rows:
        tr0 = np.random.default_rng(seed).choice(tr0, size=min(rows, len(tr0)), replace=False)
    X = ward_features([mp.compositions[i] for i in tr0])
    if path is not None:
        _store(path, X=X, y=mp.y[tr0], rows=tr0, formulas=np.asarray(mp.formulas, dtype=str)[tr0])
        print(f"stored {path}", flush=True)
    return X, mp.y[tr0]


def training_info(history, since=0):
    """Epochs run, best (validation) epoch and whether the time budget stopped one training."""
    rows = history[since:]
    best = [r["epoch"] for r in rows if r.get("best")]
    return {"epochs_run": len(rows), "best_epoch": (best[-1] - rows[0]["epoch"] + 1) if best else None,
            "stopped_by_time_limit": any(r.get("stopped_by_time_limit") for r in rows)}


def merge(paths):
    """Combine the result files of parallel runs: per task and model the fold results (one per
    fold; a later file wins), their MAE, mean and std (ddof 0, as Matbench); transfer rows."""
    merged = {"sources": [], "matbench": {}, "transfer": [], "targets": TARGETS}
    for path in paths:
        res = json.loads(Path(path).read_text())
        merged["sources"].append({"file": Path(path).name, "command": res.get("command"), "device": res.get("device")})
        for task, models in res.get("matbench", {}).items():
            for name, r in models.items():
                entry = merged["matbench"].setdefault(task, {}).setdefault(name, {"folds": {}})
                entry["folds"].update({str(f["fold"]): f for f in r["folds"]})
        if "transfer" in res:
            merged["transfer"].append(res["transfer"])
    rows = []
    for task, models in merged["matbench"].items():
        for name, entry in models.items():
            folds = [entry["folds"][k] for k in sorted(entry["folds"], key=int)]
            entry["folds"] = folds
            if not folds:  # a run stopped before its first fold ended
                continue
            mae = np.array([f["mae"] for f in folds])
            entry.update({"mae_per_fold": {str(f["fold"]): f["mae"] for f in folds},
                          "mean": float(mae.mean()), "std": float(mae.std()), "n_folds": len(folds),
                          "complete": len(folds) == 5})
            rows.append({"task": task, "model": name, "folds": len(folds), "mae": entry["mean"], "std": entry["std"],
                         "target": TARGETS.get(task, ""),
                         "time-limited folds": sum(bool(f.get("stopped_by_time_limit")) for f in folds)})
    return merged, rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tasks", nargs="*", default=["expt_gap", "steels"], help="Matbench tasks (none: e.g. only --transfer).")
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
    p.add_argument("--out", type=Path, default=None,
                   help="Result file (default: benchmarks/results/materials_matbench<suffix>.json).")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="Where the networks train.")
    p.add_argument("--features-cache", type=Path, default=None,
                   help="Folder of per-task feature files (.npz): read when there, else computed and stored.")
    p.add_argument("--time-budget", type=float, default=None,
                   help="Seconds for all trainings of this run, shared out evenly; a training past its share "
                        "stops after its epoch, keeping its best validation epoch.")
    p.add_argument("--select", action="store_true",
                   help="Instead of one row per model: per fold, choose among --models by an inner cross-validation "
                        "on the training part, retrain the choice on the whole training part, report its test MAE.")
    p.add_argument("--inner-folds", type=int, default=5, help="Inner folds of --select.")
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                   help="Only combine these result files (of parallel runs) into --out.")
    args = p.parse_args(argv)
    unknown = [m for m in args.models if m != "rf" and m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose among rf, {', '.join(MODELS)}")
    nn_models = [m for m in args.models if m != "rf"]
    budget = TimeBudget(args.time_budget, len(args.tasks) * len(nn_models) * len(args.folds)
                        + (1 + 2 * len(args.transfer_folds) if args.transfer else 0))

    from hsickit.core.report import markdown_table

    out = args.out or ROOT / "benchmarks" / "results" / f"materials_matbench{args.suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        merged, rows = merge(args.merge)
        save(merged, out)
        print(markdown_table(rows))
        print(markdown_table([{"fold": r["fold"], "fine_tuned_mae": r["fine_tuned_mae"], "scratch_mae": r["scratch_mae"],
                               "pretrained_only_mae": r["pretrained_only_mae"]} for t in merged["transfer"] for r in t["folds"]]))
        print(f"merged {len(args.merge)} files into {out}")
        return merged

    import torch

    torch.set_num_threads(args.threads)
    from hsickit.apps.materials.estimator import MaterialsRegressor
    from hsickit.apps.materials.matbench import regression_metrics, run_matbench
    from hsickit.datasets.materials import matbench_folds

    results = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
               "matbench": {}, "targets": TARGETS}
    if args.throughput:
        print(f"featuriser throughput on {args.throughput} formulas ...", flush=True)
        results["throughput"] = throughput(args.data, args.throughput, args.seed)
        print(json.dumps(results["throughput"], indent=1), flush=True)
        save(results, out)

    def nn_factory(spec):
        spec = {k: v for k, v in spec.items() if k != "features"}  # the benchmark computes them once
        return lambda: MaterialsRegressor(features="precomputed", epochs=args.max_epochs, patience=args.patience,
                                          batch_size=args.batch_size, lr=args.lr, random_state=args.seed, **PAPER_OPTIMIZER,
                                          device=args.device, time_limit=budget.share(), **spec)

    rows = []
    for task in args.tasks:
        table, X, data_dir = task_data(task, args.data, args.features_cache)
        results["matbench"].setdefault(task, {})
        if args.select:  # formulas in: each candidate featurises what it needs
            from hsickit.apps.materials.selection import model_search

            candidates = [SELECT_SPECS.get(m, MODELS.get(m)) for m in args.models]
            name_of = lambda params: args.models[candidates.index(params)]  # noqa: E731
            base = MaterialsRegressor(epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size,
                                      lr=args.lr, random_state=args.seed, **PAPER_OPTIMIZER, device=args.device)
            partial = results.setdefault("selection", {}).setdefault(task, {"candidates": args.models, "folds": []})

            def keep_choice(k, search, fold_result, partial=partial):
                cv = search.cv_results_
                fold_result["chosen"] = name_of(search.best_params_)
                fold_result["inner_mae"] = {name_of(p): -float(m) for p, m in zip(cv["params"], cv["mean_test_score"])}
                partial["folds"].append(fold_result)
                save(results, out)
                print(f"   fold {k}: chosen {fold_result['chosen']}; inner-CV MAE {fold_result['inner_mae']}", flush=True)

            print(f"== {task}: choose among {args.models} by inner {args.inner_folds}-fold CV", flush=True)
            res = run_matbench(task, data_dir, lambda: model_search(base, candidates, cv=args.inner_folds,
                                                                     random_state=args.seed),
                               folds=args.folds, verbose=1, on_fold=keep_choice, table=table)
            res.pop("leaderboard_rows", None)
            results["selection"][task] = {"candidates": args.models, "inner_folds": args.inner_folds, **res}
            save(results, out)
            rows.append({"task": task, "model": "chosen by inner CV: " + ", ".join(r["chosen"] for r in res["folds"]),
                         "folds": len(res["folds"]), "mae": res["mean"], "std": res["std"], "target": TARGETS.get(task, "")})
            print(markdown_table(rows), flush=True)
            continue
        for name in args.models:
            make = rf_factory(args.seed) if name == "rf" else nn_factory(MODELS[name])
            print(f"== {task} / {name}", flush=True)
            start = time.perf_counter()
            partial = results["matbench"][task].setdefault(name, {"folds": [], "complete": False})

            def keep_fold(k, est, fold_result, partial=partial):  # partial runs keep what they measured
                if hasattr(est, "members_"):
                    fold_result.update(training_info(est.history_))
                partial["folds"].append(fold_result)
                save(results, out)

            res = run_matbench(task, data_dir, make, folds=args.folds, verbose=1, on_fold=keep_fold, table=table,
                               X=features_for(MODELS.get(name, {}), table, X))
            res["complete"] = True
            res["seconds"] = time.perf_counter() - start
            res.pop("leaderboard_rows", None)
            results["matbench"][task][name] = res
            save(results, out)
            rows.append({"task": task, "model": name, "folds": len(res["folds"]), res["metric"]: res["mean"],
                         "std": res["std"], "target": TARGETS.get(task, ""), "minutes": res["seconds"] / 60})
            print(markdown_table(rows), flush=True)

    if args.transfer:
        X_mp, y_mp = transfer_data(args.data, args.transfer_rows, args.seed, args.features_cache)
        print(f"== transfer: pre-train on {len(X_mp)} mp_gap rows (fold 0 training part)", flush=True)
        start = time.perf_counter()
        pre = MaterialsRegressor(features="precomputed", epochs=args.transfer_epochs, patience=max(3, args.patience // 5),
                                 batch_size=args.batch_size, lr=args.lr, random_state=args.seed, **PAPER_OPTIMIZER, device=args.device,
                                 time_limit=budget.share()).fit(X_mp, y_mp)
        pre_s = time.perf_counter() - start
        eg, X_eg, _ = task_data("expt_gap", args.data, args.features_cache)
        results["transfer"] = {"pretrain_rows": int(len(X_mp)), "pretrain_seconds": pre_s,
                               "pretrain": training_info(pre.history_), "folds": []}
        for k in args.transfer_folds:
            tr, te = matbench_folds(eg)[k]
            ft = copy.deepcopy(pre).set_params(time_limit=budget.share())
            ft.set_params(warm_start=True, epochs=args.max_epochs, patience=args.patience).fit(X_eg[tr], eg.y[tr])
            scratch = nn_factory(MODELS["irnet17_backprop"])().fit(X_eg[tr], eg.y[tr])
            results["transfer"]["folds"].append({
                "fold": k,
                "fine_tuned_mae": regression_metrics(eg.y[te], ft.predict(X_eg[te]))["mae"],
                "scratch_mae": regression_metrics(eg.y[te], scratch.predict(X_eg[te]))["mae"],
                "pretrained_only_mae": regression_metrics(eg.y[te], pre.predict(X_eg[te]))["mae"],
                "fine_tune": training_info(ft.history_, since=len(pre.history_)),
                "scratch": training_info(scratch.history_)})
            save(results, out)
            print(markdown_table([{k2: v for k2, v in r.items() if k2.endswith("mae") or k2 == "fold"}
                                  for r in results["transfer"]["folds"]]), flush=True)
        save(results, out)
    print(f"results written to {out}")
    return results


if __name__ == "__main__":
    main()
