"""What a tuning run keeps of the base model: replayed pre-training stills, their base embeddings, and the
training-side retention check.

* Replay (FLYP's point: fine-tune with the pre-training loss): every update also carries ``replay_batch``
  pre-training stills of the ``fit`` part (:meth:`alertclip.data.pretrain.PretrainSet.parts`) with their captions;
  the loss adds ``lambda_replay`` x CLIP's symmetric InfoNCE on them and ``lambda_distill`` x the mean ``1 - cos``
  between the tuned and the frozen base embeddings of those stills and captions (feature distillation; the targets
  are computed once, the base is never run again).
* Retention (the second selection objective): image->text R@1 on the ``val`` part -- stills of training videos held
  out of pre-training -- through the current weights; the base's value is the reference of ``retention_floor``.
  The test videos' stills (``heldout``) are the report's and are never looked at here.

The replayed stills follow a stream of seeded permutations of the fit part (permutation ``c`` seeded by
``(seed, "replay", c)``), read on ``replay_batch`` at a time, update after update, across epochs: update ``s`` always
gets the same stills, so a resumed run replays exactly what an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ..data.pretrain import PretrainSet
from ..factory import images_to_tensor
from ..retrieval import retrieval_at_k
from ..train.loop import BatchSource
from .batches import seeded_generator

__all__ = ["ReplaySet", "RetentionCheck", "WithReplay", "replay_set", "retention_check"]


@dataclass(frozen=True)
class ReplaySet:
    """The fit stills with their caption tokens and the frozen base's unit embeddings of both."""

    images: np.ndarray  # (N, H, W, 3) uint8
    tokens: Tensor  # (C, context) distinct captions
    caption: np.ndarray  # (N,) index into tokens (equal captions: equal ids, not each other's negatives)
    base_image: Tensor  # (N, D) float32
    base_text: Tensor  # (C, D) float32

    def __len__(self) -> int:
        return len(self.images)


@torch.no_grad()
def _encode(clip, tokenizer, images: np.ndarray, captions: list[str], chunk: int = 256) -> tuple[Tensor, Tensor]:
    was = clip.training
    clip.eval()
    device = next(clip.parameters()).device
    img = torch.cat([clip.encode_image(images_to_tensor(images[i:i + chunk], clip).to(device), normalize=True).float().cpu()
                     for i in range(0, len(images), chunk)])
    txt = torch.cat([clip.encode_text(tokenizer(captions[i:i + chunk]).to(device), normalize=True).float().cpu()
                     for i in range(0, len(captions), chunk)])
    clip.train(was)
    return img, txt


def replay_set(data: PretrainSet, fit: np.ndarray, base_clip, tokenizer) -> ReplaySet:
    """The ``fit`` rows of ``data`` with the base model's embeddings (``base_clip``: the frozen base OpenCLIP)."""
    distinct = sorted({data.captions[i] for i in fit})
    code = {c: i for i, c in enumerate(distinct)}
    images = data.images[fit]
    base_image, base_text = _encode(base_clip, tokenizer, images, distinct)
    return ReplaySet(images, tokenizer(distinct), np.array([code[data.captions[i]] for i in fit], dtype=np.int64),
                     base_image, base_text)


@dataclass(frozen=True)
class RetentionCheck:
    """The training-side retention stills (the ``val`` part) and the base's i2t R@1 on them."""

    images: np.ndarray
    captions: list[str]
    base_r1: float

    def r1(self, clip, tokenizer) -> float:
        return float(retrieval_at_k(clip, tokenizer, self.images, self.captions, ks=(1,))["i2t_r1"])


def retention_check(data: PretrainSet, val: np.ndarray, base_clip, tokenizer) -> RetentionCheck | None:
    """None when the val part is empty (``backbone.val_fraction`` 0 or too few training videos)."""
    if len(val) == 0:
        return None
    images, captions = data.images[val], [data.captions[i] for i in val]
    return RetentionCheck(images, captions, float(retrieval_at_k(base_clip, tokenizer, images, captions, ks=(1,))["i2t_r1"]))


class WithReplay:
    """A :class:`~alertclip.train.loop.BatchSource` that adds ``size`` replayed stills to every batch of ``source``
    (keys ``replay_images`` (R, 3, H, W), ``replay_text`` (R, context), ``replay_id`` (R,), ``replay_base_image``,
    ``replay_base_text`` (R, D)); ``local`` slices this process's shard of them."""

    def __init__(self, source: BatchSource, replay: ReplaySet, size: int, seed: int, clip, local: slice = slice(None)):
        if len(replay) < size:
            raise ValueError(f"replay_batch {size} > the {len(replay)} pre-training stills there are to replay")
        self.source, self.replay, self.size, self.seed, self.clip, self.local = source, replay, size, int(seed), clip, local
        self.steps_per_epoch, self.batch_size = source.steps_per_epoch, source.batch_size
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, c: int) -> np.ndarray:
        if c not in self._perms:
            self._perms[c] = torch.randperm(len(self.replay), generator=seeded_generator(self.seed, "replay", c)).numpy()
        return self._perms[c]

    def indices(self, step: int) -> np.ndarray:
        """The fit-stills rows replayed at update ``step`` (0-based, over the whole run)."""
        n = len(self.replay)
        pos = np.arange(step * self.size, (step + 1) * self.size)
        return np.array([self._perm(int(p // n))[p % n] for p in pos], dtype=np.int64)[self.local]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        for i, batch in enumerate(self.source.epoch(epoch, start), start):
            idx = self.indices(epoch * self.steps_per_epoch + i)
            r = self.replay
            cap = torch.as_tensor(r.caption[idx])
            yield {**batch, "replay_images": images_to_tensor(r.images[idx], self.clip), "replay_text": r.tokens[cap],
                   "replay_id": cap, "replay_base_image": r.base_image[idx], "replay_base_text": r.base_text[cap]}
