"""Scaling: training throughput, fraction of measured GEMM throughput, approximate HSIC, processes.

Synthetic MNIST-shaped data (784 inputs in [0, 1], 10 classes: class prototypes plus
low-rank within-class variation and noise), so it runs where no dataset is installed.
Sections, each timed in this one script on this one machine:

- ``gemm``: a large float32 matrix product (the baseline: GFLOP/s of this device; on CUDA
  with TF32 off, and on);
- ``throughput``: samples/s of HSIC-bottleneck and backprop training vs batch size and
  depth (MLP 784 -> 1024 x depth -> 10; HSIC with the reference settings: NOCCO, sigma 6,
  the reference kernel convention, beta 200, SGD);
- ``flops``: FLOPs of one training step of the 5 x 1024 reference net at batch 256, counted
  from the operations the step actually dispatches (forward, backward, kernels; matrix
  products and the Cholesky factorisations/solves: elementwise work is listed, not counted),
  divided by the measured step time: the fraction of the GEMM throughput that training reaches;
- ``approx``: exact vs random-feature HSIC (``hsic_approx="rff"``) for one block of width
  1024 at batch sizes m = 256 ... 8192: time of the block's objective (the X kernel,
  HSIC(Z, X) and HSIC(Z, Y), and the backward pass to Z) and relative error of both values,
  for the biased, CKA and NOCCO estimators (median-heuristic widths), and NOCCO with the
  reference code's width (sigma 6, reference convention); a sweep over the number of
  features at the largest m;
- ``processes``: 1 vs 2 processes (gloo, CPU) at the same global batch.

    python benchmarks/scale.py --quick                    # CPU, a few minutes on 1 thread
    python benchmarks/scale.py --device cuda --out gpu.json

On a machine without hsickit installed, from the repository root:

    mkdir -p /tmp/pkg && ln -sfn "$PWD" /tmp/pkg/hsickit && export PYTHONPATH=/tmp/pkg
    python benchmarks/scale.py --device cuda --out /tmp/scale_cuda.json

(needs torch and numpy; tqdm and safetensors are replaced by stand-ins when missing).
Writes JSON to ``--out`` (default benchmarks/results/scale_<device>[_quick].json).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.machinery
import json
import os
import platform
import socket
import statistics
import sys
import time
import types
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch._dynamo looks modules up by spec
    return mod


def _stand_ins() -> list[str]:
    """Minimal stand-ins for optional imports of hsickit.core (progress bars, model files)."""
    added = []
    try:
        importlib.import_module("tqdm.auto")
    except ImportError:
        class _Bar:
            def __init__(self, *args, disable=True, **kwargs):
                self.disable = True

            def update(self, *a, **k):
                pass

            set_postfix = close = update

        tqdm_mod, auto = _module("tqdm"), _module("tqdm.auto")
        tqdm_mod.tqdm = auto.tqdm = _Bar
        tqdm_mod.auto = auto
        sys.modules.update({"tqdm": tqdm_mod, "tqdm.auto": auto})
        added.append("tqdm")
    try:
        importlib.import_module("safetensors.torch")
    except ImportError:
        def _missing(*a, **k):
            raise RuntimeError("safetensors is not installed (this benchmark writes no model files)")

        st, st_torch = _module("safetensors"), _module("safetensors.torch")
        st.SafetensorError = type("SafetensorError", (Exception,), {})
        st_torch.save = st_torch.load = st_torch.load_file = st_torch.save_file = _missing
        st.torch = st_torch
        sys.modules.update({"safetensors": st, "safetensors.torch": st_torch})
        added.append("safetensors")
    return added


STAND_INS = _stand_ins()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hsickit.core.models import create_model  # noqa: E402
from hsickit.core.training import HSICObjective, Step, TrainConfig, Trainer  # noqa: E402

HSIC_REFERENCE = dict(mode="hsic", sigma=6.0, kernel_convention="reference", beta=200.0, optimizer="sgd",
                      hsic_lr=1e-3, lr=5e-3)
BACKPROP = dict(mode="backprop", optimizer="adam", lr=1e-3)


# --- helpers ---------------------------------------------------------------------------------

def synthetic(n: int, d: int = 784, classes: int = 10, seed: int = 0, device="cpu"):
    """MNIST-shaped data: class prototypes + 8-dim within-class variation + noise, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, d, generator=g)
    basis = torch.randn(classes, 8, d, generator=g) * 0.15
    y = torch.randint(0, classes, (n,), generator=g)
    x = protos[y] + 0.1 * torch.randn(n, d, generator=g)
    coef = torch.randn(n, 8, generator=g)
    for c in range(classes):
        rows = y == c
        x[rows] += coef[rows] @ basis[c]
    return x.clamp(0, 1).to(device), y.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds
        self.skipped: list[str] = []

    def ok(self, what: str) -> bool:
        if time.perf_counter() < self.end:
            return True
        self.skipped.append(what)
        return False


