"""Video anomaly detection metrics computed the way the field computes them, so numbers compare with published ones.

Protocols reproduced (see ``shared/reference/vad-protocols.md``, sections C and D):

* **Ground truth files.** UCF-Crime ``Temporal_Anomaly_Annotation.txt`` (:func:`read_ucf_temporal`) and XD-Violence
  ``annotations.txt`` (:func:`read_xd_annotations`). Both give raw frame numbers; pairs of ``-1`` mean "no span".
* **Frame-level ground truth and scores.** ``protocol="vadclip"`` is VadCLIP's ``make_gt_*.py`` plus its test loop:
  exactly ``16 * T`` frames per video for ``T`` snippet scores, scores ``np.repeat``-ed by 16
  (:func:`vadclip_frame_labels`, :func:`expand_scores`). ``protocol="exact"`` labels each real frame instead
  (:func:`exact_frame_labels`), with LAVAD's inclusive end available. :func:`build_frame_level` pools the videos.
* **AUC / AP** on pooled frames (:func:`frame_auc_ap`): sklearn ``roc_auc_score`` and ``average_precision_score``, or
  the trapezoid ``auc(recall, precision)`` of XDVioDet / LAVAD.
* **Temporal detection mAP@IoU** as VadCLIP's ``detectionMAP`` (:func:`detection_map`), quirks behind switches.
* **Mean sign score** (:func:`mean_sign_score`) and **zero-shot binary scores** (:func:`zero_shot_scores`).
* **Bootstrap over test videos** (:func:`bootstrap_mss`, :func:`bootstrap_auc_ap` and their paired forms
  :func:`paired_bootstrap_mss`, :func:`paired_bootstrap_auc_ap`): 95% percentile intervals that say whether a gap
  between two backbones survives resampling the test videos.

The AUC/AP numbers come from sklearn itself (the functions the published code calls); this module only checks the
input first, so that a bad pooled array fails with a message instead of a warning and a NaN.

Errors are :class:`ValueError` subclasses that name the file and line (ground truth) or the video (scores).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from sklearn.metrics import auc as sklearn_auc
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = [
    "CLIP_LEN",
    "DEFAULT_BOOTSTRAP",
    "DETECTION_IOUS",
    "NORMAL_NAME_MARKERS",
    "BootstrapCI",
    "DetectionMAP",
    "FrameLevel",
    "GroundTruth",
    "GroundTruthError",
    "MeanSignScore",
    "MetricError",
    "ScoreError",
    "VideoTruth",
    "average_precision",
    "bootstrap_auc_ap",
    "bootstrap_mss",
    "bootstrap_video_indices",
    "build_frame_level",
    "detection_ground_truth",
    "detection_map",
    "exact_frame_labels",
    "expand_scores",
    "frame_auc_ap",
    "lookup_truth",
    "mean_sign_score",
    "paired_bootstrap_auc_ap",
    "paired_bootstrap_mss",
    "prompt_set_embedding",
    "pr_auc_trapezoid",
    "read_ucf_temporal",
    "read_xd_annotations",
    "roc_auc",
    "temporal_nms",
    "vadclip_frame_labels",
    "zero_shot_scores",
]

CLIP_LEN = 16
"""Frames per snippet in VadCLIP's feature protocol (one CLIP vector per 16 frames)."""

NORMAL_NAME_MARKERS = ("Normal", "label_A")
"""Name fragments of normal test videos: UCF ``Normal_Videos_*``, XD ``*_label_A``."""

DETECTION_IOUS = (0.1, 0.2, 0.3, 0.4, 0.5)
"""IoU thresholds of VadCLIP's mAP table."""

# Extensions stripped when a video is looked up by stem; a bare Path.stem would cut XD names such as
# "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A" at their first dot.
_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".npy")
_CROP_SUFFIX = re.compile(r"__\d+$")  # VadCLIP feature files: <video>__<crop>.npy


class GroundTruthError(ValueError):
    """A ground-truth file or table is malformed; the message names file:line and the field."""


class ScoreError(ValueError):
    """Scores or features of a video do not fit the protocol; the message names the video."""


class MetricError(ValueError):
    """A metric is undefined for the given input (e.g. AUC with one class only)."""


# --------------------------------------------------------------------------------------------------------------------
# Ground truth files
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTruth:
    """One annotated video: ``spans`` are raw ``(start, end)`` annotation numbers, ``-1`` pairs already dropped.

    ``origin`` ("file:line") is kept for error messages only and does not take part in equality.
    """

    name: str
    category: str
    spans: tuple[tuple[int, int], ...]
    origin: str = field(default="", compare=False)


class GroundTruth(dict[str, VideoTruth]):
    """``dict`` of video name -> :class:`VideoTruth` that remembers where it was read from (for error messages)."""

    def __init__(self, entries: Mapping[str, VideoTruth] | None = None, source: str = "<in-memory ground truth>"):
        super().__init__(entries or {})
        self.source = source


def _field_error(path: Path, lineno: int, index: int, what: str, problem: str) -> GroundTruthError:
    return GroundTruthError(f"{path}:{lineno}: field {index} ({what}): {problem}")


def _span_field_name(number_index: int) -> str:
    pair, side = divmod(number_index, 2)
    return f"{'start' if side == 0 else 'end'} of span {pair + 1}"


