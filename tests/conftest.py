"""Shared fixtures; the data builders live in tests/fixtures.py."""

from __future__ import annotations

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
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to the repository's mlruns/."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
