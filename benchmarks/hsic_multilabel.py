"""HSIC training on multi-label targets: which estimator and label kernel, measured against backprop.

PTB-XL superdiagnostic (5 labels) from ``../shared/data/ecg/ptbxl-sample``, two networks:

- ``cnn``: the record task's 1-D CNN over the whole 12-lead record
  (:class:`~hsickit.apps.ecg.channels.RecordCNN`, the ``cnn`` channel's size);
- ``mlp``: a core :class:`~hsickit.core.estimators.DeepClassifier` MLP (64, 64) on the HRV features,
  the median-beat measurements and the median beat of every lead (standardised), the size of the
  record task's MLP downstream, 5 format-layer epochs in HSIC mode.

Choice (``--part select``): trained on folds 1-7, macro AUROC on fold 8, for every HSIC estimator x
label kernel of ``--variants`` (``hsickit.core.training.LABEL_KERNELS``) and backprop; fold 9 is not
read. Report (``--part report``): trained on folds 1-8, macro AUROC on fold 9, for backprop, HSIC as
it was before (NOCCO, Gaussian label kernel) and HSIC with the defaults now in effect. Seeds: ``--seeds``
for the CNN, ``--mlp-seeds`` for the (fast) MLP. Mean and standard deviation over seeds.

    python benchmarks/hsic_multilabel.py --out benchmarks/results/hsic_multilabel.json

Results are written after every fit; a rerun with the same ``--out`` skips the fits already there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("nocco/gaussian", "nocco/linear", "nocco/balanced", "cka/gaussian", "cka/linear", "cka/balanced")
BEFORE = "nocco/gaussian"  # the only multi-label kernel, and the NOCCO default, before the label kernels


def fit_score(net: str, setting: str, train, test, seed: int) -> float:
    """Macro AUROC on ``test`` of ``net`` trained on ``train`` with ``setting`` ("backprop", "default"
    or "ESTIMATOR/LABEL_KERNEL")."""
    from hsickit.apps.ecg.channels import RecordCNN
    from hsickit.apps.ecg.metrics import record_metrics
    from hsickit.apps.ecg.records import RECORD_CHANNELS
    from hsickit.core.estimators import DeepClassifier

    training = "backprop" if setting == "backprop" else "hsic"
    hsic = {}
    if "/" in setting:
        estimator, kernel = setting.split("/")
        hsic = {"estimator": estimator, "label_kernel": kernel}
    if net == "cnn":
        mean, std = train.rhythm.mean((0, 2), keepdims=True), train.rhythm.std((0, 2), keepdims=True)
        model = RecordCNN(model_params=dict(RECORD_CHANNELS["cnn"][1]), training=training, hsic_params=hsic or None,
                          random_state=seed).fit((train.rhythm - mean) / std, train.Y)
        proba = model.predict_proba((test.rhythm - mean) / std)
    else:
        def X(rs):
            return np.concatenate([rs.features, rs.beat.reshape(len(rs), -1)], axis=1)

        X_train = X(train)
        mu, sd = X_train.mean(0), X_train.std(0) + 1e-6
        model = DeepClassifier(model="mlp", model_params={"hidden": (64, 64)}, training=training, epochs=40, batch_size=64,
                               patience=None, validation_fraction=0.0, random_state=seed, verbose=0,
                               hsic_params={"format_epochs": 5, **hsic} if training == "hsic" else None)
        model.fit(((X_train - mu) / sd).astype(np.float32), train.Y.astype(int))
        proba = model.predict_proba(((X(test) - mu) / sd).astype(np.float32))
    return record_metrics(test.Y, proba, test.labels)["macro_auroc"]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "ptbxl-sample"))
    ap.add_argument("--part", nargs="*", default=["select", "report"], choices=["select", "report"])
    ap.add_argument("--nets", nargs="*", default=["cnn", "mlp"], choices=["cnn", "mlp"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--mlp-seeds", type=int, nargs="*", default=list(range(10)))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "hsic_multilabel.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ecg_records as B
    from hsickit.core.files import read_json, write_json
    from hsickit.core.report import markdown_table

    views, folds, load_s, _ = B.ptbxl_sets(args.data, args.threads)
    rs = B.task_set(args.data, views, "superdiagnostic", 3)
    print(f"{len(rs)} records read in {load_s:.0f} s; labels {', '.join(rs.labels)}", flush=True)
    results = read_json(args.out) if args.out.exists() else {"command": " ".join(sys.argv), "fits": []}
    done = {(f["part"], f["net"], f["setting"], f["seed"]) for f in results["fits"]}
    for part in args.part:
        train_folds, test_fold = (range(1, 8), 8) if part == "select" else (range(1, 9), 9)
        train = rs.subset([r for r in rs.records if folds[r] in train_folds])
        test = rs.subset([r for r in rs.records if folds[r] == test_fold])
        settings = ["backprop", *args.variants] if part == "select" else ["backprop", BEFORE, "default"]
        for net in args.nets:
            for setting in settings:
                for seed in (args.seeds if net == "cnn" else args.mlp_seeds):
                    if (part, net, setting, seed) in done:
                        continue
                    t = time.perf_counter()
                    auroc = fit_score(net, setting, train, test, seed)
                    results["fits"].append({"part": part, "net": net, "setting": setting, "seed": seed, "n_train": len(train),
                                            "n_test": len(test), "test_fold": test_fold, "macro_auroc": round(float(auroc), 4),
                                            "fit_s": round(time.perf_counter() - t, 1)})
                    print(results["fits"][-1], flush=True)
                    write_json(args.out, results)
    rows = []
    for key in dict.fromkeys((f["part"], f["net"], f["setting"]) for f in results["fits"]):
        scores = [f["macro_auroc"] for f in results["fits"] if (f["part"], f["net"], f["setting"]) == key]
        rows.append({"part": key[0], "net": key[1], "training": key[2], "test fold": 8 if key[0] == "select" else 9,
                     "seeds": len(scores), "macro AUROC": round(statistics.mean(scores), 4),
                     "std": round(statistics.stdev(scores), 4) if len(scores) > 1 else None})
    results["summary"] = rows
    write_json(args.out, results)
    print(markdown_table(rows))
    return results


if __name__ == "__main__":
    main()
