"""The checked test set of one evaluation dataset, as stage ``testset@<key>`` wrote it (see
:mod:`alertclip.eval.testset_check` for what is checked and how): ``data/testsets/<key>/truth.json`` (every test
video, normal ones with no spans, spans in decoded frame numbers, keyed by the name the features use) and
``videos.parquet`` (video, n_frames, category, abnormal). Evaluations and the report read it with :func:`load_testset`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..params import DatasetParams
from ..paths import FRAMES_DIR, TESTSETS_DIR
from .groundtruth import GroundTruth, VideoTruth

TRUTH_FILE = "truth.json"
VIDEOS_FILE = "videos.parquet"
FRAMES_SUBDIR = "frames"
# On the source's own videos: the digest of data/frames the features read, so that a frames rerun changes this test
# set and with it every features@<backbone>-<dataset> (the matrix cannot declare data/frames for some datasets only).
FRAMES_DIGEST_FILE = "frames.sha256"


@dataclass(frozen=True)
class CheckedTestSet:
    key: str
    name: str
    truth: GroundTruth  # every test video (normal ones with no spans), keyed as the features name them
    n_frames: dict[str, int]  # decoded frames per test video (frames.fps)
    frames_dir: Path  # where the snippet frames of these videos are (data/frames or data/testsets/<key>/frames)


def testset_dir(key: str) -> Path:
    return TESTSETS_DIR / key


def frames_dir_of(key: str, ds: DatasetParams) -> Path:
    """The frames directory holding this dataset's test snippets."""
    return FRAMES_DIR if ds.own_frames else testset_dir(key) / FRAMES_SUBDIR


def load_testset(key: str, ds: DatasetParams, root: Path = Path(".")) -> CheckedTestSet:
    """Read back what ``testset@<key>`` wrote; a missing file names the stage to run."""
    import polars as pl

    base = Path(root) / testset_dir(key)
    path = base / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run dvc.yaml stage `testset@{key}`")
    raw = json.loads(path.read_text(encoding="utf-8"))
    truth = GroundTruth({v: VideoTruth(v, e["category"], tuple(tuple(s) for s in e["spans"]), e.get("origin", ""),
                                       tuple(e.get("classes", ()))) for v, e in raw["videos"].items()}, source=str(path))
    t = pl.read_parquet(base / VIDEOS_FILE)
    return CheckedTestSet(key, ds.name, truth, dict(zip(t["video"].to_list(), t["n_frames"].to_list())),
                   Path(root) / frames_dir_of(key, ds))
