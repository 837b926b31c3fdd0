"""VadCLIP (Wu et al., AAAI 2024) as a weakly supervised VAD evaluation head on frozen per-snippet CLIP features.

Our own implementation from the design notes in ``shared/reference/vad-protocols.md`` (sections A-C; ``shared/``
sits beside the repository); no code of the original repository is used. Input: one ``(T, D)`` array of frozen CLIP
features per video (one vector per snippet) and one video-level label (a class name); ``D`` must equal the CLIP
model's text feature dimension.

Pipeline: features (+ learnable position embedding) -> local windowed pre-LN transformer -> two-branch GCN (feature
similarity A_sim, temporal distance A_dis) -> X'. Binary head: logits1 = Linear(X' + FFN(X')). Alignment head: learnable
text prompts through the frozen CLIP text tower (:mod:`alertclip.eval.vadclip_prompts`) give T_c; the visual prompt
v = L2norm(logits1^T X') is added, T_c <- T_c + FFN(T_c); logits2 = cos(X'_t, T_c) / 0.07. Loss = L_bce + L_MIL-align +
L_sep. Settings: :class:`alertclip.params.VadClipParams` (params ``eval_weakly.vadclip``).

Deliberate deviations from the original:

(a) Model selection uses a VALIDATION split of training videos (the original picks the best test-set AUC every 10
    iterations). Criterion: video-level ROC-AUC of the binary branch's top-k-mean score (k = T // 16 + 1 over prob1 of
    the whole video, test-style chunking), so only video-level labels are used. Evaluated at each epoch end and every
    ``eval_every`` iterations if set; the best (strictly greater AUC; at equal AUC, lower video-level BCE of the
    same scores, because AUC saturates at 1.0 on easy validation sets) weights are returned. As in the original, the best
    weights are reloaded at each epoch end (optimiser state not reloaded; ``reload_best_each_epoch``). With ``val=None``
    there is no selection and the final weights are returned.
(b) Padding in attention is unmasked by default, as in the original; ``mask_padding=True`` masks padded keys (query
    rows whose whole window is padding attend to themselves only). It affects attention only.
(c) A_dis is a buffer that lives on the model's device (the original hard-codes ``.to('cuda')``).
(d) Sampling: the normal and abnormal groups are drawn by two seeded shuffles with drop_last, reshuffled at every epoch
    start and whenever a stream is exhausted mid-epoch. A group with fewer videos than ``batch_per_class`` is used whole
    at every step. ``iters_per_epoch=0`` means n_abnormal // batch (each abnormal video once per epoch; UCF: 8100 rows
    // 64 = 126, where the original's min over both loaders gives 125).
(e) The text tower runs in the CLIP model's own cast dtype (fp32 for an fp32 model; the original runs CLIP in fp16 on
    GPU). Test chunks carry their real length (the all-zero extra chunk has length 0; its outputs are discarded);
    ``test_chunk_lengths: vadclip`` gives the original's (:func:`vadclip_chunk_lengths`), with the same kept outputs.
(f) The GCN nonlinearity is ``nn.GELU`` by default; ``gcn_activation: quick_gelu`` is the original's (logits1 differ by
    ~3e-3 relative). The FFNs (4x, QuickGELU) follow the transformer MLP.

Quirks reproduced faithfully:

- padded steps take part in attention, the GCN (A_dis is over all L positions) and the visual prompt;
- the visual prompt uses RAW logits1 (no sigmoid), padding included;
- A_sim: cosine similarity on the real ``[:len, :len]`` part, values <= 0.7 set to 0 (``F.threshold``), THEN row
  softmax, so the zeroed entries still get weight exp(0); padding rows and columns are 0;
- A_dis[i, j] = exp(-|i - j| / e): not normalised, not masked; ``sigma`` exists in the config and is unused;
- ``process_split`` adds an extra all-zero chunk when T % L == 0 (T // L + 1 chunks always);
- training videos longer than L are mean-pooled into L bins (``linspace(0, T, L + 1).astype(int32)``), shorter are
  zero-padded; each test chunk has its own positions 0..L-1, attention windows and graph;
- L_sep is computed on the prompt-only text features (before the visual prompt), weight 0.1 / (number of non-normal
  classes) (UCF: 0.1 / 13);
- scores: prob1 = sigmoid(logits1) (the field reports UCF AUC from it), prob2 = 1 - softmax(logits2)[:, normal] (XD AP
  is reported from it).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..params import VadClipParams
from .vadclip_prompts import PromptLearner, text_output_dim

# ---------------------------------------------------------------------------------------------------------------------
# Length handling


def process_feat(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Training length handling: ``(L, D)`` float32 array and the true length (<= L).

    T > L: mean-pool into L bins with edges ``linspace(0, T, L + 1).astype(int32)`` (an empty bin takes frame r[i]);
    otherwise zero-pad to L and return T.
    """
    x = np.asarray(x, dtype=np.float32)
    t = x.shape[0]
    if t > length:
        r = np.linspace(0, t, length + 1).astype(np.int32)
        out = np.empty((length,) + x.shape[1:], dtype=np.float32)
        for i in range(length):
            out[i] = x[r[i]:r[i + 1]].mean(0) if r[i] != r[i + 1] else x[r[i]]
        return out, length
    out = np.zeros((length,) + x.shape[1:], dtype=np.float32)
    out[:t] = x
    return out, t


