"""Compare the output hashes of two dvc.lock files, output by output (a refactor must keep every one).

    git show HEAD~5:dvc.lock > /tmp/before.lock && python benchmarks/compare_locks.py /tmp/before.lock dvc.lock

Outputs are matched by path (each path is the output of one stage). A refactor that moves outputs names the moves
with ``--rename OLD=NEW`` (a path prefix of the before lock and what it is now; the longest matching prefix wins):

    python benchmarks/compare_locks.py /tmp/before.lock dvc.lock --rename results/stage1/=results/tune/stage1/ \\
        --rename data/models/stage2/=data/models/ --rename results/stage2/=results/tune/

Prints each output whose hash differs and a summary line; exits 1 if any output in both locks differs.
"""

from __future__ import annotations

import argparse

import yaml


def outputs(lock_path: str) -> dict[str, str | None]:
    """Every output path of a dvc.lock -> its hash (md5 of a file, of a directory's listing)."""
    stages = yaml.safe_load(open(lock_path, encoding="utf-8"))["stages"]
    return {o["path"]: o.get("md5") or o.get("hash") for s in stages.values() for o in s.get("outs", [])}


def renamed(path: str, renames: list[tuple[str, str]]) -> str:
    for old, new in sorted(renames, key=lambda r: -len(r[0])):
        if path.startswith(old):
            return new + path[len(old):]
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="a moved path prefix")
    args = ap.parse_args(argv)
    renames = [tuple(r.split("=", 1)) for r in args.rename]
    before = {renamed(p, renames): h for p, h in outputs(args.before).items()}
    after = outputs(args.after)
    same, differ = 0, 0
    for path in sorted(set(before) & set(after)):
        if before[path] == after[path]:
            same += 1
        else:
            differ += 1
            print(f"DIFF {path}: {before[path]} -> {after[path]}")
    only_before, only_after = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    print(f"{same} outputs equal, {differ} differ; only before: {only_before}; only after: {only_after}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
