"""Render, encode and annotate VAGTA-synth, then publish it like a dataset host would.

Layout written under ``out_dir``:
- ``published/``: what a user downloads — ``VAGTA_synth/Videos/<Category>/*.mp4`` (H.264), ``annotations/`` in the
  real VAGTA formats plus UCF-style lists, and ``manifest.json`` (sha256 and size per file).
- ``truth/``: what only the generator knows — every event with its span, every injected defect, per-video facts.
- ``pretrain/``: stills of train (and held-out test) videos with scene/object/colour captions for the backbone.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np
import polars as pl
from tqdm import tqdm

from ..io import atomic_path, sha256_file, write_json
from . import captions, world
from .defects import inject_annotation_defects, inject_media_defects
from .render import Canvas, Car, Person, Thing, background, draw_event
from .script import ANNOTATION_FPS, VideoScript, plan_world

log = logging.getLogger(__name__)


KEYFRAME_STEP = 10  # annotation keyframe every 10 frames at 25 fps, like a tool's track keyframes
PRETRAIN_EVERY_S = 1.5


# ---------------------------------------------------------------- rendering one video

def _frame(script: VideoScript, bg: np.ndarray, t: float, frame_seed: int) -> tuple[np.ndarray, list, dict]:
    c = Canvas(bg)
    noise = np.random.default_rng([script.seed, frame_seed])
    people, cars, things = [], [], []
    for w in script.walkers:
        x = (w.x0 + w.speed * t) % 1.4 - 0.2
        w.person.draw(c, x, w.y, h=0.24, pose="walk", phase=t * 8, facing=1 if w.speed > 0 else -1)
        if 0.0 < x < 1.0:
            people.append(w.person.shirt)
    boxes = []
    for ev in script.events:
        box = draw_event(c, ev, t, noise)
        boxes.append(box)
        if box is None:
            continue
        for actor in (ev.a, ev.b):
            if isinstance(actor, Person):
                people.append(actor.shirt)
            elif isinstance(actor, Car):
                cars.append(actor.colour)
            elif isinstance(actor, Thing):
                (cars.append(actor.colour) if actor.kind == "car" else things.append((actor.kind, actor.colour)))
    return c.img, boxes, {"people": people, "cars": cars, "things": things}


def _clamp_box(box) -> list[float] | None:
    x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in box)
    if x1 - x0 < 0.01 or y1 - y0 < 0.01:
        return None
    return [round(v, 6) for v in (x0, y0, x1, y1)]


# The annotated region of an event: a box of fixed shape per kind of actors, placed at the event's spot, holding
# both events of a pair at every moment of the span. A tight box would carry the pose (a fallen person's box is
# wide and flat, a seated one's tall) and so the label: a probe on tight-box geometry alone predicted the clip label
# at AUC 0.91 (benchmarks/probe_geometry.py). With one shape per actor kind the box says where, the pixels say what.
REGION_EXTENT = {  # (left, top, right, bottom) around the event's ground point (x, y)
    "two_people": (0.36, 0.40, 0.36, 0.03), "person": (0.30, 0.36, 0.30, 0.04), "two_cars": (0.40, 0.40, 0.40, 0.04),
    "object": (0.26, 0.62, 0.30, 0.03), "person_object": (0.32, 0.38, 0.32, 0.03),
}


def region_box(ev) -> tuple[float, float, float, float]:
    left, top, right, bottom = REGION_EXTENT[world.EVENT_BY_NAME[ev.name].actors]
    if ev.name in ("explosion", "fireworks"):  # a blast and a sky burst both reach the top of the frame
        top = ev.y - 0.05
    return (ev.x - left, ev.y - top, ev.x + right, ev.y + bottom)


def keyframe_tracks(script: VideoScript) -> list[list[dict]]:
    """Per event, keyframes at 25 fps (1-based) in VAGTA's box_infos format; the last one disables the track."""
    bg = background(script.scene, world.COLOURS[script.tint], script.width, script.height,
                    np.random.default_rng(script.seed))
    tracks = []
    for i, ev in enumerate(script.events):
        first, last = _frames25(ev.start, ev.end)  # keyframes inside the span: the first one has a box
        frames = list(range(first, last, KEYFRAME_STEP)) + [last]
        track = []
        for f in frames:
            t = min((f - 1) / ANNOTATION_FPS, ev.end - 1e-6)
            noise = np.random.default_rng([script.seed, f])
            box = draw_event(Canvas(bg), ev, t, noise)
            box = _clamp_box(region_box(ev)) if box is not None else None
            if box is not None:
                track.append({"frame": f, "bbox": box, "enabled": True, "_track_id": None})
        if track:
            track.append({"frame": last + 1, "bbox": list(track[-1]["bbox"]), "enabled": False, "_track_id": None})
        tracks.append(track)
    return tracks


