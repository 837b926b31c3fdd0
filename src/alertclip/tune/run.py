"""Alert-CLIP tuning runs (params ``runs``): phase 1 (global video-text InfoNCE) and phase 2 (joint global + region +
hard-negative loss), and any other row of the table.

Data (:func:`load_clip_set`): the curated training clips (``data/curated/clips.parquet``, rows with ``split ==
"train"`` only; clips whose ``category`` is listed in ``novel_classes.txt`` are dropped, they are held out for the
open-vocabulary evaluation). Per clip:

* frames: the clip's T frames from ``data/frames/clips-NNN.npy`` at ``(shard, row)``, through the model's val
  preprocessing (:func:`alertclip.factory.images_to_tensor`); a clip with fewer listed frames than the array's T is
  padded and ``mask`` (B, T) marks its real frames;
* text (video-level InfoNCE): ``global_caption``; when it is missing/empty the ``region_caption`` stands in;
* region (region InfoNCE): ``region_caption`` + ``boxes`` (T x 4 normalised xyxy, NaN = not shown). A clip with no
  region caption or no shown box on a real frame contributes no region (its boxes are all NaN);
* negatives: K negatives of the REGION caption, from ``hardneg.parquet`` (``negatives="hard"``) or
  ``standard_negatives.parquet`` (``"standard"``), ordered by ``rank``; fewer than K are padded and ``neg_valid``
  marks the real ones (a row with none contributes 0 to the hard-negative loss);
* label: ``abnormal`` (balanced batches, validation AUC).

Equal captions are not negatives of each other: the batch carries the caption ids (``text_id``, ``region_id``), the
InfoNCE terms mask same-id pairs (``groups``). Batches (``batching``): ``balanced`` (:class:`BalancedBatches`, half
abnormal + half normal clips, an epoch = the smaller class once), ``pairs`` (the same, and each abnormal clip's
normal partner is a normal clip of its own video when there is one -- on VAGTA-synth its look-alike event, same
scene and place: the two captions then differ only in the event, the one thing the batch must be solved by) or
``random`` (:class:`PermutationBatches`).

Hard-negative anchor (a choice): the negatives invert the region caption, so the positive is the region caption and
the anchor is the clip's REGION embedding ``v_r`` when the clip has a region, else its video embedding ``v`` (the
region caption also describes the clip as a whole). Positive = the region caption (or the clip's text when it has
none). This is :func:`alertclip.losses.hard_negative_loss` on those anchors; global and region terms are
:func:`~alertclip.losses.symmetric_infonce` / :func:`~alertclip.losses.region_infonce`, all with the CLIP model's
own ``logit_scale`` (trained, clamped to 100 like OpenCLIP), so the saved checkpoint carries the temperature.

Validation: a fraction of the TRAINING videos, chosen by a seeded hash of the video name (:func:`val_videos`), never
test videos. After every epoch the validation losses are computed (fixed chunks of ``batch_size`` clips, in order,
eval mode, no grad) and, given the prompts (params ``eval.prompts``), the zero-shot clip AUC (:func:`val_auc`). The
kept weights (``select_on``): the epoch with the highest val AUC, ties to the lower val total (``val_auc``: the task
is telling abnormal from normal, which the losses only stand in for; ``val_video_auc``: the same over every snippet
of the validation videos, background included, as the test is scored: :mod:`alertclip.heldout`), or the lowest val
total (``val_loss``; also the
fallback, logged and recorded, when the prompts are missing or the validation split holds one class only). With
fewer than 2 validation clips the last epoch is kept.

A run's losses set its weights (a loss left out has weight 0; its term is still measured on the validation split
for reporting), its ``init`` the model it starts from: another run's output (towers and temporal module; the
curriculum: ``full`` starts from ``stage1``) or the base backbone with a fresh temporal module (``init: backbone``:
``stage1``, and the "joint" ablation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.sources import read_novel_classes
from ..io import sha256_file, write_json
from ..model import AlertClipModel
from ..params import PromptParams, RunSettings
from ..paths import CACHE_DIR, MODELS_DIR, RESULTS
from ..train.distributed import context, shard_slice
from ..train.loop import BatchSource, PermutationBatches, TrainResult, train
from .batches import BalancedBatches, BatchEncoder, batch_losses, make_batch
from .checkpoints import build_model, config_digest, save_tuned
from .data import ClipSet, TunePaths, load_clip_set, lookalike_partners, val_videos
from .settings import loop_config
from .validation import VAL_STATE, BestEpoch, auc_unavailable, evaluate, prompt_vectors, val_auc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """The training clips split by video: train and validation (carved from the training videos, never the test)."""

    data: ClipSet  # every training clip
    held: set[str]  # the validation videos
    train: ClipSet
    val: ClipSet


@dataclass(frozen=True)
class Selection:
    """How the kept epoch is chosen: ``select_on`` as run (after any fallback) and what validation can measure."""

    select_on: str  # val_video_auc | val_auc | val_loss
    fallback: str | None  # why the configured select_on could not be used (None: it is)
    no_auc: str | None  # why no validation AUC can be measured (None: it can)
    snippets: object | None  # heldout.SnippetSet of the validation videos (select_on val_video_auc)


def build(cfg: RunSettings, paths: TunePaths):
    """The model a run starts from, its towers frozen or trainable as ``cfg`` says, on this process's device."""
    model, tokenizer = build_model(cfg, *paths.init_files(cfg))
    model.set_trainable("visual", cfg.train_visual, cfg.last_n)
    model.set_trainable("text", cfg.train_text, cfg.last_n)
    model.clip.set_grad_checkpointing(cfg.grad_checkpointing)
    if cfg.temperature is not None:
        with torch.no_grad():
            model.clip.logit_scale.fill_(float(np.log(1.0 / cfg.temperature)))
    model.to(context().device())
    return model, tokenizer


