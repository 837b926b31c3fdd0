"""The experiment report: the paper's tables, figures and an honest summary, built from the evaluation outputs.

:func:`build_report` reads, under a root directory (the repository root in the pipeline),

* per backbone key ``K`` of params ``eval.backbones``: ``results/eval_{mss,zeroshot,weakly,openvocab,retention}/K/``
  (metrics JSON, MSS margins, snippet scores, ROC points) -- every one required; a missing file raises
  :class:`MissingResultError` naming it and the dvc.yaml stage (``eval_weakly@K``) that writes it;
* optionally the training summaries ``results/{backbone,stage1}/metrics.json`` and
  ``results/stage2/<variant>/metrics.json`` (a small training table);
* the test ground truth (params ``eval.test_annotations``) for the per-video score traces,

and writes ``results/report.md`` (markdown tables, "What this run shows", figure links),
``results/report/tables/<name>.csv`` (the same cells as the markdown plus a ``source`` column),
``results/report/figures/*.png`` (byte-identical for identical inputs) and ``results/report/index.json`` (every table
and figure with its sources and a caption). Every output is written atomically.

Number formats follow the paper: fractions (AUC, AP, R@k, shares) as percentages with 2 decimals, MSS with 4
decimals, seed statistics as ``mean ± std`` (sample std over ``eval_weakly.seeds``), 95% CIs as ``value [low, high]``.

When a gap is real: the MSS and zero-shot AUC/AP gaps between two backbones (each tuned one vs the reference, ``full``
vs ``stage1``, each ablation variant vs ``full``) count only when the 95% CI of a paired bootstrap over the test
videos (:func:`alertclip.eval.metrics.paired_bootstrap_mss`, :func:`~alertclip.eval.metrics.paired_bootstrap_auc_ap`;
params ``eval.bootstrap_samples`` resamples, seed ``eval.bootstrap_seed``) excludes 0, and read "no difference"
otherwise; the seeded heads' gaps count only when they exceed the larger seed std; retention, without per-image
results, is reported and not tested. Every draw is seeded, so the outputs stay byte-identical (DVC hashes them).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .io import atomic_open, write_json

RESULTS = Path("results")
REPORT_MD = RESULTS / "report.md"
REPORT_DIR = RESULTS / "report"
TABLES_DIR = REPORT_DIR / "tables"
FIGURES_DIR = REPORT_DIR / "figures"
INDEX_JSON = REPORT_DIR / "index.json"

CLIP_LEN = 16  # frames per snippet (VadCLIP)
# Backbone keys with a fixed role in the comparisons (dvc.yaml stage1 and stage2@full; other keys are ablations).
STAGE1_KEY, FULL_KEY = "stage1", "full"
ATOL_MSS = 1e-5  # signed.csv keeps 6 decimals: its mean may differ from metrics.json's mss by rounding only
ATOL_AUC = 1e-9  # scores.parquet keeps the float64 scores: the rebuilt AUC/AP equal metrics.json's
# Per-backbone evaluation stages and the files of each the report reads (all required).
EVAL_FILES: dict[str, tuple[str, ...]] = {
    "eval_mss": ("metrics.json", "signed.csv"),
    "eval_zeroshot": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_weakly": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_openvocab": ("metrics.json",),
    "eval_retention": ("metrics.json",),
}
# Training summaries (optional): dvc.yaml stage -> metrics file.
TRAINING_STAGES = ("backbone", "stage1", "stage2")
RETENTION_METRICS = (("i2t_r1", "i2t R@1"), ("i2t_r5", "i2t R@5"), ("t2i_r1", "t2i R@1"), ("scene_acc", "Scene acc"))

PM = "±"
NA = "n/a"


class MissingResultError(FileNotFoundError):
    """A result file the report needs is absent; the message names each file and the dvc.yaml stage writing it."""


class ReportInputError(ValueError):
    """A result file is present but lacks what the report needs (a dataset block, a metric)."""


# ---------------------------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _clean(x: float, nd: int) -> float:
    """``x`` rounded to ``nd`` decimals, with ``-0.0`` turned into ``0.0``."""
    return round(x, nd) + 0.0


def pct(x: Any) -> str:
    """A fraction as a percentage with 2 decimals (0.8932 -> ``89.32``); ``n/a`` for None/NaN."""
    v = _num(x)
    return NA if v is None else f"{_clean(100 * v, 2):.2f}"


def mss_fmt(x: Any) -> str:
    v = _num(x)
    return NA if v is None else f"{_clean(v, 4):.4f}"


def pct_pm(stat: Mapping[str, Any] | None) -> str:
    """``{"mean", "std"}`` fractions as ``81.23 ± 1.00``."""
    if not isinstance(stat, Mapping):
        return NA
    m, s = _num(stat.get("mean")), _num(stat.get("std"))
    if m is None:
        return NA
    return f"{pct(m)} {PM} {pct(s if s is not None else 0.0)}"


def signed_pp(delta: float | None) -> str:
    """A change in percentage points, always signed (``+1.23``, ``-0.50``, ``+0.00``)."""
    return NA if delta is None else f"{_clean(delta, 2):+.2f}"


def with_ci(text: str, ci: Sequence[Any] | None, fmt: Callable[[Any], str]) -> str:
    """``value [low, high]`` (``0.0128 [-0.0060, 0.0310]``); the value alone without a CI."""
    if text == NA or ci is None or len(ci) != 2 or any(_num(x) is None for x in ci):
        return text
    return f"{text} [{fmt(ci[0])}, {fmt(ci[1])}]"


def _pp(x: Any) -> float | None:
    """A fraction as percentage points rounded like the tables (so text and tables agree)."""
    v = _num(x)
    return None if v is None else _clean(100 * v, 2)


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


def result_path(stage: str, key: str, name: str) -> Path:
    """Relative path of ``name`` written by ``stage@key`` (``results/eval_weakly/full/metrics.json``)."""
    return RESULTS / stage / key / name


def _rel(path: Path) -> str:
    return path.as_posix()


@dataclass
class Results:
    """Everything the report reads, keyed by (stage, backbone); paths relative to ``root``."""

    root: Path
    dataset: str
    backbones: list[str]
    reference: str
    seeds: list
    annotations: Path
    annotations_src: str
    metrics: dict[tuple[str, str], dict] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    protocol: str = "vadclip"
    cache: dict = field(default_factory=dict, repr=False)

    def src(self, stage: str, key: str, name: str = "metrics.json") -> str:
        return _rel(result_path(stage, key, name))

    def file(self, stage: str, key: str, name: str) -> Path:
        return self.root / result_path(stage, key, name)

    def block(self, stage: str, key: str) -> dict:
        """The ``{dataset: {...}}`` block of ``stage@key`` (retention files have none: the whole file)."""
        data = self.metrics[(stage, key)]
        if stage == "eval_retention":
            return data
        if self.dataset not in data:
            raise ReportInputError(f"{self.src(stage, key)}: no block for dataset {self.dataset!r} "
                                   f"(params eval.dataset); it has {sorted(k for k in data if k != 'info')}")
        return data[self.dataset]

    def need(self, stage: str, key: str, *path: str) -> Any:
        """A required metric (``need("eval_weakly", "full", "auc")``); a clear error when absent."""
        node: Any = self.block(stage, key)
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                raise ReportInputError(f"{self.src(stage, key)}: missing {'.'.join(path)!r} "
                                       f"(under {self.dataset!r}); rerun dvc.yaml stage `{stage}@{key}`")
            node = node[part]
        return node

    def info(self, stage: str, key: str) -> dict:
        return self.metrics[(stage, key)].get("info", {}) or {}

    @property
    def tuned(self) -> list[str]:
        return [k for k in self.backbones if k != self.reference]


def _params(p: Any) -> tuple[str, list[str], str, list, str]:
    ev = p.eval
    backbones = list(dict(ev.backbones))
    if not backbones:
        raise ValueError("params.yaml: eval.backbones is empty; the report needs at least one backbone")
    ref = ev.reference
    if ref not in backbones:
        raise ValueError(f"params.yaml: eval.reference {ref!r} is not a key of eval.backbones ({backbones})")
    seeds = list(getattr(getattr(p, "eval_weakly", None), "seeds", []) or [])
    return ev.dataset, backbones, ref, seeds, str(ev.test_annotations)


def load_results(root: str | Path, p: Any) -> Results:
    """Read every metrics file the report needs; all missing files are reported at once, each with its stage."""
    root = Path(root)
    dataset, backbones, ref, seeds, ann = _params(p)
    ann_path = Path(ann) if Path(ann).is_absolute() else root / ann
    res = Results(root, dataset, backbones, ref, seeds, ann_path, Path(ann).as_posix(),
                  n_bootstrap=int(getattr(p.eval, "bootstrap_samples", 1000)),
                  bootstrap_seed=int(getattr(p.eval, "bootstrap_seed", 0)),
                  protocol=str(getattr(p.eval, "protocol", "vadclip")))
    missing = [(result_path(stage, key, name), f"{stage}@{key}")
               for stage, names in EVAL_FILES.items() for key in backbones for name in names
               if not (root / result_path(stage, key, name)).is_file()]
    if missing:
        lines = "\n".join(f"  {_rel(path)}  (written by dvc.yaml stage `{stage}`)" for path, stage in missing)
        stages = " ".join(sorted({s for _, s in missing}))
        raise MissingResultError(f"the report needs {len(missing)} missing result file(s) under {root}:\n{lines}\n"
                                 f"produce them with `dvc repro {stages}` (or `alertclip <stage> --variant <key>`)")
    if not ann_path.is_file():
        raise MissingResultError(f"params.yaml: eval.test_annotations: {ann_path} does not exist "
                                 "(written by dvc.yaml stage `synthesize`)")
    for stage in EVAL_FILES:
        for key in backbones:
            path = root / result_path(stage, key, "metrics.json")
            try:
                res.metrics[(stage, key)] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ReportInputError(f"{_rel(result_path(stage, key, 'metrics.json'))}: not valid JSON ({exc}); "
                                       f"rerun dvc.yaml stage `{stage}@{key}`") from exc
    for stage in TRAINING_STAGES:
        path = root / RESULTS / stage / "metrics.json"
        if path.is_file():
            res.training[stage] = json.loads(path.read_text(encoding="utf-8"))
        # stage-2 ablation variants (stage2@<name>) write results/stage2/<name>/metrics.json
        for sub in sorted((root / RESULTS / stage).glob("*/metrics.json")):
            res.training[f"{stage}@{sub.parent.name}"] = json.loads(sub.read_text(encoding="utf-8"))
    return res


def read_signed(path: Path) -> list[dict]:
    """``signed.csv`` rows: video, kind, signed (float)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{"video": r["video"], "kind": r["kind"], "signed": float(r["signed"])} for r in csv.DictReader(fh)]


