"""General ability kept: the pre-training task on held-out stills of the synthetic world, per backbone.

* image->text R@1/R@5 and text->image R@1 over the held-out stills and their distinct captions
  (scene/object/colour captions, never events: what the base backbone learned);
* zero-shot scene classification: the scene named at the start of each caption ("a shop scene, ...") against the
  prompts "a <scene> scene" of every scene seen.

Real profiles plug in their own image-classification / retrieval set in the same shape (images + captions).
The change against the reference backbone is computed by the report, from these files.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..factory import images_to_tensor
from ..retrieval import retrieval_at_k

_SCENE = re.compile(r"^an? (.+?) scene\b")


def scene_of(caption: str) -> str | None:
    m = _SCENE.match(caption.strip())
    return m.group(1) if m else None


@torch.no_grad()
def _encode_images(model, images: np.ndarray, chunk: int = 256) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(images_to_tensor(images[i:i + chunk], model).to(device), normalize=True)
                      .float().cpu() for i in range(0, len(images), chunk)])


@torch.no_grad()
def _encode_texts(model, tokenizer, texts: list[str], chunk: int = 256) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_text(tokenizer(texts[i:i + chunk]).to(device), normalize=True).float().cpu()
                      for i in range(0, len(texts), chunk)])


def retention(model, tokenizer, images: np.ndarray, captions: list[str]) -> dict:
    """The retention metrics on ``images`` (N, H, W, 3) uint8 with one caption each."""
    if len(images) != len(captions) or len(images) == 0:
        raise ValueError(f"retention needs one caption per image; got {len(images)} images, {len(captions)} captions")
    model.eval()
    out = retrieval_at_k(model, tokenizer, images, captions, ks=(1, 5))
    img = _encode_images(model, images)
    distinct = sorted(set(captions))
    txt = _encode_texts(model, tokenizer, distinct)
    # text->image: each distinct caption retrieves among all images; a hit is any image carrying that caption.
    cap_index = np.array([distinct.index(c) for c in captions])
    top = (txt @ img.T).argmax(dim=1).numpy()
    out["t2i_r1"] = float(np.mean(cap_index[top] == np.arange(len(distinct))))
    scenes = [scene_of(c) for c in captions]
    known = sorted({s for s in scenes if s})
    if len(known) >= 2:
        keep = np.array([s is not None for s in scenes])
        protos = _encode_texts(model, tokenizer, [f"a {s} scene" for s in known])
        pred = (img[torch.as_tensor(keep)] @ protos.T).argmax(dim=1).numpy()
        truth = np.array([known.index(s) for s in scenes if s])
        out.update(scene_acc=float(np.mean(pred == truth)), n_scenes=len(known), scene_chance=1.0 / len(known))
    return out
