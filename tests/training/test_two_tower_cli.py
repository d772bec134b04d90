"""``growth train two-tower`` and ``growth recommend`` end to end on small synthetic data:
MLflow run and registry, the point-in-time rule, a SIGKILL mid-training and ``--resume``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import schema as s
from features.synth import generate

SMALL = ["as_of=2017-06-05", "window_days=14", "n_cutoffs=3", "history_len=30", "dim=16",
         "id_dim=16", "attr_dim=4", "hidden=32", "batch_size=256", "epochs=2",
         "lr=0.003", "candidates=30", "rerank_rounds=20"]


def growth(*args: str, cwd: Path, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "growth", *args]
    if kw.pop("background", False):
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, timeout=600)


def sets(values: list[str]) -> list[str]:
    return [a for v in values for a in ("--set", v)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "data"
    generate(folder, households=300, products=400, weeks=24, seed=5)
    return folder


def test_train_register_and_recommend(data: Path, tmp_path: Path) -> None:
    res = growth("train", "two-tower", "--data", str(data), *sets(SMALL), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "two_tower v1" in res.stdout and "promoted" in res.stdout
    report = pd.read_json(tmp_path / "reports" / "two_tower" / "metrics.json", typ="series")
    assert {"two_tower_blend", "buy_again", "buy_again_decay_120d", "buy_again_decay_tuned",
            "popularity", "item_cooccurrence"} <= set(report["metrics"])
    tuned = report["metrics"]["buy_again_decay_tuned"]
    assert tuned["half_life_days"] in (30.0, 60.0, 90.0, 120.0, 180.0, 365.0)
    assert report["index_recall_vs_exact_at_20"] == 1.0  # exact index for a small catalogue
    sec = report["seconds"]
    assert sec["training"] > 0 and sec["evaluation"] > 0 and "+ evaluation" in res.stdout
    assert sec["training"] + sec["evaluation"] == pytest.approx(sec["total"], abs=0.2)

    out = tmp_path / "recs.parquet"
    res = growth("recommend", "--as-of", "2017-06-05", "--data", str(data), "--k", "7",
                 "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = pd.read_parquet(out)
    per_household = recs.groupby(s.HOUSEHOLD_ID)[s.PRODUCT_ID].agg(["size", "nunique"])
    assert (per_household["size"] == 7).all() and (per_household["nunique"] == 7).all()
    assert set(recs["reason"]) <= {"repeat", "similar"}
    assert pq.read_schema(out).metadata[b"model_version"] == b"1"

    # products new to the household only; an unknown household gets the cold-start list
    some = int(recs[s.HOUSEHOLD_ID].iloc[0])
    res = growth("recommend", "--as-of", "2017-06-05", "--data", str(data), "--k", "5",
                 "--household-ids", f"{some},999999", "--exclude-purchased", "--out",
                 str(tmp_path / "new.parquet"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    new = pd.read_parquet(tmp_path / "new.parquet")
    assert new.groupby(s.HOUSEHOLD_ID).size().to_dict() == {some: 5, 999999: 5}
    assert set(new.loc[new[s.HOUSEHOLD_ID] == some, "reason"]) == {"similar"}
    assert set(new.loc[new[s.HOUSEHOLD_ID] == 999999, "reason"]) == {"popular"}
    lines = pd.read_parquet(data / "transactions.parquet")
    before = lines[(lines[s.HOUSEHOLD_ID] == some)
                   & (lines[s.TRANSACTION_TIMESTAMP] < pd.Timestamp("2017-06-05"))]
    assert not set(new.loc[new[s.HOUSEHOLD_ID] == some, s.PRODUCT_ID]) & set(before[s.PRODUCT_ID])

    # point-in-time rule: no version's data ends on or before an earlier date
    res = growth("recommend", "--as-of", "2017-05-01", "--data", str(data), "--out",
                 str(tmp_path / "early.parquet"), cwd=tmp_path)
    assert res.returncode == 2 and "no version of two_tower" in res.stderr


def test_sigkill_then_resume(data: Path, tmp_path: Path) -> None:
    long = [v for v in SMALL if not v.startswith("epochs")] + ["epochs=60", "patience=100"]
    proc = growth("train", "two-tower", "--data", str(data), *sets(long), cwd=tmp_path,
                  background=True)
    ckpt = tmp_path / "artifacts" / "two_tower" / "checkpoints" / "2017-06-05-seed0"
    deadline = time.time() + 240
    while not (ckpt / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "no checkpoint written"
        time.sleep(0.05)
    time.sleep(0.3)  # into a later epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = growth("train", "two-tower", "--data", str(data), *sets(long), "--resume",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["two_tower"], output_format="list")
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED", "KILLED"]
