"""Alert-CLIP losses: hand computations on tiny tensors, CLIP equivalence, masks, temperature, gradients, weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alertclip.losses import (
    LOGIT_SCALE_INIT,
    LOGIT_SCALE_MAX,
    alert_clip_losses,
    hard_negative_loss,
    region_infonce,
    scale_from_log,
    symmetric_infonce,
)

# Tiny unit vectors with an asymmetric similarity matrix S = V @ T.T = [[1.0, 0.0], [0.6, 0.8]]; its row-wise and
# column-wise cross-entropies differ, so a one-directional loss cannot pass the hand computation.
V = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
T = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)


def _log_scale(value: float = LOGIT_SCALE_INIT) -> torch.nn.Parameter:
    """A learnable ``logit_scale`` like the CLIP model's (log of 1 / tau)."""
    return torch.nn.Parameter(torch.tensor(float(value)))


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def _hand_infonce_vt(s: float) -> float:
    """The symmetric loss for V, T at scale s, written out with math.exp / math.log."""
    e = math.exp
    row0 = -math.log(e(1.0 * s) / (e(1.0 * s) + e(0.0 * s)))  # v0 -> [t0, t1], target t0
    row1 = -math.log(e(0.8 * s) / (e(0.6 * s) + e(0.8 * s)))  # v1 -> [t0, t1], target t1
    col0 = -math.log(e(1.0 * s) / (e(1.0 * s) + e(0.6 * s)))  # t0 -> [v0, v1], target v0
    col1 = -math.log(e(0.8 * s) / (e(0.0 * s) + e(0.8 * s)))  # t1 -> [v0, v1], target v1
    return ((row0 + row1) / 2 + (col0 + col1) / 2) / 2


# --- global InfoNCE ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [1.0, 5.0, 14.285714])
def test_symmetric_infonce_matches_hand_computation(s):
    e = math.exp
    rows = math.log(e(s) + 1) - s + math.log(e(0.6 * s) + e(0.8 * s)) - 0.8 * s
    cols = math.log(e(s) + e(0.6 * s)) - s + math.log(1 + e(0.8 * s)) - 0.8 * s
    assert abs(rows - cols) > 1e-3  # the example distinguishes the two directions
    got = symmetric_infonce(V, T, s)
    assert got.item() == pytest.approx(_hand_infonce_vt(s), rel=1e-12)


def test_symmetric_infonce_matches_clip_textbook_and_openclip():
    v, t = _unit(6, 8, seed=1), _unit(6, 8, seed=2)
    s = 1 / 0.07
    # CLIP paper pseudocode: logits = I_e @ T_e.T * exp(t); (CE over axis 0 + CE over axis 1) / 2, in numpy.
    logits = v.numpy() @ t.numpy().T * s
    labels = np.arange(6)

    def ce(lg, axis):
        lse = np.log(np.exp(lg - lg.max(axis=axis, keepdims=True)).sum(axis=axis, keepdims=True)) + lg.max(axis=axis, keepdims=True)
        logp = lg - lse
        return -np.mean(logp[labels, labels])

    textbook = (ce(logits, axis=0) + ce(logits, axis=1)) / 2
    got = symmetric_infonce(v, t, s).item()
    assert got == pytest.approx(textbook, rel=1e-10)

    from open_clip.loss import ClipLoss  # imported here: open_clip is slow to import

    ref = ClipLoss()(v, t, torch.tensor(s, dtype=torch.float64))
    assert got == pytest.approx(ref.item(), rel=1e-10)


def test_symmetric_infonce_is_symmetric_in_v_and_t():
    v, t = _unit(5, 4, seed=3), _unit(5, 4, seed=4)
    one_way = F.cross_entropy(10 * v @ t.T, torch.arange(5))
    other_way = F.cross_entropy(10 * t @ v.T, torch.arange(5))
    assert abs(one_way.item() - other_way.item()) > 1e-3  # the example really distinguishes the two directions
    assert symmetric_infonce(v, t, 10.0).item() == pytest.approx(symmetric_infonce(t, v, 10.0).item(), rel=1e-12)


def test_perfect_alignment_with_large_scale_goes_to_zero():
    e = torch.eye(4, dtype=torch.float64)
    assert symmetric_infonce(e, e, 100.0).item() < 1e-40
    assert symmetric_infonce(e, e, 100.0).item() == pytest.approx(math.log(1 + 3 * math.exp(-100)), rel=1e-9)
    assert symmetric_infonce(e, e, 1.0).item() > 0.5  # small scale: still far from 0
    assert region_infonce(e, e, 100.0).item() < 1e-40


