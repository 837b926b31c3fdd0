"""Alert-CLIP tuning runs (params ``runs``: stage1, full, ...) on a tiny fake curated set (12 training clips, T=4, 64 px)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from repo_params import PARAMS_YAML, repo_params

from alertclip import factory
from alertclip.factory import CHECKPOINT_FILE, images_to_tensor
from alertclip.losses import alert_clip_losses, hard_negative_loss, region_infonce, symmetric_infonce
from alertclip.params import BACKBONE_INIT, ParamsError, RunParams, RunSettings, parse_params, run_settings
from alertclip.train.distributed import DistContext, shard_slice
from alertclip.tune.batches import BalancedBatches, BatchEncoder, batch_losses, make_batch
from alertclip.tune.checkpoints import TEMPORAL_FILE, build_model, config_digest, load_tuned
from alertclip.tune.data import TunePaths, load_clip_set, val_videos
from alertclip.tune.run import build, run_stage, tune
from alertclip.tune.settings import loop_config
from alertclip.tune.validation import VAL_STATE, BestEpoch, prompt_vectors, val_auc, zero_shot_clip_scores

T = 4
SNIPPET_LEN = 16  # as params.yaml's frames.snippet_len; the fake world below cuts its snippets for 16
CFG = dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=0, val_fraction=0.3, temporal_layers=1,
           temporal_heads=2, k_negatives=3)
PROMPTS = repo_params("eval.prompts", template="a video where {}", normal=["the scene is calm", "someone talks"],
                      abnormal=["a fight breaks out", "someone falls"])


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
                         hard_negative=[f"hn {i}"], frames=list(range(n_frames)), boxes=boxes, shard=0, row=i,
                         start=1, end=20))
    np.save(root / "frames" / "clips-000.npy", frames)
    # 3 snippets a video (select_on=val_video_auc): the annotated frames 1-20 cover snippets 0 and 1
    snippets = [dict(video=f"v{i:02d}.mp4", split="test" if i >= 12 else "train", snippet=k, frame=SNIPPET_LEN * k + 8, shard=0,
                     row=3 * i + k) for i in range(n) for k in range(3)]
    np.save(root / "frames" / "snippets-000.npy", np.repeat(frames[:, 0], 3, axis=0))
    pl.DataFrame(snippets).write_parquet(root / "frames" / "snippets.parquet")
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
                     models_dir=root / "out" / "models", novel_classes=root / "novel.txt")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> TunePaths:
    return _world(tmp_path_factory.mktemp("tune"))


@pytest.fixture(scope="module")
def staged(world, run_of):
    torch.set_num_threads(2)
    out = world.clips.parent / "out"
    # seed 0: the validation videos v00, v04 are both abnormal, so the selection falls back to the val loss
    # full starts from stage1: world.models_dir is out / "models", where tune@stage1 has just written its model
    m1 = run_stage(run_of("stage1", **CFG), "stage1", False, world, out / "models", out / "results", out / "cache",
                   prompts=PROMPTS, snippet_len=SNIPPET_LEN)
    m2 = run_stage(run_of("full", **CFG), "full", False, world, out / "models", out / "results", out / "cache",
                   prompts=PROMPTS, snippet_len=SNIPPET_LEN)
    return out, m1, m2


def test_config_rejects_unknown_and_bad_values(params_of, run_of):
    with pytest.raises(ValueError, match="bogus"):
        run_of("full", epochs=1, bogus=2)
    with pytest.raises(ValueError, match="negatives"):
        run_of("full", negatives="easy")
    with pytest.raises(ValueError, match="bogus: unknown key"):
        params_of("runs.full", bogus=2)  # a row sets losses, init, negatives, epochs or a key of tune
    with pytest.raises(ValueError, match="lambda_hard: set, but losses"):
        params_of("runs.stage1", lambda_hard=1.0)  # stage1 trains the global loss only: no hard-negative weight to set
    # stage1 in full's terms: the global loss alone (both lambdas 0) from the base backbone, hard negatives measured
    s1 = run_of("stage1", **CFG)
    assert isinstance(s1, RunSettings)
    assert (s1.lambda_region, s1.lambda_hard, s1.init, s1.negatives, s1.epochs) == (0.0, 0.0, BACKBONE_INIT, "hard", CFG["epochs"])
    full, full_row = run_of("full", **CFG), params_of("runs.full")
    assert (full.lambda_region, full.lambda_hard, full.init) == (full_row.lambda_region, full_row.lambda_hard, "stage1")
    assert full.lambda_region > 0 and full.lambda_hard > 0
    # each loss a row lists besides global needs its weight there
    with pytest.raises(ValueError, match="lambda_hard: missing"):
        RunParams(losses=["global", "hard"], init="stage1", negatives="hard", epochs=3)
    # a row's own tune keys replace the shared value for that run only; the arch is the backbone's
    row = RunParams(losses=["global", "hard"], init="stage1", negatives="standard", epochs=3, lr=3e-4, lambda_hard=2.0)
    assert row.overrides() == {"lr": 3e-4} and row.weights() == {"lambda_region": 0.0, "lambda_hard": 2.0}
    own = run_settings(params_of("tune"), row, params_of("backbone").arch)
    assert (own.lr, own.lambda_hard, own.lambda_region, own.negatives, own.epochs) == (3e-4, 2.0, 0.0, "standard", 3)
    assert own.arch == params_of("backbone").arch and own.batch_size == params_of("tune").batch_size
    with pytest.raises(ValueError, match="lambda_hard > 0 needs k_negatives > 0"):
        run_settings(params_of("tune", k_negatives=0), row, own.arch)


def test_stages_write_outputs_and_finite_losses(staged):
    out, m1, m2 = staged
    for run, init, m in (("stage1", BACKBONE_INIT, m1), ("full", "stage1", m2)):
        d = out / "models" / run
        for name in (CHECKPOINT_FILE, "config.json", TEMPORAL_FILE, "temporal.json"):
            assert (d / name).is_file(), name
        assert json.loads((out / "results" / "tune" / run / "metrics.json").read_text()) == m
        assert (out / "results" / "tune" / run / "curve.csv").read_text().startswith("step,epoch,loss,lr")
        assert "wall_s" not in m and "samples_per_s" not in m
        assert m["run"] == run and m["init"] == init and "stage" not in m and "variant" not in m
        assert np.isfinite(m["final_loss"]) and np.isfinite(m["best_val_total"])
        assert len(m["val"]) == CFG["epochs"]
        torch.load(d / TEMPORAL_FILE, weights_only=True)
    assert not list((out / "cache").rglob("last.pt"))  # resume checkpoints (cache/tune/<run>/<digest>/) removed on success
    assert sorted(p.name for p in (out / "models").iterdir()) == ["full", "stage1"]  # data/models/full, not stage2/full
    assert m1["train_last_epoch"]["region"] == 0.0 and m1["lambda_hard"] == 0.0
    assert m2["train_last_epoch"]["region"] > 0 and m2["train_last_epoch"]["hard"] > 0
    assert m2["n_train_clips"] + m2["n_val_clips"] == 11  # 12 train clips minus the novel-class one


def test_checkpoint_loads_with_plain_open_clip(staged, world):
    import open_clip

    out, _, _ = staged
    factory.register_configs()
    plain, _, _ = open_clip.create_model_and_transforms("alertclip-tiny", pretrained=str(out / "models" / "full" / CHECKPOINT_FILE))
    plain.eval()
    ours, tok = load_tuned(out / "models" / "full")
    data = load_clip_set(world)
    x = images_to_tensor(data.frames[:2].reshape(-1, 64, 64, 3), plain)
    tokens = tok(data.texts[:3])
    with torch.no_grad():
        assert torch.allclose(plain.encode_image(x, normalize=True), ours.clip.encode_image(x, normalize=True), atol=1e-5)
        assert torch.allclose(plain.encode_text(tokens, normalize=True), ours.encode_text(tokens), atol=1e-5)
        batch = make_batch(data, np.arange(3), ours, tokens=tok(data.texts))
        v = ours.encode_video(batch["frames"], batch["mask"])
    assert torch.isfinite(v).all()


def test_stage1_is_deterministic(staged, world, tmp_path, run_of):
    out, _, _ = staged
    run_stage(run_of("stage1", **CFG), "stage1", False, world, tmp_path / "models", tmp_path / "results", tmp_path / "cache",
              prompts=PROMPTS, snippet_len=SNIPPET_LEN)
    a = torch.load(out / "models" / "stage1" / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "models" / "stage1" / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [d / "results" / "tune" / "stage1" / "metrics.json" for d in (out, tmp_path)]
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


def test_batch_without_regions_and_negative_padding(world, caplog, run_of):
    data = load_clip_set(world)
    model, tok = build_model(run_of("full", **CFG), world.backbone)
    tokens = tok(data.texts)
    no_region = [data.keys.index(k) for k in ("c00", "c05", "c06")]  # no boxes / no region caption
    assert np.isnan(data.boxes[no_region]).all()
    with caplog.at_level("INFO", logger="alertclip.losses"):
        out = batch_losses(model, make_batch(data, np.array(no_region), model, tokens), 1.0, 1.0)
    assert "batch without regions: region loss skipped" in caplog.text
    assert float(out["region"]) == 0.0 and float(out["n_regions"]) == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    # a region-free shard still puts v_r in the graph (DDP: every process must run each all_gather's backward)
    e = BatchEncoder(model)(make_batch(data, np.array(no_region), model, tokens), True)
    assert e["v_r"].requires_grad and not e["has_region"].any()
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


def test_init_backbone_vs_stage1(staged, world, run_of):
    cfg = run_of("full", **{**CFG, "epochs": 1})
    out, _, _ = staged
    stage1 = out / "models" / "stage1"  # tune@stage1's output (the staged fixture), under world.models_dir
    assert world.models_dir == out / "models"
    inits = {"stage1": run_of("full", **{**CFG, "epochs": 1}), BACKBONE_INIT: run_of("joint", **{**CFG, "epochs": 1})}
    assert inits[BACKBONE_INIT].model_dump() == {**cfg.model_dump(), "init": BACKBONE_INIT}  # joint: full from the backbone
    # the model a run starts from: another run's towers and temporal module, or the backbone with a fresh temporal one
    assert world.init_files(inits["stage1"]) == (stage1 / CHECKPOINT_FILE, stage1 / TEMPORAL_FILE)
    assert world.init_files(inits[BACKBONE_INIT]) == (world.backbone, None)
    for c in inits.values():  # the start is one of the resume key's inputs
        assert {f for f in world.init_files(c) if f is not None} <= set(world.inputs(c))
    assert stage1 / CHECKPOINT_FILE not in world.inputs(inits[BACKBONE_INIT]) and world.backbone not in world.inputs(inits["stage1"])
    starts, temporal = {}, {}
    for init, c in inits.items():
        m, _ = build(c, world)  # the starting point tune() builds
        starts[init] = m.clip.visual.conv1.weight.detach().clone()
        temporal[init] = {k: v.detach().clone() for k, v in m.temporal.state_dict().items()}
    assert not torch.equal(starts["stage1"], starts[BACKBONE_INIT])
    saved = torch.load(stage1 / TEMPORAL_FILE, weights_only=True)
    assert all(torch.equal(temporal["stage1"][k], saved[k]) for k in saved)  # stage1's temporal module, loaded
    assert any(not torch.equal(temporal[BACKBONE_INIT][k], saved[k]) for k in saved)  # a fresh (seeded) one
    model, result, metrics = tune(inits[BACKBONE_INIT], world, snippet_len=SNIPPET_LEN, name="joint")
    assert metrics["init"] == BACKBONE_INIT and metrics["run"] == "joint" and not result.interrupted


def test_grad_checkpointing_same_gradients_and_really_recomputes(world, monkeypatch, run_of):
    import open_clip.transformer as oct

    data = load_clip_set(world)
    cfg = run_of("full", **CFG)
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


def test_precision_switch_validated(params_of, run_of):
    assert loop_config(run_of("full", **{**CFG, "precision": "bf16"}), None, "x").precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        run_of("full", **{**CFG, "precision": "fp16"})
    with pytest.raises(ValueError, match="precision"):
        params_of("tune", precision="fp16")
    raw = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    raw["runs"]["full"]["precision"] = "fp16"  # a row's own value is checked as tune's, naming the run
    with pytest.raises(ParamsError, match=r"runs\.full with tune applied: precision: "):
        parse_params(raw)


# ------------------------------------------------------------------------------------------ duplicate captions


def test_clip_set_labels_and_caption_ids_reach_the_losses(world, run_of):
    data = load_clip_set(world)
    assert data.abnormal.dtype == bool and data.abnormal.tolist() == [not int(k[1:]) % 2 for k in data.keys]
    assert data.subset(np.array([1, 2])).abnormal.tolist() == [False, True]
    model, tok = build_model(run_of("full", **CFG), world.backbone)
    tokens = tok(data.texts)
    idx = np.array([1, 2, 4, 2])  # clip 2 twice: the same caption twice in one batch
    batch = make_batch(data, idx, model, tokens)
    assert batch["text_id"].tolist() == data.text_index[idx].tolist()
    assert batch["region_id"].tolist() == data.region_index[idx].tolist()
    model.eval()
    with torch.no_grad():
        e = BatchEncoder(model)(batch, True)
        out = alert_clip_losses(e, 1.0, 1.0)
        has = e["has_region"].nonzero().flatten()
        groups, rgroups = batch["text_id"], batch["region_id"][has]
        assert int(groups[1]) == int(groups[3]) and len(has) >= 3
        assert float(out["global"]) == symmetric_infonce(e["v"], e["t"], e["scale"], groups).item()
        assert float(out["global"]) != pytest.approx(symmetric_infonce(e["v"], e["t"], e["scale"]).item(), rel=1e-6)
        assert float(out["region"]) == region_infonce(e["v_r"][has], e["t_reg"][has], e["scale"], rgroups).item()
        anchor = torch.where(e["has_region"][:, None], e["v_r"], e["v"])
        assert float(out["hard"]) == hard_negative_loss(anchor, e["t_reg"], e["t_neg"], e["scale"], e["neg_valid"]).item()
        global_only = BatchEncoder(model)(batch, False)  # a run without the region and hard losses (runs.stage1)
        assert torch.equal(global_only["text_id"], groups)
        assert float(alert_clip_losses(global_only, 0.0, 0.0)["global"]) == pytest.approx(float(out["global"]), rel=1e-5)


# ------------------------------------------------------------------------------------------ balanced batches


def _labels(n_abnormal: int, n_normal: int, seed: int = 0) -> np.ndarray:
    labels = np.array([True] * n_abnormal + [False] * n_normal)
    return labels[np.random.default_rng(seed).permutation(labels.size)]


def _epochs(b: BalancedBatches, n: int) -> list[list[list[int]]]:
    return [[x.tolist() for x in b.epoch(e)] for e in range(n)]


@pytest.mark.parametrize("n_abnormal,n_normal,batch_size", [(7, 19, 4), (19, 7, 6), (6, 6, 4), (5, 30, 2)])
def test_balanced_batches_balanced_and_epoch_is_the_smaller_class(n_abnormal, n_normal, batch_size):
    labels = _labels(n_abnormal, n_normal)
    b = BalancedBatches(labels, batch_size, seed=3, fetch=lambda i: i)
    half, small = batch_size // 2, min(n_abnormal, n_normal)
    assert b.steps_per_epoch == small // half and b.batch_size == batch_size
    small_label = n_abnormal < n_normal  # equal sizes: the normal class counts as the smaller one
    seen_large: list[int] = []
    for epoch in _epochs(b, 6):
        assert len(epoch) == b.steps_per_epoch
        flat = [i for batch in epoch for i in batch]
        assert len(set(flat)) == len(flat)  # no clip twice in an epoch, of either class
        for batch in epoch:
            assert len(batch) == batch_size and int(labels[batch].sum()) == half
        assert sum(labels[i] == small_label for i in flat) == b.steps_per_epoch * half
        seen_large += [i for i in flat if labels[i] != small_label]
    # the larger class is read on across epochs: its clips come round evenly (counts differ by at most one)
    counts = np.bincount(seen_large, minlength=labels.size)[np.flatnonzero(labels != small_label)]
    assert counts.max() - counts.min() <= 1


def test_balanced_batches_deterministic_and_resumable():
    labels = _labels(9, 14)
    a = BalancedBatches(labels, 4, seed=5, fetch=lambda i: i)
    b = BalancedBatches(labels, 4, seed=5, fetch=lambda i: i)
    assert _epochs(a, 4) == _epochs(b, 4)
    assert _epochs(a, 2) != _epochs(BalancedBatches(labels, 4, seed=6, fetch=lambda i: i), 2)
    assert _epochs(a, 2)[0] != _epochs(a, 2)[1]  # a new order each epoch
    for epoch in range(4):  # resume mid-epoch (a fresh object, as after a restart): the same remaining batches
        full = [x.tolist() for x in a.epoch(epoch)]
        for start in range(a.steps_per_epoch + 1):
            fresh = BalancedBatches(labels, 4, seed=5, fetch=lambda i: i)
            assert [x.tolist() for x in fresh.epoch(epoch, start)] == full[start:]
    first = next(iter(a.epoch(0)))
    assert first.dtype == torch.int64 and first.ndim == 1


def test_balanced_batches_shards_hold_both_classes():
    labels = _labels(10, 16, seed=1)
    b = BalancedBatches(labels, 8, seed=0, fetch=lambda i: i)
    for world in (2, 4):
        for epoch in _epochs(b, 3):
            for batch in epoch:
                shards = [batch[shard_slice(8, DistContext(rank=r, world_size=world))] for r in range(world)]
                assert [i for s in shards for i in s] == batch  # contiguous parts, in order
                for s in shards:
                    assert int(labels[s].sum()) == len(s) // 2  # even shards: exactly balanced
    orders = {tuple(labels[batch].tolist()) for epoch in _epochs(b, 3) for batch in epoch}
    assert len(orders) > 1  # the class order inside a batch is shuffled too


def test_balanced_batches_errors_and_params(params_of, run_of):
    with pytest.raises(ValueError, match="need >= 2 abnormal and >= 2 normal training clips; got 1 abnormal"):
        BalancedBatches(_labels(1, 10), 4, 0, lambda i: i)
    with pytest.raises(ValueError, match="even batch_size"):
        BalancedBatches(_labels(5, 5), 3, 0, lambda i: i)
    with pytest.raises(ValueError, match="balanced batches need an even batch_size"):
        run_of("full", **{**CFG, "batch_size": 5})
    assert run_of("full", **{**CFG, "batch_size": 5, "batching": "random"}).batch_size == 5
    with pytest.raises(ValueError, match="batching"):
        run_of("full", **{**CFG, "batching": "stratified"})
    with pytest.raises(ValueError, match="select_on"):
        run_of("full", **{**CFG, "select_on": "val_ap"})
    raw = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    assert raw["tune"]["batching"] in ("balanced", "pairs")
    raw["tune"]["batch_size"] = 7
    with pytest.raises(ParamsError, match=r"tune\.batching: .*even batch_size"):
        parse_params(raw)
    raw = yaml.safe_load(PARAMS_YAML.read_text(encoding="utf-8"))
    # one run's own batch_size: checked with the shared batching, naming the run
    raw["runs"]["stage1"]["batch_size"] = 7
    with pytest.raises(ParamsError, match=r"runs\.stage1 with tune applied: batching: .*even batch_size"):
        parse_params(raw)
    raw["runs"]["stage1"]["batching"] = "random"
    p = parse_params(raw)
    s1, full = (run_settings(p.tune, p.runs[r], p.backbone.arch) for r in ("stage1", "full"))
    assert (s1.batch_size, s1.batching, full.batch_size, full.batching, full.select_on) == (
        7, "random", raw["tune"]["batch_size"], raw["tune"]["batching"], raw["tune"]["select_on"])  # that run only
    # no value in the code: a batching or select_on left out is an error naming the key (not a silent default)
    for key in ("batching", "select_on"):
        del raw["tune"][key]
        with pytest.raises(ParamsError, match=rf"tune\.{key}: Field required"):
            parse_params(raw)
        raw["tune"][key] = getattr(p.tune, key)


def test_tune_balanced_batches_and_random_batches(world, monkeypatch, caplog, run_of):
    from alertclip.tune import run as tune_mod

    cfg = run_of("stage1", **{**CFG, "epochs": 1})
    data = load_clip_set(world)
    seen = []
    real = tune_mod.make_batch

    def spy(d, idx, model, tokens):
        seen.append(d.abnormal[np.asarray(idx)].tolist())
        return real(d, idx, model, tokens)

    monkeypatch.setattr(tune_mod, "make_batch", spy)
    with caplog.at_level("WARNING", logger="alertclip.tune"):  # no prompts: selected on the val loss, with a warning
        _, result, metrics = tune(cfg, world, snippet_len=SNIPPET_LEN, name="stage1")
    assert "selecting the epoch on the validation loss" in caplog.text
    assert metrics["selected_on"] == "val_loss" and "no validation prompts" in metrics["select_fallback"]
    assert metrics["batching"] == "pairs" and result.step == 2  # 4 abnormal / 5 normal train clips: 4 // 2
    assert all(sum(b) == 2 for b in seen[:result.step])  # the training batches come first, validation chunks after
    _, result, metrics = tune(cfg.model_copy(update={"batching": "random"}), world, snippet_len=SNIPPET_LEN, name="stage1")
    assert metrics["batching"] == "random" and result.step == 9 // 4
    assert metrics["n_train_abnormal"] + metrics["n_val_abnormal"] == int(data.abnormal.sum())
    with pytest.raises(ValueError, match="need >= 3 abnormal and >= 3 normal"):
        tune(cfg.model_copy(update={"batch_size": 6, "val_fraction": 0.5}), world, snippet_len=SNIPPET_LEN,
             name="stage1")  # 2 abnormal train clips


# ------------------------------------------------------------------------------------------ epoch selection


def _run_epoch(kept: BestEpoch, epoch: int) -> None:
    """The train loop's callback calls around one whole epoch (alertclip.train.loop.train)."""
    kept.epoch_start(epoch, 0)
    kept.epoch_end(epoch)


