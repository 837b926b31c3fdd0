"""VAD metrics: ground-truth parsing, VadCLIP/exact frame labels, pooled AUC/AP, detection mAP, MSS, zero-shot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics

from alertclip.eval.detection import detection_ground_truth, detection_map, temporal_nms
from alertclip.eval.groundtruth import (
    GroundTruth,
    GroundTruthError,
    ScoreError,
    VideoTruth,
    build_frame_level,
    exact_frame_labels,
    expand_scores,
    lookup_truth,
    vadclip_frame_labels,
)
from alertclip.eval.gt_formats import read_ucf_temporal
from alertclip.eval.metrics import MetricError, frame_auc_ap
from alertclip.eval.mss import mean_sign_score
from alertclip.prompts import zero_shot_scores

SNIPPET_LEN = 16  # the hand cases' snippet length, passed explicitly (VadCLIP's, as params.yaml frames.snippet_len)

# The original file's style: two spaces between fields and two trailing spaces.
UCF_TEXT = (
    "Fighting016_x264.mp4  Fighting  400  528  -1  -1  \n"
    "Normal_Videos_101_x264.mp4  Normal  -1  -1  -1  -1  \n"
    "\n"
    "Collapse017_x264.mp4\tCollapse 28  107  145  240\n"
)


def write(tmp_path: Path, text: str, name: str = "Temporal_Anomaly_Annotation.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ ground truth files


def test_read_ucf_temporal_original_line_style(tmp_path):
    path = write(tmp_path, UCF_TEXT)
    truth = read_ucf_temporal(path)
    assert list(truth) == ["Fighting016_x264.mp4", "Normal_Videos_101_x264.mp4", "Collapse017_x264.mp4"]
    assert truth["Fighting016_x264.mp4"] == VideoTruth("Fighting016_x264.mp4", "Fighting", ((400, 528),))
    assert truth["Normal_Videos_101_x264.mp4"].spans == ()
    assert truth["Collapse017_x264.mp4"].spans == ((28, 107), (145, 240))
    assert truth["Collapse017_x264.mp4"].origin == f"{path}:4"
    assert truth.source == str(path)


def test_lookup_truth_accepts_paths_stems_and_feature_names(tmp_path):
    truth = read_ucf_temporal(write(tmp_path, UCF_TEXT))
    want = truth["Fighting016_x264.mp4"]
    for name in ("Fighting016_x264.mp4", "VAGTA_synth/Videos/Fighting/Fighting016_x264.mp4", "Fighting016_x264",
                 "features/Fighting016_x264__5.npy"):
        assert lookup_truth(truth, name) is want, name
    assert lookup_truth(truth, "Fighting017_x264") is None


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("Fighting016_x264.mp4  Fighting  400  528  -1  ", "field 5 (start of span 2)", "odd number"),
        ("Fighting016_x264.mp4  Fighting  400  5x8  -1  -1  ", "field 4 (end of span 1)", "integer"),
        ("Fighting016_x264.mp4  Fighting  528  400  -1  -1  ", "field 3 (start of span 1)", "after end"),
        ("Fighting016_x264.mp4  Fighting  400  -1  -1  -1  ", "field 4", "only one -1"),
        ("Fighting016_x264.mp4  400  528  -1  -1  ", "field 2 (category)", "number"),
        ("Fighting016_x264.mp4", "field 2 (category)", "missing"),
    ],
)
def test_read_ucf_temporal_bad_line_names_file_line_and_field(tmp_path, line, field, words):
    path = write(tmp_path, "Arson015_x264.mp4  Arson  117  245  -1  -1  \n" + line + "\n")
    with pytest.raises(GroundTruthError) as info:
        read_ucf_temporal(path)
    message = str(info.value)
    assert f"{path}:2:" in message and field in message and words in message


def test_read_ucf_temporal_duplicate_video_names_both_lines(tmp_path):
    path = write(tmp_path, UCF_TEXT + "Fighting016_x264.mp4  Fighting  1  2  -1  -1  \n")
    with pytest.raises(GroundTruthError, match=r"duplicate video 'Fighting016_x264.mp4'") as info:
        read_ucf_temporal(path)
    assert f"{path}:5:" in str(info.value) and f"{path}:1" in str(info.value)


def test_lookup_truth_keeps_the_dots_of_xd_names():
    entry = VideoTruth("Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6", "G-B2-B6", ((0, 218),))
    truth = GroundTruth({entry.name: entry})
    # XD names contain dots: the stem lookup must not cut them at the first one.
    assert lookup_truth(truth, "x/Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6__0.npy") is entry


def test_published_ucf_annotations_parse(smoke_world):
    """The synthesizer's real-format file (the conftest smoke world, generated in every test run)."""
    truth = read_ucf_temporal(smoke_world / "published" / "annotations" / "Temporal_Anomaly_Annotation.txt")
    abnormal = [entry for entry in truth.values() if entry.spans]
    assert len(abnormal) > 0
    assert all(0 <= s <= e for entry in abnormal for s, e in entry.spans)
    assert all(entry.category == "Normal" for entry in truth.values() if not entry.spans)


