"""Validation videos scored the way the test set is: every snippet of held-out TRAINING videos, zero-shot.

The test zero-shot AUC pools every snippet of every test video, most of them showing only walkers; a clip-level AUC
(event clip against look-alike clip) never sees that background, and on the default world the two disagreed about
which phase-1 setting was better. Here each held-out training video contributes all its snippets (one frame per
``frames.snippet_len``, from the ``frames`` stage), labelled abnormal when the snippet's frames overlap one of the video's annotated
abnormal clips (VAGTA ``frames_25`` spans, curated), as VadCLIP labels a test snippet from its frame ground truth.
Videos with a clip of a novel (held-out) class are left out, so the novel classes stay unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class SnippetSet:
    videos: list[str]  # (M,) the snippet's video
    frames: np.ndarray  # (M, H, W, 3) uint8, the snippet's centre frame
    abnormal: np.ndarray  # (M,) bool

    def __len__(self) -> int:
        return len(self.videos)


def load_snippet_set(clips: Path, frames_dir: Path, videos: set[str], novel: set[str], snippet_len: int) -> SnippetSet:
    """The snippets of ``videos`` (training videos), labelled from the curated clips table ``clips``; a snippet is
    ``snippet_len`` frames (params ``frames.snippet_len``, as the frames stage cut them)."""
    import polars as pl

    from .data.frames import open_frames

    table = pl.read_parquet(clips).filter(pl.col("split") == "train")
    if novel:
        novel_videos = set(table.filter(pl.col("category").fill_null("").str.to_lowercase().is_in(sorted(novel)))
                           ["video"].to_list())
        videos = videos - novel_videos
    spans: dict[str, list[tuple[int, int]]] = {}
    for video, start, end in table.filter(pl.col("abnormal")).select("video", "start", "end").iter_rows():
        spans.setdefault(video, []).append((int(start) - 1, int(end) - 1))  # 1-based inclusive -> 0-based
    index = pl.read_parquet(Path(frames_dir) / "snippets.parquet").filter(pl.col("video").is_in(sorted(videos)))
    index = index.sort(["video", "snippet"])
    shards = open_frames(Path(frames_dir), "snippets")
    if index.height and not shards:
        raise FileNotFoundError(f"no snippets-*.npy frame shards in {frames_dir}")
    names, rows, labels = [], [], []
    for video, snippet, shard, row in index.select("video", "snippet", "shard", "row").iter_rows():
        lo, hi = snippet * snippet_len, snippet * snippet_len + snippet_len - 1
        names.append(video)
        rows.append(shards[shard][row])
        labels.append(any(s <= hi and lo <= e for s, e in spans.get(video, ())))
    frames = np.stack(rows) if rows else np.zeros((0, 1, 1, 3), np.uint8)
    return SnippetSet(names, frames, np.asarray(labels, dtype=bool))


@torch.no_grad()
def snippet_auc(clip: torch.nn.Module, snippets: SnippetSet, t_abnormal: np.ndarray, t_normal: np.ndarray,
                batch_size: int = 256) -> float:
    """ROC AUC (sklearn) of the snippet labels against ``cos(frame, t_A) - cos(frame, t_N)`` (unit prompt-set vectors):
    the order the test's ``softmax(logit_scale * [cos_A, cos_N])[A]`` gives, as that is monotone in the gap."""
    from sklearn.metrics import roc_auc_score

    from .factory import images_to_tensor

    labels = snippets.abnormal
    if labels.all() or not labels.any():
        raise ValueError(f"snippet AUC needs abnormal and normal snippets; got {int(labels.sum())} of {labels.size}")
    was = clip.training
    clip.eval()
    device = next(clip.parameters()).device
    direction = torch.as_tensor(np.asarray(t_abnormal, np.float64) - np.asarray(t_normal, np.float64), device=device)
    scores = []
    for start in range(0, len(snippets), batch_size):
        x = images_to_tensor(snippets.frames[start:start + batch_size], clip).to(device)
        scores.append((clip.encode_image(x, normalize=True).double() @ direction).cpu().numpy())
    clip.train(was)
    s = np.concatenate(scores)
    return float(roc_auc_score(labels.astype(np.int64), s)) if np.isfinite(s).all() else float("nan")