def _select(vals: list[dict | None], select_on: str, state_path=None):
    """Run BestEpoch over len(vals) epochs; the model's weight holds the epoch number when validated."""
    model = torch.nn.Linear(1, 1, bias=False)
    it = iter(vals)
    kept = BestEpoch(lambda: next(it), model, state_path, select_on=select_on)
    for e in range(len(vals)):
        with torch.no_grad():
            model.weight.fill_(float(e))
        _run_epoch(kept, e)
    return kept


V = [{"total": 3.0, "auc": 0.55}, {"total": 2.0, "auc": 0.70}, {"total": 1.5, "auc": 0.70}, {"total": 1.0, "auc": 0.60}]


def test_selection_on_val_auc_with_total_tie_break():
    b = _select(V, "val_auc")
    assert (b.best.epoch, b.best.auc, b.best.total) == (2, 0.70, 1.5)  # AUC tie between 1 and 2: the lower total
    assert float(b.best.state["weight"]) == 2.0
    assert sorted(b.records) == [0, 1, 2, 3] and b.records[3] == V[3]
    b = _select(V, "val_loss")
    assert (b.best.epoch, b.best.total) == (3, 1.0)
    b = _select([{"total": 1.0, "auc": 0.7}, {"total": 1.0, "auc": 0.7}], "val_auc")
    assert b.best.epoch == 0  # a full tie keeps the earlier epoch
    b = _select([{"total": 1.0, "auc": float("nan")}, {"total": 2.0, "auc": 0.4}, None], "val_auc")
    assert b.best.epoch == 1 and b.records[2] == {}  # NaN AUC ranks lowest; no val result (None) never wins


