"""Stage entry point: parse params, call library code, write outputs atomically (dvc.yaml: `alertclip synthesize`)."""

from __future__ import annotations

import logging

from ..params import Params
from ..paths import SYNTH_DIR
from ..synth.generate import synthesize as generate_world

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    s = p.synthesize
    w = s.world
    summary = generate_world(
        SYNTH_DIR, seed=s.seed, n_train=w.n_train, n_test=w.n_test, min_s=w.min_seconds, max_s=w.max_seconds,
        width=s.width, height=s.height, fps=s.fps, odd_fraction=s.odd_fraction,
        abnormal_fraction=s.abnormal_fraction, novel_events=s.novel_events, crf=s.crf,
        defect_rate=s.defect_rate, workers=s.workers, progress=progress,
    )
    log.info("synthesized %s", summary)
