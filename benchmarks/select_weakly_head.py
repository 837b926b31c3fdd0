"""Pick the weakly supervised head on VALIDATION videos only (held-out training videos; never the test set).

For each backbone's cached features on one dataset (``data/features/<backbone>/<dataset>``, stage
``features@<backbone>-<dataset>``; ``--dataset``: a key of params ``eval.datasets``, by default the first of
``eval.evaluate.weakly``) and each head (``vadclip``: the VadCLIP-style head, ``linear_mil``: :mod:`alertclip.eval.mil`),
trains the head exactly as ``eval_weakly@<backbone>-<dataset>`` does (params.yaml, every crop of the training videos,
its validation split of them) and prints, per seed and side by side, the validation FRAME AUC: every snippet of the
validation videos (each crop a sample), labelled abnormal where it overlaps one of the video's annotated abnormal clips
(VAGTA ``frames_25`` spans, curated; :mod:`alertclip.heldout`), scored by the head's binary branch (``prob1``, the
number ``eval_weakly`` reports). The validation VIDEO AUC the VadCLIP recipe selects on is printed too: with every
video holding events it is near chance for every head, so it cannot choose.

    python benchmarks/select_weakly_head.py base stage1 full [--dataset synth]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from alertclip.eval.features import load_features
from alertclip.eval.inputs import features_dir, open_backbone
from alertclip.eval.mil import score_mil, train_linear_mil
from alertclip.eval.vadclip import roc_auc, score_videos, train_vadclip, video_scores
from alertclip.eval.weakly import NORMAL, category_of, class_phrase, split_train_val
from alertclip.heldout import load_snippet_set
from alertclip.params import load_params
from alertclip.threads import pin_threads

CLIPS = Path("data/curated/clips.parquet")
FRAMES = Path("data/frames")
CROP_SAMPLE = re.compile(r"__\d+$")  # FeatureSet.by_video(crop="all") with several crops: <video>__<k>


def _video(sample: str, n_crops: int) -> str:
    """The video a training sample is a crop of (the sample itself with one crop)."""
    return CROP_SAMPLE.sub("", sample) if n_crops > 1 else sample


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("backbones", nargs="+", help="keys of eval.backbones with cached features")
    ap.add_argument("--dataset", help="a key of eval.datasets with training videos (default: the first of "
                    "eval.evaluate.weakly)")
    args = ap.parse_args(argv)
    pin_threads()
    p = load_params()
    dataset = args.dataset
    if dataset is None:
        if not p.eval.evaluate.weakly:
            raise SystemExit("params.yaml: eval.evaluate.weakly is empty; name a dataset with --dataset")
        dataset = p.eval.evaluate.weakly[0]
    if dataset not in p.eval.datasets:
        raise SystemExit(f"--dataset {dataset}: not a key of params eval.datasets ({sorted(p.eval.datasets)})")
    if not p.eval.datasets[dataset].own_frames:
        raise SystemExit(f"--dataset {dataset}: its videos ({p.eval.datasets[dataset].videos}) have no training split; "
                         f"the weakly supervised head trains on {FRAMES}'s")

    vad_cfg, mil_cfg = p.eval_weakly.vadclip, p.eval_weakly.linear_mil
    print(f"{'backbone':<14}{'head':<12}{'seed':>5}{'val frame AUC':>15}{'val video AUC':>15}")
    for name in args.backbones:
        clip, tok = open_backbone(p, name, "eval_weakly")
        feats = load_features(features_dir(name, dataset))
        n_crops = int(feats.meta.get("crops", 1))
        train = feats.by_video("train", crop="all")
        fit, val = split_train_val(train, p.eval_weakly.val_fraction)
        val_videos = {_video(v, n_crops) for v in val}
        snippets = load_snippet_set(CLIPS, FRAMES, val_videos, novel=set(), snippet_len=p.frames.snippet_len)
        by_video = {u: snippets.abnormal[[i for i, w in enumerate(snippets.videos) if w == u]] for u in val_videos}
        labels = {v: by_video[_video(v, n_crops)] for v in val}
        missing = [v for v in val if len(labels[v]) != len(train[v])]
        if missing:
            raise SystemExit(f"{missing[0]}: {len(labels[missing[0]])} labelled snippets in {FRAMES} but "
                             f"{len(train[missing[0]])} features in {features_dir(name, dataset)}")
        categories = [NORMAL] + sorted({category_of(v) for v in train} - {NORMAL})
        y_frame = np.concatenate([labels[v] for v in val])
        y_video = [category_of(v) != NORMAL for v in val]
        for seed in p.eval_weakly.seeds:
            for head_name in ("vadclip", "linear_mil"):
                if head_name == "vadclip":
                    head, _ = train_vadclip([train[v] for v in fit], [class_phrase(category_of(v)) for v in fit],
                                            ([train[v] for v in val], [class_phrase(category_of(v)) for v in val]),
                                            [class_phrase(c) for c in categories], clip, tok, vad_cfg, seed)
                    scores = score_videos(head, [train[v] for v in val], clip)
                else:
                    head, _ = train_linear_mil([train[v] for v in fit], [categories.index(category_of(v)) for v in fit],
                                               len(categories), mil_cfg, seed)
                    scores = score_mil(head, [train[v] for v in val])
                frame = roc_auc(y_frame, np.concatenate([s["prob1"] for s in scores]))
                video = roc_auc(y_video, video_scores(scores, (vad_cfg if head_name == 'vadclip' else mil_cfg).topk_div))
                print(f"{name:<14}{head_name:<12}{seed:>5}{frame:>15.3f}{video:>15.3f}", flush=True)
    print(f"configs: vadclip {vad_cfg.model_dump()}; linear_mil {mil_cfg.model_dump()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
