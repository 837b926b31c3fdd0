"""Bootstrap CIs over the test videos, per backbone and paired, from the per-video files (checked against metrics.json)."""

from __future__ import annotations

import numpy as np

from ..eval.bootstrap import bootstrap_auc_ap, bootstrap_mss, paired_bootstrap_auc_ap, paired_bootstrap_mss
from ..eval.groundtruth import build_frame_level, read_ucf_temporal
from ..eval.metrics import frame_auc_ap
from .formatting import _num
from .inputs import ReportInputError, Results, read_scores, read_signed

# Backbone keys with a fixed role in the comparisons (dvc.yaml stage1 and stage2@full; other keys are ablations).
STAGE1_KEY, FULL_KEY = "stage1", "full"
ATOL_MSS = 1e-5  # signed.csv keeps 6 decimals: its mean may differ from metrics.json's mss by rounding only
ATOL_AUC = 1e-9  # scores.parquet keeps the float64 scores: the rebuilt AUC/AP equal metrics.json's


# metric -> (stage, metrics.json key, key of its CI in metrics.json, label)
BOOT_METRICS: dict[str, tuple[str, str, str, str]] = {
    "mss": ("eval_mss", "mss", "mss_ci95", "MSS"),
    "zs_auc": ("eval_zeroshot", "auc", "auc_ci95", "Zero-shot AUC"),
    "zs_ap": ("eval_zeroshot", "ap", "ap_ci95", "Zero-shot AP"),
}


def comparison_pairs(r: Results) -> list[tuple[str, str]]:
    """``(key, against)`` pairs the report tests: each tuned backbone vs the reference, then ``full`` vs ``stage1``
    and each other (ablation) backbone vs ``full``, when those keys are evaluated."""
    pairs = [(k, r.reference) for k in r.tuned]
    if FULL_KEY in r.tuned:
        if STAGE1_KEY in r.tuned:
            pairs.append((FULL_KEY, STAGE1_KEY))
        pairs += [(k, FULL_KEY) for k in r.tuned if k not in (STAGE1_KEY, FULL_KEY)]
    return list(dict.fromkeys(pairs))


def _truth(r: Results):
    if "truth" not in r.cache:
        r.cache["truth"] = read_ucf_temporal(r.annotations)
    return r.cache["truth"]


def video_signed(r: Results, key: str) -> dict[str, float]:
    """``{video: signed margin}`` of ``eval_mss@key`` (signed.csv), checked against its metrics.json ``mss``."""
    if ("signed", key) not in r.cache:
        src = r.src("eval_mss", key, "signed.csv")
        rows = read_signed(r.file("eval_mss", key, "signed.csv"))
        values = {row["video"]: row["signed"] for row in rows}
        if not values or len(values) != len(rows):
            raise ReportInputError(f"{src}: {'no rows' if not values else 'a video appears twice'}; "
                                   f"rerun dvc.yaml stage `eval_mss@{key}`")
        mean, mss = float(np.mean(list(values.values()))), _num(r.need("eval_mss", key, "mss"))
        if mss is None or abs(mean - mss) > ATOL_MSS:
            raise ReportInputError(f"{src}: mean signed margin {mean:.6f} differs from mss {mss} in "
                                   f"{r.src('eval_mss', key)}: the files are from different runs; rerun "
                                   f"dvc.yaml stage `eval_mss@{key}`")
        r.cache[("signed", key)] = values
    return r.cache[("signed", key)]


def zeroshot_frames(r: Results, key: str):
    """The pooled frames of ``eval_zeroshot@key`` rebuilt from scores.parquet and the ground truth, videos by name.

    The protocol is the one its metrics.json records (``n_frames`` per video comes from scores.parquet under the exact
    protocol); the rebuilt AUC/AP must equal the recorded ones, or the files are from different runs.
    """
    if ("frames", key) not in r.cache:
        path, src = r.file("eval_zeroshot", key, "scores.parquet"), r.src("eval_zeroshot", key, "scores.parquet")
        scores = read_scores(path)
        protocol = str(r.block("eval_zeroshot", key).get("protocol", r.protocol))
        counts: dict[str, int] = {}
        if protocol == "exact":
            import polars as pl

            t = pl.read_parquet(path)
            if "n_frames" not in t.columns:
                raise ReportInputError(f"{src}: the exact protocol needs its n_frames column; rerun dvc.yaml stage "
                                       f"`eval_zeroshot@{key}`")
            counts = {str(v): int(n) for v, n in zip(t["video"].to_list(), t["n_frames"].to_list())}
        try:
            frames = build_frame_level([(v, scores[v], counts.get(v)) for v in sorted(scores)], _truth(r), protocol,
                                       clip_len=r.snippet_len)
            point = frame_auc_ap(frames.labels, frames.scores, n_videos=len(scores))
        except ValueError as exc:
            raise ReportInputError(f"{src} with {r.annotations_src}: {exc}") from exc
        for m in ("auc", "ap"):
            recorded = _num(r.need("eval_zeroshot", key, m))
            if recorded is None or abs(point[m] - recorded) > ATOL_AUC:
                raise ReportInputError(f"{src}: its frame {m.upper()} {point[m]:.6f} differs from {m} {recorded} in "
                                       f"{r.src('eval_zeroshot', key)}: the files are from different runs; rerun "
                                       f"dvc.yaml stage `eval_zeroshot@{key}`")
        r.cache[("frames", key)] = frames
    return r.cache[("frames", key)]


