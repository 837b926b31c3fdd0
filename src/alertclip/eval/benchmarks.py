"""General ability kept on the paper's benchmarks, through ``clip-benchmark``, on local directories (nothing is
downloaded): ImageNet-1k zero-shot classification and COCO image<->text retrieval.

* ImageNet: ``eval_retention.imagenet`` names a class-folder tree (``<root>/<class folder>/<image>``, read by
  torchvision ``ImageFolder``) and a text file of class names, one per line in the sorted order of the folders.
  Prompts: clip-benchmark's packaged ImageNet templates (``en_zeroshot_classification_templates.json`` key
  ``imagenet1k``: the 80 prompts of OpenAI's CLIP paper). Metrics: ``clip_benchmark.metrics.zeroshot_classification
  .evaluate`` (top-1 / top-5 accuracy, mean per-class recall).
* COCO: ``eval_retention.coco`` names an image folder and a COCO captions JSON (``images`` / ``annotations`` lists,
  read by torchvision ``CocoCaptions``; batches by clip-benchmark's ``image_captions_collate_fn``). Metrics:
  ``clip_benchmark.metrics.zeroshot_retrieval.evaluate`` (R@1, R@5 as CLIP papers count them: a query is a hit when
  any of its positives is in the top k). Images without a caption are left out (they cannot be queried).

Images go through the backbone's own validation transform (open_clip's ``preprocess_val``; :func:`val_transform`
rebuilds it from the model). On CPU the model runs in fp32 (``amp=False``); on CUDA under clip-benchmark's default
autocast. Bad directories or files fail with the ``params.yaml`` key that names them, before any model work:
:func:`check_imagenet` / :func:`check_coco` are what the stage calls first.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from importlib import resources
from pathlib import Path
from unittest import mock

import torch

IMAGENET_KEY = "eval_retention.imagenet"
COCO_KEY = "eval_retention.coco"
TEMPLATES_FILE = "en_zeroshot_classification_templates.json"  # packaged with clip_benchmark.datasets
TEMPLATES_KEY = "imagenet1k"
RECALL_K = (1, 5)


def imagenet_templates() -> list[str]:
    """clip-benchmark's packaged ImageNet-1k prompt templates (``{c}`` is the class name)."""
    text = (resources.files("clip_benchmark.datasets") / TEMPLATES_FILE).read_text(encoding="utf-8")
    return list(json.loads(text)[TEMPLATES_KEY])


def val_transform(model):
    """The backbone's validation transform (PIL image -> normalised tensor), as ``factory.create`` returns it."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    return image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)


# ---------------------------------------------------------------------------------------------------------------------
# Input checks (no model needed)
# ---------------------------------------------------------------------------------------------------------------------

def _existing(path: str, key: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"params.yaml: {key}: {path} does not exist")
    if kind == "dir" and not p.is_dir():
        raise NotADirectoryError(f"params.yaml: {key}: {path} is not a directory")
    if kind == "file" and not p.is_file():
        raise IsADirectoryError(f"params.yaml: {key}: {path} is not a file")
    return p


def _image_folder(cfg, transform=None, where: str = IMAGENET_KEY):
    from torchvision.datasets import ImageFolder

    root = _existing(cfg.root, f"{where}.root", "dir")
    names_file = _existing(cfg.classnames, f"{where}.classnames", "file")
    classnames = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not folders:
        raise ValueError(f"params.yaml: {where}.root: {root} has no class folders (expected <root>/<class folder>/<image>)")
    if len(classnames) != len(folders):
        raise ValueError(f"params.yaml: {where}.classnames: {names_file} has {len(classnames)} class names but "
                         f"{where}.root: {root} has {len(folders)} class folders (one name per folder, in sorted order)")
    try:
        ds = ImageFolder(str(root), transform=transform)
    except FileNotFoundError as err:  # a class folder without a single image file
        raise ValueError(f"params.yaml: {where}.root: {root}: {err}") from err
    ds.classes = classnames  # clip-benchmark reads the class count from dataset.classes
    return ds


def check_imagenet(cfg, where: str = IMAGENET_KEY) -> dict:
    """Validate ``eval_retention.imagenet``; ``{"n_images", "n_classes"}``. Raises naming the bad params key."""
    ds = _image_folder(cfg, where=where)
    return {"n_images": len(ds), "n_classes": len(ds.classes)}


def _coco_captions(path: Path, where: str) -> dict[int, dict]:
    """Image id -> ``{"file_name", "n"}`` (captions) for every captioned image of a COCO captions JSON."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"params.yaml: {where}.captions: {path} is not JSON ({err})") from err
    shape = "a COCO captions file needs an object with lists `images` ({id, file_name}) and `annotations` ({image_id, caption})"
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list) or not isinstance(raw.get("annotations"), list):
        raise ValueError(f"params.yaml: {where}.captions: {path} is not COCO-style: {shape}")
    images: dict[int, str] = {}
    for i, im in enumerate(raw["images"]):
        if not (isinstance(im, dict) and isinstance(im.get("id"), int) and isinstance(im.get("file_name"), str)):
            raise ValueError(f"params.yaml: {where}.captions: {path} is not COCO-style: images[{i}] = {str(im)[:200]}; {shape}")
        images[im["id"]] = im["file_name"]
    counts: dict[int, int] = {}
    for i, ann in enumerate(raw["annotations"]):
        if not (isinstance(ann, dict) and isinstance(ann.get("image_id"), int) and isinstance(ann.get("caption"), str)):
            raise ValueError(f"params.yaml: {where}.captions: {path} is not COCO-style: annotations[{i}] = "
                             f"{str(ann)[:200]}; {shape}")
        if ann["image_id"] not in images:
            raise ValueError(f"params.yaml: {where}.captions: {path}: annotations[{i}] refers to image_id "
                             f"{ann['image_id']}, which is not in its `images`")
        counts[ann["image_id"]] = counts.get(ann["image_id"], 0) + 1
    return {k: {"file_name": images[k], "n": n} for k, n in sorted(counts.items())}


