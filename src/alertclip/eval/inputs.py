"""Where the evaluation stages read from: a backbone's features, the test ground truth, video frame counts."""

from __future__ import annotations

from pathlib import Path

from ..params import Params
from ..paths import FEATURES_DIR as FEATURES_ROOT
from ..paths import MEDIA_TABLE


def backbone_dir(p: Params, key: str) -> Path:
    """The model directory of backbone ``key`` (params ``eval.backbones``); an unknown key names the known ones."""
    known = p.eval.backbones
    if key not in known:
        raise ValueError(f"params.yaml: eval.backbones has no {key!r} (known: {sorted(known)})")
    return Path(known[key])


def open_backbone(p: Params, variant: str | None, stage: str):
    """``(clip, tokenizer)`` of backbone ``variant`` for an ``<stage>@<variant>`` evaluation, torch pinned to one thread
    (small models: two evaluations share the cores, and the bytes match under both engines)."""
    from .. import factory
    from ..factory import CHECKPOINT_FILE
    from ..threads import pin_threads

    if variant is None:
        raise ValueError(f"{stage} needs --variant <backbone> (a key of eval.backbones)")
    pin_threads(1)
    clip, _, _, tok = factory.create(p.backbone.arch, pretrained=backbone_dir(p, variant) / CHECKPOINT_FILE)
    return clip, tok


def features_dir(key: str) -> Path:
    return FEATURES_ROOT / key


def read_truth(p: Params):
    """The test set's frame ground truth (UCF ``Temporal_Anomaly_Annotation.txt`` format)."""
    from .groundtruth import read_ucf_temporal

    path = Path(p.eval.test_annotations)
    if not path.exists():
        raise FileNotFoundError(f"params.yaml: eval.test_annotations: {path} does not exist")
    return read_ucf_temporal(path)


def frame_counts(path: Path = MEDIA_TABLE) -> dict[str, int]:
    """``{video: decoded frames at the stage fps}`` for the exact-frame protocol."""
    import polars as pl

    t = pl.read_parquet(path).filter(pl.col("status") == "ok")
    return dict(zip(t["path"].to_list(), t["n_frames"].to_list()))
