"""Tuned models on disk: build one from a backbone checkpoint, save and reload the open_clip towers + temporal module."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..factory import CHECKPOINT_FILE, CONFIG_FILE
from ..io import atomic_path, sha256_file, write_json
from ..model import AlertClipModel, TemporalTransformer
from ..params import PromptParams, RunSettings

log = logging.getLogger(__name__)


TEMPORAL_FILE = "temporal.pt"
TEMPORAL_CONFIG_FILE = "temporal.json"


def build_model(cfg: RunSettings, checkpoint: str | Path | None, temporal_state: str | Path | None = None):
    """``(AlertClipModel, tokenizer)``: OpenCLIP ``cfg.arch`` from ``checkpoint`` + a seeded temporal module
    (loaded from ``temporal_state`` when given)."""
    from .. import factory

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

    from .. import factory

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
    from .. import factory

    model_dir = Path(model_dir)
    tc = json.loads((model_dir / TEMPORAL_CONFIG_FILE).read_text(encoding="utf-8"))
    clip, _, _, tokenizer = factory.create(arch, pretrained=model_dir / CHECKPOINT_FILE)
    temporal = TemporalTransformer(tc["dim"], layers=tc["layers"], heads=tc["heads"], max_t=tc["max_t"])
    temporal.load_state_dict(torch.load(model_dir / TEMPORAL_FILE, map_location="cpu", weights_only=True))
    return AlertClipModel(clip, temporal).eval(), tokenizer


def config_digest(cfg: RunSettings, files: list[Path], prompts: PromptParams | None = None,
                  snippet_len: int | None = None) -> str:
    """Short hash of the settings, the validation prompts (they choose the kept epoch) and the input files: names
    the resume-checkpoint directory of one run."""
    key = cfg.model_dump()
    if prompts is not None:
        key["val_prompts"] = prompts.model_dump()
    if snippet_len is not None:
        key["snippet_len"] = snippet_len
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()[:16]
