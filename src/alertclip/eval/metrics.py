"""Frame-level AUC / AP on pooled frames, computed the way the field computes them (sklearn's definitions).

:func:`frame_auc_ap`: sklearn ``roc_auc_score`` and ``average_precision_score``, or the trapezoid ``auc(recall,
precision)`` of XDVioDet / LAVAD (see ``shared/reference/vad-protocols.md``, section C). The AUC/AP numbers come from
sklearn itself (the functions the published code calls); this module only checks the input first, so that a bad pooled
array fails with a message (:class:`MetricError`) instead of a warning and a NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.metrics import auc as sklearn_auc
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


class MetricError(ValueError):
    """A metric is undefined for the given input (e.g. AUC with one class only)."""


def checked_binary(labels: np.ndarray, scores: np.ndarray, n_videos: int | None) -> tuple[np.ndarray, np.ndarray]:
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
    return float(roc_auc_score(*checked_binary(labels, scores, None)))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn ``average_precision_score``: ``sum_n (R_n - R_{n-1}) P_n``, not interpolated (VadCLIP, AnomalyCLIP)."""
    return float(average_precision_score(*checked_binary(labels, scores, None)))


def pr_auc_trapezoid(labels: np.ndarray, scores: np.ndarray) -> float:
    """``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve`` output (XDVioDet test.py, LAVAD).

    The curve starts at sklearn's appended ``(recall 0, precision 1)`` point and interpolates linearly between
    thresholds, so this is usually a little higher than :func:`average_precision`.
    """
    precision, recall, _ = precision_recall_curve(*checked_binary(labels, scores, None))
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
    y, s = checked_binary(labels, scores, n_videos)
    ap_value = average_precision(y, s) if ap == "sklearn" else pr_auc_trapezoid(y, s)
    return {"auc": roc_auc(y, s), "ap": ap_value}