def test_selection_state_survives_resume(tmp_path):
    path = tmp_path / VAL_STATE
    first = _select(V[:2], "val_auc", path)
    assert path.exists() and first.best.epoch == 1
    model = torch.nn.Linear(1, 1, bias=False)
    later = iter(V[2:])
    resumed = BestEpoch(lambda: next(later), model, path, select_on="val_auc")
    assert (resumed.best.epoch, resumed.best.auc, resumed.best.total) == (1, 0.70, 2.0)
    for e in (2, 3):
        with torch.no_grad():
            model.weight.fill_(float(e))
        _run_epoch(resumed, e)
    assert resumed.best.epoch == 2 and float(resumed.best.state["weight"]) == 2.0


def test_val_prompts_and_digest(params_of, run_of, staged, world, tmp_path):
    assert PROMPTS.texts("abnormal") == ["a video where a fight breaks out", "a video where someone falls"]
    with pytest.raises(ValueError, match="slot"):
        params_of("eval.prompts", template="no slot")
    cfg = run_of("stage1")
    assert config_digest(cfg, []) == config_digest(run_of("stage1"), [])  # a pure function of the settings
    assert config_digest(cfg, []) != config_digest(cfg, [], PROMPTS)  # prompts pick the epoch
    assert config_digest(cfg, [], PROMPTS) != config_digest(cfg, [], PROMPTS, SNIPPET_LEN)
    # what tells two settings' resume directories (cache/tune/<run>/<digest>) apart: the losses and init included
    full = run_of("full")
    digests = {config_digest(c, []) for c in (cfg, full, run_of("no_hard"), run_of("joint"), run_of("standard_neg"),
                                              run_of("stage1", epochs=full.epochs), run_of("full", lr=full.lr / 3))}
    assert len(digests) == 7
    assert config_digest(full, []) != config_digest(full.model_copy(update={"init": BACKBONE_INIT}), [])  # init only
    assert config_digest(full, []) != config_digest(full.model_copy(update={"lambda_hard": 0.0}), [])  # losses only
    # and the contents of their input files, the model each starts from included: a retrained stage1 gives full a new
    # resume directory
    files = world.inputs(full)
    start = world.models_dir / "stage1" / CHECKPOINT_FILE
    assert start in files and world.backbone not in files
    retrained = tmp_path / CHECKPOINT_FILE
    retrained.write_bytes(start.read_bytes())
    swapped = [retrained if f == start else f for f in files]
    assert config_digest(full, swapped) == config_digest(full, files)  # the bytes count, not the path
    retrained.write_bytes(start.read_bytes() + b"\0")
    assert config_digest(full, swapped) != config_digest(full, files)


