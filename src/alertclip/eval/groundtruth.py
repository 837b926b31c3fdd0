"""Ground truth of the test videos: the UCF annotation file, a video's entry, its frame labels and pooled frame scores.

Protocols reproduced (see ``shared/reference/vad-protocols.md``, sections C and D):

* **Ground truth files.** The readers of the published formats (UCF-Crime, XD-Violence, UBnormal, MSAD) live in
  :mod:`alertclip.eval.gt_formats` and return the :class:`GroundTruth` / :class:`VideoTruth` defined here (raw frame
  numbers, ``-1`` pairs dropped). :func:`lookup_truth` finds a video's entry by key, path, stem or feature name.
* **Frame-level ground truth and scores.** ``protocol="vadclip"`` is VadCLIP's ``make_gt_*.py`` plus its test loop:
  exactly ``16 * T`` frames per video for ``T`` snippet scores, scores ``np.repeat``-ed by 16
  (:func:`vadclip_frame_labels`, :func:`expand_scores`). ``protocol="exact"`` labels each real frame instead
  (:func:`exact_frame_labels`), with LAVAD's inclusive end available. :func:`build_frame_level` pools the videos.

Errors are :class:`ValueError` subclasses that name the file and line (ground truth) or the video (scores).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

NORMAL_MARKERS: dict[str, tuple[str, ...]] = {
    "ucf": ("Normal",),  # Normal_Videos_003_x264.mp4 (UCF-Crime test list, Anomaly_Test.txt)
    "xd": ("label_A",),  # <movie or v=id>__#<start>_<end>_label_A (XD-Violence video names)
    "ubnormal": ("normal_",),  # normal_scene_4_scenario_1: a *prefix* of the base name, see is_normal_name
    "msad": ("MSAD_normal_",),  # MSAD_normal_testing_12 (MSAD feature release, msad-i3d-test.list)
}
"""Per format, the name fragment of a normal test video; used for test videos that have no ground-truth entry.

