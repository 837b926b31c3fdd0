"""``alertclip vagta check FILE...``: per-file counts and defect report of VAGTA annotation files, as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import polars as pl

from .vagta import DEFAULT_TOL, Kind, VagtaFile, VagtaFormatError, load
from .vagta_defects import find_defects

__all__ = ["check", "format_report", "main", "regions_table"]


def _require(vf: VagtaFile, kind: Kind, what: str) -> None:
    if vf.kind != kind:
        raise ValueError(f"{vf.path}: {what} needs an {kind} file, got a {vf.kind} file")


def regions_table(vf: VagtaFile) -> pl.DataFrame:
    """One row per region (caption and/or box track; a missing side is null / 0 keyframes)."""
    _require(vf, "entries", "regions_table")
    rows = []
    for i, e in enumerate(vf.entries or []):
        for j in range(max(len(e.region_captions), len(e.box_infos))):
            track = e.box_infos[j] if j < len(e.box_infos) else []
            frames = [k.frame for k in track]
            rows.append({
                "entry": i,
                "region": j,
                "video": e.video,
                "category": e.category,
                "caption": e.region_captions[j] if j < len(e.region_captions) else None,
                "n_keyframes": len(track),
                "first_frame": min(frames) if frames else None,
                "last_frame": max(frames) if frames else None,
            })
    schema = {
        "entry": pl.Int64, "region": pl.Int64, "video": pl.Utf8, "category": pl.Utf8,
        "caption": pl.Utf8, "n_keyframes": pl.Int64, "first_frame": pl.Int64, "last_frame": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _counts(vf: VagtaFile) -> dict[str, int]:
    records = vf.records
    abnormal = sum(r.is_abnormal for r in records)
    counts = {
        vf.kind: len(records),
        "videos": len({r.video for r in records}),
        "normal": len(records) - abnormal,
        "abnormal": abnormal,
    }
    if vf.kind == "entries":
        counts["regions"] = regions_table(vf).height
        counts["keyframes"] = sum(e.n_keyframes for e in vf.entries or [])
    else:
        counts["hard_negatives"] = sum(len(it.hard_negative) for it in vf.items or [])
    return counts


def check(paths: Iterable[str | Path], *, tol: float = DEFAULT_TOL) -> dict[str, dict[str, Any]]:
    """Summary per file (keyed by the path as given): kind, counts, defects by kind and the defects.

    Normal/abnormal count records (entries or items), not videos. Raises ``VagtaFormatError`` on the
    first unreadable file.
    """
    report: dict[str, dict[str, Any]] = {}
    for path in paths:
        vf = load(path)
        defects = find_defects(vf, tol=tol)
        report[str(path)] = {
            "kind": vf.kind,
            "counts": _counts(vf),
            "defects_by_kind": dict(sorted(Counter(d.kind for d in defects).items())),
            "n_defects": len(defects),
            "n_repaired": sum(d.repaired for d in defects),
            "defects": [d.to_dict() for d in defects],
        }
    return report


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  ", label_column: bool = True
) -> list[str]:
    """Plain-text table; numbers right-aligned, the first column left-aligned when it holds labels."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(header))]

    def fmt(c: int, cell: str) -> str:
        return cell.ljust(widths[c]) if c == 0 and label_column else cell.rjust(widths[c])

    return [indent + "  ".join(fmt(c, cell) for c, cell in enumerate(row)) for row in cells]


def format_report(report: dict[str, dict[str, Any]]) -> str:
    """Human-readable rendering of ``check``'s result."""
    lines: list[str] = []
    for path, summary in report.items():
        counts = summary["counts"]
        lines.append(f"{path} ({summary['kind']} file)")
        lines += _table(list(counts), [list(counts.values())], label_column=False)
        lines.append(f"  defects: {summary['n_defects']} ({summary['n_repaired']} repaired)")
        if summary["defects"]:
            repaired = Counter(d["kind"] for d in summary["defects"] if d["repaired"])
            rows = [(k, n, repaired[k]) for k, n in summary["defects_by_kind"].items()]
            lines += _table(("kind", "count", "repaired"), rows, indent="    ")
            lines.append("  details:")
            for d in summary["defects"]:
                mark = " [repaired]" if d["repaired"] else ""
                lines.append(f"    {d['kind']}: {d['field']}: {d['detail']}{mark}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertclip vagta", description="VAGTA annotation tools.")
    sub = parser.add_subparsers(dest="command")
    chk = sub.add_parser("check", help="validate annotation files and report their defects")
    chk.add_argument("files", nargs="+", metavar="FILE", help="VAGTA JSON file (entries or items)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument("--tolerance", type=float, default=DEFAULT_TOL,
                     help=f"bbox float-noise tolerance (default {DEFAULT_TOL})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``alertclip vagta check FILE... [--json]``. Exit 0 (also with defects), 2 on unreadable input."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "check":
        parser.print_help(sys.stderr)
        return 2
    try:
        report = check(args.files, tol=args.tolerance)
    except VagtaFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
