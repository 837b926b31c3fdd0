"""The training clips of a tuning run: the curated clips, their frames and negatives, and the validation split."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources import read_novel_classes
from ..factory import CHECKPOINT_FILE
from ..params import BACKBONE_INIT, RunSettings
from ..paths import BACKBONE_DIR, CLIPS, FRAMES_DIR, HARDNEG, MODELS_DIR, NOVEL_CLASSES, STANDARD_NEGATIVES
from .checkpoints import TEMPORAL_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TunePaths:
    """Inputs (repository layout by default, relative to the working directory)."""

    clips: Path = CLIPS
    frames_dir: Path = FRAMES_DIR
    hardneg: Path = HARDNEG
    standard_negatives: Path = STANDARD_NEGATIVES
    backbone: Path = BACKBONE_DIR / CHECKPOINT_FILE
    models_dir: Path = MODELS_DIR  # a run that starts from another run reads models_dir/<init>/
    novel_classes: Path = NOVEL_CLASSES

    def init_files(self, cfg: RunSettings) -> tuple[Path, Path | None]:
        """``(open_clip checkpoint, temporal state or None)`` of the model a run starts from: the base backbone
        (a fresh temporal module) or another run's output (towers and temporal module)."""
        if cfg.init == BACKBONE_INIT:
            return Path(self.backbone), None
        start = Path(self.models_dir) / cfg.init
        return start / CHECKPOINT_FILE, start / TEMPORAL_FILE

    def inputs(self, cfg: RunSettings) -> list[Path]:
        """The files a run depends on (for the resume-directory hash)."""
        files = [self.clips, self.negatives(cfg), *sorted(Path(self.frames_dir).glob("clips-*.npy"))]
        files.extend(f for f in self.init_files(cfg) if f is not None)
        if Path(self.novel_classes).exists():
            files.append(self.novel_classes)
        return files

    def negatives(self, cfg: RunSettings) -> Path:
        return self.hardneg if cfg.negatives == "hard" else self.standard_negatives


def val_videos(videos: list[str], fraction: float, seed: int) -> set[str]:
    """The validation videos: ``sha256(f"{seed}:{video}")`` mapped to [0, 1) below ``fraction`` (deterministic,
    independent of order and of the other videos). Callers pass TRAINING videos only."""
    out = set()
    for v in set(videos):
        u = int(hashlib.sha256(f"{seed}:{v}".encode()).hexdigest()[:12], 16) / float(1 << 48)
        if u < fraction:
            out.add(v)
    return out


@dataclass
class ClipSet:
    """Training clips in memory (see the module docstring); ``K`` = ``neg_index.shape[1]``."""

    keys: list[str]
    videos: list[str]
    frames: np.ndarray  # (N, T, H, W, 3) uint8
    mask: np.ndarray  # (N, T) bool, True = real frame
    boxes: np.ndarray  # (N, T, 4) float32, NaN = no box (all NaN: no region)
    texts: list[str]  # distinct texts; the index arrays point into it
    text_index: np.ndarray  # (N,) global caption (or the region caption when missing)
    region_index: np.ndarray  # (N,) region caption (or the clip's text when missing; then the clip has no region)
    neg_index: np.ndarray  # (N, K) negatives of the region caption; -1 = padding
    abnormal: np.ndarray  # (N,) bool, the clip's label

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: np.ndarray) -> "ClipSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ClipSet([self.keys[i] for i in idx], [self.videos[i] for i in idx], self.frames[idx], self.mask[idx],
                       self.boxes[idx], self.texts, self.text_index[idx], self.region_index[idx], self.neg_index[idx],
                       self.abnormal[idx])


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def load_clip_set(paths: TunePaths, negatives: str = "hard", k: int = 3) -> ClipSet:
    """Read the curated training clips, their frames and their K negatives (``negatives``: hard|standard)."""
    import polars as pl

    from ..data.frames import open_frames

    table = pl.read_parquet(paths.clips).filter(pl.col("split") == "train").sort("clip_key")
    novel = read_novel_classes(paths.novel_classes)
    if novel:
        table = table.filter(~pl.col("category").fill_null("").str.to_lowercase().is_in(sorted(novel)))
    if table.height == 0:
        raise ValueError(f"{paths.clips}: no training clips (after removing novel classes {sorted(novel)})")
    if "abnormal" not in table.columns or table["abnormal"].null_count():
        raise ValueError(f"{paths.clips}: every training clip needs its boolean label in column 'abnormal'")
    shards = open_frames(Path(paths.frames_dir), "clips")
    if not shards:
        raise FileNotFoundError(f"no clips-*.npy frame shards in {paths.frames_dir}")
    T = shards[0].shape[1]
    neg_path = paths.hardneg if negatives == "hard" else paths.standard_negatives
    neg_table = pl.read_parquet(neg_path).sort(["clip_key", "rank"])
    neg_of: dict[str, list[str]] = {}
    for key, text in zip(neg_table["clip_key"].to_list(), neg_table["negative"].to_list()):
        if _str(text):
            neg_of.setdefault(key, []).append(_str(text))

    texts: dict[str, int] = {}

    def code(s: str) -> int:
        return texts.setdefault(s, len(texts))

    N = table.height
    frames = np.zeros((N, T, *shards[0].shape[2:]), dtype=np.uint8)
    mask = np.zeros((N, T), dtype=bool)
    boxes = np.full((N, T, 4), np.nan, dtype=np.float32)
    text_index, region_index = np.zeros(N, np.int64), np.zeros(N, np.int64)
    neg_index = np.full((N, k), -1, np.int64)
    rows = table.select("clip_key", "global_caption", "region_caption", "frames", "boxes", "shard", "row").iter_rows()
    for i, (key, gcap, rcap, fr, bx, shard, row) in enumerate(rows):
        gcap, rcap = _str(gcap), _str(rcap)
        if gcap is None and rcap is None:
            raise ValueError(f"clip {key}: neither a global nor a region caption")
        n = min(len(fr) if fr is not None else T, T)
        frames[i, :n] = shards[shard][row][:n]
        mask[i, :n] = True
        if rcap is not None and bx is not None and len(bx):
            b = np.asarray([list(x) if x is not None else [np.nan] * 4 for x in bx[:n]], dtype=np.float32).reshape(-1, 4)
            boxes[i, :len(b)] = b
        text_index[i] = code(gcap or rcap)
        region_index[i] = code(rcap or gcap)
        for j, neg in enumerate(neg_of.get(key, [])[:k]):
            neg_index[i, j] = code(neg)
    abnormal = np.asarray(table["abnormal"].cast(pl.Boolean).to_list(), dtype=bool)
    return ClipSet(table["clip_key"].to_list(), table["video"].to_list(), frames, mask, boxes, list(texts),
                   text_index, region_index, neg_index, abnormal)


def lookalike_partners(data: ClipSet) -> np.ndarray:
    """For every abnormal clip, a normal clip of the same video (the first by key), else -1; -1 for normal clips."""
    normal_of: dict[str, int] = {}
    for i in np.flatnonzero(~data.abnormal).tolist():
        normal_of.setdefault(data.videos[i], i)
    return np.array([normal_of.get(v, -1) if a else -1 for v, a in zip(data.videos, data.abnormal)], dtype=np.int64)
