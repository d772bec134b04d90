"""training.registry against the per-test SQLite store from conftest (tiny text artifacts)."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from features.dataset import load_dataset
from features.sources import EMBEDDED_SOURCE, GrowthError, describe_source
from training import registry as r
from training.tracking import tracking_uri

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "registry-test"
MODEL = "recs"
SOURCE = "/data/shop-a"


@pytest.fixture(scope="module")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty store with MLflow's schema: migrating a new SQLite file takes seconds."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return db


@pytest.fixture(autouse=True)
def _store(_isolated_mlflow: None, _migrated_db: Path) -> Iterator[None]:
    """Start conftest's per-test database from the migrated copy. registry helpers call
    ``mlflow.set_tracking_uri``, a process-wide setting that outranks the environment
    variable: point it at this test's store, and clear it afterwards for other tests."""
    shutil.copy(_migrated_db, tracking_uri().removeprefix("sqlite:///"))
    mlflow.set_tracking_uri(tracking_uri())
    yield
    mlflow.set_tracking_uri(None)


def _run_with_artifact(text: str = "weights") -> str:
    """A finished run with ``model/readme.txt``; returns its id."""
    with r.tracked_run(EXPERIMENT, "fit") as run:
        mlflow.log_text(text, "model/readme.txt")
    return run.info.run_id


def _register(data_end: date, recall: float | None = None, text: str = "weights",
              source: str = SOURCE, task: str | None = None) -> int:
    metrics = None if recall is None else {"recall": recall}
    return r.register_version(MODEL, _run_with_artifact(text), "model", data_end, source,
                              metrics, task)


def _status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status


def _tag(version: int, key: str) -> str | None:
    return MlflowClient().get_model_version(MODEL, str(version)).tags.get(key)


def test_artifacts_go_beside_the_test_database(tmp_path: Path) -> None:
    experiment_id = r.setup(EXPERIMENT)
    assert r.setup(EXPERIMENT) == experiment_id  # get, not create twice
    location = MlflowClient().get_experiment(experiment_id).artifact_location
    assert location == (tmp_path / "artifacts").as_uri()
    run_id = _run_with_artifact("hello")
    assert (tmp_path / "artifacts" / run_id / "artifacts" / "model" / "readme.txt").exists()


def test_register_version_tags_and_artifacts(tmp_path: Path) -> None:
    v1 = _register(date(2024, 3, 1), recall=0.12, text="first")
    v2 = _register(date(2024, 4, 1), recall=0.15, text="second")
    assert (v1, v2) == (1, 2)
    rows = r.list_versions(MODEL)
    assert [row["version"] for row in rows] == [1, 2]
    assert rows[1][r.DATA_END_TAG] == "2024-04-01" and rows[1][r.DATA_SOURCE_TAG] == SOURCE
    assert rows[1]["metrics"] == {"recall": 0.15}
    assert not any(row["champion"] for row in rows)
    assert rows[0]["created"] <= rows[1]["created"]
    uri = r.version_artifact_uri(MODEL, v2)
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "dl"))
    assert (Path(local) / "readme.txt").read_text() == "second"


def test_version_for_date_is_point_in_time() -> None:
    _register(date(2024, 3, 1))
    _register(date(2024, 4, 1))
    # end is exclusive: usable that day
    assert r.version_for_date(MODEL, date(2024, 3, 1), SOURCE) == 1
    assert r.version_for_date(MODEL, date(2024, 3, 31), SOURCE) == 1
    assert r.version_for_date(MODEL, date(2024, 4, 1), SOURCE) == 2
    assert r.version_for_date(MODEL, date(2025, 1, 1), SOURCE) == 2
    with pytest.raises(LookupError) as err:
        r.version_for_date(MODEL, date(2024, 2, 29), SOURCE)
    message = str(err.value)
    assert f"no version of {MODEL} trained on {SOURCE}" in message
    assert "on or before 2024-02-29" in message
    assert "its newest versions trained on it: v2 data to 2024-04-01; v1 data to 2024-03-01" in (
        message)


