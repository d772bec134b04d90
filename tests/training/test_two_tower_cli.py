"""``growth train two-tower`` and ``growth recommend`` end to end on small synthetic data:
MLflow run and registry, the point-in-time rule, a SIGKILL mid-training and ``--resume``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import schema as s
from features.dataset import load_dataset
from features.sources import GrowthError
from features.synth import generate
from serving.bundle import BundleError, build_bundle
from serving.config import load_serving_config
from tests.cli import run_growth
from training import registry
from training.two_tower.run import Recommendations, describe_recommendations, recommend_to_file

SMALL = ["as_of=2017-06-05", "window_days=14", "n_cutoffs=3", "history_len=30", "dim=16",
         "id_dim=16", "attr_dim=4", "hidden=32", "batch_size=256", "epochs=2",
         "lr=0.003", "candidates=30", "rerank_rounds=20"]


growth = run_growth


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
    # a line as each stage and each epoch ends, even into a pipe (a long run's log file)
    for record in report["epochs"]:
        assert (f"two-tower: epoch {record['epoch']}/2: loss {record['loss']:.4f}, validation "
                f"recall@20 {record['val_recall_at_20']:.4f}") in res.stdout
    assert "two-tower: blends learnt on 2 windows" in res.stdout
    assert "two-tower: evaluated (" in res.stdout
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
    assert res.stdout.startswith("two_tower v1 as of 2017-06-05: 2 households x 5 products")
    assert ("1 of them had no purchase before 2017-06-05 and got the popular list: 999999"
            in " ".join(res.stdout.split()))
    new = pd.read_parquet(tmp_path / "new.parquet")
    assert new.groupby(s.HOUSEHOLD_ID).size().to_dict() == {some: 5, 999999: 5}
    assert set(new.loc[new[s.HOUSEHOLD_ID] == some, "reason"]) == {"similar"}
    assert set(new.loc[new[s.HOUSEHOLD_ID] == 999999, "reason"]) == {"popular"}
    lines = pd.read_parquet(data / "transactions.parquet")
    before = lines[(lines[s.HOUSEHOLD_ID] == some)
                   & (lines[s.TRANSACTION_TIMESTAMP] < pd.Timestamp("2017-06-05"))]
    bought = set(before[s.PRODUCT_ID])
    assert not set(new.loc[new[s.HOUSEHOLD_ID] == some, s.PRODUCT_ID]) & bought

    # point-in-time rule: no version's data ends on or before an earlier date
    res = growth("recommend", "--as-of", "2017-05-01", "--data", str(data), "--out",
                 str(tmp_path / "early.parquet"), cwd=tmp_path)
    assert res.returncode == 2 and "no version of two_tower" in res.stderr

    # k products for every household when the data sold that many before as_of: a short
    # candidate list is topped up from the popular ranking, never repeating a product
    ds = load_dataset(data, quarantine_dir=tmp_path / "q")
    as_of = date(2017, 6, 5)
    households = [some, *recs[s.HOUSEHOLD_ID].drop_duplicates().iloc[1:4]]
    sold = set(ds.df(f"SELECT DISTINCT {s.PRODUCT_ID} FROM {s.TRANSACTIONS} WHERE "
                     f"{s.TRANSACTION_TIMESTAMP} < TIMESTAMP '{as_of}'")[s.PRODUCT_ID])
    k = min(200, len(sold))
    recs = recommend_to_file(ds, as_of, 200, tmp_path / "k200.parquet", households)
    full = recs.frame
    per_household = full.groupby(s.HOUSEHOLD_ID)[s.PRODUCT_ID].agg(["size", "nunique"])
    assert (per_household["size"] == k).all() and (per_household["nunique"] == k).all()
    assert "popular" in set(full["reason"]) and set(full[s.PRODUCT_ID]) <= sold
    assert describe_recommendations(recs, k, as_of, tmp_path) == (
        f"two_tower v1 as of {as_of}: 4 households x {k} products -> {tmp_path}")
    new = recommend_to_file(ds, as_of, 200, tmp_path / "new200.parquet", [some],
                            exclude_purchased=True).frame
    assert len(new) == new[s.PRODUCT_ID].nunique() == min(200, len(sold - bought))
    assert "popular" in set(new["reason"]) and not set(new[s.PRODUCT_ID]) & bought

    # only versions trained on the data being scored, and only dates within it
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    copy = copy.resolve()
    with pytest.raises(GrowthError, match=re.escape(f"no version of two_tower trained on {copy}")):
        recommend_to_file(load_dataset(copy, quarantine_dir=tmp_path / "q2"), as_of, 5,
                          tmp_path / "copy.parquet")
    _, last = ds.time_range()
    with pytest.raises(GrowthError, match="is outside the data"):
        recommend_to_file(ds, last.date() + timedelta(days=2), 5, tmp_path / "late.parquet")

    # the bundle takes only champions trained on the data it bundles: a clear BundleError
    # (`growth bundle` prints one line; `growth run` prints "bundle: skipped: ...")
    with pytest.raises(BundleError) as err:
        build_bundle(load_dataset(copy, quarantine_dir=tmp_path / "q3"), load_serving_config())
    assert str(err.value) == (
        f"no model has a @champion trained on this data ({copy}): two_tower @champion v1 was "
        f"trained on {data.resolve()}; train two_tower on this data ({copy}) and make it the "
        f"champion, then run `growth bundle --data {copy}` again; churn has no @champion in "
        f"the registry at bundle time; train churn on this data ({copy}) and make it the "
        f"champion, then run `growth bundle --data {copy}` again; coupon has no @champion in "
        f"the registry at bundle time; train coupon on this data ({copy}) and make it the "
        f"champion, then run `growth bundle --data {copy}` again")
    # a champion registered before sources were recorded: the snapshot finds out
    mlflow.MlflowClient().delete_model_version_tag("two_tower", "1", registry.DATA_SOURCE_TAG)
    other = tmp_path / "other"
    generate(other, households=120, products=150, weeks=24, seed=11)
    with pytest.raises(BundleError, match="does not hold the item embeddings .* trained on "
                                          "other data"):
        build_bundle(load_dataset(other, quarantine_dir=tmp_path / "q4"), load_serving_config())


def test_sigkill_then_resume(data: Path, tmp_path: Path) -> None:
    long = [v for v in SMALL if not v.startswith("epochs")] + ["epochs=60", "patience=100"]
    log = tmp_path / "first.log"
    # output to a file: a pipe nobody reads while polling could fill and stall the training
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "growth", "train", "two-tower", "--data",
                                 str(data), *sets(long)], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT)
    ckpt = tmp_path / "artifacts" / "two_tower" / "checkpoints" / "2017-06-05-seed0"
    deadline = time.time() + 240
    try:
        while not (ckpt / "checkpoint.pt").exists():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.3)  # into a later epoch
    finally:  # killed in any case: a 60-epoch training left running would load later tests
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    res = growth("train", "two-tower", "--data", str(data), *sets(long), "--resume",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["two_tower"], output_format="list")
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED", "KILLED"]


def test_describe_recommendations_says_why_a_list_is_short(tmp_path: Path) -> None:
    frame = pd.DataFrame({s.HOUSEHOLD_ID: [1, 1, 1, 2, 2], "rank": [1, 2, 3, 1, 2],
                          s.PRODUCT_ID: [10, 11, 12, 10, 11]})
    recs = Recommendations(frame, 3, [])
    out = tmp_path / "r.parquet"
    assert describe_recommendations(recs, 2, date(2017, 2, 1), out) == (
        f"two_tower v3 as of 2017-02-01: 2 households x 2 products -> {out}")
    assert describe_recommendations(recs, 3, date(2017, 2, 1), out) == (
        f"two_tower v3 as of 2017-02-01: 2 households, 5 rows -> {out}; 1 of them get fewer "
        "than 3 products: no more products (new to the household, with --exclude-purchased) "
        "were sold before 2017-02-01")


def test_describe_recommendations_names_households_without_history(tmp_path: Path) -> None:
    """Given households with no purchase before the date get the popular list: say so."""
    frame = pd.DataFrame({s.HOUSEHOLD_ID: range(8), "rank": 1, s.PRODUCT_ID: 10})
    out = tmp_path / "r.parquet"
    assert describe_recommendations(Recommendations(frame, 2, [5]), 1, date(2017, 2, 1), out) == (
        f"two_tower v2 as of 2017-02-01: 8 households x 1 products -> {out}; 1 of them had "
        "no purchase before 2017-02-01 and got the popular list: 5")
    many = Recommendations(frame, 2, list(range(1, 8)))
    assert describe_recommendations(many, 1, date(2017, 2, 1), out).endswith(
        "; 7 of them had no purchase before 2017-02-01 and got the popular list: 1, 2, 3, 4, "
        "5 and 2 more")
