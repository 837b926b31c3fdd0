"""The sweep on a REAL PostgreSQL server (``sweep.storage: postgresql://user:pw@host:port/db``), the storage meant for
several workers on several machines: tests/test_sweep.py covers workers and stale trials on SQLite / journal files only,
and PostgreSQL differs where it matters (concurrent schema creation, heartbeat timestamps, connection errors).

The module starts its own server (tests/engines_postgres.py: initdb + pg_ctl into a temporary folder, loopback TCP
with SCRAM passwords, a fresh database per test) and skips only when that is impossible here (no server binaries;
root without a ``postgres`` user). Workers are real processes (tests/sweep_worker.py's fake objective, slowed so that
their trials overlap): two workers share one study with every trial run exactly once; a worker SIGKILLed mid-trial has
its trial failed by the survivor's heartbeat check and retried; optuna-dashboard serves the study over loopback with
the trials optuna reads; bad URLs fail before any training, naming the URL with its password masked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from pathlib import Path

import engines_postgres as pgh
import optuna
import pytest
from engines_postgres import PASSWORD, postgres_server, unavailable_reason
from test_sweep import BASE, EPOCHS, REPO, _cfg, _never, _ranges, fake_objective, fake_value

from alertclip.params import SweepParams
from alertclip.sweep.run import run_sweep
from alertclip.sweep.storage import SweepStorageError, open_storage

WORKER = Path(pgh.__file__).resolve()
S = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server(keep_log=tmp_path_factory.mktemp("postgres") / "server.log") as server:
        yield server


@pytest.fixture
def db(pg, request) -> str:
    """A fresh database for this test (Optuna creates its tables there on first use); its URL with the password."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    pg.admin(f'CREATE DATABASE "{name}" OWNER "{pgh.USER}"')
    return pg.url(name)


@pytest.fixture
def spawn(tmp_path):
    """``spawn(name, spec) -> Popen`` of a worker (stdout/stderr in tmp_path/<name>.log); any still running at the end
    is killed."""
    procs: list[subprocess.Popen] = []

    def start(name: str, spec: dict) -> subprocess.Popen:
        with (tmp_path / f"{name}.log").open("w") as log:
            proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], cwd=REPO, stdout=log,
                                    stderr=subprocess.STDOUT, text=True)
        proc.log_path = tmp_path / f"{name}.log"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _spec(tmp_path: Path, name: str, url: str, n: int, epoch_s: float, **kw) -> dict:
    sweep = _cfg(url, n_trials=n, pruner="none", heartbeat_s=1, grace_s=2, max_retry=1).model_dump(mode="json")
    return {"sweep": sweep, "out": str(tmp_path / f"out_{name}"), "calls": str(tmp_path / f"calls_{name}.jsonl"),
            "crash": "none", "epoch_s": epoch_s, "ready": str(tmp_path / f"ready_{name}"), "go": str(tmp_path / "go"),
            **kw}


