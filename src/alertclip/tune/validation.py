"""Validation after every epoch: losses, zero-shot AUC of the held-out clips or videos, and the kept epoch."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..factory import images_to_tensor
from ..io import atomic_path
from ..model import AlertClipModel
from ..params import PromptParams
from .batches import batch_losses, make_batch
from .data import ClipSet

log = logging.getLogger(__name__)


VAL_STATE = "val.pt"  # best-val weights + per-epoch val losses, next to the loop checkpoint (resume)


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
    :func:`alertclip.prompts.prompt_set_embedding` (normalise each prompt, average, re-normalise)."""
    from ..prompts import prompt_set_embedding

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


class Kept(NamedTuple):
    """The best epoch so far and a CPU copy of its weights."""

    epoch: int
    total: float
    auc: float | None
    state: dict  # state_dict copy (CPU)


def auc_key(auc: float | None) -> float:
    return auc if auc is not None and math.isfinite(auc) else -math.inf


class BestEpoch:
    """The epoch-end callback of :func:`alertclip.train.loop.train` that validates and keeps the best weights.

    Best = highest ``auc``, ties to the lower ``total`` (``select_on="val_auc"``), or lowest ``total``
    (``"val_loss"``); equal keys keep the earlier epoch. ``validate()`` returns the epoch's validation dict (None:
    nothing to validate on). State goes to ``state_path`` (if set) after each epoch so a resumed run keeps its
    best-val weights; ``on_val(epoch, val)`` is then called (a sweep reports to Optuna there and may raise
    ``TrialPruned``)."""

    def __init__(self, validate: Callable[[], dict | None], model, state_path: Path | None, on_val=None,
                 select_on: Literal["val_auc", "val_loss"] = "val_loss"):
        self.validate, self.model, self.state_path = validate, model, state_path
        self.on_val, self.select_on = on_val, select_on
        self.records: dict[int, dict] = {}
        self.best: Kept | None = None
        if state_path is not None and state_path.exists():
            self.load(state_path)

    def load(self, state_path: Path) -> None:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        self.records = {int(k): v for k, v in state["records"].items()}
        if state.get("best_state") is not None:
            auc = float(state.get("best_auc", float("nan")))
            self.best = Kept(int(state["best_epoch"]), float(state["best_total"]), auc if math.isfinite(auc) else None,
                             state["best_state"])

    def better(self, val: dict) -> bool:
        """Whether the validation result ``val`` beats the best so far."""
        if self.best is None:
            return True
        if self.select_on == "val_auc":
            new, old = auc_key(val.get("auc")), auc_key(self.best.auc)
            if new != old:
                return new > old
        return val["total"] < self.best.total

    def epoch_start(self, epoch: int, start: int) -> None:
        if start == 0 and epoch > 0:
            self.epoch_end(epoch - 1)  # a run stopped right after an epoch's last update validates on resume

    def epoch_end(self, epoch: int) -> None:
        if epoch in self.records:
            return
        val = self.validate()
        self.records[epoch] = val or {}
        if val is not None and self.better(val):
            state = copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()})
            self.best = Kept(epoch, val["total"], val.get("auc"), state)
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


def auc_unavailable(prompts: PromptParams | None, val_set: ClipSet) -> str | None:
    """Why the validation AUC cannot be computed (None: it can)."""
    if prompts is None:
        return "no validation prompts were given (eval.prompts)"
    n_abnormal = int(np.asarray(val_set.abnormal).sum())
    if len(val_set) < 2 or n_abnormal in (0, len(val_set)):
        return f"the validation split has {n_abnormal} abnormal and {len(val_set) - n_abnormal} normal clips (needs both)"
    return None
