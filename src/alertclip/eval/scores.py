"""Per-snippet score tables (what the report plots): ``video, snippet, score`` as parquet, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_path


def write_snippet_scores(path: Path, scores: dict[str, np.ndarray], extra: dict[str, dict[str, np.ndarray]] | None = None):
    """``scores``: ``{video: (T,) score}``; ``extra``: more columns, ``{column: {video: (T,) values}}``."""
    import polars as pl

    videos = list(scores)
    cols = {"video": [v for v in videos for _ in range(len(scores[v]))],
            "snippet": np.concatenate([np.arange(len(scores[v])) for v in videos]).astype(np.int64),
            "score": np.concatenate([np.asarray(scores[v], dtype=np.float64) for v in videos])}
    for name, per_video in (extra or {}).items():
        cols[name] = np.concatenate([np.asarray(per_video[v], dtype=np.float64) for v in videos])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(path)) as tmp:
        pl.DataFrame(cols).write_parquet(tmp)


def write_roc(path: Path, labels: np.ndarray, scores: np.ndarray, max_points: int = 200) -> None:
    """ROC curve points (``fpr,tpr``) as CSV, thinned to about ``max_points`` (a DVC plot; the report redraws it)."""
    import csv

    from sklearn.metrics import roc_curve

    from ..io import atomic_open

    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), max_points)).round().astype(int))
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["fpr", "tpr"])
        for i in keep:
            w.writerow([f"{fpr[i]:.6f}", f"{tpr[i]:.6f}"])