def test_version_for_date_keeps_to_the_data_source() -> None:
    """A version trained on other data is never picked, however new; one registered before
    sources were recorded stays eligible for any data."""
    _register(date(2024, 3, 1))
    _register(date(2024, 3, 1), source="/data/synthetic")  # newer, same end, other data
    assert r.version_for_date(MODEL, date(2024, 6, 1), SOURCE) == 1
    assert r.version_for_date(MODEL, date(2024, 6, 1), "/data/synthetic") == 2
    with pytest.raises(LookupError) as err:
        r.version_for_date(MODEL, date(2024, 6, 1), "/data/shop-b")
    message = str(err.value)
    assert "trained on /data/shop-b" in message and "on or before 2024-06-01" in message
    assert message.endswith(f"its versions were trained on other data: {SOURCE} (newest v1, "
                            "data to 2024-03-01); /data/synthetic (newest v2, data to "
                            "2024-03-01)")

    older = _register(date(2024, 4, 1), source="/data/synthetic")
    MlflowClient().delete_model_version_tag(MODEL, str(older), r.DATA_SOURCE_TAG)
    assert r.list_versions(MODEL)[2][r.DATA_SOURCE_TAG] is None
    assert r.version_for_date(MODEL, date(2024, 6, 1), "/data/shop-b") == older
    assert r.version_for_date(MODEL, date(2024, 6, 1), SOURCE) == older
    assert r.version_for_date(MODEL, date(2024, 3, 15), SOURCE) == 1


def test_version_for_date_prefers_newest_data_then_the_champion() -> None:
    """A backtest version registered later (older data, higher number) does not take over
    today's scoring, and a retraining on the same data the gate rejected does not either."""
    today = _register(date(2024, 6, 1), recall=0.20)
    assert r.promote_if_better(MODEL, today, "recall")[0]
    backtest = _register(date(2024, 3, 1), recall=0.30)  # promoted or not, older data
    assert r.version_for_date(MODEL, date(2024, 6, 1), SOURCE) == today
    assert r.version_for_date(MODEL, date(2024, 5, 31), SOURCE) == backtest

    rejected = _register(date(2024, 6, 1), recall=0.10)
    assert not r.promote_if_better(MODEL, rejected, "recall")[0]
    assert r.version_for_date(MODEL, date(2024, 7, 1), SOURCE) == today
    r.promote(MODEL, rejected)  # a person's decision is followed
    assert r.version_for_date(MODEL, date(2024, 7, 1), SOURCE) == rejected

    # newer data, but the gate found it worse: the version it lost to scores
    newer_data = _register(date(2024, 7, 1), recall=0.05)
    assert not r.promote_if_better(MODEL, newer_data, "recall")[0]
    assert r.gate_verdict(MODEL, newer_data)[0] == r.WORSE
    assert r.version_for_date(MODEL, date(2024, 7, 1), SOURCE) == rejected
    r.promote(MODEL, today)  # champion elsewhere: highest number among the latest end
    twin = _register(date(2024, 7, 1))  # no verdict recorded: not set aside
    assert r.version_for_date(MODEL, date(2024, 8, 1), SOURCE) == twin
    # the backtest was set aside by the gate too (<= champion): the only version for its days
    # scores them all the same, and says so through its verdict
    assert r.promote_if_better(MODEL, backtest, "recall")[0] is False
    assert r.gate_verdict(MODEL, backtest)[0] == r.NOT_COMPARED  # a backtest: not compared
    assert r.version_for_date(MODEL, date(2024, 5, 31), SOURCE) == backtest


def test_a_version_the_gate_set_aside_scores_only_when_nothing_else_fits() -> None:
    """v2 lost to a baseline and v3 to the champion: scoring keeps to v1 while it fits the
    date, falls back to the newest set-aside version before v1's data end, and a rolled-back
    champion is set aside like a worse one."""
    first = _register(date(2024, 3, 1), recall=0.20)
    assert r.promote_if_better(MODEL, first, "recall")[0]
    assert r.gate_verdict(MODEL, first) == (r.PROMOTED, "promoted: recall 0.2 (no champion yet)")
    early = _register(date(2024, 2, 1), recall=0.10)
    assert not r.promote_if_better(MODEL, early, "recall", baselines={"pop": 0.15})[0]
    assert r.gate_verdict(MODEL, early)[0] == r.WORSE  # lost to the baseline
    later = _register(date(2024, 4, 1), recall=0.19)
    assert not r.promote_if_better(MODEL, later, "recall")[0]
    assert r.version_for_date(MODEL, date(2024, 4, 1), SOURCE) == first
    assert r.version_for_date(MODEL, date(2024, 2, 15), SOURCE) == early  # nothing else fits
    r.promote(MODEL, later, reason="promoted by hand")
    verdict, reason = r.gate_verdict(MODEL, later)
    assert verdict == r.PROMOTED  # the person's decision is recorded after the gate's
    assert reason == "rejected: recall 0.19 <= champion v1 0.2; then promoted by hand"
    assert r.version_for_date(MODEL, date(2024, 4, 1), SOURCE) == later
    r.rollback(MODEL)
    assert r.gate_verdict(MODEL, later)[0] == r.ROLLED_BACK
    assert r.version_for_date(MODEL, date(2024, 4, 1), SOURCE) == first


