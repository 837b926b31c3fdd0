"""Stage entry point `stage2@<variant>` (dvc.yaml: `alertclip stage2 --variant <name>`, one per key of params
``ablations``): Alert-CLIP stage 2, the joint loss (global + region + hard-negative) from the stage-1 weights, with
the variant's losses / curriculum / negatives (see :mod:`alertclip.ablation` and :mod:`alertclip.tune.run`).

Outputs: ``data/models/stage2/<variant>/{open_clip_model.pt, config.json, temporal.pt, temporal.json}``,
``results/stage2/<variant>/metrics.json`` (losses per part, validation losses and AUC (prompts: params
``eval.prompts``), the kept epoch; no timings, so reruns are byte-identical) and
``results/stage2/<variant>/curve.csv``. The resumable loop checkpoint lives in ``data/.cache/stage2/<config+inputs
hash>/`` and is removed on success; SIGTERM saves it and exits with status 143, rerunning the stage resumes.
"""

from __future__ import annotations

from ..ablation import variant_params
from ..params import Params, Stage2Params
from ..threads import pin_threads
from ..tune.run import run_stage


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("stage2 needs --variant <name> (a key of ablations in params.yaml)")
    if variant not in p.ablations:
        raise ValueError(f"params.yaml: ablations has no {variant!r} (known: {sorted(p.ablations)})")
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    stage2 = p.stage2
    if stage2.use_sweep:  # the sweep's best weights first; the variant then switches its left-out losses off
        from ..sweep.best import best_overrides

        stage2 = Stage2Params.model_validate({**stage2.model_dump(), **best_overrides()})
    run_stage(variant_params(stage2, p.ablations[variant]), progress, variant=variant,
              prompts=p.eval.prompts, snippet_len=p.frames.snippet_len)  # val AUC picks the kept epoch
