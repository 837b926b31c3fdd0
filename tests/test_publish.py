"""publish@<backbone>: a backbone in open_clip's Hugging Face hub layout, loadable where alertclip was never imported.

One small world per module: two backbones (``base``, ``full``) of the tiny architecture at random init with a few
weights perturbed (so neither is an init open_clip could rebuild), their checkpoint records, and a report's index and
tables written with the report's own ``Table`` (its CSV format, its paths). Each test then reads what
``publish@<backbone>`` wrote. A fresh interpreter loads the folder through ``local-dir:`` (no alertclip, no
registered alertclip configs); ``push_to_hf_hub`` runs with its network calls replaced, to see what it would upload.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from alertclip import cli, factory, publish
from alertclip.eval.checkpoints import checkpoint_record, write_checkpoint_record
from alertclip.report.inputs import INDEX_JSON
from alertclip.report.tables import Table

ARCH = "alertclip-tiny"  # one of alertclip's own configs: unknown to an open_clip that alertclip never touched
HUB_FILES = {"open_clip_config.json", "open_clip_model.safetensors", "README.md"}
TEXT = ["a cctv video where two people fight", "nothing unusual happens"]

# The report's cells for the two backbones, as its tables write them (Table 4 is the headline).
ABLATION = {"base": ["-0.0031 [-0.0419, 0.0346]", "48.85 [28.10, 72.56]", "11.90"],
            "full": ["0.0128 [-0.0060, 0.0310]", "61.23 [55.10, 67.00]", "9.52"]}
RETENTION = {"base": ["11.90", "+0.00"], "full": ["9.52", "-2.38"]}
PAIRED = [["full − base", "MSS", "+0.0159", "[+0.0021, +0.0302]", "yes"],
          ["stage1 − base", "MSS", "+0.0019", "[-0.0191, +0.0248]", "no (CI includes 0)"]]

# Run in a fresh interpreter: load the folder with open_clip alone, embed an image and texts, send it all back.
LOADER = r"""
import sys
import numpy as np
import open_clip
import torch
from PIL import Image

folder, image, out = sys.argv[1:]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + folder)
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
model.eval()
pixels = preprocess(Image.fromarray(np.load(image))).unsqueeze(0)
tokens = tokenizer(%r)
with torch.no_grad():
    image_emb, text_emb = model.encode_image(pixels), model.encode_text(tokens)
assert "alertclip" not in sys.modules, sorted(m for m in sys.modules if m.startswith("alertclip"))
torch.save({"state_dict": model.state_dict(), "pixels": pixels, "tokens": tokens, "image": image_emb, "text": text_emb,
            "preprocess_cfg": dict(model.visual.preprocess_cfg), "tokenizer": type(tokenizer).__name__,
            "arch_registered": %r in open_clip.list_models()}, out)
