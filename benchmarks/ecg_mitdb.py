"""MIT-BIH DS1 benchmark of the ECG multi-resolution beat classifier (inter-patient, DS1 only).

Patient-wise cross-validation inside DS1 (DS2 is never touched): for each fold the four
channel networks are trained on the training records, and scored alone; the fused
representation (embeddings + hand-crafted features) is scored with a backprop and an HSIC
downstream residual MLP, and with a features-only baseline (scikit-learn gradient
boosting on the hand-crafted features). Throughput: DS1 (22 records x 30 min) from WFDB
files to features (all views) in seconds, and inference beats per second.

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
import json
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.ecg.beats import BeatConfig, load_beats
from hsickit.apps.ecg.fusion import MultiResolutionClassifier, holdout_records, tune_class_bias
from hsickit.apps.ecg.metrics import beat_metrics, metrics_dataset
from hsickit.core.io import atomic_write, markdown_table, write_json
from hsickit.datasets.ecg_splits import DS1, DS1_VALIDATION, patient_kfold

ROOT = Path(__file__).resolve().parent
KEYS = ("macro_f1", "accuracy", "kappa", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V", "sensitivity_F", "ppv_F", "sensitivity_N", "ppv_N")


def folds(spec: str, records):
    for part in spec.split(","):
        if part == "val":
            yield "val", [r for r in records if r not in DS1_VALIDATION], [r for r in records if r in DS1_VALIDATION]
        elif part.isdigit():
            for i, (tr, te) in enumerate(patient_kfold(records, int(part), random_state=0)):
                yield f"k{part}.{i}", tr, te


def inner_validation(beats, train_records, fraction=0.2, seed=0):
    """Records inside the training records (never the fold's test records) for the downstream
    classifier's early stopping and class-bias tuning, chosen to contain S and V beats."""
    return holdout_records(beats.records(train_records), fraction, random_state=seed + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "mitdb-ds1"))
    ap.add_argument("--folds", default="val")
    ap.add_argument("--channels", default="beat,rhythm,wavelet,rr")
    ap.add_argument("--channel-epochs", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--class-weight", default="sqrt")
    ap.add_argument("--inner-fraction", type=float, default=0.2, help="training records held out for bias tuning / early stopping")
    ap.add_argument("--stacking", default="holdout", choices=["holdout", "insample"])
    ap.add_argument("--holdout-fraction", type=float, default=0.3)
    ap.add_argument("--tune-bias", action="store_true", help="tune per-class bias on the inner validation records")
    ap.add_argument("--hsic", action="store_true", help="also train the downstream MLP with the HSIC bottleneck")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_mitdb.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    channels = tuple(c for c in args.channels.split(",") if c)

    t0 = time.perf_counter()
    beats = load_beats(args.data, list(DS1), BeatConfig(), annotated=True, verbose=0)
    load_s = time.perf_counter() - t0
    print(f"DS1 WFDB -> features (all views): {load_s:.1f} s for {len(beats)} beats, {len(set(beats.record))} records")

    rows, per_fold, throughput = [], {}, None
    for fold, tr_names, te_names in folds(args.folds, list(DS1)):
        val_names = inner_validation(beats, tr_names, args.inner_fraction, args.seed) if args.inner_fraction > 0 else []  # early stopping on training-side records only
        fit_names = [r for r in tr_names if r not in val_names]
        train, test = beats.records(fit_names), beats.records(te_names)
        val = beats.records(val_names) if val_names else None
        train = train.subset(train.y != "Q")
        y_test = test.y.astype(str)
        start = time.perf_counter()
        clf = MultiResolutionClassifier(channels=channels, channel_epochs=args.channel_epochs, epochs=args.epochs,
                                        class_weight=args.class_weight, stacking=args.stacking, holdout_fraction=args.holdout_fraction,
                                        tune_bias=args.tune_bias, random_state=args.seed,
                                        verbose=0).fit(train, val)
        fit_s = time.perf_counter() - start
        results = {}
        for name, net in clf.channels_.items():
            results[f"channel:{name}"] = beat_metrics(y_test, net.predict(test))
        t1 = time.perf_counter()
        pred = clf.predict(test)
        infer_s = time.perf_counter() - t1
        results["fused (backprop)"] = beat_metrics(y_test, pred)
        if args.tune_bias:
            raw = clf.downstream_.predict_proba(clf.representation(test))
            results["fused (backprop, no bias tuning)"] = beat_metrics(y_test, clf.classes_[raw.argmax(1)])
        if throughput is None:
            throughput = len(test) / infer_s
        print(f"fold {fold}: fused (backprop) " + " ".join(f"{k}={results['fused (backprop)'][k]:.3f}" for k in KEYS), flush=True)
        if args.hsic:
            # same channels, same representation; only the downstream MLP is trained by the HSIC bottleneck
            hsic = MultiResolutionClassifier(channels=channels, downstream="residual_mlp", training="hsic", epochs=args.epochs,
                                             class_weight=args.class_weight, random_state=args.seed)
            hsic.channels_, hsic.feature_scaler_, hsic.feature_labels_ = clf.channels_, clf.feature_scaler_, clf.feature_labels_
            fusion = train.records(clf.holdout_records_) if clf.holdout_records_ else train
            val_known = val.subset(np.isin(val.y, fusion.y)) if val is not None else None
            Z, Zv = clf.representation(fusion), clf.representation(val_known) if val is not None else None
            hsic.downstream_ = hsic._downstream(fusion.y.astype(str))
            try:
                hsic.downstream_.fit(Z, fusion.y.astype(str), X_val=Zv, y_val=None if val is None else val_known.y.astype(str))
                hsic.classes_ = hsic.downstream_.classes_.astype(str)
                hsic.class_bias_ = (tune_class_bias(hsic.downstream_.predict_proba(Zv), val_known.y, hsic.classes_)
                                    if val is not None and args.tune_bias else np.zeros(len(hsic.classes_)))
                results["fused (HSIC downstream)"] = beat_metrics(y_test, hsic.predict(test))
            except Exception as err:  # report, do not lose the fold
                print(f"fold {fold}: HSIC downstream failed: {err}", flush=True)
        from sklearn.ensemble import HistGradientBoostingClassifier

        gb = HistGradientBoostingClassifier(class_weight="balanced", max_iter=200, random_state=args.seed)
        gb.fit(train.features, train.y.astype(str))
        results["baseline: features + gradient boosting"] = beat_metrics(y_test, gb.predict(test.features))
        for model, m in results.items():
            rows.append({"fold": fold, "model": model, **{k: round(m[k], 4) for k in KEYS}})
            per_fold.setdefault(model, []).append(m)
        print(f"fold {fold}: test records {','.join(te_names)}; early-stopping records {','.join(val_names)}; "
              f"downstream trained on {','.join(clf.holdout_records_) or 'all training records'}; fit {fit_s:.0f} s")
        print(markdown_table([r for r in rows if r["fold"] == fold]), flush=True)

    summary = []
    for model, ms in per_fold.items():
        summary.append({"model": model, "folds": len(ms), **{k: round(float(np.mean([m[k] for m in ms])), 4) for k in KEYS}})
    print("\nMean over folds\n" + markdown_table(summary))
    print(f"\nthroughput: DS1 WFDB -> features {load_s:.1f} s; inference {throughput:,.0f} beats/s "
          f"({args.threads} torch thread(s))")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"args": vars(args), "ds1_to_features_seconds": load_s, "n_beats": len(beats),
                     "inference_beats_per_second": throughput, "per_fold": rows, "mean": summary})
    fused = per_fold.get("fused (backprop)", [])
    if fused:
        atomic_write(out.with_suffix(".nc"), metrics_dataset(fused, folds=[r["fold"] for r in rows if r["model"] == "fused (backprop)"]).to_netcdf(engine="scipy"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
