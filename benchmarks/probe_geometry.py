"""Can a clip's label be read from its box geometry alone? (issue 10: no loss may be lowered from the box)

Per curated training clip, features of the box track only -- whether it has a box, the mean box area, centre, width,
height and aspect, their spread over the clip, and the share of frames with a box -- and a logistic regression that
predicts the clip's label from them, scored by 5-fold cross-validated ROC AUC. Chance (0.5) means no loss term whose
anchor depends on the box (region InfoNCE, hard negatives anchored on the region embedding) can be lowered from
geometry without looking at the pixels. Also prints the share of clips that take the region path (the hard-negative
anchor) per label: equal shares mean the anchor path does not tell the label either.

    python benchmarks/probe_geometry.py [data/curated/clips.parquet]
"""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def geometry_features(boxes: list) -> list[float]:
    b = np.array([[np.nan] * 4 if x is None else list(x) for x in (boxes or [])], dtype=np.float64).reshape(-1, 4)
    shown = np.isfinite(b).all(1)
    if not shown.any():
        return [0.0] + [0.0] * 12 + [0.0]
    s = b[shown]
    w, h = s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]
    cx, cy = (s[:, 0] + s[:, 2]) / 2, (s[:, 1] + s[:, 3]) / 2
    feats = [w * h, cx, cy, w, h, w / np.maximum(h, 1e-6)]
    return [1.0] + [f.mean() for f in feats] + [f.std() for f in feats] + [shown.mean()]


def probe(path: str = "data/curated/clips.parquet") -> dict:
    t = pl.read_parquet(path).filter(pl.col("split") == "train")
    with_negs = t.filter(pl.col("hard_negative").list.len() > 0) if "hard_negative" in t.columns else t
    out = {}
    for name, table in (("all clips", t), ("clips with hard negatives", with_negs)):
        x = np.array([geometry_features(b) for b in table["boxes"].to_list()])
        y = table["abnormal"].to_numpy().astype(int)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        p = cross_val_predict(model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")[:, 1]
        boxed = x[:, 0] > 0
        out[name] = {"n": len(y), "abnormal": int(y.sum()), "geometry_auc": float(roc_auc_score(y, p)),
                     "region_path_share_abnormal": float(boxed[y == 1].mean()),
                     "region_path_share_normal": float(boxed[y == 0].mean())}
    return out


if __name__ == "__main__":
    for name, r in probe(*sys.argv[1:]).items():
        print(f"{name:<28} n={r['n']:<5} abnormal={r['abnormal']:<5} geometry->label AUC {r['geometry_auc']:.3f}   "
              f"region path: abnormal {r['region_path_share_abnormal']:.2f}, normal {r['region_path_share_normal']:.2f}")