def table(rows: list[dict]) -> str:
    if not rows:
        return "(nothing measured)"
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows])


# --- FLOP counting ---------------------------------------------------------------------------

def count_flops(fn) -> dict:
    """FLOPs of the operations ``fn`` dispatches (forward and backward).

    Matrix products (mm, addmm, bmm, baddbmm: 2mnk) and dense factorisations/solves
    (Cholesky n^3/3, cholesky_solve 2 n^2 k, triangular solve n^2 k, QR 2 m n^2) are
    counted; elementwise and reduction operations are not (their element count is
    returned separately as ``elementwise_elements``).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    out = {"matmul": 0, "linalg": 0, "elementwise_elements": 0, "ops": 0}

    def matmul_flops(func, args, result):
        if func in (aten.mm.default, aten.bmm.default):
            a, b = args[0], args[1]
        else:  # addmm / baddbmm: (bias, a, b)
            a, b = args[1], args[2]
        batch = a.shape[0] if a.dim() == 3 else 1
        return 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            out["ops"] += 1
            if name in ("mm", "addmm", "bmm", "baddbmm"):
                out["matmul"] += matmul_flops(func, args, result)
            elif name == "linalg_cholesky_ex":
                n = args[0].shape[-1]
                out["linalg"] += int(np.prod(args[0].shape[:-2], dtype=np.int64)) * n ** 3 // 3
            elif name == "cholesky_solve":
                b, a = args[0], args[1]
                out["linalg"] += int(np.prod(b.shape[:-2], dtype=np.int64)) * 2 * a.shape[-1] ** 2 * b.shape[-1]
            elif name == "linalg_solve_triangular":
                a, b = args[0], args[1]
                rhs = b.shape[-1] if (kwargs or {}).get("left", True) else b.shape[-2]
                out["linalg"] += int(np.prod(b.shape[:-2], dtype=np.int64)) * a.shape[-1] ** 2 * rhs
            elif name == "linalg_qr":
                m, n = args[0].shape[-2:]
                out["linalg"] += 2 * m * n * n
            elif isinstance(result, torch.Tensor) and result.is_floating_point():
                out["elementwise_elements"] += result.numel()
            return result

    with Counter():
        fn()
    out["total"] = out["matmul"] + out["linalg"]
    return out


# --- sections -------------------------------------------------------------------------------

def gemm(device: torch.device, n: int, repeats: int) -> list[dict]:
    rows = []
    modes = [False, True] if device.type == "cuda" else [False]
    for tf32 in modes:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        t = timed(lambda: a @ b, device, repeats=repeats, warmup=2)
        rows.append({"n": n, "tf32": tf32, "seconds": t, "gflops": 2 * n ** 3 / t / 1e9})
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    return rows


def make_trainer(mode: str, depth: int, batch: int, device: torch.device, **extra) -> Trainer:
    torch.manual_seed(0)
    net = create_model("mlp", in_features=784, out_features=10, hidden=(1024,) * depth).to(device)
    params = HSIC_REFERENCE if mode == "hsic" else BACKPROP
    return Trainer(net, TrainConfig(batch_size=batch, device=str(device), verbose=0, **{**params, **extra}))


def step_time(mode: str, depth: int, batch: int, device: torch.device, steps: int, **extra) -> float:
    """Seconds per training step: median over epochs of `steps` batches, after a warm-up epoch."""
    trainer = make_trainer(mode, depth, batch, device, **extra)
    X, y = synthetic(batch * steps, device=device)
    epoch = iter(range(100))
    return timed(lambda: trainer.train_epoch(X, y, next(epoch)), device, repeats=2, warmup=1) / steps


def throughput(device, batches, depths, steps, budget) -> list[dict]:
    rows = []
    for depth in depths:
        for batch in batches:
            for mode in ("hsic", "backprop"):
                if not budget.ok(f"throughput {mode} depth {depth} batch {batch}"):
                    continue
                t = step_time(mode, depth, batch, device, steps)
                rows.append({"mode": mode, "depth": depth, "batch": batch, "s_per_step": t, "samples_per_s": batch / t})
                print(f"  {mode:8s} depth {depth:2d} batch {batch:5d}: {batch / t:9.0f} samples/s", flush=True)
    return rows


def flops_fraction(device, gemm_gflops: float, steps: int, tf32: bool = False) -> list[dict]:
    rows = []
    for mode in ("hsic", "backprop"):
        trainer = make_trainer(mode, 5, 256, device)
        X, y = synthetic(256, device=device)
        step = Step(trainer.model, trainer.config, trainer.loss_fn)

        def one_step():
            loss, _ = step(X, y, 1.0, 0)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()

        one_step()  # warm-up (lazy optimizer state)
        counts = count_flops(one_step)
        t = step_time(mode, 5, 256, device, steps)
        achieved = counts["total"] / t / 1e9
        rows.append({"mode": mode, "tf32": tf32, "gflop_per_step": counts["total"] / 1e9,
                     "gflop_matmul": counts["matmul"] / 1e9, "gflop_linalg": counts["linalg"] / 1e9,
                     "elementwise_melements": counts["elementwise_elements"] / 1e6, "ops_per_step": counts["ops"],
                     "s_per_step": t, "achieved_gflops": achieved, "fraction_of_gemm": achieved / gemm_gflops})
        print(f"  {mode:8s} 5x1024 batch 256: {counts['total'] / 1e9:.2f} GFLOP/step in {t * 1e3:.1f} ms = "
              f"{achieved:.1f} GFLOP/s = {100 * achieved / gemm_gflops:.1f} % of GEMM", flush=True)
    return rows


def block_objective(m: int, device, seed: int = 0):
    """Inputs of one block's HSIC objective: the batch (m, 784), labels, and Z = block(X) (m, 1024)."""
    x, y = synthetic(m, seed=seed, device=device)
    torch.manual_seed(seed)
    block = create_model("mlp", in_features=784, out_features=10, hidden=(1024,)).blocks[0].to(device)
    with torch.no_grad():
        z = block(x)
    return x, y, z


