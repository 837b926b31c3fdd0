"""WiSE-FT (Wortsman et al. 2022): a backbone whose weights are ``(1 - alpha) * base + alpha * tuned``.

:func:`interpolate_state` mixes two OpenCLIP state dicts of one architecture; :func:`interpolate_dirs` does it for two
model directories and writes a third in the layout of the base backbone's (``data/models/backbone``):

* ``open_clip_model.pt``: a plain OpenCLIP checkpoint written by ``factory.save_checkpoint`` (so
  ``factory.create(arch, pretrained=<dir>/open_clip_model.pt)``, and with it every evaluation, loads it unchanged);
* ``config.json``: the open_clip model config, the one both inputs record;
* ``weights.json``: the record, with the same top-level keys as the backbone stage's (``arch``, ``file``, ``sha256``,
  ``size``, ``source``); ``source`` names the method and formula, ``alpha``, and for ``base`` and ``tuned`` the model
  directory (as given, so a relative params path stays machine-independent), checkpoint file and its sha256, and
  ``non_float_from_tuned``: the non-floating tensors whose values differed between the two (see below).

Only the towers are interpolated: a tuned directory's temporal module (``temporal.pt``) has no counterpart in the base
backbone and is not written; evaluations read only ``open_clip_model.pt``.

Rules:

* Floating tensors: computed in float32 (float64 stays float64: its precision is kept), then cast back to the
  tensor's dtype; both inputs must have the same dtype. ``alpha`` 0 gives the base's values and 1 the tuned one's
  exactly (for finite weights).
* Non-floating tensors (integer / bool buffers, e.g. BatchNorm's ``num_batches_tracked``) are taken from ``tuned``.
  They are indices or counters, not weights: an average is meaningless, and counters legitimately differ after
  fine-tuning (the float running statistics beside them are interpolated). Equal values are the usual case; the keys
  whose values differed are logged and recorded, so nothing is taken silently.
* Different key sets, shapes or dtypes raise ``ValueError`` naming the key; backbones of different architectures (the
  architecture name the checkpoint / ``weights.json`` records, and ``config.json``) raise naming both directories and
  both architectures, before any weight is combined.

Deterministic: elementwise float arithmetic does not depend on the thread count, the random init of the module the
weights are loaded into is discarded (and the global RNG is left as it was), and ``factory.save_checkpoint`` writes
through a file handle (the archive's inner folder name is fixed), so the same inputs give a byte-identical checkpoint.
The output directory is built beside ``out_dir`` and renamed into place: it is complete or absent, never half written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import factory
from .factory import CHECKPOINT_FILE, CONFIG_FILE, RECORD_FILE
from .io import replace_dir, sha256_file, write_json

log = logging.getLogger(__name__)


FORMULA = "(1 - alpha) * base + alpha * tuned"


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1] (0 = base, 1 = tuned), got {alpha}")
    return alpha


def interpolate_state(base_sd: Mapping[str, Tensor], tuned_sd: Mapping[str, Tensor], alpha: float,
                      differing: list[str] | None = None) -> dict[str, Tensor]:
    """``(1 - alpha) * base + alpha * tuned`` for every floating tensor; non-floating ones are taken from ``tuned``.

    Keys keep ``tuned_sd``'s order. ``differing``, when given, receives the non-floating keys whose values differ
    between the two. Raises ``ValueError`` naming the key on a different key set, shape or dtype.
    """
    alpha = _check_alpha(alpha)
    only_base, only_tuned = sorted(set(base_sd) - set(tuned_sd)), sorted(set(tuned_sd) - set(base_sd))
    if only_base or only_tuned:
        raise ValueError(f"the state dicts have different keys: only in base {only_base[:10]}"
                         f"{' ...' if len(only_base) > 10 else ''}, only in tuned {only_tuned[:10]}"
                         f"{' ...' if len(only_tuned) > 10 else ''}")
    out: dict[str, Tensor] = {}
    for key, t in tuned_sd.items():
        b = base_sd[key]
        if b.shape != t.shape:
            raise ValueError(f"{key}: shape {tuple(b.shape)} in base but {tuple(t.shape)} in tuned")
        if b.dtype != t.dtype:
            raise ValueError(f"{key}: dtype {b.dtype} in base but {t.dtype} in tuned")
        t = t.detach().cpu()
        if not t.is_floating_point():
            if differing is not None and not torch.equal(b.detach().cpu(), t):
                differing.append(key)
            out[key] = t.clone()
            continue
        compute = torch.promote_types(t.dtype, torch.float32)
        mixed = (1.0 - alpha) * b.detach().cpu().to(compute) + alpha * t.to(compute)
        out[key] = mixed.to(t.dtype).contiguous()
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Model directories
# ---------------------------------------------------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (a model directory holds {CHECKPOINT_FILE} and {CONFIG_FILE})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from None


def read_model_dir(model_dir: str | os.PathLike) -> tuple[dict[str, Tensor], str, dict]:
    """``(state_dict, arch, config)`` of a model directory: its checkpoint, the architecture it records (checkpoint
    ``"arch"``, else ``weights.json``) and its ``config.json``."""
    model_dir = Path(model_dir)
    ckpt_path = model_dir / CHECKPOINT_FILE
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: not found (no checkpoint in model directory {model_dir})")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{ckpt_path}: not an OpenCLIP checkpoint (a {type(ckpt).__name__}, not a dict)")
    state = ckpt["state_dict"] if "state_dict" in ckpt else ckpt
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{ckpt_path}: not an OpenCLIP checkpoint (no state_dict of tensors)")
    arch = ckpt.get("arch") if "state_dict" in ckpt else None
    record_path = model_dir / RECORD_FILE
    if record_path.is_file():
        recorded = _read_json(record_path).get("arch")
        if arch and recorded and recorded != arch:
            raise ValueError(f"{model_dir}: {CHECKPOINT_FILE} records architecture {arch} but {RECORD_FILE} {recorded}")
        arch = arch or recorded
    if not arch:
        raise ValueError(f"{model_dir}: records no architecture (neither {CHECKPOINT_FILE} nor {RECORD_FILE} names one)")
    config = _read_json(model_dir / CONFIG_FILE)
    return dict(state), str(arch), config


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _config_diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} vs {b!r}"]


def check_same_architecture(base_dir: Path, base_arch: str, base_cfg: dict,
                            tuned_dir: Path, tuned_arch: str, tuned_cfg: dict) -> None:
    """Raise ``ValueError`` naming both directories and architectures unless the two backbones share one."""
    if base_arch != tuned_arch:
        raise ValueError(f"cannot interpolate backbones of different architectures: base {base_dir} is {base_arch}, "
                         f"tuned {tuned_dir} is {tuned_arch}")
    diff = _config_diff(base_cfg, tuned_cfg)
    if diff:
        raise ValueError(f"cannot interpolate backbones of different architectures: base {base_dir} and tuned "
                         f"{tuned_dir} are both named {base_arch} but their {CONFIG_FILE} differ (base vs tuned): "
                         f"{'; '.join(diff[:5])}{' ...' if len(diff) > 5 else ''}")


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_random_init() -> Iterator[None]:
    """open_clip warns (on the root logger) that the module is randomly initialised; here its weights are replaced
    right away, and the warning would only mislead a reader of the stage log."""
    root, drop = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def interpolate_dirs(base_dir: str | os.PathLike, tuned_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     alpha: float) -> dict:
    """Write model directory ``out_dir`` = ``(1 - alpha) * base + alpha * tuned`` (see the module docstring);
    returns its record (``weights.json``)."""
    alpha = _check_alpha(alpha)
    base_dir, tuned_dir, out_dir = Path(base_dir), Path(tuned_dir), Path(out_dir)
    base_sd, base_arch, base_cfg = read_model_dir(base_dir)
    tuned_sd, tuned_arch, tuned_cfg = read_model_dir(tuned_dir)
    check_same_architecture(base_dir, base_arch, base_cfg, tuned_dir, tuned_arch, tuned_cfg)
    sources = {name: {"dir": d.as_posix(), "file": CHECKPOINT_FILE, "sha256": sha256_file(d / CHECKPOINT_FILE)}
               for name, d in (("base", base_dir), ("tuned", tuned_dir))}
    differing: list[str] = []
    try:
        state = interpolate_state(base_sd, tuned_sd, alpha, differing)
    except ValueError as err:
        raise ValueError(f"cannot interpolate base {base_dir} and tuned {tuned_dir} ({base_arch}): {err}") from None
    del base_sd, tuned_sd
    if differing:
        log.info("interpolate: %d non-floating tensors differ between base and tuned, taken from tuned: %s",
                 len(differing), ", ".join(differing))

    # Into the architecture's module (strict: every key, every shape), then out through the pipeline's one writer.
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        model, _, _, _ = factory.create(base_arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the weights of base {base_dir} and tuned {tuned_dir} do not fit {base_arch} as open_clip "
                         f"builds it now (was its model config edited?): {str(err)[:2000]}") from None
    del state

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        ckpt = factory.save_checkpoint(model, staging / CHECKPOINT_FILE, arch=base_arch)
        write_json(staging / CONFIG_FILE, tuned_cfg)
        record = {"arch": base_arch, "file": CHECKPOINT_FILE, "sha256": sha256_file(ckpt), "size": ckpt.stat().st_size,
                  "source": {"kind": "interpolated", "method": "wise_ft", "formula": FORMULA, "alpha": alpha,
                             **sources, "non_float_from_tuned": differing}}
        write_json(staging / RECORD_FILE, record)
        replace_dir(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return record
