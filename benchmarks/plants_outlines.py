"""Leaf outlines on the Kew leaf set (99 species): outline representations vs MiniRocket vs the silhouette CNN.

Outlines are extracted from the shipped 128x128 silhouettes (``images_128.npz``) with
``hsickit.datasets.outlines.outlines_from_images`` (outer boundary of the largest connected
component, resampled to 128 points by arc length). Two inputs:

- ``cd128``: the 128-point centroid-distance signature, z-normalised per specimen: the format
  of the held-out use case (UCR-style leaf contour tables of another flora), so the default
  outline model is chosen on this input;
- ``xy128``: the (x, y) outline itself.

Models (``TaxonomicClassifier`` with ``representation``; CE and taxonomic loss; ``--seeds`` seeds):
``efd`` (xy only: EFDs need a curve) and ``fourier`` into the residual MLP, ``contour`` into the
1-D CNN ``contourcnn`` (trained without test-time averaging, evaluated with and without it:
``*_notta``). Side by side on the same outlines: aeon's ``MiniRocketClassifier`` on the same
signals the contour CNN sees (one run per seed), and the residual MLP / logistic regression
on the 64 precomputed shape features of ``train.csv``. The silhouette CNN (leafcnn small64,
0.854 species accuracy, 5 seeds, 2-core CPU) is cited from
``benchmarks/results/plants_leaf99_images_small64_cpu_5seeds.json``, not rerun.

Selection: the default outline representation is the one with the best mean validation species
accuracy on ``cd128`` (both losses pooled); the test split plays no part. Split: the suggested
6/2/2 per species split of ``labels.csv``.

Run (2-core CPU, one thread)::

    python benchmarks/plants_outlines.py --seeds 5 --out benchmarks/results/plants_outlines_cpu.json

(The committed JSON was made with --seeds 3, interrupted during seed 1, then resumed with --seeds 5 --resume:
plants_outlines_cpu.log and plants_outlines_cpu_resume.log.)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.plants import TaxonomicClassifier, taxonomic_metrics
from hsickit.apps.plants.outlines import contour_signals
from hsickit.core.files import read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.outlines import centroid_distance, outlines_from_images
from hsickit.datasets.plants import load_leaf99

KEYS = ("accuracy_species", "accuracy_genus", "accuracy_family", "accuracy_order", "top5_species",
        "hierarchical_f1", "mistake_severity", "accuracy_genus_from_leaf", "accuracy_family_from_leaf")
SPLITS = ("train", "val", "test")
SILHOUETTE_CNN = Path(__file__).resolve().parent / "results" / "plants_leaf99_images_small64_cpu_5seeds.json"
#: (input, representation) pairs run; EFDs need (x, y) curves.
MODELS = [("cd128", "fourier"), ("cd128", "contour"), ("xy128", "efd"), ("xy128", "fourier"), ("xy128", "contour")]
MLP_RECIPE = dict(epochs=300, patience=30, lr=1e-3, batch_size=64)
CONTOUR_RECIPE = dict(epochs=100, patience=None, lr=3e-3, batch_size=64, train_params={"lr_schedule": "cosine"})


def z(x):
    return (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)


def load(root: Path, n_points: int):
    """{split: (inputs {name: array}, y, ids)}, the taxonomy, and seconds spent extracting outlines."""
    data, tax, t0 = {}, None, time.perf_counter()
    for split in SPLITS:
        s = load_leaf99(root, "images", split=split)
        outlines, keep, problems = outlines_from_images(s.X, s.ids, n_points)
        if problems:
            raise SystemExit(f"outline extraction failed: {problems[:3]}")
        data[split] = ({"cd128": z(centroid_distance(outlines)).astype(np.float32), "xy128": outlines}, s.y, s.ids)
        tax = s.taxonomy
    return data, tax, time.perf_counter() - t0


def _metrics(clf_or_proba, data, tax, X=None) -> dict:
    proba = clf_or_proba if isinstance(clf_or_proba, np.ndarray) else clf_or_proba.predict_proba(X)
    m = taxonomic_metrics(data, proba, tax)
    return {k: m[k] for k in KEYS if k in m}


def run_model(data, tax, inp, rep, loss, seed):
    (Xtr, ytr, _), (Xva, yva, _), (Xte, yte, _) = (
        (data[s][0][inp], data[s][1], data[s][2]) for s in SPLITS)
    contour = rep == "contour"
    params = dict(CONTOUR_RECIPE, model_params={"tta_shifts": 1}) if contour else dict(MLP_RECIPE)
    clf = TaxonomicClassifier(tax, loss=loss, representation=rep, random_state=seed, verbose=0, **params)
    t0 = time.perf_counter()
    clf.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    out = {"seconds": time.perf_counter() - t0, "epochs_run": len(clf.history_)}
    if contour:  # the plain predictions, then with test-time averaging over shifts and reversals
        out |= {f"{k}_notta": v for k, v in _metrics(clf, yte, tax, Xte).items()}
        out |= {f"val_{k}_notta": v for k, v in _metrics(clf, yva, tax, Xva).items()}
        clf.net_.model_.config.tta_shifts = 8
    t1 = time.perf_counter()
    out |= _metrics(clf, yte, tax, Xte)
    out["predict_seconds"] = time.perf_counter() - t1
    out |= {f"val_{k}": v for k, v in _metrics(clf, yva, tax, Xva).items()}
    return out


def run_minirocket(data, tax, inp, seed):
    """aeon's MiniRocketClassifier (ridge on MiniRocket features) on the contour encoder's signals."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    sig = {s: contour_signals(data[s][0][inp]).astype(np.float64) for s in SPLITS}
    few = np.arange(0, len(sig["train"]), 6)  # compile numba's kernels first: the timing is of the fit alone
    MiniRocketClassifier(random_state=seed, n_jobs=1).fit(sig["train"][few], data["train"][1][few])
    t0 = time.perf_counter()
    clf = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(sig["train"], data["train"][1])
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds}
    for prefix, s in (("", "test"), ("val_", "val")):
        pred = clf.predict(sig[s])
        proba = np.eye(tax.n_leaves)[pred.astype(np.int64)]  # the ridge classifier gives labels; one-hot
        out |= {prefix + k: v for k, v in _metrics(proba, data[s][1], tax).items()}
    return out


