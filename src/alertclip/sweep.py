"""Hyper-parameter sweep of stage 2 (``alertclip sweep``): an Optuna study over ``lambda_region``, ``lambda_hard``,
``temperature`` (initial tau) and ``lr``.

Objective (minimised): after every epoch, the UNWEIGHTED validation ``global + hard`` loss (validation = a split of
the TRAINING videos, :func:`alertclip.tune.val_videos`; the test set is never touched). The weighted ``total`` would
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

Study name: ``<study_name>-<hash>`` where the hash covers the search settings, the base stage-2 params (minus the swept
keys) and the stage-2 input files, not ``n_trials`` or the storage: changing a range or the data starts a new study
in the same storage, raising ``n_trials`` extends the old one. Outputs are computed from the first ``n_trials``
finished trials (by number), so they depend only on the params.

Outputs (``results/sweep/``, atomic, no timestamps or durations): ``trials.parquet`` (one row per trial),
``best.json`` (a DVC metric), ``optimization_history.png`` and ``param_importances.png`` (fANOVA, seeded).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import atomic_path, sha256_file, write_json
from .params import SWEPT, Stage2Params, SweepParams

if TYPE_CHECKING:
    import optuna

    from .tune import TunePaths

log = logging.getLogger(__name__)

__all__ = [
    "Objective",
    "SweepInterrupted",
    "SweepStorageError",
    "best_overrides",
    "fail_running_trials",
    "importances",
    "make_study",
    "open_storage",
    "render_plots",
    "run_sweep",
    "selected_trials",
    "storage_kind",
    "study_name",
    "trials_table",
    "tune_objective",
    "write_outputs",
]

PRUNERS = ("median", "hyperband", "none")
DEFAULT_OUT = Path("results/sweep")
BEST_FILE = "best.json"
OBJECTIVE = "min over epochs of the unweighted validation loss global + hard"

Report = Callable[[int, float], None]
# objective(trial_params, report) -> the trial's value; report(epoch, value) raises optuna.TrialPruned when pruned.
Objective = Callable[[dict[str, float], Report], float]


class SweepStorageError(RuntimeError):
    """The sweep's storage cannot be opened (unreachable, unsupported scheme, missing driver)."""


class SweepInterrupted(RuntimeError):
    """Training stopped on SIGTERM; the trial is marked FAIL and rerunning the sweep retries it (exit status 143)."""


# --------------------------------------------------------------------------------------------------- storage


