"""The Optuna study of a sweep: its name (a hash of settings and inputs), seeded TPE sampler, pruner, finished trials."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import sha256_file
from ..params import SWEPT, SweepParams

if TYPE_CHECKING:
    import optuna

from .storage import open_storage

log = logging.getLogger(__name__)


def _derive(seed: int, k: int) -> int:
    return int(hashlib.sha256(f"alertclip-sweep:{seed}:{k}".encode()).hexdigest()[:8], 16)


def _tpe_sampler_class():
    import optuna

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        """TPE re-seeded before each trial from ``(seed, number of earlier trials that did not FAIL)``."""

        def __init__(self, seed: int, **tpe_kwargs: Any) -> None:
            self._seed, self._kwargs = seed, tpe_kwargs
            self._inner = self._make(0)

        def _make(self, k: int) -> "optuna.samplers.TPESampler":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.TPESampler(seed=_derive(self._seed, k), **self._kwargs)

        def before_trial(self, study, trial) -> None:
            fail = optuna.trial.TrialState.FAIL
            k = sum(1 for t in study.get_trials(deepcopy=False) if t.number < trial.number and t.state != fail)
            self._inner = self._make(k)
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:  # the seed is derived per trial; nothing to reseed
            pass

    return TrialSeededTPE


def _pruner(cfg: SweepParams, epochs: int):
    import optuna

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.prune_startup_trials,
                                           n_warmup_steps=cfg.prune_warmup_epochs)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min(cfg.min_resource, epochs), max_resource=epochs,
                                              reduction_factor=cfg.reduction_factor)
    return optuna.pruners.NopPruner()


def search_settings(cfg: SweepParams) -> dict:
    keep = ("seed", "epochs", "n_startup_trials", "multivariate", "pruner", "prune_startup_trials",
            "prune_warmup_epochs", "min_resource", "reduction_factor")
    out = {k: getattr(cfg, k) for k in keep}
    out["ranges"] = {name: r.model_dump() for name, r in cfg.searched()}
    return out


def study_name(cfg: SweepParams, base: Mapping[str, Any], files: list[Path] = ()) -> str:
    """``<cfg.study_name>-<hash>`` of the search settings, the base params (minus the swept keys) and the files."""
    fixed = {k: v for k, v in base.items() if k not in SWEPT}
    settings = json.dumps({"sweep": search_settings(cfg), "base": fixed}, sort_keys=True, default=str)
    h = hashlib.sha256(settings.encode())
    for f in files:
        h.update(sha256_file(f).encode())
    return f"{cfg.study_name}-{h.hexdigest()[:12]}"


def make_study(cfg: SweepParams, name: str, epochs: int, storage: Any = None) -> "optuna.Study":
    """Create or load study ``name`` (minimise) with the per-trial seeded TPE sampler and the configured pruner;
    ``storage``: an opened storage (default: :func:`open_storage`)."""
    import optuna

    storage = open_storage(cfg) if storage is None else storage
    sampler = _tpe_sampler_class()(cfg.seed, n_startup_trials=cfg.n_startup_trials, multivariate=cfg.multivariate)
    return optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=_pruner(cfg, epochs),
                               direction="minimize", load_if_exists=True)


def finished_states():
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def fail_running_trials(study: "optuna.Study") -> list[int]:
    """Mark the study's RUNNING trials FAIL (single worker: they belong to a killed run); returns their numbers."""
    import optuna

    stale = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
    for number in stale:
        study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    if stale:
        log.warning("sweep: trial(s) %s were left RUNNING by a stopped run: marked FAIL (not counted; retried)", stale)
    return stale


def selected_trials(study: "optuna.Study", n_trials: int) -> list:
    """The first ``n_trials`` finished (COMPLETE/PRUNED) trials by number, plus the other trials numbered before the
    last of them (FAIL ones); all trials when fewer have finished."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    finished = [t for t in trials if t.state in finished_states()]
    if len(finished) <= n_trials:
        return trials
    last = finished[n_trials - 1].number
    return [t for t in trials if t.number <= last]


def trial_counts(trials: list) -> dict[str, int]:
    import optuna

    s = optuna.trial.TrialState
    return {"n_complete": sum(t.state == s.COMPLETE for t in trials),
            "n_pruned": sum(t.state == s.PRUNED for t in trials), "n_fail": sum(t.state == s.FAIL for t in trials)}
