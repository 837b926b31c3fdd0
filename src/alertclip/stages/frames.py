"""Stage entry point: parse params, call library code, write outputs atomically (dvc.yaml: `alertclip frames`)."""

from __future__ import annotations

import logging

from ..data.frames import FrameSettings, extract_frames
from ..data.sources import layout
from ..io import write_json
from ..params import Params
from ..paths import FRAMES_DIR, RAW_DIR, RESULTS

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    f = p.frames
    settings = FrameSettings(f.fps, f.width, f.height, f.clip_frames, f.snippet_len)
    summary = extract_frames(layout(p, RAW_DIR), FRAMES_DIR, settings, shard_mb=f.shard_mb, workers=f.workers,
                             progress=progress)
    write_json(RESULTS / "frames" / "summary.json", summary)
    log.info("frames: %s", summary)