def objective_run(config: TrainConfig, x, y, z, random_state: int = 0):
    """The block's objective as the trainer computes it, with the backward pass to Z."""
    zz = z.detach().requires_grad_(True)
    zx, zy = HSICObjective(config, x, y, "classification", random_state=random_state)(zz)
    (zx - config.beta * zy).backward()
    return zx.item(), zy.item()


#: the objectives compared: estimator and kernel widths (median heuristic, or the reference code's sigma = 6)
OBJECTIVES = {
    "biased": dict(hsic_estimator="biased"),
    "cka": dict(hsic_estimator="cka"),
    "nocco": dict(hsic_estimator="nocco"),
    "nocco_ref": dict(hsic_estimator="nocco", sigma=6.0, kernel_convention="reference"),
}


def approx(device, ms, objectives, n_features, sweep, seeds, nocco_max_m, budget) -> dict:
    rows, sweep_rows = [], []
    for m in ms:
        x, y, z = block_objective(m, device)
        for est in objectives:
            if est.startswith("nocco") and m > nocco_max_m:
                continue
            if not budget.ok(f"approx m={m} {est}"):
                continue
            exact_cfg = TrainConfig(mode="hsic", beta=1.0, **OBJECTIVES[est])
            approx_cfg = dataclasses.replace(exact_cfg, hsic_approx="rff", n_features=n_features)
            exact = objective_run(exact_cfg, x, y, z)
            t_exact = timed(lambda: objective_run(exact_cfg, x, y, z), device, repeats=1 if m >= 4096 else 3)
            values = np.array([objective_run(approx_cfg, x, y, z, random_state=s) for s in range(seeds)])
            t_approx = timed(lambda: objective_run(approx_cfg, x, y, z), device, repeats=3)
            err = np.abs(values / np.array(exact) - 1)
            rows.append({"m": m, "estimator": est, "n_features": n_features, "exact_s": t_exact, "approx_s": t_approx,
                         "speedup": t_exact / t_approx, "relerr_zx_mean": float(err[:, 0].mean()),
                         "relerr_zx_max": float(err[:, 0].max()), "relerr_zy_mean": float(err[:, 1].mean()),
                         "relerr_zy_max": float(err[:, 1].max()), "exact_zx": exact[0], "exact_zy": exact[1]})
            print(f"  m={m:5d} {est:9s}: exact {t_exact * 1e3:9.1f} ms, rff {t_approx * 1e3:8.1f} ms "
                  f"({t_exact / t_approx:6.1f}x), rel. error zx {err[:, 0].mean():.4f} (max {err[:, 0].max():.4f}), "
                  f"zy {err[:, 1].mean():.4f} (max {err[:, 1].max():.4f})", flush=True)
            if m == max(ms) and sweep:
                for D in sweep:
                    if not budget.ok(f"approx sweep m={m} {est} D={D}"):
                        continue
                    cfg = dataclasses.replace(exact_cfg, hsic_approx="rff", n_features=D)
                    vals = np.array([objective_run(cfg, x, y, z, random_state=s) for s in range(seeds)])
                    t = timed(lambda: objective_run(cfg, x, y, z), device, repeats=3)
                    e = np.abs(vals / np.array(exact) - 1)
                    sweep_rows.append({"m": m, "estimator": est, "n_features": D, "approx_s": t, "speedup": t_exact / t,
                                       "relerr_zx_mean": float(e[:, 0].mean()), "relerr_zy_mean": float(e[:, 1].mean()),
                                       "relerr_zx_max": float(e[:, 0].max()), "relerr_zy_max": float(e[:, 1].max())})
                    print(f"    D={D:5d}: {t * 1e3:8.1f} ms ({t_exact / t:6.1f}x), rel. error zx {e[:, 0].mean():.4f}, "
                          f"zy {e[:, 1].mean():.4f}", flush=True)
        del x, y, z
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"table": rows, "feature_sweep": sweep_rows}


