"""Data-parallel training across processes with ``torchrun`` (``torch.distributed``; gloo on CPU, NCCL on GPU).

Scheme (the OpenCLIP one, ``gather_with_grad`` + full-batch loss): every process encodes its contiguous shard of the
global batch, all embeddings are gathered *with* gradient, and every process computes the loss over the whole
global batch -- so contrastive terms see the same negatives as a single process would. The gather's backward sums
the gradient of each shard from all processes (W x the true value) and DDP then averages over the W processes,
which gives exactly the single-process gradient of the full-batch loss.

Run: ``torchrun --standalone --nproc_per_node 2 -m alertclip tune --variant full`` (one process per GPU; on CPU it uses gloo).
Without the ``torchrun`` environment (``WORLD_SIZE`` unset or 1) everything here is a no-op for one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistContext", "all_gather_cat", "any_across", "context", "init_from_env", "shard_slice"]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def context() -> DistContext:
    """The current process group's view (one process when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def init_from_env() -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (``RANK``/``WORLD_SIZE``/``MASTER_*``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return context()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return context()


def shard_slice(global_batch: int, ctx: DistContext) -> slice:
    """This process's contiguous part of a global batch (gathering the parts restores the global order)."""
    if global_batch % ctx.world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {ctx.world_size} processes; "
                         f"choose a batch_size that is a multiple of the process count")
    per = global_batch // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def all_gather_cat(x: Tensor, ctx: DistContext) -> Tensor:
    """Concatenate ``x`` (same shape on every process) from all processes along dim 0, in rank order.

    Float tensors keep their gradient (``torch.distributed.nn.functional.all_gather``, whose backward sums the
    incoming gradients across processes); other dtypes (masks, indices) are gathered without autograd.
    """
    if not ctx.enabled:
        return x
    if x.is_floating_point():
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x.contiguous()), dim=0)
    parts = [torch.empty_like(x) for _ in range(ctx.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def any_across(flag: bool, ctx: DistContext, device: torch.device | None = None) -> bool:
    """True on every process when ``flag`` is true on any (SIGTERM may reach one process first)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device or ctx.device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
