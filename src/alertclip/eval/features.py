"""Frozen per-snippet image embeddings of every train and test video, for one backbone (VadCLIP's protocol).

One vector per 16-frame snippet (the ``frames`` stage stores the snippet's centre frame; VadCLIP's extractor is
unreleased, see ../shared/reference section A): the backbone's image tower, L2-normalised, stored as fp16
``(N_snippets, D)`` in the row order of ``data/frames/snippets.parquet``. Frame embeddings, not the temporal
module: every evaluation head (VadCLIP, zero-shot, MSS) works on per-snippet features, as in the field.

Arrays are cached under ``data/.cache/features/<checkpoint sha256>-<frames digest>.npy`` (outside the outputs), so
a rerun with the same weights and frames, or another stage variant naming the same checkpoint, reuses them.
Batched, no grad, bf16 autocast on CUDA, a progress bar.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..factory import CHECKPOINT_FILE, images_to_tensor
from ..io import atomic_path, sha256_file, write_json
from ..paths import CACHE_DIR

log = logging.getLogger(__name__)


FEATURES_FILE = "snippets.npy"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"


@dataclass(frozen=True)
class FeatureSet:
    """Features of one backbone: ``features[rows_of(video)]`` are that video's snippets in order."""

    features: np.ndarray  # (N, D) float16, L2-normalised
    videos: list[str]  # per row
    splits: list[str]  # per row
    snippet: np.ndarray  # (N,) snippet index within its video
    meta: dict
    crop: np.ndarray | None = None  # (N,) view index (features.crops > 1); None: one view, the whole frame

    def by_video(self, split: str | None = None, crop: int | str | None = None) -> dict[str, np.ndarray]:
        """``{video: (T, D) float32}`` in first-appearance order (optionally one split).

        With several crops: ``crop=k`` keeps view ``k`` (``eval.test_crop`` for test videos); ``crop="all"`` keeps
        every view, each as its own sample ``<video>__<k>`` (VadCLIP's training lists: one row per crop).
        """
        n_crops = int(self.meta.get("crops", 1))
        if n_crops > 1 and crop is None:
            raise ValueError(f"features of {n_crops} crops: pick one (crop=k) or all (crop='all')")
        if crop is not None and crop != "all" and not isinstance(crop, (int, np.integer)):
            raise ValueError(f"crop must be a view index (int) or 'all', got {crop!r}")
        if crop != "all" and crop is not None and not 0 <= crop < n_crops:
            raise ValueError(f"crop {crop} does not exist: the features hold {n_crops} crop(s) (features.crops)")
        out: dict[str, list[int]] = {}
        for i, (v, s) in enumerate(zip(self.videos, self.splits)):
            if split is None or s == split:
                if n_crops > 1:
                    k = int(self.crop[i])
                    if crop == "all":
                        v = f"{v}__{k}"
                    elif k != crop:
                        continue
                out.setdefault(v, []).append(i)
        result = {}
        for v, rows in out.items():
            rows_a = np.asarray(rows)
            order = np.argsort(self.snippet[rows_a], kind="stable")
            result[v] = self.features[rows_a[order]].astype(np.float32)
        return result


def frames_digest(frames_dir: Path) -> str:
    """Hash of the snippet index and shard sizes: changes whenever the snippet frames do (cheap, no array read)."""
    h = hashlib.sha256(sha256_file(frames_dir / "snippets.parquet").encode())
    for shard in sorted(frames_dir.glob("snippets-*.npy")):
        h.update(f"{shard.name}:{shard.stat().st_size}:{sha256_file(shard)}".encode())
    return h.hexdigest()[:16]


def prepare_for_inference(model: torch.nn.Module, precision: str = "auto") -> tuple[torch.nn.Module, object]:
    """``(model, autocast context or None)`` for frozen encoding. ``auto``: bf16 *weights* on CUDA (measured faster
    than fp32 weights under autocast: no per-layer casts), fp32 on CPU; ``autocast``: fp32 weights + bf16 autocast on
    CUDA; ``fp32``: plain fp32."""
    if precision not in ("auto", "autocast", "fp32"):
        raise ValueError(f"features.precision must be auto|autocast|fp32, got {precision!r}")
    device = next(model.parameters()).device
    if device.type != "cuda" or precision == "fp32":
        return model.float(), None
    if precision == "auto":
        return model.to(torch.bfloat16), None
    return model, torch.autocast("cuda", dtype=torch.bfloat16)


