"""Stage entry point `testset@<dataset>`: one evaluation dataset's ground truth read in its published format and
checked against its test videos (decoded here when they are not the source's own), see :mod:`alertclip.eval.testset_check`.

Outputs: ``data/testsets/<dataset>/`` (``truth.json``, ``videos.parquet``, ``frames/`` for external videos) and
``results/testsets/<dataset>/summary.json`` (videos, abnormal videos, spans, frames covered).
"""

from __future__ import annotations

import logging

from ..data.frames import FrameSettings
from ..eval.testset_check import build_testset
from ..io import write_json
from ..params import Params
from ..paths import RESULTS

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None or variant not in p.eval.datasets:
        raise ValueError(f"testset needs --variant <dataset>, a key of eval.datasets {sorted(p.eval.datasets)}; "
                         f"got {variant!r}")
    f = p.frames
    settings = FrameSettings(f.fps, f.width, f.height, f.clip_frames, f.snippet_len)
    summary = build_testset(variant, p.eval.datasets[variant], settings, f.shard_mb, f.workers, progress)
    write_json(RESULTS / "testsets" / variant / "summary.json", summary)
    log.info("testset@%s: %s", variant, summary)
