"""Retention on the paper's benchmarks through clip-benchmark (alertclip.eval.benchmarks, stage eval_retention).

Tiny datasets in the real layouts are written to tmp_path: an ImageNet-style class-folder tree with a class-names
file, and a COCO captions JSON with its image folder. Known answers come from a *planted* model whose image tower
reads an image's colour and whose text tower reads the colour name in a prompt; a random-init ``alertclip-tiny``
checks the same code path against a manual computation from its own embeddings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from repo_params import repo_params
from torch import nn

from alertclip import factory
from alertclip.data.pretrain import PretrainSet
from alertclip.eval import benchmarks
from alertclip.eval.benchmarks import check_coco, check_imagenet, coco_retrieval, imagenet_zeroshot, val_transform
from alertclip.eval.retention import retention
from alertclip.io import write_json
from alertclip.params import (
    REAL_INPUTS,
    SYNTH_INPUTS,
    SYNTHETIC_WORLD,
    CocoDirParams,
    DataParams,
    ImageNetDirParams,
    RetentionParams,
)
from alertclip.stages import eval_retention as stage

# Colour names that no clip-benchmark ImageNet template contains; RGB corners, so opposite colours have cosine -1.
COLOURS = {"scarlet": (255, 0, 0), "emerald": (0, 255, 0), "azure": (0, 0, 255), "amber": (255, 255, 0),
           "teal": (0, 255, 255), "violet": (255, 0, 255), "snow": (255, 255, 255), "coal": (0, 0, 0)}
NAMES = list(COLOURS)
_NAME = re.compile(r"\b(" + "|".join(NAMES) + r")\b")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, _, preprocess, tok = factory.create("alertclip-tiny")
    return model.eval(), preprocess, tok


def _jpeg(path: Path, rgb, size=(48, 40), noise: int = 0, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty((size[1], size[0], 3), np.int16)
    arr[:] = rgb
    if noise:
        arr += np.random.default_rng(seed).integers(-noise, noise + 1, arr.shape, dtype=np.int16)
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=95)


def _vec(rgb) -> torch.Tensor:
    return torch.tensor([1.0 if c > 127 else -1.0 for c in rgb])


class Planted(nn.Module):
    """encode_image: the sign of each channel's mean colour against mid-grey; encode_text: that of the colour named."""

    def __init__(self, preprocess):
        super().__init__()
        norm = preprocess.transforms[-1]
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1))
        self.anchor = nn.Parameter(torch.zeros(1))
        self.register_buffer("table", torch.stack([_vec(COLOURS[n]) for n in NAMES]))

    def encode_image(self, x):
        rgb = (x * self.std + self.mean).mean(dim=(2, 3))
        return torch.where(rgb > 0.5, 1.0, -1.0) + 0 * self.anchor

    def encode_text(self, tokens):
        return self.table[tokens[:, 0]] + 0 * self.anchor


def planted_tokenizer(texts):
    ids = []
    for t in texts:
        found = _NAME.findall(t)
        assert len(found) == 1, t
        ids.append([NAMES.index(found[0])])
    return torch.tensor(ids)


# ---------------------------------------------------------------------------------------------------------------------
# Fixture datasets in the real layouts
# ---------------------------------------------------------------------------------------------------------------------

def make_imagenet(root: Path, per_class: int = 2, misfiled: bool = True, noise: int = 0) -> ImageNetDirParams:
    """One folder per colour (``n000_scarlet`` ...), ``per_class`` JPEGs of that colour each; ``misfiled`` adds a
    scarlet image to the teal folder (its opposite colour: last in the ranking, so wrong at top-1 and top-5)."""
    tree = root / "val"
    for i, name in enumerate(NAMES):
        for j in range(per_class):
            _jpeg(tree / f"n{i:03d}_{name}" / f"img_{j}.JPEG", COLOURS[name], noise=noise, seed=10 * i + j)
    if misfiled:
        _jpeg(tree / f"n{NAMES.index('teal'):03d}_teal" / "img_misfiled.JPEG", COLOURS["scarlet"])
    names = root / "classnames.txt"
    names.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return ImageNetDirParams(root=str(tree), classnames=str(names))


