"""VadCLIP evaluation head: length handling, model pieces, losses vs hand computations, text prompts vs open_clip,
frozen CLIP, determinism, validation selection and a small learning check on synthetic features."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from repo_params import repo_params

from alertclip.eval.vadclip import (
    VadClipHead,
    bce_loss,
    distance_adjacency,
    make_head,
    merge_split,
    mil_align_loss,
    process_feat,
    process_split,
    roc_auc,
    score_videos,
    sep_loss,
    sep_weight,
    similarity_adjacency,
    topk_mean,
    train_vadclip,
    video_scores,
    window_mask,
)
from alertclip.params import VadClipParams

D = 128
CLASSES = ["normal", "fighting", "explosion", "theft"]
SMALL = repo_params("eval_weakly.vadclip", visual_length=16, batch_per_class=4, epochs=1, iters_per_epoch=2, lr=1e-3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine, 2 threads under load are 10x slower; results are the same."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _world(seed: int, n_normal: int, n_per_class: int, t_range=(20, 41), shift=5.0):
    """Normal videos: noise + a per-video offset. Abnormal: a contiguous segment shifted along a fixed anomaly
    direction and a class direction. Returns feats, labels, segments (None for normal)."""
    rng = np.random.default_rng(seed)
    dirs = np.random.default_rng(123).normal(size=(len(CLASSES), D))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    feats, labels, segs = [], [], []
    for c in [0] * n_normal + list(range(1, len(CLASSES))) * n_per_class:
        t = int(rng.integers(*t_range))
        x = rng.normal(size=(t, D)) + 0.5 * rng.normal(size=D)
        seg = None
        if c:
            n = int(rng.integers(t // 4, t // 2 + 1))
            s = int(rng.integers(0, t - n + 1))
            seg = (s, s + n)
            x[s:s + n] += shift * (dirs[0] + dirs[c])
        feats.append(x.astype(np.float32))
        labels.append(CLASSES[c])
        segs.append(seg)
    return feats, labels, segs


# --------------------------------------------------------------------------------------------------------------------
# Config and length handling


def test_config_is_vadclip_ucf_where_not_scaled_and_overridable(params_of):
    """params.yaml's eval_weakly.vadclip (the only source of values: the model has no defaults)."""
    cfg = params_of("eval_weakly.vadclip")
    assert (cfg.visual_length, cfg.layers, cfg.heads, cfg.window) == (64, 2, 1, 8)  # visual_length scaled (VadCLIP 256)
    assert (cfg.sim_threshold, cfg.prompt_prefix, cfg.prompt_postfix) == (0.7, 10, 10)
    assert (cfg.lr, cfg.weight_decay, cfg.lr_gamma, tuple(cfg.milestones)) == (2e-4, 0.01, 0.1, (6, 12))
    assert (cfg.epochs, cfg.batch_per_class, cfg.iters_per_epoch, cfg.mask_padding) == (15, 16, 0, False)
    assert (cfg.temperature, cfg.topk_div, cfg.gcn_dim, cfg.eval_every, cfg.reload_best_each_epoch) == \
        (0.07, 16, None, 0, True)
    assert sep_weight(cfg, 14) == pytest.approx(0.1 / 13)
    with pytest.raises(Exception):
        cfg.lr = 1.0  # frozen
    assert params_of("eval_weakly.vadclip", visual_length=32, batch_per_class=8).visual_length == 32
    with pytest.raises(ValueError, match="visual_length"):
        params_of("eval_weakly.vadclip", visual_length=4)
    # no setting falls back on a value in the code: leaving one out is an error naming it
    for key in ("visual_length", "sep_per_class", "mask_padding"):
        with pytest.raises(ValueError, match=rf"{key}\n +Field required"):
            VadClipParams.model_validate({k: v for k, v in cfg.model_dump().items() if k != key})


