"""Test ground truth of four VAD benchmarks, read from their published files into one :class:`GroundTruth`.

Every reader returns ``{video: VideoTruth(name, category, spans, origin)}`` with spans in one convention: **raw frame
numbers, 0-based start, end-exclusive** (a span ``(s, e)`` labels frames ``s .. e-1``, i.e. ``vec[s:e] = 1``), which is
how VadCLIP's ``make_gt_*.py`` slice the UCF and XD numbers (``shared/reference/vad-protocols.md`` section C).
Formats whose files use another convention are converted and say so (UBnormal: inclusive last frame, ``+1``).

================  ==========================================  =================================================
format            FILE                                        defined by
================  ==========================================  =================================================
``ucf``           ``Temporal_Anomaly_Annotation.txt``         :func:`read_ucf_temporal`
``xd``            XD-Violence test ``annotations.txt``, or    :func:`read_xd`
                  ``annotations_multiclasses.txt`` (a class
                  per span: detection mAP)
``ubnormal``      a split's video-name list (dataset root     :func:`read_ubnormal`
                  = the list's folder)
``msad``          the feature release's test list (with       :func:`read_msad`
                  ``gt-MSAD-WS-new.npy`` next to it)
================  ==========================================  =================================================

:func:`read_ground_truth` dispatches on the format name, :data:`NORMAL_MARKERS` / :func:`is_normal_name` tell a normal
test video by its name when it has no ground-truth entry, and :func:`summarize` counts videos, spans and frames.

Text files are read as UTF-8 (a BOM is skipped) with ``\\n``, ``\\r\\n`` or a lone ``\\r`` ending a line; blank lines,
trailing spaces or tabs and a missing final newline are accepted, as they occur in the released files. Anything else
that is malformed raises :class:`GroundTruthError` naming ``file:line: field N (what): problem`` (or the file and the
entry where lines do not apply); a reversed span, a lone ``-1``, a non-integer, a duplicate video or a truncated line
is never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .groundtruth import NORMAL_MARKERS, GroundTruth, GroundTruthError, VideoTruth, is_normal_name

__all__ = [
    "FORMATS", "MSAD_FRAMES_PER_SNIPPET", "NORMAL_CATEGORY", "NORMAL_MARKERS", "XD_CLASSES", "XD_CODES", "is_normal_name",
    "merged_spans", "read_ground_truth", "read_msad", "read_ubnormal", "read_ucf_temporal", "read_xd", "summarize", "xd_category",
]

FORMATS = ("ucf", "xd", "ubnormal", "msad")

NORMAL_CATEGORY = "Normal"
"""Category of every normal video (UCF's own class name; XD ``A``, UBnormal ``normal_*`` and MSAD normal videos)."""


XD_CODES = {"A": NORMAL_CATEGORY, "B1": "Fighting", "B2": "Shooting", "B4": "Riot", "B5": "Abuse",
            "B6": "Car accident", "G": "Explosion"}
"""XD-Violence label codes (the part of a video name after ``_label_``, joined by ``-``, ``0`` = no further label)."""

XD_CLASSES = tuple(XD_CODES)
"""XD-Violence's detection classes in VadCLIP's order (``src/utils/xd_detectionMAP.py`` classlist; ``A`` = normal)."""

MSAD_FRAMES_PER_SNIPPET = 16
"""MSAD's released frame ground truth has 16 labels per I3D / Video-Swin snippet (``np.repeat(pred, 16)`` in its code)."""

_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
_MSAD_GT_NAMES = ("gt-MSAD-WS-new.npy", "gt-MSAD-WS.npy")  # RTFM/list/ and MGFN/data/msad/ of the MSAD repository
_MSAD_FEATURE_SUFFIX = re.compile(r"_(i3d|swin)$")
_UBNORMAL_SCENE = re.compile(r"^abnormal_scene_(\d+)_")
_LINE_END = re.compile(r"\r\n|\r|\n")


# --------------------------------------------------------------------------------------------------------------------
# Shared parsing
# --------------------------------------------------------------------------------------------------------------------


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


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of every line: UTF-8 with an optional BOM; ``\\n``, ``\\r\\n`` or ``\\r`` end a line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        lineno = data[:err.start].count(b"\n") + 1
        raise GroundTruthError(f"{path}:{lineno}: not UTF-8 text ({err.reason} at byte {err.start}: "
                               f"{data[err.start:err.start + 1]!r})") from None
    return list(enumerate(_LINE_END.split(text), start=1))


def _numbered_lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of each non-blank line; any whitespace separates fields."""
    for lineno, line in _text_lines(path):
        tokens = line.split()
        if tokens:
            yield lineno, tokens


def _add_entry(table: GroundTruth, entry: VideoTruth, path: Path, lineno: int) -> None:
    if entry.name in table:
        raise _field_error(path, lineno, 1, "video name",
                           f"duplicate video {entry.name!r} (first at {table[entry.name].origin})")
    table[entry.name] = entry


def _non_empty(table: GroundTruth, path: Path, what: str) -> GroundTruth:
    if not table:
        raise GroundTruthError(f"{path}: no entries (expected {what})")
    return table


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def _strip_video_suffix(name: str) -> str:
    for suffix in _VIDEO_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def merged_spans(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """End-exclusive spans sorted, with overlapping or touching ones joined (the frames they cover are unchanged)."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


# --------------------------------------------------------------------------------------------------------------------
# UCF-Crime
# --------------------------------------------------------------------------------------------------------------------


def read_ucf_temporal(path: str | Path) -> GroundTruth:
    """Read UCF-Crime's ``Temporal_Anomaly_Annotation.txt``: ``name  category  s1  e1  s2  e2``.

    Defined by: the UCF-Crime release (Sultani et al., "Real-world Anomaly Detection in Surveillance Videos", CVPR
    2018, the paper's dataset section: temporal annotations of the test videos), as shipped in nwpu-zxr/VadCLIP
    ``list/Temporal_Anomaly_Annotation.txt`` and read by ``list/make_gt_ucf.py`` there. Frame numbers are raw;
    ``-1 -1`` pairs mean "no span"; VadCLIP slices ``vec[s:e] = 1``, so the spans are 0-based and end-exclusive as
    they stand (no conversion).

    The original separates fields by two spaces and ends each line with them (VadCLIP splits on ``"  "`` and drops the
    trailing empty field); any whitespace is accepted here, which gives the same fields. Keys are the names as
    written (``Fighting016_x264.mp4``); use :func:`~alertclip.eval.groundtruth.lookup_truth` for paths or stems.
    Normal videos appear with ``-1`` pairs only, so their ``spans`` are empty.
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
    return _non_empty(table, path, "lines 'name category start end ...'")


# --------------------------------------------------------------------------------------------------------------------
# XD-Violence
# --------------------------------------------------------------------------------------------------------------------


def xd_category(name: str) -> str:
    """Category of an XD-Violence video from the label codes after ``_label_``: ``Normal`` or the codes, e.g. ``G-B2``.

    VadCLIP's rule (nwpu-zxr/VadCLIP ``src/utils/tools.py`` ``get_batch_label``, with the code table of
    ``src/xd_train.py`` / ``src/xd_test.py``): split the codes on ``-``, drop ``0`` (no further label), ``A`` is
    normal. Raises :class:`ValueError` on a name without codes or with a code
    outside :data:`XD_CODES`.
    """
    base = _strip_video_suffix(name)
    if "_label_" not in base:
        raise ValueError(f"no '_label_<codes>' in the video name {name!r}")
    codes = [c for c in base.rsplit("_label_", 1)[1].split("-") if c != "0"]
    if not codes:
        raise ValueError(f"no label code after '_label_' in {name!r}")
    unknown = [c for c in codes if c not in XD_CODES]
    if unknown:
        raise ValueError(f"unknown label code(s) {unknown} in {name!r}; known: {', '.join(XD_CODES)} and 0")
    if "A" in codes:
        if len(codes) > 1:
            raise ValueError(f"label codes {'-'.join(codes)} of {name!r} mix A (normal) with anomaly codes")
        return NORMAL_CATEGORY
    return "-".join(codes)


def read_xd(path: str | Path) -> GroundTruth:
    """Read XD-Violence's test ``annotations.txt``: ``<video name> s1 e1 s2 e2 ...`` (any number of pairs), or its
    multi-class file (:func:`read_xd_multiclass`), told apart by the field after the first line's name (a frame number
    or a class code).

    Defined by: the XD-Violence release (Wu et al., "Not only Look, but also Listen: Learning Multimodal Violence
    Detection under Weak Supervision", ECCV 2020, the paper's dataset section: frame-level annotations of the test
    videos; ``annotations.txt`` of the dataset download), shipped as ``list/annotations.txt`` and read by
    ``list/make_gt_xd.py`` in nwpu-zxr/VadCLIP: fields split
    on whitespace, pairs of raw frame numbers, ``vec[s:e] = 1`` -- 0-based and end-exclusive as they stand (no
    conversion). Only abnormal test videos have a line; a normal (``_label_A``) test video has none (see
    :data:`NORMAL_MARKERS`).

    Keys are the video names without a video extension: 14 lines of the released file end their name in ``.mp4``
    (VadCLIP matches names by substring, so it does not notice). The category comes from the label codes
    (:func:`xd_category`: ``B2-0-0`` -> ``B2``, ``G-B2-B6`` -> ``G-B2-B6``, ``A`` -> ``Normal``). An abnormal video needs
    at least one span; a ``label_A`` line may only hold ``-1`` pairs. ``-1 -1`` pairs are dropped as in UCF.
    """
    path = Path(path)
    lines = list(_numbered_lines(path))
    if lines and len(lines[0][1]) > 1 and not _is_int(lines[0][1][1]):
        return read_xd_multiclass(path, lines)
    table = GroundTruth(source=str(path))
    for lineno, tokens in lines:
        name, category = _xd_name(tokens, path, lineno)
        spans = _parse_spans(tokens[1:], 2, path, lineno)
        if category == NORMAL_CATEGORY and spans:
            raise _field_error(path, lineno, 2, _span_field_name(0),
                               f"a normal (label A) video cannot have abnormal spans, got {len(spans)}")
        if category != NORMAL_CATEGORY and not spans:
            raise _field_error(path, lineno, 2, _span_field_name(0),
                               f"missing: the abnormal video (codes {category}) needs at least one start/end pair")
        _add_entry(table, VideoTruth(name, category, spans, f"{path}:{lineno}"), path, lineno)
    return _non_empty(table, path, "lines 'video_name start end ...'")


def _xd_name(tokens: Sequence[str], path: Path, lineno: int) -> tuple[str, str]:
    name = _strip_video_suffix(tokens[0])
    try:
        return name, xd_category(name)
    except ValueError as err:
        raise _field_error(path, lineno, 1, "video name", str(err)) from None


_XD_SPAN_CLASSES = tuple(c for c in XD_CLASSES if c != "A")


def read_xd_multiclass(path: str | Path, lines: list[tuple[int, list[str]]] | None = None) -> GroundTruth:
    """Read XD-Violence's ``annotations_multiclasses.txt``: ``<video name> C1 s1 e1 C2 s2 e2 ...``, one class code per
    span (``VideoTruth.classes``).

    Defined by: nwpu-zxr/VadCLIP ``list/make_gt_mAP_xd.py`` (the file it reads, ``list/annotations_multiclasses.txt``):
    fields split on whitespace, triples ``code start end`` after the name, raw frame numbers kept as they stand, spans
    in file order with overlaps kept (each is its own detection instance). Their union is the frame ground truth of
    ``annotations.txt``, which joins overlapping spans (``Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6``: B2, G, B2,
    G, G, B6 here; four spans there). A span's code must be one of XD's anomaly classes: a combined code such as
    ``B1-B2`` names a video, not a span, and normal videos have no line. ``lines``: the file already split (by
    :func:`read_xd`).
    """
    path = Path(path)
    table = GroundTruth(source=str(path))
    for lineno, tokens in (lines if lines is not None else _numbered_lines(path)):
        name, category = _xd_name(tokens, path, lineno)
        rest = tokens[1:]
        if category == NORMAL_CATEGORY:
            raise _field_error(path, lineno, 1, "video name",
                               f"a normal (label A) video has no spans, so no line in the multi-class file: {name!r}")
        if not rest:
            raise _field_error(path, lineno, 2, "class of span 1",
                               f"missing: the abnormal video (codes {category}) needs at least one 'class start end'")
        if len(rest) % 3:
            k = len(rest) - len(rest) % 3
            what = ("start", "end")[len(rest) % 3 - 1]
            raise _field_error(path, lineno, 2 + len(rest), f"{what} of span {k // 3 + 1}",
                               f"missing: {len(rest)} fields after the name; expected 'class start end' triples")
        spans, classes = [], []
        for k in range(0, len(rest), 3):
            n, code = k // 3 + 1, rest[k]
            if code not in _XD_SPAN_CLASSES:
                raise _field_error(path, lineno, 2 + k, f"class of span {n}",
                                   f"{code!r} is not an XD-Violence class; expected one of {', '.join(_XD_SPAN_CLASSES)} "
                                   f"(a combined code such as B1-B2 labels a video, not a span)")
            bounds = []
            for j, what in ((1, "start"), (2, "end")):
                token = rest[k + j]
                if not _is_int(token) or int(token) < 0:
                    raise _field_error(path, lineno, 2 + k + j, f"{what} of span {n}",
                                       f"expected a frame number >= 0, got {token!r}")
                bounds.append(int(token))
            if bounds[0] > bounds[1]:
                raise _field_error(path, lineno, 3 + k, f"start of span {n}", f"start {bounds[0]} is after end {bounds[1]}")
            spans.append(tuple(bounds))
            classes.append(code)
        _add_entry(table, VideoTruth(name, category, tuple(spans), f"{path}:{lineno}", tuple(classes)), path, lineno)
    return _non_empty(table, path, "lines 'video_name class start end ...'")


# --------------------------------------------------------------------------------------------------------------------
# UBnormal
# --------------------------------------------------------------------------------------------------------------------


def _frame_number(token: str) -> int:
    """An integer, also written as an integral float (``np.loadtxt`` in UBnormal's scripts reads ``12.0`` as 12)."""
    try:
        return int(token)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"expected an integer, got {token!r}") from None
    if not value.is_integer():
        raise ValueError(f"expected an integer, got {token!r}")
    return int(value)


