"""params.yaml as one typed, validated model.

Every stage reads its parameters through :func:`load_params`; an unknown key, a wrong type or an impossible value
fails with a message naming the file and the dotted key (``params.yaml: frames.fps: ...``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed, or has an unknown / ill-typed key."""


class _Strict(BaseModel):
    # extra="forbid" turns a typo'd key into an error instead of a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteFile(_Strict):
    path: str = Field(description="destination path under data/raw/")
    url: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, ge=0)
    extract: bool = False


class RealSource(_Strict):
    """A published dataset: annotation files fetched by URL, videos usually already on the user's disk."""

    files: list[RemoteFile]
    manifest: str | None = Field(description="URL or path of a manifest.json listing more files")
    video_root: str | None = Field(description="local directory holding the dataset's videos")
    video_prefix: str = Field(description="where video_root appears under data/raw/ (the annotations' video prefix)")
    train_annotations: str
    test_annotations: str
    train_items: str
    novel_classes: list[str] = Field(
        description="categories held out for the open-vocabulary split (none: no split)")


SYNTHETIC_WORLD = "vagta_synth"  # the key of data.world (and the stage name synthesize@vagta_synth)
SYNTH_INPUTS = {"download": "data/synth/published", "truth": "data/synth/truth", "pretrain": "data/synth/pretrain"}
# On a real source every input is what `download` fetched, and download itself has nothing upstream: its dep is its
# own code (already listed), since a dep must name an existing path.
REAL_INPUTS = {**dict.fromkeys(SYNTH_INPUTS, "data/raw"), "download": "src/alertclip/data/download"}


class SourceInputs(_Strict):
    """What the source-neutral stages read of the source, spelled out for dvc.yaml's deps (DVC's ``${}`` has no
    conditions). Fixed by ``data.source``: the synthetic world's directories, or ``data/raw`` on a real source (so a
    real DAG reads nothing under data/synth)."""

    download: str = Field(description="what `download` fetches from: the published world, or its own code")
    truth: str = Field(description="the injected defects (curation quality); the synthetic world only")
    pretrain: str = Field(description="the backbone's pre-training stills; the synthetic world only")


class DataParams(_Strict):
    # `sources` before `source`: the validator of `source` sees the validated sources (and errors name data.source).
    sources: dict[Literal["ucf_vagta", "msad_vagta"], RealSource]
    source: Literal["synthetic", "ucf_vagta", "msad_vagta"]
    # foreach of synthesize@<key>: one world on the synthetic source, none on a real one (DVC's foreach is the only
    # way a stage can be absent from the DAG).
    world: dict[str, dict]
    inputs: SourceInputs

    @field_validator("source")
    @classmethod
    def _source_is_declared(cls, source: str, info: ValidationInfo) -> str:
        if source != "synthetic" and source not in info.data.get("sources", {}):
            raise ValueError(f"{source!r} has no entry in data.sources")
        return source

    @model_validator(mode="after")
    def _shape_matches_source(self) -> "DataParams":
        synthetic = self.source == "synthetic"
        world = {SYNTHETIC_WORLD: {}} if synthetic else {}
        if self.world != world:
            raise ValueError(f"data.world must be {world} with data.source {self.source} (got {self.world}); "
                             "`alertclip profile NAME` writes a consistent params.yaml")
        inputs = SYNTH_INPUTS if synthetic else REAL_INPUTS
        if self.inputs.model_dump() != inputs:
            raise ValueError(f"data.inputs must be {inputs} with data.source {self.source} "
                             f"(got {self.inputs.model_dump()}); `alertclip profile NAME` writes a consistent params.yaml")
        return self


MIN_TEST_VIDEOS_PER_CLASS = 5  # fewer test videos of a class and a bootstrap over videos is mostly empty resamples
MIN_VIDEO_SECONDS = 4.0  # every video holds two events at least (an abnormal one and its look-alike)


class WorldSize(_Strict):
    n_train: int = Field(ge=2)
    n_test: int = Field(ge=2)
    min_seconds: float = Field(gt=0)
    max_seconds: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "WorldSize":
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be >= min_seconds")
        return self