def encode(frames, path: Path, width: int, height: int, fps: int, crf: int) -> None:
    """Encode RGB frames to H.264 mp4; single-threaded and bit-exact so reruns give identical bytes."""
    proc = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        .output(str(path), format="mp4", vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset="veryfast", threads=1,
                movflags="+faststart", map_metadata=-1, fflags="+bitexact", **{"flags:v": "+bitexact"})
        .global_args("-loglevel", "error", "-nostdin")
        .overwrite_output()
        .run_async(pipe_stdin=True, pipe_stderr=True)
    )
    try:
        for frame in frames:
            proc.stdin.write(frame.tobytes())
    finally:
        proc.stdin.close()
        err = proc.stderr.read()
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed encoding {path}: {err.decode(errors='replace')}")


@dataclass
class RenderJob:
    script: VideoScript
    out: Path
    crf: int
    still_size: tuple[int, int]


def render_video(job: RenderJob) -> dict:
    s = job.script
    rng = np.random.default_rng(s.seed)
    tint = world.COLOURS[s.tint]
    bg = background(s.scene, tint, s.width, s.height, rng)

    def frames():
        for i in range(s.n_frames):
            yield _frame(s, bg, i / s.fps, i)[0]

    job.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(job.out) as tmp:
        encode(frames(), tmp, s.width, s.height, s.fps, job.crf)
    # Pre-training stills at the standard size: the same scene rendered again, not a resized frame.
    sw, sh = job.still_size
    still_bg = background(s.scene, tint, sw, sh, np.random.default_rng(s.seed))
    stills, caps = [], []
    for k, t in enumerate(np.arange(0.5, s.duration, PRETRAIN_EVERY_S)):
        img, boxes, seen = _frame(s, still_bg, float(t), int(round(t * s.fps)))
        stills.append(img)
        visible = [ev.name for ev, box in zip(s.events, boxes) if box is not None]
        caps.append(captions.web_caption(captions.scene_caption(s.scene, s.tint, **seen), visible,
                                         np.random.default_rng([s.seed, 7, k])))
    return {"tracks": keyframe_tracks(s), "stills": np.stack(stills), "captions": caps}


# ---------------------------------------------------------------- annotations

def _frames25(start: float, end: float) -> list[int]:
    """1-based frame numbers at 25 fps of the first and last frame inside [start, end)."""
    first = int(math.ceil(start * ANNOTATION_FPS)) + 1
    return [first, max(int(math.ceil(end * ANNOTATION_FPS)), first)]


def quiet_stretch(script: VideoScript, min_s: float = 1.0) -> tuple[float, float] | None:
    """The longest stretch of a video in which no event is drawn (approaches included), if at least ``min_s``."""
    busy = sorted((ev.start - ev.approach, ev.end) for ev in script.events)
    gaps, t = [], 0.0
    for a, b in busy:
        gaps.append((t, a))
        t = max(t, b)
    gaps.append((t, script.duration))
    s, e = max(gaps, key=lambda g: g[1] - g[0])
    s, e = round(s + 0.2, 2), round(e - 0.2, 2)
    return (s, e) if e - s >= min_s else None