def test_download_for_date_uses_the_datasets_source(tiny_folder: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_folder.parent)
    ds = load_dataset(Path(tiny_folder.name), quarantine_dir=tmp_path / "q")
    source = ds.source  # given relative on the command line, held resolved
    assert source == str(tiny_folder.resolve())
    _register(date(2017, 1, 2), text="tiny", source=source)
    _register(date(2017, 1, 9), text="other data")  # newer, but not trained on this data
    folder, version = r.download_for_date(MODEL, date(2017, 1, 23), ds, tmp_path / "dl", "fit")
    assert version == 1 and (folder / "readme.txt").read_text() == "tiny"
    with pytest.raises(GrowthError) as err:  # v1's data ends after 2017-01-01
        r.download_for_date(MODEL, date(2017, 1, 1), ds, tmp_path / "dl2", "fit")
    assert f"trained on {source}" in str(err.value)
    assert str(err.value).endswith(f"train one with `fit --data {source}`")


def test_data_source_of_the_embedded_data() -> None:
    assert describe_source(None) == EMBEDDED_SOURCE


def test_check_as_of_allows_the_data_and_the_day_after(tiny_folder: Path,
                                                       tmp_path: Path) -> None:
    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")  # 2017-01-02 .. 2017-01-30
    for day in (date(2017, 1, 2), date(2017, 1, 30), date(2017, 1, 31)):
        ds.check_as_of(day)
    for day in (date(2017, 1, 1), date(2017, 2, 1), date(2030, 1, 1)):
        with pytest.raises(GrowthError) as err:
            ds.check_as_of(day)
        assert str(err.value) == (
            f"as-of date {day} is outside the data: {tiny_folder} runs from 2017-01-02 to "
            "2017-01-30, so the as-of date may be from 2017-01-02 to 2017-01-31 (the day "
            "after its last transaction)")


def test_promote_if_better() -> None:
    first = _register(date(2024, 3, 1), recall=0.14)
    promoted, reason = r.promote_if_better(MODEL, first, "recall")
    assert promoted and r.champion_version(MODEL) == first
    assert reason == "promoted: recall 0.14 (no champion yet)"
    assert _tag(first, "promotion") == reason
    assert r.promote_if_better(MODEL, first, "recall") == (
        False, "not promoted: recall 0.14 (v1 is already the champion)"
    )

    worse = _register(date(2024, 4, 1), recall=0.13)
    promoted, reason = r.promote_if_better(MODEL, worse, "recall")
    assert not promoted and r.champion_version(MODEL) == first
    assert _tag(worse, "promotion") == reason
    assert reason.startswith("rejected") and "champion v1" in reason

    better = _register(date(2024, 5, 1), recall=0.15)
    promoted, reason = r.promote_if_better(MODEL, better, "recall", baselines={"pop": 0.10})
    assert promoted and r.champion_version(MODEL) == better
    assert reason == "promoted: recall 0.15 > champion v1 0.14, > baseline pop 0.1"

    beats_champion_only = _register(date(2024, 6, 1), recall=0.16)
    promoted, reason = r.promote_if_better(
        MODEL, beats_champion_only, "recall", baselines={"pop": 0.10, "buy_again": 0.16}
    )
    assert not promoted and r.champion_version(MODEL) == better
    assert reason == "rejected: recall 0.16 <= baseline buy_again 0.16"
    assert _tag(beats_champion_only, "promotion") == reason


