"""The mean sign score (MSS): the mean over test videos of each video's signed margin between the two prompt sets."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .groundtruth import ScoreError


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
