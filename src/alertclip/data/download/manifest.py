"""The manifest: which files a dataset has, validated, and where each is fetched from.

A dataset source is described by a JSON *manifest*::

    {"dataset": "vagta-synth", "version": "1",
     "files": [{"path": "videos/train/Fighting/Fighting001_x264.mp4", "sha256": "<hex>", "size": 12345},
               {"path": "annotations.tar.gz", "sha256": null, "url": "https://host/x.tar.gz", "extract": true}]}
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

import requests
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from .cache import PART, PART_META, RESERVED_TOP
from .errors import ManifestError
from .transfer import make_session

# longest first: ".tar.gz" must win over ".gz"-less ".tar" checks
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
DRIVE_RE = re.compile(r"^[A-Za-z]:")


def _check_rel_path(value: str, what: str = "path") -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL byte: {value!r}")
    if "\\" in value:
        raise ValueError(f"{what} must use '/' separators, got {value!r}")
    if value.startswith("/") or DRIVE_RE.match(value):
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
        if scheme and not DRIVE_RE.match(v) and scheme not in ("http", "https", "file"):
            raise ValueError(f"url scheme {scheme!r} is not supported (http, https, file or a local path)")
        return v

    @field_validator("extract")
    @classmethod
    def _v_extract(cls, v: bool, info: ValidationInfo) -> bool:
        path = info.data.get("path")
        if v and isinstance(path, str) and archive_suffix(path) is None:
            raise ValueError(f"extract is true but path {path!r} has no archive suffix {ARCHIVE_SUFFIXES}")
        return v


def check_cache_names(files: Sequence[FileSpec]) -> None:
    """Paths that would collide with the cache's own files (state, quarantine, partials)."""
    paths = {f.path for f in files}
    for i, f in enumerate(files):
        if f.path.split("/", 1)[0] in RESERVED_TOP:
            raise ManifestError(f"entry {i}: path {f.path!r} collides with a reserved cache name {sorted(RESERVED_TOP)}")
        for suf in (PART, PART_META):
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
    return urlsplit(s).scheme.lower() in ("http", "https", "file") and not DRIVE_RE.match(s)


def file_url_to_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URL with a remote host is not supported: {url}")
    return Path(url2pathname(parts.path))


def _parent_location(loc: str) -> str:
    """``base_url`` of a manifest: the directory (URL or local path) holding it."""
    scheme = urlsplit(loc).scheme.lower()
    if scheme in ("http", "https") and not DRIVE_RE.match(loc):
        parts = urlsplit(loc)
        parent = parts.path.rsplit("/", 1)[0]
        return f"{parts.scheme}://{parts.netloc}{parent}"
    if scheme == "file":
        return str(file_url_to_path(loc).resolve().parent)
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
        if scheme in ("http", "https") and not DRIVE_RE.match(loc):
            with make_session(retries, 0.5) as s:
                resp = s.get(loc, timeout=(timeout, timeout))
                if resp.status_code != 200:
                    raise ManifestError(f"cannot fetch manifest {loc}: HTTP {resp.status_code}")
                text = resp.content.decode("utf-8-sig")
        else:
            path = file_url_to_path(loc) if scheme == "file" and not DRIVE_RE.match(loc) else Path(loc)
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


def coerce_files(files: Any) -> tuple[list[FileSpec], str | None]:
    base = None
    if isinstance(files, Manifest):
        base = files.base_url
        files = files.files
    specs = [f if isinstance(f, FileSpec) else FileSpec.model_validate(f) for f in files]
    _check_layout(specs)
    return specs, base
