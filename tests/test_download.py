"""Tests for alertclip.data.download against a loopback HTTP server (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from alertclip.data.download import fetch as fetch_module
from alertclip.data.download import local as local_module
from alertclip.data.download.archives import safe_extract
from alertclip.data.download.errors import ChecksumMismatchError, DownloadError, ManifestError, MissingSourceError, UnsafeArchiveError
from alertclip.data.download.fetch import fetch
from alertclip.data.download.local import link_local
from alertclip.data.download.manifest import FileSpec, load_manifest

FAST = dict(retries=3, backoff=0.01, timeout=5.0, progress=False)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def with_status(report, status: str) -> list[str]:
    """Paths of the report's files with ``status`` (``downloaded``, ``cached``, ...), in manifest order."""
    return [f.path for f in report.files if f.status == status]


def blob(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


# --------------------------------------------------------------------------- loopback server


class Server:
    """Serves ``root``; honours Range / If-Range; can misbehave on demand."""

    def __init__(self, root: Path):
        self.root = root
        self.log: list[dict] = []
        self.drop_after: dict[str, int] = {}  # path -> bytes of body to send before dropping (once)
        self.fail_first: dict[str, int] = {}  # path -> remaining 503 answers
        self.ignore_range = False
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # silence
                pass

            def do_GET(self):
                rel = unquote(urlsplit(self.path).path).lstrip("/")
                rec = {"path": rel, "range": self.headers.get("Range"), "if_range": self.headers.get("If-Range"),
                       "status": None, "sent": 0}
                with server.lock:
                    server.log.append(rec)
                    fail = server.fail_first.get(rel, 0)
                    if fail:
                        server.fail_first[rel] = fail - 1
                    drop = server.drop_after.pop(rel, None)
                if fail:
                    rec["status"] = 503
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = server.root / rel
                if not f.is_file():
                    rec["status"] = 404
                    self.send_error(404)
                    return
                data = f.read_bytes()
                etag = '"' + sha(data)[:16] + '"'
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                status, body, extra = 200, data, {}
                if rng and not server.ignore_range and (if_range is None or if_range == etag):
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        status, body, extra = 416, b"", {"Content-Range": f"bytes */{len(data)}"}
                    else:
                        status, body = 206, data[start:]
                        extra = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                rec["status"] = status
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                if drop is not None and drop < len(body):
                    self.wfile.write(body[:drop])
                    self.wfile.flush()
                    rec["sent"] = drop
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)
                rec["sent"] = len(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def requests_for(self, path: str) -> list[dict]:
        return [r for r in self.log if r["path"] == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    s = Server(root)
    yield s
    s.close()


def publish(root: Path, files: dict[str, bytes], **kw) -> list[FileSpec]:
    specs = []
    for p, data in files.items():
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        specs.append(FileSpec(path=p, sha256=sha(data), size=len(data), **kw))
    return specs


@pytest.fixture
def dirs(tmp_path):
    return tmp_path / "cache", tmp_path / "dest"


def state_of(cache: Path) -> dict:
    return json.loads((cache / ".verified.json").read_text())["files"]


# --------------------------------------------------------------------------- fetch over HTTP


FILES = {
    "videos/train/Fighting/Fighting001_x264.mp4": blob(300_000, 1),
    "b.bin": blob(1000, 2),
    "with space/c.txt": b"hello world\n",
}


def test_full_fetch_verifies_and_links(server, dirs):
    cache, dest = dirs
    specs = publish(server.root, FILES)
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert with_status(report, "downloaded") == list(FILES)
    assert report.ok and report.bytes_downloaded == sum(len(b) for b in FILES.values())
    state = state_of(cache)
    for p, data in FILES.items():
        assert (dest / p).read_bytes() == data
        assert os.stat(dest / p).st_ino == os.stat(cache / p).st_ino  # hard link, not a copy
        assert state[p]["sha256"] == sha(data) and state[p]["size"] == len(data)
        assert state[p]["mtime_ns"] == os.stat(cache / p).st_mtime_ns
    assert not list(cache.rglob("*.part"))
    assert {r["status"] for r in server.log} == {200}


def test_rerun_makes_no_requests_and_reads_nothing(server, dirs, monkeypatch):
    cache, dest = dirs
    specs = publish(server.root, FILES)
    fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    n = len(server.log)
    assert n == len(FILES)

    def no_hash(*a, **k):
        raise AssertionError("verified file re-read")

    monkeypatch.setattr(fetch_module, "sha256_file", no_hash)
    # Snakemake removed the outputs of a failed job: the cache still relinks everything.
    for p in FILES:
        (dest / p).unlink()
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert len(server.log) == n
    assert with_status(report, "cached") == list(FILES) and with_status(report, "downloaded") == []
    for p, data in FILES.items():
        assert (dest / p).read_bytes() == data


def test_modified_cache_file_is_reverified(server, dirs):
    cache, dest = dirs
    specs = publish(server.root, {"b.bin": blob(5000, 3)})
    fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    (cache / "b.bin").write_bytes(b"tampered")  # also changes dest (same inode)
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert with_status(report, "downloaded") == ["b.bin"]
    assert (dest / "b.bin").read_bytes() == blob(5000, 3)


def test_interrupted_download_resumes_with_range(server, dirs):
    cache, dest = dirs
    data = blob(256_000, 4)
    specs = publish(server.root, {"big.mp4": data})
    server.drop_after["big.mp4"] = 100_000
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    reqs = server.requests_for("big.mp4")
    assert [r["status"] for r in reqs] == [200, 206]
    assert reqs[0]["range"] is None and reqs[1]["range"] == "bytes=100000-"
    assert reqs[1]["if_range"]  # the ETag from the first answer guards the resume
    assert sum(r["sent"] for r in reqs) < 2 * len(data)
    assert report.bytes_downloaded == len(data)
    assert report.files[0].resumed
    assert (dest / "big.mp4").read_bytes() == data


def test_partial_from_previous_run_is_resumed(server, dirs):
    cache, dest = dirs
    data = blob(200_000, 5)
    specs = publish(server.root, {"v/big.mp4": data})
    server.drop_after["v/big.mp4"] = 70_000
    with pytest.raises(DownloadError) as ei:
        fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **{**FAST, "retries": 0})
    assert "v/big.mp4" in str(ei.value) and f"{server.url}/v/big.mp4" in str(ei.value)
    kept = (cache / "v/big.mp4.part").stat().st_size
    assert kept == 70_000  # everything received before the drop was kept
    assert not (dest / "v/big.mp4").exists() and not (cache / "v/big.mp4").exists()

    fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    reqs = server.requests_for("v/big.mp4")
    assert reqs[-1]["range"] == f"bytes={kept}-" and reqs[-1]["status"] == 206
    assert sum(r["sent"] for r in reqs) < 2 * len(data)
    assert (dest / "v/big.mp4").read_bytes() == data


def test_server_ignoring_range_still_correct(server, dirs):
    cache, dest = dirs
    data = blob(150_000, 6)
    specs = publish(server.root, {"x.bin": data})
    server.ignore_range = True
    server.drop_after["x.bin"] = 60_000
    fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    reqs = server.requests_for("x.bin")
    assert len(reqs) == 2  # restarted from zero in place: no third, "repair" download needed
    assert reqs[1]["range"] == "bytes=60000-" and reqs[1]["status"] == 200  # ignored: full body again
    assert (dest / "x.bin").read_bytes() == data
    assert sha(data) == state_of(cache)["x.bin"]["sha256"]


def test_416_for_complete_and_for_oversized_partial(server, dirs):
    cache, dest = dirs
    a, b = blob(4000, 7), blob(3000, 8)
    publish(server.root, {"a.bin": a, "b.bin": b})
    specs = [FileSpec(path="a.bin"), FileSpec(path="b.bin", sha256=sha(b))]  # sizes unknown
    cache.mkdir()
    (cache / "a.bin.part").write_bytes(a)  # complete partial: server answers 416 */4000
    (cache / "b.bin.part").write_bytes(b + b"junk")  # longer than the remote: 416, restart
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert [r["status"] for r in server.requests_for("a.bin")] == [416]
    assert [r["status"] for r in server.requests_for("b.bin")] == [416, 200]
    assert (dest / "a.bin").read_bytes() == a and (dest / "b.bin").read_bytes() == b
    assert report.recorded == {"a.bin": sha(a)}


def test_503_then_success_retries(server, dirs):
    cache, dest = dirs
    specs = publish(server.root, {"flaky.bin": blob(2000, 9)})
    server.fail_first["flaky.bin"] = 2
    fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert [r["status"] for r in server.requests_for("flaky.bin")] == [503, 503, 200]
    assert (dest / "flaky.bin").read_bytes() == blob(2000, 9)


def test_503_forever_raises_download_error_naming_file_and_url(server, dirs):
    cache, dest = dirs
    specs = publish(server.root, {"down.bin": b"x" * 10, "ok.bin": b"fine"})
    server.fail_first["down.bin"] = 100
    with pytest.raises(DownloadError) as ei:
        fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **{**FAST, "retries": 2})
    msg = str(ei.value)
    assert "down.bin" in msg and f"{server.url}/down.bin" in msg and "503" in msg
    assert not isinstance(ei.value, ChecksumMismatchError)
    assert len(server.requests_for("down.bin")) == 3  # 1 + 2 retries
    assert (dest / "ok.bin").read_bytes() == b"fine"  # the other file still arrived


