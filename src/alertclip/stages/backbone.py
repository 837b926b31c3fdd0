"""Stage entry point `backbone` (dvc.yaml: `alertclip backbone`): the base OpenCLIP backbone.

Default (``backbone.pretrained`` unset): pre-train ``backbone.arch`` (the tiny config) on the synthetic world's
pre-training set. With a tag: fetch published open_clip weights instead (real profiles, needs network or a cache).
With ``random``: the architecture's random initialisation (seeded by ``backbone.seed``), for smoke runs of a real
profile where no weights can be had.

Outputs: ``data/models/backbone/{open_clip_model.pt, config.json, weights.json}``, ``results/backbone/metrics.json``
and ``results/backbone/curve.csv`` (per-step loss / lr, a DVC plot). The resumable training checkpoint lives in
``data/.cache/backbone/<config+data hash>/`` (outside every output, so a killed run resumes) and is removed on success.
SIGTERM saves it and exits with status 143; rerunning the stage continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import shutil

import torch

from .. import factory
from ..backbone import config_digest, fetch_pretrained, pretrain, save_backbone
from ..data.pretrain import load_pretrain_set
from ..io import write_json
from ..params import Params
from ..paths import BACKBONE_DIR as MODEL_DIR
from ..paths import CACHE_DIR as CACHE_ROOT
from ..paths import PRETRAIN_DIR, RESULTS
from ..threads import pin_threads
from ..train.loop import write_curve

log = logging.getLogger(__name__)


CACHE_DIR = CACHE_ROOT / "backbone"
RANDOM_INIT = "random"  # backbone.pretrained value: no weights at all


def run(p: Params, progress: bool = True) -> None:
    pin_threads()  # identical bytes under Snakemake (OMP_NUM_THREADS set) and DVC
    cfg = p.backbone
    out = RESULTS / "backbone"
    if cfg.pretrained == RANDOM_INIT:  # a stock architecture, untrained: real-profile smoke runs on any machine
        torch.manual_seed(cfg.seed)
        model = factory.create(cfg.arch)[0]
        saved = save_backbone(model, cfg.arch, MODEL_DIR, source={"kind": "random_init", "seed": cfg.seed})
        write_json(out / "metrics.json", {"source": "random_init", "arch": cfg.arch, "steps": 0, "sha256": saved["sha256"]})
        write_curve(out / "curve.csv", [])
        log.info("backbone: %s at random init (seed %d) -> %s", cfg.arch, cfg.seed, MODEL_DIR)
        return
    if cfg.pretrained:
        model, _, _, record = fetch_pretrained(cfg.arch, cfg.pretrained, cache_dir=CACHE_DIR / "weights")
        saved = save_backbone(model, cfg.arch, MODEL_DIR, source={"kind": "open_clip", **record})
        write_json(out / "metrics.json", {"source": "open_clip", "tag": cfg.pretrained, "steps": 0})
        write_curve(out / "curve.csv", [])
        log.info("backbone: %s/%s -> %s (sha256 %s)", cfg.arch, cfg.pretrained, MODEL_DIR, saved["sha256"])
        return

    if p.data.source != "synthetic":
        raise ValueError(f"backbone.pretrained: data.source {p.data.source} has no pre-training set; name an open_clip "
                         "tag or a local weights file (the profiles set one)")
    ckpt_dir = CACHE_DIR / config_digest(cfg, PRETRAIN_DIR / "images.npy", PRETRAIN_DIR / "captions.parquet")
    data = load_pretrain_set(PRETRAIN_DIR)
    model, _, result, metrics = pretrain(data, cfg, checkpoint_dir=ckpt_dir, progress=progress)
    if result.interrupted:
        log.warning("backbone: interrupted at step %d/%d; checkpoint in %s -- rerun the stage to resume",
                    result.step, result.total_steps, ckpt_dir)
        raise SystemExit(143)
    saved = save_backbone(model, cfg.arch, MODEL_DIR, source={"kind": "pretrained_synthetic", "steps": result.step,
                                                             "seed": cfg.seed})
    write_curve(out / "curve.csv", result.history)
    # Timings change run to run; they go to the log, so metrics.json (hashed in dvc.lock) stays reproducible.
    timing = {k: metrics.pop(k) for k in ("wall_s", "samples_per_s", "resumed_from_step") if k in metrics}
    log.info("backbone timing: %s", timing)
    write_json(out / "metrics.json", {**metrics, "source": "synthetic", "sha256": saved["sha256"]})
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    log.info("backbone: %d steps, loss %.4f -> %.4f, held-out i2t R@1 %s", result.step, metrics["first_loss"],
             metrics["final_loss"], metrics.get("heldout_i2t_r1"))
