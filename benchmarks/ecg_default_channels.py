"""The default ECG beat model (rr channel only) against the four-channel model, side by side.

Both fuse their channels with the hand-crafted features and use the default two-stage
downstream, which reads only the rr channel's outputs: so the default trains only that
channel, and (each channel's seed following its name) predicts as the four-channel model does.
On MIT-BIH DS1 records (train: the README example's 12 records, test: its 10) this measures,
in one process: fit seconds, inference beats per second (WFDB-loaded beats -> labels), their
ratios, and the largest difference between the two models' class probabilities.

    python benchmarks/ecg_default_channels.py        # about 5 minutes on 2 cores

Writes benchmarks/results/ecg_default_channels.json and prints a table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hsickit.apps.ecg import MultiResolutionClassifier, beat_metrics, load_beats
from hsickit.core.files import write_json
from hsickit.core.report import markdown_table

ROOT = Path(__file__).resolve().parent
TRAIN = "101,106,108,109,112,114,115,116,118,119,122,124"
TEST = "201,203,205,207,208,209,215,220,223,230"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent.parent / "shared" / "data" / "ecg" / "mitdb-ds1"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--repeats", type=int, default=3, help="inference timings per model (the fastest counts)")
    ap.add_argument("--out", default=str(ROOT / "results" / "ecg_default_channels.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = load_beats(args.data, records=TRAIN, verbose=0)
    test = load_beats(args.data, records=TEST, verbose=0)
    rows, proba = [], {}
    for name, channels in (("four channels (beat, rhythm, wavelet, rr)", ("beat", "rhythm", "wavelet", "rr")),
                           ("default (rr)", ("rr",))):
        t0 = time.perf_counter()
        clf = MultiResolutionClassifier(channels=channels, random_state=0).fit(train)
        fit_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            proba[name] = clf.predict_proba(test)
            times.append(time.perf_counter() - t0)
        m = beat_metrics(test.y, clf.decide(proba[name]))
        rows.append({"model": name, "fit_s": round(fit_s, 1), "beats_per_s": round(len(test) / min(times)),
                     "macro_f1": round(m["macro_f1"], 4), "sensitivity_S": round(m["sensitivity_S"], 4), "ppv_S": round(m["ppv_S"], 4),
                     "sensitivity_V": round(m["sensitivity_V"], 4), "ppv_V": round(m["ppv_V"], 4)})
        print(markdown_table(rows[-1:]), flush=True)
    base, default = rows
    summary = {"fit_speedup": base["fit_s"] / default["fit_s"], "inference_speedup": default["beats_per_s"] / base["beats_per_s"],
               "max_abs_probability_difference": float(np.abs(proba[base["model"]] - proba[default["model"]]).max())}
    print("\n" + markdown_table(rows) + "\n" + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()))
    write_json(Path(args.out), {"args": vars(args), "n_train_beats": len(train), "n_test_beats": len(test), "rows": rows, **summary})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