def read_roc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return (np.array([float(r["fpr"]) for r in rows]), np.array([float(r["tpr"]) for r in rows]))


def read_scores(path: Path) -> dict[str, np.ndarray]:
    """``scores.parquet`` as ``{video: (T,) score}`` in snippet order, videos sorted by name."""
    import polars as pl

    t = pl.read_parquet(path, columns=["video", "snippet", "score"]).sort(["video", "snippet"])
    return {str(v): g["score"].to_numpy().astype(np.float64) for (v,), g in t.group_by("video", maintain_order=True)}


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap over test videos (per backbone and paired between backbones)
# ---------------------------------------------------------------------------------------------------------------

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
        from .eval.metrics import read_ucf_temporal

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
        from .eval.metrics import build_frame_level, frame_auc_ap

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
            frames = build_frame_level([(v, scores[v], counts.get(v)) for v in sorted(scores)], _truth(r), protocol)
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
    """:class:`~alertclip.eval.metrics.BootstrapCI` of ``metric(key) - metric(against)`` (``metric``: a key of
    :data:`BOOT_METRICS`), the same resampled test videos for both; memoised."""
    from .eval.metrics import paired_bootstrap_auc_ap, paired_bootstrap_mss

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
    from .eval.metrics import bootstrap_auc_ap, bootstrap_mss

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


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Table:
    """One report table: display cells (identical in markdown and CSV) and the source files of each row."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    sources: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, cells: Sequence[str], sources: Sequence[str]) -> None:
        if len(cells) != len(self.columns):
            raise AssertionError(f"table {self.name}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])
        self.sources.append(list(sources))

    @property
    def csv_path(self) -> Path:
        return TABLES_DIR / f"{self.name}.csv"

    def all_sources(self) -> list[str]:
        return list(dict.fromkeys(s for row in self.sources for s in row))

    def markdown(self) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        out = [f"### {self.title}", "", "| " + " | ".join(esc(c) for c in self.columns) + " | Src |",
               "|" + "---|" * (len(self.columns) + 1)]
        for i, row in enumerate(self.rows, start=1):
            out.append("| " + " | ".join(esc(c) for c in row) + f" | [{i}] |")
        out.append("")
        out += [f"[{i}] " + "; ".join(f"`{s}`" for s in srcs) + "  " for i, srcs in enumerate(self.sources, start=1)]
        out.append(f"CSV: [`{_rel(self.csv_path.relative_to(RESULTS))}`]({_rel(self.csv_path.relative_to(RESULTS))})")
        for note in self.notes:
            out += ["", f"*{note}*"]
        return "\n".join(out) + "\n"

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns + ["source"])
        for row, srcs in zip(self.rows, self.sources):
            w.writerow(row + [";".join(srcs)])
        return buf.getvalue()


def _fmt_int(x: Any) -> str:
    return NA if x is None else str(x)


def _n_seeds(stat: Any) -> int | None:
    if isinstance(stat, Mapping) and isinstance(stat.get("per_seed"), list):
        return len(stat["per_seed"])
    return None


def mss_table(r: Results) -> Table:
    t = Table("mss", "Table 1 — MeanSignScore on the test set (`mss`)",
              ["Backbone", "MSS [95% CI]", "MSS abnormal videos", "MSS normal videos", "Positive margin (%)",
               "Videos"],
              notes=["MSS: mean over test videos of the signed margin (abnormal videos count +, normal videos −); "
                     "higher separates normal from abnormal better. Positive margin: share of videos whose signed "
                     "margin is > 0. " + _ci_note(r, "mss")])
    for k in r.backbones:
        b = r.block("eval_mss", k)
        t.add([k, with_ci(mss_fmt(r.need("eval_mss", k, "mss")), backbone_ci(r, "mss", k), mss_fmt),
               mss_fmt(b.get("mss_abnormal_videos")),
               mss_fmt(b.get("mss_normal_videos")), pct(b.get("positive_share")), _fmt_int(b.get("n_videos"))],
              [r.src("eval_mss", k)])
    return t


def weakly_table(r: Results) -> Table:
    d = r.dataset
    heads = sorted({str(r.info("eval_weakly", k).get("head", "vadclip")) for k in r.backbones})
    head = " / ".join({"vadclip": "VadCLIP-style head", "linear_mil": "linear MIL head"}.get(h, h) for h in heads)
    t = Table("weakly", f"Table 2 — Weakly supervised VAD, {head} on frozen features (`weakly`)",
              ["Backbone", f"{d} AUC (%)", f"{d} AP (%)", f"{d} AVG mAP (%)", "Seeds"],
              notes=["mean ± std over seeds (sample std); frame-level AUC/AP of prob1 (the binary head)."])
    for k in r.backbones:
        b = r.block("eval_weakly", k)
        auc = r.need("eval_weakly", k, "auc")
        t.add([k, pct_pm(auc), pct_pm(r.need("eval_weakly", k, "ap")), pct_pm(b.get("map_avg")),
               _fmt_int(_n_seeds(auc))], [r.src("eval_weakly", k)])
    return t


def zeroshot_table(r: Results) -> Table:
    d = r.dataset
    t = Table("zeroshot", "Table 3 — Zero-shot VAD from prompt margins (`zeroshot`)",
              ["Backbone", f"{d} AUC (%) [95% CI]", f"{d} AP (%) [95% CI]", "Videos", "Frames"],
              notes=[_ci_note(r, "zs_auc")])
    for k in r.backbones:
        b = r.block("eval_zeroshot", k)
        t.add([k, with_ci(pct(r.need("eval_zeroshot", k, "auc")), backbone_ci(r, "zs_auc", k), pct),
               with_ci(pct(r.need("eval_zeroshot", k, "ap")), backbone_ci(r, "zs_ap", k), pct),
               _fmt_int(b.get("n_videos")), _fmt_int(b.get("n_frames"))], [r.src("eval_zeroshot", k)])
    return t


def ablation_table(r: Results) -> Table:
    t = Table("ablation", "Table 4 — Ablation: the main metric of every evaluation per backbone (`ablation`)",
              ["Backbone", "MSS [95% CI]", "Zero-shot AUC (%) [95% CI]", "Weakly AUC (%)", "Novel AUC (%)",
               "Retention i2t R@1 (%)"],
              notes=["Each backbone key of params eval.backbones is one row; ablation variants are further keys. "
                     "Whether a gap between two rows is real: Table 7 (`paired`) and the seed stds."])
    for k in r.backbones:
        t.add([k, with_ci(mss_fmt(r.need("eval_mss", k, "mss")), backbone_ci(r, "mss", k), mss_fmt),
               with_ci(pct(r.need("eval_zeroshot", k, "auc")), backbone_ci(r, "zs_auc", k), pct),
               pct_pm(r.need("eval_weakly", k, "auc")), pct_pm(r.need("eval_openvocab", k, "novel", "auc")),
               pct(r.need("eval_retention", k, "i2t_r1"))],
              [r.src(s, k) for s in ("eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab", "eval_retention")])
    return t


def openvocab_table(r: Results) -> Table:
    t = Table("openvocab", "Table 5 — Open vocabulary: head trained on base categories only (`openvocab`)",
              ["Backbone", "Base AUC (%)", "Base AP (%)", "Novel AUC (%)", "Novel AP (%)", "Test videos base/novel"])
    novel_sets = set()
    for k in r.backbones:
        info = r.info("eval_openvocab", k)
        n = info.get("n_test_videos") or {}
        novel_sets.add(tuple(info.get("novel_classes") or ()))
        t.add([k, pct_pm(r.need("eval_openvocab", k, "base", "auc")), pct_pm(r.need("eval_openvocab", k, "base", "ap")),
               pct_pm(r.need("eval_openvocab", k, "novel", "auc")),
               pct_pm(r.need("eval_openvocab", k, "novel", "ap")),
               f"{_fmt_int(n.get('base'))}/{_fmt_int(n.get('novel'))}"],
              [r.src("eval_openvocab", k)])
    if len(novel_sets) == 1 and next(iter(novel_sets)):
        t.notes.append("Novel categories (held out of training): " + ", ".join(next(iter(novel_sets))) + ".")
    elif len(novel_sets) > 1:
        t.notes.append("Warning: the backbones were evaluated with different novel-category sets.")
    t.notes.append("Each subset: its abnormal test videos plus every normal test video; mean ± std over seeds.")
    return t


def retention_table(r: Results) -> Table:
    cols = ["Backbone"]
    for _, label in RETENTION_METRICS:
        cols += [f"{label} (%)", f"Δ {label} (pp)"]
    ref = r.block("eval_retention", r.reference)
    t = Table("retention", f"Table 6 — Retention of general ability, change vs `{r.reference}` (`retention`)",
              cols + ["Images"])
    for k in r.backbones:
        b = r.block("eval_retention", k)
        r.need("eval_retention", k, "i2t_r1")
        cells = [k]
        for m, _ in RETENTION_METRICS:
            v, v0 = _pp(b.get(m)), _pp(ref.get(m))
            cells += [pct(b.get(m)), signed_pp(None if v is None or v0 is None else v - v0)]
        t.add(cells + [_fmt_int(b.get("n_images"))], [r.src("eval_retention", k)] +
              ([] if k == r.reference else [r.src("eval_retention", r.reference)]))
    chance = ref.get("chance_r1")
    note = f"Δ: percentage points vs the reference backbone `{r.reference}` (positive = better than it)."
    if _num(chance) is not None:
        note += f" Chance i2t R@1: {pct(chance)}."
    if _num(ref.get("scene_chance")) is not None:
        note += f" Chance scene accuracy: {pct(ref.get('scene_chance'))} ({ref.get('n_scenes')} scenes)."
    t.notes.append(note)
    return t


def training_table(r: Results) -> Table | None:
    if not r.training:
        return None
    t = Table("training", "Training summaries (`training`)",
              ["Model", "Steps", "First loss", "Final loss", "Best val total", "Held-out i2t R@1 (%)"])
    for stage, m in r.training.items():
        t.add([stage, _fmt_int(m.get("steps")), mss_fmt(m.get("first_loss")), mss_fmt(m.get("final_loss")),
               mss_fmt(m.get("best_val_total")), pct(m.get("heldout_i2t_r1"))],
              [_rel(RESULTS / stage.replace("@", "/") / "metrics.json")])
    return t


def _ci_note(r: Results, metric: str) -> str:
    return (f"[95% CI]: percentile bootstrap over the {n_test_videos(r, metric)} test videos, resampled with replacement "
            f"({r.n_bootstrap} resamples, seed {r.bootstrap_seed}; params eval.bootstrap_samples, "
            "eval.bootstrap_seed).")


def _gap_cells(r: Results, metric: str, key: str, against: str) -> tuple[list[str], str]:
    """(Δ, Δ CI, gap counts) cells of one paired comparison, judged as in "What this run shows"."""
    stage, name, _, label = BOOT_METRICS[metric]
    if metric == "mss":
        rnd, raw, unit, nd = _mss4, (lambda x: x), "", 4
    else:
        rnd, raw, unit, nd = _pp, (lambda x: 100 * x), " pp", 2
    ci = paired_ci(r, metric, key, against)
    v, v0 = rnd(r.need(stage, key, name)), rnd(r.need(stage, against, name))
    verdict, _ = compare_sentence(label, key, against, v, v0, unit, nd, ci=(raw(ci.low), raw(ci.high)))
    gap = NA if v is None or v0 is None else f"{_clean(v - v0, nd):+.{nd}f}"
    counts = "yes" if verdict in ("beats", "worse") else "no (CI includes 0)" if verdict == "nodiff" else verdict
    return [gap, f"[{_clean(raw(ci.low), nd):+.{nd}f}, {_clean(raw(ci.high), nd):+.{nd}f}]", counts], label


def paired_table(r: Results) -> Table | None:
    pairs = comparison_pairs(r)
    if not pairs:
        return None
    t = Table("paired", "Table 7 — Paired differences between backbones, bootstrap over test videos (`paired`)",
              ["Comparison", "Metric", "Δ", "Δ 95% CI", "Gap counts"],
              notes=[f"Δ = first − second backbone (MSS in MSS units, AUC/AP in percentage points). Each of the "
                     f"{r.n_bootstrap} resamples (seed {r.bootstrap_seed}) draws {_videos_text(r)} with "
                     "replacement, the same videos for both backbones; a gap counts only when its 95% CI excludes 0."])
    for key, against in pairs:
        for metric in BOOT_METRICS:
            cells, label = _gap_cells(r, metric, key, against)
            stage = BOOT_METRICS[metric][0]
            per_video = "signed.csv" if stage == "eval_mss" else "scores.parquet"
            srcs = [r.src(stage, k, n) for k in (key, against) for n in ("metrics.json", per_video)]
            t.add([f"{key} − {against}", label + ("" if metric == "mss" else " (pp)"), *cells],
                  srcs + ([] if stage == "eval_mss" else [r.annotations_src]))
    return t


def build_tables(r: Results) -> list[Table]:
    tables = [mss_table(r), weakly_table(r), zeroshot_table(r), ablation_table(r), openvocab_table(r),
              retention_table(r)]
    pt = paired_table(r)
    tables += [pt] if pt is not None else []
    tr = training_table(r)
    return tables + ([tr] if tr is not None else [])


# ---------------------------------------------------------------------------------------------------------------
# "What this run shows"
# ---------------------------------------------------------------------------------------------------------------


def _mss4(x: Any) -> float | None:
    """An MSS rounded like the tables (so text and tables agree)."""
    v = _num(x)
    return None if v is None else _clean(v, 4)


def compare_sentence(what: str, key: str, ref: str, v: float | None, v0: float | None, unit: str, nd: int,
                     noise: float | None = None, n_seeds: int | None = None, ci: tuple[float, float] | None = None,
                     untested: str | None = None) -> tuple[str, str]:
    """One comparison of ``key`` against ``ref`` on already rounded values; returns (verdict, sentence).

    What decides whether the gap counts, by what the metric has:

    * ``ci``: the paired-bootstrap 95% CI of ``key - ref`` (same units as the values, unrounded): the gap counts only
      when the CI excludes 0 on the side of the gap; otherwise ``nodiff`` ("no difference (CI [..])");
    * ``n_seeds``: seed statistics; the gap counts only when it exceeds ``noise`` (the larger seed std), else
      ``noise``; with fewer than 2 seeds the noise is unknown and the gap is ``untested``;
    * ``untested``: why the metric cannot be tested (no per-item results); the gap is described, not counted.

    verdict: ``beats`` / ``worse`` (the gap counts) / ``nodiff`` / ``noise`` / ``untested`` / ``ties`` / ``n/a``.
    """
    if v is None or v0 is None:
        return NA, f"{what}: `{key}` vs `{ref}` not computed (a value is missing or NaN)."
    fmt = f"{{:.{nd}f}}"
    gap = _clean(v - v0, nd)
    vals = f"({fmt.format(v)} vs {fmt.format(v0)})"
    mag = f"{fmt.format(abs(gap))}{unit}"
    spread = ""
    if ci is not None:
        interval = f"[{_clean(ci[0], nd):+.{nd}f}, {_clean(ci[1], nd):+.{nd}f}]{unit}"
        if (gap > 0 and ci[0] > 0) or (gap < 0 and ci[1] < 0):
            spread = f"; the paired 95% CI of the gap, {interval}, excludes 0"
        else:
            return "nodiff", (f"{what}: `{key}` vs `{ref}`: no difference (CI {interval}); the gap of "
                              f"{gap:+.{nd}f}{unit} {vals} does not survive resampling the test videos.")
    elif noise is not None and abs(gap) <= noise:
        return "noise", (f"{what}: `{key}` vs `{ref}` differ by {gap:+.{nd}f}{unit} {vals} — within seed noise "
                         f"(the larger seed std is {fmt.format(noise)}{unit} over {n_seeds} seeds).")
    elif noise is not None:
        spread = f"; the gap exceeds the larger seed std ({fmt.format(noise)}{unit} over {n_seeds} seeds)"
    elif n_seeds is not None and n_seeds < 2:
        untested = "a single seed, so the seed noise is unknown"
    if untested is not None:
        if gap == 0:
            return "ties", f"{what}: `{key}` ties with `{ref}` {vals}."
        side = f"beats `{ref}` by" if gap > 0 else f"is worse than `{ref}` by"
        return "untested", f"{what}: `{key}` {side} {mag} {vals}; not tested ({untested}), so the gap is not counted."
    if gap > 0:
        return "beats", f"{what}: `{key}` beats `{ref}` by {mag} {vals}{spread}."
    if gap < 0:
        return "worse", f"{what}: `{key}` is worse than `{ref}` by {mag} {vals}{spread}."
    return "ties", f"{what}: `{key}` ties with `{ref}` {vals}{spread}."


def _seed_noise(stat: Mapping, stat0: Mapping) -> tuple[float | None, int | None]:
    """The larger of the two seed stds in percentage points (None with fewer than 2 seeds) and the seed count."""
    n = min(_n_seeds(stat) or 0, _n_seeds(stat0) or 0) or None
    if n is None or n < 2:
        return None, n
    s = [_pp(stat.get("std")), _pp(stat0.get("std"))]
    s = [x for x in s if x is not None]
    return (max(s) if s else None), n


def _tally(what: str, verdicts: list[str], ref: str, others: Sequence[str] = ()) -> str:
    """The section's headline: verdicts against the reference, then how many of the other pairs' gaps count."""
    n = len(verdicts)
    counts = {v: verdicts.count(v) for v in ("beats", "worse", "nodiff", "noise", "untested", "ties")}
    parts = [f"{counts['beats']} of {n} tuned backbone(s) beat `{ref}`"]
    for verdict, text in (("worse", "worse"), ("nodiff", "no difference (CI includes 0)"),
                          ("noise", "within seed noise"), ("untested", "not tested"), ("ties", "tie")):
        if counts[verdict]:
            parts.append(f"{counts[verdict]} {text}")
    line = f"**{what}** — " + ", ".join(parts) + "."
    if others:
        real = sum(v in ("beats", "worse") for v in others)
        line += f" Other pairs: the gap counts in {real} of {len(others)}."
    return line


def findings(r: Results) -> list[str]:
    """Markdown lines of the "What this run shows" section, derived only from the numbers."""
    ref, tuned = r.reference, r.tuned
    lines: list[str] = []
    if not tuned:
        return [f"Only the reference backbone `{ref}` was evaluated: there is nothing to compare it against."]
    pairs = comparison_pairs(r)
    others = [f"`{k}` vs `{b}`" for k, b in pairs if b != ref]
    seed_counts = sorted({n for k in r.backbones for n in [_n_seeds(r.need("eval_weakly", k, "auc"))] if n is not None})
    seeds_txt = "/".join(str(n) for n in seed_counts) or "an unknown number of"
    lines.append(f"Tuned backbones {', '.join(f'`{k}`' for k in tuned)} against the reference `{ref}` "
                 f"(params eval.reference) on {r.dataset}"
                 + (f"; also {', '.join(others)}" if others else "") + ". "
                 f"MSS and zero-shot AUC/AP are single deterministic runs: a gap counts only when the 95% CI of a "
                 f"paired bootstrap over {_videos_text(r)} excludes 0 ({r.n_bootstrap} resamples with replacement, "
                 f"seed {r.bootstrap_seed}, the same videos for both backbones), and reads \"no difference\" "
                 "otherwise. The weakly supervised and open-vocabulary heads were trained "
                 f"with {seeds_txt} seed(s) per backbone (params eval_weakly.seeds: {r.seeds}); a gap counts only when "
                 "it exceeds the larger of the two seed stds. Retention keeps no per-image results, so its gaps are "
                 "reported but not tested.")
    if any(n != len(r.seeds) for n in seed_counts) and r.seeds:
        lines.append(f"Warning: the metrics files hold {seeds_txt} seeds but params eval_weakly.seeds lists "
                     f"{len(r.seeds)}: some results are stale.")
    if seed_counts and seed_counts[0] < 3:
        lines.append(f"With only {seed_counts[0]} seed(s), the seed std is a rough estimate of the noise.")

    def section(title: str, items: list[tuple[str, str]]) -> None:
        lines.append("")
        lines.append(_tally(title, [v for (v, _), (_, b) in zip(items, pairs) if b == ref], ref,
                            [v for (v, _), (_, b) in zip(items, pairs) if b != ref]))
        lines.extend(f"- {s}" for _, s in items)

    def booted(metric: str):
        stage, name, _, label = BOOT_METRICS[metric]
        rnd, raw, unit, nd = (_mss4, (lambda x: x), "", 4) if metric == "mss" else (_pp, (lambda x: 100 * x), " pp", 2)
        out = []
        for k, b in pairs:
            ci = paired_ci(r, metric, k, b)
            out.append(compare_sentence(label, k, b, rnd(r.need(stage, k, name)), rnd(r.need(stage, b, name)), unit,
                                        nd, ci=(raw(ci.low), raw(ci.high))))
        return out

    def seeded(stage: str, metric: tuple[str, ...], label: str):
        out = []
        for k, b in pairs:
            s, s0 = r.need(stage, k, *metric), r.need(stage, b, *metric)
            noise, n = _seed_noise(s, s0)
            out.append(compare_sentence(label, k, b, _pp(s.get("mean")), _pp(s0.get("mean")), " pp", 2, noise, n))
        return out

    def untested(stage: str, metric: tuple[str, ...], label: str, why: str):
        return [compare_sentence(label, k, b, _pp(r.need(stage, k, *metric)), _pp(r.need(stage, b, *metric)), " pp", 2,
                                 untested=why) for k, b in pairs]

    section("MSS", booted("mss"))
    section("Zero-shot AUC", booted("zs_auc"))
    section("Zero-shot AP", booted("zs_ap"))
    section("Weakly supervised AUC", seeded("eval_weakly", ("auc",), "Weakly AUC"))
    section("Open vocabulary, novel-category AUC", seeded("eval_openvocab", ("novel", "auc"), "Novel AUC"))
    section("Open vocabulary, base-category AUC", seeded("eval_openvocab", ("base", "auc"), "Base AUC"))
    section("Retention i2t R@1", untested("eval_retention", ("i2t_r1",), "i2t R@1",
                                          "no per-image results, so no CI"))

    selections = sorted({str(r.info(s, k).get("selection")) for s in ("eval_weakly", "eval_openvocab")
                         for k in r.backbones if r.info(s, k).get("selection")})
    n_val = sorted({r.info("eval_weakly", k).get("n_val_videos") for k in r.backbones} - {None})
    lines.append("")
    lines.append("**Model selection** — the weakly supervised and open-vocabulary heads (their kind, and for the "
                 "VadCLIP-style head the epoch kept for each seed) were chosen on a validation split of the *training* "
                 "videos"
                 + (f" ({'/'.join(str(n) for n in n_val)} videos)" if n_val else "")
                 + (f"; recorded selection: {', '.join(selections)}" if selections else "")
                 + ". VadCLIP selects its checkpoint on the test set, so its published numbers are not directly "
                   "comparable (they are optimistic by construction).")
    return lines


# ---------------------------------------------------------------------------------------------------------------
# Figures (matplotlib object API on the Agg canvas: no pyplot state, default style, deterministic PNG bytes)
# ---------------------------------------------------------------------------------------------------------------

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


def _roc_figure(r: Results, stage: str, title: str, label: Callable[[str], str]):
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8, label="chance")
    for i, k in enumerate(r.backbones):
        fpr, tpr = read_roc(r.file(stage, k, "roc.csv"))
        ax.plot(fpr, tpr, color=_colour(i), linewidth=1.5, label=label(k))
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def _mss_figure(r: Results):
    n = len(r.backbones)
    data = {k: read_signed(r.file("eval_mss", k, "signed.csv")) for k in r.backbones}
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
        ax.set_title(f"{k}: MSS {mss_fmt(r.need('eval_mss', k, 'mss'))}", fontsize=9)
        ax.set_ylabel("videos")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("signed margin per video (abnormal: s_A − s_N; normal: s_N − s_A)")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class TraceVideo:
    video: str
    abnormal: bool
    labels: np.ndarray  # (16 * T,) VadCLIP frame labels


def select_trace_videos(scores: Mapping[str, np.ndarray], truth: Mapping, n_abnormal: int = 3,
                        n_normal: int = 3) -> list[TraceVideo]:
    """Deterministic choice: the ``n_abnormal`` videos with the most abnormal frames, then the ``n_normal`` longest
    normal videos (ties by name). A video without a ground-truth entry counts as normal when its name says so
    (``Normal``, ``label_A``, as the evaluation stages read it) and is skipped otherwise."""
    from .eval.metrics import NORMAL_NAME_MARKERS, lookup_truth, vadclip_frame_labels

    ab, no = [], []
    for v in sorted(scores):
        entry = lookup_truth(truth, v)
        if entry is None and not any(m in v for m in NORMAL_NAME_MARKERS):
            continue
        spans = entry.spans if entry is not None else ()
        labels = vadclip_frame_labels(spans, len(scores[v]), CLIP_LEN)
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
            ax.stairs(s, np.arange(len(s) + 1) * CLIP_LEN, baseline=None, color=_colour(i), linewidth=1.2, label=k)
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
    """Draw every figure under ``root/results/report/figures`` and return their specs."""
    import matplotlib
    import matplotlib.style

    specs: list[FigureSpec] = []

    def emit(spec: FigureSpec, draw: Callable[[], Any]) -> None:
        fig = draw()
        _save(fig, r.root / spec.path)
        specs.append(spec)

    def roc_src(stage):
        return [r.src(stage, k, n) for k in r.backbones for n in ("roc.csv", "metrics.json")]

    ann = r.annotations_src
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": 9}):
        emit(FigureSpec("roc_zeroshot", f"Zero-shot ROC curves on {r.dataset}, one line per backbone.",
                        roc_src("eval_zeroshot")),
             lambda: _roc_figure(r, "eval_zeroshot", f"Zero-shot ROC ({r.dataset})",
                                 lambda k: f"{k} (AUC {pct(r.need('eval_zeroshot', k, 'auc'))})"))
        emit(FigureSpec("roc_weakly", f"Weakly supervised ROC curves on {r.dataset} (prob1 averaged over seeds), "
                        "one line per backbone; the legend gives AUC mean ± std over seeds.", roc_src("eval_weakly")),
             lambda: _roc_figure(r, "eval_weakly", f"Weakly supervised ROC ({r.dataset})",
                                 lambda k: f"{k} (AUC {pct_pm(r.need('eval_weakly', k, 'auc'))})"))
        emit(FigureSpec("mss_distribution", "Per-video signed margin for each backbone, abnormal (red) vs normal "
                        "(blue) test videos; MSS is their mean.",
                        [r.src("eval_mss", k, n) for k in r.backbones for n in ("signed.csv", "metrics.json")]),
             lambda: _mss_figure(r))
        truth = _truth(r)
        weak = {k: read_scores(r.file("eval_weakly", k, "scores.parquet")) for k in r.backbones}
        zs = {k: read_scores(r.file("eval_zeroshot", k, "scores.parquet")) for k in r.backbones}
        videos = select_trace_videos(weak[r.reference], truth)
        chosen = ", ".join(v.video for v in videos) or "none"
        emit(FigureSpec("traces_weakly", "Per-snippet weakly supervised scores (prob1, mean over seeds) of up to 3 "
                        "abnormal test videos with the most abnormal frames and the 3 longest normal ones "
                        f"({chosen}); grey: ground truth.",
                        [r.src("eval_weakly", k, "scores.parquet") for k in r.backbones] + [ann]),
             lambda: _trace_figure(r, "Weakly supervised scores (prob1, mean over seeds)", videos, weak, (0.0, 1.02)))
        emit(FigureSpec("traces_zeroshot", f"Per-snippet zero-shot scores of the same test videos ({chosen}); "
                        "grey: ground truth.",
                        [r.src("eval_zeroshot", k, "scores.parquet") for k in r.backbones] + [ann]),
             lambda: _trace_figure(r, "Zero-shot scores", videos, zs))
    return specs


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


def render_markdown(r: Results, tables: list[Table], figures: list[FigureSpec], p: Any) -> str:
    bb = dict(p.eval.backbones)
    out = [f"# Alert-CLIP report — {r.dataset}", "",
           "Generated by the `report` stage from the evaluation outputs; every number below comes from the file "
           "named in its row's footnote.", "",
           "Backbones (params `eval.backbones`, in order): "
           + ", ".join(f"`{k}` (`{bb[k]}`)" for k in r.backbones) + f". Reference: `{r.reference}`.", "",
           "Formats: AUC, AP, mAP, R@k and shares in % with 2 decimals; MSS with 4 decimals; `mean ± std` over "
           "seeds (sample std); `value [low, high]` a 95% bootstrap CI over test videos; Δ in percentage points.", "",
           "## What this run shows", ""]
    out += findings(r)
    out += ["", "## Tables", ""]
    for t in tables:
        out += [t.markdown()]
    out += ["## Figures", ""]
    for f in figures:
        rel = _rel(f.path.relative_to(RESULTS))
        out += [f"### {f.name}", "", f"![{f.name}]({rel})", "", f"*{f.caption}*", "",
                "Sources: " + ", ".join(f"`{s}`" for s in f.sources), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def build_report(root: str | Path, p: Any, figures: bool = True) -> dict:
    """Write the report under ``root`` (see the module docstring); returns the index (also ``index.json``).

    ``p``: params (``eval.backbones``, ``eval.reference``, ``eval.dataset``, ``eval.test_annotations``,
    ``eval_weakly.seeds``); any object with those attributes works. Raises :class:`MissingResultError` when a
    result file is absent (naming the file and its dvc.yaml stage) and :class:`ReportInputError` on malformed ones.
    """
    root = Path(root)
    r = load_results(root, p)
    tables = build_tables(r)
    figs = render_figures(r) if figures else []
    for t in tables:
        with atomic_open(root / t.csv_path, "w", encoding="utf-8", newline="") as fh:
            fh.write(t.csv_text())
    with atomic_open(root / REPORT_MD, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(r, tables, figs, p))
    index = {
        "report": _rel(REPORT_MD),
        "dataset": r.dataset,
        "backbones": r.backbones,
        "reference": r.reference,
        "tables": [{"name": t.name, "title": t.title, "csv": _rel(t.csv_path), "columns": t.columns,
                    "sources": t.all_sources(),
                    "rows": [{"row": row[0], "sources": srcs} for row, srcs in zip(t.rows, t.sources)]}
                   for t in tables],
        "figures": [{"name": f.name, "path": _rel(f.path), "caption": f.caption, "sources": f.sources} for f in figs],
    }
    write_json(root / INDEX_JSON, index)
    return index
