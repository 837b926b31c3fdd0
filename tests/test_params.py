"""params.yaml: the typed model, its error messages, and the JSON Schema Snakemake validates with."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from alertclip.params import Params, ParamsError, RemoteFile, RunSettings, json_schema, load_params, parse_params


@pytest.fixture(scope="module")
def raw(repo) -> dict:
    return yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema(repo) -> dict:
    return json.loads((repo / "workflow" / "schemas" / "params.schema.json").read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(ParamsError) as exc:
        load_params(path)
    return str(exc.value)


def test_repo_params_load(repo, raw):
    p = load_params(repo / "params.yaml")
    assert isinstance(p, Params)
    # values come from the file, not from the model's defaults
    assert p.data.source == raw["data"]["source"]
    assert p.synthesize.size in p.synthesize.sizes
    assert p.synthesize.world == p.synthesize.sizes[p.synthesize.size]
    assert set(p.synthesize.sizes) >= {"default", "smoke"}
    assert p.synthesize.sizes["smoke"].n_train == raw["synthesize"]["sizes"]["smoke"]["n_train"]
    assert p.frames.snippet_len == raw["frames"]["snippet_len"]
    assert p.frames.clip_frames == raw["frames"]["clip_frames"]
    # the YAML merge key (msad_vagta: <<: *vagta) resolves to a full source
    assert p.data.sources["msad_vagta"].train_items == p.data.sources["ucf_vagta"].train_items
    assert p.data.sources["msad_vagta"].video_prefix != p.data.sources["ucf_vagta"].video_prefix


def _set(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    "dotted, value, key",
    [
        ("bogus", 1, "bogus"),  # unknown top-level group
        ("frames.fpss", 30, "frames.fpss"),  # typo'd nested key
        ("synthesize.sizes.smoke.n_trian", 3, "synthesize.sizes.smoke.n_trian"),  # typo deep down
        ("frames.fps", "fast", "frames.fps"),  # wrong type
        ("frames.fps", 0, "frames.fps"),  # out of range
        ("data.source", "kinetics", "data.source"),  # not a known source
        ("synthesize.size", "huge", "synthesize.size"),  # not a key of sizes
        ("download.retries", -1, "download.retries"),
        ("eval.bootstrap_samples", 50, "eval.bootstrap_samples"),  # too few resamples for a 95% interval
    ],
)
def test_bad_value_names_file_and_key(tmp_path, raw, dotted, value, key):
    path = _write(tmp_path, _set(raw, dotted, value))
    msg = _error(path)
    assert str(path) in msg
    assert key in msg, f"message does not name {key!r}: {msg}"


def test_unknown_key_is_called_unknown(tmp_path, raw):
    msg = _error(_write(tmp_path, _set(raw, "frames.fpss", 30)))
    assert f"{tmp_path / 'params.yaml'}: frames.fpss: unknown key" in msg


def test_source_without_sources_entry(tmp_path, raw):
    data = _set(raw, "data.source", "ucf_vagta")
    data["data"]["sources"] = {}
    msg = _error(_write(tmp_path, data))
    assert str(tmp_path / "params.yaml") in msg
    assert "data.source" in msg and "ucf_vagta" in msg


def test_min_seconds_above_max_seconds(tmp_path, raw):
    data = _set(raw, "synthesize.sizes.smoke.min_seconds", 9)
    data = _set(data, "synthesize.sizes.smoke.max_seconds", 4)
    msg = _error(_write(tmp_path, data))
    assert str(tmp_path / "params.yaml") in msg
    assert "synthesize.sizes.smoke" in msg
    assert "max_seconds" in msg


def test_every_error_is_reported(tmp_path, raw):
    data = _set(_set(raw, "frames.fpss", 30), "download.timeout_s", "soon")
    msg = _error(_write(tmp_path, data))
    assert "frames.fpss" in msg and "download.timeout_s" in msg


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("frames:\n  fps: 25\n   width: [64\n", encoding="utf-8")
    msg = _error(path)
    assert str(path) in msg
    assert "YAML" in msg


def test_not_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- frames\n- data\n", encoding="utf-8")
    assert str(path) in _error(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "params.yaml"
    msg = _error(path)
    assert str(path) in msg
    assert "not found" in msg


def test_parse_params_uses_origin(raw):
    with pytest.raises(ParamsError, match=r"^elsewhere\.yaml: frames\.width: "):
        parse_params(_set(raw, "frames.width", "wide"), origin="elsewhere.yaml")


def test_params_are_frozen(repo):
    p = load_params(repo / "params.yaml")
    with pytest.raises(Exception):
        p.frames.fps = 30  # type: ignore[misc]


def test_schema_file_is_current(schema):
    assert schema == json_schema(), (
        "workflow/schemas/params.schema.json is out of date with alertclip/params.py: run `make schema`"
    )


def test_schema_validates_params_yaml(schema, raw):
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator_cls(schema).validate(raw)


@pytest.mark.parametrize("dotted", ["bogus", "frames.fpss", "synthesize.sizes.smoke.n_trian"])
def test_schema_rejects_unknown_key(schema, raw, dotted):
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(_set(raw, dotted, 1)))
    assert errors, f"schema accepted unknown key {dotted}"
    assert any(dotted.rsplit(".", 1)[-1] in e.message for e in errors)


def test_schema_rejects_wrong_type(schema, raw):
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert list(validator.iter_errors(_set(raw, "frames.fps", "fast")))


def test_schema_accepts_a_rows_tune_key(schema, raw):
    """A row of runs may set a key of tune for itself (the sweep's best lr): what the typed model accepts, the schema
    Snakemake validates with must let through."""
    data = _set(raw, "runs.full.lr", 3e-4)
    assert parse_params(data).runs["full"].overrides() == {"lr": 3e-4}
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(data))


def test_impossible_combination_fails_at_load_naming_the_key(repo):
    """No negatives (tune.k_negatives 0) with a run that weighs the hard-negative loss: the error names the first such
    run (stage1 and no_hard leave the loss out) and the key."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["tune"]["k_negatives"] = 0
    with pytest.raises(ParamsError, match=r"runs\.full with tune applied: lambda_hard: .*k_negatives"):
        parse_params(raw)
    for name in ("full", "standard_neg", "joint"):
        raw["runs"][name]["lambda_hard"] = 0.0
    parse_params(raw)  # the same K = 0 is fine without the hard-negative loss


@pytest.mark.parametrize("n_test, fraction, key", [(6, 0.5, "n_test"), (40, 0.95, "n_test"), (3, 0.5, "n_test")])
def test_world_too_small_for_the_ci_fails_naming_the_key(tmp_path, raw, n_test, fraction, key):
    data = _set(raw, "synthesize.sizes.default.n_test", n_test)
    data = _set(data, "synthesize.abnormal_fraction", fraction)
    msg = _error(_write(tmp_path, data))
    assert f"synthesize.sizes.default.{key}" in msg or f"sizes.default.{key}" in msg, msg
    assert "at least" in msg


def test_world_with_one_class_in_train_fails(tmp_path, raw):
    data = _set(raw, "synthesize.sizes.default.n_train", 2)
    data = _set(data, "synthesize.abnormal_fraction", 0.9)
    msg = _error(_write(tmp_path, data))
    assert "sizes.default.n_train" in msg and "0 normal" in msg, msg


def test_videos_too_short_for_two_events_fail(tmp_path, raw):
    data = _set(raw, "synthesize.sizes.default.min_seconds", 2)
    msg = _error(_write(tmp_path, data))
    assert "sizes.default.min_seconds" in msg, msg


def test_smallest_valid_test_split_loads(tmp_path, raw):
    data = _set(raw, "synthesize.sizes.default.n_test", 10)
    load_params(_write(tmp_path, data))


# ---------------------------------------------------------------------------------------------- datasets, crops


XD = {"name": "XD-Violence", "format": "xd", "ground_truth": "data/external/xd/annotations.txt",
      "videos": "data/external/xd/videos", "normal_markers": None, "prompts": None, "detection_ground_truth": None,
      "class_prompts": None, "metrics": ["ap"]}


def test_repo_params_datasets(repo):
    p = load_params(repo / "params.yaml")
    assert set(p.eval.datasets) == {"synth"} and p.eval.datasets["synth"].own_frames
    assert all(keys == ["synth"] for _, keys in p.eval.evaluate)
    assert p.eval.backbones["wise_ft"] == "data/models/interpolated/wise_ft" and "wise_ft" in p.interpolate
    assert p.eval.test_crop < p.features.crops


@pytest.mark.parametrize("group", ["datasets", "backbones"])
def test_key_with_a_dash_is_rejected(tmp_path, raw, group):
    """Keys are stage-name parts (features@<backbone>-<dataset>): a '-' would make the split ambiguous."""
    data = copy.deepcopy(raw)
    data["eval"][group]["ucf-crime"] = XD if group == "datasets" else "data/models/backbone"
    msg = _error(_write(tmp_path, data))
    assert "eval" in msg and "'ucf-crime'" in msg and "letters, digits, _ only" in msg, msg


def test_evaluate_naming_an_unknown_dataset_is_rejected(tmp_path, raw):
    data = _set(raw, "eval.evaluate.zeroshot", ["synth", "xd"])
    msg = _error(_write(tmp_path, data))
    assert "evaluate.zeroshot" in msg and "'xd'" in msg and "['synth']" in msg, msg
    data["eval"]["datasets"]["xd"] = XD
    load_params(_write(tmp_path, data))  # declared, it is fine


@pytest.mark.parametrize("evaluation", ["weakly", "openvocab"])
def test_weakly_on_a_dataset_with_external_videos_is_rejected(tmp_path, raw, evaluation):
    """The weakly supervised heads train on the dataset's training videos, which only data/frames holds."""
    data = _set(raw, f"eval.evaluate.{evaluation}", ["synth", "xd"])
    data["eval"]["datasets"]["xd"] = XD
    msg = _error(_write(tmp_path, data))
    assert f"evaluate.{evaluation}" in msg and "'xd'" in msg and "data/external/xd/videos" in msg, msg


def test_dataset_listed_twice_is_rejected(tmp_path, raw):
    msg = _error(_write(tmp_path, _set(raw, "eval.evaluate.mss", ["synth", "synth"])))
    assert "evaluate.mss" in msg and "twice" in msg, msg


@pytest.mark.parametrize("crops, test_crop, ok", [(1, 0, True), (1, 1, False), (5, 4, True), (5, 5, False),
                                                  (10, 9, True), (10, 10, False)])
def test_test_crop_must_be_one_of_the_crops(tmp_path, raw, crops, test_crop, ok):
    data = _set(_set(raw, "features.crops", crops), "eval.test_crop", test_crop)
    if ok:
        load_params(_write(tmp_path, data))
        return
    msg = _error(_write(tmp_path, data))
    assert f"eval.test_crop {test_crop}" in msg and f"features.crops is {crops}" in msg, msg


@pytest.mark.parametrize("crops", [0, 3, 6])
def test_crops_are_one_five_or_ten(tmp_path, raw, crops):
    msg = _error(_write(tmp_path, _set(raw, "features.crops", crops)))
    assert "features.crops" in msg and "1, 5 or 10" in msg, msg


@pytest.mark.parametrize("old", ["dataset", "test_annotations"])
def test_single_dataset_keys_are_gone(tmp_path, raw, old):
    """eval.dataset / eval.test_annotations were replaced by eval.datasets: an old params file fails naming them."""
    msg = _error(_write(tmp_path, _set(raw, f"eval.{old}", "VAGTA-synth")))
    assert f"eval.{old}: unknown key" in msg, msg


# Entries describing files to fetch (also read from a source's manifest.json, which lists only what it knows):
# their optional fields stay optional. Nothing else in the schema may hold a value.
DESCRIBES_A_FILE = (RemoteFile,)


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]], where: str = "") -> None:
    """Every pydantic model reachable from ``model``'s fields (through unions, lists and dicts), by dotted key."""
    if model.__name__ in {m.__name__ for m in seen.values()}:
        return
    seen[where or "<root>"] = model

    def walk(tp, key):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            _models(tp, seen, key)
        for arg in getattr(tp, "__args__", ()) or ():
            walk(arg, key)

    for name, field in model.model_fields.items():
        walk(field.annotation, f"{where}.{name}".lstrip("."))


def test_no_setting_has_a_value_in_the_code():
    """params.yaml is the only source of values: every field of every settings model is required (a default in
    params.py would be a second statement of the value, free to disagree with params.yaml, as 21 once did)."""
    models: dict[str, type[BaseModel]] = {}
    _models(Params, models)
    assert len(models) > 20, sorted(models)  # the walk reached the nested groups
    _models(RunSettings, models, "runs.<run> with tune applied")  # built in code from params.yaml, and as strict
    with_values = [f"{where}.{name} (= {field.get_default(call_default_factory=True)!r})".lstrip(".")
                   for where, model in models.items() if model not in DESCRIBES_A_FILE
                   for name, field in model.model_fields.items() if not field.is_required()]
    assert not with_values, "settings with a value in alertclip/params.py; move it to params.yaml:\n" + "\n".join(
        with_values)


def test_the_default_guard_sees_a_default():
    from alertclip import params as params_module

    class WithDefault(params_module.CurateParams):
        extra_key: int = 3

    models: dict[str, type[BaseModel]] = {}
    _models(WithDefault, models)
    assert [n for m in models.values() for n, f in m.model_fields.items() if not f.is_required()] == ["extra_key"]
