"""A sweep trial's objective: the searched run's training with the sampled values, the validation global + hard loss per epoch."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..params import RunSettings, SweepParams

if TYPE_CHECKING:
    import optuna

    from ..tune.data import TunePaths

log = logging.getLogger(__name__)


Report = Callable[[int, float], None]
# objective(trial_params, report) -> the trial's value; report(epoch, value) raises optuna.TrialPruned when pruned.
Objective = Callable[[dict[str, float], Report], float]


class SweepInterrupted(RuntimeError):
    """Training stopped on SIGTERM; the trial is marked FAIL and rerunning the sweep retries it (exit status 143)."""


def tune_objective(base: Mapping[str, Any], paths: "TunePaths | None" = None, progress: bool = False,
                   snippet_len: int | None = None) -> Objective:
    """The real objective: the run (:func:`alertclip.tune.run.tune`) with ``{**base, **trial_params}``, reporting the
    unweighted validation ``global + hard`` after each epoch; returns the minimum over epochs."""
    import optuna

    from ..train.loop import NonFiniteLossError
    from ..tune import run as tune_run
    from ..tune.data import TunePaths

    def objective(trial_params: dict[str, float], report: Report) -> float:
        cfg = trial_settings(base, trial_params)
        values: list[float] = []

        def on_val(epoch: int, val: dict) -> None:
            value = float(val["global"]) + float(val["hard"])
            values.append(value)
            report(epoch, value)

        try:
            _, result, _ = tune_run.tune(cfg, paths or TunePaths(), progress=progress, on_val=on_val,
                                         snippet_len=snippet_len, name="sweep")
        except NonFiniteLossError as err:
            raise optuna.TrialPruned(f"diverged: {err}") from err
        if result.interrupted:
            raise SweepInterrupted(f"stopped by a signal at step {result.step}/{result.total_steps}")
        if not values:
            raise RuntimeError("sweep: no validation losses (fewer than 2 validation clips; raise tune.val_fraction)")
        return min(values)

    return objective


def trial_func(cfg: SweepParams, objective: Objective):
    import optuna

    def func(trial: "optuna.Trial") -> float:
        params = {name: trial.suggest_float(name, r.low, r.high, log=r.log) for name, r in cfg.searched()}

        def report(epoch: int, value: float) -> None:
            trial.report(float(value), step=int(epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (value {float(value):.6g})")

        value = float(objective(dict(params), report))
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"non-finite value {value}")
        return value

    return func


def trial_settings(base: Mapping[str, Any], values: Mapping[str, float]) -> RunSettings:
    """A trial's settings: ``base`` (:func:`tune_base`) with the sampled ``values``."""
    return RunSettings.model_validate({**base, **values})


def tune_base(base_params: RunSettings | Mapping[str, Any] | None, cfg: SweepParams) -> dict[str, Any]:
    """The settings a trial starts from: the training keys of ``base_params`` (the searched run's settings; unknown
    keys dropped), ``epochs`` from the sweep when set; validated with mid-range trial values."""
    if isinstance(base_params, RunSettings):
        base_params = base_params.model_dump()
    known = set(RunSettings.model_fields)
    base = {k: v for k, v in dict(base_params or {}).items() if k in known}
    dropped = sorted(set(base_params or {}) - known)
    if dropped:
        log.info("sweep: keys not used by a trial: %s", dropped)
    if cfg.epochs is not None:
        base["epochs"] = cfg.epochs
    probe = {name: (r.low * r.high) ** 0.5 if r.log else (r.low + r.high) / 2 for name, r in cfg.searched()}
    trial_settings(base, probe)  # a bad base config fails here, before the storage or any training
    return base
