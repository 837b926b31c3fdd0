"""Stage ``testset@<key>``: one evaluation dataset's ground truth, read in its published format and checked
against its test videos.

A dataset (params ``eval.datasets.<key>``) names a ground-truth file in its benchmark's published format and where
its test videos come from: the source's own test videos (``data/frames``, decoded by the frames stage) or a directory
of video files, decoded here into ``data/testsets/<key>/frames`` in the frames stage's layout. The checks are the
ones whose absence cost VadCLIP's users weeks (a ground truth of one length scored against features of another):

* a video in the ground truth that has no decoded test video is an error naming the ground-truth line and where the
  videos were looked for;
* a test video without a ground-truth line is normal only if its name holds one of the dataset's normal markers
  (``normal_markers``, else the format's rule: UCF ``Normal``, XD ``label_A``, ...); otherwise an error names both;
* a span ending past the video's last decoded frame is an error naming the line, the video and its frame count
  (after rescaling, an end within one decoded frame of the end is the ceil's rounding and is clamped to it).

Ground-truth frame numbers count the video's NATIVE frames (every benchmark's convention, VAGTA-synth's too); the
frames stage decodes at ``frames.fps``. Each span is rescaled by ``frames.fps / native fps`` (the probed rate of that
video) to the decoded numbering, widened outward (``floor`` start, ``ceil`` end) so no annotated frame is lost; at the
native rate this is the identity. Without it a 30 fps video decoded at 25 fps had its spans 20% late.

Output (``data/testsets/<key>/``): ``truth.json`` (every test video, normal ones with no spans, keyed by the name the
features use) and ``videos.parquet`` (video, n_frames, category, abnormal); :func:`load_testset` reads them back.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from ..io import write_json
from ..params import DatasetParams
from ..paths import FRAMES_DIR
from .groundtruth import GroundTruth, GroundTruthError, VideoTruth, lookup_truth, stem_index
from .testsets import FRAMES_DIGEST_FILE, FRAMES_SUBDIR, TRUTH_FILE, VIDEOS_FILE, testset_dir


class GroundTruthMismatch(ValueError):
    """The ground truth and the videos of a dataset disagree; the message names the dataset, the file and the video."""


def read_dataset_truth(key: str, ds: DatasetParams) -> GroundTruth:
    """The dataset's ground truth in its published format, with each span's class from ``detection_ground_truth``
    where the dataset names one (:func:`with_span_classes`); a missing or malformed file names the dataset too."""
    truth = _read_truth_file(key, ds, "ground_truth", ds.ground_truth)
    if ds.detection_ground_truth is None:
        return truth
    return with_span_classes(key, truth, _read_truth_file(key, ds, "detection_ground_truth", ds.detection_ground_truth))


def _read_truth_file(key: str, ds: DatasetParams, field: str, file: str) -> GroundTruth:
    from .gt_formats import read_ground_truth

    path = Path(file)
    if not path.exists():
        raise FileNotFoundError(f"params.yaml: eval.datasets.{key}.{field}: {path} does not exist "
                                f"(dataset {ds.name!r}, format {ds.format})")
    try:
        return read_ground_truth(path, ds.format)
    except GroundTruthError as err:
        raise GroundTruthError(f"eval.datasets.{key}.{field} ({ds.name}, format {ds.format}): {err}") from None


def with_span_classes(key: str, truth: GroundTruth, detection: GroundTruth) -> GroundTruth:
    """``truth`` with every abnormal video's spans and their classes taken from ``detection`` (a file naming a class
    per span, e.g. XD's ``annotations_multiclasses.txt``), after checking that both files label the same frames of the
    same videos: the frame ground truth stays that of ``truth``, detection gets one instance per class span."""
    from .gt_formats import merged_spans

    where = f"eval.datasets.{key}.detection_ground_truth"
    unclassed = next((e for e in detection.values() if not e.classes), None)
    if unclassed is not None:
        raise GroundTruthError(f"{unclassed.origin or detection.source}: {where}: this file names no class per span; "
                               f"expected one such as XD-Violence's annotations_multiclasses.txt ('name class start end ...')")
    out = {}
    for name, entry in truth.items():
        det = detection.get(name)
        if not entry.spans:
            if det is not None:
                raise GroundTruthMismatch(f"{det.origin}: {name} has spans in {where} but is normal in {truth.source}")
            out[name] = entry
            continue
        if det is None:
            raise GroundTruthMismatch(f"{entry.origin}: {name} has no line in {detection.source} ({where})")
        if merged_spans(det.spans) != merged_spans(entry.spans):
            raise GroundTruthMismatch(f"{det.origin}: the spans of {name} cover other frames than {entry.origin}: "
                                      f"{[list(s) for s in merged_spans(det.spans)]} vs "
                                      f"{[list(s) for s in merged_spans(entry.spans)]}")
        out[name] = VideoTruth(name, entry.category, det.spans, det.origin, det.classes)
    extra = next((e for name, e in detection.items() if name not in truth), None)
    if extra is not None:
        raise GroundTruthMismatch(f"{extra.origin}: {extra.name} ({where}) has no line in {truth.source}")
    return GroundTruth(out, source=str(truth.source))


def normal_markers(ds: DatasetParams) -> tuple[str, ...]:
    from .gt_formats import NORMAL_MARKERS

    return tuple(ds.normal_markers) if ds.normal_markers is not None else NORMAL_MARKERS[ds.format]


def _test_videos(frames_dir: Path) -> dict[str, tuple[int, float]]:
    """``{video: (decoded frames, native fps)}`` of the decoded test videos in a frames directory."""
    import polars as pl

    media = pl.read_parquet(frames_dir / "media.parquet")
    ok = media.filter((pl.col("status") == "ok") & (pl.col("split") == "test"))
    return {v: (int(n), float(f)) for v, n, f in zip(ok["path"].to_list(), ok["n_frames"].to_list(), ok["fps"].to_list())}


def rescale_span(span: tuple[int, int], native_fps: float, fps: float) -> tuple[int, int]:
    """A span in native frame numbers -> decoded frame numbers at ``fps`` (outward: floor start, ceil end)."""
    if native_fps <= 0 or native_fps == fps:
        return span
    ratio = fps / native_fps
    return int(math.floor(span[0] * ratio)), int(math.ceil(span[1] * ratio))


def _bad_media(frames_dir: Path) -> dict[str, str]:
    import polars as pl

    media = pl.read_parquet(frames_dir / "media.parquet")
    bad = media.filter((pl.col("status") != "ok") & (pl.col("split") == "test"))
    return dict(zip(bad["path"].to_list(), bad["status"].to_list()))


def check_testset(key: str, ds: DatasetParams, truth: GroundTruth, videos: dict[str, tuple[int, float]],
                  where: str, fps: float, bad_media: dict[str, str] | None = None) -> GroundTruth:
    """Match the ground truth to the decoded test videos (``{video: (n_frames, native fps)}``, decoded at ``fps``);
    every disagreement raises :class:`GroundTruthMismatch`.

    Returns the ground truth keyed by the videos' own names, spans in decoded frame numbers, with an empty entry for
    each normal-by-name video.
    """
    from .gt_formats import is_normal_name

    label = f"eval.datasets.{key} ({ds.name})"
    index = stem_index(truth)
    markers = normal_markers(ds)
    matched: dict[str, VideoTruth] = {}
    used: set[str] = set()
    unlabelled = []
    for video in sorted(videos):
        entry = lookup_truth(truth, video, index)
        if entry is None:
            if not is_normal_name(video, ds.format, markers):
                unlabelled.append(video)
                continue
            entry = VideoTruth(video, "Normal", (), "")
        else:
            used.add(entry.name)
        matched[video] = entry
    if unlabelled:
        raise GroundTruthMismatch(f"{label}: {len(unlabelled)} test video(s) in {where} have no line in {truth.source} and "
                           f"no normal marker {markers} in their name, e.g. {unlabelled[:3]}: add them to the ground "
                           f"truth or set eval.datasets.{key}.normal_markers")
    missing = [e for name, e in truth.items() if name not in used]
    if missing:
        def why(name: str) -> str:
            status = lookup_truth(bad_media or {}, name)  # a video that is there but failed to decode
            return f" (its file failed to decode: {status})" if status else ""

        shown = "; ".join(f"{e.origin or truth.source}: {e.name}{why(e.name)}" for e in missing[:5])
        raise GroundTruthMismatch(f"{label}: {len(missing)} ground-truth video(s) have no decoded test video in {where}: "
                           f"{shown}")
    rescaled = {}
    for video, entry in matched.items():
        n, native = videos[video]
        spans = tuple(rescale_span(s, native, fps) for s in entry.spans)
        rate = (fps, native) if native > 0 else (1, 1)
        for (start, end), (s0, e0) in zip(spans, entry.spans):
            # ceil(e0 * ratio) may pass the decoded count by one though the span ends within the video (299 native
            # frames at 30 fps decode to 249 at 25 fps, ceil(299 * 25 / 30) = 250): only a native end at or past
            # the decoded frame after the last (e0 * fps / native >= n + 1) is past the video's end; the overshoot is
            # clamped (compared without dividing, so an end landing exactly on n + 1 is not lost to rounding)
            if e0 * rate[0] >= (n + 1) * rate[1]:
                raise GroundTruthMismatch(f"{entry.origin or truth.source}: span ({s0}, {e0}) of {entry.name} ends past the "
                                   f"video's end: {where}/{video} has {n} frames at {fps:g} fps (native {native:g} fps: "
                                   f"the span ends at decoded frame {end}) ({label})")
        spans = tuple((start, min(end, n)) for start, end in spans)
        rescaled[video] = VideoTruth(video, entry.category, spans, entry.origin, entry.classes)
    return GroundTruth(rescaled, source=str(truth.source))


def tree_digest(root: Path) -> str:
    """sha256 over every file under ``root`` (relative path and bytes, in path order), dotfiles aside: engine markers
    such as Snakemake's ``.snakemake_timestamp`` in a directory output (.dvcignore'd too) are not data."""
    h = hashlib.sha256()
    files = (p for p in Path(root).rglob("*") if p.is_file())
    for path in sorted(p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def build_testset(key: str, ds: DatasetParams, frame_settings, shard_mb: int = 512, workers: int = 0,
                  progress: bool = True) -> dict:
    """Write ``data/testsets/<key>/`` (decoding external test videos first); return the summary."""
    import polars as pl

    from ..data.frames import video_jobs, write_frames
    from .gt_formats import summarize

    truth = read_dataset_truth(key, ds)  # before any decoding: a bad file fails in seconds
    out = testset_dir(key)
    out.mkdir(parents=True, exist_ok=True)
    if ds.own_frames:
        frames, where = FRAMES_DIR, f"{FRAMES_DIR} (split test)"
        (out / FRAMES_DIGEST_FILE).write_text(tree_digest(FRAMES_DIR) + "\n", encoding="utf-8")
    else:
        root = Path(ds.videos)
        if not root.is_dir():
            raise FileNotFoundError(f"params.yaml: eval.datasets.{key}.videos: {root} is not a directory")
        jobs = video_jobs(root)
        if not jobs:
            raise GroundTruthMismatch(f"eval.datasets.{key}.videos: no video files under {root}")
        frames, where = out / FRAMES_SUBDIR, str(root)
        write_frames(jobs, frames, frame_settings, shard_mb, workers, progress)
    videos = _test_videos(frames)
    checked = check_testset(key, ds, truth, videos, where, frame_settings.fps, _bad_media(frames))
    detection = {} if ds.detection_ground_truth is None else {"detection_ground_truth": {
        # not a dvc.yaml dep (a null path cannot be one): its hash here shows which file gave the span classes
        "path": ds.detection_ground_truth, "sha256": hashlib.sha256(Path(ds.detection_ground_truth).read_bytes()).hexdigest()}}
    write_json(out / TRUTH_FILE, {
        "dataset": ds.name, "format": ds.format, "ground_truth": ds.ground_truth, **detection,
        "normal_markers": list(normal_markers(ds)),
        "videos": {v: {"category": e.category, "spans": [list(s) for s in e.spans], "origin": e.origin,
                       **({"classes": list(e.classes)} if e.classes else {})} for v, e in checked.items()}})
    table = pl.DataFrame({"video": list(checked), "n_frames": [videos[v][0] for v in checked],
                          "category": [e.category for e in checked.values()],
                          "abnormal": [bool(e.spans) for e in checked.values()]},
                         schema={"video": pl.String, "n_frames": pl.Int64, "category": pl.String, "abnormal": pl.Boolean})
    table.write_parquet(out / VIDEOS_FILE)
    return {"dataset": ds.name, "format": ds.format, "ground_truth": summarize(truth), "test_videos": len(checked),
            "abnormal_test_videos": int(table["abnormal"].sum()), "frames": int(table["n_frames"].sum())}


