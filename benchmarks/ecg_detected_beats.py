"""ECG beats as a user brings them: new patients whose records have no beat annotations.

The default beat model is trained on annotated records (``--train``, MIT-BIH DS1), then predicts
the records of ``--test`` (SVDB, other patients) from their signals alone: beats are found by the
model's R-peak detector, as ``hsickit ecg predict`` does on a record without annotations. Each
detected beat is matched to the reference beat annotation within 150 ms
(:func:`wfdb.processing.compare_annotations`); a reference beat with no detected beat counts as
missed (its class not found), a detected beat with no reference beat as a false alarm of the
class it was given. Q reference beats are left out, as in ``ecg_cross_database.py``. Reported beside:
the same metrics on the matched beats only (the classifier's errors without the detector's), the
classes the false detections were given, and each record's S and V errors (misses plus false alarms),
compared record by record between the default and each variant.

``--variant NAME=JSON`` trains and predicts with other model parameters, and with the
:class:`BeatConfig` fields of its ``"beats"``, side by side on the same records, as in
``ecg_cross_database.py`` (e.g. ``'every detected peak={"beats": {"drop_extra_peaks": false}}'``:
the detector's peaks all kept, small ones that split one RR interval included).

    python benchmarks/ecg_detected_beats.py --variant 'every detected peak={"beats": {"drop_extra_peaks": false}}' \
        --out benchmarks/results/ecg_detected_beats_extra_peaks.json

Results go to benchmarks/results/ecg_detected_beats.json (one entry per variant, written as each
finishes: a rerun skips the finished ones; ``--fresh`` starts over).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from wfdb import rdheader
from wfdb.processing import compare_annotations

from hsickit.apps.ecg.beats import BeatConfig, load_beats
from hsickit.apps.ecg.fusion import MultiResolutionClassifier
from hsickit.apps.ecg.metrics import beat_metrics, record_intervals
from hsickit.core.files import read_json, write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.ecg import find_records, read_beat_table

from ecg_cross_database import parse_variant, per_record_effect, record_errors  # beside this script

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ecg"
KEYS = ("macro_f1", "sensitivity_S", "ppv_S", "sensitivity_V", "ppv_V", "ppv_V_ec57", "sensitivity_F", "ppv_F")
MISSED = "-"  # the prediction of a reference beat no detected beat matched, the reference of a false detection


def match_beats(ref_sample, ref_label, test_sample, test_label, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` over reference beats and unmatched detections (``MISSED`` where a side has none).

    >>> match_beats([100, 200, 300], ["N", "S", "N"], [102, 296, 500], ["N", "N", "V"], window=10)
    (array(['N', 'S', 'N', '-'], dtype='<U1'), array(['N', '-', 'N', 'V'], dtype='<U1'))
    """
    ref_sample, test_sample = np.asarray(ref_sample, np.int64), np.asarray(test_sample, np.int64)
    ref_label, test_label = np.asarray(ref_label, str), np.asarray(test_label, str)
    match = compare_annotations(ref_sample, test_sample, window).matching_sample_nums
    pred = np.where(match >= 0, test_label[np.maximum(match, 0)], MISSED)
    extra = np.setdiff1d(np.arange(len(test_sample)), match[match >= 0])
    return (np.concatenate([ref_label, np.full(len(extra), MISSED)]).astype(str),
            np.concatenate([pred, test_label[extra]]).astype(str))