def test_404_raises_download_error(server, dirs):
    cache, dest = dirs
    with pytest.raises(DownloadError, match=r"nope\.bin.*HTTP 404"):
        fetch([FileSpec(path="nope.bin")], base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert len(server.requests_for("nope.bin")) == 1  # 404 is not retried


def test_checksum_mismatch_quarantines_and_keeps_the_rest(server, dirs):
    cache, dest = dirs
    good = publish(server.root, {"a.bin": blob(1000, 10), "c.bin": blob(1000, 11)})
    served = blob(1000, 12)
    (server.root / "bad.bin").write_bytes(served)
    wrong = sha(b"what the manifest expected")
    specs = [good[0], FileSpec(path="bad.bin", sha256=wrong), good[1]]
    dest.mkdir(parents=True)
    (dest / "bad.bin").write_bytes(b"stale copy from an older run")
    with pytest.raises(ChecksumMismatchError) as ei:
        fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    msg = str(ei.value)
    assert "bad.bin" in msg and wrong in msg and sha(served) in msg
    assert "a.bin" not in msg and "c.bin" not in msg
    assert (cache / ".quarantine" / "bad.bin").read_bytes() == served
    assert not (cache / "bad.bin").exists() and not (cache / "bad.bin.part").exists()
    assert not (dest / "bad.bin").exists()
    assert (dest / "a.bin").read_bytes() == blob(1000, 10) and (dest / "c.bin").read_bytes() == blob(1000, 11)
    assert [f.path for f in ei.value.report.files] == ["a.bin", "c.bin"]
    assert "bad.bin" not in state_of(cache)
    [mm] = ei.value.mismatches
    assert (mm.expected_sha256, mm.actual_sha256) == (wrong, sha(served))


def test_trust_on_first_use_records_hash_and_pins_it(server, dirs):
    cache, dest = dirs
    v1 = blob(3000, 13)
    (server.root / "tofu.bin").write_bytes(v1)
    specs = [FileSpec(path="tofu.bin", sha256=None)]
    report = fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)
    assert report.recorded == {"tofu.bin": sha(v1)}
    assert report.files[0].recorded and report.files[0].sha256 == sha(v1)
    assert state_of(cache)["tofu.bin"]["sha256"] == sha(v1)
    # Upstream changes and the cache is lost: the recorded hash is enforced.
    (server.root / "tofu.bin").write_bytes(blob(3000, 14))
    (cache / "tofu.bin").unlink()
    (dest / "tofu.bin").unlink()  # (a surviving dest copy with the pinned hash would be adopted)
    with pytest.raises(ChecksumMismatchError, match=sha(v1)):
        fetch(specs, base_url=server.url, cache_dir=cache, dest_dir=dest, **FAST)


