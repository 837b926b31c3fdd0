"""Weakly supervised VAD on frozen snippet features: the VadCLIP-style head (:mod:`alertclip.eval.vadclip`) or the
linear MIL head (:mod:`alertclip.eval.mil`, chosen by ``eval_weakly.head``) trained on TRAIN videos with video-level
labels only (the VadCLIP head's epoch selected on a validation split of the training videos), evaluated on the test
set with the field's protocol (:mod:`alertclip.eval.metrics`), over several seeds.

* Video label = its category (the folder of a UCF-style path: ``.../Videos/RoadAccidents/RoadAccidents001_x264.mp4``);
  a name with a normal marker (``Normal``, ``label_A``) is the normal class. The head's class prompts come from the
  dataset's table (params ``eval.datasets.<key>.class_prompts``: VadCLIP's label maps in the real profiles) or else
  are the category split into words (``RoadAccidents`` -> ``road accidents``), normal first.
* Validation videos: a fixed hash-ordered share of the training videos of each kind (:func:`split_train_val`), so every seed
  selects on the same videos and both kinds are present; the seeds change initialisation and sampling only.
* Reported per seed and as mean / sample std over seeds: frame AUC and AP of prob1 (the binary branch: VadCLIP's UCF
  number), AP and AUC of prob2 (the alignment branch: VadCLIP's XD number), and mAP@IoU 0.1-0.5 of the class
  probabilities (VadCLIP's detectionMAP, with its UCF normal-class quirk).
* Open vocabulary (:func:`open_vocabulary`): the head is trained without the novel categories' videos and classes;
  AUC/AP are reported on the test videos of base categories vs of novel categories (each with all normal videos).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..params import LinearMilParams, VadClipParams
from .detection import detection_ground_truth, detection_map
from .groundtruth import build_frame_level, is_normal_name
from .metrics import frame_auc_ap
from .mil import score_mil, train_linear_mil
from .vadclip import roc_auc, score_videos, train_vadclip, video_scores

log = logging.getLogger(__name__)


NORMAL = "Normal"


def category_of(video: str) -> str:
    """UCF-style category of a video path; the normal class for names with a normal marker."""
    if is_normal_name(Path(video).name):
        return NORMAL
    parent = Path(video).parent.name
    if not parent:
        raise ValueError(f"{video}: no category folder in the path and no normal marker in the name")
    return parent


def class_phrase(category: str) -> str:
    """``RoadAccidents`` -> ``road accidents`` (the words the text tower reads)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", category).replace("_", " ").lower()


def class_prompt(category: str, table: Mapping[str, str] | None, where: str = "class_prompts") -> str:
    """The head's prompt for ``category``: the table's entry, or the category in plain words without a table."""
    if table is None:
        return class_phrase(category)
    if category not in table:
        raise ValueError(f"{where}: no prompt for the category {category!r} (the table names {', '.join(sorted(table))})")
    return table[category]


def summarise(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "per_seed": [float(x) for x in v]}


def split_train_val(train: dict[str, np.ndarray], fraction: float) -> tuple[list[str], list[str]]:
    """``(fit, val)``: per kind (normal / abnormal) the ``max(1, round(fraction * n))`` videos with the smallest
    ``sha256("0:<video>")`` -- deterministic, order-free, and both kinds always present in the validation split."""
    import hashlib

    def rank(v: str) -> str:
        return hashlib.sha256(f"0:{v}".encode()).hexdigest()

    def video(sample: str) -> str:  # the crops of one video (<video>__<k>) stay on one side of the split
        return _CROP_SAMPLE.sub("", sample)

    val: set[str] = set()
    for normal in (True, False):
        kind = sorted({video(v) for v in train if (category_of(v) == NORMAL) == normal}, key=rank)
        if len(kind) < 2:
            raise ValueError(f"{len(kind)} {'normal' if normal else 'abnormal'} training video(s): the weakly "
                             f"supervised head needs at least 2 (one to fit, one to validate)")
        val.update(kind[:min(len(kind) - 1, max(1, round(fraction * len(kind))))])
    return [v for v in train if video(v) not in val], [v for v in train if video(v) in val]


_CROP_SAMPLE = re.compile(r"__\d+$")  # FeatureSet.by_video(crop="all"): one training sample per crop


def _evaluate(scores: list[dict], names: list[str], truth, categories: list[str], protocol: str,
              n_frames: dict[str, int] | None, clip_len: int) -> dict:
    def frame_level(key: str):
        return build_frame_level([(v, s[key], (n_frames or {}).get(v)) for v, s in zip(names, scores)], truth,
                                 protocol, clip_len=clip_len)

    f1, f2 = frame_level("prob1"), frame_level("prob2")
    m1 = frame_auc_ap(f1.labels, f1.scores, n_videos=len(names))
    m2 = frame_auc_ap(f2.labels, f2.scores, n_videos=len(names))
    out = {"auc": m1["auc"], "ap": m1["ap"], "auc_prob2": m2["auc"], "ap_prob2": m2["ap"]}
    if not {category_of(v) for v in names} <= set(categories):
        return out  # classes the head never saw (open vocabulary): no class scores to detect them with
    gt = detection_ground_truth([(v, len(s["prob1"])) for v, s in zip(names, scores)], truth, normal_class=NORMAL,
                                clip_len=clip_len)
    det = detection_map([s["class_probs"] for s in scores], gt, categories, clip_len=clip_len, normal_class=NORMAL)
    out["map_avg"] = det.average
    out.update({f"map@{t:.1f}": m for t, m in zip(det.iou_thresholds, det.map_at_iou)})
    return out


