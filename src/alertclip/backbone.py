"""The base backbone: a tiny OpenCLIP pre-trained on the synthetic world (or real OpenCLIP weights, fetched).

:func:`pretrain` trains ``factory.create(arch)`` from random init with CLIP's symmetric InfoNCE on the synthetic
pre-training set (``data/synth/pretrain``: ``images.npy`` (N, H, W, 3) uint8 and ``captions.parquet`` with columns
``row, video, split, caption``; captions name scene, objects and colours, and event words that are not grounded in the
pixels: see :mod:`alertclip.synth.captions`) through
:func:`alertclip.train.loop.train`. Images go through the model's val preprocessing done on arrays
(:func:`images_to_tensor`: bicubic resize to the model's size when needed, scale to [0, 1], normalise with the model's
mean/std; no augmentation), so training is deterministic on CPU. The held-out split gives image->text R@k.

:func:`save_backbone` writes a plain OpenCLIP checkpoint (``factory.save_checkpoint``), the model config JSON next to
it and a sha256 record; :func:`fetch_pretrained` gets published weights through open_clip and records their hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .data.pretrain import PretrainSet
from .factory import CHECKPOINT_FILE, CONFIG_FILE, RECORD_FILE, images_to_tensor
from .io import sha256_file, write_json
from .losses import scale_from_log, symmetric_infonce
from .params import BackboneParams
from .retrieval import retrieval_at_k
from .train.loop import LoopConfig, PermutationBatches, TrainResult, train

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "RECORD_FILE",
    "PretrainedUnavailable",
    "fetch_pretrained",
    "images_to_tensor",
    "pretrain",
    "retrieval_at_k",
    "save_backbone",
]



def loop_config(cfg: BackboneParams, checkpoint_dir: Path | None, progress: bool = False) -> LoopConfig:
    return LoopConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                      grad_clip=cfg.grad_clip or None, seed=cfg.seed, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=cfg.checkpoint_every, progress=progress, desc="backbone")


def _eval_indices(idx: np.ndarray, max_eval: int) -> np.ndarray:
    if len(idx) <= max_eval:
        return idx
    return idx[np.linspace(0, len(idx) - 1, max_eval).round().astype(int)]


def pretrain(data: PretrainSet, cfg: BackboneParams, checkpoint_dir: Path | None = None,
             progress: bool = False) -> tuple[nn.Module, Any, TrainResult, dict]:
    """Train ``cfg.arch`` from random init (seeded) on the ``train`` split; returns ``(model, tokenizer, result, metrics)``.

    ``result.interrupted`` means SIGTERM arrived: a loop checkpoint is in ``checkpoint_dir`` and a second call resumes.
    """
    from . import factory

    torch.manual_seed(cfg.seed)
    model, _, _, tokenizer = factory.create(cfg.arch)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    train_idx = data.indices("train")
    if len(train_idx) < cfg.batch_size:
        raise ValueError(f"the pre-training set has {len(train_idx)} train images, fewer than batch_size {cfg.batch_size}")
    distinct = sorted(set(data.captions[i] for i in train_idx))
    code = {c: i for i, c in enumerate(distinct)}
    tokens = tokenizer(distinct)  # (C, context) once; batches index into it
    token_of = torch.tensor([code[data.captions[i]] for i in train_idx])
    images = data.images[train_idx]

    def fetch(idx: Tensor) -> tuple[Tensor, Tensor]:
        sel = idx.numpy()
        return images_to_tensor(images[sel], model), tokens[token_of[idx]]

    def loss_fn(batch: tuple[Tensor, Tensor]) -> dict:
        x, t = batch
        v = model.encode_image(x.to(device, non_blocking=True), normalize=True)
        w = model.encode_text(t.to(device, non_blocking=True), normalize=True)
        scale = scale_from_log(model.logit_scale)
        return {"loss": symmetric_infonce(v.float(), w.float(), scale), "scale": scale.detach()}

    batches = PermutationBatches(len(train_idx), cfg.batch_size, cfg.seed, fetch)
    result = train(model, model.parameters(), loss_fn, batches, loop_config(cfg, checkpoint_dir, progress))
    metrics = dict(result.final)
    if not result.interrupted:
        held = _eval_indices(data.indices("heldout"), cfg.max_eval)
        if len(held):
            metrics.update({f"heldout_{k}": v for k, v in
                            retrieval_at_k(model, tokenizer, data.images[held], [data.captions[i] for i in held]).items()})
    model.eval()
    return model, tokenizer, result, metrics


def save_backbone(model: nn.Module, arch: str, out_dir: str | Path, source: dict | None = None) -> dict:
    """Write ``open_clip_model.pt`` (plain OpenCLIP), ``config.json`` (the model config) and ``weights.json``
    (sha256, size, arch, source) into ``out_dir``; returns the record."""
    import open_clip

    from . import factory

    out_dir = Path(out_dir)
    ckpt = factory.save_checkpoint(model, out_dir / CHECKPOINT_FILE, arch=arch)
    config = open_clip.get_model_config(arch)
    if config is None:
        raise ValueError(f"open_clip has no model config for {arch!r}")
    write_json(out_dir / CONFIG_FILE, config)
    record = {"arch": arch, "file": CHECKPOINT_FILE, "sha256": sha256_file(ckpt), "size": ckpt.stat().st_size,
              "source": source or {}}
    write_json(out_dir / RECORD_FILE, record)
    return record


class PretrainedUnavailable(RuntimeError):
    """open_clip could not provide the requested published weights (unknown tag, no network, no cache)."""


def _hub_constants():
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    return constants


def fetch_pretrained(arch: str, tag: str, cache_dir: str | Path | None = None, timeout_s: float = 60.0):
    """``open_clip.create_model_and_transforms(arch, pretrained=tag)``, failing clearly when the weights are unavailable.

    Returns ``(model, preprocess_val, tokenizer, record)``; ``record`` holds the downloaded file's sha256. Network
    access uses a socket timeout of ``timeout_s`` (restored afterwards); with ``HF_HUB_OFFLINE=1`` only the cache is used.
    """
    import open_clip

    from . import factory

    factory.register_configs()
    if open_clip.get_pretrained_cfg(arch, tag) == {}:
        known = open_clip.list_pretrained_tags_by_model(arch)
        raise PretrainedUnavailable(f"open_clip has no pretrained tag {tag!r} for {arch!r}; known tags: {known or 'none'}")
    cache = os.fspath(cache_dir) if cache_dir is not None else None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    hub = _hub_constants()
    hub_offline = getattr(hub, "HF_HUB_OFFLINE", None)
    if hub is not None and offline:  # huggingface_hub reads the variable at import; honour a later setting too
        hub.HF_HUB_OFFLINE = True
    try:
        path = open_clip.download_pretrained(open_clip.get_pretrained_cfg(arch, tag), cache_dir=cache)
        if not path:
            raise RuntimeError("open_clip returned no file")
        model, _, preprocess_val = open_clip.create_model_and_transforms(arch, pretrained=tag, cache_dir=cache)
    except PretrainedUnavailable:
        raise
    except Exception as err:  # noqa: BLE001 - network / hub errors come in many types
        raise PretrainedUnavailable(
            f"could not fetch open_clip weights {arch}/{tag} ({type(err).__name__}: {str(err)[:500]}); "
            f"{'HF_HUB_OFFLINE is set, and the weights are not in the cache' if offline else 'no network?'} -- "
            f"put the file in the cache dir ({cache or 'open_clip default'}) or run where the host is reachable") from err
    finally:
        socket.setdefaulttimeout(previous)
        if hub is not None and offline:
            hub.HF_HUB_OFFLINE = hub_offline
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    record = {"arch": arch, "tag": tag, "file": os.path.basename(path), "sha256": digest}
    setattr(model, factory.ARCH_ATTR, arch)
    return model, preprocess_val, open_clip.get_tokenizer(arch), record


def config_digest(cfg: BackboneParams, *files: Path) -> str:
    """Short hash of the config and input files: names the resume-checkpoint directory of one run."""
    h = hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode())
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()[:16]