def test_zero_shot_scores_mean_over_real_frames_and_auc(world, run_of):
    data = load_clip_set(world)
    model, tok = build_model(run_of("full", **CFG), world.backbone)
    prompts = PROMPTS
    t_a, t_n = prompt_vectors(model, tok, prompts)
    assert np.linalg.norm(t_a) == pytest.approx(1.0) and np.linalg.norm(t_n) == pytest.approx(1.0)
    scores = zero_shot_clip_scores(model, data, t_a, t_n, batch_size=3)
    i = data.keys.index("c03")  # 2 real frames of 4
    with torch.no_grad():
        model.eval()
        x = images_to_tensor(data.frames[i, :2], model.clip)
        f = torch.nn.functional.normalize(model.clip.encode_image(x).double(), dim=-1).numpy()
    want = float(np.mean(f @ t_a - f @ t_n))
    assert scores[i] == pytest.approx(want, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(zero_shot_clip_scores(model, data, t_a, t_n, batch_size=5), scores, rtol=1e-5, atol=1e-7)
    from sklearn.metrics import roc_auc_score

    assert val_auc(model, data, tok, prompts, 3) == roc_auc_score(data.abnormal.astype(int), scores)
    with pytest.raises(ValueError, match="needs abnormal and normal clips"):
        val_auc(model, data.subset(np.flatnonzero(data.abnormal)), tok, prompts, 4)


def test_stage_metrics_record_selection(staged, world, tmp_path, caplog, run_of):
    _, m1, m2 = staged
    for m in (m1, m2):  # seed 0: both validation clips are abnormal -> the val loss decides, recorded
        assert m["selected_on"] == "val_loss" and "2 abnormal and 0 normal" in m["select_fallback"]
        assert m["best_val_auc"] is None and m["best_val_total"] == min(r["total"] for r in m["val"])
        assert all("auc" not in r for r in m["val"])
    cfg = run_of("stage1", **{**CFG, "seed": 1, "select_on": "val_auc"})  # validation v04 (abnormal), v07, v09 (normal)
    with caplog.at_level("WARNING", logger="alertclip.tune"):
        m = run_stage(cfg, "stage1", False, world, tmp_path / "m", tmp_path / "r", tmp_path / "c", prompts=PROMPTS,
                      snippet_len=SNIPPET_LEN)
    assert "select_on=val_auc" not in caplog.text
    assert m["selected_on"] == "val_auc" and "select_fallback" not in m
    assert [r["epoch"] for r in m["val"]] == [0, 1] and all(0.0 <= r["auc"] <= 1.0 for r in m["val"])
    best = max(m["val"], key=lambda r: (r["auc"], -r["total"]))
    assert m["best_epoch"] == best["epoch"] and m["best_val_auc"] == best["auc"] and m["best_val_total"] == best["total"]


def test_selection_on_the_validation_videos_snippets(world, tmp_path, run_of):
    from alertclip.heldout import load_snippet_set, snippet_auc

    cfg = run_of("stage1", **{**CFG, "seed": 1, "select_on": "val_video_auc"})  # validation v04 (abnormal), v07, v09 (normal)
    m = run_stage(cfg, "stage1", False, world, tmp_path / "m", tmp_path / "r", tmp_path / "c", prompts=PROMPTS,
                  snippet_len=SNIPPET_LEN)
    assert m["selected_on"] == "val_video_auc" and "select_fallback" not in m
    assert all(0.0 <= r["auc"] <= 1.0 and 0.0 <= r["clip_auc"] <= 1.0 for r in m["val"])
    best = max(m["val"], key=lambda r: (r["auc"], -r["total"]))
    assert m["best_epoch"] == best["epoch"] and m["best_val_auc"] == best["auc"]
    # the recorded AUC is the kept weights' snippet AUC over v04, v07, v09 (9 snippets, v04's first two abnormal)
    snippets = load_snippet_set(world.clips, world.frames_dir, {"v04.mp4", "v07.mp4", "v09.mp4"}, set(), snippet_len=SNIPPET_LEN)
    assert snippets.abnormal.tolist() == [True, True, False] + [False] * 6
    model, tok = load_tuned(tmp_path / "m" / "stage1")
    t_a, t_n = prompt_vectors(model, tok, PROMPTS)
    assert snippet_auc(model.clip, snippets, t_a, t_n) == pytest.approx(m["best_val_auc"], abs=1e-9)


def test_pairs_batching_puts_each_abnormal_clip_beside_its_own_videos_lookalike():
    from alertclip.tune.data import lookalike_partners

    # 6 abnormal videos, each with one abnormal clip and one normal look-alike clip; 10 normal videos with 2 clips
    videos = [f"A{i}" for i in range(6)] * 2 + [f"N{i}" for i in range(10)] * 2
    abnormal = np.array([True] * 6 + [False] * 6 + [False] * 20)
    data = SimpleNamespace(videos=videos, abnormal=abnormal)
    partner = lookalike_partners(data)
    assert [videos[j] for j in partner[:6]] == videos[:6] and (partner[6:] == -1).all()
    b = BalancedBatches(abnormal, 4, seed=1, fetch=lambda i: i, partner=partner)
    plain = BalancedBatches(abnormal, 4, seed=1, fetch=lambda i: i)
    for e in range(3):
        for batch, batch_plain in zip(b.epoch(e), plain.epoch(e)):
            idx = batch.tolist()
            assert sum(abnormal[idx]) == 2
            for i in idx:
                if abnormal[i]:  # its look-alike is in the same batch
                    assert partner[i] in idx
            assert sorted(i for i in idx if abnormal[i]) == sorted(i for i in batch_plain.tolist() if abnormal[i])
    # without partners the normal half comes from the stream: some batch lacks the look-alike
    assert any(partner[i] not in batch.tolist() for e in range(3) for batch in plain.epoch(e)
               for i in batch.tolist() if abnormal[i])
