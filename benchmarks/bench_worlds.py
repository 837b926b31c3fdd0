"""Is the default world's result robust, or tuned to one seed? Run the whole default pipeline at other world seeds.

For each ``--seeds`` value: a fresh copy of the repository's tracked files in ``--workdir/seed-<N>`` with
``synthesize.seed`` set to N (every other param as committed), Snakemake there for the stages the targets read (the
base, stage1 and full backbones' MSS, zero-shot and weakly evaluations on the synthesized world's test set, params
``eval.datasets.synth``, their retention evaluations and everything upstream of them; ``--whole-dag`` runs every
stage, the other ablations, datasets and the report included), then one row per seed with every figure issue 10
targets, side by side with the target:

    scene-prior AUC (train scene prior scored on test videos; matched nuisances: 0.5 exactly)
    box geometry -> label AUC (benchmarks/probe_geometry.py: chance, so no loss can be lowered from the box)
    base MSS [CI]            < 0, CI upper < 0
    stage1 MSS [CI]          > 0, CI lower > 0
    full MSS                 >= stage1
    zero-shot AUC full-base  >= +10 pp, paired CI > 0
    weakly AUC base / full   base >= 60; full > base by more than the larger seed std
    retention i2t R@1 ratio  full / base >= 0.5

Usage (about 13 minutes per seed on 2 cores; ~25 with ``--whole-dag``):

    python benchmarks/bench_worlds.py --seeds 11 12 13 [--workdir /tmp/alertclip-worlds] [--collect-only] [--whole-dag]

``--collect-only`` reads finished runs in the work directories (e.g. after an interrupted benchmark: a rerun of a
seed resumes through Snakemake). Results go to stdout and ``<workdir>/worlds.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASET = "synth"  # the key of params eval.datasets holding the synthesized world's own test set


def prepare(seed: int, workdir: Path) -> Path:
    """A copy of the tracked files (no outputs) with ``synthesize.seed`` replaced.

    An existing work directory is brought up to the repository's tracked files (only files whose bytes differ are
    copied; its own dvc.lock, the record of its world's outputs, is kept), so a rerun after a code or param change
    reruns what DVC calls stale there and reuses the rest.
    """
    dest = workdir / f"seed-{seed}"
    fresh = not (dest / "params.yaml").exists()
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, out = REPO / name.decode(), dest / name.decode()
        if name == b"dvc.lock" and not fresh:
            continue
        if src.is_file() and (name == b"params.yaml" or not out.is_file() or out.read_bytes() != src.read_bytes()):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
    if fresh:
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)  # DVC wants a repository
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench", "commit", "-qm", "bench",
                    "--allow-empty"], cwd=dest, check=True)
    params = dest / "params.yaml"
    text = params.read_text(encoding="utf-8")
    new, n = re.subn(r"(?m)^(synthesize:\n  seed: )\d+", rf"\g<1>{seed}", text)
    if n != 1:
        raise SystemExit(f"{params}: could not find synthesize.seed")
    params.write_text(new, encoding="utf-8")
    return dest


BACKBONES = ("base", "stage1", "full")
# Evaluations the targets read -> the dataset they run on (None: once per backbone, dvc.yaml stage <stage>@<backbone>).
EVALUATIONS: dict[str, str | None] = {"eval_mss": DATASET, "eval_zeroshot": DATASET, "eval_weakly": DATASET,
                                      "eval_retention": None}


def target_stages() -> list[str]:
    """dvc.yaml stages the targets read: ``eval_mss@base-synth``, ..., ``eval_retention@base``, ..."""
    from alertclip.paths import stage_name

    return [stage_name(e, b, ds) for e, ds in EVALUATIONS.items() for b in BACKBONES]


def run(dest: Path, whole_dag: bool = False) -> None:
    """Snakemake in ``dest``: the rules of :func:`target_stages` (``eval_mss__base_synth``, ``eval_retention__base``)
    or, with ``whole_dag``, all."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    targets = []
    if not whole_dag:
        from alertclip.dag import load_stages

        rules = {s.name: s.rule_name for s in load_stages(dest)}
        missing = [name for name in target_stages() if name not in rules]
        if missing:
            raise SystemExit(f"{dest / 'dvc.yaml'}: no stage {', '.join(missing)} (params eval.backbones / "
                             f"eval.evaluate must hold {', '.join(BACKBONES)} / {DATASET!r})")
        targets = [rules[name] for name in target_stages()]
    subprocess.run(["snakemake", *targets, "--cores", "all", "--resources", "gpu=1"], cwd=dest, env=env, check=True)