def _parse_spans(tokens: Sequence[str], first_field: int, path: Path, lineno: int) -> tuple[tuple[int, int], ...]:
    """Pairs of raw frame numbers; ``-1 -1`` pairs are placeholders and are dropped.

    Stricter than the reference scripts, which would silently skip a pair with a single ``-1`` or a reversed span:
    those are typos in an annotation file, so they raise here instead of changing the numbers unnoticed.
    """
    if len(tokens) % 2:
        raise _field_error(path, lineno, first_field + len(tokens) - 1, _span_field_name(len(tokens) - 1),
                           f"odd number of frame numbers ({len(tokens)}); expected start/end pairs")
    numbers = []
    for k, token in enumerate(tokens):
        try:
            value = int(token)
        except ValueError:
            raise _field_error(path, lineno, first_field + k, _span_field_name(k),
                               f"expected an integer frame number, got {token!r}") from None
        if value < -1:
            raise _field_error(path, lineno, first_field + k, _span_field_name(k),
                               f"negative frame number {value} (only -1 marks a missing span)")
        numbers.append(value)
    spans = []
    for k in range(0, len(numbers), 2):
        start, end = numbers[k], numbers[k + 1]
        if start == -1 and end == -1:
            continue
        if start == -1 or end == -1:
            bad = k if start == -1 else k + 1
            raise _field_error(path, lineno, first_field + bad, _span_field_name(bad),
                               f"span ({start}, {end}) has only one -1; both or neither must be -1")
        if start > end:
            raise _field_error(path, lineno, first_field + k, _span_field_name(k),
                               f"start {start} is after end {end}")
        spans.append((start, end))
    return tuple(spans)


def _numbered_lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of each non-blank line; any whitespace separates fields."""
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            tokens = line.split()
            if tokens:
                yield lineno, tokens


def _add_entry(table: GroundTruth, entry: VideoTruth, path: Path, lineno: int) -> None:
    if entry.name in table:
        raise _field_error(path, lineno, 1, "video name",
                           f"duplicate video {entry.name!r} (first at {table[entry.name].origin})")
    table[entry.name] = entry


def read_ucf_temporal(path: str | Path) -> GroundTruth:
    """Read UCF-Crime's ``Temporal_Anomaly_Annotation.txt``: ``name  category  s1  e1  s2  e2``.

    The original separates fields by two spaces and ends each line with them (VadCLIP splits on ``"  "`` and drops the
    trailing empty field); any whitespace is accepted here, which gives the same fields. Keys are the names as
    written (``Fighting016_x264.mp4``); use :func:`lookup_truth` for paths or stems. Normal videos appear with
    ``-1`` pairs only, so their ``spans`` are empty.
    """
    path = Path(path)
    table = GroundTruth(source=str(path))
    for lineno, tokens in _numbered_lines(path):
        if len(tokens) < 2:
            raise _field_error(path, lineno, 2, "category", "missing (expected: name category start end ...)")
        if _is_int(tokens[1]):
            raise _field_error(path, lineno, 2, "category", f"expected a class name, got the number {tokens[1]!r}")
        spans = _parse_spans(tokens[2:], 3, path, lineno)
        _add_entry(table, VideoTruth(tokens[0], tokens[1], spans, f"{path}:{lineno}"), path, lineno)
    return table


def read_xd_annotations(path: str | Path) -> GroundTruth:
    """Read XD-Violence's ``annotations.txt``: ``name s1 e1 s2 e2 ...``, whitespace separated, all pairs used.

    XD lists abnormal videos only; normal ones carry ``label_A`` in their name (make_gt_xd.py), and
    :func:`build_frame_level` counts them normal through ``normal_name_markers``. ``category`` is the label code after
    ``label_`` in the name (e.g. ``B2-0-0`` or ``G-B2-B6``), empty if the name has none. A ``label_A`` video with
    spans contradicts itself and raises.
    """
    path = Path(path)
    table = GroundTruth(source=str(path))
    for lineno, tokens in _numbered_lines(path):
        name = tokens[0]
        spans = _parse_spans(tokens[1:], 2, path, lineno)
        category = name.rsplit("label_", 1)[1] if "label_" in name else ""
        if category == "A" and spans:
            raise _field_error(path, lineno, 2, _span_field_name(0), f"normal video {name!r} (label_A) has spans")
        _add_entry(table, VideoTruth(name, category, spans, f"{path}:{lineno}"), path, lineno)
    return table


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _stem(name: str) -> str:
    """Base name without a known video/feature extension and without a ``__<crop>`` feature suffix."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _VIDEO_EXTENSIONS:
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    return _CROP_SUFFIX.sub("", base)


def _stem_index(truth: Mapping[str, VideoTruth]) -> dict[str, str | None]:
    """stem -> key; ``None`` marks a stem shared by two keys (e.g. ``a.mp4`` and ``a.avi``), which must not match."""
    index: dict[str, str | None] = {}
    for key in truth:
        stem = _stem(key)
        index[stem] = None if stem in index and index[stem] != key else key
    return index


def lookup_truth(truth: Mapping[str, VideoTruth], name: str,
                 index: Mapping[str, str | None] | None = None) -> VideoTruth | None:
    """The entry of ``name``: the exact key, else by base name, else by stem; ``None`` when there is none.

    ``name`` may be a key (``Fighting016_x264.mp4``), a path (``VAGTA_synth/Videos/Fighting/Fighting016_x264.mp4``), a
    stem (``Fighting016_x264``) or a VadCLIP feature name (``Fighting016_x264__5.npy``: the crop suffix is stripped).
    Pass ``index`` (from a previous call's table, see :func:`build_frame_level`) to avoid rebuilding it per lookup.
    """
    if name in truth:
        return truth[name]
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in truth:
        return truth[base]
    key = (index if index is not None else _stem_index(truth)).get(_stem(name))
    return truth[key] if key is not None else None


# --------------------------------------------------------------------------------------------------------------------
# Frame-level ground truth and scores
# --------------------------------------------------------------------------------------------------------------------


