"""The table of tuning runs (params ``runs``): row validation, how a row resolves into a run's settings
(:func:`alertclip.params.run_settings`), and the ``tune@<run>`` entry point."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from alertclip.params import (
    ALERT_CLIP_RUN,
    BACKBONE_INIT,
    ParamsError,
    RunParams,
    TuneParams,
    load_params,
    run_settings,
)


@pytest.fixture(scope="module")
def raw(repo) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))


def _load(tmp_path: Path, data: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_params(path)


def _with(raw: dict, edit) -> dict:
    """A copy of params.yaml's raw dict with ``edit(runs, raw)`` applied."""
    data = copy.deepcopy(raw)
    edit(data["runs"], data)
    return data


# ------------------------------------------------------------------------------------------------- resolution


def test_default_runs_resolve_as_the_curriculum_and_ablations(params_of, run_of):
    """The rows say what the stage1 group and the stage2 variants (stage2 + ablations) once did: phase 1 is the global
    loss alone from the backbone; full, no_hard and standard_neg start from stage1, joint from the backbone; a loss a
    row leaves out weighs 0; everything else is the shared tune group and the backbone's architecture."""
    p = params_of()
    assert list(p.runs) == ["stage1", "full", "no_hard", "standard_neg", "joint"] and ALERT_CLIP_RUN in p.runs
    cfg = {name: run_settings(p.tune, row, p.backbone.arch) for name, row in p.runs.items()}
    weights = {name: (c.lambda_region, c.lambda_hard) for name, c in cfg.items()}
    assert weights == {name: (row.weights()["lambda_region"], row.weights()["lambda_hard"]) for name, row in p.runs.items()}
    full = weights["full"]
    assert min(full) > 0 and weights["stage1"] == (0.0, 0.0)
    # each ablation changes one thing of full's recipe: its weights are full's, but for the loss it leaves out
    assert weights["no_hard"] == (full[0], 0.0) and weights["standard_neg"] == weights["joint"] == full
    assert {n: c.init for n, c in cfg.items()} == {"stage1": BACKBONE_INIT, "full": "stage1", "no_hard": "stage1",
                                                    "standard_neg": "stage1", "joint": BACKBONE_INIT}
    assert {n: c.negatives for n, c in cfg.items()} == {"stage1": "hard", "full": "hard", "no_hard": "hard",
                                                         "standard_neg": "standard", "joint": "hard"}
    for name, c in cfg.items():
        row = p.runs[name]
        assert (c.epochs, c.arch) == (row.epochs, p.backbone.arch), name
        assert row.overrides() == {}, name  # no default row sets a tune key of its own
        shared = {k: v for k, v in c.model_dump().items() if k in TuneParams.model_fields}
        assert shared == p.tune.model_dump(), name
        # every run is evaluated: a key of eval.backbones pointing at its output
        assert p.eval.backbones[name] == f"data/models/{name}", name
    assert p.runs["stage1"].epochs > p.runs["full"].epochs  # phase 1 trains longer (~220 updates)
    assert all(run_of(name) == c for name, c in cfg.items())  # the fixture the other tests train with


def test_weights_and_overrides_of_a_row():
    row = RunParams.model_validate({"losses": ["global", "region"], "lambda_region": 0.5, "init": "stage1",
                                    "negatives": "hard", "epochs": 3, "lr": 3e-4, "temperature": 0.05})
    assert row.weights() == {"lambda_region": 0.5, "lambda_hard": 0.0}
    assert row.overrides() == {"lr": 3e-4, "temperature": 0.05}  # the tune keys, not the weights
    only_global = RunParams.model_validate({"losses": ["global"], "init": "backbone", "negatives": "hard", "epochs": 1})
    assert only_global.weights() == {"lambda_region": 0.0, "lambda_hard": 0.0} and only_global.overrides() == {}