# ------------------------------------------------------------------------------------------------ frame labels


def test_vadclip_labels_end_exclusive_and_tail_drop():
    # vec = zeros(8); vec[2:5] = 1 -> [0 0 1 1 1 0 0 0]; keep vec[:-4]
    np.testing.assert_array_equal(vadclip_frame_labels([(2, 5)], 1, clip_len=4), [0, 0, 1, 1])
    np.testing.assert_array_equal(vadclip_frame_labels([(1, 3)], 2, clip_len=4), [0, 1, 1, 0, 0, 0, 0, 0])


def test_vadclip_labels_overflow_and_minus_one_pairs():
    np.testing.assert_array_equal(vadclip_frame_labels([(3, 100), (-1, -1)], 1, clip_len=4), [0, 0, 0, 1])
    labels = vadclip_frame_labels([(400, 528)], 30, clip_len=SNIPPET_LEN)  # 480 frames kept: 400..479 abnormal, 480..527 dropped
    assert labels.size == 480 and labels.sum() == 80 and labels[399] == 0 and labels[400] == 1


def test_exact_labels_end_exclusive_vs_inclusive_and_clipping():
    np.testing.assert_array_equal(exact_frame_labels([(2, 4)], 6), [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(exact_frame_labels([(2, 4)], 6, end_inclusive=True), [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(exact_frame_labels([(4, 10), (-1, -1)], 6, end_inclusive=True), [0, 0, 0, 0, 1, 1])


def test_expand_scores_repeat_cut_and_tail_pad():
    np.testing.assert_array_equal(expand_scores([0.1, 0.9], clip_len=3), [0.1] * 3 + [0.9] * 3)
    np.testing.assert_array_equal(expand_scores([0.1, 0.9], clip_len=3, n_frames=4), [0.1] * 3 + [0.9])
    np.testing.assert_array_equal(expand_scores([0.1, 0.9], clip_len=3, n_frames=8), [0.1] * 3 + [0.9] * 5)


# ------------------------------------------------------------------------------------------------ pooled frame level


def small_truth() -> GroundTruth:
    entry = VideoTruth("Fighting016_x264.mp4", "Fighting", ((20, 40),))
    return GroundTruth({entry.name: entry}, source="tiny.txt")


def test_build_frame_level_vadclip_pools_in_order_with_offsets():
    videos = [("Normal_Videos_101_x264.mp4", np.array([0.1, 0.2]), None),
              ("Videos/Fighting/Fighting016_x264.mp4", np.array([0.3, 0.4, 0.5]), 999)]
    pooled = build_frame_level(videos, small_truth(), clip_len=SNIPPET_LEN)
    np.testing.assert_array_equal(pooled.offsets, [0, 32, 80])
    normal_labels, normal_scores = pooled.video(0)
    fight_labels, fight_scores = pooled.video(1)
    assert normal_labels.sum() == 0 and np.all(normal_scores[:16] == 0.1)
    assert fight_labels.size == 48 and np.flatnonzero(fight_labels).tolist() == list(range(20, 40))
    np.testing.assert_array_equal(fight_scores, np.repeat([0.3, 0.4, 0.5], 16))
    assert pooled.names == ("Normal_Videos_101_x264.mp4", "Videos/Fighting/Fighting016_x264.mp4")


def test_build_frame_level_exact_uses_real_frames():
    pooled = build_frame_level([("Fighting016_x264", np.array([0.3, 0.4, 0.5]), 50)], small_truth(),
                               protocol="exact", end_inclusive=True, clip_len=SNIPPET_LEN)
    assert pooled.labels.size == 50 and np.flatnonzero(pooled.labels).tolist() == list(range(20, 41))
    assert np.all(pooled.scores[48:] == 0.5)


def test_missing_truth_line_is_an_error_unless_name_is_normal():
    truth = small_truth()
    assert build_frame_level([("XD_v=1_label_A", np.ones(2), None)], truth, clip_len=SNIPPET_LEN).labels.sum() == 0
    with pytest.raises(GroundTruthError, match=r"'Arson015_x264.mp4' has no line in tiny.txt"):
        build_frame_level([("Arson015_x264.mp4", np.ones(2), None)], truth, clip_len=SNIPPET_LEN)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scores_name_video_and_snippet(bad):
    with pytest.raises(ScoreError, match=r"video 'Fighting016_x264.mp4'.* at snippet 2"):
        build_frame_level([("Fighting016_x264.mp4", np.array([0.1, 0.2, bad, bad]), None)], small_truth(), clip_len=SNIPPET_LEN)


def test_empty_scores_rejected():
    with pytest.raises(ScoreError, match=r"'Normal_Videos_1'.*empty score array"):
        build_frame_level([("Normal_Videos_1", np.array([]), None)], small_truth(), clip_len=SNIPPET_LEN)


def test_exact_protocol_rejects_features_shorter_than_video():
    ok = build_frame_level([("Normal_Videos_1", np.ones(3), 63)], small_truth(), protocol="exact", clip_len=SNIPPET_LEN)
    assert ok.labels.size == 63  # 48 covered + 15 padded: less than one snippet missing
    with pytest.raises(ScoreError, match=r"'Normal_Videos_1': feature file shorter.*T = 3.*n_frames = 64"):
        build_frame_level([("Normal_Videos_1", np.ones(3), 64)], small_truth(), protocol="exact", clip_len=SNIPPET_LEN)
    with pytest.raises(ScoreError, match=r"needs the video's frame count"):
        build_frame_level([("Normal_Videos_1", np.ones(3), None)], small_truth(), protocol="exact", clip_len=SNIPPET_LEN)


def test_vadclip_protocol_rejects_span_beyond_features():
    # 32 frames: span starts at 20
    build_frame_level([("Fighting016_x264.mp4", np.ones(2), None)], small_truth(), clip_len=SNIPPET_LEN)
    with pytest.raises(ScoreError, match=r"'Fighting016_x264.mp4': annotated span \(20, 40\).*T = 1 snippets"):
        build_frame_level([("Fighting016_x264.mp4", np.ones(1), None)], small_truth(), clip_len=SNIPPET_LEN)
    edge = VideoTruth("Arson015_x264.mp4", "Arson", ((32, 40),))
    edge_truth = GroundTruth({edge.name: edge})
    build_frame_level([(edge.name, np.ones(3), None)], edge_truth, clip_len=SNIPPET_LEN)
    with pytest.raises(ScoreError, match=r"span \(32, 40\) starts at or beyond frame 32"):
        build_frame_level([(edge.name, np.ones(2), None)], edge_truth, clip_len=SNIPPET_LEN)


# ------------------------------------------------------------------------------------------------ AUC / AP

HAND_LABELS = np.array([0, 0, 1, 1, 0, 1])
HAND_SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.6])


def test_auc_ap_hand_case():
    # AUC: 8 of 9 (positive, negative) pairs ranked right. AP: TPs at ranks 1, 2, 4 -> (1 + 1 + 3/4) / 3.
    result = frame_auc_ap(HAND_LABELS, HAND_SCORES)
    assert result["auc"] == pytest.approx(8 / 9)
    assert result["ap"] == pytest.approx(11 / 12)


def test_trapezoid_ap_hand_case():
    # PR points (0, 1), (1/3, 1), (2/3, 1), (2/3, 2/3), (1, 3/4), (1, 3/5), (1, 1/2): area 2/3 + (2/3 + 3/4) / 2 / 3.
    assert frame_auc_ap(HAND_LABELS, HAND_SCORES, ap="trapezoid")["ap"] == pytest.approx(65 / 72)


def test_trapezoid_ap_starts_at_recall_zero_precision_one():
    # Top tie group is half positive: PR points (0, 1), (1/2, 1/2), (1, 2/3) -> 3/8 + 7/24 = 2/3.
    result = frame_auc_ap(np.array([1, 0, 1]), np.array([0.9, 0.9, 0.1]), ap="trapezoid")
    assert result["ap"] == pytest.approx(2 / 3)


def test_tied_scores_form_one_threshold():
    result = frame_auc_ap(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.9, 0.1]))
    assert result["auc"] == pytest.approx(0.875)  # the tied pair counts one half
    assert result["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def brute_force_ap(y: np.ndarray, s: np.ndarray) -> float:
    ap, previous_recall = 0.0, 0.0
    for threshold in np.unique(s)[::-1]:
        predicted = s >= threshold
        recall = (predicted & (y == 1)).sum() / (y == 1).sum()
        ap += (recall - previous_recall) * (predicted & (y == 1)).sum() / predicted.sum()
        previous_recall = recall
    return float(ap)


def test_pooled_auc_ap_match_definitions_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.2).astype(int)
    s = np.round(rng.random(3000) + 0.3 * y, 2)  # rounded: many ties
    result = frame_auc_ap(y, s)
    assert result["auc"] == pytest.approx(brute_force_auc(y, s), abs=1e-12)
    assert result["ap"] == pytest.approx(brute_force_ap(y, s), abs=1e-12)