def _mask(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given
        return url


def storage_kind(storage: str) -> str:
    """``journal`` (a file path), ``sqlite`` or ``rdb`` (any other SQLAlchemy URL)."""
    if "://" not in storage:
        return "journal"
    return "sqlite" if storage.split("://", 1)[0].split("+", 1)[0].lower() == "sqlite" else "rdb"


def open_storage(cfg: SweepParams) -> "optuna.storages.BaseStorage":
    """Create / connect the storage named by ``cfg.storage`` (see the module docstring), or raise
    :class:`SweepStorageError` naming it."""
    import optuna

    url = str(cfg.storage)
    kind = storage_kind(url)
    if kind == "journal":
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        except OSError as err:
            raise SweepStorageError(f"sweep.storage {url}: cannot create the journal file: {err}") from err

    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    shown = _mask(url)
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as err:
        raise SweepStorageError(f"sweep.storage {shown}: not a valid database URL ({err})") from err
    backend_name = parsed.get_backend_name()
    if backend_name in ("redis", "rediss"):
        raise SweepStorageError(f"sweep.storage {shown}: unsupported scheme {backend_name!r}; use a journal file path, "
                                "sqlite:///path.db or an RDB URL such as postgresql://user@host/db")
    if kind == "sqlite" and parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SweepStorageError(f"sweep.storage {shown}: cannot create the database's folder: {err}") from err
    engine_kwargs: dict[str, Any] = {}
    if kind == "rdb":
        engine_kwargs["pool_pre_ping"] = True
        if backend_name in ("postgresql", "mysql", "mariadb"):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}  # an unreachable host fails in seconds
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat: dict[str, Any] = {}
            if not _single_worker(cfg):  # several workers: stale trials are found by their heartbeat
                retry = None
                if cfg.max_retry:
                    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=cfg.max_retry)
                heartbeat = dict(heartbeat_interval=cfg.heartbeat_s, grace_period=cfg.grace_s,
                                 heartbeat_stale_trial_callback=retry)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except sa_exc.NoSuchModuleError as err:
        raise SweepStorageError(f"sweep.storage {shown}: unsupported scheme {parsed.drivername!r} (SQLAlchemy has no "
                                f"such dialect/driver): {err}") from err
    except ImportError as err:
        try:
            driver = parsed.get_dialect().driver
        except Exception:  # noqa: BLE001 - only for the message
            driver = parsed.drivername
        raise SweepStorageError(f"sweep.storage {shown}: the database driver {driver!r} is not installed; install it "
                                f"(e.g. psycopg2-binary for postgresql://, pymysql for mysql+pymysql://)") from err
    except (sa_exc.SQLAlchemyError, OSError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SweepStorageError(f"sweep.storage {shown}: cannot reach the storage: {msg}") from err


def _single_worker(cfg: SweepParams) -> bool:
    if cfg.single_worker is not None:
        return cfg.single_worker
    return storage_kind(str(cfg.storage)) in ("journal", "sqlite")


# --------------------------------------------------------------------------------------------------- study


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


def _search_settings(cfg: SweepParams) -> dict:
    keep = ("seed", "epochs", "n_startup_trials", "multivariate", "pruner", "prune_startup_trials",
            "prune_warmup_epochs", "min_resource", "reduction_factor")
    out = {k: getattr(cfg, k) for k in keep}
    out["ranges"] = {name: r.model_dump() for name, r in cfg.searched()}
    return out


def study_name(cfg: SweepParams, base: Mapping[str, Any], files: list[Path] = ()) -> str:
    """``<cfg.study_name>-<hash>`` of the search settings, the base params (minus the swept keys) and the files."""
    fixed = {k: v for k, v in base.items() if k not in SWEPT}
    settings = json.dumps({"sweep": _search_settings(cfg), "base": fixed}, sort_keys=True, default=str)
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


def _finished_states():
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
    finished = [t for t in trials if t.state in _finished_states()]
    if len(finished) <= n_trials:
        return trials
    last = finished[n_trials - 1].number
    return [t for t in trials if t.number <= last]


def _counts(trials: list) -> dict[str, int]:
    import optuna

    s = optuna.trial.TrialState
    return {"n_complete": sum(t.state == s.COMPLETE for t in trials),
            "n_pruned": sum(t.state == s.PRUNED for t in trials), "n_fail": sum(t.state == s.FAIL for t in trials)}


# --------------------------------------------------------------------------------------------------- objective


def tune_objective(base: Mapping[str, Any], paths: "TunePaths | None" = None, progress: bool = False) -> Objective:
    """The real objective: stage 2 (:func:`alertclip.tune.tune`) with ``{**base, **trial_params}``, reporting the
    unweighted validation ``global + hard`` after each epoch; returns the minimum over epochs."""
    import optuna

    from . import tune as tune_mod
    from .train import NonFiniteLossError

    def objective(trial_params: dict[str, float], report: Report) -> float:
        cfg = Stage2Params.model_validate({**base, **trial_params})
        values: list[float] = []

        def on_val(epoch: int, val: dict) -> None:
            value = float(val["global"]) + float(val["hard"])
            values.append(value)
            report(epoch, value)

        try:
            _, result, _ = tune_mod.tune(cfg, paths or tune_mod.TunePaths(), progress=progress, on_val=on_val)
        except NonFiniteLossError as err:
            raise optuna.TrialPruned(f"diverged: {err}") from err
        if result.interrupted:
            raise SweepInterrupted(f"stopped by a signal at step {result.step}/{result.total_steps}")
        if not values:
            raise RuntimeError("sweep: no validation losses (fewer than 2 validation clips; raise stage2.val_fraction)")
        return min(values)

    return objective


def _trial_func(cfg: SweepParams, objective: Objective):
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


def _tune_base(base_params: Stage2Params | Mapping[str, Any] | None, cfg: SweepParams) -> dict[str, Any]:
    """The stage-2 params a trial starts from: the training keys of ``base_params`` (``use_sweep``, a switch of the
    stage-2 entry point, and unknown keys dropped), ``epochs`` from the sweep when set; validated with mid-range
    trial values."""
    if isinstance(base_params, Stage2Params):
        base_params = base_params.model_dump()
    known = set(Stage2Params.model_fields) - {"use_sweep"}
    base = {k: v for k, v in dict(base_params or {}).items() if k in known}
    dropped = sorted(set(base_params or {}) - known)
    if dropped:
        log.info("sweep: stage-2 keys not used by a trial: %s", dropped)
    if cfg.epochs is not None:
        base["epochs"] = cfg.epochs
    probe = {name: (r.low * r.high) ** 0.5 if r.log else (r.low + r.high) / 2 for name, r in cfg.searched()}
    Stage2Params.model_validate({**base, **probe})  # a bad base config fails here, before the storage or any training
    return base


# --------------------------------------------------------------------------------------------------- outputs


def trials_table(trials: list):
    """One row per trial: number, state, value, best_epoch, params_<name> (one column per swept key), epoch_values
    (the reported per-epoch objective, in epoch order)."""
    import polars as pl

    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        steps = sorted(t.intermediate_values)
        curve = [float(t.intermediate_values[s]) for s in steps]
        best_epoch = steps[min(range(len(curve)), key=curve.__getitem__)] if curve else None
        row = {"number": t.number, "state": t.state.name, "value": t.value, "best_epoch": best_epoch,
               "n_epochs": len(curve)}
        row.update({f"params_{k}": t.params.get(k) for k in SWEPT})
        row["epoch_values"] = curve
        rows.append(row)
    schema = {"number": pl.Int64, "state": pl.String, "value": pl.Float64, "best_epoch": pl.Int64, "n_epochs": pl.Int64,
              **{f"params_{k}": pl.Float64 for k in SWEPT}, "epoch_values": pl.List(pl.Float64)}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def _text_figure(text: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def _importance_evaluator(seed: int):
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(seed=seed)


def importances(study: "optuna.Study", seed: int) -> dict[str, float] | None:
    """fANOVA importances (seeded, rounded) of the swept params; None with fewer than 2 COMPLETE trials."""
    import optuna

    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        imp = optuna.importance.get_param_importances(study, evaluator=_importance_evaluator(seed))
    return {k: round(float(v), 6) for k, v in sorted(imp.items())}


def render_plots(study: "optuna.Study", out_dir: Path, seed: int = 0) -> list[Path]:
    """``optimization_history.png`` and ``param_importances.png`` (matplotlib Agg; deterministic bytes)."""
    import matplotlib

    matplotlib.use("Agg")  # headless; the sweep never shows a window
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    out_dir = Path(out_dir)
    paths = [out_dir / "optimization_history.png", out_dir / "param_importances.png"]
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    # optuna's plots switch the global style to ggplot: start every render from the same (restored) rc state
    style = plt.style.context(["default", "ggplot", {"figure.figsize": (9, 4.5)}])
    with warnings.catch_warnings(), style:
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if n_complete:
            fig = ovm.plot_optimization_history(study, target_name="val global + hard").figure
        else:
            fig = _text_figure("No COMPLETE trial: nothing to plot")
        fig.tight_layout()
        _savefig(fig, paths[0])
        plt.close(fig)
        if n_complete >= 2:
            fig = ovm.plot_param_importances(study, evaluator=_importance_evaluator(seed)).figure
        else:
            fig = _text_figure(f"Parameter importances need at least 2 COMPLETE trials (this study has {n_complete})")
        fig.tight_layout()
        _savefig(fig, paths[1])
        plt.close(fig)
    return paths


def _view(study: "optuna.Study", trials: list) -> "optuna.Study":
    """An in-memory study holding ``trials`` only (for the plots and importances of the selected trials)."""
    import optuna

    view = optuna.create_study(study_name=study.study_name, direction="minimize",
                               storage=optuna.storages.InMemoryStorage())
    view.add_trials([t for t in trials if t.state in _finished_states()])
    return view


def write_outputs(study: "optuna.Study", cfg: SweepParams, out_dir: Path = DEFAULT_OUT) -> dict:
    """``trials.parquet``, ``best.json``, the two PNGs (from the first ``n_trials`` finished trials); returns best."""
    import optuna

    out_dir = Path(out_dir)
    trials = selected_trials(study, cfg.n_trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"sweep: no COMPLETE trial in study {study.study_name!r} ({_counts(trials)}): no best")
    best_t = min(complete, key=lambda t: (t.value, t.number))
    view = _view(study, trials)
    table = trials_table(trials)
    with atomic_path(out_dir / "trials.parquet") as tmp:
        table.write_parquet(tmp)
    curve = [best_t.intermediate_values[s] for s in sorted(best_t.intermediate_values)]
    best = {"objective": OBJECTIVE, "study": study.study_name, "n_trials": cfg.n_trials, **_counts(trials),
            "best_trial": best_t.number, "value": float(best_t.value), "params": {k: best_t.params[k] for k in SWEPT},
            "best_epoch": sorted(best_t.intermediate_values)[curve.index(min(curve))] if curve else None}
    imp = importances(view, cfg.seed)
    if imp is not None:
        best["importances"] = imp
    write_json(out_dir / BEST_FILE, best)
    render_plots(view, out_dir, cfg.seed)
    return best


def best_overrides(path: str | Path = DEFAULT_OUT / BEST_FILE) -> dict[str, float]:
    """``{"lambda_region", "lambda_hard", "temperature", "lr"}`` of the sweep's best trial (stage 2's ``use_sweep``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sweep result; run the sweep stage first (dvc repro sweep)")
    params = json.loads(path.read_text(encoding="utf-8")).get("params") or {}
    missing = [k for k in SWEPT if k not in params]
    if missing:
        raise ValueError(f"{path}: best params lack {missing}")
    return {k: float(params[k]) for k in SWEPT}


# --------------------------------------------------------------------------------------------------- run


def run_sweep(cfg: SweepParams, base_params: Stage2Params | Mapping[str, Any] | None = None, objective: Objective | None = None,
              out_dir: Path = DEFAULT_OUT, paths: "TunePaths | None" = None, progress: bool = False) -> dict:
    """Run (or resume) the sweep until the study holds ``cfg.n_trials`` COMPLETE + PRUNED trials, then write the
    outputs to ``out_dir``; returns the ``best.json`` dict.

    ``base_params``: the stage-2 params (``p.stage2.model_dump()``) each trial overrides with its sampled values.
    ``objective(trial_params, report)``: default :func:`tune_objective` (real stage-2 training on ``paths``); tests
    pass a cheap one. The storage is opened before any training. SIGTERM during a trial: :class:`SweepInterrupted`.
    """
    import optuna

    from .tune import TunePaths

    paths = paths or TunePaths()
    base = _tune_base(base_params, cfg)
    epochs = Stage2Params.model_validate(base).epochs
    files, real = [], objective is None
    if real:
        probe = Stage2Params.model_validate(base)
        if probe.val_fraction <= 0:
            raise ValueError("sweep: stage2.val_fraction is 0: the sweep needs a validation split of training videos")
        files = paths.inputs(probe)
        missing = [str(f) for f in files if not Path(f).exists()]
        if missing:
            raise FileNotFoundError(f"sweep: stage-2 inputs missing: {missing}")
        objective = tune_objective(base, paths, progress)
    storage = open_storage(cfg)  # fails here, before any training, when the storage cannot be reached
    name = study_name(cfg, base, files)
    study = make_study(cfg, name, epochs, storage)
    study.set_user_attr("settings", _search_settings(cfg))
    single = _single_worker(cfg)
    if single:
        fail_running_trials(study)
    elif storage_kind(str(cfg.storage)) == "journal":
        log.warning("sweep: several workers on a journal file: no heartbeat there, a killed worker's trial stays "
                    "RUNNING (not counted); use an RDB URL for heartbeat-based recovery")
    done = len(study.get_trials(deepcopy=False, states=_finished_states()))
    log.info("sweep: study %s (%s, %s): %d/%d trials finished", name, storage_kind(str(cfg.storage)),
             "single worker" if single else "several workers", done, cfg.n_trials)
    if done < cfg.n_trials:
        cb = optuna.study.MaxTrialsCallback(cfg.n_trials, states=_finished_states())
        study.optimize(_trial_func(cfg, objective), n_trials=cfg.n_trials - done, callbacks=[cb],
                       gc_after_trial=real)  # free a trial's model before the next one (costly: not for cheap ones)
    done = len(study.get_trials(deepcopy=False, states=_finished_states()))
    if done < cfg.n_trials:  # several workers: another one is still running trials; these outputs are partial
        log.warning("sweep: %d/%d trials finished when this worker stopped; outputs cover those", done, cfg.n_trials)
    best = write_outputs(study, cfg, out_dir)
    log.info("sweep: best trial %d value %.6g params %s", best["best_trial"], best["value"], best["params"])
    return best
