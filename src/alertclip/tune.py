"""Alert-CLIP tuning: stage 1 (global video-text InfoNCE) and stage 2 (joint global + region + hard-negative loss).

Data (:func:`load_clip_set`): the curated training clips (``data/curated/clips.parquet``, rows with ``split ==
"train"`` only; clips whose ``category`` is listed in ``novel_classes.txt`` are dropped, they are held out for the
open-vocabulary evaluation). Per clip:

* frames: the clip's T frames from ``data/frames/clips-NNN.npy`` at ``(shard, row)``, through the model's val
  preprocessing (:func:`alertclip.backbone.images_to_tensor`); a clip with fewer listed frames than the array's T is
  padded and ``mask`` (B, T) marks its real frames;
* text (video-level InfoNCE): ``global_caption``; when it is missing/empty the ``region_caption`` stands in;
* region (region InfoNCE): ``region_caption`` + ``boxes`` (T x 4 normalised xyxy, NaN = not shown). A clip with no
  region caption or no shown box on a real frame contributes no region (its boxes are all NaN);
* negatives: K negatives of the REGION caption, from ``hardneg.parquet`` (``negatives="hard"``) or
  ``standard_negatives.parquet`` (``"standard"``), ordered by ``rank``; fewer than K are padded and ``neg_valid``
  marks the real ones (a row with none contributes 0 to the hard-negative loss);
* label: ``abnormal`` (balanced batches, validation AUC).

Equal captions are not negatives of each other: the batch carries the caption ids (``text_id``, ``region_id``), the
InfoNCE terms mask same-id pairs (``groups``). Batches (``batching``): ``balanced`` (:class:`BalancedBatches`, half
abnormal + half normal clips, an epoch = the smaller class once), ``pairs`` (the same, and each abnormal clip's
normal partner is a normal clip of its own video when there is one -- on VAGTA-synth its look-alike event, same
scene and place: the two captions then differ only in the event, the one thing the batch must be solved by) or
``random`` (:class:`PermutationBatches`).

Hard-negative anchor (a choice): the negatives invert the region caption, so the positive is the region caption and
the anchor is the clip's REGION embedding ``v_r`` when the clip has a region, else its video embedding ``v`` (the
region caption also describes the clip as a whole). Positive = the region caption (or the clip's text when it has
none). This is :func:`alertclip.losses.hard_negative_loss` on those anchors; global and region terms are
:func:`~alertclip.losses.symmetric_infonce` / :func:`~alertclip.losses.region_infonce`, all with the CLIP model's
own ``logit_scale`` (trained, clamped to 100 like OpenCLIP), so the saved checkpoint carries the temperature.

Validation: a fraction of the TRAINING videos, chosen by a seeded hash of the video name (:func:`val_videos`), never
test videos. After every epoch the validation losses are computed (fixed chunks of ``batch_size`` clips, in order,
eval mode, no grad) and, given the prompts (params ``eval.prompts``), the zero-shot clip AUC (:func:`val_auc`). The
kept weights (``select_on``): the epoch with the highest val AUC, ties to the lower val total (``val_auc``: the task
is telling abnormal from normal, which the losses only stand in for; ``val_video_auc``: the same over every snippet
of the validation videos, background included, as the test is scored: :mod:`alertclip.heldout`), or the lowest val
total (``val_loss``; also the
fallback, logged and recorded, when the prompts are missing or the validation split holds one class only). With
fewer than 2 validation clips the last epoch is kept.

Stage 1 = ``lambda_region = lambda_hard = 0`` from the base backbone (region / hard terms are still measured on the
validation split for reporting); stage 2 = the joint loss from the stage-1 weights (``init="stage1"``: towers and
temporal module) or from the base backbone with a fresh temporal module (``init="base"``, the "joint" ablation).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .backbone import CHECKPOINT_FILE, CONFIG_FILE, images_to_tensor
from .data.sources import read_novel_classes
from .io import atomic_path, sha256_file, write_json
from .losses import hard_negative_loss, region_infonce, scale_from_log, symmetric_infonce
from .model import AlertClipModel, TemporalTransformer
from .params import PromptParams, Stage1Params, Stage2Params
from .train import BatchSource, LoopConfig, PermutationBatches, TrainResult, train
from .train.distributed import DistContext, all_gather_cat, context, shard_slice

log = logging.getLogger(__name__)

__all__ = [
    "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_FILE",
    "BalancedBatches",
    "ClipSet",
    "TuneParams",
    "TunePaths",
    "build_model",
    "config_digest",
    "load_clip_set",
    "load_tuned",
    "make_batch",
    "run_stage",
    "save_tuned",
    "tune",
    "val_auc",
    "val_videos",
    "zero_shot_clip_scores",
]

TEMPORAL_FILE = "temporal.pt"
TEMPORAL_CONFIG_FILE = "temporal.json"
VAL_STATE = "val.pt"  # best-val weights + per-epoch val losses, next to the loop checkpoint (resume)
Stage = Literal["stage1", "stage2"]


TuneParams = Stage1Params | Stage2Params


def stage_of(cfg: TuneParams) -> Stage:
    return "stage2" if isinstance(cfg, Stage2Params) else "stage1"


def as_stage2(cfg: TuneParams) -> Stage2Params:
    """The settings a run trains with, in stage 2's terms: stage 1 is the global loss alone (both lambdas 0) from
    the base backbone, with the hard negatives measured on validation but not trained."""
    if isinstance(cfg, Stage2Params):
        return cfg
    return Stage2Params.model_validate({**cfg.model_dump(), "lambda_region": 0.0, "lambda_hard": 0.0, "init": "base"})


def loop_config(cfg: TuneParams, checkpoint_dir: Path | None, desc: str, progress: bool = False) -> LoopConfig:
    return LoopConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                      grad_clip=cfg.grad_clip or None, seed=cfg.seed, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=cfg.checkpoint_every, progress=progress, desc=desc, precision=cfg.precision)


@dataclass(frozen=True)
class TunePaths:
    """Inputs (repository layout by default, relative to the working directory)."""

    clips: Path = Path("data/curated/clips.parquet")
    frames_dir: Path = Path("data/frames")
    hardneg: Path = Path("data/curated/hardneg.parquet")
    standard_negatives: Path = Path("data/curated/standard_negatives.parquet")
    backbone: Path = Path("data/models/backbone") / CHECKPOINT_FILE
    stage1_dir: Path = Path("data/models/stage1")
    novel_classes: Path = Path("data/synth/published/annotations/novel_classes.txt")

    def inputs(self, cfg: TuneParams) -> list[Path]:
        """The files a run depends on (for the resume-directory hash)."""
        stage, cfg = stage_of(cfg), as_stage2(cfg)
        files = [self.clips, self.negatives(cfg), *sorted(Path(self.frames_dir).glob("clips-*.npy"))]
        files.append(Path(self.stage1_dir) / CHECKPOINT_FILE if stage == "stage2" and cfg.init == "stage1" else self.backbone)
        if stage == "stage2" and cfg.init == "stage1":
            files.append(Path(self.stage1_dir) / TEMPORAL_FILE)
        if Path(self.novel_classes).exists():
            files.append(self.novel_classes)
        return files

    def negatives(self, cfg: TuneParams) -> Path:
        return self.hardneg if as_stage2(cfg).negatives == "hard" else self.standard_negatives


def val_videos(videos: list[str], fraction: float, seed: int) -> set[str]:
    """The validation videos: ``sha256(f"{seed}:{video}")`` mapped to [0, 1) below ``fraction`` (deterministic,
    independent of order and of the other videos). Callers pass TRAINING videos only."""
    out = set()
    for v in set(videos):
        u = int(hashlib.sha256(f"{seed}:{v}".encode()).hexdigest()[:12], 16) / float(1 << 48)
        if u < fraction:
            out.add(v)
    return out


@dataclass
class ClipSet:
    """Training clips in memory (see the module docstring); ``K`` = ``neg_index.shape[1]``."""

    keys: list[str]
    videos: list[str]
    frames: np.ndarray  # (N, T, H, W, 3) uint8
    mask: np.ndarray  # (N, T) bool, True = real frame
    boxes: np.ndarray  # (N, T, 4) float32, NaN = no box (all NaN: no region)
    texts: list[str]  # distinct texts; the index arrays point into it
    text_index: np.ndarray  # (N,) global caption (or the region caption when missing)
    region_index: np.ndarray  # (N,) region caption (or the clip's text when missing; then the clip has no region)
    neg_index: np.ndarray  # (N, K) negatives of the region caption; -1 = padding
    abnormal: np.ndarray  # (N,) bool, the clip's label

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: np.ndarray) -> "ClipSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ClipSet([self.keys[i] for i in idx], [self.videos[i] for i in idx], self.frames[idx], self.mask[idx],
                       self.boxes[idx], self.texts, self.text_index[idx], self.region_index[idx], self.neg_index[idx],
                       self.abnormal[idx])


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def load_clip_set(paths: TunePaths, negatives: str = "hard", k: int = 3) -> ClipSet:
    """Read the curated training clips, their frames and their K negatives (``negatives``: hard|standard)."""
    import polars as pl

    from .data.frames import open_frames

    table = pl.read_parquet(paths.clips).filter(pl.col("split") == "train").sort("clip_key")
    novel = read_novel_classes(paths.novel_classes)
    if novel:
        table = table.filter(~pl.col("category").fill_null("").str.to_lowercase().is_in(sorted(novel)))
    if table.height == 0:
        raise ValueError(f"{paths.clips}: no training clips (after removing novel classes {sorted(novel)})")
    if "abnormal" not in table.columns or table["abnormal"].null_count():
        raise ValueError(f"{paths.clips}: every training clip needs its boolean label in column 'abnormal'")
    shards = open_frames(Path(paths.frames_dir), "clips")
    if not shards:
        raise FileNotFoundError(f"no clips-*.npy frame shards in {paths.frames_dir}")
    T = shards[0].shape[1]
    neg_path = paths.hardneg if negatives == "hard" else paths.standard_negatives
    neg_table = pl.read_parquet(neg_path).sort(["clip_key", "rank"])
    neg_of: dict[str, list[str]] = {}
    for key, text in zip(neg_table["clip_key"].to_list(), neg_table["negative"].to_list()):
        if _str(text):
            neg_of.setdefault(key, []).append(_str(text))

    texts: dict[str, int] = {}

    def code(s: str) -> int:
        return texts.setdefault(s, len(texts))

    N = table.height
    frames = np.zeros((N, T, *shards[0].shape[2:]), dtype=np.uint8)
    mask = np.zeros((N, T), dtype=bool)
    boxes = np.full((N, T, 4), np.nan, dtype=np.float32)
    text_index, region_index = np.zeros(N, np.int64), np.zeros(N, np.int64)
    neg_index = np.full((N, k), -1, np.int64)
    rows = table.select("clip_key", "global_caption", "region_caption", "frames", "boxes", "shard", "row").iter_rows()
    for i, (key, gcap, rcap, fr, bx, shard, row) in enumerate(rows):
        gcap, rcap = _str(gcap), _str(rcap)
        if gcap is None and rcap is None:
            raise ValueError(f"clip {key}: neither a global nor a region caption")
        n = min(len(fr) if fr is not None else T, T)
        frames[i, :n] = shards[shard][row][:n]
        mask[i, :n] = True
        if rcap is not None and bx is not None and len(bx):
            b = np.asarray([list(x) if x is not None else [np.nan] * 4 for x in bx[:n]], dtype=np.float32).reshape(-1, 4)
            boxes[i, :len(b)] = b
        text_index[i] = code(gcap or rcap)
        region_index[i] = code(rcap or gcap)
        for j, neg in enumerate(neg_of.get(key, [])[:k]):
            neg_index[i, j] = code(neg)
    abnormal = np.asarray(table["abnormal"].cast(pl.Boolean).to_list(), dtype=bool)
    return ClipSet(table["clip_key"].to_list(), table["video"].to_list(), frames, mask, boxes, list(texts),
                   text_index, region_index, neg_index, abnormal)


def make_batch(data: ClipSet, idx: np.ndarray, model: AlertClipModel, tokens: Tensor) -> dict[str, Tensor]:
    """Clips ``idx`` -> tensors: frames (B, T, 3, H, W), mask, boxes, text / region / negative tokens, neg_valid and
    the caption ids ``text_id`` / ``region_id`` (B,) (equal ids = equal captions: not each other's negatives)."""
    idx = np.asarray(idx, dtype=np.int64)
    B, T = len(idx), data.frames.shape[1]
    x = images_to_tensor(data.frames[idx].reshape(B * T, *data.frames.shape[2:]), model.clip)
    neg = torch.as_tensor(data.neg_index[idx])
    valid = neg >= 0
    region = torch.as_tensor(data.region_index[idx])
    neg = torch.where(valid, neg, region[:, None])  # padding: any real text, masked out by neg_valid
    return {"frames": x.view(B, T, *x.shape[1:]), "mask": torch.as_tensor(data.mask[idx]),
            "boxes": torch.as_tensor(data.boxes[idx]), "text": tokens[torch.as_tensor(data.text_index[idx])],
            "region_text": tokens[region], "neg_text": tokens[neg.reshape(-1)], "neg_valid": valid,
            "text_id": torch.as_tensor(data.text_index[idx]), "region_id": region}


class BatchEncoder(torch.nn.Module):
    """``forward(batch, full)`` -> the embeddings a batch's losses need (the unit DDP wraps: gradients of everything
    it touches are synchronised). ``full=False`` (stage-1 training): video + clip text only.

    Regions come back at fixed shape so they can be gathered across processes: ``v_r`` (B, D) with zeros where
    ``has_region`` (B,) is False. The caption ids ``text_id`` / ``region_id`` (B,) pass through, so they are gathered
    with the embeddings they label.
    """

    def __init__(self, model: AlertClipModel):
        super().__init__()
        self.model = model

    def forward(self, b: dict[str, Tensor], full: bool) -> dict[str, Tensor]:
        model = self.model
        scale = scale_from_log(model.clip.logit_scale)
        if not full:
            return {"v": model.encode_video(b["frames"], b["mask"]).float(),
                    "t": model.encode_text(b["text"]).float(), "scale": scale, "text_id": b["text_id"]}
        B, K = b["neg_valid"].shape
        boxes, mask = b["boxes"], b["mask"].bool()
        has = (mask & ~torch.isnan(boxes).any(-1)).any(1)  # clips with a shown box on a real frame (the model's rule)
        if not bool(has.any()):
            # No region in this shard: pool a whole-frame box on its first real frame anyway (discarded: has_region stays
            # False), so v_r is in the graph on every process. Under DDP each all_gather's backward is a collective all
            # processes must enter; one whose v_r needs no grad would skip it and hang the others.
            boxes = boxes.clone()
            boxes.view(-1, 4)[int(mask.reshape(-1).float().argmax())] = torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
        v, v_r, index = model.encode_video_and_regions(b["frames"], boxes, mask)
        v = v.float()
        txt = model.encode_text(torch.cat([b["text"], b["region_text"], b["neg_text"]])).float()
        return {"v": v, "v_r": v.new_zeros(B, v.shape[1]).index_copy(0, index, v_r.float()), "has_region": has,
                "t": txt[:B], "t_reg": txt[B:2 * B], "t_neg": txt[2 * B:].view(B, K, -1),
                "neg_valid": b["neg_valid"], "scale": scale, "text_id": b["text_id"], "region_id": b["region_id"]}


def losses_from_embeddings(e: dict[str, Tensor], lambda_region: float, lambda_hard: float) -> dict[str, Tensor]:
    """The loss dict from :class:`BatchEncoder` outputs (local, or gathered from every process). Caption ids
    (``text_id``, ``region_id``), when present, keep equal captions out of each other's InfoNCE negatives."""
    scale = e["scale"]
    l_global = symmetric_infonce(e["v"], e["t"], scale, e.get("text_id"))
    if "v_r" not in e:
        zero = l_global.detach().new_zeros(())
        return {"loss": l_global, "global": l_global.detach(), "region": zero, "hard": zero, "scale": scale.detach()}
    index = e["has_region"].nonzero().flatten()
    if index.numel() == 0:
        log.info("batch without regions: region loss skipped (0 this step)")
    region_id = e.get("region_id")
    l_region = region_infonce(e["v_r"][index], e["t_reg"][index], scale, None if region_id is None else region_id[index])
    anchor = torch.where(e["has_region"][:, None], e["v_r"], e["v"])  # region embedding where the clip has one
    K = e["t_neg"].shape[1]
    l_hard = hard_negative_loss(anchor, e["t_reg"], e["t_neg"], scale, e["neg_valid"]) if K else l_global.new_zeros(())
    total = l_global
    if lambda_region > 0:
        total = total + lambda_region * l_region
    if lambda_hard > 0:
        total = total + lambda_hard * l_hard
    return {"loss": total, "global": l_global.detach(), "region": l_region.detach(), "hard": l_hard.detach(),
            "scale": scale.detach(), "n_regions": torch.tensor(float(index.numel()))}


def batch_losses(model: AlertClipModel | torch.nn.Module, batch: dict[str, Tensor], lambda_region: float,
                 lambda_hard: float, parts: bool = False, ctx: DistContext | None = None) -> dict[str, Tensor]:
    """The stage's loss dict (``loss`` + detached ``global``/``region``/``hard``/``scale``/``n_regions``).

    ``model``: an :class:`AlertClipModel`, or a (DDP-wrapped) :class:`BatchEncoder`. With several processes
    (``ctx``) the batch is this process's shard and the losses are over the gathered global batch.
    With both lambdas 0 and ``parts=False`` (stage-1 training) only the video embedding and clip texts are computed.
    """
    encoder = BatchEncoder(model) if isinstance(model, AlertClipModel) else model
    device = next(encoder.parameters()).device
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    e = encoder(b, parts or lambda_region > 0 or lambda_hard > 0)
    if ctx is not None and ctx.enabled:
        e = {k: (v if k == "scale" else all_gather_cat(v, ctx)) for k, v in e.items()}
    return losses_from_embeddings(e, lambda_region, lambda_hard)


@torch.no_grad()
def evaluate(model: AlertClipModel, data: ClipSet, tokens: Tensor, batch_size: int, lambda_region: float,
             lambda_hard: float) -> dict[str, float] | None:
    """Mean validation losses over fixed, ordered chunks of about ``batch_size`` clips (weighted by chunk size)."""
    if len(data) < 2:
        return None
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    chunks = np.array_split(np.arange(len(data)), max(1, len(data) // batch_size))
    for idx in chunks:
        out = batch_losses(model, make_batch(data, idx, model, tokens), lambda_region, lambda_hard, parts=True)
        for key in ("loss", "global", "region", "hard"):
            sums[key] = sums.get(key, 0.0) + float(out[key]) * len(idx)
    model.train(was)
    return {("total" if k == "loss" else k): v / len(data) for k, v in sums.items()}


@torch.no_grad()
def zero_shot_clip_scores(model: AlertClipModel, data: ClipSet, t_abnormal: np.ndarray, t_normal: np.ndarray,
                          batch_size: int) -> np.ndarray:
    """Per clip (float64): the mean over its real frames of ``cos(frame, t_A) - cos(frame, t_N)``.

    ``t_abnormal`` / ``t_normal``: unit (D,) prompt-set vectors. Frames go through the image tower alone (no temporal
    module): the zero-shot evaluations score frame/snippet features the same way."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    direction = torch.as_tensor(np.asarray(t_abnormal, np.float64) - np.asarray(t_normal, np.float64), device=device)
    out = np.zeros(len(data), dtype=np.float64)
    T = data.frames.shape[1]
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        mask = torch.as_tensor(data.mask[idx]).reshape(-1)
        x = images_to_tensor(data.frames[idx].reshape(len(idx) * T, *data.frames.shape[2:]), model.clip)[mask]
        sims = model.clip.encode_image(x.to(device), normalize=True).double() @ direction  # cos_A - cos_N per frame
        per_frame = torch.zeros(len(idx) * T, dtype=torch.float64)
        per_frame[mask] = sims.cpu()
        out[idx] = (per_frame.view(len(idx), T).sum(1) / mask.view(len(idx), T).sum(1)).numpy()
    model.train(was)
    return out


@torch.no_grad()
def prompt_vectors(model: AlertClipModel, tokenizer: Any, prompts: PromptParams) -> tuple[np.ndarray, np.ndarray]:
    """``(t_A, t_N)``: the prompt sets through the model's current text tower, each reduced to one unit vector by
    :func:`alertclip.eval.metrics.prompt_set_embedding` (normalise each prompt, average, re-normalise)."""
    from .eval.prompts import prompt_set_embedding

    was = model.training
    model.eval()
    device = next(model.parameters()).device
    emb = {kind: model.encode_text(tokenizer(prompts.texts(kind)).to(device)).float().cpu().numpy()
           for kind in ("abnormal", "normal")}
    model.train(was)
    return prompt_set_embedding(emb["abnormal"], "abnormal prompts"), prompt_set_embedding(emb["normal"], "normal prompts")


def val_auc(model: AlertClipModel, data: ClipSet, tokenizer: Any, prompts: PromptParams, batch_size: int) -> float:
    """ROC AUC (sklearn) of the clip labels ``data.abnormal`` against :func:`zero_shot_clip_scores` with the prompt
    sets of the current weights; NaN when a score is not finite. Needs both classes in ``data``."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(data.abnormal, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError(f"val_auc needs abnormal and normal clips; got {int(labels.sum())} of {labels.size} abnormal")
    t_a, t_n = prompt_vectors(model, tokenizer, prompts)
    scores = zero_shot_clip_scores(model, data, t_a, t_n, batch_size)
    if not np.isfinite(scores).all():
        return float("nan")
    return float(roc_auc_score(labels.astype(np.int64), scores))


def build_model(cfg: TuneParams, checkpoint: str | Path | None, temporal_state: str | Path | None = None):
    """``(AlertClipModel, tokenizer)``: OpenCLIP ``cfg.arch`` from ``checkpoint`` + a seeded temporal module
    (loaded from ``temporal_state`` when given)."""
    from . import factory

    torch.manual_seed(cfg.seed)
    clip, _, _, tokenizer = factory.create(cfg.arch, pretrained=checkpoint)
    dim = int(clip.text_projection.shape[1]) if isinstance(clip.text_projection, torch.nn.Parameter) else clip.embed_dim
    temporal = TemporalTransformer(dim, layers=cfg.temporal_layers, heads=cfg.temporal_heads)
    if temporal_state is not None:
        temporal.load_state_dict(torch.load(temporal_state, map_location="cpu", weights_only=True))
    return AlertClipModel(clip, temporal), tokenizer


def save_tuned(model: AlertClipModel, arch: str, out_dir: str | Path) -> Path:
    """``open_clip_model.pt`` (towers only, plain OpenCLIP), ``config.json`` (open_clip model config),
    ``temporal.pt`` (temporal state_dict) and ``temporal.json`` (its constructor arguments)."""
    import open_clip

    from . import factory

    out_dir = Path(out_dir)
    ckpt = factory.save_checkpoint(model, out_dir / CHECKPOINT_FILE, arch=arch)
    write_json(out_dir / CONFIG_FILE, open_clip.get_model_config(arch))
    tm = model.temporal
    # Save through a file handle: given a path, torch.save names the archive's inner folder after the (random)
    # temporary file name, and the bytes would differ on every run.
    with atomic_path(out_dir / TEMPORAL_FILE) as tmp, open(tmp, "wb") as fh:
        torch.save({k: v.detach().cpu().clone() for k, v in tm.state_dict().items()}, fh)
    write_json(out_dir / TEMPORAL_CONFIG_FILE, {"dim": tm.dim, "layers": len(tm.encoder.layers),
                                                "heads": tm.encoder.layers[0].self_attn.num_heads, "max_t": tm.max_t})
    return ckpt


def load_tuned(model_dir: str | Path, arch: str = "alertclip-tiny") -> tuple[AlertClipModel, Any]:
    """Rebuild a model written by :func:`save_tuned`: ``(AlertClipModel, tokenizer)`` in eval mode."""
    from . import factory

    model_dir = Path(model_dir)
    tc = json.loads((model_dir / TEMPORAL_CONFIG_FILE).read_text(encoding="utf-8"))
    clip, _, _, tokenizer = factory.create(arch, pretrained=model_dir / CHECKPOINT_FILE)
    temporal = TemporalTransformer(tc["dim"], layers=tc["layers"], heads=tc["heads"], max_t=tc["max_t"])
    temporal.load_state_dict(torch.load(model_dir / TEMPORAL_FILE, map_location="cpu", weights_only=True))
    return AlertClipModel(clip, temporal).eval(), tokenizer


def config_digest(cfg: TuneParams, files: list[Path], prompts: PromptParams | None = None) -> str:
    """Short hash of the stage, the config, the validation prompts (they choose the kept epoch) and the input files:
    names the resume-checkpoint directory of one run."""
    key = {"stage": stage_of(cfg), **as_stage2(cfg).model_dump()}
    if prompts is not None:
        key["val_prompts"] = prompts.model_dump()
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()[:16]


def _generator(seed: int, stream: str, k: int) -> torch.Generator:
    """A torch generator of its own per ``(seed, stream, k)`` (e.g. one per epoch), independent of the global RNG."""
    h = int.from_bytes(hashlib.sha256(f"{int(seed)}:{stream}:{int(k)}".encode()).digest()[:8], "little") >> 1
    return torch.Generator().manual_seed(h)


class BalancedBatches:
    """Batches of ``batch_size / 2`` abnormal + ``batch_size / 2`` normal clips (``batching: balanced``).

    An epoch is the smaller class once: ``steps_per_epoch = n_small // (batch_size / 2)`` (a remainder is dropped, like
    ``drop_last``), in a permutation seeded by ``(seed, epoch)``. The larger class is read on across epochs from a
    stream of seeded permutations (cycle ``c`` seeded by ``(seed, c)``), so its clips come round evenly rather than
    the same first ones every epoch; where an epoch spans two cycles, the later cycle puts the clips the epoch already
    had from the earlier one last (still a permutation), so no clip appears twice in an epoch.

    Inside a batch the classes alternate, pair by pair in a seeded order: every contiguous DDP shard
    (:func:`~alertclip.train.distributed.shard_slice`) of >= 2 clips holds both classes. Everything is a function of
    ``(seed, epoch)``: ``epoch(e, start)`` resumes mid-epoch with exactly the batches an uninterrupted run gets.
    ``fetch(indices)`` turns a 1-D LongTensor of dataset indices into a batch (as for :class:`PermutationBatches`).
    """

    def __init__(self, abnormal: np.ndarray, batch_size: int, seed: int, fetch: Callable[[Tensor], Any],
                 partner: np.ndarray | None = None) -> None:
        labels = np.asarray(abnormal, dtype=bool)
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"balanced batches need an even batch_size >= 2; got {batch_size}")
        half = batch_size // 2
        pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
        if min(len(pos), len(neg)) < half:
            raise ValueError(f"balanced batches of {batch_size} need >= {half} abnormal and >= {half} normal training "
                             f"clips; got {len(pos)} abnormal and {len(neg)} normal (set batching: random, or a smaller "
                             f"batch_size)")
        self.small, self.large = (neg, pos) if len(neg) <= len(pos) else (pos, neg)
        self.half, self.batch_size, self.seed, self.fetch = half, batch_size, int(seed), fetch
        self.steps_per_epoch = len(self.small) // half
        self._cycles: list[np.ndarray] = []  # the larger class's permutations (positions into self.large)
        # partner[i] (dataset index or -1): the larger-class clip that goes next to small-class clip i instead of the
        # stream's next one (``batching: pairs``). The stream still advances, so other batches are unchanged.
        self.partner = None if partner is None else np.asarray(partner, dtype=np.int64)

    def _cycle(self, c: int) -> np.ndarray:
        L, m = len(self.large), self.steps_per_epoch * self.half  # m <= n_small <= L: an epoch spans <= 2 cycles
        while len(self._cycles) <= c:
            k = len(self._cycles)
            perm = torch.randperm(L, generator=_generator(self.seed, "large", k)).numpy()
            if k:
                epoch_start = (k * L // m) * m  # stream position where the epoch holding cycle k's first item starts
                taken = self._cycles[k - 1][epoch_start - (k - 1) * L:] if epoch_start < k * L else perm[:0]
                late = np.isin(perm, taken)
                perm = np.concatenate([perm[~late], perm[late]])
            self._cycles.append(perm)
        return self._cycles[c]

    def indices(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s dataset indices, (steps_per_epoch, batch_size), every row one batch in order."""
        steps, half, L = self.steps_per_epoch, self.half, len(self.large)
        gen = _generator(self.seed, "epoch", epoch)
        small = self.small[torch.randperm(len(self.small), generator=gen).numpy()[:steps * half]]
        pos = np.arange(epoch * steps * half, (epoch + 1) * steps * half)
        cycles = {c: self._cycle(c) for c in np.unique(pos // L).tolist()}
        large = self.large[np.array([cycles[p // L][p % L] for p in pos.tolist()], dtype=np.int64)]
        if self.partner is not None:
            mate = self.partner[small]
            large = np.where(mate >= 0, mate, large)
        pairs = np.stack([small, large], axis=1).reshape(steps, half, 2)
        flip = torch.randint(0, 2, (steps, half), generator=gen).numpy().astype(bool)
        pairs[flip] = pairs[flip][:, ::-1]
        return pairs.reshape(steps, 2 * half)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]:
        batches = self.indices(epoch)
        for i in range(start, self.steps_per_epoch):
            yield self.fetch(torch.as_tensor(batches[i]))


def lookalike_partners(data: ClipSet) -> np.ndarray:
    """For every abnormal clip, a normal clip of the same video (the first by key), else -1; -1 for normal clips."""
    normal_of: dict[str, int] = {}
    for i in np.flatnonzero(~data.abnormal).tolist():
        normal_of.setdefault(data.videos[i], i)
    return np.array([normal_of.get(v, -1) if a else -1 for v, a in zip(data.videos, data.abnormal)], dtype=np.int64)


class _Best(NamedTuple):
    epoch: int
    total: float
    auc: float | None
    state: dict  # state_dict copy (CPU)


def _auc_key(auc: float | None) -> float:
    return auc if auc is not None and math.isfinite(auc) else -math.inf


class _ValidatedBatches:
    """Wraps the training batches: after an epoch's last update it validates and keeps the best weights (the loop
    asks the generator for the next batch only after applying the previous update). Best = highest ``auc``, ties
    to the lower ``total`` (``select_on="val_auc"``), or lowest ``total`` (``"val_loss"``); equal keys keep the
    earlier epoch. State goes to ``state_path`` (if set) after each epoch so a resumed run keeps its best-val weights."""

    def __init__(self, inner: BatchSource, validate, model, state_path: Path | None, on_val=None,
                 select_on: Literal["val_auc", "val_loss"] = "val_loss"):
        self.inner, self.validate, self.model, self.state_path = inner, validate, model, state_path
        self.on_val, self.select_on = on_val, select_on
        self.steps_per_epoch, self.batch_size = inner.steps_per_epoch, inner.batch_size
        self.records: dict[int, dict] = {}
        self.best: _Best | None = None
        if state_path is not None and state_path.exists():
            self.load(state_path)

    def load(self, state_path: Path) -> None:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        self.records = {int(k): v for k, v in state["records"].items()}
        if state.get("best_state") is not None:
            auc = float(state.get("best_auc", float("nan")))
            self.best = _Best(int(state["best_epoch"]), float(state["best_total"]), auc if math.isfinite(auc) else None,
                              state["best_state"])

    def better(self, val: dict) -> bool:
        """Whether the validation result ``val`` beats the best so far."""
        if self.best is None:
            return True
        if self.select_on == "val_auc":
            new, old = _auc_key(val.get("auc")), _auc_key(self.best.auc)
            if new != old:
                return new > old
        return val["total"] < self.best.total

    def run_val(self, epoch: int) -> None:
        if epoch in self.records:
            return
        val = self.validate()
        self.records[epoch] = val or {}
        if val is not None and self.better(val):
            state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            self.best = _Best(epoch, val["total"], val.get("auc"), state)
        log.info("epoch %d validation: %s", epoch, val)
        if self.state_path is not None:
            best = self.best
            with atomic_path(self.state_path) as tmp:
                torch.save({"records": self.records, "best_epoch": best.epoch if best else -1,
                            "best_total": best.total if best else float("nan"),
                            "best_auc": best.auc if best and best.auc is not None else float("nan"),
                            "best_state": best.state if best else None}, tmp)
        if self.on_val is not None and val is not None:
            self.on_val(epoch, val)  # e.g. an Optuna trial reporting (and maybe raising TrialPruned)

    def epoch(self, epoch: int, start: int = 0):
        if start == 0 and epoch > 0:
            self.run_val(epoch - 1)  # a run stopped right after an epoch's last update validates on resume
        yield from self.inner.epoch(epoch, start)
        self.run_val(epoch)


def _auc_unavailable(prompts: PromptParams | None, val_set: ClipSet) -> str | None:
    """Why the validation AUC cannot be computed (None: it can)."""
    if prompts is None:
        return "no validation prompts were given (eval.prompts)"
    n_abnormal = int(np.asarray(val_set.abnormal).sum())
    if len(val_set) < 2 or n_abnormal in (0, len(val_set)):
        return f"the validation split has {n_abnormal} abnormal and {len(val_set) - n_abnormal} normal clips (needs both)"
    return None


def tune(cfg: TuneParams, paths: TunePaths = TunePaths(), checkpoint_dir: Path | None = None,
         progress: bool = False, on_val=None, prompts: PromptParams | None = None) -> tuple[AlertClipModel, TrainResult, dict]:
    """Train one stage; returns ``(model with the best-val weights, loop result, metrics)`` (metrics carry timings
    ``wall_s`` / ``samples_per_s`` / ``resumed_from_step`` from the loop: callers log them, not store them).

    ``on_val(epoch, val)`` is called after each epoch's validation with the val losses (and ``auc`` when computed;
    a sweep reports to Optuna there; an exception it raises, such as ``optuna.TrialPruned``, ends the run).

    ``prompts`` (params ``eval.prompts``): the prompt sets of the validation AUC. Without them, or with one class
    only in the validation split, the kept epoch is chosen on the validation loss (a warning;
    ``metrics["select_fallback"]`` says why).

    ``result.interrupted``: SIGTERM arrived; the loop checkpoint (and ``val.pt``) are in ``checkpoint_dir``.
    """
    stage, cfg = stage_of(cfg), as_stage2(cfg)
    if stage == "stage2" and cfg.init == "stage1":
        model, tokenizer = build_model(cfg, Path(paths.stage1_dir) / CHECKPOINT_FILE, Path(paths.stage1_dir) / TEMPORAL_FILE)
    else:
        model, tokenizer = build_model(cfg, paths.backbone)
    model.set_trainable("visual", cfg.train_visual, cfg.last_n)
    model.set_trainable("text", cfg.train_text, cfg.last_n)
    model.clip.set_grad_checkpointing(cfg.grad_checkpointing)
    if cfg.temperature is not None:
        with torch.no_grad():
            model.clip.logit_scale.fill_(float(np.log(1.0 / cfg.temperature)))
    ctx = context()
    device = ctx.device()
    model.to(device)

    data = load_clip_set(paths, cfg.negatives, cfg.k_negatives)
    held = val_videos(data.videos, cfg.val_fraction, cfg.seed)
    is_val = np.array([v in held for v in data.videos], dtype=bool)
    train_set, val_set = data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))
    if len(train_set) < cfg.batch_size:
        raise ValueError(f"{len(train_set)} training clips (after the validation split) < batch_size {cfg.batch_size}")
    local = shard_slice(cfg.batch_size, ctx)  # checks divisibility before any work
    tokens = tokenizer(data.texts)
    val_prompts = prompts
    no_auc = _auc_unavailable(val_prompts, val_set)
    select_on, fallback = cfg.select_on, None
    snippets = None
    if select_on == "val_video_auc" and no_auc is None:
        from .heldout import load_snippet_set

        snippets = load_snippet_set(paths.clips, paths.frames_dir, held, read_novel_classes(paths.novel_classes))
        if snippets.abnormal.all() or not snippets.abnormal.any():
            no_auc = (f"the validation videos' {len(snippets)} snippets hold {int(snippets.abnormal.sum())} abnormal "
                      "ones (needs both kinds)")
    if select_on in ("val_auc", "val_video_auc") and no_auc is not None and len(val_set) >= 2:
        fallback = no_auc
        log.warning("%s: select_on=%s, but %s: selecting the epoch on the validation loss instead", stage, select_on,
                    no_auc)
        select_on = "val_loss"
    log.info("%s: %d train clips (%d abnormal), %d val clips (%d abnormal, %d videos), %d regions, %d texts, "
             "%d process(es), %s batches", stage, len(train_set), int(train_set.abnormal.sum()), len(val_set),
             int(val_set.abnormal.sum()), len(held), int((~np.isnan(train_set.boxes).any(-1) & train_set.mask).any(1).sum()),
             len(data.texts), ctx.world_size, cfg.batching)
    encoder: torch.nn.Module = BatchEncoder(model)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        encoder = DistributedDataParallel(encoder, device_ids=[device.index] if device.type == "cuda" else None)

    def fetch(idx: Tensor) -> dict[str, Tensor]:
        return make_batch(train_set, idx.numpy()[local], model, tokens)  # this process's shard of the global batch

    def loss_fn(batch: dict[str, Tensor]) -> dict:
        return batch_losses(encoder, batch, cfg.lambda_region, cfg.lambda_hard, ctx=ctx)

    def validate() -> dict | None:
        # Every process scores the whole (small) validation split: same weights, same numbers, same best epoch.
        val = evaluate(model, val_set, tokens, cfg.batch_size, cfg.lambda_region, cfg.lambda_hard)
        if val is not None and no_auc is None:  # also measured (not selected on) with select_on=val_loss
            val["clip_auc"] = val_auc(model, val_set, tokenizer, val_prompts, cfg.batch_size)
            val["auc"] = val["clip_auc"]
            if snippets is not None:
                from .heldout import snippet_auc

                val["auc"] = snippet_auc(model.clip, snippets, *prompt_vectors(model, tokenizer, val_prompts))
        return val

    inner: BatchSource
    if cfg.batching in ("balanced", "pairs"):
        partner = lookalike_partners(train_set) if cfg.batching == "pairs" else None
        inner = BalancedBatches(train_set.abnormal, cfg.batch_size, cfg.seed, fetch, partner=partner)
    else:
        inner = PermutationBatches(len(train_set), cfg.batch_size, cfg.seed, fetch)
    state_path = Path(checkpoint_dir) / VAL_STATE if checkpoint_dir and ctx.is_main else None
    batches = _ValidatedBatches(inner, validate, model, state_path, on_val,
                                "val_auc" if select_on == "val_video_auc" else select_on)
    if checkpoint_dir and not ctx.is_main and (Path(checkpoint_dir) / VAL_STATE).exists():
        batches.load(Path(checkpoint_dir) / VAL_STATE)  # resume: read-only on the other processes
    params = [p for p in model.parameters() if p.requires_grad]
    result = train(model, params, loss_fn, batches, loop_config(cfg, checkpoint_dir, stage, progress))
    metrics = dict(result.final)
    if not result.interrupted:
        batches.run_val(cfg.epochs - 1)  # the loop does not ask for a batch after the very last update when stopped
        last = [r for r in result.history if r["epoch"] == cfg.epochs - 1]
        metrics["train_last_epoch"] = {k: float(np.mean([r[k] for r in last])) for k in ("loss", "global", "region", "hard")}
        metrics["val"] = [{"epoch": e, **batches.records[e]} for e in sorted(batches.records)]
        if cfg.lambda_region > 0:
            metrics["batches_without_regions"] = sum(1 for r in result.history if r.get("n_regions") == 0)
        if batches.best is not None:
            model.load_state_dict(batches.best.state)
            metrics.update(best_epoch=batches.best.epoch, best_val_total=batches.best.total, best_val_auc=batches.best.auc,
                           selected_on=select_on)
        else:  # fewer than 2 validation clips: nothing to select on
            metrics.update(best_epoch=cfg.epochs - 1, best_val_total=None, best_val_auc=None, selected_on="last_epoch")
        if fallback is not None:
            metrics["select_fallback"] = fallback
        metrics.update(stage=stage, n_train_clips=len(train_set), n_val_clips=len(val_set), n_val_videos=len(held),
                       n_train_abnormal=int(train_set.abnormal.sum()), n_val_abnormal=int(val_set.abnormal.sum()),
                       batching=cfg.batching, lambda_region=cfg.lambda_region, lambda_hard=cfg.lambda_hard,
                       negatives=cfg.negatives, init=cfg.init if stage == "stage2" else "base")
    model.eval()
    return model, result, metrics


def run_stage(cfg: TuneParams, progress: bool = True, paths: TunePaths = TunePaths(),
              models_dir: Path = Path("data/models"), results_dir: Path = Path("results"),
              cache_dir: Path = Path("data/.cache"), variant: str | None = None,
              prompts: PromptParams | None = None) -> dict:
    """The ``stage1`` / ``stage2`` pipeline stage (``cfg``: ``p.stage1`` / a ``p.stage2`` variant; ``prompts``:
    ``p.eval.prompts``, the prompt sets of the validation AUC, see :func:`tune`).

    Writes ``<models_dir>/<stage>/`` (:func:`save_tuned`), ``<results_dir>/<stage>/metrics.json`` (no timings) and
    ``curve.csv``; resume checkpoints in ``<cache_dir>/<stage>/<config hash>/`` (removed on success). Interrupted:
    ``SystemExit(143)``. Returns the metrics written. A ``variant`` (an ablation, ``stage2@<variant>``) writes to
    ``<models_dir>/<stage>/<variant>/`` and ``<results_dir>/<stage>/<variant>/`` instead.
    """
    import shutil

    from .train import write_curve
    from .train.distributed import init_from_env

    stage = stage_of(cfg)
    ctx = init_from_env()  # several processes under torchrun; one otherwise
    ckpt_dir = Path(cache_dir) / stage / config_digest(cfg, paths.inputs(cfg), prompts)
    model, result, metrics = tune(cfg, paths, checkpoint_dir=ckpt_dir, progress=progress, prompts=prompts)
    if not ctx.is_main:  # same weights everywhere: process 0 writes the outputs
        if result.interrupted:
            raise SystemExit(143)
        return metrics
    if result.interrupted:
        log.warning("%s: interrupted at step %d/%d; checkpoint in %s -- rerun the stage to resume", stage, result.step,
                    result.total_steps, ckpt_dir)
        raise SystemExit(143)
    out_model, out = Path(models_dir) / stage, Path(results_dir) / stage
    if variant:
        out_model, out = out_model / variant, out / variant
        metrics["variant"] = variant
    ckpt = save_tuned(model, cfg.arch, out_model)
    write_curve(out / "curve.csv", result.history)
    # Timings change run to run; they go to the log, so metrics.json (hashed in dvc.lock) stays reproducible.
    timing = {k: metrics.pop(k) for k in ("wall_s", "samples_per_s", "resumed_from_step", "processes") if k in metrics}
    log.info("%s timing: %s", stage, timing)
    metrics["sha256"] = sha256_file(ckpt)
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    log.info("%s: %d steps, loss %.4f -> %.4f, kept epoch %s (on %s): val AUC %s, val total %s", stage, result.step,
             metrics["first_loss"], metrics["final_loss"], metrics.get("best_epoch"), metrics.get("selected_on"),
             metrics.get("best_val_auc"), metrics.get("best_val_total"))
    return metrics
