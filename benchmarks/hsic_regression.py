"""HSIC-bottleneck training on continuous targets: which target kernel, and how far from backprop?

For each official Matbench fold the same network is trained by backprop and by HSIC with each
target kernel (``hsic_params={"target_kernel": ...}``: "gaussian", the Gaussian on the
standardised y at the median-heuristic width, the default; "rank", the same on y's ranks
within the batch; "multiscale", the mean of Gaussians at 1/4 .. 4 times that width), and with the
CKA estimator and a format phase (``cka_*``, see VARIANTS). The variant
used for the fold's "chosen" row is picked by an inner K-fold cross-validation on that fold's
training part only (the test fold is never looked at); every variant's test MAE is reported as
well, for the record, but plays no part in the choice.

    python benchmarks/hsic_regression.py --task steels
    python benchmarks/hsic_regression.py --task steels --variants cka_gaussian cka_rank cka_multiscale --inner-folds 2 --suffix _cka
    python benchmarks/hsic_regression.py --task expt_gap --inner-folds 1 --patience 10 --max-epochs 100

Settings are those of benchmarks/materials_matbench.py (IRNet-17 on the 145 Ward attributes, Adam
lr 1e-4 without weight decay, batch 32, L1 loss, early stopping on 10 % of each training part);
``--model`` may name a smaller network. ``--inner-folds 1`` is one inner hold-out of 20 % (for
the bigger task). Results go to benchmarks/results/hsic_regression_<task>[suffix].json after
every fit (a partial run keeps what it measured), the log to the same name with .log.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "materials" / "matbench_v0.1_composition"
#: HSIC variants: name -> hsic_params. The first three are the target kernels with the NOCCO estimator and no format
#: phase (the classifiers' defaults, the regressors' before); the cka_* ones use the CKA estimator and 100 format-layer
#: epochs at format_lr 1e-2 (SGD), settings found on an 80/20 hold-out of steels fold 0's training part (clean for
#: fold 0's test fold; that training part holds the test rows of folds 1-4), the regressors' defaults since.
FORMAT = {"format_epochs": 100, "format_lr": 1e-2}
NOCCO = {"estimator": "nocco", "format_epochs": 0, "format_lr": None}
VARIANTS = {"gaussian": {**NOCCO, "target_kernel": "gaussian"}, "rank": {**NOCCO, "target_kernel": "rank"},
            "multiscale": {**NOCCO, "target_kernel": "multiscale"},
            "cka_gaussian": {"estimator": "cka", "target_kernel": "gaussian", **FORMAT},
            "cka_rank": {"estimator": "cka", "target_kernel": "rank", **FORMAT},
            "cka_multiscale": {"estimator": "cka", "target_kernel": "multiscale", **FORMAT}}
DEFAULT_VARIANTS = ("gaussian", "rank", "multiscale")


def inner_splits(n, k, seed):
    """Inner (train, validation) index pairs of a training part of n rows: K-fold, or one 80/20 hold-out for k=1."""
    from sklearn.model_selection import KFold, train_test_split

    idx = np.arange(n)
    if k == 1:
        return [tuple(train_test_split(idx, test_size=0.2, random_state=seed))]
    return list(KFold(k, shuffle=True, random_state=seed).split(idx))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="steels", choices=["steels", "expt_gap"])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--features-cache", type=Path, default=None, help="As for benchmarks/materials_matbench.py.")
    p.add_argument("--model", default="irnet17", help="Network (a MaterialsRegressor model name).")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    p.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--inner-folds", type=int, default=3, help="Inner CV folds on each training part (1: one 80/20 hold-out).")
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--time-limit", type=float, default=None, help="Seconds per training (stops after the epoch past it).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suffix", default="")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from materials_matbench import PAPER_OPTIMIZER, task_data, training_info

    from hsickit.apps.materials.estimator import MaterialsRegressor
    from hsickit.core.files import write_json
    from hsickit.datasets.materials import matbench_folds

    out = ROOT / "benchmarks" / "results" / f"hsic_regression_{args.task}{args.suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(out.with_suffix(".log"), "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    def make(training, variant=None):
        hsic = dict(VARIANTS[variant]) if training == "hsic" else None
        return MaterialsRegressor(features="precomputed", model=args.model, training=training, hsic_params=hsic,
                                  epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                                  random_state=args.seed, time_limit=args.time_limit, verbose=0, **PAPER_OPTIMIZER)

    def fit_score(training, variant, X_tr, y_tr, X_te, y_te):
        start = time.perf_counter()
        est = make(training, variant).fit(X_tr, y_tr)
        mae = float(np.abs(est.predict(X_te) - y_te).mean())
        return mae, {"seconds": time.perf_counter() - start, **training_info(est.history_)}

    table, X, _ = task_data(args.task, args.data, args.features_cache)
    y = np.asarray(table.y, dtype=np.float64)
    splits = matbench_folds(table)
    command = " ".join(["hsic_regression.py"] + (argv if argv is not None else sys.argv[1:]))
    results = {"command": command, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "task": args.task, "rows": int(len(y)),
               "variants": {v: VARIANTS[v] for v in args.variants}, "device": "cpu, 1 thread", "folds": []}
    say(f"== {command}  ({time.strftime('%Y-%m-%d %H:%M:%S')}, {len(y)} rows)")
    for k in args.folds:
        tr, te = splits[k]
        fold = {"fold": k, "n_train": int(len(tr)), "n_test": int(len(te)), "inner": {}, "test": {}, "fits": {}}
        results["folds"].append(fold)
        # inner validation on the training part only: choose the target kernel
        inner = inner_splits(len(tr), args.inner_folds, args.seed + k)
        for v in args.variants if len(args.variants) > 1 else []:  # one variant: nothing to choose
            maes = [fit_score("hsic", v, X[tr[a]], y[tr[a]], X[tr[b]], y[tr[b]])[0] for a, b in inner]
            fold["inner"][v] = {"mae": float(np.mean(maes)), "per_split": maes}
            say(f"fold {k} inner {v}: {np.mean(maes):.4g} ({', '.join(f'{m:.4g}' for m in maes)})")
            write_json(out, results)
        fold["chosen"] = min(args.variants, key=lambda v: fold["inner"][v]["mae"]) if fold["inner"] else args.variants[0]
        # every variant and backprop on the whole training part, scored on the test fold
        for name, training, v in [("backprop", "backprop", None)] + [(f"hsic_{v}", "hsic", v) for v in args.variants]:
            mae, info = fit_score(training, v, X[tr], y[tr], X[te], y[te])
            fold["test"][name], fold["fits"][name] = mae, info
            say(f"fold {k} test {name}: {mae:.4g} ({info['seconds']:.0f} s, {info['epochs_run']} epochs, best {info['best_epoch']})")
            write_json(out, results)
        fold["test"]["hsic_chosen"] = fold["test"][f"hsic_{fold['chosen']}"]
        say(f"fold {k}: chosen by inner CV {fold['chosen']}: {fold['test']['hsic_chosen']:.4g} vs backprop {fold['test']['backprop']:.4g}")
        write_json(out, results)

    names = ["backprop"] + [f"hsic_{v}" for v in args.variants] + ["hsic_chosen"]
    summary = {}
    for name in names:
        maes = [f["test"][name] for f in results["folds"]]
        summary[name] = {"mae_per_fold": maes, "mean": float(np.mean(maes)), "std": float(np.std(maes))}
    for name in names[1:]:
        summary[name]["ratio_to_backprop"] = summary[name]["mean"] / summary["backprop"]["mean"]
        summary[name]["within_20_percent"] = summary[name]["ratio_to_backprop"] <= 1.2
    results["summary"] = summary
    results["chosen"] = [f["chosen"] for f in results["folds"]]
    write_json(out, results)
    say(json.dumps({n: {"mean": round(s["mean"], 4), "ratio": round(s.get("ratio_to_backprop", 1.0), 3)} for n, s in summary.items()}))
    say(f"chosen per fold: {results['chosen']}; results in {out}")
    return results


if __name__ == "__main__":
    main()
