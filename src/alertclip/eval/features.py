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

    def by_video(self, split: str | None = None) -> dict[str, np.ndarray]:
        """``{video: (T, D) float32}`` in first-appearance order (optionally one split)."""
        out: dict[str, list[int]] = {}
        for i, (v, s) in enumerate(zip(self.videos, self.splits)):
            if split is None or s == split:
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


@torch.no_grad()
def encode_snippets(model: torch.nn.Module, frames_dir: Path, batch_size: int = 256, progress: bool = False,
                    precision: str = "auto") -> np.ndarray:
    """Image embeddings (N, D) fp16 of every stored snippet frame, in ``snippets.parquet`` row order."""
    import polars as pl
    from tqdm.auto import tqdm

    from ..data.frames import open_frames

    table = pl.read_parquet(frames_dir / "snippets.parquet")
    shards = open_frames(frames_dir, "snippets")
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
        imgs = np.stack([shards[s][r] for s, r in zip(shard_col[sl], row_col[sl])])
        x = images_to_tensor(imgs, model).to(device, dtype, non_blocking=True)
        if autocast is not None:
            with autocast:
                emb = model.encode_image(x, normalize=True)
        else:
            emb = model.encode_image(x, normalize=True)
        chunks.append(emb.float().cpu().numpy().astype(np.float16))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float16)


def extract(model_dir: Path, frames_dir: Path, out_dir: Path, arch: str, batch_size: int = 256,
            cache_dir: Path = CACHE_DIR / "features", progress: bool = False, name: str = "",
            precision: str = "auto") -> dict:
    """Write ``out_dir/{snippets.npy, index.parquet, meta.json}`` for the OpenCLIP checkpoint in ``model_dir``."""
    import polars as pl

    from .. import factory

    ckpt = Path(model_dir) / CHECKPOINT_FILE
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: no OpenCLIP checkpoint (run the stage that writes {model_dir})")
    ckpt_sha = sha256_file(ckpt)
    key = f"{ckpt_sha[:16]}-{frames_digest(Path(frames_dir))}-{precision}"
    cached = Path(cache_dir) / f"{key}.npy"
    clip, _, _, _ = factory.create(arch, pretrained=ckpt)
    if cached.exists():
        feats = np.load(cached)
        log.info("features: cached %s (%d x %d)", cached, *feats.shape)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        feats = encode_snippets(clip.to(device), Path(frames_dir), batch_size, progress, precision)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.save(fh, feats)
    if not np.isfinite(feats.astype(np.float32)).all():
        raise ValueError(f"{ckpt}: non-finite image embeddings (checkpoint broken?)")
    table = pl.read_parquet(Path(frames_dir) / "snippets.parquet").select("video", "split", "snippet", "frame")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / FEATURES_FILE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, feats)
    with atomic_path(out_dir / INDEX_FILE) as tmp:
        table.write_parquet(tmp)
    meta = {"backbone": name, "model_dir": str(model_dir), "arch": arch, "checkpoint_sha256": ckpt_sha,
            "dim": int(feats.shape[1]), "n_snippets": int(feats.shape[0]), "n_videos": table["video"].n_unique(),
            "logit_scale": float(clip.logit_scale.detach().exp().clamp(max=100.0)), "dtype": "float16", "l2_normalised": True,
            "precision": precision}
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
    return FeatureSet(feats, table["video"].to_list(), table["split"].to_list(), table["snippet"].to_numpy(), meta)
