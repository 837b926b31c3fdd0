"""The ``frames`` stage: decode every needed frame once, into a few memory-mappable arrays with polars indexes.

Outputs (under ``out_dir``):
- ``clips-NNN.npy`` (N, T, H, W, 3) uint8 + ``clips.parquet``: T frames per annotated training clip (spans from
  ``frames_25`` or ``timestamps``), with the clip's boxes per sampled frame (normalised xyxy, NaN = not shown).
- ``snippets-NNN.npy`` (M, H, W, 3) uint8 + ``snippets.parquet``: one frame per 16-frame snippet of every video.
- ``media.parquet``: one row per video with its probe results and a status; bad media is recorded, never fatal.

Frames are resampled to ``fps`` and scaled to ``width`` x ``height`` without crop or padding, so normalised box
coordinates stay aligned with pixels through the resize (``x_px = x * width``).
Each video is decoded once by one single-threaded ffmpeg; videos run in parallel on all cores (one ffmpeg each).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from ..io import atomic_path
from . import vagta
from .media import OK, MediaInfo, Selection, check_complete, decode_frames, probe
from .sources import Layout

log = logging.getLogger(__name__)


@dataclass
class ClipRequest:
    clip_key: str
    video: str
    region_index: int
    item_index: int
    start: int  # first frame, 1-based at the target fps (VAGTA numbering)
    end: int  # last frame, inclusive
    boxes_track: list | None = None  # VAGTA keyframes for this region, if the box file has them


@dataclass
class VideoJob:
    video: str  # path relative to the layout root, as annotations name it
    path: Path
    split: str
    clips: list[ClipRequest] = field(default_factory=list)


@dataclass
class FrameSettings:
    fps: int
    width: int
    height: int
    clip_frames: int
    snippet_len: int


def clip_frame_numbers(start: int, end: int, t: int) -> np.ndarray:
    """T frame numbers (1-based) at the centres of T equal parts of [start, end]; a zero-length span repeats."""
    if end <= start:
        return np.full(t, start, np.int64)
    length = end - start + 1
    return start + np.floor((np.arange(t) + 0.5) * length / t).astype(np.int64)


def snippet_frame_numbers(n_frames: int, snippet_len: int) -> np.ndarray:
    """0-based frame per snippet: the middle frame (16 i + 8) of each 16-frame snippet. A trailing partial snippet
    counts (ceil(n/16) snippets, VadCLIP's feature count): its middle frame when it has one, else its first."""
    starts = np.arange(math.ceil(n_frames / snippet_len), dtype=np.int64) * snippet_len
    middles = starts + snippet_len // 2
    return np.where(middles < n_frames, middles, starts)


def snippet_selection(snippet_len: int) -> tuple[int, tuple[int, ...]]:
    """Every frame :func:`snippet_frame_numbers` can pick, whatever the length: first and middle of each snippet."""
    return snippet_len, tuple(sorted({0, snippet_len // 2}))


def _span_frames(item: vagta.TrainItem, fps: int) -> tuple[int, int] | None:
    if item.frames_25 is not None:
        s, e = item.frames_25
        scale = fps / 25.0
        return int(round((s - 1) * scale)) + 1, int(round((e - 1) * scale)) + 1
    if item.timestamps is not None:
        s, e = item.timestamps
        return int(math.floor(s * fps)) + 1, max(int(math.floor(e * fps)), int(math.floor(s * fps)) + 1)
    return None  # a whole-video item (MSAD normals): decided once the frame count is known


def plan_jobs(layout: Layout, settings: FrameSettings) -> list[VideoJob]:
    """Every video the annotations or labels mention, with the clips to cut from it."""
    jobs: dict[str, VideoJob] = {}

    def job(video: str, split: str) -> VideoJob:
        if video not in jobs:
            jobs[video] = VideoJob(video, layout.path(video), split)
        return jobs[video]

    labels = layout.path(layout.video_labels)
    if labels.exists():
        with open(labels, newline="") as fh:
            for row in csv.DictReader(fh):
                job(row["video"], row["split"])
    tracks: dict[tuple, list] = {}
    if layout.path(layout.train_annotations).exists():
        for entry in vagta.load(layout.path(layout.train_annotations)).entries:
            for r, track in enumerate(entry.box_infos):
                if track:
                    tracks.setdefault(entry.track_key(r), track)
    for entry in vagta.load(layout.path(layout.test_annotations)).entries:
        job(entry.video, "test")
    items = vagta.load(layout.path(layout.train_items)).items
    for i, item in enumerate(items):
        span = _span_frames(item, settings.fps)
        start, end = span if span is not None else (1, -1)
        key = item.clip_key
        job(item.video, "train").clips.append(
            ClipRequest(key, item.video, item.region_index, i, start, end, tracks.get(item.track_key)))
    return sorted(jobs.values(), key=lambda j: j.video)


def process_video(args: tuple[VideoJob, FrameSettings]) -> dict:
    job, st = args
    empty = {"video": job.video, "split": job.split, "snippets": None, "clips": []}
    if not job.path.exists() or job.path.stat().st_size == 0:
        info = probe(job.path)  # cheap: answers missing / zero_length without running ffprobe
        info.path = job.video
        return {**empty, "info": info}
    wanted = [n - 1 for c in job.clips if c.end >= 0
              for n in clip_frame_numbers(c.start, c.end, st.clip_frames)]
    every, offsets = snippet_selection(st.snippet_len)
    # A whole-video clip (no span) needs the length first: then decode every frame instead of selecting.
    select = None if any(c.end < 0 for c in job.clips) else Selection(every, offsets, tuple(wanted))
    decoded = decode_frames(job.path, st.fps, st.width, st.height, select)
    info = decoded.info or probe(job.path)  # ffprobe only when ffmpeg printed no stream banner
    info = check_complete(info, decoded, st.fps) if info.status == OK else info
    info.path = job.video
    if info.status != OK:
        return {**empty, "info": info}
    n = decoded.n_decoded
    snip_idx = snippet_frame_numbers(n, st.snippet_len)
    clip_numbers = [np.clip(clip_frame_numbers(c.start, n if c.end < 0 else c.end, st.clip_frames), 1, n)
                    for c in job.clips]
    needed = set(snip_idx.tolist()) | {int(k) - 1 for nums in clip_numbers for k in nums}
    if not needed <= set(decoded.selected.tolist()):  # a span past the end of the video: clamped frames
        decoded = decode_frames(job.path, st.fps, st.width, st.height, None)
    row_of = {int(num): i for i, num in enumerate(decoded.selected)}
    clips = []
    for c, numbers in zip(job.clips, clip_numbers):
        # frame n (1-based) is at t = (n-1)/fps; VAGTA frame f at t = (f-1)/25
        boxes = (vagta.boxes_at(c.boxes_track, 1 + (numbers - 1) * 25.0 / st.fps) if c.boxes_track
                 else np.full((len(numbers), 4), np.nan, np.float32))
        frames = decoded.frames[[row_of[int(k) - 1] for k in numbers]]
        clips.append({"req": c, "frames": frames, "numbers": numbers,
                      "boxes": boxes.astype(np.float32), "out_of_video": bool(c.end > n or c.start > n)})
    return {"video": job.video, "split": job.split, "info": info, "n_frames": n,
            "snippets": (decoded.frames[[row_of[int(k)] for k in snip_idx]], snip_idx), "clips": clips}


def _ordered_map(pool: ThreadPoolExecutor, fn, items: list, ahead: int):
    """Like ``pool.map`` (results in input order) but at most ``ahead`` results in flight: bounded memory."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class ShardWriter:
    """Append arrays along axis 0 and flush ``<prefix>-NNN.npy`` files of at most ``max_bytes`` each."""

    def __init__(self, out_dir: Path, prefix: str, max_bytes: int):
        self.out_dir, self.prefix, self.max_bytes = out_dir, prefix, max_bytes
        self.pending: list[np.ndarray] = []
        self.pending_bytes = 0
        self.shard = 0
        self.rows_in_shard = 0

    def add(self, arr: np.ndarray) -> tuple[int, int]:
        """Queue one row; return (shard, row) where it will be stored."""
        if self.pending and self.pending_bytes + arr.nbytes > self.max_bytes:
            self.flush()
        self.pending.append(arr)
        self.pending_bytes += arr.nbytes
        self.rows_in_shard += 1
        return self.shard, self.rows_in_shard - 1

    def flush(self) -> None:
        if not self.pending:
            return
        with atomic_path(self.out_dir / f"{self.prefix}-{self.shard:03d}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.stack(self.pending))
        self.shard += 1
        self.pending, self.pending_bytes, self.rows_in_shard = [], 0, 0


def extract_frames(layout: Layout, out_dir: Path, settings: FrameSettings, shard_mb: int,
                   workers: int = 0, progress: bool = True) -> dict:
    """Decode every video the source's annotations and labels name (:func:`plan_jobs`) into ``out_dir``."""
    return write_frames(plan_jobs(layout, settings), out_dir, settings, shard_mb, workers, progress)


def video_jobs(root: Path, split: str = "test") -> list[VideoJob]:
    """One snippet-only job per video file under ``root`` (recursively), named by its path relative to ``root``:
    the test videos of an evaluation dataset that is not the source (``eval.datasets.<key>.videos``)."""
    files = sorted(f for f in Path(root).rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    return [VideoJob(f.relative_to(root).as_posix(), f, split) for f in files]


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")


def write_frames(jobs: list[VideoJob], out_dir: Path, settings: FrameSettings, shard_mb: int = 512,
                 workers: int = 0, progress: bool = True) -> dict:
    """Decode ``jobs`` into ``out_dir`` (replaced): frame shards, ``media.parquet``, ``snippets.parquet``,
    ``clips.parquet``; bad media is recorded in ``media.parquet`` and skipped, never fatal."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    snippets = ShardWriter(out_dir, "snippets", shard_mb << 20)
    clips = ShardWriter(out_dir, "clips", shard_mb << 20)
    media_rows, snip_rows, clip_rows = [], [], []
    workers = workers or os.cpu_count() or 1
    # Threads, not processes: the decoding runs in one ffmpeg process per file, and the Python side of a file
    # (pipe reads, numpy indexing) releases the GIL, so threads keep every core busy without pickling frames.
    with ThreadPoolExecutor(workers) as pool:
        results = _ordered_map(pool, process_video, [(j, settings) for j in jobs], ahead=2 * workers)
        for res in tqdm(results, total=len(jobs), desc="frames", unit="video",
                        disable=None if progress else True):  # None: off when not a terminal
            info: MediaInfo = res["info"]
            media_rows.append({**info.as_row(), "split": res["split"], "n_frames": res.get("n_frames", 0)})
            if info.status != OK:
                log.warning("skipping %s: %s (%s)", res["video"], info.status, info.reason)
                continue
            frames, numbers = res["snippets"]
            for k, (img, num) in enumerate(zip(frames, numbers)):
                shard, row = snippets.add(img)
                snip_rows.append({"video": res["video"], "split": res["split"], "snippet": k,
                                  "frame": int(num), "shard": shard, "row": row})
            for c in res["clips"]:
                req: ClipRequest = c["req"]
                shard, row = clips.add(c["frames"])
                clip_rows.append({
                    "clip_key": req.clip_key, "video": req.video, "region_index": req.region_index,
                    "item_index": req.item_index, "start": req.start, "end": req.end,
                    "frames": c["numbers"].tolist(), "boxes": c["boxes"].tolist(),
                    "has_boxes": bool(np.isfinite(c["boxes"]).any()), "span_outside_video": c["out_of_video"],
                    "shard": shard, "row": row,
                })
    snippets.flush()
    clips.flush()
    _write(pl.DataFrame(media_rows), out_dir / "media.parquet")
    _write(pl.DataFrame(snip_rows, schema=_SNIPPET_SCHEMA), out_dir / "snippets.parquet")
    _write(pl.DataFrame(clip_rows, schema=_CLIP_SCHEMA), out_dir / "clips.parquet")
    bad = sum(r["status"] != OK for r in media_rows)
    return {"videos": len(jobs), "bad_media": bad, "snippets": len(snip_rows), "clips": len(clip_rows)}


_SNIPPET_SCHEMA = {"video": pl.String, "split": pl.String, "snippet": pl.Int64, "frame": pl.Int64,
                   "shard": pl.Int64, "row": pl.Int64}
_CLIP_SCHEMA = {"clip_key": pl.String, "video": pl.String, "region_index": pl.Int64, "item_index": pl.Int64,
                "start": pl.Int64, "end": pl.Int64, "frames": pl.List(pl.Int64),
                "boxes": pl.List(pl.List(pl.Float32)), "has_boxes": pl.Boolean, "span_outside_video": pl.Boolean,
                "shard": pl.Int64, "row": pl.Int64}


def _write(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)


def open_frames(out_dir: Path, prefix: str) -> list[np.ndarray]:
    """Memory-map the shards of ``prefix`` ("clips" or "snippets") in shard order."""
    return [np.load(p, mmap_mode="r") for p in sorted(out_dir.glob(f"{prefix}-*.npy"))]
