"""``alertclip gt check FILE --format {ucf,xd,ubnormal,msad} [--json]``: read a test ground truth, print its summary.

Exit 0 with the summary (text, or JSON with ``--json``); exit 1 with the error (``file:line: field N (what): ...``)
on stderr when the file is missing or malformed; exit 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .groundtruth import GroundTruthError
from .gt_formats import FORMATS, read_ground_truth, summarize

__all__ = ["check", "format_summary", "main"]

_COUNTS = (("videos", "videos"), ("abnormal_videos", "abnormal videos"), ("normal_videos", "normal videos"),
           ("spans", "spans"), ("frames_covered", "frames covered"))


def check(path: str, fmt: str) -> dict[str, Any]:
    """``{"file", "format", **summarize(truth)}`` of the ground truth in ``path``; raises on bad input."""
    return {"file": str(path), "format": fmt, **summarize(read_ground_truth(path, fmt))}


def format_summary(report: dict[str, Any]) -> str:
    """Human-readable rendering of :func:`check`'s result: the totals, then one row per category."""
    width = max(len(label) for _, label in _COUNTS)
    lines = [f"{report['file']} ({report['format']} ground truth)"]
    lines += [f"  {label.ljust(width)}  {report[key]}" for key, label in _COUNTS]
    categories = report["categories"]
    if categories:
        rows = [(name, c["videos"], c["abnormal_videos"], c["spans"], c["frames_covered"]) for name, c in categories.items()]
        lines += ["  categories:"] + _table(("category", "videos", "abnormal", "spans", "frames"), rows)
    spans = report.get("span_classes")
    if spans:
        lines += ["  span classes (one per span):"] + _table(
            ("class", "videos", "spans", "frames"), [(c, r["videos"], r["spans"], r["frames_covered"]) for c, r in spans.items()])
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    cells = [header] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["    " + "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
            for row in cells]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertclip gt", description="Test ground-truth tools.")
    sub = parser.add_subparsers(dest="command")
    chk = sub.add_parser("check", help="read a ground-truth file in its published format and print its summary")
    chk.add_argument("file", metavar="FILE", help="the ground-truth file (UBnormal, MSAD: the split's list file)")
    chk.add_argument("--format", required=True, choices=FORMATS, dest="fmt", help="the benchmark's published format")
    chk.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``alertclip gt check FILE --format F [--json]``. Exit 0 on success, 1 on a bad or missing file, 2 on usage."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help(sys.stderr)
        return 2
    try:
        report = check(args.file, args.fmt)
    except (GroundTruthError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot read {exc.filename or args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
