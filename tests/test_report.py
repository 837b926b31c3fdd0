"""The report stage: tables, CSVs, the generated summary, figures and index from a fake results tree."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from alertclip.eval.groundtruth import build_frame_level, read_ucf_temporal, vadclip_frame_labels
from alertclip.eval.metrics import frame_auc_ap
from alertclip.params import EvalParams, FramesParams, WeaklyParams
from alertclip.report.bootstrap import comparison_pairs
from alertclip.report.figures import select_trace_videos
from alertclip.report.findings import compare_sentence
from alertclip.report.formatting import pct, pct_pm, signed_pp
from alertclip.report.inputs import FIGURES_DIR, MissingResultError, ReportInputError
from alertclip.report.markdown import build_report

DATASET = "VAGTA-synth"
BACKBONES = {"base": "data/models/backbone", "stage1": "data/models/stage1", "full": "data/models/stage2"}
ANNOTATIONS = "data/synth/published/annotations/Temporal_Anomaly_Annotation.txt"
SNIPPET_LEN = 16  # params frames.snippet_len (default)
# name in the scores -> snippet count; "Other/Unknown_x264" has no ground truth and must be skipped by the traces.
VIDEOS = {"Abuse/Abuse001_x264": 5, "Fighting/Fighting002_x264": 5, "Normal/Normal_Videos_003_x264": 5,
          "Normal/Normal_Videos_004_x264": 6, "Other/Unknown_x264": 4}
ANNOTATION_LINES = [
    "Abuse001_x264.mp4  Abuse  16  40  -1  -1  ",
    "Fighting002_x264.mp4  Fighting  0  30  50  60  ",
    "Normal_Videos_003_x264.mp4  Normal  -1  -1  -1  -1  ",
    "Normal_Videos_004_x264.mp4  Normal  -1  -1  -1  -1  ",
]

SPANS = {"Abuse/Abuse001_x264": ((16, 40),), "Fighting/Fighting002_x264": ((0, 30), (50, 60))}

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


def make_tree(root: Path) -> Path:
    _write(root / ANNOTATIONS, "\n".join(ANNOTATION_LINES) + "\n")
    _json(root / "results/backbone/metrics.json", {"first_loss": 4.1, "final_loss": 2.05, "steps": 100,
                                                   "heldout_i2t_r1": 0.5})
    _json(root / "results/stage1/metrics.json", {"first_loss": 3.0, "final_loss": 1.5, "steps": 40,
                                                 "best_val_total": 1.61})
    truth = read_ucf_temporal(root / ANNOTATIONS)
    for i, k in enumerate(BACKBONES):
        res = root / "results"
        signed = [(v, "normal" if "Normal" in v else "abnormal", SIGNED[k][j]) for j, v in enumerate(VIDEOS)]
        _json(res / "eval_mss" / k / "metrics.json", {DATASET: {
            "mss": MSS[k], "mss_abnormal_videos": MSS[k] + 0.01, "mss_normal_videos": MSS[k] - 0.01,
            "n_videos": len(VIDEOS), "n_abnormal": 3, "positive_share": 0.6,
            # base's CI as eval_mss records it (the report shows it as is); the others' are bootstrapped by the report
            **({"mss_ci95": [-0.0377, 0.0623], "n_bootstrap": 1000, "bootstrap_seed": 0} if k == "base" else {})}})
        _write(res / "eval_mss" / k / "signed.csv", "video,kind,signed,s_abnormal,s_normal,snippets\n" + "".join(
            f"{v},{kind},{s:.6f},0.250000,0.240000,{VIDEOS[v]}\n" for v, kind, s in signed))
        zs = zeroshot_scores(k)
        frames = build_frame_level([(v, s, None) for v, s in zs.items()], truth, clip_len=SNIPPET_LEN)
        _json(res / "eval_zeroshot" / k / "metrics.json", {DATASET: {
            **frame_auc_ap(frames.labels, frames.scores), "n_videos": len(zs), "n_frames": int(frames.labels.size),
            "abnormal_frame_share": float(frames.labels.mean()), "logit_scale": 100.0, "protocol": "vadclip"}})
        _zeroshot_parquet(res / "eval_zeroshot" / k / "scores.parquet", zs)
        _roc(res / "eval_zeroshot" / k / "roc.csv", 1.0 + i)
        _json(res / "eval_weakly" / k / "metrics.json", {
            DATASET: _head_metrics(WEAKLY_AUC[k]),
            "info": {"seeds": [0, 1, 2], "selection": "best val AUC on 20% of training videos",
                     "n_train_videos": 12, "n_val_videos": 3, "classes": ["Normal", "Abuse", "Fighting"]}})
        _scores(res / "eval_weakly" / k / "scores.parquet", 0.2 * i)
        _roc(res / "eval_weakly" / k / "roc.csv", 0.5 + i)
        _json(res / "eval_openvocab" / k / "metrics.json", {
            DATASET: {"base": _head_metrics((0.9, 0.02)), "novel": _head_metrics(NOVEL_AUC[k])},
            "info": {"novel_classes": ["Fighting"], "n_test_videos": {"base": 3, "novel": 3}, "seeds": [0, 1, 2]}})
        _json(res / "eval_retention" / k / "metrics.json", {
            "i2t_r1": I2T_R1[k], "i2t_r5": 0.9, "t2i_r1": 0.4 + 0.01 * i, "scene_acc": 0.7, "n_scenes": 4,
            "scene_chance": 0.25, "n_images": 200, "n_captions": 50, "chance_r1": 0.02})
    return root


def params() -> SimpleNamespace:
    return SimpleNamespace(eval=EvalParams(backbones=dict(BACKBONES), reference="base", dataset=DATASET,
                                           test_annotations=ANNOTATIONS),
                           eval_weakly=WeaklyParams(seeds=[0, 1, 2]), frames=FramesParams(snippet_len=SNIPPET_LEN))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("report"))
    index = build_report(root, params())
    return root, index, (root / "results/report.md").read_text(encoding="utf-8")


def md_table(md: str, name: str) -> list[list[str]]:
    """Body rows of the markdown table whose heading ends in (`name`), without the Src column."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("### ") and line.endswith(f"(`{name}`)"))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[first:end]
    body = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[2:]]
    return [cells[:-1] for cells in body]


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
    assert rows[2][-1] == "results/eval_weakly/full/metrics.json"
    assert "[3] `results/eval_weakly/full/metrics.json`" in md
    assert {t["name"] for t in index["tables"]} == {"mss", "weakly", "zeroshot", "ablation", "openvocab", "retention",
                                                   "paired", "training"}


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
    _zeroshot_parquet(root / "results/eval_zeroshot/stage1/scores.parquet", zeroshot_scores("full"))
    with pytest.raises(ReportInputError, match="results/eval_zeroshot/stage1/scores.parquet.*eval_zeroshot@stage1"):
        build_report(root, params(), figures=False)


def test_missing_file_names_file_and_stage(tmp_path):
    root = make_tree(tmp_path)
    (root / "results/eval_weakly/stage1/metrics.json").unlink()
    with pytest.raises(MissingResultError) as exc:
        build_report(root, params(), figures=False)
    msg = str(exc.value)
    assert "results/eval_weakly/stage1/metrics.json" in msg and "eval_weakly@stage1" in msg
    assert not (root / "results/report.md").exists()


def test_trace_selection_deterministic(tmp_path):
    truth = read_ucf_temporal(make_tree(tmp_path) / ANNOTATIONS)
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
