"""Media probing/decoding (alertclip.data.media) and the frames stage (alertclip.data.frames)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import ffmpeg
import numpy as np
import polars as pl
import pytest

from alertclip.data import vagta
from alertclip.data.frames import (
    ClipRequest,
    FrameSettings,
    VideoJob,
    clip_frame_numbers,
    extract_frames,
    open_frames,
    process_video,
    snippet_frame_numbers,
    video_jobs,
    write_frames,
)
from alertclip.data.media import Decoded, Selection, check_complete, decode_frames, probe
from alertclip.data.sources import Layout

STATUS_OF_DEFECT = {"truncated_media": "truncated", "zero_length_media": "zero_length", "missing_media": "missing"}


def _video_by_fps(smoke_world: Path, broken: dict, fps: int) -> tuple[Path, float]:
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet").unique("video").sort("video")
    for r in events.iter_rows(named=True):
        if r["fps"] == fps and r["video"] not in broken and r["width"] == (64 if fps == 25 else 80):
            return smoke_world / "published" / r["video"], r["duration_s"]
    raise AssertionError(f"the smoke world has no readable {fps} fps video")


def _path_of(smoke_world: Path, broken: dict, kind: str) -> Path:
    (video,) = [v for v, k in broken.items() if k == kind]
    return smoke_world / "published" / video


# ---------------------------------------------------------------------------------------------- media


def test_probe_missing(tmp_path):
    info = probe(tmp_path / "absent.mp4")
    assert info.status == "missing" and info.reason


def test_probe_zero_length(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    info = probe(path)
    assert info.status == "zero_length" and info.reason


def test_probe_garbage(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    info = probe(path)
    assert info.status == "unreadable"
    assert info.reason.startswith("ffprobe")


def test_probe_zero_length_from_world(smoke_world, broken_media):
    info = probe(_path_of(smoke_world, broken_media, "zero_length_media"))
    assert info.status == "zero_length" and info.reason


def test_probe_good_video(smoke_world, broken_media):
    path, duration = _video_by_fps(smoke_world, broken_media, 30)
    info = probe(path)
    assert info.status == "ok" and info.reason == ""
    assert (info.fps, info.width, info.height, info.codec) == (30.0, 80, 60, "h264")
    assert info.duration_s == pytest.approx(duration, abs=0.05)


def test_truncated_video_is_caught(smoke_world, broken_media):
    """The header of the truncated file survives (faststart), so the probe alone may pass; decoding must not."""
    path = _path_of(smoke_world, broken_media, "truncated_media")
    info = probe(path)
    assert info.status in ("ok", "truncated")
    if info.status == "ok":
        info = check_complete(info, decode_frames(path, 25, 64, 64), 25)
    assert info.status == "truncated"
    assert "decoded" in info.reason


def test_check_complete_flags_truncated_only(smoke_world, broken_media):
    bad = _path_of(smoke_world, broken_media, "truncated_media")
    good, _ = _video_by_fps(smoke_world, broken_media, 30)
    bad_info, good_info = probe(bad), probe(good)
    bad_dec, good_dec = decode_frames(bad, 25, 32, 32), decode_frames(good, 25, 32, 32)
    assert 0 < bad_dec.n_decoded < 0.9 * bad_info.duration_s * 25
    flagged = check_complete(bad_info, bad_dec, 25)
    assert flagged.status == "truncated" and str(bad_dec.n_decoded) in flagged.reason
    assert check_complete(good_info, good_dec, 25).status == "ok"
    nothing = Decoded(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64), 0, "")
    assert check_complete(good_info, nothing, 25).status == "unreadable"


def test_decode_selection_matches_full_decode(smoke_world, broken_media):
    path, _ = _video_by_fps(smoke_world, broken_media, 30)
    full = decode_frames(path, 25, 64, 64)
    assert full.errors == ""
    assert full.frames.shape == (full.n_decoded, 64, 64, 3) and full.frames.dtype == np.uint8
    assert full.selected.tolist() == list(range(full.n_decoded))
    last = full.n_decoded - 1
    part = decode_frames(path, 25, 64, 64, select=Selection(frames=(40, 3, 3, 0, last, 10_000)))
    assert part.selected.tolist() == [0, 3, 40, last]
    assert part.n_decoded == full.n_decoded
    np.testing.assert_array_equal(part.frames, full.frames[[0, 3, 40, last]])
    periodic = decode_frames(path, 25, 64, 64, select=Selection(every=16, offsets=(0, 8), frames=(5,)))
    expected = sorted({*range(0, full.n_decoded, 8), 5})
    assert periodic.selected.tolist() == expected and periodic.n_decoded == full.n_decoded
    np.testing.assert_array_equal(periodic.frames, full.frames[expected])
    assert not np.array_equal(full.frames[0], full.frames[last])  # something moves in the video


@pytest.mark.parametrize("fps", [25, 30, 10])
def test_decode_count_follows_target_fps(smoke_world, broken_media, fps):
    path, duration = _video_by_fps(smoke_world, broken_media, 30)
    dec = decode_frames(path, fps, 48, 32, select=Selection(frames=(0,)))
    assert abs(dec.n_decoded - duration * fps) <= 1
    assert dec.frames.shape == (1, 32, 48, 3)


def test_decode_garbage_does_not_raise(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"not a video\n" * 300)
    dec = decode_frames(path, 25, 16, 16)
    assert dec.n_decoded == 0 and dec.frames.shape == (0, 16, 16, 3)
    assert dec.errors


# ---------------------------------------------------------------------------------------------- frame numbers


@pytest.mark.parametrize(
    "start, end, t, expected",
    [
        (1, 80, 8, [6, 16, 26, 36, 46, 56, 66, 76]),
        (1, 8, 8, [1, 2, 3, 4, 5, 6, 7, 8]),
        (1, 3, 8, [1, 1, 1, 2, 2, 3, 3, 3]),  # shorter than T: frames repeat, in order
        (10, 10, 4, [10, 10, 10, 10]),  # zero-length span
        (10, 5, 3, [10, 10, 10]),  # inverted span: degenerate, not an error
        (5, 6, 1, [6]),
    ],
)
def test_clip_frame_numbers(start, end, t, expected):
    got = clip_frame_numbers(start, end, t)
    assert got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize("start, end, t", [(1, 2, 8), (7, 300, 8), (26, 119, 8), (3, 17, 5), (100, 101, 64)])
def test_clip_frame_numbers_properties(start, end, t):
    got = clip_frame_numbers(start, end, t)
    assert len(got) == t
    assert got.min() >= start and got.max() <= end
    assert np.all(np.diff(got) >= 0)
    if end - start + 1 >= t:
        assert len(set(got.tolist())) == t  # no repeats when the span has room


@pytest.mark.parametrize(
    "n, length, expected",
    [
        (32, 16, [8, 24]),
        (33, 16, [8, 24, 32]),  # a trailing partial snippet of one frame still counts
        (40, 16, [8, 24, 32]),  # trailing partial without a middle frame: its first frame
        (17, 16, [8, 16]),
        (16, 16, [8]),
        (5, 16, [0]),
        (1, 16, [0]),
        (10, 4, [2, 6, 8]),
        (43, 16, [8, 24, 40]),  # trailing partial long enough to have its middle frame
        (0, 16, []),
    ],
)
def test_snippet_frame_numbers(n, length, expected):
    got = snippet_frame_numbers(n, length)
    assert got.tolist() == expected
    assert len(got) == math.ceil(n / length)


# ---------------------------------------------------------------------------------------------- frames stage on the smoke world


@pytest.fixture(scope="module")
def media(smoke_frames) -> pl.DataFrame:
    return pl.read_parquet(smoke_frames["out"] / "media.parquet")


@pytest.fixture(scope="module")
def snippets(smoke_frames) -> pl.DataFrame:
    return pl.read_parquet(smoke_frames["out"] / "snippets.parquet")


@pytest.fixture(scope="module")
def clips(smoke_frames) -> pl.DataFrame:
    return pl.read_parquet(smoke_frames["out"] / "clips.parquet")


def test_media_table(smoke_frames, smoke_world, media, broken_media):
    with open(smoke_frames["raw"] / "annotations" / "video_labels.csv", newline="") as fh:
        labels = {row["video"]: row["split"] for row in csv.DictReader(fh)}
    assert media.height == len(labels)
    assert sorted(media["path"]) == sorted(labels)
    assert len(broken_media) == 3
    durations = dict(pl.read_parquet(smoke_world / "truth" / "events.parquet")
                     .unique("video").select("video", "duration_s").iter_rows())
    for row in media.iter_rows(named=True):
        assert row["split"] == labels[row["path"]]
        if row["path"] in broken_media:
            assert row["status"] == STATUS_OF_DEFECT[broken_media[row["path"]]], row
            assert row["reason"], row
            continue
        assert row["status"] == "ok", row
        assert abs(row["n_frames"] - durations[row["path"]] * 25) <= 1, row
    s = smoke_frames["summary"]
    assert s["videos"] == media.height and s["bad_media"] == 3


def test_snippets_index_maps_to_arrays(smoke_frames, media, snippets):
    arrays = open_frames(smoke_frames["out"], "snippets")
    assert len(arrays) >= 2  # shard_mb=1 splits them
    assert [a.shape[1:] for a in arrays] == [(64, 64, 3)] * len(arrays)
    assert all(a.dtype == np.uint8 for a in arrays)
    per_shard = snippets.group_by("shard").agg(pl.col("row").sort()).sort("shard")
    assert per_shard["shard"].to_list() == list(range(len(arrays)))
    for shard, rows in per_shard.iter_rows():
        assert rows == list(range(len(arrays[shard]))), f"shard {shard} rows are not 0..n-1"
    ok = media.filter(pl.col("status") == "ok")
    assert set(snippets["video"]) == set(ok["path"])
    for video, n in ok.select("path", "n_frames").iter_rows():
        mine = snippets.filter(pl.col("video") == video).sort("snippet")
        assert mine.height == math.ceil(n / 16), video
        assert mine["snippet"].to_list() == list(range(mine.height))
        assert mine["frame"].to_list() == snippet_frame_numbers(n, 16).tolist()
    assert smoke_frames["summary"]["snippets"] == snippets.height


def test_snippet_pixels_are_the_decoded_frames(smoke_frames, media, snippets):
    arrays = open_frames(smoke_frames["out"], "snippets")
    ok = media.filter(pl.col("status") == "ok")
    for fps in (25.0, 30.0):
        video = ok.filter(pl.col("fps") == fps)["path"][0]
        mine = snippets.filter(pl.col("video") == video).sort("snippet")
        dec = decode_frames(smoke_frames["raw"] / video, 25, 64, 64, select=Selection(frames=tuple(mine["frame"].to_list())))
        stored = np.stack([arrays[s][r] for s, r in mine.select("shard", "row").iter_rows()])
        np.testing.assert_array_equal(stored, dec.frames)


def test_clips_one_per_item_of_readable_video(smoke_frames, media, clips):
    items = vagta.load(smoke_frames["raw"] / "annotations" / "qwen_vl_train.json").items
    readable = set(media.filter(pl.col("status") == "ok")["path"])
    expected = {i for i, it in enumerate(items) if it.video in readable}
    assert len(expected) < len(items)  # some items point at broken media
    assert sorted(clips["item_index"]) == sorted(expected)
    assert clips["clip_key"].n_unique() == clips.height
    arrays = open_frames(smoke_frames["out"], "clips")
    assert all(a.shape[1:] == (8, 64, 64, 3) and a.dtype == np.uint8 for a in arrays)
    assert sum(len(a) for a in arrays) == clips.height
    n_frames = dict(media.select("path", "n_frames").iter_rows())
    for row in clips.iter_rows(named=True):
        it = items[row["item_index"]]
        assert row["video"] == it.video and row["clip_key"] == it.clip_key
        assert row["row"] < len(arrays[row["shard"]])
        frames = row["frames"]
        assert len(frames) == 8 and len(row["boxes"]) == 8
        assert all(1 <= f <= n_frames[row["video"]] for f in frames)
        if it.frames_25 is not None:
            assert (row["start"], row["end"]) == tuple(it.frames_25)
            assert all(min(it.frames_25) <= f <= max(it.frames_25) for f in frames)
    assert smoke_frames["summary"]["clips"] == clips.height


def test_clip_pixels_are_the_decoded_frames(smoke_frames, clips):
    arrays = open_frames(smoke_frames["out"], "clips")
    row = clips.sort("item_index").row(0, named=True)
    frames = np.array(row["frames"])
    dec = decode_frames(smoke_frames["raw"] / row["video"], 25, 64, 64, select=Selection(frames=tuple((frames - 1).tolist())))
    np.testing.assert_array_equal(arrays[row["shard"]][row["row"]], dec.frames[np.searchsorted(dec.selected,
                                                                                                frames - 1)])


def test_clip_boxes_follow_the_annotation_tracks(smoke_frames, clips):
    ann = smoke_frames["raw"] / "annotations"
    items = vagta.load(ann / "qwen_vl_train.json").items
    tracks = {}
    for e in vagta.load(ann / "Final_synth_train.json").entries:
        for r, track in enumerate(e.box_infos):
            if track:
                tracks.setdefault(e.track_key(r), track)
    fully_boxed = {True: 0, False: 0}
    for row in clips.iter_rows(named=True):
        it = items[row["item_index"]]
        boxes = np.array(row["boxes"], dtype=np.float64)
        assert row["has_boxes"] == bool(np.isfinite(boxes).any())
        track = tracks.get(it.track_key)  # normal segments are boxed too (their event's actors)
        if track is None:  # an abnormal region whose boxes were removed upstream
            assert np.isnan(boxes).all()
            continue
        expected = vagta.boxes_at(track, np.array(row["frames"]))
        np.testing.assert_allclose(boxes, expected, atol=1e-6, equal_nan=True)
        shown = np.isfinite(expected).all(axis=1)
        assert (np.isfinite(boxes).all(axis=1) == shown).all()
        finite = boxes[shown]
        assert ((finite >= 0) & (finite <= 1)).all()
        fully_boxed[it.is_abnormal] += bool(shown.all())
    assert fully_boxed[True] >= 3 and fully_boxed[False] >= 3, fully_boxed


# ---------------------------------------------------------------------------------------------- a hand-made layout

BOX_A = (0.25, 1 / 6, 0.5, 0.5)  # normalised xyxy, shown for t < 1 s
BOX_B = (0.5, 0.5, 0.875, 5 / 6)  # shown for t >= 1 s
RED = (255, 0, 0)
VIDEO = "Clips/Videos/Fighting/Fighting001_x264.mp4"
ABSENT = "Clips/Videos/Normal/Normal_Videos_001_x264.mp4"


def render_box_video(path: Path, width: int = 80, height: int = 60, fps: int = 30, seconds: int = 2) -> None:
    """A red rectangle on black: at BOX_A during the first second, at BOX_B after."""
    frames = np.zeros((fps * seconds, height, width, 3), np.uint8)
    for k in range(len(frames)):
        x0, y0, x1, y1 = BOX_A if k < fps else BOX_B
        frames[k, round(y0 * height):round(y1 * height), round(x0 * width):round(x1 * width)] = RED
    path.parent.mkdir(parents=True, exist_ok=True)
    (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        .output(str(path), vcodec="libx264", pix_fmt="yuv420p", crf=18)
        .global_args("-loglevel", "error", "-nostdin")
        .overwrite_output()
        .run(input=frames.tobytes())
    )


def _kf(frame: int, box, enabled: bool = True) -> dict:
    return {"frame": frame, "bbox": [float(v) for v in box], "enabled": enabled, "_track_id": None}


TRACK = [_kf(1, BOX_A), _kf(25, BOX_A), _kf(26, BOX_B), _kf(50, BOX_B), _kf(51, BOX_B, False)]


def _item(video: str, frames_25, timestamps=None) -> dict:
    return {"video": video, "region_index": 0, "frames_25": frames_25, "timestamps": timestamps,
            "region_caption": "The person in red punches the person in blue.",
            "hard_negative": ["The person in red talks with the person in blue."]}


def write_layout(root: Path, items: list[dict], entries: list[dict], labels: list[tuple[str, str]]) -> Layout:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    with open(ann / "video_labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "split", "category", "abnormal"])
        for video, split in labels:
            cat = vagta.category_of(video)
            w.writerow([video, split, cat, str(cat != "Normal").lower()])
    (ann / "train.json").write_text(json.dumps(entries))
    (ann / "test.json").write_text("[]")
    (ann / "items.json").write_text(json.dumps({"meta_file": "train.json", "model": "hand", "created_at": 0,
                                                 "items": items}))
    return Layout(root, "annotations/train.json", "annotations/test.json", "annotations/items.json")


def _entry(video: str, track: list[dict]) -> dict:
    return {"video": video, "global_caption": "Fighting abnormal video.",
            "region_captions": ["The person in red punches the person in blue."], "box_infos": [track],
            "timestamps": None}


@pytest.fixture(scope="module")
def box_layout(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("layout")
    render_box_video(root / VIDEO)
    layout = write_layout(
        root,
        items=[_item(VIDEO, [1, 50]), _item(VIDEO, [24, 27]), _item(ABSENT, None, [0.0, 1.0])],
        entries=[_entry(VIDEO, TRACK)],
        labels=[(VIDEO, "train"), (ABSENT, "train")],
    )
    out = root.parent / (root.name + "-frames")
    summary = extract_frames(layout, out, FrameSettings(25, 64, 64, 8, 16), shard_mb=1, workers=1, progress=False)
    return {"root": root, "out": out, "summary": summary}


def _is_red(img: np.ndarray) -> np.ndarray:
    img = img.astype(int)
    return (img[..., 0] > 160) & (img[..., 1] < 90) & (img[..., 2] < 90)


def test_boxes_stay_aligned_through_resize(box_layout):
    clips = pl.read_parquet(box_layout["out"] / "clips.parquet").sort("item_index")
    arrays = open_frames(box_layout["out"], "clips")
    assert clips.height == 2
    seen = set()
    for row in clips.iter_rows(named=True):
        stack = arrays[row["shard"]][row["row"]]
        for frame_no, img, box in zip(row["frames"], stack, row["boxes"]):
            assert np.isfinite(box).all(), (row["clip_key"], frame_no)
            expected_box = BOX_A if frame_no <= 25 else BOX_B  # 25 fps frame n is t = (n - 1) / 25
            np.testing.assert_allclose(box, expected_box, atol=1e-6)
            seen.add(expected_box)
            x0, y0, x1, y1 = box
            h, w = img.shape[:2]
            red = _is_red(img)
            inner = red[math.ceil(y0 * h) + 2:math.floor(y1 * h) - 2, math.ceil(x0 * w) + 2:math.floor(x1 * w) - 2]
            assert inner.size and inner.mean() > 0.98, f"box {box} is not filled at frame {frame_no}"
            outside = red.copy()
            outside[max(math.floor(y0 * h) - 2, 0):math.ceil(y1 * h) + 2,
                    max(math.floor(x0 * w) - 2, 0):math.ceil(x1 * w) + 2] = False
            assert outside.sum() == 0, f"red pixels outside box {box} at frame {frame_no}"
    assert seen == {BOX_A, BOX_B}
    # the boundary clip samples both sides of the switch (25 fps frames 25 and 26)
    boundary = clips.filter(pl.col("start") == 24).row(0, named=True)
    assert {25, 26} <= set(boundary["frames"])


def test_listed_but_absent_video_is_recorded(box_layout):
    media = pl.read_parquet(box_layout["out"] / "media.parquet")
    assert media.height == 2
    status = dict(media.select("path", "status").iter_rows())
    assert status == {VIDEO: "ok", ABSENT: "missing"}
    assert media.filter(pl.col("path") == ABSENT)["reason"][0]
    clips = pl.read_parquet(box_layout["out"] / "clips.parquet")
    assert ABSENT not in set(clips["video"])
    snippets = pl.read_parquet(box_layout["out"] / "snippets.parquet")
    assert set(snippets["video"]) == {VIDEO}
    assert snippets.height == math.ceil(50 / 16)
    assert box_layout["summary"] == {"videos": 2, "bad_media": 1, "snippets": 4, "clips": 2}


@pytest.mark.parametrize(
    "target, mutate, where",
    [
        ("items", lambda items, entries: items[1].update(frames_25=["24", 27]), ("item 1", "frames_25")),
        ("items", lambda items, entries: items[0].pop("region_caption"), ("item 0", "region_caption")),
        ("entries", lambda items, entries: entries[0]["box_infos"][0][2].update(bbox=[0.5, 0.5, 0.8]),
         ("entry 0", "box_infos[0][2].bbox")),
    ],
)
def test_malformed_annotation_names_file_entry_field(tmp_path, target, mutate, where):
    items = [_item(VIDEO, [1, 50]), _item(VIDEO, [24, 27])]
    entries = [_entry(VIDEO, json.loads(json.dumps(TRACK)))]
    mutate(items, entries)
    layout = write_layout(tmp_path / "raw", items, entries, [(VIDEO, "train")])
    with pytest.raises(ValueError) as exc:
        extract_frames(layout, tmp_path / "frames", FrameSettings(25, 64, 64, 8, 16), shard_mb=1, workers=1,
                       progress=False)
    msg = str(exc.value)
    name = "items.json" if target == "items" else "train.json"
    assert name in msg
    for part in where:
        assert part in msg, msg


def test_clip_boxes_use_frame_time_at_other_fps(box_layout):
    """At a target fps other than 25, the box of (1-based) frame n is the annotation at t = (n - 1) / fps,
    i.e. at 25-fps frame 1 + (n - 1) * 25 / fps."""
    track = [vagta.Keyframe.model_validate(k) for k in
             [_kf(1, (0.0, 0.0, 0.5, 0.5)), _kf(51, (0.5, 0.5, 1.0, 1.0)), _kf(52, (0.5, 0.5, 1.0, 1.0), False)]]
    fps = 5
    job = VideoJob(VIDEO, box_layout["root"] / VIDEO, "train",
                   [ClipRequest("k", VIDEO, 0, 0, 1, 10, track)])
    res = process_video((job, FrameSettings(fps, 32, 32, 8, 16)))
    assert res["info"].status == "ok" and res["n_frames"] == 10
    (clip,) = res["clips"]
    numbers = clip["numbers"]
    expected = vagta.boxes_at(track, 1 + (numbers - 1) * 25.0 / fps)
    np.testing.assert_allclose(clip["boxes"], expected, atol=1e-5, equal_nan=True)


# ---------------------------------------------------------------------------------------------- a dataset's own test videos


def test_video_jobs_and_write_frames_decode_a_directory_of_test_videos(tmp_path):
    """``eval.datasets.<key>.videos`` as a directory: every video file under it (recursively) is one snippet-only
    test job named by its path relative to the directory; bad media is recorded, never fatal."""
    root = tmp_path / "videos"
    render_box_video(root / "Fighting" / "Fighting001_x264.mp4")  # 30 fps, 2 s
    render_box_video(root / "Normal" / "deep" / "Normal_Videos_001_x264.MOV", fps=25, seconds=1)
    (root / "Arson").mkdir()
    (root / "Arson" / "Arson003_x264.avi").write_bytes(b"")  # a video file, but empty
    (root / "README.txt").write_text("not a video\n")
    (root / "Fighting" / "thumb.jpg").write_bytes(b"\xff\xd8")
    jobs = video_jobs(root)
    names = ["Arson/Arson003_x264.avi", "Fighting/Fighting001_x264.mp4", "Normal/deep/Normal_Videos_001_x264.MOV"]
    assert [j.video for j in jobs] == names
    assert all(j.split == "test" and j.clips == [] and j.path == root / j.video for j in jobs)
    assert [j.split for j in video_jobs(root, split="train")] == ["train"] * 3

    out = tmp_path / "frames"
    out.mkdir()
    (out / "snippets-007.npy").write_bytes(b"stale")  # the directory is replaced, not added to
    summary = write_frames(jobs, out, FrameSettings(25, 32, 32, 8, 16), shard_mb=1, workers=2, progress=False)
    assert not (out / "snippets-007.npy").exists()
    media = pl.read_parquet(out / "media.parquet").sort("path")
    assert media["path"].to_list() == names and set(media["split"]) == {"test"}
    assert media["status"].to_list() == ["zero_length", "ok", "ok"]
    assert media["n_frames"].to_list() == [0, 50, 25] and media["fps"].to_list()[1:] == [30.0, 25.0]  # native rates
    snippets = pl.read_parquet(out / "snippets.parquet")
    assert snippets.group_by("video").len().sort("video").rows() == [(names[1], 4), (names[2], 2)]
    assert pl.read_parquet(out / "clips.parquet").height == 0 and not list(out.glob("clips-*.npy"))
    assert summary == {"videos": 3, "bad_media": 1, "snippets": 6, "clips": 0}
    arrays = open_frames(out, "snippets")
    assert sum(len(a) for a in arrays) == 6 and arrays[0].shape[1:] == (32, 32, 3)
