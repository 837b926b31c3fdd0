"""Validation videos scored like the test set (alertclip.heldout): snippet labels from the curated clips, the AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score

from alertclip import factory
from alertclip.factory import images_to_tensor
from alertclip.heldout import load_snippet_set, snippet_auc

SNIPPET_LEN = 16  # as params.yaml's frames.snippet_len; the snippet labels below are worked out for 16


def _world(root: Path) -> tuple[Path, Path]:
    """Four training videos of 4 snippets: A (abnormal, annotated frames 20-40 and a look-alike at 50-60), N (normal),
    X (abnormal, a novel class), B (abnormal, not held out), and a test video."""
    frames = root / "frames"
    frames.mkdir()
    clips = [dict(video="A.mp4", split="train", abnormal=True, category="Fighting", start=20, end=40),
             dict(video="A.mp4", split="train", abnormal=False, category=None, start=50, end=60),
             dict(video="N.mp4", split="train", abnormal=False, category=None, start=1, end=30),
             dict(video="X.mp4", split="train", abnormal=True, category="Explosion", start=1, end=10),
             dict(video="B.mp4", split="train", abnormal=True, category="Fighting", start=1, end=64),
             dict(video="T.mp4", split="test", abnormal=True, category="Fighting", start=1, end=64)]
    pl.DataFrame(clips).write_parquet(root / "clips.parquet")
    videos = ["A.mp4", "N.mp4", "X.mp4", "B.mp4", "T.mp4"]
    rows = [dict(video=v, split="test" if v == "T.mp4" else "train", snippet=k, frame=k * SNIPPET_LEN + 8, shard=0,
                 row=4 * i + k) for i, v in enumerate(videos) for k in range(4)]
    pl.DataFrame(rows).write_parquet(frames / "snippets.parquet")
    rng = np.random.default_rng(0)
    np.save(frames / "snippets-000.npy", rng.integers(0, 255, (len(rows), 64, 64, 3), dtype=np.uint8))
    return root / "clips.parquet", frames


def test_snippets_labelled_from_annotated_abnormal_clips(tmp_path):
    clips, frames = _world(tmp_path)
    s = load_snippet_set(clips, frames, {"A.mp4", "N.mp4", "X.mp4"}, novel={"explosion"}, snippet_len=SNIPPET_LEN)
    assert s.videos == ["A.mp4"] * 4 + ["N.mp4"] * 4  # X holds a novel class, B is not a validation video
    # A's span, frames 20-40 (1-based) = 19-39: snippets 1 (16-31) and 2 (32-47); its look-alike is normal
    assert s.abnormal.tolist() == [False, True, True, False] + [False] * 4
    shard = np.load(frames / "snippets-000.npy")
    np.testing.assert_array_equal(s.frames, shard[[0, 1, 2, 3, 4, 5, 6, 7]])
    with_novel = load_snippet_set(clips, frames, {"A.mp4", "X.mp4"}, novel=set(), snippet_len=SNIPPET_LEN)
    assert with_novel.abnormal.tolist()[4:] == [True, False, False, False]


def test_snippet_auc_is_the_prompt_gap_ranked(tmp_path):
    clips, frames = _world(tmp_path)
    s = load_snippet_set(clips, frames, {"A.mp4", "N.mp4"}, novel=set(), snippet_len=SNIPPET_LEN)
    torch.manual_seed(0)
    clip, *_ = factory.create("alertclip-tiny")
    rng = np.random.default_rng(1)
    t_a, t_n = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 128)))
    with torch.no_grad():
        f = clip.eval().encode_image(images_to_tensor(s.frames, clip), normalize=True).double().numpy()
    want = roc_auc_score(s.abnormal.astype(int), f @ t_a - f @ t_n)
    assert snippet_auc(clip, s, t_a, t_n, batch_size=3) == pytest.approx(want)
    assert snippet_auc(clip, s, t_n, t_a) == pytest.approx(1 - want)
    normal_only = load_snippet_set(clips, frames, {"N.mp4"}, novel=set(), snippet_len=SNIPPET_LEN)
    with pytest.raises(ValueError, match="needs abnormal and normal snippets; got 0 of 4"):
        snippet_auc(clip, normal_only, t_a, t_n)