def process_split(x: np.ndarray, length: int, chunk_lengths: str = "real") -> tuple[np.ndarray, np.ndarray]:
    """Test length handling: ``(T // L + 1, L, D)`` chunks (last zero-padded) and the length each chunk carries.

    As in the original, T % L == 0 (T >= L) yields an extra all-zero chunk: ``chunk_lengths`` "real" gives it length 0,
    "vadclip" the original's (:func:`vadclip_chunk_lengths`). Every other chunk carries its real length either way.
    """
    x = np.asarray(x, dtype=np.float32)
    t = x.shape[0]
    n = t // length + 1
    out = np.zeros((n * length,) + x.shape[1:], dtype=np.float32)
    out[:t] = x
    if chunk_lengths == "vadclip":
        lengths = vadclip_chunk_lengths(t, length)
    elif chunk_lengths == "real":
        lengths = np.clip(t - length * np.arange(n), 0, length).astype(np.int64)
    else:
        raise ValueError(f"chunk_lengths must be 'real' or 'vadclip', got {chunk_lengths!r}")
    return out.reshape((n, length) + x.shape[1:]), lengths


def vadclip_chunk_lengths(t: int, length: int) -> np.ndarray:
    """The chunk lengths of VadCLIP's test loop (``src/ucf_test.py`` / ``xd_test.py``), step for step: the remaining
    length is only reduced while it exceeds L, so when T % L == 0 the extra all-zero chunk carries L, not 0."""
    out = np.zeros(t // length + 1, dtype=np.int64)
    remaining = t
    for j in range(len(out)):
        out[j] = min(remaining, length)
        if remaining > length:
            remaining -= length
    return out


def merge_split(chunks, t: int):
    """Inverse of :func:`process_split` for outputs: flatten ``(n, L, ...)`` to ``(n * L, ...)`` and cut to T."""
    return chunks.reshape((-1,) + tuple(chunks.shape[2:]))[:t]


# ---------------------------------------------------------------------------------------------------------------------
# Model pieces


def window_mask(length: int, window: int) -> torch.Tensor:
    """Additive ``(L, L)`` mask: 0 inside non-overlapping blocks of ``window`` steps, -inf elsewhere."""
    block = torch.arange(length) // window
    mask = torch.full((length, length), float("-inf"))
    return mask.masked_fill(block[:, None] == block[None, :], 0.0)


def distance_adjacency(length: int, device=None) -> torch.Tensor:
    """A_dis[i, j] = exp(-|i - j| / e) over all positions; not normalised (the original's DistanceAdj)."""
    idx = torch.arange(length, dtype=torch.float32, device=device)
    return torch.exp(-(idx[:, None] - idx[None, :]).abs() / math.e)


def similarity_adjacency(h: torch.Tensor, lengths: torch.Tensor, threshold: float) -> torch.Tensor:
    """A_sim ``(B, L, L)``: cosine similarity on the real part, ``<= threshold`` set to 0, then row softmax over the
    real columns (zeros keep weight exp(0)); padding rows and columns are 0."""
    b, n, _ = h.shape
    hn = F.normalize(h, dim=-1)
    sim = F.threshold(hn @ hn.transpose(1, 2), threshold, 0.0)
    valid = torch.arange(n, device=h.device)[None, :] < lengths.to(h.device)[:, None]  # (B, L)
    cols = valid | ~valid.any(1, keepdim=True)  # a length-0 chunk: any columns, its rows are zeroed below
    adj = torch.softmax(sim.masked_fill(~cols[:, None, :], float("-inf")), dim=-1)
    return adj * (valid[:, :, None] & valid[:, None, :]).to(adj.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _ffn(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 4 * d), QuickGELU(), nn.Linear(4 * d, d))


class _Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = _ffn(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class GraphConv(nn.Module):
    """out = A (X W) + res(X); W Xavier-uniform, no bias; res = Conv1d(k=5, pad=2) if dims differ, else identity."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))
        nn.init.xavier_uniform_(self.weight)
        self.res = nn.Conv1d(d_in, d_out, kernel_size=5, padding=2) if d_in != d_out else None

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        res = x if self.res is None else self.res(x.transpose(1, 2)).transpose(1, 2)
        return adj @ (x @ self.weight) + res


class VadClipHead(nn.Module):
    """The VadCLIP model minus the frozen CLIP (which is passed to :meth:`forward`, never stored).

    ``forward(x (B, L, D), lengths (B,), clip_model)`` -> ``(logits1 (B, L), logits2 (B, L, C), text (C, D))`` where
    ``text`` are the prompt-only class features (used by L_sep); pass ``text_features`` to skip the text tower.
    """

    def __init__(self, class_names: Sequence[str], clip_model: nn.Module, tokenizer, feature_dim: int,
                 cfg: VadClipParams):
        super().__init__()
        out_dim = text_output_dim(clip_model)
        if feature_dim != out_dim:
            raise ValueError(f"feature dim {feature_dim} != CLIP text feature dim {out_dim}")
        if len(class_names) < 2:
            raise ValueError("class_names needs the normal class first and at least one abnormal class")
        self.cfg = cfg
        self.class_names = list(class_names)
        d, n = feature_dim, cfg.visual_length
        hid = cfg.gcn_dim if cfg.gcn_dim is not None else d // 2
        self.pos = nn.Parameter(torch.empty(n, d))
        nn.init.normal_(self.pos, std=0.01)
        self.blocks = nn.ModuleList([_Block(d, cfg.heads) for _ in range(cfg.layers)])
        self.gc1, self.gc2 = GraphConv(d, hid), GraphConv(hid, hid)  # similarity branch
        self.gc3, self.gc4 = GraphConv(d, hid), GraphConv(hid, hid)  # distance branch
        self.gcn_act = QuickGELU() if cfg.gcn_activation == "quick_gelu" else nn.GELU()
        self.fuse = nn.Linear(2 * hid, d)
        self.ffn_visual = _ffn(d)
        self.classifier = nn.Linear(d, 1)
        self.ffn_text = _ffn(d)
        self.prompts = PromptLearner(class_names, clip_model, tokenizer, cfg.prompt_prefix, cfg.prompt_postfix)
        self.register_buffer("window_mask", window_mask(n, cfg.window), persistent=False)
        self.register_buffer("dis_adj", distance_adjacency(n), persistent=False)

    def attention_mask(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(L, L)`` window mask, or with ``mask_padding`` a ``(B * heads, L, L)`` mask that also hides padded keys."""
        if not self.cfg.mask_padding:
            return self.window_mask
        n = self.window_mask.shape[0]
        pad = torch.arange(n, device=lengths.device)[None, :] >= lengths[:, None]  # (B, L)
        mask = self.window_mask[None].masked_fill(pad[:, None, :], float("-inf")).clone()
        dead = torch.isinf(mask).all(-1)  # rows with no visible key attend to themselves
        diag = torch.arange(n, device=mask.device)
        mask[:, diag, diag] = torch.where(dead, 0.0, mask[:, diag, diag])
        return mask.repeat_interleave(self.cfg.heads, dim=0)

    def encode_text(self, clip_model: nn.Module) -> torch.Tensor:
        """Prompt-only class features ``(C, D)``."""
        return self.prompts(clip_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, clip_model: nn.Module | None = None,
                text_features: torch.Tensor | None = None):
        if x.shape[1] != self.cfg.visual_length:
            raise ValueError(f"expected {self.cfg.visual_length} steps, got {x.shape[1]}")
        lengths = lengths.to(x.device)
        h = x + self.pos
        mask = self.attention_mask(lengths)
        for blk in self.blocks:
            h = blk(h, mask)
        a_sim = similarity_adjacency(h, lengths, self.cfg.sim_threshold)
        act = self.gcn_act
        s = act(self.gc2(act(self.gc1(h, a_sim)), a_sim))
        g = act(self.gc4(act(self.gc3(h, self.dis_adj)), self.dis_adj))
        xv = self.fuse(torch.cat([s, g], dim=-1))
        logits1 = self.classifier(xv + self.ffn_visual(xv)).squeeze(-1)
        if text_features is None:
            if clip_model is None:
                raise ValueError("pass clip_model or text_features")
            text_features = self.encode_text(clip_model)
        v = F.normalize(logits1.unsqueeze(1) @ xv, dim=-1)  # (B, 1, D): raw logits, padding included
        t = text_features.unsqueeze(0) + v
        t = t + self.ffn_text(t)
        logits2 = F.normalize(xv, dim=-1) @ F.normalize(t, dim=-1).transpose(1, 2) / self.cfg.temperature
        return logits1, logits2, text_features


# ---------------------------------------------------------------------------------------------------------------------
# Losses


def topk_mean(x: torch.Tensor, lengths: torch.Tensor, div: int) -> torch.Tensor:
    """Per video, mean of the top k = len // div + 1 values over time of ``x[b, :len]``; ``(B, ...)``."""
    out = []
    for b, n in enumerate(lengths.tolist()):
        n = int(n)
        out.append(torch.topk(x[b, :n], n // div + 1, dim=0).values.mean(0))
    return torch.stack(out)


def bce_loss(logits1: torch.Tensor, lengths: torch.Tensor, abnormal: torch.Tensor, div: int) -> torch.Tensor:
    """L_bce: BCE between the top-k mean of sigmoid(logits1) and the video's abnormal flag (1 - normal)."""
    p = topk_mean(torch.sigmoid(logits1), lengths, div)
    return F.binary_cross_entropy(p, abnormal.to(p.dtype))


def mil_align_loss(logits2: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, div: int) -> torch.Tensor:
    """L_MIL-align: per class top-k mean of logits2 over the real length; -mean_b sum_c y_bc log_softmax(s_b)_c with
    y = multi-hot / its sum."""
    s = topk_mean(logits2, lengths, div)
    y = targets.to(s.dtype)
    y = y / y.sum(1, keepdim=True)
    return -(y * F.log_softmax(s, dim=-1)).sum(1).mean()


def sep_loss(text_features: torch.Tensor, weight: float) -> torch.Tensor:
    """L_sep = weight * sum_{j >= 1} |cos(T_0, T_j)| on the prompt-only class features (row 0 = normal)."""
    t = F.normalize(text_features, dim=-1)
    return weight * (t[1:] @ t[0]).abs().sum()


def sep_weight(cfg: VadClipParams, n_classes: int) -> float:
    return cfg.sep_weight / (n_classes - 1) if cfg.sep_per_class else cfg.sep_weight


# ---------------------------------------------------------------------------------------------------------------------
# Scoring


def roc_auc(labels, scores) -> float:
    """Binary ROC-AUC (scikit-learn's); nan if only one class is present."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels).astype(bool).ravel()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64).ravel()))


def video_bce(labels, scores) -> float:
    """Mean binary cross-entropy of video-level scores (the selection tie-break: lower is better)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def _module_device(m: nn.Module) -> torch.device:
    return next(m.parameters()).device


@torch.no_grad()
def score_videos(head: VadClipHead, feats_list: Sequence[np.ndarray], clip_model: nn.Module,
                 max_chunks: int = 64) -> list[dict]:
    """Per video ``{"prob1": (T,), "prob2": (T,), "class_probs": (T, C)}`` via :func:`process_split` chunks cut to T.

    prob1 = sigmoid(logits1); class_probs = softmax(logits2); prob2 = 1 - class_probs[:, 0] (the normal class).
    ``clip_model`` must be on the head's device.
    """
    device = _module_device(head)
    if _module_device(clip_model) != device:
        raise ValueError(f"clip_model is on {_module_device(clip_model)}, the head on {device}")
    was_training = head.training
    head.eval()
    try:
        text = head.encode_text(clip_model)
        out = []
        for feats in feats_list:
            t = int(np.asarray(feats).shape[0])
            chunks, lengths = process_split(feats, head.cfg.visual_length, head.cfg.test_chunk_lengths)
            l1, l2 = [], []
            for i in range(0, len(chunks), max_chunks):
                x = torch.from_numpy(chunks[i:i + max_chunks]).to(device)
                a, b, _ = head(x, torch.from_numpy(lengths[i:i + max_chunks]).to(device), text_features=text)
                l1.append(a)
                l2.append(b)
            logits1 = merge_split(torch.cat(l1), t)
            class_probs = torch.softmax(merge_split(torch.cat(l2), t), dim=-1)
            out.append({"prob1": torch.sigmoid(logits1).float().cpu().numpy(),
                        "prob2": (1.0 - class_probs[:, 0]).float().cpu().numpy(),
                        "class_probs": class_probs.float().cpu().numpy()})
    finally:
        head.train(was_training)
    return out


def video_scores(scores: Sequence[dict], div: int, key: str = "prob1") -> np.ndarray:
    """Video-level score: mean of the top k = T // div + 1 values of ``key`` (the validation criterion)."""
    res = []
    for s in scores:
        p = np.asarray(s[key], dtype=np.float64)
        k = len(p) // div + 1
        res.append(np.sort(p)[-k:].mean())
    return np.asarray(res)


# ---------------------------------------------------------------------------------------------------------------------
# Training


def _targets(labels: Sequence, class_names: Sequence[str]) -> torch.Tensor:
    """Multi-hot ``(N, C)``; a label is a class name or a sequence of class names."""
    index = {c: i for i, c in enumerate(class_names)}
    y = torch.zeros(len(labels), len(class_names))
    for n, lab in enumerate(labels):
        for c in ([lab] if isinstance(lab, str) else list(lab)):
            if c not in index:
                raise ValueError(f"label {c!r} is not in class_names {list(class_names)}")
            y[n, index[c]] = 1.0
    return y


class _Stream:
    """Seeded shuffle with drop_last over ``idx``; reshuffled on :meth:`reset` and when exhausted."""

    def __init__(self, idx: torch.Tensor, batch: int, gen: torch.Generator):
        self.idx, self.batch, self.gen = idx, batch, gen
        self.reset()

    def reset(self) -> None:
        self.perm = self.idx[torch.randperm(len(self.idx), generator=self.gen)]
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > len(self.perm):
            self.reset()
        out = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return out


def make_head(class_names: Sequence[str], clip_model: nn.Module, tokenizer, feature_dim: int,
              cfg: VadClipParams, seed: int = 234, device: str | torch.device = "cpu") -> VadClipHead:
    """A freshly initialised head (CPU init under ``torch.manual_seed(seed)``, global RNG untouched) on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = VadClipHead(class_names, clip_model, tokenizer, feature_dim, cfg)
    return head.to(torch.device(device))


def train_vadclip(train: Sequence[np.ndarray], labels: Sequence, val: tuple[Sequence[np.ndarray], Sequence] | None,
                  class_names: Sequence[str], clip_model: nn.Module, tokenizer, cfg: VadClipParams,
                  seed: int = 234, device: str | torch.device = "cpu") -> tuple[VadClipHead, dict]:
    """Train a :class:`VadClipHead` on ``(T_i, D)`` feature arrays with video-level labels; ``(head, history)``.

    ``class_names[0]`` is the normal class. ``val = (feats, labels)`` (both normal and abnormal videos) enables
    best-val-AUC model selection. ``clip_model`` is frozen (``requires_grad_(False)``) and moved to ``device`` in
    place; its weights are never changed. History: per-iteration ``loss``/``loss_bce``/``loss_mil``/``loss_sep``, per
    epoch ``lr``, ``val`` entries ``{epoch, iteration, auc}``, ``best_auc``/``best_epoch``/``best_iteration``,
    ``iters_per_epoch`` and ``batch`` (normal, abnormal).
    """
    if len(train) != len(labels) or not train:
        raise ValueError("train and labels must be non-empty and of equal length")
    device = torch.device(device)
    clip_model.requires_grad_(False)
    clip_model.to(device)
    class_names = list(class_names)
    feature_dim = int(np.asarray(train[0]).shape[1])

    feats, lens = zip(*(process_feat(x, cfg.visual_length) for x in train))
    feats = torch.from_numpy(np.stack(feats))
    lens = torch.tensor(lens, dtype=torch.long)
    y = _targets(labels, class_names)
    normal = y[:, 0] > 0
    normal_idx, abn_idx = normal.nonzero().squeeze(1), (~normal).nonzero().squeeze(1)
    if len(normal_idx) == 0 or len(abn_idx) == 0:
        raise ValueError("training needs both normal and abnormal videos")
    if val is not None:
        val_feats, val_labels = val
        val_y = (~(_targets(val_labels, class_names)[:, 0] > 0)).numpy()
        if val_y.all() or not val_y.any():
            raise ValueError("val needs both normal and abnormal videos")

    gen = torch.Generator().manual_seed(seed)
    b_n, b_a = min(cfg.batch_per_class, len(normal_idx)), min(cfg.batch_per_class, len(abn_idx))
    streams = (_Stream(normal_idx, b_n, gen), _Stream(abn_idx, b_a, gen))
    iters = cfg.iters_per_epoch or max(1, len(abn_idx) // b_a)

    head = make_head(class_names, clip_model, tokenizer, feature_dim, cfg, seed, device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.lr_gamma)
    w_sep = sep_weight(cfg, len(class_names))
    hist: dict = {"loss": [], "loss_bce": [], "loss_mil": [], "loss_sep": [], "lr": [], "val": [], "best_auc": None,
                  "best_bce": None,
                  "best_epoch": None, "best_iteration": None, "iters_per_epoch": iters, "batch": (b_n, b_a)}
    best_state = None

    def validate(epoch: int, it: int) -> None:
        nonlocal best_state
        vs = video_scores(score_videos(head, val_feats, clip_model), cfg.topk_div)
        auc, bce = roc_auc(val_y, vs), video_bce(val_y, vs)
        hist["val"].append({"epoch": epoch, "iteration": it, "auc": auc, "bce": bce})
        # Video-level AUC saturates at 1.0 on easy validation sets; then the validation BCE of the same video scores
        # decides, so training still selects (and, with reload_best_each_epoch, keeps) later, better weights.
        if hist["best_auc"] is None or auc > hist["best_auc"] or (auc == hist["best_auc"] and bce < hist["best_bce"]):
            hist.update(best_auc=auc, best_bce=bce, best_epoch=epoch, best_iteration=it)
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}

    head.train()
    step = 0
    with tqdm(total=cfg.epochs * iters, desc="vadclip", disable=not sys.stderr.isatty()) as bar:
        for epoch in range(cfg.epochs):
            for s in streams:
                s.reset()
            for _ in range(iters):
                idx = torch.cat([streams[0].next(), streams[1].next()])
                x, n = feats[idx].to(device), lens[idx].to(device)
                tgt = y[idx].to(device)
                logits1, logits2, text = head(x, n, clip_model)
                l_bce = bce_loss(logits1, n, 1.0 - tgt[:, 0], cfg.topk_div)
                l_mil = mil_align_loss(logits2, n, tgt, cfg.topk_div)
                l_sep = sep_loss(text, w_sep)
                loss = l_bce + l_mil + l_sep
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                for key, v in (("loss", loss), ("loss_bce", l_bce), ("loss_mil", l_mil), ("loss_sep", l_sep)):
                    hist[key].append(float(v.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}", refresh=False)
                if val is not None and cfg.eval_every and step % cfg.eval_every == 0:
                    validate(epoch, step)
            hist["lr"].append(opt.param_groups[0]["lr"])
            sched.step()
            if val is not None:
                validate(epoch, step)
                if cfg.reload_best_each_epoch and best_state is not None:
                    head.load_state_dict(best_state)
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, hist
