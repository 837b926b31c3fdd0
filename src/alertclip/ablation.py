"""Ablation variants of stage 2 (params ``ablations``): which losses, which curriculum, which negatives.

Each named variant becomes the DVC stage ``stage2@<name>`` (dvc.yaml ``foreach: ${ablations}``) and, listed in
``eval.backbones``, flows through ``features@<name>`` and every evaluation into the report's ablation table.

* ``losses``: a subset of ``global``, ``region``, ``hard`` that includes ``global``; a loss left out gets weight 0,
  the others keep the ``stage2`` weights (``lambda_region``, ``lambda_hard``).
* ``curriculum``: ``two_stage`` (stage 2 from the stage-1 weights) or ``joint`` (from the base backbone).
* ``negatives``: ``hard`` (the inverted captions) or ``standard`` (captions of other clips).
"""

from __future__ import annotations

from .params import AblationVariant, Stage2Params

CURRICULA = {"two_stage": "stage1", "joint": "base"}  # the curriculum -> the stage-2 starting point (init)


def variant_params(stage2: Stage2Params, variant: AblationVariant) -> Stage2Params:
    """The stage-2 settings of one variant: ``stage2`` with the variant's losses, curriculum and negatives applied
    (a loss left out gets weight 0; the params schema has checked that ``global`` is among the losses)."""
    return Stage2Params.model_validate({
        **stage2.model_dump(),
        "lambda_region": stage2.lambda_region if "region" in variant.losses else 0.0,
        "lambda_hard": stage2.lambda_hard if "hard" in variant.losses else 0.0,
        "init": CURRICULA[variant.curriculum],
        "negatives": variant.negatives,
    })
