"""The known defects of VAGTA annotation files, found on a loaded file: ``find_defects`` -> ``Defect`` records."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Literal, Sequence

from .captions import digit_typos, non_latin_runs, norm_caption
from .vagta import DEFAULT_TOL, Entry, TrainItem, VagtaFile, short_repr

__all__ = ["Defect", "DefectKind", "find_defects"]

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


@dataclass(frozen=True)
class Defect:
    """One defect. ``field`` is the path from the top of the file (``items[12].hard_negative[2]``,
    ``entries[3].box_infos[0][1].bbox``; ``entries`` is the file's top-level list). ``repaired`` is
    True when the data's consumers (``boxes_at``, the hard-negative validator) repair it."""

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
        yield Defect("digit_in_word", file, index, field, f"digit inside word {typos} in {short_repr(text)}")
    runs = non_latin_runs(text)
    if runs:
        yield Defect("non_english", file, index, field, f"non-Latin text {runs} in {short_repr(text)}")


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
        captions = {norm_caption(c) for _, _, c in segs}
        if len(segs) >= 2 and len(captions) == 1 and captions != {""}:
            index, field, caption = segs[0]
            others = ", ".join(f for _, f, _ in segs[1:])
            yield Defect(
                "repeated_caption", file, index, field,
                f"same caption on all {len(segs)} segments of {video} (also {others}): {short_repr(caption)}",
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
    positive = norm_caption(item.region_caption)
    first_at: dict[str, int] = {}
    for j, text in enumerate(item.hard_negative):
        key = norm_caption(text)
        if key and key == positive:
            yield Defect(
                "hard_negative_equals_positive", file, i, f"{base}[{j}]",
                f"identical to region_caption {short_repr(text)}; dropped by usable_hard_negatives", True,
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
