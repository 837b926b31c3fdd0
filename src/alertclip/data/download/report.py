"""What a :func:`~.fetch.fetch` / :func:`~.local.link_local` call did: the report and its records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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
    """What :func:`fetch` / :func:`link_local` did."""

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
    def ok(self) -> bool:
        return not (self.mismatches or self.failures or self.missing)
