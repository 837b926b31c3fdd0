"""Stage ``testset@<key>``: a dataset's ground truth in its published format, checked against its decoded test videos.

Real files throughout: UCF-format ground-truth files, a frames directory's ``media.parquet`` written by hand where the
decoding is not the point, and tiny real videos (ffmpeg) decoded by ``write_frames`` where it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import ffmpeg
import numpy as np
import polars as pl
import pytest
from repo_params import repo_params

from alertclip.data.frames import FrameSettings
from alertclip.eval.groundtruth import GroundTruth, GroundTruthError, VideoTruth
from alertclip.eval.testset_check import (
    GroundTruthMismatch,
    build_testset,
    check_testset,
    normal_markers,
    read_dataset_truth,
    rescale_span,
)
from alertclip.eval.testsets import load_testset
from alertclip.params import DatasetParams
from alertclip.paths import FRAMES_DIR, TESTSETS_DIR

SETTINGS = FrameSettings(fps=25, width=32, height=32, clip_frames=8, snippet_len=16)
FIGHT = "Videos/Fighting/Fighting001_x264.mp4"
NORMAL = "Videos/Normal/Normal_Videos_001_x264.mp4"


def _ucf(path: Path, *lines: str, eol: str = "\n", bom: bool = False) -> Path:
    """A Temporal_Anomaly_Annotation.txt as UCF-Crime ships it: two-space separated, two trailing spaces (``eol``
    ``"\\r\\n"`` and ``bom``: as a copy saved on Windows has it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{line}  {eol}" for line in lines)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def _media(frames_dir: Path, rows: list[tuple]) -> Path:
    """A frames directory's media.parquet: rows (path, split, status, n_frames, native fps)."""
    frames_dir.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({
        "path": [r[0] for r in rows], "status": [r[2] for r in rows],
        "reason": ["" if r[2] == "ok" else f"injected {r[2]}" for r in rows],
        "fps": [float(r[4]) for r in rows], "width": [32] * len(rows), "height": [32] * len(rows),
        "duration_s": [r[3] / 25 for r in rows], "codec": ["h264"] * len(rows),
        "split": [r[1] for r in rows], "n_frames": [r[3] for r in rows],
    }).write_parquet(frames_dir / "media.parquet")
    return frames_dir


def _ds(gt: Path | str, videos: str = "data/frames", normal_markers: list[str] | None = None, **kw) -> DatasetParams:
    """A UCF-format dataset entry: params.yaml's eval.datasets.synth with the toy's name, ground truth and videos;
    ``normal_markers`` None is the format's rule."""
    return repo_params("eval.datasets.synth", name="UCF-toy", format="ucf", ground_truth=str(gt), videos=videos,
                       normal_markers=normal_markers, **kw)


def _render(path: Path, fps: int, seconds: float, size: tuple[int, int] = (40, 30)) -> Path:
    """A tiny real h264 video: a bright bar sweeping across a dark frame."""
    w, h = size
    n = int(round(fps * seconds))
    frames = np.full((n, h, w, 3), 20, np.uint8)
    for k in range(n):
        x = k * (w - 4) // max(n - 1, 1)
        frames[k, :, x:x + 4] = (250, 200, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
     .output(str(path), vcodec="libx264", pix_fmt="yuv420p", crf=20)
     .global_args("-loglevel", "error", "-nostdin").overwrite_output().run(input=frames.tobytes()))
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """The stage writes data/testsets/<key> relative to the repository root: run it in a temporary one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------------------- the checks


def test_ground_truth_video_without_decoded_video_names_the_line_and_the_source(in_tmp):
    gt = _ucf(in_tmp / "gt" / "Temporal_Anomaly_Annotation.txt",
              "Fighting001_x264.mp4  Fighting  30  60  -1  -1",
              "Arson003_x264.mp4  Arson  16  40  -1  -1")
    # Arson003 was decoded, but as a training video: the test split has no such video
    _media(in_tmp / FRAMES_DIR, [(FIGHT, "test", "ok", 100, 25), (NORMAL, "test", "ok", 100, 25),
                                 ("Videos/Arson/Arson003_x264.mp4", "train", "ok", 100, 25)])
    with pytest.raises(GroundTruthMismatch) as exc:
        build_testset("toy", _ds(gt), SETTINGS, progress=False)
    msg = str(exc.value)
    assert f"{gt}:2: Arson003_x264.mp4" in msg, msg
    assert "data/frames (split test)" in msg and "eval.datasets.toy (UCF-toy)" in msg, msg
    assert "Fighting001" not in msg and "failed to decode" not in msg, msg


def test_test_video_without_line_or_normal_marker_names_the_video_and_the_file(in_tmp):
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1")
    _media(in_tmp / FRAMES_DIR, [(FIGHT, "test", "ok", 100, 25), (NORMAL, "test", "ok", 100, 25),
                                 ("Videos/Shooting/Shooting007_x264.mp4", "test", "ok", 100, 25)])
    with pytest.raises(GroundTruthMismatch) as exc:
        build_testset("toy", _ds(gt), SETTINGS, progress=False)
    msg = str(exc.value)
    assert "Videos/Shooting/Shooting007_x264.mp4" in msg and str(gt) in msg, msg
    assert "('Normal',)" in msg and "eval.datasets.toy.normal_markers" in msg, msg
    assert NORMAL not in msg  # the normal-by-name video is fine
    assert not (in_tmp / TESTSETS_DIR / "toy" / "truth.json").exists()


def test_normal_markers_are_the_datasets_own(tmp_path, params_of):
    gt = _ucf(tmp_path / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1")
    quiet = "Videos/Street/Quiet_street_01.mp4"
    videos = {FIGHT: (100, 25.0), quiet: (80, 25.0)}
    # the format's rule (UCF: "Normal") does not cover the dataset's naming ...
    default = _ds(gt, normal_markers=None)
    assert normal_markers(default) == ("Normal",)
    # null is said, never assumed: an entry without the key fails naming it
    with pytest.raises(ValueError, match=r"normal_markers\n +Field required"):
        DatasetParams.model_validate({k: v for k, v in default.model_dump().items() if k != "normal_markers"})
    with pytest.raises(GroundTruthMismatch, match=r"Quiet_street_01\.mp4.*eval\.datasets\.toy\.normal_markers"):
        check_testset("toy", default, read_dataset_truth("toy", default), videos, "vids", 25)
    # ... its own markers do: the unlisted video is normal (no spans), listed as such in the checked truth
    custom = _ds(gt, normal_markers=["Quiet"])
    checked = check_testset("toy", custom, read_dataset_truth("toy", custom), videos, "vids", 25)
    assert checked[quiet] == VideoTruth(quiet, "Normal", ())
    assert checked[FIGHT].spans == ((30, 60),)
    # they replace the format's rule rather than add to it
    with pytest.raises(GroundTruthMismatch, match="Normal_Videos_001"):
        check_testset("toy", custom, read_dataset_truth("toy", custom), {**videos, NORMAL: (50, 25.0)}, "vids", 25)
    xd = params_of("eval.datasets.synth", name="XD", format="xd", ground_truth="a.txt", normal_markers=None)
    assert normal_markers(xd) == ("label_A",)


def test_span_past_the_videos_end_names_line_video_and_frame_count(in_tmp):
    gt = _ucf(in_tmp / "gt.txt", "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1",
              "Fighting001_x264.mp4  Fighting  30  60  90  120")
    _media(in_tmp / FRAMES_DIR, [(FIGHT, "test", "ok", 100, 25), (NORMAL, "test", "ok", 100, 25)])
    with pytest.raises(GroundTruthMismatch) as exc:
        build_testset("toy", _ds(gt), SETTINGS, progress=False)
    msg = str(exc.value)
    assert f"{gt}:2: span (90, 120) of Fighting001_x264.mp4" in msg, msg
    assert f"data/frames (split test)/{FIGHT} has 100 frames at 25 fps" in msg, msg
    # a span ending exactly on the last frame is fine (end-exclusive): 100 frames hold (90, 100)
    _ucf(gt, "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1", "Fighting001_x264.mp4  Fighting  30  60  90  100")
    build_testset("toy", _ds(gt), SETTINGS, progress=False)


def test_a_video_that_failed_to_decode_is_named_as_such(in_tmp):
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1",
              "Arson003_x264.mp4  Arson  16  40  -1  -1")
    _media(in_tmp / FRAMES_DIR, [(FIGHT, "test", "ok", 100, 25),
                                 ("Videos/Arson/Arson003_x264.mp4", "test", "truncated", 0, 25)])
    with pytest.raises(GroundTruthMismatch) as exc:
        build_testset("toy", _ds(gt), SETTINGS, progress=False)
    msg = str(exc.value)
    assert f"{gt}:2: Arson003_x264.mp4 (its file failed to decode: truncated)" in msg, msg


# ---------------------------------------------------------------------------------------------- native fps


@pytest.mark.parametrize("span, native, fps, expected", [
    ((31, 61), 25, 25, (31, 61)),  # the native rate: identity
    ((30, 60), 30, 25, (25, 50)),  # exact
    ((31, 61), 30, 25, (25, 51)),  # 25.83 -> 25, 50.83 -> 51: outward
    ((1, 2), 30, 25, (0, 2)),
    ((10, 20), 20, 25, (12, 25)),  # upsampled: 12.5 -> 12
    ((7, 9), 0, 25, (7, 9)),  # native rate unknown (probe failed): left alone
])
def test_rescale_span_rounds_outward(span, native, fps, expected):
    got = rescale_span(span, native, fps)
    assert got == expected and all(isinstance(v, int) for v in got)
    if native:
        ratio = fps / native
        assert got[0] <= span[0] * ratio and got[1] >= span[1] * ratio  # no annotated frame is lost


def test_span_end_is_judged_after_rescaling():
    truth = GroundTruth({"a.mp4": VideoTruth("a.mp4", "Fighting", ((200, 290),), "gt.txt:1"),
                         "b.mp4": VideoTruth("b.mp4", "Fighting", ((100, 150),), "gt.txt:2")}, source="gt.txt")
    ds = _ds("gt.txt")
    # a: 30 fps, 300 native frames -> 250 decoded; its end 290 is past 250, but not past the video (242 after rescaling)
    # b: 20 fps, 160 native frames -> 200 decoded
    videos = {"a.mp4": (250, 30.0), "b.mp4": (200, 20.0)}
    checked = check_testset("toy", ds, truth, videos, "vids", 25)
    assert checked["a.mp4"].spans == ((166, 242),) and checked["b.mp4"].spans == ((125, 188),)
    late = GroundTruth({**truth, "a.mp4": VideoTruth("a.mp4", "Fighting", ((200, 310),), "gt.txt:1")}, source="gt.txt")
    with pytest.raises(GroundTruthMismatch, match=r"gt\.txt:1: span \(200, 310\) of a\.mp4 .* vids/a\.mp4 has 250 frames "
                                                  r"at 25 fps \(native 30 fps: the span ends at decoded frame 259\)"):
        check_testset("toy", ds, late, videos, "vids", 25)
    # upsampled: 170 <= 200 decoded frames, yet past the video's 160 native ones (213 after rescaling)
    past = GroundTruth({**truth, "b.mp4": VideoTruth("b.mp4", "Fighting", ((100, 170),), "gt.txt:2")}, source="gt.txt")
    with pytest.raises(GroundTruthMismatch, match=r"gt\.txt:2: span \(100, 170\) of b\.mp4 .* decoded frame 213"):
        check_testset("toy", ds, past, videos, "vids", 25)


@pytest.mark.parametrize("n, native, end, spans", [
    (100, 25.0, 100, ((90, 100),)),  # the native rate: the last frame is fine ...
    (100, 25.0, 101, None),  # ... one past it is not
    (249, 30.0, 299, ((75, 249),)),  # 299 native -> 249 decoded: ceil gives 250, clamped (rounding, not an overshoot)
    (249, 30.0, 300, None),  # 300 native frames would be 250 decoded: past the end
    (200, 20.0, 160, ((112, 200),)),  # upsampled: 160 native -> 200 decoded
    (200, 20.0, 161, None),  # 201.25: past the end
])
def test_span_end_boundary_after_rescaling(n, native, end, spans):
    truth = GroundTruth({"a.mp4": VideoTruth("a.mp4", "Fighting", ((90, end),), "gt.txt:7")}, source="gt.txt")
    if spans is None:
        with pytest.raises(GroundTruthMismatch, match=rf"gt\.txt:7: span \(90, {end}\) of a\.mp4 ends past the video's "
                                                      rf"end: vids/a\.mp4 has {n} frames"):
            check_testset("toy", _ds("gt.txt"), truth, {"a.mp4": (n, native)}, "vids", 25)
        return
    checked = check_testset("toy", _ds("gt.txt"), truth, {"a.mp4": (n, native)}, "vids", 25)
    assert checked["a.mp4"].spans == spans and checked["a.mp4"].spans[0][1] <= n


@pytest.mark.parametrize("eol, bom", [("\n", False), ("\r\n", True)])
def test_own_frames_testset_is_written_in_decoded_frame_numbers(in_tmp, eol, bom):
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  150  240", eol=eol, bom=bom)
    assert gt.read_bytes().startswith(b"\xef\xbb\xbf" if bom else b"F") and gt.read_bytes().endswith(f"  {eol}".encode())
    _media(in_tmp / FRAMES_DIR, [(FIGHT, "test", "ok", 250, 30), (NORMAL, "test", "ok", 100, 25),
                                 ("Videos/Normal/Normal_Videos_900_x264.mp4", "train", "ok", 100, 25)])
    summary = build_testset("toy", _ds(gt), SETTINGS, progress=False)
    ts = load_testset("toy", _ds(gt))
    assert ts.truth[FIGHT].spans == ((25, 50), (125, 200)) and ts.truth[NORMAL].spans == ()
    assert set(ts.truth) == {FIGHT, NORMAL}  # test videos only
    assert ts.n_frames == {FIGHT: 250, NORMAL: 100} and ts.frames_dir == FRAMES_DIR and ts.name == "UCF-toy"
    assert summary["test_videos"] == 2 and summary["abnormal_test_videos"] == 1 and summary["frames"] == 350
    assert summary["ground_truth"]["spans"] == 2  # the file's own counts, in native numbers


# ---------------------------------------------------------------------------------------------- external videos


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    """A dataset's test videos as downloaded: class folders, a 30 fps and a 25 fps video, and a file that is not one."""
    root = tmp_path_factory.mktemp("videos")
    _render(root / "Fighting" / "Fighting001_x264.mp4", fps=30, seconds=2.0)  # 60 native frames
    _render(root / "Normal" / "Normal_Videos_001_x264.mp4", fps=25, seconds=1.5)  # 38 frames
    (root / "README.txt").write_text("not a video\n")
    return root


def test_build_testset_decodes_external_videos_and_load_testset_reads_them_back(in_tmp, video_dir):
    gt = _ucf(in_tmp / "ext" / "Temporal_Anomaly_Annotation.txt",
              "Fighting001_x264.mp4  Fighting  30  60  -1  -1",
              "Normal_Videos_001_x264.mp4  Normal  -1  -1  -1  -1")
    ds = _ds(gt, videos=str(video_dir))
    summary = build_testset("ext", ds, SETTINGS, progress=False)
    out = in_tmp / TESTSETS_DIR / "ext"
    frames = out / "frames"
    media = pl.read_parquet(frames / "media.parquet")
    assert sorted(media["path"]) == ["Fighting/Fighting001_x264.mp4", "Normal/Normal_Videos_001_x264.mp4"]
    assert set(media["status"]) == {"ok"} and set(media["split"]) == {"test"}
    n = dict(media.select("path", "n_frames").iter_rows())
    assert n == {"Fighting/Fighting001_x264.mp4": 50, "Normal/Normal_Videos_001_x264.mp4": 38}  # at frames.fps 25
    assert dict(media.select("path", "fps").iter_rows())["Fighting/Fighting001_x264.mp4"] == 30.0  # the native rate
    snippets = pl.read_parquet(frames / "snippets.parquet")
    assert set(snippets["video"]) == set(n) and list(frames.glob("snippets-*.npy"))

    raw = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    assert (raw["dataset"], raw["format"], raw["normal_markers"]) == ("UCF-toy", "ucf", ["Normal"])
    fight = raw["videos"]["Fighting/Fighting001_x264.mp4"]
    assert fight["spans"] == [[25, 50]] and fight["category"] == "Fighting"  # native 30 fps -> 25 fps
    assert fight["origin"] == f"{gt}:1"
    assert raw["videos"]["Normal/Normal_Videos_001_x264.mp4"]["spans"] == []
    table = pl.read_parquet(out / "videos.parquet").sort("video")
    assert table.to_dicts() == [
        {"video": "Fighting/Fighting001_x264.mp4", "n_frames": 50, "category": "Fighting", "abnormal": True},
        {"video": "Normal/Normal_Videos_001_x264.mp4", "n_frames": n["Normal/Normal_Videos_001_x264.mp4"],
         "category": "Normal", "abnormal": False}]
    assert summary["test_videos"] == 2 and summary["abnormal_test_videos"] == 1

    ts = load_testset("ext", ds)
    assert ts.key == "ext" and ts.name == "UCF-toy" and ts.frames_dir == TESTSETS_DIR / "ext" / "frames"
    assert ts.truth["Fighting/Fighting001_x264.mp4"] == VideoTruth("Fighting/Fighting001_x264.mp4", "Fighting",
                                                                   ((25, 50),))
    assert ts.n_frames == n
    assert set(ts.truth) == set(snippets["video"])  # keyed as the features will name the videos


def test_span_to_the_last_native_frame_fits_after_rescaling(in_tmp, tmp_path_factory):
    root = tmp_path_factory.mktemp("whole")
    _render(root / "Fighting" / "Fighting002_x264.mp4", fps=30, seconds=299 / 30)  # 299 native frames
    gt = _ucf(in_tmp / "gt.txt", "Fighting002_x264.mp4  Fighting  0  299  -1  -1")  # the whole video, end-exclusive
    ds = _ds(gt, videos=str(root))
    build_testset("ext", ds, SETTINGS, progress=False)
    ts = load_testset("ext", ds)
    n = ts.n_frames["Fighting/Fighting002_x264.mp4"]
    assert n == 249  # ffmpeg: 299 frames at 30 fps -> 249 at 25 fps, one fewer than ceil(299 * 25 / 30)
    assert ts.truth["Fighting/Fighting002_x264.mp4"].spans == ((0, n),)


def test_external_video_that_failed_to_decode_is_named(in_tmp, video_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    for rel in ("Fighting/Fighting001_x264.mp4", "Normal/Normal_Videos_001_x264.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((video_dir / rel).read_bytes())
    (root / "Arson").mkdir()
    (root / "Arson" / "Arson003_x264.mp4").write_bytes(b"")
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1",
              "Arson003_x264.mp4  Arson  16  40  -1  -1")
    with pytest.raises(GroundTruthMismatch) as exc:
        build_testset("ext", _ds(gt, videos=str(root)), SETTINGS, progress=False)
    msg = str(exc.value)
    assert f"{gt}:2: Arson003_x264.mp4 (its file failed to decode: zero_length)" in msg and str(root) in msg, msg


def test_missing_ground_truth_fails_before_any_decoding(in_tmp, video_dir, monkeypatch):
    from alertclip.data import frames

    def no_decoding(*a, **k):
        raise AssertionError("videos were decoded before the ground truth was read")

    monkeypatch.setattr(frames, "write_frames", no_decoding)
    monkeypatch.setattr(frames, "video_jobs", no_decoding)
    ds = _ds(in_tmp / "nowhere" / "Temporal_Anomaly_Annotation.txt", videos=str(video_dir))
    with pytest.raises(FileNotFoundError) as exc:
        build_testset("ucf_crime", ds, SETTINGS, progress=False)
    msg = str(exc.value)
    assert "eval.datasets.ucf_crime.ground_truth" in msg and "nowhere/Temporal_Anomaly_Annotation.txt" in msg, msg
    assert "'UCF-toy'" in msg and "format ucf" in msg, msg
    assert not (in_tmp / TESTSETS_DIR).exists()


def test_malformed_ground_truth_names_the_dataset_and_the_line(in_tmp, video_dir, monkeypatch):
    from alertclip.data import frames

    monkeypatch.setattr(frames, "write_frames", lambda *a, **k: pytest.fail("decoded before reading the ground truth"))
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1", "Arson003_x264.mp4  Arson  16  x")
    with pytest.raises(GroundTruthError) as exc:
        build_testset("ucf_crime", _ds(gt, videos=str(video_dir)), SETTINGS, progress=False)
    msg = str(exc.value)
    assert msg.startswith("eval.datasets.ucf_crime.ground_truth (UCF-toy, format ucf): ") and f"{gt}:2: field 4" in msg, msg
    assert not (in_tmp / TESTSETS_DIR).exists()


def test_load_testset_before_the_stage_ran_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run dvc\.yaml stage `testset@toy`"):
        load_testset("toy", _ds("gt.txt"), root=tmp_path)


def test_ubnormal_markers_are_prefixes_of_the_base_name(params_of):
    """Every abnormal UBnormal name holds ``normal_`` (``abnormal_scene_...``): as a substring, every unlisted abnormal
    video would pass as normal."""
    ds = params_of("eval.datasets.synth", name="UBnormal", format="ubnormal", ground_truth="names.txt", normal_markers=None)
    truth = GroundTruth({"abnormal_scene_1_scenario_1": VideoTruth("abnormal_scene_1_scenario_1", "Abnormal", ((3, 9),),
                                                                   "names.txt:1")}, source="names.txt")
    listed, normal = "Scene1/abnormal_scene_1_scenario_1.mp4", "Scene1/normal_scene_1_scenario_2.mp4"
    videos = {listed: (100, 30.0), normal: (100, 30.0)}
    checked = check_testset("ubnormal", ds, truth, videos, "vids", 30)
    assert checked[normal].spans == () and checked[listed].spans == ((3, 9),)
    with pytest.raises(GroundTruthMismatch, match="abnormal_scene_2_scenario_3"):
        check_testset("ubnormal", ds, truth, {**videos, "Scene2/abnormal_scene_2_scenario_3.mp4": (100, 30.0)}, "vids", 30)


def test_videos_directory_missing_or_without_videos_is_named(in_tmp, tmp_path_factory):
    gt = _ucf(in_tmp / "gt.txt", "Fighting001_x264.mp4  Fighting  30  60  -1  -1")
    with pytest.raises(FileNotFoundError, match=r"eval\.datasets\.ext\.videos: .*nowhere is not a directory"):
        build_testset("ext", _ds(gt, videos=str(in_tmp / "nowhere")), SETTINGS, progress=False)
    empty = tmp_path_factory.mktemp("novideos")
    (empty / "Fighting").mkdir()
    (empty / "Fighting" / "Fighting001_x264.txt").write_text("not a video\n")
    with pytest.raises(GroundTruthMismatch, match=rf"eval\.datasets\.ext\.videos: no video files under {empty}"):
        build_testset("ext", _ds(gt, videos=str(empty)), SETTINGS, progress=False)
    assert not list((in_tmp / TESTSETS_DIR).rglob("*.json"))  # no truth.json for a dataset whose videos are not there
