"""Ablation variants of stage 2 (params ``ablations``): which losses, which curriculum, which negatives.

Each named variant becomes the DVC stage ``stage2@<name>`` (dvc.yaml ``foreach: ${ablations}``) and, listed in
``eval.backbones``, flows through ``features@<name>`` and every evaluation into the report's ablation table.

* ``losses``: a subset of ``global``, ``region``, ``hard`` that includes ``global``; a loss left out gets weight 0,
  the others keep the ``stage2`` weights (``lambda_region``, ``lambda_hard``).
* ``curriculum``: ``two_stage`` (stage 2 from the stage-1 weights) or ``joint`` (from the base backbone).
* ``negatives``: ``hard`` (the inverted captions) or ``standard`` (captions of other clips).
"""

from __future__ import annotations

from typing import Any

LOSSES = ("global", "region", "hard")
CURRICULA = {"two_stage": "stage1", "joint": "base"}


def variant_params(stage2: dict, variant: Any) -> dict:
    """The stage-2 params of one variant: ``stage2`` (a dict) with the variant's losses/curriculum/negatives applied."""
    v = variant.model_dump() if hasattr(variant, "model_dump") else dict(variant)
    losses = list(v.get("losses", LOSSES))
    unknown = [x for x in losses if x not in LOSSES]
    if unknown or "global" not in losses:
        raise ValueError(f"losses {losses}: each must be one of {list(LOSSES)} and 'global' must be included")
    out = dict(stage2)
    out["lambda_region"] = stage2["lambda_region"] if "region" in losses else 0.0
    out["lambda_hard"] = stage2["lambda_hard"] if "hard" in losses else 0.0
    out["init"] = CURRICULA[v.get("curriculum", "two_stage")]
    out["negatives"] = v.get("negatives", "hard")
    return out