def test_process_feat_pad_equal_and_mean_pool():
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    out, n = process_feat(x, 8)  # T < L: zero-pad
    assert out.shape == (8, 2) and n == 5 and np.array_equal(out[:5], x) and not out[5:].any()
    out, n = process_feat(x, 5)  # T == L: unchanged
    assert n == 5 and np.array_equal(out, x)
    out, n = process_feat(x, 2)  # r = int32(linspace(0, 5, 3)) = [0, 2, 5]
    assert n == 2
    assert np.allclose(out, [x[0:2].mean(0), x[2:5].mean(0)])
    y = np.arange(7, dtype=np.float32)[:, None]
    out, n = process_feat(y, 3)  # r = [0, 2, 4, 7]
    assert n == 3 and np.allclose(out[:, 0], [0.5, 2.5, 5.0])


def test_process_split_chunks_lengths_and_inverse():
    x = np.arange(1, 8, dtype=np.float32)[:, None]  # T = 7
    ch, ln = process_split(x, 4)  # T > L: 2 chunks, last padded
    assert ch.shape == (2, 4, 1) and ln.tolist() == [4, 3] and ch[1, 3, 0] == 0
    assert np.array_equal(merge_split(ch, 7), x)
    ch, ln = process_split(x[:3], 4)  # T < L: one padded chunk
    assert ch.shape == (1, 4, 1) and ln.tolist() == [3]
    ch, ln = process_split(x[:4], 4)  # T == L: the original's extra all-zero chunk
    assert ch.shape == (2, 4, 1) and ln.tolist() == [4, 0] and not ch[1].any()
    z = np.ones((8, 3), dtype=np.float32)  # T % L == 0, T = 2L: 3 chunks
    ch, ln = process_split(z, 4)
    assert ch.shape == (3, 4, 3) and ln.tolist() == [4, 4, 0] and not ch[2].any()
    assert torch.equal(merge_split(torch.from_numpy(ch), 8), torch.from_numpy(z))


# --------------------------------------------------------------------------------------------------------------------
# Model pieces


def test_window_mask_is_block_diagonal():
    m = window_mask(10, 4)
    blocks = [range(0, 4), range(4, 8), range(8, 10)]
    for i in range(10):
        for j in range(10):
            same = any(i in b and j in b for b in blocks)
            assert (m[i, j] == 0) if same else torch.isinf(m[i, j]) and m[i, j] < 0


def test_distance_adjacency_hand():
    a = distance_adjacency(4)
    assert a[0, 0] == 1 and a[1, 3] == pytest.approx(math.exp(-2 / math.e))
    assert a[3, 0] == pytest.approx(math.exp(-3 / math.e)) and torch.equal(a, a.T)
    assert a.sum(1)[0] > 1  # not normalised


def test_similarity_adjacency_hand():
    # steps: [1,0], [1,1], [0.6,0.8] real; a padded step
    h = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.6, 0.8], [5.0, 5.0]]])
    a = similarity_adjacency(h, torch.tensor([3]), 0.7)
    c = 1 / math.sqrt(2)  # cos(h0,h1); cos(h0,h2) = 0.6 -> 0; cos(h1,h2) = 1.4/sqrt(2)
    c12 = 1.4 / math.sqrt(2)
    rows = [[1.0, c, 0.0], [c, 1.0, c12], [0.0, c12, 1.0]]
    want = torch.zeros(4, 4)
    for i, r in enumerate(rows):
        e = [math.exp(v) for v in r]  # the zeroed entry still gets exp(0)
        want[i, :3] = torch.tensor([v / sum(e) for v in e])
    assert torch.allclose(a[0], want, atol=1e-6)
    assert not a[0, 3].any() and not a[0, :, 3].any()
    z = similarity_adjacency(h, torch.tensor([0]), 0.7)  # a length-0 chunk: all zero, no NaN
    assert not z.any()


def _head(frozen_tiny_clip, **kw) -> VadClipHead:
    clip, tok = frozen_tiny_clip
    cfg = repo_params("eval_weakly.vadclip", **{**dict(visual_length=16, window=4), **kw})
    return make_head(CLASSES, clip, tok, D, cfg, seed=0)


