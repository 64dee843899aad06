"""The atrial-fibrillation rule of the beat models: its two thresholds, chosen on MIT-BIH DS1's rhythm annotations.

A supraventricular (S) beat is a premature beat of atrial origin; in atrial fibrillation or
flutter there is no atrial rhythm to be premature against, and MIT-BIH labels those beats N.
A model trained on patients without AF (SVDB has no rhythm annotations, and few AF stretches)
takes the irregular beats of AF for S: most false S of an SVDB-trained model on DS1 are in its
AF records (201, 203). :func:`hsickit.apps.ecg.features.atrial_fibrillation` flags beats by the
textbook signs: an irregular rhythm that regular ectopy does not fake (:func:`rr_disorder`) and
no P wave that repeats (``p_consistency`` of the beat features, the better of the two leads).

This script scores every pair of thresholds on a grid against DS1's rhythm annotations (beats
under ``(AFIB`` or ``(AFL`` against every other rhythm; no beat label is used) and chooses the
pair that finds the most AF beats while flagging at most ``--max-flagged`` (1 %) of the others;
ties: fewer flagged. SVDB carries no rhythm annotations, so nothing here is measured on it.
The effect on S and V across databases is in ``benchmarks/ecg_cross_database.py`` (each model's
predictions with and without the rule).

    python benchmarks/ecg_af_rule.py          # about 2 CPU minutes (reading DS1)

Writes benchmarks/results/ecg_af_rule.json and prints the grid.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hsickit.apps.ecg.beats import BeatConfig, load_beats
from hsickit.apps.ecg.features import AF_DISORDER, AF_P_CONSISTENCY
from hsickit.apps.ecg.fusion import af_evidence
from hsickit.core.files import write_json
from hsickit.core.report import markdown_table
from hsickit.datasets.ecg import list_records, read_beat_table, record_path

ROOT = Path(__file__).resolve().parent
DATA = ROOT.parent.parent / "shared" / "data" / "ecg" / "mitdb-ds1"
AF_RHYTHMS = ("(AFIB", "(AFL")


def per_beat(beats, folder):
    """Each beat's rr_disorder, best p_consistency of the two leads, and whether DS1's rhythm annotation says AF."""
    disorder, consistency = af_evidence(beats)
    af = np.zeros(len(beats), bool)
    records = beats.record.astype(str)
    for r in dict.fromkeys(records):
        k = np.flatnonzero(records == r)
        table = read_beat_table(record_path(folder, r), "atr")
        rhythm = dict(zip(table["sample"].to_numpy(), table["rhythm"].astype(str).str.strip("\x00")))
        af[k] = np.isin([rhythm.get(int(s), "") for s in beats.sample[k]], AF_RHYTHMS)
    return disorder, consistency, af


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--max-flagged", type=float, default=0.01, help="largest share of non-AF beats the rule may flag")
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_af_rule.json"))
    args = ap.parse_args()
    beats = load_beats(args.data, list_records(args.data), BeatConfig(), annotated=True, verbose=0)
    disorder, consistency, af = per_beat(beats, args.data)
    grid = []
    for t in (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15):
        for c in (0.3, 0.4, 0.5, 0.6, 0.7):
            flag = (disorder > t) & (consistency < c)
            grid.append({"rr_disorder >": t, "p_consistency <": c, "AF beats found": round(float(flag[af].mean()), 4),
                         "other beats flagged": round(float(flag[~af].mean()), 4), "other beats flagged (n)": int(flag[~af].sum())})
    allowed = [g for g in grid if g["other beats flagged"] <= args.max_flagged]
    best = max(allowed, key=lambda g: (g["AF beats found"], -g["other beats flagged"]))
    result = {"data": str(Path(args.data).resolve()), "af_beats": int(af.sum()), "other_beats": int((~af).sum()),
              "max_flagged": args.max_flagged, "chosen": best, "grid": grid,
              "library_thresholds": {"AF_DISORDER": AF_DISORDER, "AF_P_CONSISTENCY": AF_P_CONSISTENCY},
              "library_matches_choice": bool(best["rr_disorder >"] == AF_DISORDER and best["p_consistency <"] == AF_P_CONSISTENCY)}
    write_json(args.out, result)
    print(markdown_table(grid))
    print(f"\n{int(af.sum())} AF / flutter beats and {int((~af).sum())} others in {args.data}")
    print(f"chosen (most AF found with at most {args.max_flagged:.0%} of the others flagged): rr_disorder > {best['rr_disorder >']}, "
          f"p_consistency < {best['p_consistency <']}: {best['AF beats found']:.1%} of AF beats, {best['other beats flagged']:.2%} of others")
    if not result["library_matches_choice"]:
        print(f"the library's thresholds ({AF_DISORDER}, {AF_P_CONSISTENCY}) are not this choice: update apps/ecg/features.py")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
