"""Alert-CLIP training losses (OpenCLIP style): pure functions on normalised embeddings.

Three losses tune CLIP for abnormality-aware video-text matching:

* :func:`symmetric_infonce` -- clip-level video-text InfoNCE with in-batch negatives,
  ``(CE(s * v @ t.T, arange) + CE(s * t @ v.T, arange)) / 2`` (CLIP's loss).
* :func:`region_infonce` -- the same symmetric form over all R regions of the batch
  (region embeddings vs. region-caption embeddings); R = 0 gives a graph-connected zero.
* :func:`hard_negative_loss` -- per clip, the positive caption against its own K hard
  negative captions: ``-log(e^{s+/tau} / (e^{s+/tau} + sum_k e^{s-_k/tau}))``, with a validity mask for clips that
  have fewer than K negatives.
* :func:`alert_clip_losses` -- ``L_g + lambda_region * L_r + lambda_hard * L_h`` with one shared temperature, the
  hard-negative term anchored on the region embedding: what training computes.

Conventions
-----------
* Every function takes **already L2-normalised** embeddings; cosine similarity is then a plain dot product. Nothing
  here normalises or checks norms.
* Temperature follows CLIP: the learnable parameter ``logit_scale`` holds ``log(1 / tau)`` (init ``log(1 / 0.07)``);
  at use it is exponentiated and clamped to at most :data:`LOGIT_SCALE_MAX` = 100 (OpenCLIP's cap) by
  :func:`scale_from_log`. Above the cap the clamp passes no gradient to the parameter, so it cannot drift further.
  The functions take the *exponentiated* scale ``s = 1 / tau`` (tensor or float); the model owns the parameter.
* Shape mismatches raise :class:`ValueError` naming the shapes.
* Non-finite inputs are **not** checked here (that would cost a device sync per step); the training loop checks the
  loss for finiteness.
* All losses are means over rows, so they are independent of the batch size's scale.
* Duplicate captions: the InfoNCE losses take optional ``groups`` (N,) caption ids; off-diagonal pairs with the same
  id are dropped from both softmax denominators (logit -inf), so a clip is never pushed away from a caption equal to
  its own. Without ``groups`` the computation is the plain CLIP one, bit for bit.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = [
    "LOGIT_SCALE_INIT",
    "LOGIT_SCALE_MAX",
    "alert_clip_losses",
    "hard_negative_loss",
    "region_infonce",
    "scale_from_log",
    "symmetric_infonce",
]

LOGIT_SCALE_INIT = math.log(1 / 0.07)
"""CLIP's initial ``logit_scale`` (log of the inverse temperature, tau = 0.07)."""

LOGIT_SCALE_MAX = 100.0
"""Cap on the exponentiated scale ``1 / tau`` (OpenCLIP clamps ``logit_scale`` to ``log(100)``)."""


def scale_from_log(logit_scale: Tensor, max_scale: float = LOGIT_SCALE_MAX) -> Tensor:
    """``exp(logit_scale)`` clamped to at most ``max_scale``: the multiplier ``1 / tau`` applied to cosine similarities."""
    return logit_scale.exp().clamp(max=max_scale)


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"{name_a} and {name_b} must be 2-D (N, D); got {name_a} {tuple(a.shape)}, {name_b} {tuple(b.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape (N, D); got {name_a} {tuple(a.shape)}, "
                         f"{name_b} {tuple(b.shape)}")


def _check_scale(scale: Tensor | float) -> None:
    if isinstance(scale, Tensor) and scale.numel() != 1:
        raise ValueError(f"scale must be a scalar; got shape {tuple(scale.shape)}")


def _check_groups(groups: Tensor | None, n: int, what: str) -> None:
    if groups is None:
        return
    if groups.shape != (n,):
        raise ValueError(f"{what} groups must be ({n},), one id per pair; got {tuple(groups.shape)}")
    if groups.dtype.is_floating_point or groups.dtype == torch.bool or groups.is_complex():
        raise ValueError(f"{what} groups must be an integer tensor of caption ids; got {groups.dtype}")


