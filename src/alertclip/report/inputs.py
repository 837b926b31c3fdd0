"""What the report reads: its path constants, the evaluation and training :class:`Results`, the per-video file readers.

The evaluation results form a grid: each per-dataset evaluation (``eval_mss``, ``eval_zeroshot``, ``eval_weakly``,
``eval_openvocab``) runs on every backbone of params ``eval.backbones`` crossed with the dataset keys of its list in
params ``eval.evaluate`` (``results/<stage>/<backbone>/<dataset>/``, dvc.yaml stage ``<stage>@<backbone>-<dataset>``);
``eval_retention`` runs once per backbone (``results/eval_retention/<backbone>/``, stage ``eval_retention@<backbone>``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..eval.testsets import TRUTH_FILE, VIDEOS_FILE, load_testset, testset_dir
from ..params import Params
from ..paths import RESULTS, result_path, stage_name

REPORT_MD = RESULTS / "report.md"
REPORT_DIR = RESULTS / "report"
TABLES_DIR = REPORT_DIR / "tables"
FIGURES_DIR = REPORT_DIR / "figures"
INDEX_JSON = REPORT_DIR / "index.json"


# Evaluation stages and the files of each the report reads (all required), per (backbone, dataset) pair or per backbone.
EVAL_FILES: dict[str, tuple[str, ...]] = {
    "eval_mss": ("metrics.json", "signed.csv"),
    "eval_zeroshot": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_weakly": ("metrics.json", "scores.parquet", "roc.csv"),
    "eval_openvocab": ("metrics.json",),
    "eval_retention": ("metrics.json",),
}
# Per-dataset stages -> their list in params eval.evaluate; the other stages of EVAL_FILES run once per backbone.
EVALUATIONS: dict[str, str] = {"eval_mss": "mss", "eval_zeroshot": "zeroshot", "eval_weakly": "weakly",
                               "eval_openvocab": "openvocab"}
# Stages whose per-video files need the dataset's checked ground truth (data/testsets/<key>/, stage testset@<key>).
NEEDS_TRUTH = ("eval_zeroshot", "eval_weakly")
# Training summaries (optional): results/backbone/metrics.json, results/tune/<run>/metrics.json (dvc.yaml tune@<run>).
TRAINING_STAGES = ("backbone", "tune")
METRIC_LABELS = {"auc": "AUC", "ap": "AP"}


class MissingResultError(FileNotFoundError):
    """A result file the report needs is absent; the message names each file and the dvc.yaml stage writing it."""


class ReportInputError(ValueError):
    """A result file is present but lacks what the report needs (a dataset block, a metric)."""


def posix(path: Path) -> str:
    return path.as_posix()


@dataclass(frozen=True)
class Dataset:
    """One evaluation dataset as the report shows it (params ``eval.datasets.<key>`` and where ``eval.evaluate`` uses it)."""

    key: str
    name: str
    format: str
    ground_truth: str
    metrics: tuple[str, ...]  # the paper's headline metric(s): "auc" / "ap"
    evaluations: tuple[str, ...]  # the per-dataset stages running on it (eval_mss, ...), in EVALUATIONS order

    @property
    def primary(self) -> str:
        """The first headline metric: the one the seeded heads' findings and the ablation table use."""
        return self.metrics[0]


@dataclass
class Results:
    """Everything the report reads, keyed by (stage, backbone, dataset) (dataset None for retention); paths relative to
    ``root``."""

    root: Path
    backbones: list[str]
    reference: str
    seeds: list
    snippet_len: int  # frames per snippet (params frames.snippet_len): snippet scores -> frames
    datasets: dict[str, Dataset] = field(default_factory=dict)  # every key of params eval.datasets, in params order
    evaluate: dict[str, list[str]] = field(default_factory=dict)  # per-dataset stage -> dataset keys (eval.evaluate)
    metrics: dict[tuple[str, str, str | None], dict] = field(default_factory=dict)
    # dataset -> its checked test set (alertclip.eval.testsets.load_testset: .truth, .n_frames), for the datasets
    # whose per-video scores the report rebuilds
    testsets: dict[str, Any] = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    protocol: str = "vadclip"
    cache: dict = field(default_factory=dict, repr=False)

    # ---- the dataset axis ----
    def on(self, stage: str) -> list[str]:
        """Dataset keys ``stage`` ran on (params eval.evaluate), in that list's order."""
        return list(self.evaluate.get(stage, ()))

    @property
    def shown(self) -> list[str]:
        """Datasets at least one evaluation ran on, in params eval.datasets order: the ones the report shows."""
        return [k for k, d in self.datasets.items() if d.evaluations]

    @property
    def multi(self) -> bool:
        """More than one dataset shown: column groups, sections and figure names carry the dataset."""
        return len(self.shown) > 1

    def name(self, dataset: str) -> str:
        return self.datasets[dataset].name

    def label(self, dataset: str) -> str:
        """The dataset as column headers and headings name it: its name, plus the key when two shown share a name."""
        name = self.name(dataset)
        twins = [k for k in self.shown if self.name(k) == name]
        return name if len(twins) < 2 else f"{name} ({dataset})"

    def suffix(self, dataset: str) -> str:
        """Figure-name suffix: ``_<key>`` with several datasets, nothing with one (the single-dataset names stay)."""
        return f"_{dataset}" if self.multi else ""

    def truth_src(self, dataset: str) -> str:
        return posix(testset_dir(dataset) / TRUTH_FILE)

    # ---- result files ----
    def src(self, stage: str, key: str, dataset: str | None, name: str = "metrics.json") -> str:
        return posix(result_path(stage, key, dataset, name))

    def file(self, stage: str, key: str, dataset: str | None, name: str) -> Path:
        return self.root / result_path(stage, key, dataset, name)

    def block(self, stage: str, key: str, dataset: str | None) -> dict:
        """The ``{<dataset name>: {...}}`` block of one pair's metrics.json (retention files have none: the whole file)."""
        data = self.metrics[(stage, key, dataset)]
        if dataset is None:
            return data
        name = self.name(dataset)
        if name not in data:
            raise ReportInputError(f"{self.src(stage, key, dataset)}: no block for dataset {name!r} "
                                   f"(params eval.datasets.{dataset}.name); it has "
                                   f"{sorted(k for k in data if k != 'info')}; rerun dvc.yaml stage "
                                   f"`{stage_name(stage, key, dataset)}`")
        return data[name]

    def need(self, stage: str, key: str, dataset: str | None, *path: str) -> Any:
        """A required metric (``need("eval_weakly", "full", "synth", "auc")``); a clear error when absent."""
        node: Any = self.block(stage, key, dataset)
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                under = "" if dataset is None else f" (under {self.name(dataset)!r})"
                raise ReportInputError(f"{self.src(stage, key, dataset)}: missing {'.'.join(path)!r}{under}; rerun "
                                       f"dvc.yaml stage `{stage_name(stage, key, dataset)}`")
            node = node[part]
        return node

    def info(self, stage: str, key: str, dataset: str | None) -> dict:
        return self.metrics[(stage, key, dataset)].get("info", {}) or {}

    @property
    def tuned(self) -> list[str]:
        return [k for k in self.backbones if k != self.reference]


