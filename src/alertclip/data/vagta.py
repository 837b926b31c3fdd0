"""Reader for the VAGTA annotation files (Alert-CLIP dataset): typed records, box interpolation,
defect report, polars tables and the ``alertclip vagta check`` command.

Two upstream formats exist:

* **entries** (``Final_ucf_fgclip_translated_qwen_{train,test}.json``): a JSON list; each entry has
  ``video``, ``global_caption``, ``region_captions``, ``box_infos`` (keyframe tracks, one per region)
  and ``timestamps``.
* **items** (``qwen_vl_train.json``): an object ``{meta_file, model, created_at, items}``; each item
  is one region/segment with its caption and hard negatives.

The upstream files carry known defects (see ``find_defects``). Loading never "fixes" the records: they
stay faithful to the file. Repairs that are safe happen where the data is consumed (``boxes_at`` and
``keyframes_table`` clamp float-noise coordinates, ``usable_hard_negatives`` drops duplicates), and the
defect report says which defects those repairs cover (``Defect.repaired``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Iterable, Iterator, Literal, Sequence

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "DEFAULT_TOL",
    "DEFECT_KINDS",
    "Defect",
    "Entry",
    "Keyframe",
    "TrainFile",
    "TrainItem",
    "VagtaFile",
    "VagtaFormatError",
    "boxes_at",
    "category_of",
    "check",
    "clamp_boxes",
    "digit_typos",
    "entries_table",
    "find_defects",
    "format_report",
    "is_abnormal_video",
    "items_table",
    "keyframes_table",
    "load",
    "main",
    "non_latin_runs",
    "regions_table",
    "usable_hard_negatives",
]

#: Coordinates outside [0, 1] by at most this much are float noise from the annotation tool.
DEFAULT_TOL = 0.02

NORMAL = "Normal"

# --------------------------------------------------------------------------------------------------
# Typed records
# --------------------------------------------------------------------------------------------------

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
BBox = Annotated[list[FiniteFloat], Field(min_length=4, max_length=4)]
TimeSpan = Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)]
FrameSpan = Annotated[list[int], Field(min_length=2, max_length=2)]

# Fixed-length number lists, for a readable "expected 4 numbers" instead of pydantic's list wording.
_FIXED_LENGTH = {"bbox": 4, "timestamps": 2, "frames_25": 2}


class _Record(BaseModel):
    # strict: JSON already carries real types, so a frame of "12" or a bbox value `true` is an
    # upstream bug to report, not something to coerce silently.
    # extra="allow": upstream may add fields; keep them (``model_extra``) instead of failing.
    model_config = ConfigDict(strict=True, extra="allow", frozen=True, populate_by_name=True)


class Keyframe(_Record):
    """One keyframe of a region track. ``frame`` is 1-based; ``bbox`` is normalised xyxy."""

    frame: int = Field(ge=1)
    bbox: BBox
    # enabled=False ends the track at this frame (see boxes_at).
    enabled: bool
    # Underscore key upstream (annotation-tool metadata); always null in the published files.
    track_id: int | str | None = Field(default=None, alias="_track_id")


class Entry(_Record):
    """One video (or one normal segment of a video) in the entries/box format."""

    video: str
    global_caption: str
    region_captions: list[str]
    box_infos: list[list[Keyframe]]
    # [start_s, end_s] for normal UCF segments, else null (optional: pure metadata).
    timestamps: TimeSpan | None = None

    @property
    def category(self) -> str:
        return segment_category(self.video, self.timestamps)

    @property
    def is_abnormal(self) -> bool:
        return self.category != NORMAL

    def track_key(self, region_index: int) -> tuple:
        return track_key(self.video, region_index, self.timestamps)

    @property
    def n_keyframes(self) -> int:
        return sum(len(track) for track in self.box_infos)


class TrainItem(_Record):
    """One region/segment of the train-items format, with its hard negatives."""

    video: str
    region_index: int = Field(ge=0)
    # [start, end] frame span at 25 fps for abnormal regions, else null.
    frames_25: FrameSpan | None = None
    region_caption: str
    hard_negative: list[str]
    timestamps: TimeSpan | None = None

    @property
    def category(self) -> str:
        return segment_category(self.video, self.timestamps)

    @property
    def is_abnormal(self) -> bool:
        return self.category != NORMAL

    @property
    def track_key(self) -> tuple:
        return track_key(self.video, self.region_index, self.timestamps)

    @property
    def clip_key(self) -> str:
        # (video, region_index) is not unique: every normal segment has region_index 0, so the
        # segment's time span is part of the key. repr() of floats is exact and stable.
        span = "all" if self.timestamps is None else f"{self.timestamps[0]!r}-{self.timestamps[1]!r}"
        return f"{self.video}#{self.region_index}@{span}"


class TrainFile(_Record):
    """The train-items file: generation metadata plus the items."""

    meta_file: str
    model: str
    created_at: int
    items: list[TrainItem]


_ENTRIES = TypeAdapter(list[Entry])
_TRAIN = TypeAdapter(TrainFile)

Kind = Literal["entries", "items"]


@dataclass(frozen=True)
class VagtaFile:
    """A loaded annotation file. Exactly one of ``entries`` / ``train`` is set, per ``kind``."""

    path: Path
    kind: Kind
    entries: list[Entry] | None = None
    train: TrainFile | None = None

    @property
    def items(self) -> list[TrainItem] | None:
        return None if self.train is None else self.train.items

    @property
    def records(self) -> Sequence[Entry] | Sequence[TrainItem]:
        return (self.entries if self.kind == "entries" else self.items) or []


# --------------------------------------------------------------------------------------------------
# Video path -> category
# --------------------------------------------------------------------------------------------------

# "Normal" as a whole underscore/space/dash-separated word: Normal_Videos_360, Testing_Normal_Videos_
# Anomaly, Normal_Training, MSAD_normal_testing_41, a folder "Normal"; but not "Abnormal".
_NORMAL_WORD = re.compile(r"(?:^|[_\-\s])normal(?:[_\-\s]|$)", re.IGNORECASE)
# Category from a bare file name: "Arson010_x264" -> Arson, "People_falling_42" -> People_falling.
_STEM_CATEGORY = re.compile(r"^([A-Za-z]+(?:_[A-Za-z]+)*?)_?\d")


def _path_parts(video: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", video) if p]


def category_of(video: str) -> str:
    """Category of a video path: ``.../Videos/Arson/Arson010_x264.mp4`` -> ``Arson``; normal -> ``Normal``.

    Only the file and its two parent folders are inspected (MSAD normal videos sit two levels deep,
    ``Normal_Training/<scene>/x.mp4``), so an unrelated "normal" higher up an absolute path is ignored.
    """
    parts = _path_parts(video)
    if not parts:
        return "Unknown"
    tail = parts[-3:-1] + [PurePosixPath(parts[-1]).stem]
    if any(_NORMAL_WORD.search(p) for p in tail):
        return NORMAL
    parent = parts[-2] if len(parts) >= 2 else ""
    # Container folders ("Videos", "MSAD_Videos", ...) are not categories; fall back to the file name.
    if parent and not parent.lower().endswith("videos"):
        return parent
    m = _STEM_CATEGORY.match(PurePosixPath(parts[-1]).stem)
    return m.group(1) if m else "Unknown"


def is_abnormal_video(video: str) -> bool:
    return category_of(video) != NORMAL


def segment_category(video: str, timestamps: Sequence[float] | None) -> str:
    """The category of one entry or item: ``timestamps`` mark a normal segment (VAGTA gives them to normal segments
    only, abnormal regions have ``frames_25``), so a timestamped segment of an abnormal video (a normal look-alike
    event in it) is Normal; otherwise the video's category."""
    return NORMAL if timestamps is not None else category_of(video)


