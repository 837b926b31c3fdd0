"""One DAG, two engines: Snakemake and DVC agree on what is stale, on the smoke world.

The slow tests copy the repository into a temporary git repo, switch it to the ``smoke`` world, run the real
``snakemake`` once, then edit params, code and outputs and compare ``snakemake --dry-run`` with DVC's own answer
(``dvc status`` for the directly changed stages, plus everything downstream of them in ``dvc dag``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alertclip import dag

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VARIANTS = ("full", "no_hard", "standard_neg", "joint")  # params.yaml ablations: stage2@<variant>
BACKBONES = ("base", "stage1", *VARIANTS)  # params.yaml eval.backbones
EVALS = ("eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab", "eval_retention")
STAGE2 = {f"stage2@{v}" for v in VARIANTS}


def _per(keys: tuple[str, ...], stages: tuple[str, ...] = ("features", *EVALS)) -> set[str]:
    return {f"{s}@{k}" for s in stages for k in keys}


ALL_STAGES = ({"synthesize", "download", "frames", "curate", "hardneg", "backbone", "stage1", "sweep", "report"} | STAGE2
              | _per(BACKBONES))
# frames feed every features@ variant; eval_retention@base reads only the base backbone and the stills
AFTER_FRAMES = ({"frames", "curate", "hardneg", "stage1", "sweep", "report"} | STAGE2 | _per(BACKBONES)) - {"eval_retention@base"}
AFTER_HARDNEG = {"hardneg", "stage1", "sweep", "report"} | STAGE2 | _per(BACKBONES[1:])


def _env(root: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(root / "src")  # the copy's code runs, so code edits in the copy take effect
    return env


def sh(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def snakemake_would_run(root: Path) -> set[str]:
    out = sh(root, "snakemake", "--dry-run", "--cores", "2").stdout
    names = set(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.M)) - {"all"}
    return {n.replace("__", "@") for n in names}


def dvc_status(root: Path) -> set[str]:
    return set(json.loads(sh(root, "dvc", "status", "--json").stdout or "{}"))


def dvc_would_run(root: Path) -> set[str]:
    """What `dvc repro` may run: the stages `dvc status` names plus everything downstream in `dvc dag`.

    (`dvc repro --dry` is no oracle: it lists only the directly changed stages, since it cannot know an output
    will change, and it fails outright when an output was deleted.)
    """
    edges = re.findall(r'"([^"]+)" -> "([^"]+)"', sh(root, "dvc", "dag", "--dot").stdout)
    stale = set(dvc_status(root))
    grew = True
    while grew:
        new = {b for a, b in edges if a in stale} - stale
        stale |= new
        grew = bool(new)
    return stale


def assert_engines_agree(root: Path, expected: set[str]) -> None:
    direct = dvc_status(root)
    assert direct and direct <= expected, f"dvc status names {direct}, expected within {expected}"
    assert dvc_would_run(root) == expected
    assert snakemake_would_run(root) == expected


def assert_clean(root: Path) -> None:
    assert dvc_status(root) == set()
    assert snakemake_would_run(root) == set()


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel == "dvc.lock" or not (REPO / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)
    params = dest / "params.yaml"
    # The smoke world: tiny, and a backbone batch that fits its ~50 pre-training stills.
    params.write_text(params.read_text().replace("size: default", "size: smoke", 1)
                      .replace("  batch_size: 16", "  batch_size: 4")  # stage1/stage2: a handful of clips
                      .replace("  batch_size: 64", "  batch_size: 16", 1))  # backbone: ~50 stills
    # stage1/stage2/sweep keep params' val_fraction 0.25: enough validation clips of the 24 smoke videos for the
    # sweep's objective, and abnormal training clips left for pairs batches of 4 (>= 2)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    root = _copy_repo(tmp_path_factory.mktemp("pipeline"))
    sh(root, "snakemake", "--cores", "2", "--resources", "gpu=1")
    return root


@pytest.mark.slow
def test_run_records_every_stage_and_leaves_dvc_clean(pipeline):
    lock = yaml.safe_load((pipeline / "dvc.lock").read_text())
    assert set(lock["stages"]) == ALL_STAGES
    assert_clean(pipeline)
    for stage in ALL_STAGES:
        assert (pipeline / "logs" / "snakemake" / f"{stage.replace('@', '__')}.log").exists()
        assert (pipeline / "logs" / f"{stage}.log").exists()
    report = (pipeline / "results" / "report.md").read_text(encoding="utf-8")
    for key in BACKBONES:
        assert key in report
    assert len(list((pipeline / "results" / "report" / "figures").glob("*.png"))) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("old,new,expected", [
    ("clip_frames: 8", "clip_frames: 6", AFTER_FRAMES),
    # what `dvc exp run -S stage2.lambda_hard=0` changes: every stage-2 variant and what reads it
    ("  lambda_hard: 1.0", "  lambda_hard: 0.0", STAGE2 | {"sweep", "report"} | _per(VARIANTS)),
    # one variant's definition: only that variant
    ("joint: {losses: [global, region, hard], curriculum: joint",
     "joint: {losses: [global, region], curriculum: joint", {"stage2@joint", "report"} | _per(("joint",))),
])
def test_param_edit_same_stale_set(pipeline, old, new, expected):
    params = pipeline / "params.yaml"
    original = params.read_text()
    assert old in original
    params.write_text(original.replace(old, new, 1))
    try:
        assert_engines_agree(pipeline, expected)
    finally:
        params.write_text(original)
    assert_clean(pipeline)


@pytest.mark.slow
@pytest.mark.parametrize("module,expected", [
    ("src/alertclip/data/media.py", AFTER_FRAMES),
    ("src/alertclip/synth/render.py", ALL_STAGES),
    ("src/alertclip/hardneg/inverter.py", AFTER_HARDNEG),
    ("src/alertclip/stages/stage2.py", STAGE2 | {"report"} | _per(VARIANTS)),
    ("src/alertclip/eval/zeroshot.py", {"report"} | _per(BACKBONES, ("eval_mss", "eval_zeroshot"))),
])
def test_code_edit_same_stale_set(pipeline, module, expected):
    path = pipeline / module
    original = path.read_text()
    path.write_text(original + "\n# an edit\n")
    try:
        assert_engines_agree(pipeline, expected)
    finally:
        path.write_text(original)
    assert_clean(pipeline)


@pytest.mark.slow
def test_deleted_output_then_checkout_reruns_nothing(pipeline):
    shutil.rmtree(pipeline / "data" / "raw")
    assert_engines_agree(pipeline, {"download"} | AFTER_FRAMES)
    sh(pipeline, "dvc", "checkout", "--quiet")
    assert (pipeline / "data" / "raw" / "annotations" / "qwen_vl_train.json").exists()
    assert_clean(pipeline)


@pytest.mark.slow
def test_touch_reruns_nothing(pipeline):
    for sub in ("data/synth/published", "data/raw", "src/alertclip"):
        for p in (pipeline / sub).rglob("*"):
            os.utime(p)
    assert_clean(pipeline)


@pytest.mark.slow
def test_failure_keeps_and_records_finished_stages(pipeline):
    """A stage that fails leaves every stage that finished before it recorded; the rerun resumes there."""
    params = pipeline / "params.yaml"
    original = params.read_text()
    frames_py = pipeline / "src/alertclip/data/frames.py"
    frames_src = frames_py.read_text()
    try:
        params.write_text(original.replace("retries: 5", "retries: 4"))  # download reruns (harmless)
        frames_py.write_text(frames_src.replace("    jobs = plan_jobs(layout, settings)\n",
                                                "    raise RuntimeError('injected failure')\n", 1))
        proc = sh(pipeline, "snakemake", "--cores", "2", check=False)
        assert proc.returncode != 0
        assert "injected failure" in (pipeline / "logs" / "frames.log").read_text()
        status = dvc_status(pipeline)
        assert "frames" in status and "download" not in status  # download finished and was recorded
        frames_py.write_text(frames_src)
        sh(pipeline, "snakemake", "--cores", "2")
        assert_clean(pipeline)
    finally:
        params.write_text(original)
        frames_py.write_text(frames_src)
    sh(pipeline, "snakemake", "--cores", "2")
    assert_clean(pipeline)


@pytest.mark.slow
def test_repro_force_reproduces_identical_hashes(pipeline):
    before = yaml.safe_load((pipeline / "dvc.lock").read_text())
    sh(pipeline, "dvc", "repro", "--force", "--quiet")
    after = yaml.safe_load((pipeline / "dvc.lock").read_text())
    for name, stage in before["stages"].items():
        assert after["stages"][name]["outs"] == stage["outs"], f"{name}: outputs changed on an exact rerun"


@pytest.mark.slow
def test_lint_passes(pipeline):
    sh(pipeline, "snakemake", "--lint")


def test_foreach_stages_become_rules(tmp_path):
    """DVC's resolver (not a hand parser) expands foreach/matrix; each variant becomes one rule."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    sh(tmp_path, "dvc", "init", "-q")
    (tmp_path / "params.yaml").write_text("names: [a, b]\nlr: 0.1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  make:\n"
        "    foreach: ${names}\n"
        "    do:\n"
        "      cmd: echo ${item} > out/${item}.txt\n"
        "      params:\n"
        "        - lr\n"
        "      outs:\n"
        "        - out/${item}.txt\n"
        "  grid:\n"
        "    matrix:\n"
        "      x: [1, 2]\n"
        "      y: [u]\n"
        "    cmd: cat out/a.txt > grid_${item.x}_${item.y}.txt\n"
        "    deps:\n"
        "      - out/a.txt\n"
        "    outs:\n"
        "      - grid_${item.x}_${item.y}.txt\n"
    )
    stages = {s.name: s for s in dag.load_stages(tmp_path)}
    assert set(stages) == {"make@a", "make@b", "grid@1-u", "grid@2-u"}
    assert stages["make@a"].cmd == "echo a > out/a.txt"
    assert stages["make@a"].rule_name == "make__a"
    assert stages["grid@2-u"].deps == ("out/a.txt",)
    assert stages["make@b"].dir_outs == frozenset()
    order = [s.name for s in dag.load_stages(tmp_path)]
    assert order.index("make@a") < order.index("grid@1-u")  # dependencies first
    assert dag.stale_stages(tmp_path) == set(stages)  # nothing has run yet


