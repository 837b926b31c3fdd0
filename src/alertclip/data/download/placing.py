"""Placing a verified file into ``dest_dir`` (hard link, else copy or symlink) and extracting it there."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

from .archives import safe_extract
from .cache import CacheState
from .manifest import FileSpec, strip_archive_suffix
from .report import FetchReport


def place_file(src: Path, dest: Path, *, fallback: Literal["copy", "symlink"]) -> Literal["hardlink", "symlink", "copy"]:
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


def remove_stale_dest(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()


def maybe_extract(spec: FileSpec, archive: Path, sha: str, dest_dir: Path, key: str, state: CacheState,
                   report: FetchReport) -> None:
    if not spec.extract:
        return
    target = dest_dir / strip_archive_suffix(spec.path)
    entry = state.get(key) or {}
    if not (entry.get("extracted_to") == str(target.absolute()) and entry.get("sha256") == sha and target.is_dir()):
        safe_extract(archive, target)
        state.update(key, extracted_to=str(target.absolute()))
    report.extracted[spec.path] = str(target)
