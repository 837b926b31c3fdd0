"""Stage entry point `eval_retention@<backbone>`: general ability kept (see :mod:`alertclip.eval.retention`).

Output: ``results/eval_retention/<backbone>/metrics.json`` (R@k both ways, zero-shot scene accuracy); with
``eval_retention.imagenet`` / ``.coco`` set, also ``"imagenet"`` / ``"coco"``: the paper's benchmarks through
clip-benchmark (see :mod:`alertclip.eval.benchmarks`). Their directories are checked before any model is loaded.
"""

from __future__ import annotations

import logging

import numpy as np

from ..data.pretrain import load_pretrain_set
from ..eval.benchmarks import check_coco, check_imagenet, coco_retrieval, imagenet_zeroshot, val_transform
from ..eval.inputs import open_backbone
from ..eval.retention import retention
from ..io import write_json
from ..params import Params
from ..paths import PRETRAIN_DIR, result_path

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    r = p.eval_retention
    if r.imagenet is not None:  # fail fast: bad directories before any model work
        check_imagenet(r.imagenet)
    if r.coco is not None:
        check_coco(r.coco)
    if p.data.source != "synthetic" and r.imagenet is None and r.coco is None:
        raise ValueError(f"eval_retention@{variant}: a real source has no held-out stills; set "
                         "eval_retention.imagenet and/or eval_retention.coco (local dataset directories)")
    clip, tok = open_backbone(p, variant, "eval_retention")
    metrics = {}
    if p.data.source == "synthetic":  # the world's held-out stills; a real source has no such set
        data = load_pretrain_set(PRETRAIN_DIR)
        idx = data.indices("heldout")
        if len(idx) > r.max_images:  # evenly spaced, deterministic
            idx = idx[np.linspace(0, len(idx) - 1, r.max_images).round().astype(int)]
        metrics = retention(clip, tok, data.images[idx], [data.captions[i] for i in idx])
    if r.imagenet is not None or r.coco is not None:
        preprocess, device = val_transform(clip), next(clip.parameters()).device
        if r.imagenet is not None:
            metrics["imagenet"] = imagenet_zeroshot(clip, preprocess, tok, r.imagenet, r.batch_size, r.workers, device)
        if r.coco is not None:
            metrics["coco"] = coco_retrieval(clip, preprocess, tok, r.coco, r.batch_size, r.workers, device)
    write_json(result_path("eval_retention", variant, None, "metrics.json"), metrics)
    log.info("eval_retention@%s: %s", variant, metrics)