_TRACK_FIELDS = ("track id", "first frame", "last frame")


def _read_tracks(tracks: Path, video: str) -> tuple[tuple[int, int], ...]:
    """Spans of one abnormal UBnormal video from ``<video>_tracks.txt`` (``id,first,last`` per line, last inclusive)."""
    spans = []
    for lineno, line in _text_lines(tracks):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3:
            index, what = (len(fields) + 1, _TRACK_FIELDS[len(fields)]) if len(fields) < 3 else (4, "extra field")
            raise _field_error(tracks, lineno, index, what,
                               f"expected 3 comma-separated fields (track id, first frame, last frame), got {len(fields)}")
        values = []
        for k, token in enumerate(fields):
            if not token:
                raise _field_error(tracks, lineno, k + 1, _TRACK_FIELDS[k], "empty")
            try:
                value = _frame_number(token)
            except ValueError as err:
                raise _field_error(tracks, lineno, k + 1, _TRACK_FIELDS[k], str(err)) from None
            if value < 0:
                raise _field_error(tracks, lineno, k + 1, _TRACK_FIELDS[k], f"negative value {value}")
            values.append(value)
        _, first, last = values
        if first > last:
            raise _field_error(tracks, lineno, 2, "first frame", f"first frame {first} is after last frame {last}")
        spans.append((first, last + 1))  # inclusive last frame -> end-exclusive
    if not spans:
        raise GroundTruthError(f"{tracks}: no tracks for the abnormal video {video!r} (expected lines "
                               "'track_id,first_frame,last_frame')")
    return merged_spans(spans)