# image file colour -> the colour its captions name: four right, two swapped pairs of opposite colours wrong.
COCO_CAPTIONED = {"azure": "azure", "amber": "amber", "snow": "snow", "coal": "coal",
                  "scarlet": "teal", "teal": "scarlet", "emerald": "violet", "violet": "emerald"}


def make_coco(root: Path, noise: int = 0) -> CocoDirParams:
    images, annotations = [], []
    for k, (colour, named) in enumerate(COCO_CAPTIONED.items()):
        image_id = 1000 + 7 * k  # COCO ids: sparse, not positions
        file_name = f"{image_id:012d}.jpg"
        _jpeg(root / "val2017" / file_name, COLOURS[colour], noise=noise, seed=k)
        images.append({"id": image_id, "file_name": file_name, "width": 48, "height": 40})
        annotations += [{"id": 2 * k, "image_id": image_id, "caption": f"A {named} square on a wall."},
                        {"id": 2 * k + 1, "image_id": image_id, "caption": f"the {named} picture"}]
    # an image nobody captioned: not a query, not in the gallery
    _jpeg(root / "val2017" / "uncaptioned.jpg", COLOURS["snow"])
    images.append({"id": 5, "file_name": "uncaptioned.jpg", "width": 48, "height": 40})
    annotations.reverse()  # the file's order is not the scoring order
    captions = root / "annotations" / "captions_val2017.json"
    captions.parent.mkdir(parents=True)
    captions.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}), encoding="utf-8")
    return CocoDirParams(images=str(root / "val2017"), captions=str(captions))


# ---------------------------------------------------------------------------------------------------------------------
# Known answers (planted model)
# ---------------------------------------------------------------------------------------------------------------------

def test_templates_are_clip_benchmarks_imagenet_ones():
    t = benchmarks.imagenet_templates()
    assert len(t) == 80 and "a photo of a {c}." in t and all("{c}" in x for x in t)
    assert not any(_NAME.search(x) for x in t)  # the planted tokenizer sees only the class name


def test_imagenet_zeroshot_known_answer(tmp_path, tiny):
    _, preprocess, _ = tiny
    cfg = make_imagenet(tmp_path)
    out = imagenet_zeroshot(Planted(preprocess), preprocess, planted_tokenizer, cfg, batch_size=5, workers=0)
    assert set(out) == {"acc1", "acc5", "mean_per_class_recall", "n_images", "n_classes"}
    assert out["n_images"] == 17 and out["n_classes"] == 8
    assert out["acc1"] == pytest.approx(16 / 17) and out["acc5"] == pytest.approx(16 / 17)
    assert out["mean_per_class_recall"] == pytest.approx((7 + 2 / 3) / 8)
    assert check_imagenet(cfg) == {"n_images": 17, "n_classes": 8}


def test_imagenet_zeroshot_all_right_without_the_misfiled_image(tmp_path, tiny):
    _, preprocess, _ = tiny
    out = imagenet_zeroshot(Planted(preprocess), preprocess, planted_tokenizer, make_imagenet(tmp_path, misfiled=False),
                            batch_size=64, workers=0)
    assert out["acc1"] == out["acc5"] == out["mean_per_class_recall"] == 1.0 and out["n_images"] == 16


