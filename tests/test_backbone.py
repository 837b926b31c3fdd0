"""Backbone pre-training on a tiny synthetic set: loss goes down, plain OpenCLIP checkpoint, determinism, offline fetch."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from repo_params import repo_params

from alertclip import factory
from alertclip.backbone import (
    PretrainedUnavailable,
    fetch_pretrained,
    images_to_tensor,
    pretrain,
)
from alertclip.data.pretrain import load_pretrain_set
from alertclip.io import sha256_file
from alertclip.params import REAL_INPUTS
from alertclip.stages import backbone as stage

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
CFG = dict(arch="alertclip-tiny", epochs=3, batch_size=8, lr=2e-3, warmup_steps=2, weight_decay=0.05, grad_clip=1.0,
           seed=4, checkpoint_every=5)


def _write_set(root: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    images = np.empty((n, 64, 64, 3), np.uint8)
    captions = []
    names = list(COLOURS)
    for i in range(n):
        name = names[i % len(names)]
        img = np.full((64, 64, 3), 90, np.float32) + rng.normal(0, 12, (64, 64, 3))
        y, x = rng.integers(0, 32, 2)
        img[y:y + 32, x:x + 32] = COLOURS[name]
        images[i] = img.clip(0, 255).astype(np.uint8)
        captions.append(f"a grey scene with a {name} square")
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "images.npy", images)
    pl.DataFrame({"row": np.arange(n), "video": [f"v{i // 4}" for i in range(n)],
                  "split": ["heldout" if i >= 32 else "train" for i in range(n)], "caption": captions}
                 ).write_parquet(root / "captions.parquet")


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory, params_of):
    root = tmp_path_factory.mktemp("backbone_stage")
    _write_set(root / stage.PRETRAIN_DIR)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        stage.run(SimpleNamespace(backbone=params_of("backbone", **CFG), data=params_of("data")), progress=False)
    return root


def test_stage_pretrains_and_writes_plain_openclip_checkpoint(stage_run):
    import open_clip

    root = stage_run
    metrics = json.loads((root / "results/backbone/metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["source"] == "synthetic"
    assert metrics["final_loss"] < metrics["first_loss"]
    assert 0.0 <= metrics["heldout_i2t_r1"] <= 1.0 and metrics["heldout_n_captions"] == 4
    curve = pl.read_csv(root / "results/backbone/curve.csv")
    assert curve["step"].to_list() == list(range(1, 13)) and {"loss", "lr", "epoch"} <= set(curve.columns)
    assert curve.filter(pl.col("epoch") == 2)["loss"].mean() < curve.filter(pl.col("epoch") == 0)["loss"].mean()

    model_dir = root / stage.MODEL_DIR
    ckpt = model_dir / "open_clip_model.pt"
    record = json.loads((model_dir / "weights.json").read_text())
    assert record["sha256"] == sha256_file(ckpt) == metrics["sha256"]
    assert json.loads((model_dir / "config.json").read_text())["vision_cfg"]["image_size"] == 64
    assert not any((root / stage.CACHE_DIR).glob("*/last.pt"))  # resume checkpoint removed after success

    factory.register_configs()
    model, _, preprocess = open_clip.create_model_and_transforms("alertclip-tiny", pretrained=str(ckpt))
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    # the array preprocessing equals open_clip's val transform on 64 px images
    from PIL import Image

    img = np.load(root / stage.PRETRAIN_DIR / "images.npy")[:2]
    ref = torch.stack([preprocess(Image.fromarray(a)) for a in img])
    torch.testing.assert_close(images_to_tensor(img, model), ref, rtol=0, atol=1e-5)


def test_pretraining_is_deterministic(stage_run, params_of):
    data = load_pretrain_set(stage_run / stage.PRETRAIN_DIR)
    model, _, result, _ = pretrain(data, params_of("backbone", **CFG))
    assert result.step == 12
    saved = torch.load(stage_run / stage.MODEL_DIR / "open_clip_model.pt", weights_only=True)["state_dict"]
    state = model.state_dict()
    assert state.keys() == saved.keys()
    for k in saved:
        assert torch.equal(state[k], saved[k]), k


def test_config_rejects_unknown_keys(params_of):
    with pytest.raises(ValueError, match="epochz"):
        params_of("backbone", epochz=3)


def test_fetch_pretrained_fails_clearly_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailable, match="no pretrained tag"):
        fetch_pretrained("alertclip-tiny", "laion2b", cache_dir=tmp_path)
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailable, match=r"could not fetch open_clip weights RN50/openai"):
        fetch_pretrained("RN50", "openai", cache_dir=tmp_path, timeout_s=5)
    assert time.monotonic() - start < 30


REAL = repo_params("data", source="ucf_vagta", world={}, inputs=REAL_INPUTS)  # params.yaml's ucf_vagta source


def test_random_init_is_a_seeded_stock_architecture(tmp_path, monkeypatch, params_of):
    """backbone.pretrained: random, for real-profile smoke runs: no pre-training set read, same seed same bytes."""
    monkeypatch.chdir(tmp_path)
    cfg = params_of("backbone", arch="ViT-S-32-alt-px64", pretrained="random", seed=3)
    shas = []
    for _ in range(2):
        stage.run(SimpleNamespace(backbone=cfg, data=REAL), progress=False)
        shas.append(sha256_file(tmp_path / stage.MODEL_DIR / "open_clip_model.pt"))
    assert shas[0] == shas[1]
    record = json.loads((tmp_path / stage.MODEL_DIR / "weights.json").read_text())
    assert record["arch"] == "ViT-S-32-alt-px64" and record["source"] == {"kind": "random_init", "seed": 3}
    assert json.loads((tmp_path / stage.MODEL_DIR / "config.json").read_text())["vision_cfg"]["image_size"] == 64
    assert not (tmp_path / "data" / "synth").exists()
    stage.run(SimpleNamespace(backbone=cfg.model_copy(update={"seed": 4}), data=REAL), progress=False)
    assert sha256_file(tmp_path / stage.MODEL_DIR / "open_clip_model.pt") != shas[0]


def test_real_source_without_weights_says_which_param(tmp_path, monkeypatch, params_of):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"backbone.pretrained: data.source ucf_vagta has no pre-training set"):
        stage.run(SimpleNamespace(backbone=params_of("backbone"), data=REAL), progress=False)
