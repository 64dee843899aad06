"""Record-level multi-label diagnosis on real 12-lead records: each channel alone vs fused.

Two data sets: ``--dataset ludb`` (default, below) and ``--dataset ptbxl`` (:func:`ptbxl_main`).

The LUDB developer subset (40 records, one per subject; the data README's 5-fold ``KFold``;
its held-out 160 records are not here). The CinC 2021 sample is too small to benchmark on (its
README says so: leaving one of its three hospitals out, most labels are never seen in
training). Per fold, :class:`~hsickit.apps.ecg.records.RecordClassifier` is trained on the training
records and scored on the test records; the test predictions are pooled over the folds
(every record scored once, by a model that never saw it) and scored with macro / micro F1
(threshold 0.5) and macro AUROC, for: the fused model (the default logistic downstream, and
an MLP downstream trained by backprop or the HSIC bottleneck), each
channel network alone, the record features alone (``channels=()``: HRV and the median-beat
measurements of :mod:`hsickit.apps.ecg.measurements`), the configuration before those
measurements and the channel weight (rows ``..., before``: the 6 HRV features, the channel
embeddings at weight 1 in the logistic downstream; same folds and seeds), and the no-skill
reference for F1 (every label scored by its prevalence in the training records, i.e. the
majority answer per label; its AUROC is 0.5 by definition and not computed). ``--seeds``
repeats everything and reports the mean and the spread.

    python benchmarks/ecg_records.py          # 3 seeds, about 4 minutes on one core
    python benchmarks/ecg_records.py --channel-weights 0.05,0.1,0.15,0.2,0.25,0.3,0.5,1 \
        --out benchmarks/results/ecg_records_ludb_channel_weight.json   # the choice of RecordClassifier's channel_weight

Writes benchmarks/results/ecg_records_ludb.json and prints tables.

PTB-XL (``--dataset ptbxl``; the shared sample: 859 records of folds 1-9, 100 Hz): for each
task (``--tasks``, default superdiagnostic and rhythm), train on folds 1-8 and report fold 9,
PTB-XL's validation fold. Fold 9 chooses nothing: the thresholds (per label, F1-maximising)
and the CNN's epoch are chosen on 20 % of the fold 1-8 records that the models hold out of
their training (``RecordClassifier(threshold="tune")``), and the CNN's settings and the fusion rule
were chosen with ``--select`` (train folds 1-7, score fold 8). Rows: the fused model (four
channels + the CNN channel + HRV features and measurements; ``fusion="vote"``: the mean probability of the members
within 0.05 macro AUROC of the best on the inner hold-out) with the CNN trained by backprop and by
the HSIC bottleneck; the same networks fused by the stacked logistic downstream; each channel alone (its own network's probabilities);
the HRV features and measurements alone; the same before the measurements and the channel weight
(rows ``..., before``: the 6 HRV features; the same channel networks, loaded); the peer baseline, a logistic regression per label on HRV + median-beat
samples (C chosen on the same inner hold-out); the no-skill reference (training prevalence).
Metrics: macro AUROC (the field's headline), macro and micro F1, per-label AUROC, and
95 % percentile-bootstrap intervals that draw whole fold-9 records (2000 draws). Also: the
time to read the 859 records and to train the fused model, and prediction throughput.

    python benchmarks/ecg_records.py --dataset ptbxl            # both tasks, one thread
    python benchmarks/ecg_records.py --dataset ptbxl --tasks rhythm --out benchmarks/results/ecg_records_ptbxl_rhythm.json
    python benchmarks/ecg_records.py --dataset ptbxl --select cnn      # the choices, folds 1-7 -> 8
    python benchmarks/ecg_records.py --dataset ptbxl --select fusion

Writes benchmarks/results/ecg_records_ptbxl.json (``--select``: ecg_records_ptbxl_select_<part>.json).
Timings are wall-clock and CPU seconds of the process (the CPU seconds are the figure to
trust on a shared machine).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hsickit.apps.ecg.channels import RecordCNN
from hsickit.apps.ecg.metrics import record_metrics
from hsickit.apps.ecg.records import RecordClassifier, RecordConfig, RecordSet, inner_split, choose_thresholds, load_record_set
from hsickit.core.files import write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.ptbxl import ptbxl_folds, ptbxl_labels

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ecg"
KEYS = ("macro_f1", "micro_f1", "macro_auroc")




#: the LUDB rows of the configuration before the median-beat measurements and the channel weight (same folds and seeds)
BEFORE = ("fused (logistic), before", "HRV features alone (logistic), before")


def _before(rs: RecordSet) -> RecordSet:
    """The same records with the 6 HRV features alone (``RecordConfig(measurements=False)``: the first 6 columns)."""
    old = rs.subset(rs.records)
    old.features = old.features[:, :6]
    return old


def run_seed(rs, splits, seed: int, epochs: int, channel_epochs: int, channel_weights=()) -> dict[str, np.ndarray]:
    """Pooled test scores of every model for one seed (rows in the order of ``rs.records``); ``channel_weights``:
    also the fused logistic model at each of these channel weights (the same channel networks, loaded)."""
    scores: dict[str, np.ndarray] = {}
    old = _before(rs)
    for train_idx, test_idx in splits:
        if channel_weights:
            work = Path(tempfile.mkdtemp(prefix="ludb-weights-"))
            for w in channel_weights:
                clf = RecordClassifier(channel_epochs=channel_epochs, channel_weight=w, random_state=seed, checkpoint_dir=work)
                scores.setdefault(f"fused (logistic), channel weight {w:g}", np.zeros(rs.Y.shape))[test_idx] = clf.fit(
                    rs.subset([rs.records[i] for i in train_idx])).predict_proba(rs.subset([rs.records[i] for i in test_idx]))
            shutil.rmtree(work, ignore_errors=True)
        train, test = rs.subset([rs.records[i] for i in train_idx]), rs.subset([rs.records[i] for i in test_idx])
        fits = {"fused (logistic)": RecordClassifier(channel_epochs=channel_epochs, random_state=seed),
                "fused (MLP, backprop)": RecordClassifier(downstream="mlp", epochs=epochs, channel_epochs=channel_epochs, random_state=seed),
                "fused (MLP, HSIC)": RecordClassifier(downstream="mlp", training="hsic", epochs=epochs, channel_epochs=channel_epochs,
                                                      random_state=seed),
                "HRV + measurements alone (logistic)": RecordClassifier(channels=(), random_state=seed),
                BEFORE[0]: RecordClassifier(channel_epochs=channel_epochs, channel_weight=1.0, random_state=seed),
                BEFORE[1]: RecordClassifier(channels=(), random_state=seed)}
        fold = {}
        for name, clf in fits.items():
            sets = (old.subset(train.records), old.subset(test.records)) if name in BEFORE else (train, test)
            clf.fit(sets[0])
            fold[name] = clf.predict_proba(sets[1])
            if name == "fused (logistic)":
                fold.update({f"channel:{c}": clf.channel_proba(test, c) for c in clf.channels})
        fold["no skill (majority per label)"] = np.repeat(train.Y.mean(axis=0, keepdims=True), len(test), axis=0)
        for name, p in fold.items():
            scores.setdefault(name, np.zeros(rs.Y.shape))[test_idx] = p
    return scores


def bootstrap(Y: np.ndarray, P: np.ndarray, thresholds: np.ndarray, n: int = 2000, seed: int = 0) -> dict:
    """95 % percentile intervals of macro AUROC and macro F1, drawing whole records with replacement.

    Each draw is a vector of record counts; AUROC (ties count half) and F1 are computed with those
    counts as weights, which is the metric on the drawn records. Averages as in ``record_metrics``:
    F1 over labels with a positive record in the draw, AUROC over labels with both classes.
    """
    rng = np.random.default_rng(seed)
    W = rng.multinomial(len(Y), np.full(len(Y), 1 / len(Y)), size=n).astype(float)  # (draws, records)
    Y = Y.astype(int)
    pred = (P >= np.asarray(thresholds)).astype(float)
    aucs, f1s = np.full((n, Y.shape[1]), np.nan), np.full((n, Y.shape[1]), np.nan)
    for j in range(Y.shape[1]):
        y = Y[:, j]
        values, inv = np.unique(P[:, j], return_inverse=True)
        onehot = np.zeros((len(y), len(values)))
        onehot[np.arange(len(y)), inv] = 1
        pos, neg = W @ (onehot * y[:, None]), W @ (onehot * (1 - y)[:, None])  # (draws, distinct scores)
        below = np.cumsum(neg, axis=1) - neg
        npos, nneg = pos.sum(1), neg.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs[:, j] = np.where((npos > 0) & (nneg > 0), (pos * (below + 0.5 * neg)).sum(1) / (npos * nneg), np.nan)
            tp, fp, fn = W @ (y * pred[:, j]), W @ ((1 - y) * pred[:, j]), W @ (y * (1 - pred[:, j]))
            f1s[:, j] = np.where(npos > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    out = {}
    for k, v in (("macro_auroc", np.nanmean(aucs, axis=1)), ("macro_f1", np.nanmean(f1s, axis=1))):
        out[f"{k}_low"], out[f"{k}_high"] = (float(x) for x in np.percentile(v[~np.isnan(v)], [2.5, 97.5]))
    return out


def ptbxl_sets(data: str, threads: int, detector: str = "gqrs") -> tuple[RecordSet, dict, float, float]:
    """Views of every record of the folder (100 Hz, no labels, R peaks by ``detector``) with the time it took."""
    t, cpu = time.perf_counter(), time.process_time()
    rs = load_record_set(data, config=RecordConfig(sampling_rate=100.0, detector=detector), labelled=False, verbose=0)
    return rs, ptbxl_folds(data, rs.records), time.perf_counter() - t, time.process_time() - cpu


def task_set(data: str, views: RecordSet, task: str, min_count: int) -> RecordSet:
    table = ptbxl_labels(data, task, views.records)
    sub = views.subset(list(table.index))
    sub.Y, sub.labels = table.to_numpy().astype(np.float32), list(table.columns)
    return sub


def _peer_baseline(train: RecordSet, seed: int):
    """Logistic regression per label on HRV + median-beat samples; C chosen on an inner hold-out; thresholds there too."""
    X = lambda rs: np.concatenate([rs.features[:, :6], rs.beat.reshape(len(rs), -1)], axis=1)  # noqa: E731 (the 6 HRV features)
    make = lambda C: make_pipeline(StandardScaler(), OneVsRestClassifier(  # noqa: E731
        LogisticRegression(C=C, class_weight="balanced", max_iter=3000)))
    tr, va = inner_split(train.Y, 0.2, seed)
    a, b = train.subset([train.records[i] for i in tr]), train.subset([train.records[i] for i in va])
    scores = {C: record_metrics(b.Y, make(C).fit(X(a), a.Y).predict_proba(X(b)), train.labels)["macro_auroc"] for C in (0.001, 0.01, 0.1)}
    C = max(scores, key=scores.get)
    model = make(C).fit(X(a), a.Y)
    return (lambda rs: model.predict_proba(X(rs))), choose_thresholds(b.Y, model.predict_proba(X(b))), C


def ptbxl_task(data: str, views: RecordSet, folds: dict, task: str, seed: int, min_count: int, train_folds, eval_folds) -> dict:
    rs = task_set(data, views, task, min_count)
    train = rs.subset([r for r in rs.records if folds[r] in train_folds])
    keep = [j for j in range(len(rs.labels)) if train.Y[:, j].sum() >= min_count]
    dropped = [rs.labels[j] for j in range(len(rs.labels)) if j not in keep]
    rs.Y, rs.labels = rs.Y[:, keep], [rs.labels[j] for j in keep]
    train = rs.subset([r for r in rs.records if folds[r] in train_folds])
    test = rs.subset([r for r in rs.records if folds[r] in eval_folds])
    print(f"\n{task}: {len(train)} training records (folds {list(train_folds)}), {len(test)} evaluation records (folds "
          f"{list(eval_folds)}); labels {', '.join(rs.labels)}; left out (< {min_count} training records): {', '.join(dropped) or 'none'}",
          flush=True)
    channels = ("rhythm", "beat", "wavelet", "rr", "cnn")
    scores, thresholds, timing, votes = {}, {}, {}, {}
    work = Path(tempfile.mkdtemp(prefix="ptbxl-bench-"))
    for cnn in ("backprop", "hsic"):
        ckpt = work / cnn
        if cnn == "hsic":  # the four other channels are the same networks: loaded from the backprop run's folders
            ckpt.mkdir()
            for c in channels[:-1]:
                shutil.copytree(work / "backprop" / c, ckpt / c)
        t, cpu = time.perf_counter(), time.process_time()
        clf = RecordClassifier(channels=channels, cnn_training=cnn, threshold="tune", fusion="vote", random_state=seed,
                               checkpoint_dir=ckpt).fit(train)
        timing[f"fit_fused_{cnn}_s"] = time.perf_counter() - t
        timing[f"fit_fused_{cnn}_cpu_s"] = time.process_time() - cpu  # the machine is shared: CPU time of this process too
        hold = train.subset(clf.threshold_records_)
        name = f"fused, vote (CNN {cnn})"
        scores[name], thresholds[name] = clf.predict_proba(test), clf.thresholds()
        votes[cnn] = {"members": clf.vote_, "heldout_macro_auroc": {k: round(v, 4) for k, v in clf.vote_auroc_.items()}}
        if cnn == "backprop":  # the same networks (loaded), fused by the stacked logistic downstream instead
            stack = RecordClassifier(channels=channels, threshold="tune", random_state=seed, checkpoint_dir=ckpt).fit(train)
            scores["fused, stacked logistic (CNN backprop)"] = stack.predict_proba(test)
            thresholds["fused, stacked logistic (CNN backprop)"] = stack.thresholds()
            # the configuration before the median-beat measurements and the channel weight, the same networks (loaded)
            old_train, old_test = _before(train), _before(test)
            for label, kw in (("fused, vote (CNN backprop), before", {"fusion": "vote"}),
                              ("fused, stacked logistic (CNN backprop), before", {"channel_weight": 1.0})):
                old = RecordClassifier(channels=channels, threshold="tune", random_state=seed, checkpoint_dir=ckpt, **kw).fit(old_train)
                scores[label], thresholds[label] = old.predict_proba(old_test), old.thresholds()
        if cnn == "backprop":
            t, cpu = time.perf_counter(), time.process_time()
            clf.predict_proba(test)
            timing["predict_records_per_s"] = len(test) / (time.perf_counter() - t)
            timing["predict_records_per_cpu_s"] = len(test) / (time.process_time() - cpu)
            for c in channels[:-1]:
                scores[f"channel:{c}"] = clf.channel_proba(test, c)
                thresholds[f"channel:{c}"] = choose_thresholds(hold.Y, clf.channel_proba(hold, c))
        scores[f"channel:cnn ({cnn})"] = clf.channel_proba(test, "cnn")
        thresholds[f"channel:cnn ({cnn})"] = choose_thresholds(hold.Y, clf.channel_proba(hold, "cnn"))
        print(f"  {name}: macro AUROC {record_metrics(test.Y, scores[name], rs.labels)['macro_auroc']:.3f} "
              f"({timing[f'fit_fused_{cnn}_s']:.0f} s)", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    hrv = RecordClassifier(channels=(), threshold="tune", random_state=seed).fit(train)
    scores["HRV + measurements alone (logistic)"], thresholds["HRV + measurements alone (logistic)"] = hrv.predict_proba(test), hrv.thresholds()
    hrv = RecordClassifier(channels=(), threshold="tune", random_state=seed).fit(_before(train))
    scores[BEFORE[1]], thresholds[BEFORE[1]] = hrv.predict_proba(_before(test)), hrv.thresholds()
    peer, peer_t, C = _peer_baseline(train, seed)
    name = f"peer: logistic on HRV + median beat (C={C})"
    scores[name], thresholds[name] = peer(test), peer_t
    scores["no skill (training prevalence)"] = np.repeat(train.Y.mean(axis=0, keepdims=True), len(test), axis=0)
    thresholds["no skill (training prevalence)"] = np.full(len(rs.labels), 0.5)
    rows, per_label = [], []
    for name, p in scores.items():
        m = record_metrics(test.Y, p, rs.labels, thresholds[name])
        row = {"model": name, **{k: round(m[k], 4) for k in KEYS}}
        if not name.startswith("no skill"):
            row.update({k: round(v, 4) for k, v in bootstrap(test.Y, p, thresholds[name], seed=seed).items()})
        else:
            row["macro_auroc"] = float("nan")  # a constant score ranks nothing
        rows.append(row)
        per_label.append({"model": name, **{lab: round(m[f"auroc_{lab}"], 3) for lab in rs.labels}})
    return {"task": task, "labels": rs.labels, "dropped_labels": dropped,
            "positives_train": dict(zip(rs.labels, train.Y.sum(axis=0).astype(int).tolist())),
            "positives_eval": dict(zip(rs.labels, test.Y.sum(axis=0).astype(int).tolist())),
            "n_train": len(train), "n_eval": len(test), "models": rows, "per_label_auroc": per_label,
            "thresholds": {k: [round(float(x), 4) for x in v] for k, v in thresholds.items()}, "vote": votes,
            "timing": {k: round(v, 1) for k, v in timing.items()}}


def ptbxl_select(data: str, views: RecordSet, folds: dict, seed: int, min_count: int, part: str) -> list[dict]:
    """Choices made on folds 1-7 -> fold 8 (superdiagnostic); fold 9 is not read.

    ``part="cnn"``: the CNN's settings, the CNN alone; ``"fusion"``: the fused model (stacked
    logistic downstream vs the vote) against each channel alone, with thresholds and the vote's
    members chosen on 20 % of folds 1-7 held out of training.
    """
    rs = task_set(data, views, "superdiagnostic", min_count)
    train = rs.subset([r for r in rs.records if folds[r] <= 7])
    val = rs.subset([r for r in rs.records if folds[r] == 8])
    rows = []
    if part == "fusion":
        work = Path(tempfile.mkdtemp(prefix="ptbxl-select-"))
        for fusion in ("vote", "stack"):
            clf = RecordClassifier(channels=("rhythm", "beat", "wavelet", "rr", "cnn"), threshold="tune", fusion=fusion,
                                   random_state=seed, checkpoint_dir=work).fit(train)
            rows.append({"model": f"fused ({fusion})", "macro_auroc_fold8": round(record_metrics(val.Y, clf.predict_proba(val), rs.labels)["macro_auroc"], 4)})
            if fusion == "vote":
                rows += [{"model": f"channel:{c}", "macro_auroc_fold8": round(record_metrics(val.Y, clf.channel_proba(val, c), rs.labels)["macro_auroc"], 4)}
                         for c in [*clf.channels, "hrv"]]
                rows[0]["members"] = ", ".join(clf.vote_)
            print(rows[-1], flush=True)
        shutil.rmtree(work, ignore_errors=True)
        return rows
    mean, std = train.rhythm.mean((0, 2), keepdims=True), train.rhythm.std((0, 2), keepdims=True)
    for kw in ({}, {"epochs": 40}, {"crop": 500}, {"training": "hsic"}):
        t = time.perf_counter()
        net = RecordCNN(model_params={"channels": (32, 64, 64, 128)}, random_state=seed, **kw).fit((train.rhythm - mean) / std, train.Y)
        m = record_metrics(val.Y, net.predict_proba((val.rhythm - mean) / std), rs.labels)
        rows.append({"cnn settings (defaults: epochs 30, crop 250, augment, pos_weight sqrt, backprop)": str(kw or "defaults"),
                     "macro_auroc_fold8": round(m["macro_auroc"], 4), "fit_s": round(time.perf_counter() - t, 1)})
        print(rows[-1], flush=True)
    return rows


def ptbxl_main(args) -> None:
    views, folds, load_s, load_cpu = ptbxl_sets(args.data, args.threads, args.detector)
    print(f"{args.data}: {len(views)} records read in {load_s:.0f} s, {load_cpu:.0f} CPU s ({len(views) / load_cpu:.1f} records "
          "per CPU second, R-peak detection included)", flush=True)
    if args.select:
        rows = ptbxl_select(args.data, views, folds, args.seed, args.min_count, args.select)
        print(markdown_table(rows))
        out = Path(args.out or ROOT / "results" / f"ecg_records_ptbxl_select_{args.select}.json")
        write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, "train_folds": list(range(1, 8)), "eval_fold": 8,
                         "rows": rows})
        print(f"wrote {out}")
        return
    results = [ptbxl_task(args.data, views, folds, task, args.seed, args.min_count, range(1, 9), (9,))
               for task in args.tasks.split(",")]
    for r in results:
        print(f"\n{r['task']}, fold 9 ({r['n_eval']} records), trained on folds 1-8 ({r['n_train']} records)\n"
              + markdown_table(r["models"]) + "\n\nPer-label AUROC\n" + markdown_table(r["per_label_auroc"]) + f"\n{r['timing']}")
    out = Path(args.out or ROOT / "results" / "ecg_records_ptbxl.json")
    write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, "machine": "2-core CPU shared with other jobs; 1 torch thread, nice 15",
                     "read_records_s": round(load_s, 1), "read_records_cpu_s": round(load_cpu, 1), "n_records_read": len(views),
                     "note": "fold 9 is PTB-XL's validation fold: nothing was chosen on it (thresholds and the CNN epoch on 20 % of "
                             "folds 1-8 held out of training; settings with --select on folds 1-7 -> 8)", "tasks": results})
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=("ludb", "ptbxl"), default="ludb")
    ap.add_argument("--tasks", default="superdiagnostic,rhythm", help="PTB-XL tasks")
    ap.add_argument("--seed", type=int, default=0, help="PTB-XL: the seed")
    ap.add_argument("--select", choices=("cnn", "fusion"), default=None,
                    help="PTB-XL: compare CNN settings (cnn) or fusion rules (fusion) on folds 1-7 -> 8 instead")
    ap.add_argument("--data", default=None, help="LUDB: a folder of LUDB records with ludb.csv; PTB-XL: the PTB-XL folder")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="downstream epochs (RecordClassifier's default)")
    ap.add_argument("--channel-epochs", type=int, default=30, help="epochs per channel network (the default)")
    ap.add_argument("--min-count", type=int, default=3, help="labels with fewer positive records are left out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--detector", default="gqrs", help="R-peak detector of the record views (gqrs, the default, or pantompkins)")
    ap.add_argument("--channel-weights", default=None,
                    help="LUDB: also the fused logistic model at these channel weights (comma-separated; the default is 0.2)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset == "ptbxl":
        args.data = args.data or str(DATA / "ptbxl-sample")
        return ptbxl_main(args)
    args.data = args.data or str(DATA / "ludb-dev")
    rs = load_record_set(args.data, config=RecordConfig(detector=args.detector), min_count=args.min_count, verbose=0)
    splits = [(tr.tolist(), te.tolist()) for tr, te in KFold(5, shuffle=True, random_state=0).split(rs.records)]
    print(f"{args.data}: {len(rs)} records, {len(rs.labels)} labels ({', '.join(rs.labels)}); "
          f"left out (< {args.min_count} positive records): {', '.join(rs.dropped_labels) or 'none'}; {len(splits)} folds", flush=True)
    per_seed: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        weights = [float(w) for w in args.channel_weights.split(",")] if args.channel_weights else []
        for name, p in run_seed(rs, splits, seed, args.epochs, args.channel_epochs, weights).items():
            m = record_metrics(rs.Y, p, rs.labels)
            if name.startswith("no skill"):  # a constant score ranks nothing (pooled over folds it would rank by fold)
                m.update({k: float("nan") for k in m if "auroc" in k})
            per_seed.setdefault(name, []).append(m)
        print(f"seed {seed}: fused (logistic) " + " ".join(f"{k}={per_seed['fused (logistic)'][-1][k]:.3f}" for k in KEYS), flush=True)
    rows = [{"model": name, "seeds": len(ms), **{k: round(float(np.mean([m[k] for m in ms])), 3) for k in KEYS},
             **{f"{k}_sd": round(float(np.std([m[k] for m in ms])), 3) for k in KEYS}} for name, ms in per_seed.items()]
    labels = [{"label": lab, "positives": int(rs.Y[:, j].sum()),
               **{f"{k}_{short}": round(float(np.nanmean([m[f'{k}_{lab}'] for m in per_seed[name]])), 3)
                  for name, short in (("fused (logistic)", "fused"), ("HRV + measurements alone (logistic)", "features"),
                                      (BEFORE[0], "fused_before"), (BEFORE[1], "HRV_before")) for k in ("f1", "auroc")}}
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
