"""Where does the normal/abnormal signal live in a backbone? A probe on the curated TRAINING clips only.

For each backbone directory (``open_clip_model.pt``, and ``temporal.pt`` when tuned) and the training clips split by
video (``--val-fraction`` held out, seeded like the stages' validation split):

    zs_frame   zero-shot AUC of the held-out clips, mean over frames of cos(frame, t_A) - cos(frame, t_N) with
               params' ``eval.prompts`` (what ``features`` / ``eval_zeroshot`` score: the image tower alone)
    zs_clip    the same with the temporal clip embedding (what the global loss trains)
    lin_frame  logistic regression on the mean frame embedding, fit on the kept clips, AUC on the held-out ones
               (does the image tower encode the label at all, whatever the text tower says?)
    lin_clip   the same on the temporal clip embedding
    prompt_cos cosine between the P_A and P_N set vectors (1.0: the text tower cannot tell the prompt sets apart)
    caption_cos mean cosine between each abnormal clip's global caption and its look-alike partner's caption

    python benchmarks/probe_signal.py data/models/backbone data/models/stage1 data/models/full
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from alertclip.factory import images_to_tensor
from alertclip.model import AlertClipModel, TemporalTransformer
from alertclip.params import PromptParams, load_params
from alertclip.prompts import prompt_set_embedding
from alertclip.tune.data import TunePaths, load_clip_set, lookalike_partners, val_videos


def load_any(model_dir: Path) -> tuple[AlertClipModel, object]:
    """A tuned directory (``temporal.pt``) or the base backbone (untrained temporal module: mean of frames)."""
    from alertclip import factory
    from alertclip.tune.checkpoints import load_tuned

    if (model_dir / "temporal.pt").exists():
        return load_tuned(model_dir)
    clip, _, _, tokenizer = factory.create("alertclip-tiny", pretrained=model_dir / "open_clip_model.pt")
    torch.manual_seed(0)
    dim = int(clip.text_projection.shape[1])
    return AlertClipModel(clip, TemporalTransformer(dim)).eval(), tokenizer


@torch.no_grad()
def embed(model: AlertClipModel, data, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(mean frame embedding, temporal clip embedding) per clip, both L2-normalised."""
    frames, clips = [], []
    T = data.frames.shape[1]
    for s in range(0, len(data), batch):
        idx = np.arange(s, min(s + batch, len(data)))
        x = images_to_tensor(data.frames[idx].reshape(len(idx) * T, *data.frames.shape[2:]), model.clip)
        x = x.view(len(idx), T, *x.shape[1:])
        mask = torch.as_tensor(data.mask[idx])
        _, emb, _ = model._frames(x, mask, need_grid=False)
        w = mask.float()[..., None]
        mean = (emb * w).sum(1) / w.sum(1)
        frames.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        clips.append(model._video(emb, mask).numpy())
    return np.concatenate(frames).astype(np.float64), np.concatenate(clips).astype(np.float64)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y.astype(int), s))


def linear(xtr, ytr, xte, yte) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(xtr, ytr)
    return auc(yte, clf.decision_function(xte))


@torch.no_grad()
def text(model: AlertClipModel, tokenizer, texts: list[str]) -> np.ndarray:
    return model.encode_text(tokenizer(texts)).double().numpy()


def probe(model_dir: Path, data, held: np.ndarray, prompts: PromptParams) -> dict[str, float]:
    model, tokenizer = load_any(model_dir)
    f, c = embed(model, data)
    y = data.abnormal
    t_a = prompt_set_embedding(text(model, tokenizer, prompts.texts("abnormal")), "A")
    t_n = prompt_set_embedding(text(model, tokenizer, prompts.texts("normal")), "N")
    d = t_a - t_n
    partner = lookalike_partners(data)
    pairs = [(i, j) for i, j in enumerate(partner) if j >= 0]
    caps = text(model, tokenizer, data.texts)
    cap_cos = float(np.mean([caps[data.text_index[i]] @ caps[data.text_index[j]] for i, j in pairs])) if pairs else np.nan
    return {"zs_frame": auc(y[held], f[held] @ d), "zs_clip": auc(y[held], c[held] @ d),
            "lin_frame": linear(f[~held], y[~held], f[held], y[held]),
            "lin_clip": linear(c[~held], y[~held], c[held], y[held]),
            "prompt_cos": float(t_a @ t_n), "caption_cos": cap_cos}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    p = load_params(args.params)
    prompts = p.eval.prompts
    data = load_clip_set(TunePaths())
    held = np.array([v in val_videos(data.videos, args.val_fraction, args.seed) for v in data.videos])
    print(f"{len(data)} training clips ({int(data.abnormal.sum())} abnormal); held out {int(held.sum())} "
          f"({int(data.abnormal[held].sum())} abnormal)")
    cols = ["zs_frame", "zs_clip", "lin_frame", "lin_clip", "prompt_cos", "caption_cos"]
    print(f"{'backbone':<32}" + "".join(f"{c:>12}" for c in cols))
    for m in args.models:
        row = probe(m, data, held, prompts)
        print(f"{str(m):<32}" + "".join(f"{row[c]:>12.3f}" for c in cols))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
