"""Stage entry point `interpolate@<name>` (dvc.yaml: `alertclip interpolate --variant <name>`, one per key of params
``interpolate``): WiSE-FT, the backbone ``(1 - alpha) * base + alpha * tuned`` in weight space, the standard answer
when fine-tuning costs general ability (see :mod:`alertclip.interpolation`).

Inputs: the model directories ``interpolate.<name>.base`` and ``.tuned`` (same architecture). Output:
``data/models/interpolated/<name>/{open_clip_model.pt, config.json, weights.json}``, the base backbone's layout, so it
is evaluated like any other once its directory is a value of ``eval.backbones``. ``weights.json`` records both inputs
(directory, checkpoint sha256) and alpha; no timings, so reruns are byte-identical.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..interpolation import interpolate_dirs
from ..params import Params
from ..paths import INTERPOLATED_DIR

log = logging.getLogger(__name__)


def run(p: Params, progress: bool = True, variant: str | None = None) -> None:
    if variant is None:
        raise ValueError("interpolate needs --variant <name> (a key of interpolate in params.yaml)")
    if variant not in p.interpolate:
        raise ValueError(f"params.yaml: interpolate has no {variant!r} (known: {sorted(p.interpolate)})")
    cfg = p.interpolate[variant]
    out = INTERPOLATED_DIR / variant
    record = interpolate_dirs(cfg.base, cfg.tuned, out, cfg.alpha)
    src = record["source"]
    log.info("interpolate@%s: %s, %g * base %s (sha256 %s) + %g * tuned %s (sha256 %s) -> %s (sha256 %s)", variant,
             record["arch"], 1.0 - cfg.alpha, cfg.base, src["base"]["sha256"][:12], cfg.alpha, cfg.tuned,
             src["tuned"]["sha256"][:12], out, record["sha256"][:12])
    if not any(Path(d) == out for d in p.eval.backbones.values()):
        log.warning("interpolate@%s: %s is not a value of eval.backbones, so no evaluation reads it", variant, out)
