"""Ground-truth readers of the published formats (UCF, XD, UBnormal, MSAD), the dispatcher, the summary and ``gt check``.

Every file here is written by the test in its benchmark's real layout, with the defects the released files have
(BOM, CRLF / lone CR, trailing blanks, blank lines, no final newline, ``-1`` padding, ``.mp4``-suffixed XD names).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alertclip import cli
from alertclip.eval.groundtruth import GroundTruth, GroundTruthError, VideoTruth, vadclip_frame_labels
from alertclip.eval.gt_formats import (
    FORMATS,
    NORMAL_MARKERS,
    is_normal_name,
    read_ground_truth,
    read_msad,
    read_ubnormal,
    read_ucf_temporal,
    read_xd,
    summarize,
    xd_category,
)

BOM = "\ufeff"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def raises_at(reader, path: Path, where: str, *words: str, **kwargs) -> str:
    """Run ``reader(path)``; it must raise GroundTruthError naming ``where`` (file:line: field N) and ``words``."""
    with pytest.raises(GroundTruthError) as info:
        reader(path, **kwargs)
    message = str(info.value)
    assert where in message, message
    for word in words:
        assert word in message, message
    return message


# --------------------------------------------------------------------------------------------------------------- UCF

UCF_DEFECTS = (
    BOM + "Fighting016_x264.mp4  Fighting  400  528  -1  -1  \r\n"  # BOM, CRLF, two trailing spaces
    "\r\n"
    "Normal_Videos_101_x264.mp4  Normal  -1  -1  -1  -1\t\t\r"  # trailing tabs, lone CR
    "Collapse017_x264.mp4\tCollapse 28  107  145  240"  # tab separator, no final newline
)


def test_ucf_accepts_the_real_defects(tmp_path):
    path = write(tmp_path / "Temporal_Anomaly_Annotation.txt", UCF_DEFECTS)
    truth = read_ucf_temporal(path)
    assert list(truth) == ["Fighting016_x264.mp4", "Normal_Videos_101_x264.mp4", "Collapse017_x264.mp4"]
    assert truth["Fighting016_x264.mp4"] == VideoTruth("Fighting016_x264.mp4", "Fighting", ((400, 528),))
    assert truth["Normal_Videos_101_x264.mp4"].spans == ()
    assert truth["Collapse017_x264.mp4"].spans == ((28, 107), (145, 240))
    assert truth["Collapse017_x264.mp4"].origin == f"{path}:4"  # CRLF, blank line and lone CR each end one line


@pytest.mark.parametrize(
    ("line", "where", "words"),
    [
        ("Arson011_x264.mp4  Arson  900  300  -1  -1  ", "field 3 (start of span 1)", ("after end",)),
        ("Arson011_x264.mp4  Arson  300  -1  -1  -1  ", "field 4 (end of span 1)", ("only one -1",)),
        ("Arson011_x264.mp4  Arson  3O0  900  -1  -1  ", "field 3 (start of span 1)", ("integer",)),
        ("Arson011_x264.mp4  Arson  300  900  -1  ", "field 5 (start of span 2)", ("odd number",)),
        ("Arson011_x264.mp4", "field 2 (category)", ("missing",)),
    ],
)
def test_ucf_errors_name_file_line_and_field(tmp_path, line, where, words):
    path = write(tmp_path / "ucf.txt", "Arson015_x264.mp4  Arson  117  245  -1  -1  \r\n\r\n" + line)
    raises_at(read_ucf_temporal, path, f"{path}:3: {where}", *words)


def test_ucf_duplicate_and_empty_file(tmp_path):
    path = write(tmp_path / "dup.txt", "Arson015_x264.mp4  Arson  1  2\nArson015_x264.mp4  Arson  5  9\n")
    raises_at(read_ucf_temporal, path, f"{path}:2: field 1 (video name)", "duplicate", f"{path}:1")
    empty = write(tmp_path / "empty.txt", BOM + "\r\n  \n")
    raises_at(read_ucf_temporal, empty, f"{empty}: no entries")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"Arson015_x264.mp4  Arson  1  2\nCaf\xe9.mp4  Arson  1  2\n")
    raises_at(read_ucf_temporal, latin, f"{latin}:2:", "not UTF-8")


# ---------------------------------------------------------------------------------------------------------------- XD

XD_TEXT = (
    BOM + "Some.Movie.2001__#00-10-00_00-11-00_label_B2-0-0 57 670 728 800\r\n"
    "v=AbCdEf12345__#1_label_G-B2-B6 0 35 203 860 \t\r\n"
    "\r\n"
    "v=ZyXwVu__#00-00-00_00-01-00_label_B6-0-0.mp4 27 144 -1 -1\r"  # released names sometimes end in .mp4
    "Other.Film.1999__#01-02-03_01-03-00_label_B1-B4-0 10 20"  # no final newline
)


def test_xd_reads_pairs_names_and_categories(tmp_path):
    path = write(tmp_path / "annotations.txt", XD_TEXT)
    truth = read_xd(path)
    assert list(truth) == ["Some.Movie.2001__#00-10-00_00-11-00_label_B2-0-0", "v=AbCdEf12345__#1_label_G-B2-B6",
                           "v=ZyXwVu__#00-00-00_00-01-00_label_B6-0-0", "Other.Film.1999__#01-02-03_01-03-00_label_B1-B4-0"]
    first = truth["Some.Movie.2001__#00-10-00_00-11-00_label_B2-0-0"]
    assert (first.category, first.spans) == ("B2", ((57, 670), (728, 800)))
    assert truth["v=AbCdEf12345__#1_label_G-B2-B6"].category == "G-B2-B6"
    assert truth["v=ZyXwVu__#00-00-00_00-01-00_label_B6-0-0"].spans == ((27, 144),)  # -1 padding dropped
    assert truth["Other.Film.1999__#01-02-03_01-03-00_label_B1-B4-0"].category == "B1-B4"
    assert truth["Other.Film.1999__#01-02-03_01-03-00_label_B1-B4-0"].origin == f"{path}:5"
    # VadCLIP's frame labels: vec[s:e] = 1 on the raw numbers (0-based, end-exclusive).
    labels = vadclip_frame_labels(first.spans, 60, 16)
    assert labels[56] == 0 and labels[57] == 1 and labels[669] == 1 and labels[670] == 0


def test_xd_category_rule():
    assert xd_category("x__#1_label_A") == "Normal"
    assert xd_category("x__#1_label_B2-0-0") == "B2"
    assert xd_category("x__#1_label_B6-G-0.mp4") == "B6-G"
    for bad, words in [("x__#1", "_label_"), ("x__#1_label_B3-0-0", "unknown"), ("x__#1_label_A-B1-0", "mix"),
                       ("x__#1_label_0-0-0", "no label code")]:
        with pytest.raises(ValueError, match=words):
            xd_category(bad)


@pytest.mark.parametrize(
    ("line", "where", "words"),
    [
        ("Bad.Film__#1_label_B1-0-0 500 100", "field 2 (start of span 1)", ("after end",)),
        ("Bad.Film__#1_label_B1-0-0 100 -1", "field 3 (end of span 1)", ("only one -1",)),
        ("Bad.Film__#1_label_B1-0-0 100 2.5e2", "field 3 (end of span 1)", ("integer",)),
        ("Bad.Film__#1_label_B1-0-0 100 200 300", "field 4 (start of span 2)", ("odd number",)),  # truncated line
        ("Bad.Film__#1_label_B1-0-0", "field 2 (start of span 1)", ("missing", "at least one")),
        ("Bad.Film__#1_label_B1-0-0 -1 -1", "field 2 (start of span 1)", ("missing",)),
        ("Bad.Film__#1 10 20", "field 1 (video name)", ("_label_",)),
        ("Bad.Film__#1_label_B9-0-0 10 20", "field 1 (video name)", ("unknown label code",)),
        ("Bad.Film__#1_label_A 10 20", "field 2 (start of span 1)", ("normal",)),
        ("Some.Movie.2001__#00-10-00_00-11-00_label_B2-0-0.mp4 1 2", "field 1 (video name)", ("duplicate", ":1")),
    ],
)
def test_xd_errors_name_file_line_and_field(tmp_path, line, where, words):
    path = write(tmp_path / "annotations.txt", "Some.Movie.2001__#00-10-00_00-11-00_label_B2-0-0 57 670\n" + line + "\n")
    raises_at(read_xd, path, f"{path}:2: {where}", *words)


def test_xd_normal_line_with_padding_only_is_normal(tmp_path):
    path = write(tmp_path / "annotations.txt", "Quiet.Film__#00-01-00_00-02-00_label_A -1 -1\n")
    assert read_xd(path)["Quiet.Film__#00-01-00_00-02-00_label_A"] == VideoTruth(
        "Quiet.Film__#00-01-00_00-02-00_label_A", "Normal", ())


# ---------------------------------------------------------------------------------------------------------- UBnormal


def ubnormal_tree(root: Path, tracks: dict[str, str], names: str) -> Path:
    """A UBnormal root: Scene<k>/<video>_annotations/<video>_tracks.txt per abnormal video, and the split list."""
    for video, text in tracks.items():
        scene = video.split("_")[2]
        write(root / f"Scene{scene}" / f"{video}_annotations" / f"{video}_tracks.txt", text)
    return write(root / "abnormal_test_video_names.txt", names)


UBN_TRACKS = {
    "abnormal_scene_1_scenario_1": "1,10,20\n2, 15 ,30\n\n3,50,50",  # overlapping tracks, spaces, no final newline
    "abnormal_scene_10_scenario_2_fog": BOM + "1,0,4\r2,100.0,120\r",  # BOM, lone CR, integral float (np.loadtxt)
}
UBN_LIST = BOM + "abnormal_scene_1_scenario_1\r\n\r\nnormal_scene_2_scenario_3 \t\r\nabnormal_scene_10_scenario_2_fog"


def test_ubnormal_reads_tracks_inclusive_to_exclusive(tmp_path):
    path = ubnormal_tree(tmp_path / "UBnormal", UBN_TRACKS, UBN_LIST)
    truth = read_ground_truth(path, "ubnormal")
    assert list(truth) == ["abnormal_scene_1_scenario_1", "normal_scene_2_scenario_3", "abnormal_scene_10_scenario_2_fog"]
    # [first, last] inclusive -> (first, last + 1); overlapping / touching tracks joined.
    assert truth["abnormal_scene_1_scenario_1"] == VideoTruth("abnormal_scene_1_scenario_1", "Abnormal",
                                                              ((10, 31), (50, 51)))
    assert truth["abnormal_scene_10_scenario_2_fog"].spans == ((0, 5), (100, 121))
    assert truth["normal_scene_2_scenario_3"] == VideoTruth("normal_scene_2_scenario_3", "Normal", ())
    assert truth["abnormal_scene_10_scenario_2_fog"].origin == f"{path}:4"
    # The reference script's labels: ground_truth[first:last + 1] = 1, per track.
    ref = np.zeros(60, dtype=np.uint8)
    for _, first, last in [(1, 10, 20), (2, 15, 30), (3, 50, 50)]:
        ref[first:last + 1] = 1
    vec = np.zeros(60, dtype=np.uint8)
    for s, e in truth["abnormal_scene_1_scenario_1"].spans:
        vec[s:e] = 1
    assert np.array_equal(vec, ref)


def test_ubnormal_root_can_be_elsewhere(tmp_path):
    ubnormal_tree(tmp_path / "data", UBN_TRACKS, "")
    path = write(tmp_path / "lists" / "abnormal.txt", "abnormal_scene_1_scenario_1\n")
    raises_at(read_ubnormal, path, f"{path}:1: field 1 (video name)", "does not exist")
    assert read_ubnormal(path, root=tmp_path / "data")["abnormal_scene_1_scenario_1"].spans == ((10, 31), (50, 51))


@pytest.mark.parametrize(
    ("tracks", "where", "words"),
    [
        ("1,10,20\n2,30,25\n", ":2: field 2 (first frame)", ("after last frame",)),  # reversed
        ("1,10,20\n2,30\n", ":2: field 3 (last frame)", ("expected 3 comma-separated",)),  # truncated
        ("1,10,20,7\n", ":1: field 4 (extra field)", ("got 4",)),
        ("1,1O,20\n", ":1: field 2 (first frame)", ("integer",)),
        ("1,10.5,20\n", ":1: field 2 (first frame)", ("integer",)),
        ("1,-1,20\n", ":1: field 2 (first frame)", ("negative",)),
        ("1,,20\n", ":1: field 2 (first frame)", ("empty",)),
        ("\r\n \n", ": no tracks", ("abnormal_scene_1_scenario_1",)),
    ],
)
def test_ubnormal_track_errors_name_tracks_file_line_and_field(tmp_path, tracks, where, words):
    path = ubnormal_tree(tmp_path, {"abnormal_scene_1_scenario_1": tracks}, "abnormal_scene_1_scenario_1\n")
    tracks_file = tmp_path / "Scene1" / "abnormal_scene_1_scenario_1_annotations" / "abnormal_scene_1_scenario_1_tracks.txt"
    raises_at(read_ubnormal, path, f"{tracks_file}{where}", *words)


@pytest.mark.parametrize(
    ("names", "where", "words"),
    [
        ("normal_scene_2_scenario_3\nnormal_scene_2_scenario_3\n", ":2: field 1 (video name)", ("duplicate", ":1")),
        ("normal_scene_2_scenario_3\nabnormal_scene_7_scenario_1\n", ":2: field 1 (video name)", ("does not exist",)),
        ("scene_2_scenario_3\n", ":1: field 1 (video name)", ("'abnormal_' or 'normal_'",)),
        ("abnormal_sceneX_scenario_3\n", ":1: field 1 (video name)", ("Scene folder",)),
        ("normal_scene_2_scenario_3 normal_scene_2_scenario_4\n", ":1: field 2 (extra field)", ("one video name",)),
    ],
)
def test_ubnormal_list_errors_name_list_line_and_field(tmp_path, names, where, words):
    path = ubnormal_tree(tmp_path, {}, names)
    raises_at(read_ubnormal, path, f"{path}{where}", *words)


def test_ubnormal_normal_marker_is_a_prefix():
    assert NORMAL_MARKERS["ubnormal"] == ("normal_",)
    assert is_normal_name("normal_scene_4_scenario_1", "ubnormal")
    assert is_normal_name("Scene4/normal_scene_4_scenario_1.mp4", "ubnormal")
    assert not is_normal_name("abnormal_scene_4_scenario_1", "ubnormal")  # contains "normal_" as a substring
    assert not is_normal_name("Scene4/abnormal_scene_4_scenario_1.mp4", "ubnormal")
    assert is_normal_name("Normal_Videos_003_x264.mp4", "ucf") and not is_normal_name("Fighting016_x264.mp4", "ucf")
    assert is_normal_name("x/Film__#1_label_A__0.npy", "xd") and not is_normal_name("Film__#1_label_B1-0-0", "xd")
    assert is_normal_name("MSAD_normal_testing_3", "msad") and not is_normal_name("Fire_2", "msad")
    assert is_normal_name("custom_quiet_1", "ucf", markers=("quiet",))
    assert set(NORMAL_MARKERS) == set(FORMATS)


# -------------------------------------------------------------------------------------------------------------- MSAD

AUTHORS = "/scratch/kf09/lz1278/MSAD-I3D-WS"  # the released list's absolute paths (the authors' cluster)


def msad_release(root: Path, videos: list[tuple[str, str, tuple[int, ...]]], labels: np.ndarray | None = None,
                 list_text: str | None = None) -> Path:
    """Feature files ``root/<folder>/<name>_i3d.npy`` of the given shapes, the test list and ``gt-MSAD-WS-new.npy``."""
    lines = []
    for folder, name, shape in videos:
        feature = root / folder / f"{name}_i3d.npy"
        feature.parent.mkdir(parents=True, exist_ok=True)
        np.save(feature, np.zeros(shape, dtype=np.float32))
        lines.append(f"{AUTHORS}/{folder}/{name}_i3d.npy")
    if labels is not None:
        np.save(root / "gt-MSAD-WS-new.npy", labels)
    text = list_text if list_text is not None else "\r\n".join(lines) + " \t"  # CRLF, trailing blanks, no final EOL
    return write(root / "msad-i3d-test.list", text)


MSAD_VIDEOS = [
    ("MSAD-I3D-abnormal-testing", "Assault_2", (3, 8)),  # T = 3 -> 48 frames
    ("MSAD-I3D-abnormal-testing", "People_falling_5", (2, 10, 8)),  # ten-crop (T, 10, F), T = 2 -> 32 frames
    ("MSAD-I3D-normal-testing", "MSAD_normal_testing_1", (2, 8)),  # 32 frames
]


def msad_labels() -> np.ndarray:
    labels = np.zeros(112)  # float64, as released
    labels[10:40] = 1  # Assault_2: (10, 40)
    labels[48:53] = 1  # People_falling_5: (0, 5) ...
    labels[68:80] = 1  # ... and (20, 32), up to its last frame
    return labels


def test_msad_splits_the_released_frame_labels_per_video(tmp_path):
    path = msad_release(tmp_path, MSAD_VIDEOS, msad_labels())
    truth = read_ground_truth(path, "msad")
    assert list(truth) == ["Assault_2", "People_falling_5", "MSAD_normal_testing_1"]
    assert truth["Assault_2"] == VideoTruth("Assault_2", "Assault", ((10, 40),))
    assert truth["People_falling_5"] == VideoTruth("People_falling_5", "People_falling", ((0, 5), (20, 32)))
    assert truth["MSAD_normal_testing_1"] == VideoTruth("MSAD_normal_testing_1", "Normal", ())
    assert truth["People_falling_5"].origin == f"{path}:2"
    # Rebuilding the released vector from the spans gives it back (the 16 * T grid of the features).
    rebuilt = np.concatenate([vadclip_frame_labels(truth[name].spans, shape[0], 16) for _, name, shape in MSAD_VIDEOS])
    assert np.array_equal(rebuilt, msad_labels())


def test_msad_gt_and_features_elsewhere(tmp_path):
    feats = tmp_path / "features"
    msad_release(feats, MSAD_VIDEOS)
    gt = tmp_path / "labels.npy"
    np.save(gt, msad_labels().astype(np.uint8))
    path = write(tmp_path / "lists" / "test.list", "\n".join(f"{AUTHORS}/{f}/{n}_i3d.npy" for f, n, _ in MSAD_VIDEOS))
    raises_at(read_msad, path, f"{path}:1: field 1 (feature file)", "not found")
    assert read_msad(path, gt=gt, features=feats)["Assault_2"].spans == ((10, 40),)


def test_msad_errors(tmp_path):
    too_short = msad_release(tmp_path / "a", MSAD_VIDEOS, msad_labels()[:96])
    raises_at(read_msad, too_short, str(tmp_path / "a" / "gt-MSAD-WS-new.npy"), "96 frame labels", "112 frames")
    labels = msad_labels()
    labels[100] = 1
    normal_hot = msad_release(tmp_path / "b", MSAD_VIDEOS, labels)
    raises_at(read_msad, normal_hot, f"{normal_hot}:3: field 1 (feature file)", "normal video", "misaligned")
    labels = msad_labels()
    labels[:48] = 0
    abnormal_cold = msad_release(tmp_path / "c", MSAD_VIDEOS, labels)
    raises_at(read_msad, abnormal_cold, f"{abnormal_cold}:1: field 1 (feature file)", "no abnormal frame")
    labels = msad_labels()
    labels[7] = 0.5
    half = msad_release(tmp_path / "d", MSAD_VIDEOS, labels)
    raises_at(read_msad, half, "gt-MSAD-WS-new.npy", "index 7", "neither 0 nor 1")
    no_gt = msad_release(tmp_path / "e", MSAD_VIDEOS)
    raises_at(read_msad, no_gt, f"{no_gt}: no MSAD frame labels", "gt-MSAD-WS-new.npy")
    dup_text = f"{AUTHORS}/MSAD-I3D-abnormal-testing/Assault_2_i3d.npy\n" * 2
    dup = msad_release(tmp_path / "f", MSAD_VIDEOS, msad_labels(), list_text=dup_text)
    raises_at(read_msad, dup, f"{dup}:2: field 1 (feature file)", "duplicate", ":1")
    odd = msad_release(tmp_path / "g", MSAD_VIDEOS, msad_labels(), list_text=f"{AUTHORS}/x/Assault_i3d.npy\n")
    raises_at(read_msad, odd, f"{odd}:1: field 1 (feature file)", "<Class>_<number>")


# ------------------------------------------------------------------------------------------ dispatcher and summary


def test_dispatcher(tmp_path):
    path = write(tmp_path / "annotations.txt", XD_TEXT)
    assert read_ground_truth(path, "xd") == read_xd(path)
    assert read_ground_truth(str(path), "xd").source == str(path)
    with pytest.raises(ValueError, match="unknown ground-truth format 'sht'.*ucf, xd, ubnormal, msad"):
        read_ground_truth(path, "sht")
    missing = tmp_path / "nope" / "annotations.txt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        read_ground_truth(missing, "ucf")
    with pytest.raises(GroundTruthError, match="is a directory"):
        read_ground_truth(tmp_path, "ucf")
    assert FORMATS == ("ucf", "xd", "ubnormal", "msad")


def test_summary_numbers(tmp_path):
    truth = read_ucf_temporal(write(tmp_path / "ucf.txt", UCF_DEFECTS))
    assert summarize(truth) == {
        "videos": 3, "abnormal_videos": 2, "normal_videos": 1, "spans": 3, "frames_covered": 128 + 79 + 95,
        "categories": {
            "Collapse": {"videos": 1, "abnormal_videos": 1, "normal_videos": 0, "spans": 2, "frames_covered": 174},
            "Fighting": {"videos": 1, "abnormal_videos": 1, "normal_videos": 0, "spans": 1, "frames_covered": 128},
            "Normal": {"videos": 1, "abnormal_videos": 0, "normal_videos": 1, "spans": 0, "frames_covered": 0},
        },
    }
    ubn = summarize(read_ubnormal(ubnormal_tree(tmp_path / "ubn", UBN_TRACKS, UBN_LIST)))
    assert {k: v for k, v in ubn.items() if k != "categories"} == {
        "videos": 3, "abnormal_videos": 2, "normal_videos": 1, "spans": 4, "frames_covered": 21 + 1 + 5 + 21}
    # Overlapping spans count their frames once.
    overlapping = GroundTruth({"v": VideoTruth("v", "X", ((0, 10), (5, 15)))})
    assert summarize(overlapping)["frames_covered"] == 15
    assert summarize(GroundTruth())["videos"] == 0


def test_groundtruth_does_not_import_gt_formats():
    source = Path(__file__).resolve().parents[1] / "src" / "alertclip" / "eval" / "groundtruth.py"
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert "gt_formats" not in (node.module or "") and all(a.name != "gt_formats" for a in node.names)


# ------------------------------------------------------------------------------------------------------ gt check CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alertclip", "gt", "check", *args], capture_output=True, text=True,
                          timeout=120)


def test_gt_check_text_and_json(tmp_path):
    path = write(tmp_path / "annotations.txt", XD_TEXT)
    text = run_cli(str(path), "--format", "xd")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{path} (xd ground truth)"
    assert "  videos           4" in lines and "  spans            6" in lines
    assert any(line.split() == ["G-B2-B6", "1", "1", "2", str(35 + 657)] for line in lines), text.stdout
    as_json = run_cli(str(path), "--format", "xd", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["file"] == str(path) and report["format"] == "xd"
    assert (report["videos"], report["abnormal_videos"], report["spans"]) == (4, 4, 6)
    assert report["frames_covered"] == (613 + 72) + (35 + 657) + 117 + 10
    assert report["categories"]["B2"] == {"videos": 1, "abnormal_videos": 1, "normal_videos": 0, "spans": 2,
                                          "frames_covered": 685}


def test_gt_check_bad_input_exits_1_with_the_message(tmp_path):
    path = write(tmp_path / "annotations.txt", XD_TEXT + "\nBad.Film__#1_label_B1-0-0 500 100\n")
    bad = run_cli(str(path), "--format", "xd")
    assert bad.returncode == 1 and bad.stdout == ""
    assert f"{path}:6: field 2 (start of span 1)" in bad.stderr and "after end" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_gt_check_through_the_entry_point(tmp_path, capsys):
    path = ubnormal_tree(tmp_path, UBN_TRACKS, UBN_LIST)
    assert cli.main(["gt", "check", str(path), "--format", "ubnormal", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["categories"]["Abnormal"]["spans"] == 4 and report["normal_videos"] == 1
    assert cli.main(["gt", "check", str(tmp_path / "missing.txt"), "--format", "ucf"]) == 1
    err = capsys.readouterr().err
    assert "missing.txt" in err and "does not exist" in err
    msad = msad_release(tmp_path / "msad", MSAD_VIDEOS, msad_labels()[:-16])
    assert cli.main(["gt", "check", str(msad), "--format", "msad"]) == 1
    assert "frame labels" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["gt", "check", str(path), "--format", "sht"])
    assert usage.value.code == 2