def track_key(video: str, region_index: int, timestamps: Sequence[float] | None) -> tuple:
    """Matches an item to its box track: normal segments of one video all have region 0, their span tells them apart."""
    return (video, int(region_index), None if timestamps is None else tuple(float(t) for t in timestamps))


# --------------------------------------------------------------------------------------------------
# Loading and format errors
# --------------------------------------------------------------------------------------------------


class VagtaFormatError(ValueError):
    """The file is not a readable VAGTA annotation file. The message names file, entry and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path,
        index: int | None = None,
        field: str | None = None,
        errors: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.path = str(path)
        self.index = index
        self.field = field
        self.errors = list(errors) or [message]


_JSON_TYPE = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "NoneType": "null",
    "list": "array",
    "dict": "object",
}
_MAX_LISTED_ERRORS = 10


def _json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value).__name__, type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loc_path(loc: Sequence[str | int]) -> str:
    """('box_infos', 0, 1, 'bbox') -> 'box_infos[0][1].bbox'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_detail(err: Any) -> str:
    """A short reason for one pydantic error, in JSON vocabulary."""
    kind, loc, value = err["type"], err["loc"], err.get("input")
    if kind == "missing":
        return "missing required field"
    last_key = next((p for p in reversed(loc) if isinstance(p, str)), None)
    if kind in ("too_short", "too_long") and loc and loc[-1] == last_key and last_key in _FIXED_LENGTH:
        got = len(value) if isinstance(value, (list, tuple)) else "?"
        return f"expected {_FIXED_LENGTH[last_key]} numbers, got {got}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object, got {_json_type(value)}"
    return f"{err['msg']} (got {_json_type(value)} {_short(value, 40)})"


