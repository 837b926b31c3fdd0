"""Image->text retrieval recall@k of a CLIP model (pre-training's held-out check and the retention evaluation)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .factory import images_to_tensor


@torch.no_grad()
def retrieval_at_k(model: nn.Module, tokenizer, images: np.ndarray, captions: list[str], ks=(1, 5),
                   chunk: int = 256) -> dict:
    """Image->text R@k with the distinct captions as candidates (duplicate captions count as one target)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    distinct = sorted(set(captions))
    target = torch.tensor([distinct.index(c) for c in captions])
    txt = torch.cat([model.encode_text(tokenizer(distinct[i:i + chunk]).to(device), normalize=True).float().cpu()
                     for i in range(0, len(distinct), chunk)])
    img = torch.cat([model.encode_image(images_to_tensor(images[i:i + chunk], model).to(device), normalize=True).float().cpu()
                     for i in range(0, len(images), chunk)])
    ranks = (img @ txt.T).argsort(dim=1, descending=True)
    hit_rank = (ranks == target[:, None]).float().argmax(dim=1)
    model.train(was_training)
    out = {f"i2t_r{k}": float((hit_rank < k).float().mean()) for k in ks}
    out.update(n_images=len(images), n_captions=len(distinct), chance_r1=1.0 / len(distinct))
    return out
