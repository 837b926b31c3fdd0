"""Alert-CLIP model: an OpenCLIP backbone, a light temporal transformer, and ROI-aligned region tokens.

Shapes: B clips, T frames per clip (padded; ``mask`` (B, T) bool marks real frames), D = CLIP embed dim,
C = visual width, h x w = patch grid.

- Clip embedding ``v``: per real frame the CLIP image embedding (L2-normalised) -> :class:`TemporalTransformer`.
- Region embedding ``v_r``: one region track per clip (boxes (B, T, 4), normalised xyxy, NaN = no box on that
  frame). Per frame the box is ROI-aligned on the last visual block's patch-token grid, mean-pooled and sent
  through the visual tower's ``ln_post`` + ``proj`` (the path the CLS token takes), L2-normalised, then the SAME
  temporal transformer aggregates the frames where the box is shown. Clips with no box give no region.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align


class TemporalTransformer(nn.Module):
    """T frame embeddings (B, T, dim) + mask (B, T) -> one L2-normalised embedding (B, dim).

    Pooling choice: a learnable CLS token is prepended (it is never masked, so a clip with any number of real
    frames, even zero, never produces NaN) and learnable positional embeddings are added (index = frame position
    in the clip; the CLS token has its own). Padded frames are excluded with ``src_key_padding_mask``.

    Output: ``normalize(masked_mean(x) + out_proj(LN(cls_out)))``; ``out_proj`` is zero-initialised, so an
    untrained module returns the normalised mean of the frame embeddings (CLIP's usual video baseline) and
    tuning starts from the backbone's zero-shot behaviour. Note: at init only ``out_proj`` receives gradients
    (the inner layers do from the first update on), as with any zero-initialised residual branch.
    """

    def __init__(self, dim: int, layers: int = 2, heads: int = 4, max_t: int = 32, dropout: float = 0.0,
                 mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.max_t = dim, max_t
        self.cls_token = nn.Parameter(torch.zeros(dim))
        self.pos_embed = nn.Parameter(torch.zeros(max_t + 1, dim))  # [0] = CLS, [1 + t] = frame t
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(dim)
        self.out_proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected (B, T, {self.dim}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        if T > self.max_t:
            raise ValueError(f"{T} frames > max_t {self.max_t}")
        mask = torch.ones(B, T, dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device).bool()
        if mask.shape != (B, T):
            raise ValueError(f"mask shape {tuple(mask.shape)} != {(B, T)}")
        x = torch.where(mask[..., None], x, torch.zeros_like(x))  # padded frames: finite, and masked out below
        cls = self.cls_token.to(x.dtype).expand(B, 1, -1)
        seq = torch.cat([cls, x], dim=1) + self.pos_embed[: T + 1].to(x.dtype)
        pad = torch.cat([torch.zeros(B, 1, dtype=torch.bool, device=x.device), ~mask], dim=1)  # True = ignore
        out = self.encoder(seq, src_key_padding_mask=pad)[:, 0]
        w = mask.to(x.dtype)[..., None]
        mean = (x * w).sum(1) / w.sum(1).clamp_min(1.0)
        return F.normalize(mean + self.out_proj(self.ln(out)), dim=-1)


def frame_tokens(visual: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an OpenCLIP ``VisionTransformer`` once: ``(cls (N, D), patch_grid (N, C, h, w))``.

    Uses open_clip's own ``VisionTransformer.forward_intermediates(indices=1)``: ``image_features`` is exactly
    what ``visual(images)`` returns (pooled CLS -> ln_post -> proj, not normalised); ``image_intermediates[-1]``
    is the last block's output without the CLS token, reshaped NCHW, before ``ln_post`` (so a region pooled from
    it can take the CLS token's ``ln_post`` + ``proj`` path, see :class:`RegionPooler`).
    Patch dropout must be off (it drops grid tokens); the tiny config has none.
    """
    if not hasattr(visual, "forward_intermediates") or not hasattr(visual, "ln_post"):
        raise TypeError(f"frame_tokens needs an open_clip VisionTransformer, got {type(visual).__name__}")
    pd = getattr(visual, "patch_dropout", None)
    if pd is not None and visual.training and getattr(pd, "prob", 0.0) > 0:
        raise ValueError("frame_tokens: patch dropout is active; the patch grid would be incomplete")
    out = visual.forward_intermediates(images, indices=1, output_fmt="NCHW")
    return out["image_features"], out["image_intermediates"][-1]


class RegionPooler(nn.Module):
    """Patch grid (N, C, h, w) + boxes (N, 4) normalised xyxy -> region tokens (N, D) in the CLIP embed space.

    ``roi_align`` (``output_size``, ``spatial_scale`` = grid size via box scaling, ``aligned=True``) -> mean over
    the output bins -> ``visual.ln_post`` -> ``@ visual.proj``. Boxes are clamped to [0, 1], corners sorted, and
    widened about their centre to at least ``min_size`` (default: one patch), so degenerate boxes never crash.
    Not normalised (like ``visual(images)``). ``visual`` is referenced, not copied: its ln_post/proj train with it.
    """

    def __init__(self, visual: nn.Module, output_size: int = 2, min_size: float | None = None):
        super().__init__()
        self._visual = [visual]  # a list, so the tower is not registered twice as a submodule
        self.output_size = output_size
        self.min_size = min_size

    def forward(self, grid: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        visual = self._visual[0]
        N, C, h, w = grid.shape
        if boxes.shape != (N, 4):
            raise ValueError(f"boxes shape {tuple(boxes.shape)} != {(N, 4)}")
        if N == 0:
            D = visual.proj.shape[1] if visual.proj is not None else C
            return grid.new_zeros(0, D)
        b = torch.nan_to_num(boxes.to(grid.dtype), nan=0.0).clamp(0.0, 1.0)
        x1, x2 = torch.minimum(b[:, 0], b[:, 2]), torch.maximum(b[:, 0], b[:, 2])
        y1, y2 = torch.minimum(b[:, 1], b[:, 3]), torch.maximum(b[:, 1], b[:, 3])
        min_w = self.min_size if self.min_size is not None else 1.0 / w
        min_h = self.min_size if self.min_size is not None else 1.0 / h
        x1, x2 = _widen(x1, x2, min_w)
        y1, y2 = _widen(y1, y2, min_h)
        idx = torch.arange(N, device=grid.device, dtype=grid.dtype)
        rois = torch.stack([idx, x1 * w, y1 * h, x2 * w, y2 * h], dim=1)  # grid coordinates (spatial_scale folded in)
        pooled = roi_align(grid, rois, output_size=self.output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        tok = visual.ln_post(pooled.mean(dim=(2, 3)))
        return tok @ visual.proj if visual.proj is not None else tok


def _widen(lo: torch.Tensor, hi: torch.Tensor, min_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Widen [lo, hi] about its centre to >= min_size, shifted to stay inside [0, 1]."""
    min_size = min(float(min_size), 1.0)
    half = torch.clamp((hi - lo), min=min_size) / 2
    c = ((lo + hi) / 2).clamp(half, 1.0 - half)
    return c - half, c + half


class AlertClipModel(nn.Module):
    """An OpenCLIP ``clip`` (CLIP with an open_clip VisionTransformer) + a :class:`TemporalTransformer`."""

    def __init__(self, clip: nn.Module, temporal: TemporalTransformer, region_output_size: int = 2):
        super().__init__()
        self.clip = clip
        self.temporal = temporal
        self.region_pooler = RegionPooler(clip.visual, output_size=region_output_size)

    # -- towers -------------------------------------------------------------------------------------------------
    def _frames(self, frames: torch.Tensor, mask: torch.Tensor | None, need_grid: bool):
        """Run the visual tower on the real frames only; returns (mask, cls (B, T, D) normalised, grid or None)."""
        if frames.ndim != 5:
            raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        mask = torch.ones(B, T, dtype=torch.bool, device=frames.device) if mask is None else mask.to(frames.device).bool()
        flat = frames[mask]
        if need_grid:
            cls, grid = frame_tokens(self.clip.visual, flat)
        else:
            cls, grid = self.clip.visual(flat), None
        emb = flat.new_zeros(B, T, cls.shape[-1])
        emb[mask] = F.normalize(cls, dim=-1)
        return mask, emb, grid

    def _video(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.temporal(emb, mask)

    def _regions(self, grid: torch.Tensor, mask: torch.Tensor, boxes: torch.Tensor):
        B, T = mask.shape
        if boxes.shape != (B, T, 4):
            raise ValueError(f"boxes must be {(B, T, 4)}, got {tuple(boxes.shape)}")
        boxes = boxes.to(grid.device)
        shown = mask & ~torch.isnan(boxes).any(-1)  # (B, T)
        has = shown.any(1)
        index = has.nonzero().flatten()
        D = self.temporal.dim
        if index.numel() == 0:
            return grid.new_zeros(0, D), index
        # frame i of mask-selected frames -> (clip, t); pool only frames whose box is shown
        sel = shown[mask]  # over the flat real frames
        tok = self.region_pooler(grid[sel], boxes[shown].to(grid.dtype))
        emb = grid.new_zeros(B, T, D)
        emb[shown] = F.normalize(tok, dim=-1)
        return self.temporal(emb[index], shown[index]), index

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, 3, H, W), mask (B, T) -> L2-normalised clip embeddings (B, D)."""
        mask, emb, _ = self._frames(frames, mask, need_grid=False)
        return self._video(emb, mask)

    def encode_regions(self, frames: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor | None = None):
        """-> (region embeddings (R, D) L2-normalised, clip index (R,) long); R = clips with >= 1 shown box."""
        mask, _, grid = self._frames(frames, mask, need_grid=True)
        return self._regions(grid, mask, boxes)

    def encode_video_and_regions(self, frames: torch.Tensor, boxes: torch.Tensor, mask: torch.Tensor | None = None):
        """One visual pass for both: ``(video (B, D), regions (R, D), region clip index (R,))``."""
        mask, emb, grid = self._frames(frames, mask, need_grid=True)
        regions, index = self._regions(grid, mask, boxes)
        return self._video(emb, mask), regions, index

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (N, context_length) -> L2-normalised text embeddings (N, D)."""
        return self.clip.encode_text(tokens, normalize=True)

    # -- which parameters train -----------------------------------------------------------------------------------
    def tower_blocks(self, tower: Literal["visual", "text"]):
        """``(all params of the tower, resblocks, head modules/params after the blocks)``."""
        if tower == "visual":
            v = self.clip.visual
            params = list(v.parameters())
            head = [v.ln_post] + ([v.proj] if isinstance(v.proj, nn.Parameter) else [])
            return params, v.transformer.resblocks, head
        if tower == "text":
            c = self.clip
            if not hasattr(c, "token_embedding"):
                raise TypeError("set_trainable('text') supports open_clip CLIP (built-in text tower) only")
            modules = [c.token_embedding, c.transformer, c.ln_final]
            params = [p for m in modules for p in m.parameters()] + [c.positional_embedding]
            head = [c.ln_final]
            if isinstance(c.text_projection, nn.Parameter):
                params.append(c.text_projection)
                head.append(c.text_projection)
            elif c.text_projection is not None:
                params += list(c.text_projection.parameters())
                head.append(c.text_projection)
            return params, c.transformer.resblocks, head
        raise ValueError(f"tower must be 'visual' or 'text', got {tower!r}")

    def set_trainable(self, tower: Literal["visual", "text"], mode: Literal["all", "frozen", "last_n"] = "all",
                      n: int = 0) -> int:
        """Choose which of ``tower``'s parameters train; returns the number of trainable parameters in that tower.

        ``all``: every parameter; ``frozen``: none; ``last_n``: the last ``n`` transformer blocks plus the head
        after them (visual: ``ln_post``, ``proj``; text: ``ln_final``, ``text_projection``); ``n=0`` = head only.
        The temporal module and ``logit_scale`` are not touched.
        """
        params, blocks, head = self.tower_blocks(tower)
        if mode not in ("all", "frozen", "last_n"):
            raise ValueError(f"mode must be all|frozen|last_n, got {mode!r}")
        if mode == "last_n" and not 0 <= n <= len(blocks):
            raise ValueError(f"n={n} outside 0..{len(blocks)} blocks")
        for p in params:
            p.requires_grad_(mode == "all")
        if mode == "last_n":
            train = list(blocks[len(blocks) - n:]) if n else []
            for m in train + head:
                for p in ([m] if isinstance(m, nn.Parameter) else m.parameters()):
                    p.requires_grad_(True)
        return sum(p.numel() for p in params if p.requires_grad)

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None):
        """``(clip embeddings (B, D), text embeddings (N, D), logit_scale.exp())``."""
        return self.encode_video(frames, mask), self.encode_text(tokens), self.clip.logit_scale.exp()