def test_head_shapes_padding_and_masks(frozen_tiny_clip):
    clip, _ = frozen_tiny_clip
    head = _head(frozen_tiny_clip)
    x = torch.randn(3, 16, D)
    lengths = torch.tensor([16, 9, 3])
    l1, l2, text = head(x, lengths, clip)
    assert l1.shape == (3, 16) and l2.shape == (3, 16, 4) and text.shape == (4, D)
    assert head.attention_mask(lengths).shape == (16, 16)  # shared window mask: padding not masked
    x2 = x.clone()
    x2[2, 3:] += 3.0  # change padding of the short video
    with torch.no_grad():
        l1b, _, _ = head(x2, lengths, clip)
    assert not torch.allclose(l1[2, :3], l1b[2, :3])  # faithful quirk: padding leaks into real steps
    assert torch.allclose(l1[:2], l1b[:2])  # videos are independent
    masked = _head(frozen_tiny_clip, mask_padding=True)
    m = masked.attention_mask(lengths)
    assert m.shape == (3, 16, 16)
    assert torch.isinf(m[2, 0, 3]) and m[2, 0, 2] == 0  # padded key hidden inside the window
    assert m[2, 5, 5] == 0 and torch.isinf(m[2, 5, 4])  # all-padding window: self only
    l1m, l2m, _ = masked(x, lengths, clip)
    assert torch.isfinite(l1m).all() and torch.isfinite(l2m).all()


def test_forward_visual_prompt_uses_raw_logits(frozen_tiny_clip):
    clip, _ = frozen_tiny_clip
    head = _head(frozen_tiny_clip)
    x, lengths = torch.randn(2, 16, D), torch.tensor([16, 10])
    with torch.no_grad():
        l1, l2, text = head(x, lengths, clip)
        captured = {}
        hook = head.fuse.register_forward_hook(lambda m, i, o: captured.setdefault("xv", o))
        head(x, lengths, text_features=text)
        hook.remove()
        xv = captured["xv"]
        v = F.normalize(torch.einsum("bl,bld->bd", l1, xv), dim=-1)[:, None]
        t = text[None] + v
        t = t + head.ffn_text(t)
        want = F.normalize(xv, dim=-1) @ F.normalize(t, dim=-1).transpose(1, 2) / head.cfg.temperature
    assert torch.allclose(l2, want, atol=1e-4)


# --------------------------------------------------------------------------------------------------------------------
# Losses


def test_topk_and_bce_loss_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0, 50.0], [1.0, -2.0, 50.0, 50.0]])  # 50 = padding, ignored
    lengths = torch.tensor([3, 2])
    s = torch.sigmoid
    # div 16: k = 1
    p = torch.stack([s(torch.tensor(2.0)), s(torch.tensor(1.0))])
    y = torch.tensor([1.0, 0.0])
    want = -(torch.log(p[0]) + torch.log(1 - p[1])) / 2
    assert torch.allclose(bce_loss(logits, lengths, y, div=16), want)  # VadCLIP's k = T // 16 + 1
    # div 2: k = 3 // 2 + 1 = 2 and 2 // 2 + 1 = 2
    p2 = torch.stack([(s(torch.tensor(2.0)) + s(torch.tensor(0.0))) / 2,
                      (s(torch.tensor(1.0)) + s(torch.tensor(-2.0))) / 2])
    want2 = -(torch.log(p2[0]) + torch.log(1 - p2[1])) / 2
    assert torch.allclose(bce_loss(logits, lengths, y, div=2), want2)
    assert torch.allclose(topk_mean(torch.arange(40.0)[None], torch.tensor([33]), 16), torch.tensor([31.0]))  # k = 3


def test_mil_align_loss_hand():
    logits2 = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 1.0, 0.0], [9.0, 9.0, 9.0]],
                            [[0.0, 2.0, 1.0], [1.0, 0.0, 4.0], [9.0, 9.0, 9.0]]])  # last step padding
    lengths = torch.tensor([2, 2])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    s0, s1 = [3.0, 1.0, 2.0], [1.0, 2.0, 4.0]  # per-class max over the 2 real steps (k = 1)

    def lsm(v):
        z = math.log(sum(math.exp(a) for a in v))
        return [a - z for a in v]

    want = -(lsm(s0)[0] + 0.5 * lsm(s1)[1] + 0.5 * lsm(s1)[2]) / 2
    assert mil_align_loss(logits2, lengths, targets, 16).item() == pytest.approx(want, rel=1e-6)