def _metrics(dest: Path, stage: str, backbone: str, dataset: str | None, name: str | None = None) -> dict:
    """One metrics.json of ``dest``'s run (``results/<stage>/<backbone>/<dataset>/``; ``dataset`` None: a per-backbone
    stage), its ``name`` block (the dataset's name, params eval.datasets.<key>.name) when it has one."""
    from alertclip.paths import result_path

    data = json.loads((dest / result_path(stage, backbone, dataset, "metrics.json")).read_text(encoding="utf-8"))
    return data.get(name, data) if name else data


def _dataset_name(dest: Path) -> str:
    from alertclip.params import load_params

    p = load_params(dest / "params.yaml")
    if DATASET not in p.eval.datasets:
        raise SystemExit(f"{dest / 'params.yaml'}: eval.datasets has no {DATASET!r} (known: {sorted(p.eval.datasets)})")
    return p.eval.datasets[DATASET].name


def scene_prior_auc(dest: Path) -> float:
    """AUC over test videos of a score that knows only the train split's share of abnormal videos per scene."""
    import polars as pl
    from sklearn.metrics import roc_auc_score

    events = pl.read_parquet(dest / "data" / "synth" / "truth" / "events.parquet")
    videos = events.group_by("video").agg(pl.col("split").first(), pl.col("scene").first(),
                                          (pl.col("video").first().str.contains("/Normal/").not_()).alias("abnormal"))
    train = videos.filter(pl.col("split") == "train").group_by("scene").agg(pl.col("abnormal").mean().alias("prior"))
    test = videos.filter(pl.col("split") == "test").join(train, on="scene", how="left").fill_null(0.5)
    return float(roc_auc_score(test["abnormal"].to_numpy(), test["prior"].to_numpy()))


def collect(dest: Path) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from probe_geometry import probe

    row: dict = {"scene_prior_auc": scene_prior_auc(dest),
                 "geometry_auc": probe(str(dest / "data" / "curated" / "clips.parquet"))["clips with hard negatives"]["geometry_auc"]}
    name = _dataset_name(dest)
    for b in BACKBONES:
        m = _metrics(dest, "eval_mss", b, DATASET, name)
        row[f"{b}_mss"], row[f"{b}_mss_ci95"] = m["mss"], m.get("mss_ci95")
        z = _metrics(dest, "eval_zeroshot", b, DATASET, name)
        row[f"{b}_zs_auc"], row[f"{b}_zs_auc_ci95"] = z["auc"], z.get("auc_ci95")
        w = _metrics(dest, "eval_weakly", b, DATASET, name)
        row[f"{b}_weakly_auc"], row[f"{b}_weakly_std"] = w["auc"]["mean"], w["auc"]["std"]
        row[f"{b}_i2t_r1"] = _metrics(dest, "eval_retention", b, None, name)["i2t_r1"]
    row["zs_delta"], row["zs_delta_ci95"] = paired_zero_shot_delta(dest, "full", "base")
    return row


def paired_zero_shot_delta(dest: Path, key: str, against: str, dataset: str = DATASET) -> tuple[float, list[float]]:
    """Zero-shot AUC of ``key`` minus ``against`` on ``dataset`` and its paired-bootstrap 95% CI, as the report computes
    it (from the two backbones' eval_zeroshot outputs on it and its checked test set only, ``results/eval_zeroshot/
    <backbone>/<dataset>/`` and ``data/testsets/<dataset>/``: the other stages need not have run)."""
    from alertclip.eval.testsets import load_testset
    from alertclip.params import load_params
    from alertclip.report.bootstrap import paired_ci
    from alertclip.report.inputs import Dataset, Results

    p = load_params(dest / "params.yaml")
    if dataset not in p.eval.datasets:
        raise SystemExit(f"{dest / 'params.yaml'}: eval.datasets has no {dataset!r} (known: {sorted(p.eval.datasets)})")
    ds = p.eval.datasets[dataset]
    r = Results(dest, [key, against], against, list(p.eval_weakly.seeds), int(p.frames.snippet_len),
                {dataset: Dataset(dataset, ds.name, ds.format, ds.ground_truth, tuple(ds.metrics), ("eval_zeroshot",))},
                {"eval_zeroshot": [dataset]}, n_bootstrap=int(p.eval.bootstrap_samples),
                bootstrap_seed=int(p.eval.bootstrap_seed), protocol=str(p.eval.protocol))
    r.testsets[dataset] = load_testset(dataset, ds, dest)
    for b in (key, against):
        r.metrics[("eval_zeroshot", b, dataset)] = json.loads(
            r.file("eval_zeroshot", b, dataset, "metrics.json").read_text("utf-8"))
    ci = paired_ci(r, "zs_auc", key, against, dataset)
    return float(ci.estimate), [float(ci.low), float(ci.high)]