def test_hints_table_is_valid_and_complete():
    table = dag.load_hints(REPO / "workflow" / "resources.yaml")
    names = {s.split("@")[0] for s in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]}
    assert names <= set(table), f"stages without execution hints: {names - set(table)}"
    assert table["frames"].threads == "all"


def test_unknown_hint_key_fails(tmp_path):
    bad = tmp_path / "resources.yaml"
    bad.write_text("frames: {threads: 2, gpus: 1}\n")
    with pytest.raises(ValueError, match="gpus"):
        dag.load_hints(bad)


def test_new_variant_needs_params_only(tmp_path):
    """A variant added to params.yaml alone (ablations + eval.backbones) becomes stage2@, features@ and every
    eval_*@ stage, and the report's inputs (its folder deps, expanded for Snakemake) pick its results up."""
    root = _copy_repo(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ablations"]["region_only"] = {"losses": ["global", "region"], "curriculum": "joint", "negatives": "hard"}
    params["eval"]["backbones"]["region_only"] = "data/models/stage2/region_only"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    specs = {s.name: s for s in dag.load_stages(root)}
    assert {"stage2@region_only", "features@region_only"} | {f"{e}@region_only" for e in EVALS} <= set(specs)
    report_inputs = set(specs["report"].deps)
    for key in (*BACKBONES, "region_only"):
        for kind in EVALS:
            assert f"results/{kind}/{key}/metrics.json" in report_inputs, (kind, key)
    assert "results/stage2/region_only/metrics.json" in report_inputs
