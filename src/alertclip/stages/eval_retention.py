"""Stage entry point `eval_retention@<backbone>`: general ability kept (see :mod:`alertclip.eval.retention`).

Output: ``results/eval_retention/<backbone>/metrics.json`` (R@k both ways, zero-shot scene accuracy).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .. import factory
from ..backbone import CHECKPOINT_FILE, load_pretrain_set
from ..eval.inputs import backbone_dir
from ..eval.retention import retention
from ..io import write_json
from ..train import pin_threads
from .paths import RESULTS, SYNTH_DIR

log = logging.getLogger(__name__)


def run(p: Any, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("eval_retention needs --variant <backbone> (a key of eval.backbones)")
    pin_threads(1)  # small models: one thread each, so two evaluations share the 2 cores (and bytes match)
    clip, _, _, tok = factory.create(p.backbone.arch, pretrained=backbone_dir(p, variant) / CHECKPOINT_FILE)
    data = load_pretrain_set(SYNTH_DIR / "pretrain")
    idx = data.indices("heldout")
    if len(idx) > p.eval_retention.max_images:  # evenly spaced, deterministic
        idx = idx[np.linspace(0, len(idx) - 1, p.eval_retention.max_images).round().astype(int)]
    metrics = retention(clip, tok, data.images[idx], [data.captions[i] for i in idx])
    write_json(RESULTS / "eval_retention" / variant / "metrics.json", metrics)
    log.info("eval_retention@%s: %s", variant, metrics)
