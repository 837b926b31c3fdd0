"""Every repository path the stages read and write, in one place: the contract of dvc.yaml's deps and outs (tests
check that each declared out is written). Relative to the repository root, where every stage runs."""

from pathlib import Path

DATA = Path("data")
SYNTH_DIR = DATA / "synth"  # synthesize: the embedded VAGTA-synth world (published / truth / pretrain)
PRETRAIN_DIR = SYNTH_DIR / "pretrain"  # stills + captions that pre-train the synthetic backbone
RAW_DIR = DATA / "raw"  # download: the source's annotations and videos
# held out for open vocabulary: the synthetic world publishes it, a real source's download writes it from params
NOVEL_CLASSES = RAW_DIR / "annotations" / "novel_classes.txt"
FRAMES_DIR = DATA / "frames"  # frames: clip and snippet frame arrays
MEDIA_TABLE = FRAMES_DIR / "media.parquet"  # one row per video: decode status and frame count
CURATED_DIR = DATA / "curated"  # curate, hardneg
CLIPS = CURATED_DIR / "clips.parquet"
HARDNEG = CURATED_DIR / "hardneg.parquet"
STANDARD_NEGATIVES = CURATED_DIR / "standard_negatives.parquet"
MODELS_DIR = DATA / "models"  # backbone, <run> (one per row of params runs), interpolated/<name>
BACKBONE_DIR = MODELS_DIR / "backbone"
INTERPOLATED_DIR = MODELS_DIR / "interpolated"  # interpolate@<name> (WiSE-FT)
CHECKPOINTS_DIR = DATA / "checkpoints"  # checkpoint@<backbone>: <backbone>.json, which weights a key names
TESTSETS_DIR = DATA / "testsets"  # testset@<dataset>: ground truth, video list (and frames of external videos)
FEATURES_DIR = DATA / "features"  # features@<backbone>-<dataset>: <backbone>/<dataset>/
HUB_DIR = DATA / "hub"  # publish@<backbone>: <backbone>/, its weights in open_clip's Hugging Face hub layout + card
CACHE_DIR = DATA / ".cache"  # resume state and downloads: outside every output, so it survives a failed stage
DOWNLOAD_CACHE = CACHE_DIR / "downloads"
RESULTS = Path("results")  # metrics, plots, the report
SWEEP_RESULTS = RESULTS / "sweep"
LOG_DIR = Path("logs")  # one log per stage run


def result_path(stage: str, key: str, dataset: str | None, name: str) -> Path:
    """``name`` written by ``stage`` for backbone ``key`` on ``dataset`` (None: a per-backbone stage), as the stage
    writes it and the report reads it: ``results/eval_weakly/full/synth/metrics.json``,
    ``results/eval_retention/full/metrics.json``."""
    base = RESULTS / stage / key
    return (base if dataset is None else base / dataset) / name


def stage_name(stage: str, key: str, dataset: str | None) -> str:
    """The dvc.yaml stage of one pair: ``eval_zeroshot@full-synth``, ``eval_retention@full``."""
    return f"{stage}@{key}" if dataset is None else f"{stage}@{key}-{dataset}"
