"""Can a base have MSS < 0 and a weakly right zero-shot ranking at once, in this world? (issue 24, deliverable 1)

Takes a finished run's per-snippet margins m = cos(v, P_A) - cos(v, P_N) (``benchmarks/margins_by_kind.py``), keeps
their spread inside each snippet kind (the residual: scene, colours, walkers, the text tower's noise) and moves the
kinds' means by every combination of shifts on a grid:

    abnormal      the abnormal events
    tail          normal events named by --tail (default: fireworks, lamp glow: the look-alikes the web most often
                  captions with the twin's word), in Normal and in abnormal videos alike
    other normal  every other normal event
    background    the scene alone

For each combination it computes what a caption rule could at best give: the snippet zero-shot AUC (abnormal vs every
other snippet) and the MSS over the truth spans with its video-bootstrap 95% CI (``eval.bootstrap``'s resampling).
It prints the largest AUC among the combinations whose MSS CI upper bound is below 0, for each bound on the shifts.
A caption rule only moves these means (it cannot shrink the residual), so if no bounded combination reaches the
target, no rule does. Reads only what ``features@<key>-synth`` and the checkpoint wrote; nothing is written.

    python benchmarks/mss_auc_frontier.py [--key base] [--bounds 0.1 0.2 0.6]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from margins_by_kind import EVENTS, auc, events_by_video, margins, snippet_kinds  # noqa: E402

from alertclip.eval.bootstrap import bootstrap_mss  # noqa: E402
from alertclip.params import load_params  # noqa: E402


def event_names(index: pl.DataFrame, events: pl.DataFrame) -> np.ndarray:
    """The event each snippet lies inside ("" for none), as :func:`snippet_kinds` decides it."""
    by_video = events_by_video(events)
    out = []
    for video, frame in zip(index["video"].to_list(), index["frame"].to_list()):
        out.append(next((e["event"] for e in by_video.get(video, []) if e["start_s"] <= frame / e["fps"] < e["end_s"]),
                        ""))
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--key", default="base")
    ap.add_argument("--tail", nargs="+", default=["fireworks", "lamp_glow"])
    ap.add_argument("--bounds", nargs="+", type=float, default=[0.1, 0.2, 0.6])
    ap.add_argument("--steps", type=int, default=6, help="grid points per shift between 0 and the bound")
    args = ap.parse_args(argv)
    p = load_params()
    events = pl.read_parquet(EVENTS)
    index, m = margins(p, args.key, "synth")
    test = pl.Series(np.array(index["split"].to_list()) == "test")
    index, m = index.filter(test), m[test.to_numpy()]
    kinds, names = snippet_kinds(index, events), event_names(index, events)
    videos = np.array(index["video"].to_list())
    resid = m.copy()
    for k in np.unique(kinds):
        resid[kinds == k] -= m[kinds == k].mean()
    is_abn = kinds == "abnormal"
    groups = {"abnormal": is_abn, "tail": np.isin(names, args.tail) & ~is_abn,
              "other normal": (names != "") & ~is_abn & ~np.isin(names, args.tail), "background": kinds == "background"}
    uv, inverse = np.unique(videos, return_inverse=True)
    abnormal_video = np.bincount(inverse, weights=is_abn, minlength=len(uv)) > 0
    # per video: the mean over its abnormal snippets (abnormal videos) or minus the mean over all (normal videos)
    weight = np.where(abnormal_video[inverse], is_abn, 1.0)
    sign = np.where(abnormal_video, 1.0, -1.0)
    per_video_n = np.bincount(inverse, weights=weight, minlength=len(uv))

    def figures(mm: np.ndarray) -> tuple[float, float, float]:
        signed = sign * np.bincount(inverse, weights=weight * mm, minlength=len(uv)) / per_video_n
        ci = bootstrap_mss(signed, p.eval.bootstrap_samples, p.eval.bootstrap_seed)
        return 100 * auc(mm[is_abn], mm[~is_abn]), ci.estimate, ci.high

    a0, s0, h0 = figures(m)
    print(f"{args.key}: {len(m)} test snippets, {len(uv)} videos; residual std {resid.std():.4f}; as measured: "
          f"AUC {a0:.1f}, MSS {s0:+.4f} (CI upper {h0:+.4f})")
    print("kind means: " + ", ".join(f"{k} {m[g].mean():+.4f} ({int(g.sum())})" for k, g in groups.items()))
    for bound in args.bounds:
        up = np.linspace(0, bound, args.steps)
        best = None
        # the abnormal and normal-event kinds may rise, the background may fall (the directions that help both)
        for da, dt, do, db in itertools.product(up, up, up, -up):
            mm = resid + sum(d * g for d, g in zip((da, dt, do, db), groups.values()))
            a, s, hi = figures(mm)
            if hi < 0 and (best is None or a > best[0]):
                best = (a, s, hi, da, dt, do, db)
        if best is None:
            print(f"  shifts <= {bound:.2f}: no combination has MSS CI upper < 0")
            continue
        a, s, hi, da, dt, do, db = best
        print(f"  shifts <= {bound:.2f}: best AUC {a:.1f} with MSS {s:+.4f} (CI upper {hi:+.4f}) at abnormal {da:+.2f}, "
              f"tail {dt:+.2f}, other normal {do:+.2f}, background {db:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
