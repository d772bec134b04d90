"""Where MLflow writes: an embedded SQLite store under ``mlruns/`` unless overridden.

``MLFLOW_TRACKING_URI`` (e.g. a tracking server with a SQL database) takes precedence.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def artifact_location() -> str:
    """Artifact root for new experiments in the embedded store: ``mlruns/artifacts``."""
    return (MLRUNS_DIR / "artifacts").as_uri()
