"""Benchmark of the data path (issue: synthesize, download, frames).

Prints, side by side with their targets:
1. wall time of synthesize + download + frames at the default size, run by Snakemake in a fresh copy of the repo
   (target <= 180 s on 2 cores), with the per-stage breakdown from the stage logs;
2. no-op `snakemake -n` and `dvc status` times in that copy (target <= 5 s each);
3. frames decoded per second by the frames stage vs plain `ffmpeg -threads 1 -i FILE -f null -` on the same files
   with the same number of parallel processes (target ratio >= 0.8).

    python benchmarks/bench_data_path.py [--size default|smoke] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def copy_repo(dest: Path, size: str) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel != "dvc.lock" and (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    params = dest / "params.yaml"
    params.write_text(re.sub(r"size: \w+", f"size: {size}", params.read_text(), count=1))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)


def stage_seconds(log: Path) -> float | None:
    m = re.search(r"done in ([\d.]+) s", log.read_text()) if log.exists() else None
    return float(m.group(1)) if m else None


def plain_decode(files: list[Path], workers: int) -> tuple[float, int]:
    """Plain ffmpeg decode of every file (one single-threaded process per file, `workers` at a time)."""
    def one(path: Path) -> int:
        out = subprocess.run(["ffmpeg", "-nostdin", "-threads", "1", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True).stderr
        frames = re.findall(r"frame=\s*(\d+)", out)
        return int(frames[-1]) if frames else 0

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(one, files))
    return time.perf_counter() - start, total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="default")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse a kept copy (pipeline already run)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="alertclip-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.reuse:
        copy_repo(work, args.size)
    cores = os.cpu_count() or 1
    print(f"machine: {platform.node()} {platform.machine()}, {cores} cores, python {platform.python_version()}")
    print(f"world size: {args.size}; working copy: {work}\n")

    total = 0.0 if args.reuse else run(["snakemake", "--cores", "all", "--resources", "gpu=1"], work)
    stages = {s: stage_seconds(work / "logs" / f"{s}.log") for s in ("synthesize", "download", "frames")}
    noop_snake = min(run(["snakemake", "-n"], work) for _ in range(3))
    noop_dvc = min(run(["dvc", "status"], work) for _ in range(3))

    from alertclip.data.frames import FrameSettings, extract_frames
    from alertclip.data.sources import SYNTHETIC, Layout

    videos = sorted((work / "data" / "raw").rglob("*.mp4"))
    t_plain, n_plain = plain_decode(videos, cores)
    out = work / "bench_frames"
    start = time.perf_counter()
    summary = extract_frames(Layout(work / "data" / "raw", **SYNTHETIC), out, FrameSettings(25, 64, 64, 8, 16),
                             progress=False)
    t_stage = time.perf_counter() - start
    shutil.rmtree(out)
    import polars as pl

    n_stage = int(pl.read_parquet(work / "data" / "frames" / "media.parquet")["n_frames"].sum())

    rows = [
        ("synthesize+download+frames (snakemake)", f"{total:.1f} s", "<= 180 s", total <= 180),
        ("  synthesize", f"{stages['synthesize']:.1f} s", "", None),
        ("  download", f"{stages['download']:.1f} s", "", None),
        ("  frames", f"{stages['frames']:.1f} s", "", None),
        ("no-op snakemake -n (best of 3)", f"{noop_snake:.2f} s", "<= 5 s", noop_snake <= 5),
        ("no-op dvc status (best of 3)", f"{noop_dvc:.2f} s", "<= 5 s", noop_dvc <= 5),
        ("plain ffmpeg -f null decode", f"{n_plain / t_plain:.0f} frames/s ({n_plain} in {t_plain:.1f} s)", "", None),
        ("frames stage (decode+resample+store)", f"{n_stage / t_stage:.0f} frames/s ({n_stage} in {t_stage:.1f} s)",
         "", None),
        ("  ratio, same files (time plain / time stage)", f"{t_plain / t_stage:.2f}x", ">= 0.8x",
         t_plain / t_stage >= 0.8),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value':<40}  {'target':<9}  met")
    for name, value, target, ok in rows:
        print(f"{name.ljust(width)}  {value:<40}  {target:<9}  {'' if ok is None else ('yes' if ok else 'NO')}")
    print(f"\nframes summary: {summary}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
