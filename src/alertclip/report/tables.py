"""The report's tables: display cells (identical in markdown and CSV) with the source files of each row.

The evaluation tables have one column group per dataset the evaluation ran on (params ``eval.evaluate``), each headed
by the dataset's name and showing its headline metrics (``eval.datasets.<key>.metrics``), as the paper's tables do.
With a single dataset the columns are the ones the report always had (``MSS [95% CI]``, ``VAGTA-synth AUC (%)``, ...).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .bootstrap import BOOT_METRICS, backbone_ci, comparison_pairs, dataset_metrics, n_test_videos, paired_ci, videos_text_all
from .findings import compare_sentence, mss4, n_seeds_of
from .formatting import NA, as_number, as_pp, clean_round, mss_fmt, pct, pct_pm, signed_pp, with_ci
from .inputs import METRIC_LABELS, RESULTS, TABLES_DIR, Results, posix

RETENTION_METRICS = (("i2t_r1", "i2t R@1"), ("i2t_r5", "i2t R@5"), ("t2i_r1", "t2i R@1"), ("scene_acc", "Scene acc"))
# Optional retention blocks (eval_retention.imagenet / .coco, through clip-benchmark): block -> (metric, label) pairs.
GENERAL_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "imagenet": (("acc1", "ImageNet acc@1"), ("acc5", "ImageNet acc@5"),
                 ("mean_per_class_recall", "ImageNet mean per-class recall")),
    "coco": (("i2t_r1", "COCO i2t R@1"), ("i2t_r5", "COCO i2t R@5"), ("t2i_r1", "COCO t2i R@1"),
             ("t2i_r5", "COCO t2i R@5")),
}


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
        out.append(f"CSV: [`{posix(self.csv_path.relative_to(RESULTS))}`]({posix(self.csv_path.relative_to(RESULTS))})")
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


def _col(r: Results, ds: str, single: str, multi: str) -> str:
    """A column header: ``single`` with one dataset shown (the report's long-standing header), else the dataset's
    label followed by ``multi``."""
    return single if not r.multi else f"{r.label(ds)} {multi}"


def _ml(metric: str) -> str:
    return METRIC_LABELS[metric]


def mss_table(r: Results) -> Table | None:
    keys = r.on("eval_mss")
    if not keys:
        return None
    cols = ["Backbone"]
    for ds in keys:
        cols += [_col(r, ds, "MSS [95% CI]", "MSS [95% CI]"),
                 _col(r, ds, "MSS abnormal videos", "MSS abnormal videos"),
                 _col(r, ds, "MSS normal videos", "MSS normal videos"),
                 _col(r, ds, "Positive margin (%)", "positive margin (%)"), _col(r, ds, "Videos", "videos")]
    t = Table("mss", "Table 1 — MeanSignScore on the test set (`mss`)", cols,
              notes=["MSS: mean over test videos of the signed margin (abnormal videos count +, normal videos −); "
                     "higher separates normal from abnormal better. Positive margin: share of videos whose signed "
                     "margin is > 0. " + _ci_note(r, "mss", keys)])
    for k in r.backbones:
        cells = [k]
        for ds in keys:
            b = r.block("eval_mss", k, ds)
            cells += [with_ci(mss_fmt(r.need("eval_mss", k, ds, "mss")), backbone_ci(r, "mss", k, ds), mss_fmt),
                      mss_fmt(b.get("mss_abnormal_videos")), mss_fmt(b.get("mss_normal_videos")),
                      pct(b.get("positive_share")), _fmt_int(b.get("n_videos"))]
        t.add(cells, [r.src("eval_mss", k, ds) for ds in keys])
    return t


def weakly_table(r: Results) -> Table | None:
    keys = r.on("eval_weakly")
    if not keys:
        return None
    heads = sorted({str(r.info("eval_weakly", k, ds).get("head", "vadclip")) for k in r.backbones for ds in keys})
    head = " / ".join({"vadclip": "VadCLIP-style head", "linear_mil": "linear MIL head"}.get(h, h) for h in heads)
    cols = ["Backbone"]
    for ds in keys:
        cols += [f"{r.label(ds)} {_ml(m)} (%)" for m in r.datasets[ds].metrics] + [f"{r.label(ds)} AVG mAP (%)"]
    t = Table("weakly", f"Table 2 — Weakly supervised VAD, {head} on frozen features (`weakly`)", cols + ["Seeds"],
              notes=["mean ± std over seeds (sample std); frame-level AUC/AP of prob1 (the binary head)."])
    for k in r.backbones:
        cells, seeds = [k], []
        for ds in keys:
            b = r.block("eval_weakly", k, ds)
            cells += [pct_pm(r.need("eval_weakly", k, ds, m)) for m in r.datasets[ds].metrics] + [pct_pm(b.get("map_avg"))]
            seeds.append(n_seeds_of(r.need("eval_weakly", k, ds, r.datasets[ds].primary)))
        t.add(cells + ["/".join(_fmt_int(n) for n in dict.fromkeys(seeds))], [r.src("eval_weakly", k, ds) for ds in keys])
    return t


def zeroshot_table(r: Results) -> Table | None:
    keys = r.on("eval_zeroshot")
    if not keys:
        return None
    cols = ["Backbone"]
    for ds in keys:
        cols += [f"{r.label(ds)} {_ml(m)} (%) [95% CI]" for m in r.datasets[ds].metrics]
    t = Table("zeroshot", "Table 3 — Zero-shot VAD from prompt margins (`zeroshot`)",
              cols + ([] if r.multi else ["Videos", "Frames"]), notes=[_ci_note(r, "zs_auc", keys)])
    for k in r.backbones:
        cells = [k]
        for ds in keys:
            cells += [with_ci(pct(r.need("eval_zeroshot", k, ds, m)), backbone_ci(r, f"zs_{m}", k, ds), pct)
                      for m in r.datasets[ds].metrics]
        if not r.multi:
            b = r.block("eval_zeroshot", k, keys[0])
            cells += [_fmt_int(b.get("n_videos")), _fmt_int(b.get("n_frames"))]
        t.add(cells, [r.src("eval_zeroshot", k, ds) for ds in keys])
    if r.multi:
        def counts(ds: str, what: str) -> str:
            return "/".join(dict.fromkeys(_fmt_int(r.block("eval_zeroshot", k, ds).get(what)) for k in r.backbones))

        t.notes.append("Test videos and frames scored: " + "; ".join(
            f"{r.label(ds)} {counts(ds, 'n_videos')} videos, {counts(ds, 'n_frames')} frames" for ds in keys) + ".")
    return t


def ablation_table(r: Results) -> Table:
    cols, getters = ["Backbone"], []
    for ds in r.on("eval_mss"):
        cols.append(_col(r, ds, "MSS [95% CI]", "MSS [95% CI]"))
        getters.append(("eval_mss", ds, lambda k, ds=ds: with_ci(mss_fmt(r.need("eval_mss", k, ds, "mss")),
                                                                 backbone_ci(r, "mss", k, ds), mss_fmt)))
    for ds in r.on("eval_zeroshot"):
        m = r.datasets[ds].primary
        cols.append(_col(r, ds, f"Zero-shot {_ml(m)} (%) [95% CI]", f"zero-shot {_ml(m)} (%) [95% CI]"))
        getters.append(("eval_zeroshot", ds, lambda k, ds=ds, m=m: with_ci(
            pct(r.need("eval_zeroshot", k, ds, m)), backbone_ci(r, f"zs_{m}", k, ds), pct)))
    for ds in r.on("eval_weakly"):
        m = r.datasets[ds].primary
        cols.append(_col(r, ds, f"Weakly {_ml(m)} (%)", f"weakly {_ml(m)} (%)"))
        getters.append(("eval_weakly", ds, lambda k, ds=ds, m=m: pct_pm(r.need("eval_weakly", k, ds, m))))
    for ds in r.on("eval_openvocab"):
        m = r.datasets[ds].primary
        cols.append(_col(r, ds, f"Novel {_ml(m)} (%)", f"novel {_ml(m)} (%)"))
        getters.append(("eval_openvocab", ds, lambda k, ds=ds, m=m: pct_pm(r.need("eval_openvocab", k, ds, "novel", m))))
    if _has_stills(r):
        cols.append("Retention i2t R@1 (%)")
        getters.append(("eval_retention", None, lambda k: pct(r.need("eval_retention", k, None, "i2t_r1"))))
    for blk in _general_blocks(r)[:1]:  # a real source has no stills: its first benchmark's headline instead
        metric, label = GENERAL_METRICS[blk][0]
        cols.append(f"Retention {label} (%)")
        getters.append(("eval_retention", None, lambda k, blk=blk, metric=metric: pct(
            (r.block("eval_retention", k, None).get(blk) or {}).get(metric))))
    t = Table("ablation", "Table 4 — Ablation: the main metric of every evaluation per backbone (`ablation`)", cols,
              notes=["Each backbone key of params eval.backbones is one row; ablation variants are further keys. "
                     "Whether a gap between two rows is real: Table 7 (`paired`) and the seed stds."])
    for k in r.backbones:
        t.add([k] + [get(k) for _, _, get in getters], [r.src(stage, k, ds) for stage, ds, _ in getters])
    return t


def openvocab_table(r: Results) -> Table | None:
    keys = r.on("eval_openvocab")
    if not keys:
        return None
    cols = ["Backbone"]
    for ds in keys:
        for subset in ("base", "novel"):
            cols += [_col(r, ds, f"{subset.capitalize()} {_ml(m)} (%)", f"{subset} {_ml(m)} (%)")
                     for m in r.datasets[ds].metrics]
        cols.append(_col(r, ds, "Test videos base/novel", "test videos base/novel"))
    t = Table("openvocab", "Table 5 — Open vocabulary: head trained on base categories only (`openvocab`)", cols)
    novel_sets: dict[str, set] = {ds: set() for ds in keys}
    for k in r.backbones:
        cells = [k]
        for ds in keys:
            info = r.info("eval_openvocab", k, ds)
            n = info.get("n_test_videos") or {}
            novel_sets[ds].add(tuple(info.get("novel_classes") or ()))
            for subset in ("base", "novel"):
                cells += [pct_pm(r.need("eval_openvocab", k, ds, subset, m)) for m in r.datasets[ds].metrics]
            cells.append(f"{_fmt_int(n.get('base'))}/{_fmt_int(n.get('novel'))}")
        t.add(cells, [r.src("eval_openvocab", k, ds) for ds in keys])
    distinct = {s for sets in novel_sets.values() for s in sets}
    if any(len(sets) > 1 for sets in novel_sets.values()):
        t.notes.append("Warning: the backbones were evaluated with different novel-category sets.")
    elif len(distinct) == 1 and next(iter(distinct)):
        t.notes.append("Novel categories (held out of training): " + ", ".join(next(iter(distinct))) + ".")
    elif distinct:
        t.notes.append("Novel categories (held out of training): " + "; ".join(
            f"{r.label(ds)}: {', '.join(next(iter(sets))) or 'none'}" for ds, sets in novel_sets.items()) + ".")
    t.notes.append("Each subset: its abnormal test videos plus every normal test video; mean ± std over seeds.")
    return t


def _has_stills(r: Results) -> bool:
    """The synthetic world's held-out stills were scored (a real source's retention has the benchmarks only)."""
    return any("i2t_r1" in r.block("eval_retention", k, None) for k in r.backbones)


def _general_blocks(r: Results) -> list[str]:
    """The optional retention blocks (``imagenet``, ``coco``) some backbone's metrics hold, in GENERAL_METRICS order."""
    return [blk for blk in GENERAL_METRICS
            if any(isinstance(r.block("eval_retention", k, None).get(blk), dict) for k in r.backbones)]