""" % (TEXT, ARCH)


def _tiny_backbone(seed: int):
    torch.manual_seed(seed)
    model, _, preprocess, tokenizer = factory.create(ARCH)
    with torch.no_grad():  # a few weights moved off the init
        model.visual.conv1.weight.add_(0.25)
        model.text_projection.mul_(1.5)
        model.positional_embedding.add_(0.1)
        model.logit_scale.fill_(2.0)
    return model.eval(), preprocess, tokenizer


def _save_model_dir(model, model_dir: Path, source: dict | None = None) -> None:
    factory.save_checkpoint(model, model_dir / factory.CHECKPOINT_FILE, arch=ARCH)
    (model_dir / factory.CONFIG_FILE).write_text(json.dumps(open_clip.get_model_config(ARCH)))
    if source is not None:
        (model_dir / factory.RECORD_FILE).write_text(json.dumps({"arch": ARCH, "source": source}))


def _write_report(root: Path) -> None:
    ablation = Table("ablation", "Table 4 — Ablation (`ablation`)",
                     ["Backbone", "MSS [95% CI]", "Zero-shot AUC (%) [95% CI]", "Retention i2t R@1 (%)"])
    retention = Table("retention", "Table 6 — Retention, change vs `base` (`retention`)",
                      ["Backbone", "i2t R@1 (%)", "Δ i2t R@1 (pp)"])
    paired = Table("paired", "Table 7 — Paired differences (`paired`)",
                   ["Comparison", "Metric", "Δ", "Δ 95% CI", "Gap counts"])
    training = Table("training", "Training summaries (`training`)", ["Model", "Steps", "Final loss"])
    for key in ("base", "full"):
        ablation.add([key, *ABLATION[key]], [f"results/eval_mss/{key}/synth/metrics.json"])
        retention.add([key, *RETENTION[key]], [f"results/eval_retention/{key}/metrics.json"])
    for row in PAIRED:
        paired.add(row, ["results/eval_mss/full/synth/signed.csv"])
    training.add(["backbone", "36", "0.9011"], ["results/backbone/metrics.json"])
    training.add(["tune@stage1", "12", "6.1020"], ["results/tune/stage1/metrics.json"])
    training.add(["tune@full", "8", "5.0166"], ["results/tune/full/metrics.json"])
    tables = [ablation, retention, paired, training]
    for t in tables:
        (root / t.csv_path).parent.mkdir(parents=True, exist_ok=True)
        (root / t.csv_path).write_text(t.csv_text(), encoding="utf-8")
    index = {"datasets": [{"key": "synth", "name": "VAGTA-synth", "evaluations": ["mss"]}],
             "tables": [{"name": t.name, "title": t.title, "csv": t.csv_path.as_posix()} for t in tables]}
    (root / INDEX_JSON).write_text(json.dumps(index), encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory, params_of):
    """A repository root holding two published backbones; yields (root, params, {key: (model, preprocess, tokenizer)})."""
    root = tmp_path_factory.mktemp("repo")
    cwd = os.getcwd()
    os.chdir(root)  # every stage reads and writes repository-relative paths
    try:
        p = params_of()  # params.yaml; eval.backbones: base -> data/models/backbone, full -> data/models/full
        models = {"base": _tiny_backbone(1), "full": _tiny_backbone(2)}
        for key, source in (("base", {"kind": "random_init", "seed": 1}), ("full", None)):
            model_dir = Path(p.eval.backbones[key])
            model_dir.mkdir(parents=True)
            _save_model_dir(models[key][0], model_dir, source)
            write_checkpoint_record(key, {**checkpoint_record(p, key), "arch": ARCH})  # whatever params' backbone.arch
        (Path(p.eval.backbones["full"]) / publish.TEMPORAL_FILE).write_bytes(b"")  # a tuned dir's temporal module
        _write_report(root)
        importlib.import_module("alertclip.stages.publish").run(p, variant="full")  # the stage, as dvc.yaml runs it
        publish.publish_backbone(p, "base")
    finally:
        os.chdir(cwd)
    return root, p, models


@pytest.fixture
def inside(world, monkeypatch):
    monkeypatch.chdir(world[0])
    return world


def test_paths_agree_with_the_report_and_the_tuning_stages():
    from alertclip.tune.checkpoints import TEMPORAL_FILE
    from alertclip.tune.data import TunePaths
    from alertclip.tune.run import run_stage

    assert publish.REPORT_INDEX == INDEX_JSON
    # tune@<run> writes data/models/<run> and a run reads its init run there: where provenance looks for runs
    assert publish.MODELS_DIR == TunePaths().models_dir == inspect.signature(run_stage).parameters["models_dir"].default
    assert publish.TEMPORAL_FILE == TEMPORAL_FILE
    assert publish.hub_dir("full") == Path("data/hub/full")
    assert cli.stage_names()["publish"] is True
    with pytest.raises(SystemExit):  # `alertclip publish` needs --variant, as dvc.yaml's cmd passes it
        cli.main(["publish"])


def test_hub_folder_loads_in_a_process_that_never_imports_alertclip(world, tmp_path):
    root, _, models = world
    model, preprocess, tokenizer = models["full"]
    folder = root / "data" / "hub" / "full"
    assert {f.name for f in folder.iterdir()} == HUB_FILES
    image = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)  # resized and cropped to 64
    np.save(tmp_path / "image.npy", image)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, str(folder), str(tmp_path / "image.npy"), str(tmp_path / "out.pt")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    assert not got["arch_registered"]  # the architecture came from open_clip_config.json, not alertclip's registry
    assert got["tokenizer"] == "SimpleTokenizer"
    want = model.state_dict()
    assert set(got["state_dict"]) == set(want)
    for k, v in want.items():
        assert torch.equal(got["state_dict"][k], v), k
    pixels = preprocess(Image.fromarray(image)).unsqueeze(0)
    assert torch.equal(got["pixels"], pixels)  # the same preprocessing (size, mean/std, interpolation, resize mode)
    assert torch.equal(got["tokens"], tokenizer(TEXT))
    with torch.no_grad():
        image_emb, text_emb = model.encode_image(pixels), model.encode_text(tokenizer(TEXT))
    torch.testing.assert_close(got["image"], image_emb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["text"], text_emb, rtol=1e-5, atol=1e-6)
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in got["preprocess_cfg"].items()} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in model.visual.preprocess_cfg.items()}


def test_config_holds_the_architecture_and_the_preprocessing(world):
    root, p, models = world
    pp = models["full"][0].visual.preprocess_cfg
    cfg = json.loads((root / "data/hub/full/open_clip_config.json").read_text())
    assert set(cfg) == {"model_cfg", "preprocess_cfg"}
    assert cfg["model_cfg"] == open_clip.get_model_config(ARCH)
    assert cfg["model_cfg"] == json.loads((root / p.eval.backbones["full"] / factory.CONFIG_FILE).read_text())
    assert cfg["preprocess_cfg"] == {"mean": list(pp["mean"]), "std": list(pp["std"]),
                                     "interpolation": pp["interpolation"], "resize_mode": pp["resize_mode"]}
    assert cfg["model_cfg"]["vision_cfg"]["image_size"] == pp["size"][0] == 64


def test_card_carries_the_reports_numbers_and_the_provenance(world):
    root = world[0]
    card = (root / "data/hub/full/README.md").read_text(encoding="utf-8")
    front = card.split("---\n")[1]
    assert "library_name: open_clip\n" in front and "license: mit\n" in front and "- video-anomaly-detection\n" in front
    assert "pipeline_tag: zero-shot-image-classification\n" in front
    assert "# Model card for alertclip-full\n" in card
    assert "- **Architecture:** `alertclip-tiny`" in card
    assert "- **Made by:** dvc.yaml stage `tune@full`" in card
    assert ("the weights of run `stage1` `data/models/stage1` (backbone `stage1`) by the Alert-CLIP tuning run `full` "
            "(losses: global, region, hard; hard negatives)") in card
    assert "temporal module" in card  # the tuned dir's temporal.pt is not part of the open_clip model
    for cell in ABLATION["full"] + RETENTION["full"]:
        assert cell in card, cell
    assert "  - MSS [95% CI]: 0.0128 [-0.0060, 0.0310]\n" in card  # the headline, in the details
    assert "| Zero-shot AUC (%) [95% CI] | 61.23 [55.10, 67.00] |" in card
    assert "| full − base | MSS | +0.0159 | [+0.0021, +0.0302] | yes |" in card
    assert "stage1 − base" not in card and "48.85" not in card  # other backbones' rows stay out
    assert "| tune@full | 8 | 5.0166 |" in card and "| backbone |" not in card and "tune@stage1" not in card
    assert "  - lambda_hard: 1.0\n" in card and '  - losses: ["global", "region", "hard"]\n' in card
    # the settings tune@full trained with (tune with runs.full applied), then the row itself
    assert "- **Params: tune with runs.full applied:**\n" in card and "- **Params: runs.full:**\n" in card
    assert card.index("**Params: tune with runs.full applied:**") < card.index("**Params: runs.full:**")
    assert "results/eval_mss" not in card  # the report's source column names paths of this repository only


def test_provenance_of_every_run_names_its_stage_its_start_and_its_settings(params_of, run_of):
    """data/models/<run> is tune@<run>'s: tuned from the base backbone or from its init run's weights, with the run's
    resolved settings and its row; a directory under data/models that is no run (the old stage-2 layout) is nobody's."""
    p = params_of()
    for name, run in p.runs.items():
        prov = publish.provenance(p, name, ARCH)
        assert (prov.stage, prov.training_row, prov.untuned) == (f"tune@{name}", f"tune@{name}", False), name
        assert prov.params == {f"tune with runs.{name} applied": run_of(name).model_dump(),
                               f"runs.{name}": run.model_dump()}, name
        assert f"by the Alert-CLIP tuning run `{name}` (losses: {', '.join(run.losses)}; {run.negatives} negatives)" \
            in prov.tuned_from, name
    stage1 = publish.provenance(p, "stage1", ARCH)
    assert stage1.tuned_from.startswith("the base backbone `data/models/backbone` (backbone `base`) by the Alert-CLIP")
    assert stage1.params["tune with runs.stage1 applied"]["lambda_region"] == 0  # a loss left out weighs nothing
    assert publish.provenance(p, "full", ARCH).tuned_from.startswith(
        "the weights of run `stage1` `data/models/stage1` (backbone `stage1`) by the Alert-CLIP tuning run `full`")
    old = p.model_copy(update={"eval": params_of("eval", backbones={**p.eval.backbones, "old": "data/models/stage2/full"})})
    assert publish.provenance(old, "old", ARCH) == publish.Provenance(
        None, None, "weights in `data/models/stage2/full`, which no stage of this pipeline writes", {})


