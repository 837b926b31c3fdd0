"""The ablation matrix: variant params, their validation, and how a variant maps onto stage 2."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from alertclip.ablation import variant_params
from alertclip.params import ParamsError, load_params


@pytest.fixture(scope="module")
def raw(repo) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))


def _load(tmp_path: Path, data: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_params(path)


def test_variants_map_onto_stage2(params_of):
    p = params_of()
    base = p.stage2
    full = variant_params(base, p.ablations["full"])
    assert (full.lambda_region, full.lambda_hard, full.init, full.negatives) == (
        base.lambda_region, base.lambda_hard, "stage1", "hard")
    no_hard = variant_params(base, p.ablations["no_hard"])
    assert no_hard.lambda_hard == 0.0 and no_hard.lambda_region == base.lambda_region
    assert variant_params(base, p.ablations["standard_neg"]).negatives == "standard"
    assert variant_params(base, p.ablations["joint"]).init == "base"
    assert variant_params(base, params_of("ablations.full", losses=["global"])).lambda_region == 0.0
    # every variant is evaluated: a key of eval.backbones pointing at its stage-2 output
    for name in p.ablations:
        assert p.eval.backbones[name] == f"data/models/stage2/{name}"


def test_unknown_loss_names_the_variant(tmp_path, raw, params_of):
    bad = copy.deepcopy(raw)
    bad["ablations"]["full"]["losses"] = ["global", "regoin"]
    with pytest.raises(ParamsError, match=r"ablations\.full\.losses\.1"):
        _load(tmp_path, bad)
    bad["ablations"]["full"]["losses"] = ["region", "hard"]
    with pytest.raises(ParamsError, match=r"ablations\.full\.losses: .*include 'global'"):
        _load(tmp_path, bad)
    bad["ablations"]["full"] = {**raw["ablations"]["full"], "losses": ["global"], "curriculum": "three_stage"}
    with pytest.raises(ParamsError, match=r"ablations\.full\.curriculum"):
        _load(tmp_path, bad)
    with pytest.raises(ValueError, match="spatial"):  # the schema checks variants built in code too
        params_of("ablations.full", losses=["global", "spatial"])


def test_sweep_ranges_checked_at_load(tmp_path, raw):
    bad = copy.deepcopy(raw)
    bad["sweep"]["ranges"]["lr"] = {"low": 0.01, "high": 0.001, "log": True}
    with pytest.raises(ParamsError, match=r"sweep\.ranges\.lr: inverted range"):
        _load(tmp_path, bad)
    bad = copy.deepcopy(raw)
    bad["sweep"]["ranges"]["lambda_hard"] = {**raw["sweep"]["ranges"]["lambda_hard"], "low": 1.0, "high": 1.0}
    with pytest.raises(ParamsError, match=r"sweep\.ranges\.lambda_hard: empty range"):
        _load(tmp_path, bad)
    bad = copy.deepcopy(raw)
    bad["sweep"]["ranges"]["momentum"] = {"low": 0.1, "high": 0.9}
    with pytest.raises(ParamsError, match=r"sweep\.ranges\.momentum"):
        _load(tmp_path, bad)


def test_stage2_entry_point_applies_variant_and_sweep_switch(params_of, monkeypatch, tmp_path):
    from alertclip.stages import stage2 as entry
    from alertclip.sweep import best as sweep_mod

    seen = {}
    monkeypatch.setattr(entry, "run_stage",
                        lambda cfg, progress, variant, prompts=None, snippet_len=None: seen.update(cfg.model_dump(), variant=variant))
    monkeypatch.setattr(entry, "pin_threads", lambda n=0: 1)
    p = params_of()
    entry.run(p, progress=False, variant="no_hard")
    assert seen["variant"] == "no_hard" and seen["lambda_hard"] == 0.0 and seen["use_sweep"] is False
    best = {"lambda_region": 0.5, "lambda_hard": 2.0, "temperature": 0.05, "lr": 3e-4}
    monkeypatch.setattr(sweep_mod, "best_overrides", lambda *a, **k: dict(best))
    p = p.model_copy(update={"stage2": p.stage2.model_copy(update={"use_sweep": True})})
    seen.clear()
    entry.run(p, progress=False, variant="full")
    assert {k: seen[k] for k in best} == best
    entry.run(p, progress=False, variant="no_hard")
    assert seen["lambda_hard"] == 0.0 and seen["lr"] == best["lr"]  # the variant still drops the hard loss
    with pytest.raises(ValueError, match="ablations has no 'nope'"):
        entry.run(p, progress=False, variant="nope")
