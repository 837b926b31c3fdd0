"""Fetching a manifest's files: download into the cache, verify, link into ``dest_dir``.

:func:`fetch` brings every listed file into ``dest_dir`` (the stage output, ``data/raw/``).
Snakemake deletes a failed job's outputs, so nothing partial ever lives there: files are
downloaded into ``cache_dir`` (outside the outputs), written to ``cache_dir/<path>.part``,
verified, renamed to ``cache_dir/<path>`` and only then hard-linked (fallback: copied)
into ``dest_dir``.  ``cache_dir/.verified.json`` records ``path -> sha256, size,
mtime_ns`` of every verified cache file, so a rerun links what is already verified
without reading it again and without any network request.

Trust on first use: a file without ``sha256`` in the manifest is hashed when first
fetched and the hash is recorded in the state file (and ``FetchReport.recorded``); later
downloads of the same path are then checked against that recorded hash.  To accept a
changed upstream file, delete its entry from ``.verified.json``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

import requests

from alertclip.io import sha256_file

from .cache import PART, PART_META, QUARANTINE_DIR, CacheState, cache_lock, unlink_missing_ok
from .errors import FileFailure, UnsafeArchiveError, raise_problems
from .manifest import DRIVE_RE, FileSpec, Manifest, check_cache_names, coerce_files, file_url_to_path, resolve_url
from .placing import maybe_extract, place_file, remove_stale_dest
from .report import Failure, FetchReport, FileResult, Mismatch
from .transfer import Progress, copy_local, download_http, make_session


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
    specs, manifest_base = coerce_files(files)
    check_cache_names(specs)
    base = os.fspath(base_url) if base_url is not None else manifest_base
    cache = Path(cache_dir)
    dest = Path(dest_dir)
    report = FetchReport(dest_dir=str(dest), cache_dir=str(cache))
    dest.mkdir(parents=True, exist_ok=True)
    with cache_lock(cache):
        state = CacheState(cache)
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
        bar = Progress(pending_bytes, enabled, desc="download")
        session = make_session(retries, backoff)
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
                except (FileFailure, OSError, UnsafeArchiveError, tarfile.TarError, zipfile.BadZipFile) as exc:
                    msg = str(exc) if isinstance(exc, (FileFailure, UnsafeArchiveError)) else f"{type(exc).__name__}: {exc}"
                    report.failures.append(Failure(spec.path, url, msg))
        finally:
            session.close()
            bar.close()
            state.flush(force=True)
    raise_problems(report, "download")
    return report


def _cache_entry_ok(state: CacheState, spec: FileSpec, st: os.stat_result) -> bool:
    if not stat.S_ISREG(st.st_mode):
        return False
    if spec.size is not None and spec.size != st.st_size:
        return False
    return state.matches(spec.path, st, spec.sha256)


def _fetch_one(spec: FileSpec, url: str, *, cache: Path, dest: Path, state: CacheState, session: requests.Session,
               bar: Progress, report: FetchReport, retries: int, backoff: float, timeout: float,
               quick: bool) -> None:
    key = spec.path
    final = cache / spec.path
    target = dest / spec.path
    entry = state.get(key)
    # Pin: manifest hash, else the hash recorded on first use.
    expected = spec.sha256 or (entry or {}).get("sha256")

    def done(status: str, sha: str, st: os.stat_result, recorded: bool = False, resumed: bool = False) -> None:
        how = place_file(final, target, fallback="copy")
        report.files.append(FileResult(spec.path, sha, st.st_size, url, status, how, str(target), recorded, resumed))  # type: ignore[arg-type]
        if recorded:
            report.recorded[spec.path] = sha
        maybe_extract(spec, final, sha, dest, key, state, report)

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
        unlink_missing_ok(final)
        state.drop(key)
    # 3. dest_dir already holds a good copy (e.g. restored by `dvc checkout`): adopt it
    if expected is not None and target.is_file() and not target.is_symlink():
        st = target.stat()
        if (spec.size is None or spec.size == st.st_size) and sha256_file(target) == expected:
            final.parent.mkdir(parents=True, exist_ok=True)
            place_file(target, final, fallback="copy")
            st = final.stat()
            state.record(key, expected, st)
            done("adopted", expected, st)
            return
    # 4. download into .part, verify, rename
    part = final.with_name(final.name + PART)
    meta_path = final.with_name(final.name + PART_META)
    part.parent.mkdir(parents=True, exist_ok=True)
    local = bool(DRIVE_RE.match(url)) or urlsplit(url).scheme.lower() not in ("http", "https")
    for attempt in (0, 1):
        if local:
            src = file_url_to_path(url) if urlsplit(url).scheme.lower() == "file" and not DRIVE_RE.match(url) else Path(url)
            xfer = copy_local(src, part, bar, size_in_bar=spec.size is not None and attempt == 0)
        else:
            xfer = download_http(session, url, part, expected_size=spec.size,
                                  size_in_bar=spec.size is not None and attempt == 0, retries=retries,
                                  backoff=backoff, timeout=timeout, progress=bar)
        report.bytes_downloaded += xfer.bytes
        st = part.stat()
        sha = sha256_file(part)
        size_ok = spec.size is None or spec.size == st.st_size
        if (expected is None or sha == expected) and size_ok:
            os.replace(part, final)
            unlink_missing_ok(meta_path)
            st = final.stat()
            state.record(key, sha, st)
            done("downloaded", sha, st, recorded=expected is None, resumed=xfer.resumed)
            return
        if xfer.resumed and attempt == 0:
            # Stitched from several responses (or an old .part): the remote may have
            # changed in between.  Try once more from zero before calling it bad.
            bar.update(-st.st_size)
            unlink_missing_ok(part)
            unlink_missing_ok(meta_path)
            continue
        break
    qpath = cache / QUARANTINE_DIR / spec.path
    qpath.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, qpath)
    unlink_missing_ok(meta_path)
    remove_stale_dest(target)  # never leave an old, unverified copy under dest_dir
    report.mismatches.append(Mismatch(spec.path, url, expected, sha, spec.size, st.st_size, str(qpath)))
