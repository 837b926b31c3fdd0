"""A slice of the smoke world's DAG as SLURM jobs, through ``workflow/profiles/slurm`` and snakemake-executor-plugin-slurm, on a
real single-node SLURM the test starts (tests/slurm_cluster.py: Debian's slurm-wlm and munge).

What must hold on a cluster exactly as on one machine: every stage is one sbatch job sized by workflow/resources.yaml
(CPUs, memory, wall time, GPUs for the training stages), each with its own log; a cancelled job is reported and a rerun
continues from what finished; at the end dvc.lock records the same output hashes as the session's local run, and
``dvc status`` / ``snakemake -n`` have nothing to do.

Settings only this test cluster needs, passed on the command line so the profile stays what a user runs: no accounting
database (so job states come from ``squeue``, ``MinJobAge`` keeping finished jobs listed), status checks every few
seconds instead of the plugin's 40 s, and ``--max-threads`` = the node's 2 CPUs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import slurm_cluster
import yaml
from conftest import copy_pipeline
from test_dag import _copy_repo, _env, assert_clean, dvc_status, dvc_would_run, recorded_outs

from alertclip import dag

pytestmark = pytest.mark.slow

PROFILE = "workflow/profiles/slurm"
TEST_CLUSTER_ARGS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                     "--max-threads", "2")
CANCELLED = "tune@stage1"  # the stage whose job is scancel'led mid-run: late enough that stages before it are recorded


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = slurm_cluster.unavailable()
    if why:
        pytest.skip(why)
    with slurm_cluster.slurm_cluster(tmp_path_factory.mktemp("slurm")) as c:
        yield c


def _snakemake(*args: str, profile: str = PROFILE) -> list[str]:
    return ["snakemake", "--workflow-profile", profile, *TEST_CLUSTER_ARGS, *args]


def _run(root: Path, cluster, *args: str, profile: str = PROFILE, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(_snakemake(*args, profile=profile), cwd=root, env={**_env(root), **cluster.env},
                          capture_output=True, text=True, timeout=timeout)


def _job_table(cluster) -> list[dict[str, str]]:
    """Every job SLURM knows (MinJobAge keeps finished ones), as ``scontrol --details show job`` fields: JobId,
    JobState, Comment (the plugin's ``rule_<name>``), NumCPUs, MinMemoryNode, TimeLimit, TresPerJob (the GPUs asked
    for) and JOB_GRES (those allocated)."""
    out = cluster.run("scontrol", "--details", "show", "job", "--oneliner").stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


def _rule(job: dict[str, str]) -> str:
    return re.sub(r"^rule_", "", job.get("Comment", "")).split("_wildcards_")[0]


def _cancel_when_running(cluster, proc: subprocess.Popen, rule: str, timeout: float = 1200) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for job in _job_table(cluster):
            if _rule(job) == rule and job["JobState"] == "RUNNING":
                cluster.run("scancel", job["JobId"])
                return job["JobId"]
        time.sleep(1)
    raise AssertionError(f"no running {rule} job appeared (snakemake exit {proc.poll()})")


# The slice of the DAG run as SLURM jobs: the stages after `frames` up to one evaluation of tune@stage1's model, on a
# copy of the session's finished smoke run with the first three's outputs deleted. Seven jobs instead of the whole DAG
# (~70): the cluster behaviour under test (resources per job, a cancel, a resume, the local run's bytes) is the same
# for every job, and a whole-DAG SLURM run cost ~9.5 min of CI.
SLICE_RESET = ("curate", "hardneg", "backbone")  # outputs deleted: these and everything after them are stale
SLICE_TARGET = "eval_zeroshot@stage1-synth"  # the slice's end; what it needs of the stale stages is the slice
SLICE = {*SLICE_RESET, CANCELLED, "checkpoint@stage1", "features@stage1-synth", SLICE_TARGET}


def test_dag_slice_as_slurm_jobs_survives_a_cancel_and_matches_the_local_run(cluster, smoke_pipeline, tmp_path):
    """Cost: ~4.5 min beside the other lane (cluster start, 7 SLURM jobs, 4 of them twice, status checks every few
    seconds), on a copy of the session's smoke run; the whole DAG as SLURM jobs took ~9.5 min alone."""
    root = copy_pipeline(smoke_pipeline, tmp_path / "repo")
    specs = {s.name: s for s in dag.load_stages(root)}
    for name in SLICE_RESET:
        for out in specs[name].outs:
            path = root / out
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    target = specs[SLICE_TARGET].rule_name
    assert dag.needed_stages(list(specs.values()), [target]) & dvc_would_run(root) == SLICE  # the slice, as both see it

    first = subprocess.Popen(_snakemake("--", target), cwd=root, env={**_env(root), **cluster.env},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cancelled = _cancel_when_running(cluster, first, specs[CANCELLED].rule_name)  # tune__stage1
    out, _ = first.communicate(timeout=1800)
    assert first.returncode != 0
    # Snakemake reports the job SLURM cancelled, by its SLURM id and state
    assert re.search(rf"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED", out), out[-3000:]
    stale = dvc_status(root)
    assert not set(SLICE_RESET) & stale, f"stages finished before the cancel are recorded: {set(SLICE_RESET) & stale}"
    assert CANCELLED in stale

    jobs_before = {j["JobId"] for j in _job_table(cluster)}
    second = _run(root, cluster, "--", target)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    rerun = {_rule(j) for j in _job_table(cluster) if j["JobId"] not in jobs_before}
    assert rerun == {specs[s].rule_name for s in SLICE - set(SLICE_RESET)}, "it started over, or ran more than was left"

    # the same bytes as one machine's run, recorded; both engines agree nothing is left (the stages after the slice
    # read outputs whose hashes did not change)
    assert recorded_outs(root) == recorded_outs(smoke_pipeline)
    assert_clean(root)

    # every stage of the slice, and nothing else, was a SLURM job sized by resources.yaml, with its own log
    by_rule = {}
    for job in _job_table(cluster):
        by_rule.setdefault(_rule(job), []).append(job)
    assert set(by_rule) == {specs[s].rule_name for s in SLICE}, f"jobs outside the slice: {set(by_rule)}"
    backbone = by_rule["backbone"][-1]  # resources.yaml: threads all (--max-threads 2), 8000 MB, 720 min, 1 GPU
    assert (backbone["NumCPUs"], backbone["MinMemoryNode"], backbone["TimeLimit"]) == ("2", "8000M", "12:00:00"), backbone
    assert backbone["TresPerJob"] == "gres:gpu:1" and backbone["JOB_GRES"] == "gpu:1", backbone  # a GPU, and allocated
    evaluation = by_rule[target][-1]  # resources.yaml: threads 1, 2000 MB, the default 60 min, no GPU
    assert (evaluation["NumCPUs"], evaluation["MinMemoryNode"], evaluation["TimeLimit"]) == ("1", "2000M", "01:00:00"), evaluation
    assert "gpu" not in evaluation.get("TresPerJob", "") + evaluation.get("JOB_GRES", ""), evaluation  # absent or (null)
    for rule, jobs in by_rule.items():
        for job in jobs:
            assert list((root / "logs" / "slurm" / f"rule_{rule}").rglob(f"{job['JobId']}.log")), (rule, job["JobId"])


def test_profile_naming_a_missing_partition_surfaces_slurms_error(cluster, tmp_path):
    root = _copy_repo(tmp_path / "repo")
    bad = root / "workflow" / "profiles" / "slurm-bad"
    bad.mkdir()
    profile = yaml.safe_load((root / PROFILE / "config.yaml").read_text())
    profile["default-resources"] = {"slurm_partition": "nosuch"}
    (bad / "config.yaml").write_text(yaml.safe_dump(profile))
    proc = _run(root, cluster, "--", "data/synth/published", profile=str(bad.relative_to(root)), timeout=300)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "invalid partition specified: nosuch" in text.lower(), text[-3000:]  # sbatch's own words
    assert not (root / "data" / "synth" / "published").exists()