UCF, XD and MSAD match as substrings. **UBnormal matches as a prefix of the base name only**: every abnormal UBnormal
name (``abnormal_scene_...``) contains ``normal_``, so a substring test would call every abnormal video normal. Use
:func:`is_normal_name` rather than ``marker in name`` for UBnormal.
"""

_PREFIX_MARKER_FORMATS = frozenset({"ubnormal"})


def is_normal_name(name: str, fmt: str | None = None, markers: Sequence[str] | None = None) -> bool:
    """Whether a test video without a ground-truth entry is normal by its name: the one rule, by format.

    ``markers`` default to :data:`NORMAL_MARKERS` ``[fmt]``; ``fmt=None`` (a caller that does not know the dataset's
    format) accepts a normal name of any format. UBnormal's markers are prefixes of the base name (without folders),
    because ``abnormal_...`` contains ``normal_``; the other formats' are substrings of the name.
    """
    if fmt is None:
        return any(is_normal_name(name, f) for f in NORMAL_MARKERS)
    if fmt not in NORMAL_MARKERS:
        raise ValueError(f"unknown ground-truth format {fmt!r}; known formats: {', '.join(NORMAL_MARKERS)}")
    markers = NORMAL_MARKERS[fmt] if markers is None else tuple(markers)
    if fmt in _PREFIX_MARKER_FORMATS:
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        return any(base.startswith(m) for m in markers)
    return any(m in name for m in markers)


# Extensions stripped when a video is looked up by stem; a bare Path.stem would cut XD names such as
# "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A" at their first dot.
_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".npy")
_CROP_SUFFIX = re.compile(r"__\d+$")  # VadCLIP feature files: <video>__<crop>.npy


class GroundTruthError(ValueError):
    """A ground-truth file or table is malformed; the message names file:line and the field."""


class ScoreError(ValueError):
    """Scores or features of a video do not fit the protocol; the message names the video."""


# --------------------------------------------------------------------------------------------------------------------
# Ground truth files
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoTruth:
    """One annotated video: ``spans`` are raw ``(start, end)`` annotation numbers, ``-1`` pairs already dropped.

    ``origin`` ("file:line") is kept for error messages only and does not take part in equality. ``classes``: one
    class label per span where the file gives them (XD-Violence's multi-class file), else empty: every span is then of
    the video's ``category`` (:meth:`span_classes`).
    """

    name: str
    category: str
    spans: tuple[tuple[int, int], ...]
    origin: str = field(default="", compare=False)
    classes: tuple[str, ...] = ()

    def span_classes(self) -> tuple[str, ...]:
        """The class of each span: its own where the file names one, else the video's category."""
        return self.classes or (self.category,) * len(self.spans)


class GroundTruth(dict[str, VideoTruth]):
    """``dict`` of video name -> :class:`VideoTruth` that remembers where it was read from (for error messages)."""

    def __init__(self, entries: Mapping[str, VideoTruth] | None = None, source: str = "<in-memory ground truth>"):
        super().__init__(entries or {})
        self.source = source


def _stem(name: str) -> str:
    """Base name without a known video/feature extension and without a ``__<crop>`` feature suffix."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _VIDEO_EXTENSIONS:
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
            break
    return _CROP_SUFFIX.sub("", base)


def stem_index(truth: Mapping[str, VideoTruth]) -> dict[str, str | None]:
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
    key = (index if index is not None else stem_index(truth)).get(_stem(name))
    return truth[key] if key is not None else None


# --------------------------------------------------------------------------------------------------------------------
# Frame-level ground truth and scores
# --------------------------------------------------------------------------------------------------------------------


def vadclip_frame_labels(spans: Iterable[tuple[int, int]], n_snippets: int, clip_len: int) -> np.ndarray:
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


def expand_scores(snippet_scores: np.ndarray, clip_len: int, n_frames: int | None = None) -> np.ndarray:
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


def video_spans(name: str, truth: Mapping[str, VideoTruth], index: Mapping[str, str | None],
                is_normal: Callable[[str], bool]) -> tuple[tuple[int, int], ...]:
    """Spans of a test video; a video without an annotation line is normal only if its name says so."""
    entry = lookup_truth(truth, name, index)
    if entry is not None:
        return entry.spans
    if is_normal(name):
        return ()
    source = getattr(truth, "source", "<in-memory ground truth>")
    raise GroundTruthError(f"video {name!r} has no line in {source} and its name is not a normal video's "
                           f"(normal markers by format: {NORMAL_MARKERS}); cannot tell its ground truth")


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
    *,
    clip_len: int,
    is_normal: Callable[[str], bool] = is_normal_name,
    end_inclusive: bool = False,
) -> FrameLevel:
    """Pool frame labels and scores of ``videos`` (``(name, snippet_scores[T], n_frames)``) in the given order.

    ``protocol="vadclip"`` (published VadCLIP numbers): ``clip_len * T`` frames per video, labels from
    :func:`vadclip_frame_labels`, ``n_frames`` ignored. A span starting at or beyond ``clip_len * T`` raises (the
    features are too short for the ground truth); VadCLIP itself would silently label such a video normal.

    ``protocol="exact"``: ``n_frames`` frames per video, labels from :func:`exact_frame_labels` (``end_inclusive`` for
    LAVAD's reading), scores repeated then cut or tail-padded (:func:`expand_scores`). ``clip_len * T + clip_len <=
    n_frames`` (more than one snippet of frames missing) raises: the feature file is shorter than the video.

    A video without a ground-truth line is normal only if ``is_normal(name)`` (default: a normal name of any format,
    :func:`is_normal_name`; a checked test set lists every video, so it applies to raw ground truth only); otherwise
    it raises, naming the video and the annotation source. Empty, non-1-D or non-finite scores raise, naming the video
    (and the first bad snippet).
    """
    if protocol not in ("vadclip", "exact"):
        raise ValueError(f"protocol must be 'vadclip' or 'exact', got {protocol!r}")
    if not videos:
        raise ScoreError("no videos to evaluate")
    index = stem_index(truth)
    labels, scores, offsets, names = [], [], [0], []
    for name, snippet_scores, n_frames in videos:
        checked = _checked_scores(name, snippet_scores)
        spans = video_spans(name, truth, index, is_normal)
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
