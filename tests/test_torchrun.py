"""Multi-GPU stages from the workflow: a job with ``gpu`` > 1 runs its stage under ``torchrun`` (dag.launch_command).

The fast tests check the command itself. The slow ones start from the session's Snakemake run of the smoke world
(conftest ``smoke_pipeline``), copy it, and rerun ``tune@stage1`` (rule ``tune__stage1``) through Snakemake with
``--set-resources tune__stage1:gpu=2``: two gloo processes on CPU must give the single-process weights
(tests/test_ddp.py's tolerance) and leave ``tune@stage1`` recorded in ``dvc.lock``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import copy_pipeline
from test_dag import dvc_status, dvc_would_run, recorded_outs, sh, snakemake_would_run

from alertclip import dag

REPO = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 2e-5  # tests/test_ddp.py: 2 gloo processes against 1, on the weights
# the stage's weight files (state dicts): towers (OpenCLIP checkpoint, {"state_dict", "arch"}) and temporal module
WEIGHTS = ("open_clip_model.pt", "temporal.pt")
TORCHRUN_STAGE1 = "torchrun --standalone --nproc_per_node 2 -m alertclip tune --variant stage1"
STAGE1, RULE1 = "tune@stage1", "tune__stage1"  # the stage of runs.stage1 and its Snakemake rule


def _spec(name: str, cmd: str) -> dag.StageSpec:
    return dag.StageSpec(name, cmd, (), ())


@pytest.mark.parametrize("gpus", [0, 1])
def test_one_gpu_or_none_runs_the_plain_command(gpus):
    for stage in (_spec(STAGE1, "alertclip tune --variant stage1"), _spec("tune@full", "alertclip tune --variant full"),
                  _spec("backbone", "alertclip backbone")):
        assert dag.launch_command(stage, gpus) == stage.cmd


def test_several_gpus_run_data_parallel_stages_under_torchrun():
    assert dag.DATA_PARALLEL == frozenset({"tune"})  # every tuning run, whatever its row of params runs
    assert dag.launch_command(_spec(STAGE1, "alertclip tune --variant stage1"), 2) == TORCHRUN_STAGE1
    assert (dag.launch_command(_spec("tune@full", "alertclip tune --variant full"), 2)
            == "torchrun --standalone --nproc_per_node 2 -m alertclip tune --variant full")
    assert dag.launch_command(_spec("tune@joint", "alertclip tune --variant joint"), 4).startswith(
        "torchrun --standalone --nproc_per_node 4 -m alertclip tune --variant joint")
    # `torchrun -m alertclip` runs `python -m alertclip`: the package needs its __main__
    assert importlib.util.find_spec("alertclip.__main__") is not None


@pytest.mark.parametrize("name,cmd", [("backbone", "alertclip backbone"), ("sweep", "alertclip sweep"),
                                      ("eval_mss@stage1-synth", "alertclip eval_mss --variant stage1-synth"),
                                      ("publish@full", "alertclip publish --variant full")])
def test_several_gpus_on_other_stages_fail_naming_the_stage(name, cmd):
    with pytest.raises(ValueError, match=f"stage {name}: gpu=2"):
        dag.launch_command(_spec(name, cmd), 2)


def test_data_parallel_stages_are_alertclip_commands_in_dvc_yaml():
    # launch_command swaps the leading `alertclip` for `torchrun ... -m alertclip`: the real commands must start so
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert dag.DATA_PARALLEL <= set(stages)
    for name in dag.DATA_PARALLEL:
        cmd = stages[name].get("cmd") or stages[name]["do"]["cmd"]
        assert cmd.startswith(f"alertclip {name}"), (name, cmd)
    # and each has its execution hints (workflow/resources.yaml, by the name before "@"): a GPU by default
    hints = yaml.safe_load((REPO / "workflow" / "resources.yaml").read_text())
    assert all(hints[name]["gpu"] == 1 for name in dag.DATA_PARALLEL)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in WEIGHTS:
        state = torch.load(model_dir / name, map_location="cpu", weights_only=True)
        out.update({f"{name}:{k}": v for k, v in state.get("state_dict", state).items()})
    return out


@pytest.mark.slow
def test_snakemake_runs_stage1_on_two_gloo_processes(smoke_pipeline, tmp_path):
    """Cost: ~45 s (tune@stage1 on two gloo processes, on a copy of the session's smoke run)."""
    root = copy_pipeline(smoke_pipeline, tmp_path / "p")
    log, rank1_log = root / "logs" / f"{STAGE1}.log", root / "logs" / f"{STAGE1}.rank1.log"
    assert "1 process(es)" in log.read_text() and not rank1_log.exists()  # the session's run: one process
    before = len(log.read_text())  # alertclip appends to its log
    # Snakemake caps each job's request at the global --resources (the default profile's gpu=1): one process still.
    capped = sh(root, "snakemake", "-n", "-p", "--resources", "gpu=1", "--set-resources", f"{RULE1}:gpu=2", "--forcerun", RULE1,
                "--", RULE1).stdout
    assert "(alertclip tune --variant stage1) >" in capped and "torchrun" not in capped

    run = sh(root, "snakemake", "-p", "--cores", "2", "--resources", "gpu=2", "--set-resources", f"{RULE1}:gpu=2",
             "--forcerun", RULE1, "--", RULE1)
    assert f"({TORCHRUN_STAGE1}) >" in run.stdout + run.stderr
    assert "1 of 1 steps (100%) done" in run.stdout + run.stderr  # tune@stage1 alone, nothing downstream

    # Both ranks ran: each logs its start and the process count (stderr of both goes to the job's log); rank 0 appends
    # to logs/tune@stage1.log, rank 1 writes logs/tune@stage1.rank1.log.
    job_log = (root / "logs" / "snakemake" / f"{RULE1}.log").read_text()
    assert f"stage tune started (log: logs/{STAGE1}.log)" in job_log
    assert f"stage tune started (log: logs/{STAGE1}.rank1.log)" in job_log
    assert job_log.count(", 2 process(es), ") == 2
    new = log.read_text()[before:]
    assert ", 2 process(es), " in new and "'processes': 2" in new and "stage tune done" in new
    assert ", 2 process(es), " in rank1_log.read_text()

    # Same training as the single-process run (tests/test_ddp.py's tolerance), and the same kept epoch.
    one, two = _weights(smoke_pipeline / "data" / "models" / "stage1"), _weights(root / "data" / "models" / "stage1")
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=RTOL, atol=ATOL, msg=k)
    m1, m2 = (json.loads((r / "results" / "tune" / "stage1" / "metrics.json").read_text()) for r in (smoke_pipeline, root))
    assert m2["run"] == m1["run"] == "stage1"
    assert m2["best_epoch"] == m1["best_epoch"] and m2["selected_on"] == m1["selected_on"]
    assert [v["auc"] for v in m2["val"]] == pytest.approx([v["auc"] for v in m1["val"]], abs=1e-9)
    base = torch.load(root / "data" / "models" / "backbone" / "open_clip_model.pt", weights_only=True)["state_dict"]
    moved = sum(not torch.equal(two[f"open_clip_model.pt:{k}"], v) for k, v in base.items())
    assert moved > 10  # tune@stage1 trained the image tower, so the comparison above is not vacuous

    # Recorded in dvc.lock: tune@stage1 is current. Two processes sum in another order, so its bytes differ from the
    # first run's (weights within the tolerance, not equal): every output's hash changed, and exactly the stages reading
    # one of them are now stale by `dvc status` (their deps changed), the rest of the downstream only through them.
    assert any(not torch.equal(one[k], two[k]) for k in one)
    old, new_outs = recorded_outs(smoke_pipeline, {STAGE1}), recorded_outs(root, {STAGE1})
    changed = {p for p in new_outs if new_outs[p] != old[p]}
    assert changed == set(old) == {"data/models/stage1", "results/tune/stage1/metrics.json", "results/tune/stage1/curve.csv"}
    readers = {s.name for s in dag.load_stages(root)
               if s.name != STAGE1 and any(dag._overlaps(d, o) for d in s.deps for o in changed)}
    # at least these read them (a superset: stages that read the stage1 weights, such as publish@stage1, get added):
    # the sweep (it trains runs.full from runs.full.init) and the runs that start from stage1, not joint (the backbone)
    assert readers >= {"sweep", "checkpoint@stage1", "report"} | {f"tune@{v}" for v in ("full", "no_hard", "standard_neg")}
    assert "tune@joint" not in readers
    assert dvc_status(root) == readers
    assert snakemake_would_run(root) == dvc_would_run(root)  # and both engines would rerun the same downstream


@pytest.mark.slow
def test_several_gpus_on_another_stage_stop_the_run_naming_it(smoke_pipeline, tmp_path):
    root = copy_pipeline(smoke_pipeline, tmp_path / "p")
    proc = sh(root, "snakemake", "-n", "--resources", "gpu=2", "--set-resources", "backbone:gpu=2", "--forcerun",
              "backbone", "--", "backbone", check=False)
    assert proc.returncode != 0
    assert "stage backbone: gpu=2, but only ['tune'] train data-parallel" in proc.stdout + proc.stderr