def test_base_card_says_it_is_the_untuned_reference(world):
    card = (world[0] / "data/hub/base/README.md").read_text(encoding="utf-8")
    assert "the untuned starting point of the Alert-CLIP curriculum" in card
    assert "the random initialisation of `alertclip-tiny` (seed 1): untrained" in card
    assert "It is the report's reference" in card and "- **Made by:** dvc.yaml stage `backbone`" in card
    for cell in ABLATION["base"] + RETENTION["base"]:
        assert cell in card, cell
    assert "| full − base | MSS | +0.0159 |" in card and "| backbone | 36 | 0.9011 |" in card
    assert "temporal module" not in card


def test_layout_is_what_save_for_hf_and_push_to_hf_hub_write(inside, tmp_path, monkeypatch):
    root, p, _ = inside
    ours = root / "data" / "hub" / "full"
    pub = publish.prepare(p, "full")
    hub = importlib.import_module("open_clip.push_to_hf_hub")  # open_clip.push_to_hf_hub is the function, not this

    # save_for_hf on the same model: the same files, the README aside (push_to_hf_hub writes that one itself)
    hub.save_for_hf(pub.model, publish.hub_tokenizer(pub.tokenizer), pub.model_cfg, tmp_path / "saved",
                    safe_serialization=True)
    assert {f.name for f in (tmp_path / "saved").iterdir()} | {"README.md"} == HUB_FILES
    assert (tmp_path / "saved" / "open_clip_config.json").read_bytes() == (ours / "open_clip_config.json").read_bytes()

    # push_to_hf_hub, every network call replaced: it saves into a temporary folder and uploads that folder
    uploaded = tmp_path / "uploaded"
    swapped = []

    class NotFound(Exception):
        pass

    class OfflineHFTokenizer:  # push_to_hf_hub swaps a non-HF tokenizer for openai/clip-vit-large-patch14's
        def __init__(self, name, *args, **kwargs):
            swapped.append(name)

        def save_pretrained(self, dest):
            return None  # its files cannot be fetched offline; open_clip never reads them for this config

    def upload_folder(repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, uploaded)
        return f"uploaded {repo_id}"

    def missing(*args, **kwargs):
        raise NotFound("no such file")

    # raising=False: with huggingface_hub >= 1.0 the module's hub imports failed (repo_type_and_id_from_hf_id is gone),
    # so none of these names exist in it
    for name, value in {"create_repo": lambda repo_id, **kw: f"https://huggingface.co/{repo_id}",
                        "repo_type_and_id_from_hf_id": lambda url: (None, *url.rsplit("/", 2)[-2:]),
                        "list_repo_files": missing, "get_hf_file_metadata": missing,
                        "hf_hub_url": lambda **kw: "url", "EntryNotFoundError": NotFound,
                        "upload_folder": upload_folder, "HFTokenizer": OfflineHFTokenizer}.items():
        monkeypatch.setattr(hub, name, value, raising=False)
    assert hub.push_to_hf_hub(pub.model, pub.tokenizer, pub.model_cfg, f"someone/{pub.name}", model_card=pub.card,
                              safe_serialization=True) == f"uploaded someone/{pub.name}"
    assert swapped == ["openai/clip-vit-large-patch14"]
    assert {f.name for f in uploaded.iterdir()} == {f.name for f in ours.iterdir()} == HUB_FILES
    for name in ("README.md", "open_clip_config.json"):
        assert (uploaded / name).read_bytes() == (ours / name).read_bytes(), name
    theirs, mine = load_file(uploaded / "open_clip_model.safetensors"), load_file(ours / "open_clip_model.safetensors")
    assert set(theirs) == set(mine) and all(torch.equal(theirs[k], mine[k]) for k in mine)