def test_champion_from_other_data_is_not_compared() -> None:
    """A metric measured on another data set says nothing here: the gate leaves the served
    model alone and says how to replace it by hand."""
    served = _register(date(2024, 3, 1), recall=0.14, source="/data/shop-b")
    r.promote(MODEL, served)
    candidate = _register(date(2024, 6, 1), recall=0.90)
    promoted, reason = r.promote_if_better(MODEL, candidate, "recall")
    assert not promoted and r.champion_version(MODEL) == served
    assert reason == ("not promoted: recall 0.9 (champion v1 was trained on other data, "
                      f"/data/shop-b: not comparable); `growth models promote {MODEL} 2` "
                      "serves this one")
    same_data = _register(date(2024, 5, 1), recall=0.15, source="/data/shop-b")
    assert r.promote_if_better(MODEL, same_data, "recall")[0]
    # a champion registered before sources were recorded is compared as before
    MlflowClient().delete_model_version_tag(MODEL, str(same_data), r.DATA_SOURCE_TAG)
    assert r.promote_if_better(MODEL, candidate, "recall") == (
        True, "promoted: recall 0.9 > champion v3 0.15")


def test_a_champion_of_another_task_is_not_compared() -> None:
    """Churn over 14 days has about three times the positives of churn over 56 days, so its
    PR-AUC is higher without being better: a walkthrough saw it take @champion."""
    served = _register(date(2024, 6, 1), recall=0.49, task="churn within 56 days")
    assert r.promote_if_better(MODEL, served, "recall")[0]
    assert r.champion_task(MODEL) == "churn within 56 days"
    short = _register(date(2024, 6, 1), recall=0.70, task="churn within 14 days")
    promoted, reason = r.promote_if_better(MODEL, short, "recall")
    assert not promoted and r.champion_version(MODEL) == served
    assert reason == ("not promoted: recall 0.7 (champion v1 predicts churn within 56 days, this "
                      "version churn within 14 days: not comparable); `growth models promote "
                      f"{MODEL} 2` serves this one")
    # not comparable and worse than a baseline: no advice to serve it
    assert r.promote_if_better(MODEL, short, "recall", baselines={"rfm": 0.75}) == (
        False, "rejected: recall 0.7 (champion v1 predicts churn within 56 days, this version "
               "churn within 14 days: not comparable), <= baseline rfm 0.75")
    same = _register(date(2024, 6, 1), recall=0.50, task="churn within 56 days")
    assert r.promote_if_better(MODEL, same, "recall")[0]
    # scoring keeps to a task when asked; untagged versions count as any
    later = _register(date(2024, 7, 1), task="churn within 14 days")
    assert r.version_for_date(MODEL, date(2024, 8, 1), SOURCE) == later
    assert r.version_for_date(MODEL, date(2024, 8, 1), SOURCE, "churn within 56 days") == same
    with pytest.raises(LookupError) as err:
        r.version_for_date(MODEL, date(2024, 8, 1), SOURCE, "churn within 90 days")
    assert str(err.value).startswith(f"no version of {MODEL} that predicts churn within 90 "
                                     f"days trained on {SOURCE} has training data ending")
    assert "v4 data to 2024-07-01 (churn within 14 days)" in str(err.value)
    assert "(churn within 14 days)" in str(err.value)
    untagged = _register(date(2024, 7, 15))
    assert r.version_for_date(MODEL, date(2024, 8, 1), SOURCE, "churn within 90 days") == (
        untagged)


def test_a_backtest_does_not_replace_the_champion() -> None:
    """A version whose training data end before the champion's was judged on an older
    validation window: the gate leaves today's model serving."""
    today = _register(date(2024, 6, 1), recall=0.14)
    assert r.promote_if_better(MODEL, today, "recall")[0]
    backtest = _register(date(2024, 3, 1), recall=0.30)
    promoted, reason = r.promote_if_better(MODEL, backtest, "recall")
    assert not promoted and r.champion_version(MODEL) == today
    assert reason == ("not promoted: recall 0.3 (its training data end on 2024-03-01, before "
                      "champion v1's 2024-06-01: a backtest does not replace the served model); "
                      f"`growth models promote {MODEL} 2` serves this one")
    same_end = _register(date(2024, 6, 1), recall=0.15)
    assert r.promote_if_better(MODEL, same_end, "recall")[0]


