"""One DAG, two engines: Snakemake and DVC agree on what is stale, on the smoke world.

The slow tests copy the repository into a temporary git repo, switch it to the ``smoke`` world, run the real
``snakemake`` once, then edit params, code and outputs and compare ``snakemake --dry-run`` with DVC's own answer
(``dvc status`` for the directly changed stages, plus everything downstream of them in ``dvc dag``). The toy-world tests
run the same ``workflow/`` on a three-stage ``dvc.yaml`` of shell one-liners: dry runs that must write nothing, and a
killed run whose finished stage must not be recorded by a later run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from alertclip import dag
from alertclip.params import load_params, run_settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNS = ("stage1", "full", "no_hard", "standard_neg", "joint")  # params.yaml runs: tune@<run> -> data/models/<run>
FROM_STAGE1 = ("full", "no_hard", "standard_neg")  # the runs whose init is stage1 (joint starts from the backbone)
BACKBONES = ("base", *RUNS, "wise_ft")  # params.yaml eval.backbones (wise_ft: interpolate@wise_ft)
DATASETS = ("synth",)  # params.yaml eval.datasets, each in every list of eval.evaluate
PER_DATASET = ("features", "eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab")  # @<backbone>-<dataset>
EVALS = ("eval_mss", "eval_zeroshot", "eval_weakly", "eval_openvocab", "eval_retention")
TUNE = {f"tune@{r}" for r in RUNS}
INTERPOLATE = {"interpolate@wise_ft"}  # base + tune@full in weight space
TESTSETS = {f"testset@{d}" for d in DATASETS}


def _per(keys: tuple[str, ...], stages: tuple[str, ...] = ("checkpoint", *PER_DATASET, "eval_retention", "publish"),
         datasets: tuple[str, ...] = DATASETS) -> set[str]:
    """The stages of these backbones: checkpoint@<bb>, eval_retention@<bb> and publish@<bb>, the others once per
    dataset."""
    return {f"{s}@{k}-{d}" if s in PER_DATASET else f"{s}@{k}" for s in stages for k in keys for d in datasets}


TUNED = (*RUNS, "wise_ft")  # the backbones downstream of a tuning run (all but base)
AFTER_FULL = ("full", "wise_ft")  # the backbones downstream of tune@full
# publish@<bb> reads the report (its tables): whenever the report reruns, every backbone's publish@ reruns after it
REPORT = {"report"} | {f"publish@{k}" for k in BACKBONES}
ALL_STAGES = ({"synthesize@vagta_synth", "download", "frames", "curate", "hardneg", "backbone", "sweep", "report"} | TUNE
              | INTERPOLATE | TESTSETS | _per(BACKBONES))
# frames feed the test sets and so every features@ variant; the base backbone's checkpoint record and its retention
# (the backbone and the stills) do not read them
AFTER_FRAMES = (({"frames", "curate", "hardneg", "sweep", "report"} | TUNE | INTERPOLATE | TESTSETS
                 | _per(BACKBONES)) - {"checkpoint@base", "eval_retention@base"})
AFTER_HARDNEG = {"hardneg", "sweep"} | REPORT | TUNE | INTERPOLATE | _per(TUNED)
# every tuning run (tune@stage1 included) and what reads them; the sweep trains from data/models/stage1
AFTER_TUNE = TUNE | {"sweep"} | INTERPOLATE | REPORT | _per(TUNED)
# one dataset's definition: its test set and every stage of it, no training, no checkpoint record, no retention
AFTER_DATASET = TESTSETS | REPORT | _per(BACKBONES, PER_DATASET)


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


def _rule_stages(root: Path) -> dict[str, str]:
    """Rule name -> stage name (``features__no_hard_synth`` -> ``features@no_hard-synth``: not invertible by hand)."""
    return {s.rule_name: s.name for s in dag.load_stages(root)}


def _jobs_listed(out: str, root: Path) -> set[str]:
    """The stages a dry run's output lists as jobs."""
    names = set(re.findall(r"^(?:local)?rule (\w+):", out, flags=re.M)) - {"all"}
    stages = _rule_stages(root)
    return {stages.get(n, n) for n in names}


def snakemake_would_run(root: Path) -> set[str]:
    return _jobs_listed(sh(root, "snakemake", "--dry-run", "--cores", "2").stdout, root)


def dvc_status(root: Path) -> set[str]:
    return set(json.loads(sh(root, "dvc", "status", "--json").stdout or "{}"))


