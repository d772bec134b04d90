"""Where MLflow writes: an embedded SQLite store under ``mlruns/`` unless overridden.

``MLFLOW_TRACKING_URI`` (e.g. a tracking server with a SQL database) takes precedence.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MLRUNS_DIR = Path(__file__).resolve().parent.parent / "mlruns"
# MLflow draws a progress bar per artifact download: `growth score` printed one per model file,
# into logs and notebooks. Off unless the user turns it on.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def tracking_uri() -> str:
    """The tracking URI in force: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///…/mlruns/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    MLRUNS_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{MLRUNS_DIR / 'mlflow.db'}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (any driver, query and %-escapes read as SQLAlchemy
    reads them), resolved; None for an in-memory database or any other kind of URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # a server's http(s) URL, a file store
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def artifact_location() -> str:
    """Artifact root for new experiments in the embedded store: ``mlruns/artifacts``."""
    return (MLRUNS_DIR / "artifacts").as_uri()
