"""Bootstrap CIs over the test videos, per backbone and paired, from the per-video files (checked against metrics.json).

Every function works on one dataset (a key of params ``eval.datasets``): its own test videos are resampled, its own
checked ground truth (``data/testsets/<key>/``) rebuilds the zero-shot frames.
"""

from __future__ import annotations

import numpy as np

from ..eval.bootstrap import bootstrap_auc_ap, bootstrap_mss, paired_bootstrap_auc_ap, paired_bootstrap_mss
from ..eval.groundtruth import build_frame_level
from ..eval.metrics import frame_auc_ap
from ..paths import stage_name
from .formatting import as_number
from .inputs import ReportInputError, Results, read_scores, read_signed

# Backbone keys with a fixed role in the comparisons (dvc.yaml tune@stage1 and tune@full; other keys are ablations).
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


def dataset_metrics(r: Results, ds: str) -> list[str]:
    """The :data:`BOOT_METRICS` tested on ``ds``: MSS when eval_mss ran on it, then zero-shot AUC / AP as its headline
    metrics list them when eval_zeroshot did."""
    out = ["mss"] if ds in r.on("eval_mss") else []
    if ds in r.on("eval_zeroshot"):
        out += [f"zs_{m}" for m in r.datasets[ds].metrics]
    return out


def truth_of(r: Results, ds: str):
    if ds not in r.testsets:
        raise ReportInputError(f"no checked ground truth loaded for dataset {ds!r} ({r.truth_src(ds)})")
    return r.testsets[ds].truth


def video_signed(r: Results, key: str, ds: str) -> dict[str, float]:
    """``{video: signed margin}`` of eval_mss for ``key`` on ``ds`` (signed.csv), checked against its metrics.json."""
    if ("signed", key, ds) not in r.cache:
        src, stage = r.src("eval_mss", key, ds, "signed.csv"), stage_name("eval_mss", key, ds)
        rows = read_signed(r.file("eval_mss", key, ds, "signed.csv"))
        values = {row["video"]: row["signed"] for row in rows}
        if not values or len(values) != len(rows):
            raise ReportInputError(f"{src}: {'no rows' if not values else 'a video appears twice'}; "
                                   f"rerun dvc.yaml stage `{stage}`")
        mean, mss = float(np.mean(list(values.values()))), as_number(r.need("eval_mss", key, ds, "mss"))
        if mss is None or abs(mean - mss) > ATOL_MSS:
            raise ReportInputError(f"{src}: mean signed margin {mean:.6f} differs from mss {mss} in "
                                   f"{r.src('eval_mss', key, ds)}: the files are from different runs; rerun "
                                   f"dvc.yaml stage `{stage}`")
        r.cache[("signed", key, ds)] = values
    return r.cache[("signed", key, ds)]


def zeroshot_frames(r: Results, key: str, ds: str):
    """The pooled frames of eval_zeroshot for ``key`` on ``ds`` rebuilt from scores.parquet and the dataset's checked
    ground truth, videos by name.

    The protocol is the one its metrics.json records (``n_frames`` per video comes from scores.parquet under the exact
    protocol); the rebuilt AUC/AP must equal the recorded ones, or the files are from different runs.
    """
    if ("frames", key, ds) not in r.cache:
        path, src = r.file("eval_zeroshot", key, ds, "scores.parquet"), r.src("eval_zeroshot", key, ds, "scores.parquet")
        stage = stage_name("eval_zeroshot", key, ds)
        scores = read_scores(path)
        protocol = str(r.block("eval_zeroshot", key, ds).get("protocol", r.protocol))
        counts: dict[str, int] = {}
        if protocol == "exact":
            import polars as pl

            t = pl.read_parquet(path)
            if "n_frames" not in t.columns:
                raise ReportInputError(f"{src}: the exact protocol needs its n_frames column; rerun dvc.yaml stage "
                                       f"`{stage}`")
            counts = {str(v): int(n) for v, n in zip(t["video"].to_list(), t["n_frames"].to_list())}
        try:
            frames = build_frame_level([(v, scores[v], counts.get(v)) for v in sorted(scores)], truth_of(r, ds), protocol,
                                       clip_len=r.snippet_len)
            point = frame_auc_ap(frames.labels, frames.scores, n_videos=len(scores))
        except ValueError as exc:
            raise ReportInputError(f"{src} with {r.truth_src(ds)}: {exc}") from exc
        for m in ("auc", "ap"):
            recorded = as_number(r.need("eval_zeroshot", key, ds, m))
            if recorded is None or abs(point[m] - recorded) > ATOL_AUC:
                raise ReportInputError(f"{src}: its frame {m.upper()} {point[m]:.6f} differs from {m} {recorded} in "
                                       f"{r.src('eval_zeroshot', key, ds)}: the files are from different runs; rerun "
                                       f"dvc.yaml stage `{stage}`")
        r.cache[("frames", key, ds)] = frames
    return r.cache[("frames", key, ds)]