class SynthesizeParams(_Strict):
    seed: int
    sizes: dict[str, WorldSize]
    size: str  # after `sizes`, so its validator can see them
    width: int = Field(ge=32, le=512)
    height: int = Field(ge=32, le=512)
    fps: int = Field(ge=5, le=60)
    odd_fraction: float = Field(ge=0, le=1, description="share of videos at another fps and size")
    abnormal_fraction: float = Field(gt=0, lt=1)
    novel_events: list[str]
    crf: int = Field(ge=0, le=51)
    defect_rate: float = Field(ge=0, le=0.5, description="share of annotation entries given each defect kind")
    workers: int = Field(ge=0, description="0 = all cores")

    @field_validator("size")
    @classmethod
    def _size_exists(cls, size: str, info: ValidationInfo) -> str:
        if "sizes" in info.data and size not in info.data["sizes"]:
            raise ValueError(f"{size!r} is not one of synthesize.sizes: {sorted(info.data['sizes'])}")
        return size

    @property
    def world(self) -> WorldSize:
        return self.sizes[self.size]

    @model_validator(mode="after")
    def _both_classes(self) -> "SynthesizeParams":
        """Every split needs both labels; the test split enough of each for a bootstrap CI over its videos."""
        world = self.world
        for split, count, least in (("n_train", world.n_train, 1), ("n_test", world.n_test, MIN_TEST_VIDEOS_PER_CLASS)):
            n_abnormal = max(1, int(round(count * self.abnormal_fraction)))
            if min(n_abnormal, count - n_abnormal) < least:
                raise ValueError(
                    f"sizes.{self.size}.{split}: {count} videos at abnormal_fraction {self.abnormal_fraction} give "
                    f"{n_abnormal} abnormal and {count - n_abnormal} normal; each class needs at least {least}"
                    + (" for a bootstrap CI over test videos" if split == "n_test" else ""))
        if world.min_seconds < MIN_VIDEO_SECONDS:
            raise ValueError(f"sizes.{self.size}.min_seconds: {world.min_seconds} s is too short for two events "
                             f"(at least {MIN_VIDEO_SECONDS} s)")
        return self


class DownloadParams(_Strict):
    retries: int = Field(ge=0)
    backoff_s: float = Field(ge=0)
    timeout_s: float = Field(gt=0)


class FramesParams(_Strict):
    fps: int = Field(ge=1, le=60)
    width: int = Field(ge=8, le=1024)
    height: int = Field(ge=8, le=1024)
    clip_frames: int = Field(ge=1, le=64, description="T frames sampled per annotated clip")
    snippet_len: int = Field(ge=1, description="frames per snippet of an untrimmed video (VadCLIP: 16)")
    shard_mb: int = Field(ge=1, description="maximum size of one frame array file")
    workers: int = Field(ge=0, description="0 = all cores")


class CurateParams(_Strict):
    min_span_frames: int = Field(ge=1, description="clips spanning fewer frames (25 fps) are too short")
    min_caption_words: int = Field(ge=1, description="captions with fewer words are weak")
    phash_distance: int = Field(ge=0, le=256, description="max mean Hamming distance of 256-bit pHashes: near-duplicate")
    box_tolerance: float = Field(ge=0, le=0.5, description="boxes this far outside [0, 1] are clamped")
    repair_typos: bool = Field(description="repair digit-inside-word typos instead of dropping the clip")


class LLMParams(_Strict):
    enabled: bool
    base_url: str  # an OpenAI-compatible server, e.g. a locally served Qwen-VL
    model: str
    api_key_env: str  # name of the environment variable holding the key (never the key)
    timeout_s: float = Field(gt=0)
    temperature: float = Field(ge=0, le=2)
    cache_dir: str


class HardnegParams(_Strict):
    k: int = Field(ge=1, le=16, description="hard negatives per region caption")
    seed: int
    min_shared_content: float = Field(ge=0, le=1, description="share of the positive's content words kept")
    llm: LLMParams


class BackboneParams(_Strict):
    arch: str
    pretrained: str | None = Field(description=(
        "open_clip tag for real weights (real profiles: openai); 'random' = the architecture's random init (smoke runs "
        "of a real profile); None = pre-train on the synthetic world"))
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(ge=0, description="max grad norm; 0 = off")
    seed: int
    checkpoint_every: int = Field(ge=0, description="steps between resume checkpoints; 0 = end/SIGTERM only")
    max_eval: int = Field(ge=1, description="held-out images used for R@k")


