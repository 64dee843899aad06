"""MIT-BIH DS1 benchmark of the ECG multi-resolution beat classifier (inter-patient, DS1 only).

Patient-wise cross-validation inside DS1 (DS2 is never touched): for each fold the four
channel networks are trained on the training records, and scored alone; the fused
representation (channel outputs + hand-crafted features) is scored with the default
two-stage gradient boosting (V first, its V stage reading the rr channel; 5 seeds averaged, one seed
alone, and its V stage reading every channel), one-stage gradient boosting, a backprop and (``--hsic``)
an HSIC downstream residual MLP; and the hand-crafted features alone with both boostings.
Pooled figures come with 95 % intervals that draw whole test records (a bootstrap over
patients: how far the figure could move on other patients). Throughput: DS1 (22 records x
30 min) from WFDB files to features (all views) in seconds, and inference beats per second.

    python benchmarks/ecg_mitdb.py --folds val,4 --stacking holdout --holdout-fraction 0.3 --inner-fraction 0.15 --hsic

``--folds val`` is the fixed split (train 17 / test 106, 118, 124, 207, 215); ``4`` adds
4-fold GroupKFold by patient. In every fold ``--inner-fraction`` of the training records
(never the fold's test records) stop the downstream's training early (and tune the class
bias with ``--tune-bias``); with holdout stacking, ``--holdout-fraction`` of the remaining
records train the downstream classifier and stop the channels early. The default data path
is ../shared/data/ecg/mitdb-ds1 (``--data``). Prints tables and writes
benchmarks/results/ecg_mitdb.json (+ .nc: class x metric x fold of the fused model).
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import clone

from hsickit.apps.ecg.beats import BeatConfig, load_beats
from hsickit.apps.ecg.fusion import MultiResolutionClassifier, holdout_records
from hsickit.apps.ecg.metrics import beat_metrics, metrics_dataset, record_intervals
from hsickit.core.files import atomic_write, write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.ecg_splits import DS1, DS1_VALIDATION, patient_kfold, subject_of

ROOT = Path(__file__).resolve().parent
INTERVAL_KEYS = ("macro_f1", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V")
KEYS = ("macro_f1", "accuracy", "kappa", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V", "sensitivity_F", "ppv_F", "sensitivity_N", "ppv_N")


def folds(spec: str, records):
    """``(partition, fold, train, test)``: "val" is its own partition; "N" and "loro" (one
    record per fold) are patient-wise partitions whose test predictions are also pooled."""
    for part in spec.split(","):
        if part == "val":
            yield None, "val", [r for r in records if r not in DS1_VALIDATION], [r for r in records if r in DS1_VALIDATION]
        elif part.isdigit() or part == "loro":
            k = len({subject_of(r) for r in records}) if part == "loro" else int(part)
            for i, (tr, te) in enumerate(patient_kfold(records, k, random_state=0)):
                yield part, f"{'loro' if part == 'loro' else 'k' + part}.{i}", tr, te
        else:
            raise SystemExit(f"--folds: unknown part {part!r}; use val, a number of folds, or loro")


def inner_validation(beats, train_records, fraction=0.2, seed=0):
    """Records inside the training records (never the fold's test records) for the downstream
    classifier's early stopping and class-bias tuning, chosen to contain S and V beats."""
    return holdout_records(beats.records(train_records), fraction, random_state=seed + 1)


def run_fold(args, beats, channels, fused_name, partition, fold, tr_names, te_names) -> dict:
    """Train and score every model of one fold: its predictions, inference throughput and log line."""
    torch.set_num_threads(args.threads)
    val_names = inner_validation(beats, tr_names, args.inner_fraction, args.seed) if args.inner_fraction > 0 else []  # early stopping on training-side records only
    fit_names = [r for r in tr_names if r not in val_names]
    train, test = beats.records(fit_names), beats.records(te_names)
    val = beats.records(val_names) if val_names else None
    y_test = test.y.astype(str)
    start = time.perf_counter()
    clf = MultiResolutionClassifier(channels=channels, channel_epochs=args.channel_epochs, epochs=args.epochs,
                                    downstream=args.downstream, class_weight=args.class_weight, stacking=args.stacking,
                                    holdout_fraction=args.holdout_fraction, crossfit_folds=args.crossfit_folds,
                                    tune_bias=args.tune_bias, random_state=args.seed, verbose=0)
    fusion_data = clf.fit_channels(train, val)
    clf.fit_downstream(*fusion_data)
    fit_s = time.perf_counter() - start
    predictions = {}
    for name, net in clf.channels_.items():
        predictions[f"channel:{name}"] = net.predict(test)
    t1 = time.perf_counter()
    pred = clf.predict(test)
    infer_s = time.perf_counter() - t1
    predictions[fused_name] = pred
    if args.tune_bias:
        raw = clf.downstream_.predict_proba(clf.representation(test))
        predictions[f"{fused_name[:-1]}, no bias tuning)"] = clf.classes_[raw.argmax(1)]
    fused = beat_metrics(y_test, pred)
    print(f"fold {fold}: {fused_name} " + " ".join(f"{k}={fused[k]:.3f}" for k in KEYS), flush=True)
    # the same channels and representation; only the downstream classifier changes
    others = {"fused (gradient boosting)": {"downstream": "gradient_boosting"},
              "fused (residual MLP, backprop)": {"downstream": "residual_mlp", "training": "backprop"}}
    others = {name: params for name, params in others.items() if name != fused_name}
    if args.downstream == "ventricular_first":  # the default averages 5 seeds of its stages: one seed alone
        others[f"{fused_name[:-1]}, one seed)"] = {"downstream": clone(clf.downstream_).set_params(n_seeds=1)}
        others[f"{fused_name[:-1]}, V stage reads every channel)"] = {"ventricular_channels": channels}
    if args.hsic:
        others["fused (residual MLP, HSIC)"] = {"downstream": "residual_mlp", "training": "hsic"}
    for name, params in others.items():
        try:
            predictions[name] = copy.copy(clf).set_params(**params).fit_downstream(*fusion_data).predict(test)
        except Exception as err:  # report, do not lose the fold
            print(f"fold {fold}: {name} failed: {err}", flush=True)
    # the library's features-only model (CLI --channels none), with its default two-stage and a one-stage downstream
    for name, downstream in (("features + two-stage boosting", "ventricular_first"), ("features + gradient boosting", "gradient_boosting")):
        features_only = MultiResolutionClassifier(channels=(), downstream=downstream, random_state=args.seed).fit(train)
        predictions[f"baseline: {name}"] = features_only.predict(test)
    log = (f"fold {fold}: test records {','.join(te_names)}; early-stopping records {','.join(val_names)}; "
           f"downstream trained on {','.join(clf.holdout_records_) or 'all training records'}; fit {fit_s:.0f} s")
    return {"partition": partition, "fold": fold, "predictions": {m: (y_test, p) for m, p in predictions.items()},
            "records": test.record.astype(str), "throughput": len(test) / infer_s, "log": log}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "mitdb-ds1"))
    ap.add_argument("--folds", default="val")
    ap.add_argument("--channels", default="beat,rhythm,wavelet,rr")
    ap.add_argument("--channel-epochs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--class-weight", default="balanced")
    ap.add_argument("--inner-fraction", type=float, default=0.0, help="training records held out for early stopping / bias tuning")
    ap.add_argument("--stacking", default="crossfit", choices=["holdout", "crossfit", "insample"])
    ap.add_argument("--crossfit-folds", type=int, default=3)
    ap.add_argument("--downstream", default="ventricular_first", help="ventricular_first, gradient_boosting, residual_mlp or mlp")
    ap.add_argument("--holdout-fraction", type=float, default=0.3)
    ap.add_argument("--tune-bias", action="store_true", help="tune per-class bias on the inner validation records")
    ap.add_argument("--hsic", action="store_true", help="also train a downstream residual MLP with the HSIC bottleneck")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per fold")
    ap.add_argument("--jobs", type=int, default=1, help="folds run side by side (processes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_mitdb.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    channels = tuple(c for c in args.channels.split(",") if c)
    fused_name = {"ventricular_first": "fused (two-stage boosting, V first)", "gradient_boosting": "fused (gradient boosting)",
                  "residual_mlp": "fused (residual MLP, backprop)"}.get(args.downstream, f"fused ({args.downstream})")

    t0 = time.perf_counter()
    beats = load_beats(args.data, list(DS1), BeatConfig(), annotated=True, verbose=0)
    load_s = time.perf_counter() - t0
    print(f"DS1 WFDB -> features (all views): {load_s:.1f} s for {len(beats)} beats, {len(set(beats.record))} records")

    runs = Parallel(n_jobs=args.jobs)(delayed(run_fold)(args, beats, channels, fused_name, *spec) for spec in folds(args.folds, list(DS1)))
    rows, per_fold, pooled = [], {}, {}
    throughput = runs[0]["throughput"]  # the first fold's test records
    for run in runs:
        for model, (y_test, p) in run["predictions"].items():
            m = beat_metrics(y_test, p)
            rows.append({"fold": run["fold"], "model": model, **{k: round(m[k], 4) for k in KEYS}})
            per_fold.setdefault(model, []).append(m)
            if run["partition"] is not None:
                pooled.setdefault(run["partition"], {}).setdefault(model, []).append((y_test, np.asarray(p, str), run["records"]))
        print(run["log"])
        print(markdown_table([r for r in rows if r["fold"] == run["fold"]]), flush=True)

    summary = []
    for model, ms in per_fold.items():  # an undefined metric (NaN: no F beats in a fold, F never predicted) counts in no fold's mean
        summary.append({"model": model, "folds": len(ms), **{k: round(float(np.nanmean([m[k] for m in ms])), 4) for k in KEYS}})
    print("\nMean over folds\n" + markdown_table(summary))
    # de Chazal's gross statistics: every test beat of a partition counted once, in one confusion matrix
    # and how far they could move on other patients: 95 % intervals drawing whole test records
    pooled_rows, interval_rows = [], []
    for partition, models in pooled.items():
        for model, parts in models.items():
            y, p, rec = (np.concatenate(a) for a in zip(*parts))
            m, iv = beat_metrics(y, p), record_intervals(y, p, rec, random_state=args.seed)
            pooled_rows.append({"partition": partition, "model": model, "folds": len(parts), **{k: round(m[k], 4) for k in KEYS},
                                "interval95": {k: round(v, 4) for k, v in iv.items()}})
            interval_rows.append({"partition": partition, "model": model, **{
                k: f"{m[k]:.3f} [{iv[k + '_low']:.3f}, {iv[k + '_high']:.3f}]" for k in INTERVAL_KEYS}})
    if pooled_rows:
        print("\nPooled over the folds of each partition (gross statistics)\n" +
              markdown_table([{k: v for k, v in r.items() if k != "interval95"} for r in pooled_rows]))
        print("\nPooled, with 95 % intervals drawing whole test records (bootstrap)\n" + markdown_table(interval_rows))
    print(f"\nthroughput: DS1 WFDB -> features {load_s:.1f} s; inference {throughput:,.0f} beats/s "
          f"({args.threads} torch thread(s) per fold, {args.jobs} fold(s) side by side)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"args": vars(args), "ds1_to_features_seconds": load_s, "n_beats": len(beats),
                     "inference_beats_per_second": throughput, "per_fold": rows, "mean": summary,
                     "pooled": pooled_rows})
    fused = per_fold.get(fused_name, [])
    if fused:
        atomic_write(out.with_suffix(".nc"), metrics_dataset(fused, folds=[r["fold"] for r in rows if r["model"] == fused_name]).to_netcdf(engine="scipy"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
