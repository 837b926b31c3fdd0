"""Tests for the VAGTA annotation reader (alertclip.data.vagta, vagta_defects, vagta_cli, captions).

The real-data tests read the excerpts in ``<repo>/../shared/fixtures/vagta/`` and skip when that folder
is absent; every other test builds tiny files in tmp_path.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alertclip.data import captions, vagta, vagta_cli, vagta_defects
from alertclip.data.vagta import Keyframe, VagtaFormatError, boxes_at

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "vagta"
TEST_FIXTURE = FIXTURES / "test.excerpt.json"
TRAIN_FIXTURE = FIXTURES / "qwen_vl_train.excerpt.json"

needs_fixtures = pytest.mark.skipif(
    not (TEST_FIXTURE.is_file() and TRAIN_FIXTURE.is_file()),
    reason=f"VAGTA fixture excerpts not found in {FIXTURES} (shared fixtures folder absent)",
)

_VIDEO_NO = itertools.count(1)  # a new video per built record unless a test shares one on purpose
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff]+")


def _raw(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _kinds_at(defects: list[vagta_defects.Defect]) -> set[tuple[str, str]]:
    return {(d.kind, d.field) for d in defects}


# --------------------------------------------------------------------------------------------------
# builders for hand-made files
# --------------------------------------------------------------------------------------------------


def kf(frame: int, bbox: list[float], enabled: bool = True) -> dict[str, Any]:
    return {"frame": frame, "bbox": bbox, "enabled": enabled, "_track_id": None}


def entry(**over: Any) -> dict[str, Any]:
    base = {
        "video": f"UCF_Crimes_Videos/UCF_Crimes/Videos/Arson/Arson{next(_VIDEO_NO):03d}_x264.mp4",
        "global_caption": "Arson abnormal video: a man sets a car on fire.",
        "region_captions": ["A man pours fuel on a car and lights it."],
        "box_infos": [[kf(10, [0.1, 0.1, 0.5, 0.5]), kf(20, [0.1, 0.1, 0.5, 0.5], False)]],
        "timestamps": None,
    }
    return {**base, **over}


def item(**over: Any) -> dict[str, Any]:
    base = {
        "video": f"UCF_Crimes_Videos/UCF_Crimes/Videos/Abuse/Abuse{next(_VIDEO_NO):03d}_x264.mp4",
        "region_index": 0,
        "frames_25": [10, 50],
        "region_caption": "A man kicks a dog in the street.",
        "hard_negative": ["A man walks a dog.", "A man feeds a dog.", "A man pets a dog."],
        "timestamps": None,
    }
    return {**base, **over}


def train_file(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"meta_file": "m.json", "model": "qwen-vl-max", "created_at": 1, "items": items}


def write(tmp_path: Path, name: str, obj: Any) -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def track(*keys: tuple[int, list[float], bool]) -> list[Keyframe]:
    return [Keyframe.model_validate(kf(f, b, e)) for f, b, e in keys]


# --------------------------------------------------------------------------------------------------
# real fixtures
# --------------------------------------------------------------------------------------------------


@needs_fixtures
def test_entries_fixture_loads_with_counts_from_raw_json() -> None:
    raw = _raw(TEST_FIXTURE)
    vf = vagta.load(TEST_FIXTURE)
    assert vf.kind == "entries" and vf.items is None and vf.path == TEST_FIXTURE
    assert len(vf.entries) == len(raw) == 25

    counts = vagta_cli.check([TEST_FIXTURE])[str(TEST_FIXTURE)]["counts"]
    n_normal = sum("normal" in e["video"].lower() for e in raw)  # no abnormal path says "normal"
    assert counts == {
        "entries": len(raw),
        "videos": len({e["video"] for e in raw}),
        "normal": n_normal,
        "abnormal": len(raw) - n_normal,
        "regions": sum(len(e["region_captions"]) for e in raw),
        "keyframes": sum(len(t) for e in raw for t in e["box_infos"]),
    }
    # hand-checked facts
    assert counts["videos"] == 24 and counts["normal"] == 9  # Normal_Videos_360 has two segments
    first = vf.entries[0]
    assert (first.category, first.is_abnormal, len(first.region_captions)) == ("Arson", True, 2)
    assert [len(t) for t in first.box_infos] == [4, 3]
    assert first.box_infos[0][3].enabled is False and first.box_infos[0][0].track_id is None
    assert vf.entries[11].timestamps == [0.0, 10.9] and vf.entries[11].category == "Normal"
    assert [vf.entries[i].category for i in (17, 18, 22)] == ["Fire", "People_falling", "Normal"]


@needs_fixtures
def test_items_fixture_loads_with_counts_from_raw_json() -> None:
    raw = _raw(TRAIN_FIXTURE)
    vf = vagta.load(TRAIN_FIXTURE)
    assert vf.kind == "items" and vf.entries is None
    assert (vf.train.model, vf.train.created_at, vf.train.meta_file) == (
        "qwen-vl-max", 1761913967, "Final_ucf_fgclip_translated_qwen_train.json",
    )
    items = raw["items"]
    counts = vagta_cli.check([TRAIN_FIXTURE])[str(TRAIN_FIXTURE)]["counts"]
    n_normal = sum("normal" in it["video"].lower() for it in items)
    assert counts == {
        "items": len(items),
        "videos": len({it["video"] for it in items}),
        "normal": n_normal,
        "abnormal": len(items) - n_normal,
        "hard_negatives": sum(len(it["hard_negative"]) for it in items),
    }
    assert counts["items"] == 42 and counts["normal"] == 18
    assert vf.items[36].category == "Normal"  # MSAD/.../Normal_Training/frontdoor/frontdoor24.mp4
    assert vf.items[30].category == "Explosion" and vf.items[0].frames_25 == [473, 603]


@needs_fixtures
def test_fixture_defects_found_where_the_raw_json_has_them() -> None:
    test_raw, train_raw = _raw(TEST_FIXTURE), _raw(TRAIN_FIXTURE)
    test_defects = vagta_defects.find_defects(vagta.load(TEST_FIXTURE))
    train_defects = vagta_defects.find_defects(vagta.load(TRAIN_FIXTURE))

    # Chinese text, located independently with a CJK regex over the raw captions.
    cjk_test = {
        f"entries[{i}].global_caption" for i, e in enumerate(test_raw) if CJK.search(e["global_caption"])
    } | {
        f"entries[{i}].region_captions[{j}]"
        for i, e in enumerate(test_raw)
        for j, c in enumerate(e["region_captions"])
        if CJK.search(c)
    }
    cjk_train = {
        f"items[{i}].region_caption" for i, it in enumerate(train_raw["items"]) if CJK.search(it["region_caption"])
    }
    assert cjk_test == {"entries[14].global_caption"} and cjk_train == {"items[3].region_caption"}
    assert {d.field for d in test_defects if d.kind == "non_english"} == cjk_test
    assert {d.field for d in train_defects if d.kind == "non_english"} == cjk_train
    assert "场景" in next(d.detail for d in test_defects if d.kind == "non_english")

    # the digit typo: "one6" in the third hard negative of item 18
    assert "one6" in train_raw["items"][18]["hard_negative"][2]
    typos = [d for d in train_defects if d.kind == "digit_in_word"]
    assert [(d.index, d.field) for d in typos] == [(18, "items[18].hard_negative[2]")]
    assert "one6" in typos[0].detail

    # bbox float noise: every out-of-range coordinate in the raw file, all within tolerance
    oob = {
        f"entries[{i}].box_infos[{j}][{k}].bbox"
        for i, e in enumerate(test_raw)
        for j, t in enumerate(e["box_infos"])
        for k, key in enumerate(t)
        if any(v < 0 or v > 1 for v in key["bbox"])
    }
    found = [d for d in test_defects if d.kind == "bbox_out_of_range"]
    assert {d.field for d in found} == oob and len(oob) == 2 and all(d.repaired for d in found)

    # the rest of the train-file defects, each located from the raw JSON
    items = train_raw["items"]
    assert {i for i, it in enumerate(items) if not it["hard_negative"]} == {
        d.index for d in train_defects if d.kind == "empty_hard_negatives"
    } == {6}
    assert {
        f"items[{i}].hard_negative[{j}]"
        for i, it in enumerate(items)
        for j, h in enumerate(it["hard_negative"])
        if h == it["region_caption"]
    } == {d.field for d in train_defects if d.kind == "hard_negative_equals_positive"} == {
        "items[25].hard_negative[0]"
    }
    assert {
        f"items[{i}].frames_25"
        for i, it in enumerate(items)
        if it["frames_25"] and it["frames_25"][0] >= it["frames_25"][1]
    } == {d.field for d in train_defects if d.kind == "zero_length_span"} == {"items[31].frames_25"}

    # entry 6 (Explosion035) gives both of its regions the same caption
    assert test_raw[6]["region_captions"][0] == test_raw[6]["region_captions"][1]
    assert _kinds_at([d for d in test_defects if d.kind == "repeated_caption"]) == {
        ("repeated_caption", "entries[6].region_captions[0]")
    }
    # nothing else: no false positives on the real data (x264 paths, "two", numbers...)
    assert {d.kind for d in test_defects} == {"bbox_out_of_range", "non_english", "repeated_caption"}
    assert len(train_defects) == 5


@needs_fixtures
def test_fixture_regions_table() -> None:
    vf = vagta.load(TEST_FIXTURE)
    raw = _raw(TEST_FIXTURE)
    regions = vagta_cli.regions_table(vf)
    assert regions.height == sum(len(e["region_captions"]) for e in raw)
    r0 = regions.row(0, named=True)
    assert (r0["n_keyframes"], r0["first_frame"], r0["last_frame"]) == (4, 261, 1065)

    tv = vagta.load(TRAIN_FIXTURE)
    assert len({it.clip_key for it in tv.items}) == len(tv.items) == 42
    with pytest.raises(ValueError, match="needs an entries file"):
        vagta_cli.regions_table(tv)


# --------------------------------------------------------------------------------------------------
# categories and text rules
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("video", "category"),
    [
        ("UCF_Crimes_Videos/UCF_Crimes/Videos/Arson/Arson010_x264.mp4", "Arson"),
        ("UCF_Crimes_Videos/UCF_Crimes/Videos/RoadAccidents/RoadAccidents069_x264.mp4", "RoadAccidents"),
        ("UCF_Crimes_Videos/UCF_Crimes/Videos/Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4", "Normal"),
        ("UCF_Crimes_Videos/UCF_Crimes/Videos/Testing_Normal_Videos_Anomaly/Normal_Videos_360_x264.mp4", "Normal"),
        ("Videos/Normal_Videos_event/Normal_Videos_003_x264.mp4", "Normal"),
        ("data/Normal/clip7.mp4", "Normal"),
        ("MSAD/MSAD_Videos/MSAD_anomaly_videos/People_falling/People_falling_42.mp4", "People_falling"),
        ("MSAD/MSAD_Videos/Fire/Fire_2.mp4", "Fire"),
        ("MSAD/MSAD_Videos/Normal_Training/pedestrian street/pedestrian_street1.mp4", "Normal"),
        ("MSAD/MSAD_Videos/Normal_Testing/MSAD_normal_testing_41.mp4", "Normal"),
        ("Videos/Shoplifting001_x264.mp4", "Shoplifting"),
        ("/mnt/normal/UCF/Videos/Abuse/Abuse001_x264.mp4", "Abuse"),  # "normal" far up the path
    ],
)
def test_category_of(video: str, category: str) -> None:
    assert vagta.category_of(video) == category


def test_digit_typo_rule() -> None:
    assert captions.digit_typos("Two men and one6 woman near parking5 and 6one") == ["one6", "parking5", "6one"]
    clean = "x264 mp4 h264 3D 2nd 10th 21st 4pm 1080p 1990s 4k CCTV2 AK47 B2 covers 12 people."
    assert captions.digit_typos(clean) == []


def test_non_latin_runs() -> None:
    assert captions.non_latin_runs("she反击 with bat，then left") == ["反击", "，"]
    assert captions.non_latin_runs("café déjà vu — naïve 'quotes' 2nd") == []
    assert captions.non_latin_runs("a Привет b") == ["Привет"]


# --------------------------------------------------------------------------------------------------
# every defect kind, hand-built
# --------------------------------------------------------------------------------------------------


def test_entry_defect_kinds(tmp_path: Path) -> None:
    normal_video = "UCF_Crimes_Videos/UCF_Crimes/Videos/Testing_Normal_Videos_Anomaly/Normal_Videos_9_x264.mp4"
    entries = [
        entry(),  # 0: clean
        entry(box_infos=[[kf(1, [-0.01, 0.2, 1.005, 0.9])]]),  # 1: float noise
        entry(box_infos=[[kf(1, [-0.5, 0.2, 0.6, 0.9])]]),  # 2: real out of range
        entry(box_infos=[[kf(1, [0.6, 0.2, 0.3, 0.9])]]),  # 3: inverted
        entry(box_infos=[[]]),  # 4: abnormal without boxes
        entry(video=normal_video, global_caption="Normal video: a shop", region_captions=["Same."],
              box_infos=[[]], timestamps=[5.0, 5.0]),  # 5: zero-length span; repeated with 6
        entry(video=normal_video, global_caption="Normal video: a shop", region_captions=["same"],
              box_infos=[[]], timestamps=[5.0, 9.0]),  # 6
        entry(global_caption="  ", region_captions=["A man with a parking5 ticket sees 火灾."]),  # 7
        entry(region_captions=["a", "b"]),  # 8: two captions, one track
    ]
    vf = vagta.load(write(tmp_path, "boxes.json", entries))
    defects = vagta_defects.find_defects(vf)
    assert _kinds_at(defects) == {
        ("bbox_out_of_range", "entries[1].box_infos[0][0].bbox"),
        ("bbox_out_of_range", "entries[2].box_infos[0][0].bbox"),
        ("bbox_inverted", "entries[3].box_infos[0][0].bbox"),
        ("abnormal_without_boxes", "entries[4].box_infos"),
        ("zero_length_span", "entries[5].timestamps"),
        ("repeated_caption", "entries[5].region_captions[0]"),
        ("empty_caption", "entries[7].global_caption"),
        ("digit_in_word", "entries[7].region_captions[0]"),
        ("non_english", "entries[7].region_captions[0]"),
        ("region_count_mismatch", "entries[8].box_infos"),
    }
    by_entry = {d.index: d for d in defects if d.kind == "bbox_out_of_range"}
    assert by_entry[1].repaired is True and by_entry[2].repaired is False
    assert all(d.file == str(vf.path) for d in defects)
    assert all(d.field.startswith(f"entries[{d.index}].") for d in defects)
    # normal entries with no boxes are fine; only the abnormal one is flagged
    assert [d.index for d in defects if d.kind == "abnormal_without_boxes"] == [4]


def test_item_defect_kinds(tmp_path: Path) -> None:
    normal = "UCF_Crimes_Videos/UCF_Crimes/Videos/Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4"
    items = [
        item(),  # 0: clean
        item(hard_negative=[]),  # 1
        item(hard_negative=["A man kicks a dog in the street", "x y z", "A man feeds a dog."]),  # 2
        item(hard_negative=["A man feeds a dog.", "a man  feeds a dog", "A man pets a dog."]),  # 3
        item(frames_25=[40, 40]),  # 4
        item(video=normal, frames_25=None, timestamps=[0.0, 6.0], region_caption="People walk.",
             hard_negative=["People fly.", "People float.", "People dance one6 times."]),  # 5
        item(video=normal, frames_25=None, timestamps=[6.0, 12.0], region_caption="People walk.",
             hard_negative=["People fly.", "People float.", ""]),  # 6
        item(region_caption="孩子 hits a man."),  # 7
    ]
    vf = vagta.load(write(tmp_path, "train.json", train_file(items)))
    defects = vagta_defects.find_defects(vf)
    assert _kinds_at(defects) == {
        ("empty_hard_negatives", "items[1].hard_negative"),
        ("hard_negative_equals_positive", "items[2].hard_negative[0]"),
        ("duplicate_hard_negatives", "items[3].hard_negative[1]"),
        ("zero_length_span", "items[4].frames_25"),
        ("digit_in_word", "items[5].hard_negative[2]"),
        ("repeated_caption", "items[5].region_caption"),
        ("empty_caption", "items[6].hard_negative[2]"),
        ("non_english", "items[7].region_caption"),
    }
    repaired = {d.kind for d in defects if d.repaired}
    assert repaired == {"hard_negative_equals_positive", "duplicate_hard_negatives"}
    # (video, region_index) repeats for normal segments; clip_key does not
    assert (vf.items[5].video, vf.items[5].region_index) == (vf.items[6].video, vf.items[6].region_index)
    assert len({it.clip_key for it in vf.items}) == len(vf.items)
    assert vf.items[5].clip_key.endswith("#0@0.0-6.0")


def test_clean_files_have_no_defects(tmp_path: Path) -> None:
    boxes = vagta.load(write(tmp_path, "b.json", [entry(), entry(video="V/Fire/Fire_1.mp4")]))
    train = vagta.load(write(tmp_path, "t.json", train_file([item(), item(region_index=1)])))
    assert vagta_defects.find_defects(boxes) == [] and vagta_defects.find_defects(train) == []


# --------------------------------------------------------------------------------------------------
# malformed input
# --------------------------------------------------------------------------------------------------


def _entries_with(bad: dict[str, Any], at: int = 3) -> list[dict[str, Any]]:
    return [entry() for _ in range(at)] + [bad]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (  # wrong length of a nested bbox
            _entries_with(entry(box_infos=[[kf(1, [0, 0, 1, 1]), kf(2, [0, 0, 1])]])),
            "test.json: entry 3: field box_infos[0][1].bbox: expected 4 numbers, got 3",
        ),
        (  # wrong type: a string frame is not coerced
            _entries_with(entry(box_infos=[[kf("12", [0, 0, 1, 1])]])),  # type: ignore[arg-type]
            "test.json: entry 3: field box_infos[0][0].frame: Input should be a valid integer (got string '12')",
        ),
        (  # wrong type: region_captions is a string
            _entries_with(entry(region_captions="a caption")),
            "test.json: entry 3: field region_captions: Input should be a valid list",
        ),
        (  # missing field
            _entries_with({k: v for k, v in entry().items() if k != "global_caption"}),
            "test.json: entry 3: field global_caption: missing required field",
        ),
        (  # missing field inside a keyframe
            _entries_with(entry(box_infos=[[{"frame": 1, "bbox": [0, 0, 1, 1]}]])),
            "test.json: entry 3: field box_infos[0][0].enabled: missing required field",
        ),
        (  # an entry that is not an object
            [entry(), "oops"],
            "test.json: entry 1: expected an object, got string",
        ),
    ],
)
def test_malformed_entries(tmp_path: Path, content: Any, expected: str) -> None:
    path = write(tmp_path, "test.json", content)
    with pytest.raises(VagtaFormatError) as info:
        vagta.load(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected.replace("test.json", str(path)) in message


def test_malformed_items_name_item_and_field(tmp_path: Path) -> None:
    bad = item(region_index="0", hard_negative=["ok", 7])
    path = write(tmp_path, "train.json", train_file([item(), bad]))
    with pytest.raises(VagtaFormatError) as info:
        vagta.load(path)
    err = info.value
    assert (err.path, err.index, err.field) == (str(path), 1, "region_index")
    assert f"{path}: item 1: field region_index: Input should be a valid integer (got string '0')" in str(err)
    assert f"{path}: item 1: field hard_negative[1]: Input should be a valid string" in str(err)
    assert len(err.errors) == 2

    path = write(tmp_path, "train2.json", {"items": [item()], "model": "m", "created_at": 1})
    with pytest.raises(VagtaFormatError, match=r"train2\.json: field meta_file: missing required field"):
        vagta.load(path)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", '[\n  {"video": "a.mp4",\n  }\n]\n')
    with pytest.raises(VagtaFormatError) as info:
        vagta.load(path)
    assert str(info.value).startswith(f"{path}: invalid JSON at line 3, column 3:")


@pytest.mark.parametrize(
    ("content", "got"),
    [("\"just a string\"", "a JSON string"), ("42", "a JSON integer"), ("null", "a JSON null"),
     ('{"entries": []}', "an object without an 'items' key")],
)
def test_wrong_top_level(tmp_path: Path, content: str, got: str) -> None:
    path = write(tmp_path, "top.json", content)
    with pytest.raises(VagtaFormatError) as info:
        vagta.load(path)
    assert str(info.value) == (
        f"{path}: top level: expected a list of entries or an object with 'items', got {got}"
    )


def test_upstream_extra_fields_are_kept_not_rejected(tmp_path: Path) -> None:
    vf = vagta.load(write(tmp_path, "x.json", [entry(new_field=1, box_infos=[[{**kf(1, [0, 0, 1, 1]), "z": 2}]])]))
    assert vf.entries[0].model_extra == {"new_field": 1}
    assert vf.entries[0].box_infos[0][0].model_extra == {"z": 2}


# --------------------------------------------------------------------------------------------------
# box interpolation
# --------------------------------------------------------------------------------------------------


A = [0.0, 0.0, 0.2, 0.2]
B = [0.4, 0.2, 0.8, 1.0]


def test_interpolation_midpoint_and_keyframes() -> None:
    t = track((10, A, True), (20, B, True), (30, B, False))
    out = boxes_at(t, [9, 10, 15, 20, 25, 30, 31])
    assert out.shape == (7, 4) and out.dtype == np.float32
    assert np.isnan(out[0]).all()  # before the first keyframe
    np.testing.assert_allclose(out[1], A)
    np.testing.assert_allclose(out[2], [0.2, 0.1, 0.5, 0.6], atol=1e-6)  # midpoint
    np.testing.assert_allclose(out[3], B)
    np.testing.assert_allclose(out[4], B)  # towards a disabling keyframe with the same box: hold
    assert np.isnan(out[5:]).all()  # the disabling keyframe ends the track at its own frame


def test_disabled_keyframe_ends_track_until_restart() -> None:
    t = track((1, A, True), (5, A, False), (9, B, True), (13, A, True))
    out = boxes_at(t, np.arange(1, 16))
    shown = ~np.isnan(out).any(axis=1)
    assert shown.tolist() == [True] * 4 + [False] * 4 + [True] * 5 + [False] * 2
    np.testing.assert_allclose(out[10], [0.2, 0.1, 0.5, 0.6], atol=1e-6)  # frame 11: restarted, interpolating


def test_open_track_holds_only_with_hold_until() -> None:
    t = track((3, B, True), (1, A, True))  # unsorted on purpose
    default = boxes_at(t, [1, 2, 3, 4, 100])
    assert np.isnan(default[3:]).all()  # not extrapolated past the last keyframe by default
    np.testing.assert_allclose(default[2], B)
    held = boxes_at(t, [3, 4, 10, 11], hold_until=10)
    np.testing.assert_allclose(held[:3], [B, B, B])
    assert np.isnan(held[3]).all()


def test_clamping_float_noise_only() -> None:
    t = track((1, [-1e-15, 0.1, 1.0000000000000069, 0.9], True), (2, [-0.3, 0.1, 1.5, 0.9], True))
    out = boxes_at(t, [1, 2])
    assert out[0].tolist() == pytest.approx([0.0, 0.1, 1.0, 0.9])
    assert out[1].tolist() == pytest.approx([-0.3, 0.1, 1.5, 0.9])  # beyond tolerance: left visible
    out = boxes_at(t, [2], tol=0.6)
    assert out[0].tolist() == pytest.approx([0.0, 0.1, 1.0, 0.9])


def test_empty_track_and_no_frames() -> None:
    assert np.isnan(boxes_at([], [1, 2])).all() and boxes_at([], [1, 2]).shape == (2, 4)
    assert boxes_at(track((1, A, True)), []).shape == (0, 4)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _cli_files(tmp_path: Path) -> tuple[Path, Path]:
    boxes = write(tmp_path, "boxes.json", [entry(), entry(box_infos=[[kf(1, [0.6, 0.1, 0.3, 0.9])]])])
    train = write(tmp_path, "train.json", train_file([item(), item(region_index=1, hard_negative=[])]))
    return boxes, train


def test_cli_human_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boxes, train = _cli_files(tmp_path)
    assert vagta_cli.main(["check", str(boxes), str(train)]) == 0  # defects do not fail the command
    out = capsys.readouterr().out
    assert f"{boxes} (entries file)" in out and f"{train} (items file)" in out
    assert re.search(r"entries\s+videos\s+normal\s+abnormal\s+regions\s+keyframes\n\s+2\s+2\s+0\s+2\s+2\s+3", out)
    assert re.search(r"items\s+videos\s+normal\s+abnormal\s+hard_negatives\n\s+2\s+2\s+0\s+2\s+3", out)
    assert "bbox_inverted: entries[1].box_infos[0][0].bbox" in out
    assert "empty_hard_negatives: items[1].hard_negative" in out


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boxes, train = _cli_files(tmp_path)
    assert vagta_cli.main(["check", str(boxes), str(train), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == vagta_cli.check([boxes, train])
    assert report[str(boxes)]["defects_by_kind"] == {"bbox_inverted": 1}
    assert report[str(train)]["counts"]["hard_negatives"] == 3
    assert report[str(train)]["defects"][0] == {
        "kind": "empty_hard_negatives", "file": str(train), "index": 1,
        "field": "items[1].hard_negative", "detail": "no hard negatives", "repaired": False,
    }


@needs_fixtures
def test_cli_json_on_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    assert vagta_cli.main(["check", str(TEST_FIXTURE), str(TRAIN_FIXTURE), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[str(TEST_FIXTURE)]["defects_by_kind"] == {
        "bbox_out_of_range": 2, "non_english": 1, "repeated_caption": 1,
    }
    assert report[str(TRAIN_FIXTURE)]["defects_by_kind"] == {
        "digit_in_word": 1, "empty_hard_negatives": 1, "hard_negative_equals_positive": 1,
        "non_english": 1, "zero_length_span": 1,
    }


def test_cli_format_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, _ = _cli_files(tmp_path)
    bad = write(tmp_path, "bad.json", [entry(), {"video": 3}])
    assert vagta_cli.main(["check", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: entry 1: field video: Input should be a valid string" in err
    assert vagta_cli.main(["check", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
