"""Where a sweep's study lives: a journal file, SQLite or an RDB URL, opened before any training; heartbeats."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..params import SweepParams

if TYPE_CHECKING:
    import optuna


log = logging.getLogger(__name__)
_CREATE_ATTEMPTS = 5  # see open_storage: concurrent table creation

class SweepStorageError(RuntimeError):
    """The sweep's storage cannot be opened (unreachable, unsupported scheme, missing driver)."""


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
    heartbeat: dict[str, Any] = {}
    if not is_single_worker(cfg):  # several workers: stale trials are found by their heartbeat
        retry = None
        if cfg.max_retry:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=cfg.max_retry)
        heartbeat = dict(heartbeat_interval=cfg.heartbeat_s, grace_period=cfg.grace_s,
                         heartbeat_stale_trial_callback=retry)
    try:
        attempt = 0
        while True:
            attempt += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError):
                # Workers started together on a fresh PostgreSQL database race to create Optuna's tables (SQLAlchemy's
                # create_all is check-then-create): the loser gets 'duplicate key value violates unique constraint
                # "pg_type_typname_nsp_index"' or 'relation ... already exists'. Trying again finds the winner's tables.
                if kind != "rdb" or attempt >= _CREATE_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
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


def is_single_worker(cfg: SweepParams) -> bool:
    if cfg.single_worker is not None:
        return cfg.single_worker
    return storage_kind(str(cfg.storage)) in ("journal", "sqlite")