def dvc_would_run(root: Path, direct: set[str] | None = None) -> set[str]:
    """What `dvc repro` may run: the stages `dvc status` names plus everything downstream in `dvc dag`.

    (`dvc repro --dry` is no oracle: it lists only the directly changed stages, since it cannot know an output
    will change, and it fails outright when an output was deleted.)
    """
    edges = re.findall(r'"([^"]+)" -> "([^"]+)"', sh(root, "dvc", "dag", "--dot").stdout)
    stale = set(dvc_status(root) if direct is None else direct)  # `direct`: a `dvc status` the caller just ran
    grew = True
    while grew:
        new = {b for a, b in edges if a in stale} - stale
        stale |= new
        grew = bool(new)
    return stale


def assert_engines_agree(root: Path, expected: set[str]) -> None:
    direct = dvc_status(root)
    assert direct and direct <= expected, f"dvc status names {direct}, expected within {expected}"
    assert dvc_would_run(root, direct) == expected
    assert snakemake_would_run(root) == expected


def recorded_outs(root: Path, stages: set[str] | None = None) -> dict[str, str]:
    """Output path -> md5 as dvc.lock records them (of the given stages, or of all)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for name, s in lock.items() if stages is None or name in stages for o in s.get("outs", [])}


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
                      .replace("  batch_size: 16", "  batch_size: 4", 1)  # tune (every run): a handful of clips
                      .replace("  batch_size: 64", "  batch_size: 16", 1))  # backbone: ~50 stills
    # the runs and the sweep keep params' tune.val_fraction 0.25: enough validation clips of the 24 smoke videos for
    # the sweep's objective, and abnormal training clips left for pairs batches of 4 (>= 2)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def pipeline(smoke_pipeline, tmp_path_factory) -> Path:
    """A copy of the session's one local Snakemake run of the smoke world (conftest: that run stays read-only, since
    another xdist worker may be copying it); every test here leaves this copy as it found it."""
    from conftest import copy_pipeline

    return copy_pipeline(smoke_pipeline, tmp_path_factory.mktemp("dag") / "pipeline")


@pytest.mark.slow
def test_run_records_every_stage_and_leaves_dvc_clean(pipeline):
    """Cost: the session's smoke run (conftest ``smoke_pipeline``, ~5 min on 2 cores, once per pytest run), then ~10 s."""
    lock = yaml.safe_load((pipeline / "dvc.lock").read_text())
    assert set(lock["stages"]) == ALL_STAGES
    assert_clean(pipeline)
    cmds = {s.name: s.cmd for s in dag.load_stages(pipeline)}
    for stage in ALL_STAGES:
        assert (pipeline / "logs" / "snakemake" / f"{dag.StageSpec(stage, '', (), ()).rule_name}.log").exists()
        # alertclip's own log is named by its command: `--variant` where the stage has one (synthesize@vagta_synth
        # runs plain `alertclip synthesize`: one world per profile)
        own = stage if "--variant" in cmds[stage] else stage.split("@")[0]
        assert (pipeline / "logs" / f"{own}.log").exists(), own
    report = (pipeline / "results" / "report.md").read_text(encoding="utf-8")
    for key in BACKBONES:
        assert key in report
    assert "VAGTA-synth" in report  # the dataset's column group
    assert len(list((pipeline / "results" / "report" / "figures").glob("*.png"))) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("old,new,expected", [
    ("clip_frames: 8", "clip_frames: 6", AFTER_FRAMES),
    # a key every run shares (`dvc exp run -S tune.warmup_steps=3`): every tuning run, tune@stage1 included, since each
    # declares params `tune` whole, and the sweep (params tune; it also trains from data/models/stage1)
    ("  warmup_steps: 5\n", "  warmup_steps: 3\n", AFTER_TUNE),
    # what `dvc exp run -S runs.full.lambda_hard=0` changes: the weights live in the rows, so one row's weight reruns
    # that run and what reads it (wise_ft, and the sweep, which searches runs.full) -- not the other runs, as the
    # shared stage2.lambda_hard once did
    ("lambda_hard: 1.0, init: stage1, negatives: hard", "lambda_hard: 0.0, init: stage1, negatives: hard",
     {"tune@full", "sweep"} | INTERPOLATE | REPORT | _per(AFTER_FULL)),
    # the curriculum: a change to stage1's row reruns the runs that start from it (and the sweep), not joint
    ("stage1: {losses: [global], init: backbone, negatives: hard, epochs: 12}",
     "stage1: {losses: [global], init: backbone, negatives: hard, epochs: 11}",
     {"tune@stage1", "sweep"} | {f"tune@{r}" for r in FROM_STAGE1} | INTERPOLATE | REPORT
     | _per(("stage1", *FROM_STAGE1, "wise_ft"))),
    # one run's definition, a run nothing starts from: only that run
    ("[global, region, hard], lambda_region: 1.0, lambda_hard: 1.0, init: backbone",
     "[global, region], lambda_region: 1.0, init: backbone", {"tune@joint"} | REPORT | _per(("joint",))),
    # leaf params: a new backbone is its own stages and the report; the existing evaluations stay current
    ("    joint: data/models/joint\n", "    joint: data/models/joint\n    extra: data/models/full\n",
     _per(("extra",)) | REPORT),
    # the prompts: read by the prompt evaluations, and by every tuning run (its validation AUC picks the kept epoch),
    # so on the base backbone only eval_mss and eval_zeroshot rerun; features, weakly, open vocabulary and retention
    # of base do not read them
    ('template: "a cctv video where {}"', 'template: "a cctv clip where {}"',
     {"eval_mss@base-synth", "eval_zeroshot@base-synth"} | AFTER_TUNE),
    # leaf params: one dataset's entry reruns that dataset's test set and stages only
    ("      name: VAGTA-synth\n", "      name: VAGTA synthetic\n", AFTER_DATASET),
    # the WiSE-FT mixing weight: the interpolated backbone alone
    ("tuned: data/models/full, alpha: 0.5}", "tuned: data/models/full, alpha: 0.25}",
     INTERPOLATE | _per(("wise_ft",)) | REPORT),
])
def test_param_edit_same_stale_set(pipeline, old, new, expected):
    """Cost: ~20 s a case (dvc status, dvc dag and snakemake -n, edited and restored)."""
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
    # one entry point for every run now (stage1.py and stage2.py were two): tune@stage1 reruns too, and with it the
    # sweep, which trains from data/models/stage1
    ("src/alertclip/stages/tune.py", AFTER_TUNE),
    ("src/alertclip/eval/zeroshot.py", REPORT | _per(BACKBONES, ("eval_mss", "eval_zeroshot"))),
    ("src/alertclip/eval/testset_check.py", AFTER_DATASET),
    ("src/alertclip/stages/checkpoint.py", REPORT | _per(BACKBONES)),
    ("src/alertclip/interpolation.py", INTERPOLATE | REPORT | _per(("wise_ft",))),
])
def test_code_edit_same_stale_set(pipeline, module, expected):
    """Cost: ~20 s a case (dvc status, dvc dag and snakemake -n, edited and restored)."""
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
    for sub in ("data/synth/published", "data/raw", "data/frames", "data/testsets", "data/checkpoints", "src/alertclip"):
        for p in (pipeline / sub).rglob("*"):
            os.utime(p)
    assert_clean(pipeline)


