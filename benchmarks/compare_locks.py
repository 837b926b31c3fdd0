"""Compare the output hashes of two dvc.lock files, stage by stage (a refactor must keep every one).

    git show HEAD~5:dvc.lock > /tmp/before.lock && python benchmarks/compare_locks.py /tmp/before.lock dvc.lock

Prints each output whose hash differs and a summary line; exits 1 if any output of a stage in both locks differs.
"""

from __future__ import annotations

import sys

import yaml


def outputs(stage: dict) -> dict[str, str | None]:
    return {o["path"]: o.get("md5") or o.get("hash") for o in stage.get("outs", [])}


def main(before_path: str, after_path: str) -> int:
    before = yaml.safe_load(open(before_path, encoding="utf-8"))["stages"]
    after = yaml.safe_load(open(after_path, encoding="utf-8"))["stages"]
    same, differ = 0, 0
    for name in sorted(set(before) & set(after)):
        a, b = outputs(before[name]), outputs(after[name])
        for path in sorted(set(a) | set(b)):
            if a.get(path) == b.get(path):
                same += 1
            else:
                differ += 1
                print(f"DIFF {name} {path}: {a.get(path)} -> {b.get(path)}")
    only = {"before": sorted(set(before) - set(after)), "after": sorted(set(after) - set(before))}
    print(f"{same} outputs equal, {differ} differ; stages only before: {only['before']}; only after: {only['after']}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
