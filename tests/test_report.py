"""The report stage: tables, CSVs, the generated summary, figures and index from a fake results tree.

The tree is the pipeline's layout: ``results/<stage>/<backbone>/<dataset key>/`` for the per-dataset evaluations,
``results/eval_retention/<backbone>/`` and each dataset's checked test set ``data/testsets/<key>/`` (as stage
``testset@<key>`` writes it), and the training summaries ``results/backbone/metrics.json`` and
``results/tune/<run>/metrics.json`` (stage ``tune@<run>``). The default is one dataset (``synth``);
``make_tree(..., xd=True)`` adds an XD-like dataset (headline metric AP only) evaluated by MSS and zero-shot only.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from repo_params import repo_params

from alertclip.eval.groundtruth import GroundTruth, VideoTruth, build_frame_level, vadclip_frame_labels
from alertclip.eval.metrics import frame_auc_ap
from alertclip.eval.testsets import load_testset
from alertclip.report.bootstrap import comparison_pairs
from alertclip.report.figures import select_trace_videos
from alertclip.report.findings import compare_sentence
from alertclip.report.formatting import pct, pct_pm, signed_pp
from alertclip.report.inputs import FIGURES_DIR, MissingResultError, ReportInputError
from alertclip.report.markdown import build_report

DATASET = "VAGTA-synth"  # eval.datasets.synth.name: the metrics files' block and the column headers
XD_NAME = "XD-like"  # eval.datasets.xd.name
BACKBONES = {"base": "data/models/backbone", "stage1": "data/models/stage1", "full": "data/models/full"}
ANNOTATIONS = "data/synth/published/annotations/Temporal_Anomaly_Annotation.txt"
SYNTH = repo_params("eval.datasets.synth", name=DATASET, format="ucf", ground_truth=ANNOTATIONS)
# an external test set (its own videos): zero-shot and MSS only, AP its one headline metric (as XD-Violence's)
XD = repo_params("eval.datasets.synth", name=XD_NAME, format="xd", ground_truth="data/xd/annotations.txt",
                 videos="data/xd/videos", normal_markers=None, prompts=None, metrics=["ap"])
SNIPPET_LEN = 16  # the fake tree's snippet length (params frames.snippet_len, passed to the report by params())
# name in the scores -> snippet count; "Other/Unknown_x264" has no ground truth and must be skipped by the traces.
VIDEOS = {"Abuse/Abuse001_x264": 5, "Fighting/Fighting002_x264": 5, "Normal/Normal_Videos_003_x264": 5,
          "Normal/Normal_Videos_004_x264": 6, "Other/Unknown_x264": 4}

SPANS = {"Abuse/Abuse001_x264": ((16, 40),), "Fighting/Fighting002_x264": ((0, 30), (50, 60))}
# The checked test set (data/testsets/<key>/truth.json): the annotated and the normal test videos, normal ones without
# spans, keyed by the names the scores use.
TRUTH = GroundTruth({v: VideoTruth(v, v.split("/")[0], SPANS.get(v, ()), f"{ANNOTATIONS}:{i + 1}")
                     for i, v in enumerate(v for v in VIDEOS if v in SPANS or "Normal" in v)}, source="truth.json")
# The XD-like dataset's results are the synthetic ones with the backbones swapped: its `base` is synth's `full`.
XD_FROM = {"base": "full", "stage1": "stage1", "full": "base"}

# The numbers the tests check. weakly: stage1 within noise (+0.50 < 1.00), full beats (+1.23 > 1.00).
# MSS per video: full = base + 0.0877 on every video (the paired CI is [0.0877, 0.0877]: the gap counts); stage1 =
# base + gaps of both signs (mean +0.0333, CI across 0: no difference).
BASE_SIGNED = [0.0123 + 0.05 * (j - 2) for j in range(len(VIDEOS))]
SIGNED = {"base": BASE_SIGNED, "stage1": [b + d for b, d in zip(BASE_SIGNED, (0.3, -0.25, 0.2, -0.2, 0.1165))],
          "full": [b + 0.0877 for b in BASE_SIGNED]}
MSS = {k: round(float(np.mean(v)), 6) for k, v in SIGNED.items()}  # 0.0123, 0.0456, 0.1
WEAKLY_AUC = {"base": (0.80, 0.01), "stage1": (0.805, 0.01), "full": (0.8123, 0.01)}
NOVEL_AUC = {"base": (0.70, 0.01), "stage1": (0.72, 0.03), "full": (0.60, 0.01)}  # stage1 noise, full worse
I2T_R1 = {"base": 0.50, "stage1": 0.52, "full": 0.45}
# tune@<run> summaries (first loss, final loss, steps, best val total), written here in another order than params runs
TRAINING = {"full": (2.0, 1.25, 30, 1.3), "stage1": (3.0, 1.5, 40, 1.61)}


def _stat(mean: float, std: float) -> dict:
    return {"mean": mean, "std": std, "per_seed": [mean - std, mean, mean + std]}


def _head_metrics(auc: tuple[float, float]) -> dict:
    return {"auc": _stat(*auc), "ap": _stat(auc[0] - 0.1, 0.02), "auc_prob2": _stat(0.5, 0.0),
            "ap_prob2": _stat(0.4, 0.0), "map_avg": _stat(0.1, 0.01),
            **{f"map@{t / 10:.1f}": _stat(0.1, 0.01) for t in range(1, 6)}}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _json(path: Path, obj) -> None:
    _write(path, json.dumps(obj, indent=2))


def _scores(path: Path, offset: float) -> None:
    rows = [(v, s, round(offset + 0.1 * s + 0.01 * i, 4)) for i, (v, n) in enumerate(VIDEOS.items()) for s in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"video": [r[0] for r in rows], "snippet": [r[1] for r in rows], "score": [r[2] for r in rows]},
                 schema={"video": pl.String, "snippet": pl.Int64, "score": pl.Float64}).write_parquet(path)


def zeroshot_scores(key: str) -> dict[str, np.ndarray]:
    """Zero-shot snippet scores of the annotated videos: ``full`` ranks abnormal snippets first in every video (beats
    ``base``, which ranks them last, in every resample); ``stage1`` is as good as ``full`` on one abnormal video and
    worse than ``base`` on the other (a gap that does not survive resampling)."""
    out = {}
    for v in sorted(VIDEOS):
        if v not in SPANS and "Normal" not in v:
            continue  # no ground truth: eval_zeroshot would have failed on it
        n = VIDEOS[v]
        inside = vadclip_frame_labels(SPANS.get(v, ()), n, SNIPPET_LEN).reshape(n, SNIPPET_LEN).any(axis=1)
        if v not in SPANS:
            out[v] = np.full(n, 0.5)
        elif key == "full" or (key == "stage1" and v.startswith("Abuse")):
            out[v] = np.where(inside, 0.9, 0.1)
        else:
            out[v] = np.where(inside, 0.0 if key == "stage1" else 0.1, 0.9)
    return out


def _zeroshot_parquet(path: Path, scores: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"video": [v for v, s in scores.items() for _ in s],
                  "snippet": [i for s in scores.values() for i in range(len(s))],
                  "score": np.concatenate(list(scores.values()))},
                 schema={"video": pl.String, "snippet": pl.Int64, "score": pl.Float64}).write_parquet(path)


def _roc(path: Path, bend: float) -> None:
    _write(path, "fpr,tpr\n" + "".join(f"{x:.6f},{min(1.0, x ** bend):.6f}\n" for x in np.linspace(0, 1, 6)))


def write_testset(root: Path, key: str) -> None:
    """``data/testsets/<key>/`` as stage ``testset@<key>`` writes it."""
    out = root / "data/testsets" / key
    _json(out / "truth.json", {"dataset": key, "videos": {v: {"category": e.category, "spans": [list(x) for x in e.spans],
                                                              "origin": e.origin} for v, e in TRUTH.items()}})
    pl.DataFrame({"video": list(TRUTH), "n_frames": [VIDEOS[v] * SNIPPET_LEN for v in TRUTH],
                  "category": [e.category for e in TRUTH.values()], "abnormal": [bool(e.spans) for e in TRUTH.values()]},
                 schema={"video": pl.String, "n_frames": pl.Int64, "category": pl.String, "abnormal": pl.Boolean}
                 ).write_parquet(out / "videos.parquet")


def write_mss(res: Path, k: str, key: str, name: str, like: str) -> None:
    """results/eval_mss/<k>/<key>/ with backbone ``like``'s synthetic numbers."""
    signed = [(v, "normal" if "Normal" in v else "abnormal", SIGNED[like][j]) for j, v in enumerate(VIDEOS)]
    _json(res / "eval_mss" / k / key / "metrics.json", {name: {
        "mss": MSS[like], "mss_abnormal_videos": MSS[like] + 0.01, "mss_normal_videos": MSS[like] - 0.01,
        "n_videos": len(VIDEOS), "n_abnormal": 3, "positive_share": 0.6,
        # base's CI as eval_mss records it (the report shows it as is); the others' are bootstrapped by the report
        **({"mss_ci95": [-0.0377, 0.0623], "n_bootstrap": 1000, "bootstrap_seed": 0} if like == "base" else {})}})
    _write(res / "eval_mss" / k / key / "signed.csv", "video,kind,signed,s_abnormal,s_normal,snippets\n" + "".join(
        f"{v},{kind},{s:.6f},0.250000,0.240000,{VIDEOS[v]}\n" for v, kind, s in signed))