def test_extract_archive_after_verification(server, dirs, tmp_path):
    cache, dest = dirs
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in {"ann/train.txt": b"a 1\n", "ann/test.txt": b"b 0\n"}.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    (server.root / "remote-name.tgz").write_bytes(buf.getvalue())
    manifest = {"dataset": "t", "version": 1, "files": [
        {"path": "annotations.tar.gz", "sha256": None, "url": f"{server.url}/remote-name.tgz", "extract": True}]}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    m = load_manifest(tmp_path / "m.json")
    report = fetch(m, cache_dir=cache, dest_dir=dest, **FAST)
    assert (dest / "annotations" / "ann" / "train.txt").read_bytes() == b"a 1\n"
    assert report.extracted == {"annotations.tar.gz": str(dest / "annotations")}
    assert (dest / "annotations.tar.gz").is_file()


# --------------------------------------------------------------------------- local sources, manifests


def test_file_url_and_plain_path_sources(tmp_path):
    src = tmp_path / "mirror"
    files = {"videos/a.mp4": blob(5000, 15), "b.txt": b"bee\n"}
    entries = []
    for p, data in files.items():
        (src / p).parent.mkdir(parents=True, exist_ok=True)
        (src / p).write_bytes(data)
        entries.append({"path": p, "sha256": sha(data), "size": len(data)})
    extra = tmp_path / "elsewhere" / "x.bin"
    extra.parent.mkdir()
    extra.write_bytes(b"xx")
    entries.append({"path": "x.bin", "sha256": sha(b"xx"), "url": extra.as_uri()})
    (src / "manifest.json").write_text(json.dumps({"dataset": "m", "files": entries}))

    for i, loc in enumerate([str(src / "manifest.json"), (src / "manifest.json").as_uri()]):
        m = load_manifest(loc)
        assert Path(m.base_url) == src.resolve()
        dest = tmp_path / f"dest{i}"
        report = fetch(m, cache_dir=tmp_path / f"cache{i}", dest_dir=dest, **FAST)
        assert with_status(report, "downloaded") == ["videos/a.mp4", "b.txt", "x.bin"]
        for p, data in {**files, "x.bin": b"xx"}.items():
            assert (dest / p).read_bytes() == data
    with pytest.raises(DownloadError, match=r"gone\.bin"):
        fetch([FileSpec(path="gone.bin")], base_url=src, cache_dir=tmp_path / "c", dest_dir=tmp_path / "d", **FAST)


