"""The ``alertclip`` command line: vagta check, video probe/extract, and stage failures on bad params."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from alertclip.cli import main


def _json(out: str):
    return json.loads(out)


def test_vagta_check_json_items(smoke_world, capsys):
    path = smoke_world / "published" / "annotations" / "qwen_vl_train.json"
    raw = json.loads(path.read_text(encoding="utf-8"))["items"]
    assert main(["vagta", "check", str(path), "--json"]) == 0
    report = _json(capsys.readouterr().out)
    summary = report[str(path)]
    assert summary["kind"] == "items"
    counts = summary["counts"]
    abnormal = sum(it["frames_25"] is not None for it in raw)
    assert counts["items"] == len(raw)
    assert counts["videos"] == len({it["video"] for it in raw})
    assert counts["abnormal"] == abnormal and counts["normal"] == len(raw) - abnormal
    assert counts["hard_negatives"] == sum(len(it["hard_negative"]) for it in raw)
    assert summary["n_defects"] == len(summary["defects"]) > 0
    assert summary["defects_by_kind"].get("empty_hard_negatives", 0) >= 1


def test_vagta_check_json_two_files(smoke_world, capsys):
    ann = smoke_world / "published" / "annotations"
    files = [ann / "Final_synth_train.json", ann / "Final_synth_test.json"]
    assert main(["vagta", "check", *map(str, files), "--json"]) == 0
    report = _json(capsys.readouterr().out)
    assert set(report) == {str(f) for f in files}
    for f in files:
        raw = json.loads(f.read_text(encoding="utf-8"))
        counts = report[str(f)]["counts"]
        assert report[str(f)]["kind"] == "entries"
        assert counts["entries"] == len(raw)
        assert counts["keyframes"] == sum(len(t) for e in raw for t in e["box_infos"])
        assert report[str(f)]["defects_by_kind"].get("abnormal_without_boxes", 0) >= 1


def test_vagta_check_malformed_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": "a/Fighting/x.mp4", "global_caption": 3, "region_captions": [],
                                "box_infos": []}]))
    assert main(["vagta", "check", str(bad), "--json"]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "entry 0" in err and "global_caption" in err


def test_video_probe_ok(smoke_frames, capsys):
    media = pl.read_parquet(smoke_frames["out"] / "media.parquet").filter(pl.col("status") == "ok")
    path = smoke_frames["raw"] / media["path"][0]
    assert main(["video", "probe", str(path)]) == 0
    info = _json(capsys.readouterr().out)
    assert info["status"] == "ok" and info["codec"] == "h264" and info["fps"] > 0


@pytest.mark.parametrize("kind, status", [("zero_length_media", "zero_length"), ("missing_media", "missing")])
def test_video_probe_bad_file(smoke_world, broken_media, capsys, kind, status):
    (video,) = [v for v, k in broken_media.items() if k == kind]
    assert main(["video", "probe", str(smoke_world / "published" / video)]) != 0
    info = _json(capsys.readouterr().out)
    assert info["status"] == status and info["reason"]


def test_video_extract_writes_npy(smoke_world, broken_media, capsys, tmp_path):
    events = pl.read_parquet(smoke_world / "truth" / "events.parquet").unique("video").sort("video")
    row = events.filter((pl.col("fps") == 30) & ~pl.col("video").is_in(list(broken_media))).row(0, named=True)
    out = tmp_path / "frames.npy"
    code = main(["video", "extract", str(smoke_world / "published" / row["video"]), "--fps", "25",
                 "--size", "48x32", "--out", str(out)])
    assert code == 0
    report = _json(capsys.readouterr().out)
    arr = np.load(out)
    assert arr.dtype == np.uint8 and arr.shape[1:] == (32, 48, 3)
    assert abs(arr.shape[0] - row["duration_s"] * 25) <= 1
    assert report["frames"] == arr.shape[0] and report["status"] == "ok" and report["out"] == str(out)


def test_video_extract_truncated_fails(smoke_world, broken_media, capsys, tmp_path):
    (video,) = [v for v, k in broken_media.items() if k == "truncated_media"]
    out = tmp_path / "t.npy"
    assert main(["video", "extract", str(smoke_world / "published" / video), "--out", str(out)]) != 0
    assert _json(capsys.readouterr().out)["status"] == "truncated"


# ---------------------------------------------------------------------------------------------- stages, bad params


@pytest.fixture
def in_tmp(tmp_path, monkeypatch, restore_logging, repo) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _params(repo: Path) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("stage", ["synthesize", "download", "frames"])
def test_stage_with_unknown_key_exits_2(in_tmp, repo, capsys, stage):
    raw = _params(repo)
    raw["frames"]["fpss"] = 30
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main([stage, "--no-progress"]) == 2
    log = (in_tmp / "logs" / f"{stage}.log").read_text(encoding="utf-8")
    assert "params.yaml: frames.fpss: unknown key" in log
    assert "frames.fpss" in capsys.readouterr().err
    # nothing was produced
    assert not (in_tmp / "data").exists() and not (in_tmp / "results").exists()


def test_stage_with_wrong_type_exits_2(in_tmp, repo, capsys):
    raw = _params(repo)
    raw["frames"]["fps"] = "fast"
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["frames", "--no-progress"]) == 2
    assert "frames.fps" in (in_tmp / "logs" / "frames.log").read_text(encoding="utf-8")


def test_stage_with_invalid_yaml_exits_2(in_tmp, capsys):
    (in_tmp / "params.yaml").write_text("frames: {fps: 25\n", encoding="utf-8")
    assert main(["synthesize", "--no-progress"]) == 2
    log = (in_tmp / "logs" / "synthesize.log").read_text(encoding="utf-8")
    assert "params.yaml" in log and "YAML" in log


def test_stage_without_params_exits_2(in_tmp, capsys):
    assert main(["download", "--no-progress"]) == 2
    assert "params.yaml: not found" in (in_tmp / "logs" / "download.log").read_text(encoding="utf-8")


def test_stage_params_option(in_tmp, repo, capsys):
    raw = _params(repo)
    raw["synthesize"]["size"] = "tiny"
    (in_tmp / "other.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["synthesize", "--params", "other.yaml", "--no-progress"]) == 2
    log = (in_tmp / "logs" / "synthesize.log").read_text(encoding="utf-8")
    assert "other.yaml" in log and "tiny" in log


# ---------------------------------------------------------------------------------------------- stages, bad variants


def test_every_variant_stage_needs_a_variant(in_tmp, repo, capsys):
    from alertclip.cli import stage_names
    from alertclip.dag import load_stages

    stages = stage_names()
    # the stage list is read off alertclip/stages/: exactly dvc.yaml's stages, variants where dvc.yaml has them
    resolved = load_stages(repo)
    assert set(stages) == {s.name.split("@")[0] for s in resolved} | {"synthesize"}
    assert {n for n, v in stages.items() if v} == {s.name.split("@")[0] for s in resolved if "--variant" in s.cmd}
    for stage in ("interpolate", "checkpoint", "testset", "features", "eval_mss", "eval_retention"):
        assert stages[stage]
        with pytest.raises(SystemExit) as exc:
            main([stage, "--no-progress"])
        assert exc.value.code == 2 and "--variant" in capsys.readouterr().err


@pytest.mark.parametrize("stage, variant, words", [
    # the matrix stages: <backbone>-<dataset>, each a key of params
    ("features", "base", ["features needs --variant <backbone>-<dataset>", "'base'"]),
    ("eval_zeroshot", "base-xd", ["eval.datasets has no 'xd'", "['synth']"]),
    ("eval_weakly", "nope-synth", ["eval.backbones has no 'nope'"]),
    # the per-dataset and per-backbone stages: one key
    ("testset", "xd", ["testset needs --variant <dataset>", "['synth']", "'xd'"]),
    ("checkpoint", "nope", ["eval.backbones has no 'nope'"]),
    ("interpolate", "nope", ["interpolate has no 'nope'", "['wise_ft']"]),
])
def test_stage_with_unknown_variant_fails_naming_the_keys(in_tmp, repo, capsys, stage, variant, words):
    (in_tmp / "params.yaml").write_text((repo / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert main([stage, "--variant", variant, "--no-progress"]) == 1
    log = (in_tmp / "logs" / f"{stage}@{variant}.log").read_text(encoding="utf-8")  # the DVC stage's name
    for word in words:
        assert word in log, log
    assert not (in_tmp / "data").exists() and not (in_tmp / "results").exists()
