"""Where the evaluation stages read from: a backbone's weights and their record, a (backbone, dataset) pair's
features, a dataset's checked test set."""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..paths import FEATURES_DIR as FEATURES_ROOT
from .checkpoints import backbone_dir, verified_checkpoint


def split_variant(p: Params, variant: str | None, stage: str) -> tuple[str, str]:
    """``<backbone>-<dataset>`` (a DVC matrix stage's key) -> ``(backbone, dataset)``, each checked against params."""
    if not variant or "-" not in variant:
        raise ValueError(f"{stage} needs --variant <backbone>-<dataset> (keys of eval.backbones and eval.datasets); "
                         f"got {variant!r}")
    backbone, dataset = variant.split("-", 1)  # keys hold no '-' (params checks), so the split is unambiguous
    backbone_dir(p, backbone)
    if dataset not in p.eval.datasets:
        raise ValueError(f"params.yaml: eval.datasets has no {dataset!r} (known: {sorted(p.eval.datasets)})")
    return backbone, dataset


def open_backbone(p: Params, backbone: str | None, stage: str):
    """``(clip, tokenizer)`` of ``backbone`` for an evaluation stage, torch pinned to one thread (small models: two
    evaluations share the cores, and the bytes match under both engines)."""
    from .. import factory
    from ..threads import pin_threads

    if backbone is None:
        raise ValueError(f"{stage} needs --variant <backbone> (a key of eval.backbones)")
    pin_threads(1)
    clip, _, _, tok = factory.create(p.backbone.arch, pretrained=verified_checkpoint(p, backbone))
    return clip, tok


def features_dir(backbone: str, dataset: str) -> Path:
    """``data/features/<backbone>/<dataset>``, written by ``features@<backbone>-<dataset>``."""
    return FEATURES_ROOT / backbone / dataset


def read_testset(p: Params, dataset: str):
    """The checked test set of ``dataset`` (``testset@<dataset>``'s outputs)."""
    from .testsets import load_testset

    return load_testset(dataset, p.eval.datasets[dataset])
