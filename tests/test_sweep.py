"""The hyper-parameter sweep of runs.full (alertclip.sweep): config validation, storage errors, seeded TPE, pruning,
deterministic outputs, resume after a killed / failed worker, stale-trial handling, and the real objective's glue."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl
import pytest
import torch
import yaml
from pydantic import ValidationError
from repo_params import repo_params, repo_run
from sweep_worker import EPOCHS, fake_objective, fake_value

from alertclip.params import SWEPT, SweepParams, SweepRange
from alertclip.sweep import objective as sweep
from alertclip.sweep.best import best_overrides
from alertclip.sweep.objective import SweepInterrupted
from alertclip.sweep.outputs import render_plots
from alertclip.sweep.run import run_sweep
from alertclip.sweep.storage import SweepStorageError, open_storage
from alertclip.sweep.study import make_study, study_name

WORKER = Path(__file__).resolve().parent / "sweep_worker.py"
REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("trials.parquet", "best.json", "optimization_history.png", "param_importances.png")
SWEEP = repo_params("sweep")  # params.yaml's sweep group: every config below starts from it
BASE = repo_run("full", epochs=EPOCHS).model_dump()  # the searched run's settings a trial overrides (as tests/sweep_worker.py)
SNIPPET_LEN = repo_params("frames").snippet_len  # params frames.snippet_len

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _cfg(storage, **kw) -> SweepParams:
    """params.yaml's sweep group, sized for the fake objective, at ``storage``, with the overrides ``kw``."""
    return SweepParams.model_validate({**SWEEP.model_dump(), "n_trials": 6, "storage": str(storage), "epochs": EPOCHS,
                                       "n_startup_trials": 3, "prune_startup_trials": 2, **kw})


def _ranges(**changed) -> dict:
    """params.yaml's sweep.ranges (every swept key) with the intervals ``changed`` replaced."""
    return {**SWEEP.model_dump()["ranges"], **changed}


def _never(params, report):  # an objective that must not run
    raise AssertionError("training started")


