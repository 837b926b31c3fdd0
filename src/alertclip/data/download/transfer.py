"""Moving one file's bytes into its ``.part`` file: HTTP with retries and ``Range`` resume, or a local copy.

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
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from alertclip.io import write_json

from .cache import PART, PART_META, unlink_missing_ok
from .errors import FileFailure

CHUNK = 1 << 16
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_BACKOFF = 60.0


def make_session(retries: int, backoff: float) -> requests.Session:
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


class Progress:
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


def download_http(session: requests.Session, url: str, part: Path, *, expected_size: int | None,
                   size_in_bar: bool, retries: int, backoff: float, timeout: float,
                   progress: Progress) -> _Transfer:
    """Stream ``url`` into ``part`` (resuming it), with the body-level retry loop."""
    meta_path = part.with_name(part.name[: -len(PART)] + PART_META)
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
            unlink_missing_ok(part)
            progress.update(-offset)
            offset = 0
        if expected_size is not None and offset > expected_size:
            unlink_missing_ok(part)
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
            raise FileFailure(f"request failed after {retries} retries: {exc}") from exc
        with resp:
            code = resp.status_code
            if code == 416:
                _, total = _parse_content_range(resp.headers.get("Content-Range"))
                if offset and total == offset:
                    xfer.resumed = True
                    return xfer  # the partial file is complete
                restarts_416 += 1
                if not offset or restarts_416 > 1:
                    raise FileFailure(f"HTTP 416 Range Not Satisfiable (Range: {headers.get('Range')})")
                unlink_missing_ok(part)  # the partial does not fit the remote file: start over
                progress.update(-offset)
                continue
            if code == 206 and offset:
                start, _ = _parse_content_range(resp.headers.get("Content-Range"))
                if start != offset:  # a different range than asked: discard, start over
                    unlink_missing_ok(part)
                    progress.update(-offset)
                    failures += 1
                    if failures > retries:
                        raise FileFailure(f"server answered range {resp.headers.get('Content-Range')!r} for {headers['Range']!r}")
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
                raise FileFailure(reason)
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
                    raise FileFailure(f"transfer interrupted ({failures} consecutive attempt(s) without progress, "
                                      f"{retries} retries allowed): {exc}") from exc
                time.sleep(min(backoff * 2 ** (failures - 1), MAX_BACKOFF))
                xfer.resumed = True
                continue
        return xfer


def copy_local(src: Path, part: Path, progress: Progress, size_in_bar: bool) -> _Transfer:
    if not src.is_file():
        raise FileFailure("source file not found" if not src.exists() else "source is not a regular file")
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
