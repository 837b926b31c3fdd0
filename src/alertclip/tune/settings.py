"""A tuning run's settings: the ``stage1`` / ``stage2`` params groups, stage 1 seen in stage 2's terms."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from ..params import Stage1Params, Stage2Params
from ..train.loop import LoopConfig

log = logging.getLogger(__name__)

Stage = Literal["stage1", "stage2"]


TuneParams = Stage1Params | Stage2Params


def stage_of(cfg: TuneParams) -> Stage:
    return "stage2" if isinstance(cfg, Stage2Params) else "stage1"


def as_stage2(cfg: TuneParams) -> Stage2Params:
    """The settings a run trains with, in stage 2's terms: stage 1 is the global loss alone (both lambdas 0) from
    the base backbone, with the hard negatives measured on validation but not trained."""
    if isinstance(cfg, Stage2Params):
        return cfg
    return Stage2Params.model_validate({**cfg.model_dump(), "lambda_region": 0.0, "lambda_hard": 0.0, "init": "base",
                                        "negatives": "hard", "use_sweep": False})


def loop_config(cfg: TuneParams, checkpoint_dir: Path | None, desc: str, progress: bool = False) -> LoopConfig:
    return LoopConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                      grad_clip=cfg.grad_clip or None, seed=cfg.seed, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=cfg.checkpoint_every, progress=progress, desc=desc, precision=cfg.precision)