def _finished(study) -> list:
    return [t for t in sorted(study.trials, key=lambda t: t.number)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def _load(storage) -> optuna.Study:
    url = str(storage)
    st = open_storage(_cfg(url))
    (name,) = optuna.get_all_study_names(st)
    return optuna.load_study(study_name=name, storage=st)


def _bytes(out: Path) -> dict[str, bytes]:
    return {f: (out / f).read_bytes() for f in OUTPUTS}


# ------------------------------------------------------------------------------------------------- config


def test_config_values_and_forms(params_of):
    sweep = params_of("sweep")  # params.yaml's values (there are no defaults in the code)
    ranges = dict(sweep.searched())
    assert sweep.pruner == "median" and sweep.storage == "data/.cache/sweep/journal.log"
    assert ranges["lr"].log and ranges["temperature"].log and not ranges["lambda_region"].log
    raw = sweep.model_dump()
    cfg = SweepParams.model_validate({**raw, "n_trials": 3, "ranges": {
        **raw["ranges"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}, "lambda_hard": {"low": 0.5, "high": 2.0, "log": False},
        "temperature": {"low": 0.02, "high": 0.5, "log": False}}})
    ranges = dict(cfg.searched())
    assert list(ranges) == list(SWEPT)  # suggestion order
    assert cfg.n_trials == 3 and ranges["lr"] == SweepRange(low=1e-4, high=1e-2, log=True)
    assert ranges["lambda_hard"] == SweepRange(low=0.5, high=2.0, log=False) and ranges["temperature"].log is False
    assert ranges["lambda_region"] == SweepRange(**raw["ranges"]["lambda_region"])  # not changed: params.yaml's
    # leaving a key out is an error naming it: no setting, range or log scale is filled in by the code
    for key in SweepParams.model_fields:
        with pytest.raises(ValidationError, match=rf"(?m)^{key}\n  Field required"):
            SweepParams.model_validate({k: v for k, v in raw.items() if k != key})
    for key in SWEPT:
        with pytest.raises(ValueError, match=rf"sweep\.ranges: no interval for \['{key}'\]"):
            SweepParams.model_validate({**raw, "ranges": {k: v for k, v in raw["ranges"].items() if k != key}})
        with pytest.raises(ValidationError, match=rf"ranges\.{key}\.log\n  Field required"):
            SweepParams.model_validate({**raw, "ranges": _ranges(**{key: {"low": 0.02, "high": 0.1}})})
        with pytest.raises(ValidationError, match=rf"ranges\.{key}\.log\n  Input should be a valid boolean"):
            SweepParams.model_validate({**raw, "ranges": _ranges(**{key: {"low": 0.02, "high": 0.1, "log": None}})})
    with pytest.raises(ValueError, match="n_trial"):
        SweepParams.model_validate({**raw, "n_trial": 3})
    with pytest.raises(ValueError, match="pruner"):
        params_of("sweep", pruner="asha")
    with pytest.raises(ValueError, match="n_trials"):
        params_of("sweep", n_trials=0)
    with pytest.raises(ValueError, match="grace_s"):
        params_of("sweep", heartbeat_s=60, grace_s=60)


@pytest.mark.parametrize("key, value, why", [
    ("lr", {"low": 1e-3, "high": 1e-5}, "inverted"),
    ("lambda_region", {"low": 2.0, "high": 1.0}, "inverted"),
    ("lambda_hard", {"low": 1.0, "high": 1.0}, "empty"),
    ("temperature", {"low": 0.05, "high": 0.05}, "empty"),
    ("temperature", {"low": 0.001, "high": 0.1}, r"must lie in \[0.01, 1.0\]"),
    ("temperature", {"low": 0.05, "high": 2.0}, r"must lie in \[0.01, 1.0\]"),
    ("lambda_region", {"low": -1.0, "high": 1.0}, "must lie in"),
    ("lambda_hard", {"low": 0.0, "high": 1.0, "log": True}, "log-uniform range needs low > 0"),
    ("lr", {"low": 1e-5, "high": 1e-3, "log": False}, "log-uniformly"),
    ("lr", {"low": 1e-5, "high": float("nan"), "log": True}, "finite"),
])
def test_bad_range_names_its_key(params_of, key, value, why):
    raw = params_of("sweep").model_dump()
    bad = {"log": raw["ranges"][key]["log"], **value}  # log not given: params.yaml's scale for the key
    with pytest.raises(ValueError, match=rf"sweep\.ranges\.{key}: .*{why}"):
        SweepParams.model_validate({**raw, "ranges": {**raw["ranges"], key: bad}})


@pytest.mark.parametrize("key, value, why", [
    ("lr", {"low": 1e-5}, "high"),
    ("lr", {"low": 1e-5, "high": "x"}, "high"),
    ("momentum", {"low": 0.1, "high": 0.9}, "momentum"),
])
def test_malformed_range_is_a_params_error_naming_its_key(key, value, why):
    from alertclip.params import ParamsError, parse_params

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["sweep"]["ranges"][key] = value
    with pytest.raises(ParamsError, match=rf"params.yaml: sweep\.ranges.*{why}"):
        parse_params(raw)


def test_sweep_ranges_checked_at_load(tmp_path):
    """params.yaml's sweep.ranges are checked when the file loads, naming the key (before any stage runs)."""
    from alertclip.params import ParamsError, load_params

    raw = yaml.safe_load((REPO / "params.yaml").read_text())

    def load(ranges: dict):
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump({**raw, "sweep": {**raw["sweep"], "ranges": ranges}}, sort_keys=False))
        return load_params(path)

    with pytest.raises(ParamsError, match=r"sweep\.ranges\.lr: inverted range"):
        load({**raw["sweep"]["ranges"], "lr": {"low": 0.01, "high": 0.001, "log": True}})
    with pytest.raises(ParamsError, match=r"sweep\.ranges\.lambda_hard: empty range"):
        load({**raw["sweep"]["ranges"], "lambda_hard": {**raw["sweep"]["ranges"]["lambda_hard"], "low": 1.0, "high": 1.0}})
    with pytest.raises(ParamsError, match=r"sweep\.ranges\.momentum"):
        load({**raw["sweep"]["ranges"], "momentum": {"low": 0.1, "high": 0.9}})


