"""Pick the weakly supervised head on VALIDATION videos only (held-out training videos; never the test set).

For each backbone's cached features (``data/features/<backbone>``, the ``features`` stage) and each head
(``vadclip``: the VadCLIP-style head, ``linear_mil``: :mod:`alertclip.eval.mil`), trains the head exactly as
``eval_weakly`` does (params.yaml, its validation split of the training videos) and prints, per seed and side by
side, the validation FRAME AUC: every snippet of the validation videos, labelled abnormal where it overlaps one of
the video's annotated abnormal clips (VAGTA ``frames_25`` spans, curated; :mod:`alertclip.heldout`), scored by the
head's binary branch (``prob1``, the number ``eval_weakly`` reports). The validation VIDEO AUC the VadCLIP recipe
selects on is printed too: with every video holding events it is near chance for every head, so it cannot choose.

    python benchmarks/select_weakly_head.py base stage1 full
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from alertclip.eval.features import load_features
from alertclip.eval.inputs import features_dir, open_backbone
from alertclip.eval.mil import score_mil, train_linear_mil
from alertclip.eval.vadclip import roc_auc, score_videos, train_vadclip, video_scores
from alertclip.eval.weakly import NORMAL, _split, category_of, class_phrase
from alertclip.heldout import load_snippet_set
from alertclip.params import load_params
from alertclip.threads import pin_threads

CLIPS = Path("data/curated/clips.parquet")
FRAMES = Path("data/frames")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("backbones", nargs="+", help="keys of eval.backbones with cached features")
    args = ap.parse_args(argv)
    pin_threads()
    p = load_params()

    vad_cfg, mil_cfg = p.eval_weakly.vadclip, p.eval_weakly.linear_mil
    print(f"{'backbone':<14}{'head':<12}{'seed':>5}{'val frame AUC':>15}{'val video AUC':>15}")
    for name in args.backbones:
        clip, tok = open_backbone(p, name, "eval_weakly")
        train = load_features(features_dir(name)).by_video("train")
        fit, val = _split(train, p.eval_weakly.val_fraction)
        snippets = load_snippet_set(CLIPS, FRAMES, set(val), novel=set(), snippet_len=p.frames.snippet_len)
        labels = {v: snippets.abnormal[[i for i, u in enumerate(snippets.videos) if u == v]] for v in val}
        missing = [v for v in val if len(labels[v]) != len(train[v])]
        if missing:
            raise SystemExit(f"{missing[0]}: {len(labels[missing[0]])} labelled snippets in {FRAMES} but "
                             f"{len(train[missing[0]])} features in {features_dir(name)}")
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
                video = roc_auc(y_video, video_scores(scores))
                print(f"{name:<14}{head_name:<12}{seed:>5}{frame:>15.3f}{video:>15.3f}", flush=True)
    print(f"configs: vadclip {dataclasses.asdict(vad_cfg)}; linear_mil {dataclasses.asdict(mil_cfg)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
