"""A tuning run's settings (params ``tune`` with one row of ``runs`` applied: :func:`alertclip.params.run_settings`)
as the training loop takes them."""

from __future__ import annotations

from pathlib import Path

from ..params import RunSettings
from ..train.loop import LoopConfig


def loop_config(cfg: RunSettings, checkpoint_dir: Path | None, desc: str, progress: bool = False) -> LoopConfig:
    return LoopConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                      grad_clip=cfg.grad_clip or None, seed=cfg.seed, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=cfg.checkpoint_every, progress=progress, desc=desc, precision=cfg.precision)
