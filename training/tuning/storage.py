"""The Optuna RDB storage through which several processes (workers, sessions, machines)
share a study: ``open_storage``, and ``storage_url``, the one a session uses by default."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from features.sources import GrowthError
from training.tracking import sqlite_file
from training.tuning.request import TuneRequest

TUNING_DIR = Path("artifacts/tuning")  # default SQLite studies (relative to the working dir)
SQLITE_TIMEOUT_S = 60  # wait this long for another process's write lock
# what to pip install for a database driver module SQLAlchemy imports for a storage URL
DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary",
                   "MySQLdb": "mysqlclient (or PyMySQL, with a mysql+pymysql:// URL)",
                   "pymysql": "PyMySQL"}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage several processes can share. SQLite gets a long lock timeout (writes
    from the other workers would otherwise fail with "database is locked"); a heartbeat lets
    any process mark the trials of a worker that died as FAIL instead of RUNNING forever."""
    parsed = parse_url(url)
    if parsed.drivername.startswith("sqlite"):
        db = sqlite_file(url)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    with warnings.catch_warnings():  # the heartbeat is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=60, grace_period=180)
        except ImportError as exc:  # the URL's driver, imported before any connection
            module = getattr(exc.__cause__, "name", None) or exc.name
            if module is None:
                raise GrowthError(f"cannot open the Optuna storage {redacted_url(parsed)}: "
                                  f"ImportError: {exc}") from exc
            raise GrowthError(
                f"cannot open the Optuna storage {redacted_url(parsed)}: its "
                f"{parsed.get_backend_name()} driver, Python module {module}, is not installed "
                "(growthloop installs only SQLite's): pip install "
                f"{DRIVER_PACKAGES.get(module, module)}") from exc
        except SQLAlchemyError as exc:
            raise GrowthError(f"cannot open the Optuna storage {redacted_url(parsed)}: "
                              f"{exc.__class__.__name__}: {exc}") from exc


def in_memory(url: str) -> bool:
    """A SQLite URL without a file (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``)."""
    return parse_url(url).drivername.startswith("sqlite") and sqlite_file(url) is None


def parse_url(url: str) -> URL:
    """``url`` as SQLAlchemy reads it; a clear error for what is not a database URL, or
    names no database SQLAlchemy knows (an MLflow server's http://...)."""
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise GrowthError(f"--storage {url!r} is not a database URL (expected e.g. "
                          "sqlite:///F.db or postgresql://user@host/db)") from exc
    try:
        parsed.get_dialect()  # the dialect only: a missing driver is open_storage's error
    except NoSuchModuleError as exc:
        raise GrowthError(
            f"--storage {redacted_url(parsed)}: its scheme {parsed.drivername}:// is not a "
            "database SQLAlchemy knows; Optuna's storage is an SQLAlchemy database URL such "
            "as sqlite:///path/to/study.db or postgresql://user@host/db (not an MLflow "
            "tracking server's http:// address)") from exc
    return parsed


def redacted_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def storage_url(request: TuneRequest, study: str) -> str | None:
    """The request's storage; a SQLite file under ``artifacts/tuning/`` when several workers
    must share a study and none was given; None (in memory) for one worker. A given SQLite
    file must lie in an existing folder: a mistyped path would otherwise start a new, empty
    study instead of resuming one (only the default folder is created)."""
    if request.storage:
        db = sqlite_file(request.storage)
        if db is not None and not db.parent.is_dir():
            raise GrowthError(f"--storage {request.storage}: folder {db.parent} does not "
                              "exist; create it first to start a new study there, or fix the "
                              "path to resume one")
        return request.storage
    if request.workers > 1:
        return f"sqlite:///{(TUNING_DIR / f'{study}.db').resolve()}"
    return None
