"""The learning rates of a tuning run: the new temporal module at ``lr``, the pre-trained towers at ``tower_lr`` with
layer-wise decay.

The field fine-tunes CLIP far below its pre-training rate (FLYP 1e-5, WiSE-FT 3e-5, NegCLIP 1e-6) and lowers the rate
further towards the input (layer-wise decay, BEiT / open_clip's ``--layer-decay`` convention: depth 0 is the head after
the last block, block ``i`` of ``n`` has depth ``n - i``, the stem below the first block depth ``n + 1``, and a
parameter at depth ``d`` trains at ``tower_lr * layer_decay ** d``). The temporal module is new, so it keeps a
from-scratch rate; so does the logit scale, which every loss shares.
"""

from __future__ import annotations

from torch import nn

from ..model import AlertClipModel
from ..params import RunSettings

__all__ = ["rate_groups"]


def _tower_depths(model: AlertClipModel, tower: str) -> dict[int, int]:
    """``{id(param): depth}`` for every parameter of ``tower`` (see the module docstring)."""
    params, blocks, head = model.tower_blocks(tower)
    n = len(blocks)
    depth = {id(p): n + 1 for p in params}  # the stem: patch / token embedding, positional embedding, ln_pre
    for i, block in enumerate(blocks):
        for p in block.parameters():
            depth[id(p)] = n - i
    for m in head:
        for p in ([m] if isinstance(m, nn.Parameter) else m.parameters()):
            depth[id(p)] = 0
    return depth


def rate_groups(model: AlertClipModel, cfg: RunSettings) -> list[dict]:
    """Groups ``{"params", "lr_scale"}`` for :func:`alertclip.train.loop.train` (scales relative to ``cfg.lr``), every
    trainable parameter in exactly one; in model order within a group, so the groups are the same on every run."""
    tower_depth: dict[int, int] = {}
    for tower in ("visual", "text"):
        tower_depth.update(_tower_depths(model, tower))
    by_scale: dict[float, list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        d = tower_depth.get(id(p))
        scale = 1.0 if d is None else cfg.tower_lr / cfg.lr * cfg.layer_decay ** d
        by_scale.setdefault(scale, []).append(p)
    return [{"params": ps, "lr_scale": s} for s, ps in by_scale.items()]