def test_manifest_over_http_uses_its_parent_as_base(server, dirs):
    cache, dest = dirs
    (server.root / "ds").mkdir()
    (server.root / "ds" / "f.bin").write_bytes(b"abc")
    (server.root / "ds" / "manifest.json").write_text(json.dumps({"files": [{"path": "f.bin", "sha256": sha(b"abc")}]}))
    m = load_manifest(f"{server.url}/ds/manifest.json")
    assert m.base_url == f"{server.url}/ds"
    fetch(m, cache_dir=cache, dest_dir=dest, **FAST)
    assert (dest / "f.bin").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "bad, field, fragment",
    [
        ({"path": "../evil.mp4"}, "path", ".."),
        ({"path": "/etc/passwd"}, "path", "absolute"),
        ({"path": "a/../../b"}, "path", ".."),
        ({"path": "ok.bin", "sha256": "xyz"}, "sha256", "64 hex"),
    ],
)
def test_manifest_rejects_bad_entries_naming_index(tmp_path, bad, field, fragment):
    mpath = tmp_path / "bad-manifest.json"
    mpath.write_text(json.dumps({"files": [{"path": "fine.bin"}, bad]}))
    with pytest.raises(ManifestError) as ei:
        load_manifest(mpath)
    msg = str(ei.value)
    assert "bad-manifest.json" in msg and "entry 1" in msg and f"files[1].{field}" in msg and fragment in msg
    assert "entry 0" not in msg


