"""Stage entry point of ``curate`` (dvc.yaml: ``alertclip curate``) and ``alertclip curate --explain CLIP_ID``."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ..curation.curate import curate, write_outputs
from ..data.sources import layout
from ..params import Params
from ..paths import CURATED_DIR, FRAMES_DIR, RAW_DIR, RESULTS, SYNTH_DIR

log = logging.getLogger(__name__)


REPORT_DIR = RESULTS / "curation"
TRUTH = SYNTH_DIR / "truth" / "defects.json"


def run(p: Params, progress: bool = True) -> None:
    truth = TRUTH if p.data.source == "synthetic" else None
    curated, report, summary, quality = curate(layout(p, RAW_DIR), FRAMES_DIR, p.curate, truth)
    write_outputs(curated, report, summary, quality, CURATED_DIR, REPORT_DIR)
    log.info("curate: %d clips, %d kept, dropped by reason %s", summary["clips"], summary["kept"],
             summary["dropped_by_reason"])


def explain(clip_key: str, report_path: Path = REPORT_DIR / "report.parquet") -> str:
    """Why a clip was kept or dropped, from the curation report. ``clip_key`` may also be an item index."""
    if not Path(report_path).exists():
        return f"no curation report at {report_path}: run the curate stage first"
    report = pl.read_parquet(report_path)
    rows = report.filter(pl.col("clip_key") == clip_key)
    if rows.is_empty() and clip_key.isdigit():
        rows = report.filter(pl.col("item_index") == int(clip_key))
    if rows.is_empty():
        return f"{clip_key}: not in {report_path} (not a training clip of the train-items file)"
    out = []
    for r in rows.iter_rows(named=True):
        verdict = "kept" if r["kept"] else "dropped (" + ", ".join(r["reasons"]) + ")"
        lines = [f"{r['clip_key']} (item {r['item_index']}, {r['category']}, {r['split']}): {verdict}"]
        if r["repairs"]:
            lines.append("  repaired: " + ", ".join(r["repairs"]))
        lines += [f"  {part}" for part in (r["detail"] or "").split("; ") if part]
        if not r["detail"]:
            lines.append("  no rule fired")
        out.append("\n".join(lines))
    return "\n".join(out)
