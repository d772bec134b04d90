from __future__ import annotations

import pytest

from training.tracking import MLRUNS_DIR, tracking_uri


def test_env_overrides_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri() == "http://127.0.0.1:5999"


def test_default_is_sqlite_under_mlruns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri()
    assert uri.startswith("sqlite:///") and uri.endswith("mlflow.db")
    assert str(MLRUNS_DIR) in uri and MLRUNS_DIR.name == "mlruns"