class TuneParams(_Strict):
    """What every tuning run shares (params ``tune``); each row of ``runs`` adds its losses, init, negatives and
    epochs. The architecture is ``backbone.arch``: a run tunes the backbone's own towers."""

    batch_size: int = Field(ge=2)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(ge=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(ge=0, description="max grad norm; 0 = off")
    seed: int
    checkpoint_every: int = Field(ge=0, description="steps between resume checkpoints; 0 = end/SIGTERM only")
    k_negatives: int = Field(ge=0, description="negatives per clip (padded + masked when fewer)")
    temporal_layers: int = Field(ge=1)
    temporal_heads: int = Field(ge=1)
    train_visual: Literal["all", "frozen", "last_n"]
    train_text: Literal["all", "frozen", "last_n"]
    last_n: int = Field(ge=0)
    val_fraction: float = Field(ge=0, lt=1, description="validation videos carved from TRAINING videos")
    grad_checkpointing: bool = Field(description="recompute tower activations in backward (less memory)")
    precision: Literal["auto", "bf16", "fp32"] = Field(description="auto = bf16 autocast on CUDA, fp32 on CPU")
    temperature: float | None = Field(ge=0.01, le=1.0, description="initial tau; null = the checkpoint's")
    batching: Literal["random", "balanced", "pairs"] = Field(
        description="balanced: half abnormal + half normal clips per batch, an epoch = the smaller class once; "
                    "pairs: balanced, each abnormal clip next to a normal clip of its own video (its look-alike)")
    select_on: Literal["val_auc", "val_video_auc", "val_loss"] = Field(
        description="kept epoch: highest zero-shot val AUC (eval.prompts; ties: lower val total) of the "
                               "validation clips (val_auc) or of every snippet of the validation videos "
                               "(val_video_auc), or lowest val total")

    @field_validator("batching")
    @classmethod
    def _balanced_needs_even_batch(cls, batching: str, info: ValidationInfo) -> str:
        size = info.data.get("batch_size")
        if batching in ("balanced", "pairs") and isinstance(size, int) and size % 2:
            raise ValueError(f"balanced batches need an even batch_size (half abnormal, half normal); got {size}")
        return batching


LOSS_WEIGHTS = {"region": "lambda_region", "hard": "lambda_hard"}  # L_g + lambda_region L_r + lambda_hard L_h
BACKBONE_INIT = "backbone"  # a run's init: the base backbone, or the name of another run
RESERVED_RUN_NAMES = frozenset({BACKBONE_INIT, "interpolated"})  # taken under data/models/


class RunParams(BaseModel):
    """One tuning run (a row of params ``runs``, the stage ``tune@<name>``): its losses, the weight of each loss
    besides the global one (``lambda_region`` with ``region``, ``lambda_hard`` with ``hard``), the model it starts
    from, its negatives and epochs; any key of ``tune`` it sets replaces the shared value for this run only (e.g. the
    sweep's best ``lr``). The weights live in the rows, not in ``tune``: a run that leaves a loss out does not depend
    on its weight (changing ``runs.full.lambda_hard`` reruns ``tune@full`` alone)."""

    model_config = ConfigDict(extra="allow", frozen=True)  # the extra keys are checked below

    losses: list[Literal["global", "region", "hard"]] = Field(
        min_length=1, description="a subset of global, region, hard with global; a loss left out has weight 0")
    init: str = Field(min_length=1, description="backbone (the base model) or the name of another run")
    negatives: Literal["hard", "standard"] = Field(description="hard: the inverted captions; standard: other clips'")
    epochs: int = Field(ge=1)

    @field_validator("losses")
    @classmethod
    def _global_included(cls, losses: list[str]) -> list[str]:
        if "global" not in losses:
            raise ValueError("every run trains the global loss: include 'global'")
        if len(set(losses)) != len(losses):
            raise ValueError(f"a loss is listed twice: {losses}")
        return losses

    @model_validator(mode="after")
    def _extra_keys_are_weights_or_tune_keys(self) -> "RunParams":
        extra = dict(self.model_extra or {})
        for loss, key in LOSS_WEIGHTS.items():
            if loss in self.losses and key not in extra:
                raise ValueError(f"{key}: missing (losses list {loss!r}: give its weight)")
            if loss not in self.losses and key in extra:
                raise ValueError(f"{key}: set, but losses {self.losses} leave out {loss!r}")
            value = extra.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{key}: a weight >= 0, got {value!r}")
        for key in extra:
            if key not in TuneParams.model_fields and key not in LOSS_WEIGHTS.values():
                raise ValueError(f"{key}: unknown key (a run sets losses, {', '.join(LOSS_WEIGHTS.values())}, init, "
                                 f"negatives, epochs, or a key of tune: {', '.join(TuneParams.model_fields)})")
        return self

    def weights(self) -> dict[str, float]:
        """``lambda_region`` and ``lambda_hard`` of this run (0 for a loss it leaves out)."""
        extra = dict(self.model_extra or {})
        return {key: float(extra[key]) if loss in self.losses else 0.0 for loss, key in LOSS_WEIGHTS.items()}

    def overrides(self) -> dict:
        """The ``tune`` keys this run sets itself."""
        return {k: v for k, v in (self.model_extra or {}).items() if k not in LOSS_WEIGHTS.values()}


ALERT_CLIP_RUN = "full"  # the run with the paper's recipe: the one the sweep searches, the report's reference


class RunSettings(TuneParams):
    """One run's training settings: ``tune`` with the run's row applied (:func:`alertclip.tune.settings.run_settings`)."""

    arch: str
    epochs: int = Field(ge=1)
    lambda_region: float = Field(ge=0)
    lambda_hard: float = Field(ge=0)
    negatives: Literal["hard", "standard"]
    init: str = Field(min_length=1)

    @field_validator("lambda_hard")
    @classmethod
    def _hard_needs_negatives(cls, lam: float, info: ValidationInfo) -> float:
        if lam > 0 and info.data.get("k_negatives") == 0:
            raise ValueError("lambda_hard > 0 needs k_negatives > 0 (the hard-negative loss has nothing to score)")
        return lam


SWEPT = ("lambda_region", "lambda_hard", "temperature", "lr")  # the settings a sweep trial samples, in order
# (minimum allowed low, maximum allowed high, inclusive minimum?) of each swept key
_SWEEP_BOUNDS = {"lambda_region": (0.0, math.inf, True), "lambda_hard": (0.0, math.inf, True),
                 "temperature": (0.01, 1.0, True), "lr": (0.0, math.inf, False)}


class SweepRange(_Strict):
    """One searched interval ``[low, high]``, sampled uniformly or log-uniformly."""

    low: float
    high: float
    log: bool = Field(description="sample on a log scale (the learning rate must)")


def _check_range(name: str, r: SweepRange) -> None:
    key = f"sweep.ranges.{name}"
    lo_min, hi_max, inclusive = _SWEEP_BOUNDS[name]
    if not (math.isfinite(r.low) and math.isfinite(r.high)):
        raise ValueError(f"{key}: low and high must be finite, got [{r.low}, {r.high}]")
    if r.low > r.high:
        raise ValueError(f"{key}: inverted range: low {r.low} > high {r.high}")
    if r.low == r.high:
        raise ValueError(f"{key}: empty range: low == high == {r.low} (to fix a value, set it in tune instead)")
    if r.low < lo_min or (not inclusive and r.low <= lo_min) or r.high > hi_max:
        bounds = f"{'[' if inclusive else '('}{lo_min}, {hi_max}]"
        raise ValueError(f"{key}: [{r.low}, {r.high}] must lie in {bounds}")
    if r.log and r.low <= 0:
        raise ValueError(f"{key}: a log-uniform range needs low > 0, got {r.low}")
    if name == "lr" and not r.log:
        raise ValueError(f"{key}: the learning rate is sampled log-uniformly; set log: true")


class SweepParams(_Strict):
    """The Optuna loss-weight sweep (alertclip.sweep); ``ranges`` gives every swept key (SWEPT) its interval."""

    n_trials: int = Field(ge=1, description="COMPLETE + PRUNED trials the study ends with")
    seed: int = Field(description="TPE seed (and the fANOVA importance seed)")
    storage: str = Field(min_length=1,
                         description="a file path (journal), sqlite:///x.db, or an RDB URL (postgresql://...) for workers")
    study_name: str = Field(min_length=1, description="prefix; the study is <study_name>-<hash of settings + inputs>")
    single_worker: bool | None = Field(description="null = true for a journal file / SQLite, false for other RDB URLs")
    epochs: int | None = Field(ge=1, description="epochs per trial; null = the searched run's epochs")
    n_startup_trials: int = Field(ge=0, description="TPE: random trials before the model kicks in")
    multivariate: bool = Field(description="TPE: model the parameters jointly")
    pruner: Literal["median", "hyperband", "none"]
    prune_startup_trials: int = Field(ge=0, description="median: finished trials before anything is pruned")
    prune_warmup_epochs: int = Field(ge=0, description="median: epochs a trial runs before it can be pruned")
    min_resource: int = Field(ge=1, description="hyperband: epochs of the smallest rung")
    reduction_factor: int = Field(ge=2)
    heartbeat_s: int = Field(ge=1, description="several workers on an RDB: heartbeat interval of a running trial")
    grace_s: int = Field(ge=1, description="a trial whose heartbeat is older is failed (must be > heartbeat_s)")
    max_retry: int = Field(ge=0, description="... and its parameters re-queued at most this often (0 = never)")
    ranges: dict[Literal["lambda_region", "lambda_hard", "temperature", "lr"], SweepRange]

    @field_validator("storage", "study_name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _checked(self) -> "SweepParams":
        if self.grace_s <= self.heartbeat_s:
            raise ValueError("sweep.grace_s: must be > sweep.heartbeat_s")
        missing = [name for name in SWEPT if name not in self.ranges]
        if missing:
            raise ValueError(f"sweep.ranges: no interval for {missing} (every one of {list(SWEPT)} is swept)")
        for name, r in self.searched():
            _check_range(name, r)
        return self

    def searched(self) -> list[tuple[str, SweepRange]]:
        """``(key, range)`` of every swept key in suggestion order."""
        return [(name, self.ranges[name]) for name in SWEPT]


class FeaturesParams(_Strict):
    batch_size: int = Field(ge=1, description="snippet frames encoded per batch")
    crops: Literal[1, 5, 10] = Field(description=(
        "views encoded per snippet frame: 1 = the whole frame (the synthetic default); 5 = centre and four corners; "
        "10 = those and their horizontal flips (VadCLIP's released features, crop 0 = centre)"))
    precision: Literal["auto", "autocast", "fp32"] = Field(
        description="auto = bf16 weights on CUDA, fp32 on CPU; autocast = fp32 weights + bf16 autocast")


class PromptParams(_Strict):
    template: str = Field(description="'{}' is replaced by each phrase")
    normal: list[str] = Field(min_length=1, description="P_N")
    abnormal: list[str] = Field(min_length=1, description="P_A")

    @field_validator("template")
    @classmethod
    def _has_slot(cls, t: str) -> str:
        if "{}" not in t:
            raise ValueError("template needs a '{}' slot for the phrase")
        return t

    @field_validator("normal", "abnormal")
    @classmethod
    def _non_empty(cls, phrases: list[str]) -> list[str]:
        if any(not p.strip() for p in phrases):
            raise ValueError("an empty phrase in the prompt set")
        return phrases

    def texts(self, kind: Literal["normal", "abnormal"]) -> list[str]:
        """``template.format(phrase)`` for each phrase of one set."""
        return [self.template.format(p) for p in getattr(self, kind)]


PIPELINE_FRAMES = "data/frames"  # the frames stage's output: a dataset whose test videos are the source's own


class DatasetParams(_Strict):
    """One evaluation dataset (``eval.datasets.<key>``: stages ``testset@<key>``, ``features@<backbone>-<key>``, ...)."""

    name: str = Field(min_length=1, description="as the report and the metrics files name it (UCF-Crime)")
    format: Literal["ucf", "xd", "ubnormal", "msad"] = Field(description="the ground truth's published format")
    ground_truth: str = Field(min_length=1, description="the test ground-truth file, in that format")
    videos: str = Field(min_length=1, description=(
        f"{PIPELINE_FRAMES} (the source's own test videos, as the frames stage decoded them) or a directory holding "
        "the dataset's test videos (decoded by testset@<key>)"))
    normal_markers: list[str] | None = Field(description=(
        "a test video without a ground-truth line is normal when its name holds one of these; null = the format's "
        "rule (UCF Normal, XD label_A, ...)"))
    prompts: PromptParams | None = Field(description="P_N / P_A for this dataset's classes; null = eval.prompts")
    detection_ground_truth: str | None = Field(description=(
        "a file in the same format naming a class per abnormal span, for detection mAP (XD-Violence: "
        "annotations_multiclasses.txt, read by VadCLIP's list/make_gt_mAP_xd.py); its spans must cover exactly the "
        "ground truth's frames; null = every span is of its video's category"))
    class_prompts: dict[str, str] | None = Field(description=(
        "the weakly supervised head's class prompt per category, normal included (VadCLIP's label map: RoadAccidents "
        "-> roadAccidents); null = the category in plain words (road accidents)"))
    metrics: list[Literal["auc", "ap"]] = Field(min_length=1,
                                                description="the paper's headline metric(s) for this dataset")

    @property
    def own_frames(self) -> bool:
        """True when the dataset's videos are the pipeline source's own (train videos exist for weakly heads)."""
        return self.videos.rstrip("/") == PIPELINE_FRAMES


class EvaluateParams(_Strict):
    """Which datasets (keys of ``eval.datasets``) each evaluation runs on: DVC's matrix crosses whole lists."""

    mss: list[str]
    zeroshot: list[str]
    weakly: list[str]
    openvocab: list[str]


class EvalParams(_Strict):
    """What every evaluation shares: the backbones compared (name -> model directory), the datasets and protocol."""

    backbones: dict[str, str] = Field(
        description="stage variant key -> a directory holding open_clip_model.pt (features@<key>-<dataset>, ...)")
    reference: str = Field(description="the backbone others are compared with (retention deltas)")
    datasets: dict[str, DatasetParams] = Field(min_length=1)
    evaluate: EvaluateParams
    protocol: Literal["vadclip", "exact"] = Field(description="frame ground truth: VadCLIP's or exact")
    test_crop: int = Field(ge=0, description=(
        "the crop test videos are scored on (VadCLIP: 0, the centre); weakly heads train on every crop"))
    prompts: PromptParams
    bootstrap_samples: int = Field(ge=100, description="test-video resamples behind each 95% CI (MSS, zero-shot "
                                   "AUC/AP, the report's paired gaps)")
    bootstrap_seed: int = Field(description="seed of the bootstrap draws: the CIs, and the report, are reproducible")

    @model_validator(mode="after")
    def _reference_known(self) -> "EvalParams":
        if not self.backbones:
            raise ValueError("backbones: at least one backbone to evaluate")
        if self.reference not in self.backbones:
            raise ValueError(f"reference {self.reference!r} is not one of backbones {sorted(self.backbones)}")
        for bad in [k for k in list(self.backbones) + list(self.datasets) if not _KEY.fullmatch(k)]:
            raise ValueError(f"{bad!r}: backbone and dataset keys are stage-name parts: letters, digits, _ only")
        for evaluation, keys in self.evaluate:
            for key in keys:
                if key not in self.datasets:
                    raise ValueError(f"evaluate.{evaluation}: {key!r} is not a key of datasets {sorted(self.datasets)}")
                ds = self.datasets[key]
                if evaluation in ("weakly", "openvocab") and not ds.own_frames:
                    raise ValueError(f"evaluate.{evaluation}: {key!r} has videos {ds.videos!r}; the weakly supervised "
                                     f"head trains on the dataset's training videos, which only {PIPELINE_FRAMES} has")
            if len(set(keys)) != len(keys):
                raise ValueError(f"evaluate.{evaluation}: a dataset is listed twice: {keys}")
        return self

    def prompts_of(self, dataset: str) -> PromptParams:
        """The prompt sets scoring ``dataset``: its own, else ``eval.prompts``."""
        return self.datasets[dataset].prompts or self.prompts


_KEY = re.compile(r"[A-Za-z0-9_]+")


class LinearMilParams(_Strict):
    """The linear MIL head (alertclip.eval.mil)."""

    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1, description="videos per step")
    topk_div: int = Field(ge=1, description="top-k pooling: k = length // topk_div + 1 (VadCLIP's)")


class VadClipParams(_Strict):
    """The VadCLIP-style head (alertclip.eval.vadclip); params.yaml says which settings are VadCLIP's own."""

    visual_length: int = Field(ge=8, description="VadCLIP: 256 (real videos are longer)")
    window: int = Field(ge=1, description="local attention window (VadCLIP: 8 UCF, 64 XD)")
    layers: int = Field(ge=1, description="local transformer blocks (VadCLIP: 2 UCF, 1 XD)")
    batch_per_class: int = Field(ge=1, description="normal and abnormal videos per step (VadCLIP: 64 + 64)")
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0, description="VadCLIP: 2e-5 with 125 iterations an epoch; ours has ~6")
    weight_decay: float = Field(ge=0)
    milestones: list[int] = Field(description="epochs where the lr drops by lr_gamma")
    heads: int = Field(ge=1)
    gcn_dim: int | None = Field(ge=1, description="GCN hidden width; null = feature_dim // 2")
    sim_threshold: float = Field(description="the similarity graph joins snippet pairs above this cosine")
    prompt_prefix: int = Field(ge=0, description="learned context tokens before the class name")
    prompt_postfix: int = Field(ge=0, description="... and after it")
    temperature: float = Field(gt=0)
    lr_gamma: float = Field(gt=0)
    iters_per_epoch: int = Field(ge=0, description="0 = n_abnormal // batch_per_class (each abnormal video once)")
    topk_div: int = Field(ge=1, description="top-k pooling: k = length // topk_div + 1")
    sep_weight: float = Field(ge=0)
    sep_per_class: bool = Field(description="divide sep_weight by the non-normal classes (UCF: 0.1 / 13)")
    eval_every: int = Field(ge=0, description="also validate every this many iterations (0 = epoch ends only)")
    reload_best_each_epoch: bool
    mask_padding: bool
    gcn_activation: Literal["gelu", "quick_gelu"] = Field(description="the GCN's nonlinearity (VadCLIP: quick_gelu)")
    test_chunk_lengths: Literal["real", "vadclip"] = Field(description=(
        "the length a test chunk carries: real (0 for the all-zero extra chunk when T % L == 0) or vadclip (L for it, "
        "as ucf_test.py / xd_test.py build them); the extra chunk's outputs are discarded either way"))