def test_manifest_rejects_duplicates(tmp_path):
    mpath = tmp_path / "m.json"
    mpath.write_text(json.dumps({"files": [{"path": "a"}, {"path": "b"}, {"path": "a"}]}))
    with pytest.raises(ManifestError, match=r"entry 2: duplicate path 'a' \(also entry 0\)"):
        load_manifest(mpath)


# --------------------------------------------------------------------------- archives


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return path


def reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = target
    return ti, None


def assert_nothing_extracted(base: Path, target: Path):
    assert not target.exists()
    assert sorted(p.name for p in base.iterdir()) == ["evil.tar"]  # no temp dir left behind


@pytest.mark.parametrize(
    "members, offender",
    [
        ([reg("ok.txt"), reg("../evil")], "../evil"),
        ([reg("ok.txt"), reg("/tmp/abs-evil")], "/tmp/abs-evil"),
        ([reg("ok.txt"), link("etc", "/etc")], "etc"),
        ([reg("ok.txt"), link("up", "../../outside")], "up"),
        ([link("d", "sub"), reg("d/through-link")], "d/through-link"),
        ([reg("ok.txt"), link("hard", "../x", tarfile.LNKTYPE)], "hard"),
    ],
    ids=["dotdot", "absolute", "symlink-to-etc", "symlink-up", "write-through-symlink", "hardlink-up"],
)
def test_unsafe_tar_rejected_and_nothing_extracted(tmp_path, members, offender):
    base = tmp_path / "work"
    base.mkdir()
    archive = make_tar(base / "evil.tar", members)
    target = base / "out"
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract(archive, target)
    assert ei.value.member == offender
    assert str(archive) in str(ei.value) and repr(offender) in str(ei.value)
    assert_nothing_extracted(base, target)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_fifo_member_rejected(tmp_path):
    ti = tarfile.TarInfo("pipe")
    ti.type = tarfile.FIFOTYPE
    base = tmp_path / "work"
    base.mkdir()
    archive = make_tar(base / "evil.tar", [reg("ok.txt"), (ti, None)])
    with pytest.raises(UnsafeArchiveError, match="pipe"):
        safe_extract(archive, base / "out")
    assert_nothing_extracted(base, base / "out")


def test_zip_with_dotdot_rejected(tmp_path):
    base = tmp_path / "work"
    base.mkdir()
    archive = base / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("../evil.txt", b"pwned")
    with pytest.raises(UnsafeArchiveError) as ei:
        safe_extract(archive, base / "out")
    assert ei.value.member == "../evil.txt" and "evil.zip" in str(ei.value)
    assert not (base / "out").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in base.iterdir()) == ["evil.zip"]


