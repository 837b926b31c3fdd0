"""Stage entry point `eval_weakly@<backbone>-<dataset>`: the weakly supervised head (``eval_weakly.head``: VadCLIP-style or
linear MIL) on this backbone's frozen features, mean +- std over ``eval_weakly.seeds`` (:mod:`alertclip.eval.weakly`).

Outputs: ``results/eval_weakly/<backbone>/<dataset>/metrics.json`` ({dataset: {auc, ap, auc_prob2, ap_prob2, map...}: {mean,
std, per_seed}}), ``scores.parquet`` (prob1 per test snippet, mean over seeds), ``roc.csv`` (a DVC plot) and
``training.json`` (per seed: best validation AUC and epoch).
"""

from __future__ import annotations

import logging

from ..eval.groundtruth import build_frame_level
from ..eval.pair import eval_inputs
from ..eval.scores import write_roc, write_snippet_scores
from ..eval.weakly import weakly_supervised
from ..io import write_json
from ..params import Params

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    ev = eval_inputs(p, variant, "eval_weakly")
    testset, truth, n_frames, out = ev.testset, ev.testset.truth, ev.frame_counts, ev.out
    res = weakly_supervised(ev.train(), ev.test(p), truth, ev.clip, ev.tokenizer, p.eval_weakly.head_params,
                            p.eval_weakly.seeds, p.eval_weakly.val_fraction, p.eval.protocol, n_frames,
                            class_prompts=p.eval.datasets[ev.dataset].class_prompts,
                            prompts_key=f"params.yaml: eval.datasets.{ev.dataset}.class_prompts", clip_len=p.frames.snippet_len)
    write_json(out / "metrics.json", {testset.name: res["metrics"]["all"], "info": res["info"]})
    write_json(out / "training.json", res["history"])
    write_snippet_scores(out / "scores.parquet", res["scores"])
    frames = build_frame_level([(v, s, (n_frames or {}).get(v)) for v, s in res["scores"].items()], truth,
                               p.eval.protocol, clip_len=p.frames.snippet_len)
    write_roc(out / "roc.csv", frames.labels, frames.scores)
    m = res["metrics"]["all"]
    log.info("eval_weakly@%s: AUC %.4f +- %.4f, AP %.4f +- %.4f over %d seeds", variant, m["auc"]["mean"],
             m["auc"]["std"], m["ap"]["mean"], m["ap"]["std"], len(p.eval_weakly.seeds))
