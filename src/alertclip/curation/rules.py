"""Curation rules. Each rule has a name (its reason code) and returns :class:`Finding` s: ``drop`` removes the
clip, ``repair`` keeps it with the repair recorded. Thresholds come from :class:`~alertclip.params.CurateParams`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import imagehash
import numpy as np
from PIL import Image

from ..data.captions import digit_typos, n_words, non_latin_runs, norm_caption, strip_digit_typos
from ..data.vagta import Keyframe
from ..params import CurateParams
from .lexicon import categories_in, related

RULES = ("media_unreadable", "too_short", "near_duplicate", "category_mismatch", "weak_caption", "repeated_caption",
         "digit_typo", "non_english", "no_boxes", "box_out_of_range", "box_inverted")


class LeakageError(RuntimeError):
    """A training clip leaks test data: same source video in both splits, or near-duplicate frames."""

    def __init__(self, message: str, train_video: str, test_video: str):
        super().__init__(message)
        self.train_video, self.test_video = train_video, test_video


@dataclass(frozen=True)
class Finding:
    rule: str
    action: Literal["drop", "repair"]
    detail: str


@dataclass
class ClipCase:
    """What the rules need to know about one input clip (one item of the train-items file)."""

    clip_key: str
    item_index: int
    video: str
    region_index: int
    caption: str
    category: str
    abnormal: bool
    frames_25: tuple[int, int] | None = None
    timestamps: tuple[float, float] | None = None
    media_status: str = "ok"
    media_reason: str = ""
    track: Sequence[Keyframe] | None = None  # keyframes of (video, region_index) in the train box file
    sampled_boxes: np.ndarray | None = None  # (T, 4) boxes at the sampled frames, when frames were extracted
    findings: list[Finding] = field(default_factory=list)
    repaired_caption: str | None = None

    @property
    def text(self) -> str:
        return self.caption if self.repaired_caption is None else self.repaired_caption


# --------------------------------------------------------------------------------------------------------------
# Per-clip rules
# --------------------------------------------------------------------------------------------------------------


def media_unreadable(case: ClipCase, p: CurateParams) -> list[Finding]:
    if case.media_status != "ok":
        reason = f": {case.media_reason}" if case.media_reason else ""
        return [Finding("media_unreadable", "drop", f"video {case.media_status}{reason}")]
    return []


def too_short(case: ClipCase, p: CurateParams) -> list[Finding]:
    if case.frames_25 is not None:
        s, e = case.frames_25
        length = e - s
    elif case.timestamps is not None:
        s, e = case.timestamps
        length = (e - s) * 25.0
    else:
        return []  # whole-video item
    if length <= 0:
        return [Finding("too_short", "drop", f"zero-length span {[s, e]}")]
    if length < p.min_span_frames:
        return [Finding("too_short", "drop", f"span {[s, e]} is {length:g} frames < {p.min_span_frames}")]
    return []


def digit_typo(case: ClipCase, p: CurateParams) -> list[Finding]:
    typos = digit_typos(case.text)
    if not typos:
        return []
    if p.repair_typos:
        case.repaired_caption = strip_digit_typos(case.text)
        return [Finding("digit_typo", "repair", f"digits removed from {typos}")]
    return [Finding("digit_typo", "drop", f"digit inside word {typos}")]


def non_english(case: ClipCase, p: CurateParams) -> list[Finding]:
    runs = non_latin_runs(case.text)
    return [Finding("non_english", "drop", f"non-Latin text {runs}")] if runs else []


def weak_caption(case: ClipCase, p: CurateParams) -> list[Finding]:
    text = case.text.strip()
    if not text:
        return [Finding("weak_caption", "drop", "empty caption")]
    n = n_words(text)
    if n < p.min_caption_words:
        return [Finding("weak_caption", "drop", f"{n} words < {p.min_caption_words}: {text!r}")]
    if case.abnormal and not categories_in(text):
        return [Finding("weak_caption", "drop", f"abnormal clip, caption names no event: {text!r}")]
    return []


def category_mismatch(case: ClipCase, p: CurateParams) -> list[Finding]:
    if not case.abnormal:
        return []
    found = categories_in(case.text)
    if found and not (found & related(case.category)):
        return [Finding("category_mismatch", "drop",
                        f"{case.category} clip, caption evidences {sorted(found)}")]
    return []


def box_checks(case: ClipCase, p: CurateParams) -> list[Finding]:
    """box_out_of_range (repaired within tolerance, else dropped) and box_inverted, on the raw keyframes."""
    if not case.track:
        return []
    out: list[Finding] = []
    boxes = np.array([k.bbox for k in case.track], dtype=np.float64).reshape(-1, 4)
    outside = boxes[(boxes < 0) | (boxes > 1)]
    if outside.size:
        tol = p.box_tolerance
        if np.all((outside >= -tol) & (outside <= 1 + tol)):
            out.append(Finding("box_out_of_range", "repair",
                               f"{outside.size} coordinate(s) within {tol} of [0, 1] clamped"))
        else:
            out.append(Finding("box_out_of_range", "drop", f"coordinates {outside.tolist()} beyond tolerance {tol}"))
    inverted = [i for i, b in enumerate(boxes) if b[2] < b[0] or b[3] < b[1]]
    if inverted:
        out.append(Finding("box_inverted", "drop", f"x2<x1 or y2<y1 at keyframe(s) {inverted}"))
    return out


def no_boxes(case: ClipCase, p: CurateParams) -> list[Finding]:
    if not case.abnormal:
        return []
    if not case.track or not any(k.enabled for k in case.track):
        return [Finding("no_boxes", "drop", "abnormal clip without a box track")]
    return []


PER_CLIP = (media_unreadable, too_short, digit_typo, non_english, weak_caption, category_mismatch, box_checks,
            no_boxes)


def apply_per_clip(case: ClipCase, p: CurateParams) -> ClipCase:
    for rule in PER_CLIP:
        case.findings += rule(case, p)
    return case


# --------------------------------------------------------------------------------------------------------------
# Cross-clip rules
# --------------------------------------------------------------------------------------------------------------


def repeated_caption(cases: Sequence[ClipCase]) -> None:
    """All (2+) segments of a video share one caption: keep the first (lowest item index), drop the rest."""
    by_video: dict[str, list[ClipCase]] = {}
    for c in cases:
        by_video.setdefault(c.video, []).append(c)
    for video, segs in by_video.items():
        segs = sorted(segs, key=lambda c: c.item_index)
        captions = {norm_caption(c.caption) for c in segs}
        if len(segs) >= 2 and len(captions) == 1 and captions != {""}:
            for c in segs[1:]:
                c.findings.append(Finding("repeated_caption", "drop",
                                          f"same caption as item {segs[0].item_index} on all {len(segs)} segments"))


def phash_frames(frames: np.ndarray, hash_size: int = 16) -> np.ndarray:
    """pHash (hash_size**2 bits) of each frame of a (T, H, W, 3) uint8 array, packed as (T, bits/64) uint64.

    16 (256 bits), not imagehash's default 8: on small, simple scenes the 64-bit hash is dominated by the
    background, and clips of different videos of one scene came within 4 bits of each other.
    """
    words = max(hash_size * hash_size // 64, 1)
    out = np.zeros((len(frames), words), np.uint64)
    for i, frame in enumerate(frames):
        bits = imagehash.phash(Image.fromarray(np.ascontiguousarray(frame)), hash_size=hash_size).hash.ravel()
        packed = np.packbits(bits)
        packed = np.pad(packed, (0, words * 8 - len(packed)))
        out[i] = packed.view(">u8")
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between packed hashes (last axis: uint64 words; other axes broadcast)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64).sum(axis=-1)


def clip_distances(hashes: np.ndarray) -> np.ndarray:
    """(N, T, words) clip hashes -> (N, N) mean Hamming distance over aligned frames."""
    return hamming(hashes[:, None, :], hashes[None, :, :]).mean(axis=2)


def near_duplicates(keys: Sequence[str], videos: Sequence[str], hashes: np.ndarray,
                    max_distance: float) -> dict[int, tuple[int, float]]:
    """Row -> (earlier row, distance) for every clip within ``max_distance`` of a clip of another video that
    sorts before it by clip_key."""
    if len(keys) == 0:
        return {}
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    dist = clip_distances(hashes)
    out: dict[int, tuple[int, float]] = {}
    for pos, i in enumerate(order):
        for j in order[:pos]:
            if videos[j] != videos[i] and dist[i, j] <= max_distance:
                if i not in out or dist[i, j] < out[i][1]:
                    out[i] = (j, float(dist[i, j]))
    return out


def check_leakage(train_videos: Sequence[str], test_videos: Sequence[str],
                  train_hashes: dict[str, tuple[str, np.ndarray]] | None = None,
                  test_hashes: dict[str, np.ndarray] | None = None, max_distance: float = 6) -> None:
    """Raise :class:`LeakageError` if a source video is in both splits, or a training clip (clip_key -> (video,
    (T,) hashes)) is a near-duplicate of a test video's frames (video -> (M,) hashes): the mean over the clip's
    frames of the distance to the nearest test frame is within ``max_distance``."""
    both = sorted(set(train_videos) & set(test_videos))
    if both:
        raise LeakageError(f"train/test leakage: {both[0]} is in both the train and the test split"
                           + (f" (and {len(both) - 1} more)" if len(both) > 1 else ""), both[0], both[0])
    for key, (video, h) in (train_hashes or {}).items():
        for test_video, th in (test_hashes or {}).items():
            if test_video == video or len(th) == 0 or len(h) == 0:
                continue
            d = hamming(h[:, None], th[None, :]).min(axis=1).mean()  # (T, words) vs (M, words)
            if d <= max_distance:
                raise LeakageError(
                    f"train/test leakage: train clip {key} of {video} is a near-duplicate (mean pHash distance "
                    f"{d:.1f} <= {max_distance}) of test video {test_video}", video, test_video)