def test_zip_symlink_escaping_rejected(tmp_path):
    archive = tmp_path / "l.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zi = zipfile.ZipInfo("link")
        zi.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(zi, "../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_valid_archives_extracted(tmp_path):
    tgz = make_tar(tmp_path / "good.tar.gz",
                   [reg("a/b.txt", b"bee"), reg("c.txt", b"sea"), link("a/link", "b.txt")], mode="w:gz")
    out = safe_extract(tgz, tmp_path / "good")
    assert (out / "a" / "b.txt").read_bytes() == b"bee" and (out / "c.txt").read_bytes() == b"sea"
    assert (out / "a" / "link").is_symlink() and (out / "a" / "link").read_bytes() == b"bee"
    # re-extraction replaces the old tree
    (out / "stray").write_text("old")
    safe_extract(tgz, out)
    assert not (out / "stray").exists()

    zpath = tmp_path / "good.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("d/e.txt", b"eee")
    safe_extract(zpath, tmp_path / "z")
    assert (tmp_path / "z" / "d" / "e.txt").read_bytes() == b"eee"


# --------------------------------------------------------------------------- link_local


def make_local(root: Path, files: dict[str, bytes]) -> None:
    for p, data in files.items():
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(data)


LOCAL = {"Anomaly-Videos/Abuse/Abuse001_x264.mp4": blob(4000, 20), "Normal/Normal_001.mp4": blob(3000, 21)}


def test_link_local_hardlinks_and_records_hashes(tmp_path, monkeypatch):
    src, dest, cache = tmp_path / "ucf", tmp_path / "dest", tmp_path / "cache"
    make_local(src, LOCAL)
    report = link_local(None, src_root=src, dest_dir=dest, cache_dir=cache, progress=False)
    assert sorted(f.path for f in report.files) == sorted(LOCAL)
    for p, data in LOCAL.items():
        assert os.stat(dest / p).st_ino == os.stat(src / p).st_ino and not (dest / p).is_symlink()
        assert report.recorded[p] == sha(data)
    assert {f.link for f in report.files} == {"hardlink"}

    monkeypatch.setattr(local_module, "sha256_file", lambda *a, **k: pytest.fail("unchanged file rehashed"))
    report2 = link_local(None, src_root=src, dest_dir=dest, cache_dir=cache, progress=False)
    assert {f.path: f.sha256 for f in report2.files} == {p: sha(d) for p, d in LOCAL.items()} and report2.recorded == {}


def test_link_local_symlinks_across_filesystems(tmp_path, monkeypatch):
    src, dest, cache = tmp_path / "ucf", tmp_path / "dest", tmp_path / "cache"
    make_local(src, LOCAL)

    def exdev(*a, **k):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", exdev)
    report = link_local(None, src_root=src, dest_dir=dest, cache_dir=cache, progress=False)
    for p in LOCAL:
        assert (dest / p).is_symlink() and os.path.samefile(dest / p, src / p)
    assert {f.link for f in report.files} == {"symlink"}


def test_link_local_missing_file_named_after_linking_others(tmp_path):
    src, dest, cache = tmp_path / "ucf", tmp_path / "dest", tmp_path / "cache"
    make_local(src, LOCAL)
    specs = [FileSpec(path=p, sha256=sha(d)) for p, d in LOCAL.items()]
    specs.insert(1, FileSpec(path="Anomaly-Videos/Arson/Arson999_x264.mp4"))
    with pytest.raises(MissingSourceError) as ei:
        link_local(specs, src_root=src, dest_dir=dest, cache_dir=cache, progress=False)
    assert "Anomaly-Videos/Arson/Arson999_x264.mp4" in str(ei.value)
    assert ei.value.missing == ["Anomaly-Videos/Arson/Arson999_x264.mp4"]
    for p in LOCAL:
        assert os.stat(dest / p).st_ino == os.stat(src / p).st_ino


def test_link_local_mismatch_is_not_linked_and_not_moved(tmp_path):
    src, dest, cache = tmp_path / "ucf", tmp_path / "dest", tmp_path / "cache"
    make_local(src, LOCAL)
    p_bad, p_ok = list(LOCAL)
    specs = [FileSpec(path=p_bad, sha256=sha(b"other")), FileSpec(path=p_ok, sha256=sha(LOCAL[p_ok]))]
    with pytest.raises(ChecksumMismatchError) as ei:
        link_local(specs, src_root=src, dest_dir=dest, cache_dir=cache, progress=False)
    assert p_bad in str(ei.value) and sha(LOCAL[p_bad]) in str(ei.value)
    assert (src / p_bad).read_bytes() == LOCAL[p_bad]  # the user's file stays where it is
    assert not (dest / p_bad).exists() and (dest / p_ok).exists()