def _start_together(tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    """Wait until every worker has imported everything, then let them all open the storage at once."""
    deadline = time.monotonic() + 90
    for proc in procs:
        ready = Path(json.loads(proc.args[2])["ready"])
        while not ready.exists():
            assert proc.poll() is None, proc.log_path.read_text()
            assert time.monotonic() < deadline, "worker not ready in 90 s"
            time.sleep(0.02)
    (tmp_path / "go").touch()


def _wait(proc: subprocess.Popen, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"worker ran over {timeout} s:\n{proc.log_path.read_text()}")


def _calls(path: str | Path) -> list[str]:
    """The params of every objective call of a worker, normalised for comparison with a trial's params."""
    return [json.dumps(json.loads(line), sort_keys=True) for line in Path(path).read_text().splitlines()]


def _key(trial) -> str:
    return json.dumps(trial.params, sort_keys=True)


def _study(url: str) -> optuna.Study:
    """The one study in the database, read with plain optuna (not through alertclip's storage code)."""
    (name,) = optuna.get_all_study_names(url)
    return optuna.load_study(study_name=name, storage=url)


def _check_values(trial) -> None:
    values = [fake_value(trial.params, e) for e in range(EPOCHS)]
    assert trial.intermediate_values == dict(enumerate(values)) and trial.value == min(values)


# ------------------------------------------------------------------------------------------------- storage


def test_workers_opening_a_fresh_database_together(db, params_of):
    """Workers started at the same moment race to create Optuna's tables (PostgreSQL: 'duplicate key value violates
    unique constraint "pg_type_typname_nsp_index"' for all but one of them without open_storage's retry)."""
    cfg = params_of("sweep", storage=db, heartbeat_s=1, grace_s=2)
    barrier, errors, storages = threading.Barrier(4), [], []

    def worker():
        barrier.wait()
        try:
            storages.append(open_storage(cfg))
        except Exception as err:  # noqa: BLE001 - collected and shown below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(storages) == 4 and all(s.get_heartbeat_interval() == 1 for s in storages)  # several workers: heartbeats
    study_id = storages[0].create_new_study([optuna.study.StudyDirection.MINIMIZE], "shared")
    assert [s.get_study_id_from_name("shared") for s in storages] == [study_id] * 4  # one database


def test_other_url_forms_reach_the_same_study(pg, db, tmp_path, monkeypatch):
    """The unix socket (``?host=<folder>``), and a URL without the password (which would otherwise end up in
    params.yaml and dvc.lock), libpq reading it from a password file (PGPASSFILE; ~/.pgpass by default)."""
    name = db.rsplit("/", 1)[1]
    best = run_sweep(_cfg(pg.socket_url(name), n_trials=2, pruner="none"), BASE, fake_objective, out_dir=tmp_path / "socket")
    study = _study(db)  # written over the socket, read over TCP
    assert [t.state for t in study.trials] == [S.COMPLETE] * 2 and best["value"] == study.best_value

    bare = pg.url(name, password=None)
    with pytest.raises(SweepStorageError, match="password"):  # SCRAM on TCP: no password, no connection
        open_storage(_cfg(bare))
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg.port}:{name}:{pgh.USER}:{PASSWORD}\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    best = run_sweep(_cfg(bare, n_trials=4, pruner="none"), BASE, fake_objective, out_dir=tmp_path / "bare")  # extends it
    assert [t.state for t in _study(db).trials] == [S.COMPLETE] * 4 and best["n_complete"] == 4


@pytest.mark.parametrize("case", ["closed_port", "no_such_database", "wrong_password", "no_driver"])
def test_bad_postgres_url_fails_before_training(pg, tmp_path, monkeypatch, case):
    url = {"closed_port": pg.url(port=pgh.free_port()),  # nothing listens there
           "no_such_database": pg.url("no_such_db"),
           "wrong_password": pg.url(password="not-the-password"),
           "no_driver": pg.url()}[case]
    expect = {"closed_port": "cannot reach the storage: .*Connection refused",
              "no_such_database": 'cannot reach the storage: .*database "no_such_db" does not exist',
              "wrong_password": 'cannot reach the storage: .*password authentication failed for user "alertclip"',
              "no_driver": "the database driver 'psycopg2' is not installed; install it .*psycopg2-binary"}[case]
    if case == "no_driver":
        monkeypatch.setitem(sys.modules, "psycopg2", None)  # import psycopg2 -> ImportError, as when it is missing
    with pytest.raises(SweepStorageError, match=expect) as info:
        run_sweep(_cfg(url), BASE, _never, out_dir=tmp_path / "out")
    msg = str(info.value)
    secret = url.split(":")[2].split("@")[0]
    assert secret in (PASSWORD, "not-the-password") and secret not in msg  # the password is masked ...
    assert url.replace(f":{secret}@", ":***@") in msg  # ... in the URL the message names
    assert not (tmp_path / "out").exists()
    start = time.monotonic()
    with pytest.raises(SweepStorageError, match=expect):
        open_storage(_cfg(url))
    assert time.monotonic() - start < 5  # at once: not retried (as a schema-creation race is), no connect timeout


