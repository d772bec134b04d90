"""Churn and coupon end to end on small synthetic data: tracked run, registry and gate,
same seed -> same metrics, ``growth score`` with the point-in-time rule, missing tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from features import schema as s
from features.config import DataConfig
from features.dataset import load_dataset
from features.glossary import value_text
from features.sources import GrowthError
from features.synth import generate
from tests.cli import run_growth
from training import registry
from training.propensity import churn, coupon, score
from training.propensity.config import load_churn_config, load_coupon_config
from training.propensity.run import (
    GATE_METRIC,
    train_churn,
    train_coupon,
    train_standard_models,
)
from training.propensity.score import RECEIVED, score_to_file

ROOT = Path(__file__).resolve().parents[3]
CHURN = ["as_of=2017-08-28", "horizon_days=28", "n_cutoffs=6", "step_days=14",
         "learning_rate=0.1", "min_data_in_leaf=20", "max_rounds=150",
         "early_stopping_rounds=15"]
COUPON = ["split_date=2017-07-10", "validation_days=90", "learning_rate=0.1",
          "min_data_in_leaf=30", "max_rounds=150", "early_stopping_rounds=15"]


growth = run_growth


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "data"
    generate(folder, households=400, products=300, weeks=40, seed=3)
    return folder


@pytest.fixture(scope="module")
def ds(data: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_dataset(data, quarantine_dir=tmp_path_factory.mktemp("q"))


def test_churn_gate_reproducibility_and_scoring(data: Path, ds, tmp_path: Path) -> None:
    reports = tmp_path / "reports" / "churn"
    first = train_churn(ds, load_churn_config(overrides=CHURN), reports)
    assert first["version"] == 1
    ours = first["metrics"]["lightgbm"]
    assert {"days_since_last", "rfm_logistic"} <= set(first["metrics"])
    assert ours["roc_auc"] > 0.7 and ours["val_roc_auc"] > 0.7
    assert {"pr_auc", "brier", "ece", "lift_at_10pct", "capture_at_10pct"} <= set(ours)
    for name in ("metrics.json", "gain_chart.png", "calibration.png", "importance.csv"):
        assert (reports / name).exists(), name
    report = json.loads((reports / "metrics.json").read_text())
    assert report["version"] == 1 and report["data_end"] == "2017-08-28"

    # v1 is the champion (through the gate, or made so by a person); a clearly worse run
    # must not take the alias.
    if not first["promoted"]:
        registry.promote("churn", 1)
    worse = train_churn(ds, load_churn_config(
        overrides=CHURN + ["max_rounds=1", "num_leaves=2"]), reports)
    assert worse[GATE_METRIC] < first[GATE_METRIC]
    assert not worse["promoted"] and "rejected" in worse["promotion"]
    # the gate re-scores the champion on the candidate's validation rows: on the same window
    # that reproduces the champion's own recorded value
    assert (f"<= champion v1 {first[GATE_METRIC]:g} on this version's validation rows"
            in worse["promotion"])
    assert registry.champion_version("churn") == 1

    # Same seed, same data: same metrics.
    again = train_churn(ds, load_churn_config(overrides=CHURN), reports)
    assert again["metrics"] == first["metrics"]
    assert again[GATE_METRIC] == first[GATE_METRIC]

    out = tmp_path / "churn.parquet"
    res = growth("score", "churn", "--as-of", "2017-08-28", "--data", str(data), "--out",
                 str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [s.HOUSEHOLD_ID, "score", "decile", "reason_1", "reason_2",
                                    "reason_3", "reason_1_value", "reason_2_value",
                                    "reason_3_value"]
    # each reason's value is the household's value of that feature, as text
    features = churn.churn_features(ds, date(2017, 8, 28), 28).set_index(s.HOUSEHOLD_ID)
    for row in scores.itertuples(index=False):
        household = features.loc[getattr(row, s.HOUSEHOLD_ID)]
        assert [getattr(row, f"reason_{i}_value") for i in (1, 2, 3)] == [
            value_text(name, household[name]) for name in (row.reason_1, row.reason_2,
                                                            row.reason_3)]
    assert scores["reason_1_value"].str.len().gt(0).all()
    assert scores["score"].between(0, 1).all() and set(scores["decile"]) == set(range(1, 11))
    assert scores.loc[scores["score"].idxmax(), "decile"] == 1
    active = ds.df(f"SELECT count(DISTINCT {s.HOUSEHOLD_ID}) FROM {s.TRANSACTIONS} WHERE "
                   f"{s.TRANSACTION_TIMESTAMP} < TIMESTAMP '2017-08-28'").iloc[0, 0]
    assert len(scores) == active == scores[s.HOUSEHOLD_ID].nunique()
    meta = pq.read_schema(out).metadata
    # v2 and v3 (rejected) end on the champion's day: the champion scores
    assert meta[b"model_version"] == b"1" and meta[b"data_end"] == b"2017-08-28"

    # Point-in-time rule: no version's training data ends by an earlier date; the hint trains
    # one that does (not one at the default date, which could never score this day)
    with pytest.raises(GrowthError, match="no version of churn") as err:
        score_to_file(ds, "churn", tmp_path / "early.parquet", date(2017, 8, 1))
    assert str(err.value).endswith(
        f"train one with `growth train churn --as-of 2017-08-01 --horizon-days 28 --data "
        f"{ds.source}`")  # the champion's horizon, 28 days in CHURN
    # ...unless that command cannot train on this data: then the advice says why
    with pytest.raises(GrowthError, match="no version of churn") as err:
        score_to_file(ds, "churn", tmp_path / "early.parquet", date(2017, 2, 15))
    assert ("none can be trained on this data with data ending by 2017-02-15, so nothing "
            "scores as of that day: `growth train churn --as-of 2017-02-15 --horizon-days 28 "
            f"--data {ds.source}` stops with: no training cutoff: " in str(err.value))
    assert "a later --as-of (2017-02-27 is the first that gives one)" in str(err.value)

    # A later as_of is validated on a later window: the champion is measured there too, not
    # by the value it recorded on its own window.
    later = train_churn(ds, load_churn_config(overrides=CHURN + ["as_of=2017-09-11"]), reports)
    rescored = float(later["promotion"].split("champion v1 ")[1].split()[0])
    assert rescored != pytest.approx(first[GATE_METRIC])
    assert f"champion v1 {rescored:g} on this version's validation rows" in later["promotion"]
    assert later["promoted"] == (later[GATE_METRIC] > max(
        rescored, *later["baseline_" + GATE_METRIC].values()))

    # A version the gate found worse scores only the days no other version fits, and says so
    stump = CHURN[1:] + ["max_rounds=1", "num_leaves=2"]
    worse_later = train_churn(ds, load_churn_config(overrides=stump + ["as_of=2017-09-11"]),
                              reports)
    early = train_churn(ds, load_churn_config(overrides=stump + ["as_of=2017-08-14"]), reports)
    for version in (worse_later["version"], early["version"]):
        assert registry.gate_verdict("churn", version)[0] == registry.WORSE
    for day, expected in (("2017-09-11", later["version"] if later["promoted"] else 1),
                          ("2017-08-20", early["version"])):
        res = growth("score", "churn", "--as-of", day, "--data", str(data), "--out",
                     str(out), cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        meta = pq.read_schema(out).metadata
        assert meta[b"model_version"] == str(expected).encode()
        set_aside = expected == early["version"]
        assert (b"gate" in meta and meta[b"gate"] == registry.WORSE.encode()) == set_aside
        assert (f"note: churn v{expected} was set aside (worse: rejected: "
                in res.stderr) == set_aside


def test_coupon_train_score_and_evaluate(data: Path, ds, tmp_path: Path) -> None:
    summary = train_coupon(ds, load_coupon_config(overrides=COUPON),
                           tmp_path / "reports" / "coupon")
    assert summary["data_end"] == "2017-07-10"
    assert {"prior_redemptions", "rfm_type_logistic"} <= set(summary["metrics"])
    assert summary["metrics"]["lightgbm"]["roc_auc"] > 0.6
    assert min(summary["data"]["test_campaigns"]) >= 12  # campaigns from 2017-07-10 on

    one = tmp_path / "campaign14.parquet"
    res = growth("score", "coupon", "--campaign-id", "14", "--data", str(data), "--out",
                 str(one), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    scored = pd.read_parquet(one)
    # The campaign's audience: every household with a purchase before its start (2017-07-16)
    # and its recipients, which `received` marks.
    recipients = set(ds.df(f"SELECT {s.HOUSEHOLD_ID} FROM {s.CAMPAIGNS} "
                           f"WHERE {s.CAMPAIGN_ID} = 14")[s.HOUSEHOLD_ID])
    active = set(ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID} FROM {s.TRANSACTIONS} WHERE "
                       f"{s.TRANSACTION_TIMESTAMP} < TIMESTAMP '2017-07-16'")[s.HOUSEHOLD_ID])
    assert len(active - recipients) > 0  # households that could still be targeted
    assert scored[s.HOUSEHOLD_ID].is_unique
    assert set(scored[s.HOUSEHOLD_ID]) == active | recipients
    assert set(scored.loc[scored[RECEIVED] == 1, s.HOUSEHOLD_ID]) == recipients
    assert sorted(scored["decile"].unique()) == list(range(1, 11))
    assert pq.read_schema(one).metadata[b"as_of"] == b"2017-07-16"  # the campaign's start
    assert "coupon v1, campaign 14 as of its start 2017-07-16: " in res.stdout
    # --as-of before the start picks the version only: the scores stay as of the start
    picked = tmp_path / "campaign14_picked.parquet"
    res = growth("score", "coupon", "--campaign-id", "14", "--as-of", "2017-07-10", "--data",
                 str(data), "--out", str(picked), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("coupon v1 (the version for data ending by --as-of 2017-07-10), campaign 14 as of "
            "its start 2017-07-16: " in " ".join(res.stdout.split()))
    meta = pq.read_schema(picked).metadata
    assert meta[b"as_of"] == b"2017-07-16" and meta[b"version_as_of"] == b"2017-07-10"
    assert b"version_as_of" not in pq.read_schema(one).metadata
    pd.testing.assert_frame_equal(pd.read_parquet(picked), scored)
    early = ds.df(f"SELECT {s.CAMPAIGN_ID}, {s.START_DATE} FROM {s.CAMPAIGN_DESCRIPTIONS} "
                  f"WHERE {s.START_DATE} < TIMESTAMP '2017-07-10' AND {s.START_DATE} > "
                  f"TIMESTAMP '2017-03-01' ORDER BY 2 LIMIT 1").iloc[0]
    start = pd.Timestamp(early[s.START_DATE]).date()
    with pytest.raises(GrowthError, match=f"ending on or before {start}") as err:
        score_to_file(ds, "coupon", tmp_path / "early.parquet",
                      campaign_id=int(early[s.CAMPAIGN_ID]))
    # A split at its start could score it, but no training campaign starts before the
    # validation fold (60 days by default): the advice says so instead of a command that fails
    assert (f"none can be trained on this data with data ending by {start}, so nothing scores "
            f"as of that day: `growth train coupon --split-date {start} --data {ds.source}` "
            f"stops with: split date {start}: the training campaigns (those starting after "
            "the data's first day 2017-01-01 and before "
            f"{start - timedelta(days=60)}, validation_days 60) need both redeemed and "
            "not-redeemed rows, but no campaign with recipients starts then: use another "
            "--split-date, or change validation_days") in " ".join(str(err.value).split())

    every = tmp_path / "test_campaigns.parquet"
    res = growth("score", "coupon", "--as-of", "2017-07-10", "--data", str(data), "--out",
                 str(every), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    ids = sorted(pd.read_parquet(every)[s.CAMPAIGN_ID].unique())
    assert (f"coupon v1, {len(ids)} campaign(s) starting on or after 2017-07-10 "
            f"({', '.join(map(str, ids[:10]))}" in " ".join(res.stdout.split()))
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_propensity.py"),
                          str(every), "--data", str(data)], cwd=tmp_path, text=True,
                         capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    printed = json.loads(res.stdout.split(" ", 1)[1])
    assert len(pd.read_parquet(every)) > summary["data"]["test_rows"]  # non-recipients too
    assert printed["rows"] == summary["data"]["test_rows"]  # judged on the recipients only
    assert printed["roc_auc"] == pytest.approx(summary["metrics"]["lightgbm"]["roc_auc"],
                                               abs=1e-4)


def test_transactions_only_folder(data: Path, ds, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The main job's block: churn trains from transactions alone; coupon says what is
    missing (and the CLI exits 2 naming the table). Scoring keeps to the data a version was
    trained on and to the data's dates."""
    folder = tmp_path / "tx_only"
    folder.mkdir()
    (folder / f"{s.TRANSACTIONS}.parquet").write_bytes(
        (data / f"{s.TRANSACTIONS}.parquet").read_bytes())
    ds_only = load_dataset(folder, quarantine_dir=tmp_path / "q")
    console = Console(record=True, width=200)
    results = train_standard_models(
        ds_only, DataConfig(churn_as_of=date(2017, 8, 28), churn_horizon_days=28),
        tmp_path / "reports", console)
    assert set(results) == {"churn"} and results["churn"]["data_end"] == "2017-08-28"
    assert results["churn"]["metrics"]["lightgbm"]["roc_auc"] > 0.7
    printed = console.export_text()
    assert "churn v1" in printed and "coupon: skipped" in printed and "campaigns" in printed
    res = growth("train", "coupon", "--data", str(folder), cwd=tmp_path)
    assert res.returncode == 2
    assert "needs table 'campaigns'" in res.stderr and "Traceback" not in res.stderr

    out = tmp_path / "scores.parquet"
    assert len(score_to_file(ds_only, "churn", out, date(2017, 8, 28)).rows) > 0
    # v1 was trained on the transactions-only folder, not on the full one
    with pytest.raises(GrowthError) as err:
        score_to_file(ds, "churn", out, date(2017, 8, 28))
    message = str(err.value)
    assert (f"no version of churn that predicts churn within 28 days trained on "
            f"{data.resolve()}") in message  # the champion's horizon, by default
    assert (f"its versions were trained on other data: {folder.resolve()} (newest v1, data to "
            "2017-08-28)") in message
    # a horizon no version was trained with is never stood in for by another
    with pytest.raises(GrowthError) as err:
        score_to_file(ds_only, "churn", out, date(2017, 8, 28), horizon_days=56)
    assert str(err.value).startswith("no version of churn that predicts churn within 56 days")
    assert "`growth train churn --as-of 2017-08-28 --horizon-days 56 --data " in str(err.value)
    with pytest.raises(GrowthError, match="--horizon-days only applies to the churn model"):
        score_to_file(ds_only, "coupon", out, horizon_days=28)
    # the as-of date must lie within the data
    _, last = ds_only.time_range()
    with pytest.raises(GrowthError, match=f"the as-of date may be from .* to "
                                          f"{last.date() + timedelta(days=1)}"):
        score_to_file(ds_only, "churn", out, last.date() + timedelta(days=2))
    # a frame without a feature the model was trained on: named, with model and version
    real = score.churn_features
    monkeypatch.setattr(score, "churn_features",
                        lambda *a: real(*a).drop(columns=["recency_days"]))
    with pytest.raises(GrowthError) as err:
        score_to_file(ds_only, "churn", out, date(2017, 8, 28))
    assert str(err.value) == (
        f"churn v1 was trained on features that {folder} with this data config does not give: "
        "['recency_days']; pass the --data-config it was trained with (features such as "
        "dept_share_* follow its settings), or train churn on this data and config")


