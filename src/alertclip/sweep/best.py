"""The sweep's best trial: ``results/sweep/best.json``, the values a row of params ``runs`` sets to train with them."""

from __future__ import annotations

import json
from pathlib import Path

from ..params import SWEPT
from ..paths import SWEEP_RESULTS

DEFAULT_OUT = SWEEP_RESULTS
BEST_FILE = "best.json"


def best_overrides(path: str | Path = DEFAULT_OUT / BEST_FILE) -> dict[str, float]:
    """``{"lambda_region", "lambda_hard", "temperature", "lr"}`` of the sweep's best trial."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sweep result; run the sweep stage first (dvc repro sweep)")
    params = json.loads(path.read_text(encoding="utf-8")).get("params") or {}
    missing = [k for k in SWEPT if k not in params]
    if missing:
        raise ValueError(f"{path}: best params lack {missing}")
    return {k: float(params[k]) for k in SWEPT}
