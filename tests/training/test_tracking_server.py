"""The scale-out path for tracking: every command against an MLflow tracking server (SQL
backend, proxied artifact store) that the test starts on 127.0.0.1 and stops, as several
machines would share one. Runs, versions, the gate's alias and the model files live on the
server; ``growth score`` and ``growth bundle`` download the files from it; two tuning
workers log their trials under one parent run there."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.synth import generate
from tests.cli import run_growth
from tests.servers import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
CHURN = ["--set", "as_of=2017-08-28", "--set", "horizon_days=28", "--set", "n_cutoffs=6",
         "--set", "step_days=14", "--set", "learning_rate=0.1", "--set", "min_data_in_leaf=20",
         "--set", "max_rounds=150", "--set", "early_stopping_rounds=15"]


@dataclass(frozen=True)
class Server:
    url: str
    root: Path

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    with ServerProcess(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
             "--artifacts-destination", str(root / "artifacts")],
            root / "server.log", cwd=root) as proc:
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(f"{url}/health")
        yield Server(url, root)


def growth(server: Server, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    res = run_growth(*args, cwd=cwd, env={"MLFLOW_TRACKING_URI": server.url})
    assert res.returncode == 0, f"growth {' '.join(args)}:\n{res.stderr[-3000:]}"
    return res


def test_train_gate_score_and_bundle_through_a_tracking_server(server: Server,
                                                               tmp_path: Path) -> None:
    from mlflow import MlflowClient

    data = tmp_path / "data"
    generate(data, households=400, products=300, weeks=40, seed=3)
    work = tmp_path / "work"
    work.mkdir()
    growth(server, "train", "churn", "--data", str(data), *CHURN, cwd=work)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    if client.get_registered_model("churn").aliases.get("champion") is None:
        growth(server, "models", "promote", "churn", "1", cwd=work)  # tiny data: a person's call
    res = growth(server, "train", "churn", "--data", str(data), *CHURN,
                 "--set", "max_rounds=1", "--set", "num_leaves=2", cwd=work)
    assert "rejected" in res.stdout

    versions = client.search_model_versions("name='churn'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert client.get_model_version_by_alias("churn", "champion").version == "1"
    assert {"model.txt", "gain_chart.png"} <= {p.name for p in server.artifacts.rglob("*")}

    out = work / "churn.parquet"
    growth(server, "score", "churn", "--as-of", "2017-08-28", "--data", str(data), "--out",
           str(out), cwd=work)
    # v1 and v2 end on the same day: the champion scores, not the rejected retraining
    assert pq.read_schema(out).metadata[b"model_version"] == b"1"

    res = growth(server, "compare", "churn", "--format", "csv", cwd=work)
    assert res.stdout.count("lightgbm") == 2

    res = growth(server, "bundle", "--data", str(data), cwd=work)
    assert "churn v1: " in res.stdout  # the champion, downloaded from the server
    res = growth(server, "audience", "churn", "--top-n", "5", "--out", "a.csv", cwd=work)
    assert "churn v1 as of " in res.stdout and len((work / "a.csv").read_text().splitlines()) == 6

    # Two tuning workers, each its own process, log their trials under one parent run.
    res = growth(server, "tune", "churn", "--trials", "2", "--workers", "2", "--data", str(data),
                 *CHURN, "--set", "max_rounds=20", "--out", "tuned.yaml", cwd=work)
    study = res.stdout.split("--study ")[1].split()[0]
    trials = client.search_runs(
        [v.experiment_id for v in client.search_experiments()],
        f"tags.`optuna.study` = '{study}'")
    parents = {r.data.tags["mlflow.parentRunId"] for r in trials}
    assert len(trials) == 2 and len(parents) == 1
    assert client.get_run(parents.pop()).data.tags["trials.complete"] == "2"

    growth(server, "models", "promote", "churn", "2", cwd=work)
    growth(server, "models", "rollback", "churn", cwd=work)
    assert client.get_model_version_by_alias("churn", "champion").version == "1"
