"""Stage entry point `stage2` (dvc.yaml: `alertclip stage2`): Alert-CLIP stage 2, the joint loss
(global + region + hard-negative) from the stage-1 weights (``init="base"``: from the base backbone) (see :mod:`alertclip.tune`).

Outputs: ``data/models/stage2/{open_clip_model.pt, config.json, temporal.pt, temporal.json}``,
``results/stage2/metrics.json`` (losses per part, validation losses; no timings, so reruns are byte-identical) and
``results/stage2/curve.csv``. The resumable loop checkpoint lives in ``data/.cache/stage2/<config+inputs hash>/`` and
is removed on success; SIGTERM saves it and exits with status 143, rerunning the stage resumes.
"""

from __future__ import annotations

from typing import Any

from ..train import pin_threads
from ..tune import run_stage


def run(p: Any, progress: bool = True) -> None:
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    run_stage("stage2", getattr(p, "stage2", None), progress)
