"""Bootstrap over test videos (alertclip.eval.bootstrap): intervals, paired differences, skipped resamples, speed-ups."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from alertclip.eval.bootstrap import (
    bootstrap_auc_ap,
    bootstrap_mss,
    bootstrap_video_indices,
    paired_bootstrap_auc_ap,
    paired_bootstrap_mss,
    resampled_auc_ap,
)
from alertclip.eval.groundtruth import FrameLevel, GroundTruth, VideoTruth, build_frame_level

N_VIDEOS, T = 40, 6  # snippets per video; 16 frames each (VadCLIP protocol)
SNIPPET_LEN = 16  # params frames.snippet_len (default)


def world(seed: int = 0) -> tuple[GroundTruth, list[str], dict[str, np.ndarray]]:
    """Half the videos abnormal (one span of 2 snippets); ``inside`` marks each video's abnormal snippets."""
    rng = np.random.default_rng(seed)
    entries, names, inside = {}, [], {}
    for v in range(N_VIDEOS):
        if v % 2:
            name = f"Normal_Videos_{v:03d}_x264"
            inside[name] = np.zeros(T, dtype=bool)
        else:
            name = f"Fighting{v:03d}_x264"
            first = int(rng.integers(0, T - 2))
            entries[name + ".mp4"] = VideoTruth(name + ".mp4", "Fighting", ((SNIPPET_LEN * first, SNIPPET_LEN * (first + 2)),))
            inside[name] = np.isin(np.arange(T), [first, first + 1])
        names.append(name)
    return GroundTruth(entries), names, inside


def frames_of(truth, names, scores: dict[str, np.ndarray]) -> FrameLevel:
    return build_frame_level([(v, scores[v], None) for v in names], truth, clip_len=SNIPPET_LEN)


def noise_scores(names, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v: rng.random(T) for v in names}


def signal_scores(names, inside, seed: int, strength: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v: rng.random(T) + strength * inside[v] for v in names}


def test_indices_are_seeded_and_in_range():
    a, b = bootstrap_video_indices(7, 50, seed=3), bootstrap_video_indices(7, 50, seed=3)
    assert a.shape == (50, 7) and a.min() >= 0 and a.max() <= 6
    assert np.array_equal(a, b) and not np.array_equal(a, bootstrap_video_indices(7, 50, seed=4))
    with pytest.raises(ValueError, match="at least one video"):
        bootstrap_video_indices(0, 10)


def test_resampled_auc_ap_equal_sklearn_on_the_concatenated_resample():
    """The count-based curves must be sklearn's AUC/AP of the resample's frames, duplicated videos included."""
    truth, names, inside = world(1)
    rng = np.random.default_rng(5)
    # rounded scores: ties inside and across videos, the case where threshold grouping matters
    frames = frames_of(truth, names, {v: np.round(rng.random(T) + 0.5 * inside[v], 1) for v in names})
    idx = bootstrap_video_indices(N_VIDEOS, 25, seed=2)
    auc, ap, ok = resampled_auc_ap(frames, idx)
    assert ok.all()
    for b in range(len(idx)):
        y = np.concatenate([frames.video(i)[0] for i in idx[b]])
        s = np.concatenate([frames.video(i)[1] for i in idx[b]])
        assert auc[b] == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
        assert ap[b] == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)


def test_mss_ci_contains_estimate_and_excludes_zero_for_a_strong_effect():
    rng = np.random.default_rng(0)
    effect, noise_only = 0.05 + 0.02 * rng.standard_normal(60), 0.02 * rng.standard_normal(60)
    strong = bootstrap_mss(effect, 1000, seed=0)
    assert strong.estimate == pytest.approx(effect.mean()) and strong.low <= strong.estimate <= strong.high
    assert strong.low > 0
    noise = bootstrap_mss(noise_only, 1000, seed=0)
    assert noise.low < noise.estimate < noise.high and noise.low < 0 < noise.high
    assert noise.n_resamples == 1000 and noise.n_skipped == 0 and noise.ci == [noise.low, noise.high]
    # about the standard error of a mean: 0.02 / sqrt(60) each side, times 1.96
    assert noise.high - noise.low == pytest.approx(2 * 1.96 * noise_only.std() / np.sqrt(60), rel=0.2)


