"""Stage entry point `publish@<backbone>` (dvc.yaml: `alertclip publish --variant <backbone>`, one per key of params
``eval.backbones``): the backbone in open_clip's Hugging Face hub layout, with a model card carrying the report's
numbers for it (see :mod:`alertclip.publish`).

Inputs: ``data/checkpoints/<backbone>.json`` (which weights, checked against them), the model directory,
``results/report/index.json`` and ``results/report/tables/``. Output: ``data/hub/<backbone>/{open_clip_config.json,
open_clip_model.safetensors, README.md}``, loadable with ``open_clip.create_model_and_transforms("local-dir:...")`` and
what ``open_clip.push_to_hf_hub`` uploads; no timings, so reruns are byte-identical.
"""

from __future__ import annotations

import logging

from ..params import Params
from ..publish import publish_backbone

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("publish needs --variant <backbone> (a key of eval.backbones)")
    out = publish_backbone(p, variant)
    log.info("publish@%s: %s (%s)", variant, out, ", ".join(sorted(f.name for f in out.iterdir())))
