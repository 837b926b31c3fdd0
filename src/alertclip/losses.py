"""Alert-CLIP training losses (OpenCLIP style): pure functions plus one ``torch.nn.Module`` per loss.

Three losses tune CLIP for abnormality-aware video-text matching:

* :func:`symmetric_infonce` / :class:`GlobalInfoNCELoss` -- clip-level video-text InfoNCE with in-batch negatives,
  ``(CE(s * v @ t.T, arange) + CE(s * t @ v.T, arange)) / 2`` (CLIP's loss).
* :func:`region_infonce` / :class:`RegionInfoNCELoss` -- the same symmetric form over all R regions of the batch
  (region embeddings vs. region-caption embeddings); R = 0 gives a graph-connected zero.
* :func:`hard_negative_loss` / :class:`HardNegativeLoss` -- per clip, the positive caption against its own K hard
  negative captions: ``-log(e^{s+/tau} / (e^{s+/tau} + sum_k e^{s-_k/tau}))``, with a validity mask for clips that
  have fewer than K negatives.
* :class:`AlertClipLoss` -- ``L_g + lambda_region * L_r + lambda_hard * L_h`` with one shared temperature.

Conventions
-----------
* Every function takes **already L2-normalised** embeddings; cosine similarity is then a plain dot product. Nothing
  here normalises or checks norms.
* Temperature follows CLIP: the learnable parameter ``logit_scale`` holds ``log(1 / tau)`` (init ``log(1 / 0.07)``);
  at use it is exponentiated and clamped to at most :data:`LOGIT_SCALE_MAX` = 100 (OpenCLIP's cap) by
  :func:`scale_from_log`. Above the cap the clamp passes no gradient to the parameter, so it cannot drift further.
  The pure functions take the *exponentiated* scale ``s = 1 / tau`` (tensor or float); the modules take care of it.
* Shape mismatches raise :class:`ValueError` naming the shapes.
* Non-finite inputs are **not** checked here (that would cost a device sync per step); the training loop checks the
  loss for finiteness.
* All losses are means over rows, so they are independent of the batch size's scale.
* Duplicate captions: the InfoNCE losses take optional ``groups`` (N,) caption ids; off-diagonal pairs with the same
  id are dropped from both softmax denominators (logit -inf), so a clip is never pushed away from a caption equal to
  its own. Without ``groups`` the computation is the plain CLIP one, bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LOGIT_SCALE_INIT",
    "LOGIT_SCALE_MAX",
    "AlertClipLoss",
    "GlobalInfoNCELoss",
    "HardNegativeLoss",
    "RegionInfoNCELoss",
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


class _ScaledLoss(nn.Module):
    """Holds the learnable ``logit_scale`` = log(1 / tau)."""

    def __init__(self, init_logit_scale: float = LOGIT_SCALE_INIT, learnable: bool = True,
                 max_scale: float = LOGIT_SCALE_MAX) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)), requires_grad=learnable)
        self.max_scale = float(max_scale)

    def scale(self, logit_scale: Tensor | None = None) -> Tensor:
        """The exponentiated, clamped scale; ``logit_scale`` overrides this module's own (e.g. ``model.logit_scale``)."""
        return scale_from_log(self.logit_scale if logit_scale is None else logit_scale, self.max_scale)


class GlobalInfoNCELoss(_ScaledLoss):
    """Module form of :func:`symmetric_infonce` with a learnable temperature.

    ``forward(v, t, logit_scale=None, groups=None)``: ``logit_scale`` (log space, like OpenCLIP's
    ``model.logit_scale``) replaces this module's own parameter when given; ``groups``: caption ids (B,).
    """

    def forward(self, v: Tensor, t: Tensor, logit_scale: Tensor | None = None, groups: Tensor | None = None) -> Tensor:
        return symmetric_infonce(v, t, self.scale(logit_scale), groups)


class RegionInfoNCELoss(_ScaledLoss):
    """Module form of :func:`region_infonce` (R = 0 gives a graph-connected zero; ``groups``: caption ids (R,))."""

    def forward(self, v_r: Tensor, t_r: Tensor, logit_scale: Tensor | None = None,
                groups: Tensor | None = None) -> Tensor:
        return region_infonce(v_r, t_r, self.scale(logit_scale), groups)


