"""Training utilities: a resumable, deterministic loop and LR schedules."""

from .loop import (
    CHECKPOINT_NAME,
    BatchSource,
    LoopConfig,
    NonFiniteLossError,
    PermutationBatches,
    TrainResult,
    load_checkpoint,
    pin_threads,
    train,
    write_curve,
)
from .schedule import ScheduleKind, lr_multiplier, warmup_schedule

__all__ = [
    "pin_threads",
    "CHECKPOINT_NAME",
    "BatchSource",
    "LoopConfig",
    "NonFiniteLossError",
    "PermutationBatches",
    "ScheduleKind",
    "TrainResult",
    "load_checkpoint",
    "lr_multiplier",
    "train",
    "warmup_schedule",
    "write_curve",
]