def test_a_rows_tune_key_replaces_the_shared_value_for_that_run_only(tmp_path, raw, params_of):
    """What the sweep's best values need (a row that sets lr, temperature and its weights): the row's keys win, the
    other runs keep the shared tune values."""
    shared = params_of("tune")
    lr = shared.lr / 3
    p = _load(tmp_path, _with(raw, lambda runs, _: runs["full"].update(lr=lr, temperature=0.05, lambda_hard=2.0)))
    full = run_settings(p.tune, p.runs["full"], p.backbone.arch)
    assert (full.lr, full.temperature, full.lambda_hard) == (lr, 0.05, 2.0)
    assert p.runs["full"].overrides() == {"lr": lr, "temperature": 0.05}
    for name in ("stage1", "no_hard", "standard_neg", "joint"):
        other = run_settings(p.tune, p.runs[name], p.backbone.arch)
        assert (other.lr, other.temperature) == (shared.lr, shared.temperature), name
    assert run_settings(p.tune, p.runs["standard_neg"], p.backbone.arch).lambda_hard == p.runs["standard_neg"].weights()["lambda_hard"]


def test_a_rows_tune_key_is_validated_with_the_run(tmp_path, raw):
    """A row's keys are checked as the settings they become: an odd batch for pairs batches, or the hard-negative loss
    with no negatives, fail naming the run; a row may give itself the negatives the shared group has not."""
    with pytest.raises(ParamsError, match=r"runs\.full with tune applied: batching: .*even batch_size"):
        _load(tmp_path, _with(raw, lambda runs, _: runs["full"].update(batch_size=3)))
    no_negatives = _with(raw, lambda runs, data: data["tune"].update(k_negatives=0))
    with pytest.raises(ParamsError, match=r"runs\.full with tune applied: lambda_hard: .*k_negatives"):
        _load(tmp_path, no_negatives)
    for name in ("full", "standard_neg", "joint"):  # the runs with the hard loss give themselves negatives
        no_negatives["runs"][name]["k_negatives"] = 3
    p = _load(tmp_path, no_negatives)
    assert run_settings(p.tune, p.runs["full"], p.backbone.arch).k_negatives == 3
    assert run_settings(p.tune, p.runs["no_hard"], p.backbone.arch).k_negatives == 0


# ------------------------------------------------------------------------------------------------- row validation


