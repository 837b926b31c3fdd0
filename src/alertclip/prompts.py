"""Text prompts as directions: one unit vector per prompt set (training validation and the zero-shot evaluations) and
each snippet's binary prompt-margin score."""

from __future__ import annotations

import math

import numpy as np


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError(f"{what}: zero-length or non-finite vector cannot be L2-normalised")
    return x / norms


def prompt_set_embedding(prompts: np.ndarray, what: str) -> np.ndarray:
    """One unit text vector for a prompt set: L2-normalise each prompt, average, re-normalise.

    Normalising first weights every prompt equally whatever its raw norm (CLIP's prompt-ensembling recipe).
    """
    p = np.asarray(prompts, dtype=np.float64)
    p = p[None, :] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{what}: empty prompt set (need P x D embeddings with P >= 1, got shape {p.shape})")
    return _unit_rows(_unit_rows(p, what).mean(axis=0), f"{what} (mean of prompts)")


def zero_shot_scores(v: np.ndarray, t_abnormal: np.ndarray, t_normal: np.ndarray, logit_scale: float) -> np.ndarray:
    """Per-snippet anomaly score, section D's binary form: ``softmax(logit_scale * [cos(v, t_A), cos(v, t_N)])[A]``.

    ``v`` is ``T x D`` (or ``D``) visual embeddings; ``t_abnormal`` / ``t_normal`` are one text embedding (``D``) or a
    prompt set (``P x D``) reduced by :func:`prompt_set_embedding`. ``logit_scale`` is ``1 / tau`` (100 for CLIP's
    scale, 1 / 0.07), already exponentiated. Computed as ``sigmoid(logit_scale * (cos_A - cos_N))``, the same
    two-way softmax without overflow.
    """
    visual = np.asarray(v, dtype=np.float64)
    visual = visual[None, :] if visual.ndim == 1 else visual
    t_a = prompt_set_embedding(t_abnormal, "t_abnormal")
    t_n = prompt_set_embedding(t_normal, "t_normal")
    if visual.ndim != 2 or visual.shape[1] != t_a.size or t_a.size != t_n.size:
        raise ValueError(f"dimension mismatch: v {visual.shape}, t_abnormal D={t_a.size}, t_normal D={t_n.size}")
    if not math.isfinite(logit_scale) or logit_scale <= 0:
        raise ValueError(f"logit_scale must be a positive finite number (1 / tau), got {logit_scale}")
    unit = _unit_rows(visual, "v")
    margin = logit_scale * (unit @ t_a - unit @ t_n)
    return 0.5 * (1.0 + np.tanh(0.5 * margin))
