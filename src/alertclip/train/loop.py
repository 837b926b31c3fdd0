"""A small, generic, resumable training loop (AdamW + warm-up schedule + clipping + atomic checkpoints).

``train(model, params, loss_fn, batches, cfg)`` runs ``cfg.epochs * batches.steps_per_epoch`` optimizer updates:

* ``loss_fn(batch) -> dict`` with a scalar ``"loss"`` to minimise; other scalar entries are logged per step.
* ``batches`` is a :class:`BatchSource`: ``batches.epoch(e, start)`` yields batches ``start, start + 1, ...`` of
  epoch ``e``, the same ones every time it is asked (e.g. :class:`PermutationBatches`, a seeded permutation per epoch),
  so a resumed run continues the exact batch sequence.
* ``callbacks``: :class:`EpochCallback` objects (the checkpoint-callback pattern of open_clip / Lightning):
  ``epoch_start(e, start)`` before an epoch's first batch (``start`` > 0 on a resume inside it), ``epoch_end(e)``
  after its last update (and its checkpoint), the last epoch's included. An epoch stopped by SIGTERM gets no
  ``epoch_end``; the resumed run's ``epoch_start`` of the next epoch can catch up. An exception a callback raises
  (e.g. ``optuna.TrialPruned``) ends the run.
* Mixed precision (``cfg.precision``): ``auto`` = bf16 autocast on CUDA, fp32 on CPU; ``bf16`` / ``fp32`` force it
  (bf16 autocast also works on CPU, for checking the path). On CPU ``torch.use_deterministic_algorithms(True)`` is
  set (restored afterwards), so on CPU a run that is stopped and resumed from its checkpoint ends with bit-identical
  weights to an uninterrupted run.
* Several processes (``torchrun``, :mod:`.distributed`): ``loss_fn`` does the data parallelism (DDP module, gathered
  embeddings); the loop only makes process 0 write checkpoints and the progress bar, and stops every process at the
  same step when any of them got SIGTERM.
* Checkpoints (``cfg.checkpoint_dir / "last.pt"``, written atomically) every ``cfg.checkpoint_every`` updates, on
  SIGTERM / ``cfg.stop_after``, and at the end. They hold model, optimizer, scheduler and torch RNG states, the step
  and the metric history -- tensors, dicts, lists and numbers only, so ``torch.load(weights_only=True)`` reads them.
  A later call with the same ``checkpoint_dir`` (and ``cfg.resume``) continues from it.
* SIGTERM (while training in the main thread) finishes the current update, saves a checkpoint and returns a result
  with ``interrupted=True``; the caller decides the exit status.
* A non-finite loss (or gradient norm) raises :class:`NonFiniteLossError` naming the step, before the update, without
  writing a checkpoint: the last good one on disk is kept.

Only torch's RNG (CPU and CUDA) is checkpointed; code inside ``loss_fn`` must not draw from numpy / ``random``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..io import atomic_open, atomic_path
from .distributed import any_across, context
from .schedule import ScheduleKind, warmup_schedule

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_NAME",
    "BatchSource",
    "EpochCallback",
    "LoopConfig",
    "NonFiniteLossError",
    "PermutationBatches",
    "TrainResult",
    "load_checkpoint",
    "train",
    "write_curve",
]

CHECKPOINT_NAME = "last.pt"


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became NaN/inf; the message names the step and the last good checkpoint."""


class BatchSource(Protocol):
    """Deterministic, resumable batches: ``epoch(e, start)`` yields batches ``start..steps_per_epoch-1`` of epoch ``e``."""

    steps_per_epoch: int
    batch_size: int

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class PermutationBatches:
    """Batches of an indexable dataset in a seeded random order per epoch (``drop_last``: every batch is full).

    ``fetch(indices)`` turns a 1-D LongTensor of dataset indices into a batch. Epoch ``e``'s order is
    ``randperm(n)`` from a generator seeded with ``(seed, e)``, independent of the global RNG.
    """

    def __init__(self, n: int, batch_size: int, seed: int, fetch: Callable[[Tensor], Any]) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if n < batch_size:
            raise ValueError(f"dataset of {n} items is smaller than one batch ({batch_size})")
        self.n, self.batch_size, self.seed, self.fetch = n, batch_size, seed, fetch
        self.steps_per_epoch = n // batch_size

    def order(self, epoch: int) -> Tensor:
        gen = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(epoch))
        return torch.randperm(self.n, generator=gen)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        perm = self.order(epoch)
        for i in range(start, self.steps_per_epoch):
            yield self.fetch(perm[i * self.batch_size:(i + 1) * self.batch_size])