def write_zeroshot(res: Path, k: str, key: str, name: str, like: str, bend: float) -> None:
    zs = zeroshot_scores(like)
    frames = build_frame_level([(v, s, None) for v, s in zs.items()], TRUTH, clip_len=SNIPPET_LEN)
    _json(res / "eval_zeroshot" / k / key / "metrics.json", {name: {
        **frame_auc_ap(frames.labels, frames.scores), "n_videos": len(zs), "n_frames": int(frames.labels.size),
        "abnormal_frame_share": float(frames.labels.mean()), "logit_scale": 100.0, "protocol": "vadclip"}})
    _zeroshot_parquet(res / "eval_zeroshot" / k / key / "scores.parquet", zs)
    _roc(res / "eval_zeroshot" / k / key / "roc.csv", bend)


def make_tree(root: Path, xd: bool = False, retention_extra: bool = False, stills: bool = True) -> Path:
    """The results of params(xd): ``synth`` in every evaluation; with ``xd``, the XD-like dataset in MSS and zero-shot."""
    write_testset(root, "synth")
    _json(root / "results/backbone/metrics.json", {"first_loss": 4.1, "final_loss": 2.05, "steps": 100,
                                                   "heldout_i2t_r1": 0.5})
    for run, (first, final, steps, val) in TRAINING.items():  # tune@<run> writes results/tune/<run>/metrics.json
        _json(root / "results/tune" / run / "metrics.json", {"run": run, "first_loss": first, "final_loss": final,
                                                            "steps": steps, "best_val_total": val})
    res = root / "results"
    for i, k in enumerate(BACKBONES):
        write_mss(res, k, "synth", DATASET, k)
        write_zeroshot(res, k, "synth", DATASET, k, 1.0 + i)
        _json(res / "eval_weakly" / k / "synth" / "metrics.json", {
            DATASET: _head_metrics(WEAKLY_AUC[k]),
            "info": {"seeds": [0, 1, 2], "selection": "best val AUC on 20% of training videos",
                     "n_train_videos": 12, "n_val_videos": 3, "classes": ["Normal", "Abuse", "Fighting"]}})
        _scores(res / "eval_weakly" / k / "synth" / "scores.parquet", 0.2 * i)
        _roc(res / "eval_weakly" / k / "synth" / "roc.csv", 0.5 + i)
        _json(res / "eval_openvocab" / k / "synth" / "metrics.json", {
            DATASET: {"base": _head_metrics((0.9, 0.02)), "novel": _head_metrics(NOVEL_AUC[k])},
            "info": {"novel_classes": ["Fighting"], "n_test_videos": {"base": 3, "novel": 3}, "seeds": [0, 1, 2]}})
        extra = {}
        if retention_extra and k != "stage1":  # stage1 measured without the clip-benchmark datasets
            extra = {"imagenet": {"acc1": 0.60 - 0.05 * i, "acc5": 0.85, "mean_per_class_recall": 0.59,
                                  "n_images": 50000, "n_classes": 1000},
                     "coco": {"i2t_r1": 0.40 + 0.01 * i, "i2t_r5": 0.65, "t2i_r1": 0.30, "t2i_r5": 0.55,
                              "n_images": 5000, "n_captions": 25014}}
        still = {"i2t_r1": I2T_R1[k], "i2t_r5": 0.9, "t2i_r1": 0.4 + 0.01 * i, "scene_acc": 0.7, "n_scenes": 4,
                 "scene_chance": 0.25, "n_images": 200, "n_captions": 50, "chance_r1": 0.02} if stills else {}
        _json(res / "eval_retention" / k / "metrics.json", {**still, **extra})
        if xd:
            write_mss(res, k, "xd", XD_NAME, XD_FROM[k])
            write_zeroshot(res, k, "xd", XD_NAME, XD_FROM[k], 3.0 - i)
    if xd:
        write_testset(root, "xd")
    return root


