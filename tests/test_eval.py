"""Evaluation glue: features extraction + cache, MSS, zero-shot, weakly/open-vocabulary plumbing, retention."""

from __future__ import annotations

import numpy as np
import open_clip
import polars as pl
import pytest
import torch

from alertclip import factory
from alertclip.eval import features as feat_mod
from alertclip.eval.bootstrap import bootstrap_video_indices
from alertclip.eval.features import extract, load_features
from alertclip.eval.groundtruth import GroundTruth, GroundTruthError, VideoTruth
from alertclip.eval.mil import score_mil, train_linear_mil
from alertclip.eval.retention import retention, scene_of
from alertclip.eval.weakly import category_of, class_phrase, open_vocabulary_subsets, summarise, weakly_supervised
from alertclip.eval.zeroshot import check_prompts, encode_prompts, mss, prompt_sets, zero_shot
from alertclip.factory import CHECKPOINT_FILE

D = 8
SNIPPET_LEN = 16  # the hand cases' snippet length (passed explicitly; VadCLIP's, as params.yaml frames.snippet_len)


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _truth() -> GroundTruth:
    return GroundTruth({"Fighting001_x264.mp4": VideoTruth("Fighting001_x264.mp4", "Fighting", ((16, 48),)),
                        "Normal_Videos_001_x264.mp4": VideoTruth("Normal_Videos_001_x264.mp4", "Normal", ())},
                       source="fake.txt")


def test_mss_hand_case_uses_abnormal_span_only():
    e = np.eye(D)
    t_a, t_n = e[[0]], e[[1]]
    # abnormal video: 4 snippets; span [16, 48) covers snippets 1 and 2, which point at t_A; the rest at t_N
    fight = np.stack([e[1], e[0], e[0], e[1]])
    normal = np.stack([e[1], _unit(e[0] + e[1]), e[1]])
    value, rows = mss({"V/Fighting/Fighting001_x264.mp4": fight, "V/Normal/Normal_Videos_001_x264.mp4": normal},
                      _truth(), t_a, t_n, SNIPPET_LEN)
    assert rows[0].abnormal and rows[0].snippets == 2 and rows[0].signed == pytest.approx(1.0)
    # normal: mean cos to t_N = (1 + 0.7071 + 1) / 3, to t_A = 0.7071 / 3
    assert rows[1].signed == pytest.approx((2.0 + 2 ** -0.5) / 3 - (2 ** -0.5) / 3)
    assert value == pytest.approx((1.0 + rows[1].signed) / 2)


def test_mss_unknown_abnormal_video_and_empty_prompts_fail():
    e = np.eye(D)
    with pytest.raises(GroundTruthError, match="Arson003_x264.mp4.*fake.txt"):
        mss({"V/Arson/Arson003_x264.mp4": e[:2]}, _truth(), e[[0]], e[[1]], SNIPPET_LEN)
    with pytest.raises(ValueError, match="empty prompt set"):
        mss({"V/Normal/Normal_Videos_001_x264.mp4": e[:2]}, _truth(), np.zeros((0, D)), e[[1]], SNIPPET_LEN)
    clip, _, _, tok = factory.create("alertclip-tiny")
    with pytest.raises(ValueError, match="empty prompt set"):
        encode_prompts(clip, tok, "a cctv video where {}", [])