def crop_views(images: np.ndarray, crops: int) -> np.ndarray:
    """``(B, H, W, 3)`` uint8 -> ``(B * crops, h, w, 3)``, snippet-major: the whole frame (1), or torchvision's
    ``five_crop``/``ten_crop`` at 7/8 of the short side (the usual 224-of-256 ratio), renumbered centre first: 0 centre,
    1-4 the corners (top-left, top-right, bottom-left, bottom-right), 5-9 the same views flipped horizontally."""
    if crops == 1:
        return images
    from torchvision.transforms.v2 import functional as TF

    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    side = int(min(x.shape[-2:]) * 7 // 8)
    views = TF.five_crop(x, side)  # (tl, tr, bl, br, centre)
    ordered = [views[4], *views[:4]]
    if crops == 10:
        ordered += [TF.horizontal_flip(v) for v in ordered]
    return torch.stack(ordered, dim=1).flatten(0, 1).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def encode_snippets(model: torch.nn.Module, frames_dir: Path, batch_size: int, progress: bool, precision: str,
                    crops: int) -> np.ndarray:
    """Image embeddings (N * crops, D) fp16 of every stored snippet frame, in ``snippets.parquet`` row order (the
    crops of one snippet adjacent, see :func:`crop_views`)."""
    import polars as pl
    from tqdm.auto import tqdm

    from ..data.frames import open_frames

    table = pl.read_parquet(frames_dir / "snippets.parquet")
    shards = open_frames(frames_dir, "snippets")
    if crops not in (1, 5, 10):
        raise ValueError(f"features.crops must be 1, 5 or 10, got {crops}")
    if not shards:
        raise FileNotFoundError(f"no snippets-*.npy frame shards in {frames_dir}")
    device = next(model.parameters()).device
    model, autocast = prepare_for_inference(model.eval(), precision)
    dtype = next(model.parameters()).dtype
    shard_col, row_col = table["shard"].to_numpy(), table["row"].to_numpy()
    chunks = []
    for start in tqdm(range(0, table.height, batch_size), desc="features", unit="batch",
                      disable=not progress):
        sl = slice(start, start + batch_size)
        imgs = crop_views(np.stack([shards[s][r] for s, r in zip(shard_col[sl], row_col[sl])]), crops)
        x = images_to_tensor(imgs, model).to(device, dtype, non_blocking=True)
        if autocast is not None:
            with autocast:
                emb = model.encode_image(x, normalize=True)
        else:
            emb = model.encode_image(x, normalize=True)
        chunks.append(emb.float().cpu().numpy().astype(np.float16))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float16)


def extract(model_dir: Path, frames_dir: Path, out_dir: Path, arch: str, batch_size: int,
            cache_dir: Path = CACHE_DIR / "features", progress: bool = False, name: str = "", *,
            precision: str, crops: int) -> dict:
    """Write ``out_dir/{snippets.npy, index.parquet, meta.json}`` for the OpenCLIP checkpoint in ``model_dir``."""
    import polars as pl

    from .. import factory

    ckpt = Path(model_dir) / CHECKPOINT_FILE
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: no OpenCLIP checkpoint (run the stage that writes {model_dir})")
    ckpt_sha = sha256_file(ckpt)
    key = f"{ckpt_sha[:16]}-{frames_digest(Path(frames_dir))}-{precision}" + (f"-crops{crops}" if crops > 1 else "")
    cached = Path(cache_dir) / f"{key}.npy"
    clip, _, _, _ = factory.create(arch, pretrained=ckpt)
    if cached.exists():
        feats = np.load(cached)
        log.info("features: cached %s (%d x %d)", cached, *feats.shape)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        feats = encode_snippets(clip.to(device), Path(frames_dir), batch_size, progress, precision, crops)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.save(fh, feats)
    if not np.isfinite(feats.astype(np.float32)).all():
        raise ValueError(f"{ckpt}: non-finite image embeddings (checkpoint broken?)")
    table = pl.read_parquet(Path(frames_dir) / "snippets.parquet").select("video", "split", "snippet", "frame")
    if crops > 1:  # one row per (snippet, crop), crops adjacent as encoded; one view keeps the one-row-per-snippet index
        table = table.join(pl.DataFrame({"crop": list(range(crops))}, schema={"crop": pl.Int64}), how="cross")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / FEATURES_FILE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, feats)
    with atomic_path(out_dir / INDEX_FILE) as tmp:
        table.write_parquet(tmp)
    meta = {"backbone": name, "model_dir": str(model_dir), "arch": arch, "checkpoint_sha256": ckpt_sha,
            "dim": int(feats.shape[1]), "n_snippets": int(feats.shape[0]) // crops, "n_videos": table["video"].n_unique(),
            "logit_scale": float(clip.logit_scale.detach().exp().clamp(max=100.0)), "dtype": "float16", "l2_normalised": True,
            "precision": precision, **({"crops": crops} if crops > 1 else {})}
    write_json(out_dir / META_FILE, meta)
    return meta


def load_features(directory: str | Path) -> FeatureSet:
    """Read a features directory; a row count that disagrees with the index names both files."""
    import json

    import polars as pl

    directory = Path(directory)
    feats = np.load(directory / FEATURES_FILE)
    table = pl.read_parquet(directory / INDEX_FILE)
    if len(feats) != table.height:
        raise ValueError(f"{directory / FEATURES_FILE}: {len(feats)} rows but {directory / INDEX_FILE} lists "
                         f"{table.height} snippets")
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    crop = table["crop"].to_numpy() if "crop" in table.columns else None
    return FeatureSet(feats, table["video"].to_list(), table["split"].to_list(), table["snippet"].to_numpy(), meta, crop)