def retention_table(r: Results) -> Table:
    cols = ["Backbone"]
    stills = _has_stills(r)
    for _, label in RETENTION_METRICS if stills else ():
        cols += [f"{label} (%)", f"Δ {label} (pp)"]
    if stills:
        cols.append("Images")
    blocks = _general_blocks(r)
    for blk in blocks:
        for _, label in GENERAL_METRICS[blk]:
            cols += [f"{label} (%)", f"Δ {label} (pp)"]
    ref = r.block("eval_retention", r.reference, None)
    t = Table("retention", f"Table 6 — Retention of general ability, change vs `{r.reference}` (`retention`)", cols)

    def sub(node: dict, blk: str | None) -> dict:
        inner = node if blk is None else node.get(blk)
        return inner if isinstance(inner, dict) else {}

    def pair(b: dict, b0: dict, metric: str) -> list[str]:
        v, v0 = as_pp(b.get(metric)), as_pp(b0.get(metric))
        return [pct(b.get(metric)), signed_pp(None if v is None or v0 is None else v - v0)]

    for k in r.backbones:
        b = r.block("eval_retention", k, None)
        cells = [k]
        if stills:
            r.need("eval_retention", k, None, "i2t_r1")
            for m, _ in RETENTION_METRICS:
                cells += pair(b, ref, m)
            cells.append(_fmt_int(b.get("n_images")))
        for blk in blocks:
            for m, _ in GENERAL_METRICS[blk]:
                cells += pair(sub(b, blk), sub(ref, blk), m)
        t.add(cells, [r.src("eval_retention", k, None)] +
              ([] if k == r.reference else [r.src("eval_retention", r.reference, None)]))
    chance = ref.get("chance_r1")
    note = f"Δ: percentage points vs the reference backbone `{r.reference}` (positive = better than it)."
    if as_number(chance) is not None:
        note += f" Chance i2t R@1: {pct(chance)}."
    if as_number(ref.get("scene_chance")) is not None:
        note += f" Chance scene accuracy: {pct(ref.get('scene_chance'))} ({ref.get('n_scenes')} scenes)."
    if blocks:
        if stills:  # which images the stills columns are, once other benchmarks stand beside them
            note += " Images: the held-out VAGTA-synth stills (params eval_retention.max_images)."
        sizes = {"imagenet": ("n_images", "images", "n_classes", "classes"),
                 "coco": ("n_images", "images", "n_captions", "captions")}
        for blk in blocks:
            a, a_txt, c, c_txt = sizes[blk]
            name = {"imagenet": "ImageNet zero-shot classification", "coco": "COCO image–text retrieval"}[blk]
            measured = [sub(r.block("eval_retention", k, None), blk) for k in r.backbones]
            n_a = "/".join(dict.fromkeys(_fmt_int(m.get(a)) for m in measured if m))
            n_c = "/".join(dict.fromkeys(_fmt_int(m.get(c)) for m in measured if m))
            note += f" {name} (clip-benchmark): {n_a} {a_txt}, {n_c} {c_txt}."
        missing = [f"`{k}` ({blk})" for blk in blocks for k in r.backbones
                   if not sub(r.block("eval_retention", k, None), blk)]
        if missing:
            note += " Not measured (n/a): " + ", ".join(missing) + "."
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
              [posix(RESULTS / stage.replace("@", "/") / "metrics.json")])
    return t