def _split_loc(loc: Sequence[str | int], kind: Kind) -> tuple[int | None, tuple[str | int, ...]]:
    """Separate the record index from the field location inside the record."""
    loc = tuple(loc)
    if kind == "entries" and loc and isinstance(loc[0], int):
        return loc[0], loc[1:]
    if kind == "items" and len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
        return loc[1], loc[2:]
    return None, loc


def _format_validation_error(path: str | Path, exc: ValidationError, kind: Kind) -> VagtaFormatError:
    label = "entry" if kind == "entries" else "item"
    lines: list[str] = []
    first: tuple[int | None, str | None] = (None, None)
    for n, err in enumerate(exc.errors(include_url=False)):
        index, rest = _split_loc(err["loc"], kind)
        field = _loc_path(rest) or None
        where = [str(path)]
        if index is not None:
            where.append(f"{label} {index}")
        if field:
            where.append(f"field {field}")
        lines.append(": ".join(where + [_error_detail(err)]))
        if n == 0:
            first = (index, field)
    message = lines[0]
    if len(lines) > 1:
        shown = lines[1:_MAX_LISTED_ERRORS]
        hidden = len(lines) - 1 - len(shown)
        message += "\n" + "\n".join(f"  also: {line}" for line in shown)
        if hidden:
            message += f"\n  ... and {hidden} more error(s)"
    return VagtaFormatError(message, path=path, index=first[0], field=first[1], errors=lines)


def _read_json(path: Path) -> Any:
    data = path.read_bytes()  # OSError (missing file, ...) propagates: not a format problem
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VagtaFormatError(f"{path}: not UTF-8 text: {exc}", path=path) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise VagtaFormatError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path
        ) from exc


def load(path: str | Path) -> VagtaFile:
    """Load a VAGTA annotation file, detecting its format from the top-level JSON value.

    Raises ``VagtaFormatError`` (file, entry index and field in the message) for invalid JSON, a wrong
    top-level value, a missing required field or a value of the wrong type.
    """
    path = Path(path)
    raw = _read_json(path)
    if isinstance(raw, list):
        try:
            return VagtaFile(path=path, kind="entries", entries=_ENTRIES.validate_python(raw))
        except ValidationError as exc:
            raise _format_validation_error(path, exc, "entries") from exc
    if isinstance(raw, dict) and "items" in raw:
        try:
            return VagtaFile(path=path, kind="items", train=_TRAIN.validate_python(raw))
        except ValidationError as exc:
            raise _format_validation_error(path, exc, "items") from exc
    got = "an object without an 'items' key" if isinstance(raw, dict) else f"a JSON {_json_type(raw)}"
    raise VagtaFormatError(
        f"{path}: top level: expected a list of entries or an object with 'items', got {got}",
        path=path,
    )


# --------------------------------------------------------------------------------------------------
# Boxes: clamping and interpolation
# --------------------------------------------------------------------------------------------------


