"""Where a backbone's zero-shot prompts lean, by kind of snippet: the margin cos(v, P_A) - cos(v, P_N) of every
snippet of a finished run's features, split by what the snippet shows (issue 24's "margin by snippet kind").

Kinds, from the synthetic world's ground truth (``data/synth/truth/events.parquet``; a snippet is at its middle
frame, ``index.parquet``'s ``frame`` / the video's fps):

    abnormal     inside [start, end) of an abnormal event (fighting, collapsing, ...)
    look-alike   inside a normal event of an abnormal video (talking in a Fighting video: its own look-alike)
    normal-event inside a normal event of a Normal video
    approach     inside [start - approach, start) of any event (the actors walking in)
    background   none of these: the scene alone

Printed per backbone and split: each kind's snippet count and mean margin with a 95% bootstrap CI over videos, the
zero-shot AUC of abnormal snippets against all others (the ranking ``eval_zeroshot`` measures, at snippet level),
and an MSS over these kinds (abnormal videos: mean margin over their abnormal snippets; normal videos: minus the mean
over all their snippets; averaged over videos; ``eval_mss`` takes the spans from the published annotation instead).
Reads only what ``features@<key>-synth`` and the checkpoint wrote; nothing is written.

    python benchmarks/margins_by_kind.py base stage1 full [--split test] [--dataset synth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
import torch

from alertclip.eval.checkpoints import backbone_dir
from alertclip.eval.features import load_features
from alertclip.eval.zeroshot import prompt_sets
from alertclip.factory import CHECKPOINT_FILE, create
from alertclip.params import load_params
from alertclip.paths import FEATURES_DIR, SYNTH_DIR
from alertclip.prompts import prompt_set_embedding

KINDS = ("abnormal", "look-alike", "normal-event", "approach", "background")
EVENTS = SYNTH_DIR / "truth" / "events.parquet"


def events_by_video(events: pl.DataFrame) -> dict[str, list[dict]]:
    """The world's events (``truth/events.parquet`` rows), grouped by video."""
    by_video: dict[str, list[dict]] = {}
    for e in events.iter_rows(named=True):
        by_video.setdefault(e["video"], []).append(e)
    return by_video


def snippet_kinds(index: pl.DataFrame, events: pl.DataFrame) -> np.ndarray:
    """The kind of each row of a features index (video, snippet, frame)."""
    by_video = events_by_video(events)
    kinds = []
    for video, frame in zip(index["video"].to_list(), index["frame"].to_list()):
        evs = by_video.get(video, [])
        kind = "background"
        for e in evs:
            t = frame / e["fps"]
            if e["start_s"] <= t < e["end_s"]:
                kind = "abnormal" if e["abnormal"] else ("normal-event" if e["category"] == "Normal" else "look-alike")
                break
            if e["start_s"] - e["approach_s"] <= t < e["start_s"]:
                kind = "approach"
        kinds.append(kind)
    return np.array(kinds)


def video_bootstrap(values: np.ndarray, videos: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of the mean of ``values``, resampling whole videos."""
    names, inverse = np.unique(videos, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n, len(names)))
    means = sums[draws].sum(1) / np.maximum(counts[draws].sum(1), 1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def margins(p, key: str, dataset: str) -> tuple[pl.DataFrame, np.ndarray]:
    model_dir = Path(backbone_dir(p, key))
    clip, _, _, tokenizer = create(p.backbone.arch, pretrained=model_dir / CHECKPOINT_FILE)
    clip.eval()
    with torch.no_grad():
        raw_a, raw_n = prompt_sets(clip, tokenizer, p.eval.prompts)
    t_a, t_n = prompt_set_embedding(raw_a, "P_A"), prompt_set_embedding(raw_n, "P_N")
    d = FEATURES_DIR / key / dataset
    load_features(d)  # checks the index and the array agree
    index = pl.read_parquet(d / "index.parquet")
    v = np.load(d / "snippets.npy").astype(np.float64)
    if "crop" in index.columns:  # several views per snippet: the one the test scores (params eval.test_crop)
        keep = (index["crop"] == p.eval.test_crop).to_numpy()
        index, v = index.filter(pl.Series(keep)), v[keep]
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return index, v @ t_a - v @ t_n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keys", nargs="+", help="keys of params eval.backbones")
    ap.add_argument("--dataset", default="synth")
    ap.add_argument("--split", default="test", help="test | train | all")
    args = ap.parse_args(argv)
    p = load_params()
    events = pl.read_parquet(EVENTS)
    for key in args.keys:
        index, m = margins(p, key, args.dataset)
        kinds = snippet_kinds(index, events)
        videos = np.array(index["video"].to_list())
        keep = np.ones(len(m), bool) if args.split == "all" else np.array(index["split"].to_list()) == args.split
        m, kinds, videos = m[keep], kinds[keep], videos[keep]
        print(f"\n{key} ({args.split}, {len(m)} snippets): margin cos(v,P_A) - cos(v,P_N)")
        for kind in KINDS:
            sel = kinds == kind
            if sel.any():
                lo, hi = video_bootstrap(m[sel], videos[sel])
                print(f"  {kind:<13}{int(sel.sum()):>6}  {m[sel].mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")
        is_abn = kinds == "abnormal"
        print(f"  zero-shot snippet AUC (abnormal vs every other snippet): {100 * auc(m[is_abn], m[~is_abn]):.2f}")
        abnormal_video = {v for v, k in zip(videos, kinds) if k == "abnormal"}
        signed = [m[(videos == v) & is_abn].mean() if v in abnormal_video else -m[videos == v].mean()
                  for v in np.unique(videos)]
        # eval_mss takes the abnormal snippets from the published annotation, not these truth spans: its metrics.json
        # is the figure to quote; this one shows which way the kinds above pull it
        print(f"  MSS over these kinds (per video, then the mean): {np.mean(signed):+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