def test_validation_score_for_the_tuner(ds) -> None:
    calls: list[tuple[int, float]] = []
    cfg = load_churn_config(overrides=CHURN)
    value = churn.validation_score(ds, cfg, report=lambda step, v: calls.append((step, v)))
    assert 0 < value <= 1 and calls and all(step % cfg.report_every == 0 for step, _ in calls)
    assert churn.validation_score(ds, cfg) == value  # same seed, same score

    class Pruned(Exception):
        pass

    def prune(step: int, v: float) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        coupon.validation_score(ds, load_coupon_config(overrides=COUPON), report=prune)


def test_a_run_without_a_test_set_says_why(ds, capsys) -> None:
    """--as-of near the data's end: the label window runs past it, so the printed table is
    the validation fold's, and a note says why rather than leaving it to be guessed."""
    from growth.display import print_propensity

    _, last = ds.time_range()
    as_of = last.date() - timedelta(days=7)
    cfg = load_churn_config(overrides=[*CHURN, f"as_of={as_of}"])
    task = churn.training_set(ds, cfg)
    assert task.test is None
    assert task.description["no_test_set"] == (
        f"its 28-day label window from {as_of} runs past the data's last day, {last.date()}")
    assert "no_test_set" not in churn.training_set(ds, load_churn_config(
        overrides=CHURN)).description
    m = {"roc_auc": 0.5, "pr_auc": 0.5, "brier": 0.1, "ece": 0.1, "lift_at_10pct": 1.0,
         "capture_at_10pct": 0.1}
    print_propensity({"model": "churn", "version": 7, "data_end": str(as_of),
                      "promotion": "rejected", "train_seconds": 1.0, "best_iteration": 3,
                      "data": task.description,
                      "metrics": {"lightgbm": {f"val_{k}": v for k, v in m.items()}}},
                     Path("reports"))
    out = " ".join(capsys.readouterr().out.split())
    assert f"churn v7, data to {as_of}: validation set" in out and "gate: rejected" in out
    assert (f"note: no test set: its 28-day label window from {as_of} runs past the data's "
            f"last day, {last.date()}; the table is the validation fold's") in out