def clamp_boxes(boxes: np.ndarray, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Snap coordinates outside [0, 1] by at most ``tol`` onto the border; leave the rest untouched.

    Small excursions are float noise from the annotation tool (``-1e-15``, ``1.0000000000000069``);
    larger ones are real errors, kept visible (``find_defects`` reports them as not repaired).
    NaN (box not shown) stays NaN.
    """
    v = np.array(boxes, dtype=np.float64, copy=True)
    v[(v < 0.0) & (v >= -tol)] = 0.0
    v[(v > 1.0) & (v <= 1.0 + tol)] = 1.0
    return v


def _track_arrays(track: Sequence[Keyframe]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Sort by frame; if a frame is keyed twice the later keyframe in the file wins.
    by_frame = {k.frame: k for k in track}
    keys = [by_frame[f] for f in sorted(by_frame)]
    frames = np.array([k.frame for k in keys], dtype=np.float64)
    boxes = np.array([k.bbox for k in keys], dtype=np.float64).reshape(-1, 4)
    enabled = np.array([k.enabled for k in keys], dtype=bool)
    return frames, boxes, enabled


def boxes_at(
    track: Sequence[Keyframe],
    frames: Any,
    *,
    tol: float = DEFAULT_TOL,
    hold_until: float | None = None,
) -> np.ndarray:
    """Boxes of one region track at the given 1-based frame numbers: ``(n, 4)`` float32, NaN = not shown.

    Semantics:

    * before the first keyframe: not shown;
    * at a keyframe: shown with its box if ``enabled``; a keyframe with ``enabled: false`` ends the
      track (not shown from its frame on) until a later enabled keyframe restarts it;
    * strictly between an enabled keyframe and the next keyframe: linear interpolation towards the
      next keyframe's box (upstream, a disabling keyframe repeats the last box, so this is a hold);
    * after the last keyframe, if it is enabled: the track never ended, but how long the object stays
      is unknown, so by default nothing is shown after that frame (the last box is held up to and
      including the last keyframe's frame only). Pass ``hold_until`` (e.g. the video's last frame) to
      hold the last box through that frame instead.

    Coordinates within ``tol`` outside [0, 1] are clamped (see ``clamp_boxes``).
    """
    f = np.atleast_1d(np.asarray(frames, dtype=np.float64)).ravel()
    out = np.full((f.size, 4), np.nan)
    if not track or f.size == 0:
        return out.astype(np.float32)
    kf, kb, ke = _track_arrays(track)
    last = kf.size - 1
    i = np.searchsorted(kf, f, side="right") - 1  # last keyframe at or before each frame
    seen = i >= 0
    i = np.clip(i, 0, last)
    shown = seen & ke[i]
    after_last = seen & (i == last) & (f > kf[last])
    shown &= ~after_last if hold_until is None else ~(after_last & (f > hold_until))
    nxt = np.minimum(i + 1, last)
    span = kf[nxt] - kf[i]
    t = np.divide(f - kf[i], span, out=np.zeros_like(f), where=span > 0)  # 0 at/after the last key
    interp = kb[i] + t[:, None] * (kb[nxt] - kb[i])
    out[shown] = interp[shown]
    return clamp_boxes(out, tol).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Text checks
# --------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")
_LETTER_DIGIT = re.compile(r"[A-Za-z][0-9]|[0-9][A-Za-z]")
_LOWER_PAIR = re.compile(r"[a-z]{2}")
# Legitimate letter+digit tokens: ordinals, numbers with a unit, media formats/codecs.
_ALLOWED_ALNUM = re.compile(
    r"""^(?:
        \d+(?:st|nd|rd|th)
      | \d+(?:s|am|pm|fps|px|mm|cm|km|kg|mph|kmh|hz|k|m|g|h|p|x|d)
      | mp[34] | mpeg4 | [hx]26[45] | 3gp | m4[av]
    )$""",
    re.IGNORECASE | re.VERBOSE,
)


def digit_typos(text: str) -> list[str]:
    """Words with a digit glued into them (``one6``, ``parking5``).

    Rule: a word (run of letters/digits) with a letter-digit or digit-letter boundary, made mostly of
    letters (more letters than digits) and containing two lowercase letters in a row (a real word,
    not an acronym/code such as ``CCTV2``, ``AK47``, ``3D``, ``x264``), and not on the allow-list
    (ordinals ``2nd``/``10th``, numbers with units ``4pm``/``1080p``/``1990s``, ``mp4``, ``h264``).
    """
    found = []
    for m in _WORD.finditer(text):
        word = m.group()
        if not _LETTER_DIGIT.search(word) or _ALLOWED_ALNUM.match(word):
            continue
        letters = sum(c.isalpha() for c in word)
        digits = sum(c.isdigit() for c in word)
        if letters > digits and _LOWER_PAIR.search(word):
            found.append(word)
    return found


def _is_foreign_char(ch: str) -> bool:
    code = ord(ch)
    # CJK punctuation and full-width forms only come from untranslated CJK text.
    if 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF:
        return True
    return unicodedata.category(ch).startswith("L") and not unicodedata.name(ch, "").startswith("LATIN")


def non_latin_runs(text: str) -> list[str]:
    """Runs of letters from a non-Latin script (CJK, Cyrillic, ...) or CJK punctuation in ``text``."""
    runs: list[str] = []
    current = ""
    for ch in text:
        if _is_foreign_char(ch):
            current += ch
        elif current:
            runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs


def _norm_caption(text: str) -> str:
    # Case, spacing and a final full stop do not make two captions different.
    return " ".join(text.split()).casefold().rstrip(" .")


def usable_hard_negatives(item: TrainItem) -> list[str]:
    """Hard negatives safe to train on: non-empty, not the positive caption, first copy of duplicates."""
    positive = _norm_caption(item.region_caption)
    seen: set[str] = set()
    kept = []
    for text in item.hard_negative:
        key = _norm_caption(text)
        if key and key != positive and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


# --------------------------------------------------------------------------------------------------
# Defects
# --------------------------------------------------------------------------------------------------

DefectKind = Literal[
    "empty_hard_negatives",
    "hard_negative_equals_positive",
    "duplicate_hard_negatives",
    "digit_in_word",
    "non_english",
    "bbox_out_of_range",
    "bbox_inverted",
    "zero_length_span",
    "repeated_caption",
    "abnormal_without_boxes",
    "empty_caption",
    "region_count_mismatch",
]
DEFECT_KINDS: tuple[str, ...] = DefectKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Defect:
    """One defect. ``field`` is the path from the top of the file (``items[12].hard_negative[2]``,
    ``entries[3].box_infos[0][1].bbox``; ``entries`` is the file's top-level list). ``repaired`` is
    True when the reader's consumers (``boxes_at``, tables, ``usable_hard_negatives``) repair it."""

    kind: DefectKind
    file: str
    index: int | None
    field: str
    detail: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _caption_defects(file: str, index: int, field: str, text: str) -> Iterator[Defect]:
    if not text.strip():
        yield Defect("empty_caption", file, index, field, "caption is empty")
        return
    typos = digit_typos(text)
    if typos:
        yield Defect("digit_in_word", file, index, field, f"digit inside word {typos} in {_short(text)}")
    runs = non_latin_runs(text)
    if runs:
        yield Defect("non_english", file, index, field, f"non-Latin text {runs} in {_short(text)}")


def _span_defect(file: str, index: int, field: str, span: Sequence[float] | None) -> Iterator[Defect]:
    if span is not None and span[0] >= span[1]:
        yield Defect("zero_length_span", file, index, field, f"start {span[0]} >= end {span[1]}")


def _bbox_defects(file: str, index: int, field: str, bbox: Sequence[float], tol: float) -> Iterator[Defect]:
    outside = [v for v in bbox if v < 0.0 or v > 1.0]
    if outside:
        fixable = all(-tol <= v <= 1.0 + tol for v in outside)
        how = f"clamped (within tolerance {tol})" if fixable else f"beyond tolerance {tol}, left as is"
        yield Defect("bbox_out_of_range", file, index, field, f"{outside} outside [0, 1]; {how}", fixable)
    x1, y1, x2, y2 = bbox
    if x2 < x1 or y2 < y1:
        yield Defect("bbox_inverted", file, index, field, f"x2<x1 or y2<y1 in {list(bbox)}")


def _repeated_caption_defects(
    file: str, segments: Iterable[tuple[str, int, str, str]]
) -> Iterator[Defect]:
    """segments: (video, record index, field, caption). One defect per video whose 2+ segments all
    share one caption (a copy-paste upstream: each segment should describe its own events)."""
    by_video: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for video, index, field, caption in segments:
        by_video[video].append((index, field, caption))
    for video, segs in by_video.items():
        captions = {_norm_caption(c) for _, _, c in segs}
        if len(segs) >= 2 and len(captions) == 1 and captions != {""}:
            index, field, caption = segs[0]
            others = ", ".join(f for _, f, _ in segs[1:])
            yield Defect(
                "repeated_caption", file, index, field,
                f"same caption on all {len(segs)} segments of {video} (also {others}): {_short(caption)}",
            )


def _entry_defects(file: str, entries: Sequence[Entry], tol: float) -> Iterator[Defect]:
    segments = []
    for i, entry in enumerate(entries):
        base = f"entries[{i}]"
        yield from _caption_defects(file, i, f"{base}.global_caption", entry.global_caption)
        for j, caption in enumerate(entry.region_captions):
            yield from _caption_defects(file, i, f"{base}.region_captions[{j}]", caption)
            segments.append((entry.video, i, f"{base}.region_captions[{j}]", caption))
        if len(entry.region_captions) != len(entry.box_infos):
            yield Defect(
                "region_count_mismatch", file, i, f"{base}.box_infos",
                f"{len(entry.region_captions)} region captions but {len(entry.box_infos)} box tracks",
            )
        for j, track in enumerate(entry.box_infos):
            for k, kf in enumerate(track):
                yield from _bbox_defects(file, i, f"{base}.box_infos[{j}][{k}].bbox", kf.bbox, tol)
        if entry.is_abnormal and entry.n_keyframes == 0:
            yield Defect(
                "abnormal_without_boxes", file, i, f"{base}.box_infos",
                f"{entry.category} entry has no keyframes",
            )
        yield from _span_defect(file, i, f"{base}.timestamps", entry.timestamps)
    yield from _repeated_caption_defects(file, segments)


def _hard_negative_defects(file: str, i: int, item: TrainItem) -> Iterator[Defect]:
    base = f"items[{i}].hard_negative"
    if not item.hard_negative:
        yield Defect("empty_hard_negatives", file, i, base, "no hard negatives")
        return
    positive = _norm_caption(item.region_caption)
    first_at: dict[str, int] = {}
    for j, text in enumerate(item.hard_negative):
        key = _norm_caption(text)
        if key and key == positive:
            yield Defect(
                "hard_negative_equals_positive", file, i, f"{base}[{j}]",
                f"identical to region_caption {_short(text)}; dropped by usable_hard_negatives", True,
            )
        elif key and key in first_at:
            yield Defect(
                "duplicate_hard_negatives", file, i, f"{base}[{j}]",
                f"same as hard_negative[{first_at[key]}]; dropped by usable_hard_negatives", True,
            )
        first_at.setdefault(key, j)


def _item_defects(file: str, items: Sequence[TrainItem]) -> Iterator[Defect]:
    segments = []
    for i, item in enumerate(items):
        base = f"items[{i}]"
        yield from _caption_defects(file, i, f"{base}.region_caption", item.region_caption)
        for j, text in enumerate(item.hard_negative):
            yield from _caption_defects(file, i, f"{base}.hard_negative[{j}]", text)
        yield from _hard_negative_defects(file, i, item)
        yield from _span_defect(file, i, f"{base}.frames_25", item.frames_25)
        yield from _span_defect(file, i, f"{base}.timestamps", item.timestamps)
        segments.append((item.video, i, f"{base}.region_caption", item.region_caption))
    yield from _repeated_caption_defects(file, segments)


def find_defects(vf: VagtaFile, *, tol: float = DEFAULT_TOL) -> list[Defect]:
    """Every known upstream defect in ``vf``, in file order. Never raises on a loaded file."""
    file = str(vf.path)
    if vf.kind == "entries":
        found = list(_entry_defects(file, vf.entries or [], tol))
    else:
        found = list(_item_defects(file, vf.items or []))
    # Stable file order (cross-record defects were appended last).
    return sorted(found, key=lambda d: (d.index if d.index is not None else -1, d.field, d.kind))


# --------------------------------------------------------------------------------------------------
# Polars tables
# --------------------------------------------------------------------------------------------------


def _require(vf: VagtaFile, kind: Kind, what: str) -> None:
    if vf.kind != kind:
        raise ValueError(f"{vf.path}: {what} needs an {kind} file, got a {vf.kind} file")


def _span(span: Sequence[float] | None, k: int) -> float | None:
    return None if span is None else span[k]


def entries_table(vf: VagtaFile) -> pl.DataFrame:
    """One row per entry."""
    _require(vf, "entries", "entries_table")
    rows = [
        {
            "index": i,
            "video": e.video,
            "category": e.category,
            "abnormal": e.is_abnormal,
            "global_caption": e.global_caption,
            "n_regions": max(len(e.region_captions), len(e.box_infos)),
            "n_keyframes": e.n_keyframes,
            "t_start_s": _span(e.timestamps, 0),
            "t_end_s": _span(e.timestamps, 1),
        }
        for i, e in enumerate(vf.entries or [])
    ]
    schema = {
        "index": pl.Int64, "video": pl.Utf8, "category": pl.Utf8, "abnormal": pl.Boolean,
        "global_caption": pl.Utf8, "n_regions": pl.Int64, "n_keyframes": pl.Int64,
        "t_start_s": pl.Float64, "t_end_s": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def regions_table(vf: VagtaFile) -> pl.DataFrame:
    """One row per region (caption and/or box track; a missing side is null / 0 keyframes)."""
    _require(vf, "entries", "regions_table")
    rows = []
    for i, e in enumerate(vf.entries or []):
        for j in range(max(len(e.region_captions), len(e.box_infos))):
            track = e.box_infos[j] if j < len(e.box_infos) else []
            frames = [k.frame for k in track]
            rows.append({
                "entry": i,
                "region": j,
                "video": e.video,
                "category": e.category,
                "caption": e.region_captions[j] if j < len(e.region_captions) else None,
                "n_keyframes": len(track),
                "first_frame": min(frames) if frames else None,
                "last_frame": max(frames) if frames else None,
            })
    schema = {
        "entry": pl.Int64, "region": pl.Int64, "video": pl.Utf8, "category": pl.Utf8,
        "caption": pl.Utf8, "n_keyframes": pl.Int64, "first_frame": pl.Int64, "last_frame": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def keyframes_table(vf: VagtaFile, *, tol: float = DEFAULT_TOL) -> pl.DataFrame:
    """One row per keyframe, coordinates clamped as in ``boxes_at`` (``clamped`` marks the repaired)."""
    _require(vf, "entries", "keyframes_table")
    rows = []
    for i, e in enumerate(vf.entries or []):
        for j, track in enumerate(e.box_infos):
            for k, kf in enumerate(track):
                box = clamp_boxes(np.array(kf.bbox), tol)
                rows.append({
                    "entry": i, "region": j, "keyframe": k, "frame": kf.frame,
                    "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                    "enabled": kf.enabled,
                    "track_id": None if kf.track_id is None else str(kf.track_id),
                    "clamped": bool(np.any(box != np.array(kf.bbox))),
                })
    schema = {
        "entry": pl.Int64, "region": pl.Int64, "keyframe": pl.Int64, "frame": pl.Int64,
        "x1": pl.Float64, "y1": pl.Float64, "x2": pl.Float64, "y2": pl.Float64,
        "enabled": pl.Boolean, "track_id": pl.Utf8, "clamped": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def items_table(vf: VagtaFile) -> pl.DataFrame:
    """One row per train item; ``hard_negatives`` is the usable list, ``clip_key`` is unique per segment."""
    _require(vf, "items", "items_table")
    rows = [
        {
            "index": i,
            "video": it.video,
            "category": it.category,
            "abnormal": it.is_abnormal,
            "region_index": it.region_index,
            "frame_start": _span(it.frames_25, 0),
            "frame_end": _span(it.frames_25, 1),
            "t_start_s": _span(it.timestamps, 0),
            "t_end_s": _span(it.timestamps, 1),
            "region_caption": it.region_caption,
            "n_hard_negatives": len(it.hard_negative),
            "hard_negatives": usable_hard_negatives(it),
            "clip_key": it.clip_key,
        }
        for i, it in enumerate(vf.items or [])
    ]
    schema = {
        "index": pl.Int64, "video": pl.Utf8, "category": pl.Utf8, "abnormal": pl.Boolean,
        "region_index": pl.Int64, "frame_start": pl.Int64, "frame_end": pl.Int64,
        "t_start_s": pl.Float64, "t_end_s": pl.Float64, "region_caption": pl.Utf8,
        "n_hard_negatives": pl.Int64, "hard_negatives": pl.List(pl.Utf8), "clip_key": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


# --------------------------------------------------------------------------------------------------
# check + CLI
# --------------------------------------------------------------------------------------------------


def _counts(vf: VagtaFile) -> dict[str, int]:
    records = vf.records
    abnormal = sum(r.is_abnormal for r in records)
    counts = {
        vf.kind: len(records),
        "videos": len({r.video for r in records}),
        "normal": len(records) - abnormal,
        "abnormal": abnormal,
    }
    if vf.kind == "entries":
        counts["regions"] = regions_table(vf).height
        counts["keyframes"] = sum(e.n_keyframes for e in vf.entries or [])
    else:
        counts["hard_negatives"] = sum(len(it.hard_negative) for it in vf.items or [])
    return counts


def check(paths: Iterable[str | Path], *, tol: float = DEFAULT_TOL) -> dict[str, dict[str, Any]]:
    """Summary per file (keyed by the path as given): kind, counts, defects by kind and the defects.

    Normal/abnormal count records (entries or items), not videos. Raises ``VagtaFormatError`` on the
    first unreadable file.
    """
    report: dict[str, dict[str, Any]] = {}
    for path in paths:
        vf = load(path)
        defects = find_defects(vf, tol=tol)
        report[str(path)] = {
            "kind": vf.kind,
            "counts": _counts(vf),
            "defects_by_kind": dict(sorted(Counter(d.kind for d in defects).items())),
            "n_defects": len(defects),
            "n_repaired": sum(d.repaired for d in defects),
            "defects": [d.to_dict() for d in defects],
        }
    return report


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  ", label_column: bool = True
) -> list[str]:
    """Plain-text table; numbers right-aligned, the first column left-aligned when it holds labels."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(header))]

    def fmt(c: int, cell: str) -> str:
        return cell.ljust(widths[c]) if c == 0 and label_column else cell.rjust(widths[c])

    return [indent + "  ".join(fmt(c, cell) for c, cell in enumerate(row)) for row in cells]


def format_report(report: dict[str, dict[str, Any]]) -> str:
    """Human-readable rendering of ``check``'s result."""
    lines: list[str] = []
    for path, summary in report.items():
        counts = summary["counts"]
        lines.append(f"{path} ({summary['kind']} file)")
        lines += _table(list(counts), [list(counts.values())], label_column=False)
        lines.append(f"  defects: {summary['n_defects']} ({summary['n_repaired']} repaired)")
        if summary["defects"]:
            repaired = Counter(d["kind"] for d in summary["defects"] if d["repaired"])
            rows = [(k, n, repaired[k]) for k, n in summary["defects_by_kind"].items()]
            lines += _table(("kind", "count", "repaired"), rows, indent="    ")
            lines.append("  details:")
            for d in summary["defects"]:
                mark = " [repaired]" if d["repaired"] else ""
                lines.append(f"    {d['kind']}: {d['field']}: {d['detail']}{mark}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertclip vagta", description="VAGTA annotation tools.")
    sub = parser.add_subparsers(dest="command")
    chk = sub.add_parser("check", help="validate annotation files and report their defects")
    chk.add_argument("files", nargs="+", metavar="FILE", help="VAGTA JSON file (entries or items)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument("--tolerance", type=float, default=DEFAULT_TOL,
                     help=f"bbox float-noise tolerance (default {DEFAULT_TOL})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``alertclip vagta check FILE... [--json]``. Exit 0 (also with defects), 2 on unreadable input."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help(sys.stderr)
        return 2
    try:
        report = check(args.files, tol=args.tolerance)
    except VagtaFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
