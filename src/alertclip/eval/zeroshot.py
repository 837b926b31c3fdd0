"""Prompt-based evaluations on frozen snippet features: MeanSignScore (MSS) and zero-shot VAD.

Prompt sets P_N / P_A (params ``eval.prompts``) go through the backbone's own text tower; a set is one unit vector
(each prompt L2-normalised, averaged, re-normalised: :func:`alertclip.prompts.zero_shot_scores`).

* Zero-shot score of a snippet: ``softmax(logit_scale * [cos(v, t_A), cos(v, t_N)])[A]`` with the checkpoint's own
  temperature (section D of the protocol reference, binary form); frame AUC/AP by :mod:`alertclip.eval.metrics`.
* MSS (the paper's definition): mean over test videos of ``S_A - S_N`` for abnormal and ``S_N - S_A`` for normal
  videos. Choice made here (the paper does not pin it): ``S_X`` is the mean cosine similarity of the video's
  snippets to the set vector, over the snippets inside the annotated abnormal spans for an abnormal video (its
  normal remainder is not evidence of abnormality) and over all snippets for a normal video. A snippet is
  "inside" when any of its 16 frames is labelled abnormal by VadCLIP's frame ground truth.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..prompts import prompt_set_embedding, zero_shot_scores
from .groundtruth import (
    GroundTruthError,
    build_frame_level,
    is_normal_name,
    lookup_truth,
    vadclip_frame_labels,
)
from .metrics import frame_auc_ap
from .mss import mean_sign_score


@torch.no_grad()
def encode_prompts(clip: torch.nn.Module, tokenizer, template: str, phrases: Sequence[str]) -> np.ndarray:
    """``(P, D)`` L2-normalised text embeddings of ``template.format(phrase)``; an empty set is an error."""
    if not phrases:
        raise ValueError("empty prompt set: at least one phrase is needed")
    clip.eval()
    device = next(clip.parameters()).device
    tokens = tokenizer([template.format(p) for p in phrases]).to(device)
    return clip.encode_text(tokens, normalize=True).float().cpu().numpy()


def _visible(text: str) -> str:
    """What of ``text`` the tokenizer should keep: its characters, NFC-composed and lowercased, without whitespace."""
    return "".join(unicodedata.normalize("NFC", text.lower()).split())


def prompt_problems(tokenizer, template: str, phrases: Sequence[str]) -> list[tuple[int, str]]:
    """``(index, problem)`` of each phrase whose prompt ``template.format(phrase)`` the text tower would not see whole.

    open_clip's tokenizer never fails: it cuts a prompt longer than the context (77 tokens with start and end) and
    its text cleaning (ftfy, HTML unescaping) silently drops or rewrites some characters (control characters,
    ``&amp;``, full-width letters). Either way the prompt would be scored as text nobody wrote, so both are errors.
    A tokenizer without ``encode``/``decode`` (not open_clip's BPE) is not checked.
    """
    if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
        return []
    context = int(getattr(tokenizer, "context_length", None) or 77)
    problems = []
    for i, phrase in enumerate(phrases):
        prompt = template.format(phrase)
        ids = list(tokenizer.encode(prompt))
        kept = tokenizer.decode(ids).strip()
        if len(ids) + 2 > context:
            problems.append((i, f"{prompt!r} is {len(ids)} tokens long; with the start and end tokens the text tower "
                                f"reads {context - 2} at most, so the prompt would be truncated"))
        elif not tokenizer.encode(phrase):
            problems.append((i, f"{phrase!r} encodes to no tokens at all"))
        elif _visible(kept) != _visible(prompt):
            lost = Counter(_visible(prompt)) - Counter(_visible(kept))
            what = ", ".join(repr(c) for c in sorted(lost)) if lost else "characters"
            problems.append((i, f"{prompt!r}: the tokenizer drops or rewrites {what}; the text tower would read "
                                f"{kept!r}"))
    return problems


def check_prompts(tokenizer, prompts, origin: str = "params.yaml") -> None:
    """Fail before any scoring when a prompt of params ``eval.prompts`` cannot be encoded as written, naming every
    such prompt (``params.yaml: eval.prompts.abnormal[3]: ...``). Done here rather than when params.yaml loads, as the
    tokenizer needs torch."""
    from ..params import ParamsError

    lines = [f"{origin}: eval.prompts.{kind}[{i}]: {problem}"
             for kind in ("normal", "abnormal")
             for i, problem in prompt_problems(tokenizer, prompts.template, getattr(prompts, kind))]
    if lines:
        raise ParamsError("\n".join(lines))


def prompt_sets(clip: torch.nn.Module, tokenizer, prompts) -> tuple[np.ndarray, np.ndarray]:
    """``(P_A, P_N)`` embeddings of params ``eval.prompts`` (template + abnormal / normal phrases), after
    :func:`check_prompts`."""
    check_prompts(tokenizer, prompts)
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
        clip_len: int) -> tuple[float, list[VideoMSS]]:
    """MSS over the ``test`` videos (``{video: (T, D) features}``, one row per ``clip_len``-frame snippet) and the
    per-video rows."""
    if len(t_abnormal) == 0 or len(t_normal) == 0:
        raise ValueError("empty prompt set: MSS needs both P_A and P_N")
    a, n = prompt_set_embedding(t_abnormal, "t_abnormal"), prompt_set_embedding(t_normal, "t_normal")
    names, s_a, s_n, flags, counts = [], [], [], [], []
    for video, feats in test.items():
        entry = lookup_truth(truth, video)
        if entry is None and not is_normal_name(video):
            raise GroundTruthError(f"{video}: no ground-truth line in {getattr(truth, 'source', 'the annotations')} "
                                   f"and its name is not a normal video's (eval.groundtruth.NORMAL_MARKERS)")
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
              protocol: str = "vadclip", n_frames: dict[str, int] | None = None, *, clip_len: int):
    """``(metrics, {video: snippet scores}, pooled FrameLevel)``: frame AUC/AP of the zero-shot snippet scores."""
    scores = {v: zero_shot_scores(f, t_abnormal, t_normal, logit_scale) for v, f in test.items()}
    frames = build_frame_level([(v, s, (n_frames or {}).get(v)) for v, s in scores.items()], truth, protocol,
                               clip_len=clip_len)
    metrics = frame_auc_ap(frames.labels, frames.scores, n_videos=len(scores))
    metrics.update(n_videos=len(scores), n_frames=int(frames.labels.size),
                   abnormal_frame_share=float(frames.labels.mean()))
    return metrics, scores, frames
