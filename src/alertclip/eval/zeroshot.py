"""Prompt-based evaluations on frozen snippet features: MeanSignScore (MSS) and zero-shot VAD.

Prompt sets P_N / P_A (params ``eval.prompts``) go through the backbone's own text tower; a set is one unit vector
(each prompt L2-normalised, averaged, re-normalised: :func:`alertclip.eval.metrics.zero_shot_scores`).

* Zero-shot score of a snippet: ``softmax(logit_scale * [cos(v, t_A), cos(v, t_N)])[A]`` with the checkpoint's own
  temperature (section D of the protocol reference, binary form); frame AUC/AP by :mod:`alertclip.eval.metrics`.
* MSS (the paper's definition): mean over test videos of ``S_A - S_N`` for abnormal and ``S_N - S_A`` for normal
  videos. Choice made here (the paper does not pin it): ``S_X`` is the mean cosine similarity of the video's
  snippets to the set vector, over the snippets inside the annotated abnormal spans for an abnormal video (its
  normal remainder is not evidence of abnormality) and over all snippets for a normal video. A snippet is
  "inside" when any of its 16 frames is labelled abnormal by VadCLIP's frame ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .metrics import (
    CLIP_LEN,
    NORMAL_NAME_MARKERS,
    GroundTruthError,
    build_frame_level,
    frame_auc_ap,
    lookup_truth,
    mean_sign_score,
    prompt_set_embedding,
    vadclip_frame_labels,
    zero_shot_scores,
)


@torch.no_grad()
def encode_prompts(clip: torch.nn.Module, tokenizer, template: str, phrases: Sequence[str]) -> np.ndarray:
    """``(P, D)`` L2-normalised text embeddings of ``template.format(phrase)``; an empty set is an error."""
    if not phrases:
        raise ValueError("empty prompt set: at least one phrase is needed")
    clip.eval()
    device = next(clip.parameters()).device
    tokens = tokenizer([template.format(p) for p in phrases]).to(device)
    return clip.encode_text(tokens, normalize=True).float().cpu().numpy()


def prompt_sets(clip: torch.nn.Module, tokenizer, prompts) -> tuple[np.ndarray, np.ndarray]:
    """``(P_A, P_N)`` embeddings of params ``eval.prompts`` (template + abnormal / normal phrases)."""
    return (encode_prompts(clip, tokenizer, prompts.template, prompts.abnormal),
            encode_prompts(clip, tokenizer, prompts.template, prompts.normal))


@dataclass(frozen=True)
class VideoMSS:
    video: str
    abnormal: bool
    s_abnormal: float
    s_normal: float
    signed: float
    snippets: int  # snippets averaged


def mss(test: dict[str, np.ndarray], truth, t_abnormal: np.ndarray, t_normal: np.ndarray,
        clip_len: int = CLIP_LEN) -> tuple[float, list[VideoMSS]]:
    """MSS over the ``test`` videos (``{video: (T, D) features}``) and the per-video rows."""
    if len(t_abnormal) == 0 or len(t_normal) == 0:
        raise ValueError("empty prompt set: MSS needs both P_A and P_N")
    a, n = prompt_set_embedding(t_abnormal, "t_abnormal"), prompt_set_embedding(t_normal, "t_normal")
    names, s_a, s_n, flags, counts = [], [], [], [], []
    for video, feats in test.items():
        entry = lookup_truth(truth, video)
        if entry is None and not any(m in video for m in NORMAL_NAME_MARKERS):
            raise GroundTruthError(f"{video}: no ground-truth line in {getattr(truth, 'source', 'the annotations')} "
                                   f"and its name does not say it is normal ({', '.join(NORMAL_NAME_MARKERS)})")
        spans = entry.spans if entry is not None else ()
        T = len(feats)
        if spans:
            inside = vadclip_frame_labels(spans, T, clip_len).reshape(T, clip_len).any(1)
            if not inside.any():
                raise ValueError(f"{video}: abnormal spans {spans} lie outside its {T} snippets")
        else:
            inside = np.ones(T, dtype=bool)
        unit = feats[inside].astype(np.float64)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        names.append(video)
        s_a.append(float((unit @ a).mean()))
        s_n.append(float((unit @ n).mean()))
        flags.append(bool(spans))
        counts.append(int(inside.sum()))
    result = mean_sign_score(np.array(s_a), np.array(s_n), np.array(flags))
    rows = [VideoMSS(v, f, a_, n_, float(sg), c)
            for v, f, a_, n_, sg, c in zip(names, flags, s_a, s_n, result.per_video, counts)]
    return result.mss, rows


def zero_shot(test: dict[str, np.ndarray], truth, t_abnormal: np.ndarray, t_normal: np.ndarray, logit_scale: float,
              protocol: str = "vadclip", n_frames: dict[str, int] | None = None):
    """``(metrics, {video: snippet scores}, pooled FrameLevel)``: frame AUC/AP of the zero-shot snippet scores."""
    scores = {v: zero_shot_scores(f, t_abnormal, t_normal, logit_scale) for v, f in test.items()}
    frames = build_frame_level([(v, s, (n_frames or {}).get(v)) for v, s in scores.items()], truth, protocol)
    metrics = frame_auc_ap(frames.labels, frames.scores, n_videos=len(scores))
    metrics.update(n_videos=len(scores), n_frames=int(frames.labels.size),
                   abnormal_frame_share=float(frames.labels.mean()))
    return metrics, scores, frames
