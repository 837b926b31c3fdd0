"""VadCLIP's protocol where it is easy to get wrong (issue 27): XD-Violence's multi-class detection ground truth, the
per-dataset class prompts (VadCLIP's label maps) and the faithful head settings (QuickGELU in the GCN, the original's
test chunk lengths), on small hand-computed cases in the real file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from repo_params import repo_params
from ruamel.yaml import YAML

from alertclip.eval.detection import detection_ground_truth, detection_map
from alertclip.eval.groundtruth import GroundTruthError
from alertclip.eval.gt_cli import main as gt_main
from alertclip.eval.gt_formats import XD_CLASSES, read_ground_truth, read_xd, summarize
from alertclip.eval.testset_check import GroundTruthMismatch, with_span_classes
from alertclip.eval.vadclip import make_head, process_split, score_videos, vadclip_chunk_lengths
from alertclip.eval.weakly import class_prompt

REPO = Path(__file__).resolve().parents[1]

# Lines of VadCLIP's list/annotations_multiclasses.txt and list/annotations.txt (nwpu-zxr/VadCLIP) for one video
# whose spans overlap and touch: the multi-class file keeps six spans, the frame file their union in four.
BAD_BOYS = "Bad.Boys.1995__#01-11-55_01-12-40_label_G-B2-B6"
MULTICLASS = [f"{BAD_BOYS} B2 157 180 G 185 244 B2 250 282 G 282 355 G 582 810 B6 338 360",
              "v=S-7rRLrxnVQ__#1_label_B4-0-0 B4 0 1517 B4 1970 3038"]
FRAMES = [f"{BAD_BOYS} 157 180 185 244 250 360 582 810", "v=S-7rRLrxnVQ__#1_label_B4-0-0 0 1517 1970 3038"]


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- XD's multi-class file


def test_multiclass_file_keeps_each_span_and_its_class_in_file_order(tmp_path):
    truth = read_xd(_write(tmp_path, "annotations_multiclasses.txt", MULTICLASS))
    bad = truth[BAD_BOYS]
    assert bad.category == "G-B2-B6"  # the video's combined code stays its category
    assert bad.classes == ("B2", "G", "B2", "G", "G", "B6")
    assert bad.spans == ((157, 180), (185, 244), (250, 282), (282, 355), (582, 810), (338, 360))
    # the union is annotations.txt's frame ground truth: the same frames covered, video by video
    frames = read_xd(_write(tmp_path, "annotations.txt", FRAMES))
    assert frames[BAD_BOYS].classes == ()
    s_multi, s_frames = summarize(truth), summarize(frames)
    assert s_multi["frames_covered"] == s_frames["frames_covered"] == 23 + 59 + 110 + 228 + 1517 + 1068
    assert s_multi["span_classes"] == {"B2": {"videos": 1, "spans": 2, "frames_covered": 23 + 32},
                                       "B4": {"videos": 1, "spans": 2, "frames_covered": 1517 + 1068},
                                       "B6": {"videos": 1, "spans": 1, "frames_covered": 22},
                                       "G": {"videos": 1, "spans": 3, "frames_covered": 59 + 73 + 228}}
    assert "span_classes" not in s_frames


@pytest.mark.parametrize("line, field, words", [
    ("x__#1_label_B1-B2 B1-B2 0 10", "field 2 (class of span 1)", ["'B1-B2' is not an XD-Violence class", "B4"]),
    ("x__#1_label_B1 B1 0 10 A 20 30", "field 5 (class of span 2)", ["'A' is not an XD-Violence class"]),
    ("x__#1_label_B1 B1 0 10 B3 20 30", "field 5 (class of span 2)", ["'B3'"]),
    ("x__#1_label_B1 B1 0 10 B1 20", "field 7 (end of span 2)", ["expected 'class start end' triples"]),
    ("x__#1_label_B1 B1 0 ten", "field 4 (end of span 1)", ["expected a frame number >= 0, got 'ten'"]),
    ("x__#1_label_B1 B1 30 10", "field 3 (start of span 1)", ["start 30 is after end 10"]),
    ("x__#1_label_A A 0 10", "field 1 (video name)", ["normal (label A) video has no spans"]),
])
def test_multiclass_file_errors_name_the_file_line_and_field(tmp_path, line, field, words):
    path = _write(tmp_path, "annotations_multiclasses.txt", [MULTICLASS[0], line])
    with pytest.raises(GroundTruthError) as err:
        read_ground_truth(path, "xd")
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: {field}"), msg
    for w in words:
        assert w in msg, msg


def test_gt_check_shows_span_classes_and_fails_on_a_combined_code(tmp_path, capsys):
    path = _write(tmp_path, "annotations_multiclasses.txt", MULTICLASS)
    assert gt_main(["check", str(path), "--format", "xd"]) == 0
    out = capsys.readouterr().out
    assert "span classes (one per span):" in out
    assert [line.split() for line in out.splitlines() if line.strip().startswith("G ")] == [["G", "1", "3", "360"]]
    bad = _write(tmp_path, "bad.txt", ["x__#1_label_B1-B2 B1-B2 0 10"])
    assert gt_main(["check", str(bad), "--format", "xd"]) == 1
    assert f"{bad}:1: field 2 (class of span 1)" in capsys.readouterr().err


def test_span_classes_join_the_frame_ground_truth_only_when_both_files_agree(tmp_path):
    frames = read_xd(_write(tmp_path, "annotations.txt", FRAMES))
    multi = read_xd(_write(tmp_path, "annotations_multiclasses.txt", MULTICLASS))
    joined = with_span_classes("xd", frames, multi)
    assert joined[BAD_BOYS].classes == multi[BAD_BOYS].classes and joined[BAD_BOYS].spans == multi[BAD_BOYS].spans
    # a span that covers other frames than annotations.txt is an error naming the video and both files' frames
    shifted = read_xd(_write(tmp_path, "shifted.txt", [MULTICLASS[0].replace("B6 338 360", "B6 338 361"), MULTICLASS[1]]))
    with pytest.raises(GroundTruthMismatch, match=rf"shifted.txt:1: the spans of {BAD_BOYS.replace('#', '.')} cover other"):
        with_span_classes("xd", frames, shifted)
    with pytest.raises(GroundTruthMismatch, match="has no line in .*annotations_multiclasses.txt"):
        with_span_classes("xd", frames, read_xd(_write(tmp_path, "annotations_multiclasses.txt", MULTICLASS[:1])))
    with pytest.raises(GroundTruthError, match="names no class per span"):
        with_span_classes("xd", frames, frames)


def test_xd_detection_map_on_span_classes_hand(tmp_path):
    """Three XD test videos of 10 snippets (16 frames each): one with mixed classes (B2 then G), one whose name has a
    combined code (B1-B2: a B1 span and a B2 span) and a normal one. Each class column rises exactly over its GT
    span, and the normal video's A column over its first 9 snippets (IoU 0.9 with the whole video): every GT is
    found, so A, B1, B2 and G have AP 1 and B4, B5, B6 (no GT, no proposal) 0: mAP 4/7 at every IoU."""
    mixed, combined, normal = "Toy.Film__#1_label_G-B2", "Toy.Riot__#1_label_B1-B2-0", "Quiet.Film__#1_label_A"
    truth = read_xd(_write(tmp_path, "annotations_multiclasses.txt",
                           [f"{mixed} B2 16 48 G 80 128", f"{combined} B1 0 64 B2 96 160"]))
    videos = [(mixed, 10), (combined, 10), (normal, 10)]
    gt = detection_ground_truth(videos, truth, normal_class="A", clip_len=16)
    assert gt == [[(16, 48, "B2"), (80, 128, "G")], [(0, 64, "B1"), (96, 160, "B2")], [(0, 160, "A")]]
    col = {c: i for i, c in enumerate(XD_CLASSES)}
    probs = [np.full((10, len(XD_CLASSES)), 0.05) for _ in videos]
    probs[0][1:3, col["B2"]] = probs[0][5:8, col["G"]] = 0.9
    probs[1][0:4, col["B1"]] = probs[1][6:10, col["B2"]] = 0.9
    probs[2][0:9, col["A"]] = 0.9
    det = detection_map(probs, gt, XD_CLASSES, clip_len=16, normal_class="A", ucf_normal_quirk=False,
                        zero_if_class_without_proposals=False)
    assert det.per_class == {c: (1.0,) * 5 if c in ("A", "B1", "B2", "G") else (0.0,) * 5 for c in XD_CLASSES}
    assert det.map_at_iou == pytest.approx((4 / 7,) * 5) and det.classes_without_proposals == ("B4", "B5", "B6")
    # the video's combined code as every span's label (what annotations.txt alone gives) is no XD class at all
    frames_only = read_xd(_write(tmp_path, "annotations.txt", [f"{mixed} 16 48 80 128", f"{combined} 0 64 96 160"]))
    with pytest.raises(ValueError, match="GT label 'G-B2' is not one of the classes"):
        detection_map(probs, detection_ground_truth(videos, frames_only, normal_class="A", clip_len=16), XD_CLASSES,
                      clip_len=16, normal_class="A", ucf_normal_quirk=False)


# ----------------------------------------------------------------------------------------------- class prompts


def _profile(name: str) -> dict:
    return YAML(typ="safe").load((REPO / "profiles" / f"{name}.yaml").read_text(encoding="utf-8"))


def test_real_profiles_use_vadclips_label_maps_and_faithful_head():
    # nwpu-zxr/VadCLIP src/ucf_train.py and src/xd_train.py (A = normal is our Normal category)
    ucf = {"Normal": "normal", "Abuse": "abuse", "Arrest": "arrest", "Arson": "arson", "Assault": "assault",
           "Burglary": "burglary", "Explosion": "explosion", "Fighting": "fighting", "RoadAccidents": "roadAccidents",
           "Robbery": "robbery", "Shooting": "shooting", "Shoplifting": "shoplifting", "Stealing": "stealing",
           "Vandalism": "vandalism"}
    xd = {"Normal": "normal", "B1": "fighting", "B2": "shooting", "B4": "riot", "B5": "abuse", "B6": "car accident",
          "G": "explosion"}
    for name in ("ucf_vagta", "msad_vagta"):
        prof = _profile(name)
        datasets = prof["eval"]["datasets"]
        assert datasets["ucf"]["class_prompts"] == ucf and datasets["xd"]["class_prompts"] == xd
        assert datasets["xd"]["detection_ground_truth"].endswith("annotations_multiclasses.txt")
        assert datasets["xd"]["ground_truth"].endswith("annotations.txt")
        head = prof["eval_weakly"]["vadclip"]
        assert (head["gcn_activation"], head["test_chunk_lengths"]) == ("quick_gelu", "vadclip")
    assert repo_params("eval.datasets.synth").class_prompts is None  # the world's own: plain words


def test_class_prompt_from_the_table_or_in_plain_words():
    assert class_prompt("RoadAccidents", None) == "road accidents"
    assert class_prompt("RoadAccidents", {"RoadAccidents": "roadAccidents"}) == "roadAccidents"
    with pytest.raises(ValueError, match=r"eval.datasets.ucf.class_prompts: no prompt for the category 'Arson' "
                                         r"\(the table names Normal, RoadAccidents\)"):
        class_prompt("Arson", {"Normal": "normal", "RoadAccidents": "roadAccidents"}, "eval.datasets.ucf.class_prompts")


# ------------------------------------------------------------------------------------------ the faithful head


def _head(frozen_tiny_clip, **kw):
    clip, tok = frozen_tiny_clip
    cfg = repo_params("eval_weakly.vadclip", visual_length=16, window=4, **kw)
    return make_head(["normal", "fighting", "explosion"], clip, tok, 128, cfg, seed=0)


def test_chunk_lengths_as_vadclips_test_loop():
    """ucf_test.py's loop: the remaining length drops by L only while it exceeds L, so at T % L == 0 the extra
    all-zero chunk carries L; every real chunk carries its real length either way."""
    assert vadclip_chunk_lengths(100, 256).tolist() == [100]
    assert vadclip_chunk_lengths(256, 256).tolist() == [256, 256]
    assert vadclip_chunk_lengths(300, 256).tolist() == [256, 44]
    assert vadclip_chunk_lengths(512, 256).tolist() == [256, 256, 256]
    x = np.ones((512, 2), np.float32)
    assert process_split(x, 256)[1].tolist() == [256, 256, 0]
    assert process_split(x, 256, "vadclip")[1].tolist() == [256, 256, 256]
    with pytest.raises(ValueError, match="'real' or 'vadclip'"):
        process_split(x, 256, "exact")


def test_quick_gelu_gcn_and_chunk_lengths_switches(frozen_tiny_clip):
    clip, _ = frozen_tiny_clip
    ours, faithful = _head(frozen_tiny_clip), _head(frozen_tiny_clip, gcn_activation="quick_gelu", test_chunk_lengths="vadclip")
    assert ours.state_dict().keys() == faithful.state_dict().keys()  # same weights, checkpoints interchangeable
    faithful.load_state_dict(ours.state_dict())
    x = torch.linspace(-3, 3, 13)
    assert torch.allclose(faithful.gcn_act(x), x * torch.sigmoid(1.702 * x)) and torch.allclose(ours.gcn_act(x), F.gelu(x))
    video = np.random.default_rng(0).normal(size=(32, 128)).astype(np.float32)  # T = 2L: an extra all-zero chunk
    a, b = score_videos(ours, [video], clip)[0], score_videos(faithful, [video], clip)[0]
    assert not np.allclose(a["prob1"], b["prob1"], atol=1e-6)  # the activation changes the scores
    # the chunk lengths alone do not: the extra chunk's outputs are cut off
    lengths_only = _head(frozen_tiny_clip, test_chunk_lengths="vadclip")
    lengths_only.load_state_dict(ours.state_dict())
    c = score_videos(lengths_only, [video], clip)[0]
    assert all(np.array_equal(a[k], c[k]) for k in ("prob1", "prob2", "class_probs"))
