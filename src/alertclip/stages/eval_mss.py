"""Stage entry point `eval_mss@<backbone>-<dataset>`: MeanSignScore on one dataset's test set (see
:mod:`alertclip.eval.zeroshot`).

Outputs: ``results/eval_mss/<backbone>/<dataset>/metrics.json`` ({dataset: mss, its 95% CI over test videos ``mss_ci95``,
per-kind means, video counts}) and ``signed.csv`` (one row per test video: its signed margin, a DVC plot of the
distribution; the report's paired bootstrap between backbones reads it).
"""

from __future__ import annotations

import csv
import logging

import numpy as np

from ..eval.bootstrap import bootstrap_mss
from ..eval.pair import eval_inputs
from ..eval.zeroshot import mss, prompt_sets
from ..io import atomic_open, write_json
from ..params import Params

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    ev = eval_inputs(p, variant, "eval_mss")
    t_a, t_n = prompt_sets(ev.clip, ev.tokenizer, p.eval.prompts_of(ev.dataset))
    testset, out = ev.testset, ev.out
    value, rows = mss(ev.test(p), testset.truth, t_a, t_n, p.frames.snippet_len)
    ab = [r.signed for r in rows if r.abnormal]
    no = [r.signed for r in rows if not r.abnormal]
    # videos in name order: the report resamples signed.csv the same way, so its paired draws are these draws
    ci = bootstrap_mss(np.array([r.signed for r in sorted(rows, key=lambda r: r.video)]), p.eval.bootstrap_samples,
                       p.eval.bootstrap_seed)
    write_json(out / "metrics.json", {testset.name: {
        "mss": value, "mss_ci95": ci.ci, "n_bootstrap": ci.n_resamples, "bootstrap_seed": p.eval.bootstrap_seed,
        "mss_abnormal_videos": sum(ab) / len(ab) if ab else None,
        "mss_normal_videos": sum(no) / len(no) if no else None, "n_videos": len(rows), "n_abnormal": len(ab),
        "positive_share": sum(r.signed > 0 for r in rows) / len(rows)}})
    with atomic_open(out / "signed.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "kind", "signed", "s_abnormal", "s_normal", "snippets"])
        for r in rows:
            w.writerow([r.video, "abnormal" if r.abnormal else "normal", f"{r.signed:.6f}", f"{r.s_abnormal:.6f}",
                        f"{r.s_normal:.6f}", r.snippets])
    log.info("eval_mss@%s: MSS %.4f [%.4f, %.4f] over %d videos (%d abnormal)", variant, value, ci.low, ci.high,
             len(rows), len(ab))