class EpochCallback(Protocol):
    """Called by :func:`train` around every epoch (see the module docstring)."""

    def epoch_start(self, epoch: int, start: int) -> None: ...

    def epoch_end(self, epoch: int) -> None: ...


@dataclass
class LoopConfig:
    epochs: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int = 0
    schedule: ScheduleKind = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0  # max global grad norm; None/0 = no clipping
    seed: int = 0
    checkpoint_dir: Path | None = None  # None = no checkpoints, no resume
    checkpoint_every: int = 0  # updates between checkpoints; 0 = only at the end / on SIGTERM
    resume: bool = True
    stop_after: int | None = None  # stop like on SIGTERM once this many updates are done (tests, time slicing)
    progress: bool = False  # tqdm bar; shown only when stderr is a TTY
    desc: str = "train"
    handle_sigterm: bool = True
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32


@dataclass
class TrainResult:
    step: int  # updates done
    total_steps: int
    interrupted: bool  # stopped by SIGTERM / stop_after (checkpoint saved) rather than finished
    history: list[dict] = field(default_factory=list)  # per update: step (1-based), epoch, loss, lr, extra scalars
    final: dict = field(default_factory=dict)
    checkpoint: Path | None = None


def load_checkpoint(path: str | Path) -> dict:
    """Read a loop checkpoint (``weights_only=True``: tensors, dicts, lists, numbers)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _param_groups(params: Sequence[nn.Parameter], weight_decay: float) -> list[dict]:
    # CLIP convention: no weight decay on gains, biases, embeddings of rank < 2 and logit_scale.
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _scalar(value: Any) -> float | None:
    if isinstance(value, Tensor):
        return float(value.detach()) if value.numel() == 1 else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _StopFlag:
    """SIGTERM -> set a flag; the loop checks it after each update. Installed only in the main thread."""

    def __init__(self, enabled: bool) -> None:
        self.signum: int | None = None
        self._previous = None
        self._enabled = enabled and threading.current_thread() is threading.main_thread()

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.signum = signum
        log.warning("received signal %d: stopping after the current step and saving a checkpoint", signum)

    def __enter__(self) -> "_StopFlag":
        if self._enabled:
            self._previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled:
            signal.signal(signal.SIGTERM, self._previous)


def train(model: nn.Module, params_to_train: Iterable[nn.Parameter], loss_fn: Callable[[Any], dict],
          batches: BatchSource, cfg: LoopConfig, callbacks: Sequence[EpochCallback] = ()) -> TrainResult:
    """Train ``params_to_train`` of ``model`` on ``batches`` (see the module docstring); returns a :class:`TrainResult`."""
    params = [p for p in params_to_train if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters (all have requires_grad=False)")
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {cfg.epochs}")
    if cfg.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto|bf16|fp32; got {cfg.precision!r}")
    device = params[0].device
    on_cuda = device.type == "cuda"
    ctx = context()
    total = cfg.epochs * batches.steps_per_epoch
    ckpt_path = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir is not None else None

    torch.manual_seed(cfg.seed)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if not on_cuda:
        torch.use_deterministic_algorithms(True)

    optimizer = torch.optim.AdamW(_param_groups(params, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    scheduler = warmup_schedule(optimizer, total, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
    step = 0
    history: list[dict] = []
    last_good: int | None = None

    if ckpt_path is not None and cfg.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("total_steps") != total:
            raise ValueError(f"checkpoint {ckpt_path} was written for {state.get('total_steps')} steps, this run has "
                             f"{total}; delete it or use another checkpoint_dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, history, last_good = int(state["step"]), list(state["history"]), int(state["step"])
        log.info("resuming from %s at step %d/%d", ckpt_path, step, total)
    start_step = step

    def save() -> None:
        nonlocal last_good
        if ckpt_path is None or not ctx.is_main:  # every process holds the same state; one writes it
            return
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": _rng_state(), "step": step, "total_steps": total, "history": history}
        with atomic_path(ckpt_path) as tmp:
            torch.save(state, tmp)
        last_good = step

    def non_finite(what: str, value: float, epoch: int) -> NonFiniteLossError:
        where = f"{ckpt_path} (step {last_good})" if last_good is not None else "none (no checkpoint was written yet)"
        return NonFiniteLossError(f"non-finite {what} {value} at step {step + 1} (epoch {epoch}); the update was not "
                                  f"applied and no checkpoint was written; last good checkpoint: {where}")

    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and on_cuda)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    show = cfg.progress and sys.stderr.isatty() and ctx.is_main
    bar = tqdm(total=total, initial=step, desc=cfg.desc, unit="step", disable=not show, dynamic_ncols=True)
    interrupted = False
    t0 = time.perf_counter()
    model.train()
    try:
        with _StopFlag(cfg.handle_sigterm) as stop:
            while step < total and not interrupted:
                epoch, start = divmod(step, batches.steps_per_epoch)
                for callback in callbacks:
                    callback.epoch_start(epoch, start)
                produced = 0
                for batch in batches.epoch(epoch, start):
                    produced += 1
                    with autocast():
                        out = loss_fn(batch)
                    loss = out["loss"]
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise non_finite("loss", loss_value, epoch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                        if not math.isfinite(gnorm):
                            optimizer.zero_grad(set_to_none=True)
                            raise non_finite("gradient norm", gnorm, epoch)
                    lr = optimizer.param_groups[0]["lr"]
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    row = {"step": step, "epoch": epoch, "loss": loss_value, "lr": float(lr)}
                    for key, value in out.items():
                        if key != "loss" and key not in row and (v := _scalar(value)) is not None:
                            row[key] = v
                    history.append(row)
                    elapsed = time.perf_counter() - t0
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}",
                                    samples_s=f"{(step - start_step) * batches.batch_size / max(elapsed, 1e-9):.1f}")
                    stopping = stop.signum is not None or (cfg.stop_after is not None and step >= cfg.stop_after)
                    if any_across(stopping, ctx, device):
                        interrupted = step < total
                        break
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                        save()
                if interrupted:
                    break
                if produced != batches.steps_per_epoch - start:
                    raise RuntimeError(f"batch source gave {produced} batches for epoch {epoch} from batch {start}; "
                                       f"expected {batches.steps_per_epoch - start}")
                for callback in callbacks:
                    callback.epoch_end(epoch)
            save()
    finally:
        bar.close()
        if not on_cuda:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
    wall = time.perf_counter() - t0
    done = step - start_step
    final = {
        "steps": step,
        "total_steps": total,
        "epochs": cfg.epochs,
        "resumed_from_step": start_step,
        "final_loss": history[-1]["loss"] if history else None,
        "first_loss": history[0]["loss"] if history else None,
        "wall_s": wall,
        "samples_per_s": done * batches.batch_size / wall if wall > 0 else 0.0,
        "precision": "bf16" if use_bf16 else "fp32",
        "processes": ctx.world_size,
    }
    if interrupted:
        log.warning("stopped at step %d/%d; checkpoint %s", step, total, ckpt_path)
    return TrainResult(step, total, interrupted, history, final, ckpt_path)


def write_curve(path: str | Path, history: Sequence[dict]) -> None:
    """Per-step metrics as CSV (a DVC plot: x = step), atomically; columns = union of keys, step/epoch/loss/lr first."""
    keys: list[str] = ["step", "epoch", "loss", "lr"]
    for row in history:
        keys += [k for k in row if k not in keys]
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for row in history:
            writer.writerow(row)
