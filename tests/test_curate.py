"""The curate stage: rules on hand cases, the smoke world against its injected defects, the real excerpts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from repo_params import repo_params

from alertclip.curation import rules as R
from alertclip.curation.curate import KIND_RULE, curate, write_outputs
from alertclip.curation.lexicon import categories_in
from alertclip.curation.rules import LeakageError
from alertclip.data import vagta
from alertclip.data.captions import digit_typos
from alertclip.data.sources import SYNTHETIC, Layout
from alertclip.stages.curate import explain

P = repo_params("curate")  # params.yaml's curate group (phash_distance 27)
EXCERPT = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "vagta" / "qwen_vl_train.excerpt.json"


def case(caption="The person in blue punches the person in white.", video="V/Videos/Fighting/Fighting001_x264.mp4",
         **kw) -> R.ClipCase:
    kf = [vagta.Keyframe(frame=1, bbox=[0.1, 0.1, 0.5, 0.5], enabled=True)]
    base = dict(clip_key="k", item_index=0, video=video, region_index=0, caption=caption,
                category=vagta.category_of(video), abnormal=vagta.category_of(video) != "Normal", frames_25=(10, 60),
                track=kf)
    base.update(kw)
    return R.apply_per_clip(R.ClipCase(**base), P)


def rules_of(c: R.ClipCase, action: str | None = None) -> set[str]:
    return {f.rule for f in c.findings if action is None or f.action == action}


# ---------------------------------------------------------------------------------------------------- hand cases

def test_lexicon():
    assert categories_in("The blue car smashes into the red car.") == {"RoadAccidents"}
    assert categories_in("The person smashes the bin with a stick.") == {"Vandalism"}
    assert "Arson" in categories_in("The man poured oil on the ground, set it on fire, and fled.")
    assert categories_in("The person in orange sits down on a bench.") == set()


def test_clean_clip_passes():
    assert case().findings == []


@pytest.mark.parametrize("kw, rule, action", [
    (dict(media_status="missing"), "media_unreadable", "drop"),
    (dict(frames_25=(33, 33)), "too_short", "drop"),
    (dict(frames_25=(33, 36)), "too_short", "drop"),
    (dict(caption="A video."), "weak_caption", "drop"),
    (dict(caption=""), "weak_caption", "drop"),
    (dict(caption="The person in blue stands near the person in white."), "weak_caption", "drop"),
    (dict(caption="The orange car collides with the green car on the platform."), "category_mismatch", "drop"),
    (dict(caption="The person in blue punches the person in 反击."), "non_english", "drop"),
    (dict(caption="The person in blue punches the person6 in white."), "digit_typo", "repair"),
    (dict(track=[]), "no_boxes", "drop"),
    (dict(track=[vagta.Keyframe(frame=1, bbox=[-1e-7, 0.1, 1.0000001, 0.5], enabled=True)]), "box_out_of_range", "repair"),
    (dict(track=[vagta.Keyframe(frame=1, bbox=[-0.3, 0.1, 0.5, 0.5], enabled=True)]), "box_out_of_range", "drop"),
    (dict(track=[vagta.Keyframe(frame=1, bbox=[0.5, 0.1, 0.2, 0.5], enabled=True)]), "box_inverted", "drop"),
])
def test_rule_fires(kw, rule, action):
    assert rules_of(case(**kw), action) == {rule}


def test_typo_repair_and_drop(params_of):
    c = case(caption="The person in blue punches the person6 in white.")
    assert c.text == "The person in blue punches the person in white."
    strict = R.ClipCase(**{**case().__dict__, "caption": "The one6 punches a man.", "findings": []})
    strict.findings += R.digit_typo(strict, params_of("curate", repair_typos=False))
    assert rules_of(strict) == {"digit_typo"} and strict.findings[0].action == "drop"


def test_normal_clip_needs_no_event_or_boxes():
    c = case(caption="The person in yellow sits down on a bench.", video="V/Videos/Normal/Normal_Videos_001_x264.mp4",
             frames_25=None, timestamps=(0.5, 3.6), track=None)
    assert c.findings == []


def test_repeated_caption_keeps_first():
    cs = [case(caption="Some people walk in the garden.", video="V/Normal/Normal_Videos_1.mp4", item_index=i,
               frames_25=None, timestamps=(i, i + 2.0), track=None) for i in range(3)]
    R.repeated_caption(cs)
    assert [rules_of(c) for c in cs] == [set(), {"repeated_caption"}, {"repeated_caption"}]


def test_near_duplicates_and_hash():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    h = R.phash_frames(frames)
    assert h.dtype == np.uint64 and R.hamming(h, h).sum() == 0
    other = R.phash_frames(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    hashes = np.stack([h, h, other, h])
    dups = R.near_duplicates(["b", "a", "c", "d"], ["v1", "v2", "v3", "v2"], hashes, 6)
    # "a" (v2) comes first; "b" (v1) duplicates it; "d" is the same video as "a" but duplicates "b" (v1).
    assert set(dups) == {0, 3} and dups[0][0] == 1


def test_leakage_same_video_and_near_duplicate_frames():
    with pytest.raises(LeakageError) as err:
        R.check_leakage(["x/Arson/Arson1.mp4", "y.mp4"], ["x/Arson/Arson1.mp4"])
    assert err.value.train_video == err.value.test_video == "x/Arson/Arson1.mp4"
    rng = np.random.default_rng(1)
    h = R.phash_frames(rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    far = R.phash_frames(rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    R.check_leakage(["a.mp4"], ["b.mp4"], {"a#0": ("a.mp4", h)}, {"b.mp4": far}, 6)  # no leak
    with pytest.raises(LeakageError, match="a.mp4.*b.mp4") as err:
        R.check_leakage(["a.mp4"], ["b.mp4"], {"a#0": ("a.mp4", h)}, {"b.mp4": np.concatenate([far, h])}, 6)
    assert (err.value.train_video, err.value.test_video) == ("a.mp4", "b.mp4")


# ---------------------------------------------------------------------------------------------------- smoke world

@pytest.fixture(scope="module")
def smoke_curated(smoke_world, smoke_frames):
    return curate(Layout(smoke_frames["raw"], **SYNTHETIC), smoke_frames["out"], P,
                  smoke_world / "truth" / "defects.json")


def test_smoke_world_recall_and_precision(smoke_curated, truth_defects):
    curated, report, summary, quality = smoke_curated
    owned = {d["kind"] for d in truth_defects if d["kind"] in KIND_RULE}
    for kind in owned:
        q = quality["kinds"][kind]
        if q["injected"]:
            assert q["recall"] == 1.0, (kind, q)
            assert q["precision"] >= 0.95, (kind, q)  # reported in quality.json either way
    assert report.height == summary["clips"] == summary["kept"] + summary["dropped"]
    assert curated.height == summary["kept"] == int(report["kept"].sum())
    assert set(curated["clip_key"]) <= set(report.filter("kept")["clip_key"])
    assert curated["split"].unique().to_list() == ["train"]
    assert set(curated["label"]) <= {"abnormal", "normal"}
    assert curated.filter(pl.col("abnormal"))["global_caption"].null_count() == 0
    # repaired captions are kept, without the digits
    assert not any(digit_typos(c) for c in curated["region_caption"])


def test_smoke_outputs_and_explain(smoke_curated, tmp_path):
    curated, report, summary, quality = smoke_curated
    write_outputs(curated, report, summary, quality, tmp_path / "curated", tmp_path / "results")
    for name in ("report.parquet", "summary.md", "summary.json", "quality.json"):
        assert (tmp_path / "results" / name).exists()
    assert pl.read_parquet(tmp_path / "curated" / "clips.parquet").height == curated.height
    dropped = report.filter(~pl.col("kept")).row(0, named=True)
    text = explain(dropped["clip_key"], tmp_path / "results" / "report.parquet")
    assert "dropped" in text and dropped["reasons"][0] in text
    assert "not in" in explain("nope", tmp_path / "results" / "report.parquet")


def _copy_annotations(smoke_frames, tmp_path) -> Layout:
    root = tmp_path / "raw"
    shutil.copytree(smoke_frames["raw"] / "annotations", root / "annotations")
    return Layout(root, **SYNTHETIC)


def test_missing_video_dropped_not_crash(smoke_frames, tmp_path):
    lay = _copy_annotations(smoke_frames, tmp_path)
    path = lay.path(lay.train_items)
    data = json.loads(path.read_text())
    data["items"].append({**data["items"][0], "video": "VAGTA_synth/Videos/Arson/Nowhere999_x264.mp4"})
    path.write_text(json.dumps(data))
    _, report, _, _ = curate(lay, smoke_frames["out"], P)
    row = report.row(-1, named=True)
    assert not row["kept"] and "media_unreadable" in row["reasons"]


def test_smoke_leakage_raises(smoke_frames, tmp_path):
    lay = _copy_annotations(smoke_frames, tmp_path)
    test_video = vagta.load(lay.path(lay.test_annotations)).entries[0].video
    path = lay.path(lay.train_items)
    data = json.loads(path.read_text())
    data["items"].append({**data["items"][0], "video": test_video})
    path.write_text(json.dumps(data))
    with pytest.raises(LeakageError, match="both"):
        curate(lay, smoke_frames["out"], P)


# ---------------------------------------------------------------------------------------------------- real excerpt

def test_real_excerpt_caption_rules():
    if not EXCERPT.exists():
        pytest.skip(f"real VAGTA excerpt not found at {EXCERPT} (shared fixtures absent)")
    items = vagta.load(EXCERPT).items
    fired = {}
    for i, it in enumerate(items):
        c = R.ClipCase(clip_key=it.clip_key, item_index=i, video=it.video, region_index=it.region_index,
                       caption=it.region_caption, category=it.category, abnormal=it.is_abnormal,
                       frames_25=tuple(it.frames_25) if it.frames_25 else None,
                       timestamps=tuple(it.timestamps) if it.timestamps else None)
        for rule in (R.too_short, R.digit_typo, R.non_english, R.weak_caption, R.category_mismatch):
            c.findings += rule(c, P)
        fired[i] = rules_of(c)
    cjk = next(i for i, it in enumerate(items) if "反击" in it.region_caption)
    assert "non_english" in fired[cjk]
    zero = next(i for i, it in enumerate(items) if it.frames_25 == [198, 198])
    assert "too_short" in fired[zero]
    # 'one6' sits in a hard negative (the hardneg stage's business), not in a region caption
    assert any("one6" in h for it in items for h in it.hard_negative)
    assert not any("digit_typo" in f for f in fired.values())
    # normal captions are never flagged for lacking event words; most abnormal captions are clean
    assert all(not fired[i] for i, it in enumerate(items) if not it.is_abnormal)
    flagged = sum(bool(f) for f in fired.values())
    assert flagged <= 6, {i: f for i, f in fired.items() if f}


def test_all_non_english_caption_is_dropped_with_reason():
    dropped = rules_of(case(caption="两个人在街上打架。"), "drop")
    assert "non_english" in dropped  # (it is also too short in words to be a caption: weak_caption)