def split(cfg: RunSettings, paths: TunePaths) -> Split:
    data = load_clip_set(paths, cfg.negatives, cfg.k_negatives)
    held = val_videos(data.videos, cfg.val_fraction, cfg.seed)
    is_val = np.array([v in held for v in data.videos], dtype=bool)
    clips = Split(data, held, data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val)))
    if len(clips.train) < cfg.batch_size:
        raise ValueError(f"{len(clips.train)} training clips (after the validation split) < batch_size {cfg.batch_size}")
    return clips


def select(cfg: RunSettings, name: str, paths: TunePaths, clips: Split, prompts: PromptParams | None,
           snippet_len: int) -> Selection:
    """What the kept epoch is chosen on; ``select_on`` falls back to the validation loss, with a warning, when the
    validation AUC cannot be measured (no prompts, or one class only)."""
    no_auc = auc_unavailable(prompts, clips.val)
    select_on, fallback, snippets = cfg.select_on, None, None
    if select_on == "val_video_auc" and no_auc is None:
        from ..heldout import load_snippet_set

        snippets = load_snippet_set(paths.clips, paths.frames_dir, clips.held, read_novel_classes(paths.novel_classes),
                                    snippet_len)
        if snippets.abnormal.all() or not snippets.abnormal.any():
            no_auc = (f"the validation videos' {len(snippets)} snippets hold {int(snippets.abnormal.sum())} abnormal "
                      "ones (needs both kinds)")
    if select_on in ("val_auc", "val_video_auc") and no_auc is not None and len(clips.val) >= 2:
        fallback = no_auc
        log.warning("%s: select_on=%s, but %s: selecting the epoch on the validation loss instead", name, select_on,
                    no_auc)
        select_on = "val_loss"
    return Selection(select_on, fallback, no_auc, snippets)


