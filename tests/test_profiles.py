"""Profiles (profiles/<name>.yaml merged into params.yaml) and the real profile's DAG: nothing synthetic in it.

The DAG tests resolve the real profile in a copy of the repository through both engines (DVC's own stage list and a
Snakemake dry run) with empty stand-ins for the datasets the profile names (a dry run needs the files to exist, not
to hold data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from test_dag import _copy_repo, _jobs_listed, sh  # a git copy of the repository; a command in it

from alertclip import dag
from alertclip.params import ParamsError, load_params, parse_params
from alertclip.profiles import ProfileError, apply_profile

REPO = Path(__file__).resolve().parents[1]
REAL = ("ucf_vagta", "msad_vagta")
PAPER_METRICS = {"ucf": ["auc"], "xd": ["ap"], "ubnormal": ["auc", "ap"], "msad": ["auc", "ap"]}


def _stand_ins(root: Path) -> None:
    """Empty files and folders where the profile expects each dataset (what a dry run checks exists)."""
    p = load_params(root / "params.yaml")
    for ds in p.eval.datasets.values():
        (root / ds.ground_truth).parent.mkdir(parents=True, exist_ok=True)
        (root / ds.ground_truth).touch()
        if not ds.own_frames:
            (root / ds.videos).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def params_copy(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes((REPO / "params.yaml").read_bytes())
    return path


def _settings(path: Path) -> dict:
    return parse_params(yaml.safe_load(path.read_text())).model_dump()


@pytest.mark.parametrize("name", REAL)
def test_real_profile_then_synthetic_gives_the_default_back(params_copy, name):
    before = _settings(params_copy)
    changed = apply_profile(name, params_copy, REPO / "profiles")
    assert {"data.source", "data.world", "eval.datasets", "backbone.pretrained"} <= set(changed)
    real = load_params(params_copy)
    assert real.data.source == name and real.data.world == {}
    assert set(real.data.inputs.model_dump().values()) <= {"data/raw", "src/alertclip/data/download"}
    assert real.backbone.pretrained and real.features.crops == 10
    apply_profile("synthetic", params_copy, REPO / "profiles")
    assert _settings(params_copy) == before
    assert "# Switch with `alertclip profile ucf_vagta`" in params_copy.read_text()  # comments survive the round trip


@pytest.mark.parametrize("name", REAL)
def test_real_profiles_list_the_four_benchmarks_with_the_papers_metrics(params_copy, name):
    apply_profile(name, params_copy, REPO / "profiles")
    p = load_params(params_copy)
    assert {k: ds.metrics for k, ds in p.eval.datasets.items()} == PAPER_METRICS
    assert set(p.eval.evaluate.zeroshot) == set(PAPER_METRICS)
    own = {k for k, ds in p.eval.datasets.items() if ds.own_frames}
    assert own == {"ucf" if name == "ucf_vagta" else "msad"}
    assert p.eval.evaluate.weakly == sorted(own) and p.eval.evaluate.openvocab == sorted(own)
    assert p.eval_retention.imagenet is not None and p.eval_retention.coco is not None
    assert not any("data/synth" in v for v in json.dumps(p.model_dump()).split('"') if v.startswith("data/"))


def test_a_profile_that_breaks_params_writes_nothing(params_copy, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "broken.yaml").write_text("data:\n  source: ucf_vagta\n")  # world and inputs left synthetic
    original = params_copy.read_bytes()
    with pytest.raises(ProfileError) as err:
        apply_profile("broken", params_copy, profiles)
    assert "broken.yaml" in str(err.value) and "data.world" in str(err.value)
    assert params_copy.read_bytes() == original
    with pytest.raises(ProfileError, match=r"nope\.yaml: no such profile \(known: broken\)"):
        apply_profile("nope", params_copy, profiles)
    (profiles / "typo.yaml").write_text("replace: [eval.datasetz]\neval: {datasets: {}}\n")
    with pytest.raises(ProfileError, match=r"typo\.yaml: replace: 'eval.datasetz' is not set by this profile"):
        apply_profile("typo", params_copy, profiles)


def test_source_and_world_must_agree():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["source"] = "ucf_vagta"
    with pytest.raises(ParamsError, match=r"data: Value error, data.world must be \{\} with data.source ucf_vagta"):
        parse_params(raw)
    raw["data"]["world"] = {}
    with pytest.raises(ParamsError, match=r"data.inputs must be .*'download': 'src/alertclip/data/download'"):
        parse_params(raw)


@pytest.mark.parametrize("name", REAL)
def test_real_profile_dag_renders_nothing_synthetic_in_both_engines(tmp_path, name):
    root = _copy_repo(tmp_path)
    sh(root, sys.executable, "-m", "alertclip", "profile", name)
    _stand_ins(root)
    dvc_stages = set(sh(root, "dvc", "stage", "list", "--name-only").stdout.split())
    specs = {s.name: s for s in dag.load_stages(root)}
    assert set(specs) == dvc_stages
    assert not {n for n in dvc_stages if n.startswith("synthesize")}
    synthetic = {n: [p for p in (*s.deps, *s.outs) if p.startswith("data/synth")] for n, s in specs.items()}
    assert not {n: p for n, p in synthetic.items() if p}, "stages reading or writing data/synth"
    # every table of the paper: a stage per backbone x dataset where the profile asks for it
    p = load_params(root / "params.yaml")
    for evaluation, datasets in p.eval.evaluate:
        for bb in p.eval.backbones:
            for ds in datasets:
                assert f"eval_{evaluation}@{bb}-{ds}" in dvc_stages
    assert {f"eval_retention@{bb}" for bb in p.eval.backbones} <= dvc_stages
    status = json.loads(sh(root, "dvc", "status", "--json").stdout or "{}")
    assert set(status) and not {n for n in status if n.startswith("synthesize")}

    dry = sh(root, "snakemake", "--dry-run", "--cores", "2").stdout
    assert _jobs_listed(dry, root) == dvc_stages  # nothing has run: every stage is a job, and nothing else
    assert "data/synth" not in dry
