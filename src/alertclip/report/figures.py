"""The report's figures: ROC curves, MSS margins, per-video score traces (matplotlib on Agg: deterministic PNG bytes).

One figure of each kind per dataset the evaluation ran on; with several datasets shown the names end in ``_<key>``
(``roc_zeroshot_ucf``), with one they are the long-standing names (``roc_zeroshot``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..eval.groundtruth import is_normal_name, lookup_truth, vadclip_frame_labels
from ..io import atomic_open
from .bootstrap import truth_of
from .formatting import mss_fmt, pct, pct_pm
from .inputs import FIGURES_DIR, Results, read_roc, read_scores, read_signed

DPI = 100
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
ABNORMAL_COLOUR, NORMAL_COLOUR = "#d62728", "#1f77b4"


@dataclass
class FigureSpec:
    name: str
    caption: str
    sources: list[str]

    @property
    def path(self) -> Path:
        return FIGURES_DIR / f"{self.name}.png"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _roc_figure(r: Results, stage: str, ds: str, title: str, label: Callable[[str], str]):
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8, label="chance")
    for i, k in enumerate(r.backbones):
        fpr, tpr = read_roc(r.file(stage, k, ds, "roc.csv"))
        ax.plot(fpr, tpr, color=_colour(i), linewidth=1.5, label=label(k))
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _mss_figure(r: Results, ds: str):
    n = len(r.backbones)
    data = {k: read_signed(r.file("eval_mss", k, ds, "signed.csv")) for k in r.backbones}
    values = [row["signed"] for rows in data.values() for row in rows]
    lo, hi = (min(values), max(values)) if values else (-1.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 25)
    fig = _figure(7.0, 1.8 * n + 0.6)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, k in zip(axes, r.backbones):
        rows = data[k]
        for kind, colour in (("abnormal", ABNORMAL_COLOUR), ("normal", NORMAL_COLOUR)):
            vals = [row["signed"] for row in rows if row["kind"] == kind]
            ax.hist(vals, bins=bins, color=colour, alpha=0.6, label=f"{kind} ({len(vals)})")
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"{k}: MSS {mss_fmt(r.need('eval_mss', k, ds, 'mss'))}", fontsize=9)
        ax.set_ylabel("videos")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("signed margin per video (abnormal: s_A − s_N; normal: s_N − s_A)")
    if r.multi:  # with one dataset the figure stays as it always was
        fig.suptitle(f"MSS margins ({r.label(ds)})", fontsize=10)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class TraceVideo:
    video: str
    abnormal: bool
    labels: np.ndarray  # (16 * T,) VadCLIP frame labels


def select_trace_videos(scores: Mapping[str, np.ndarray], truth: Mapping, clip_len: int, n_abnormal: int = 3,
                        n_normal: int = 3) -> list[TraceVideo]:
    """Deterministic choice: the ``n_abnormal`` videos with the most abnormal frames, then the ``n_normal`` longest
    normal videos (ties by name). A checked test set (``data/testsets/<key>``) lists every test video, normal ones
    with no spans; a video without a ground-truth entry counts as normal when its name says so
    (:func:`alertclip.eval.groundtruth.is_normal_name`) and is skipped otherwise."""
    ab, no = [], []
    for v in sorted(scores):
        entry = lookup_truth(truth, v)
        if entry is None and not is_normal_name(v):
            continue
        spans = entry.spans if entry is not None else ()
        labels = vadclip_frame_labels(spans, len(scores[v]), clip_len)
        (ab if spans else no).append(TraceVideo(v, bool(spans), labels))
    ab.sort(key=lambda t: (-int(t.labels.sum()), t.video))
    no.sort(key=lambda t: (-len(t.labels), t.video))
    return ab[:n_abnormal] + no[:n_normal]


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of 1s, end exclusive."""
    padded = np.concatenate([[0], labels.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _trace_figure(r: Results, title: str, videos: list[TraceVideo], scores: Mapping[str, Mapping[str, np.ndarray]],
                  ylim: tuple[float, float] | None = None):
    n = max(len(videos), 1)
    fig = _figure(8.0, 1.7 * n + 0.8)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    if not videos:
        axes[0].text(0.5, 0.5, "no test video with ground truth in the scores", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, tv in zip(axes, videos):
        for a, b in _runs(tv.labels):
            ax.axvspan(a, b, color="#bbbbbb", alpha=0.5, linewidth=0)
        for i, k in enumerate(r.backbones):
            s = scores[k].get(tv.video)
            if s is None or len(s) == 0:
                continue
            ax.stairs(s, np.arange(len(s) + 1) * r.snippet_len, baseline=None, color=_colour(i), linewidth=1.2, label=k)
        ax.set_xlim(0, max(len(tv.labels), 1))
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(f"{tv.video} ({'abnormal' if tv.abnormal else 'normal'})", fontsize=8)
        ax.set_ylabel("score", fontsize=8)
        ax.tick_params(labelsize=7)
    if videos:
        axes[0].legend(loc="upper right", fontsize=7, ncol=min(len(r.backbones), 4))
        axes[-1].set_xlabel("frame (16 per snippet); grey: ground-truth abnormal frames")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def render_figures(r: Results) -> list[FigureSpec]:
    """Draw every figure under ``root/results/report/figures`` and return their specs, dataset by dataset."""
    import matplotlib
    import matplotlib.style

    specs: list[FigureSpec] = []

    def emit(spec: FigureSpec, draw: Callable[[], Any]) -> None:
        fig = draw()
        _save(fig, r.root / spec.path)
        specs.append(spec)

    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": 9}):
        for ds in r.shown:
            _dataset_figures(r, ds, emit)
    return specs


def _dataset_figures(r: Results, ds: str, emit: Callable[[FigureSpec, Callable[[], Any]], None]) -> None:
    """The figures of one dataset: ROC curves, MSS margins, score traces (each for the evaluations run on it)."""
    sfx, name = r.suffix(ds), r.label(ds)
    zs_on, weak_on, mss_on = ds in r.on("eval_zeroshot"), ds in r.on("eval_weakly"), ds in r.on("eval_mss")

    def roc_src(stage):
        return [r.src(stage, k, ds, n) for k in r.backbones for n in ("roc.csv", "metrics.json")]

    if zs_on:
        emit(FigureSpec(f"roc_zeroshot{sfx}", f"Zero-shot ROC curves on {name}, one line per backbone.",
                        roc_src("eval_zeroshot")),
             lambda: _roc_figure(r, "eval_zeroshot", ds, f"Zero-shot ROC ({name})",
                                 lambda k: f"{k} (AUC {pct(r.need('eval_zeroshot', k, ds, 'auc'))})"))
    if weak_on:
        emit(FigureSpec(f"roc_weakly{sfx}", f"Weakly supervised ROC curves on {name} (prob1 averaged over seeds), "
                        "one line per backbone; the legend gives AUC mean ± std over seeds.", roc_src("eval_weakly")),
             lambda: _roc_figure(r, "eval_weakly", ds, f"Weakly supervised ROC ({name})",
                                 lambda k: f"{k} (AUC {pct_pm(r.need('eval_weakly', k, ds, 'auc'))})"))
    if mss_on:
        emit(FigureSpec(f"mss_distribution{sfx}", "Per-video signed margin for each backbone, abnormal (red) vs normal "
                        "(blue) test videos" + (f" of {name}" if r.multi else "") + "; MSS is their mean.",
                        [r.src("eval_mss", k, ds, n) for k in r.backbones for n in ("signed.csv", "metrics.json")]),
             lambda: _mss_figure(r, ds))
    if not (zs_on or weak_on):
        return
    truth, truth_src = truth_of(r, ds), r.truth_src(ds)
    on = f" of {name}" if r.multi else ""
    weak = {k: read_scores(r.file("eval_weakly", k, ds, "scores.parquet")) for k in r.backbones} if weak_on else {}
    zs = {k: read_scores(r.file("eval_zeroshot", k, ds, "scores.parquet")) for k in r.backbones} if zs_on else {}
    videos = select_trace_videos((weak or zs)[r.reference], truth, r.snippet_len)
    chosen = ", ".join(v.video for v in videos) or "none"
    which = ("up to 3 abnormal test videos" + on + " with the most abnormal frames and the 3 longest normal ones "
             f"({chosen}); grey: ground truth.")
    if weak_on:
        emit(FigureSpec(f"traces_weakly{sfx}", f"Per-snippet weakly supervised scores (prob1, mean over seeds) of {which}",
                        [r.src("eval_weakly", k, ds, "scores.parquet") for k in r.backbones] + [truth_src]),
             lambda: _trace_figure(r, "Weakly supervised scores (prob1, mean over seeds)" + _in(r, name), videos, weak,
                                   (0.0, 1.02)))
    if zs_on:
        caption = (f"Per-snippet zero-shot scores of the same test videos ({chosen}); grey: ground truth." if weak_on
                   else f"Per-snippet zero-shot scores of {which}")
        emit(FigureSpec(f"traces_zeroshot{sfx}", caption,
                        [r.src("eval_zeroshot", k, ds, "scores.parquet") for k in r.backbones] + [truth_src]),
             lambda: _trace_figure(r, "Zero-shot scores" + _in(r, name), videos, zs))


def _in(r: Results, name: str) -> str:
    """`` (UCF-Crime)`` after a figure title with several datasets; nothing with one (the figure stays as it was)."""
    return f" ({name})" if r.multi else ""
