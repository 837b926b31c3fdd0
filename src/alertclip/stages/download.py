"""Stage entry point: parse params, call library code, write outputs atomically (dvc.yaml: `alertclip download`)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.download.fetch import fetch
from ..data.download.local import link_local
from ..data.download.manifest import FileSpec, load_manifest
from ..params import Params
from ..paths import DOWNLOAD_CACHE, NOVEL_CLASSES, RAW_DIR, SYNTH_DIR

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True) -> None:
    d = p.download
    opts = dict(retries=d.retries, backoff=d.backoff_s, timeout=d.timeout_s, progress=progress)
    if p.data.source == "synthetic":
        manifest_path = SYNTH_DIR / "published" / "manifest.json"
        manifest = load_manifest(manifest_path)
        report = fetch(manifest.files, base_url=manifest_path.parent.resolve().as_uri(), cache_dir=DOWNLOAD_CACHE,
                       dest_dir=RAW_DIR, **opts)
    else:
        src = p.data.sources[p.data.source]
        files = [FileSpec(**f.model_dump()) for f in src.files]
        if src.manifest:
            files += load_manifest(src.manifest).files
        report = fetch(files, base_url=None, cache_dir=DOWNLOAD_CACHE, dest_dir=RAW_DIR, **opts)
        if src.video_root:
            link_local(None, src_root=Path(src.video_root), dest_dir=RAW_DIR / src.video_prefix,
                       cache_dir=DOWNLOAD_CACHE)
        else:
            log.warning("data.sources.%s.video_root is not set: only annotations were fetched", p.data.source)
        write_novel_classes(src.novel_classes)
    log.info("download: %s", report)


def write_novel_classes(classes: list[str]) -> None:
    """A real source's open-vocabulary split (params) where the synthetic world publishes its own, so training and
    eval_openvocab read one file for either source."""
    NOVEL_CLASSES.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# categories held out of training for the open-vocabulary split (data.sources.<source>.novel_classes)"]
    NOVEL_CLASSES.write_text("\n".join(lines + list(classes)) + "\n", encoding="utf-8")