def tf32_check(device) -> dict:
    """NOCCO objective value and gradient with TF32 matmuls vs float32, one block at m = 256."""
    x, y, z = block_objective(256, device)
    cfg = TrainConfig(mode="hsic", **{k: HSIC_REFERENCE[k] for k in ("sigma", "kernel_convention", "beta")})
    out = {}
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        zz = z.detach().requires_grad_(True)
        zx, zy = HSICObjective(cfg, x, y, "classification")(zz)
        (zx - cfg.beta * zy).backward()
        out[tf32] = (zx.item(), zy.item(), zz.grad.clone())
    torch.backends.cuda.matmul.allow_tf32 = False
    g32, gtf = out[False][2], out[True][2]
    return {"zx_relerr": abs(out[True][0] / out[False][0] - 1), "zy_relerr": abs(out[True][1] / out[False][1] - 1),
            "grad_relerr": float((gtf - g32).norm() / g32.norm())}


def _worker(rank: int, world: int, port: int, mode: str, depth: int, width: int, batch: int, steps: int, extra: dict,
            out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    torch.manual_seed(0)
    net = create_model("mlp", in_features=784, out_features=10, hidden=(width,) * depth)
    params = HSIC_REFERENCE if mode == "hsic" else BACKPROP
    trainer = Trainer(net, TrainConfig(batch_size=batch, verbose=0, **{**params, **extra}))
    X, y = synthetic(batch * steps)
    trainer.train_epoch(X, y, 0)  # warm-up
    times = []
    for epoch in (1, 2):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        trainer.train_epoch(X, y, epoch)
        if world > 1:
            dist.barrier()
        times.append(time.perf_counter() - start)
    if rank == 0:
        Path(out).write_text(json.dumps({"s_per_step": min(times) / steps}))
    if world > 1:
        dist.destroy_process_group()


def processes(depth, width, batch, steps, budget) -> list[dict]:
    import tempfile

    import torch.multiprocessing as mp

    rows = []
    cases = [("backprop", {}), ("hsic", {"distributed_hsic": "local"}), ("hsic", {"distributed_hsic": "gather"})]
    for mode, extra in cases:
        for world in (1, 2):
            if world == 1 and extra.get("distributed_hsic") == "gather":
                continue  # identical to "local" with one process
            if not budget.ok(f"processes {mode} {extra} world {world}"):
                continue
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            out = tempfile.mktemp(suffix=".json")
            mp.start_processes(_worker, args=(world, port, mode, depth, width, batch, steps, extra, out), nprocs=world,
                               start_method="spawn")
            t = json.loads(Path(out).read_text())["s_per_step"]
            os.unlink(out)
            label = mode if mode == "backprop" else f"hsic ({extra['distributed_hsic']})"
            rows.append({"mode": label, "processes": world, "threads_per_process": 1, "global_batch": batch,
                         "s_per_step": t, "samples_per_s": batch / t})
            print(f"  {label:14s} {world} process(es): {batch / t:8.0f} samples/s", flush=True)
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    ap.add_argument("--quick", action="store_true", help="smaller grids (CPU smoke run)")
    ap.add_argument("--budget-s", type=float, default=None, help="stop starting new measurements after this many seconds")
    ap.add_argument("--sections", default="gemm,throughput,flops,approx,processes")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = ap.parse_args(argv)
    from hsickit.core.distributed import resolve_device

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    sections = set(args.sections.split(","))
    budget = Budget(args.budget_s or (170.0 if cuda else 3600.0))
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        batches, depths, steps = [256, 1024, 4096], [5, 10, 20], 10
        ms, nocco_max_m, gemm_n = [256, 512, 1024, 2048, 4096, 8192], 8192, 8192
    elif args.quick:
        batches, depths, steps = [64, 256, 1024], [5, 10], 3
        ms, nocco_max_m, gemm_n = [256, 1024, 4096, 8192], 2048, 2048
    else:
        batches, depths, steps = [64, 256, 1024], [5, 10, 20], 5
        ms, nocco_max_m, gemm_n = [256, 512, 1024, 2048, 4096, 8192], 4096, 3072

    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                          "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                          "load_average": os.getloadavg(),
                          "gpu": torch.cuda.get_device_name(device) if cuda else None, "stand_ins": STAND_INS},
              "settings": {"batches": batches, "depths": depths, "steps": steps, "ms": ms, "quick": args.quick}}
    print(f"device {device}{' (' + result['machine']['gpu'] + ')' if cuda else ''}, {torch.get_num_threads()} thread(s)")
    if "gemm" in sections or "flops" in sections:
        print("\n## float32 GEMM")
        result["gemm"] = gemm(device, gemm_n, repeats=5)
        print(table(result["gemm"]))
        base = result["gemm"][0]["gflops"]
    if "flops" in sections:
        print("\n## fraction of GEMM throughput (5 x 1024 MLP, batch 256, float32)")
        result["flops"] = flops_fraction(device, base, steps)
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            result["flops"] += flops_fraction(device, result["gemm"][1]["gflops"], steps, tf32=True)
            torch.backends.cuda.matmul.allow_tf32 = False
            result["tf32_hsic_accuracy"] = tf32_check(device)
            print("TF32 vs float32, NOCCO objective at m=256:", result["tf32_hsic_accuracy"])
    if "throughput" in sections:
        print("\n## throughput vs batch size and depth")
        result["throughput"] = throughput(device, batches, depths, steps, budget)
        print(table(result["throughput"]))
    if "approx" in sections:
        print("\n## exact vs random-feature HSIC (one 1024-wide block; nocco_ref: sigma 6, reference convention)")
        sweep = [256, 512, 1024, 2048] + ([4096] if cuda else [])
        result["approx"] = approx(device, ms, list(OBJECTIVES), 1024, sweep,
                                  seeds=3, nocco_max_m=nocco_max_m, budget=budget)
        print(table(result["approx"]["table"]))
        print(table(result["approx"]["feature_sweep"]))
    if "processes" in sections:
        if cuda and torch.cuda.device_count() < 2:
            result["processes"] = "skipped: one GPU (the 1 vs 2 process comparison runs on CPU machines or >= 2 GPUs)"
        else:
            print("\n## 1 vs 2 processes (gloo, CPU, 1 thread each; 5 x 1024 MLP, global batch 256)")
            result["processes"] = processes(5, 1024, 256, 4 if args.quick else 6, budget)
            print(table(result["processes"]))
    result["skipped_over_budget"] = budget.skipped
    out = args.out or RESULTS / f"scale_{device.type}{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