def _ci_note(r: Results, metric: str, keys: list[str]) -> str:
    if len(keys) == 1:
        over = f"the {n_test_videos(r, keys[0], metric)} test videos"
    else:
        over = "each dataset's test videos (" + "; ".join(f"{r.label(ds)}: {n_test_videos(r, ds, metric)}"
                                                          for ds in keys) + ")"
    return (f"[95% CI]: percentile bootstrap over {over}, resampled with replacement "
            f"({r.n_bootstrap} resamples, seed {r.bootstrap_seed}; params eval.bootstrap_samples, "
            "eval.bootstrap_seed).")


def _gap_cells(r: Results, metric: str, key: str, against: str, ds: str) -> tuple[list[str], str]:
    """(Δ, Δ CI, gap counts) cells of one paired comparison on ``ds``, judged as in "What this run shows"."""
    stage, name, _, label = BOOT_METRICS[metric]
    if metric == "mss":
        rnd, raw, nd = mss4, (lambda x: x), 4
    else:
        rnd, raw, nd = as_pp, (lambda x: 100 * x), 2
    unit = "" if metric == "mss" else " pp"
    ci = paired_ci(r, metric, key, against, ds)
    v, v0 = rnd(r.need(stage, key, ds, name)), rnd(r.need(stage, against, ds, name))
    verdict, _ = compare_sentence(label, key, against, v, v0, unit, nd, ci=(raw(ci.low), raw(ci.high)))
    gap = NA if v is None or v0 is None else f"{clean_round(v - v0, nd):+.{nd}f}"
    counts = "yes" if verdict in ("beats", "worse") else "no (CI includes 0)" if verdict == "nodiff" else verdict
    return [gap, f"[{clean_round(raw(ci.low), nd):+.{nd}f}, {clean_round(raw(ci.high), nd):+.{nd}f}]", counts], label


