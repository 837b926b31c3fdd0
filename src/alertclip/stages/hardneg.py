"""Stage entry point (dvc.yaml: `alertclip hardneg`): hard negatives and the standard-negatives ablation."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ..hardneg.build import build
from ..io import atomic_path, write_json
from ..params import Params
from ..paths import CLIPS, HARDNEG, RESULTS
from ..paths import STANDARD_NEGATIVES as STANDARD

log = logging.getLogger(__name__)


STATS = RESULTS / "hardneg" / "stats.json"


def run(p: Params, progress: bool = True) -> None:
    clips = pl.read_parquet(CLIPS)
    # Everything (LLM calls included) happens before the first write: a failure leaves no partial outputs.
    hard, standard, stats = build(clips, p.hardneg)
    with atomic_path(HARDNEG) as tmp:
        hard.write_parquet(tmp)
    with atomic_path(STANDARD) as tmp:
        standard.write_parquet(tmp)
    write_json(STATS, stats)
    log.info("hardneg: coverage %.3f, by source %s, rejected %s", stats["coverage"], stats["by_source"],
             stats["rejected"])


def show(n: int = 5, clips_path: Path = CLIPS, hardneg_path: Path = HARDNEG) -> str:
    """``n`` examples side by side: the positive, then each negative with its source."""
    clips = pl.read_parquet(clips_path).select("clip_key", "abnormal", "region_caption")
    hard = pl.read_parquet(hardneg_path)
    lines: list[str] = []
    for r in clips.head(n).iter_rows(named=True):
        label = "abnormal" if r["abnormal"] else "normal"
        lines.append(f"{r['clip_key']} [{label}]")
        lines.append(f"  + {r['region_caption']}")
        negs = hard.filter(pl.col("clip_key") == r["clip_key"]).sort("rank")
        if negs.height == 0:
            lines.append("  - (none)")
        for neg in negs.iter_rows(named=True):
            lines.append(f"  - [{neg['source']:8}] {neg['negative']}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