def test_the_champion_is_measured_on_the_candidates_validation_rows() -> None:
    """A version trained to a later date is validated on a later window with another positive
    rate: its tag and the champion's do not compare, the champion re-scored on the
    candidate's rows does. Its tag 0.50 would have kept 0.45 out."""
    served = _register(date(2024, 6, 1), recall=0.50)
    assert r.promote_if_better(MODEL, served, "recall")[0]
    asked: list[int] = []

    def rescore(version: int) -> float | None:
        asked.append(version)
        return 0.40

    later = _register(date(2024, 7, 1), recall=0.45)
    assert r.promote_if_better(MODEL, later, "recall", rescore=rescore) == (
        True, "promoted: recall 0.45 > champion v1 0.4 on this version's validation rows")
    assert asked == [served] and r.champion_version(MODEL) == later

    def unreadable(version: int) -> float | None:
        return None

    # a champion that cannot read the rows (other features) compares by its tag only when
    # the two were validated on the same window (their data end on the same day) ...
    same_end = _register(date(2024, 7, 1), recall=0.44)
    assert r.promote_if_better(MODEL, same_end, "recall", rescore=unreadable) == (
        False, "rejected: recall 0.44 <= champion v2 0.45")
    # ... and is not compared otherwise
    even_later = _register(date(2024, 8, 1), recall=0.90)
    promoted, reason = r.promote_if_better(MODEL, even_later, "recall", rescore=unreadable)
    assert not promoted and r.champion_version(MODEL) == later
    assert reason == ("not promoted: recall 0.9 (champion v2 cannot score this version's "
                      "validation rows, and its own were validated on data to 2024-07-01, "
                      f"this version's to 2024-08-01: not comparable); `growth models promote "
                      f"{MODEL} 4` serves this one")
    # the rescored value decides against the candidate too
    assert r.promote_if_better(MODEL, even_later, "recall", rescore=lambda v: 0.95) == (
        False, "rejected: recall 0.9 <= champion v2 0.95 on this version's validation rows")


def test_metrics_that_are_not_numbers_never_pass_the_gate() -> None:
    nan_first = _register(date(2024, 3, 1), recall=float("nan"))
    assert r.promote_if_better(MODEL, nan_first, "recall") == (
        False, "rejected: recall nan is not a finite number (nothing to compare)")
    assert r.champion_version(MODEL) is None
    good = _register(date(2024, 4, 1), recall=0.2)
    assert r.promote_if_better(MODEL, good, "recall", baselines={"pop": float("nan")}) == (
        False, "not promoted: recall 0.2 (baseline pop has no finite recall: nan)")
    assert r.promote_if_better(MODEL, good, "recall")[0]
    # a champion whose tag says nan (an older store) cannot be compared with
    MlflowClient().set_model_version_tag(MODEL, str(good), "metric.recall", "nan")
    later = _register(date(2024, 5, 1), recall=0.3)
    assert r.promote_if_better(MODEL, later, "recall") == (
        False, "not promoted: recall 0.3 (champion v2 has no recall to compare with); `growth "
               f"models promote {MODEL} 3` serves this one")