def read_ubnormal(path: str | Path, root: str | Path | None = None) -> GroundTruth:
    """Read UBnormal's ground truth for the videos of one split list; FILE is that list.

    Defined by: lilygeorgescu/UBnormal (Acsintoae et al., "UBnormal: New Benchmark for Supervised Open-Set Video
    Anomaly Detection", CVPR 2022, the paper's benchmark section: pixel-level annotations, open-set splits; the file
    layout itself is given only by the repository's scripts): the split lists ``scripts/{abnormal,normal}_{training,validation,
    test}_video_names.txt`` (one video name per line, no extension) and ``scripts/write_frame_level_ground_truth.py``,
    which defines the frame labels: an abnormal video ``abnormal_scene_<k>_...`` has
    ``Scene<k>/<video>_annotations/<video>_tracks.txt`` under the dataset root, one object track per line as
    ``track_id,first_frame,last_frame`` (``np.loadtxt(..., delimiter=",")``), and its frames
    ``ground_truth[first:last + 1] = 1`` (0-based, **last frame inclusive**; the per-frame masks
    ``<video>_<frame:04d>_gt.png`` in the same folder carry the track ids). Normal videos have no annotation folder
    and all-zero labels. The README says the test labels were released later; the layout above is the one the
    released training/validation annotations use.

    * **FILE** is a split's name list, e.g. ``abnormal_test_video_names.txt``, ``normal_test_video_names.txt`` or
      their concatenation; the **dataset root** (holding ``Scene1`` ... ``Scene29``) is the list's folder unless
      ``root`` is given (so put the lists next to the ``Scene*`` folders).
    * **Spans** are converted to the common convention: ``(first, last + 1)``, 0-based and end-exclusive. Tracks that
      overlap or touch are joined, since a span here is an abnormal interval of the video, not an object: the frames
      labelled abnormal are exactly the reference script's.
    * **Categories**: the released files name no anomaly class per video, so an abnormal video is ``Abnormal`` and a
      normal one ``Normal``.
    * ``_new_tracks.txt`` (corrected tracks that ``scripts/create_tracks_for_tbdc_rbdc.py`` prefers for the
      region/track-level RBDC/TBDC metrics) is not read: the frame-level labels come from ``_tracks.txt``.

    Errors name the list line for a bad name, a duplicate or a missing tracks file, and the tracks file's line and
    field for a bad track; an abnormal video whose tracks file is empty is an error.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    table = GroundTruth(source=str(path))
    for lineno, tokens in _numbered_lines(path):
        if len(tokens) > 1:
            raise _field_error(path, lineno, 2, "extra field",
                               f"expected one video name per line, got {len(tokens)} fields")
        name = _strip_video_suffix(tokens[0])
        if name.startswith("abnormal_"):
            scene = _UBNORMAL_SCENE.match(name)
            if scene is None:
                raise _field_error(path, lineno, 1, "video name",
                                   f"{name!r}: expected abnormal_scene_<number>_..., which names the Scene folder")
            tracks = root / f"Scene{scene.group(1)}" / f"{name}_annotations" / f"{name}_tracks.txt"
            if not tracks.is_file():
                raise _field_error(path, lineno, 1, "video name",
                                   f"no tracks file for the abnormal video {name!r}: {tracks} does not exist "
                                   f"(dataset root {root})")
            entry = VideoTruth(name, "Abnormal", _read_tracks(tracks, name), f"{path}:{lineno}")
        elif name.startswith("normal_"):
            entry = VideoTruth(name, NORMAL_CATEGORY, (), f"{path}:{lineno}")
        else:
            raise _field_error(path, lineno, 1, "video name",
                               f"{name!r}: expected a name starting with 'abnormal_' or 'normal_'")
        _add_entry(table, entry, path, lineno)
    return _non_empty(table, path, "one UBnormal video name per line")


# --------------------------------------------------------------------------------------------------------------------
# MSAD
# --------------------------------------------------------------------------------------------------------------------


def _msad_name(entry: str) -> str:
    base = entry.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(".npy"):
        base = base[:-4]
    return _MSAD_FEATURE_SUFFIX.sub("", base)


def _msad_category(name: str) -> str:
    if name.startswith("MSAD_normal_"):
        return NORMAL_CATEGORY
    head, _, number = name.rpartition("_")
    if not head or not number.isdigit():
        raise ValueError(f"{name!r}: expected <Class>_<number> (e.g. Traffic_accident_12) or MSAD_normal_testing_<n>")
    return head


def _feature_candidates(entry: str, list_dir: Path, features: Path) -> list[Path]:
    written = Path(entry)
    parts = Path(entry.replace("\\", "/")).parts
    out = [written if written.is_absolute() else list_dir / written]
    if len(parts) >= 2:
        out.append(features / parts[-2] / parts[-1])
    out.append(features / parts[-1])
    return list(dict.fromkeys(out))


def _snippets(feature: Path) -> int:
    """Snippets T of a feature file from its header (``(T, F)`` or ten-crop ``(T, 10, F)``, RTFM's layout)."""
    try:
        shape = np.load(feature, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as err:
        raise GroundTruthError(f"{feature}: not a readable .npy feature file ({err})") from None
    if not shape or shape[0] < 1:
        raise GroundTruthError(f"{feature}: feature array of shape {shape} has no snippets")
    return int(shape[0])


def _msad_labels(gt: Path) -> np.ndarray:
    try:
        labels = np.load(gt, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise GroundTruthError(f"{gt}: not a readable .npy frame-label array ({err})") from None
    if labels.ndim != 1:
        raise GroundTruthError(f"{gt}: expected a 1-D array of frame labels, got shape {labels.shape}")
    if labels.dtype.kind not in "biuf":
        raise GroundTruthError(f"{gt}: expected numeric 0/1 frame labels, got dtype {labels.dtype}")
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise GroundTruthError(f"{gt}: frame label {labels[bad[0]]!r} at index {bad[0]} is neither 0 nor 1 "
                               f"({bad.size} such labels)")
    return labels.astype(bool)


def _runs(labels: np.ndarray) -> tuple[tuple[int, int], ...]:
    edges = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return tuple((int(s), int(e)) for s, e in zip(starts, ends))


def read_msad(path: str | Path, gt: str | Path | None = None, features: str | Path | None = None) -> GroundTruth:
    """Read MSAD's released test frame ground truth; FILE is the feature release's test list.

    **MSAD's own test annotation format was not found documented.** The repository Tom-roujiang/MSAD (README and
    code; files cited below as of upstream commit 97447f6, Nov 2024) does not define it, the paper (Zhu et al.,
    "Advancing Video Anomaly Detection: A Concise Review and a New Dataset", NeurIPS 2024 Datasets & Benchmarks)
    describes the dataset and its evaluation protocols (the README points to its protocol ii) but no file, and the
    project page (msad-dataset.github.io) could not be consulted. Third-party code shows an ``anomaly_annotation.csv``
    in the by-request video download (columns ``name, scenario, total frames, starting frame of anomaly, ending
    frame of anomaly``, one span per video), but whether its frame numbers are 0- or 1-based and whether the end is
    inclusive is stated nowhere official, and the third parties disagree; it is therefore not read here.

    What *is* released, and read here, is the frame ground truth of the public feature release, used by the
    repository's benchmark code (README "Benchmarking on MSAD Dataset", protocol ii; ``RTFM/test_10crop.py``,
    ``MGFN/test.py``):

    * ``RTFM/list/msad-i3d-test.list`` (or ``msad-swin-test.list``): **FILE**, one feature file per line, the 120
      abnormal test videos (``.../MSAD-I3D-abnormal-testing/Traffic_accident_12_i3d.npy``) then the 120 normal ones
      (``.../MSAD-I3D-normal-testing/MSAD_normal_testing_7_i3d.npy``);
    * ``RTFM/list/gt-MSAD-WS-new.npy`` (same bytes as ``MGFN/data/msad/gt-MSAD-WS.npy``): one 0/1 label per frame for
      all test videos concatenated in list order, :data:`MSAD_FRAMES_PER_SNIPPET` = 16 frames per feature snippet
      (the code compares it with ``np.repeat(pred, 16)``); looked for next to FILE unless ``gt`` is given;
    * the feature files, whose first axis is the snippet count T of each video (``16 * T`` labels per video). They
      are looked up as written in the list, else as ``<features>/<folder>/<file>`` and ``<features>/<file>``, with
      ``features`` = FILE's folder unless given. The total ``16 * sum(T)`` must equal the label count.

    Each video's slice of labels becomes its spans: every run of 1s is ``(start, end)``, 0-based and end-exclusive
    within the video, i.e. on the 16-frame snippet grid of the features (frames past ``16 * T`` have no label in the
    release). Keys are the names without the feature suffix (``Traffic_accident_12``, ``MSAD_normal_testing_7``);
    the category is the class part (``Traffic_accident``) or ``Normal``. A normal video with abnormal frames, or an
    abnormal one without, is an error (a sign that the labels and the feature lengths are misaligned).
    """
    path = Path(path)
    features = Path(features) if features is not None else path.parent
    entries: list[tuple[int, str, str, int]] = []  # (line, name, category, T)
    seen: dict[str, int] = {}
    for lineno, line in _text_lines(path):
        entry = line.strip()
        if not entry:
            continue
        name = _msad_name(entry)
        try:
            category = _msad_category(name)
        except ValueError as err:
            raise _field_error(path, lineno, 1, "feature file", str(err)) from None
        if name in seen:
            raise _field_error(path, lineno, 1, "feature file", f"duplicate video {name!r} (first at {path}:{seen[name]})")
        seen[name] = lineno
        candidates = _feature_candidates(entry, path.parent, features)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise _field_error(path, lineno, 1, "feature file",
                               f"feature file of {name!r} not found; looked for {', '.join(map(str, candidates))} "
                               "(MSAD's frame labels count 16 per feature snippet, so the features are needed)")
        entries.append((lineno, name, category, _snippets(found)))
    if not entries:
        raise GroundTruthError(f"{path}: no entries (expected one MSAD feature file per line)")
    gt_path = Path(gt) if gt is not None else next((path.parent / n for n in _MSAD_GT_NAMES
                                                    if (path.parent / n).is_file()), None)
    if gt_path is None:
        raise GroundTruthError(f"{path}: no MSAD frame labels next to it: expected {' or '.join(_MSAD_GT_NAMES)} in "
                               f"{path.parent}")
    labels = _msad_labels(gt_path)
    total = MSAD_FRAMES_PER_SNIPPET * sum(t for *_, t in entries)
    if labels.size != total:
        raise GroundTruthError(f"{gt_path}: {labels.size} frame labels, but the {len(entries)} videos of {path} have "
                               f"{MSAD_FRAMES_PER_SNIPPET} x {total // MSAD_FRAMES_PER_SNIPPET} snippets = {total} "
                               f"frames (features under {features}); labels and features do not belong together")
    table = GroundTruth(source=str(path))
    offset = 0
    for lineno, name, category, snippets in entries:
        n = MSAD_FRAMES_PER_SNIPPET * snippets
        spans = _runs(labels[offset:offset + n])
        if category == NORMAL_CATEGORY and spans:
            raise _field_error(path, lineno, 1, "feature file",
                               f"normal video {name!r} has {sum(e - s for s, e in spans)} abnormal frames in "
                               f"{gt_path} (labels {offset}..{offset + n - 1}); labels and features are misaligned")
        if category != NORMAL_CATEGORY and not spans:
            raise _field_error(path, lineno, 1, "feature file",
                               f"abnormal video {name!r} has no abnormal frame in {gt_path} (labels {offset}.."
                               f"{offset + n - 1}); labels and features are misaligned")
        table[name] = VideoTruth(name, category, spans, f"{path}:{lineno}")
        offset += n
    return table


# --------------------------------------------------------------------------------------------------------------------
# Dispatch, normal names, summary
# --------------------------------------------------------------------------------------------------------------------

_READERS = {"ucf": read_ucf_temporal, "xd": read_xd, "ubnormal": read_ubnormal, "msad": read_msad}


def read_ground_truth(path: str | Path, fmt: str) -> GroundTruth:
    """The ground truth in ``path``, read as format ``fmt`` (one of :data:`FORMATS`).

    Raises :class:`ValueError` for an unknown format (naming the known ones), :class:`FileNotFoundError` naming the
    path when it does not exist, and :class:`GroundTruthError` for a malformed file.
    """
    if fmt not in _READERS:
        raise ValueError(f"unknown ground-truth format {fmt!r}; known formats: {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: ground-truth file does not exist (format {fmt})")
    if path.is_dir():
        raise GroundTruthError(f"{path}: is a directory; the {fmt} format reads a file")
    return _READERS[fmt](path)


def _covered(spans: Iterable[tuple[int, int]]) -> int:
    return sum(e - s for s, e in merged_spans(spans))


def summarize(truth: Mapping[str, VideoTruth]) -> dict:
    """Counts of a ground truth: videos, abnormal videos (>= 1 span), normal videos, spans, frames covered, per category.

    ``frames_covered`` is the number of frames inside a span (end-exclusive, so ``e - s`` per span; a frame in two
    overlapping spans of a video counts once). ``categories`` maps each category (sorted) to the same counts.
    ``span_classes`` (only for a file with a class per span) maps each class to its videos, spans and frames.
    """
    def counts() -> dict[str, int]:
        return {"videos": 0, "abnormal_videos": 0, "normal_videos": 0, "spans": 0, "frames_covered": 0}

    total, per, by_class = counts(), {}, {}
    for entry in truth.values():
        frames = _covered(entry.spans)
        for c in (total, per.setdefault(entry.category, counts())):
            c["videos"] += 1
            c["abnormal_videos" if entry.spans else "normal_videos"] += 1
            c["spans"] += len(entry.spans)
            c["frames_covered"] += frames
        for code in sorted(set(entry.classes)):
            own = [span for span, c in zip(entry.spans, entry.classes) if c == code]
            row = by_class.setdefault(code, {"videos": 0, "spans": 0, "frames_covered": 0})
            row["videos"] += 1
            row["spans"] += len(own)
            row["frames_covered"] += _covered(own)
    out = {**total, "categories": dict(sorted(per.items()))}
    if by_class:  # a file with a class per span (XD's multi-class file): the counts per span class
        out["span_classes"] = {c: by_class[c] for c in sorted(by_class, key=XD_CLASSES.index)}
    return out
