"""Which weights a backbone key names: ``data/checkpoints/<backbone>.json``, written by ``checkpoint@<backbone>``
and checked by every stage that loads the weights (features, evaluations)."""

from __future__ import annotations

import json
from pathlib import Path

from ..factory import CHECKPOINT_FILE
from ..io import sha256_file, write_json
from ..params import Params
from ..paths import CHECKPOINTS_DIR


def backbone_dir(p: Params, key: str) -> Path:
    """The model directory of backbone ``key`` (params ``eval.backbones``); an unknown key names the known ones."""
    known = p.eval.backbones
    if key not in known:
        raise ValueError(f"params.yaml: eval.backbones has no {key!r} (known: {sorted(known)})")
    return Path(known[key])


def checkpoint_path(key: str) -> Path:
    """``data/checkpoints/<backbone>.json``, written by ``checkpoint@<backbone>``."""
    return CHECKPOINTS_DIR / f"{key}.json"


def checkpoint_record(p: Params, key: str) -> dict:
    """What identifies backbone ``key``'s weights: its directory, architecture, checkpoint sha256 and size."""
    ckpt = backbone_dir(p, key) / CHECKPOINT_FILE
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no OpenCLIP checkpoint for eval.backbones.{key} (run the stage that writes it)")
    return {"backbone": key, "model_dir": backbone_dir(p, key).as_posix(), "arch": p.backbone.arch,
            "checkpoint_sha256": sha256_file(ckpt), "bytes": ckpt.stat().st_size}


def write_checkpoint_record(key: str, record: dict) -> None:
    write_json(checkpoint_path(key), record)


def verified_checkpoint(p: Params, key: str) -> Path:
    """The checkpoint file of backbone ``key``, after checking it is the one ``checkpoint@<key>`` recorded (a stale
    record would let DVC think evaluations are current for weights they never saw)."""
    path = checkpoint_path(key)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run dvc.yaml stage `checkpoint@{key}`")
    recorded = json.loads(path.read_text(encoding="utf-8"))["checkpoint_sha256"]
    ckpt = backbone_dir(p, key) / CHECKPOINT_FILE
    actual = sha256_file(ckpt)
    if actual != recorded:
        raise ValueError(f"{path} records sha256 {recorded[:12]} but {ckpt} is {actual[:12]}: the weights changed "
                         f"after checkpoint@{key} ran; rerun it (dvc repro)")
    return ckpt


