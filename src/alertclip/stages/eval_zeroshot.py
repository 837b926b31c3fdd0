"""Stage entry point `eval_zeroshot@<backbone>`: zero-shot VAD from prompt-similarity margins
(see :mod:`alertclip.eval.zeroshot`).

Outputs: ``results/eval_zeroshot/<backbone>/metrics.json`` ({dataset: {auc, ap, ...}}) and ``scores.parquet``
(per test snippet: video, snippet, score), read by the report's ROC curves.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import factory
from ..eval.features import load_features
from ..eval.inputs import backbone_dir, features_dir, frame_counts, read_truth
from ..eval.scores import write_roc, write_snippet_scores
from ..eval.zeroshot import encode_prompts, zero_shot
from ..io import write_json
from ..train import pin_threads
from .paths import RESULTS

log = logging.getLogger(__name__)


def run(p: Any, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("eval_zeroshot needs --variant <backbone> (a key of eval.backbones)")
    pin_threads(1)  # small models: one thread each, so two evaluations share the 2 cores (and bytes match)
    from ..backbone import CHECKPOINT_FILE

    clip, _, _, tok = factory.create(p.backbone.arch, pretrained=backbone_dir(p, variant) / CHECKPOINT_FILE)
    pr = p.eval.prompts
    t_a, t_n = encode_prompts(clip, tok, pr.template, pr.abnormal), encode_prompts(clip, tok, pr.template, pr.normal)
    feats = load_features(features_dir(variant))
    scale = float(feats.meta["logit_scale"])
    metrics, scores, frames = zero_shot(feats.by_video("test"), read_truth(p), t_a, t_n, scale, p.eval.protocol,
                                frame_counts() if p.eval.protocol == "exact" else None)
    out = RESULTS / "eval_zeroshot" / variant
    write_json(out / "metrics.json", {p.eval.dataset: {**metrics, "logit_scale": scale, "protocol": p.eval.protocol}})
    write_snippet_scores(out / "scores.parquet", scores)
    write_roc(out / "roc.csv", frames.labels, frames.scores)
    log.info("eval_zeroshot@%s: AUC %.4f AP %.4f", variant, metrics["auc"], metrics["ap"])