class WeaklyParams(_Strict):
    """The weakly supervised head: the VadCLIP-style one (alertclip.eval.vadclip) or the linear MIL one
    (alertclip.eval.mil), each with its own settings."""

    head: Literal["vadclip", "linear_mil"]
    linear_mil: LinearMilParams
    vadclip: VadClipParams
    seeds: list[int] = Field(min_length=1)
    val_fraction: float = Field(gt=0, lt=1, description="validation videos carved from the TRAINING videos")

    @property
    def head_params(self) -> LinearMilParams | VadClipParams:
        """The settings of the chosen head."""
        return self.linear_mil if self.head == "linear_mil" else self.vadclip


class ImageNetDirParams(_Strict):
    """An ImageNet-style class folder tree (``<root>/<class folder>/<image>``) with its class names."""

    root: str = Field(min_length=1, description="e.g. ILSVRC2012 val, one folder per class (torchvision ImageFolder)")
    classnames: str = Field(min_length=1, description="one class name per line, in the sorted order of the folders")


class CocoDirParams(_Strict):
    """COCO-style image-text pairs: an image folder and a captions JSON (``captions_val2017.json``)."""

    images: str = Field(min_length=1, description="folder of the images the captions JSON names")
    captions: str = Field(min_length=1, description="COCO captions annotation file")


