"""The download errors, and the one raised for a report's problems."""

from __future__ import annotations

import os
from typing import Sequence

from .report import FetchReport, Mismatch


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


class FileFailure(Exception):
    """Internal: a per-file failure, collected and reported at the end."""


def raise_problems(report: FetchReport, what: str) -> None:
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
