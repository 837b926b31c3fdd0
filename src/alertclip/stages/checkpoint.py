"""Stage entry point `checkpoint@<backbone>`: record which weights a key of ``eval.backbones`` names.

Output: ``data/checkpoints/<backbone>.json`` (model directory, architecture, checkpoint sha256 and size). The
per-dataset stages (``features@<backbone>-<dataset>``, ``eval_*@<backbone>-<dataset>``) depend on this file, not on
the model directory: DVC's matrix hands a stage the backbone's key only, not its directory, and the file changes
exactly when the weights do, so a retrained backbone reruns its features and evaluations and nothing else.
"""

from __future__ import annotations

import logging

from ..eval.checkpoints import backbone_dir, checkpoint_record, write_checkpoint_record
from ..params import Params

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("checkpoint needs --variant <backbone> (a key of eval.backbones)")
    record = checkpoint_record(p, variant)
    write_checkpoint_record(variant, record)
    log.info("checkpoint@%s: %s (%s, sha256 %s)", variant, backbone_dir(p, variant), record["arch"],
             record["checkpoint_sha256"][:12])
