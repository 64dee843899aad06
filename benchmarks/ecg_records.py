"""Record-level multi-label diagnosis on real 12-lead records: each channel alone vs fused.

The LUDB developer subset (40 records, one per subject; the data README's 5-fold ``KFold``;
its held-out 160 records are not here). The CinC 2021 sample is too small to benchmark on (its
README says so: leaving one of its three hospitals out, most labels are never seen in
training). Per fold, :class:`~hsickit.apps.ecg.records.RecordClassifier` is trained on the training
records and scored on the test records; the test predictions are pooled over the folds
(every record scored once, by a model that never saw it) and scored with macro / micro F1
(threshold 0.5) and macro AUROC, for: the fused model (the default logistic downstream, and
an MLP downstream trained by backprop or the HSIC bottleneck), each
channel network alone, the HRV features alone (``channels=()``), and the no-skill
reference for F1 (every label scored by its prevalence in the training records, i.e. the
majority answer per label; its AUROC is 0.5 by definition and not computed). ``--seeds``
repeats everything and reports the mean and the spread.

    python benchmarks/ecg_records.py          # 3 seeds, about 3 minutes on 2 cores

Writes benchmarks/results/ecg_records_ludb.json and prints tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

from hsickit.apps.ecg.metrics import record_metrics
from hsickit.apps.ecg.records import RecordClassifier, load_record_set
from hsickit.core.io import markdown_table, write_json

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ecg"
KEYS = ("macro_f1", "micro_f1", "macro_auroc")




def run_seed(rs, splits, seed: int, epochs: int, channel_epochs: int) -> dict[str, np.ndarray]:
    """Pooled test scores of every model for one seed (rows in the order of ``rs.records``)."""
    scores: dict[str, np.ndarray] = {}
    for train_idx, test_idx in splits:
        train, test = rs.subset([rs.records[i] for i in train_idx]), rs.subset([rs.records[i] for i in test_idx])
        fits = {"fused (logistic)": RecordClassifier(channel_epochs=channel_epochs, random_state=seed),
                "fused (MLP, backprop)": RecordClassifier(downstream="mlp", epochs=epochs, channel_epochs=channel_epochs, random_state=seed),
                "fused (MLP, HSIC)": RecordClassifier(downstream="mlp", training="hsic", epochs=epochs, channel_epochs=channel_epochs,
                                                      random_state=seed),
                "HRV features alone (logistic)": RecordClassifier(channels=(), random_state=seed)}
        fold = {}
        for name, clf in fits.items():
            clf.fit(train)
            fold[name] = clf.predict_proba(test)
            if name == "fused (logistic)":
                fold.update({f"channel:{c}": clf.channel_proba(test, c) for c in clf.channels})
        fold["no skill (majority per label)"] = np.repeat(train.Y.mean(axis=0, keepdims=True), len(test), axis=0)
        for name, p in fold.items():
            scores.setdefault(name, np.zeros(rs.Y.shape))[test_idx] = p
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA / "ludb-dev"), help="a folder of LUDB records with ludb.csv")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="downstream epochs (RecordClassifier's default)")
    ap.add_argument("--channel-epochs", type=int, default=30, help="epochs per channel network (the default)")
    ap.add_argument("--min-count", type=int, default=3, help="labels with fewer positive records are left out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rs = load_record_set(args.data, min_count=args.min_count, verbose=0)
    splits = [(tr.tolist(), te.tolist()) for tr, te in KFold(5, shuffle=True, random_state=0).split(rs.records)]
    print(f"{args.data}: {len(rs)} records, {len(rs.labels)} labels ({', '.join(rs.labels)}); "
          f"left out (< {args.min_count} positive records): {', '.join(rs.dropped_labels) or 'none'}; {len(splits)} folds", flush=True)
    per_seed: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        for name, p in run_seed(rs, splits, seed, args.epochs, args.channel_epochs).items():
            m = record_metrics(rs.Y, p, rs.labels)
            if name.startswith("no skill"):  # a constant score ranks nothing (pooled over folds it would rank by fold)
                m.update({k: float("nan") for k in m if "auroc" in k})
            per_seed.setdefault(name, []).append(m)
        print(f"seed {seed}: fused (logistic) " + " ".join(f"{k}={per_seed['fused (logistic)'][-1][k]:.3f}" for k in KEYS), flush=True)
    rows = [{"model": name, "seeds": len(ms), **{k: round(float(np.mean([m[k] for m in ms])), 3) for k in KEYS},
             **{f"{k}_sd": round(float(np.std([m[k] for m in ms])), 3) for k in KEYS}} for name, ms in per_seed.items()]
    labels = [{"label": lab, "positives": int(rs.Y[:, j].sum()),
               **{f"{k}_{name.split(' ')[0]}": round(float(np.nanmean([m[f'{k}_{lab}'] for m in per_seed[name]])), 3)
                  for name in ("fused (logistic)", "HRV features alone (logistic)") for k in ("f1", "auroc")}}
              for j, lab in enumerate(rs.labels)]
    print("\nPooled test predictions, mean over seeds\n" + markdown_table(rows))
    print("\nPer label (mean over seeds)\n" + markdown_table(labels))
    out = Path(args.out or ROOT / "results" / "ecg_records_ludb.json")
    write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, "records": rs.records, "labels": rs.labels,
                     "dropped_labels": rs.dropped_labels, "folds": [[rs.records[i] for i in te] for _, te in splits],
                     "models": rows, "per_label": labels})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
