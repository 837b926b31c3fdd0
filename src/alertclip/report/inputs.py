"""What the report reads: its path constants, the evaluation and training :class:`Results`, the per-video file readers."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..params import Params
from ..paths import RESULTS

REPORT_MD = RESULTS / "report.md"
REPORT_DIR = RESULTS / "report"
TABLES_DIR = REPORT_DIR / "tables"
FIGURES_DIR = REPORT_DIR / "figures"
INDEX_JSON = REPORT_DIR / "index.json"


# Per-backbone evaluation stages and the files of each the report reads (all required).
EVAL_FILES: dict[str, tuple[str, ...]] = {
    "eval_mss": ("metrics.json", "signed.csv"),
    "eval_zeroshot": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_weakly": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_openvocab": ("metrics.json",),
    "eval_retention": ("metrics.json",),
}
# Training summaries (optional): dvc.yaml stage -> metrics file.
TRAINING_STAGES = ("backbone", "stage1", "stage2")


class MissingResultError(FileNotFoundError):
    """A result file the report needs is absent; the message names each file and the dvc.yaml stage writing it."""


class ReportInputError(ValueError):
    """A result file is present but lacks what the report needs (a dataset block, a metric)."""


def result_path(stage: str, key: str, name: str) -> Path:
    """Relative path of ``name`` written by ``stage@key`` (``results/eval_weakly/full/metrics.json``)."""
    return RESULTS / stage / key / name


def _rel(path: Path) -> str:
    return path.as_posix()


@dataclass
class Results:
    """Everything the report reads, keyed by (stage, backbone); paths relative to ``root``."""

    root: Path
    dataset: str
    backbones: list[str]
    reference: str
    seeds: list
    annotations: Path
    annotations_src: str
    snippet_len: int  # frames per snippet (params frames.snippet_len): snippet scores -> frames
    metrics: dict[tuple[str, str], dict] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    protocol: str = "vadclip"
    cache: dict = field(default_factory=dict, repr=False)

    def src(self, stage: str, key: str, name: str = "metrics.json") -> str:
        return _rel(result_path(stage, key, name))

    def file(self, stage: str, key: str, name: str) -> Path:
        return self.root / result_path(stage, key, name)

    def block(self, stage: str, key: str) -> dict:
        """The ``{dataset: {...}}`` block of ``stage@key`` (retention files have none: the whole file)."""
        data = self.metrics[(stage, key)]
        if stage == "eval_retention":
            return data
        if self.dataset not in data:
            raise ReportInputError(f"{self.src(stage, key)}: no block for dataset {self.dataset!r} "
                                   f"(params eval.dataset); it has {sorted(k for k in data if k != 'info')}")
        return data[self.dataset]

    def need(self, stage: str, key: str, *path: str) -> Any:
        """A required metric (``need("eval_weakly", "full", "auc")``); a clear error when absent."""
        node: Any = self.block(stage, key)
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                raise ReportInputError(f"{self.src(stage, key)}: missing {'.'.join(path)!r} "
                                       f"(under {self.dataset!r}); rerun dvc.yaml stage `{stage}@{key}`")
            node = node[part]
        return node

    def info(self, stage: str, key: str) -> dict:
        return self.metrics[(stage, key)].get("info", {}) or {}

    @property
    def tuned(self) -> list[str]:
        return [k for k in self.backbones if k != self.reference]


def _params(p: Params) -> tuple[str, list[str], str, list, str]:
    ev = p.eval
    backbones = list(dict(ev.backbones))
    if not backbones:
        raise ValueError("params.yaml: eval.backbones is empty; the report needs at least one backbone")
    ref = ev.reference
    if ref not in backbones:
        raise ValueError(f"params.yaml: eval.reference {ref!r} is not a key of eval.backbones ({backbones})")
    seeds = list(p.eval_weakly.seeds)
    return ev.dataset, backbones, ref, seeds, str(ev.test_annotations)


def load_results(root: str | Path, p: Params) -> Results:
    """Read every metrics file the report needs; all missing files are reported at once, each with its stage."""
    root = Path(root)
    dataset, backbones, ref, seeds, ann = _params(p)
    ann_path = Path(ann) if Path(ann).is_absolute() else root / ann
    res = Results(root, dataset, backbones, ref, seeds, ann_path, Path(ann).as_posix(), int(p.frames.snippet_len),
                  n_bootstrap=p.eval.bootstrap_samples, bootstrap_seed=p.eval.bootstrap_seed, protocol=p.eval.protocol)
    missing = [(result_path(stage, key, name), f"{stage}@{key}")
               for stage, names in EVAL_FILES.items() for key in backbones for name in names
               if not (root / result_path(stage, key, name)).is_file()]
    if missing:
        lines = "\n".join(f"  {_rel(path)}  (written by dvc.yaml stage `{stage}`)" for path, stage in missing)
        stages = " ".join(sorted({s for _, s in missing}))
        raise MissingResultError(f"the report needs {len(missing)} missing result file(s) under {root}:\n{lines}\n"
                                 f"produce them with `dvc repro {stages}` (or `alertclip <stage> --variant <key>`)")
    if not ann_path.is_file():
        raise MissingResultError(f"params.yaml: eval.test_annotations: {ann_path} does not exist "
                                 "(written by dvc.yaml stage `synthesize`)")
    for stage in EVAL_FILES:
        for key in backbones:
            path = root / result_path(stage, key, "metrics.json")
            try:
                res.metrics[(stage, key)] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ReportInputError(f"{_rel(result_path(stage, key, 'metrics.json'))}: not valid JSON ({exc}); "
                                       f"rerun dvc.yaml stage `{stage}@{key}`") from exc
    for stage in TRAINING_STAGES:
        path = root / RESULTS / stage / "metrics.json"
        if path.is_file():
            res.training[stage] = json.loads(path.read_text(encoding="utf-8"))
        # stage-2 ablation variants (stage2@<name>) write results/stage2/<name>/metrics.json
        for sub in sorted((root / RESULTS / stage).glob("*/metrics.json")):
            res.training[f"{stage}@{sub.parent.name}"] = json.loads(sub.read_text(encoding="utf-8"))
    return res


def read_signed(path: Path) -> list[dict]:
    """``signed.csv`` rows: video, kind, signed (float)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{"video": r["video"], "kind": r["kind"], "signed": float(r["signed"])} for r in csv.DictReader(fh)]


def read_roc(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return (np.array([float(r["fpr"]) for r in rows]), np.array([float(r["tpr"]) for r in rows]))


def read_scores(path: Path) -> dict[str, np.ndarray]:
    """``scores.parquet`` as ``{video: (T,) score}`` in snippet order, videos sorted by name."""
    import polars as pl

    t = pl.read_parquet(path, columns=["video", "snippet", "score"]).sort(["video", "snippet"])
    return {str(v): g["score"].to_numpy().astype(np.float64) for (v,), g in t.group_by("video", maintain_order=True)}