def _infonce(a: Tensor, b: Tensor, scale: Tensor | float, groups: Tensor | None = None) -> Tensor:
    logits = scale * (a @ b.T)
    target = torch.arange(a.shape[0], device=a.device)
    if groups is not None:
        # Same caption, other pair: not a negative. The diagonal stays finite, so every row keeps a finite logsumexp.
        groups = groups.to(logits.device)
        same = (groups[:, None] == groups[None, :]) & (target[:, None] != target[None, :])
        logits = logits.masked_fill(same, float("-inf"))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def symmetric_infonce(v: Tensor, t: Tensor, scale: Tensor | float, groups: Tensor | None = None) -> Tensor:
    """CLIP's symmetric InfoNCE over a batch of matched pairs ``(v[i], t[i])``, other rows as negatives.

    ``logits = scale * v @ t.T``; loss ``= (CE(logits, arange(B)) + CE(logits.T, arange(B))) / 2``.

    Args:
        v: video embeddings, (B, D), L2-normalised.
        t: caption embeddings, (B, D), L2-normalised; ``t[i]`` describes ``v[i]``.
        scale: the exponentiated, clamped scale ``1 / tau`` (see :func:`scale_from_log`).
        groups: optional integer (B,) caption ids. Pairs ``(i, j)``, ``i != j``, with ``groups[i] == groups[j]`` are
            left out of both softmax denominators: equal captions are never negatives of each other (their logits
            get no gradient). ``None``: the standard form, duplicates count as negatives.

    With B = 1 (or all B in one group) there are no negatives: the loss is exactly 0 (finite, zero gradient). B = 0
    raises -- an empty clip batch is a data bug.
    """
    _check_pair(v, t, "v", "t")
    _check_scale(scale)
    if v.shape[0] == 0:
        raise ValueError(f"symmetric_infonce needs at least one pair; got v {tuple(v.shape)}, t {tuple(t.shape)}")
    _check_groups(groups, v.shape[0], "symmetric_infonce")
    return _infonce(v, t, scale, groups)