# ------------------------------------------------------------------------------------------------- workers


def test_two_workers_share_one_study(db, tmp_path, spawn):
    """Two workers on one database: every trial runs exactly once, on one worker, and is recorded once; the workers
    really overlap, and a live trial longer than the heartbeat grace period is not taken for a stale one."""
    n = 8
    # worker "long": trials of 4.5 s (> grace_s = 2) while "short" starts a trial every ~0.6 s, each start failing the
    # study's stale trials: the long trial survives only if its heartbeat is refreshed, in the database's clock
    specs = {"short": _spec(tmp_path, "short", db, n, epoch_s=0.2), "long": _spec(tmp_path, "long", db, n, epoch_s=1.5)}
    procs = {name: spawn(name, spec) for name, spec in specs.items()}
    _start_together(tmp_path, list(procs.values()))
    for name, proc in procs.items():
        assert _wait(proc) == 0, proc.log_path.read_text()

    study = _study(db)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(len(trials)))  # nothing lost, no gap
    assert all(t.state == S.COMPLETE for t in trials), [(t.number, t.state) for t in trials]  # none failed / left over
    # each worker stops once n trials are finished; the other one may be finishing its last trial then (documented)
    assert n <= len(trials) <= n + 1
    calls = {name: _calls(spec["calls"]) for name, spec in specs.items()}
    assert calls["short"] and calls["long"]  # both workers trained
    assert Counter(calls["short"] + calls["long"]) == Counter(_key(t) for t in trials)  # each trial ran exactly once
    assert len(set(calls["short"] + calls["long"])) == len(trials)  # ... with its own params
    for t in trials:
        _check_values(t)
    by_worker = {k: name for name, keys in calls.items() for k in keys}
    long_trials = [t for t in trials if by_worker[_key(t)] == "long"]
    assert all((t.datetime_complete - t.datetime_start).total_seconds() > 2 * 2 for t in long_trials)  # > 2 x grace_s
    short_starts = [t.datetime_start for t in trials if by_worker[_key(t)] == "short"]
    assert any(t.datetime_start < s < t.datetime_complete for t in long_trials for s in short_starts)  # concurrent
    assert any(s < t.datetime_complete and (s - t.datetime_start).total_seconds() > 2 + 0.5  # a stale check past grace_s
               for t in long_trials for s in short_starts)

    # the sweep stage rerun after the workers: nothing left to train, outputs of exactly n trials
    best = run_sweep(SweepParams.model_validate(specs["short"]["sweep"]), BASE, _never, out_dir=tmp_path / "final")
    assert best["n_complete"] == n and best["n_fail"] == 0
    first = trials[:n]
    assert best["value"] == min(t.value for t in first) and best["best_trial"] in [t.number for t in first]


