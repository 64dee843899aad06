"""Multi-process training with ``torch.distributed``: devices, ranks and the few collectives hsickit needs.

hsickit's trainer runs unchanged under ``torchrun``: when the launcher's environment says
``WORLD_SIZE > 1``, :func:`init_from_env` opens the process group (NCCL on GPUs, gloo on
CPUs) and the trainer wraps its step in ``DistributedDataParallel``. Outside ``torchrun``
every function here answers for a single process (rank 0 of 1) and needs no process group.

    torchrun --nproc-per-node 4 --no-python hsickit materials train ...     # one machine
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-id job1 --rdzv-backend c10d \\
             --rdzv-endpoint host0:29500 --no-python hsickit materials train ... # on each machine

Examples
--------
>>> from hsickit.core import distributed
>>> distributed.world_size(), distributed.rank(), distributed.is_main_process()
(1, 0, True)
>>> distributed.resolve_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from hsickit.core.errors import HsickitError


def is_initialized() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that writes checkpoints, run folders and progress bars."""
    return rank() == 0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. Under ``torchrun`` a bare ``"cuda"`` means
    this process's GPU, ``cuda:$LOCAL_RANK``."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise HsickitError("device='cuda' but this torch build or machine has no CUDA GPU; use device='cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return device


def init_from_env(device: torch.device) -> bool:
    """Open the default process group when launched by ``torchrun`` with more than one process.

    Returns True when a process group is (now) initialised. The backend is NCCL for CUDA
    devices and gloo otherwise; the rendezvous comes from the launcher's environment
    (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``).
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise HsickitError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run a single process or install a full torch build")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return True


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all ranks (a copy; ``t`` itself unchanged)."""
    t = t.detach().clone()
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (stop signals, divergence)."""
    if world_size() == 1:
        return bool(flag)
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def broadcast_object(obj, device: torch.device, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (for checkpoint state read by rank 0 only)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=device if device.type == "cuda" else None)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank."""
    if world_size() == 1:
        return
    for buf in module.buffers():
        dist.broadcast(buf, src)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, sizes: tuple[int, ...]):
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        padded = t.new_zeros((max(sizes),) + t.shape[1:])
        padded[: len(t)] = t
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # every rank differentiates its own copy of the gathered rows: the gradient of
        # this rank's rows is the sum of all ranks' gradients for them
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def gather_rows(t: torch.Tensor, sizes: tuple[int, ...] | None = None) -> torch.Tensor:
    """All ranks' rows of ``t`` concatenated in rank order, differentiable.

    ``sizes``: each rank's row count (uneven shards allowed); default: all equal to ``len(t)``.
    The backward pass sums the gradients that every rank computed for a rank's rows, so a
    loss that every rank computes identically on the gathered rows, averaged by DDP, yields
    exactly the gradient of that loss on the global batch.
    """
    if world_size() == 1:
        return t
    sizes = tuple(sizes) if sizes is not None else (len(t),) * world_size()
    return _GatherRows.apply(t, sizes)
