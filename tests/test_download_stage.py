"""The `download` stage on a real-source profile (ucf_vagta): annotation files over HTTP from a loopback server with
pinned or first-use hashes, videos linked from a local dataset directory, reruns without network, and a checksum
mismatch that fails naming the file while keeping every verified file."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import yaml
from test_download import Server  # the loopback server with Range support and request log

from alertclip.cli import main
from alertclip.params import REAL_INPUTS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in root.handlers[:]:
        if h not in before:
            root.removeHandler(h)
            h.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project dir with the repo's params.yaml switched to ucf_vagta served by a loopback server."""
    srv_root = tmp_path / "host"
    srv_root.mkdir()
    files = {
        "test.json": b'[{"video": "x"}]',
        "qwen_vl_train.json": b'{"items": []}',
        "train.json": b"[]",
    }
    for name, data in files.items():
        (srv_root / name).write_bytes(data)
    videos = tmp_path / "UCF_Crimes" / "Videos"
    for rel in ("Arson/Arson010_x264.mp4", "Testing_Normal_Videos_Anomaly/Normal_Videos_360_x264.mp4"):
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        (videos / rel).write_bytes(hashlib.sha256(rel.encode()).digest() * 100)
    server = Server(srv_root)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    src = params["data"]["sources"]["ucf_vagta"]
    src["files"] = [
        {"path": "annotations/test.json", "url": f"{server.url}/test.json",
         "sha256": hashlib.sha256(files["test.json"]).hexdigest()},
        {"path": "annotations/qwen_vl_train.json", "url": f"{server.url}/qwen_vl_train.json",
         "sha256": hashlib.sha256(files["qwen_vl_train.json"]).hexdigest()},
        {"path": "annotations/train.json", "url": f"{server.url}/train.json", "sha256": None},
    ]
    src["video_root"] = str(videos)
    params["data"].update(source="ucf_vagta", world={}, inputs=dict(REAL_INPUTS))  # what `alertclip profile` sets
    src["novel_classes"] = ["Explosion", "Arson"]
    params["download"]["backoff_s"] = 0.01
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(project)
    yield project, server, videos
    server.close()


def test_real_source_fetches_links_and_reruns_offline(project):
    root, server, videos = project
    assert main(["download", "--no-progress"]) == 0
    raw = root / "data" / "raw"
    assert (raw / "annotations" / "test.json").read_bytes() == b'[{"video": "x"}]'
    assert (raw / "annotations" / "train.json").read_bytes() == b"[]"  # hash recorded on first use
    novel = (raw / "annotations" / "novel_classes.txt").read_text().splitlines()
    assert novel[0].startswith("#") and novel[1:] == ["Explosion", "Arson"]  # the split training and openvocab read
    linked = raw / "UCF_Crimes_Videos/UCF_Crimes/Videos/Arson/Arson010_x264.mp4"
    original = videos / "Arson/Arson010_x264.mp4"
    assert linked.exists() and (linked.stat().st_ino == original.stat().st_ino or linked.is_symlink())
    n_requests = len(server.log)
    assert n_requests == 3

    # What Snakemake does to a failed job's outputs, then the rerun: nothing is fetched again.
    import shutil

    shutil.rmtree(raw)
    assert main(["download", "--no-progress"]) == 0
    assert len(server.log) == n_requests
    assert (raw / "annotations" / "qwen_vl_train.json").exists()


def test_checksum_mismatch_fails_naming_the_file_and_keeps_the_rest(project):
    root, server, _ = project
    (server.root / "test.json").write_bytes(b"tampered upstream")
    assert main(["download", "--no-progress"]) == 1
    log = (root / "logs" / "download.log").read_text()
    assert "annotations/test.json" in log and "sha256" in log.lower()
    raw = root / "data" / "raw"
    assert (raw / "annotations" / "qwen_vl_train.json").exists()
    assert not (raw / "annotations" / "test.json").exists()
    quarantined = list((root / "data" / ".cache" / "downloads" / ".quarantine").rglob("test.json"))
    assert quarantined and quarantined[0].read_bytes() == b"tampered upstream"
