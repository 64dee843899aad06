"""Taxonomic loss vs cross-entropy, backprop vs HSIC, on the Kew leaf set (99 species).

Settings (suggested split: 6 train / 2 val / 2 test per species):

- ``all``     all 192 features (near the ceiling)
- ``shape``   the 64 shape features only
- ``images``  the 128x128 silhouettes only (``leafcnn``; ``--image-variants`` picks encoders)
- ``fewshot`` 3 training specimens per species (drawn per seed), shape features

Model selection (early stopping, and the choice among image encoder variants) uses the val
split only; every reported number is on the test split, and the val metrics are kept
beside them (``val_*``). Each configuration runs over several seeds; the table gives
mean ± std and the paired difference taxonomic − CE with its seed-to-seed std. A
multinomial logistic regression (scikit-learn) is the non-deep baseline for the feature
settings; the image setting's baseline is the variant ``original`` (the first leafcnn and
its training recipe: Adam, no label smoothing, early stopping).

Image encoder variants (``IMAGE_VARIANTS``): ``original`` and the presets of
``hsickit.apps.plants.encoders.LEAFCNN_PRESETS``, trained with AdamW, cosine schedule and
label smoothing. Presets with test-time augmentation (``tta``) are trained without it and
evaluated with it; the ``*_notta`` metrics give the plain predictions.

Run (the leaf folder as shipped)::

    python benchmarks/plants_leaf99.py --data ../shared/data/plants/leaf-classification-99 \\
        --settings shape,fewshot,all --seeds 5

On a GPU, one process per variant and loss, each held to a wall-clock budget (epochs are
fitted to the measured seconds per epoch; a run that would overrun stops, keeping its best
validation epoch), then merged::

    python benchmarks/plants_leaf99.py --settings images --image-variants deep128 --losses ce \\
        --device cuda --time-budget 300 --out OUT/images_deep128_ce.json
    python benchmarks/plants_leaf99.py --merge OUT/images_*.json --out OUT/summary.json

Results go to ``benchmarks/results/plants_leaf99.json`` (rewritten after every run, so
an interrupted benchmark keeps what it measured).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.plants import TaxonomicClassifier, taxonomic_metrics
from hsickit.apps.plants.encoders import LEAFCNN_PRESETS
from hsickit.core.errors import HsickitError
from hsickit.core.files import read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.plants import load_leaf99

KEYS = ("accuracy_species", "accuracy_genus", "accuracy_family", "accuracy_order", "top5_species", "top5_genus",
        "top5_family", "hierarchical_f1", "mistake_severity", "mean_tree_distance", "nll_species",
        "backoff_accuracy@0.5", "backoff_leaf_share@0.5", "backoff_accuracy@0.7", "backoff_leaf_share@0.7",
        "backoff_accuracy@0.9", "backoff_leaf_share@0.9", "accuracy_genus_from_leaf", "accuracy_family_from_leaf")
RUN_ID = ("setting", "variant", "training", "loss", "seed")

#: image setting: training recipes, and variants = (leafcnn model_params, recipe)
ORIGINAL_RECIPE = dict(optimizer="adam", lr=2e-3, batch_size=64, patience=60, label_smoothing=0.0,
                       train_params={"weight_decay": 1e-4, "lr_schedule": "cosine"})
IMAGE_RECIPE = dict(optimizer="adamw", lr=2e-3, batch_size=32, patience=None, label_smoothing=0.1,
                    train_params={"weight_decay": 0.05, "lr_schedule": "cosine"})
IMAGE_VARIANTS = {"original": ({}, ORIGINAL_RECIPE), **{k: (v, IMAGE_RECIPE) for k, v in LEAFCNN_PRESETS.items()}}
FEATURE_VARIANT = "residual_mlp"


def load_setting(root: Path, setting: str, seed: int, shots: int = 3):
    feats = {"all": "all", "shape": "shape", "images": "images", "fewshot": "shape"}[setting]
    tr, va, te = (load_leaf99(root, feats, split=s) for s in ("train", "val", "test"))
    if setting == "fewshot":
        rng = np.random.default_rng(1000 + seed)
        keep = np.concatenate([rng.choice(np.nonzero(tr.y == c)[0], shots, replace=False) for c in np.unique(tr.y)])
        tr = tr.subset(np.sort(keep))
    return tr, va, te


def make_classifier(tax, setting, variant, training, loss, seed, epochs, device):
    """The classifier of one benchmark configuration, and whether to evaluate it with test-time augmentation."""
    if setting == "images":
        model_params, recipe = IMAGE_VARIANTS[variant]
        model_params = dict(model_params)
        tta = bool(model_params.pop("tta", False))
        params = dict(recipe, model_params={**model_params, "tta": False} if model_params else None)
    else:
        tta = False
        params = dict(patience=30, lr=1e-3, batch_size=32 if setting == "fewshot" else 64)
    if training == "hsic":
        params["format_epochs"] = 30
    clf = TaxonomicClassifier(tax, loss=loss, training=training, random_state=seed, verbose=0, device=device,
                              epochs=epochs, **params)
    return clf, tta


class TimeBudget:
    """Fits the remaining runs of one process into ``seconds`` of wall clock.

    Each run gets an equal share of the time left; its epochs are the share divided by the
    measured seconds per epoch (capped at ``cap``), so a cosine schedule still completes,
    and a callback stops a run that overruns its share by 30 % (the trainer keeps the best
    validation epoch). ``seconds=0``: no budget, every run trains ``cap`` epochs.
    """

    def __init__(self, seconds: float, cap: int, min_epochs: int = 10):
        self.start, self.seconds, self.cap, self.min_epochs = time.monotonic(), float(seconds), int(cap), min_epochs
        self.per_epoch: float | None = None  # seconds per epoch, from the last measurement
        self.overhead = 0.0  # seconds per run outside the epochs (data, model, evaluation)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start) if self.seconds else math.inf

    def plan(self, runs_left: int) -> tuple[int, float]:
        """(epochs, deadline) for the next run; epochs 0 means no time is left for it."""
        if not self.seconds:
            return self.cap, math.inf
        share = self.left() / max(runs_left, 1)
        epochs = self.cap if self.per_epoch is None else int(0.9 * (share - self.overhead) / self.per_epoch)
        epochs = min(self.cap, epochs)
        if epochs < min(self.min_epochs, self.cap):
            return 0, 0.0
        return epochs, time.monotonic() + min(self.left(), 1.3 * share)

    def clock(self, deadline: float) -> "EpochClock":
        return EpochClock(deadline)

    def update(self, stamps: list[float], run_seconds: float) -> None:
        """Learn seconds per epoch (first epoch excluded: warm-up) and the per-run overhead."""
        steps = np.diff(stamps)
        if len(steps) >= 2:
            self.per_epoch = float(np.median(steps[1:]))
        elif len(steps) == 1 and self.per_epoch is None:
            self.per_epoch = float(steps[0])
        if self.per_epoch is not None:
            self.overhead = max(0.0, run_seconds - len(steps) * self.per_epoch)


class EpochClock:
    """A training callback: records when each main-phase epoch ends, stops training after ``deadline``."""

    def __init__(self, deadline: float):
        self.deadline, self.stamps, self.stopped = deadline, [time.monotonic()], False

    def __call__(self, row: dict) -> bool:
        now = time.monotonic()
        if row.get("phase", "main") == "main":
            self.stamps.append(now)
        self.stopped = self.stopped or now > self.deadline
        return self.stopped


def _metrics(clf, data, prefix: str = "", suffix: str = "") -> dict:
    m = clf.evaluate(data.X, data.y)
    return {f"{prefix}{k}{suffix}": m[k] for k in KEYS if k in m}


def run_one(root, setting, variant, training, loss, seed, epochs, device="cpu", clock=None):
    tr, va, te = load_setting(root, setting, seed)
    start = time.perf_counter()
    clf, tta = make_classifier(tr.taxonomy, setting, variant, training, loss, seed, epochs, device)
    clf.fit(tr.X, tr.y, X_val=va.X, y_val=va.y, callbacks=[clock] if clock is not None else ())
    out = {}
    if tta:  # plain predictions first, then switch the trained network to test-time augmentation
        out.update(_metrics(clf, te, suffix="_notta") | _metrics(clf, va, "val_", "_notta"))
        clf.net_.model_.config.tta = True
    out.update(_metrics(clf, te) | _metrics(clf, va, "val_"))
    main_epochs = sum(1 for h in clf.history_ if h.get("phase", "main") == "main")
    best = [h["epoch"] for h in clf.history_ if h.get("best")]
    return out | {"seconds": time.perf_counter() - start, "epochs_planned": epochs, "epochs_run": main_epochs,
                  "best_epoch": best[-1] if best else None, "tta": tta, "n_train": len(tr), "n_test": len(te)}


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


def _numeric_keys(runs: list[dict]) -> list[str]:
    keys = {k for r in runs for k, v in r.items()
            if k not in RUN_ID and isinstance(v, (int, float)) and not isinstance(v, bool)}
    order = {k: i for i, k in enumerate(KEYS)}
    return sorted(keys, key=lambda k: (k.startswith("val_"), order.get(k.removeprefix("val_").removesuffix("_notta"), 99), k))


def _mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds of every metric, per (setting, variant, training, loss), and taxonomic − CE."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["setting"], r.get("variant", "-"), r["training"], r["loss"]), []).append(r)
    keys = _numeric_keys(runs)
    rows = []
    for (setting, variant, training, loss), rs in groups.items():
        row = {"setting": setting, "variant": variant, "training": training, "loss": loss, "seeds": len(rs)}
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                row[k], row[k + "_std"] = _mean_std(vals)
        rows.append(row)
    # paired differences taxonomic - ce over the seeds both have
    for setting, variant, training in sorted({k[:3] for k in groups}):
        ce = {r["seed"]: r for r in groups.get((setting, variant, training, "ce"), [])}
        tx = {r["seed"]: r for r in groups.get((setting, variant, training, "taxonomic"), [])}
        seeds = sorted(set(ce) & set(tx))
        if not seeds:
            continue
        row = {"setting": setting, "variant": variant, "training": training, "loss": "taxonomic-ce", "seeds": len(seeds)}
        for k in KEYS:
            if all(ce[s].get(k) is not None and tx[s].get(k) is not None for s in seeds):
                row[k], row[k + "_std"] = _mean_std([tx[s][k] - ce[s][k] for s in seeds])
        rows.append(row)
    return rows


def select_variants(runs: list[dict], key: str = "val_accuracy_species") -> dict:
    """Per setting and training, the variant with the best mean validation accuracy.

    ``pooled``: over both losses (one encoder for the CE vs taxonomic comparison); and per
    loss. Test metrics play no part.
    """
    out: dict = {}
    for setting, training in sorted({(r["setting"], r["training"]) for r in runs}):
        rs = [r for r in runs if (r["setting"], r["training"]) == (setting, training) and r.get(key) is not None]
        if not rs:
            continue
        entry: dict = {}
        for loss in [None, *sorted({r["loss"] for r in rs})]:
            pick = [r for r in rs if loss is None or r["loss"] == loss]
            means = {v: float(np.mean([r[key] for r in pick if r.get("variant", "-") == v]))
                     for v in sorted({r.get("variant", "-") for r in pick})}
            entry["pooled" if loss is None else loss] = max(means, key=means.get)
            entry[f"{key}_{'pooled' if loss is None else loss}"] = means
        out.setdefault(setting, {})[training] = entry
    return out


def selected_rows(summary: list[dict], selection: dict) -> list[dict]:
    """The summary rows (test metrics) of the variants chosen on validation, pooled over losses."""
    return [r for r in summary if selection.get(r["setting"], {}).get(r["training"], {}).get("pooled") == r["variant"]]


def print_tables(summary: list[dict], baselines: list[dict], selection: dict) -> None:
    show = ("accuracy_species", "accuracy_genus", "accuracy_family", "top5_species", "hierarchical_f1",
            "mistake_severity", "val_accuracy_species")
    table = [{"setting": r["setting"], "variant": r["variant"], "training": r["training"], "loss": r["loss"],
              "seeds": r["seeds"], **{k: f"{r[k]:.3f} ± {r[k + '_std']:.3f}" for k in show if k in r},
              **({"epochs": f"{r['epochs_run']:.0f}"} if "epochs_run" in r else {})} for r in summary]
    print(markdown_table(table))
    if selection:
        print("\nchosen on validation (mean val species accuracy, both losses pooled):",
              {s: {t: e["pooled"] for t, e in d.items()} for s, d in selection.items()})
    if baselines:
        print()
        print(markdown_table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in b.items()
                               if k in ("setting", "model", "seed") + show} for b in baselines]))


def merge(files: list[Path], out: Path) -> dict:
    """Combine the JSONs of several benchmark processes into one summary (with the validation choice)."""
    runs, baselines, sources = [], [], []
    for f in files:
        d = read_json(f)
        runs += d.get("runs", [])
        baselines += d.get("baselines", [])
        sources.append({"file": str(f), "args": d.get("args"), "env": d.get("env")})
    seen, unique = set(), []
    for r in runs:
        key = tuple(r.get(k) for k in RUN_ID)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    summary = summarise(unique)
    selection = select_variants(unique)
    result = {"benchmark": "plants_leaf99", "sources": sources, "selection": selection,
              "selected": selected_rows(summary, selection), "summary": summary, "runs": unique, "baselines": baselines}
    write_json(out, result)
    print_tables(summary, baselines, selection)
    return result


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HsickitError(f"--device {name}: torch {torch.__version__} sees no CUDA device; use --device cpu")
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                    / "plants" / "leaf-classification-99", help="the leaf-classification-99 folder")
    ap.add_argument("--settings", default="shape,fewshot,all,images")
    ap.add_argument("--trainings", default="backprop,hsic")
    ap.add_argument("--losses", default="ce,taxonomic")
    ap.add_argument("--image-variants", default="original,small64",
                    help=f"image encoders, comma-separated, among {', '.join(IMAGE_VARIANTS)}")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300, help="max epochs, feature settings (early stopping on val)")
    ap.add_argument("--image-epochs", type=int, default=200, help="max epochs, image setting")
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds of wall clock for all runs of this process (0: none); fits the epochs to it")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "plants_leaf99.json")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and skip them")
    ap.add_argument("--merge", type=Path, nargs="+", help="only merge these result JSONs into --out (no training)")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    torch.set_num_threads(args.threads)
    device = _device(args.device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    variants = args.image_variants.split(",")
    unknown = [v for v in variants if v not in IMAGE_VARIANTS]
    if unknown:
        raise HsickitError(f"unknown image variant(s) {unknown}; use some of {list(IMAGE_VARIANTS)}")
    env = {"device": device, "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None}
    budget = TimeBudget(args.time_budget, args.image_epochs)

    runs, baselines = [], []
    if args.resume and args.out.exists():
        old = json.loads(args.out.read_text())
        runs, baselines = old.get("runs", []), old.get("baselines", [])
        for r in runs:  # results written before the image variants existed
            r.setdefault("variant", "original" if r["setting"] == "images" else FEATURE_VARIANT)
    done = {tuple(r.get(k, "-") for k in RUN_ID) for r in runs}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    todo = [(setting, variant, training, loss, seed)
            for setting in args.settings.split(",")
            for variant in (variants if setting == "images" else [FEATURE_VARIANT])
            for seed in seeds for training in args.trainings.split(",") for loss in args.losses.split(",")]
    todo = [t for t in todo if t not in done]

    def save():
        write_json(args.out, {"benchmark": "plants_leaf99", "data": str(args.data), "args": vars(args), "env": env,
                              "summary": summarise(runs), "selection": select_variants(runs), "runs": runs,
                              "baselines": baselines})

    for setting in args.settings.split(","):
        if setting != "images" and not any(b["setting"] == setting for b in baselines):
            for seed in range(args.seeds if setting == "fewshot" else 1):
                baselines.append({"setting": setting, "model": "logistic regression", "seed": seed,
                                  **run_logreg(args.data, setting, seed)})
            save()
    first_image = next((t for t in todo if t[0] == "images"), None)
    if args.time_budget and first_image:  # calibrate seconds per epoch on the first image configuration
        setting, variant, training, loss, _ = first_image
        clock = budget.clock(math.inf)
        t0 = time.monotonic()
        run_one(args.data, setting, variant, training, loss, 12345, min(3, args.image_epochs), device, clock)
        budget.update(clock.stamps, time.monotonic() - t0)
        print(f"calibration: {budget.per_epoch:.3f} s/epoch, {budget.overhead:.1f} s per run besides", flush=True)
    for i, (setting, variant, training, loss, seed) in enumerate(todo):
        images = setting == "images"
        epochs, deadline = budget.plan(len(todo) - i) if images else (args.epochs, math.inf)
        if epochs == 0:
            print(f"{setting:8s} {variant:12s} {training:8s} {loss:9s} seed {seed}: skipped, time budget spent", flush=True)
            continue
        clock = budget.clock(deadline)
        t0 = time.monotonic()
        r = run_one(args.data, setting, variant, training, loss, seed, epochs, device, clock)
        r["stopped_by_time"] = clock.stopped
        if images:
            budget.update(clock.stamps, time.monotonic() - t0)
        runs.append({"setting": setting, "variant": variant, "training": training, "loss": loss, "seed": seed, **r})
        print(f"{setting:8s} {variant:12s} {training:8s} {loss:9s} seed {seed}: species {r['accuracy_species']:.3f} "
              f"(val {r['val_accuracy_species']:.3f}) genus {r['accuracy_genus']:.3f} family {r['accuracy_family']:.3f} "
              f"severity {r['mistake_severity']:.3f} epochs {r['epochs_run']}/{epochs} ({r['seconds']:.0f} s)", flush=True)
        save()
    save()
    print_tables(summarise(runs), baselines, select_variants(runs))


if __name__ == "__main__":
    main()
