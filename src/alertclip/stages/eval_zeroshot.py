"""Stage entry point `eval_zeroshot@<backbone>`: zero-shot VAD from prompt-similarity margins
(see :mod:`alertclip.eval.zeroshot`).

Outputs: ``results/eval_zeroshot/<backbone>/metrics.json`` ({dataset: {auc, ap, ...}}) and ``scores.parquet``
(per test snippet: video, snippet, score), read by the report's ROC curves.
"""

from __future__ import annotations

import logging
from typing import Any

from ..eval.features import load_features
from ..eval.inputs import features_dir, frame_counts, open_backbone, read_truth
from ..eval.scores import write_roc, write_snippet_scores
from ..eval.zeroshot import prompt_sets, zero_shot
from ..io import write_json
from .paths import RESULTS

log = logging.getLogger(__name__)


def run(p: Any, progress: bool = True, variant: str | None = None) -> None:
    clip, tok = open_backbone(p, variant, "eval_zeroshot")
    t_a, t_n = prompt_sets(clip, tok, p.eval.prompts)
    feats = load_features(features_dir(variant))
    scale = float(feats.meta["logit_scale"])
    metrics, scores, frames = zero_shot(feats.by_video("test"), read_truth(p), t_a, t_n, scale, p.eval.protocol,
                                frame_counts() if p.eval.protocol == "exact" else None)
    out = RESULTS / "eval_zeroshot" / variant
    write_json(out / "metrics.json", {p.eval.dataset: {**metrics, "logit_scale": scale, "protocol": p.eval.protocol}})
    write_snippet_scores(out / "scores.parquet", scores)
    write_roc(out / "roc.csv", frames.labels, frames.scores)
    log.info("eval_zeroshot@%s: AUC %.4f AP %.4f", variant, metrics["auc"], metrics["ap"])
