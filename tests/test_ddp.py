"""``torchrun`` data parallelism on CPU: 2 gloo processes give the same training as 1 process, same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_tune import _world  # the fake curated set (12 clips, T=4, regions, hard negatives)

from alertclip.train.distributed import DistContext, shard_slice

WORKER = Path(__file__).with_name("ddp_tune_worker.py")
# The joint run (all three losses from the backbone: the worker needs no other run's model); every batch has regions
# and negatives.
RUN = "joint"
CFG = dict(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=0, val_fraction=0.0, temporal_layers=1,
           temporal_heads=2, k_negatives=3, lambda_region=1.0, lambda_hard=1.0)


def _run(args: list[str], tmp: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    _world(root)
    cfg = json.dumps(CFG)
    _run([sys.executable, str(WORKER), str(root), str(root / "one"), RUN, cfg], root)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
          str(root), str(root / "two"), RUN, cfg], root)
    return root


def test_two_gloo_processes_match_one_process(runs):
    one, two = runs / "one", runs / "two"
    assert json.loads((one / "processes.json").read_text()) == 1
    assert json.loads((two / "processes.json").read_text()) == 2
    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (one, two))
    assert len(h1) == len(h2) > 2
    for a, b in zip(h1, h2):  # the full-batch loss of every step, including the region and hard terms
        for key in ("loss", "global", "region", "hard"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)
    w1 = torch.load(one / "weights.pt", weights_only=True)
    w2 = torch.load(two / "weights.pt", weights_only=True)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=2e-5, msg=k)
    base = torch.load(runs / "backbone" / "open_clip_model.pt", weights_only=True)["state_dict"]
    moved = sum(not torch.equal(w1[f"clip.{k}"], v) for k, v in base.items() if f"clip.{k}" in w1)
    assert moved > 10  # training changed the towers, so the comparison above is not vacuous


def test_shard_slice_contiguous_and_checked():
    parts = [shard_slice(8, DistContext(rank=r, world_size=4)) for r in range(4)]
    assert [list(range(8))[p] for p in parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        shard_slice(8, DistContext(rank=0, world_size=3))
