"""A linear multiple-instance head on frozen snippet features: the weakly supervised readout with no temporal model.

Each snippet gets a binary logit and class logits from two linear maps of its own feature; a video's score is the
mean of its top k = T // 16 + 1 snippets (VadCLIP's k), trained with BCE against the video label (VadCLIP's L_bce)
and cross-entropy of the top-k class logits against the video's class (its L_MIL-align, without the text tower).
Same outputs as :func:`alertclip.eval.vadclip.score_videos` (``prob1``, ``prob2``, ``class_probs``).

Why it exists beside the VadCLIP-style head: on VAGTA-synth an event lasts ~4 snippets, and VadCLIP's similarity and
distance graphs (built for UCF events of hundreds of snippets) smooth each snippet over its neighbours; its scores are
flat within a video (validation frame AUC 0.44-0.47 on the base backbone) while a linear readout of the same features
finds the event (0.59-0.60, ``benchmarks/select_weakly_head.py``). The head is chosen on validation videos, never the
test.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..params import LinearMilParams


class LinearMilHead(nn.Module):
    def __init__(self, feature_dim: int, n_classes: int):
        super().__init__()
        self.binary = nn.Linear(feature_dim, 1)
        self.classes = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, D)`` -> binary logits ``(T,)`` and class logits ``(T, C)``."""
        return self.binary(x).squeeze(-1), self.classes(x)


def _topk(x: torch.Tensor, div: int) -> torch.Tensor:
    return torch.topk(x, x.shape[0] // div + 1, dim=0).values.mean(0)


def train_linear_mil(train: Sequence[np.ndarray], class_index: Sequence[int], n_classes: int, cfg: LinearMilParams,
                     seed: int) -> tuple[LinearMilHead, dict]:
    """Fit on ``(T_i, D)`` feature arrays with each video's class index (0 = normal); the last epoch's weights.

    History: the mean training loss per epoch (the head is small and convex per branch: it is trained to the end,
    not stopped early on a noisy video-level validation AUC).
    """
    if len(train) != len(class_index) or not train:
        raise ValueError("train and class_index must be non-empty and of equal length")
    labels = torch.as_tensor(list(class_index), dtype=torch.long)
    if (labels == 0).all() or (labels != 0).all():
        raise ValueError("training needs both normal and abnormal videos")
    feats = [torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in train]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearMilHead(feats[0].shape[1], n_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist: dict = {"loss": []}
    for _ in range(cfg.epochs):
        total, n = 0.0, 0
        for batch in torch.randperm(len(feats), generator=gen).split(cfg.batch_size):
            b_logit, c_logit = zip(*(head(feats[i]) for i in batch.tolist()))
            video_binary = torch.stack([_topk(x, cfg.topk_div) for x in b_logit])
            video_classes = torch.stack([_topk(x, cfg.topk_div) for x in c_logit])
            y = labels[batch]
            loss = (F.binary_cross_entropy_with_logits(video_binary, (y != 0).float())
                    + F.cross_entropy(video_classes, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(batch), n + len(batch)
        hist["loss"].append(total / n)
    return head.eval(), hist


@torch.no_grad()
def score_mil(head: LinearMilHead, feats_list: Sequence[np.ndarray]) -> list[dict]:
    out = []
    for x in feats_list:
        b, c = head(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        probs = torch.softmax(c, dim=-1)
        out.append({"prob1": torch.sigmoid(b).numpy(), "prob2": (1.0 - probs[:, 0]).numpy(),
                    "class_probs": probs.numpy()})
    return out
