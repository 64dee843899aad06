"""Transfer to small data: does pre-training IRNet-17 on DFT band gaps (Matbench ``mp_gap``) help
it on experimental band gaps (``expt_gap``)?

For each target fold k (``--folds``, official Matbench folds of the target task):

* **pre-training set**: ``mp_gap``'s official fold-0 training part (its fold-0 test rows are never
  used), minus every row whose composition up to scale (pymatgen ``Composition(f).reduced_formula``,
  made scale-free also for non-integer formulas such as ``Al0.5Ga0.5As``: :func:`composition_keys`)
  is that of a row of the target's fold-k **test** part, then ``--pretrain-rows`` of the rest drawn
  with ``--seed`` (0: all). The number of rows the composition exclusion removed is reported.
* models, all scored on the target's fold-k test part, all trained on its fold-k training part:
  ``extra_trees`` (what ``model="auto"`` picks for a table this small: 500 extremely randomised
  trees on the Ward 145 attributes + 118 element fractions), ``scratch`` (IRNet-17, the modern
  recipe, from random weights), ``pretrained`` (IRNet-17, modern recipe, trained on the
  pre-training set only: the zero-shot score) and ``finetuned`` (that network fine-tuned with
  ``warm_start=True``: the same recipe as ``scratch``, same epochs, patience and time limit;
  ``--finetune-lr`` another peak learning rate, a model of its own, ``finetuned_lr<value>``).
  Networks carve their 10 % early-stopping split from their own training rows; nothing is chosen
  on the test rows.

    python benchmarks/materials_transfer.py --folds 0 --pretrain-rows 20000 \\
        --pretrain-time-limit 1200 --time-limit 900

``--pretrain-time-limit`` / ``--time-limit`` stop a network fit after the epoch that passes that
many seconds (keeping its best validation epoch); the JSON says whether a fit stopped so.

Resumable: each finished (target, fold, model) is written to the JSON at once and skipped by a
rerun with the same settings (``--fresh`` starts over); the pre-trained network is saved under
``--work-dir`` so that a rerun fine-tunes it without pre-training again. A line per step.
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
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "materials_transfer.json"
MODELS = ("extra_trees", "scratch", "pretrained", "finetuned")
#: settings shared by every cell of a result file
SIGNATURE = ("source", "pretrain_rows", "seed", "recipe")


def composition_keys(entries, exact=True):
    """One key per formula (string) or composition: equal keys, same composition up to scale.

    ``exact=False``: pymatgen's ``Composition(f).reduced_formula``. It leaves non-integer formulas
    unreduced (``FeO1.5`` stays ``Fe1O1.5``, not ``Fe2O3``; 451 of expt_gap's 4,604 formulas are
    non-integer), so the default key is the element fractions rounded to 6 decimals, which also
    matches those. Each distinct string is parsed once."""
    from pymatgen.core import Composition

    def key(e):
        c = Composition(e) if isinstance(e, str) else e
        if not exact:
            return c.reduced_formula
        return tuple(sorted((el.symbol, round(x, 6)) for el, x in c.fractional_composition.items()))

    cache = {}
    return [cache.setdefault(e, key(e)) if isinstance(e, str) else key(e) for e in entries]


def excluded(source_entries, source_idx, target_test_entries, exact=True):
    """Boolean mask over `source_idx`: the rows whose composition (:func:`composition_keys`) is
    that of one of `target_test_entries`."""
    banned = set(composition_keys(target_test_entries, exact))
    keys = composition_keys([source_entries[i] for i in np.asarray(source_idx)], exact)
    return np.array([k in banned for k in keys], dtype=bool)


def pretrain_rows(source_entries, source_train_idx, target_test_entries, rows=0, seed=0):
    """(rows of the source table to pre-train on, number removed by the exclusion): the rows
    `source_train_idx` whose composition is not that of any of `target_test_entries`
    (:func:`excluded`), then `rows` of them drawn with `seed` (0 or more than there are: all), sorted."""
    idx = np.asarray(source_train_idx)
    out = excluded(source_entries, idx, target_test_entries)
    kept = idx[~out]
    if rows and rows < len(kept):
        kept = np.random.default_rng(seed).choice(kept, size=rows, replace=False)
    return np.sort(kept), int(out.sum())


def network_args(args, time_limit, epochs=0):
    """The namespace materials_learning_curve.make_model / cell_settings take for IRNet-17."""
    return argparse.Namespace(recipe=args.recipe, epochs=epochs, patience=0, time_limit=time_limit,
                              et_trees=args.et_trees, rf_trees=100, seed=args.seed)


def network_info(est, since=0):
    """Epochs run, best epoch (counted from `since`), time-limit stop, of a fitted network."""
    rows = est.history_[since:]
    best = min(rows, key=lambda r: r.get("val_loss", r["train_loss"]))
    return {"epochs_run": len(rows), "best_epoch": int(best["epoch"]) - int(rows[0]["epoch"]) + 1,
            "stopped_by_time_limit": any(bool(r.get("stopped_by_time_limit")) for r in rows)}


def fit_network(est, X_tr, y_tr, X_te=None, y_te=None):
    """Fit (or fine-tune) a network with per-epoch progress on standard error; its cell: test
    metrics (none without test rows), wall and CPU seconds of the fit, epochs run and best epoch of this fit."""
    from hsickit.apps.materials.matbench import regression_metrics

    since = len(est.history_) if hasattr(est, "members_") else 0
    est.set_params(verbose=1)
    start, cpu = time.perf_counter(), time.process_time()
    est.fit(X_tr, y_tr)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    scores = {} if X_te is None else regression_metrics(y_te, est.predict(X_te))
    return {**scores, "fit_seconds": wall, "fit_cpu_seconds": cpu,
            "load_average": os.getloadavg()[0], "n_train": int(len(X_tr)), **network_info(est, since)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--target", default="expt_gap", choices=["expt_gap", "steels"])
    p.add_argument("--source", default="mp_gap", choices=["mp_gap", "mp_e_form"])
    p.add_argument("--folds", nargs="+", type=int, default=[0], help="Official folds of the target task.")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--pretrain-rows", type=int, default=20000, help="Pre-training rows after the exclusion (0: all).")
    p.add_argument("--recipe", default="modern", choices=["modern", "paper"])
    p.add_argument("--pretrain-epochs", type=int, default=0, help="Override the recipe's epochs for pre-training.")
    p.add_argument("--pretrain-time-limit", type=float, default=1200.0, help="Seconds for the pre-training fit.")
    p.add_argument("--time-limit", type=float, default=900.0, help="Seconds per scratch / fine-tuning fit.")
    p.add_argument("--finetune-lr", type=float, default=None,
                   help="Peak learning rate of the fine-tuning (default: the recipe's, as for scratch); measured as a "
                        "model of its own, finetuned_lr<value>.")
    p.add_argument("--et-trees", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/materials_transfer"),
                   help="Where the pre-trained networks are kept (resume).")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--fresh", action="store_true", help="Ignore cells already in --out.")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hsickit.apps.materials.estimator import RECIPES, MaterialsRegressor
    from hsickit.apps.materials.matbench import MATBENCH_UNITS, regression_metrics
    from hsickit.core.files import write_json
    from hsickit.core.report import markdown_table
    from hsickit.datasets.materials import load_matbench, matbench_folds

    import materials_learning_curve as lc  # beside this script
    import materials_matbench as mb
    settings = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "fresh"},
                "unit": MATBENCH_UNITS.get(args.target, ""), "machine": f"cpu, {torch.get_num_threads()} torch thread(s)"}
    results = lc.load_results(args.out, settings, args.fresh, signature=SIGNATURE)
    results.setdefault("pretraining", {})
    results["command"] = " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    unit = settings["unit"]

    table, X, _ = mb.task_data(args.target, args.data)
    source = None
    for k in args.folds:
        tr, te = matbench_folds(table)[k]
        y_tr, y_te = table.y[tr], table.y[te]
        key = f"{args.target} fold {k}"
        pre, pre_cell = None, None
        for name in args.models:
            cell_name = name if name != "finetuned" or args.finetune_lr is None else f"finetuned_lr{args.finetune_lr:g}"
            scratch_args = network_args(args, args.time_limit)
            cs = (lc.cell_settings("extra_trees", scratch_args) if name == "extra_trees"
                  else {**lc.cell_settings("irnet17", scratch_args),
                        "pretrain_time_limit": args.pretrain_time_limit, "pretrain_epochs": args.pretrain_epochs or None})
            if lc.done(results, args.target, cell_name, k, cs):
                print(f"{key} {cell_name}: already measured, skipped", flush=True)
                continue
            if name == "extra_trees":
                print(f"{key} extra_trees: fitting on {len(tr)} rows ...", flush=True)
                F = lc.features_of("extra_trees", table, X, mb)
                cell = lc.run_cell("extra_trees", F[tr], y_tr, F[te], y_te, scratch_args)
            elif name == "scratch":
                print(f"{key} scratch IRNet-17: fitting on {len(tr)} rows ...", flush=True)
                cell = fit_network(lc.make_model("irnet17", scratch_args, len(tr)), X[tr], y_tr, X[te], y_te)
            else:  # pretrained / finetuned: the pre-trained network of this fold, trained once, kept in --work-dir
                folder = args.work_dir / f"{args.source}_for_{args.target}_fold{k}_{args.pretrain_rows or 'all'}_seed{args.seed}"
                if pre is None:
                    if source is None:
                        print(f"loading {args.source} ...", flush=True)
                        source = load_matbench(args.source, args.data)
                    rows, removed = pretrain_rows(source.compositions, matbench_folds(source)[0][0],
                                                  [table.formulas[i] for i in te], args.pretrain_rows, args.seed)
                    test_formulas = [table.formulas[i] for i in te]
                    source_train = matbench_folds(source)[0][0]
                    info = {"source": args.source, "source_fold0_train_rows": int(len(source_train)),
                            "removed_by_composition_exclusion": removed, "rows": int(len(rows)),
                            "removed_by_reduced_formula_alone": int(excluded(source.compositions, source_train,
                                                                             test_formulas, exact=False).sum()),
                            "target_test_compositions": len(set(composition_keys(test_formulas)))}
                    print(f"{key}: {removed} {args.source} rows removed (composition in the test part), "
                          f"pre-training on {len(rows)} rows", flush=True)
                    if (folder / "materials.json").exists():
                        pre = MaterialsRegressor.load(folder)
                        print(f"{key}: pre-trained network loaded from {folder}", flush=True)
                    else:
                        X_pre = mb.ward_features([source.compositions[i] for i in rows])
                        pre = lc.make_model("irnet17", network_args(args, args.pretrain_time_limit, args.pretrain_epochs),
                                            len(rows))
                        print(f"{key}: pre-training IRNet-17 on {len(rows)} {args.source} rows ...", flush=True)
                        fitted = fit_network(pre, X_pre, source.y[rows])
                        info.update({f: fitted[f] for f in ("fit_seconds", "fit_cpu_seconds", "load_average",
                                                            "epochs_run", "best_epoch", "stopped_by_time_limit")},
                                    validation_mae=pre.validation_metrics_["mae"])
                        pre.save(folder)
                        results["pretraining"][key] = info
                        write_json(args.out, results)
                        print(f"{key}: pre-trained in {info['fit_seconds']:.0f} s, {info['epochs_run']} epochs (best {info['best_epoch']}), "
                              f"{args.source} validation MAE {info['validation_mae']:.4f}", flush=True)
                    results["pretraining"].setdefault(key, info)
                    pre_cell = results["pretraining"][key]
                if name == "pretrained":
                    cell = {**regression_metrics(y_te, pre.predict(X[te])), "n_train": 0,
                            "fit_seconds": pre_cell.get("fit_seconds"), "pretrain_rows": pre_cell["rows"]}
                else:
                    import copy

                    ft = copy.deepcopy(pre)  # same recipe, epochs, patience and time limit as scratch
                    ft.set_params(warm_start=True, epochs=RECIPES[args.recipe]["epochs"],
                                  patience=RECIPES[args.recipe]["patience"], time_limit=args.time_limit,
                                  lr=RECIPES[args.recipe]["lr"] if args.finetune_lr is None else args.finetune_lr)
                    print(f"{key} {cell_name}: fine-tuning the pre-trained IRNet-17 on {len(tr)} rows ...", flush=True)
                    cell = {**fit_network(ft, X[tr], y_tr, X[te], y_te),
                            "pretrain_seconds": pre_cell.get("fit_seconds"), "pretrain_rows": pre_cell["rows"]}
            results["cells"].append({"task": args.target, "model": cell_name, "size": k, "fold": k, "settings": cs, **cell})
            write_json(args.out, results)
            extra = f", {cell['epochs_run']} epochs (best {cell['best_epoch']})" if "epochs_run" in cell else ""
            secs = "" if cell.get("fit_seconds") is None else f", fit {cell['fit_seconds']:.0f} s"
            print(f"{key} {cell_name}: test MAE {cell['mae']:.4f} {unit} on {len(te)} rows{secs}{extra}", flush=True)

    rows = [{"target": c["task"], "fold": c["fold"], "model": c["model"], "MAE": round(c["mae"], 4),
             "fit s": "" if c.get("fit_seconds") is None else round(c["fit_seconds"]),
             "epochs (best)": f"{c['epochs_run']} ({c['best_epoch']})" if "epochs_run" in c else "",
             "time-limited": c.get("stopped_by_time_limit", "")} for c in lc.latest(results["cells"])]
    print(markdown_table(rows))
    for key, info in results["pretraining"].items():
        print(f"{key}: pre-training {info['rows']} rows, {info['removed_by_composition_exclusion']} removed by the "
              f"composition exclusion, {info.get('fit_seconds', 0):.0f} s")
    print(f"results in {args.out}")
    return results


if __name__ == "__main__":
    main()
