"""``alertclip`` command line: one subcommand per pipeline stage plus tools for single files.

    alertclip <stage> [--params params.yaml]                     run one stage (what dvc.yaml calls)
    alertclip curate --explain CLIP_ID | hardneg --show N         inspect a stage's last results
    alertclip vagta check FILE... [--json]                        inspect VAGTA annotation files
    alertclip gt check FILE --format {ucf,xd,ubnormal,msad} [--json]  summarize a test ground-truth file
    alertclip profile NAME [--params params.yaml] [--dry-run]      switch params.yaml to profiles/NAME.yaml
    alertclip video probe FILE | extract FILE [--fps --size --out] one video file
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import Callable

from .paths import LOG_DIR


def setup_logging(stage: str) -> Path:
    """Log to stderr and to ``logs/<stage>.log`` (appended, so a failed run's log survives its rerun); under
    ``torchrun`` the processes other than rank 0 log to ``logs/<stage>.rank<N>.log``."""
    LOG_DIR.mkdir(exist_ok=True)
    rank = int(os.environ.get("RANK", "0") or 0)
    path = LOG_DIR / (f"{stage}.log" if rank == 0 else f"{stage}.rank{rank}.log")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    return path


STAGES_DIR = Path(__file__).resolve().parent / "stages"


def stage_names() -> dict[str, bool]:
    """Every pipeline stage, name -> whether it runs once per variant (``--variant KEY``), read off the package.

    A stage is a module ``alertclip/stages/<name>.py`` whose ``run(params, progress[, variant])`` is its entry point;
    it takes a variant when ``run`` has a ``variant`` parameter (dvc.yaml foreach/matrix over params ablations,
    interpolate, eval.backbones and eval.datasets; KEY is ``<backbone>-<dataset>`` for the matrix stages). Read with
    ``ast``, so the command line starts without importing every stage's dependencies.
    """
    import ast

    out = {}
    for path in sorted(STAGES_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        run = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"), None)
        if run is None:
            raise RuntimeError(f"{path}: a stage module needs run(params, progress[, variant])")
        out[path.stem] = "variant" in {a.arg for a in run.args.args + run.args.kwonlyargs}
    return out


def entry_point(name: str) -> Callable:
    return import_module(f"alertclip.stages.{name}").run


def _run_stage(args: argparse.Namespace) -> int:
    from .params import ParamsError, load_params

    if getattr(args, "explain", None):  # a question about the stage's last results, not a run
        print(import_module(f"alertclip.stages.{args.stage}").explain(args.explain))
        return 0
    if getattr(args, "show", None):
        print(import_module(f"alertclip.stages.{args.stage}").show(args.show))
        return 0
    log_path = setup_logging(args.stage + (f"@{args.variant}" if getattr(args, "variant", None) else ""))
    log = logging.getLogger("alertclip")
    try:
        params = load_params(args.params)
    except ParamsError as err:
        log.error("%s", err)
        return 2
    start = time.perf_counter()
    log.info("stage %s started (log: %s)", args.stage, log_path)
    try:
        variant = {"variant": args.variant} if getattr(args, "variant", None) else {}
        entry_point(args.stage)(params, progress=not args.no_progress, **variant)
    except Exception as err:  # the message is the interface: name the file/entry/field, keep the traceback in the log
        log.exception("stage %s failed: %s", args.stage, err)
        return 1
    log.info("stage %s done in %.1f s", args.stage, time.perf_counter() - start)
    return 0


def _video(args: argparse.Namespace) -> int:
    from .data.media import check_complete, decode_frames, probe

    info = probe(args.file)
    if info.status != "ok":
        print(json.dumps(info.as_row(), indent=2))
        return 1
    # A truncated file still has a valid header: only decoding it tells (at a tiny size for probe).
    w, h = (16, 16) if args.action == "probe" else (int(v) for v in args.size.lower().split("x"))
    decoded = decode_frames(args.file, args.fps, w, h)
    info = check_complete(info, decoded, args.fps)
    if args.action == "probe":
        print(json.dumps({**info.as_row(), "frames_at_fps": int(decoded.n_decoded)}, indent=2))
        return 0 if info.status == "ok" else 1
    out = Path(args.out or Path(args.file).with_suffix(".frames.npy").name)
    import numpy as np

    np.save(out, decoded.frames)
    print(json.dumps({**info.as_row(), "frames": int(decoded.n_decoded), "out": str(out)}, indent=2))
    return 0 if info.status == "ok" else 1


def _profile(args: argparse.Namespace) -> int:
    from .profiles import ProfileError, apply_profile

    try:
        changed = apply_profile(args.name, args.params, args.profiles_dir, write=not args.dry_run)
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "would change" if args.dry_run else "changed"
    print(f"{args.params}: profile {args.name} {verb} {len(changed)} key(s)" + "".join(f"\n  {k}" for k in changed))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["vagta"]:
        from .data import vagta_cli

        return vagta_cli.main(argv[1:])
    if argv[:1] == ["gt"]:
        from .eval import gt_cli

        return gt_cli.main(argv[1:])
    parser = argparse.ArgumentParser(prog="alertclip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, takes_variant in stage_names().items():
        sp = sub.add_parser(name, help=f"run the {name} stage")
        sp.add_argument("--params", default="params.yaml")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars (logs still written)")
        if takes_variant:
            sp.add_argument("--variant", required=True, metavar="KEY",
                            help="which variant: a key of runs (tune), interpolate, eval.backbones (checkpoint, "
                                 "eval_retention, publish), eval.datasets (testset) or <backbone>-<dataset> (features, eval_*)")
        if name == "curate":
            sp.add_argument("--explain", metavar="CLIP_ID", help="print which curation rules fired on a clip and why")
        if name == "hardneg":
            sp.add_argument("--show", type=int, metavar="N", help="print N clips with their negatives side by side")
        sp.set_defaults(func=_run_stage, stage=name)
    sub.add_parser("vagta", help="VAGTA annotation tools (alertclip vagta check FILE...)")
    sub.add_parser("gt", help="test ground-truth tools (alertclip gt check FILE --format F)")
    pp = sub.add_parser("profile", help="rewrite params.yaml with a profile (profiles/NAME.yaml) merged in")
    pp.add_argument("name", help="synthetic, ucf_vagta, msad_vagta, ... (a file in --profiles-dir)")
    pp.add_argument("--params", default="params.yaml")
    pp.add_argument("--profiles-dir", default="profiles")
    pp.add_argument("--dry-run", action="store_true", help="print the keys that would change, write nothing")
    pp.set_defaults(func=_profile)
    vp = sub.add_parser("video", help="probe or decode one video file")
    vp.add_argument("action", choices=["probe", "extract"])
    vp.add_argument("file")
    vp.add_argument("--fps", type=float, default=25.0)
    vp.add_argument("--size", default="64x64", help="WxH")
    vp.add_argument("--out", help="where extract writes a (N, H, W, 3) uint8 .npy")
    vp.set_defaults(func=_video)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