def build_annotations(scripts: list[VideoScript], tracks: dict[str, list], k_neg: int = 3) -> dict:
    """VAGTA's files for the world. Every event becomes a training clip with its box track:

    * abnormal events: a region of the video's box entry, an item with ``frames_25`` (VAGTA's abnormal regions);
    * normal events (the look-alikes inside abnormal videos and the events of normal videos): a segment entry with
      ``timestamps`` (VAGTA's normal segments) and the event's box track, an item with ``timestamps``;
    * the quiet stretch of a normal video: a segment entry whose region is the whole frame (``box_infos == [[]]``,
      VAGTA's convention for normal clips) with its own caption, in the box files only. It is not a training item:
      with hard negatives, a whole-frame region would be normal by geometry alone (the hard-negative loss could be
      lowered from the box), and without them the file would carry the "empty hard_negative" defect on purpose.

    Normal events are boxed like abnormal ones so that box geometry never tells the label of a clip that has hard
    negatives (a whole-frame region for them would: every normal clip whole-frame, every abnormal one boxed).
    """
    box_files: dict[str, list] = {"train": [], "test": []}
    items: list[dict] = []
    for s in scripts:
        scene, place = s.scene, captions.SCENE_PHRASE[s.scene]
        abnormal = [(i, ev) for i, ev in enumerate(s.events) if world.EVENT_BY_NAME[ev.name].abnormal]
        normal = [(i, ev) for i, ev in enumerate(s.events) if not world.EVENT_BY_NAME[ev.name].abnormal]
        if s.abnormal:
            box_files[s.split].append({
                "video": s.path,
                "global_caption": captions.global_caption(s, abnormal[0][1]),
                "region_captions": [captions.event_caption(ev, scene, variant=r) for r, (_, ev) in enumerate(abnormal)],
                "box_infos": [tracks[s.path][i] for i, _ in abnormal],
                "timestamps": None,
            })
            if s.split == "train":
                for r, (_, ev) in enumerate(abnormal):
                    items.append({
                        "video": s.path, "region_index": r, "frames_25": _frames25(ev.start, ev.end),
                        "region_caption": captions.event_caption(ev, scene, variant=r),
                        "hard_negative": captions.hard_negatives(ev, scene, k_neg), "timestamps": None,
                    })
        for r, (i, ev) in enumerate(normal):
            span = [round(ev.start, 2), round(ev.end, 2)]
            caption = captions.event_caption(ev, scene, variant=r)
            box_files[s.split].append({
                "video": s.path, "global_caption": captions.global_caption(s, ev, segment=True),
                "region_captions": [caption], "box_infos": [tracks[s.path][i]], "timestamps": span,
            })
            if s.split == "train":
                items.append({"video": s.path, "region_index": 0, "frames_25": None, "region_caption": caption,
                              "hard_negative": captions.hard_negatives(ev, scene, k_neg), "timestamps": span})
        quiet = quiet_stretch(s) if not s.abnormal else None
        if quiet is not None:
            caption = f"People walk {place}."
            box_files[s.split].append({
                "video": s.path, "global_caption": captions.global_caption(s, None), "region_captions": [caption],
                "box_infos": [[]], "timestamps": list(quiet),
            })
    return {
        "Final_synth_train.json": box_files["train"],
        "Final_synth_test.json": box_files["test"],
        "qwen_vl_train.json": {"meta_file": "Final_synth_train.json", "model": "vagta-synth-captioner",
                               "created_at": 0, "items": items},
    }


def temporal_annotation(scripts: list[VideoScript]) -> str:
    """UCF-Crime's Temporal_Anomaly_Annotation.txt: native frame numbers, two spans at most, -1 for none."""
    lines = []
    for s in scripts:
        if s.split != "test":
            continue
        spans = [(int(math.ceil(ev.start * s.fps)), int(math.ceil(ev.end * s.fps)))
                 for ev in s.events if world.EVENT_BY_NAME[ev.name].abnormal] if s.abnormal else []
        spans = (spans + [(-1, -1), (-1, -1)])[:2]
        fields = [s.name, s.category] + [str(v) for span in spans for v in span]
        lines.append("  ".join(fields) + "  ")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the stage