@pytest.mark.slow
def test_failure_keeps_and_records_finished_stages(pipeline):
    """A stage that fails leaves every stage that finished before it recorded; the rerun resumes there.

    Cost: ~1 min (download and frames twice, download once more)."""
    params = pipeline / "params.yaml"
    original = params.read_text()
    frames_py = pipeline / "src/alertclip/data/frames.py"
    frames_src = frames_py.read_text()
    try:
        params.write_text(original.replace("retries: 5", "retries: 4"))  # download reruns (harmless)
        call = "    return write_frames(plan_jobs(layout, settings), out_dir, settings, shard_mb, workers, progress)\n"
        assert call in frames_src  # extract_frames, the frames stage's body: the injection must land
        frames_py.write_text(frames_src.replace(call, "    raise RuntimeError('injected failure')\n", 1))
        proc = sh(pipeline, "snakemake", "--cores", "2", check=False)
        assert proc.returncode != 0
        assert "injected failure" in (pipeline / "logs" / "frames.log").read_text()
        status = dvc_status(pipeline)
        assert "frames" in status and "download" not in status  # download finished and was recorded
        frames_py.write_text(frames_src)
        download_log = (pipeline / "logs" / "download.log").read_text()
        # the rerun resumes at the failed stage: frames alone (a target, so the rest of the DAG -- stale only because
        # of the edited param upstream -- is rerun once below, after the param is restored, not twice)
        sh(pipeline, "snakemake", "--cores", "2", "frames")
        assert (pipeline / "logs" / "download.log").read_text() == download_log  # download did not run again
        assert not {"download", "frames"} & dvc_status(pipeline)
    finally:
        params.write_text(original)
        frames_py.write_text(frames_src)
    # download alone is stale now (its param is back, dvc.lock has retries 4): rerun as a target it writes the same
    # bytes, so nothing downstream of it has changed deps and both engines are clean (rerunning the whole DAG here, as
    # `snakemake` with no target does, cost ~4 min of CI and checked nothing more)
    assert dvc_status(pipeline) == {"download"}
    sh(pipeline, "snakemake", "--cores", "2", "download")
    assert_clean(pipeline)


