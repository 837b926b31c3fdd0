"""Model part of Alert-CLIP tuning: config registration, plain-OpenCLIP checkpoints, temporal transformer, regions.

All on CPU with the tiny config (random init, nothing downloaded), batch 2, T 4.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import open_clip
import pytest
import torch
from open_clip import factory as oc_factory

from alertclip.factory import CONFIG_DIR, create, register_configs, save_checkpoint
from alertclip.model import AlertClipModel, RegionPooler, TemporalTransformer, frame_tokens

ARCH = "alertclip-tiny"
B, T, D = 2, 4, 128


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, _, _, tokenizer = create(ARCH)
    return model.eval(), tokenizer


@pytest.fixture()
def amodel(tiny):
    torch.manual_seed(1)
    clip, _ = tiny
    temporal = TemporalTransformer(D, layers=2, heads=2, max_t=8)
    # the residual branch starts at zero (see TemporalTransformer); make it live so masking bugs would show
    torch.nn.init.normal_(temporal.out_proj.weight, std=0.2)
    return AlertClipModel(clip, temporal).eval()


def _frames(seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, 3, 64, 64, generator=g)


def test_config_params_and_idempotent_registration():
    register_configs()
    register_configs()
    assert sum(1 for p in oc_factory._MODEL_CONFIG_PATHS if str(p) == str(CONFIG_DIR)) == 1
    assert ARCH in open_clip.list_models()
    cfg = json.loads((CONFIG_DIR / f"{ARCH}.json").read_text())
    assert cfg["embed_dim"] == D and cfg["text_cfg"]["vocab_size"] == 49408
    model = open_clip.create_model(ARCH)
    n = sum(p.numel() for p in model.parameters())
    assert 7.5e6 < n < 8.1e6, n
    assert model.visual.transformer.resblocks[0].attn.num_heads == 2  # heads = width / 64


def test_plain_openclip_round_trip(tiny, tmp_path):
    clip, tokenizer = tiny
    ckpt = save_checkpoint(clip, tmp_path / "ck" / "tuned.pt")
    assert not [p for p in ckpt.parent.iterdir() if p.name != "tuned.pt"], "temp file left behind"
    loaded = torch.load(ckpt, weights_only=True)
    assert set(loaded) == {"state_dict", "arch"} and loaded["arch"] == ARCH
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    tokens = tokenizer(["a man falls down", "a quiet street", "fire"])
    torch.save({"images": images, "tokens": tokens}, tmp_path / "inputs.pt")
    with torch.no_grad():
        want_img, want_txt = clip.encode_image(images), clip.encode_text(tokens)
    # A fresh interpreter that imports open_clip only: registration of the config dir, then the stock loader.
    script = textwrap.dedent(f"""
        import open_clip, torch
        open_clip.add_model_config({str(CONFIG_DIR)!r})
        model, _, _ = open_clip.create_model_and_transforms({ARCH!r}, pretrained={str(ckpt)!r}, weights_only=True)
        model.eval()
        x = torch.load({str(tmp_path / "inputs.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = {{"img": model.encode_image(x["images"]), "txt": model.encode_text(x["tokens"])}}
        torch.save(out, {str(tmp_path / "out.pt")!r})
        import sys
        assert not any(m.startswith("alertclip") for m in sys.modules), "project code was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    torch.testing.assert_close(got["img"], want_img, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["txt"], want_txt, atol=1e-6, rtol=0)
    # and through the project factory as well
    again, _, _, _ = create(ARCH, pretrained=ckpt)
    with torch.no_grad():
        torch.testing.assert_close(again.eval().encode_image(images), want_img, atol=1e-6, rtol=0)


def test_wrong_arch_checkpoint_names_both(tmp_path):
    cfg = json.loads((CONFIG_DIR / f"{ARCH}.json").read_text())
    cfg["vision_cfg"]["width"] = 64
    other = tmp_path / "alertclip-test-narrow.json"
    other.write_text(json.dumps(cfg))
    assert register_configs(other) == ["alertclip-test-narrow"]
    model, _, _, _ = create("alertclip-test-narrow")
    ckpt = save_checkpoint(model, tmp_path / "narrow.pt")
    with pytest.raises(ValueError) as err:
        create(ARCH, pretrained=ckpt)
    msg = str(err.value)
    assert f"checkpoint {ckpt} does not match {ARCH}" in msg
    assert "alertclip-test-narrow" in msg


def test_temporal_padding_equals_unpadded():
    torch.manual_seed(4)
    tt = TemporalTransformer(D, layers=2, heads=2, max_t=8).eval()
    torch.nn.init.normal_(tt.out_proj.weight, std=0.2)
    x = torch.randn(B, T, D)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    x_garbage = x.clone()
    x_garbage[1, 2] = 1e3 * torch.randn(D)  # whatever sits in padded slots must not matter
    x_garbage[1, 3] = float("nan")
    with torch.no_grad():
        full = tt(x_garbage, mask)
        short = tt(x[1:, :2])
        assert not torch.allclose(full[1], tt(x_garbage[1:])[0], atol=1e-3)  # the mask does something
        torch.testing.assert_close(full[1], short[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(full[0], tt(x[:1])[0], atol=1e-5, rtol=0)
        empty = tt(x, torch.zeros(B, T, dtype=torch.bool))
    assert torch.isfinite(empty).all()
    with pytest.raises(ValueError):
        tt(torch.randn(1, 9, D))


def test_temporal_starts_at_mean_of_frames():
    tt = TemporalTransformer(D, layers=1, heads=2, max_t=4)
    x = torch.randn(B, T, D)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)
    want = torch.nn.functional.normalize(torch.stack([x[0].mean(0), x[1, [0, 2]].mean(0)]), dim=-1)
    torch.testing.assert_close(tt(x, mask), want, atol=1e-6, rtol=0)


def test_output_norms_are_one(amodel, tiny):
    _, tokenizer = tiny
    frames = _frames()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    boxes = torch.tensor([0.1, 0.2, 0.6, 0.9]).expand(B, T, 4).clone()
    with torch.no_grad():
        v = amodel.encode_video(frames, mask)
        r, idx = amodel.encode_regions(frames, boxes, mask)
        t = amodel.encode_text(tokenizer(["a", "an explosion in a parking lot"]))
        v2, r2, idx2 = amodel.encode_video_and_regions(frames, boxes, mask)
    assert v.shape == (B, D) and r.shape == (B, D) and t.shape == (2, D)
    for e in (v, r, t):
        torch.testing.assert_close(e.norm(dim=-1), torch.ones(len(e)), atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, v, atol=1e-6, rtol=0)
    torch.testing.assert_close(r2, r, atol=1e-6, rtol=0)
    assert idx.tolist() == idx2.tolist() == [0, 1]


def test_frame_tokens_match_visual_forward(tiny):
    clip, _ = tiny
    images = _frames()[0]
    with torch.no_grad():
        cls, grid = frame_tokens(clip.visual, images)
        torch.testing.assert_close(cls, clip.visual(images), atol=1e-6, rtol=0)
    assert grid.shape == (T, 128, 8, 8)


def test_region_pooling_whole_frame_and_quadrant(tiny):
    # With aligned=True and output 2x2 on the 8x8 grid, roi_align's adaptive sampling hits patch centres
    # exactly, so a whole-frame box is the mean of all patches (and a quadrant the mean of its 4x4 patches):
    # equal up to float summation order, tolerance 1e-5.
    clip, _ = tiny
    pooler = RegionPooler(clip.visual)
    with torch.no_grad():
        _, grid = frame_tokens(clip.visual, _frames()[0])

        def head(x):
            return clip.visual.ln_post(x) @ clip.visual.proj

        whole = pooler(grid, torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(T, 4))
        torch.testing.assert_close(whole, head(grid.mean(dim=(2, 3))), atol=1e-5, rtol=0)
        quad = pooler(grid, torch.tensor([[0.0, 0.0, 0.5, 0.5]]).expand(T, 4))
        torch.testing.assert_close(quad, head(grid[:, :, :4, :4].mean(dim=(2, 3))), atol=1e-5, rtol=0)
        right = pooler(grid, torch.tensor([[0.5, 0.0, 1.0, 0.5]]).expand(T, 4))
        torch.testing.assert_close(right, head(grid[:, :, :4, 4:].mean(dim=(2, 3))), atol=1e-5, rtol=0)
        assert not torch.allclose(quad, whole, atol=1e-3)


def test_degenerate_boxes_do_not_crash(tiny):
    clip, _ = tiny
    pooler = RegionPooler(clip.visual)
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.9, 0.8, 0.1, 0.2], [1.2, 1.3, 1.5, 1.9], [0.0, 0.0, 0.0, 1.0]])
    with torch.no_grad():
        _, grid = frame_tokens(clip.visual, _frames()[0])
        out = pooler(grid, boxes)
    assert out.shape == (T, D) and torch.isfinite(out).all()
    assert out.abs().sum(-1).gt(0).all()


def test_nan_boxes_give_no_region(amodel):
    frames = _frames()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    boxes = torch.full((B, T, 4), float("nan"))
    with torch.no_grad():
        r, idx = amodel.encode_regions(frames, boxes, mask)
        assert r.shape == (0, D) and idx.shape == (0,)
        boxes[1, 3] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # shown only on a padded frame: still no region
        r, idx = amodel.encode_regions(frames, boxes, mask)
        assert r.shape == (0, D)
        boxes[1, 1] = torch.tensor([0.2, 0.2, 0.7, 0.7])
        boxes[1, 2, 0] = float("nan")  # a partly-NaN box counts as no box
        r, idx = amodel.encode_regions(frames, boxes, mask)
        assert r.shape == (1, D) and idx.tolist() == [1]
        # the track uses only frame 1 of clip 1: other frames' content must not matter
        other = frames.clone()
        other[1, [0, 2]] = torch.randn(2, 3, 64, 64)
        other[0] = torch.randn(T, 3, 64, 64)
        r_other, _ = amodel.encode_regions(other, boxes, mask)
        torch.testing.assert_close(r_other, r, atol=1e-5, rtol=0)
        # ... but frame 1's does
        other[1, 1] = torch.randn(3, 64, 64)
        assert not torch.allclose(amodel.encode_regions(other, boxes, mask)[0], r, atol=1e-3)


def test_set_trainable_counts(amodel):
    v, c = amodel.clip.visual, amodel.clip

    def count(mods):
        return sum(p.numel() for m in mods for p in ([m] if isinstance(m, torch.nn.Parameter) else m.parameters()))

    n_temporal = count([amodel.temporal])
    assert amodel.set_trainable("visual", "all") == count([v])
    assert amodel.set_trainable("visual", "frozen") == 0
    assert all(not p.requires_grad for p in v.parameters())
    want = count([v.transformer.resblocks[-1], v.ln_post, v.proj])
    assert amodel.set_trainable("visual", "last_n", 1) == want
    assert not v.transformer.resblocks[-2].mlp.c_fc.weight.requires_grad
    assert amodel.set_trainable("visual", "last_n", 0) == count([v.ln_post, v.proj])
    text_all = count([c.token_embedding, c.transformer, c.ln_final, c.positional_embedding, c.text_projection])
    assert amodel.set_trainable("text", "all") == text_all
    assert amodel.set_trainable("text", "last_n", 2) == count(
        [c.transformer.resblocks[-1], c.transformer.resblocks[-2], c.ln_final, c.text_projection])
    assert not c.token_embedding.weight.requires_grad
    assert sum(p.numel() for p in amodel.temporal.parameters() if p.requires_grad) == n_temporal
    with pytest.raises(ValueError):
        amodel.set_trainable("visual", "last_n", 5)
    with pytest.raises(ValueError):
        amodel.set_trainable("audio", "all")
    amodel.set_trainable("visual", "all")
    amodel.set_trainable("text", "all")


def test_gradients_reach_temporal_and_last_visual_block(amodel, tiny):
    _, tokenizer = tiny
    amodel.zero_grad(set_to_none=True)
    amodel.set_trainable("visual", "last_n", 1)
    amodel.set_trainable("text", "frozen")
    try:
        frames = _frames()
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
        boxes = torch.tensor([0.1, 0.1, 0.5, 0.8]).expand(B, T, 4).clone()
        v, r, _ = amodel.encode_video_and_regions(frames, boxes, mask)
        t = amodel.encode_text(tokenizer(["a", "b"]))
        loss = -(v * t).sum() - (r * t).sum()
        loss.backward()
        for name, p in amodel.temporal.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        last = amodel.clip.visual.transformer.resblocks[-1]
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in last.parameters())
        assert amodel.clip.visual.proj.grad.abs().sum() > 0
        assert amodel.clip.visual.transformer.resblocks[0].attn.in_proj_weight.grad is None
        assert amodel.clip.token_embedding.weight.grad is None
    finally:
        amodel.zero_grad(set_to_none=True)
        amodel.set_trainable("visual", "all")
        amodel.set_trainable("text", "all")