def synthesize(out_dir: Path, *, seed: int, n_train: int, n_test: int, min_s: float, max_s: float, width: int,
               height: int, fps: int, odd_fraction: float, abnormal_fraction: float, novel_events: list[str],
               crf: int, defect_rate: float, workers: int = 0, progress: bool = True) -> dict:
    unknown = [n for n in novel_events if n not in world.EVENT_BY_NAME or not world.EVENT_BY_NAME[n].abnormal]
    if unknown:
        raise ValueError(f"synthesize.novel_events: {unknown} are not abnormal events "
                         f"({[e.name for e in world.ABNORMAL_EVENTS]})")
    scripts = plan_world(seed, n_train, n_test, min_s, max_s, width, height, fps, odd_fraction, abnormal_fraction)
    for sub in ("published", "truth", "pretrain"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    pub = out_dir / "published"
    jobs = [RenderJob(s, pub / s.path, crf, (width, height)) for s in scripts]
    workers = workers or os.cpu_count() or 1
    with mp.get_context("spawn").Pool(workers) as pool:
        results = list(tqdm(pool.imap(render_video, jobs), total=len(jobs), desc="synthesize", unit="video",
                            disable=None if progress else True))  # None: off when not a terminal
    tracks = {s.path: r["tracks"] for s, r in zip(scripts, results)}

    annotations = build_annotations(scripts, tracks)
    rng = np.random.default_rng([seed, 1])
    defects = inject_annotation_defects(annotations, rng, defect_rate)
    defects += inject_media_defects(scripts, pub, annotations, rng, crf)
    ann_dir = pub / "annotations"
    for name, content in annotations.items():
        write_json(ann_dir / name, content)
    (ann_dir / "Temporal_Anomaly_Annotation.txt").write_text(temporal_annotation(scripts))
    (ann_dir / "Anomaly_Train.txt").write_text(
        "".join(f"{s.category}/{s.name}\n" for s in scripts if s.split == "train"))
    pl.DataFrame({
        "video": [s.path for s in scripts], "split": [s.split for s in scripts],
        "category": [s.category for s in scripts], "abnormal": [s.abnormal for s in scripts],
    }).write_csv(ann_dir / "video_labels.csv")
    (ann_dir / "novel_classes.txt").write_text(
        "".join(f"{world.EVENT_BY_NAME[n].category}\n" for n in sorted(novel_events)))

    files = sorted(p for p in pub.rglob("*") if p.is_file() and p.name != "manifest.json")
    write_json(pub / "manifest.json", {
        "dataset": "vagta-synth", "version": "1",
        "files": [{"path": p.relative_to(pub).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
                  for p in files],
    })
    _write_truth(out_dir / "truth", scripts, defects)
    _write_pretrain(out_dir / "pretrain", scripts, results)
    return {"videos": len(scripts), "defects": len(defects), "files": len(files)}


def _write_truth(truth: Path, scripts: list[VideoScript], defects: list[dict]) -> None:
    truth.mkdir(parents=True, exist_ok=True)
    rows = [{"video": s.path, "split": s.split, "category": s.category, "event": ev.name,
             "abnormal": world.EVENT_BY_NAME[ev.name].abnormal, "start_s": ev.start, "end_s": ev.end,
             "approach_s": round(ev.approach, 4),
             "fps": s.fps, "width": s.width, "height": s.height, "duration_s": s.duration, "scene": s.scene}
            for s in scripts for ev in s.events]
    pl.DataFrame(rows).write_parquet(truth / "events.parquet")
    write_json(truth / "defects.json", defects)


def _write_pretrain(out: Path, scripts: list[VideoScript], results: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stills = np.concatenate([r["stills"] for r in results])
    split = [("train" if s.split == "train" else "heldout") for s, r in zip(scripts, results)
             for _ in r["captions"]]
    with atomic_path(out / "images.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, stills)
    pl.DataFrame({
        "row": np.arange(len(split)),
        "video": [s.path for s, r in zip(scripts, results) for _ in r["captions"]],
        "split": split,
        "caption": [c for r in results for c in r["captions"]],
    }).write_parquet(out / "captions.parquet")