def summarise(cfg: RunSettings, name: str, result: TrainResult, kept: BestEpoch, clips: Split,
              selection: Selection) -> dict:
    """The run's metrics (the loop's, the validation record, the kept epoch and the data), as metrics.json holds them."""
    metrics = dict(result.final)
    last = [r for r in result.history if r["epoch"] == cfg.epochs - 1]
    metrics["train_last_epoch"] = {k: float(np.mean([r[k] for r in last])) for k in ("loss", "global", "region", "hard")}
    metrics["val"] = [{"epoch": e, **kept.records[e]} for e in sorted(kept.records)]
    if cfg.lambda_region > 0:
        metrics["batches_without_regions"] = sum(1 for r in result.history if r.get("n_regions") == 0)
    if kept.best is not None:
        metrics.update(best_epoch=kept.best.epoch, best_val_total=kept.best.total, best_val_auc=kept.best.auc,
                       selected_on=selection.select_on)
    else:  # fewer than 2 validation clips: nothing to select on
        metrics.update(best_epoch=cfg.epochs - 1, best_val_total=None, best_val_auc=None, selected_on="last_epoch")
    if selection.fallback is not None:
        metrics["select_fallback"] = selection.fallback
    train_set, val_set = clips.train, clips.val
    metrics.update(run=name, n_train_clips=len(train_set), n_val_clips=len(val_set), n_val_videos=len(clips.held),
                   n_train_abnormal=int(train_set.abnormal.sum()), n_val_abnormal=int(val_set.abnormal.sum()),
                   batching=cfg.batching, lambda_region=cfg.lambda_region, lambda_hard=cfg.lambda_hard,
                   negatives=cfg.negatives, init=cfg.init)
    return metrics


def tune(cfg: RunSettings, paths: TunePaths = TunePaths(), checkpoint_dir: Path | None = None,
         progress: bool = False, on_val=None, prompts: PromptParams | None = None, *,
         snippet_len: int, name: str) -> tuple[AlertClipModel, TrainResult, dict]:
    """Train one run (``name``: its key in params ``runs``, for logs and metrics); returns ``(model with the best-val
    weights, loop result, metrics)`` (metrics carry timings ``wall_s`` / ``samples_per_s`` / ``resumed_from_step`` from
    the loop: callers log them, not store them).

    ``on_val(epoch, val)`` is called after each epoch's validation with the val losses (and ``auc`` when computed;
    a sweep reports to Optuna there; an exception it raises, such as ``optuna.TrialPruned``, ends the run).

    ``prompts`` (params ``eval.prompts``): the prompt sets of the validation AUC. Without them, or with one class
    only in the validation split, the kept epoch is chosen on the validation loss (a warning;
    ``metrics["select_fallback"]`` says why).

    ``snippet_len``: frames per snippet of the ``frames`` stage (params ``frames.snippet_len``), for
    ``select_on: val_video_auc``, which labels every snippet of the validation videos.

    ``result.interrupted``: SIGTERM arrived; the loop checkpoint (and ``val.pt``) are in ``checkpoint_dir``.
    """
    model, tokenizer = build(cfg, paths)
    ctx = context()
    clips = split(cfg, paths)
    train_set, val_set = clips.train, clips.val
    local = shard_slice(cfg.batch_size, ctx)  # checks divisibility before any work
    tokens = tokenizer(clips.data.texts)
    sel = select(cfg, name, paths, clips, prompts, snippet_len)
    log.info("%s: %d train clips (%d abnormal), %d val clips (%d abnormal, %d videos), %d regions, %d texts, "
             "%d process(es), %s batches", name, len(train_set), int(train_set.abnormal.sum()), len(val_set),
             int(val_set.abnormal.sum()), len(clips.held),
             int((~np.isnan(train_set.boxes).any(-1) & train_set.mask).any(1).sum()), len(clips.data.texts),
             ctx.world_size, cfg.batching)
    encoder: torch.nn.Module = BatchEncoder(model)
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        device = ctx.device()
        encoder = DistributedDataParallel(encoder, device_ids=[device.index] if device.type == "cuda" else None)

    def fetch(idx: Tensor) -> dict[str, Tensor]:
        return make_batch(train_set, idx.numpy()[local], model, tokens)  # this process's shard of the global batch

    def loss_fn(batch: dict[str, Tensor]) -> dict:
        return batch_losses(encoder, batch, cfg.lambda_region, cfg.lambda_hard, ctx=ctx)

    def validate() -> dict | None:
        # Every process scores the whole (small) validation split: same weights, same numbers, same best epoch.
        val = evaluate(model, val_set, tokens, cfg.batch_size, cfg.lambda_region, cfg.lambda_hard)
        if val is not None and sel.no_auc is None:  # also measured (not selected on) with select_on=val_loss
            val["clip_auc"] = val_auc(model, val_set, tokenizer, prompts, cfg.batch_size)
            val["auc"] = val["clip_auc"]
            if sel.snippets is not None:
                from ..heldout import snippet_auc

                val["auc"] = snippet_auc(model.clip, sel.snippets, *prompt_vectors(model, tokenizer, prompts))
        return val

    batches: BatchSource
    if cfg.batching in ("balanced", "pairs"):
        partner = lookalike_partners(train_set) if cfg.batching == "pairs" else None
        batches = BalancedBatches(train_set.abnormal, cfg.batch_size, cfg.seed, fetch, partner=partner)
    else:
        batches = PermutationBatches(len(train_set), cfg.batch_size, cfg.seed, fetch)
    state_path = Path(checkpoint_dir) / VAL_STATE if checkpoint_dir and ctx.is_main else None
    kept = BestEpoch(validate, model, state_path, on_val, "val_auc" if sel.select_on == "val_video_auc" else sel.select_on)
    if checkpoint_dir and not ctx.is_main and (Path(checkpoint_dir) / VAL_STATE).exists():
        kept.load(Path(checkpoint_dir) / VAL_STATE)  # resume: read-only on the other processes
    params = [p for p in model.parameters() if p.requires_grad]
    result = train(model, params, loss_fn, batches, loop_config(cfg, checkpoint_dir, name, progress), callbacks=[kept])
    metrics = dict(result.final)
    if not result.interrupted:
        metrics = summarise(cfg, name, result, kept, clips, sel)
        if kept.best is not None:
            model.load_state_dict(kept.best.state)
    model.eval()
    return model, result, metrics