def test_prompts_the_tokenizer_cannot_encode_fail_naming_the_prompt(params_of):
    from alertclip.params import ParamsError

    factory.register_configs()
    tok = open_clip.get_tokenizer("alertclip-tiny")
    check_prompts(tok, params_of("eval").prompts)  # the shipped prompt sets (params.yaml) encode as written
    template = params_of("eval.prompts").template
    abnormal = ["two people fight", "a car crashes", "smoke", " ".join(["a person keeps running away"] * 15), "fire"]
    bad = params_of("eval.prompts", normal=["two people talk", "a car\x00parks", "a cat &amp; a dog"], abnormal=abnormal)
    with pytest.raises(ParamsError) as exc:
        check_prompts(tok, bad)
    lines = str(exc.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("params.yaml: eval.prompts.normal[1]: ") and "'\\x00'" in lines[0]
    assert lines[1].startswith("params.yaml: eval.prompts.normal[2]: ")
    assert f"would read {template.format('a cat & a dog')!r}" in lines[1]
    assert lines[2].startswith("params.yaml: eval.prompts.abnormal[3]: ") and "truncated" in lines[2]
    # exactly at the limit is fine, one token more is not: 75 phrase tokens + start + end = 77
    template_tokens = len(tok.encode(template.format("")))
    fits = ["fight"] * (75 - template_tokens)
    check_prompts(tok, params_of("eval.prompts", abnormal=[" ".join(fits)]))
    with pytest.raises(ParamsError, match=r"abnormal\[0\]: .* 76 tokens long"):
        check_prompts(tok, params_of("eval.prompts", abnormal=[" ".join(fits + ["fight"])]))
    # the stages call it through prompt_sets, before encoding anything
    clip, _, _, _ = factory.create("alertclip-tiny")
    with pytest.raises(ParamsError, match=r"eval.prompts.abnormal\[3\]"):
        prompt_sets(clip, tok, bad)


def test_mss_and_zeroshot_stages_write_bootstrap_cis(tmp_path, monkeypatch, params_of):
    """metrics.json of eval_mss / eval_zeroshot@<backbone>-<dataset> hold 95% CIs over test videos next to the point
    values, under results/<stage>/<backbone>/<dataset>/, keyed by the dataset's name."""
    import json
    from pathlib import Path
    from types import SimpleNamespace

    from alertclip.eval import pair
    from alertclip.eval.testsets import CheckedTestSet
    from alertclip.stages import eval_mss, eval_zeroshot

    rng = np.random.default_rng(0)
    truth, test = GroundTruth({}, source="data/testsets/synth/truth.json"), {}
    for i in range(12):
        name = f"Fighting{i:03d}_x264" if i % 2 else f"Normal_Videos_{i:03d}_x264"
        video = f"V/{name}.mp4"  # the checked test set is keyed as the features name the videos, normal ones too
        truth[video] = VideoTruth(video, "Fighting", ((16, 48),)) if i % 2 else VideoTruth(video, "Normal", ())
        test[video] = rng.standard_normal((4, 128)).astype(np.float32)
    testset = CheckedTestSet("synth", "VAGTA-synth", truth, {v: 64 for v in test}, Path("data/frames"))
    clip, _, _, tok = factory.create("alertclip-tiny")
    read = []

    def by_video(split, crop=None):
        assert (split, crop) == ("test", 0)  # test videos are scored on eval.test_crop
        return dict(test)

    feats = SimpleNamespace(meta={"logit_scale": 100.0}, by_video=by_video)

    def load_features(path):
        read.append(Path(path))
        return feats

    def read_testset(p, dataset):
        assert dataset == "synth"
        return testset

    # both stages open their inputs through eval.pair and write under results/ of the working directory
    monkeypatch.setattr(pair, "open_backbone", lambda p, backbone, stage: (clip, tok))
    monkeypatch.setattr(pair, "load_features", load_features)
    monkeypatch.setattr(pair, "read_testset", read_testset)
    monkeypatch.chdir(tmp_path)
    p = SimpleNamespace(eval=params_of("eval", bootstrap_samples=200, bootstrap_seed=3),
                        frames=params_of("frames", snippet_len=SNIPPET_LEN))
    eval_mss.run(p, variant="base-synth")
    eval_zeroshot.run(p, variant="base-synth")
    assert read == [Path("data/features/base/synth")] * 2
    m = json.loads((tmp_path / "results/eval_mss/base/synth/metrics.json").read_text(encoding="utf-8"))["VAGTA-synth"]
    assert m["mss_ci95"][0] <= m["mss"] <= m["mss_ci95"][1] and m["mss_ci95"][0] < m["mss_ci95"][1]
    assert (m["n_bootstrap"], m["bootstrap_seed"]) == (200, 3)
    assert (m["n_videos"], m["n_abnormal"]) == (12, 6)
    z = json.loads((tmp_path / "results/eval_zeroshot/base/synth/metrics.json").read_text(encoding="utf-8"))["VAGTA-synth"]
    for key in ("auc", "ap"):
        low, high = z[f"{key}_ci95"]
        assert low <= z[key] <= high and low < high
    # videos in name order (6 Fighting, then 6 normal): a draw of normal videos only has one class and is skipped
    normal_only = int((bootstrap_video_indices(12, 200, seed=3) >= 6).all(axis=1).sum())
    assert (z["n_bootstrap"], z["bootstrap_seed"], z["bootstrap_skipped"]) == (200, 3, normal_only)
    # the same params give the same bytes (DVC hashes the metrics)
    first = (tmp_path / "results/eval_zeroshot/base/synth/metrics.json").read_bytes()
    eval_zeroshot.run(p, variant="base-synth")
    assert (tmp_path / "results/eval_zeroshot/base/synth/metrics.json").read_bytes() == first
    # a matrix stage's variant is <backbone>-<dataset>, both keys of params
    with pytest.raises(ValueError, match="needs --variant <backbone>-<dataset>"):
        eval_mss.run(p, variant="base")
    with pytest.raises(ValueError, match="eval.datasets has no 'xd'"):
        eval_zeroshot.run(p, variant="base-xd")
    with pytest.raises(ValueError, match="eval.backbones has no 'nope'"):
        eval_zeroshot.run(p, variant="nope-synth")


def test_zero_shot_separates_aligned_snippets():
    e = np.eye(D)
    fight = np.stack([e[1], e[0], e[0], e[1]])  # snippets 1-2 abnormal (frames 16..47)
    normal = np.stack([e[1], e[1], e[1]])
    metrics, scores, frames = zero_shot({"V/Fighting/Fighting001_x264.mp4": fight,
                                         "V/Normal/Normal_Videos_001_x264.mp4": normal}, _truth(), e[[0]], e[[1]], 100.0,
                                        clip_len=SNIPPET_LEN)
    assert metrics["auc"] == pytest.approx(1.0) and metrics["ap"] == pytest.approx(1.0)
    assert frames.labels.size == 16 * 7 and metrics["n_frames"] == 112
    assert scores["V/Fighting/Fighting001_x264.mp4"][1] > 0.99 > 0.01 > scores["V/Fighting/Fighting001_x264.mp4"][0]


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    torch.manual_seed(0)
    clip, _, _, _ = factory.create("alertclip-tiny")
    d = tmp_path_factory.mktemp("bb")
    factory.save_checkpoint(clip, d / CHECKPOINT_FILE, arch="alertclip-tiny")
    return d


def test_features_extract_cache_and_mismatch(smoke_frames, tiny_backbone, tmp_path, monkeypatch, params_of):
    frames_dir = smoke_frames["out"]
    cache = tmp_path / "cache"
    feat = params_of("features")
    meta = extract(tiny_backbone, frames_dir, tmp_path / "f1", "alertclip-tiny", batch_size=64, cache_dir=cache,
                   name="base", precision=feat.precision, crops=feat.crops)
    fs = load_features(tmp_path / "f1")
    n = pl.read_parquet(frames_dir / "snippets.parquet").height
    assert fs.features.shape == (n, 128) and fs.features.dtype == np.float16 and meta["n_snippets"] == n
    norms = np.linalg.norm(fs.features.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)
    by = fs.by_video("test")
    assert by and all(v.ndim == 2 for v in by.values())
    assert set(fs.by_video("train")).isdisjoint(by)

    def boom(*a, **k):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(feat_mod, "encode_snippets", boom)  # same checkpoint + frames: served from the cache
    extract(tiny_backbone, frames_dir, tmp_path / "f2", "alertclip-tiny", feat.batch_size, cache_dir=cache, name="again",
            precision=feat.precision, crops=feat.crops)
    assert np.array_equal(np.load(tmp_path / "f2" / "snippets.npy"), fs.features)

    np.save(tmp_path / "f2" / "snippets.npy", fs.features[:-1])
    with pytest.raises(ValueError, match=r"snippets.npy: \d+ rows but .*index.parquet lists \d+ snippets"):
        load_features(tmp_path / "f2")


def test_category_phrases_and_openvocab_subsets():
    assert category_of("VAGTA_synth/Videos/RoadAccidents/RoadAccidents001_x264.mp4") == "RoadAccidents"
    assert category_of("VAGTA_synth/Videos/Normal/Normal_Videos_101_x264.mp4") == "Normal"
    assert class_phrase("RoadAccidents") == "road accidents" and class_phrase("Normal") == "normal"
    test = {"V/Normal/Normal_Videos_1.mp4": 0, "V/Fighting/Fighting1.mp4": 0, "V/Explosion/Explosion1.mp4": 0}
    sub = open_vocabulary_subsets(test, {"Explosion"})
    assert sub == {"base": ["V/Normal/Normal_Videos_1.mp4", "V/Fighting/Fighting1.mp4"],
                   "novel": ["V/Normal/Normal_Videos_1.mp4", "V/Explosion/Explosion1.mp4"]}
    with pytest.raises(ValueError, match="no test video of the novel categories"):
        open_vocabulary_subsets(test, {"Arson"})
    s = summarise([0.8, 0.9])
    assert s["mean"] == pytest.approx(0.85) and s["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))


def _world(rng, n_per: int, prefix: str):
    """Features where abnormal videos carry a class direction on snippets 4..9 (frames 64..159)."""
    fixed = np.random.default_rng(123)  # the same class directions in train and test
    dirs = {c: fixed.normal(size=128) for c in ("Fighting", "Arson", "Explosion")}
    feats, truth = {}, {}
    for c in ("Normal", "Fighting", "Arson", "Explosion"):
        for i in range(n_per):
            name = f"Normal_Videos_{prefix}{i:03d}_x264.mp4" if c == "Normal" else f"{c}{prefix}{i:03d}_x264.mp4"
            x = rng.normal(size=(16, 128))
            if c != "Normal":
                x[4:10] += 3 * dirs[c]
                truth[name] = VideoTruth(name, c, ((64, 160),))
            feats[f"V/{c}/{name}"] = _unit(x).astype(np.float32)
    return feats, truth


def test_weakly_supervised_plumbing_seeds_and_subsets(params_of):
    rng = np.random.default_rng(0)
    train, _ = _world(rng, 12, "tr")
    test, truth = _world(rng, 3, "te")
    clip, _, _, tok = factory.create("alertclip-tiny")
    cfg = params_of("eval_weakly.vadclip", visual_length=16, batch_per_class=8, epochs=3, lr=1e-3, milestones=(10,))
    res = weakly_supervised(train, test, GroundTruth(truth, source="t.txt"), clip, tok, cfg, [0, 1], 0.3,
                            exclude={"Explosion"}, subsets=open_vocabulary_subsets(test, {"Explosion"}), clip_len=SNIPPET_LEN)
    assert res["info"]["classes"] == ["Normal", "Arson", "Fighting"]  # the novel class is not trained
    for key in ("base", "novel"):
        m = res["metrics"][key]
        assert len(m["auc"]["per_seed"]) == 2 and 0.0 <= m["auc"]["mean"] <= 1.0
        assert {"ap", "auc_prob2", "ap_prob2"} <= set(m)
    assert {"map_avg", "map@0.5"} <= set(res["metrics"]["base"])
    assert "map_avg" not in res["metrics"]["novel"]  # no class prompt for an unseen class: no detection mAP
    assert res["metrics"]["base"]["auc"]["mean"] > 0.8  # the class-direction segment is found on base classes
    assert set(res["scores"]) == set(test) and len(res["history"]) == 2


def test_linear_mil_head_finds_the_segment_and_chooses_its_class(params_of):
    rng = np.random.default_rng(1)
    train, _ = _world(rng, 12, "tr")
    test, truth = _world(rng, 3, "te")
    cfg = params_of("eval_weakly.linear_mil", epochs=30, lr=1e-2, batch_size=8)
    res = weakly_supervised(train, test, GroundTruth(truth, source="t.txt"), None, None, cfg, [0, 1], 0.3,
                            clip_len=SNIPPET_LEN)
    m = res["metrics"]["all"]
    assert m["auc"]["mean"] > 0.85  # snippets 4..9 of abnormal videos score above the rest (chance 0.5)
    assert m["auc_prob2"]["mean"] > 0.6  # the class branch is trained on the top-k snippets only: weaker, not blind
    assert res["info"]["head"] == "linear_mil" and len(res["history"]) == 2
    assert m["auc"]["per_seed"][0] != m["auc"]["per_seed"][1]  # seeds change the initialisation
    # class branch: within an abnormal video's segment the video's own class wins
    categories = res["info"]["classes"]
    names = [v for v in train]
    head, hist = train_linear_mil([train[v] for v in names], [categories.index(category_of(v)) for v in names],
                                  len(categories), cfg, seed=0)
    assert hist["loss"][-1] < hist["loss"][0]
    (arson,) = score_mil(head, [test["V/Arson/Arsonte000_x264.mp4"]])
    assert arson["class_probs"].shape == (16, len(categories))
    assert categories[int(arson["class_probs"][4:10].mean(0).argmax())] == "Arson"
    again, _ = train_linear_mil([train[v] for v in names], [categories.index(category_of(v)) for v in names],
                                len(categories), cfg, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), again.state_dict().values()))


