"""Dataset download for the pipeline's ``download`` stage.

A dataset source is described by a JSON *manifest*::

    {"dataset": "vagta-synth", "version": "1",
     "files": [{"path": "videos/train/Fighting/Fighting001_x264.mp4", "sha256": "<hex>", "size": 12345},
               {"path": "annotations.tar.gz", "sha256": null, "url": "https://host/x.tar.gz", "extract": true}]}

:func:`fetch` brings every listed file into ``dest_dir`` (the stage output, ``data/raw/``).
Snakemake deletes a failed job's outputs, so nothing partial ever lives there: files are
downloaded into ``cache_dir`` (outside the outputs), written to ``cache_dir/<path>.part``,
verified, renamed to ``cache_dir/<path>`` and only then hard-linked (fallback: copied)
into ``dest_dir``.  ``cache_dir/.verified.json`` records ``path -> sha256, size,
mtime_ns`` of every verified cache file, so a rerun links what is already verified
without reading it again and without any network request.

:func:`link_local` does the same for a dataset the user already holds on disk (UCF-Crime
usually is): files are hard-linked (symlinked across filesystems), never copied, and
hashed once (the same state file remembers the hashes).

:func:`safe_extract` unpacks ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archives, refusing
members that would land outside the target; nothing of a refused archive is extracted.

Why not just pooch (pooch 1.9 is a dependency anyway)?  ``pooch.retrieve`` streams every
download from byte zero into a fresh temporary file (no ``Range`` resume of a partial
file, so a dropped 2 GB transfer starts over), deletes a file whose hash does not match
and raises on the first one (no quarantine, the remaining files are never attempted),
and re-hashes every already present file on each call (no state file).  Its retries
(``retry_if_failed``) restart whole downloads.  Those are the three properties this stage
needs, so the transfer is done here with ``requests`` + ``urllib3.util.Retry`` directly.

Retries come in two layers:

* ``urllib3.util.Retry`` mounted on the ``requests.Session`` retries connection errors,
  read timeouts before the response headers, and 429/500/502/503/504 answers with
  exponential backoff (``backoff * 2**(n-1)``).
* A loop here handles a body that drops mid-transfer (urllib3 cannot retry once the
  body is being streamed): it resumes with ``Range: bytes=N-`` (plus ``If-Range`` when the
  server gave an ETag or Last-Modified), restarts from zero when the server ignores the
  range (answers 200) or answers 416 for a partial that is not complete, and gives up
  after ``retries`` consecutive attempts that made no progress.

Trust on first use: a file without ``sha256`` in the manifest is hashed when first
fetched and the hash is recorded in the state file (and ``FetchReport.recorded``); later
downloads of the same path are then checked against that recorded hash.  To accept a
changed upstream file, delete its entry from ``.verified.json``.

Concurrency: a ``cache_dir/.lock`` (``fcntl.flock``) serialises processes sharing a cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

import requests
import urllib3
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from alertclip.io import sha256_file, write_json

try:  # POSIX only; without it concurrent runs on one cache are not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ARCHIVE_SUFFIXES",
    "ChecksumMismatchError",
    "DownloadError",
    "FetchReport",
    "FileResult",
    "FileSpec",
    "Manifest",
    "ManifestError",
    "Mismatch",
    "MissingSourceError",
    "UnsafeArchiveError",
    "download_manifest",
    "fetch",
    "link_local",
    "load_manifest",
    "resolve_url",
    "safe_extract",
]

STATE_NAME = ".verified.json"
QUARANTINE_DIR = ".quarantine"
LOCK_NAME = ".lock"
_RESERVED_TOP = {STATE_NAME, QUARANTINE_DIR, LOCK_NAME}
_PART = ".part"
_PART_META = ".part.meta.json"
CHUNK = 1 << 16
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_BACKOFF = 60.0

# longest first: ".tar.gz" must win over ".gz"-less ".tar" checks
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


# --------------------------------------------------------------------------- errors


class ManifestError(ValueError):
    """A manifest that cannot be read or does not validate."""


class DownloadError(RuntimeError):
    """A file could not be fetched (after retries) or placed; names file(s) and URL(s).

    ``report`` (when set) is the :class:`FetchReport` of the whole call: every file that
    did verify is already in ``dest_dir``.
    """

    def __init__(self, message: str, *, report: "FetchReport | None" = None):
        super().__init__(message)
        self.report = report


class ChecksumMismatchError(DownloadError):
    """One or more files did not match their sha256 (or size); see ``mismatches``."""

    def __init__(self, message: str, *, mismatches: Sequence["Mismatch"], report: "FetchReport | None" = None):
        super().__init__(message, report=report)
        self.mismatches = list(mismatches)


class MissingSourceError(DownloadError):
    """Files listed for :func:`link_local` are absent under ``src_root``; see ``missing``."""

    def __init__(self, message: str, *, missing: Sequence[str], report: "FetchReport | None" = None):
        super().__init__(message, report=report)
        self.missing = list(missing)


class UnsafeArchiveError(ValueError):
    """An archive member would escape the extraction target (or is a device/odd file)."""

    def __init__(self, archive: str | os.PathLike, member: str, reason: str):
        self.archive = str(archive)
        self.member = member
        self.reason = reason
        super().__init__(f"unsafe archive {self.archive}: member {member!r}: {reason}; nothing was extracted")


class _FileFailure(Exception):
    """Internal: a per-file failure, collected and reported at the end."""


# --------------------------------------------------------------------------- manifest


def _check_rel_path(value: str, what: str = "path") -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte: {value!r}")
    if "\\" in value:
        raise ValueError(f"{what} must use '/' separators, got {value!r}")
    if value.startswith("/") or _DRIVE_RE.match(value):
        raise ValueError(f"{what} must be relative, got absolute {value!r}")
    parts = value.split("/")
    if ".." in parts:
        raise ValueError(f"{what} must not contain '..', got {value!r}")
    if any(p in ("", ".") for p in parts):
        raise ValueError(f"{what} must be normalised (no empty or '.' components), got {value!r}")
    return value


def archive_suffix(path: str) -> str | None:
    """The archive suffix of ``path`` (``.tar.gz``, ``.zip``, ...) or ``None``."""
    low = path.lower()
    for suf in ARCHIVE_SUFFIXES:
        if low.endswith(suf) and len(path) > len(suf):
            return path[-len(suf):]
    return None


def strip_archive_suffix(path: str) -> str:
    suf = archive_suffix(path)
    return path[: -len(suf)] if suf else path


class FileSpec(BaseModel):
    """One manifest entry."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: str
    sha256: str | None = None
    size: int | None = None
    url: str | None = None
    extract: bool = False

    @field_validator("path")
    @classmethod
    def _v_path(cls, v: str) -> str:
        return _check_rel_path(v)

    @field_validator("sha256")
    @classmethod
    def _v_sha(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if v.lower().startswith("sha256:"):
            v = v[len("sha256:"):]
        if not _SHA256_RE.match(v):
            raise ValueError(f"sha256 must be 64 hex digits or null, got {v!r}")
        return v.lower()

    @field_validator("size")
    @classmethod
    def _v_size(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError(f"size must be >= 0, got {v}")
        return v

    @field_validator("url")
    @classmethod
    def _v_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v:
            raise ValueError("url must not be empty (omit it to use base_url + '/' + path)")
        scheme = urlsplit(v).scheme.lower()
        if scheme and not _DRIVE_RE.match(v) and scheme not in ("http", "https", "file"):
            raise ValueError(f"url scheme {scheme!r} is not supported (http, https, file or a local path)")
        return v

    @field_validator("extract")
    @classmethod
    def _v_extract(cls, v: bool, info: ValidationInfo) -> bool:
        path = info.data.get("path")
        if v and isinstance(path, str) and archive_suffix(path) is None:
            raise ValueError(f"extract is true but path {path!r} has no archive suffix {ARCHIVE_SUFFIXES}")
        return v


def _check_cache_names(files: Sequence[FileSpec]) -> None:
    """Paths that would collide with the cache's own files (state, quarantine, partials)."""
    paths = {f.path for f in files}
    for i, f in enumerate(files):
        if f.path.split("/", 1)[0] in _RESERVED_TOP:
            raise ManifestError(f"entry {i}: path {f.path!r} collides with a reserved cache name {sorted(_RESERVED_TOP)}")
        for suf in (_PART, _PART_META):
            if f.path.endswith(suf) and f.path[: -len(suf)] in paths:
                raise ManifestError(f"entry {i}: path {f.path!r} collides with the partial download of {f.path[: -len(suf)]!r}")


def _check_layout(files: Sequence[FileSpec]) -> None:
    """Reject duplicate paths and file/directory clashes (``a`` and ``a/b``)."""
    seen: dict[str, int] = {}
    for i, f in enumerate(files):
        if f.path in seen:
            raise ValueError(f"entry {i}: duplicate path {f.path!r} (also entry {seen[f.path]})")
        seen[f.path] = i
    for i, f in enumerate(files):
        parts = f.path.split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            if parent in seen:
                raise ValueError(f"entry {i}: path {f.path!r} lies under file {parent!r} (entry {seen[parent]})")


class Manifest(BaseModel):
    """A validated manifest; ``source``/``base_url`` are filled in by :func:`load_manifest`."""

    model_config = ConfigDict(extra="ignore")

    dataset: str | None = None
    version: str | None = None
    files: list[FileSpec]
    source: str | None = None
    base_url: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _v_version(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _v_layout(self) -> "Manifest":
        _check_layout(self.files)
        return self


def _format_validation_error(source: str, err: ValidationError, data: Any) -> str:
    lines = []
    for e in err.errors():
        loc = list(e.get("loc", ()))
        msg = e.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if len(loc) >= 2 and loc[0] == "files" and isinstance(loc[1], int):
            idx = loc[1]
            fld = ".".join(str(x) for x in loc[2:]) or "<entry>"
            entry_path = ""
            try:
                p = data["files"][idx].get("path")
                if fld != "path" and isinstance(p, str):
                    entry_path = f" (path {p!r})"
            except Exception:
                pass
            lines.append(f"entry {idx}{entry_path}, field {fld!r} (files[{idx}].{fld}): {msg}")
        elif loc:
            lines.append(f"field {'.'.join(str(x) for x in loc)!r}: {msg}")
        else:
            lines.append(msg)
    return f"invalid manifest {source}:\n  " + "\n  ".join(lines)


def _is_url(s: str) -> bool:
    return urlsplit(s).scheme.lower() in ("http", "https", "file") and not _DRIVE_RE.match(s)


def _file_url_to_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URL with a remote host is not supported: {url}")
    return Path(url2pathname(parts.path))


def _parent_location(loc: str) -> str:
    """``base_url`` of a manifest: the directory (URL or local path) holding it."""
    scheme = urlsplit(loc).scheme.lower()
    if scheme in ("http", "https") and not _DRIVE_RE.match(loc):
        parts = urlsplit(loc)
        parent = parts.path.rsplit("/", 1)[0]
        return f"{parts.scheme}://{parts.netloc}{parent}"
    if scheme == "file":
        return str(_file_url_to_path(loc).resolve().parent)
    return str(Path(loc).resolve().parent)


def manifest_from_data(data: Any, *, source: str = "<data>", base_url: str | None = None) -> Manifest:
    """Validate already parsed manifest JSON; errors name the entry index and field."""
    try:
        m = Manifest.model_validate(data)
    except ValidationError as err:
        raise ManifestError(_format_validation_error(source, err, data)) from None
    return m.model_copy(update={"source": source, "base_url": base_url})


def load_manifest(path_or_url: str | os.PathLike, *, timeout: float = 30.0, retries: int = 5) -> Manifest:
    """Read and validate a manifest from a local path, ``file://`` or ``http(s)://`` URL.

    The returned manifest's ``base_url`` is the manifest's own parent location, used for
    entries without ``url``.  Raises :class:`ManifestError` naming the manifest, and for
    entry problems the entry index and field.
    """
    loc = os.fspath(path_or_url)
    scheme = urlsplit(loc).scheme.lower()
    try:
        if scheme in ("http", "https") and not _DRIVE_RE.match(loc):
            with _make_session(retries, 0.5) as s:
                resp = s.get(loc, timeout=(timeout, timeout))
                if resp.status_code != 200:
                    raise ManifestError(f"cannot fetch manifest {loc}: HTTP {resp.status_code}")
                text = resp.content.decode("utf-8-sig")
        else:
            path = _file_url_to_path(loc) if scheme == "file" and not _DRIVE_RE.match(loc) else Path(loc)
            text = path.read_text(encoding="utf-8-sig")
    except ManifestError:
        raise
    except (OSError, ValueError, requests.RequestException) as exc:
        raise ManifestError(f"cannot read manifest {loc}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest {loc} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {loc}: top level must be an object with a 'files' list")
    return manifest_from_data(data, source=loc, base_url=_parent_location(loc))


def resolve_url(spec: FileSpec, base_url: str | os.PathLike | None) -> str:
    """Where ``spec`` is fetched from: its ``url``, else ``base_url + "/" + path``."""
    if spec.url is not None and (_is_url(spec.url) or os.path.isabs(spec.url)):
        return spec.url
    rel = spec.url if spec.url is not None else spec.path
    if base_url is None:
        raise ValueError(f"file {spec.path!r} has no url and no base_url was given")
    base = os.fspath(base_url)
    if _is_url(base):
        return base.rstrip("/") + "/" + quote(rel, safe="/:@!$&'()*+,;=~-._")
    return str(Path(base) / rel)


# --------------------------------------------------------------------------- report


@dataclass
class FileResult:
    path: str
    sha256: str
    size: int
    source: str  # URL or local source path
    status: Literal["downloaded", "cached", "adopted", "linked"]
    link: Literal["hardlink", "symlink", "copy"]
    dest: str
    recorded: bool = False  # hash recorded on first use (manifest had no sha256)
    resumed: bool = False  # the download continued a partial file with a Range request


@dataclass
class Mismatch:
    path: str
    source: str
    expected_sha256: str | None
    actual_sha256: str
    expected_size: int | None = None
    actual_size: int | None = None
    quarantined: str | None = None  # where the bad file went (None for link_local sources)

    def describe(self) -> str:
        expected = self.expected_sha256 or "(not given)"
        s = f"{self.path} (from {self.source}): expected sha256 {expected}, actual sha256 {self.actual_sha256}"
        if self.expected_size is not None and self.expected_size != self.actual_size:
            s += f"; expected size {self.expected_size}, actual size {self.actual_size}"
        if self.quarantined:
            s += f"; moved to {self.quarantined}"
        return s


@dataclass
class Failure:
    path: str
    source: str
    error: str


@dataclass
class FetchReport:
    """What :func:`fetch` / :func:`link_local` did.  ``to_dict()`` is JSON-ready."""

    dest_dir: str
    cache_dir: str
    files: list[FileResult] = field(default_factory=list)  # every verified file, in manifest order
    recorded: dict[str, str] = field(default_factory=dict)  # path -> sha256 recorded on first use
    extracted: dict[str, str] = field(default_factory=dict)  # archive path -> extraction directory
    mismatches: list[Mismatch] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # link_local: listed but absent
    bytes_downloaded: int = 0  # body bytes received over the network / copied from file sources

    @property
    def downloaded(self) -> list[str]:
        return [f.path for f in self.files if f.status == "downloaded"]

    @property
    def skipped(self) -> list[str]:
        """Files already verified by a previous run (no network, no re-read)."""
        return [f.path for f in self.files if f.status == "cached"]

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.failures or self.missing)

    @property
    def hashes(self) -> dict[str, str]:
        return {f.path: f.sha256 for f in self.files}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["downloaded"] = self.downloaded
        d["skipped"] = self.skipped
        return d

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())


def _raise_problems(report: FetchReport, what: str) -> None:
    if report.ok:
        return
    lines: list[str] = []
    if report.failures:
        lines += [f"  {f.path} ({f.source}): {f.error}" for f in report.failures]
    if report.missing:
        lines += [f"  {p}: missing" for p in report.missing]
    if report.mismatches:
        lines += [f"  {m.describe()}" for m in report.mismatches]
    n_ok = len(report.files)
    tail = f"\n({n_ok} verified file(s) are in place in {report.dest_dir})"
    if report.failures or (report.missing and report.mismatches):
        n = len(report.failures) + len(report.missing) + len(report.mismatches)
        raise DownloadError(f"{what}: {n} file(s) failed:\n" + "\n".join(lines) + tail, report=report)
    if report.missing:
        raise MissingSourceError(
            f"{what}: {len(report.missing)} listed file(s) missing under the source root:\n" + "\n".join(lines) + tail,
            missing=report.missing,
            report=report,
        )
    raise ChecksumMismatchError(
        f"{what}: checksum mismatch for {len(report.mismatches)} file(s):\n" + "\n".join(lines) + tail,
        mismatches=report.mismatches,
        report=report,
    )


# --------------------------------------------------------------------------- state


class _State:
    """``cache_dir/.verified.json``: key -> {sha256, size, mtime_ns[, extracted]}."""

    FLUSH_EVERY = 2.0

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / STATE_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            files = data.get("files", {}) if isinstance(data, dict) else {}
            if isinstance(files, dict):
                self.entries = {k: v for k, v in files.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:  # corrupt state: re-verify everything
            print(f"warning: ignoring unreadable {self.path}: {exc}", file=sys.stderr)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def matches(self, key: str, st: os.stat_result, sha256: str | None) -> bool:
        """True when ``key`` was verified and the file is unchanged (size, mtime_ns)."""
        e = self.entries.get(key)
        if not e:
            return False
        if e.get("size") != st.st_size or e.get("mtime_ns") != st.st_mtime_ns:
            return False
        return sha256 is None or e.get("sha256") == sha256

    def record(self, key: str, sha256: str, st: os.stat_result, **extra: Any) -> None:
        self.entries[key] = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}
        self._dirty = True
        self.flush()

    def update(self, key: str, **extra: Any) -> None:
        if key in self.entries:
            self.entries[key].update(extra)
            self._dirty = True
            self.flush()

    def drop(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._dirty = True
            self.flush()

    def flush(self, force: bool = False) -> None:
        if not self._dirty:
            return
        if not force and time.monotonic() - self._last_flush < self.FLUSH_EVERY:
            return
        write_json(self.path, {"version": 1, "files": self.entries})
        self._dirty = False
        self._last_flush = time.monotonic()


@contextlib.contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(cache_dir / LOCK_NAME, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- placing files


def _unlink(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        p.unlink()


def _place(src: Path, dest: Path, *, fallback: Literal["copy", "symlink"]) -> Literal["hardlink", "symlink", "copy"]:
    """Make ``dest`` the same file as ``src``: hard link, else ``fallback``; atomic replace."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        if fallback == "symlink" and os.path.exists(dest) and os.path.samefile(dest, src):
            return "symlink"
    elif dest.exists():
        if os.path.samefile(dest, src):
            return "hardlink"
        if fallback == "copy":
            s, d = src.stat(), dest.stat()
            if s.st_size == d.st_size and s.st_mtime_ns == d.st_mtime_ns:
                return "copy"
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            os.link(src, tmp)
            how: Literal["hardlink", "symlink", "copy"] = "hardlink"
        except OSError:
            if fallback == "symlink":
                os.symlink(os.path.abspath(src), tmp)
                how = "symlink"
            else:
                shutil.copy2(src, tmp)
                how = "copy"
        if dest.is_dir() and not dest.is_symlink():
            raise IsADirectoryError(f"{dest} is a directory; cannot place file {src} there")
        os.replace(tmp, dest)
    finally:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
    return how


def _remove_stale_dest(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()


def _maybe_extract(spec: FileSpec, archive: Path, sha: str, dest_dir: Path, key: str, state: _State,
                   report: FetchReport) -> None:
    if not spec.extract:
        return
    target = dest_dir / strip_archive_suffix(spec.path)
    entry = state.get(key) or {}
    if not (entry.get("extracted_to") == str(target.absolute()) and entry.get("sha256") == sha and target.is_dir()):
        safe_extract(archive, target)
        state.update(key, extracted_to=str(target.absolute()))
    report.extracted[spec.path] = str(target)


# --------------------------------------------------------------------------- HTTP


def _make_session(retries: int, backoff: float) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=retries,
        backoff_factor=backoff,
        backoff_max=MAX_BACKOFF,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,  # hand back the last 5xx so the error names the status
        respect_retry_after_header=True,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = "alertclip-download/1"
    return s


_BODY_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.HTTPError,
    ConnectionError,  # builtin: reset/aborted sockets surfacing raw
    TimeoutError,
)

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.I)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from ``Content-Range``; ``None`` where absent or ``*``."""
    if not value:
        return None, None
    m = _CONTENT_RANGE_RE.match(value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, total


class _Progress:
    """Thin wrapper over one tqdm bar for all files (bytes)."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=desc, disable=not enabled, leave=True, dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        if n > 0:
            self.bar.total = (self.bar.total or 0) + n
            self.bar.refresh()

    def update(self, n: int) -> None:
        if n:
            self.bar.update(n)

    def file(self, path: str) -> None:
        self.bar.set_postfix_str(path if len(path) < 48 else "..." + path[-45:], refresh=False)

    def close(self) -> None:
        self.bar.close()


@dataclass
class _Transfer:
    bytes: int = 0
    resumed: bool = False  # the final file was assembled from more than one response / a leftover .part


def _read_meta(p: Path) -> dict[str, Any]:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _download_http(session: requests.Session, url: str, part: Path, *, expected_size: int | None,
                   size_in_bar: bool, retries: int, backoff: float, timeout: float,
                   progress: _Progress) -> _Transfer:
    """Stream ``url`` into ``part`` (resuming it), with the body-level retry loop."""
    meta_path = part.with_name(part.name[: -len(_PART)] + _PART_META)
    meta = _read_meta(meta_path)
    xfer = _Transfer()
    failures = 0  # consecutive attempts that made no progress
    restarts_416 = 0
    size_known = size_in_bar
    if part.exists():  # a partial from an earlier run counts as done on the bar
        progress.update(part.stat().st_size)
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if offset and meta.get("url") not in (None, url):  # partial of another URL
            _unlink(part)
            progress.update(-offset)
            offset = 0
        if expected_size is not None and offset > expected_size:
            _unlink(part)
            progress.update(-offset)
            offset = 0
        if expected_size is not None and offset == expected_size and offset > 0:
            xfer.resumed = True
            return xfer  # complete already; verification decides
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = meta.get("etag") if meta.get("etag") and not str(meta["etag"]).startswith("W/") else meta.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        try:
            resp = session.get(url, headers=headers, stream=True, timeout=(timeout, timeout))
        except requests.RequestException as exc:  # urllib3 Retry already spent its budget
            raise _FileFailure(f"request failed after {retries} retries: {exc}") from exc
        with resp:
            code = resp.status_code
            if code == 416:
                _, total = _parse_content_range(resp.headers.get("Content-Range"))
                if offset and total == offset:
                    xfer.resumed = True
                    return xfer  # the partial file is complete
                restarts_416 += 1
                if not offset or restarts_416 > 1:
                    raise _FileFailure(f"HTTP 416 Range Not Satisfiable (Range: {headers.get('Range')})")
                _unlink(part)  # the partial does not fit the remote file: start over
                progress.update(-offset)
                continue
            if code == 206 and offset:
                start, _ = _parse_content_range(resp.headers.get("Content-Range"))
                if start != offset:  # a different range than asked: discard, start over
                    _unlink(part)
                    progress.update(-offset)
                    failures += 1
                    if failures > retries:
                        raise _FileFailure(f"server answered range {resp.headers.get('Content-Range')!r} for {headers['Range']!r}")
                    continue
                mode = "ab"
                xfer.resumed = True
            elif code == 200:
                if offset:  # server ignored Range (or If-Range did not match): start from zero
                    progress.update(-offset)
                    offset = 0
                mode = "wb"
                meta = {"url": url, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
                write_json(meta_path, meta)
            else:
                reason = f"HTTP {code} {resp.reason or ''}".strip()
                if code in RETRY_STATUSES:
                    reason += f" after {retries} retries"
                raise _FileFailure(reason)
            if not size_known:
                cl = resp.headers.get("Content-Length")
                if cl and cl.isdigit():
                    progress.add_total(offset + int(cl))
                    size_known = True
            length = resp.headers.get("Content-Length")
            body_len = int(length) if length and length.isdigit() else None
            part.parent.mkdir(parents=True, exist_ok=True)
            got = 0
            try:
                with open(part, mode) as fh:
                    # Raw bytes, undecoded: the file as served (a .tar.gz sent with
                    # Content-Encoding: gzip stays a .tar.gz), and Range offsets stay
                    # byte-exact.  read1 hands over what arrived, so a dropped
                    # connection loses nothing already received.
                    while chunk := resp.raw.read1(CHUNK, decode_content=False):
                        fh.write(chunk)
                        got += len(chunk)
                        xfer.bytes += len(chunk)
                        progress.update(len(chunk))
                if body_len is not None and got != body_len:
                    raise urllib3.exceptions.ProtocolError(f"body ended after {got} of {body_len} bytes")
            except _BODY_ERRORS as exc:
                now = part.stat().st_size if part.exists() else 0
                failures = 1 if now > offset else failures + 1
                if failures > retries:
                    raise _FileFailure(f"transfer interrupted ({failures} consecutive attempt(s) without progress, "
                                      f"{retries} retries allowed): {exc}") from exc
                time.sleep(min(backoff * 2 ** (failures - 1), MAX_BACKOFF))
                xfer.resumed = True
                continue
        return xfer


def _copy_local(src: Path, part: Path, progress: _Progress, size_in_bar: bool) -> _Transfer:
    if not src.is_file():
        raise _FileFailure("source file not found" if not src.exists() else "source is not a regular file")
    if not size_in_bar:
        progress.add_total(src.stat().st_size)
    part.parent.mkdir(parents=True, exist_ok=True)
    xfer = _Transfer()
    with open(src, "rb") as fi, open(part, "wb") as fo:
        for block in iter(lambda: fi.read(1 << 20), b""):
            fo.write(block)
            xfer.bytes += len(block)
            progress.update(len(block))
    return xfer


# --------------------------------------------------------------------------- fetch


def _coerce_files(files: Any) -> tuple[list[FileSpec], str | None]:
    base = None
    if isinstance(files, Manifest):
        base = files.base_url
        files = files.files
    specs = [f if isinstance(f, FileSpec) else FileSpec.model_validate(f) for f in files]
    _check_layout(specs)
    return specs, base


def fetch(
    files: Manifest | Iterable[FileSpec | dict],
    *,
    base_url: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike,
    dest_dir: str | os.PathLike,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: bool = True,
) -> FetchReport:
    """Fetch, verify and link every file into ``dest_dir``; see the module docstring.

    ``files`` is a :class:`Manifest` (whose ``base_url`` is used when ``base_url`` is
    None) or FileSpecs/dicts.  Sources: ``http(s)://`` and ``file://`` URLs and local
    paths.  All files are attempted; afterwards :class:`ChecksumMismatchError` is raised
    if some files did not verify (they are in ``cache_dir/.quarantine/``), or
    :class:`DownloadError` if some could not be fetched at all.  Either way every
    verified file is already linked into ``dest_dir`` and the exception's ``report``
    tells what happened.
    """
    specs, manifest_base = _coerce_files(files)
    _check_cache_names(specs)
    base = os.fspath(base_url) if base_url is not None else manifest_base
    cache = Path(cache_dir)
    dest = Path(dest_dir)
    report = FetchReport(dest_dir=str(dest), cache_dir=str(cache))
    dest.mkdir(parents=True, exist_ok=True)
    with _cache_lock(cache):
        state = _State(cache)
        # Pre-pass: which files are verified already (stat only), so the bar counts only real work.
        pending_bytes = 0
        quick: set[str] = set()
        for spec in specs:
            cp = cache / spec.path
            with contextlib.suppress(OSError):
                st = cp.stat()
                if _cache_entry_ok(state, spec, st):
                    quick.add(spec.path)
                    continue
            pending_bytes += spec.size or 0
        enabled = progress and sys.stderr.isatty() and len(quick) < len(specs)
        bar = _Progress(pending_bytes, enabled, desc="download")
        session = _make_session(retries, backoff)
        try:
            for spec in specs:
                try:
                    url = resolve_url(spec, base)
                except ValueError as exc:
                    report.failures.append(Failure(spec.path, "<no url>", str(exc)))
                    continue
                bar.file(spec.path)
                try:
                    _fetch_one(spec, url, cache=cache, dest=dest, state=state, session=session, bar=bar,
                               report=report, retries=retries, backoff=backoff, timeout=timeout,
                               quick=spec.path in quick)
                except (_FileFailure, OSError, UnsafeArchiveError, tarfile.TarError, zipfile.BadZipFile) as exc:
                    msg = str(exc) if isinstance(exc, (_FileFailure, UnsafeArchiveError)) else f"{type(exc).__name__}: {exc}"
                    report.failures.append(Failure(spec.path, url, msg))
        finally:
            session.close()
            bar.close()
            state.flush(force=True)
    _raise_problems(report, "download")
    return report


def _cache_entry_ok(state: _State, spec: FileSpec, st: os.stat_result) -> bool:
    if not stat.S_ISREG(st.st_mode):
        return False
    if spec.size is not None and spec.size != st.st_size:
        return False
    return state.matches(spec.path, st, spec.sha256)


def _fetch_one(spec: FileSpec, url: str, *, cache: Path, dest: Path, state: _State, session: requests.Session,
               bar: _Progress, report: FetchReport, retries: int, backoff: float, timeout: float,
               quick: bool) -> None:
    key = spec.path
    final = cache / spec.path
    target = dest / spec.path
    entry = state.get(key)
    # Pin: manifest hash, else the hash recorded on first use.
    expected = spec.sha256 or (entry or {}).get("sha256")

    def done(status: str, sha: str, st: os.stat_result, recorded: bool = False, resumed: bool = False) -> None:
        how = _place(final, target, fallback="copy")
        report.files.append(FileResult(spec.path, sha, st.st_size, url, status, how, str(target), recorded, resumed))  # type: ignore[arg-type]
        if recorded:
            report.recorded[spec.path] = sha
        _maybe_extract(spec, final, sha, dest, key, state, report)

    # 1. verified before and unchanged: no read, no request
    if quick or (final.is_file() and _cache_entry_ok(state, spec, final.stat())):
        st = final.stat()
        done("cached", state.get(key)["sha256"], st)  # type: ignore[index]
        return
    # 2. in the cache but not (or no longer) matching the state: re-verify by hashing
    if final.is_file():
        st = final.stat()
        sha = sha256_file(final)
        if (expected is None or sha == expected) and (spec.size is None or spec.size == st.st_size):
            state.record(key, sha, st)
            done("cached", sha, st, recorded=expected is None)
            return
        _unlink(final)
        state.drop(key)
    # 3. dest_dir already holds a good copy (e.g. restored by `dvc checkout`): adopt it
    if expected is not None and target.is_file() and not target.is_symlink():
        st = target.stat()
        if (spec.size is None or spec.size == st.st_size) and sha256_file(target) == expected:
            final.parent.mkdir(parents=True, exist_ok=True)
            _place(target, final, fallback="copy")
            st = final.stat()
            state.record(key, expected, st)
            done("adopted", expected, st)
            return
    # 4. download into .part, verify, rename
    part = final.with_name(final.name + _PART)
    meta_path = final.with_name(final.name + _PART_META)
    part.parent.mkdir(parents=True, exist_ok=True)
    local = bool(_DRIVE_RE.match(url)) or urlsplit(url).scheme.lower() not in ("http", "https")
    for attempt in (0, 1):
        if local:
            src = _file_url_to_path(url) if urlsplit(url).scheme.lower() == "file" and not _DRIVE_RE.match(url) else Path(url)
            xfer = _copy_local(src, part, bar, size_in_bar=spec.size is not None and attempt == 0)
        else:
            xfer = _download_http(session, url, part, expected_size=spec.size,
                                  size_in_bar=spec.size is not None and attempt == 0, retries=retries,
                                  backoff=backoff, timeout=timeout, progress=bar)
        report.bytes_downloaded += xfer.bytes
        st = part.stat()
        sha = sha256_file(part)
        size_ok = spec.size is None or spec.size == st.st_size
        if (expected is None or sha == expected) and size_ok:
            os.replace(part, final)
            _unlink(meta_path)
            st = final.stat()
            state.record(key, sha, st)
            done("downloaded", sha, st, recorded=expected is None, resumed=xfer.resumed)
            return
        if xfer.resumed and attempt == 0:
            # Stitched from several responses (or an old .part): the remote may have
            # changed in between.  Try once more from zero before calling it bad.
            bar.update(-st.st_size)
            _unlink(part)
            _unlink(meta_path)
            continue
        break
    qpath = cache / QUARANTINE_DIR / spec.path
    qpath.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, qpath)
    _unlink(meta_path)
    _remove_stale_dest(target)  # never leave an old, unverified copy under dest_dir
    report.mismatches.append(Mismatch(spec.path, url, expected, sha, spec.size, st.st_size, str(qpath)))


# --------------------------------------------------------------------------- local datasets


def _walk_files(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked files yes, symlinked dirs no (cycles)
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_file():
                out.append(p.relative_to(root).as_posix())
    return out


def link_local(
    files: Manifest | Iterable[FileSpec | dict] | None,
    *,
    src_root: str | os.PathLike,
    dest_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    progress: bool = True,
) -> FetchReport:
    """Link a dataset already on disk into ``dest_dir`` without copying it.

    Every file (all regular files under ``src_root`` when ``files`` is None) is hard-linked
    into ``dest_dir`` (symlinked when ``src_root`` is on another filesystem) and verified:
    against ``sha256`` when given, else its hash is recorded.  Hashes are remembered in
    ``cache_dir/.verified.json`` (keyed by the absolute source path), so a rerun does
    not rehash unchanged files.  User files are never moved: a mismatching file is only
    left out of ``dest_dir``.  After linking everything else, raises
    :class:`MissingSourceError` naming absent files, :class:`ChecksumMismatchError` for
    mismatches (:class:`DownloadError` for both at once).
    """
    root = Path(src_root)
    if not root.is_dir():
        raise MissingSourceError(f"link_local: source root {root} is not a directory", missing=[str(root)])
    if files is None:
        specs = [FileSpec(path=p) for p in _walk_files(root)]
    else:
        specs, _ = _coerce_files(files)
    cache = Path(cache_dir)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    report = FetchReport(dest_dir=str(dest), cache_dir=str(cache))
    with _cache_lock(cache):
        state = _State(cache)
        enabled = progress and sys.stderr.isatty()
        bar = tqdm(total=len(specs), unit="file", desc="link", disable=not enabled)
        try:
            for spec in specs:
                src = root / spec.path
                target = dest / spec.path
                key = str(src.absolute())
                bar.update(1)
                try:
                    st = src.stat()
                except FileNotFoundError:
                    report.missing.append(spec.path)
                    _remove_stale_dest(target)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    report.failures.append(Failure(spec.path, str(src), "not a regular file"))
                    continue
                entry = state.get(key)
                expected = spec.sha256
                recorded = False
                if state.matches(key, st, expected) and (spec.size is None or spec.size == st.st_size):
                    sha = entry["sha256"]  # type: ignore[index]
                else:
                    sha = sha256_file(src)
                    if (expected is not None and sha != expected) or (spec.size is not None and spec.size != st.st_size):
                        report.mismatches.append(Mismatch(spec.path, str(src), expected, sha, spec.size, st.st_size, None))
                        _remove_stale_dest(target)
                        state.drop(key)
                        continue
                    recorded = expected is None and (entry or {}).get("sha256") != sha
                    state.record(key, sha, st)
                    if recorded:
                        report.recorded[spec.path] = sha
                try:
                    how = _place(src, target, fallback="symlink")
                    report.files.append(FileResult(spec.path, sha, st.st_size, str(src), "linked", how, str(target), recorded))
                    _maybe_extract(spec, src, sha, dest, key, state, report)
                except (OSError, UnsafeArchiveError, tarfile.TarError, zipfile.BadZipFile) as exc:
                    report.failures.append(Failure(spec.path, str(src), f"{type(exc).__name__}: {exc}"))
        finally:
            bar.close()
            state.flush(force=True)
    _raise_problems(report, "link_local")
    return report


# --------------------------------------------------------------------------- archives


def _norm_member(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _resolve_lexically(parts: list[str], symlinks: set[str], *, allow_last_symlink: bool) -> list[str] | None:
    """Normalise ``parts``; ``None`` if it climbs above the root or passes through a symlink."""
    stack: list[str] = []
    for i, comp in enumerate(parts):
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        last = i == len(parts) - 1
        if "/".join(stack) in symlinks and not (last and allow_last_symlink):
            return None
    return stack


def _check_name(archive: Path, name: str) -> list[str]:
    raw = name.replace("\\", "/")
    if raw.startswith("/") or _DRIVE_RE.match(raw):
        raise UnsafeArchiveError(archive, name, "absolute path")
    parts = _norm_member(name)
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "'..' path traversal")
    if not parts:
        raise UnsafeArchiveError(archive, name, "empty member name")
    return parts


def _check_tar(archive: Path, tf: tarfile.TarFile, probe_dir: str) -> None:
    members = tf.getmembers()
    symlinks = {"/".join(_norm_member(m.name)) for m in members if m.issym()}
    for m in members:
        if not _norm_member(m.name) and m.isdir():
            continue  # "./" entry of `tar -C dir .`
        parts = _check_name(archive, m.name)
        # Nothing may be written through a symlink member (defeats link-chain tricks).
        if _resolve_lexically(parts, symlinks, allow_last_symlink=True) is None:
            raise UnsafeArchiveError(archive, m.name, "path passes through a symlink member")
        if m.issym() or m.islnk():
            link = m.linkname.replace("\\", "/")
            if link.startswith("/") or _DRIVE_RE.match(link):
                raise UnsafeArchiveError(archive, m.name, f"link to absolute path {m.linkname!r}")
            base = parts[:-1] if m.issym() else []  # hard link names are archive-relative
            if _resolve_lexically(base + _norm_member(link), symlinks, allow_last_symlink=True) is None:
                raise UnsafeArchiveError(archive, m.name, f"link target {m.linkname!r} points outside the target")
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(archive, m.name, "device, fifo or other special file")
        try:  # Python's own "data" filter, the same check extractall applies
            tarfile.data_filter(m, probe_dir)
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(archive, m.name, str(exc)) from None


def _zip_unix_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(_zip_unix_mode(info))


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> dict[str, str]:
    infos = zf.infolist()
    links: dict[str, str] = {}
    for info in infos:
        if _zip_is_symlink(info):
            links[info.filename] = zf.read(info).decode("utf-8", "surrogateescape")
    symlinks = {"/".join(_norm_member(n)) for n in links}
    for info in infos:
        if not _norm_member(info.filename) and info.is_dir():
            continue
        parts = _check_name(archive, info.filename)
        if _resolve_lexically(parts, symlinks, allow_last_symlink=True) is None:
            raise UnsafeArchiveError(archive, info.filename, "path passes through a symlink member")
        if info.filename in links:
            link = links[info.filename].replace("\\", "/")
            if link.startswith("/") or _DRIVE_RE.match(link):
                raise UnsafeArchiveError(archive, info.filename, f"symlink to absolute path {links[info.filename]!r}")
            if _resolve_lexically(parts[:-1] + _norm_member(link), symlinks, allow_last_symlink=True) is None:
                raise UnsafeArchiveError(archive, info.filename, f"symlink target {links[info.filename]!r} points outside the target")
        else:
            mode = _zip_unix_mode(info)
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(archive, info.filename, "device, fifo or other special file")
    return links


def _extract_zip(zf: zipfile.ZipFile, links: dict[str, str], out: Path) -> None:
    for info in zf.infolist():
        rel = "/".join(_norm_member(info.filename))
        dest = out / rel
        if info.filename in links or not rel:
            continue
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    for name, link in links.items():
        dest = out / "/".join(_norm_member(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, dest)


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a tar (any compression tarfile reads) or zip archive into ``target``.

    Every member is checked first: absolute names, ``..`` traversal, links pointing
    outside the target (or any path passing through a symlink member) and device/fifo
    members raise :class:`UnsafeArchiveError` naming the archive and member, and nothing
    is extracted.  Tar extraction additionally runs with ``filter="data"``.  The archive
    is unpacked into a temporary directory beside ``target`` that is renamed into place,
    replacing a previous ``target``.  Returns ``target``.
    """
    archive = Path(archive)
    target = Path(target)
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python < 3.11.4
        raise RuntimeError("safe_extract needs Python >= 3.11.4 (tarfile extraction filters)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extract", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                links = _check_zip(archive, zf)
                _extract_zip(zf, links, tmp)
        else:
            with tarfile.open(archive, "r:*") as tf:
                _check_tar(archive, tf, str(tmp))
                tf.extractall(tmp, filter="data")
        old = None
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- stage entry point


def download_manifest(
    manifest: str | os.PathLike | Manifest,
    *,
    dest_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    report_path: str | os.PathLike | None = None,
    src_root: str | os.PathLike | None = None,
    **kwargs: Any,
) -> FetchReport:
    """What the ``download`` stage calls: load ``manifest`` and fetch it (or, with
    ``src_root``, link a local copy of it), writing the report JSON to ``report_path``.

    The report is written even when the call raises (it then lists the problems), so a
    failed job leaves a record; its contents are deterministic (sorted keys).
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    try:
        if src_root is not None:
            report = link_local(m, src_root=src_root, dest_dir=dest_dir, cache_dir=cache_dir,
                                progress=kwargs.get("progress", True))
        else:
            report = fetch(m, cache_dir=cache_dir, dest_dir=dest_dir, **kwargs)
    except DownloadError as exc:
        if report_path is not None and exc.report is not None:
            exc.report.write(report_path)
        raise
    if report_path is not None:
        report.write(report_path)
    return report