def test_sep_loss_hand():
    t = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-3.0, 0.0], [0.0, 2.0]])
    want = 0.5 * (1 / math.sqrt(2) + 1.0 + 0.0)  # |cos| with the normal row
    assert sep_loss(t, 0.5).item() == pytest.approx(want, rel=1e-6)


def test_roc_auc_hand():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.1, 0.9]) == pytest.approx(0.875)  # tie counts one half
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))


# --------------------------------------------------------------------------------------------------------------------
# Text prompts and the frozen CLIP


def test_prompt_layout_matches_open_clip_encode_text(frozen_tiny_clip, params_of):
    clip, tok = frozen_tiny_clip
    names = ["normal", "road accidents", "shoplifting"]
    cfg = params_of("eval_weakly.vadclip", visual_length=8)
    head = make_head(names, clip, tok, D, cfg, seed=0)
    pr = head.prompts
    raw = tok(names)
    tokens = torch.zeros_like(pr.layout)
    # [SOT, P1..P_pre, name at 1+pre..pre+n, P1..P_post, EOT at 1+pre+n+post, padding]; params.yaml: pre = post = 10
    name_at, gap = 1 + cfg.prompt_prefix, cfg.prompt_postfix
    for i, row in enumerate(raw):
        end = int(row.argmax())
        n = end - 1
        assert int(pr.eot_pos[i]) == name_at + n + gap
        assert torch.equal(pr.layout[i, name_at:name_at + n], row[1:end]) and pr.is_token[i].sum() == n + 2
        tokens[i, 0], tokens[i, name_at:name_at + n], tokens[i, name_at + n + gap] = row[0], row[1:end], row[end]
    ref = copy.deepcopy(clip)
    with torch.no_grad():
        ref.token_embedding.weight[0].zero_()  # token 0 then embeds like an all-zero prompt row
        pr.prompt.zero_()
        ours = pr(ref)
        theirs = ref.encode_text(tokens)
    assert torch.allclose(ours, theirs, atol=1e-5)
    with torch.no_grad():
        pr.prompt.normal_(std=0.01)
    assert not torch.allclose(pr(ref), theirs, atol=1e-5)


def test_training_leaves_clip_untouched_and_moves_prompt(frozen_tiny_clip):
    clip, tok = frozen_tiny_clip
    feats, labels, _ = _world(0, 6, 2, (10, 20))
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    init = make_head(CLASSES, clip, tok, D, SMALL, seed=5)
    head, hist = train_vadclip(feats, labels, None, CLASSES, clip, tok, SMALL, seed=5)
    after = clip.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in clip.parameters())
    assert not any(k.startswith(("token_embedding", "transformer", "visual")) for k in head.state_dict())
    assert not torch.equal(init.prompts.prompt, head.prompts.prompt)
    assert len(hist["loss"]) == 2 and hist["batch"] == (4, 4)


def test_same_seed_same_weights_and_small_groups(frozen_tiny_clip, params_of):
    clip, tok = frozen_tiny_clip
    feats, labels, _ = _world(1, 3, 2, (10, 20))  # 3 normal, 6 abnormal; batch 4
    h1, hist1 = train_vadclip(feats, labels, None, CLASSES, clip, tok, SMALL, seed=11)
    h2, hist2 = train_vadclip(feats, labels, None, CLASSES, clip, tok, SMALL, seed=11)
    h3, _ = train_vadclip(feats, labels, None, CLASSES, clip, tok, SMALL, seed=12)
    s1, s2, s3 = h1.state_dict(), h2.state_dict(), h3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1) and hist1["loss"] == hist2["loss"]
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    assert hist1["batch"] == (3, 4)  # the normal group (3 < 4) is used whole at every step
    cfg0 = params_of("eval_weakly.vadclip", visual_length=16, batch_per_class=4, epochs=1, iters_per_epoch=0)
    _, hist0 = train_vadclip(feats, labels, None, CLASSES, clip, tok, cfg0, seed=1)
    assert hist0["iters_per_epoch"] == 6 // 4