def test_pooled_auc_ap_equal_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    y = (rng.random(5000) < 0.3).astype(int)
    s = np.round(rng.random(5000) + 0.2 * y, 3)
    result = frame_auc_ap(y, s)
    assert result["auc"] == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert result["ap"] == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)
    precision, recall, _ = metrics.precision_recall_curve(y, s)
    assert frame_auc_ap(y, s, ap="trapezoid")["ap"] == pytest.approx(metrics.auc(recall, precision), abs=1e-12)


def test_one_class_labels_raise_with_counts():
    with pytest.raises(MetricError, match=r"all 6 frames from 2 videos are normal"):
        frame_auc_ap(np.zeros(6), np.arange(6.0), n_videos=2)
    with pytest.raises(MetricError, match=r"all 3 frames are abnormal"):
        frame_auc_ap(np.ones(3), np.arange(3.0))


# ------------------------------------------------------------------------------------------------ detection mAP

CLASSES = ["Normal", "Fighting", "Shooting"]


def column(*values: float) -> np.ndarray:
    return np.array(values, dtype=float)


def detection_case(fight_high=(2, 3, 4), shooting_everywhere_flat=False):
    """Video 0 Fighting (GT [32, 80)), video 1 Shooting (GT [16, 48)), video 2 normal (GT [0, 128)); T = 8."""
    fight = np.full(8, 0.05)
    fight[list(fight_high)] = 0.85
    shoot = np.full(8, 0.05) if shooting_everywhere_flat else column(.05, .85, .85, .05, .05, .05, .05, .05)
    probs = [
        np.stack([column(.9, .9, .1, .1, .1, .9, .9, .9), fight, np.full(8, 0.05)], axis=1),
        np.stack([column(.9, .1, .1, .9, .9, .9, .9, .9), np.full(8, 0.05), shoot], axis=1),
        np.stack([column(.95, .95, .95, .95, .95, .95, .95, .8), np.full(8, .025), np.full(8, .025)], axis=1),
    ]
    gt = [[(32, 80, "Fighting")], [(16, 48, "Shooting")], [(0, 128, "Normal")]]
    return probs, gt