def params(xd: bool = False) -> SimpleNamespace:
    """Real params groups (params.yaml's, the tree's backbones and datasets in): ``synth`` in every evaluation; with
    ``xd`` also the XD-like dataset, in MSS and zero-shot."""
    datasets = {"synth": SYNTH, **({"xd": XD} if xd else {})}
    both = ["synth", "xd"] if xd else ["synth"]
    evaluate = repo_params("eval.evaluate", mss=both, zeroshot=both, weakly=["synth"], openvocab=["synth"])
    return SimpleNamespace(eval=repo_params("eval", backbones=dict(BACKBONES), reference="base", datasets=datasets,
                                            evaluate=evaluate),
                           runs=repo_params().runs,  # the training summaries the report looks for: tune@<run>
                           eval_weakly=repo_params("eval_weakly", seeds=[0, 1, 2]),
                           frames=repo_params("frames", snippet_len=SNIPPET_LEN))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("report"))
    index = build_report(root, params())
    return root, index, (root / "results/report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def built_two(tmp_path_factory):
    """Two datasets: synth in every evaluation, the XD-like one (AP only) in MSS and zero-shot only."""
    root = make_tree(tmp_path_factory.mktemp("report_two"), xd=True)
    index = build_report(root, params(xd=True))
    return root, index, (root / "results/report.md").read_text(encoding="utf-8")


def _md_rows(md: str, name: str) -> list[list[str]]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and line.endswith(f"(`{name}`)"))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[c.strip() for c in row.strip("|").split(" | ")][:-1] for row in lines[first:end]]


def md_table(md: str, name: str) -> list[list[str]]:
    """Body rows of the markdown table whose heading ends in (`name`), without the Src column."""
    return _md_rows(md, name)[2:]


def md_columns(md: str, name: str) -> list[str]:
    """Header cells of that table, without the Src column."""
    return _md_rows(md, name)[0]


