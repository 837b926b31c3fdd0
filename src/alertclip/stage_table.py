"""The stage outputs the README and docs/stages.md list, generated from dvc.yaml.

dvc.yaml is the one statement of every stage's inputs and outputs (both engines run it; the code's paths are
:mod:`alertclip.paths`, and tests check each declared output is written). The README's one-line-per-stage table and
each stage's ``Outputs:`` line in docs/stages.md repeat the outputs for readers, so ``make deps`` (``python -m
alertclip.stage_table``) rewrites them from dvc.yaml's ``outs``, ``metrics`` and ``plots``, and ``--check``
(tests/test_stage_table.py) fails while they are not current. A row or heading names its stage as the README does
(``tune@<run>``, ``features@<backbone>-<dataset>``, ``synthesize@vagta_synth``): ``${key}`` becomes the row's
placeholder, ``${item.<field>}`` becomes ``<field>``. Files of one directory are written once with braces
(``results/tune/<run>/{metrics.json,curve.csv}``); a directory output ends in ``/``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROW = re.compile(r"^\| `(?P<stage>[^`]+)` \| (?P<what>.*) \| (?P<outputs>.*) \|$")
HEADING = re.compile(r"^## `(?P<stage>[^`]+)`$")
OUTPUTS_LINE = "Outputs: "
DOCUMENTS = ("README.md", "docs/stages.md")
OUTPUT_KINDS = ("outs", "metrics", "plots")


def declared_outputs(stage: dict) -> list[str]:
    """A dvc.yaml stage's (or foreach template's) output paths, in declaration order: outs, metrics, plots."""
    body = stage.get("do", stage)
    paths = []
    for kind in OUTPUT_KINDS:
        for entry in body.get(kind) or []:
            paths.append(entry if isinstance(entry, str) else next(iter(entry)))
    return paths


def placeholders(row_stage: str, template: str) -> str:
    """``results/tune/${key}/metrics.json`` as the README row ``tune@<run>`` names it: ``results/tune/<run>/...``."""
    variant = row_stage.partition("@")[2]
    if variant and not variant.startswith("<"):  # a stage of one variant, named literally (synthesize@vagta_synth)
        key = variant
    else:
        key = variant.split("-")[0] if variant else "${key}"
    out = template.replace("${key}", key)
    return re.sub(r"\$\{item\.(\w+)\}", r"<\1>", out)


def is_directory(path: str) -> bool:
    return not Path(path).suffix


def outputs_cell(paths: list[str]) -> str:
    """``data/models/<run>/``, ``results/tune/<run>/{metrics.json,curve.csv}``: files grouped by directory."""
    groups: dict[str, list[str]] = {}  # directory -> its files, in declaration order (a directory output: none)
    for p in paths:
        if is_directory(p):
            groups.setdefault(p.rstrip("/") + "/", [])
        else:
            parent, _, name = p.rpartition("/")
            groups.setdefault(parent + "/", []).append(name)
    cells = []
    for key, names in groups.items():
        suffixes = {Path(n).suffix for n in names}
        if len(names) <= 1:
            cells.append(key + "".join(names))
        elif len(suffixes) == 1 and all(n.count(".") == 1 for n in names):  # data/curated/{a,b}.parquet
            suffix = suffixes.pop()
            cells.append(key + "{" + ",".join(n.removesuffix(suffix) for n in names) + "}" + suffix)
        else:
            cells.append(key + "{" + ",".join(names) + "}")
    return ", ".join(f"`{c}`" for c in cells)


def _cell(stages: dict, row_stage: str, where: str) -> str:
    base = row_stage.partition("@")[0]
    if base not in stages:
        raise ValueError(f"{where}: `{row_stage}` names no stage of dvc.yaml")
    return outputs_cell([placeholders(row_stage, p) for p in declared_outputs(stages[base])])


def rewrite(text: str, dvc_yaml: dict, name: str = "README.md") -> str:
    """``text`` with the outputs of every stage generated from ``dvc_yaml``: the third column of each stage-table
    row, and the ``Outputs:`` line under each ``## `<stage>``` heading. A row or heading naming no stage of dvc.yaml,
    or a stage the document never names, is an error (both documents list every stage)."""
    stages = dvc_yaml["stages"]
    seen, lines, current = set(), [], None
    for n, line in enumerate(text.split("\n"), 1):
        row, heading = ROW.match(line), HEADING.match(line)
        if row and row["stage"] != "stage":
            seen.add(row["stage"].partition("@")[0])
            line = f"| `{row['stage']}` | {row['what']} | {_cell(stages, row['stage'], f'{name}:{n}')} |"
        elif heading:
            current = heading["stage"]
            _cell(stages, current, f"{name}:{n}")
        elif current and line.startswith(OUTPUTS_LINE):
            seen.add(current.partition("@")[0])
            line = f"{OUTPUTS_LINE}{_cell(stages, current, f'{name}:{n}')}."
            current = None
        lines.append(line)
    missing = sorted(set(stages) - seen)
    if missing:
        raise ValueError(f"{name}: no outputs listed for dvc.yaml stage(s) {', '.join(missing)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alertclip.stage_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (dvc.yaml, README.md, docs/)")
    parser.add_argument("--check", action="store_true", help="fail if a document is not current; write nothing")
    args = parser.parse_args(argv)
    dvc_yaml = yaml.safe_load((args.root / "dvc.yaml").read_text(encoding="utf-8"))
    stale = 0
    for name in DOCUMENTS:
        path = args.root / name
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, dvc_yaml, name)
        if new == text:
            continue
        if args.check:
            print(f"{name}: the stage outputs listed differ from dvc.yaml: run `make deps`", file=sys.stderr)
            stale += 1
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{name}: stage outputs rewritten from dvc.yaml")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
