"""Stage entry point `features@<backbone>-<dataset>` (dvc.yaml: `alertclip features --variant <backbone>-<dataset>`):
frozen per-snippet image embeddings of one dataset's videos for one backbone of ``eval.backbones`` (see
:mod:`alertclip.eval.features`): every train and test video when the dataset's videos are the source's own (the
weakly supervised heads train on them), its test videos otherwise.

Outputs: ``data/features/<backbone>/<dataset>/{snippets.npy (fp16), index.parquet, meta.json}``.
"""

from __future__ import annotations

import logging

from ..eval.checkpoints import backbone_dir, verified_checkpoint
from ..eval.features import extract
from ..eval.inputs import features_dir, split_variant
from ..eval.testsets import frames_dir_of
from ..params import Params
from ..threads import pin_threads

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    backbone, dataset = split_variant(p, variant, "features")
    verified_checkpoint(p, backbone)
    pin_threads(1)  # small models: one thread each, so two evaluations share the 2 cores (and bytes match)
    meta = extract(backbone_dir(p, backbone), frames_dir_of(dataset, p.eval.datasets[dataset]),
                   features_dir(backbone, dataset), p.backbone.arch, p.features.batch_size, progress=progress,
                   name=backbone, precision=p.features.precision, crops=p.features.crops)
    log.info("features@%s: %d snippets of %d videos, dim %d (checkpoint %s)", variant, meta["n_snippets"],
             meta["n_videos"], meta["dim"], meta["checkpoint_sha256"][:12])