def _ci(ci) -> str:
    return "[n/a]" if not ci else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def as_pp(ci) -> str:
    return "[n/a]" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] pp"


def verdicts(r: dict) -> list[tuple[str, str, str, bool]]:
    w_gap = r["full_weakly_auc"] - r["base_weakly_auc"]
    return [
        ("scene-prior AUC", f"{r['scene_prior_auc']:.3f}", "0.5 +- 0.03", abs(r["scene_prior_auc"] - 0.5) <= 0.03),
        ("box geometry -> label AUC", f"{r['geometry_auc']:.3f}", "0.5 +- 0.05", abs(r["geometry_auc"] - 0.5) <= 0.05),
        ("base MSS", f"{r['base_mss']:+.4f} {_ci(r['base_mss_ci95'])}", "CI upper < 0",
         bool(r["base_mss_ci95"]) and r["base_mss_ci95"][1] < 0),
        ("stage1 MSS", f"{r['stage1_mss']:+.4f} {_ci(r['stage1_mss_ci95'])}", "CI lower > 0",
         bool(r["stage1_mss_ci95"]) and r["stage1_mss_ci95"][0] > 0),
        ("full MSS", f"{r['full_mss']:+.4f} {_ci(r['full_mss_ci95'])}", ">= stage1", r["full_mss"] >= r["stage1_mss"]),
        ("zero-shot AUC full-base", f"{100 * r['zs_delta']:+.1f} {as_pp(r['zs_delta_ci95'])}", ">= +10 pp, CI > 0",
         r["zs_delta"] >= 0.10 and bool(r["zs_delta_ci95"]) and r["zs_delta_ci95"][0] > 0),
        ("weakly AUC base", f"{100 * r['base_weakly_auc']:.1f} +- {100 * r['base_weakly_std']:.1f}", ">= 60",
         r["base_weakly_auc"] >= 0.60),
        ("weakly AUC full - base", f"{100 * w_gap:+.1f} pp", "> larger seed std",
         w_gap > max(r["base_weakly_std"], r["full_weakly_std"])),
        ("retention i2t R@1 full/base", f"{r['full_i2t_r1'] / max(r['base_i2t_r1'], 1e-9):.2f}", ">= 0.5",
         r["full_i2t_r1"] >= 0.5 * r["base_i2t_r1"]),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/alertclip-worlds"))
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--whole-dag", action="store_true", help="run every stage, not only those the targets read")
    args = ap.parse_args(argv)
    rows = {}
    for seed in args.seeds:
        dest = args.workdir / f"seed-{seed}"
        if not args.collect_only:
            dest = prepare(seed, args.workdir)
            run(dest, args.whole_dag)
        rows[seed] = collect(dest)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "worlds.json").write_text(json.dumps(rows, indent=2, sort_keys=True), encoding="utf-8")
    names = [v[0] for v in verdicts(next(iter(rows.values())))]
    width = max(map(len, names)) + 2
    print(f"{'figure':<{width}}{'target':<20}" + "".join(f"seed {s:<32}" for s in rows))
    table = {s: verdicts(r) for s, r in rows.items()}
    for i, name in enumerate(names):
        target = table[next(iter(rows))][i][2]
        cells = "".join(f"{v[i][1] + (' ok' if v[i][3] else ' MISS'):<37}" for v in table.values())
        print(f"{name:<{width}}{target:<20}{cells}")
    met = np.mean([v[3] for vs in table.values() for v in vs])
    print(f"targets met: {100 * met:.0f}% of {sum(len(v) for v in table.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
