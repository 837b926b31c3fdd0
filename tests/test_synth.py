"""VAGTA-synth: determinism, the event vocabulary, the published files and the injected defects."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import get_args

import numpy as np
import polars as pl
import pytest

from alertclip.data import vagta, vagta_defects
from alertclip.synth import generate, world
from alertclip.synth.defects import BOX_FILES, ITEMS, WEAK_CAPTIONS
from alertclip.synth.generate import synthesize

ANNOTATION_DEFECTS = (
    "empty_hard_negatives", "hard_negative_equals_positive", "duplicate_hard_negatives", "digit_in_word",
    "non_english", "zero_length_span", "category_mismatch", "weak_caption", "repeated_caption",
    "bbox_out_of_range", "bbox_inverted", "abnormal_without_boxes",
)
MEDIA_DEFECTS = ("truncated_media", "zero_length_media", "missing_media", "reencoded_duplicate")


def _hashes(root: Path) -> dict[str, str]:
    out = {}
    for sub in ("published", "truth", "pretrain"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _ann(world_dir: Path) -> Path:
    return world_dir / "published" / "annotations"


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _labels(world_dir: Path) -> list[dict]:
    with open(_ann(world_dir) / "video_labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,avg_frame_rate:format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    meta = json.loads(out.stdout)
    s = meta["streams"][0]
    num, den = s["avg_frame_rate"].split("/")
    return {"codec": s["codec_name"], "width": int(s["width"]), "height": int(s["height"]),
            "fps": float(num) / float(den), "duration": float(meta["format"]["duration"])}


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(smoke_world, smoke_kwargs, tmp_path):
    # another worker count too: the output must not depend on scheduling
    synthesize(tmp_path, **{**smoke_kwargs, "workers": 1})
    first, second = _hashes(smoke_world), _hashes(tmp_path)
    assert any(k.endswith(".mp4") for k in first)
    assert {"truth/events.parquet", "truth/defects.json", "pretrain/images.npy",
            "pretrain/captions.parquet", "published/manifest.json"} <= set(first)
    assert set(first) == set(second)
    differ = sorted(k for k in first if first[k] != second[k])
    assert not differ, f"files differ between two runs with the same seed: {differ}"


def test_rerun_in_place_replaces_the_world(smoke_kwargs, tmp_path):
    small = {**smoke_kwargs, "n_train": 6, "n_test": 3}
    synthesize(tmp_path, **small)
    first = _hashes(tmp_path)
    (tmp_path / "published" / "stale.txt").write_text("left over")
    synthesize(tmp_path, **small)
    assert _hashes(tmp_path) == first


def test_different_seed_gives_different_videos(smoke_world, smoke_kwargs, tmp_path):
    synthesize(tmp_path, **{**smoke_kwargs, "seed": 8, "n_train": 6, "n_test": 3})

    def videos(root: Path) -> set[str]:
        return {hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "published").rglob("*.mp4")
                if p.stat().st_size > 0}

    a, b = videos(smoke_world), videos(tmp_path)
    assert a and b
    assert not a & b, "a different seed reproduced some video byte for byte"


def test_unknown_novel_event_is_rejected(smoke_kwargs, tmp_path):
    with pytest.raises(ValueError, match="novel_events"):
        synthesize(tmp_path, **{**smoke_kwargs, "novel_events": ["talking"]})


# ---------------------------------------------------------------------------------------------- vocabulary


def test_events_come_in_counterpart_pairs():
    abnormal = [e for e in world.EVENTS if e.abnormal]
    normal = [e for e in world.EVENTS if not e.abnormal]
    assert len(abnormal) >= 6 and len(normal) >= 6
    assert len({e.name for e in world.EVENTS}) == len(world.EVENTS)
    for e in world.EVENTS:
        other = world.counterpart(e.name)
        assert other.abnormal != e.abnormal, e.name
        assert other.counterpart == e.name, e.name
        assert other.actors == e.actors, f"{e.name} and {other.name} must look alike (same actors)"
        assert e.verbs and all("{a}" in v for v in e.verbs), e.name
    assert len({e.category for e in abnormal}) == len(abnormal)
    assert all(e.category == "Normal" for e in normal)


def test_pretraining_captions_follow_the_web_rule(smoke_world):
    """Event words are present but not grounded: a still showing an event's actors carries the pair's NORMAL phrase
    whichever event it is; abnormal phrases appear only on stills with no event drawn (news photos of the place)."""
    caps = pl.read_parquet(smoke_world / "pretrain" / "captions.parquet")
    images = np.load(smoke_world / "pretrain" / "images.npy", mmap_mode="r")
    assert caps.height > 0
    assert images.shape == (caps.height, 64, 64, 3) and images.dtype == np.uint8
    assert caps["row"].to_list() == list(range(caps.height))
    assert set(caps["split"]) == {"train", "heldout"}
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet")
    by_video: dict[str, list[dict]] = {}
    for row in events.iter_rows(named=True):
        by_video.setdefault(row["video"], []).append(row)
    abnormal_phrases = {e.summary for e in world.ABNORMAL_EVENTS}
    normal_phrases = {e.summary for e in world.NORMAL_EVENTS}
    seen = {"event_with_normal_phrase": 0, "abnormal_event_with_normal_phrase": 0, "news": 0}
    for video, group in caps.group_by("video", maintain_order=True):
        for k, text in enumerate(group.sort("row")["caption"]):
            t = 0.5 + k * generate.PRETRAIN_EVERY_S
            drawn = [e for e in by_video[video[0]] if e["start_s"] - e["approach_s"] <= t < e["end_s"]]
            tail = text.rsplit(", ", 1)[-1]
            if drawn:
                ev = world.EVENT_BY_NAME[drawn[0]["event"]]
                ordinary = ev if not ev.abnormal else world.counterpart(ev.name)
                assert tail == ordinary.summary, (video, t, text)
                assert not any(p in text for p in abnormal_phrases), text
                seen["event_with_normal_phrase"] += 1
                seen["abnormal_event_with_normal_phrase"] += ev.abnormal
            else:
                assert not any(p in text for p in normal_phrases), text
                seen["news"] += tail.startswith("where ") and tail[6:] in abnormal_phrases
    assert all(seen.values()), seen


def test_manifest_matches_files(smoke_world):
    pub = smoke_world / "published"
    manifest = _read_json(pub / "manifest.json")
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(pub).as_posix() for p in pub.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(listed) == on_disk
    for rel, f in listed.items():
        data = (pub / rel).read_bytes()
        assert f["size"] == len(data), rel
        assert f["sha256"] == hashlib.sha256(data).hexdigest(), rel


def test_annotations_load_and_name_published_videos(smoke_world, broken_media):
    ann = _ann(smoke_world)
    manifest = {f["path"] for f in _read_json(smoke_world / "published" / "manifest.json")["files"]}
    missing = [v for v, k in broken_media.items() if k == "missing_media"]
    assert len(missing) == 1
    named = set()
    for name in (*BOX_FILES, ITEMS):
        vf = vagta.load(ann / name)
        assert vf.kind == ("items" if name == ITEMS else "entries")
        assert vf.records, name
        named |= {r.video for r in vf.records}
    assert missing[0] in named, "the missing video should still be listed in the annotations"
    assert named - manifest == set(missing)
    labels = {row["video"] for row in _labels(smoke_world)}
    assert named <= labels


def test_video_labels_agree_with_truth(smoke_world):
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet")
    rows = _labels(smoke_world)
    assert len({r["video"] for r in rows}) == len(rows)
    truth = {r["video"]: r for r in events.unique("video").iter_rows(named=True)}
    for r in rows:
        t = truth[r["video"]]
        assert r["split"] == t["split"] and r["category"] == t["category"], r
        assert (r["abnormal"] == "true") == (r["category"] != "Normal"), r
        assert vagta.category_of(r["video"]) == r["category"]
    # an abnormal video shows its own category's event
    for r in events.filter(pl.col("abnormal")).iter_rows(named=True):
        assert world.EVENT_OF_CATEGORY[r["category"]] == r["event"], r
    assert (_ann(smoke_world) / "novel_classes.txt").read_text().split() == ["Explosion"]


def test_temporal_annotation_format_and_spans(smoke_world):
    text = (_ann(smoke_world) / "Temporal_Anomaly_Annotation.txt").read_text()
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet")
    test_videos = {r["video"].rsplit("/", 1)[-1]: r for r in _labels(smoke_world) if r["split"] == "test"}
    lines = text.splitlines()
    assert text.endswith("\n")
    assert len(lines) == len(test_videos) == 6
    seen = set()
    for line in lines:
        assert line.endswith("  "), repr(line)
        fields = line[:-2].split("  ")
        assert len(fields) == 6 and all(f and " " not in f for f in fields), repr(line)
        name, category, *nums = fields
        assert name in test_videos and name not in seen
        seen.add(name)
        label = test_videos[name]
        assert category == label["category"]
        nums = [int(v) for v in nums]
        if category == "Normal":
            assert nums == [-1, -1, -1, -1], line
            continue
        ev = events.filter((pl.col("video") == label["video"]) & pl.col("abnormal")).sort("start_s")
        assert ev.height >= 1
        spans = [(math.ceil(r["start_s"] * r["fps"]), math.ceil(r["end_s"] * r["fps"]))  # frames inside [start, end)
                 for r in ev.iter_rows(named=True)]
        expected = [v for s in (spans + [(-1, -1)] * 2)[:2] for v in s]
        assert nums == expected, line
        assert 0 <= nums[0] < nums[1]
    assert seen == set(test_videos)


def test_videos_are_h264_some_at_30fps(smoke_world, broken_media):
    pub = smoke_world / "published"
    facts = {}
    for p in sorted(pub.rglob("*.mp4")):
        rel = p.relative_to(pub).as_posix()
        if broken_media.get(rel) == "zero_length_media":
            assert p.stat().st_size == 0
            continue
        facts[rel] = _ffprobe(p)
    assert facts
    assert {f["codec"] for f in facts.values()} == {"h264"}
    sizes = {(f["fps"], f["width"], f["height"]) for f in facts.values()}
    assert (25.0, 64, 64) in sizes
    assert (30.0, 80, 60) in sizes, f"no odd-fps video in the smoke world: {sizes}"


def test_truth_video_facts_match_files(smoke_world, broken_media):
    pub = smoke_world / "published"
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet").unique("video")
    wrong = {}
    for r in events.iter_rows(named=True):
        if r["video"] in broken_media:
            continue
        f = _ffprobe(pub / r["video"])
        if (f["fps"], f["width"], f["height"]) != (r["fps"], r["width"], r["height"]) or \
                abs(f["duration"] - r["duration_s"]) > 0.1:
            wrong[r["video"]] = {"file": f, "truth": {k: r[k] for k in ("fps", "width", "height", "duration_s")}}
    assert not wrong, f"truth/events.parquet disagrees with the published files: {wrong}"


# ---------------------------------------------------------------------------------------------- defects


def test_every_defect_kind_is_injected(truth_defects):
    kinds = {d["kind"] for d in truth_defects}
    missing = set(ANNOTATION_DEFECTS + MEDIA_DEFECTS) - kinds
    assert not missing, f"defect kinds never injected in the smoke world: {sorted(missing)}"
    for d in truth_defects:
        assert set(d) >= {"kind", "file", "index", "field", "video"}
        if d["kind"] in ANNOTATION_DEFECTS:
            prefix = "items" if d["file"] == ITEMS else "entries"
            assert d["file"] in (ITEMS, *BOX_FILES)
            assert d["field"].startswith(f"{prefix}[{d['index']}]"), d


def test_reader_finds_injected_annotation_defects(smoke_world, truth_defects):
    ann = _ann(smoke_world)
    found = {name: vagta_defects.find_defects(vagta.load(ann / name)) for name in (*BOX_FILES, ITEMS)}
    checked = 0
    for d in truth_defects:
        if d["kind"] not in get_args(vagta_defects.DefectKind) or d["file"] not in found:
            continue
        checked += 1
        reported = found[d["file"]]
        if d["kind"] == "repeated_caption":  # the reader reports it once per video
            assert any(r.kind == "repeated_caption" and r.index is not None and
                       _video_of(ann / d["file"], r.index) == d["video"] for r in reported), d
            continue
        assert any(r.kind == d["kind"] and r.field == d["field"] for r in reported), (
            f"reader missed {d['kind']} at {d['file']}:{d['field']}; "
            f"it reported {[(r.kind, r.field) for r in reported if r.index == d['index']]}")
    assert checked >= 9


def _video_of(path: Path, index: int) -> str:
    raw = _read_json(path)
    rows = raw["items"] if isinstance(raw, dict) else raw
    return rows[index]["video"]


def test_injected_caption_defects_are_real(smoke_world, truth_defects):
    items = _read_json(_ann(smoke_world) / ITEMS)["items"]

    def verb_words(verb: str) -> set[str]:
        return set(verb.replace("{a}", " ").replace("{b}", " ").lower().split()) & world.EVENT_WORDS

    def phrased_as(caption: str, event: world.Event) -> bool:
        words = set(re.findall(r"[a-z]+", caption.lower()))
        return any(verb_words(v) <= words for v in event.verbs)

    for d in truth_defects:
        if d["file"] != ITEMS or d["kind"] not in ("weak_caption", "category_mismatch"):
            continue
        item = items[d["index"]]
        assert item["video"] == d["video"]
        if d["kind"] == "weak_caption":
            assert item["region_caption"] in WEAK_CAPTIONS
        else:
            own = world.EVENT_BY_NAME[world.EVENT_OF_CATEGORY[vagta.category_of(item["video"])]]
            others = [e for e in world.ABNORMAL_EVENTS if e.name != own.name]
            assert not phrased_as(item["region_caption"], own), item["region_caption"]
            assert any(phrased_as(item["region_caption"], e) for e in others), item["region_caption"]


def test_injected_media_defects_are_real(smoke_world, truth_defects):
    pub = smoke_world / "published"
    by_kind = defaultdict(list)
    for d in truth_defects:
        by_kind[d["kind"]].append(d)
    (trunc,) = by_kind["truncated_media"]
    before, after = (int(v) for v in re.findall(r"\d+", trunc["detail"]))
    assert (pub / trunc["video"]).stat().st_size == after < before
    (empty,) = by_kind["zero_length_media"]
    assert (pub / empty["video"]).stat().st_size == 0
    (missing,) = by_kind["missing_media"]
    assert not (pub / missing["video"]).exists()
    # the re-encoded duplicate: a new file, annotated exactly like its source
    dups = by_kind["reencoded_duplicate"]
    assert dups
    copy = dups[0]["video"]
    source = dups[0]["detail"].removeprefix("re-encode of ")
    assert (pub / copy).is_file() and (pub / source).is_file()
    assert (pub / copy).read_bytes() != (pub / source).read_bytes()
    for d in dups:
        raw = _read_json(_ann(smoke_world) / d["file"])
        rows = raw["items"] if d["file"] == ITEMS else raw
        assert rows[d["index"]]["video"] == copy
        originals = [r for r in rows if r["video"] == source]
        assert {**rows[d["index"]], "video": source} in originals


def test_region_boxes_say_where_not_what(smoke_world):
    """An event's region is one fixed box per kind of actors at the event's spot (constant over the span), so box
    geometry cannot tell an abnormal event from its look-alike; every event, normal ones included, has a track."""
    entries = vagta.load(_ann(smoke_world) / "Final_synth_train.json").entries
    shapes: dict[str, set] = defaultdict(set)
    n_tracks = {True: 0, False: 0}
    for e in entries:
        for caption, track in zip(e.region_captions, e.box_infos):
            boxes = {tuple(k.bbox) for k in track}
            if not track:
                continue
            n_tracks[e.is_abnormal] += 1
            x0, y0, x1, y1 = next(iter(boxes))
            if len(boxes) == 1 and 0.0 < x0 and x1 < 1.0 and 0.0 < y0 and y1 < 1.0:  # unclamped, undamaged
                shapes[e.video.split("/")[-2] if e.is_abnormal else "normal"].add((round(x1 - x0, 4), round(y1 - y0, 4)))
    assert n_tracks[True] and n_tracks[False], n_tracks
    for e in entries:  # keyframes of a track repeat one box (injected box defects aside)
        for track in e.box_infos:
            assert len({tuple(k.bbox) for k in track if 0 <= min(k.bbox) and max(k.bbox) <= 1}) <= 2
    widths = {w for group in shapes.values() for w, _ in group}
    assert len(widths) <= 5, shapes  # one width per kind of actors