def test_perfect_detector_scores_one_for_scored_classes():
    probs, gt = detection_case()
    result = detection_map(probs, gt, CLASSES, clip_len=SNIPPET_LEN)
    assert result.per_class["Fighting"] == (1.0,) * 5 and result.per_class["Shooting"] == (1.0,) * 5
    assert result.per_class["Normal"] == (0.0,) * 5  # UCF quirk: the normal GT is not scored
    assert result.map_at_iou == pytest.approx((2 / 3,) * 5) and result.average == pytest.approx(2 / 3)


def test_ucf_quirk_lowers_mean_by_normal_share():
    probs, gt = detection_case()
    scored = detection_map(probs, gt, CLASSES, ucf_normal_quirk=False, clip_len=SNIPPET_LEN)
    quirk = detection_map(probs, gt, CLASSES, ucf_normal_quirk=True, clip_len=SNIPPET_LEN)
    assert scored.per_class["Normal"] == (1.0,) * 5  # run [0, 112) vs GT [0, 128): IoU 7/8, ranked first
    for with_quirk, without in zip(quirk.map_at_iou, scored.map_at_iou):
        assert with_quirk == pytest.approx(without - scored.per_class["Normal"][0] / len(CLASSES))


def test_shifted_proposal_loses_at_high_iou():
    probs, gt = detection_case(fight_high=(4, 5, 6, 7))
    gt[0] = [(32, 96, "Fighting")]  # proposal [64, 128): IoU 32 / 96 = 1/3
    result = detection_map(probs, gt, CLASSES, clip_len=SNIPPET_LEN)
    assert result.per_class["Fighting"] == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert result.map_at_iou[3] == pytest.approx(1 / 3)