def run_shape_features(root, tax, loss, seed):
    tr, va, te = (load_leaf99(root, "shape", split=s) for s in SPLITS)
    clf = TaxonomicClassifier(tax, loss=loss, random_state=seed, verbose=0, **MLP_RECIPE)
    t0 = time.perf_counter()
    clf.fit(tr.X, tr.y, X_val=va.X, y_val=va.y)
    return {"seconds": time.perf_counter() - t0, **_metrics(clf, te.y, tax, te.X),
            **{f"val_{k}": v for k, v in _metrics(clf, va.y, tax, va.X).items()}}


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["input"], r["loss"]), []).append(r)
    rows = []
    for (model, inp, loss), rs in groups.items():
        row = {"model": model, "input": inp, "loss": loss, "seeds": len(rs)}
        for k in sorted({k for r in rs for k, v in r.items() if isinstance(v, (int, float)) and k != "seed"}):
            v = np.array([r[k] for r in rs if r.get(k) is not None], dtype=float)
            row[k], row[k + "_std"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
        rows.append(row)
    for model, inp in sorted({(r["model"], r["input"]) for r in runs}):  # paired taxonomic - ce
        ce = {r["seed"]: r for r in groups.get((model, inp, "ce"), [])}
        tx = {r["seed"]: r for r in groups.get((model, inp, "taxonomic"), [])}
        seeds = sorted(set(ce) & set(tx))
        if seeds:
            row = {"model": model, "input": inp, "loss": "taxonomic-ce", "seeds": len(seeds)}
            for k in KEYS:
                d = np.array([tx[s][k] - ce[s][k] for s in seeds])
                row[k], row[k + "_std"] = float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0
            rows.append(row)
    return rows


def select_default(runs: list[dict], inp: str = "cd128") -> dict:
    """Mean validation species accuracy per representation on ``inp``, both losses pooled; the best is the default."""
    means = {}
    for rep in sorted({r["model"] for r in runs if r["input"] == inp and r["model"] in ("efd", "fourier", "contour")}):
        means[rep] = float(np.mean([r["val_accuracy_species"] for r in runs if r["model"] == rep and r["input"] == inp]))
    return {"input": inp, "val_accuracy_species": means, "default": max(means, key=means.get) if means else None}


def silhouette_cnn() -> list[dict]:
    """The committed silhouette-CNN rows (not rerun): species/genus/family accuracy and seconds per run."""
    d = read_json(SILHOUETTE_CNN)
    return [{"model": "silhouette CNN (leafcnn small64, cited)", "input": "images 128px", "loss": r["loss"],
             "seeds": r["seeds"], **{k: r.get(k) for k in ("accuracy_species", "accuracy_species_std", "accuracy_genus",
                                                            "accuracy_family", "mistake_severity", "seconds")},
             "source": str(SILHOUETTE_CNN.relative_to(SILHOUETTE_CNN.parents[2]))}
            for r in d["selected"] if r["loss"] in ("ce", "taxonomic")]


def print_table(summary, cited):
    show = ("accuracy_species", "accuracy_genus", "accuracy_family", "mistake_severity", "val_accuracy_species", "seconds")
    fmt = lambda r, k: (f"{r[k]:.3f} ± {r.get(k + '_std', 0):.3f}" if k != "seconds" else f"{r[k]:.1f}") if r.get(k) is not None else ""  # noqa: E731
    print(markdown_table([{"model": r["model"], "input": r["input"], "loss": r["loss"], "seeds": r["seeds"],
                           **{k: fmt(r, k) for k in show}} for r in summary + cited]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                    / "plants" / "leaf-classification-99")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--losses", default="ce,taxonomic")
    ap.add_argument("--models", default=",".join(f"{i}:{r}" for i, r in MODELS),
                    help="input:representation pairs, plus minirocket and shape")
    ap.add_argument("--baselines", default="minirocket,shape")
    ap.add_argument("--n-points", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "plants_outlines_cpu.json")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and skip them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data, tax, extract_s = load(args.data, args.n_points)
    print(f"outlines extracted from {sum(len(data[s][1]) for s in SPLITS)} silhouettes in {extract_s:.1f} s", flush=True)
    runs = read_json(args.out).get("runs", []) if args.resume and args.out.exists() else []
    done = {(r["model"], r["input"], r["loss"], r["seed"]) for r in runs}
    env = {"device": "cpu", "threads": args.threads, "torch": torch.__version__, "machine": "2-core CPU, shared"}

    def save():
        summary = summarise(runs)
        write_json(args.out, {"benchmark": "plants_outlines", "args": vars(args), "env": env,
                              "outline_extraction_seconds": extract_s, "selection": select_default(runs),
                              "selection_xy128": select_default(runs, "xy128"), "summary": summary,
                              "cited": silhouette_cnn(), "runs": runs})
        return summary

    todo = []
    for seed in range(args.seeds):
        for pair in args.models.split(","):
            inp, rep = pair.split(":")
            todo += [(rep, inp, loss, seed) for loss in args.losses.split(",")]
        if "minirocket" in args.baselines:
            todo += [("minirocket", inp, "-", seed) for inp in ("cd128", "xy128")]
        if "shape" in args.baselines:
            todo += [("shape features (residual MLP)", "shape64", loss, seed) for loss in args.losses.split(",")]
    for model, inp, loss, seed in todo:
        if (model, inp, loss, seed) in done:
            continue
        if model == "minirocket":
            r = run_minirocket(data, tax, inp, seed)
        elif inp == "shape64":
            r = run_shape_features(args.data, tax, loss, seed)
        else:
            r = run_model(data, tax, inp, model, loss, seed)
        runs.append({"model": model, "input": inp, "loss": loss, "seed": seed, **r})
        print(f"{model:12s} {inp:7s} {loss:9s} seed {seed}: species {r['accuracy_species']:.3f} "
              f"(val {r['val_accuracy_species']:.3f}) genus {r['accuracy_genus']:.3f} family {r['accuracy_family']:.3f} "
              f"({r['seconds']:.1f} s)", flush=True)
        save()
    summary = save()
    print_table(summary, silhouette_cnn())
    print("\ndefault chosen on validation (cd128):", json.dumps(select_default(runs)))


if __name__ == "__main__":
    main()
