"""Paths of the stage outputs: the contract of dvc.yaml (tests check every declared out is written)."""

from pathlib import Path

SYNTH_DIR = Path("data/synth")
RAW_DIR = Path("data/raw")
DOWNLOAD_CACHE = Path("data/.cache/downloads")  # outside every output: survives a failed stage
FRAMES_DIR = Path("data/frames")
RESULTS = Path("results")
