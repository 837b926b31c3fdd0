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
import torch
from repo_params import repo_params, repo_run

import alertclip.factory as factory
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
def params_of():
    """``params_of("curate", phash_distance=30)``: params.yaml's group with overrides (tests/repo_params.py)."""
    return repo_params


@pytest.fixture(scope="session")
def run_of():
    """``run_of("full", epochs=1)``: one tuning run's settings from params.yaml, with overrides (tests/repo_params.py)."""
    return repo_run


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


def run_dir(tmp_path_factory) -> Path:
    """This pytest run's own directory, shared by its xdist workers (each worker's basetemp is a child of it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """A git copy of the repository on the smoke world after one local ``snakemake`` run of the whole DAG.

    Built once per pytest run, by the first xdist worker that asks (the others wait on a file lock), and read-only:
    every test that edits, reruns or deletes works in its own :func:`copy_pipeline` (~2 s, 0.9 GB). The DAG tests,
    the SLURM slice (its hashes must equal these), the DVC remote round trip and the torchrun stage start from it.
    A failed build is recorded, so a second worker reports it instead of building again.
    """
    from filelock import FileLock
    from test_dag import _copy_repo, sh

    root = run_dir(tmp_path_factory) / "smoke-pipeline"
    built, failed = root.with_name("smoke-pipeline.built"), root.with_name("smoke-pipeline.failed")
    with FileLock(root.with_name("smoke-pipeline.lock")):
        if failed.exists():
            raise RuntimeError(f"the smoke pipeline failed to build in another worker:\n{failed.read_text()}")
        if not built.exists():
            try:
                reuse = os.environ.get("ALERTCLIP_SMOKE_PIPELINE")
                if reuse:  # developing a slow test: a finished run of this fixture (same code) stands in for a new run
                    copy_pipeline(Path(reuse), root)
                else:
                    root.mkdir()
                    _copy_repo(root)
                    sh(root, "snakemake", "--cores", "2", "--resources", "gpu=1")
            except BaseException as err:
                failed.write_text(repr(err)[-5000:])
                raise
            built.touch()
    return root


def copy_pipeline(src: Path, dest: Path) -> Path:
    """A full copy of a pipeline directory (git repo, DVC cache, outputs, dvc.lock), mtimes kept."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


# Two lanes for `make test` (pytest-xdist, -n 2). Each lane is one xdist work unit, so its tests run in one worker, in
# this order; every other test is its own unit, handed to whichever worker has run out of lane work. The lanes balance
# the long chains (measured, benchmarks/RESULTS.md): `smoke_dag` builds the session's smoke run and runs the tests on
# copies of it; `rerun_dags` runs the real-format DAG, then the forced `dvc repro` of a smoke-run copy, by which time
# the other lane has built it. Without xdist the same order runs in one process. (Not xdist's own --dist loadgroup:
# xdist 3.8 names a group by rewriting Node._nodeid, which pytest 9.2 no longer reads, so its groups never form.)
LANES = {
    "rerun_dags": ("tests/test_real_format_smoke.py::", "tests/test_dag.py::test_repro_force_reproduces_identical_hashes"),
    # the modules whose tests start from the smoke run; test_slurm also because one test cluster runs at a time
    "smoke_dag": ("tests/test_dag.py::", "tests/test_slurm.py::", "tests/test_dvc_remote.py::", "tests/test_torchrun.py::"),
}
ORDER = ("smoke_dag", "rerun_dags")  # the collection order of the lanes, the first lane to the first worker


def lane_of(nodeid: str) -> str | None:
    return next((lane for lane, prefixes in LANES.items() if nodeid.startswith(prefixes)), None)


def _place(item: pytest.Item) -> tuple[int, int]:
    lane = lane_of(item.nodeid)
    if lane is None:
        return len(ORDER), 0
    return ORDER.index(lane), next(i for i, p in enumerate(LANES[lane]) if item.nodeid.startswith(p))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_place)  # stable: collection order within each place


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist (-p no:xdist) the suite runs in one process
def pytest_xdist_make_scheduler(config, log):
    """xdist's scope scheduler with the lanes as scopes, in collection order (no reordering by size)."""
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return lane_of(nodeid) or nodeid

    config.option.loadscopereorder = False
    return LaneScheduling(config, log)


@pytest.fixture(scope="module")
def frozen_tiny_clip():
    """A random-init alertclip-tiny CLIP and its tokenizer (seeded; global RNG untouched), frozen: the VadCLIP head's
    text tower in tests/test_vadclip*.py."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip, _, _, tok = factory.create("alertclip-tiny", pretrained=None)
    clip.requires_grad_(False)
    return clip, tok