@pytest.mark.slow
def test_repro_force_reproduces_identical_hashes(pipeline):
    """Cost: ~8 min on 2 cores: `dvc repro --force` runs all 71 stages one after another (the rerun_dags lane)."""
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


def test_new_run_needs_params_only(tmp_path):
    """A run added to params.yaml alone (a row of runs + a key of eval.backbones) becomes tune@<run>, starting from
    its init, and features@, checkpoint@ and every eval_*@ stage; the report's inputs (its folder deps, expanded for
    Snakemake) pick its training summary and results up. The row may set a tune key for itself (the sweep's best lr)."""
    root = _copy_repo(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["runs"]["region_only"] = {"losses": ["global", "region"], "lambda_region": 0.5, "init": "stage1",
                                     "negatives": "hard", "epochs": 8, "lr": 0.0003}
    params["eval"]["backbones"]["region_only"] = "data/models/region_only"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = load_params(root / "params.yaml")  # a valid row: what the stage trains with
    cfg = run_settings(p.tune, p.runs["region_only"], p.backbone.arch)
    assert (cfg.lr, cfg.lambda_region, cfg.lambda_hard, cfg.init) == (0.0003, 0.5, 0.0, "stage1")
    stages = dag.load_stages(root)
    specs = {s.name: s for s in stages}
    assert set(specs) == ALL_STAGES | {"tune@region_only"} | _per(("region_only",))
    run = specs["tune@region_only"]
    assert run.cmd == "alertclip tune --variant region_only"
    assert {d for d in run.deps if d.startswith("data/models/")} == {"data/models/stage1"}
    assert run.outs == ("data/models/region_only", "results/tune/region_only/metrics.json",
                        "results/tune/region_only/curve.csv")
    order = [s.name for s in stages]
    assert order.index("tune@stage1") < order.index("tune@region_only") < order.index("checkpoint@region_only")
    assert "data/models/region_only" in specs["checkpoint@region_only"].deps
    report_inputs = set(specs["report"].deps)
    for key in (*BACKBONES, "region_only"):
        for kind in EVALS:
            where = f"{key}/metrics.json" if kind == "eval_retention" else f"{key}/synth/metrics.json"
            assert f"results/{kind}/{where}" in report_inputs, (kind, key)
    assert "results/tune/region_only/metrics.json" in report_inputs


def test_each_run_starts_from_its_init_and_the_sweep_from_fulls():
    """tune@<run> reads the model its row's init names (the backbone or another run's output) and writes
    data/models/<run>; the sweep trains runs.full's recipe from runs.full's init; the report reads every run's
    training summary; nothing reads the sweep's results (a row of runs takes its best values by hand)."""
    stages = dag.load_stages(REPO)
    specs = {s.name: s for s in stages}
    order = [s.name for s in stages]
    runs = yaml.safe_load((REPO / "params.yaml").read_text())["runs"]
    assert tuple(runs) == RUNS
    assert tuple(r for r, row in runs.items() if row["init"] == "stage1") == FROM_STAGE1
    for run, row in runs.items():
        tune = specs[f"tune@{run}"]
        assert tune.cmd == f"alertclip tune --variant {run}"
        assert {d for d in tune.deps if d.startswith("data/models/")} == {f"data/models/{row['init']}"}, run
        assert tune.outs == (f"data/models/{run}", f"results/tune/{run}/metrics.json", f"results/tune/{run}/curve.csv")
        assert {f"results/tune/{run}/metrics.json", f"results/tune/{run}/curve.csv"} <= set(specs["report"].deps)
        if row["init"] != "backbone":
            assert order.index(f"tune@{row['init']}") < order.index(f"tune@{run}")
    assert runs["stage1"]["init"] == "backbone" and runs["full"]["init"] == "stage1"
    assert {d for d in specs["sweep"].deps if d.startswith("data/models/")} == {"data/models/stage1"}
    assert not [(s.name, d) for s in stages for d in s.deps if d.startswith("results/sweep")]


def test_default_dag_datasets_and_backbones():
    """The evaluation axis as dvc.yaml declares it: frames -> testset@<dataset> -> features@<backbone>-<dataset> ->
    eval_*@<backbone>-<dataset>, each backbone's weights through its checkpoint@<backbone> record, wise_ft through
    interpolate@wise_ft."""
    stages = dag.load_stages(REPO)
    specs = {s.name: s for s in stages}
    assert set(specs) == ALL_STAGES
    order = [s.name for s in stages]
    testset = specs["testset@synth"]
    # the ground truth (a file inside synthesize's output directory) maps to that directory for Snakemake
    assert {"data/frames", "data/synth/published"} <= set(testset.deps)
    assert testset.outs == ("data/testsets/synth", "results/testsets/synth/summary.json")
    assert order.index("frames") < order.index("testset@synth") < order.index("features@base-synth")
    interp = specs["interpolate@wise_ft"]
    assert {"data/models/backbone", "data/models/full"} <= set(interp.deps)
    assert interp.outs == ("data/models/interpolated/wise_ft",)
    assert order.index("tune@full") < order.index("interpolate@wise_ft") < order.index("checkpoint@wise_ft")
    models = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["backbones"]
    for bb in BACKBONES:
        record = f"data/checkpoints/{bb}.json"
        assert models[bb] in specs[f"checkpoint@{bb}"].deps and specs[f"checkpoint@{bb}"].outs == (record,)
        features = specs[f"features@{bb}-synth"]
        assert {record, "data/testsets/synth"} <= set(features.deps) and models[bb] not in features.deps
        assert features.outs == (f"data/features/{bb}/synth",)
        for kind in EVALS[:-1]:
            ev = specs[f"{kind}@{bb}-synth"]
            assert {record, f"data/features/{bb}/synth", "data/testsets/synth"} <= set(ev.deps), ev.name
            assert all(o.startswith(f"results/{kind}/{bb}/synth/") for o in ev.outs), ev.outs
        retention = specs[f"eval_retention@{bb}"]
        assert record in retention.deps and retention.outs == (f"results/eval_retention/{bb}/metrics.json",)
    assert "data/testsets/synth" in specs["report"].deps


def test_features_of_the_sources_own_videos_follow_the_frames(tmp_path):
    """features@<bb>-<ds> reads data/frames when the dataset's videos are the source's own, but the matrix declares
    only data/testsets/<ds>: that test set holds a digest of data/frames, so a frames rerun reaches the features."""
    from alertclip.eval.testset_check import tree_digest

    specs = {s.name: s for s in dag.load_stages(REPO)}
    assert "data/frames" in specs["testset@synth"].deps
    assert "data/testsets/synth" in specs["features@base-synth"].deps
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "snippets-000.npy").write_bytes(b"\x00" * 64)
    (tmp_path / "media.parquet").write_bytes(b"m")
    first = tree_digest(tmp_path)
    assert tree_digest(tmp_path) == first
    (tmp_path / "a" / "snippets-000.npy").write_bytes(b"\x00" * 63 + b"\x01")
    second = tree_digest(tmp_path)
    assert second != first
    (tmp_path / "a" / "snippets-000.npy").rename(tmp_path / "a" / "snippets-001.npy")
    third = tree_digest(tmp_path)
    assert third not in (first, second)
    (tmp_path / ".snakemake_timestamp").write_bytes(b"")  # Snakemake's marker in a directory output: not data
    assert tree_digest(tmp_path) == third