def test_settings_the_data_cannot_hold_say_what_to_change(ds) -> None:
    cfg = load_churn_config(overrides=[*CHURN, "step_days=1000"])
    with pytest.raises(GrowthError, match="5 of the cutoffs fall before the data begins .* "
                                          "lower step_days"):
        churn.churn_data(ds, cfg)
    with pytest.raises(GrowthError, match="split date 2030-01-01 is outside the data"):
        coupon.coupon_data(ds, load_coupon_config(overrides=[*COUPON, "split_date=2030-01-01"]))


def test_feature_columns_come_from_what_the_model_may_see(data: Path, tmp_path: Path) -> None:
    """A campaign type first seen at or after the coupon split is no level of the coupon
    model; churn, whose data end later, gets its column at every training cutoff (0 before
    its first campaign, never missing)."""
    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    path = folder / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet"
    descriptions = pd.read_parquet(path)
    late = descriptions[s.START_DATE] >= pd.Timestamp("2017-07-10")
    assert late.any() and (~late).any()
    descriptions.loc[late, s.CAMPAIGN_TYPE] = "Type Z"
    descriptions.to_parquet(path, index=False)
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    coupon_spec = coupon.coupon_data(ds, load_coupon_config(overrides=COUPON)).spec
    assert "Type Z" not in coupon_spec.categories[s.CAMPAIGN_TYPE]
    sets = churn.churn_data(ds, load_churn_config(overrides=CHURN))
    assert sets.train[churn.CUTOFF].min() < pd.Timestamp("2017-07-10")
    column = sets.train["running_campaigns_type_z"]
    assert column.notna().all() and (column[sets.train[churn.CUTOFF] <= pd.Timestamp(
        "2017-07-10")] == 0).all()
    assert "running_campaigns_type_z" in sets.spec.names