def csv_table(root: Path, name: str) -> tuple[list[str], list[list[str]]]:
    with open(root / "results/report/tables" / f"{name}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def ci_cell(cell: str) -> tuple[float, float, float]:
    """``"97.06 [91.67, 98.78]"`` -> (97.06, 91.67, 98.78)."""
    value, rest = cell.split(" [")
    low, high = rest.rstrip("]").split(", ")
    return float(value), float(low), float(high)


def finding(md: str, prefix: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(prefix))


def test_formats():
    assert pct(0.8932) == "89.32" and pct(None) == "n/a" and pct(float("nan")) == "n/a"
    assert pct_pm({"mean": 0.8123, "std": 0.01}) == "81.23 ± 1.00"
    assert signed_pp(-0.0001) == "+0.00" and signed_pp(-5) == "-5.00" and signed_pp(2) == "+2.00"


def test_tables_numbers_and_csv_match(built):
    root, index, md = built
    weakly = {r[0]: r for r in md_table(md, "weakly")}
    assert list(weakly) == list(BACKBONES)  # eval.backbones order
    assert weakly["full"][1] == "81.23 ± 1.00" and weakly["base"][1] == "80.00 ± 1.00" and weakly["full"][-1] == "3"
    mss = {r[0]: r for r in md_table(md, "mss")}
    assert mss["base"][1:5] == ["0.0123 [-0.0377, 0.0623]", "0.0223", "0.0023", "60.00"]  # the CI eval_mss recorded
    value, low, high = ci_cell(mss["full"][1])  # no recorded CI: bootstrapped by the report from signed.csv
    assert value == 0.1 and low < value < high
    zs = {r[0]: r for r in md_table(md, "zeroshot")}
    assert zs["full"][1].startswith("97.06 [") and zs["full"][2].startswith("80.00 [")
    for k in BACKBONES:
        for cell in zs[k][1:3]:
            value, low, high = ci_cell(cell)
            assert low <= value <= high and low < high, (k, cell)
    abl = {r[0]: r for r in md_table(md, "ablation")}
    assert abl["full"][1:] == [mss["full"][1], zs["full"][1], "81.23 ± 1.00", "60.00 ± 1.00", "45.00"]
    paired = {(r[0], r[1]): r[2:] for r in md_table(md, "paired")}
    assert set(paired) == {(f"{a} − {b}", m) for a, b in (("stage1", "base"), ("full", "base"), ("full", "stage1"))
                           for m in ("MSS", "Zero-shot AUC (pp)", "Zero-shot AP (pp)")}
    assert paired[("full − base", "MSS")] == ["+0.0877", "[+0.0877, +0.0877]", "yes"]
    assert paired[("stage1 − base", "MSS")][0] == "+0.0333" and paired[("stage1 − base", "MSS")][2] == "no (CI includes 0)"
    assert paired[("full − base", "Zero-shot AUC (pp)")][2] == "yes"
    assert paired[("stage1 − base", "Zero-shot AUC (pp)")][2] == "no (CI includes 0)"
    ov = {r[0]: r for r in md_table(md, "openvocab")}
    assert ov["stage1"][1:] == ["90.00 ± 2.00", "80.00 ± 2.00", "72.00 ± 3.00", "62.00 ± 2.00", "3/3"]
    for t in index["tables"]:
        header, rows = csv_table(root, t["name"])
        assert header[-1] == "source" and header[:-1] == t["columns"]
        assert [r[:-1] for r in rows] == md_table(md, t["name"]), t["name"]
        for row in rows:  # every row names existing source files
            assert row[-1] and all((root / s).is_file() for s in row[-1].split(";"))
    _, rows = csv_table(root, "weakly")
    assert rows[2][-1] == "results/eval_weakly/full/synth/metrics.json"
    assert "[3] `results/eval_weakly/full/synth/metrics.json`" in md
    assert {t["name"] for t in index["tables"]} == {"mss", "weakly", "zeroshot", "ablation", "openvocab", "retention",
                                                   "paired", "training"}


def test_training_table_has_backbone_then_runs_in_params_order(built, tmp_path):
    """results/backbone and results/tune/<run> (stage tune@<run>), one row each, in params runs order; a summary in
    results/tune/ of a run params no longer has is not read."""
    root, index, md = built
    rows = md_table(md, "training")
    assert [r[0] for r in rows] == ["backbone", "tune@stage1", "tune@full"]  # params runs order, not the directory's
    assert rows[1][1:5] == ["40", "3.0000", "1.5000", "1.6100"] and rows[2][1:5] == ["30", "2.0000", "1.2500", "1.3000"]
    _, csv_rows = csv_table(root, "training")
    assert [r[-1] for r in csv_rows] == ["results/backbone/metrics.json", "results/tune/stage1/metrics.json",
                                         "results/tune/full/metrics.json"]
    stale = make_tree(tmp_path)
    _json(stale / "results/tune/dropped/metrics.json", {"run": "dropped", "first_loss": 1.0, "final_loss": 0.5, "steps": 1})
    build_report(stale, params(), figures=False)
    assert [r[0] for r in md_table((stale / "results/report.md").read_text(encoding="utf-8"), "training")] == [
        "backbone", "tune@stage1", "tune@full"]


def test_retention_delta_sign(built):
    root, _, md = built
    ret = {r[0]: r for r in md_table(md, "retention")}
    assert ret["base"][1:3] == ["50.00", "+0.00"]
    assert ret["stage1"][1:3] == ["52.00", "+2.00"]
    assert ret["full"][1:3] == ["45.00", "-5.00"]
    assert ret["full"][5:7] == ["42.00", "+2.00"]  # t2i R@1 0.42 vs 0.40


def test_what_it_shows(built):
    _, _, md = built
    section = md.split("## What this run shows", 1)[1].split("## Tables", 1)[0]
    line = finding(section, "- Weakly AUC: `stage1`")
    assert "within seed noise" in line and "beats" not in line and "+0.50 pp" in line
    line = finding(section, "- Weakly AUC: `full`")
    assert "beats `base` by 1.23 pp" in line and "exceeds the larger seed std (1.00 pp over 3 seeds)" in line
    # paired bootstrap: full ranks abnormal snippets first in every video, base last: the CI excludes 0
    line = finding(section, "- Zero-shot AUC: `full` beats `base`")
    assert "by 94.12 pp (97.06 vs 2.94)" in line and "excludes 0" in line
    # stage1 is better on one abnormal video and worse on the other: a +32.72 pp gap whose CI includes 0
    line = finding(section, "- Zero-shot AUC: `stage1` vs `base`")
    assert "no difference (CI [" in line and "+32.72 pp" in line and "beats" not in line
    assert "no difference (CI [" in finding(section, "- Zero-shot AUC: `full` vs `stage1`")
    assert "is worse than `base` by 10.00 pp" in finding(section, "- Novel AUC: `full`")
    assert "is worse than `stage1` by 12.00 pp" in finding(section, "- Novel AUC: `full` is worse than `stage1`")
    assert "within seed noise" in finding(section, "- Novel AUC: `stage1`")
    line = finding(section, "- i2t R@1: `full`")
    assert "is worse than `base` by 5.00 pp" in line and "not tested" in line
    line = finding(section, "- MSS: `full` beats `base`")
    assert "by 0.0877" in line and "[+0.0877, +0.0877], excludes 0" in line
    assert "no difference (CI [-" in finding(section, "- MSS: `stage1` vs `base`")
    assert "**MSS** — 1 of 2 tuned backbone(s) beat `base`, 1 no difference (CI includes 0). Other pairs: the gap " \
           "counts in 0 of 1." in section
    assert "**Zero-shot AUC** — 1 of 2 tuned backbone(s) beat `base`, 1 no difference (CI includes 0)." in section
    assert "**Retention i2t R@1** — 0 of 2 tuned backbone(s) beat `base`, 2 not tested." in section
    assert "**Weakly supervised AUC** — 1 of 2 tuned backbone(s) beat `base`, 1 within seed noise." in section
    assert "paired bootstrap over the test videos (5 for MSS, 4 for zero-shot) excludes 0 (1000 resamples" in section
    assert "3 seed(s)" in section
    assert "validation split of the *training* videos" in section and "VadCLIP selects" in section


def test_compare_sentence_counts_a_gap_only_when_its_ci_excludes_zero():
    verdict, text = compare_sentence("Zero-shot AUC", "full", "base", 81.0, 80.0, " pp", 2, ci=(-0.5, 2.4))
    assert verdict == "nodiff" and "`full` vs `base`: no difference (CI [-0.50, +2.40] pp)" in text and "beats" not in text
    verdict, text = compare_sentence("Zero-shot AUC", "full", "base", 81.0, 80.0, " pp", 2, ci=(0.2, 2.4))
    assert verdict == "beats" and "beats `base` by 1.00 pp" in text and "[+0.20, +2.40] pp, excludes 0" in text
    assert compare_sentence("MSS", "full", "base", 0.01, 0.02, "", 4, ci=(-0.02, -0.001))[0] == "worse"
    # a CI on the other side of the gap (possible with a skewed bootstrap) does not make it count either
    assert compare_sentence("MSS", "full", "base", 0.03, 0.02, "", 4, ci=(-0.02, -0.001))[0] == "nodiff"
    # seeds: only a gap beyond the larger std counts; with one seed the noise is unknown and nothing counts
    assert compare_sentence("Weakly AUC", "full", "base", 81.0, 80.0, " pp", 2, noise=1.5, n_seeds=3)[0] == "noise"
    assert compare_sentence("Weakly AUC", "full", "base", 82.0, 80.0, " pp", 2, noise=1.5, n_seeds=3)[0] == "beats"
    verdict, text = compare_sentence("Weakly AUC", "full", "base", 82.0, 80.0, " pp", 2, noise=None, n_seeds=1)
    assert verdict == "untested" and "single seed" in text and "not counted" in text


def test_comparison_pairs_include_full_vs_stage1_and_ablations_vs_full():
    r = SimpleNamespace(reference="base", tuned=["stage1", "full", "no_hard", "joint"])
    assert comparison_pairs(r) == [("stage1", "base"), ("full", "base"), ("no_hard", "base"), ("joint", "base"),
                                   ("full", "stage1"), ("no_hard", "full"), ("joint", "full")]
    assert comparison_pairs(SimpleNamespace(reference="base", tuned=["stage1"])) == [("stage1", "base")]


def test_stale_per_video_scores_are_an_error(tmp_path):
    """scores.parquet from another run than metrics.json would give CIs of other numbers: refuse, naming the file."""
    root = make_tree(tmp_path)
    _zeroshot_parquet(root / "results/eval_zeroshot/stage1/synth/scores.parquet", zeroshot_scores("full"))
    with pytest.raises(ReportInputError,
                       match="results/eval_zeroshot/stage1/synth/scores.parquet.*eval_zeroshot@stage1-synth"):
        build_report(root, params(), figures=False)


def test_missing_file_names_file_and_stage(tmp_path):
    root = make_tree(tmp_path)
    (root / "results/eval_weakly/stage1/synth/metrics.json").unlink()
    with pytest.raises(MissingResultError) as exc:
        build_report(root, params(), figures=False)
    msg = str(exc.value)
    assert "results/eval_weakly/stage1/synth/metrics.json" in msg and "`eval_weakly@stage1-synth`" in msg
    assert not (root / "results/report.md").exists()


def test_missing_files_reported_at_once_with_pair_stages(tmp_path):
    """Every missing file of every (stage, backbone, dataset) at once, each with the DVC stage of its pair."""
    root = make_tree(tmp_path, xd=True)
    (root / "results/eval_zeroshot/stage1/xd/scores.parquet").unlink()
    (root / "results/eval_mss/full/synth/signed.csv").unlink()
    (root / "results/eval_retention/base/metrics.json").unlink()
    shutil.rmtree(root / "data/testsets/xd")
    with pytest.raises(MissingResultError) as exc:
        build_report(root, params(xd=True), figures=False)
    msg = str(exc.value)
    assert "5 missing result file(s)" in msg  # 3 results + truth.json and videos.parquet of testset@xd
    assert "results/eval_zeroshot/stage1/xd/scores.parquet  (written by dvc.yaml stage `eval_zeroshot@stage1-xd`)" in msg
    assert "results/eval_mss/full/synth/signed.csv  (written by dvc.yaml stage `eval_mss@full-synth`)" in msg
    assert "results/eval_retention/base/metrics.json  (written by dvc.yaml stage `eval_retention@base`)" in msg
    assert "data/testsets/xd/truth.json  (written by dvc.yaml stage `testset@xd`)" in msg
    assert "dvc repro eval_mss@full-synth eval_zeroshot@stage1-xd eval_retention@base testset@xd" in msg


def test_metrics_without_the_dataset_block_names_file_dataset_and_stage(tmp_path):
    root = make_tree(tmp_path)
    path = root / "results/eval_weakly/full/synth/metrics.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    _json(path, {"UCF-Crime": data[DATASET], "info": data["info"]})  # written under another dataset name
    with pytest.raises(ReportInputError) as exc:
        build_report(root, params(), figures=False)
    msg = str(exc.value)
    assert msg.startswith("results/eval_weakly/full/synth/metrics.json: no block for dataset 'VAGTA-synth'")
    assert "eval.datasets.synth.name" in msg and "['UCF-Crime']" in msg and "`eval_weakly@full-synth`" in msg


def test_single_dataset_keeps_its_columns(built):
    """One dataset: the columns the report always had (a committed output: an unchanged look makes review easy)."""
    root, index, md = built
    assert md_columns(md, "mss") == ["Backbone", "MSS [95% CI]", "MSS abnormal videos", "MSS normal videos",
                                     "Positive margin (%)", "Videos"]
    assert md_columns(md, "weakly") == ["Backbone", "VAGTA-synth AUC (%)", "VAGTA-synth AP (%)",
                                        "VAGTA-synth AVG mAP (%)", "Seeds"]
    assert md_columns(md, "zeroshot") == ["Backbone", "VAGTA-synth AUC (%) [95% CI]", "VAGTA-synth AP (%) [95% CI]",
                                          "Videos", "Frames"]
    assert md_columns(md, "ablation") == ["Backbone", "MSS [95% CI]", "Zero-shot AUC (%) [95% CI]", "Weakly AUC (%)",
                                          "Novel AUC (%)", "Retention i2t R@1 (%)"]
    assert md_columns(md, "openvocab") == ["Backbone", "Base AUC (%)", "Base AP (%)", "Novel AUC (%)", "Novel AP (%)",
                                           "Test videos base/novel"]
    assert md_columns(md, "paired") == ["Comparison", "Metric", "Δ", "Δ 95% CI", "Gap counts"]
    assert len(md_columns(md, "retention")) == 10  # no ImageNet / COCO blocks: no columns for them
    assert md.startswith("# Alert-CLIP report — VAGTA-synth\n")
    assert "- VAGTA-synth (`synth`): format `ucf`, ground truth `" + ANNOTATIONS + "`; headline metrics AUC, AP; " \
           "evaluations: mss, zeroshot, weakly, openvocab." in md
    assert "### VAGTA-synth — dataset" not in md  # no per-dataset sub-headings with one dataset
    assert index["datasets"] == [{"key": "synth", "name": DATASET, "format": "ucf", "ground_truth": ANNOTATIONS,
                                  "metrics": ["auc", "ap"], "evaluations": ["mss", "zeroshot", "weakly", "openvocab"]}]
    assert "dataset" not in index
    paired = next(t for t in index["tables"] if t["name"] == "paired")
    assert "data/testsets/synth/truth.json" in paired["sources"]  # the checked ground truth rebuilt the frames


def test_two_datasets_give_one_column_group_each(built_two):
    root, index, md = built_two
    zs_cols = md_columns(md, "zeroshot")
    assert zs_cols == ["Backbone", "VAGTA-synth AUC (%) [95% CI]", "VAGTA-synth AP (%) [95% CI]",
                       "XD-like AP (%) [95% CI]"]  # the XD-like dataset's headline metric is AP only
    zs = {r[0]: r for r in md_table(md, "zeroshot")}
    assert zs["full"][1].startswith("97.06 [") and zs["full"][2].startswith("80.00 [")
    assert zs["base"][3].startswith(zs["full"][2].split(" [")[0] + " [")  # XD's base = synth's full
    assert "XD-like 4 videos" in md
    mss_cols = md_columns(md, "mss")
    assert mss_cols[1:6] == ["VAGTA-synth MSS [95% CI]", "VAGTA-synth MSS abnormal videos",
                             "VAGTA-synth MSS normal videos", "VAGTA-synth positive margin (%)", "VAGTA-synth videos"]
    assert mss_cols[6] == "XD-like MSS [95% CI]" and len(mss_cols) == 11
    mss = {r[0]: r for r in md_table(md, "mss")}
    assert mss["base"][1] == "0.0123 [-0.0377, 0.0623]" and mss["base"][6].startswith("0.1000 [")
    assert mss["full"][6] == "0.0123 [-0.0377, 0.0623]"
    # weakly and open vocabulary ran on synth only: their XD columns are absent, and nothing is missing
    assert md_columns(md, "weakly") == ["Backbone", "VAGTA-synth AUC (%)", "VAGTA-synth AP (%)",
                                        "VAGTA-synth AVG mAP (%)", "Seeds"]
    assert not any("XD" in c for c in md_columns(md, "openvocab"))
    assert md_columns(md, "ablation") == ["Backbone", "VAGTA-synth MSS [95% CI]", "XD-like MSS [95% CI]",
                                          "VAGTA-synth zero-shot AUC (%) [95% CI]", "XD-like zero-shot AP (%) [95% CI]",
                                          "VAGTA-synth weakly AUC (%)", "VAGTA-synth novel AUC (%)",
                                          "Retention i2t R@1 (%)"]
    paired = {(r[0], r[1], r[2]): r[3:] for r in md_table(md, "paired")}
    assert md_columns(md, "paired")[:3] == ["Comparison", "Dataset", "Metric"]
    assert {m for (_, d, m) in paired if d == XD_NAME} == {"MSS", "Zero-shot AP (pp)"}
    assert paired[("full − base", XD_NAME, "MSS")][:3] == ["-0.0877", "[-0.0877, -0.0877]", "yes"]
    assert paired[("full − base", DATASET, "MSS")][:3] == ["+0.0877", "[+0.0877, +0.0877]", "yes"]
    # findings: a sub-heading per dataset, each dataset's own metrics
    section = md.split("## What this run shows", 1)[1].split("## Tables", 1)[0]
    synth_part, rest = section.split("### VAGTA-synth — dataset `synth`", 1)[1].split("### XD-like — dataset `xd`", 1)
    xd_part, general = rest.split("### Retention (per backbone) and model selection", 1)
    assert "**Zero-shot AUC**" in synth_part and "**Weakly supervised AUC**" in synth_part
    assert "**Zero-shot AP**" in xd_part and "**Zero-shot AUC**" not in xd_part and "Weakly" not in xd_part
    assert "- MSS: `full` is worse than `base` by 0.0877" in xd_part
    assert "**Retention i2t R@1**" in general and "**Model selection**" in general
    assert "on VAGTA-synth, XD-like" in section
    assert md.startswith("# Alert-CLIP report — VAGTA-synth, XD-like\n")
    assert "- XD-like (`xd`): format `xd`, ground truth `data/xd/annotations.txt`; headline metrics AP; " \
           "evaluations: mss, zeroshot." in md
    assert [d["key"] for d in index["datasets"]] == ["synth", "xd"]
    assert index["datasets"][1]["evaluations"] == ["mss", "zeroshot"] and index["datasets"][1]["metrics"] == ["ap"]
    for t in index["tables"]:  # CSV = markdown; every source exists
        header, rows = csv_table(root, t["name"])
        assert header[:-1] == t["columns"] and [r[:-1] for r in rows] == md_table(md, t["name"]), t["name"]
        assert all((root / s).is_file() for row in rows for s in row[-1].split(";"))


def test_figure_names_one_vs_two_datasets(built, built_two):
    one = {f["name"] for f in built[1]["figures"]}
    assert one == {"roc_zeroshot", "roc_weakly", "mss_distribution", "traces_weakly", "traces_zeroshot"}
    root, index, md = built_two
    two = {f["name"]: f for f in index["figures"]}
    assert set(two) == {"roc_zeroshot_synth", "roc_weakly_synth", "mss_distribution_synth", "traces_weakly_synth",
                        "traces_zeroshot_synth", "roc_zeroshot_xd", "mss_distribution_xd", "traces_zeroshot_xd"}
    for name, f in two.items():
        assert f["path"] == f"results/report/figures/{name}.png" and (root / f["path"]).is_file()
    assert "XD-like" in two["roc_zeroshot_xd"]["caption"]
    assert "data/testsets/xd/truth.json" in two["traces_zeroshot_xd"]["sources"]
    assert all("/xd/" in s or s.startswith("data/testsets/xd") for s in two["traces_zeroshot_xd"]["sources"])


def test_retention_gains_imagenet_and_coco_columns(tmp_path):
    root = make_tree(tmp_path, retention_extra=True)
    build_report(root, params(), figures=False)
    md = (root / "results/report.md").read_text(encoding="utf-8")
    cols = md_columns(md, "retention")
    assert cols[:10] == ["Backbone", "i2t R@1 (%)", "Δ i2t R@1 (pp)", "i2t R@5 (%)", "Δ i2t R@5 (pp)", "t2i R@1 (%)",
                         "Δ t2i R@1 (pp)", "Scene acc (%)", "Δ Scene acc (pp)", "Images"]
    assert cols[10:14] == ["ImageNet acc@1 (%)", "Δ ImageNet acc@1 (pp)", "ImageNet acc@5 (%)", "Δ ImageNet acc@5 (pp)"]
    assert "COCO t2i R@5 (%)" in cols and len(cols) == 10 + 2 * 7
    ret = {r[0]: dict(zip(cols, r)) for r in md_table(md, "retention")}
    assert ret["full"]["ImageNet acc@1 (%)"] == "50.00" and ret["full"]["Δ ImageNet acc@1 (pp)"] == "-10.00"
    assert ret["full"]["COCO i2t R@1 (%)"] == "42.00" and ret["full"]["Δ COCO i2t R@1 (pp)"] == "+2.00"
    assert ret["stage1"]["ImageNet acc@1 (%)"] == "n/a"  # measured without the block
    assert "50000 images, 1000 classes" in md and "Not measured (n/a): `stage1` (imagenet), `stage1` (coco)." in md
    section = md.split("## What this run shows", 1)[1].split("## Tables", 1)[0]
    assert "**Retention, ImageNet zero-shot acc@1**" in section and "**Retention, COCO i2t R@1**" in section
    assert "ImageNet acc@1: `full` is worse than `base` by 10.00 pp" in section


def test_real_source_retention_is_the_benchmarks_alone(tmp_path):
    """A real source has no held-out stills (eval_retention writes the clip-benchmark blocks only): the retention
    table, the ablation table's retention column and the findings use the benchmarks, and nothing asks for stills."""
    root = make_tree(tmp_path, retention_extra=True, stills=False)
    build_report(root, params(), figures=False)
    md = (root / "results/report.md").read_text(encoding="utf-8")
    cols = md_columns(md, "retention")
    assert cols[:5] == ["Backbone", "ImageNet acc@1 (%)", "Δ ImageNet acc@1 (pp)", "ImageNet acc@5 (%)",
                        "Δ ImageNet acc@5 (pp)"] and "i2t R@1 (%)" not in cols and "Images" not in cols
    ret = {r[0]: dict(zip(cols, r)) for r in md_table(md, "retention")}
    assert ret["full"]["ImageNet acc@1 (%)"] == "50.00" and ret["stage1"]["ImageNet acc@1 (%)"] == "n/a"
    ablation = md_columns(md, "ablation")
    assert ablation[-1] == "Retention ImageNet acc@1 (%)" and "Retention i2t R@1 (%)" not in ablation
    assert {r[0]: r[-1] for r in md_table(md, "ablation")}["full"] == "50.00"
    assert "held-out VAGTA-synth stills" not in md and "**Retention, ImageNet zero-shot acc@1**" in md


def test_trace_selection_deterministic(tmp_path):
    truth = load_testset("synth", SYNTH, make_tree(tmp_path)).truth
    scores = {v: np.zeros(n) for v, n in VIDEOS.items()}
    chosen = select_trace_videos(scores, truth, SNIPPET_LEN)
    assert [t.video for t in chosen] == ["Fighting/Fighting002_x264", "Abuse/Abuse001_x264",
                                         "Normal/Normal_Videos_004_x264", "Normal/Normal_Videos_003_x264"]
    # Unannotated videos: normal by name (like the eval stages) or skipped; at most 3 of each kind.
    more = {**scores, "Normal/Normal_Videos_099_x264": np.zeros(9), "Normal/Normal_Videos_098_x264": np.zeros(9)}
    assert [t.video for t in select_trace_videos(more, truth, SNIPPET_LEN)][2:] == [
        "Normal/Normal_Videos_098_x264", "Normal/Normal_Videos_099_x264", "Normal/Normal_Videos_004_x264"]
    assert int(chosen[0].labels.sum()) == 40 and len(chosen[0].labels) == 80


def test_figures_index_and_byte_identical(built, tmp_path, monkeypatch):
    root, index, md = built
    names = {"roc_zeroshot", "roc_weakly", "mss_distribution", "traces_weakly", "traces_zeroshot"}
    assert {f["name"] for f in index["figures"]} == names
    assert json.loads((root / "results/report/index.json").read_text(encoding="utf-8")) == index
    for f in index["figures"]:
        png = root / f["path"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f["sources"] and f["caption"]
        assert f"]({Path(f['path']).relative_to('results').as_posix()})" in md  # linked relative to report.md
    # A second render (through the stage entry point, in another directory) gives the same bytes.
    other = make_tree(tmp_path / "again")
    monkeypatch.chdir(other)
    from alertclip.stages.report import run

    run(params(), progress=False)
    for name in names:
        a, b = root / FIGURES_DIR / f"{name}.png", other / FIGURES_DIR / f"{name}.png"
        assert a.read_bytes() == b.read_bytes(), name
    assert (other / "results/report.md").read_text(encoding="utf-8") == md
    shutil.rmtree(other)
