"""Hyper-parameter sweep of Alert-CLIP's run, ``runs.full`` (``alertclip sweep``): an Optuna study over
``lambda_region``, ``lambda_hard``, ``temperature`` (initial tau) and ``lr``.

Objective (minimised): after every epoch, the UNWEIGHTED validation ``global + hard`` loss (validation = a split of
the TRAINING videos, :func:`alertclip.tune.data.val_videos`; the test set is never touched). The weighted ``total`` would
not compare across lambdas: a trial could "win" by shrinking its weights. Each epoch's value is reported to the trial
(step = epoch) for pruning; the trial's value is its best epoch's value. A run that diverges (non-finite loss) is
recorded as PRUNED (TPE then treats the region as bad) instead of ending the sweep.

Sampler: TPE, seeded. The sampler is re-created before every trial from ``(seed, k)`` where ``k`` is the number of
earlier trials that did not FAIL, so trial ``k`` samples the same parameters whether or not the sweep was killed and
resumed before it (a resumed sweep retries the interrupted trial's parameters and ends as an uninterrupted one).
Pruner: ``median`` (:class:`optuna.pruners.MedianPruner`), ``hyperband`` (:class:`optuna.pruners.HyperbandPruner`,
``max_resource`` = the epochs) or ``none``.

Reproducibility: a sequential sweep (one worker, seeded TPE, deterministic training) is reproducible: same params,
same inputs -> same trials, byte-identical outputs, also across a kill and resume. A parallel sweep (several workers
on one storage) is NOT bit-reproducible: which worker asks first, and the running trials TPE's "constant liar" sees,
depend on timing.

Storage (``sweep.storage``):

* a file path (default ``data/.cache/sweep/journal.log``): :class:`optuna.storages.JournalStorage` on a
  :class:`~optuna.storages.journal.JournalFileBackend` (file lock; several processes on one machine or NFS work);
* ``sqlite:///path.db``: :class:`optuna.storages.RDBStorage` on SQLite;
* any other SQLAlchemy URL (``postgresql://user:pw@host/db``, ``mysql+pymysql://...``): RDBStorage, the choice for
  several workers on several machines (the driver, e.g. ``psycopg2``, must be installed).

The storage is opened (created, connected) before any training: an unreachable URL, an unsupported scheme or a missing
driver fails at once with :class:`SweepStorageError` naming the URL (password masked).

Resume and stale trials. ``n_trials`` counts COMPLETE + PRUNED trials; rerunning the stage continues the study: the
finished trials are kept (never re-run) and only the missing ones run. A killed worker leaves its trial RUNNING:

* ``single_worker`` (default for a journal file and SQLite): at start every RUNNING trial of the study is marked FAIL
  (nothing else can be running it); FAIL trials are not counted and TPE ignores them;
* several workers (default for other RDB URLs): RDBStorage heartbeats (``heartbeat_s``, ``grace_s``): a trial whose
  heartbeat is older than ``grace_s`` is marked FAIL by the next worker that starts a trial, and
  :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` re-queues its parameters (at most ``max_retry`` times);
  every worker stops once the study holds ``n_trials`` COMPLETE + PRUNED trials (a few more can finish when workers
  run concurrently). A journal file has no heartbeat in Optuna 5: with ``single_worker: false`` there, the trial of
  a killed worker stays RUNNING (not counted) and must be ended by hand.

Study name: ``<study_name>-<hash>`` where the hash covers the search settings, the searched run's settings (minus the
swept keys) and its input files, not ``n_trials`` or the storage: changing a range or the data starts a new study
in the same storage, raising ``n_trials`` extends the old one. Outputs are computed from the first ``n_trials``
finished trials (by number), so they depend only on the params.

Outputs (``results/sweep/``, atomic, no timestamps or durations): ``trials.parquet`` (one row per trial),
``best.json`` (a DVC metric), ``optimization_history.png`` and ``param_importances.png`` (fANOVA, seeded).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..params import RunSettings, SweepParams

if TYPE_CHECKING:

    from ..tune.data import TunePaths
from .best import DEFAULT_OUT
from .objective import Objective, trial_func, trial_settings, tune_base, tune_objective
from .outputs import write_outputs
from .storage import is_single_worker, open_storage, storage_kind
from .study import fail_running_trials, finished_states, make_study, search_settings, study_name

log = logging.getLogger(__name__)


def run_sweep(cfg: SweepParams, base_params: RunSettings | Mapping[str, Any] | None = None, objective: Objective | None = None,
              out_dir: Path = DEFAULT_OUT, paths: "TunePaths | None" = None, progress: bool = False,
              snippet_len: int | None = None) -> dict:
    """Run (or resume) the sweep until the study holds ``cfg.n_trials`` COMPLETE + PRUNED trials, then write the
    outputs to ``out_dir``; returns the ``best.json`` dict.

    ``base_params``: the searched run's settings (``runs.full`` with ``tune`` applied) each trial overrides with its
    sampled values.
    ``snippet_len``: params ``frames.snippet_len``, which the real objective's validation needs (see
    :func:`alertclip.tune.run.tune`). ``objective(trial_params, report)``: default :func:`tune_objective` (real
    training on ``paths``); tests
    pass a cheap one. The storage is opened before any training. SIGTERM during a trial: :class:`SweepInterrupted`.
    """
    import optuna

    from ..tune.data import TunePaths

    paths = paths or TunePaths()
    base = tune_base(base_params, cfg)
    epochs = trial_settings(base, {}).epochs
    files, real = [], objective is None
    if real:
        probe = trial_settings(base, {})
        if probe.val_fraction <= 0:
            raise ValueError("sweep: tune.val_fraction is 0: the sweep needs a validation split of training videos")
        files = paths.inputs(probe)
        missing = [str(f) for f in files if not Path(f).exists()]
        if missing:
            raise FileNotFoundError(f"sweep: the run's inputs missing: {missing}")
        objective = tune_objective(base, paths, progress, snippet_len)
    storage = open_storage(cfg)  # fails here, before any training, when the storage cannot be reached
    name = study_name(cfg, base, files)
    study = make_study(cfg, name, epochs, storage)
    study.set_user_attr("settings", search_settings(cfg))
    single = is_single_worker(cfg)
    if single:
        fail_running_trials(study)
    elif storage_kind(str(cfg.storage)) == "journal":
        log.warning("sweep: several workers on a journal file: no heartbeat there, a killed worker's trial stays "
                    "RUNNING (not counted); use an RDB URL for heartbeat-based recovery")
    done = len(study.get_trials(deepcopy=False, states=finished_states()))
    log.info("sweep: study %s (%s, %s): %d/%d trials finished", name, storage_kind(str(cfg.storage)),
             "single worker" if single else "several workers", done, cfg.n_trials)
    if done < cfg.n_trials:
        cb = optuna.study.MaxTrialsCallback(cfg.n_trials, states=finished_states())
        study.optimize(trial_func(cfg, objective), n_trials=cfg.n_trials - done, callbacks=[cb],
                       gc_after_trial=real)  # free a trial's model before the next one (costly: not for cheap ones)
    done = len(study.get_trials(deepcopy=False, states=finished_states()))
    if done < cfg.n_trials:  # several workers: another one is still running trials; these outputs are partial
        log.warning("sweep: %d/%d trials finished when this worker stopped; outputs cover those", done, cfg.n_trials)
    best = write_outputs(study, cfg, out_dir)
    log.info("sweep: best trial %d value %.6g params %s (to train with them: a row of params runs that sets them)",
             best["best_trial"], best["value"], best["params"])
    return best
