"""Safe archive extraction.

:func:`safe_extract` unpacks ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archives, refusing
members that would land outside the target; nothing of a refused archive is extracted.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import uuid
import zipfile
from pathlib import Path

from .errors import UnsafeArchiveError
from .manifest import DRIVE_RE


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
    if raw.startswith("/") or DRIVE_RE.match(raw):
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
            if link.startswith("/") or DRIVE_RE.match(link):
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
            if link.startswith("/") or DRIVE_RE.match(link):
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