def _aligned_signed(r: Results, key: str, against: str, ds: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = video_signed(r, key, ds), video_signed(r, against, ds)
    if set(a) != set(b):
        odd = sorted(set(a) ^ set(b))
        raise ReportInputError(f"{r.src('eval_mss', key, ds, 'signed.csv')} and "
                               f"{r.src('eval_mss', against, ds, 'signed.csv')} hold different test videos ({len(odd)} "
                               f"in one only, e.g. {odd[0]!r}); rerun dvc.yaml stages "
                               f"`{stage_name('eval_mss', key, ds)}` and `{stage_name('eval_mss', against, ds)}`")
    names = sorted(a)
    return np.array([a[v] for v in names]), np.array([b[v] for v in names])


def paired_ci(r: Results, metric: str, key: str, against: str, ds: str):
    """:class:`~alertclip.eval.bootstrap.BootstrapCI` of ``metric(key) - metric(against)`` on ``ds`` (``metric``: a key
    of :data:`BOOT_METRICS`), the same resampled test videos for both; memoised."""
    if ("paired", metric, key, against, ds) not in r.cache:
        opts = dict(n_resamples=r.n_bootstrap, seed=r.bootstrap_seed)
        if metric == "mss":
            r.cache[("paired", "mss", key, against, ds)] = paired_bootstrap_mss(*_aligned_signed(r, key, against, ds),
                                                                                **opts)
        else:
            fa, fb = zeroshot_frames(r, key, ds), zeroshot_frames(r, against, ds)
            try:
                both = paired_bootstrap_auc_ap(fa, fb, **opts)
            except ValueError as exc:
                raise ReportInputError(f"{r.src('eval_zeroshot', key, ds, 'scores.parquet')} vs "
                                       f"{r.src('eval_zeroshot', against, ds, 'scores.parquet')}: {exc}") from exc
            r.cache[("paired", "zs_auc", key, against, ds)] = both["auc"]
            r.cache[("paired", "zs_ap", key, against, ds)] = both["ap"]
    return r.cache[("paired", metric, key, against, ds)]


def backbone_ci(r: Results, metric: str, key: str, ds: str) -> tuple[float, float]:
    """The 95% CI of ``metric`` for backbone ``key`` on ``ds``: the one its metrics.json records, else bootstrapped
    here from its per-video file (same resamples and seed as the stage)."""
    stage, _, ci_key, _ = BOOT_METRICS[metric]
    recorded = r.block(stage, key, ds).get(ci_key)
    if isinstance(recorded, list) and len(recorded) == 2 and all(as_number(x) is not None for x in recorded):
        return float(recorded[0]), float(recorded[1])
    if ("ci", metric, key, ds) not in r.cache:
        opts = dict(n_resamples=r.n_bootstrap, seed=r.bootstrap_seed)
        if metric == "mss":
            values = video_signed(r, key, ds)
            r.cache[("ci", "mss", key, ds)] = bootstrap_mss(np.array([values[v] for v in sorted(values)]), **opts)
        else:
            both = bootstrap_auc_ap(zeroshot_frames(r, key, ds), **opts)
            r.cache[("ci", "zs_auc", key, ds)], r.cache[("ci", "zs_ap", key, ds)] = both["auc"], both["ap"]
    ci = r.cache[("ci", metric, key, ds)]
    return ci.low, ci.high


def n_test_videos(r: Results, ds: str, metric: str = "mss") -> int:
    """Test videos of ``ds`` the bootstrap of ``metric`` resamples (those of the reference backbone)."""
    if metric == "mss":
        return len(video_signed(r, r.reference, ds))
    return len(zeroshot_frames(r, r.reference, ds).names)


def _video_counts(r: Results, ds: str) -> list[tuple[str, int]]:
    """``(evaluation, test videos)`` of the bootstrapped evaluations run on ``ds``."""
    out = []
    if ds in r.on("eval_mss"):
        out.append(("MSS", n_test_videos(r, ds, "mss")))
    if ds in r.on("eval_zeroshot"):
        out.append(("zero-shot", n_test_videos(r, ds, "zs_auc")))
    return out


def _videos_text(r: Results, ds: str) -> str:
    """``the 120 test videos`` / ``the test videos (5 for MSS, 4 for zero-shot)`` of one dataset."""
    counts = _video_counts(r, ds)
    if len({n for _, n in counts}) <= 1:
        return f"the {counts[0][1] if counts else 0} test videos"
    return "the test videos (" + ", ".join(f"{n} for {what}" for what, n in counts) + ")"


def _videos_count_text(r: Results, ds: str) -> str:
    """``120`` / ``5 for MSS, 4 for zero-shot``: the test videos of one dataset, inside a list of datasets."""
    counts = _video_counts(r, ds)
    if len({n for _, n in counts}) <= 1:
        return str(counts[0][1] if counts else 0)
    return ", ".join(f"{n} for {what}" for what, n in counts)


def videos_text_all(r: Results, keys: list[str]) -> str:
    """The test videos the bootstraps of ``keys`` resample: one dataset's text as :func:`_videos_text`, several
    listed by dataset."""
    if len(keys) == 1:
        return _videos_text(r, keys[0])
    return "each dataset's test videos (" + "; ".join(f"{r.label(k)}: {_videos_count_text(r, k)}" for k in keys) + ")"
