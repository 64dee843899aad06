"""Taxonomic loss vs cross-entropy, backprop vs HSIC, on the Kew leaf set (99 species).

Settings (suggested split: 6 train / 2 val / 2 test per species):

- ``all``     all 192 features (near the ceiling)
- ``shape``   the 64 shape features only
- ``images``  the 128x128 silhouettes only (``leafcnn``)
- ``fewshot`` 3 training specimens per species (drawn per seed), shape features

Model selection (early stopping) uses the val split only; every number is on the test
split. Each configuration runs over several seeds; the table gives mean ± std and the
paired difference taxonomic − CE with its seed-to-seed std. A multinomial logistic
regression (scikit-learn) is the non-deep baseline for the feature settings.

Run (the leaf folder as shipped)::

    python benchmarks/plants_leaf99.py --data ../shared/data/plants/leaf-classification-99 \\
        --settings shape,fewshot,all --seeds 5

Results go to ``benchmarks/results/plants_leaf99.json`` (rewritten after every run, so
an interrupted benchmark keeps what it measured).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.plants import TaxonomicClassifier, taxonomic_metrics
from hsickit.core.io import markdown_table, write_json
from hsickit.datasets.plants import load_leaf99

KEYS = ("accuracy_species", "accuracy_genus", "accuracy_family", "accuracy_order", "top5_species", "top5_genus",
        "top5_family", "hierarchical_f1", "mistake_severity", "mean_tree_distance", "nll_species",
        "backoff_accuracy@0.5", "backoff_leaf_share@0.5", "backoff_accuracy@0.7", "backoff_leaf_share@0.7",
        "backoff_accuracy@0.9", "backoff_leaf_share@0.9", "accuracy_genus_from_leaf", "accuracy_family_from_leaf")


def load_setting(root: Path, setting: str, seed: int, shots: int = 3):
    feats = {"all": "all", "shape": "shape", "images": "images", "fewshot": "shape"}[setting]
    tr, va, te = (load_leaf99(root, feats, split=s) for s in ("train", "val", "test"))
    if setting == "fewshot":
        rng = np.random.default_rng(1000 + seed)
        keep = np.concatenate([rng.choice(np.nonzero(tr.y == c)[0], shots, replace=False) for c in np.unique(tr.y)])
        tr = tr.subset(np.sort(keep))
    return tr, va, te


def run_one(root, setting, training, loss, seed, epochs, image_epochs):
    tr, va, te = load_setting(root, setting, seed)
    images = setting == "images"
    params = dict(epochs=image_epochs if images else epochs, patience=60 if images else 30,
                  lr=2e-3 if images else 1e-3, batch_size=32 if setting == "fewshot" else 64,
                  lr_schedule="cosine" if images else None)
    if training == "hsic":
        params["format_epochs"] = 30
    start = time.perf_counter()
    clf = TaxonomicClassifier(tr.taxonomy, loss=loss, training=training, random_state=seed, verbose=0, **params)
    clf.fit(tr.X, tr.y, X_val=va.X, y_val=va.y)
    m = clf.evaluate(te.X, te.y)
    return {k: m[k] for k in KEYS if k in m} | {"seconds": time.perf_counter() - start, "epochs_run": len(clf.history_),
                                                "n_train": len(tr), "n_test": len(te)}


def run_logreg(root, setting, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tr, va, te = load_setting(root, setting, seed)
    best = None
    for C in (0.1, 1.0, 10.0, 100.0):  # chosen on val
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(tr.X, tr.y)
        acc = model.score(va.X, va.y)
        if best is None or acc > best[0]:
            best = (acc, model)
    model = best[1]
    proba = np.zeros((len(te), tr.taxonomy.n_leaves))
    proba[:, model.classes_] = model.predict_proba(te.X)
    m = taxonomic_metrics(te.y, proba, tr.taxonomy)
    return {k: m[k] for k in KEYS if k in m}


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["setting"], r["training"], r["loss"]), []).append(r)
    rows = []
    for (setting, training, loss), rs in groups.items():
        row = {"setting": setting, "training": training, "loss": loss, "seeds": len(rs)}
        for k in KEYS + ("seconds",):
            vals = np.array([r[k] for r in rs if r.get(k) is not None], dtype=float)
            if len(vals):
                row[k] = float(vals.mean())
                row[k + "_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    # paired differences taxonomic - ce over the seeds both have
    for setting in sorted({r["setting"] for r in runs}):
        for training in ("backprop", "hsic"):
            ce = {r["seed"]: r for r in runs if (r["setting"], r["training"], r["loss"]) == (setting, training, "ce")}
            tx = {r["seed"]: r for r in runs if (r["setting"], r["training"], r["loss"]) == (setting, training, "taxonomic")}
            seeds = sorted(set(ce) & set(tx))
            if not seeds:
                continue
            row = {"setting": setting, "training": training, "loss": "taxonomic-ce", "seeds": len(seeds)}
            for k in KEYS:
                d = np.array([tx[s][k] - ce[s][k] for s in seeds], dtype=float)
                row[k] = float(d.mean())
                row[k + "_std"] = float(d.std(ddof=1)) if len(d) > 1 else 0.0
            rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                    / "plants" / "leaf-classification-99")
    ap.add_argument("--settings", default="shape,fewshot,all,images")
    ap.add_argument("--trainings", default="backprop,hsic")
    ap.add_argument("--losses", default="ce,taxonomic")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=300, help="max epochs, feature settings (early stopping on val)")
    ap.add_argument("--image-epochs", type=int, default=200, help="max epochs, image setting")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "plants_leaf99.json")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and skip them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    runs, baselines = [], []
    if args.resume and args.out.exists():
        old = json.loads(args.out.read_text())
        runs, baselines = old.get("runs", []), old.get("baselines", [])
    done = {(r["setting"], r["training"], r["loss"], r["seed"]) for r in runs}
    settings = args.settings.split(",")

    def save():
        write_json(args.out, {"benchmark": "plants_leaf99", "data": str(args.data), "args": vars(args),
                              "summary": summarise(runs), "runs": runs, "baselines": baselines})

    for setting in settings:
        if setting != "images" and not any(b["setting"] == setting for b in baselines):
            for seed in range(args.seeds if setting == "fewshot" else 1):
                baselines.append({"setting": setting, "model": "logistic regression", "seed": seed,
                                  **run_logreg(args.data, setting, seed)})
            save()
        for seed in range(args.seeds):
            for training in args.trainings.split(","):
                for loss in args.losses.split(","):
                    if (setting, training, loss, seed) in done:
                        continue
                    r = run_one(args.data, setting, training, loss, seed, args.epochs, args.image_epochs)
                    runs.append({"setting": setting, "training": training, "loss": loss, "seed": seed, **r})
                    print(f"{setting:8s} {training:8s} {loss:9s} seed {seed}: species {r['accuracy_species']:.3f} "
                          f"genus {r['accuracy_genus']:.3f} family {r['accuracy_family']:.3f} "
                          f"severity {r['mistake_severity']:.3f} ({r['seconds']:.0f} s)", flush=True)
                    save()
    save()
    show = ("accuracy_species", "accuracy_genus", "accuracy_family", "top5_species", "hierarchical_f1", "mistake_severity")
    table = [{"setting": r["setting"], "training": r["training"], "loss": r["loss"], "seeds": r["seeds"],
              **{k: f"{r[k]:.3f} ± {r[k + '_std']:.3f}" for k in show if k in r}} for r in summarise(runs)]
    print(markdown_table(table))
    if baselines:
        print()
        print(markdown_table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in b.items()
                               if k in ("setting", "model", "seed") + show} for b in baselines]))


if __name__ == "__main__":
    main()
