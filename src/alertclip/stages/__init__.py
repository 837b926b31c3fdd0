"""One module per pipeline stage; ``STAGES`` maps the dvc.yaml stage name to its entry point.

Each stage's dvc.yaml deps include its own module here, so editing one entry point reruns only its stage.
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable

NAMES = ("synthesize", "download", "frames", "curate", "hardneg", "backbone", "stage1", "sweep", "stage2", "features",
         "eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab", "eval_retention", "report")
# Stages run once per variant (dvc.yaml foreach over params ablations / eval.backbones): `alertclip <stage> --variant KEY`.
VARIANT_STAGES = ("stage2", "features", "eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab", "eval_retention")


def entry_point(name: str) -> Callable:
    return import_module(f"{__name__}.{name}").run