def check_coco(cfg, where: str = COCO_KEY) -> dict:
    """Validate ``eval_retention.coco``; ``{"image_ids", "n_images", "n_captions"}`` of the captioned images."""
    images = _existing(cfg.images, f"{where}.images", "dir")
    captions = _existing(cfg.captions, f"{where}.captions", "file")
    found = _coco_captions(captions, where)
    need = max(RECALL_K)
    if len(found) < need:
        raise ValueError(f"params.yaml: {where}.captions: {captions} has {len(found)} captioned images; R@{need} needs "
                         f"at least {need}")
    missing = [v["file_name"] for v in found.values() if not (images / v["file_name"]).is_file()]
    if missing:
        raise FileNotFoundError(f"params.yaml: {where}.images: {images} lacks {len(missing)} of the {len(found)} images "
                                f"that {where}.captions: {captions} names, e.g. {missing[:3]}")
    return {"image_ids": list(found), "n_images": len(found), "n_captions": sum(v["n"] for v in found.values())}


# ---------------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _on(device):
    """clip-benchmark takes a device *type* (it calls ``torch.autocast(device)``): make ``"cuda"`` mean ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None:
        with torch.cuda.device(dev):
            yield dev.type
    else:
        yield dev.type


def _loader(ds, batch_size: int, workers: int, collate_fn=None):
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                       collate_fn=collate_fn)


def _accuracy(output, target, topk=(1,)):
    """``clip_benchmark.metrics.zeroshot_classification.accuracy`` of 1.6.2, with ``.item()`` for its
    ``float(<1-element array>)``, a TypeError since NumPy 2.4 (LAION-AI/CLIP_benchmark#147, open)."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]


def _accuracy_works(zeroshot_classification) -> bool:
    try:
        zeroshot_classification.accuracy(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long))
    except TypeError:
        return False
    return True


@contextlib.contextmanager
def _working_accuracy(zeroshot_classification):
    """Run clip-benchmark's ``evaluate`` as is, but with its top-k helper replaced while that helper is broken under
    the installed NumPy (probed on a 1x1 input, so a fixed clip-benchmark is used as shipped)."""
    if _accuracy_works(zeroshot_classification):
        yield
    else:
        with mock.patch.object(zeroshot_classification, "accuracy", _accuracy):
            yield


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def imagenet_zeroshot(model, preprocess, tokenizer, cfg, batch_size: int = 64, workers: int = 0, device="cpu",
                      amp: bool | None = None, where: str = IMAGENET_KEY) -> dict:
    """Zero-shot classification on the ImageNet-style tree of ``cfg`` (``ImageNetDirParams``).

    ``{"acc1", "acc5", "mean_per_class_recall", "n_images", "n_classes"}``; ``acc5`` is None under 5 classes
    (clip-benchmark leaves it NaN). ``amp``: None = autocast on CUDA only.
    """
    from clip_benchmark.metrics import zeroshot_classification

    ds = _image_folder(cfg, transform=preprocess, where=where)
    model.eval()
    with _on(device) as dev:
        amp = dev == "cuda" if amp is None else amp
        with _working_accuracy(zeroshot_classification):
            out = zeroshot_classification.evaluate(model, _loader(ds, batch_size, workers), tokenizer, ds.classes,
                                                   imagenet_templates(), dev, amp=amp)
    return {"acc1": float(out["acc1"]), "acc5": _nan_to_none(out["acc5"]),
            "mean_per_class_recall": float(out["mean_per_class_recall"]), "n_images": len(ds), "n_classes": len(ds.classes)}


def coco_retrieval(model, preprocess, tokenizer, cfg, batch_size: int = 64, workers: int = 0, device="cpu",
                   amp: bool | None = None, where: str = COCO_KEY) -> dict:
    """Image<->text retrieval on the COCO captions of ``cfg`` (``CocoDirParams``).

    ``{"i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "n_images", "n_captions"}``: image->text is clip-benchmark's
    ``text_retrieval_recall@k``, text->image its ``image_retrieval_recall@k``.
    """
    from clip_benchmark.datasets.builder import image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval
    from torchvision.datasets import CocoCaptions

    found = check_coco(cfg, where)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # pycocotools prints its progress
        ds = CocoCaptions(root=cfg.images, annFile=cfg.captions, transform=preprocess)
    ds.ids = found["image_ids"]  # sorted by id, as CocoCaptions orders them; captionless images left out
    model.eval()
    with _on(device) as dev:
        amp = dev == "cuda" if amp is None else amp
        out = zeroshot_retrieval.evaluate(model, _loader(ds, batch_size, workers, image_captions_collate_fn), tokenizer,
                                          dev, amp=amp, recall_k_list=list(RECALL_K))
    res = {}
    for k in RECALL_K:
        res[f"i2t_r{k}"] = float(out[f"text_retrieval_recall@{k}"])
        res[f"t2i_r{k}"] = float(out[f"image_retrieval_recall@{k}"])
    return {**res, "n_images": found["n_images"], "n_captions": found["n_captions"]}