def test_iou_exactly_at_threshold_is_a_match():
    probs, gt = detection_case(fight_high=(3, 4, 5))  # proposal [48, 96) vs GT [32, 80): IoU 32 / 64 = 0.5
    assert detection_map(probs, gt, CLASSES, clip_len=SNIPPET_LEN).per_class["Fighting"] == (1.0,) * 5


def test_false_positive_ranked_first_halves_ap():
    probs, gt = detection_case()
    probs[1][:, 1] = column(.05, .05, .05, .05, .95, .95, .05, .05)  # Fighting where video 1 has no Fighting GT
    assert detection_map(probs, gt, CLASSES, clip_len=SNIPPET_LEN).per_class["Fighting"] == (0.5,) * 5


def two_class_probs(fight: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - fight, fight], axis=1)


@pytest.mark.parametrize("gt_order", [1, -1])
def test_greedy_match_takes_best_iou_gt(gt_order):
    # P1 = [48, 96) (0.9) overlaps GT1 [16, 64) with IoU 0.2 and GT2 [48, 96) with IoU 1: it must take GT2 (in either
    # list order), leaving GT1 to P2 = [0, 32) (0.8, IoU 0.25), a match up to IoU 0.2 only.
    fight = column(.8, .8, .05, .9, .9, .9, .05, .05)
    gt = [[(16, 64, "Fighting"), (48, 96, "Fighting")][::gt_order]]
    result = detection_map([two_class_probs(fight)], gt, ["Normal", "Fighting"], clip_len=SNIPPET_LEN)
    assert result.per_class["Fighting"] == (1.0, 1.0, 0.5, 0.5, 0.5)