def test_coco_retrieval_known_answer(tmp_path, tiny):
    _, preprocess, _ = tiny
    cfg = make_coco(tmp_path)
    out = coco_retrieval(Planted(preprocess), preprocess, planted_tokenizer, cfg, batch_size=3, workers=0)
    assert set(out) == {"i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "n_images", "n_captions"}
    assert out["n_images"] == 8 and out["n_captions"] == 16  # the uncaptioned image is left out
    # 4 of 8 images (8 of 16 captions) are captioned right; the others' captions name the opposite colour: last.
    assert out == {"i2t_r1": 0.5, "i2t_r5": 0.5, "t2i_r1": 0.5, "t2i_r5": 0.5, "n_images": 8, "n_captions": 16}


def test_imagenet_acc5_is_none_under_five_classes(tmp_path, tiny):
    _, preprocess, _ = tiny
    tree = tmp_path / "val"
    for i, name in enumerate(NAMES[:3]):
        _jpeg(tree / f"c{i}" / "a.jpg", COLOURS[name])
    (tmp_path / "names.txt").write_text("\n".join(NAMES[:3]), encoding="utf-8")
    cfg = ImageNetDirParams(root=str(tree), classnames=str(tmp_path / "names.txt"))
    out = imagenet_zeroshot(Planted(preprocess), preprocess, planted_tokenizer, cfg)
    assert out["acc1"] == 1.0 and out["acc5"] is None and out["n_classes"] == 3


# ---------------------------------------------------------------------------------------------------------------------
# A real (random-init) open_clip model: the same numbers as a manual computation from its embeddings
# ---------------------------------------------------------------------------------------------------------------------

def _sorted_files(root: Path) -> list[tuple[Path, int]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    return [(f, c) for c, d in enumerate(folders) for f in sorted(d.iterdir())]


@torch.no_grad()
def test_imagenet_zeroshot_real_model_matches_manual(tmp_path, tiny):
    model, preprocess, tok = tiny
    cfg = make_imagenet(tmp_path, per_class=3, noise=60)
    out = imagenet_zeroshot(model, preprocess, tok, cfg, batch_size=64, workers=0, device="cpu")
    assert out["n_images"] == 25 and out["n_classes"] == 8
    assert 0.0 <= out["acc1"] <= out["acc5"] <= 1.0 and 0.0 <= out["mean_per_class_recall"] <= 1.0

    files = _sorted_files(Path(cfg.root))
    x = torch.stack([preprocess(Image.open(f).convert("RGB")) for f, _ in files])
    truth = torch.tensor([c for _, c in files])
    img = F.normalize(model.encode_image(x), dim=-1)
    protos = []
    for name in NAMES:
        e = F.normalize(model.encode_text(tok([t.format(c=name) for t in benchmarks.imagenet_templates()])), dim=-1)
        protos.append(F.normalize(e.mean(0), dim=0))
    logits = img @ torch.stack(protos).T
    top5 = logits.topk(5, dim=1).indices
    assert out["acc1"] == pytest.approx(float((top5[:, 0] == truth).float().mean()))
    assert out["acc5"] == pytest.approx(float((top5 == truth[:, None]).any(1).float().mean()))
    recall = [float((top5[truth == c, 0] == c).float().mean()) for c in range(len(NAMES))]
    assert out["mean_per_class_recall"] == pytest.approx(float(np.mean(recall)))


@torch.no_grad()
def test_coco_retrieval_real_model_matches_manual(tmp_path, tiny):
    model, preprocess, tok = tiny
    cfg = make_coco(tmp_path, noise=60)
    out = coco_retrieval(model, preprocess, tok, cfg, batch_size=64, workers=0, device="cpu")
    assert out["n_images"] == 8 and out["n_captions"] == 16
    assert all(0.0 <= out[k] <= 1.0 for k in ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5"))
    assert out["i2t_r1"] <= out["i2t_r5"] and out["t2i_r1"] <= out["t2i_r5"]

    raw = json.loads(Path(cfg.captions).read_text(encoding="utf-8"))
    ids = sorted({a["image_id"] for a in raw["annotations"]})
    files = {im["id"]: im["file_name"] for im in raw["images"]}
    caps = [(ids.index(a["image_id"]), a["caption"]) for i in ids for a in sorted(raw["annotations"], key=lambda a: a["id"])
            if a["image_id"] == i]
    img = F.normalize(model.encode_image(torch.stack(
        [preprocess(Image.open(Path(cfg.images) / files[i]).convert("RGB")) for i in ids])), dim=-1)
    txt = F.normalize(model.encode_text(tok([c for _, c in caps])), dim=-1)
    owner = torch.tensor([o for o, _ in caps])
    sim = txt @ img.T
    for k in (1, 5):
        t2i = (sim.topk(k, dim=1).indices == owner[:, None]).any(1).float().mean()
        i2t = torch.stack([(owner[sim[:, j].topk(k).indices] == j).any() for j in range(len(ids))]).float().mean()
        assert out[f"t2i_r{k}"] == pytest.approx(float(t2i)) and out[f"i2t_r{k}"] == pytest.approx(float(i2t))


def test_val_transform_is_the_backbones_preprocess(tmp_path, tiny):
    model, preprocess, _ = tiny
    _jpeg(tmp_path / "a.jpg", (10, 200, 30), size=(90, 70), noise=40)
    im = Image.open(tmp_path / "a.jpg")
    assert torch.equal(val_transform(model)(im), preprocess(im))


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: each error names the params key (and the file)
# ---------------------------------------------------------------------------------------------------------------------

def test_imagenet_bad_inputs(tmp_path, tiny):
    _, preprocess, _ = tiny
    good = make_imagenet(tmp_path / "good", misfiled=False)
    with pytest.raises(FileNotFoundError, match=r"params.yaml: eval_retention.imagenet.root: /nope/val does not exist"):
        check_imagenet(ImageNetDirParams(root="/nope/val", classnames=good.classnames))
    with pytest.raises(FileNotFoundError, match=r"eval_retention.imagenet.classnames: .*missing.txt does not exist"):
        check_imagenet(ImageNetDirParams(root=good.root, classnames=str(tmp_path / "missing.txt")))
    with pytest.raises(NotADirectoryError, match=r"eval_retention.imagenet.root: .*classnames.txt is not a directory"):
        check_imagenet(ImageNetDirParams(root=good.classnames, classnames=good.classnames))
    with pytest.raises(IsADirectoryError, match=r"eval_retention.imagenet.classnames: .* is not a file"):
        check_imagenet(ImageNetDirParams(root=good.root, classnames=good.root))

    short = tmp_path / "seven.txt"
    short.write_text("\n".join(NAMES[:7]), encoding="utf-8")
    with pytest.raises(ValueError, match=r"eval_retention.imagenet.classnames: .*seven.txt has 7 class names but "
                                         r"eval_retention.imagenet.root: .*val has 8 class folders"):
        check_imagenet(ImageNetDirParams(root=good.root, classnames=str(short)))
    with pytest.raises(ValueError, match="has 7 class names"):  # the scoring function checks too, before scoring
        imagenet_zeroshot(Planted(preprocess), preprocess, planted_tokenizer,
                          ImageNetDirParams(root=good.root, classnames=str(short)))

    flat = tmp_path / "flat"
    _jpeg(flat / "a.jpg", (0, 0, 0))  # images straight under root: not a class tree
    with pytest.raises(ValueError, match=r"eval_retention.imagenet.root: .*flat has no class folders"):
        check_imagenet(ImageNetDirParams(root=str(flat), classnames=good.classnames))

    empty = tmp_path / "empty_class"
    _jpeg(empty / "a" / "x.jpg", (0, 0, 0))
    (empty / "b").mkdir()
    (empty / "b" / "notes.txt").write_text("no images here", encoding="utf-8")
    two = tmp_path / "two.txt"
    two.write_text("alpha\nbeta\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"eval_retention.imagenet.root: .*empty_class: .*no valid file .*\bb\b"):
        check_imagenet(ImageNetDirParams(root=str(empty), classnames=str(two)))


def _coco_json(path: Path, obj) -> str:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return str(path)


def test_coco_bad_inputs(tmp_path, tiny):
    _, preprocess, _ = tiny
    good = make_coco(tmp_path / "good")
    with pytest.raises(FileNotFoundError, match=r"params.yaml: eval_retention.coco.images: /nope/val2017 does not exist"):
        check_coco(CocoDirParams(images="/nope/val2017", captions=good.captions))
    with pytest.raises(FileNotFoundError, match=r"params.yaml: eval_retention.coco.captions: .*nope.json does not exist"):
        check_coco(CocoDirParams(images=good.images, captions=str(tmp_path / "nope.json")))
    with pytest.raises(FileNotFoundError, match="eval_retention.coco.captions"):  # and before any scoring
        coco_retrieval(Planted(preprocess), preprocess, planted_tokenizer,
                       CocoDirParams(images=good.images, captions=str(tmp_path / "nope.json")))

    raw = json.loads(Path(good.captions).read_text(encoding="utf-8"))
    bad = {
        "not_json.json": ("{images: [", r"is not JSON"),
        "a_list.json": ([{"image_id": 1, "caption": "x"}], r"is not COCO-style: a COCO captions file needs"),
        "no_annotations.json": ({"images": raw["images"]}, r"is not COCO-style"),
        "instances.json": ({"images": raw["images"], "annotations": [{"image_id": 1000, "bbox": [0, 0, 1, 1]}]},
                           r"is not COCO-style: annotations\[0\]"),
        "bad_image.json": ({"images": [{"id": "x"}], "annotations": []}, r"is not COCO-style: images\[0\]"),
        "orphan.json": ({"images": raw["images"], "annotations": [{"image_id": 999, "caption": "x"}]},
                        r"annotations\[0\] refers to image_id 999"),
        "too_few.json": ({"images": raw["images"], "annotations": raw["annotations"][:6]}, r"has 3 captioned images; R@5"),
    }
    for name, (obj, msg) in bad.items():
        path = _coco_json(tmp_path / name, obj)
        with pytest.raises(ValueError, match=rf"params.yaml: eval_retention.coco.captions: {re.escape(path)}.*{msg}"):
            check_coco(CocoDirParams(images=good.images, captions=path))

    gone = Path(good.images) / raw["images"][2]["file_name"]
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=rf"eval_retention.coco.images: .*val2017 lacks 1 of the 8 images that "
                                                rf"eval_retention.coco.captions: .*captions_val2017.json names.*{gone.name}"):
        check_coco(good)


# ---------------------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------------------

def _pretrain() -> PretrainSet:
    rng = np.random.default_rng(3)
    n = 24
    scenes = ("shop", "plaza", "street")
    return PretrainSet(images=rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8),
                       captions=[f"a {scenes[i % 3]} scene, a person in {NAMES[i % 8]}" for i in range(n)],
                       split=np.array(["heldout" if i % 4 else "train" for i in range(n)]))


@pytest.fixture
def staged(tmp_path, monkeypatch, tiny):
    """The stage with its model and stills replaced: the tiny model, 18 held-out stills; results under tmp_path (the
    stage writes results/ relative to the repository root, the working directory)."""
    model, _, tok = tiny
    calls = []

    def fake_open(p, variant, name):
        calls.append(variant)
        return model, tok

    monkeypatch.setattr(stage, "open_backbone", fake_open)
    monkeypatch.setattr(stage, "load_pretrain_set", lambda d: _pretrain())
    monkeypatch.chdir(tmp_path)
    return SimpleNamespace(calls=calls, out=tmp_path / "results" / "eval_retention" / "base" / "metrics.json",
                           model=model, tok=tok)


# params.yaml's data group (its sources) on either kind of source
SYNTHETIC = repo_params("data", source="synthetic", world={SYNTHETIC_WORLD: {}}, inputs=SYNTH_INPUTS)
REAL = repo_params("data", source="ucf_vagta", world={}, inputs=REAL_INPUTS)


def _params(retention: RetentionParams, data: DataParams = SYNTHETIC) -> SimpleNamespace:
    return SimpleNamespace(eval_retention=retention, data=data)


def test_stage_with_both_null_writes_what_it_wrote_before(tmp_path, staged, params_of):
    stage.run(_params(params_of("eval_retention", max_images=10, imagenet=None, coco=None)), variant="base")
    # the stage as it was before the benchmarks: stills retention only
    data = _pretrain()
    idx = data.indices("heldout")
    idx = idx[np.linspace(0, len(idx) - 1, 10).round().astype(int)]
    before = tmp_path / "before.json"
    write_json(before, retention(staged.model, staged.tok, data.images[idx], [data.captions[i] for i in idx]))
    assert staged.out.read_bytes() == before.read_bytes()
    assert not {"imagenet", "coco"} & set(json.loads(staged.out.read_text(encoding="utf-8")))


def test_stage_adds_both_benchmarks(tmp_path, staged, params_of):
    stage.run(_params(params_of("eval_retention", max_images=10, imagenet=None, coco=None)), variant="base")
    plain = json.loads(staged.out.read_text(encoding="utf-8"))
    r = params_of("eval_retention", max_images=10, imagenet=make_imagenet(tmp_path / "imagenet"),
                  coco=make_coco(tmp_path / "coco"), batch_size=4)
    stage.run(_params(r), variant="base")
    out = json.loads(staged.out.read_text(encoding="utf-8"))
    assert {k: v for k, v in out.items() if k not in ("imagenet", "coco")} == plain
    assert out["imagenet"]["n_images"] == 17 and out["imagenet"]["n_classes"] == 8
    assert out["coco"]["n_images"] == 8 and out["coco"]["n_captions"] == 16
    assert set(out["coco"]) == {"i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "n_images", "n_captions"}


def test_stage_checks_directories_before_loading_a_model(tmp_path, staged, params_of):
    coco = make_coco(tmp_path / "coco")
    imagenet = make_imagenet(tmp_path / "imagenet")
    bad_imagenet = ImageNetDirParams(root=str(tmp_path / "no_such_val"), classnames=imagenet.classnames)
    with pytest.raises(FileNotFoundError, match=r"params.yaml: eval_retention.imagenet.root: .*no_such_val does not exist"):
        stage.run(_params(params_of("eval_retention", imagenet=bad_imagenet, coco=coco)), variant="base")
    bad_coco = CocoDirParams(images=coco.images, captions=str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match=r"params.yaml: eval_retention.coco.captions: .*missing.json does not exist"):
        stage.run(_params(params_of("eval_retention", imagenet=imagenet, coco=bad_coco)), variant="base")
    assert staged.calls == [] and not staged.out.exists()


def test_topk_helper_matches_a_manual_count_and_is_only_swapped_during_the_call(tmp_path, tiny):
    from clip_benchmark.metrics import zeroshot_classification as zc

    logits = torch.randn(50, 12, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 12, (50,), generator=torch.Generator().manual_seed(2))
    ranks = (logits > logits.gather(1, target[:, None])).sum(1)  # classes scored above the true one
    assert benchmarks._accuracy(logits, target, topk=(1, 5)) == pytest.approx(
        [float((ranks < 1).float().mean()), float((ranks < 5).float().mean())])
    shipped = zc.accuracy
    _, preprocess, _ = tiny
    imagenet_zeroshot(Planted(preprocess), preprocess, planted_tokenizer, make_imagenet(tmp_path))
    assert zc.accuracy is shipped


def test_real_source_scores_the_benchmarks_only(tmp_path, staged, monkeypatch, params_of):
    """A real source has no held-out stills (no data/synth): the benchmarks alone, and without them a clear error
    naming the params, before any model is loaded."""
    monkeypatch.setattr(stage, "load_pretrain_set", lambda d: pytest.fail("a real source read the synthetic stills"))
    with pytest.raises(ValueError, match=r"eval_retention@base: a real source has no held-out stills; set "
                                         r"eval_retention.imagenet and/or eval_retention.coco"):
        stage.run(_params(params_of("eval_retention", imagenet=None, coco=None), REAL), variant="base")
    assert staged.calls == []
    r = params_of("eval_retention", imagenet=make_imagenet(tmp_path / "imagenet"), coco=None, batch_size=4)
    stage.run(_params(r, REAL), variant="base")
    out = json.loads(staged.out.read_text(encoding="utf-8"))
    assert set(out) == {"imagenet"} and out["imagenet"]["n_classes"] == 8