def _aligned_signed(r: Results, key: str, against: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = video_signed(r, key), video_signed(r, against)
    if set(a) != set(b):
        odd = sorted(set(a) ^ set(b))
        raise ReportInputError(f"{r.src('eval_mss', key, 'signed.csv')} and {r.src('eval_mss', against, 'signed.csv')}"
                               f" hold different test videos ({len(odd)} in one only, e.g. {odd[0]!r}); rerun "
                               f"dvc.yaml stages `eval_mss@{key}` and `eval_mss@{against}`")
    names = sorted(a)
    return np.array([a[v] for v in names]), np.array([b[v] for v in names])


def paired_ci(r: Results, metric: str, key: str, against: str):
    """:class:`~alertclip.eval.bootstrap.BootstrapCI` of ``metric(key) - metric(against)`` (``metric``: a key of
    :data:`BOOT_METRICS`), the same resampled test videos for both; memoised."""
    if ("paired", metric, key, against) not in r.cache:
        opts = dict(n_resamples=r.n_bootstrap, seed=r.bootstrap_seed)
        if metric == "mss":
            r.cache[("paired", "mss", key, against)] = paired_bootstrap_mss(*_aligned_signed(r, key, against), **opts)
        else:
            fa, fb = zeroshot_frames(r, key), zeroshot_frames(r, against)
            try:
                both = paired_bootstrap_auc_ap(fa, fb, **opts)
            except ValueError as exc:
                raise ReportInputError(f"{r.src('eval_zeroshot', key, 'scores.parquet')} vs "
                                       f"{r.src('eval_zeroshot', against, 'scores.parquet')}: {exc}") from exc
            r.cache[("paired", "zs_auc", key, against)] = both["auc"]
            r.cache[("paired", "zs_ap", key, against)] = both["ap"]
    return r.cache[("paired", metric, key, against)]


def backbone_ci(r: Results, metric: str, key: str) -> tuple[float, float]:
    """The 95% CI of ``metric`` for backbone ``key``: the one its metrics.json records, else bootstrapped here from
    its per-video file (same resamples and seed as the stage)."""
    stage, _, ci_key, _ = BOOT_METRICS[metric]
    recorded = r.block(stage, key).get(ci_key)
    if isinstance(recorded, list) and len(recorded) == 2 and all(_num(x) is not None for x in recorded):
        return float(recorded[0]), float(recorded[1])
    if ("ci", metric, key) not in r.cache:
        opts = dict(n_resamples=r.n_bootstrap, seed=r.bootstrap_seed)
        if metric == "mss":
            values = video_signed(r, key)
            r.cache[("ci", "mss", key)] = bootstrap_mss(np.array([values[v] for v in sorted(values)]), **opts)
        else:
            both = bootstrap_auc_ap(zeroshot_frames(r, key), **opts)
            r.cache[("ci", "zs_auc", key)], r.cache[("ci", "zs_ap", key)] = both["auc"], both["ap"]
    ci = r.cache[("ci", metric, key)]
    return ci.low, ci.high


def n_test_videos(r: Results, metric: str = "mss") -> int:
    """Test videos the bootstrap of ``metric`` resamples (those of the reference backbone)."""
    return len(video_signed(r, r.reference)) if metric == "mss" else len(zeroshot_frames(r, r.reference).names)


def _videos_text(r: Results) -> str:
    n_mss, n_zs = n_test_videos(r, "mss"), n_test_videos(r, "zs_auc")
    return f"the {n_mss} test videos" if n_mss == n_zs else f"the test videos ({n_mss} for MSS, {n_zs} for zero-shot)"