def test_single_pair_is_finite_zero():
    v = _unit(1, 8, seed=5).requires_grad_()
    loss = symmetric_infonce(v, _unit(1, 8, seed=6), scale_from_log(_log_scale()))
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.equal(v.grad, torch.zeros_like(v))


# --- temperature ----------------------------------------------------------------------------------------------


def test_logit_scale_init_and_clamp_at_100():
    assert LOGIT_SCALE_INIT == pytest.approx(math.log(1 / 0.07))
    assert scale_from_log(_log_scale()).item() == pytest.approx(1 / 0.07, rel=1e-6)
    big = _log_scale(math.log(1000.0))
    assert LOGIT_SCALE_MAX == 100.0
    assert scale_from_log(big).item() == pytest.approx(100.0)
    v, t = _unit(6, 4, seed=30), _unit(6, 4, seed=31)
    loss = symmetric_infonce(v, t, scale_from_log(big).double())
    assert loss.item() == pytest.approx(symmetric_infonce(v, t, 100.0).item(), rel=1e-6)
    assert abs(loss.item() - symmetric_infonce(v, t, 1000.0).item()) > 1e-3
    assert scale_from_log(torch.tensor(math.log(50.0))).item() == pytest.approx(50.0, rel=1e-6)  # below the cap: plain exp
    loss.backward()
    assert big.grad.item() == 0.0  # clamped: no push beyond the cap


def test_gradients_flow_to_logit_scale_and_inputs():
    for fn, args in [
        (symmetric_infonce, (V.float(), T.float())),
        (region_infonce, (V.float(), T.float())),
        (hard_negative_loss, (V.float(), T.float(), T.float().flip(0).unsqueeze(1))),
    ]:
        log_scale = _log_scale()
        args = tuple(a.clone().requires_grad_() for a in args)
        fn(*args, scale_from_log(log_scale)).backward()
        assert log_scale.grad is not None and log_scale.grad.abs().item() > 1e-6, fn.__name__
        assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in args), fn.__name__


def test_tensor_scale_gives_the_hand_value():
    external = torch.nn.Parameter(torch.tensor(math.log(3.0), dtype=torch.float64))
    loss = symmetric_infonce(V, T, scale_from_log(external))
    assert loss.item() == pytest.approx(_hand_infonce_vt(3.0), rel=1e-9)
    loss.backward()
    assert external.grad is not None


# --- region InfoNCE ------------------------------------------------------------------------------------------


def test_region_infonce_matches_hand_computation():
    assert region_infonce(V, T, 5.0).item() == pytest.approx(_hand_infonce_vt(5.0), rel=1e-12)


def test_empty_regions_give_connected_zero():
    log_scale = _log_scale()
    v_r = torch.zeros(0, 8, requires_grad=True)
    t_r = torch.zeros(0, 8, requires_grad=True)
    loss = region_infonce(v_r, t_r, scale_from_log(log_scale))
    assert loss.shape == () and loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert log_scale.grad is not None and log_scale.grad.item() == 0.0
    assert v_r.grad is not None and v_r.grad.shape == (0, 8)
    assert t_r.grad is not None


# --- hard negatives ------------------------------------------------------------------------------------------