def test_paired_mss_strong_noise_and_self():
    rng = np.random.default_rng(1)
    base = 0.1 * rng.standard_normal(50)  # video difficulty, shared by both backbones
    better = paired_bootstrap_mss(base + 0.01 + 0.005 * rng.standard_normal(50), base, 1000, seed=0)
    assert better.low > 0 and better.low <= better.estimate <= better.high
    # the same +0.01 gap, unpaired (b's videos shuffled): the shared difficulty no longer cancels and swamps it
    shuffled = paired_bootstrap_mss(base + 0.01, rng.permutation(base), 1000, seed=0)
    assert shuffled.low < 0 < shuffled.high
    same = paired_bootstrap_mss(base, base.copy(), 1000, seed=0)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same videos"):
        paired_bootstrap_mss(base, base[:-1])


def test_auc_ap_ci_contains_estimate_and_counts_skipped_resamples():
    truth, names, inside = world(2)
    frames = frames_of(truth, names, signal_scores(names, inside, seed=3, strength=0.4))
    boot = bootstrap_auc_ap(frames, 1000, seed=0)
    point = metrics.roc_auc_score(frames.labels, frames.scores), metrics.average_precision_score(frames.labels,
                                                                                                  frames.scores)
    for ci, value in zip((boot["auc"], boot["ap"]), point):
        assert ci.estimate == pytest.approx(value) and ci.low <= ci.estimate <= ci.high and ci.low < ci.high
    assert boot["auc"].n_skipped == 0  # 20 videos of each class: a one-class draw of 40 is (1/2)^39 * 2
    # an abnormal video (both classes: its span and the rest) and a normal one: a quarter of the resamples draw the
    # normal video twice, hold normal frames only and are skipped, no more, no less
    two = build_frame_level([(names[0], np.arange(T) / T, None), (names[1], np.full(T, 0.3), None)], truth, clip_len=SNIPPET_LEN)
    idx = bootstrap_video_indices(2, 400, seed=9)
    expected = int((idx == 1).all(axis=1).sum())
    small = bootstrap_auc_ap(two, 400, seed=9)
    assert small["auc"].n_skipped == small["ap"].n_skipped == expected and 70 < expected < 130


def test_paired_auc_ap_strong_effect_noise_and_self():
    truth, names, inside = world(3)
    good = frames_of(truth, names, signal_scores(names, inside, seed=4, strength=1.0))
    chance = frames_of(truth, names, noise_scores(names, seed=5))
    other_chance = frames_of(truth, names, noise_scores(names, seed=6))
    strong = paired_bootstrap_auc_ap(good, chance, 1000, seed=0)
    for ci in strong.values():
        assert ci.low > 0 and ci.low <= ci.estimate <= ci.high
    noise = paired_bootstrap_auc_ap(chance, other_chance, 1000, seed=0)
    for ci in noise.values():
        assert ci.low < 0 < ci.high
    same = paired_bootstrap_auc_ap(good, good, 1000, seed=0)
    for ci in same.values():
        assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)
    # paired, a - b is minus b - a
    flipped = paired_bootstrap_auc_ap(chance, good, 1000, seed=0)
    assert flipped["auc"].estimate == pytest.approx(-strong["auc"].estimate)
    assert (flipped["auc"].low, flipped["auc"].high) == pytest.approx((-strong["auc"].high, -strong["auc"].low))


def test_bootstrap_is_deterministic_with_the_seed():
    truth, names, inside = world(4)
    frames = frames_of(truth, names, signal_scores(names, inside, seed=7, strength=0.3))
    assert bootstrap_auc_ap(frames, 300, seed=11) == bootstrap_auc_ap(frames, 300, seed=11)
    assert bootstrap_auc_ap(frames, 300, seed=11)["auc"] != bootstrap_auc_ap(frames, 300, seed=12)["auc"]
    signed = np.random.default_rng(0).standard_normal(30)
    assert bootstrap_mss(signed, 300, seed=1) == bootstrap_mss(signed, 300, seed=1)
    assert bootstrap_mss(signed, 300, seed=1) != bootstrap_mss(signed, 300, seed=2)


def test_paired_needs_the_same_videos_and_ground_truth():
    truth, names, inside = world(5)
    a = frames_of(truth, names, noise_scores(names, seed=1))
    fewer = build_frame_level([(v, noise_scores(names, seed=2)[v], None) for v in names[:-1]], truth, clip_len=SNIPPET_LEN)
    with pytest.raises(ValueError, match="same test videos"):
        paired_bootstrap_auc_ap(a, fewer)
    relabelled = a._replace(labels=np.roll(a.labels, 16))
    with pytest.raises(ValueError, match="same frame ground truth"):
        paired_bootstrap_auc_ap(a, relabelled)