def test_validation_selection_returns_best(frozen_tiny_clip, params_of):
    clip, tok = frozen_tiny_clip
    feats, labels, _ = _world(2, 8, 3, (10, 20))
    vf, vl, _ = _world(3, 4, 2, (10, 20))
    cfg = params_of("eval_weakly.vadclip", visual_length=16, batch_per_class=4, epochs=2, iters_per_epoch=2, eval_every=1,
                    lr=1e-3)
    head, hist = train_vadclip(feats, labels, (vf, vl), CLASSES, clip, tok, cfg, seed=0)
    aucs = [v["auc"] for v in hist["val"]]
    assert len(aucs) == 2 * 2 + 2 and hist["best_auc"] == max(aucs)
    y = [lab != "normal" for lab in vl]
    assert roc_auc(y, video_scores(score_videos(head, vf, clip), cfg.topk_div)) == pytest.approx(hist["best_auc"])
    with pytest.raises(ValueError):
        train_vadclip(feats, labels, (vf[:2], vl[:2]), CLASSES, clip, tok, cfg, seed=0)  # val all normal


def test_score_videos_chunks(frozen_tiny_clip):
    clip, _ = frozen_tiny_clip
    head = _head(frozen_tiny_clip)
    rng = np.random.default_rng(0)
    vids = [rng.normal(size=(t, D)).astype(np.float32) for t in (5, 16, 37)]
    out = score_videos(head, vids + [vids[2][:16]], clip)
    for o, v in zip(out, vids):
        t = len(v)
        assert o["prob1"].shape == (t,) and o["prob2"].shape == (t,) and o["class_probs"].shape == (t, 4)
        assert np.allclose(o["class_probs"].sum(1), 1, atol=1e-5)
        assert np.allclose(o["prob2"], 1 - o["class_probs"][:, 0])
        assert ((o["prob1"] > 0) & (o["prob1"] < 1)).all()
    # each chunk runs on its own: the first chunk of the 37-step video equals the 16-step prefix scored alone
    assert np.allclose(out[2]["prob1"][:16], out[3]["prob1"], atol=1e-5)
    assert np.allclose(out[2]["class_probs"][:16], out[3]["class_probs"], atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Learning


def test_learns_synthetic_anomalies(frozen_tiny_clip, params_of):
    clip, tok = frozen_tiny_clip
    train, labels, _ = _world(10, 40, 14)
    test, test_labels, segs = _world(11, 20, 7)
    cfg = params_of("eval_weakly.vadclip", visual_length=48, batch_per_class=8, epochs=8, lr=1e-3, milestones=(100,))
    t0 = time.process_time()
    head, hist = train_vadclip(train, labels, None, CLASSES, clip, tok, cfg, seed=1)
    scores = score_videos(head, test, clip)
    cpu = time.process_time() - t0
    assert hist["iters_per_epoch"] == 42 // 8 and hist["loss"][-1] < hist["loss"][0]
    y = np.concatenate([np.zeros(len(x)) if s is None else (np.arange(len(x)) >= s[0]) & (np.arange(len(x)) < s[1])
                        for x, s in zip(test, segs)])
    auc = roc_auc(y, np.concatenate([s["prob1"] for s in scores]))
    assert auc > 0.9, f"frame AUC {auc:.3f}"
    hits = [CLASSES.index(lab) == 1 + int(s["class_probs"][g[0]:g[1], 1:].mean(0).argmax())
            for s, lab, g in zip(scores, test_labels, segs) if g is not None]
    assert np.mean(hits) > 0.6, f"class accuracy {np.mean(hits):.2f}"
    print(f"learning test: frame AUC {auc:.3f}, class acc {np.mean(hits):.2f}, CPU {cpu:.1f} s")
