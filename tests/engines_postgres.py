"""Helpers for tests/test_sweep_postgres.py (not a test module): a throw-away PostgreSQL server started from the
Debian/PGDG binaries, free loopback ports, and a slowed, start-synchronised sweep worker.

The server: ``initdb`` into a fresh temporary folder (TCP on 127.0.0.1 with SCRAM passwords, as workers on other
machines would connect; the unix socket in that folder with trust auth for the admin connection), ``fsync=off`` and
friends (a test server: seconds to start, nothing to keep), stopped with ``pg_ctl stop -m fast``. PostgreSQL refuses
to run as root: as root the binaries run as the ``postgres`` system user (``runuser``), which cannot traverse pytest's
root-only (0700) temporary root, so the folder is a ``tempfile.mkdtemp`` (in ``/dev/shm`` where there is one, else the
system temp folder), chowned to that user.

The worker (``python tests/engines_postgres.py SPEC_JSON``): :func:`sweep_worker.main` (its fake objective, kill/raise
injection and calls file), plus ``epoch_s`` (seconds each fake epoch takes, so that trials of two workers overlap and a
worker outlives a dead one's heartbeat grace), ``ready`` (a file created once the imports are done) and ``go`` (a file
it waits for before opening the storage: the test starts both workers at the same moment).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "alertclip", "s3cret-pw"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: ``$PG_BINDIR``, else ``PATH``, else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian does not put them on ``PATH``)."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if
                         Path(p).parent.name.isdigit() else 0, reverse=True)
    for c in candidates:
        if c and all((Path(c) / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    return None


def unavailable_reason() -> str | None:
    """Why no test server can be started here (``None``: it can)."""
    if postgres_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; install postgresql (Debian) or set PG_BINDIR"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' system user to run the server as (postgres refuses root)"
        if shutil.which("runuser") is None:
            return "running as root and no runuser to run the server as the 'postgres' user"
    return None


@dataclass
class PostgresServer:
    root: Path  # the temporary folder: data/, server.log, the unix socket
    port: int
    database: str

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str | None = None, user: str = USER, password: str | None = PASSWORD, port: int | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{port or self.port}/{database or self.database}"

    def socket_url(self, database: str | None = None) -> str:
        """The same server over its unix socket (libpq's ``host=<folder>`` query parameter)."""
        return f"postgresql://{USER}@/{database or self.database}?host={self.root}&port={self.port}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def admin(self, sql: str) -> None:
        """Run ``sql`` outside a transaction (``CREATE DATABASE`` needs that) over the unix socket."""
        import psycopg2

        conn = psycopg2.connect(host=str(self.root), port=self.port, user=USER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()


def _scratch() -> str | None:
    """``/dev/shm`` when it is a usable RAM disk (a database is ~8 MB of small files: deleting a dozen of them from a
    busy disk took seconds), else the system temp folder."""
    shm = "/dev/shm"
    try:
        if os.access(shm, os.W_OK | os.X_OK) and shutil.disk_usage(shm).free > 1 << 30:
            return shm
    except OSError:
        pass
    return None


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str, timeout: float = 60) -> None:
    proc = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")


@contextlib.contextmanager
def postgres_server(database: str = "sweep", keep_log: Path | None = None):
    """Start a server, create ``database`` (owned by :data:`USER`), yield a :class:`PostgresServer`; stop and delete it
    on exit (also when the body fails). ``keep_log``: copy the server log there first (for a failing test's report)."""
    bindir = postgres_bindir()
    assert bindir is not None, unavailable_reason()
    root = Path(tempfile.mkdtemp(prefix="alertclip-pg-", dir=_scratch()))
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        _run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", USER, f"--pwfile={pwfile}", "--auth-local=trust",
              "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], "initdb")
        options = " ".join(["-c listen_addresses=127.0.0.1", f"-k {root}", "-c fsync=off", "-c synchronous_commit=off",
                            "-c full_page_writes=off", "-c max_connections=50", "-c shared_buffers=16MB"])
        for attempt in range(3):  # the free port may be taken between free_port() and the server's bind
            port = free_port()
            try:
                _run([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"), "-w", "-t", "30",
                      "-o", f"-p {port} {options}", "start"], "pg_ctl start")
                started = True
                break
            except RuntimeError:
                if attempt == 2:
                    raise RuntimeError(f"pg_ctl start failed 3 times; server log:\n{(root / 'server.log').read_text()}")
        server = PostgresServer(root=root, port=port, database=database)
        server.admin(f'CREATE DATABASE "{database}" OWNER "{USER}"')
        yield server
    finally:
        if started:
            _run([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "-t", "30", "stop"], "pg_ctl stop")
        if keep_log is not None and (root / "server.log").exists():
            shutil.copy(root / "server.log", keep_log)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- the worker


def worker_main(spec_json: str) -> None:
    # the heavy imports of a sweep (torch, sklearn for fANOVA, matplotlib) happen before the start barrier, so that
    # the workers really start together (they take seconds, more on a busy machine)
    import matplotlib.pyplot  # noqa: F401
    import optuna
    import optuna.importance  # noqa: F401
    import sweep_worker

    import alertclip.sweep.run  # noqa: F401
    import alertclip.tune.data  # noqa: F401

    spec = json.loads(spec_json)
    epoch_s = float(spec.get("epoch_s", 0.0))
    fast = sweep_worker.fake_objective

    def slow_objective(params, report, epochs=sweep_worker.EPOCHS, on_epoch=None):
        def slow_report(epoch, value):
            time.sleep(epoch_s)
            report(epoch, value)

        return fast(params, slow_report, epochs, on_epoch)

    sweep_worker.fake_objective = slow_objective  # sweep_worker.main's objective looks it up at call time
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.get("ready"):
        Path(spec["ready"]).touch()
    if spec.get("go"):
        deadline = time.monotonic() + 60
        while not Path(spec["go"]).exists():
            if time.monotonic() > deadline:
                sys.exit("worker: no go signal within 60 s")
            time.sleep(0.01)
    sweep_worker.main(spec_json)


if __name__ == "__main__":
    worker_main(sys.argv[1])
