"""Shared fixtures; the data builders live in tests/fixtures.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures import embedded_sample, tiny_tables, write_folder


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "tiny", tiny_tables())


@pytest.fixture(scope="session")
def cj_sample() -> dict[str, pd.DataFrame]:
    return embedded_sample()


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never write to the repository's mlruns/, nor see another test's store:
    ``mlflow.set_tracking_uri`` is process-global, so it is reset after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
