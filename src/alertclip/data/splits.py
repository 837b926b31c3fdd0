"""Validation carved from the training side: a seeded, order-free choice of training videos."""

from __future__ import annotations

import hashlib

__all__ = ["val_videos"]


def val_videos(videos: list[str], fraction: float, seed: int) -> set[str]:
    """The validation videos: ``sha256(f"{seed}:{video}")`` mapped to [0, 1) below ``fraction`` (deterministic,
    independent of order and of the other videos). Callers pass TRAINING videos only."""
    out = set()
    for v in set(videos):
        u = int(hashlib.sha256(f"{seed}:{v}".encode()).hexdigest()[:12], 16) / float(1 << 48)
        if u < fraction:
            out.add(v)
    return out