def region_infonce(v_r: Tensor, t_r: Tensor, scale: Tensor | float, groups: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over all R regions of the batch: ``v_r[i]`` (region embedding) vs ``t_r[i]`` (its caption).

    Same form as :func:`symmetric_infonce`, the other regions of the whole batch (any clip) being negatives, except
    those whose region caption id in ``groups`` (R,) equals this one's. R = 0 (no regions in this batch) returns a
    zero that is still connected to the graph (``v_r``, ``t_r`` and ``scale`` when they require grad), so
    ``backward()`` works and gives zero gradients. R = 1 gives exactly 0.
    """
    _check_pair(v_r, t_r, "v_r", "t_r")
    _check_scale(scale)
    _check_groups(groups, v_r.shape[0], "region_infonce")
    if v_r.shape[0] == 0:
        zero = v_r.sum() * 0.0 + t_r.sum() * 0.0
        if isinstance(scale, Tensor):
            zero = zero + scale.reshape(()) * 0.0
        return zero
    return _infonce(v_r, t_r, scale, groups)


def hard_negative_loss(v: Tensor, t_pos: Tensor, t_neg: Tensor, scale: Tensor | float,
                       neg_valid: Tensor | None = None) -> Tensor:
    """Positive caption vs. the clip's own K hard-negative captions, averaged over the batch.

    Per row: ``L = -log(e^{s+ * scale} / (e^{s+ * scale} + sum_k e^{s-_k * scale}))`` with ``s+ = v . t_pos`` and
    ``s-_k = v . t_neg[k]``, computed as ``logsumexp([s+, s-_1..K] * scale) - s+ * scale``.

    Args:
        v: clip embeddings, (B, D), L2-normalised.
        t_pos: positive caption embeddings, (B, D).
        t_neg: hard-negative caption embeddings, (B, K, D); K may be 0.
        scale: exponentiated, clamped scale ``1 / tau``.
        neg_valid: optional bool (B, K), **True where the negative exists**; False entries (padding for clips with
            fewer than K negatives) are excluded exactly as if absent, whatever the padding holds (even NaN). A row
            with no valid negative contributes ``-log(1) = 0`` (and no gradient). ``None`` means all K are valid.
    """
    _check_pair(v, t_pos, "v", "t_pos")
    _check_scale(scale)
    if t_neg.dim() != 3 or t_neg.shape[0] != v.shape[0] or t_neg.shape[2] != v.shape[1]:
        raise ValueError(f"t_neg must be (B, K, D) matching v (B, D); got v {tuple(v.shape)}, t_neg {tuple(t_neg.shape)}")
    if v.shape[0] == 0:
        raise ValueError(f"hard_negative_loss needs at least one clip; got v {tuple(v.shape)}")
    if neg_valid is not None:
        if neg_valid.shape != t_neg.shape[:2]:
            raise ValueError(f"neg_valid must be (B, K) = {tuple(t_neg.shape[:2])}; got {tuple(neg_valid.shape)}")
        if neg_valid.dtype != torch.bool:
            raise ValueError(f"neg_valid must be a bool tensor (True = negative present); got {neg_valid.dtype}")
        # Zero the padding first: a NaN/inf pad would otherwise reach v's gradient (0 * NaN) through the einsum.
        t_neg = t_neg.masked_fill(~neg_valid.unsqueeze(-1), 0.0)
    pos = scale * (v * t_pos).sum(-1)  # (B,)
    neg = scale * torch.einsum("bd,bkd->bk", v, t_neg)  # (B, K)
    if neg_valid is not None:
        neg = neg.masked_fill(~neg_valid, float("-inf"))
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1)  # (B, 1 + K); the positive is finite, so logsumexp is too
    return (torch.logsumexp(logits, dim=1) - pos).mean()


def alert_clip_losses(e: dict[str, Tensor], lambda_region: float, lambda_hard: float) -> dict[str, Tensor]:
    """``L_g + lambda_region * L_r + lambda_hard * L_h``, the loss training minimises, with one shared scale.

    ``e``: the embeddings of a batch (:class:`alertclip.tune.batches.BatchEncoder`, local or gathered from every process):
    ``v`` (B, D) clip embeddings, ``t`` (B, D) clip captions, ``scale`` (the exponentiated, clamped logit scale) and,
    for the region and hard-negative terms, ``v_r`` (B, D) region embeddings (zeros where ``has_region`` (B,) is
    False), ``t_reg`` (B, D) region captions, ``t_neg`` (B, K, D) their negatives (``neg_valid`` (B, K)). Caption ids
    (``text_id``, ``region_id``), when present, keep equal captions out of each other's InfoNCE negatives.

    The hard-negative term is anchored where the paper puts it: the negatives invert the REGION caption, so the
    anchor is the clip's region embedding and the positive its region caption (a clip without a region: its video
    embedding, the region caption also describing the clip). Without ``v_r`` (phase 1) only ``L_g`` is computed.
    A term with weight 0 is still computed, detached, for the logs. Returns ``loss`` (attached) and detached
    ``global``, ``region``, ``hard``, ``scale``, ``n_regions``."""
    scale = e["scale"]
    l_global = symmetric_infonce(e["v"], e["t"], scale, e.get("text_id"))
    if "v_r" not in e:
        zero = l_global.detach().new_zeros(())
        return {"loss": l_global, "global": l_global.detach(), "region": zero, "hard": zero, "scale": scale.detach()}
    index = e["has_region"].nonzero().flatten()
    if index.numel() == 0:
        log.info("batch without regions: region loss skipped (0 this step)")
    region_id = e.get("region_id")
    l_region = region_infonce(e["v_r"][index], e["t_reg"][index], scale, None if region_id is None else region_id[index])
    anchor = torch.where(e["has_region"][:, None], e["v_r"], e["v"])  # region embedding where the clip has one
    K = e["t_neg"].shape[1]
    l_hard = hard_negative_loss(anchor, e["t_reg"], e["t_neg"], scale, e["neg_valid"]) if K else l_global.new_zeros(())
    total = l_global
    if lambda_region > 0:
        total = total + lambda_region * l_region
    if lambda_hard > 0:
        total = total + lambda_hard * l_hard
    return {"loss": total, "global": l_global.detach(), "region": l_region.detach(), "hard": l_hard.detach(),
            "scale": scale.detach(), "n_regions": torch.tensor(float(index.numel()))}