def paired_table(r: Results) -> Table | None:
    pairs = comparison_pairs(r)
    keys = [ds for ds in r.shown if dataset_metrics(r, ds)]
    if not pairs or not keys:
        return None
    t = Table("paired", "Table 7 — Paired differences between backbones, bootstrap over test videos (`paired`)",
              ["Comparison"] + (["Dataset"] if r.multi else []) + ["Metric", "Δ", "Δ 95% CI", "Gap counts"],
              notes=[f"Δ = first − second backbone (MSS in MSS units, AUC/AP in percentage points). Each of the "
                     f"{r.n_bootstrap} resamples (seed {r.bootstrap_seed}) draws {videos_text_all(r, keys)} with "
                     "replacement, the same videos for both backbones; a gap counts only when its 95% CI excludes 0."])
    for ds in keys:
        for key, against in pairs:
            for metric in dataset_metrics(r, ds):
                cells, label = _gap_cells(r, metric, key, against, ds)
                stage = BOOT_METRICS[metric][0]
                per_video = "signed.csv" if stage == "eval_mss" else "scores.parquet"
                srcs = [r.src(stage, k, ds, n) for k in (key, against) for n in ("metrics.json", per_video)]
                t.add([f"{key} − {against}"] + ([r.label(ds)] if r.multi else [])
                      + [label + ("" if metric == "mss" else " (pp)"), *cells],
                      srcs + ([] if stage == "eval_mss" else [r.truth_src(ds)]))
    return t


def build_tables(r: Results) -> list[Table]:
    tables = [mss_table(r), weakly_table(r), zeroshot_table(r), ablation_table(r), openvocab_table(r),
              retention_table(r), paired_table(r), training_table(r)]
    return [t for t in tables if t is not None]