def test_linear_mil_head_rejects_one_class_training(params_of):
    x = [np.zeros((4, 8), np.float32)] * 3
    with pytest.raises(ValueError, match="both normal and abnormal"):
        train_linear_mil(x, [0, 0, 0], 2, params_of("eval_weakly.linear_mil", epochs=1), seed=0)
    with pytest.raises(ValueError, match="equal length"):
        train_linear_mil(x, [0, 1], 2, params_of("eval_weakly.linear_mil", epochs=1), seed=0)


def test_retention_metrics_on_random_model():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 64, 64, 3), dtype=np.uint8)
    caps = [f"a {s} scene, a person in red" for s in ("shop", "plaza", "street")] * 4
    assert scene_of(caps[0]) == "shop" and scene_of("no scene here") is None
    clip, _, _, tok = factory.create("alertclip-tiny")
    out = retention(clip, tok, images, caps)
    assert out["n_scenes"] == 3 and out["scene_chance"] == pytest.approx(1 / 3)
    assert {"i2t_r1", "i2t_r5", "t2i_r1", "scene_acc"} <= set(out)
    assert 0.0 <= out["t2i_r1"] <= 1.0


def test_inference_precision_modes_on_cpu():
    clip, _, _, _ = factory.create("alertclip-tiny")
    for mode in ("auto", "autocast", "fp32"):  # on CPU every mode is plain fp32 (bf16 is for CUDA)
        model, ctx = feat_mod.prepare_for_inference(clip, mode)
        assert ctx is None and next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="features.precision must be auto\\|autocast\\|fp32"):
        feat_mod.prepare_for_inference(clip, "fp16")


