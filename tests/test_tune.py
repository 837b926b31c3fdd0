"""Alert-CLIP stage 1 / stage 2 tuning on a tiny fake curated set (12 training clips, T=4, 64 px)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from alertclip import factory
from alertclip.backbone import CHECKPOINT_FILE, images_to_tensor
from alertclip.tune import (
    TEMPORAL_FILE,
    TuneConfig,
    TunePaths,
    batch_losses,
    build_model,
    load_clip_set,
    load_tuned,
    make_batch,
    run_stage,
    tune,
    val_videos,
)

T = 4
CFG = dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=0, val_fraction=0.3, temporal_layers=1,
           temporal_heads=2, k_negatives=3)


def _world(root: Path) -> TunePaths:
    rng = np.random.default_rng(0)
    (root / "frames").mkdir(parents=True)
    rows = []
    n = 14
    frames = np.zeros((n, T, 64, 64, 3), np.uint8)
    for i in range(n):
        colour = rng.integers(0, 255, 3)
        frames[i] = rng.integers(0, 40, (T, 64, 64, 3)) + colour // 2
        split = "test" if i >= 12 else "train"
        category = "Explosion" if i == 11 else ("Normal" if i % 2 else "Fighting")
        n_frames = 2 if i == 3 else T  # clip 3 is short: padded + masked
        has_box = i % 3 != 0
        boxes = [[0.1 + 0.05 * t, 0.2, 0.6, 0.7] if has_box and t > 0 else [float("nan")] * 4 for t in range(n_frames)]
        rows.append(dict(clip_key=f"c{i:02d}", video=f"v{i:02d}.mp4", split=split, abnormal=category != "Normal",
                         category=category, global_caption=f"a scene with colour {i} and event {category}",
                         region_caption=None if i == 5 else f"the person {i} does {category}",
                         hard_negative=[f"hn {i}"], frames=list(range(n_frames)), boxes=boxes, shard=0, row=i))
    np.save(root / "frames" / "clips-000.npy", frames)
    pl.DataFrame(rows).write_parquet(root / "clips.parquet")
    hard = [dict(clip_key=f"c{i:02d}", rank=r, negative=f"the person {i} does not {r}", source="test")
            for i in range(n) for r in range(1 if i == 4 else 3)]
    pl.DataFrame(hard).write_parquet(root / "hardneg.parquet")
    std = [dict(clip_key=f"c{i:02d}", rank=r, negative=f"standard other clip {(i + r + 1) % n}",
                negative_clip_key=f"c{(i + r + 1) % n:02d}") for i in range(n) for r in range(3)]
    pl.DataFrame(std).write_parquet(root / "standard.parquet")
    (root / "novel.txt").write_text("Explosion\n", encoding="utf-8")
    torch.manual_seed(0)
    model, _, _, _ = factory.create("alertclip-tiny")
    factory.save_checkpoint(model, root / "backbone" / CHECKPOINT_FILE, arch="alertclip-tiny")
    return TunePaths(clips=root / "clips.parquet", frames_dir=root / "frames", hardneg=root / "hardneg.parquet",
                     standard_negatives=root / "standard.parquet", backbone=root / "backbone" / CHECKPOINT_FILE,
                     stage1_dir=root / "out" / "models" / "stage1", novel_classes=root / "novel.txt")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> TunePaths:
    return _world(tmp_path_factory.mktemp("tune"))


@pytest.fixture(scope="module")
def staged(world):
    torch.set_num_threads(2)
    out = world.clips.parent / "out"
    m1 = run_stage("stage1", CFG, False, world, out / "models", out / "results", out / "cache")
    m2 = run_stage("stage2", CFG, False, world, out / "models", out / "results", out / "cache")
    return out, m1, m2


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="unknown key"):
        TuneConfig.from_params({"epochs": 1, "bogus": 2})
    with pytest.raises(ValueError, match="negatives"):
        TuneConfig.from_params({"negatives": "easy"})
    assert TuneConfig.from_params(None) == TuneConfig()
    assert TuneConfig().for_stage("stage1").lambda_hard == 0.0


def test_stages_write_outputs_and_finite_losses(staged):
    out, m1, m2 = staged
    for stage, m in (("stage1", m1), ("stage2", m2)):
        d = out / "models" / stage
        for name in (CHECKPOINT_FILE, "config.json", TEMPORAL_FILE, "temporal.json"):
            assert (d / name).is_file(), name
        assert (out / "results" / stage / "metrics.json").is_file()
        assert (out / "results" / stage / "curve.csv").read_text().startswith("step,epoch,loss,lr")
        assert "wall_s" not in m and "samples_per_s" not in m
        assert np.isfinite(m["final_loss"]) and np.isfinite(m["best_val_total"])
        assert len(m["val"]) == CFG["epochs"]
        assert not list((out / "cache" / stage).glob("*/last.pt"))  # resume checkpoints removed on success
        torch.load(d / TEMPORAL_FILE, weights_only=True)
    assert m1["train_last_epoch"]["region"] == 0.0 and m1["lambda_hard"] == 0.0
    assert m2["train_last_epoch"]["region"] > 0 and m2["train_last_epoch"]["hard"] > 0
    assert m2["n_train_clips"] + m2["n_val_clips"] == 11  # 12 train clips minus the novel-class one


def test_checkpoint_loads_with_plain_open_clip(staged, world):
    import open_clip

    out, _, _ = staged
    factory.register_configs()
    plain, _, _ = open_clip.create_model_and_transforms("alertclip-tiny", pretrained=str(out / "models" / "stage2" / CHECKPOINT_FILE))
    plain.eval()
    ours, tok = load_tuned(out / "models" / "stage2")
    data = load_clip_set(world)
    x = images_to_tensor(data.frames[:2].reshape(-1, 64, 64, 3), plain)
    tokens = tok(data.texts[:3])
    with torch.no_grad():
        assert torch.allclose(plain.encode_image(x, normalize=True), ours.clip.encode_image(x, normalize=True), atol=1e-5)
        assert torch.allclose(plain.encode_text(tokens, normalize=True), ours.encode_text(tokens), atol=1e-5)
        batch = make_batch(data, np.arange(3), ours, tokens=tok(data.texts))
        v = ours.encode_video(batch["frames"], batch["mask"])
    assert torch.isfinite(v).all()


def test_stage1_is_deterministic(staged, world, tmp_path):
    out, _, _ = staged
    run_stage("stage1", CFG, False, world, tmp_path / "models", tmp_path / "results", tmp_path / "cache")
    a = torch.load(out / "models" / "stage1" / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "models" / "stage1" / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [d / "results" / "stage1" / "metrics.json" for d in (out, tmp_path)]
    assert metrics[0].read_bytes() == metrics[1].read_bytes()


def test_val_split_train_only_and_deterministic(world):
    data = load_clip_set(world)
    assert all(not k.startswith(("c12", "c13")) for k in data.keys)  # test clips never load
    assert "c11" not in data.keys  # novel class held out
    held = val_videos(data.videos, 0.3, 0)
    assert held == val_videos(list(reversed(data.videos)), 0.3, 0)
    assert held and held < set(data.videos)
    assert val_videos(data.videos, 0.0, 0) == set()


def test_short_clip_padded_and_masked(world):
    data = load_clip_set(world)
    i = data.keys.index("c03")
    assert data.mask[i].tolist() == [True, True, False, False]
    assert (data.frames[i, 2:] == 0).all()
    assert data.mask[data.keys.index("c04")].all()


def test_batch_without_regions_and_negative_padding(world, caplog):
    data = load_clip_set(world)
    model, tok = build_model(TuneConfig.from_params(CFG), world.backbone)
    tokens = tok(data.texts)
    no_region = [data.keys.index(k) for k in ("c00", "c05", "c06")]  # no boxes / no region caption
    assert np.isnan(data.boxes[no_region]).all()
    with caplog.at_level("INFO", logger="alertclip.tune"):
        out = batch_losses(model, make_batch(data, np.array(no_region), model, tokens), 1.0, 1.0)
    assert "batch without regions: region loss skipped" in caplog.text
    assert float(out["region"]) == 0.0 and float(out["n_regions"]) == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    i = data.keys.index("c04")  # one hard negative only
    assert (data.neg_index[i] >= 0).tolist() == [True, False, False]
    batch = make_batch(data, np.array([i, 1]), model, tokens)
    assert batch["neg_valid"][0].tolist() == [True, False, False]


def test_standard_negatives_use_standard_table(world):
    hard = load_clip_set(world, "hard")
    std = load_clip_set(world, "standard")
    i = std.keys.index("c02")
    assert [std.texts[j] for j in std.neg_index[i]] == [f"standard other clip {k}" for k in (3, 4, 5)]
    assert [hard.texts[j] for j in hard.neg_index[i]][0] == "the person 2 does not 0"


def test_init_base_vs_stage1(staged, world):
    cfg = TuneConfig.from_params({**CFG, "epochs": 1})
    _, _, _ = staged
    starts = {}
    for init in ("stage1", "base"):
        c = dataclasses.replace(cfg, init=init)
        # the two starting points tune() builds for stage 2 (same calls as in tune())
        if init == "stage1":
            m, _ = build_model(c, world.stage1_dir / CHECKPOINT_FILE, world.stage1_dir / TEMPORAL_FILE)
        else:
            m, _ = build_model(c, world.backbone)
        starts[init] = m.clip.visual.conv1.weight.detach().clone()
    assert not torch.equal(starts["stage1"], starts["base"])
    model, result, metrics = tune(dataclasses.replace(cfg, init="base"), "stage2", world)
    assert metrics["init"] == "base" and not result.interrupted


def test_grad_checkpointing_same_gradients_and_really_recomputes(world, monkeypatch):
    import open_clip.transformer as oct

    data = load_clip_set(world)
    cfg = TuneConfig.from_params(CFG)
    idx = np.array([1, 2, 4, 7])

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        model, tok = build_model(cfg, world.backbone)
        model.clip.set_grad_checkpointing(checkpointing)
        model.train()
        batch_losses(model, make_batch(data, idx, model, tok(data.texts)), 1.0, 1.0)["loss"].backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    calls = {"n": 0}
    real = oct.checkpoint

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(oct, "checkpoint", counting)
    plain = grads(False)
    assert calls["n"] == 0
    ckpt = grads(True)
    assert calls["n"] >= 7  # every visual (4) and text (3) block went through torch.utils.checkpoint
    assert plain.keys() == ckpt.keys()
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_precision_switch_validated():
    assert TuneConfig.from_params({**CFG, "precision": "bf16"}).loop_config(None, "x").precision == "bf16"
    with pytest.raises(ValueError, match="precision must be auto\\|bf16\\|fp32"):
        TuneConfig.from_params({**CFG, "precision": "fp16"})