# ------------------------------------------------------------------------------------------------- storage


@pytest.mark.parametrize("case", ["sqlite_dir", "journal_under_file", "postgres", "redis", "unknown_scheme",
                                  "unknown_driver", "malformed"])
def test_bad_storage_fails_before_training(tmp_path, case):
    (tmp_path / "a_file").write_text("x")
    url = {"sqlite_dir": f"sqlite:///{tmp_path}",  # a directory is no database
           "journal_under_file": str(tmp_path / "a_file" / "journal.log"),
           "postgres": "postgresql://user:s3cret@127.0.0.1:1/sweep",  # no driver here; unreachable port otherwise
           "redis": "redis://127.0.0.1:6379/0",
           "unknown_scheme": "nosuchdb://host/db",
           "unknown_driver": "postgresql+nosuchdriver://host/db",
           "malformed": "sqlite+://"}[case]
    expect = {"sqlite_dir": "cannot reach", "journal_under_file": "cannot create the journal file",
              "postgres": "driver 'psycopg2' is not installed|cannot reach", "redis": "unsupported scheme 'redis'",
              "unknown_scheme": "unsupported scheme", "unknown_driver": "unsupported scheme",
              "malformed": "not a valid database URL|unsupported scheme"}[case]
    with pytest.raises(SweepStorageError, match=expect) as info:
        run_sweep(_cfg(url), BASE, _never, out_dir=tmp_path / "out")
    msg = str(info.value)
    assert "s3cret" not in msg  # the password is masked
    shown = url.replace("s3cret", "***")
    assert shown in msg or url.split("://")[0] in msg
    assert not (tmp_path / "out").exists()


def test_bad_base_params_fail_before_storage(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        run_sweep(_cfg(tmp_path / "j.log"), {**BASE, "epochs": 1, "batch_size": 1}, _never, out_dir=tmp_path / "out")
    assert not (tmp_path / "j.log").exists()


# ------------------------------------------------------------------------------------------------- sampler, outputs


def test_seeded_tpe_is_reproducible_and_outputs_byte_identical(tmp_path):
    a = run_sweep(_cfg(tmp_path / "a" / "journal.log"), BASE, fake_objective, out_dir=tmp_path / "out_a")
    b = run_sweep(_cfg(f"sqlite:///{tmp_path / 'b' / 'sweep.db'}"), BASE, fake_objective, out_dir=tmp_path / "out_b")
    sa, sb = _load(tmp_path / "a" / "journal.log"), _load(f"sqlite:///{tmp_path / 'b' / 'sweep.db'}")
    assert [t.params for t in sa.trials] == [t.params for t in sb.trials]  # two fresh studies, same seed
    assert [t.value for t in sa.trials] == [t.value for t in sb.trials]
    assert a == b and _bytes(tmp_path / "out_a") == _bytes(tmp_path / "out_b")
    # another seed samples elsewhere
    run_sweep(_cfg(tmp_path / "c.log", seed=1), BASE, fake_objective, out_dir=tmp_path / "out_c")
    assert [t.params for t in _load(tmp_path / "c.log").trials] != [t.params for t in sa.trials]

    best = json.loads((tmp_path / "out_a" / "best.json").read_text())
    assert best["n_complete"] + best["n_pruned"] == 6 and best["n_fail"] == 0
    assert set(best["params"]) == set(SWEPT) and set(best["importances"]) == set(SWEPT)
    assert not any(k in json.dumps(best) for k in ("datetime", "duration", "wall"))
    table = pl.read_parquet(tmp_path / "out_a" / "trials.parquet")
    assert table.height == 6 and table["number"].to_list() == list(range(6))
    complete = table.filter(pl.col("state") == "COMPLETE")
    assert best["value"] == complete["value"].min()
    for row in complete.iter_rows(named=True):  # value = the best epoch's value of the per-epoch curve
        assert row["value"] == min(row["epoch_values"]) and len(row["epoch_values"]) == EPOCHS
        params = {k: row[f"params_{k}"] for k in SWEPT}
        assert row["epoch_values"] == [fake_value(params, e) for e in range(EPOCHS)]
    for key, r in _cfg("x").searched():
        assert table[f"params_{key}"].is_between(r.low, r.high).all()
    assert best_overrides(tmp_path / "out_a" / "best.json") == best["params"]


def test_plots_are_byte_identical_across_renders(tmp_path):
    run_sweep(_cfg(tmp_path / "j.log"), BASE, fake_objective, out_dir=tmp_path / "out")
    study = _load(tmp_path / "j.log")
    first = [p.read_bytes() for p in render_plots(study, tmp_path / "r1", seed=0)]
    second = [p.read_bytes() for p in render_plots(study, tmp_path / "r2", seed=0)]
    assert first == second and all(b.startswith(b"\x89PNG") for b in first)
    assert b"Software" not in first[0] and b"matplotlib" not in first[0].lower()
    # fewer than 2 COMPLETE trials: the importance figure says so instead of failing
    one = optuna.create_study(study_name="one")
    one.add_trial(optuna.create_trial(params={"lr": 1e-4}, distributions={
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)}, value=1.0))
    a = [p.read_bytes() for p in render_plots(one, tmp_path / "o1")]
    import matplotlib.pyplot as plt

    with plt.rc_context():
        plt.style.use("dark_background")  # a process whose global style was changed renders the same bytes
        b = [p.read_bytes() for p in render_plots(one, tmp_path / "o2")]
        assert [p.read_bytes() for p in render_plots(study, tmp_path / "r3", seed=0)] == first
    assert a == b and a[1] != second[1]


