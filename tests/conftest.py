"""Shared fixtures; the data builders live in tests/fixtures.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures import embedded_sample, tiny_tables, write_folder

# Set before torch, LightGBM or DuckDB start their thread pools, and inherited by every
# server and worker the tests start. OpenMP threads that spin while they wait slow a 2-core
# machine 10-60x as soon as a second process computes (a test's server, a DDP or Dask worker,
# a subprocess's training); passive waiting changes no result.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# httpx has no built-in bypass for loopback: with HTTP_PROXY set, requests to the servers
# the tests start on 127.0.0.1 would go to the proxy.
_no_proxy = ",".join(filter(None, [os.environ.get("no_proxy"), os.environ.get("NO_PROXY"),
                                    "127.0.0.1", "localhost"]))
os.environ["NO_PROXY"] = os.environ["no_proxy"] = _no_proxy  # Python prefers the lowercase


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
