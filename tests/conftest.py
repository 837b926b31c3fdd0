"""Shared fixtures: the VAGTA-synth smoke world, generated once per session, and its extracted frames.

Nothing here writes outside pytest's tmp directories; tests must treat both worlds as read-only (copy first to
break something).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from alertclip.data.frames import FrameSettings, extract_frames
from alertclip.data.sources import SYNTHETIC, Layout
from alertclip.synth.generate import synthesize

REPO = Path(__file__).resolve().parents[1]

# The smoke world of params.yaml (synthesize.sizes.smoke) with more odd-fps videos, one novel event.
SMOKE = dict(seed=7, n_train=14, n_test=6, min_s=4, max_s=8, width=64, height=64, fps=25, odd_fraction=0.25,
             abnormal_fraction=0.5, novel_events=["explosion"], crf=23, defect_rate=0.02, workers=2,
             progress=False)
FRAME_SETTINGS = FrameSettings(fps=25, width=64, height=64, clip_frames=8, snippet_len=16)
SHARD_MB = 1  # small shards, so the index -> (shard, row) mapping spans several files


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smoke_kwargs() -> dict:
    return dict(SMOKE)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory) -> Path:
    """out_dir of ``synthesize`` for the smoke world: published/, truth/, pretrain/."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, **SMOKE)
    return out


@pytest.fixture(scope="session")
def truth_defects(smoke_world) -> list[dict]:
    return json.loads((smoke_world / "truth" / "defects.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def broken_media(truth_defects) -> dict[str, str]:
    """video path -> injected media defect kind (truncated_media, zero_length_media, missing_media)."""
    return {d["video"]: d["kind"] for d in truth_defects
            if d["kind"] in ("truncated_media", "zero_length_media", "missing_media")}


@pytest.fixture(scope="session")
def smoke_frames(smoke_world, tmp_path_factory) -> dict:
    """``extract_frames`` run once on a copy of the smoke world's published/ folder."""
    base = tmp_path_factory.mktemp("frames")
    raw = base / "raw"
    shutil.copytree(smoke_world / "published", raw)
    out = base / "frames"
    summary = extract_frames(Layout(raw, **SYNTHETIC), out, FRAME_SETTINGS, shard_mb=SHARD_MB, workers=2,
                             progress=False)
    return {"raw": raw, "out": out, "summary": summary, "settings": FRAME_SETTINGS}


@pytest.fixture
def restore_logging():
    """The CLI adds handlers to the root logger (a file and stderr); drop them after the test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """A git copy of the repository on the smoke world after one local ``snakemake`` run of the whole DAG.

    Run once per session: the DAG tests, the SLURM run (its hashes must equal these), the DVC remote round trip and
    the torchrun stage all start from it. Tests that change it must restore it; the others copy it first
    (:func:`copy_pipeline`).
    """
    from test_dag import _copy_repo, sh

    reuse = os.environ.get("ALERTCLIP_SMOKE_PIPELINE")
    if reuse:  # developing a slow test: a finished run of this fixture (same code), copied, stands in for a new run
        return copy_pipeline(Path(reuse), tmp_path_factory.mktemp("pipeline") / "reused")
    root = _copy_repo(tmp_path_factory.mktemp("pipeline"))
    sh(root, "snakemake", "--cores", "2", "--resources", "gpu=1")
    return root


def copy_pipeline(src: Path, dest: Path) -> Path:
    """A full copy of a pipeline directory (git repo, DVC cache, outputs, dvc.lock), mtimes kept."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
