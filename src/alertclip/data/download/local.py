"""Linking a dataset already on disk into ``dest_dir`` (no copy), verified.

:func:`link_local` does what :func:`~.fetch.fetch` does for a dataset the user already
holds on disk (UCF-Crime usually is): files are hard-linked (symlinked across
filesystems), never copied, and hashed once (the same state file remembers the hashes).
"""

from __future__ import annotations

import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from alertclip.io import sha256_file

from .cache import CacheState, cache_lock
from .errors import MissingSourceError, UnsafeArchiveError, raise_problems
from .manifest import FileSpec, Manifest, coerce_files
from .placing import maybe_extract, place_file, remove_stale_dest
from .report import Failure, FetchReport, FileResult, Mismatch


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
        specs, _ = coerce_files(files)
    cache = Path(cache_dir)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    report = FetchReport(dest_dir=str(dest), cache_dir=str(cache))
    with cache_lock(cache):
        state = CacheState(cache)
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
                    remove_stale_dest(target)
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
                        remove_stale_dest(target)
                        state.drop(key)
                        continue
                    recorded = expected is None and (entry or {}).get("sha256") != sha
                    state.record(key, sha, st)
                    if recorded:
                        report.recorded[spec.path] = sha
                try:
                    how = place_file(src, target, fallback="symlink")
                    report.files.append(FileResult(spec.path, sha, st.st_size, str(src), "linked", how, str(target), recorded))
                    maybe_extract(spec, src, sha, dest, key, state, report)
                except (OSError, UnsafeArchiveError, tarfile.TarError, zipfile.BadZipFile) as exc:
                    report.failures.append(Failure(spec.path, str(src), f"{type(exc).__name__}: {exc}"))
        finally:
            bar.close()
            state.flush(force=True)
    raise_problems(report, "link_local")
    return report
