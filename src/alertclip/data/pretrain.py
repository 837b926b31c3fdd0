"""The pre-training set of the synthetic backbone: captioned stills (``data/synth/pretrain``), train and held out.

Three parts (:meth:`PretrainSet.parts`): ``fit`` (what pre-training trains on, and what tuning replays), ``val``
(the stills of a seeded share of the TRAINING videos, held out of pre-training: the training-side retention check
that tuning selects on) and ``heldout`` (the test videos' stills: the report's retention, never selected on)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .splits import val_videos


class Parts(NamedTuple):
    """Row indices of the three parts of a pre-training set (see the module docstring)."""

    fit: np.ndarray
    val: np.ndarray
    heldout: np.ndarray


@dataclass
class PretrainSet:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]
    split: np.ndarray  # (N,) str: "train" | "heldout"
    videos: np.ndarray  # (N,) str: the video the still was rendered from

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def parts(self, val_fraction: float, seed: int) -> Parts:
        """``fit`` / ``val`` / ``heldout`` (params ``backbone.val_fraction``, ``backbone.seed``): ``val`` holds every
        still of the chosen training videos (by video: consecutive stills of a video are near copies)."""
        train = self.indices("train")
        held = val_videos(self.videos[train].tolist(), val_fraction, seed)
        is_val = np.isin(self.videos[train], sorted(held))
        return Parts(train[~is_val], train[is_val], self.indices("heldout"))


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
    return PretrainSet(images, table["caption"].to_list(), table["split"].to_numpy().astype(str),
                       table["video"].to_numpy().astype(str))
