"""Stage entry point `tune@<run>` (dvc.yaml: `alertclip tune --variant <run>`, one per row of params ``runs``): one
tuning run, the shared ``tune`` settings with the run's losses, init, negatives and epochs (see
:mod:`alertclip.tune.run`). ``tune@stage1`` is Alert-CLIP's phase 1 (the global loss from the base backbone),
``tune@full`` the whole method (phase 2 from the stage1 weights); the other rows are the paper's ablations.

Outputs: ``data/models/<run>/{open_clip_model.pt, config.json, temporal.pt, temporal.json}``,
``results/tune/<run>/metrics.json`` (losses per part, validation losses and AUC (prompts: params ``eval.prompts``),
the kept epoch; no timings, so reruns are byte-identical) and ``results/tune/<run>/curve.csv``. The resumable loop
checkpoint lives in ``data/.cache/tune/<run>/<config+inputs hash>/`` and is removed on success; SIGTERM saves it and exits
with status 143, rerunning the stage resumes.
"""

from __future__ import annotations

from ..params import Params, run_settings
from ..threads import pin_threads
from ..tune.run import run_stage


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("tune needs --variant <run> (a key of runs in params.yaml)")
    if variant not in p.runs:
        raise ValueError(f"params.yaml: runs has no {variant!r} (known: {sorted(p.runs)})")
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    # eval.prompts: the validation AUC picks the kept epoch; frames.snippet_len: the validation videos' snippets
    run_stage(run_settings(p.tune, p.runs[variant], p.backbone.arch), variant, progress, prompts=p.eval.prompts,
              snippet_len=p.frames.snippet_len)
