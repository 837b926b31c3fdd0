"""Reader for the VAGTA annotation files (Alert-CLIP dataset): typed records, loading, categories, box interpolation.

Two upstream formats exist:

* **entries** (``Final_ucf_fgclip_translated_qwen_{train,test}.json``): a JSON list; each entry has
  ``video``, ``global_caption``, ``region_captions``, ``box_infos`` (keyframe tracks, one per region)
  and ``timestamps``.
* **items** (``qwen_vl_train.json``): an object ``{meta_file, model, created_at, items}``; each item
  is one region/segment with its caption and hard negatives.

The upstream files carry known defects (``vagta_defects.find_defects`` lists them, ``alertclip vagta check`` in
``vagta_cli`` prints them). Loading never "fixes" the records: they stay faithful to the file. Repairs that are safe
happen where the data is consumed (``boxes_at`` clamps float-noise coordinates, the hard-negative validator drops
duplicates), and the defect report says which defects those repairs cover (``Defect.repaired``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "DEFAULT_TOL",
    "Entry",
    "Keyframe",
    "TrainFile",
    "TrainItem",
    "VagtaFile",
    "VagtaFormatError",
    "boxes_at",
    "category_of",
    "clamp_boxes",
    "load",
    "segment_category",
    "short_repr",
    "track_key",
]

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


def short_repr(value: Any, limit: int = 60) -> str:
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
    return f"{err['msg']} (got {_json_type(value)} {short_repr(value, 40)})"


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
