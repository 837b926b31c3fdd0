"""Stage entry point `features@<backbone>` (dvc.yaml: `alertclip features --variant <backbone>`): frozen
per-snippet image embeddings of every train and test video for one backbone of ``eval.backbones``
(see :mod:`alertclip.eval.features`).

Outputs: ``data/features/<backbone>/{snippets.npy (fp16), index.parquet, meta.json}``.
"""

from __future__ import annotations

import logging

from ..eval.features import extract
from ..eval.inputs import backbone_dir, features_dir
from ..params import Params
from ..paths import FRAMES_DIR
from ..threads import pin_threads

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("features needs --variant <backbone> (a key of eval.backbones)")
    pin_threads(1)  # small models: one thread each, so two evaluations share the 2 cores (and bytes match)
    meta = extract(backbone_dir(p, variant), FRAMES_DIR, features_dir(variant), p.backbone.arch,
                   p.features.batch_size, progress=progress, name=variant,
                   precision=p.features.precision)
    log.info("features@%s: %d snippets of %d videos, dim %d (checkpoint %s)", variant, meta["n_snippets"],
             meta["n_videos"], meta["dim"], meta["checkpoint_sha256"][:12])
