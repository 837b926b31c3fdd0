"""Temporal detection mAP@IoU as VadCLIP's ``detectionMAP`` (:func:`detection_map`), its quirks behind switches."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .groundtruth import ScoreError, VideoTruth, is_normal_name, lookup_truth, stem_index, video_spans

DETECTION_IOUS = (0.1, 0.2, 0.3, 0.4, 0.5)
"""IoU thresholds of VadCLIP's mAP table."""


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
    *,
    clip_len: int,
    is_normal: Callable[[str], bool] = is_normal_name,
) -> list[list[Segment]]:
    """Per-video GT segments for :func:`detection_map` from ``(name, T)`` pairs (VadCLIP ``make_gt_mAP_ucf.py``).

    Abnormal videos: each raw annotation span (not clipped to ``clip_len * T``, as in VadCLIP), labelled with its own
    class where the file names one (XD's multi-class file, ``make_gt_mAP_xd.py``) or else with the video's category
    (``make_gt_mAP_ucf.py``). Normal videos (no spans): one segment ``[0, clip_len * T)`` labelled ``normal_class``;
    VadCLIP labels it "A", which is how the UCF quirk arises (see :func:`detection_map`); for XD pass "A".
    """
    index = stem_index(truth)
    segments: list[list[Segment]] = []
    for name, n_snippets in videos:
        entry = lookup_truth(truth, name, index)
        spans = video_spans(name, truth, index, is_normal)
        if spans:
            segments.append([(start, end, label) for (start, end), label in zip(spans, entry.span_classes())])
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
    *,
    clip_len: int,
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