def run(name: str, model_params: dict, beat_params: dict, args) -> dict:
    """Train on ``args.train``'s annotations, predict ``args.test``'s detected beats, match them to its annotations."""
    config = BeatConfig(**beat_params)
    t0 = time.perf_counter()
    train = load_beats(args.train, config=config, annotated=True, verbose=0, n_jobs=args.jobs)
    clf = MultiResolutionClassifier(**{"random_state": args.seed, **model_params}).fit(train)
    fit_s = time.perf_counter() - t0
    paths = find_records(args.test)
    if args.limit:
        paths = dict(list(paths.items())[:args.limit])
    t0 = time.perf_counter()
    test = load_beats(args.test, records=list(paths), config=config, annotated=False, verbose=0, n_jobs=args.jobs)
    pred = clf.predict(test)
    predict_s = time.perf_counter() - t0
    y, p, rec = [], [], []
    for record, path in paths.items():
        ref = read_beat_table(path, config.annotation)
        keep = (ref["aami"] != "Q").to_numpy()
        mine = test.record == record
        window = int(round(0.15 * float(rdheader(path).fs)))  # the header alone: the signal was read by load_beats
        yt, yp = match_beats(ref["sample"].to_numpy()[keep], ref["aami"].to_numpy()[keep], test.sample[mine], pred[mine], window)
        y.append(yt), p.append(yp), rec.append(np.full(len(yt), record, dtype=object))
    y, p, rec = np.concatenate(y), np.concatenate(p), np.concatenate(rec).astype(str)
    m = beat_metrics(y, p)
    iv = record_intervals(y, p, rec, random_state=args.seed)
    ref_beats, detections = int((y != MISSED).sum()), int((p != MISSED).sum())
    both = (y != MISSED) & (p != MISSED)
    matched = int(both.sum())
    on_matched = beat_metrics(y[both], p[both])  # classification alone: the beats both the reference and the detector have
    false_detections = dict(zip(*np.unique(p[y == MISSED], return_counts=True)))
    return {"variant": name, "model_params": model_params, "beat_params": beat_params, "fit_seconds": round(fit_s, 1), "predict_seconds": round(predict_s, 1),
            "reference_beats": ref_beats, "detected_beats": detections,
            "detection_sensitivity": round(matched / ref_beats, 4), "detection_ppv": round(matched / detections, 4),
            **{k: round(m[k], 4) for k in KEYS},
            "matched_beats_only": {k: round(on_matched[k], 4) for k in KEYS},
            "false_detections_called": {str(k): int(v) for k, v in false_detections.items()},
            "record_errors": {c: record_errors(y, p, rec, c) for c in ("S", "V")},
            "intervals": {k: [round(iv[k + "_low"], 4), round(iv[k + "_high"], 4)] for k in KEYS[:5]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=str(DATA / "mitdb-ds1"))
    ap.add_argument("--test", default=str(DATA / "svdb"))
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help='also train and predict with these model parameters and "beats" fields (e.g. '
                         '\'every detected peak={"beats": {"drop_extra_peaks": false}}\'); repeatable')
    ap.add_argument("--jobs", type=int, default=2, help="processes reading records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="test records (a quick trial; not for figures)")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_detected_beats.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    done = [] if args.fresh or not out.exists() else read_json(out)["runs"]
    for name, model_params, beat_params in [("default", {}, {})] + [parse_variant(v) for v in args.variant]:
        if any(r["variant"] == name for r in done):
            continue
        done.append(run(name, model_params, beat_params, args))
        print(f"{name}: fit {done[-1]['fit_seconds']} s, predict {done[-1]['predict_seconds']} s", flush=True)
        write_json(out, {"args": vars(args), "runs": done})
    print(markdown_table([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in done]))
    print("matched beats only (detection errors left out)\n" + markdown_table([{"variant": r["variant"], **r["matched_beats_only"]} for r in done]))
    print("what the false detections were called\n" + markdown_table([{"variant": r["variant"], **r["false_detections_called"]} for r in done]))
    for r in done[1:]:
        if "record_errors" in r and "record_errors" in done[0]:
            errors = {r["variant"]: r["record_errors"], "default": done[0]["record_errors"]}
            for c in ("S", "V"):
                effect = per_record_effect(errors, "default", r["variant"], c)
                print(f"\nper record, {c} misses + false alarms, default against {r['variant']}: {effect['better']} records "
                      f"better, {effect['worse']} worse, {effect['equal']} equal; the largest changes\n"
                      + markdown_table(effect["largest_changes"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
