"""Learning-rate schedules: linear warm-up, then cosine or step decay, as ``torch.optim.lr_scheduler.LambdaLR``.

The multiplier for optimizer update ``s`` (0-based; ``LambdaLR`` starts at ``s = 0`` and the loop calls
``scheduler.step()`` after every update):

* warm-up (``s < warmup_steps``): ``(s + 1) / warmup_steps`` -- the first update already moves, the last warm-up
  update runs at the full rate;
* ``"cosine"``: ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` with ``p`` the post-warm-up progress in [0, 1];
* ``"step"``: ``gamma ** k`` with ``k`` the number of ``milestones`` (fractions of the post-warm-up steps) passed;
* ``"constant"``: 1.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

ScheduleKind = Literal["cosine", "step", "constant"]

__all__ = ["ScheduleKind", "lr_multiplier", "warmup_schedule"]


def lr_multiplier(total_steps: int, warmup_steps: int = 0, kind: ScheduleKind = "cosine", min_ratio: float = 0.0,
                  gamma: float = 0.1, milestones: Sequence[float] = (0.5, 0.75)) -> Callable[[int], float]:
    """The multiplier function ``s -> factor`` described in the module docstring (validated arguments)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1; got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0; got {warmup_steps}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1]; got {min_ratio}")
    if kind not in ("cosine", "step", "constant"):
        raise ValueError(f"unknown schedule kind {kind!r}; expected 'cosine', 'step' or 'constant'")
    decay_steps = max(1, total_steps - warmup_steps)
    marks = sorted(float(m) for m in milestones)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        if kind == "cosine":
            return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "step":
            return gamma ** sum(progress >= m for m in marks)
        return 1.0

    return factor


def warmup_schedule(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, kind: ScheduleKind = "cosine",
                    min_ratio: float = 0.0, gamma: float = 0.1, milestones: Sequence[float] = (0.5, 0.75)) -> LambdaLR:
    """A ``LambdaLR`` over every param group of ``optimizer`` with :func:`lr_multiplier`.

    The multiplier is a closure (not an object), so ``scheduler.state_dict()`` holds only numbers and loads under
    ``torch.load(weights_only=True)``; rebuild the scheduler with the same arguments before ``load_state_dict``.
    """
    return LambdaLR(optimizer, lr_multiplier(total_steps, warmup_steps, kind, min_ratio, gamma, milestones))
