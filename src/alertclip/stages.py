"""Stage entry points: parse params, call library code, write outputs atomically.

Each function is what one ``dvc.yaml`` stage runs (through ``alertclip <stage>``). Paths are the contract of
``dvc.yaml``; keep them in sync (tests check that every declared out is written).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .io import write_json
from .params import Params

log = logging.getLogger(__name__)

SYNTH_DIR = Path("data/synth")
RAW_DIR = Path("data/raw")
DOWNLOAD_CACHE = Path("data/.cache/downloads")
FRAMES_DIR = Path("data/frames")
RESULTS = Path("results")


def synthesize(p: Params, progress: bool = True) -> None:
    from .synth.generate import synthesize as run

    s = p.synthesize
    w = s.world
    summary = run(SYNTH_DIR, seed=s.seed, n_train=w.n_train, n_test=w.n_test, min_s=w.min_seconds,
                  max_s=w.max_seconds, width=s.width, height=s.height, fps=s.fps, odd_fraction=s.odd_fraction,
                  abnormal_fraction=s.abnormal_fraction, novel_events=s.novel_events, crf=s.crf,
                  defect_rate=s.defect_rate, workers=s.workers, progress=progress)
    log.info("synthesized %s", summary)


def download(p: Params, progress: bool = True) -> None:
    from .data import download as dl

    d = p.download
    opts = dict(retries=d.retries, backoff=d.backoff_s, timeout=d.timeout_s, progress=progress)
    if p.data.source == "synthetic":
        manifest_path = SYNTH_DIR / "published" / "manifest.json"
        manifest = dl.load_manifest(manifest_path)
        report = dl.fetch(manifest.files, base_url=manifest_path.parent.resolve().as_uri(), cache_dir=DOWNLOAD_CACHE,
                          dest_dir=RAW_DIR, **opts)
    else:
        src = p.data.sources[p.data.source]
        files = [dl.FileSpec(**f.model_dump()) for f in src.files]
        if src.manifest:
            files += dl.load_manifest(src.manifest).files
        report = dl.fetch(files, base_url=None, cache_dir=DOWNLOAD_CACHE, dest_dir=RAW_DIR, **opts)
        if src.video_root:
            dl.link_local(None, src_root=Path(src.video_root), dest_dir=RAW_DIR / src.video_prefix,
                          cache_dir=DOWNLOAD_CACHE)
        else:
            log.warning("data.sources.%s.video_root is not set: only annotations were fetched", p.data.source)
    log.info("download: %s", report)


def frames(p: Params, progress: bool = True) -> None:
    from .data.frames import FrameSettings, extract_frames
    from .data.sources import layout

    f = p.frames
    settings = FrameSettings(f.fps, f.width, f.height, f.clip_frames, f.snippet_len)
    summary = extract_frames(layout(p, RAW_DIR), FRAMES_DIR, settings, shard_mb=f.shard_mb, workers=f.workers,
                             progress=progress)
    write_json(RESULTS / "frames" / "summary.json", summary)
    log.info("frames: %s", summary)


STAGES = {"synthesize": synthesize, "download": download, "frames": frames}