class RetentionParams(_Strict):
    max_images: int = Field(ge=10, description="held-out pre-training stills scored")
    imagenet: ImageNetDirParams | None = Field(description="ImageNet-1k zero-shot through clip-benchmark")
    coco: CocoDirParams | None = Field(description="COCO image<->text retrieval through clip-benchmark")
    batch_size: int = Field(ge=1, description="images per batch for the clip-benchmark datasets")
    workers: int = Field(ge=0, description="data-loader workers for the clip-benchmark datasets")


class InterpolationParams(_Strict):
    """A weight-space interpolation of two backbones of one architecture (WiSE-FT, Wortsman et al. 2022):
    ``(1 - alpha) * base + alpha * tuned``. Model directories, as in ``eval.backbones``."""

    base: str = Field(min_length=1)
    tuned: str = Field(min_length=1)
    alpha: float = Field(ge=0.0, le=1.0, description="0 = the base backbone, 1 = the tuned one")


class Params(_Strict):
    data: DataParams
    synthesize: SynthesizeParams
    download: DownloadParams
    frames: FramesParams
    curate: CurateParams
    hardneg: HardnegParams
    backbone: BackboneParams
    tune: TuneParams
    runs: dict[str, RunParams] = Field(min_length=1, description="tune@<name> -> data/models/<name>")
    sweep: SweepParams
    features: FeaturesParams
    eval: EvalParams
    eval_weakly: WeaklyParams
    eval_retention: RetentionParams
    interpolate: dict[str, InterpolationParams] = Field(description=(
        "interpolate@<name> -> data/models/interpolated/<name>; add the directory to eval.backbones"))

    @field_validator("runs")
    @classmethod
    def _runs_start_from_known_models(cls, runs: dict[str, RunParams]) -> dict[str, RunParams]:
        if ALERT_CLIP_RUN not in runs:
            raise ValueError(f"no {ALERT_CLIP_RUN!r} run: Alert-CLIP's recipe, the one the sweep searches and the "
                             "report compares the other runs with")
        for name, run in runs.items():
            if name in RESERVED_RUN_NAMES or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"{name}: not a run name (letters, digits, _ . -; not {sorted(RESERVED_RUN_NAMES)})")
            seen, at = [name], run.init
            while at != BACKBONE_INIT:
                if at not in runs:
                    raise ValueError(f"{name}.init: {at!r} is neither {BACKBONE_INIT!r} nor a run ({sorted(runs)})")
                if at in seen:
                    raise ValueError(f"{name}.init: the runs start from each other in a circle: {' -> '.join(seen + [at])}")
                seen.append(at)
                at = runs[at].init
        return runs

    @model_validator(mode="after")
    def _runs_settings_valid(self) -> "Params":
        for name, run in self.runs.items():
            try:
                run_settings(self.tune, run, self.backbone.arch)
            except ValidationError as err:
                what = "; ".join(f"{_dotted(e['loc'])}: {e['msg']}" for e in err.errors())
                raise ValueError(f"runs.{name} with tune applied: {what}") from None
        return self

    @model_validator(mode="after")
    def _test_crop_exists(self) -> "Params":
        if self.eval.test_crop >= self.features.crops:
            raise ValueError(f"eval.test_crop {self.eval.test_crop} needs features.crops > {self.eval.test_crop} "
                             f"(features.crops is {self.features.crops}; crops are numbered from 0)")
        return self


def run_settings(tune: TuneParams, run: RunParams, arch: str) -> RunSettings:
    """One run's training settings: the shared ``tune`` values, the keys the run sets itself, its loss weights (0 for
    each loss it leaves out: phase 1 of the paper is the global loss alone from the backbone)."""
    return RunSettings.model_validate({**tune.model_dump(), **run.overrides(), **run.weights(), "arch": arch,
                                       "epochs": run.epochs, "negatives": run.negatives, "init": run.init})


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def parse_params(raw: object, origin: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = _dotted(e["loc"])
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"{origin}: {key}: {msg}")
        raise ParamsError("\n".join(lines)) from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage groups at top level")
    return parse_params(raw, origin=str(path))


def json_schema() -> dict:
    """JSON Schema of params.yaml (workflow/schemas/params.schema.json is this, for Snakemake's validate())."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Params.model_json_schema()}