def test_republishing_is_byte_identical(inside):
    root, p, _ = inside
    before = {f.name: f.read_bytes() for f in (root / "data/hub/full").iterdir()}
    publish.publish_backbone(p, "full")
    assert {f.name: f.read_bytes() for f in (root / "data/hub/full").iterdir()} == before  # DVC hashes the folder
    assert not [f for f in (root / "data/hub").iterdir() if f.name.startswith(".")]  # no staging folder left


def test_unknown_architecture_fails_naming_it_and_the_backbone(inside):
    root, p, _ = inside
    record = json.loads((root / "data/checkpoints/full.json").read_text())
    (root / "data/checkpoints/full.json").write_text(json.dumps({**record, "arch": "ViT-Nowhere-99"}))
    try:
        with pytest.raises(publish.UnknownArchitecture, match=r"backbone 'full' .*architecture 'ViT-Nowhere-99'"):
            publish.publish_backbone(p, "full")
    finally:
        (root / "data/checkpoints/full.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="'ViT-Nowhere-99' has no open_clip model config"):
        publish.model_config("ViT-Nowhere-99")


def test_a_report_without_the_backbone_fails_naming_the_report_stage(inside):
    with pytest.raises(ValueError, match=r"ablation.csv: 0 rows for backbone 'stage1'.*stage `report`"):
        publish.report_sections("stage1")