def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(db, tmp_path, spawn):
    """Worker "dies" is SIGKILLed after the first epoch of its second trial; the survivor, at a later trial start,
    finds that trial's heartbeat older than grace_s, fails it, and runs its parameters again (max_retry = 1)."""
    n = 9  # the survivor runs trials for ~4.8 s: well past the dead trial's last heartbeat + grace_s (~0.6 + 2 s)
    specs = {"dies": _spec(tmp_path, "dies", db, n, epoch_s=0.2, crash="kill", crash_call=2),
             "survives": _spec(tmp_path, "survives", db, n, epoch_s=0.2)}
    procs = {name: spawn(name, spec) for name, spec in specs.items()}
    _start_together(tmp_path, list(procs.values()))
    assert _wait(procs["dies"]) == -signal.SIGKILL, procs["dies"].log_path.read_text()
    assert _wait(procs["survives"]) == 0, procs["survives"].log_path.read_text()

    study = _study(db)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(n + 1))
    (dead,) = [t for t in trials if t.state == S.FAIL]
    assert [t.state for t in trials if t is not dead] == [S.COMPLETE] * n  # the study still ends with n
    calls = {name: _calls(spec["calls"]) for name, spec in specs.items()}
    assert len(calls["dies"]) == 2 and _key(dead) == calls["dies"][1]  # the killed worker's second trial ...
    assert list(dead.intermediate_values) == [0]  # ... died after its first epoch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
                   == dead.number]
    (retry,) = retried
    assert retry.number > dead.number and retry.state == S.COMPLETE and retry.params == dead.params
    assert retry.system_attrs["retry_history"] == [dead.number]
    assert Counter(calls["survives"])[_key(dead)] == 1  # the survivor ran the retry (once)
    assert Counter(calls["dies"] + calls["survives"]) == Counter(_key(t) for t in trials)  # nothing else ran twice
    for t in trials:
        if t is not dead:
            _check_values(t)
    best = json.loads((tmp_path / "out_survives" / "best.json").read_text())
    assert (best["n_complete"], best["n_pruned"], best["n_fail"]) == (n, 0, 1)
    assert not (tmp_path / "out_dies").exists()


# ------------------------------------------------------------------------------------------------- dashboard


def _get(url: str, timeout: float = 10) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.headers.get_content_type(), resp.read()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask() of the FAIL trial
def test_dashboard_serves_the_study(db, tmp_path):
    run_sweep(_cfg(db, n_trials=4), BASE, fake_objective, out_dir=tmp_path / "out")
    other = _cfg(db, n_trials=2, ranges=_ranges(lr={"low": 1e-4, "high": 1e-2, "log": True}))  # another study, same db
    run_sweep(other, BASE, fake_objective, out_dir=tmp_path / "other")
    names = optuna.get_all_study_names(db)
    failed = optuna.load_study(study_name=names[0], storage=db)
    failed.tell(failed.ask(), state=S.FAIL)  # a second trial state to show

    port = pgh.free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")  # the console script a user runs
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "optuna_dashboard._cli"]
    log = tmp_path / "dashboard.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([*cmd, db, "--host", "127.0.0.1", "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # poll until it answers
            assert proc.poll() is None, f"optuna-dashboard exited {proc.returncode}:\n{log.read_text()}"
            try:
                _get(f"{base}/api/meta", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"optuna-dashboard not answering in 60 s:\n{log.read_text()}"
                time.sleep(0.2)
        kind, html = _get(f"{base}/")  # redirects to /dashboard
        assert kind == "text/html" and b"<title>Optuna Dashboard</title>" in html
        kind, bundle = _get(f"{base}/static/bundle.js")  # the page's script is served too
        assert kind in ("application/javascript", "text/javascript") and len(bundle) > 10_000

        listed = json.loads(_get(f"{base}/api/studies")[1])["study_summaries"]
        assert sorted(s["study_name"] for s in listed) == sorted(names)
        for summary in listed:
            study = optuna.load_study(study_name=summary["study_name"], storage=db)
            assert summary["study_id"] == study._study_id and summary["directions"] == ["minimize"]
            detail = json.loads(_get(f"{base}/api/studies/{summary['study_id']}")[1])
            assert detail["name"] == study.study_name
            shown = [(t["number"], t["state"], {p["name"]: p["param_external_value"] for p in t["params"]})
                     for t in detail["trials"]]
            expected = [(t.number, t.state.name.capitalize(), {k: str(v) for k, v in t.params.items()})
                        for t in sorted(study.trials, key=lambda t: t.number)]
            assert shown == expected
            assert [t["number"] for t in detail["best_trials"]] == [study.best_trial.number]
        states = {t["state"] for s in listed for t in json.loads(_get(f"{base}/api/studies/{s['study_id']}")[1])["trials"]}
        assert {"Complete", "Fail"} <= states
    finally:
        proc.kill()
        proc.wait(timeout=30)