class HardNegativeLoss(_ScaledLoss):
    """Module form of :func:`hard_negative_loss` (``neg_valid``: True where a negative exists)."""

    def forward(self, v: Tensor, t_pos: Tensor, t_neg: Tensor, neg_valid: Tensor | None = None,
                logit_scale: Tensor | None = None) -> Tensor:
        return hard_negative_loss(v, t_pos, t_neg, self.scale(logit_scale), neg_valid)


class AlertClipLoss(_ScaledLoss):
    """``total = L_global + lambda_region * L_region + lambda_hard * L_hard`` with one shared learnable temperature.

    Stage 1 is ``lambda_region = lambda_hard = 0``: then the region / hard-negative inputs may be ``None``. A term with
    weight 0 never enters the total; if its inputs are given anyway it is still computed (without grad) for logging.
    A term with positive weight and missing inputs raises :class:`ValueError`.

    ``forward`` returns a dict:

    * ``"loss"``: the total, attached to the graph -- call ``backward()`` on this one;
    * ``"total"``, ``"global"``, ``"region"``, ``"hard"``, ``"scale"``: detached 0-dim tensors for logging
      (``float(d["global"])``); a term that was not computed is 0.
    """

    def __init__(self, lambda_region: float = 0.0, lambda_hard: float = 0.0, init_logit_scale: float = LOGIT_SCALE_INIT,
                 learnable: bool = True, max_scale: float = LOGIT_SCALE_MAX) -> None:
        super().__init__(init_logit_scale, learnable, max_scale)
        for name, value in (("lambda_region", lambda_region), ("lambda_hard", lambda_hard)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        self.lambda_region = float(lambda_region)
        self.lambda_hard = float(lambda_hard)

    def forward(self, v: Tensor, t: Tensor, *, v_region: Tensor | None = None, t_region: Tensor | None = None,
                t_neg: Tensor | None = None, neg_valid: Tensor | None = None,
                logit_scale: Tensor | None = None, groups: Tensor | None = None,
                region_groups: Tensor | None = None) -> dict[str, Tensor]:
        """``v``, ``t``: clip / caption embeddings (B, D); ``v_region``, ``t_region``: (R, D); ``t_neg``: (B, K, D)
        hard negatives of ``t`` (``neg_valid`` (B, K) bool, True = present). ``logit_scale`` overrides the module's.
        ``groups`` (B,) / ``region_groups`` (R,): caption ids, equal captions are not each other's negatives."""
        scale = self.scale(logit_scale)
        l_global = symmetric_infonce(v, t, scale, groups)
        total = l_global
        zero = l_global.detach().new_zeros(())

        if (v_region is None) != (t_region is None):
            raise ValueError("v_region and t_region must be given together")
        if v_region is None:
            if self.lambda_region > 0:
                raise ValueError(f"lambda_region={self.lambda_region} > 0 needs v_region and t_region")
            l_region = zero
        elif self.lambda_region > 0:
            l_region = region_infonce(v_region, t_region, scale, region_groups)
            total = total + self.lambda_region * l_region
        else:
            with torch.no_grad():
                l_region = region_infonce(v_region, t_region, scale, region_groups)

        if t_neg is None:
            if self.lambda_hard > 0:
                raise ValueError(f"lambda_hard={self.lambda_hard} > 0 needs t_neg")
            if neg_valid is not None:
                raise ValueError("neg_valid given without t_neg")
            l_hard = zero
        elif self.lambda_hard > 0:
            l_hard = hard_negative_loss(v, t, t_neg, scale, neg_valid)
            total = total + self.lambda_hard * l_hard
        else:
            with torch.no_grad():
                l_hard = hard_negative_loss(v, t, t_neg, scale, neg_valid)

        return {
            "loss": total,
            "total": total.detach(),
            "global": l_global.detach(),
            "region": l_region.detach(),
            "hard": l_hard.detach(),
            "scale": scale.detach(),
        }