def test_gates_finishing_together_keep_the_better_version(tmp_path: Path) -> None:
    """Two processes gate at once (the worse one first reads the champion, then waits):
    the read, comparison and alias move hold the store's lock, so the better one ends
    serving and its predecessor is the version it really replaced."""
    first = _register(date(2024, 3, 1), recall=0.1)
    assert r.promote_if_better(MODEL, first, "recall")[0]
    better = _register(date(2024, 4, 1), recall=0.9)
    worse = _register(date(2024, 4, 1), recall=0.6)
    read = tmp_path / "worse-read-the-champion"
    locking = tmp_path / "better-takes-the-lock"
    # the worse one reads the champion, then waits until the better one is about to take the
    # lock (and 2 s more): without the lock, the better one reads the same champion and
    # promotes in that time, and the worse one then overwrites it; with it, it waits
    script = (
        "import contextlib, pathlib, sys, time\n"
        "from training import registry as r\n"
        "version, role = int(sys.argv[1]), sys.argv[2]\n"
        "read, locking = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])\n"
        "real_champion, real_lock = r._champion, r._promotion_lock\n"
        "def slow(client, name):\n"
        "    champion = real_champion(client, name)\n"
        "    read.touch()\n"
        "    deadline = time.monotonic() + 120\n"
        "    while not locking.exists() and time.monotonic() < deadline:\n"
        "        time.sleep(0.05)\n"
        "    time.sleep(2)\n"
        "    return champion\n"
        "@contextlib.contextmanager\n"
        "def announced():\n"
        "    locking.touch()\n"
        "    with real_lock():\n"
        "        yield\n"
        "if role == 'slow':\n"
        "    r._champion = slow\n"
        "else:\n"
        "    r._promotion_lock = announced\n"
        f"print(r.promote_if_better({MODEL!r}, version, 'recall')[0])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    markers = [str(read), str(locking)]
    slow_worse = subprocess.Popen([sys.executable, "-c", script, str(worse), "slow", *markers],
                                  env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not read.exists():  # the worse one has read v1 as champion and now waits
        assert slow_worse.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    quick_better = subprocess.run([sys.executable, "-c", script, str(better), "quick",
                                   *markers], env=env, capture_output=True, text=True,
                                  timeout=120)
    assert slow_worse.communicate(timeout=120)[0].strip() == "True"  # beat v1 alone
    assert quick_better.stdout.strip() == "True"  # then v3 > v2 under the lock
    assert r.champion_version(MODEL) == better
    assert _tag(better, "previous_champion") == str(worse)


def test_promote_if_better_lower_is_better() -> None:
    first = _register(date(2024, 3, 1), recall=0.5)  # read as a loss here
    assert r.promote_if_better(MODEL, first, "recall", higher_is_better=False)[0]
    second = _register(date(2024, 4, 1), recall=0.4)
    promoted, reason = r.promote_if_better(MODEL, second, "recall", higher_is_better=False)
    assert promoted and reason == "promoted: recall 0.4 < champion v1 0.5"


def test_promote_and_rollback() -> None:
    v1 = _register(date(2024, 3, 1))
    v2 = _register(date(2024, 4, 1))
    with pytest.raises(ValueError, match="no champion"):
        r.rollback(MODEL)
    r.promote(MODEL, v1, reason="by hand")
    with pytest.raises(ValueError, match="nothing to roll back to"):
        r.rollback(MODEL)
    with pytest.raises(GrowthError, match=f"{MODEL} v1 is already @champion; nothing changed"):
        r.promote(MODEL, v1, reason="again")
    assert _tag(v1, "promotion") == "by hand" and _tag(v1, "previous_champion") is None
    r.promote(MODEL, v2)
    assert r.champion_version(MODEL) == v2 and _tag(v2, "previous_champion") == "1"
    assert MlflowClient().get_model_version_by_alias(MODEL, r.CHAMPION).version == v2
    assert r.rollback(MODEL) == v1
    assert r.champion_version(MODEL) == v1
    assert [row["champion"] for row in r.list_versions(MODEL)] == [True, False]
    local = mlflow.artifacts.download_artifacts(f"models:/{MODEL}@{r.CHAMPION}")
    assert (Path(local) / "readme.txt").read_text() == "weights"


def test_rollbacks_undo_promotions_in_order_and_stop_at_the_first() -> None:
    """A walkthrough's promote 4, promote 1, then rollbacks went round 4 -> 13 -> 1 -> 4
    forever: re-promoting v1 overwrote its predecessor. Each rollback now undoes one change
    and leaves a note on the version it demotes."""
    v1, v2, v3 = (_register(date(2024, 3, 1)) for _ in range(3))
    r.promote(MODEL, v1)
    r.promote(MODEL, v2, reason="by the gate")
    r.promote(MODEL, v3)
    r.promote(MODEL, v1)  # champions so far: 1, 2, 3, 1
    assert [r.rollback(MODEL) for _ in range(3)] == [v3, v2, v1]
    with pytest.raises(ValueError, match="was the first champion: there is nothing to roll"):
        r.rollback(MODEL)
    assert r.champion_version(MODEL) == v1
    note = _tag(v2, "promotion")
    assert note.startswith("by the gate; rolled back on ") and note.endswith(
        ": v1 serves again")
    r.promote(MODEL, v2)  # the history goes on from here
    assert r.rollback(MODEL) == v1
    MlflowClient().set_registered_model_alias(MODEL, r.CHAMPION, str(v3))  # outside growth
    with pytest.raises(ValueError, match="v3 was set outside growth .* ends with v1"):
        r.rollback(MODEL)


def _two_champions() -> tuple[int, int]:
    """Two versions, each promoted in turn: v2 serves and replaced v1."""
    v1, v2 = _register(date(2024, 3, 1)), _register(date(2024, 4, 1))
    r.promote(MODEL, v1)
    r.promote(MODEL, v2)
    return v1, v2


def test_rollback_on_a_registry_without_history_goes_back_once() -> None:
    v1, v2 = _two_champions()
    MlflowClient().delete_registered_model_tag(MODEL, r.HISTORY_TAG)  # as written before
    assert r.rollback(MODEL) == v1
    with pytest.raises(ValueError, match="nothing to roll back to"):
        r.rollback(MODEL)


def test_rollback_to_a_deleted_version_says_so() -> None:
    v1, v2 = _two_champions()
    MlflowClient().delete_model_version(MODEL, str(v1))
    with pytest.raises(ValueError, match=f"{MODEL} champion v2 replaced v1, which has been "
                                         "deleted: choose a version with `growth models "
                                         f"promote {MODEL} VERSION`"):
        r.rollback(MODEL)
    assert r.champion_version(MODEL) == v2


def test_tracked_run_final_statuses() -> None:
    with r.tracked_run(EXPERIMENT, "ok", params={"k": 10}, tags={"kind": "test"}) as run:
        pass
    finished = MlflowClient().get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params == {"k": "10"}
    assert finished.data.tags["kind"] == "test"
    assert finished.data.tags["pid"] == str(os.getpid())

    with pytest.raises(RuntimeError), r.tracked_run(EXPERIMENT, "boom") as run:
        raise RuntimeError("boom")
    assert _status(run.info.run_id) == "FAILED"

    with pytest.raises(KeyboardInterrupt), r.tracked_run(EXPERIMENT, "ctrl-c") as run:
        raise KeyboardInterrupt
    assert _status(run.info.run_id) == "KILLED"
    assert mlflow.active_run() is None


def test_nested_run_returns_to_parent() -> None:
    with r.tracked_run(EXPERIMENT, "parent") as parent:
        with pytest.raises(ValueError), r.tracked_run(EXPERIMENT, "child", nested=True) as child:
            raise ValueError
        assert mlflow.active_run().info.run_id == parent.info.run_id
    assert _status(child.info.run_id) == "FAILED"
    assert _status(parent.info.run_id) == "FINISHED"


def test_close_stale_runs_kills_runs_of_dead_processes(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from training.registry import tracked_run\n"
        f"with tracked_run({EXPERIMENT!r}, 'doomed') as run:\n"
        "    print(run.info.run_id, flush=True)\n"
        "    time.sleep(120)\n"
    )
    stderr = tmp_path / "child.err"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, env=os.environ.copy(),
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
    try:  # the child's first line, or a failure within 120 s (never a hung read)
        assert select.select([proc.stdout], [], [], 120)[0], stderr.read_text()
        doomed = proc.stdout.readline().strip()
        assert doomed, stderr.read_text()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert _status(doomed) == "RUNNING"

    client = MlflowClient()
    no_pid = client.create_run(r.setup(EXPERIMENT)).info.run_id  # e.g. started by hand
    with r.tracked_run(EXPERIMENT, "alive") as alive:
        assert r.close_stale_runs(EXPERIMENT, older_than_s=3600) == [doomed]
        assert _status(doomed) == "KILLED" and _status(no_pid) == "RUNNING"
        time.sleep(0.01)
        assert r.close_stale_runs(EXPERIMENT) == [no_pid]
        assert _status(alive.info.run_id) == "RUNNING"
    assert _status(no_pid) == "KILLED"
    assert r.close_stale_runs("no-such-experiment") == []


def test_the_promotion_lock_sits_beside_any_sqlite_store(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for uri in (f"sqlite:///{tmp_path}/a.db", f"sqlite+pysqlite:///{tmp_path}/b.db",
                f"sqlite:///{tmp_path}/c.db?timeout=5", "sqlite://", "http://127.0.0.1:1"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with r._promotion_lock():
            pass
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == [
        "a.db.promotion.lock", "b.db.promotion.lock", "c.db.promotion.lock"]


def test_bundle_remedy_promotes_a_version_of_the_data_when_there_is_one() -> None:
    """A champion trained on other data keeps the alias against every later version (the gate
    does not compare across data), so training again cannot make a bundle: say to promote."""
    from serving.bundle import _remedy

    assert _remedy(MODEL, SOURCE) == (f"train {MODEL} on this data ({SOURCE}) and make it the "
                                      "champion")
    assert r.promote_if_better(MODEL, _register(date(2024, 3, 1), 0.5, source="/other"),
                               "recall")[0]
    ours = _register(date(2024, 4, 1), 0.9)
    assert not r.promote_if_better(MODEL, ours, "recall")[0]  # not comparable: rejected
    assert _remedy(MODEL, SOURCE) == (f"v{ours} was trained on this data: make it the champion "
                                      f"with `growth models promote {MODEL} {ours}`")