def vadclip_frame_labels(spans: Iterable[tuple[int, int]], n_snippets: int, clip_len: int = CLIP_LEN) -> np.ndarray:
    """Frame labels of one video exactly as VadCLIP's ``make_gt_ucf.py`` / ``make_gt_xd.py`` build them.

    ``vec = zeros((T + 1) * clip_len)``; ``vec[s:e] = 1`` for each span; keep ``vec[:-clip_len]``. Hence:

    * the result has exactly ``clip_len * T`` frames, matching ``np.repeat(scores, clip_len)``, whatever the video's
      real frame count: **tail frames** beyond ``clip_len * T`` are dropped;
    * spans are **0-based and end-exclusive** on the raw annotation numbers (frame ``e`` itself is not abnormal);
    * **annotation overflow** past the vector is dropped silently, as numpy slicing does;
    * ``-1`` pairs (no span) are skipped.
    """
    if n_snippets < 0:
        raise ValueError(f"n_snippets must be >= 0, got {n_snippets}")
    vec = np.zeros((n_snippets + 1) * clip_len, dtype=np.uint8)
    for start, end in spans:
        if start == -1 or end == -1:
            continue
        vec[start:end] = 1
    return vec[:-clip_len]


def exact_frame_labels(spans: Iterable[tuple[int, int]], n_frames: int, end_inclusive: bool = False) -> np.ndarray:
    """One label per real frame (``n_frames`` of them); spans clipped to the video.

    ``end_inclusive=False`` keeps VadCLIP's end-exclusive reading of the annotation; ``end_inclusive=True`` is LAVAD's
    ``s <= f <= e`` (one more abnormal frame per span). ``-1`` pairs are skipped.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    vec = np.zeros(n_frames, dtype=np.uint8)
    for start, end in spans:
        if start == -1 or end == -1:
            continue
        vec[max(start, 0):min(end + int(end_inclusive), n_frames)] = 1
    return vec


def expand_scores(snippet_scores: np.ndarray, clip_len: int = CLIP_LEN, n_frames: int | None = None) -> np.ndarray:
    """Snippet scores to frame scores: ``np.repeat(scores, clip_len)`` (VadCLIP's test loop).

    With ``n_frames`` (the exact protocol) the repeated scores are cut to ``n_frames``; when ``clip_len * T < n_frames``
    the missing tail frames (less than one snippet, or the caller has already rejected the video) take the **last
    snippet's score**, since no snippet covers them and the nearest one is the best available estimate.
    """
    frames = np.repeat(np.asarray(snippet_scores, dtype=np.float64), clip_len)
    if n_frames is None:
        return frames
    if n_frames <= frames.size:
        return frames[:n_frames]
    if frames.size == 0:
        raise ScoreError("cannot pad an empty score array to n_frames")
    return np.concatenate([frames, np.full(n_frames - frames.size, frames[-1])])


class FrameLevel(NamedTuple):
    """Pooled frame labels and scores; video ``i`` is ``slice(offsets[i], offsets[i + 1])``."""

    labels: np.ndarray
    scores: np.ndarray
    offsets: np.ndarray
    names: tuple[str, ...]

    def video(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of the ``i``-th video."""
        part = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
        return self.labels[part], self.scores[part]


def _checked_scores(name: str, snippet_scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(snippet_scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ScoreError(f"video {name!r}: expected a 1-D array of snippet scores, got shape {scores.shape}")
    if scores.size == 0:
        raise ScoreError(f"video {name!r}: empty score array (no snippets)")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ScoreError(f"video {name!r}: non-finite score {scores[bad[0]]} at snippet {bad[0]} "
                         f"({bad.size} non-finite of {scores.size})")
    return scores


def _video_spans(name: str, truth: Mapping[str, VideoTruth], index: Mapping[str, str | None],
                 normal_name_markers: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Spans of a test video; a video without an annotation line is normal only if its name says so."""
    entry = lookup_truth(truth, name, index)
    if entry is not None:
        return entry.spans
    if any(marker in name for marker in normal_name_markers):
        return ()
    source = getattr(truth, "source", "<in-memory ground truth>")
    raise GroundTruthError(f"video {name!r} has no line in {source} and its name contains none of the normal "
                           f"markers {tuple(normal_name_markers)}; cannot tell its ground truth")


def _vadclip_video(name: str, scores: np.ndarray, spans: tuple[tuple[int, int], ...],
                   clip_len: int) -> tuple[np.ndarray, np.ndarray]:
    covered = clip_len * scores.size
    for start, end in spans:
        # VadCLIP would silently score such a video as all-normal; a span nobody can see means the features are short.
        if start >= covered:
            raise ScoreError(f"video {name!r}: annotated span ({start}, {end}) starts at or beyond frame {covered} = "
                             f"{clip_len} * T with T = {scores.size} snippets; the features are too short for the "
                             f"ground truth")
    return vadclip_frame_labels(spans, scores.size, clip_len), expand_scores(scores, clip_len)


def _exact_video(name: str, scores: np.ndarray, spans: tuple[tuple[int, int], ...], n_frames: int | None,
                 clip_len: int, end_inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
    if n_frames is None or n_frames <= 0:
        raise ScoreError(f"video {name!r}: the exact protocol needs the video's frame count, got n_frames={n_frames}")
    # Up to one snippet of tail frames is the extractor's normal remainder; more means frames were never featurised.
    if clip_len * scores.size + clip_len <= n_frames:
        raise ScoreError(f"video {name!r}: feature file shorter than the video: T = {scores.size} snippets cover "
                         f"{clip_len * scores.size} frames but n_frames = {n_frames}")
    labels = exact_frame_labels(spans, n_frames, end_inclusive)
    return labels, expand_scores(scores, clip_len, n_frames)


def build_frame_level(
    videos: Sequence[tuple[str, np.ndarray, int | None]],
    truth: Mapping[str, VideoTruth],
    protocol: Literal["vadclip", "exact"] = "vadclip",
    clip_len: int = CLIP_LEN,
    normal_name_markers: Sequence[str] = NORMAL_NAME_MARKERS,
    end_inclusive: bool = False,
) -> FrameLevel:
    """Pool frame labels and scores of ``videos`` (``(name, snippet_scores[T], n_frames)``) in the given order.

    ``protocol="vadclip"`` (published VadCLIP numbers): ``clip_len * T`` frames per video, labels from
    :func:`vadclip_frame_labels`, ``n_frames`` ignored. A span starting at or beyond ``clip_len * T`` raises (the
    features are too short for the ground truth); VadCLIP itself would silently label such a video normal.

    ``protocol="exact"``: ``n_frames`` frames per video, labels from :func:`exact_frame_labels` (``end_inclusive`` for
    LAVAD's reading), scores repeated then cut or tail-padded (:func:`expand_scores`). ``clip_len * T + clip_len <=
    n_frames`` (more than one snippet of frames missing) raises: the feature file is shorter than the video.

    A video without a ground-truth line is normal only if its name contains one of ``normal_name_markers``; otherwise
    it raises, naming the video and the annotation source. Empty, non-1-D or non-finite scores raise, naming the video
    (and the first bad snippet).
    """
    if protocol not in ("vadclip", "exact"):
        raise ValueError(f"protocol must be 'vadclip' or 'exact', got {protocol!r}")
    if not videos:
        raise ScoreError("no videos to evaluate")
    index = _stem_index(truth)
    labels, scores, offsets, names = [], [], [0], []
    for name, snippet_scores, n_frames in videos:
        checked = _checked_scores(name, snippet_scores)
        spans = _video_spans(name, truth, index, normal_name_markers)
        if protocol == "vadclip":
            video_labels, video_scores = _vadclip_video(name, checked, spans, clip_len)
        else:
            video_labels, video_scores = _exact_video(name, checked, spans, n_frames, clip_len, end_inclusive)
        labels.append(video_labels)
        scores.append(video_scores)
        offsets.append(offsets[-1] + video_labels.size)
        names.append(name)
    return FrameLevel(np.concatenate(labels), np.concatenate(scores), np.asarray(offsets, dtype=np.int64),
                      tuple(names))


# --------------------------------------------------------------------------------------------------------------------
# Frame-level AUC / AP (sklearn's definitions)
# --------------------------------------------------------------------------------------------------------------------


def _checked_binary(labels: np.ndarray, scores: np.ndarray, n_videos: int | None) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.size != s.size:
        raise MetricError(f"labels ({y.size} frames) and scores ({s.size} frames) differ in length")
    if y.size == 0:
        raise MetricError("no frames to evaluate")
    if not np.all((y == 0) | (y == 1)):
        raise MetricError(f"labels must be 0/1, got values {np.unique(y)[:5].tolist()}")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise MetricError(f"non-finite score at frame {bad[0]} ({bad.size} of {s.size})")
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        videos = f" from {n_videos} videos" if n_videos is not None else ""
        kind = "abnormal" if n_pos else "normal"
        raise MetricError(f"AUC/AP undefined: all {y.size} frames{videos} are {kind}; both classes are needed")
    return y.astype(np.int64), s


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn ``roc_auc_score`` (binary), after the checks of :func:`frame_auc_ap`."""
    return float(roc_auc_score(*_checked_binary(labels, scores, None)))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn ``average_precision_score``: ``sum_n (R_n - R_{n-1}) P_n``, not interpolated (VadCLIP, AnomalyCLIP)."""
    return float(average_precision_score(*_checked_binary(labels, scores, None)))


def pr_auc_trapezoid(labels: np.ndarray, scores: np.ndarray) -> float:
    """``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve`` output (XDVioDet test.py, LAVAD).

    The curve starts at sklearn's appended ``(recall 0, precision 1)`` point and interpolates linearly between
    thresholds, so this is usually a little higher than :func:`average_precision`.
    """
    precision, recall, _ = precision_recall_curve(*_checked_binary(labels, scores, None))
    return float(sklearn_auc(recall, precision))


def frame_auc_ap(labels: np.ndarray, scores: np.ndarray, ap: Literal["sklearn", "trapezoid"] = "sklearn",
                 n_videos: int | None = None) -> dict[str, float]:
    """``{"auc": roc_auc_score, "ap": ...}`` on pooled frames (VadCLIP ``*_test.py``).

    ``ap="sklearn"`` is ``average_precision_score`` (VadCLIP, AnomalyCLIP); ``ap="trapezoid"`` is
    ``auc(recall, precision)`` (XDVioDet, LAVAD). Labels of one class only raise :class:`MetricError` naming the frame
    count (and ``n_videos`` when given): sklearn would only warn and return NaN for the AUC.
    """
    if ap not in ("sklearn", "trapezoid"):
        raise ValueError(f"ap must be 'sklearn' or 'trapezoid', got {ap!r}")
    y, s = _checked_binary(labels, scores, n_videos)
    ap_value = average_precision(y, s) if ap == "sklearn" else pr_auc_trapezoid(y, s)
    return {"auc": roc_auc(y, s), "ap": ap_value}


# --------------------------------------------------------------------------------------------------------------------
# Temporal detection mAP@IoU (VadCLIP detectionMAP)
# --------------------------------------------------------------------------------------------------------------------

Segment = tuple[int, int, str]  # (start frame, end frame exclusive, class label)


@dataclass(frozen=True)
class DetectionMAP:
    """mAP per IoU threshold (fractions in [0, 1]; VadCLIP prints ``100 *`` these), their mean, and per-class APs."""

    iou_thresholds: tuple[float, ...]
    map_at_iou: tuple[float, ...]
    average: float
    per_class: dict[str, tuple[float, ...]]
    classes_without_proposals: tuple[str, ...]

    def as_dict(self) -> dict[str, float]:
        """``{"mAP@0.1": ..., ..., "mAP@avg": ...}``."""
        out = {f"mAP@{iou:g}": value for iou, value in zip(self.iou_thresholds, self.map_at_iou)}
        out["mAP@avg"] = self.average
        return out


def detection_ground_truth(
    videos: Sequence[tuple[str, int]],
    truth: Mapping[str, VideoTruth],
    normal_class: str = "Normal",
    clip_len: int = CLIP_LEN,
    normal_name_markers: Sequence[str] = NORMAL_NAME_MARKERS,
) -> list[list[Segment]]:
    """Per-video GT segments for :func:`detection_map` from ``(name, T)`` pairs (VadCLIP ``make_gt_mAP_ucf.py``).

    Abnormal videos: each raw annotation span, labelled with the video's category (not clipped to ``clip_len * T``,
    as in VadCLIP). Normal videos (no spans): one segment ``[0, clip_len * T)`` labelled ``normal_class``; VadCLIP
    labels it "A", which is how the UCF quirk arises (see :func:`detection_map`).
    """
    index = _stem_index(truth)
    segments: list[list[Segment]] = []
    for name, n_snippets in videos:
        entry = lookup_truth(truth, name, index)
        spans = _video_spans(name, truth, index, normal_name_markers)
        if spans:
            segments.append([(start, end, entry.category) for start, end in spans])
        else:
            segments.append([(0, clip_len * n_snippets, normal_class)])
    return segments


def _interval_iou(a_start: int, a_end: int, b_start: int, b_end: int) -> float:
    """IoU of the integer frame sets ``range(a_start, a_end)`` and ``range(b_start, b_end)``."""
    inter = max(0, min(a_end, b_end) - max(a_start, b_start))
    union = max(0, a_end - a_start) + max(0, b_end - b_start) - inter
    return inter / union if union else 0.0


def temporal_nms(segments: Sequence[tuple[int, int]], scores: Sequence[float], iou: float = 0.6) -> list[int]:
    """Indices kept by greedy 1-D NMS: highest score first, drop others whose IoU with it exceeds ``iou``.

    VadCLIP keeps a proposal when IoU ``<= iou``; ties in score keep the earlier segment (stable order).
    """
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort"))
    keep: list[int] = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        order = [j for j in order if _interval_iou(*segments[best], *segments[j]) <= iou]
    return keep


def _runs_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """``[start, end)`` runs where ``values > threshold`` (strictly, as VadCLIP)."""
    above = np.r_[False, values > threshold, False].astype(np.int8)
    edges = np.diff(above)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _video_class_proposals(frame_probs: np.ndarray) -> list[tuple[int, int, float]]:
    """Proposals ``(start, end, score)`` of one video and class, after NMS, best first.

    c_s is the mean of the top ``N // 16`` frame values (16 hard-coded as in VadCLIP, independent of clip_len; at
    least one value, where VadCLIP's mean over nothing would be NaN and silently drop the video). VadCLIP's ``c_s > 0``
    filter is omitted: probabilities make it always true.
    """
    top = np.sort(frame_probs)[::-1][: max(frame_probs.size // 16, 1)]
    class_score = float(np.mean(top))
    high, low = float(frame_probs.max()), float(frame_probs.min())
    threshold = high - 0.6 * (high - low)  # a constant column has nothing strictly above: no proposals
    runs = [(s, e) for s, e in _runs_above(frame_probs, threshold) if e - s >= 2]
    scores = [float(frame_probs[s:e].max()) + 0.7 * class_score for s, e in runs]
    # With a single threshold the runs are disjoint, so NMS keeps all; it stays for fidelity with several thresholds.
    return [(*runs[i], scores[i]) for i in temporal_nms(runs, scores, 0.6)]


def _class_ap(proposals: Sequence[tuple[int, int, int, float]], gt: Sequence[tuple[int, int, int]],
              iou: float) -> float:
    """AP of one class: greedy matching by score, same video only; ``sum(precision at each TP) / #GT``.

    Each proposal takes the remaining GT of its video with the highest IoU ``>= iou`` (the first on ties) and removes
    it. No TP (including no GT, the UCF normal class) gives 0.
    """
    remaining: dict[int, list[tuple[int, int]]] = {}
    for video, start, end in gt:
        remaining.setdefault(video, []).append((start, end))
    n_tp = 0
    precision_sum = 0.0
    for rank, (video, start, end, _) in enumerate(proposals, start=1):
        candidates = remaining.get(video, [])
        best_j, best_iou = -1, 0.0
        for j, (g_start, g_end) in enumerate(candidates):
            overlap = _interval_iou(start, end, g_start, g_end)
            if overlap >= iou and (best_j < 0 or overlap > best_iou):
                best_j, best_iou = j, overlap
        if best_j >= 0:
            del candidates[best_j]
            n_tp += 1
            precision_sum += n_tp / rank
    return precision_sum / len(gt) if n_tp else 0.0


def _checked_probs(i: int, probs: np.ndarray, n_classes: int) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes or p.shape[0] == 0:
        raise ScoreError(f"video {i}: probs must be T x {n_classes} (T >= 1), got shape {p.shape}")
    bad = np.argwhere(~np.isfinite(p))
    if bad.size:
        raise ScoreError(f"video {i}: non-finite probability at snippet {bad[0][0]}, class {bad[0][1]}")
    return p


def detection_map(
    probs: Sequence[np.ndarray],
    gt_segments: Sequence[Sequence[Segment]],
    classes: Sequence[str],
    iou_thresholds: Sequence[float] = DETECTION_IOUS,
    clip_len: int = CLIP_LEN,
    normal_class: str = "Normal",
    ucf_normal_quirk: bool = True,
    zero_if_class_without_proposals: bool = True,
) -> DetectionMAP:
    """Temporal detection mAP@IoU as VadCLIP's ``ucf_detectionMAP.py`` / ``xd_detectionMAP.py``.

    ``probs[i]`` is video ``i``'s ``T x C`` snippet class probabilities (softmax of the alignment logits), columns in
    ``classes`` order; it is repeated ``clip_len`` times to frames. ``gt_segments[i]`` lists ``(start, end, label)``
    in frames (see :func:`detection_ground_truth`). Per video and class: c_s = mean of the top ``N // 16`` frame
    values; threshold ``max - 0.6 (max - min)``; proposals are runs strictly above it of >= 2 frames, scored ``max of
    the run + 0.7 c_s``; NMS at IoU 0.6. Per class, proposals of all videos are ranked by score and matched greedily
    (:func:`_class_ap`); the mAP is the mean over **all** classes.

    Quirks, on by default to reproduce VadCLIP's UCF numbers:

    * ``ucf_normal_quirk``: VadCLIP's UCF class list says "Normal" but its normal GT says "A", so the normal class has
      no GT, scores AP 0 and still counts in the mean (of 14). Here the GT labelled ``normal_class`` is ignored. Use
      ``False`` for XD, where "A" is in the class list and the normal class is scored.
    * ``zero_if_class_without_proposals``: if any class has no proposal in any video, VadCLIP returns mAP 0 (at every
      IoU, as proposals do not depend on it). ``per_class`` still holds the APs computed without this rule.

    Choices where VadCLIP is unspecified: proposal ties in score keep video order then time order (VadCLIP's
    unstable ``argsort`` leaves it to numpy); a GT label outside ``classes`` raises instead of being silently
    ignored; results are fractions, not percent.
    """
    classes = list(classes)
    if len(probs) != len(gt_segments):
        raise ValueError(f"{len(probs)} probability arrays but {len(gt_segments)} GT segment lists")
    if ucf_normal_quirk and normal_class not in classes:
        raise ValueError(f"ucf_normal_quirk needs normal_class {normal_class!r} in classes {classes}")
    frame_probs = [np.repeat(_checked_probs(i, p, len(classes)), clip_len, axis=0) for i, p in enumerate(probs)]
    gt_by_class: dict[str, list[tuple[int, int, int]]] = {c: [] for c in classes}
    for video, segments in enumerate(gt_segments):
        for start, end, label in segments:
            if label not in gt_by_class:
                raise ValueError(f"video {video}: GT label {label!r} is not one of the classes {classes}")
            if not (ucf_normal_quirk and label == normal_class):
                gt_by_class[label].append((video, int(start), int(end)))

    per_class: dict[str, tuple[float, ...]] = {}
    empty: list[str] = []
    for c, name in enumerate(classes):
        proposals = [(video, s, e, score) for video, p in enumerate(frame_probs)
                     for s, e, score in _video_class_proposals(p[:, c])]
        if not proposals:
            empty.append(name)
        ranked = sorted(proposals, key=lambda prop: -prop[3])  # stable: ties keep video, then time order
        per_class[name] = tuple(_class_ap(ranked, gt_by_class[name], iou) for iou in iou_thresholds)

    if empty and zero_if_class_without_proposals:
        maps = tuple(0.0 for _ in iou_thresholds)
    else:
        maps = tuple(float(np.mean([per_class[name][k] for name in classes])) for k in range(len(iou_thresholds)))
    return DetectionMAP(tuple(iou_thresholds), maps, float(np.mean(maps)), per_class, tuple(empty))


# --------------------------------------------------------------------------------------------------------------------
# Mean sign score and zero-shot scores
# --------------------------------------------------------------------------------------------------------------------


class MeanSignScore(NamedTuple):
    """MSS and the per-video signed margins it averages."""

    mss: float
    per_video: np.ndarray


def mean_sign_score(s_abnormal: np.ndarray, s_normal: np.ndarray, is_abnormal: np.ndarray) -> MeanSignScore:
    """MSS = mean over videos of ``S_A - S_N`` (abnormal videos) or ``S_N - S_A`` (normal videos).

    Positive when videos are closer to the text of their own kind; the per-video values are returned too.
    """
    s_a = np.asarray(s_abnormal, dtype=np.float64).ravel()
    s_n = np.asarray(s_normal, dtype=np.float64).ravel()
    flag = np.asarray(is_abnormal).ravel()
    if not s_a.size == s_n.size == flag.size:
        raise ValueError(f"lengths differ: s_abnormal {s_a.size}, s_normal {s_n.size}, is_abnormal {flag.size}")
    if s_a.size == 0:
        raise ValueError("mean sign score of no videos is undefined")
    bad = np.flatnonzero(~(np.isfinite(s_a) & np.isfinite(s_n)))
    if bad.size:
        raise ScoreError(f"non-finite similarity for video {bad[0]}")
    signed = np.where(flag.astype(bool), s_a - s_n, s_n - s_a)
    return MeanSignScore(float(signed.mean()), signed)


def _unit_rows(x: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError(f"{what}: zero-length or non-finite vector cannot be L2-normalised")
    return x / norms


def prompt_set_embedding(prompts: np.ndarray, what: str) -> np.ndarray:
    """One unit text vector for a prompt set: L2-normalise each prompt, average, re-normalise.

    Normalising first weights every prompt equally whatever its raw norm (CLIP's prompt-ensembling recipe).
    """
    p = np.asarray(prompts, dtype=np.float64)
    p = p[None, :] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{what}: empty prompt set (need P x D embeddings with P >= 1, got shape {p.shape})")
    return _unit_rows(_unit_rows(p, what).mean(axis=0), f"{what} (mean of prompts)")


def zero_shot_scores(v: np.ndarray, t_abnormal: np.ndarray, t_normal: np.ndarray, logit_scale: float) -> np.ndarray:
    """Per-snippet anomaly score, section D's binary form: ``softmax(logit_scale * [cos(v, t_A), cos(v, t_N)])[A]``.

    ``v`` is ``T x D`` (or ``D``) visual embeddings; ``t_abnormal`` / ``t_normal`` are one text embedding (``D``) or a
    prompt set (``P x D``) reduced by :func:`prompt_set_embedding`. ``logit_scale`` is ``1 / tau`` (100 for CLIP's
    scale, 1 / 0.07), already exponentiated. Computed as ``sigmoid(logit_scale * (cos_A - cos_N))``, the same
    two-way softmax without overflow.
    """
    visual = np.asarray(v, dtype=np.float64)
    visual = visual[None, :] if visual.ndim == 1 else visual
    t_a = prompt_set_embedding(t_abnormal, "t_abnormal")
    t_n = prompt_set_embedding(t_normal, "t_normal")
    if visual.ndim != 2 or visual.shape[1] != t_a.size or t_a.size != t_n.size:
        raise ValueError(f"dimension mismatch: v {visual.shape}, t_abnormal D={t_a.size}, t_normal D={t_n.size}")
    if not math.isfinite(logit_scale) or logit_scale <= 0:
        raise ValueError(f"logit_scale must be a positive finite number (1 / tau), got {logit_scale}")
    unit = _unit_rows(visual, "v")
    margin = logit_scale * (unit @ t_a - unit @ t_n)
    return 0.5 * (1.0 + np.tanh(0.5 * margin))


# --------------------------------------------------------------------------------------------------------------------
# Bootstrap over test videos: when a gap is real
# --------------------------------------------------------------------------------------------------------------------

DEFAULT_BOOTSTRAP = 1000
"""Resamples drawn by default (params ``eval.bootstrap_samples``)."""


class BootstrapCI(NamedTuple):
    """A statistic on all test videos and its percentile interval over videos resampled with replacement.

    The unit resampled is the **video**, not the frame: frames of a video are strongly correlated, so a frame
    bootstrap would give far too narrow intervals. ``n_skipped`` of the ``n_resamples`` draws were left out because
    the statistic is undefined on them (AUC/AP of a resample holding one class only); the interval is taken over the
    others. For a paired difference, ``estimate`` is ``a - b`` on all videos.
    """

    estimate: float
    low: float
    high: float
    n_resamples: int
    n_skipped: int = 0

    @property
    def ci(self) -> list[float]:
        """``[low, high]`` (the form metrics.json stores)."""
        return [self.low, self.high]

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0: a gap that resampling the test videos keeps."""
        return self.low > 0 or self.high < 0


def bootstrap_video_indices(n_videos: int, n_resamples: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n_videos)`` video indices drawn with replacement by ``np.random.default_rng(seed)``.

    Depends only on ``(n_videos, n_resamples, seed)``: the per-backbone intervals of a run and its paired comparisons
    resample the same videos (callers put the videos in one fixed order, by name).
    """
    if n_videos < 1:
        raise ValueError(f"bootstrap over {n_videos} videos: at least one video is needed")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    return np.random.default_rng(seed).integers(0, n_videos, size=(n_resamples, n_videos))


def _interval(estimate: float, values: np.ndarray, level: float, n_resamples: int, n_skipped: int) -> BootstrapCI:
    """Percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's linear rule)."""
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return BootstrapCI(float(estimate), float(low), float(high), int(n_resamples), int(n_skipped))


def _checked_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return level


def _checked_signed(values: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{what}: expected a non-empty 1-D array of per-video values, got shape {v.shape}")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ScoreError(f"{what}: non-finite value {v[bad[0]]} for video {bad[0]}")
    return v


def bootstrap_mss(signed: np.ndarray, n_resamples: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                  level: float = 0.95) -> BootstrapCI:
    """MSS (the mean of the per-video signed margins, :attr:`MeanSignScore.per_video`) and its video-bootstrap CI."""
    s = _checked_signed(signed, "signed margins")
    idx = bootstrap_video_indices(s.size, n_resamples, seed)
    return _interval(float(s.mean()), s[idx].mean(axis=1), _checked_level(level), n_resamples, 0)


def paired_bootstrap_mss(signed_a: np.ndarray, signed_b: np.ndarray, n_resamples: int = DEFAULT_BOOTSTRAP,
                         seed: int = 0, level: float = 0.95) -> BootstrapCI:
    """``MSS(a) - MSS(b)`` for two backbones scored on the same test videos (same order), with its paired CI.

    Each resample draws the same videos for both backbones, so what the videos share (an easy or a hard video) cancels
    in the difference; a backbone against itself gives exactly 0 and ``[0, 0]``.
    """
    a, b = _checked_signed(signed_a, "signed margins (a)"), _checked_signed(signed_b, "signed margins (b)")
    if a.size != b.size:
        raise ValueError(f"paired bootstrap needs the same videos: {a.size} values for a, {b.size} for b")
    idx = bootstrap_video_indices(a.size, n_resamples, seed)
    return _interval(float(a.mean() - b.mean()), (a - b)[idx].mean(axis=1), _checked_level(level), n_resamples, 0)


def _frame_bins(frames: FrameLevel):
    """``(positives, negatives)``: sparse ``K x V`` counts of abnormal / normal frames of video ``v`` at the ``k``-th
    distinct score, scores in descending order.

    A resample is a multiset of videos, i.e. integer weights on them; the ROC and PR curves of its concatenated frames
    are then ``bins @ weights`` cumulated over the thresholds (a duplicated frame adds its count at the same
    threshold), which is what sklearn computes on those frames, without building and sorting them per resample.
    """
    from scipy.sparse import csr_array

    _checked_binary(frames.labels, frames.scores, len(frames.names))
    positive = np.asarray(frames.labels).ravel() == 1
    _, score_bin = np.unique(-np.asarray(frames.scores, dtype=np.float64).ravel(), return_inverse=True)
    score_bin = score_bin.ravel()
    n_bins, n_videos = int(score_bin.max()) + 1, len(frames.names)
    video = np.repeat(np.arange(n_videos), np.diff(frames.offsets))
    shape = (n_bins, n_videos)
    return tuple(csr_array((np.ones(int(m.sum())), (score_bin[m], video[m])), shape=shape)  # duplicates are summed
                 for m in (positive, ~positive))


def _resampled_auc_ap(frames: FrameLevel, idx: np.ndarray, chunk_cells: int = 1 << 22):
    """``(auc, ap, defined)`` of each resample (a row of video indices ``idx``); ``defined`` is False where the
    resample has one class only (its AUC/AP is left at NaN).

    Same definitions as sklearn: AUC is the trapezoid area under the ROC curve through ``(0, 0)``; AP is
    ``sum_k (R_k - R_{k-1}) P_k`` over thresholds from high to low (``average_precision_score``).
    """
    pos_bins, neg_bins = _frame_bins(frames)
    n_resamples, n_videos = idx.shape
    # multiplicity of each video in each resample
    weights = np.bincount((np.arange(n_resamples)[:, None] * n_videos + idx).ravel(),
                          minlength=n_resamples * n_videos).reshape(n_resamples, n_videos).astype(np.float64)
    auc = np.full(n_resamples, np.nan)
    ap = np.full(n_resamples, np.nan)
    step = max(1, chunk_cells // pos_bins.shape[0])
    for start in range(0, n_resamples, step):
        w = weights[start:start + step].T  # V x b
        tp = np.cumsum(pos_bins @ w, axis=0)  # K x b: abnormal frames scored >= the k-th threshold
        fp = np.cumsum(neg_bins @ w, axis=0)
        n_pos, n_neg = tp[-1], fp[-1]
        ok = (n_pos > 0) & (n_neg > 0)
        tp_prev = np.vstack([np.zeros((1, tp.shape[1])), tp[:-1]])
        fp_prev = np.vstack([np.zeros((1, fp.shape[1])), fp[:-1]])
        area = ((fp - fp_prev) * (tp + tp_prev)).sum(axis=0)  # twice the area in count units
        called = tp + fp
        precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        hits = ((tp - tp_prev) * precision).sum(axis=0)
        rows = slice(start, start + w.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            auc[rows] = np.where(ok, area / (2 * n_pos * n_neg), np.nan)
            ap[rows] = np.where(ok, hits / n_pos, np.nan)
    return auc, ap, ~np.isnan(auc)


def _no_defined_resample(n: int) -> MetricError:
    return MetricError(f"all {n} bootstrap resamples hold one class only; AUC/AP intervals are undefined "
                       "(too few abnormal or normal test videos)")


def bootstrap_auc_ap(frames: FrameLevel, n_resamples: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                     level: float = 0.95) -> dict[str, BootstrapCI]:
    """``{"auc": ..., "ap": ...}``: frame AUC/AP of :func:`frame_auc_ap` on all ``frames`` and their CIs over videos.

    A resample draws whole videos (all their frames) with replacement and recomputes the pooled AUC/AP; resamples
    holding one class only are skipped and counted in ``n_skipped``.
    """
    level = _checked_level(level)
    point = frame_auc_ap(frames.labels, frames.scores, n_videos=len(frames.names))
    auc, ap, ok = _resampled_auc_ap(frames, bootstrap_video_indices(len(frames.names), n_resamples, seed))
    if not ok.any():
        raise _no_defined_resample(n_resamples)
    skipped = int((~ok).sum())
    return {"auc": _interval(point["auc"], auc[ok], level, n_resamples, skipped),
            "ap": _interval(point["ap"], ap[ok], level, n_resamples, skipped)}


def _check_same_videos(a: FrameLevel, b: FrameLevel) -> None:
    if a.names != b.names:
        diff = next((i for i, (x, y) in enumerate(zip(a.names, b.names)) if x != y), min(len(a.names), len(b.names)))
        raise ValueError(f"paired bootstrap needs the same test videos in the same order: {len(a.names)} vs "
                         f"{len(b.names)} videos, first difference at position {diff}")
    if not (np.array_equal(a.offsets, b.offsets) and np.array_equal(a.labels, b.labels)):
        bad = next(i for i in range(len(a.names))
                   if not np.array_equal(a.video(i)[0], b.video(i)[0]))
        raise ValueError(f"paired bootstrap needs the same frame ground truth: video {a.names[bad]!r} differs")


def paired_bootstrap_auc_ap(frames_a: FrameLevel, frames_b: FrameLevel, n_resamples: int = DEFAULT_BOOTSTRAP,
                            seed: int = 0, level: float = 0.95) -> dict[str, BootstrapCI]:
    """``{"auc": ..., "ap": ...}`` of ``a - b`` for two backbones' scores of the same test videos, with paired CIs.

    Both :class:`FrameLevel` must hold the same videos in the same order with the same frame labels (they differ only
    in scores). Each resample draws the same videos for both; resamples with one class only are skipped for both.
    """
    level = _checked_level(level)
    _check_same_videos(frames_a, frames_b)
    idx = bootstrap_video_indices(len(frames_a.names), n_resamples, seed)
    point_a = frame_auc_ap(frames_a.labels, frames_a.scores, n_videos=len(frames_a.names))
    point_b = frame_auc_ap(frames_b.labels, frames_b.scores, n_videos=len(frames_b.names))
    auc_a, ap_a, ok = _resampled_auc_ap(frames_a, idx)
    auc_b, ap_b, _ = _resampled_auc_ap(frames_b, idx)  # same labels and draws: the same resamples are defined
    if not ok.any():
        raise _no_defined_resample(n_resamples)
    skipped = int((~ok).sum())
    return {"auc": _interval(point_a["auc"] - point_b["auc"], (auc_a - auc_b)[ok], level, n_resamples, skipped),
            "ap": _interval(point_a["ap"] - point_b["ap"], (ap_a - ap_b)[ok], level, n_resamples, skipped)}