def test_median_pruner_prunes_bad_curves(tmp_path):
    def bad_curves(params, report):
        bad = params["lambda_region"] > 1.5  # half the space learns nothing
        values = []
        for epoch in range(EPOCHS):
            value = 10.0 - 0.01 * epoch if bad else fake_value(params, epoch)
            values.append(value)
            report(epoch, value)
        return min(values)

    run_sweep(_cfg(tmp_path / "m.log", n_trials=10, prune_warmup_epochs=0), BASE, bad_curves, out_dir=tmp_path / "m")
    table = pl.read_parquet(tmp_path / "m" / "trials.parquet")
    pruned = table.filter(pl.col("state") == "PRUNED")
    assert pruned.height >= 1 and (table["state"].is_in(["COMPLETE", "PRUNED"])).all()
    assert (pruned["n_epochs"] < EPOCHS).all()  # stopped early
    assert (pruned["params_lambda_region"] > 1.5).all()  # only bad curves are pruned
    assert table.filter(pl.col("state") == "COMPLETE").height + pruned.height == 10

    run_sweep(_cfg(tmp_path / "n.log", n_trials=6, pruner="none"), BASE, bad_curves, out_dir=tmp_path / "n")
    assert (pl.read_parquet(tmp_path / "n" / "trials.parquet")["state"] == "COMPLETE").all()
    best = run_sweep(_cfg(tmp_path / "h.log", n_trials=6, pruner="hyperband"), BASE, bad_curves, out_dir=tmp_path / "h")
    assert best["n_complete"] + best["n_pruned"] == 6


def test_rerun_extends_or_reuses_and_outputs_depend_on_params_only(tmp_path):
    store = tmp_path / "j.log"
    calls = []

    def counting(params, report):
        calls.append(params)
        return fake_objective(params, report)

    run_sweep(_cfg(store, n_trials=4), BASE, counting, out_dir=tmp_path / "four")
    assert len(calls) == 4
    run_sweep(_cfg(store, n_trials=4), BASE, _never, out_dir=tmp_path / "four_again")  # nothing left to run
    assert _bytes(tmp_path / "four") == _bytes(tmp_path / "four_again")
    run_sweep(_cfg(store, n_trials=6), BASE, counting, out_dir=tmp_path / "six")  # raising n_trials extends
    assert len(calls) == 6
    run_sweep(_cfg(tmp_path / "fresh.log", n_trials=6), BASE, fake_objective, out_dir=tmp_path / "six_fresh")
    assert _bytes(tmp_path / "six") == _bytes(tmp_path / "six_fresh")
    run_sweep(_cfg(store, n_trials=4), BASE, _never, out_dir=tmp_path / "four_from_six")  # first 4 trials only
    assert _bytes(tmp_path / "four_from_six") == _bytes(tmp_path / "four")
    # another range is another study in the same storage
    other = _ranges(lr={"low": 1e-4, "high": 1e-2, "log": True})
    run_sweep(_cfg(store, n_trials=2, ranges=other), BASE, counting, out_dir=tmp_path / "other")
    assert len(calls) == 8 and len(optuna.get_all_study_names(open_storage(_cfg(store)))) == 2