# ---------------------------------------------------------------------------------------------- checkpoint@<backbone>


def test_checkpoint_record_catches_weights_changed_after_it_was_written(tmp_path, monkeypatch, params_of):
    """checkpoint@<bb> records the weights' sha256; a stage loading them refuses weights that changed since, naming the
    record, the checkpoint and the stage to rerun (else DVC would call evaluations of other weights current)."""
    import hashlib
    from types import SimpleNamespace

    from alertclip.eval.checkpoints import checkpoint_record, verified_checkpoint, write_checkpoint_record
    from alertclip.eval.inputs import split_variant

    monkeypatch.chdir(tmp_path)  # data/checkpoints/ is relative to the repository root
    ckpt = tmp_path / "models" / "ft" / CHECKPOINT_FILE
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights v1")
    p = SimpleNamespace(eval=params_of("eval", backbones={"base": "models/base", "ft": "models/ft"}),
                        backbone=params_of("backbone", arch="alertclip-tiny"))
    with pytest.raises(FileNotFoundError, match=r"data/checkpoints/ft\.json: missing; run dvc\.yaml stage `checkpoint@ft`"):
        verified_checkpoint(p, "ft")
    record = checkpoint_record(p, "ft")
    assert record == {"backbone": "ft", "model_dir": "models/ft", "arch": "alertclip-tiny", "bytes": 10,
                      "checkpoint_sha256": hashlib.sha256(b"weights v1").hexdigest()}
    write_checkpoint_record("ft", record)
    assert verified_checkpoint(p, "ft") == ckpt.relative_to(tmp_path)
    ckpt.write_bytes(b"weights v2")  # retrained, record not rerun
    with pytest.raises(ValueError, match=r"data/checkpoints/ft\.json records sha256 .* but models/ft/open_clip_model"
                                         r"\.pt is .*rerun it"):
        verified_checkpoint(p, "ft")
    # a key without weights, an unknown key: named, with the known ones
    with pytest.raises(FileNotFoundError, match=r"models/base/open_clip_model\.pt: no OpenCLIP checkpoint for "
                                                r"eval\.backbones\.base"):
        checkpoint_record(p, "base")
    with pytest.raises(ValueError, match=r"eval\.backbones has no 'nope' \(known: \['base', 'ft'\]\)"):
        checkpoint_record(p, "nope")
    assert split_variant(SimpleNamespace(eval=params_of("eval", backbones=p.eval.backbones)), "ft-synth", "features") == \
        ("ft", "synth")