@pytest.mark.parametrize("edit, message", [
    (lambda runs, _: runs["full"].update(losses=["region", "hard"]), r"runs\.full\.losses: .*include 'global'"),
    (lambda runs, _: runs["full"].update(losses=["global", "regoin", "hard"]), r"runs\.full\.losses\.1: "),
    (lambda runs, _: runs["full"].update(losses=["global", "region", "region", "hard"]),
     r"runs\.full\.losses: .*listed twice"),
    (lambda runs, _: runs["full"].update(negatives="random"), r"runs\.full\.negatives: "),
    (lambda runs, _: runs["full"].update(epochs=0), r"runs\.full\.epochs: "),
    (lambda runs, _: runs["full"].pop("init"), r"runs\.full\.init: Field required"),
    # the weights: one for each loss listed besides global, none for a loss left out
    (lambda runs, _: runs["full"].pop("lambda_hard"), r"runs\.full: .*lambda_hard: missing"),
    (lambda runs, _: runs["no_hard"].update(lambda_hard=1.0),
     r"runs\.no_hard: .*lambda_hard: set, but losses \['global', 'region'\] leave out 'hard'"),
    (lambda runs, _: runs["stage1"].update(lambda_region=0.0), r"runs\.stage1: .*lambda_region: set, but losses"),
    (lambda runs, _: runs["full"].update(lambda_region=-1.0), r"runs\.full: .*lambda_region: a weight >= 0"),
    (lambda runs, _: runs["full"].update(lambda_region=True), r"runs\.full: .*lambda_region: a weight >= 0"),
    (lambda runs, _: runs["full"].update(lambda_region=None), r"runs\.full: .*lambda_region: a weight >= 0, got None"),
    (lambda runs, _: runs["full"].update(lambda_hard=float("nan")), r"runs\.full: .*lambda_hard: a weight >= 0, got nan"),
    # a key of no kind: a typo, or a setting that is not the run's (the architecture is backbone.arch)
    (lambda runs, _: runs["full"].update(lrr=3e-4), r"runs\.full: .*lrr: unknown key"),
    (lambda runs, _: runs["full"].update(arch="ViT-B-32"), r"runs\.full: .*arch: unknown key"),
    # init: the backbone or another run, never a circle
    (lambda runs, _: runs["full"].update(init="stage3"), r"runs: .*full\.init: 'stage3' is neither 'backbone' nor a run"),
    (lambda runs, _: runs["stage1"].update(init="full"), r"stage1\.init: .*in a circle: stage1 -> full -> stage1"),
    (lambda runs, _: runs["joint"].update(init="joint"), r"joint\.init: .*in a circle: joint -> joint"),
    # names: data/models/<run> must not be the backbone's or the interpolations' directory (RESERVED_RUN_NAMES)
    (lambda runs, _: runs.update(backbone=dict(runs["joint"])), r"runs: .*backbone: not a run name"),
    (lambda runs, _: runs.update(interpolated=dict(runs["joint"])), r"runs: .*interpolated: not a run name"),
    (lambda runs, _: runs.update({"a/b": dict(runs["joint"])}), r"runs: .*a/b: not a run name"),
    (lambda runs, _: runs.pop("full"), r"runs: .*no 'full' run"),
])
def test_bad_row_fails_naming_it(tmp_path, raw, edit, message):
    with pytest.raises(ParamsError, match=message):
        _load(tmp_path, _with(raw, edit))


def test_a_run_may_start_from_any_run_but_itself(tmp_path, raw):
    """A chain of three: a run starting from full (itself from stage1) is fine, and resolves to init full."""
    data = _with(raw, lambda runs, _: runs.update(after_full={"losses": ["global"], "init": "full", "negatives": "hard",
                                                              "epochs": 1}))
    p = _load(tmp_path, data)
    assert run_settings(p.tune, p.runs["after_full"], p.backbone.arch).init == "full"


# ------------------------------------------------------------------------------------------------- the entry point


def test_tune_entry_point_trains_the_named_run(params_of, monkeypatch, tmp_path, raw):
    from alertclip.stages import tune as entry

    seen = {}

    def fake_run_stage(cfg, name, progress, prompts=None, *, snippet_len):
        seen.update(cfg=cfg, name=name, prompts=prompts, snippet_len=snippet_len)

    monkeypatch.setattr(entry, "run_stage", fake_run_stage)
    monkeypatch.setattr(entry, "pin_threads", lambda n=0: 1)
    p = params_of()
    for name in p.runs:
        entry.run(p, progress=False, variant=name)
        assert seen["name"] == name and seen["cfg"] == run_settings(p.tune, p.runs[name], p.backbone.arch)
        assert (seen["prompts"], seen["snippet_len"]) == (p.eval.prompts, p.frames.snippet_len)
    assert seen["cfg"].init == BACKBONE_INIT  # joint, the last row
    # the sweep's best values reach a run through its row (what stage2.use_sweep did)
    best = {"lambda_region": 0.5, "lambda_hard": 2.0, "temperature": 0.05, "lr": 3e-4}
    tuned = _load(tmp_path, _with(raw, lambda runs, _: runs.update(full_best={**runs["full"], **best})))
    entry.run(tuned, progress=False, variant="full_best")
    assert seen["name"] == "full_best" and {k: getattr(seen["cfg"], k) for k in best} == best
    seen.clear()
    with pytest.raises(ValueError, match=r"runs has no 'nope'"):
        entry.run(p, progress=False, variant="nope")
    with pytest.raises(ValueError, match="--variant"):
        entry.run(p, progress=False, variant=None)
    assert not seen  # nothing trained