def _params(p: Params) -> tuple[list[str], str, list]:
    ev = p.eval
    backbones = list(dict(ev.backbones))
    if not backbones:
        raise ValueError("params.yaml: eval.backbones is empty; the report needs at least one backbone")
    ref = ev.reference
    if ref not in backbones:
        raise ValueError(f"params.yaml: eval.reference {ref!r} is not a key of eval.backbones ({backbones})")
    return backbones, ref, list(p.eval_weakly.seeds)


def _datasets(p: Params) -> tuple[dict[str, Dataset], dict[str, list[str]]]:
    evaluate = {stage: list(getattr(p.eval.evaluate, attr)) for stage, attr in EVALUATIONS.items()}
    for stage, keys in evaluate.items():
        unknown = [k for k in keys if k not in p.eval.datasets]
        if unknown:
            raise ValueError(f"params.yaml: eval.evaluate.{EVALUATIONS[stage]}: {unknown} not keys of eval.datasets "
                             f"({sorted(p.eval.datasets)})")
    datasets = {key: Dataset(key, ds.name, ds.format, ds.ground_truth, tuple(ds.metrics),
                             tuple(s for s in EVALUATIONS if key in evaluate[s]))
                for key, ds in p.eval.datasets.items()}
    return datasets, evaluate


def load_results(root: str | Path, p: Params) -> Results:
    """Read every metrics file and test set the report needs; all missing files are reported at once, each with the
    dvc.yaml stage writing it."""
    root = Path(root)
    backbones, ref, seeds = _params(p)
    datasets, evaluate = _datasets(p)
    res = Results(root, backbones, ref, seeds, int(p.frames.snippet_len), datasets, evaluate,
                  n_bootstrap=p.eval.bootstrap_samples, bootstrap_seed=p.eval.bootstrap_seed, protocol=p.eval.protocol)
    pairs = [(stage, key, ds) for stage in EVAL_FILES for key in backbones
             for ds in (res.on(stage) if stage in EVALUATIONS else [None])]
    missing = [(result_path(stage, key, ds, name), stage_name(stage, key, ds))
               for stage, key, ds in pairs for name in EVAL_FILES[stage]
               if not (root / result_path(stage, key, ds, name)).is_file()]
    truth_keys = [k for k in datasets if any(k in res.on(s) for s in NEEDS_TRUTH)]
    missing += [(testset_dir(k) / name, f"testset@{k}") for k in truth_keys for name in (TRUTH_FILE, VIDEOS_FILE)
                if not (root / testset_dir(k) / name).is_file()]
    if missing:
        lines = "\n".join(f"  {posix(path)}  (written by dvc.yaml stage `{stage}`)" for path, stage in missing)
        stages = " ".join(dict.fromkeys(s for _, s in missing))
        raise MissingResultError(f"the report needs {len(missing)} missing result file(s) under {root}:\n{lines}\n"
                                 f"produce them with `dvc repro {stages}` (or `alertclip <stage> --variant <key>`)")
    for stage, key, ds in pairs:
        rel = result_path(stage, key, ds, "metrics.json")
        try:
            data = json.loads((root / rel).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{posix(rel)}: not valid JSON ({exc}); rerun dvc.yaml stage "
                                   f"`{stage_name(stage, key, ds)}`") from exc
        if not isinstance(data, dict):
            raise ReportInputError(f"{posix(rel)}: expected a JSON object; rerun dvc.yaml stage "
                                   f"`{stage_name(stage, key, ds)}`")
        res.metrics[(stage, key, ds)] = data
    for k in truth_keys:
        res.testsets[k] = load_testset(k, p.eval.datasets[k], root)
    backbone, tune = TRAINING_STAGES
    summaries = {backbone: RESULTS / backbone / "metrics.json"}
    summaries.update({f"{tune}@{run}": RESULTS / tune / run / "metrics.json" for run in p.runs})  # params order
    for stage, rel in summaries.items():
        if (root / rel).is_file():
            res.training[stage] = json.loads((root / rel).read_text(encoding="utf-8"))
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