def test_hard_negative_matches_hand_computation():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t_pos = torch.tensor([[0.8, 0.6], [0.6, 0.8]], dtype=torch.float64)
    t_neg = torch.tensor([[[0.6, 0.8], [0.0, 1.0]],    # s- = 0.6, 0.0 for clip 0 (s+ = 0.8)
                          [[1.0, 0.0], [-0.6, 0.8]]],  # s- = 0.0, 0.8 for clip 1 (s+ = 0.8)
                         dtype=torch.float64)
    s = 10.0
    e = math.exp
    row0 = -math.log(e(8.0) / (e(8.0) + e(6.0) + e(0.0)))
    row1 = -math.log(e(8.0) / (e(8.0) + e(0.0) + e(8.0)))
    assert hard_negative_loss(v, t_pos, t_neg, s).item() == pytest.approx((row0 + row1) / 2, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_negative_with_one_negative_is_binary_softmax_ce(seed):
    v, tp, tn = _unit(4, 6, seed=seed), _unit(4, 6, seed=seed + 10), _unit(4, 1, 6, seed=seed + 20)
    s = 7.0
    sp = (v * tp).sum(-1).tolist()
    sn = (v * tn[:, 0]).sum(-1).tolist()
    # binary CE of the positive class under a 2-way softmax = -log sigmoid(s (s+ - s-)) = log(1 + e^{-s (s+ - s-)})
    expected = sum(math.log(1 + math.exp(-s * (a - b))) for a, b in zip(sp, sn)) / 4
    assert hard_negative_loss(v, tp, tn, s).item() == pytest.approx(expected, rel=1e-12)


def test_hard_negative_is_stable_at_large_scale():
    v = torch.tensor([[1.0, 0.0]])
    t_pos = torch.tensor([[-1.0, 0.0]])  # s+ = -1
    t_neg = torch.tensor([[[1.0, 0.0]]])  # s- = +1; e^{100} overflows float32 in a naive softmax
    loss = hard_negative_loss(v, t_pos, t_neg, 100.0)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(200.0 + math.log(1 + math.exp(-200.0)), rel=1e-6)


def test_masked_negatives_equal_absent_ones():
    v, tp = _unit(3, 5, seed=7), _unit(3, 5, seed=8)
    t_neg = _unit(3, 3, 5, seed=9)
    valid = torch.tensor([[True, False, True], [True, True, True], [False, True, False]])
    padded = t_neg.clone()
    padded[~valid] = float("nan")  # whatever the padding holds, it must not matter
    v1, tp1, padded = v.clone().requires_grad_(), tp.clone().requires_grad_(), padded.requires_grad_()
    masked = hard_negative_loss(v1, tp1, padded, 4.0, valid)
    masked.backward()

    rows = []
    v2, tp2 = v.clone().requires_grad_(), tp.clone().requires_grad_()
    for b in range(3):
        rows.append(hard_negative_loss(v2[b:b + 1], tp2[b:b + 1], t_neg[b][valid[b]].unsqueeze(0), 4.0))
    absent = torch.stack(rows).mean()
    absent.backward()

    assert masked.item() == pytest.approx(absent.item(), rel=1e-12)
    assert torch.allclose(v1.grad, v2.grad) and torch.allclose(tp1.grad, tp2.grad)
    assert torch.isfinite(padded.grad).all() and (padded.grad[~valid] == 0).all()
    # and the mask really changes the value versus using all three
    assert abs(hard_negative_loss(v, tp, t_neg, 4.0).item() - masked.item()) > 1e-3


def test_row_without_negatives_contributes_zero():
    v, tp, t_neg = _unit(2, 4, seed=11), _unit(2, 4, seed=12), _unit(2, 2, 4, seed=13)
    valid = torch.tensor([[False, False], [True, True]])
    row1 = hard_negative_loss(v[1:], tp[1:], t_neg[1:], 3.0)
    assert row1.item() > 0.01
    assert hard_negative_loss(v, tp, t_neg, 3.0, valid).item() == pytest.approx(row1.item() / 2, rel=1e-12)
    none_valid = hard_negative_loss(v, tp, t_neg, 3.0, torch.zeros(2, 2, dtype=torch.bool))
    assert none_valid.item() == 0.0
    assert hard_negative_loss(v, tp, t_neg[:, :0], 3.0).item() == 0.0  # K = 0


# --- shape checks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [symmetric_infonce, region_infonce])
def test_pair_shape_mismatch_names_shapes(fn):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        fn(torch.zeros(3, 4), torch.zeros(3, 5), 1.0)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 4\)"):
        fn(torch.zeros(3, 4), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match=r"2-D.*\(4,\)"):
        fn(torch.zeros(4), torch.zeros(4), 1.0)


def test_empty_global_batch_raises():
    with pytest.raises(ValueError, match=r"\(0, 4\)"):
        symmetric_infonce(torch.zeros(0, 4), torch.zeros(0, 4), 1.0)


