"""Stage entry point `eval_retention@<backbone>`: general ability kept (see :mod:`alertclip.eval.retention`).

Output: ``results/eval_retention/<backbone>/metrics.json`` (R@k both ways, zero-shot scene accuracy).
"""

from __future__ import annotations

import logging

import numpy as np

from ..data.pretrain import load_pretrain_set
from ..eval.inputs import open_backbone
from ..eval.retention import retention
from ..io import write_json
from ..params import Params
from ..paths import PRETRAIN_DIR, RESULTS

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    clip, tok = open_backbone(p, variant, "eval_retention")
    data = load_pretrain_set(PRETRAIN_DIR)
    idx = data.indices("heldout")
    if len(idx) > p.eval_retention.max_images:  # evenly spaced, deterministic
        idx = idx[np.linspace(0, len(idx) - 1, p.eval_retention.max_images).round().astype(int)]
    metrics = retention(clip, tok, data.images[idx], [data.captions[i] for i in idx])
    write_json(RESULTS / "eval_retention" / variant / "metrics.json", metrics)
    log.info("eval_retention@%s: %s", variant, metrics)
