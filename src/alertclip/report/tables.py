"""The report's tables: display cells (identical in markdown and CSV) with the source files of each row."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .bootstrap import BOOT_METRICS, _videos_text, backbone_ci, comparison_pairs, n_test_videos, paired_ci
from .findings import _mss4, _n_seeds, compare_sentence
from .formatting import NA, _clean, _num, _pp, mss_fmt, pct, pct_pm, signed_pp, with_ci
from .inputs import RESULTS, TABLES_DIR, Results, _rel

RETENTION_METRICS = (("i2t_r1", "i2t R@1"), ("i2t_r5", "i2t R@5"), ("t2i_r1", "t2i R@1"), ("scene_acc", "Scene acc"))


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