def test_second_dataset_needs_params_only(tmp_path):
    """A dataset added to params.yaml alone (eval.datasets + its key in eval.evaluate.zeroshot) becomes exactly its
    test set, features for every backbone and the zero-shot evaluations, in DVC and in Snakemake; the report's inputs
    (its folder deps, expanded for Snakemake) pick the new results up."""
    root = _copy_repo(tmp_path)
    before = {s.name for s in dag.load_stages(root)}
    assert before == ALL_STAGES
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["eval"]["datasets"]["xd"] = {"name": "XD-Violence", "format": "xd", "ground_truth": "data/xd/annotations.txt",
                                        "videos": "data/xd/videos", "normal_markers": None, "prompts": None,
                                        "detection_ground_truth": None, "class_prompts": None, "metrics": ["ap"]}
    params["eval"]["evaluate"]["zeroshot"].append("xd")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    added = {"testset@xd"} | _per(BACKBONES, ("features", "eval_zeroshot"), ("xd",))

    dvc_stages = set(sh(root, "dvc", "stage", "list", "--name-only").stdout.split())
    assert dvc_stages - before == added and before <= dvc_stages
    stages = dag.load_stages(root)
    specs = {s.name: s for s in stages}
    assert set(specs) == dvc_stages
    assert not {n for n in specs if n.endswith("-xd") and n.split("@")[0] in ("eval_mss", "eval_weakly", "eval_openvocab")}
    rules = {line.split()[0] for line in sh(root, "snakemake", "--list-rules").stdout.splitlines() if line.strip()}
    rules -= {"all"}
    assert rules == {s.rule_name for s in stages}

    assert {"data/xd/annotations.txt", "data/xd/videos"} <= set(specs["testset@xd"].deps)
    for bb in BACKBONES:
        assert "data/testsets/xd" in specs[f"features@{bb}-xd"].deps
        assert specs[f"features@{bb}-xd"].outs == (f"data/features/{bb}/xd",)
        assert f"data/features/{bb}/xd" in specs[f"eval_zeroshot@{bb}-xd"].deps
    report_inputs = set(specs["report"].deps)
    assert {"data/testsets/synth", "data/testsets/xd"} <= report_inputs
    for bb in BACKBONES:
        assert f"results/eval_zeroshot/{bb}/xd/metrics.json" in report_inputs, bb
        assert f"results/eval_zeroshot/{bb}/xd/scores.parquet" in report_inputs, bb
        assert f"results/eval_zeroshot/{bb}/synth/metrics.json" in report_inputs, bb
    assert not {d for d in report_inputs if "/xd/" in d and not d.startswith("results/eval_zeroshot/")}


