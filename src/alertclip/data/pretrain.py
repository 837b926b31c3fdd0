"""The pre-training set of the synthetic backbone: captioned stills (``data/synth/pretrain``), train and held out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class PretrainSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]
    split: np.ndarray  # (N,) str: "train" | "heldout"

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def load_pretrain_set(directory: str | Path) -> PretrainSet:
    """Read ``images.npy`` + ``captions.parquet`` (row i of the table describes ``images[row]``)."""
    import polars as pl

    directory = Path(directory)
    images = np.load(directory / "images.npy")
    table = pl.read_parquet(directory / "captions.parquet").sort("row")
    rows = table["row"].to_numpy()
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{directory}/images.npy must be (N, H, W, 3) uint8; got {images.shape} {images.dtype}")
    if len(rows) != len(images) or not np.array_equal(rows, np.arange(len(images))):
        raise ValueError(f"{directory}/captions.parquet must have one row per image (rows 0..{len(images) - 1})")
    return PretrainSet(images, table["caption"].to_list(), table["split"].to_numpy().astype(str))
