"""Stage entry point `stage1` (dvc.yaml: `alertclip stage1`): Alert-CLIP stage 1, the global video-text loss only,
from the base backbone (see :mod:`alertclip.tune.run`).

Outputs: ``data/models/stage1/{open_clip_model.pt, config.json, temporal.pt, temporal.json}``,
``results/stage1/metrics.json`` (losses per part, validation losses and AUC (prompts: params ``eval.prompts``), the
kept epoch; no timings, so reruns are byte-identical) and ``results/stage1/curve.csv``. The resumable loop
checkpoint lives in ``data/.cache/stage1/<config+inputs hash>/`` and is removed on success; SIGTERM saves it and
exits with status 143, rerunning the stage resumes.
"""

from __future__ import annotations

from ..params import Params
from ..threads import pin_threads
from ..tune.run import run_stage


def run(p: Params, progress: bool = True) -> None:
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    # eval.prompts: the validation AUC picks the kept epoch; frames.snippet_len: the validation videos' snippets
    run_stage(p.stage1, progress, prompts=p.eval.prompts, snippet_len=p.frames.snippet_len)
