"""Batches of a tuning run: tensors of clips, their embeddings and losses, and balanced (look-alike) batches."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..factory import images_to_tensor
from ..losses import alert_clip_losses, scale_from_log
from ..model import AlertClipModel
from ..train.distributed import DistContext, all_gather_cat
from .data import ClipSet

log = logging.getLogger(__name__)


def make_batch(data: ClipSet, idx: np.ndarray, model: AlertClipModel, tokens: Tensor) -> dict[str, Tensor]:
    """Clips ``idx`` -> tensors: frames (B, T, 3, H, W), mask, boxes, text / region / negative tokens, neg_valid and
    the caption ids ``text_id`` / ``region_id`` (B,) (equal ids = equal captions: not each other's negatives)."""
    idx = np.asarray(idx, dtype=np.int64)
    B, T = len(idx), data.frames.shape[1]
    x = images_to_tensor(data.frames[idx].reshape(B * T, *data.frames.shape[2:]), model.clip)
    neg = torch.as_tensor(data.neg_index[idx])
    valid = neg >= 0
    region = torch.as_tensor(data.region_index[idx])
    neg = torch.where(valid, neg, region[:, None])  # padding: any real text, masked out by neg_valid
    return {"frames": x.view(B, T, *x.shape[1:]), "mask": torch.as_tensor(data.mask[idx]),
            "boxes": torch.as_tensor(data.boxes[idx]), "text": tokens[torch.as_tensor(data.text_index[idx])],
            "region_text": tokens[region], "neg_text": tokens[neg.reshape(-1)], "neg_valid": valid,
            "text_id": torch.as_tensor(data.text_index[idx]), "region_id": region}


class BatchEncoder(torch.nn.Module):
    """``forward(batch, full)`` -> the embeddings a batch's losses need (the unit DDP wraps: gradients of everything
    it touches are synchronised). ``full=False`` (the global loss alone, phase 1): video + clip text only.

    Regions come back at fixed shape so they can be gathered across processes: ``v_r`` (B, D) with zeros where
    ``has_region`` (B,) is False. The caption ids ``text_id`` / ``region_id`` (B,) pass through, so they are gathered
    with the embeddings they label.
    """

    def __init__(self, model: AlertClipModel):
        super().__init__()
        self.model = model

    def forward(self, b: dict[str, Tensor], full: bool) -> dict[str, Tensor]:
        model = self.model
        scale = scale_from_log(model.clip.logit_scale)
        if not full:
            return {"v": model.encode_video(b["frames"], b["mask"]).float(),
                    "t": model.encode_text(b["text"]).float(), "scale": scale, "text_id": b["text_id"]}
        B, K = b["neg_valid"].shape
        boxes, mask = b["boxes"], b["mask"].bool()
        has = (mask & ~torch.isnan(boxes).any(-1)).any(1)  # clips with a shown box on a real frame (the model's rule)
        if not bool(has.any()):
            # No region in this shard: pool a whole-frame box on its first real frame anyway (discarded: has_region stays
            # False), so v_r is in the graph on every process. Under DDP each all_gather's backward is a collective all
            # processes must enter; one whose v_r needs no grad would skip it and hang the others.
            boxes = boxes.clone()
            boxes.view(-1, 4)[int(mask.reshape(-1).float().argmax())] = torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
        v, v_r, index = model.encode_video_and_regions(b["frames"], boxes, mask)
        v = v.float()
        txt = model.encode_text(torch.cat([b["text"], b["region_text"], b["neg_text"]])).float()
        return {"v": v, "v_r": v.new_zeros(B, v.shape[1]).index_copy(0, index, v_r.float()), "has_region": has,
                "t": txt[:B], "t_reg": txt[B:2 * B], "t_neg": txt[2 * B:].view(B, K, -1),
                "neg_valid": b["neg_valid"], "scale": scale, "text_id": b["text_id"], "region_id": b["region_id"]}


def batch_losses(model: AlertClipModel | torch.nn.Module, batch: dict[str, Tensor], lambda_region: float,
                 lambda_hard: float, parts: bool = False, ctx: DistContext | None = None) -> dict[str, Tensor]:
    """The stage's loss dict (``loss`` + detached ``global``/``region``/``hard``/``scale``/``n_regions``).

    ``model``: an :class:`AlertClipModel`, or a (DDP-wrapped) :class:`BatchEncoder`. With several processes
    (``ctx``) the batch is this process's shard and the losses are over the gathered global batch.
    With both lambdas 0 and ``parts=False`` (the global loss alone, phase 1) only the video embedding and clip texts are computed.
    """
    encoder = BatchEncoder(model) if isinstance(model, AlertClipModel) else model
    device = next(encoder.parameters()).device
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    e = encoder(b, parts or lambda_region > 0 or lambda_hard > 0)
    if ctx is not None and ctx.enabled:
        e = {k: (v if k == "scale" else all_gather_cat(v, ctx)) for k, v in e.items()}
    return alert_clip_losses(e, lambda_region, lambda_hard)


def _generator(seed: int, stream: str, k: int) -> torch.Generator:
    """A torch generator of its own per ``(seed, stream, k)`` (e.g. one per epoch), independent of the global RNG."""
    h = int.from_bytes(hashlib.sha256(f"{int(seed)}:{stream}:{int(k)}".encode()).digest()[:8], "little") >> 1
    return torch.Generator().manual_seed(h)


class BalancedBatches:
    """Batches of ``batch_size / 2`` abnormal + ``batch_size / 2`` normal clips (``batching: balanced``).

    An epoch is the smaller class once: ``steps_per_epoch = n_small // (batch_size / 2)`` (a remainder is dropped, like
    ``drop_last``), in a permutation seeded by ``(seed, epoch)``. The larger class is read on across epochs from a
    stream of seeded permutations (cycle ``c`` seeded by ``(seed, c)``), so its clips come round evenly rather than
    the same first ones every epoch; where an epoch spans two cycles, the later cycle puts the clips the epoch already
    had from the earlier one last (still a permutation), so no clip appears twice in an epoch.

    Inside a batch the classes alternate, pair by pair in a seeded order: every contiguous DDP shard
    (:func:`~alertclip.train.distributed.shard_slice`) of >= 2 clips holds both classes. Everything is a function of
    ``(seed, epoch)``: ``epoch(e, start)`` resumes mid-epoch with exactly the batches an uninterrupted run gets.
    ``fetch(indices)`` turns a 1-D LongTensor of dataset indices into a batch (as for :class:`PermutationBatches`).
    """

    def __init__(self, abnormal: np.ndarray, batch_size: int, seed: int, fetch: Callable[[Tensor], Any],
                 partner: np.ndarray | None = None) -> None:
        labels = np.asarray(abnormal, dtype=bool)
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"balanced batches need an even batch_size >= 2; got {batch_size}")
        half = batch_size // 2
        pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
        if min(len(pos), len(neg)) < half:
            raise ValueError(f"balanced batches of {batch_size} need >= {half} abnormal and >= {half} normal training "
                             f"clips; got {len(pos)} abnormal and {len(neg)} normal (set batching: random, or a smaller "
                             f"batch_size)")
        self.small, self.large = (neg, pos) if len(neg) <= len(pos) else (pos, neg)
        self.half, self.batch_size, self.seed, self.fetch = half, batch_size, int(seed), fetch
        self.steps_per_epoch = len(self.small) // half
        self._cycles: list[np.ndarray] = []  # the larger class's permutations (positions into self.large)
        # partner[i] (dataset index or -1): the larger-class clip that goes next to small-class clip i instead of the
        # stream's next one (``batching: pairs``). The stream still advances, so other batches are unchanged.
        self.partner = None if partner is None else np.asarray(partner, dtype=np.int64)

    def _cycle(self, c: int) -> np.ndarray:
        L, m = len(self.large), self.steps_per_epoch * self.half  # m <= n_small <= L: an epoch spans <= 2 cycles
        while len(self._cycles) <= c:
            k = len(self._cycles)
            perm = torch.randperm(L, generator=_generator(self.seed, "large", k)).numpy()
            if k:
                epoch_start = (k * L // m) * m  # stream position where the epoch holding cycle k's first item starts
                taken = self._cycles[k - 1][epoch_start - (k - 1) * L:] if epoch_start < k * L else perm[:0]
                late = np.isin(perm, taken)
                perm = np.concatenate([perm[~late], perm[late]])
            self._cycles.append(perm)
        return self._cycles[c]

    def indices(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s dataset indices, (steps_per_epoch, batch_size), every row one batch in order."""
        steps, half, L = self.steps_per_epoch, self.half, len(self.large)
        gen = _generator(self.seed, "epoch", epoch)
        small = self.small[torch.randperm(len(self.small), generator=gen).numpy()[:steps * half]]
        pos = np.arange(epoch * steps * half, (epoch + 1) * steps * half)
        cycles = {c: self._cycle(c) for c in np.unique(pos // L).tolist()}
        large = self.large[np.array([cycles[p // L][p % L] for p in pos.tolist()], dtype=np.int64)]
        if self.partner is not None:
            mate = self.partner[small]
            large = np.where(mate >= 0, mate, large)
        pairs = np.stack([small, large], axis=1).reshape(steps, half, 2)
        flip = torch.randint(0, 2, (steps, half), generator=gen).numpy().astype(bool)
        pairs[flip] = pairs[flip][:, ::-1]
        return pairs.reshape(steps, 2 * half)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        batches = self.indices(epoch)
        for i in range(start, self.steps_per_epoch):
            yield self.fetch(torch.as_tensor(batches[i]))