@pytest.mark.parametrize("crash, storage", [("kill", "journal"), ("raise", "sqlite")])
def test_resume_after_a_dead_worker(tmp_path, crash, storage):
    url = str(tmp_path / "journal.log") if storage == "journal" else f"sqlite:///{tmp_path / 'sweep.db'}"
    n = 5
    spec = {"sweep": _cfg(url, n_trials=n).model_dump(mode="json"),  # every key: the worker fills in nothing
            "out": str(tmp_path / "out"), "calls": str(tmp_path / "calls.jsonl"), "crash": crash, "crash_call": 3}

    def worker(spec: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    proc = worker(spec)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if crash == "kill":
        assert proc.returncode == -9
    else:
        assert "injected failure" in proc.stderr
    before = _load(url)
    first = _finished(before)
    assert len(first) == 2 and len(before.trials) == 3
    S = optuna.trial.TrialState
    assert before.trials[2].state == (S.RUNNING if crash == "kill" else S.FAIL)
    assert before.trials[2].intermediate_values  # it died in the middle (after its first epoch)
    assert not (tmp_path / "out").exists()

    proc = worker({**spec, "crash": "none"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = _load(url)
    done = _finished(after)
    assert len(done) == n
    assert after.trials[2].state == optuna.trial.TrialState.FAIL  # the stale trial: FAIL, not counted
    for old, new in zip(first, done[:2]):  # untouched, not re-run
        assert (old.number, old.params, old.value, old.state) == (new.number, new.params, new.value, new.state)
        assert (old.datetime_start, old.datetime_complete) == (new.datetime_start, new.datetime_complete)
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 3 + (n - 2)  # the rerun ran only the missing trials
    assert calls[3] == calls[2]  # ... starting with the interrupted trial's parameters
    best = json.loads((tmp_path / "out" / "best.json").read_text())
    assert best["n_complete"] + best["n_pruned"] == n and best["n_fail"] == 1
    assert pl.read_parquet(tmp_path / "out" / "trials.parquet").height == n + 1

    # the resumed sweep ends as an uninterrupted one
    run_sweep(SweepParams.model_validate({**spec["sweep"], "storage": str(tmp_path / "clean.log")}), BASE, fake_objective,
              out_dir=tmp_path / "clean")
    clean = _finished(_load(tmp_path / "clean.log"))
    assert [(t.params, t.value, t.state) for t in clean] == [(t.params, t.value, t.state) for t in done]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask() standing in for a worker
def test_several_workers_heartbeat_fails_and_retries_stale_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    cfg = _cfg(url, n_trials=3, single_worker=False, heartbeat_s=1, grace_s=2, max_retry=1)
    storage = open_storage(cfg)
    assert storage.get_heartbeat_interval() == 1
    study = make_study(cfg, study_name(cfg, sweep.tune_base(BASE, cfg)), EPOCHS, storage)  # as run_sweep names it
    space = {k: optuna.distributions.FloatDistribution(r.low, r.high, log=r.log) for k, r in cfg.searched()}
    dead = study.ask(space)
    storage.record_heartbeat(dead._trial_id)  # a worker that started a trial and died
    time.sleep(3.1)  # > grace_s at the 1-second resolution of SQLite timestamps
    run_sweep(cfg, BASE, fake_objective, out_dir=tmp_path / "out")
    trials = _load(url).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == dead.params and retried[0].state.is_finished()
    assert len(_finished(_load(url))) == 3


# ------------------------------------------------------------------------------------------------- the real objective


def test_tune_objective_glue(tmp_path, monkeypatch, params_of, run_of):
    import alertclip.tune.run as tune_mod
    from alertclip.train.loop import NonFiniteLossError, TrainResult

    seen = []

    def fake_tune(cfg, paths, progress=False, on_val=None, *, snippet_len, name):
        assert snippet_len == SNIPPET_LEN  # the objective passes params frames.snippet_len through
        assert name == "sweep"  # a trial's logs and metrics are the sweep's, not a run's of params runs
        seen.append(cfg)
        if cfg.lr > 5e-4:
            raise NonFiniteLossError("step 3: loss nan")
        for epoch in range(cfg.epochs):  # weighted total differs by lambda; the objective must not use it
            g, h, r = 2.0 - 0.1 * epoch, 1.0, 0.5
            total = g + cfg.lambda_region * r + cfg.lambda_hard * h
            on_val(epoch, {"total": total, "global": g, "region": r, "hard": h})
        return None, TrainResult(cfg.epochs, cfg.epochs, False), {}

    monkeypatch.setattr(tune_mod, "tune", fake_tune)
    # a key of the run's row that is no training setting (losses: already resolved into the lambdas) is dropped
    base = {**run_of("full").model_dump(), "epochs": 2, "batch_size": 4, "losses": ["global", "region", "hard"],
            "lambda_region": 1.0}
    assert sweep.tune_base(base, params_of("sweep", epochs=2)) == run_of("full", epochs=2, batch_size=4).model_dump()
    objective = sweep.tune_objective(sweep.tune_base(base, params_of("sweep", epochs=2)), snippet_len=SNIPPET_LEN)
    reports = []
    value = objective({"lambda_region": 2.0, "lambda_hard": 0.5, "temperature": 0.05, "lr": 1e-4},
                      lambda e, v: reports.append((e, v)))
    assert reports == [(0, 3.0), (1, pytest.approx(2.9))] and value == pytest.approx(2.9)
    cfg = seen[-1]
    assert (cfg.lambda_region, cfg.lambda_hard, cfg.temperature, cfg.lr, cfg.epochs) == (2.0, 0.5, 0.05, 1e-4, 2)
    assert cfg == run_of("full", epochs=2, batch_size=4, lambda_region=2.0, lambda_hard=0.5, temperature=0.05, lr=1e-4)
    with pytest.raises(optuna.TrialPruned, match="diverged"):
        objective({"lambda_region": 1.0, "lambda_hard": 1.0, "temperature": 0.05, "lr": 1e-3}, lambda e, v: None)

    def prune(epoch, value):
        raise optuna.TrialPruned("pruned")

    with pytest.raises(optuna.TrialPruned):
        objective({"lambda_region": 1.0, "lambda_hard": 1.0, "temperature": 0.05, "lr": 1e-4}, prune)
    monkeypatch.setattr(tune_mod, "tune", lambda cfg, *a, **k: (None, TrainResult(1, 4, True), {}))
    with pytest.raises(SweepInterrupted):
        objective({"lambda_region": 1.0, "lambda_hard": 1.0, "temperature": 0.05, "lr": 1e-4}, lambda e, v: None)


def test_real_sweep(tmp_path, params_of, run_of):
    """Two one-epoch trials of runs.full's recipe on the tiny fake curated set of test_tune (init backbone: no
    stage1 model needed)."""
    from test_tune import CFG, _world

    paths = _world(tmp_path / "world")
    base = run_of("full", **{**CFG, "epochs": 1, "init": "backbone"})
    cfg = params_of("sweep", n_trials=2, storage=str(tmp_path / "j.log"), n_startup_trials=2, epochs=None)
    best = run_sweep(cfg, base, out_dir=tmp_path / "out", paths=paths, snippet_len=SNIPPET_LEN)
    assert best["n_complete"] == 2 and math.isfinite(best["value"])
    table = pl.read_parquet(tmp_path / "out" / "trials.parquet")
    assert table["n_epochs"].to_list() == [1, 1] and table["value"].to_list() == [v[0] for v in table["epoch_values"]]


def test_best_overrides_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the sweep stage first"):
        best_overrides(tmp_path / "best.json")
    (tmp_path / "best.json").write_text(json.dumps({"params": {"lr": 1e-4}}))
    with pytest.raises(ValueError, match="lack"):
        best_overrides(tmp_path / "best.json")
