"""WiSE-FT: weight-space interpolation of two model directories (alertclip.interpolation, stage interpolate@<name>).

Real model directories of the tiny architecture, random init, written by the pipeline's own writers: the base
backbone's (``backbone.save_backbone``) and a tuned one's (``tune.checkpoints.save_tuned``, towers + temporal module).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from alertclip import factory
from alertclip.backbone import save_backbone
from alertclip.factory import CHECKPOINT_FILE, CONFIG_FILE, RECORD_FILE, images_to_tensor
from alertclip.interpolation import interpolate_dirs, interpolate_state, read_model_dir
from alertclip.io import sha256_file
from alertclip.model import AlertClipModel, TemporalTransformer
from alertclip.params import ParamsError, parse_params
from alertclip.paths import INTERPOLATED_DIR
from alertclip.stages import interpolate as stage
from alertclip.tune.checkpoints import TEMPORAL_FILE, save_tuned

REPO = Path(__file__).resolve().parents[1]
ARCH = "alertclip-tiny"


def _clip(seed: int, arch: str = ARCH):
    torch.manual_seed(seed)
    model, _, _, _ = factory.create(arch)
    return model


def _base_dir(root: Path, seed: int = 0, arch: str = ARCH) -> Path:
    save_backbone(_clip(seed, arch), arch, root, source={"kind": "test", "seed": seed})
    return root


def _tuned_dir(root: Path, seed: int = 1) -> Path:
    clip = _clip(seed)
    save_tuned(AlertClipModel(clip, TemporalTransformer(int(clip.text_projection.shape[1]), layers=1, heads=2)), ARCH, root)
    return root


def _state(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("interp")
    base, tuned = _base_dir(root / "base"), _tuned_dir(root / "tuned")
    out = {"base": base, "tuned": tuned}
    for alpha in (0.0, 0.5, 1.0):
        out[alpha] = root / f"mix{alpha}"
        interpolate_dirs(base, tuned, out[alpha], alpha)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The weights
# ---------------------------------------------------------------------------------------------------------------------

def test_alpha_0_is_base_1_is_tuned_half_is_the_midpoint(dirs):
    base, tuned = _state(dirs["base"]), _state(dirs["tuned"])
    assert not torch.equal(base["visual.conv1.weight"], tuned["visual.conv1.weight"])  # two different inits
    zero, one, half = _state(dirs[0.0]), _state(dirs[1.0]), _state(dirs[0.5])
    assert list(zero) == list(one) == list(half) == list(tuned) and set(base) == set(tuned)
    for k in base:
        assert zero[k].dtype == base[k].dtype and torch.equal(zero[k], base[k]), k
        assert torch.equal(one[k], tuned[k]), k
        torch.testing.assert_close(half[k], (base[k] + tuned[k]) / 2, rtol=1e-6, atol=0, msg=k)
    differs = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert differs and all(not torch.equal(half[k], base[k]) and not torch.equal(half[k], tuned[k]) for k in differs)


def test_layout_record_and_loading_like_any_backbone(dirs):
    out = dirs[0.5]
    assert sorted(p.name for p in out.iterdir()) == sorted([CHECKPOINT_FILE, CONFIG_FILE, RECORD_FILE])
    assert not (out / TEMPORAL_FILE).exists()  # towers only
    assert not list(out.parent.glob(".*"))  # no staging / old directories left behind
    assert json.loads((out / CONFIG_FILE).read_text()) == json.loads((dirs["base"] / CONFIG_FILE).read_text())
    ckpt = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    assert set(ckpt) == {"state_dict", "arch"} and ckpt["arch"] == ARCH

    record = json.loads((out / RECORD_FILE).read_text())
    base_record = json.loads((dirs["base"] / RECORD_FILE).read_text())
    assert set(record) == set(base_record)  # the backbone stage's keys
    assert record["arch"] == ARCH and record["file"] == CHECKPOINT_FILE
    assert record["sha256"] == sha256_file(out / CHECKPOINT_FILE) and record["size"] == (out / CHECKPOINT_FILE).stat().st_size
    src = record["source"]
    assert src["kind"] == "interpolated" and src["method"] == "wise_ft" and src["alpha"] == 0.5
    for name in ("base", "tuned"):
        assert src[name] == {"dir": dirs[name].as_posix(), "file": CHECKPOINT_FILE,
                             "sha256": sha256_file(dirs[name] / CHECKPOINT_FILE)}
    assert src["non_float_from_tuned"] == []

    # as an evaluation opens it: factory.create(arch, pretrained=<dir>/open_clip_model.pt), then encode an image
    clip, _, _, tok = factory.create(ARCH, pretrained=out / CHECKPOINT_FILE)
    clip.eval()
    loaded = clip.state_dict()
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in loaded.items())
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        v = clip.encode_image(images_to_tensor(images, clip), normalize=True)
        w = clip.encode_text(tok(["a cctv video where two people fight"]), normalize=True)
    assert v.shape == (2, int(clip.text_projection.shape[1])) and torch.isfinite(v).all() and torch.isfinite(w).all()


def test_deterministic_bytes(dirs, tmp_path):
    again = interpolate_dirs(dirs["base"], dirs["tuned"], tmp_path / "again", 0.5)
    assert (tmp_path / "again" / CHECKPOINT_FILE).read_bytes() == (dirs[0.5] / CHECKPOINT_FILE).read_bytes()
    assert (tmp_path / "again" / CONFIG_FILE).read_bytes() == (dirs[0.5] / CONFIG_FILE).read_bytes()
    assert again == json.loads((dirs[0.5] / RECORD_FILE).read_text())


def test_rerun_replaces_the_whole_directory_and_keeps_the_rng(dirs, tmp_path):
    out = tmp_path / "mix"
    out.mkdir()
    (out / TEMPORAL_FILE).write_bytes(b"stale")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    interpolate_dirs(dirs["base"], dirs["tuned"], out, 0.5)
    assert torch.equal(torch.rand(3), expected)  # the discarded random init does not move the caller's RNG
    assert sorted(p.name for p in out.iterdir()) == sorted([CHECKPOINT_FILE, CONFIG_FILE, RECORD_FILE])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix"]


# ---------------------------------------------------------------------------------------------------------------------
# interpolate_state on its own: dtypes, non-floating tensors, mismatches
# ---------------------------------------------------------------------------------------------------------------------

def test_state_dtypes_and_non_floating_tensors_come_from_tuned():
    base = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16), "d": torch.tensor([1.0], dtype=torch.float64),
            "count": torch.tensor(3), "idx": torch.arange(4), "flag": torch.tensor([True, False])}
    tuned = {"w": torch.tensor([3.0, 5.0], dtype=torch.bfloat16), "d": torch.tensor([1.0 + 2 ** -40], dtype=torch.float64),
             "count": torch.tensor(10), "idx": torch.arange(4), "flag": torch.tensor([True, False])}
    differing: list[str] = []
    out = interpolate_state(base, tuned, 0.25, differing)
    assert list(out) == list(tuned)
    assert out["w"].dtype == torch.bfloat16 and out["w"].tolist() == [1.5, 2.75]
    assert out["d"].dtype == torch.float64 and out["d"].item() == 1.0 + 2 ** -42  # float64 keeps its precision
    assert out["count"].item() == 10 and torch.equal(out["idx"], torch.arange(4)) and out["flag"].tolist() == [True, False]
    assert differing == ["count"]
    out["count"] += 1
    assert tuned["count"].item() == 10  # copies, not views of the inputs


def test_state_mismatches_name_the_key():
    base = {"a": torch.zeros(2), "b": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"only in base \['b'\].*only in tuned \['c'\]"):
        interpolate_state(base, {"a": torch.zeros(2), "c": torch.zeros(3)}, 0.5)
    with pytest.raises(ValueError, match=r"b: shape \(3,\) in base but \(4,\) in tuned"):
        interpolate_state(base, {"a": torch.zeros(2), "b": torch.zeros(4)}, 0.5)
    with pytest.raises(ValueError, match=r"a: dtype torch.float32 in base but torch.float16 in tuned"):
        interpolate_state(base, {"a": torch.zeros(2, dtype=torch.float16), "b": torch.zeros(3)}, 0.5)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha must be in"):
            interpolate_state(base, base, alpha)


# ---------------------------------------------------------------------------------------------------------------------
# Bad model directories
# ---------------------------------------------------------------------------------------------------------------------

def test_different_architectures_fail_naming_both_dirs_and_archs(dirs, tmp_path):
    cfg = json.loads((factory.CONFIG_DIR / f"{ARCH}.json").read_text())
    cfg["vision_cfg"]["width"] = 64
    cfg_file = tmp_path / "alertclip-test-narrow.json"
    cfg_file.write_text(json.dumps(cfg))
    assert factory.register_configs(cfg_file) == ["alertclip-test-narrow"]
    other = _base_dir(tmp_path / "narrow", arch="alertclip-test-narrow")
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        interpolate_dirs(dirs["base"], other, out, 0.5)
    msg = str(err.value)
    assert "different architectures" in msg
    assert str(dirs["base"]) in msg and str(other) in msg and ARCH in msg and "alertclip-test-narrow" in msg
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["alertclip-test-narrow.json", "narrow"]

    # the same name but another config.json: also refused, naming the differing field
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for f in (CHECKPOINT_FILE, RECORD_FILE):
        (renamed / f).write_bytes((dirs["base"] / f).read_bytes())
    (renamed / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"both named alertclip-tiny but their config.json differ.*vision_cfg.width: 128 vs 64"):
        interpolate_dirs(dirs["tuned"], renamed, out, 0.5)


def test_missing_files_are_named(dirs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"{empty / CHECKPOINT_FILE}: not found"):
        interpolate_dirs(dirs["base"], empty, tmp_path / "out", 0.5)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere' / CHECKPOINT_FILE}: not found"):
        interpolate_dirs(tmp_path / "nowhere", dirs["tuned"], tmp_path / "out", 0.5)
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / CHECKPOINT_FILE).write_bytes((dirs["tuned"] / CHECKPOINT_FILE).read_bytes())
    with pytest.raises(FileNotFoundError, match=f"{no_config / CONFIG_FILE}: not found"):
        read_model_dir(no_config)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Params and the stage
# ---------------------------------------------------------------------------------------------------------------------

def _raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def test_params_reject_alpha_outside_0_1():
    for alpha in (-0.5, 1.01):
        raw = copy.deepcopy(_raw_params())
        raw["interpolate"] = {"mine": {**raw["interpolate"]["wise_ft"], "alpha": alpha}}
        with pytest.raises(ParamsError, match=r"interpolate\.mine\.alpha"):
            parse_params(raw)


def test_stage_unknown_variant_names_the_known_ones():
    raw = _raw_params()
    wise_ft = raw["interpolate"]["wise_ft"]
    raw["interpolate"] = {"wise_ft": wise_ft, "other": {**wise_ft, "alpha": 0.3}}
    p = parse_params(raw)
    with pytest.raises(ValueError, match=r"interpolate has no 'nope' \(known: \['other', 'wise_ft'\]\)"):
        stage.run(p, progress=False, variant="nope")
    with pytest.raises(ValueError, match="needs --variant"):
        stage.run(p, progress=False)


def test_stage_writes_the_variant_and_an_evaluation_opens_it(dirs, tmp_path, monkeypatch, caplog):
    from alertclip.eval.inputs import open_backbone
    from alertclip.stages import checkpoint as checkpoint_stage

    monkeypatch.chdir(tmp_path)
    for name, rel in (("base", "models/backbone"), ("tuned", "models/full")):
        Path(rel).mkdir(parents=True)
        for f in dirs[name].iterdir():
            (Path(rel) / f.name).write_bytes(f.read_bytes())
    raw = _raw_params()
    raw["interpolate"] = {"wise_ft": {"base": "models/backbone", "tuned": "models/full", "alpha": 0.5}}
    raw["eval"]["backbones"] = {"base": "models/backbone", "wise_ft": str(INTERPOLATED_DIR / "wise_ft")}
    raw["eval"]["reference"] = "base"
    p = parse_params(raw)
    with caplog.at_level(logging.INFO):
        stage.run(p, progress=False, variant="wise_ft")
    out = INTERPOLATED_DIR / "wise_ft"
    assert (out / CHECKPOINT_FILE).read_bytes() == (dirs[0.5] / CHECKPOINT_FILE).read_bytes()
    record = json.loads((out / RECORD_FILE).read_text())
    assert record["source"]["base"]["dir"] == "models/backbone" and record["source"]["tuned"]["dir"] == "models/full"
    assert any("interpolate@wise_ft" in r.getMessage() and "0.5 * base models/backbone" in r.getMessage()
               for r in caplog.records)
    assert not any("not a value of eval.backbones" in r.getMessage() for r in caplog.records)
    assert not any("initialized randomly" in r.getMessage() for r in caplog.records)

    # as the pipeline opens it: checkpoint@wise_ft records the weights, an evaluation opens them through open_backbone
    checkpoint_stage.run(p, progress=False, variant="wise_ft")
    threads = torch.get_num_threads()
    try:
        clip, tok = open_backbone(p, "wise_ft", "eval_mss")
    finally:
        torch.set_num_threads(threads)
    images = np.zeros((1, 64, 64, 3), np.uint8)
    with torch.no_grad():
        assert torch.isfinite(clip.eval().encode_image(images_to_tensor(images, clip))).all()

    raw["eval"]["backbones"] = {"base": "models/backbone"}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stage.run(parse_params(raw), progress=False, variant="wise_ft")
    assert any("not a value of eval.backbones" in r.getMessage() for r in caplog.records)