def test_hard_negative_shape_errors():
    v, tp = torch.zeros(2, 4), torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3, 5\)"):
        hard_negative_loss(v, tp, torch.zeros(2, 3, 5), 1.0)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(3, 3, 4\)"):
        hard_negative_loss(v, tp, torch.zeros(3, 3, 4), 1.0)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5\)"):
        hard_negative_loss(v, torch.zeros(2, 5), torch.zeros(2, 3, 4), 1.0)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        hard_negative_loss(v, tp, torch.zeros(2, 3, 4), 1.0, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        hard_negative_loss(v, tp, torch.zeros(2, 3, 4), 1.0, torch.ones(2, 3))


# --- combination: alert_clip_losses, the loss training computes --------------------------------------------------


def _embeddings(scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A batch of 4 clips as BatchEncoder gives it; clip 2 has no region (its v_r row is zero)."""
    has = torch.tensor([True, True, False, True])
    v_r = _unit(4, 6, seed=23) * has[:, None]
    return dict(v=_unit(4, 6, seed=21), t=_unit(4, 6, seed=22), v_r=v_r, has_region=has, t_reg=_unit(4, 6, seed=24),
                t_neg=_unit(4, 3, 6, seed=25), scale=scale if scale is not None else torch.tensor(1 / 0.07, dtype=torch.float64),
                neg_valid=torch.tensor([[True, True, False], [True, True, True], [False, False, False], [True, False, True]]))


def test_alert_clip_losses_combine_with_weights_and_anchor_on_regions():
    log_scale = _log_scale()
    e = _embeddings(scale_from_log(log_scale).double())
    out = alert_clip_losses(e, 0.5, 2.0)
    s = float(e["scale"].detach())
    has = e["has_region"]
    g = symmetric_infonce(e["v"], e["t"], s).item()
    r = region_infonce(e["v_r"][has], e["t_reg"][has], s).item()
    anchor = torch.where(has[:, None], e["v_r"], e["v"])  # the paper's anchor: the region embedding
    h = hard_negative_loss(anchor, e["t_reg"], e["t_neg"], s, e["neg_valid"]).item()
    assert min(g, r, h) > 1e-3
    assert out["global"].item() == pytest.approx(g, rel=1e-9)
    assert out["region"].item() == pytest.approx(r, rel=1e-9)
    assert out["hard"].item() == pytest.approx(h, rel=1e-9)
    clip_anchored = hard_negative_loss(e["v"], e["t_reg"], e["t_neg"], s, e["neg_valid"]).item()
    assert abs(out["hard"].item() - clip_anchored) > 1e-3  # not anchored on the clip embedding
    assert out["loss"].item() == pytest.approx(g + 0.5 * r + 2.0 * h, rel=1e-9)
    assert out["n_regions"].item() == 3
    assert all(not out[k].requires_grad for k in ("global", "region", "hard", "scale"))
    out["loss"].backward()
    assert log_scale.grad is not None and log_scale.grad.abs().item() > 0


def test_zero_weights_keep_terms_out_of_the_total_and_a_global_only_run_computes_global_only():
    e = _embeddings()
    out = alert_clip_losses(e, 0.0, 0.0)
    g = symmetric_infonce(e["v"], e["t"], e["scale"]).item()
    assert out["loss"].item() == pytest.approx(g, rel=1e-12)
    assert out["region"].item() > 1e-3 and out["hard"].item() > 1e-3  # measured for the logs
    # a run whose losses are [global] only (runs.stage1: both weights 0): BatchEncoder without the region/negative parts
    global_only = {k: e[k] for k in ("v", "t", "scale")}
    out1 = alert_clip_losses(global_only, 0.0, 0.0)
    assert out1["loss"].item() == pytest.approx(g, rel=1e-12) and out1["region"].item() == 0.0 == out1["hard"].item()


def test_no_regions_and_no_negatives_still_backprop():
    log_scale = _log_scale()
    e = _embeddings(scale_from_log(log_scale).double())
    e["has_region"] = torch.zeros(4, dtype=torch.bool)
    e["t_neg"] = e["t_neg"][:, :0]  # K = 0
    e["neg_valid"] = e["neg_valid"][:, :0]
    out = alert_clip_losses(e, 1.0, 1.0)
    assert out["region"].item() == 0.0 and out["hard"].item() == 0.0 and out["n_regions"].item() == 0
    out["loss"].backward()
    assert torch.isfinite(log_scale.grad)


# --- duplicate-aware InfoNCE (groups) -------------------------------------------------------------------------

# Three pairs; pairs 0 and 1 share a caption id. S = V3 @ T3.T (not symmetric, rows differ from columns).
V3 = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]], dtype=torch.float64)
T3 = torch.tensor([[0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
G3 = torch.tensor([4, 4, 9])


def _hand_grouped(s: float) -> float:
    """Symmetric InfoNCE of V3, T3 with the pairs (0, 1) and (1, 0) left out of the denominators, by hand."""
    S = (V3 @ T3.T).tolist()
    e = math.exp
    row0 = -math.log(e(s * S[0][0]) / (e(s * S[0][0]) + e(s * S[0][2])))  # t1 is not a negative of v0
    row1 = -math.log(e(s * S[1][1]) / (e(s * S[1][1]) + e(s * S[1][2])))  # t0 is not a negative of v1
    row2 = -math.log(e(s * S[2][2]) / (e(s * S[2][0]) + e(s * S[2][1]) + e(s * S[2][2])))
    col0 = -math.log(e(s * S[0][0]) / (e(s * S[0][0]) + e(s * S[2][0])))  # v1 is not a negative of t0
    col1 = -math.log(e(s * S[1][1]) / (e(s * S[1][1]) + e(s * S[2][1])))
    col2 = -math.log(e(s * S[2][2]) / (e(s * S[0][2]) + e(s * S[1][2]) + e(s * S[2][2])))
    return ((row0 + row1 + row2) / 3 + (col0 + col1 + col2) / 3) / 2


@pytest.mark.parametrize("fn", [symmetric_infonce, region_infonce])
@pytest.mark.parametrize("s", [1.0, 7.0])
def test_grouped_infonce_matches_hand_computation(fn, s):
    got = fn(V3, T3, s, groups=G3).item()
    assert got == pytest.approx(_hand_grouped(s), rel=1e-12)
    assert abs(got - fn(V3, T3, s).item()) > 1e-3  # the mask changes the value


@pytest.mark.parametrize("fn", [symmetric_infonce, region_infonce])
def test_distinct_groups_equal_the_plain_loss_bit_for_bit(fn):
    v, t = _unit(7, 5, seed=31).float(), _unit(7, 5, seed=32).float()
    scale = torch.tensor(1 / 0.07)
    plain = fn(v, t, scale)
    grouped = fn(v, t, scale, groups=torch.tensor([3, 1, 4, 0, 5, 9, 2]))
    assert torch.equal(plain, grouped)


def test_equal_captions_are_not_pushed_apart():
    """Clips 0 and 1 have the same caption (equal id, equal embedding): without groups gradient descent moves clip 1's
    caption away from clip 0's video; with groups that pair gets no gradient at all."""
    v = torch.eye(3, dtype=torch.float64)  # v0, v1, v2 orthonormal: t1's gradient along e0 comes from pair (v0, t1) only
    c = F.normalize(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), dim=0)

    def grads(groups):
        t0, t1 = c.clone().requires_grad_(), c.clone().requires_grad_()
        vv = v.clone().requires_grad_()
        t = torch.stack([t0, t1, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)])
        symmetric_infonce(vv, t, 5.0, groups=groups).backward()
        return vv.grad, t0.grad, t1.grad

    _, _, t1_plain = grads(None)
    assert t1_plain[0].item() > 1e-3  # descent (-grad) lowers cos(v0, t1): the duplicate is treated as a negative
    v_grad, t0_grad, t1_grad = grads(torch.tensor([0, 0, 1]))
    assert t1_grad[0].item() == 0.0 and t0_grad[1].item() == 0.0  # (v0, t1) and (v1, t0) are out of the loss
    assert t1_grad[1].item() < 0 and t0_grad[0].item() < 0  # each caption is still pulled to its own video
    assert torch.isfinite(v_grad).all()


