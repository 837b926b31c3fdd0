"""Worker for tests/test_ddp.py, started by ``torchrun`` (or plainly, as one process): one tuning run (params.yaml's
``runs.<RUN>``, with the test's overrides) of :func:`alertclip.tune.tune` on the fake curated set under ``ROOT``;
process 0 writes the final weights and the per-step losses to ``OUT``. Not a test module itself (no ``test_``
prefix)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from repo_params import repo_run  # this script's folder (tests/) is on sys.path, run plainly or by torchrun

from alertclip.train.distributed import context, init_from_env
from alertclip.tune.data import TunePaths
from alertclip.tune.run import tune

SNIPPET_LEN = 16  # as params.yaml's frames.snippet_len and the fake curated set of test_tune cuts its snippets


def main(root: str, out: str, run: str, overrides: str) -> None:
    init_from_env()
    torch.set_num_threads(1)
    root_p = Path(root)
    paths = TunePaths(clips=root_p / "clips.parquet", frames_dir=root_p / "frames", hardneg=root_p / "hardneg.parquet",
                      standard_negatives=root_p / "standard.parquet", backbone=root_p / "backbone" / "open_clip_model.pt",
                      models_dir=root_p / "none", novel_classes=root_p / "novel.txt")
    cfg = repo_run(run, **json.loads(overrides))  # the run's settings from params.yaml, with the test's overrides
    model, result, metrics = tune(cfg, paths, snippet_len=SNIPPET_LEN, name=run)
    if context().is_main:
        Path(out).mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, Path(out) / "weights.pt")
        (Path(out) / "history.json").write_text(json.dumps(result.history), encoding="utf-8")
        (Path(out) / "processes.json").write_text(json.dumps(metrics.get("processes")), encoding="utf-8")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
