"""The download cache directory: its reserved names, the verified-state file and the lock.

``cache_dir/.verified.json`` records ``path -> sha256, size, mtime_ns`` of every verified
cache file, so a rerun links what is already verified without reading it again and
without any network request.

Concurrency: a ``cache_dir/.lock`` (``fcntl.flock``) serialises processes sharing a cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from alertclip.io import write_json

try:  # POSIX only; without it concurrent runs on one cache are not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


STATE_NAME = ".verified.json"
QUARANTINE_DIR = ".quarantine"
LOCK_NAME = ".lock"
RESERVED_TOP = {STATE_NAME, QUARANTINE_DIR, LOCK_NAME}
PART = ".part"
PART_META = ".part.meta.json"


class CacheState:
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
def cache_lock(cache_dir: Path) -> Iterator[None]:
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


def unlink_missing_ok(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        p.unlink()
