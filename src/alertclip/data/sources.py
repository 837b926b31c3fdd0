"""Where a source's files sit under ``data/raw/`` once downloaded: one layout for the synthetic world and the real
VAGTA profiles, so the stages after ``download`` never branch on the source."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..params import Params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    root: Path
    train_annotations: str  # VAGTA box format (Final_*_train.json)
    test_annotations: str  # VAGTA box format (Final_*_test.json)
    train_items: str  # qwen_vl_train.json
    temporal: str = "annotations/Temporal_Anomaly_Annotation.txt"  # UCF frame-level test ground truth
    video_labels: str = "annotations/video_labels.csv"  # video, split, category, abnormal (when the source has it)

    def path(self, rel: str) -> Path:
        return self.root / rel


SYNTHETIC = dict(
    train_annotations="annotations/Final_synth_train.json",
    test_annotations="annotations/Final_synth_test.json",
    train_items="annotations/qwen_vl_train.json",
)


def layout(params: Params, root: str | Path = "data/raw") -> Layout:
    if params.data.source == "synthetic":
        return Layout(Path(root), **SYNTHETIC)
    src = params.data.sources[params.data.source]
    return Layout(Path(root), src.train_annotations, src.test_annotations, src.train_items)


def read_novel_classes(path: str | Path) -> set[str]:
    """Category names held out of training (one per line, ``#`` comments); compared case-insensitively."""
    path = Path(path)
    if not path.exists():
        log.warning("no novel-class list at %s: no category is held out", path)
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line.casefold() for line in lines if line}
