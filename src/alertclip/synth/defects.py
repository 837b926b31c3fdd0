"""Inject the defects real VAGTA has, and record each one, so curation is measured rather than assumed.

Each record names the file, the entry index and the field a checker should point at, with the same full field
path as ``alertclip.data.vagta`` reports (``items[12].hard_negative[2]``, ``entries[3].box_infos[0][1].bbox``).
Kinds follow ``shared/fixtures/vagta/README.md`` plus the ones curation must also catch (category mismatch, weak
captions, abnormal regions without boxes, inverted boxes) and broken media.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import ffmpeg
import numpy as np

from .script import VideoScript

ITEMS = "qwen_vl_train.json"
BOX_FILES = ("Final_synth_train.json", "Final_synth_test.json")
CJK_WORDS = ("反击", "打架", "倒下", "火灾", "停车", "清洁")
WEAK_CAPTIONS = ("Something happens.", "A video.", "People are there.")


def _record(kind: str, file: str, index: int, field: str, video: str, detail: str = "") -> dict:
    if index >= 0:  # full field path, as alertclip.data.vagta reports it
        field = f"{'items' if file == ITEMS else 'entries'}[{index}].{field}"
    return {"kind": kind, "file": file, "index": int(index), "field": field, "video": video, "detail": detail}


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[A-Za-z]{4,}", text)]


def inject_annotation_defects(annotations: dict, rng: np.random.Generator, rate: float) -> list[dict]:
    items = annotations[ITEMS]["items"]
    used: set[tuple[str, int]] = set()
    out: list[dict] = []

    def pick(file: str, candidates: list[int]) -> list[int]:
        free = [i for i in candidates if (file, i) not in used]
        if not free:
            return []
        n = min(len(free), max(1, int(round(rate * len(candidates)))))
        chosen = sorted(int(i) for i in rng.choice(free, size=n, replace=False))
        used.update((file, i) for i in chosen)
        return chosen

    abnormal_items = [i for i, it in enumerate(items) if it["frames_25"] is not None]
    all_items = list(range(len(items)))
    out += _repeat_segment_captions(items, rng, used)  # first: it needs a whole video's items untouched

    for i in pick(ITEMS, all_items):
        items[i]["hard_negative"] = []
        out.append(_record("empty_hard_negatives", ITEMS, i, "hard_negative", items[i]["video"]))
    for i in pick(ITEMS, all_items):
        j = int(rng.integers(len(items[i]["hard_negative"])))
        items[i]["hard_negative"][j] = items[i]["region_caption"]
        out.append(_record("hard_negative_equals_positive", ITEMS, i, f"hard_negative[{j}]", items[i]["video"]))
    for i in pick(ITEMS, all_items):
        items[i]["hard_negative"][2] = items[i]["hard_negative"][1]
        out.append(_record("duplicate_hard_negatives", ITEMS, i, "hard_negative[2]", items[i]["video"]))
    for i in pick(ITEMS, all_items):
        text = items[i]["region_caption"]
        a, b = _words(text)[int(rng.integers(len(_words(text))))]
        items[i]["region_caption"] = text[:b] + str(int(rng.integers(1, 10))) + text[b:]
        out.append(_record("digit_in_word", ITEMS, i, "region_caption", items[i]["video"], text[a:b]))
    for i in pick(ITEMS, all_items):
        text = items[i]["region_caption"]
        a, b = _words(text)[-1]
        items[i]["region_caption"] = text[:a] + str(rng.choice(CJK_WORDS)) + text[b:]
        out.append(_record("non_english", ITEMS, i, "region_caption", items[i]["video"], text[a:b]))
    for i in pick(ITEMS, abnormal_items):
        s = items[i]["frames_25"][0]
        items[i]["frames_25"] = [s, s]
        out.append(_record("zero_length_span", ITEMS, i, "frames_25", items[i]["video"]))
    for i in pick(ITEMS, abnormal_items):
        own = _category(items[i]["video"])
        others = [k for k in abnormal_items if _category(items[k]["video"]) != own]
        donor = items[int(rng.choice(others))]
        items[i]["region_caption"] = donor["region_caption"]
        out.append(_record("category_mismatch", ITEMS, i, "region_caption", items[i]["video"],
                           f"caption of a {_category(donor['video'])} clip"))
    for i in pick(ITEMS, abnormal_items):
        items[i]["region_caption"] = str(rng.choice(WEAK_CAPTIONS))
        out.append(_record("weak_caption", ITEMS, i, "region_caption", items[i]["video"]))

    for file in BOX_FILES:
        entries = annotations[file]
        boxed = [i for i, e in enumerate(entries) if e["box_infos"] and any(e["box_infos"])]
        for i in pick(file, boxed):
            r, k = _some_keyframe(entries[i], rng)
            bbox = entries[i]["box_infos"][r][k]["bbox"]
            bbox[2] = 1.0 + float(rng.uniform(1e-9, 1e-6))  # the float error seen upstream
            bbox[1] = -float(rng.uniform(1e-9, 1e-6))
            out.append(_record("bbox_out_of_range", file, i, f"box_infos[{r}][{k}].bbox", entries[i]["video"]))
        for i in pick(file, boxed):
            r, k = _some_keyframe(entries[i], rng)
            bbox = entries[i]["box_infos"][r][k]["bbox"]
            bbox[0], bbox[2] = bbox[2], bbox[0]
            out.append(_record("bbox_inverted", file, i, f"box_infos[{r}][{k}].bbox", entries[i]["video"]))
        abnormal_boxed = [i for i in boxed if entries[i]["timestamps"] is None]  # segments are normal
        for i in pick(file, abnormal_boxed):
            entries[i]["box_infos"] = [[] for _ in entries[i]["box_infos"]]
            out.append(_record("abnormal_without_boxes", file, i, "box_infos", entries[i]["video"]))
    return out


def _category(video: str) -> str:
    return video.split("/")[-2]


def _some_keyframe(entry: dict, rng: np.random.Generator) -> tuple[int, int]:
    r = int(rng.choice([r for r, track in enumerate(entry["box_infos"]) if track]))
    enabled = [k for k, kf in enumerate(entry["box_infos"][r]) if kf["enabled"]]
    return r, int(rng.choice(enabled))


def _repeat_segment_captions(items: list[dict], rng: np.random.Generator, used: set) -> list[dict]:
    """Upstream sometimes gives every segment of a normal video the same caption."""
    by_video: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if it["timestamps"] is not None and "/Normal/" in it["video"]:
            by_video.setdefault(it["video"], []).append(i)
    multi = sorted(v for v, idx in by_video.items() if len(idx) >= 2 and not any((ITEMS, i) in used for i in idx))
    if not multi:
        return []
    video = str(rng.choice(multi))
    idx = by_video[video]
    out = []
    used.update((ITEMS, i) for i in idx)  # the first segment too: its caption is the repeated one
    for i in idx[1:]:
        items[i]["region_caption"] = items[idx[0]]["region_caption"]
        out.append(_record("repeated_caption", ITEMS, i, "region_caption", video, f"same as items[{idx[0]}]"))
    return out


def inject_media_defects(scripts: list[VideoScript], pub: Path, annotations: dict, rng: np.random.Generator,
                         crf: int) -> list[dict]:
    """Break a few published train videos the way real mirrors are broken; append the re-encoded duplicate."""
    train_abn = [s for s in scripts if s.split == "train" and s.abnormal]
    train_norm = [s for s in scripts if s.split == "train" and not s.abnormal]
    truncated, duplicated = (train_abn[int(i)] for i in rng.choice(len(train_abn), 2, replace=False))
    empty, missing = (train_norm[int(i)] for i in rng.choice(len(train_norm), 2, replace=False))
    out = []

    path = pub / truncated.path
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.55)])
    out.append(_record("truncated_media", "", -1, "video", truncated.path, f"{len(data)} -> {int(len(data) * .55)} bytes"))

    (pub / empty.path).write_bytes(b"")
    out.append(_record("zero_length_media", "", -1, "video", empty.path))

    (pub / missing.path).unlink()
    out.append(_record("missing_media", "", -1, "video", missing.path, "listed in annotations, not published"))

    n_same = sum(1 for s in scripts if s.category == duplicated.category)
    copy = dataclasses.replace(duplicated, name=f"{duplicated.category}{n_same + 1:03d}_x264.mp4",
                               width=duplicated.width - 8, height=duplicated.height - 8)
    (pub / copy.path).parent.mkdir(parents=True, exist_ok=True)
    (
        ffmpeg.input(str(pub / duplicated.path))
        .output(str(pub / copy.path), vcodec="libx264", crf=min(crf + 8, 51), preset="veryfast", threads=1,
                vf=f"scale={copy.width}:{copy.height}", pix_fmt="yuv420p",
                movflags="+faststart", map_metadata=-1, fflags="+bitexact", **{"flags:v": "+bitexact"})
        .global_args("-loglevel", "error", "-nostdin")
        .overwrite_output()
        .run()
    )
    scripts.append(copy)
    for file in (ITEMS, *BOX_FILES):
        rows = annotations[file]["items"] if file == ITEMS else annotations[file]
        for row in [r for r in rows if r["video"] == duplicated.path]:
            rows.append({**row, "video": copy.path})
            out.append(_record("reencoded_duplicate", file, len(rows) - 1, "video", copy.path,
                               f"re-encode of {duplicated.path}"))
    return out
