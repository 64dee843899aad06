"""ECG beat classification in patients of another database: MIT-BIH DS1 <-> SVDB.

What a new patient gets is measured by training on one database and scoring on the other
(other patients, another recorder, another sampling rate: SVDB is 128 Hz with unnamed leads),
and by patient-wise k-fold over both databases together (each fold's test patients unseen).
Every model is the library's default beat model (``MultiResolutionClassifier()``: rr channel +
hand-crafted features, two-stage boosting, 5 seeds) on the features of ``--feature-sets``: the
default ``robust`` set and, as the baseline run side by side, the ``relative`` set that was the
default before (its RR features take the record's median RR for the sinus rhythm). A robust
model also predicts without its atrial-fibrillation rule (``af_rule=False``), scored as the
feature set "robust, no AF rule": the rule's effect on the same fitted model. ``--variant`` fits the
default model again with other parameters, side by side on the same splits (e.g. the per-beat
weighting the default replaced: ``--variant 'record_balance 0={"record_balance": 0}'``); its
``"beats"`` sets how records become beats (``--variant 'marks as annotated={"beats": {"align": null}}'``).

Reported per protocol: pooled gross statistics (every test beat once), 95 % intervals that draw
whole test records (bootstrap), and the five worst records for S and for V (most misses plus
false alarms). MIT-BIH DS2 is never read (it is not in ../shared).

    python benchmarks/ecg_cross_database.py                       # all protocols, both feature sets
    python benchmarks/ecg_cross_database.py --protocols ds1-svdb,svdb-ds1 --feature-sets robust
    python benchmarks/ecg_cross_database.py --feature-sets robust --variant 'record_balance 0={"record_balance": 0}' \
        --out benchmarks/results/ecg_cross_database_record_balance.json

Results go to benchmarks/results/ecg_cross_database.json, one entry per (feature set, protocol,
fold), written as each finishes: a rerun skips the finished ones (``--fresh`` starts over).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import GroupKFold

from hsickit.apps.ecg.beats import BeatConfig, BeatSet, load_beats
from hsickit.apps.ecg.fusion import MultiResolutionClassifier
from hsickit.apps.ecg.metrics import beat_metrics, record_intervals
from hsickit.core.files import read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.ecg import list_records
from hsickit.datasets.ecg_splits import subject_of

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ecg"
KEYS = ("macro_f1", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V", "ppv_V_ec57", "sensitivity_F", "ppv_F")
INTERVAL_KEYS = ("macro_f1", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V", "ppv_V_ec57")


def worst_records(y, p, records, cls: str, n: int = 5) -> list[dict]:
    """The ``n`` records with the most misses plus false alarms of class ``cls``."""
    rows = [{"record": r, f"n_{cls}": total, "TP": total - fn, "FN": fn, "FP": fp}
            for r, (total, fn, fp) in record_errors(y, p, records, cls).items()]
    return sorted(rows, key=lambda d: -(d["FN"] + d["FP"]))[:n]


def record_errors(y, p, records, cls: str) -> dict:
    """``{record: [n, misses, false alarms]}`` of class ``cls``, every record of the test beats."""
    out = {}
    for r in np.unique(records):
        k = records == r
        out[str(r)] = [int((y[k] == cls).sum()), int(((y[k] == cls) & (p[k] != cls)).sum()),
                       int(((y[k] != cls) & (p[k] == cls)).sum())]
    return out


def per_record_effect(errors: dict, new: str, old: str, cls: str, n: int = 8) -> dict:
    """How ``new`` features change each record's errors (misses + false alarms of ``cls``) against ``old``.

    Counts the records that got better, worse or stayed equal, and lists the ``n`` largest changes."""
    a, b = errors[new][cls], errors[old][cls]
    rows = [{"record": r, f"n_{cls}": a[r][0], f"errors_{old}": sum(b[r][1:]), f"errors_{new}": sum(a[r][1:]),
             f"FN {old}->{new}": f"{b[r][1]}->{a[r][1]}", f"FP {old}->{new}": f"{b[r][2]}->{a[r][2]}"}
            for r in a if r in b]
    delta = np.array([row[f"errors_{new}"] - row[f"errors_{old}"] for row in rows])
    order = np.argsort(-np.abs(delta), kind="stable")[:n]
    return {"better": int((delta < 0).sum()), "worse": int((delta > 0).sum()), "equal": int((delta == 0).sum()),
            "largest_changes": [rows[i] for i in order]}


def splits(protocol: str, db: dict, k: int):
    """``(fold, train_records, test_records)`` of a protocol; ``db``: record -> database."""
    records = sorted(db)
    if protocol == "ds1-svdb":
        yield "0", [r for r in records if db[r] == "mitdb"], [r for r in records if db[r] == "svdb"]
    elif protocol == "svdb-ds1":
        yield "0", [r for r in records if db[r] == "svdb"], [r for r in records if db[r] == "mitdb"]
    elif protocol == "kfold":
        groups = [f"{db[r]}:{subject_of(r)}" for r in records]
        k = k or len(set(groups))  # 0: one fold per patient (leave one patient out)
        for i, (tr, te) in enumerate(GroupKFold(n_splits=k, shuffle=True, random_state=0).split(records, groups=groups)):
            yield str(i), [records[j] for j in tr], [records[j] for j in te]
    else:
        raise SystemExit(f"--protocols: unknown {protocol!r}; use ds1-svdb, svdb-ds1 or kfold")


def run(beats, feature_set, label, params, protocol, fold, train, test, seed, s_odds=()):
    """Fit the default model (with ``params``) on ``train``, predict ``test``; scored as feature set ``label``.

    ``s_odds``: also predict with each of these ``s_odds`` (the S decision's operating point; the same fitted model)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    af_rule = feature_set != "relative"  # the rule reads the robust set's P-wave consistency
    clf = MultiResolutionClassifier(**{"random_state": seed, "af_rule": af_rule, **params}).fit(beats.records(train))
    fit_s = time.perf_counter() - start
    tb = beats.records(test)
    t = time.perf_counter()
    proba = clf.predict_proba(tb)
    pred = clf.decide(proba)
    out = {"feature_set": label, "params": params, "protocol": protocol, "fold": fold, "train_records": train, "test_records": test,
           "n_train_beats": int(sum(np.isin(beats.record, train))), "fit_seconds": round(fit_s, 1),
           "beats_per_second": round(len(tb) / (time.perf_counter() - t)), "y": "".join(tb.y.astype(str)),
           "pred": "".join(np.asarray(pred, str)), "records": runs_of(tb.record.astype(str))}
    out["pred_s_odds"] = {f"{k:g}": "".join(clf.decide(proba, s_odds=k)) for k in s_odds}
    if af_rule:  # the same model without the rule: the baseline, side by side
        out["pred_without_af_rule"] = "".join(np.asarray(clf.set_params(af_rule=False).predict(tb), str))
    return out


def parse_variant(text: str) -> tuple[str, dict, dict]:
    """``--variant NAME=JSON`` as (name, model parameters, beat parameters); the JSON's ``"beats"``
    holds :class:`BeatConfig` fields (how records become beats), the rest the model's."""
    name, _, params = text.partition("=")
    try:
        params = json.loads(params)
    except json.JSONDecodeError:
        params = None
    if not name or not isinstance(params, dict) or not isinstance(params.get("beats", {}), dict):
        raise SystemExit(f"--variant {text!r}: give NAME=JSON, e.g. 'record_balance 0={{\"record_balance\": 0}}' "
                         f"or 'marks as annotated={{\"beats\": {{\"align\": null}}}}'")
    beat_params = params.pop("beats", {})
    unknown = set(beat_params) - {f.name for f in fields(BeatConfig)}
    if unknown:
        raise SystemExit(f"--variant {name!r}: {', '.join(sorted(unknown))} not a BeatConfig field; "
                         f"use {', '.join(f.name for f in fields(BeatConfig))}")
    return name, params, beat_params


def with_baselines(runs: list[dict]) -> list[dict]:
    """The runs, plus each model's predictions without the AF rule as a feature set of its own ("robust, no AF rule"),
    and with ``s_odds=k`` ("robust, S odds ×k")."""
    return (runs + [{**r, "feature_set": f"{r['feature_set']}, no AF rule", "pred": r["pred_without_af_rule"]}
                    for r in runs if "pred_without_af_rule" in r]
            + [{**r, "feature_set": f"{r['feature_set']}, S odds ×{k}", "pred": pred}
               for r in runs for k, pred in r.get("pred_s_odds", {}).items()])


def runs_of(records) -> list:
    """``[[record, count], ...]``: the test beats' records, run-length encoded (a record's beats are contiguous)."""
    out = []
    for r in records:
        if out and out[-1][0] == r:
            out[-1][1] += 1
        else:
            out.append([r, 1])
    return out


def beats_of(run: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's true labels, predictions and records, one entry per test beat (AAMI classes are one letter)."""
    return (np.array(list(run["y"])), np.array(list(run["pred"])),
            np.concatenate([np.full(n, r, dtype=object) for r, n in run["records"]]).astype(str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mitdb", default=str(DATA / "mitdb-ds1"))
    ap.add_argument("--svdb", default=str(DATA / "svdb"))
    ap.add_argument("--protocols", default="ds1-svdb,svdb-ds1,kfold")
    ap.add_argument("--feature-sets", default="robust,relative")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help='also fit the default model with these parameters, side by side, scored as "FEATURE_SET, NAME" '
                         '(e.g. \'record_balance 0={"record_balance": 0}\'); repeatable')
    ap.add_argument("--s-odds", default="", help="comma-separated numbers: also score each model with each as its s_odds "
                    "(the S decision's operating point: S's probability is multiplied by it; the same fitted models)")
    ap.add_argument("--kfold", type=int, default=5, help="patient-wise folds over DS1 + SVDB; 0: leave one patient out (99 fits)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="records per database (a quick trial; not for figures)")
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_cross_database.json"))
    args = ap.parse_args()
    out = Path(args.out)
    previous = {} if args.fresh or not out.exists() else read_json(out)
    done = previous.get("runs", [])
    have = {(r["feature_set"], r["protocol"], r["fold"]) for r in done}
    meta = {**{k: v for k, v in previous.items() if k.startswith("load_seconds")}, "args": vars(args)}
    s_odds = [float(k) for k in args.s_odds.split(",") if k.strip()]
    variants = [("", {}, {})] + [parse_variant(v) for v in args.variant]
    for feature_set in args.feature_sets.split(","):
        labels = {name: f"{feature_set}, {name}" if name else feature_set for name, _, _ in variants}
        leave_one_out = args.kfold == 0 and "kfold" in args.protocols.split(",")  # its folds are known once records are
        if not leave_one_out and all((label, p, fold) in have for label in labels.values() for p in args.protocols.split(",")
                                     for fold in (["0"] if p != "kfold" else [str(i) for i in range(args.kfold)])):
            continue  # every run of this feature set is in the results: only summarise
        todo = []
        for beat_key in sorted({json.dumps(b, sort_keys=True) for _, _, b in variants}):  # read once per way of cutting beats
            t0 = time.perf_counter()
            config = BeatConfig(**{"feature_set": feature_set, **json.loads(beat_key)})
            parts = {name: load_beats(folder, list_records(folder)[:args.limit], config, annotated=True, verbose=0)
                     for name, folder in (("mitdb", args.mitdb), ("svdb", args.svdb))}
            db = {r: name for name, b in parts.items() for r in set(b.record)}
            beats = BeatSet.concat(list(parts.values()))
            key = f"load_seconds_{feature_set}" + ("" if beat_key == "{}" else f" {beat_key}")
            meta[key] = round(time.perf_counter() - t0, 1)
            print(f"{feature_set} {beat_key}: {len(beats)} beats of {len(set(beats.record))} records read and featurised in "
                  f"{meta[key]} s", flush=True)
            todo += [(beats, labels[name], params, p, *s) for p in args.protocols.split(",") for s in splits(p, db, args.kfold)
                     for name, params, b in variants if json.dumps(b, sort_keys=True) == beat_key and (labels[name], p, s[0]) not in have]
        for i in range(0, len(todo), args.jobs):  # write after every batch: an interrupted run resumes
            batch = Parallel(n_jobs=args.jobs)(delayed(run)(job[0], feature_set, *job[1:], args.seed, s_odds) for job in todo[i:i + args.jobs])
            done += batch
            for r in batch:
                print(f"{r['feature_set']} {r['protocol']} fold {r['fold']}: fit {r['fit_seconds']} s on {r['n_train_beats']} beats", flush=True)
            write_json(out, {**meta, "runs": done})
    summary, intervals, worst, errors = [], [], {}, {}
    svdb = set(list_records(args.svdb))
    scored = with_baselines(done)
    # k-fold's test patients of each database, next to the other direction's: what the other database's patients add
    cells = [(fs, protocol, None) for fs, protocol in sorted({(r["feature_set"], r["protocol"]) for r in scored})]
    cells += [(fs, "kfold", db) for fs, protocol, _ in list(cells) if protocol == "kfold" for db in ("mitdb", "svdb")]
    for (fs, protocol, only) in cells:
        parts = [r for r in scored if r["feature_set"] == fs and r["protocol"] == protocol]
        y, p, rec = (np.concatenate(a) for a in zip(*(beats_of(r) for r in parts)))
        keep = np.isin(y, ("N", "S", "V", "F"))  # Q beats are left out of training and scoring
        if only is not None:
            keep &= np.isin(rec, list(svdb)) == (only == "svdb")
            protocol = f"kfold, {only} test patients"
        y, p, rec = y[keep], p[keep], rec[keep]
        m, iv = beat_metrics(y, p), record_intervals(y, p, rec, random_state=args.seed)
        summary.append({"features": fs, "protocol": protocol, "folds": len(parts), "test_beats": len(y),
                        **{k: round(m[k], 4) for k in KEYS}, "fit_s": round(float(np.mean([r["fit_seconds"] for r in parts])), 1),
                        "beats_per_s": int(np.median([r["beats_per_second"] for r in parts]))})
        intervals.append({"features": fs, "protocol": protocol,
                          **{k: f"{m[k]:.3f} [{iv[k + '_low']:.3f}, {iv[k + '_high']:.3f}]" for k in INTERVAL_KEYS}})
        worst[f"{fs} {protocol}"] = {c: worst_records(y, p, rec, c) for c in ("S", "V")}
        if only is None:
            errors.setdefault(protocol, {})[fs] = {c: record_errors(y, p, rec, c) for c in ("S", "V")}
    sets = args.feature_sets.split(",")
    pairs = ([(fs, f"{fs}, no AF rule") for fs in sets] + ([tuple(sets[:2])] if len(sets) > 1 else [])
             + [(fs, f"{fs}, {name}") for fs in sets for name, _, _ in variants if name]
             + [(fs, f"{fs}, S odds ×{k:g}") for fs in sets for k in s_odds])
    per_record = {f"{protocol}, {c}, {new} against {old}": per_record_effect(e, new, old, c)
                  for new, old in pairs for protocol, e in errors.items() if new in e and old in e for c in ("S", "V")}
    print("\nPooled (gross statistics)\n" + markdown_table(summary))
    print("\n95 % intervals drawing whole test records\n" + markdown_table(intervals))
    for key, w in worst.items():
        for c in ("S", "V"):
            print(f"\nworst five records for {c}, {key}\n" + markdown_table(w[c]))
    for key, effect in per_record.items():
        print(f"\nper record, {key}: {effect['better']} records better, {effect['worse']} worse, "
              f"{effect['equal']} equal; the largest changes\n" + markdown_table(effect["largest_changes"]))
    write_json(out, {**meta, "runs": done, "summary": summary, "intervals": intervals, "worst": worst, "per_record": per_record})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
