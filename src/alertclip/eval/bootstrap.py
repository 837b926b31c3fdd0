"""Bootstrap over test videos: when a gap is real (95% percentile CIs of MSS and frame AUC/AP, plain and paired).

:func:`bootstrap_mss`, :func:`bootstrap_auc_ap` and their paired forms :func:`paired_bootstrap_mss`,
:func:`paired_bootstrap_auc_ap` say whether a gap between two backbones survives resampling the test videos.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .groundtruth import FrameLevel, ScoreError
from .metrics import MetricError, checked_binary, frame_auc_ap

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
    """MSS (the mean of the per-video signed margins, :attr:`~alertclip.eval.mss.MeanSignScore.per_video`) and its
    video-bootstrap CI."""
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

    checked_binary(frames.labels, frames.scores, len(frames.names))
    positive = np.asarray(frames.labels).ravel() == 1
    _, score_bin = np.unique(-np.asarray(frames.scores, dtype=np.float64).ravel(), return_inverse=True)
    score_bin = score_bin.ravel()
    n_bins, n_videos = int(score_bin.max()) + 1, len(frames.names)
    video = np.repeat(np.arange(n_videos), np.diff(frames.offsets))
    shape = (n_bins, n_videos)
    return tuple(csr_array((np.ones(int(m.sum())), (score_bin[m], video[m])), shape=shape)  # duplicates are summed
                 for m in (positive, ~positive))


def resampled_auc_ap(frames: FrameLevel, idx: np.ndarray, chunk_cells: int = 1 << 22):
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
    """``{"auc": ..., "ap": ...}``: frame AUC/AP of :func:`~alertclip.eval.metrics.frame_auc_ap` on all ``frames`` and
    their CIs over videos.

    A resample draws whole videos (all their frames) with replacement and recomputes the pooled AUC/AP; resamples
    holding one class only are skipped and counted in ``n_skipped``.
    """
    level = _checked_level(level)
    point = frame_auc_ap(frames.labels, frames.scores, n_videos=len(frames.names))
    auc, ap, ok = resampled_auc_ap(frames, bootstrap_video_indices(len(frames.names), n_resamples, seed))
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

    Both :class:`~alertclip.eval.groundtruth.FrameLevel` must hold the same videos in the same order with the same
    frame labels (they differ only in scores). Each resample draws the same videos for both; resamples with one class
    only are skipped for both.
    """
    level = _checked_level(level)
    _check_same_videos(frames_a, frames_b)
    idx = bootstrap_video_indices(len(frames_a.names), n_resamples, seed)
    point_a = frame_auc_ap(frames_a.labels, frames_a.scores, n_videos=len(frames_a.names))
    point_b = frame_auc_ap(frames_b.labels, frames_b.scores, n_videos=len(frames_b.names))
    auc_a, ap_a, ok = resampled_auc_ap(frames_a, idx)
    auc_b, ap_b, _ = resampled_auc_ap(frames_b, idx)  # same labels and draws: the same resamples are defined
    if not ok.any():
        raise _no_defined_resample(n_resamples)
    skipped = int((~ok).sum())
    return {"auc": _interval(point_a["auc"] - point_b["auc"], (auc_a - auc_b)[ok], level, n_resamples, skipped),
            "ap": _interval(point_a["ap"] - point_b["ap"], (ap_a - ap_b)[ok], level, n_resamples, skipped)}
