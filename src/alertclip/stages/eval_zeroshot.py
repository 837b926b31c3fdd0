"""Stage entry point `eval_zeroshot@<backbone>-<dataset>`: zero-shot VAD from prompt-similarity margins on one
dataset (see :mod:`alertclip.eval.zeroshot`).

Outputs: ``results/eval_zeroshot/<backbone>/<dataset>/metrics.json`` ({dataset: {auc, auc_ci95, ap, ap_ci95, ...}}: frame
AUC/AP with 95% CIs over test videos) and ``scores.parquet`` (per test snippet: video, snippet, score, plus the
video's ``n_frames`` under the exact protocol), from which the report rebuilds the frames for its score traces and
its paired bootstrap between backbones.
"""

from __future__ import annotations

import logging

import numpy as np

from ..eval.bootstrap import bootstrap_auc_ap
from ..eval.groundtruth import build_frame_level
from ..eval.pair import eval_inputs
from ..eval.scores import write_roc, write_snippet_scores
from ..eval.zeroshot import prompt_sets, zero_shot
from ..io import write_json
from ..params import Params

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    ev = eval_inputs(p, variant, "eval_zeroshot")
    t_a, t_n = prompt_sets(ev.clip, ev.tokenizer, p.eval.prompts_of(ev.dataset))
    scale = float(ev.features.meta["logit_scale"])
    testset, truth, counts, out = ev.testset, ev.testset.truth, ev.frame_counts, ev.out
    metrics, scores, frames = zero_shot(ev.test(p), truth, t_a, t_n, scale, p.eval.protocol, counts,
                                        clip_len=p.frames.snippet_len)
    # videos in name order: the report rebuilds the frames from scores.parquet that way, so its paired draws are these
    by_name = build_frame_level([(v, scores[v], (counts or {}).get(v)) for v in sorted(scores)], truth, p.eval.protocol,
                                clip_len=p.frames.snippet_len)
    boot = bootstrap_auc_ap(by_name, p.eval.bootstrap_samples, p.eval.bootstrap_seed)
    metrics.update(auc_ci95=boot["auc"].ci, ap_ci95=boot["ap"].ci, n_bootstrap=p.eval.bootstrap_samples,
                   bootstrap_seed=p.eval.bootstrap_seed, bootstrap_skipped=boot["auc"].n_skipped)
    write_json(out / "metrics.json", {testset.name: {**metrics, "logit_scale": scale, "protocol": p.eval.protocol}})
    extra = None
    if counts is not None:  # the exact protocol's frame count of each video, for the report's rebuilt frames
        extra = {"n_frames": {v: np.full(len(s), counts[v]) for v, s in scores.items()}}
    write_snippet_scores(out / "scores.parquet", scores, extra)
    write_roc(out / "roc.csv", frames.labels, frames.scores)
    log.info("eval_zeroshot@%s: AUC %.4f [%.4f, %.4f] AP %.4f [%.4f, %.4f]", variant, metrics["auc"], *boot["auc"].ci,
             metrics["ap"], *boot["ap"].ci)