def test_a_fold_of_one_class_is_a_one_line_error(data: Path, tmp_path: Path) -> None:
    """No purchase in the validation window: every household churned there, which no
    calibration can learn from; the error says which fold and what to move."""
    import pyarrow.parquet as pq

    folder = tmp_path / "gap"
    folder.mkdir()
    tx = pq.read_table(data / f"{s.TRANSACTIONS}.parquet").to_pandas()
    ts = pd.to_datetime(tx[s.TRANSACTION_TIMESTAMP])
    quiet = (ts >= "2017-07-31") & (ts < "2017-08-28")  # the validation window below
    tx[~quiet].to_parquet(folder / f"{s.TRANSACTIONS}.parquet")
    gap = load_dataset(folder, quarantine_dir=tmp_path / "q")
    with pytest.raises(GrowthError) as err:
        train_churn(gap, load_churn_config(overrides=CHURN), tmp_path / "reports")
    assert str(err.value).startswith(
        "churn as of 2017-08-28: the validation cutoff 2017-07-31 need both churned and "
        "retained households; ")
    assert str(err.value).endswith(": move --as-of")


def test_train_takes_its_dates_from_the_data_config(data: Path, ds, tmp_path: Path) -> None:
    """`growth train` uses the data config's standard dates (fitted to the data, as `growth
    run` does) unless --as-of / --set give them: pinning them in --data-config works."""
    pinned = tmp_path / "mydata.yaml"
    pinned.write_text("churn_as_of: 2017-08-14\nchurn_horizon_days: 28\n")
    sets = [a for v in CHURN if not v.startswith(("as_of", "horizon_days"))
            for a in ("--set", v)]
    res = growth("train", "churn", "--data", str(data), "--data-config", str(pinned),
                 *sets, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "reports" / "churn" / "metrics.json").read_text())
    assert summary["data_end"] == "2017-08-14"
    assert summary["data"]["validation_cutoff"] == "2017-07-17"  # the pinned 28-day horizon
    # the data config's default date (2017-11-06) does not fit this data: fitted, and said
    res = growth("train", "churn", "--data", str(data), *sets, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dates: churn_as_of 2017-11-06 does not fit data from" in " ".join(
        res.stdout.split())
    # a horizon given without a date: the fitted date leaves that horizon's window in the data
    res = growth("train", "churn", "--data", str(data), "--horizon-days", "28", *sets,
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    _, last = ds.time_range()
    summary = json.loads((tmp_path / "reports" / "churn" / "metrics.json").read_text())
    assert summary["data_end"] == (last.date() + timedelta(days=1 - 28)).isoformat()
    # --as-of still decides
    res = growth("train", "churn", "--data", str(data), "--as-of", "2017-08-28",
                 "--horizon-days", "28", *sets, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dates:" not in res.stdout
    summary = json.loads((tmp_path / "reports" / "churn" / "metrics.json").read_text())
    assert summary["data_end"] == "2017-08-28"


def test_campaigns_after_the_data_are_neither_tested_nor_scored(data: Path,
                                                                tmp_path: Path) -> None:
    """A planned campaign (it starts after the last transaction) has no outcome and no
    features as of its start yet: left out of the test set (and said so), of multi-campaign
    scoring, and refused by name when asked for."""
    import shutil

    folder = tmp_path / "planned"
    shutil.copytree(data, folder)
    base = load_dataset(data, quarantine_dir=tmp_path / "q0")
    _, last = base.time_range()
    descriptions = pd.read_parquet(folder / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet")
    row = descriptions.iloc[[-1]].copy()
    row[s.CAMPAIGN_ID] = 999
    row[s.START_DATE] = pd.Timestamp(last.date() + timedelta(days=10))
    row[s.END_DATE] = pd.Timestamp(last.date() + timedelta(days=40))
    pd.concat([descriptions, row], ignore_index=True).to_parquet(
        folder / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet")
    campaigns = pd.read_parquet(folder / f"{s.CAMPAIGNS}.parquet")
    planned = campaigns.iloc[:20].copy().assign(**{s.CAMPAIGN_ID: 999})
    pd.concat([campaigns, planned], ignore_index=True).to_parquet(
        folder / f"{s.CAMPAIGNS}.parquet")
    ds_planned = load_dataset(folder, quarantine_dir=tmp_path / "q")

    sets = coupon.training_set(ds_planned, load_coupon_config(overrides=COUPON))
    assert sets.description["after_data_campaigns"] == [999]
    assert 999 not in sets.description["test_campaigns"]
    reference = coupon.training_set(base, load_coupon_config(overrides=COUPON))
    assert sets.description["test_campaigns"] == reference.description["test_campaigns"]
    assert score.campaigns_to_score(ds_planned, date(2017, 7, 10), None)[
        s.CAMPAIGN_ID].max() < 999
    with pytest.raises(GrowthError, match="campaign 999's start .* is outside the data"):
        score_to_file(ds_planned, "coupon", tmp_path / "c.parquet", campaign_id=999)


def test_no_training_cutoff_names_a_setting_that_gives_one(ds) -> None:
    """`growth train churn --as-of 2017-03-01` was told to lower step_days, which cannot help
    when two horizons do not fit after the data's first day: each branch's advice, followed,
    gives a training cutoff."""
    import re

    first = ds.time_range()[0].date()
    too_early = first + timedelta(days=40)  # 28-day horizon: the newest cutoff is first - 16
    with pytest.raises(GrowthError) as err:
        churn.churn_data(ds, load_churn_config(overrides=[*CHURN, f"as_of={too_early}"]))
    msg = str(err.value)
    assert "lowering step_days cannot help" in msg and "lower step_days" not in msg
    later = re.search(r"a later --as-of \((\S+) is the first that gives one\)", msg)[1]
    shorter = re.search(r"a shorter --horizon-days \((\d+) is the longest that gives one\)",
                        msg)[1]
    assert date.fromisoformat(later) > too_early and 0 < int(shorter) < 28
    for fix in ([f"as_of={later}"], [f"as_of={too_early}", f"horizon_days={shorter}"]):
        assert churn.churn_data(ds, load_churn_config(overrides=[*CHURN, *fix])).train.size

    # too few cutoffs to reach past the validation window: raise n_cutoffs (to 5 at 28/7)
    weekly = [*CHURN, "step_days=7"]
    with pytest.raises(GrowthError, match="overlaps the validation window; raise n_cutoffs to "
                                          "5 or more$"):
        churn.churn_data(ds, load_churn_config(overrides=[*weekly, "n_cutoffs=4"]))
    assert churn.churn_data(ds, load_churn_config(overrides=[*weekly, "n_cutoffs=5"])).train.size

    # steps over the days a training cutoff can take: the example settings give one
    with pytest.raises(GrowthError) as err:
        churn.churn_data(ds, load_churn_config(overrides=[*CHURN, "step_days=1000"]))
    step, n = re.search(r"lower step_days to \d+ or less, .*\(e\.g\. step_days=(\d+), "
                        r"n_cutoffs=(\d+)\)$", str(err.value)).groups()
    assert churn.churn_data(ds, load_churn_config(
        overrides=[*CHURN, f"step_days={step}", f"n_cutoffs={n}"])).train.size