def test_parent_and_child_deps_map_to_stage_outputs_for_snakemake():
    """DVC links a dep to a stage whose output lies inside it or contains it; Snakemake matches exact paths."""
    specs = [dag.StageSpec("pub", "make pub", (), ("data/pub", "results/pub.json"), dir_outs=frozenset({"data/pub"})),
             dag.StageSpec("ev@a", "make a", (), ("results/ev/a/m.json",)),
             dag.StageSpec("ev@b", "make b", (), ("results/ev/b/m.json", "results/ev/b/s.csv")),
             dag.StageSpec("use", "make use", ("data/pub/annotations/gt.txt", "data/pub", "results/ev", "results/pub.json",
                                               "src/use.py", "data/public.txt"), ("out.txt",))]
    use = {s.name: s for s in dag.expand_parent_deps(specs)}["use"]
    assert use.deps == ("data/pub",  # a file inside a directory output, and the directory itself: once
                        "results/ev/a/m.json", "results/ev/b/m.json", "results/ev/b/s.csv",  # a parent of outputs
                        "results/pub.json", "src/use.py", "data/public.txt")  # not inside anything: as they are


@pytest.mark.slow
def test_dry_run_writes_nothing_on_the_smoke_world(pipeline):
    """Cost: ~45 s (every dry-run flavour, each snapshotting the repository before and after)."""
    params = pipeline / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("clip_frames: 8", "clip_frames: 6", 1))
    try:
        assert_dry_runs_write_nothing(pipeline, AFTER_FRAMES)
    finally:
        params.write_text(original)
    assert_clean(pipeline)


# Dry runs write nothing; only the stages finished in a run are recorded (the smoke world above, a toy world below).