def test_class_score_reranks_proposals():
    # T = 32: c_s = mean of the top 32 frames = top 2 snippets. Video 0's lone 0.9 snippet (FP) scores
    # 0.9 + 0.7 * 0.5; video 1's two 0.8 snippets (TP) score 0.8 + 0.7 * 0.8 and rank first.
    fp, tp = np.full(32, 0.1), np.full(32, 0.1)
    fp[5] = 0.9
    tp[[10, 11]] = 0.8
    gt = [[(0, 512, "Normal")], [(160, 192, "Fighting")]]
    result = detection_map([two_class_probs(fp), two_class_probs(tp)], gt, ["Normal", "Fighting"], clip_len=SNIPPET_LEN)
    assert result.per_class["Fighting"] == (1.0,) * 5


def test_runs_shorter_than_two_frames_are_not_proposals():
    fight = np.full(20, 0.1)
    fight[3] = 0.9  # one frame: no proposal, so GT [3, 4) is missed
    fight[[10, 11]] = 0.9
    result = detection_map([two_class_probs(fight)], [[(3, 4, "Fighting")]], ["Normal", "Fighting"], clip_len=1)
    assert result.per_class["Fighting"] == (0.0,) * 5


def test_class_without_proposals_zeroes_whole_map():
    probs, gt = detection_case(shooting_everywhere_flat=True)
    result = detection_map(probs, gt, CLASSES, clip_len=SNIPPET_LEN)
    assert result.classes_without_proposals == ("Shooting",)
    assert result.map_at_iou == (0.0,) * 5 and result.average == 0.0
    relaxed = detection_map(probs, gt, CLASSES, zero_if_class_without_proposals=False, clip_len=SNIPPET_LEN)
    assert relaxed.map_at_iou == pytest.approx((1 / 3,) * 5)
    assert relaxed.as_dict()["mAP@0.1"] == pytest.approx(1 / 3)


def test_detection_ground_truth_from_annotation_table(tmp_path):
    truth = read_ucf_temporal(write(tmp_path, UCF_TEXT))
    segments = detection_ground_truth([("Fighting016_x264__5.npy", 8), ("Normal_Videos_101_x264", 8)], truth, clip_len=SNIPPET_LEN)
    assert segments == [[(400, 528, "Fighting")], [(0, 128, "Normal")]]


def test_temporal_nms_drops_overlaps_above_threshold():
    # IoU([0,10), [1,10)) = 0.9 -> dropped; IoU([0,10), [4,14)) = 6/14 -> kept.
    assert temporal_nms([(1, 10), (0, 10), (4, 14)], [0.5, 0.9, 0.4]) == [1, 2]


# ------------------------------------------------------------------------------------------------ MSS and zero-shot


def test_mean_sign_score_hand_case():
    result = mean_sign_score(np.array([0.8, 0.3]), np.array([0.2, 0.6]), np.array([True, False]))
    np.testing.assert_allclose(result.per_video, [0.6, 0.3])
    assert result.mss == pytest.approx(0.45)


def test_zero_shot_scores_single_prompts():
    v = np.array([[2.0, 0.0], [0.0, 1.0]])  # norms do not matter: cosine similarity
    scores = zero_shot_scores(v, np.array([1.0, 0.0]), np.array([0.0, 1.0]), logit_scale=1.0)
    np.testing.assert_allclose(scores, [math.e / (math.e + 1), 1 / (math.e + 1)])


def test_zero_shot_scores_prompt_set_is_normalised_mean():
    # Prompts [2, 0] and [0, 3] normalise to [1, 0] and [0, 1]; their mean re-normalised is [1, 1] / sqrt(2).
    score = zero_shot_scores(np.array([1.0, 0.0]), np.array([[2.0, 0.0], [0.0, 3.0]]), np.array([[0.0, 1.0]]), 100.0)
    logits = 100.0 * np.array([1 / math.sqrt(2), 0.0])
    np.testing.assert_allclose(score, [np.exp(logits[0]) / np.exp(logits).sum()])


def test_zero_shot_scores_empty_prompt_set():
    with pytest.raises(ValueError, match=r"t_normal: empty prompt set"):
        zero_shot_scores(np.ones((3, 2)), np.ones(2), np.zeros((0, 2)), 100.0)