def test_all_in_one_group_is_finite_zero():
    v = _unit(4, 6, seed=33).requires_grad_()
    loss = symmetric_infonce(v, _unit(4, 6, seed=34), 10.0, groups=torch.zeros(4, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(v.grad, torch.zeros_like(v))


def test_groups_shape_and_dtype_checked():
    with pytest.raises(ValueError, match=r"groups must be \(3,\).*\(2,\)"):
        symmetric_infonce(V3, T3, 1.0, groups=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        region_infonce(V3, T3, 1.0, groups=torch.tensor([0.0, 1.0, 2.0]))


def test_alert_clip_losses_pass_caption_ids():
    e = _embeddings()
    e["text_id"], e["region_id"] = torch.tensor([0, 0, 1, 2]), torch.tensor([5, 6, 9, 5])
    out = alert_clip_losses(e, 1.0, 0.0)
    s, has = e["scale"], e["has_region"]
    assert out["global"].item() == pytest.approx(symmetric_infonce(e["v"], e["t"], s, e["text_id"]).item(), rel=1e-12)
    assert out["region"].item() == pytest.approx(
        region_infonce(e["v_r"][has], e["t_reg"][has], s, e["region_id"][has]).item(), rel=1e-12)
    assert out["global"].item() != pytest.approx(symmetric_infonce(e["v"], e["t"], s).item(), rel=1e-6)
