"""OpenCLIP model creation and plain-OpenCLIP checkpoints.

The project's own model configs (``alertclip/model_configs/*.json``, e.g. ``alertclip-tiny``) are registered with
open_clip by :func:`register_configs`; after that, ``open_clip.create_model_and_transforms(arch, pretrained=<file>)``
loads a checkpoint written by :func:`save_checkpoint` with no other project code.

Checkpoint format: ``{"state_dict": clip.state_dict(), "arch": <arch name or None>}`` saved with ``torch.save``.
open_clip's ``load_state_dict`` takes ``checkpoint["state_dict"]`` and ignores other keys; ``"arch"`` is a plain
string, so the file loads under ``torch.load(weights_only=True)`` (open_clip's default).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
ARCH_ATTR = "alertclip_arch"  # set on models made by create(), read by save_checkpoint()
CHECKPOINT_FILE = "open_clip_model.pt"  # the towers, in a model directory (data/models/<name>/)
CONFIG_FILE = "config.json"  # its open_clip model config
RECORD_FILE = "weights.json"  # where its weights came from

_registered: set[Path] = set()


def register_configs(path: str | os.PathLike | None = None) -> list[str]:
    """Register the project's model-config dir (or ``path``, a dir or one JSON file) with open_clip; idempotent.

    Returns the architecture names that the registered path provides.
    """
    p = Path(path).resolve() if path is not None else CONFIG_DIR
    if p not in _registered:
        open_clip.add_model_config(p)
        _registered.add(p)
    files = [p] if p.is_file() else sorted(p.glob("*.json"))
    return [f.stem for f in files]


def _checkpoint_arch(path: str | os.PathLike) -> str | None:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - only used to improve an error message
        return None
    return ckpt.get("arch") if isinstance(ckpt, dict) else None


def create(arch: str, pretrained: str | os.PathLike | None = None, **kwargs):
    """``(model, preprocess_train, preprocess_val, tokenizer)`` for ``arch``; project configs are registered first.

    ``pretrained``: an open_clip tag or a checkpoint file (e.g. from :func:`save_checkpoint`), or None for random
    init. A checkpoint of another architecture raises ``ValueError("checkpoint <path> does not match <arch>: ...")``
    naming the checkpoint's architecture where the file records it. Extra ``kwargs`` go to open_clip.
    """
    register_configs()
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown architecture {arch!r}; known project configs: {register_configs()}")
    pretrained = os.fspath(pretrained) if pretrained is not None else None
    try:
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            arch, pretrained=pretrained, weights_only=True, **kwargs
        )
    except (RuntimeError, KeyError, ValueError) as err:
        if pretrained is None or not os.path.isfile(pretrained):
            raise
        ckpt_arch = _checkpoint_arch(pretrained)
        raise ValueError(
            f"checkpoint {pretrained} does not match {arch}: the checkpoint was saved from architecture "
            f"{ckpt_arch or '<not recorded>'}; open_clip said: {str(err)[:2000]}"
        ) from err
    setattr(model, ARCH_ATTR, arch)
    tokenizer = open_clip.get_tokenizer(arch)
    return model, preprocess_train, preprocess_val, tokenizer


def save_checkpoint(model: nn.Module, path: str | os.PathLike, arch: str | None = None) -> Path:
    """Write a plain OpenCLIP checkpoint of ``model`` to ``path`` atomically (temp file + fsync + rename).

    ``model`` is an open_clip CLIP model or anything with a ``.clip`` attribute holding one (``AlertClipModel``);
    only the CLIP weights are written (the temporal module is not part of an OpenCLIP checkpoint).
    ``arch`` defaults to the name ``create()`` recorded on the model; it is stored only for error messages.
    """
    clip = getattr(model, "clip", model)
    arch = arch if arch is not None else getattr(clip, ARCH_ATTR, None)
    state_dict = {k: v.detach().cpu().clone() for k, v in clip.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"state_dict": state_dict, "arch": arch}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _visual_cfg(model: nn.Module) -> tuple[tuple[int, int], Tensor, Tensor]:
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    size = cfg.get("size") or model.visual.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=torch.float32)
    std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=torch.float32)
    return size, mean, std


def images_to_tensor(images: np.ndarray | Tensor, model: nn.Module) -> Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, h, w): the model's val preprocessing for arrays.

    Equal to open_clip's ``preprocess_val`` when the arrays already have the model's size (the synthetic world: 64 px);
    otherwise a bicubic (antialiased) resize of the short side and a centre crop, close to but not bit-equal to PIL's.
    """
    size, mean, std = _visual_cfg(model)
    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(x.shape[-2:]) != size:
        h, w = x.shape[-2:]
        s = max(size[0] / h, size[1] / w)
        x = F.interpolate(x, size=(max(size[0], round(h * s)), max(size[1], round(w * s))), mode="bicubic",
                          antialias=True, align_corners=False).clamp_(0, 1)
        top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
        x = x[..., top:top + size[0], left:left + size[1]]
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