def weakly_supervised(train: dict[str, np.ndarray], test: dict[str, np.ndarray], truth, clip, tokenizer,
                      cfg: VadClipParams | LinearMilParams, seeds: Sequence[int], val_fraction: float, protocol: str = "vadclip",
                      n_frames: dict[str, int] | None = None, exclude: set[str] = frozenset(),
                      subsets: dict[str, list[str]] | None = None, class_prompts: Mapping[str, str] | None = None,
                      prompts_key: str = "class_prompts", *, clip_len: int) -> dict:
    """Train and evaluate the head once per seed; returns ``{"metrics", "per_seed", "scores", "history"}``.

    ``clip_len``: frames per snippet (params ``frames.snippet_len``), for the frame-level ground truth.

    ``class_prompts``: the VadCLIP head's prompt per category (:func:`class_prompt`; ``prompts_key`` names the table in
    errors). ``exclude``: categories whose training videos are dropped (open vocabulary). ``subsets``: named lists of test
    videos evaluated separately (``{"all": every test video}`` by default). ``scores``: prob1 per test video, mean
    over seeds (for the report's traces).
    """
    train = {v: f for v, f in train.items() if category_of(v) not in exclude}
    fit, val = split_train_val(train, val_fraction)
    categories = [NORMAL] + sorted({category_of(v) for v in train} - {NORMAL})
    def prompt(category: str) -> str:
        return class_prompt(category, class_prompts, prompts_key)

    phrases = [prompt(c) for c in categories]
    names = list(test)
    subsets = subsets or {"all": names}
    per_seed: dict[str, list[dict]] = {k: [] for k in subsets}
    history, mean_prob1 = [], {v: np.zeros(len(test[v])) for v in names}
    for seed in seeds:
        if isinstance(cfg, LinearMilParams):
            head, hist = train_linear_mil([train[v] for v in fit], [categories.index(category_of(v)) for v in fit],
                                          len(categories), cfg, seed)
            val_scores = video_scores(score_mil(head, [train[v] for v in val]), cfg.topk_div)
            hist.update(best_auc=roc_auc([category_of(v) != NORMAL for v in val], val_scores),
                        best_epoch=cfg.epochs - 1, iters_per_epoch=-(-len(fit) // cfg.batch_size))
            scores = dict(zip(names, score_mil(head, [test[v] for v in names])))
        else:
            head, hist = train_vadclip([train[v] for v in fit], [prompt(category_of(v)) for v in fit],
                                       ([train[v] for v in val], [prompt(category_of(v)) for v in val]),
                                       phrases, clip, tokenizer, cfg, seed)
            scores = dict(zip(names, score_videos(head, [test[v] for v in names], clip)))
        for key, videos in subsets.items():
            per_seed[key].append(_evaluate([scores[v] for v in videos], videos, truth, categories, protocol, n_frames,
                                                clip_len))
        for v in names:
            mean_prob1[v] += scores[v]["prob1"] / len(seeds)
        history.append({"seed": seed, "best_val_auc": hist.get("best_auc"), "best_epoch": hist.get("best_epoch"),
                        "iters_per_epoch": hist.get("iters_per_epoch"), "final_loss": hist["loss"][-1]})
        log.info("seed %d: %s", seed, {k: per_seed[k][-1] for k in subsets})
    metrics = {key: {m: summarise([r[m] for r in rows]) for m in rows[0]} for key, rows in per_seed.items()}
    info = {"seeds": list(seeds), "n_train_videos": len(fit), "n_val_videos": len(val), "classes": categories,
            "head": "linear_mil" if isinstance(cfg, LinearMilParams) else "vadclip",
            "selection": ("head kind on validation frame AUC (benchmarks/select_weakly_head.py), trained to its last "
                          "epoch" if isinstance(cfg, LinearMilParams) else
                          "best video-level AUC on a validation split of the TRAINING videos (VadCLIP: test set)"),
            "config": cfg.model_dump(), **({} if isinstance(cfg, LinearMilParams) else {"class_prompts": phrases})}
    return {"metrics": metrics, "info": info, "scores": mean_prob1, "history": history}


def open_vocabulary_subsets(test: dict[str, np.ndarray], novel: set[str]) -> dict[str, list[str]]:
    """Base / novel test subsets: abnormal videos of base (novel) categories, each with every normal video."""
    normal = [v for v in test if category_of(v) == NORMAL]
    base = [v for v in test if category_of(v) not in novel | {NORMAL}]
    nov = [v for v in test if category_of(v) in novel]
    if not nov:
        raise ValueError(f"no test video of the novel categories {sorted(novel)}")
    return {"base": normal + base, "novel": normal + nov}