def run_stage(cfg: RunSettings, name: str, progress: bool = True, paths: TunePaths = TunePaths(),
              models_dir: Path = MODELS_DIR, results_dir: Path = RESULTS, cache_dir: Path = CACHE_DIR,
              prompts: PromptParams | None = None, *, snippet_len: int) -> dict:
    """The ``tune@<name>`` pipeline stage (``cfg``: the run's settings; ``prompts``: ``p.eval.prompts``, the prompt
    sets of the validation AUC, see :func:`tune`).

    Writes ``<models_dir>/<name>/`` (:func:`save_tuned`), ``<results_dir>/tune/<name>/metrics.json`` (no timings)
    and ``curve.csv``; resume checkpoints in ``<cache_dir>/tune/<name>/<config hash>/`` (removed on success). Interrupted:
    ``SystemExit(143)``. Returns the metrics written.
    """
    import shutil

    from ..train.distributed import init_from_env
    from ..train.loop import write_curve

    ctx = init_from_env()  # several processes under torchrun; one otherwise
    # per run: two rows with equal settings must not share (and delete) one resume directory
    ckpt_dir = Path(cache_dir) / "tune" / name / config_digest(cfg, paths.inputs(cfg), prompts, snippet_len)
    model, result, metrics = tune(cfg, paths, checkpoint_dir=ckpt_dir, progress=progress, prompts=prompts,
                                  snippet_len=snippet_len, name=name)
    if not ctx.is_main:  # same weights everywhere: process 0 writes the outputs
        if result.interrupted:
            raise SystemExit(143)
        return metrics
    if result.interrupted:
        log.warning("%s: interrupted at step %d/%d; checkpoint in %s -- rerun the stage to resume", name, result.step,
                    result.total_steps, ckpt_dir)
        raise SystemExit(143)
    out_model, out = Path(models_dir) / name, Path(results_dir) / "tune" / name
    ckpt = save_tuned(model, cfg.arch, out_model)
    write_curve(out / "curve.csv", result.history)
    # Timings change run to run; they go to the log, so metrics.json (hashed in dvc.lock) stays reproducible.
    timing = {k: metrics.pop(k) for k in ("wall_s", "samples_per_s", "resumed_from_step", "processes") if k in metrics}
    log.info("%s timing: %s", name, timing)
    metrics["sha256"] = sha256_file(ckpt)
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    log.info("%s: %d steps, loss %.4f -> %.4f, kept epoch %s (on %s): val AUC %s, val total %s", name, result.step,
             metrics["first_loss"], metrics["final_loss"], metrics.get("best_epoch"), metrics.get("selected_on"),
             metrics.get("best_val_auc"), metrics.get("best_val_total"))
    return metrics