DRY_RUNS = (("-n",), ("--dry-run",), ("--summary",), ("--list-changes", "input"), ("-l",))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` but ``.git``: (mtime in ns, size)."""
    snap = {}
    for top, dirs, files in os.walk(root):
        if Path(top) == root:
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            snap[path.relative_to(root).as_posix()] = (st.st_mtime_ns, st.st_size)
    return snap


def _writes(root: Path, action) -> set[str]:
    """Paths that ``action()`` creates, modifies or removes under ``root``."""
    before = _snapshot(root)
    action()
    after = _snapshot(root)
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


TRIVIAL_SNAKEFILE = 'rule all:\n    input: "a.txt"\n\n\nrule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'


def _tools_own_writes(root: Path) -> tuple[set[str], set[str]]:
    """What the tools write in a dry run with no code of ours: Snakemake on a one-rule Snakefile (every dry-run flavour,
    in a fresh directory) and ``dvc status`` in ``root``. Returns (exact paths, directories where new files may appear:
    Snakemake names its logs by the time)."""
    tmp = Path(tempfile.mkdtemp(prefix="snakemake-baseline-"))
    try:
        (tmp / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
        paths = set().union(*(_writes(tmp, lambda f=flags: sh(tmp, "snakemake", "--cores", "1", *f)) for flags in DRY_RUNS))
        file_dirs = {str(Path(p).parent) for p in paths if (tmp / p).is_file()}
    finally:
        shutil.rmtree(tmp)
    return paths | _writes(root, lambda: sh(root, "dvc", "status", "--quiet", check=False)), file_dirs


def _summary_pending(out: str, root: Path) -> set[str]:
    """The stages whose outputs ``snakemake --summary`` plans to update."""
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    stages = _rule_stages(root)
    return {stages.get(r[2], r[2]) for r in rows[1:] if r[-1] == "update pending"}


def assert_dry_runs_write_nothing(root: Path, expected: set[str]) -> None:
    """Every dry-run flavour leaves the repository (``.snakemake/`` included) as it was, but for what Snakemake and DVC
    write by themselves, and lists exactly the stages `dvc status` implies."""
    own_paths, own_file_dirs = _tools_own_writes(root)
    assert dvc_would_run(root) == expected
    out = {}

    def dry_run(flags: tuple[str, ...]) -> None:
        out[flags] = sh(root, "snakemake", "--cores", "1", *flags).stdout

    for flags in DRY_RUNS:
        written = _writes(root, lambda: dry_run(flags))
        ours = {p for p in written if p not in own_paths and str(Path(p).parent) not in own_file_dirs}
        assert not ours, f"snakemake {' '.join(flags)} wrote {sorted(ours)}"
    assert _jobs_listed(out[("-n",)], root) == _jobs_listed(out[("--dry-run",)], root) == expected
    assert _summary_pending(out[("--summary",)], root) == expected


TOY_FILES = {
    "dvc.yaml": """\
stages:
  a:
    cmd: sh code/a/run.sh
    deps: [code/a]
    params: [{toy.yaml: [a]}]
    outs: [out/a.txt]
  b:
    cmd: sh code/b.sh
    deps: [out/a.txt, code/b.sh]
    params: [{toy.yaml: [b]}]
    outs: [out/b.txt]
  c:
    cmd: sh code/c.sh
    deps: [code/c.sh]
    params: [{toy.yaml: [c]}]
    outs: [out/c]
""",
    "toy.yaml": "a: 1\nb: 1\nc: 1\n",
    "code/a/run.sh": "mkdir -p out && cat toy.yaml code/a/data.txt > out/a.txt\n",
    "code/a/data.txt": "data\n",  # a file inside a code directory dep
    "code/b.sh": "cat out/a.txt > out/b.txt\n",
    "code/c.sh": "mkdir -p out/c && cat toy.yaml > out/c/c.txt\n",
    ".gitignore": "/out\n/logs\n/.snakemake\n",
}


@pytest.fixture
def toy(tmp_path) -> Path:
    """Three stages through the real workflow/ (a -> b, and c with a directory output on its own), run and recorded."""
    root = tmp_path / "toy"
    shutil.copytree(REPO / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("params.yaml", ".dvcignore", "src/alertclip/__init__.py", "src/alertclip/dag.py"):  # params: validated
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    for rel, text in TOY_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    sh(root, "dvc", "init", "-q")
    sh(root, "snakemake", "--cores", "2")
    assert_clean(root)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.slow
def test_dry_run_writes_nothing_and_lists_exactly_the_stale_stages(toy):
    (toy / "code/a/data.txt").write_text("data, edited\n")  # a file inside a's code directory: a and b are stale
    time.sleep(0.01)
    for rel in ("code/c.sh", "out/c", "out/c/c.txt", "toy.yaml"):  # fresh mtimes alone rerun nothing
        os.utime(toy / rel)
    assert_dry_runs_write_nothing(toy, {"a", "b"})
    assert "Nothing to be done" in sh(toy, "snakemake", "-n", "c").stdout  # forcing follows the targets
    (toy / "code/a/data.txt").write_text(TOY_FILES["code/a/data.txt"])
    _edit(toy / "toy.yaml", "c: 1", "c: 2")  # a param alone
    assert_engines_agree(toy, {"c"})
    sh(toy, "snakemake", "--cores", "2")
    assert_clean(toy)


@pytest.mark.slow
def test_stage_finished_by_a_killed_run_is_not_committed_later(toy):
    _edit(toy / "toy.yaml", "a: 1", "a: 2")  # a and b are stale
    (toy / "code/b.sh").write_text("sleep 120\n" + TOY_FILES["code/b.sh"])
    (toy / "logs/snakemake/b.log").unlink()
    proc = subprocess.Popen(["snakemake", "--cores", "1", "out/b.txt"], cwd=toy, env=_env(toy), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (toy / "logs/snakemake/b.log").exists():  # b started, so a finished
            assert proc.poll() is None and time.monotonic() < deadline, "b never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert "a: 2" in (toy / "out/a.txt").read_text()  # a completed in the killed run, and is not recorded
    assert dvc_status(toy) == {"a", "b"}
    sh(toy, "snakemake", "--unlock")  # the killed run's locks, as Snakemake asks
    # What the Snakefile used to leave after such a kill, and a later run committed: a run marker for a.
    (toy / ".snakemake/alertclip_ran").mkdir(parents=True, exist_ok=True)
    (toy / ".snakemake/alertclip_ran/a").touch()

    _edit(toy / "toy.yaml", "c: 1", "c: 2")
    sh(toy, "snakemake", "--cores", "1", "c")  # a later run that completes c alone
    assert dvc_status(toy) == {"a", "b"}  # c is recorded; a is not, though its outputs are complete

    (toy / "code/b.sh").write_text(TOY_FILES["code/b.sh"])
    assert_engines_agree(toy, {"a", "b"})
    sh(toy, "snakemake", "--cores", "1")
    assert_clean(toy)


def _spec(name: str, deps: tuple[str, ...] = (), outs: tuple[str, ...] = ()) -> dag.StageSpec:
    return dag.StageSpec(name, f"make {name}", deps, outs)


TARGET_STAGES = [_spec("a", outs=("out/a.txt",)), _spec("b", ("out/a.txt",), ("out/b.txt",)),
                 _spec("c", outs=("out/c",)), _spec("d@x", ("out/c/part.txt", "src/d.py"), ("out/d.txt",))]


@pytest.mark.parametrize("targets,needed", [
    ((), {"a", "b", "c", "d@x"}),
    (("all",), {"a", "b", "c", "d@x"}),
    (("b",), {"a", "b"}),
    (("out/b.txt",), {"a", "b"}),
    (("./out/a.txt",), {"a"}),
    (("out/c/",), {"c"}),
    (("d__x",), {"c", "d@x"}),  # a dep inside another stage's directory output
    (("out/a.txt", "out/d.txt"), {"a", "c", "d@x"}),
])
def test_needed_stages_follow_the_targets(targets, needed):
    assert dag.needed_stages(TARGET_STAGES, targets) == needed


def test_rules_to_force_are_the_stale_stages_the_targets_need():
    stale = {"b", "c", "d@x"}
    assert dag.rules_to_force(TARGET_STAGES, stale) == {"b", "c", "d__x"}
    assert dag.rules_to_force(TARGET_STAGES, stale, ["out/b.txt"]) == {"b"}
    assert dag.rules_to_force(TARGET_STAGES, stale, [str(Path("out/d.txt").absolute())]) == {"c", "d__x"}
    assert dag.rules_to_force(TARGET_STAGES, set(), ["all"]) == set()


def test_stages_to_record_only_finished_jobs_with_every_output(tmp_path):
    stages = [_spec("a", outs=("out/a.txt",)), _spec("b", outs=("out/b.txt", "out/b")), _spec("c@x", outs=("out/c.txt",))]
    (tmp_path / "out/b").mkdir(parents=True)
    for rel in ("out/a.txt", "out/b.txt", "out/c.txt"):
        (tmp_path / rel).write_text("x")
    assert dag.stages_to_record(stages, {"a", "b", "c__x", "all"}, tmp_path) == ["a", "b", "c@x"]
    assert dag.stages_to_record(stages, {"a"}, tmp_path) == ["a"]  # c's outputs exist, but its job did not run
    (tmp_path / "out/b.txt").unlink()
    assert dag.stages_to_record(stages, {"a", "b"}, tmp_path) == ["a"]  # b is missing an output
    assert dag.stages_to_record(stages, set(), tmp_path) == []
