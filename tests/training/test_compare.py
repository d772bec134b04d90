"""``growth compare``: runs logged through the registry helpers, compared side by side.

The metric values are made up: these tests check the table (grouping by system, column
choice, champion mark, run selection), not a model.
"""

from __future__ import annotations

import io
import time
from datetime import date

import mlflow
import pandas as pd
import pytest

from features.sources import GrowthError
from tests.test_models_cli import growth
from tests.training.test_registry import _migrated_db, _store  # noqa: F401  (fast MLflow store)
from training import registry
from training.compare import compare_runs

SYSTEMS = ("popularity", "two_tower_only", "buy_again", "two_tower_blend")


def log_run(experiment: str, metrics: dict[str, float], params: dict[str, str] | None = None,
            data_end: date = date(2017, 6, 5), register_as: str | None = None,
            gate: str | None = None, source: str = "synthetic") -> str:
    """A finished tracked run with ``metrics``, optionally registered and gated on ``gate``."""
    with registry.tracked_run(experiment, "train", params=params,
                              tags={registry.DATA_END_TAG: data_end.isoformat(),
                                    registry.DATA_SOURCE_TAG: source}) as run:
        mlflow.log_metrics(metrics)
        mlflow.log_text("weights", "model/readme.txt")
    if register_as:
        version = registry.register_version(register_as, run.info.run_id, "model", data_end,
                                            source, {gate: metrics[gate]})
        registry.promote_if_better(register_as, version, gate)
    time.sleep(0.01)  # distinct start times: the comparison sorts by them
    return run.info.run_id


def two_tower_metrics(level: float, skip: tuple[str, ...] = ()) -> dict[str, float]:
    out = {"best_val_recall_at_20": level, "train_seconds": 12.5}
    for i, system in enumerate(SYSTEMS):
        for name in ("recall_all_at_20", "ndcg_all_at_20", "hit_rate_all_at_20"):
            if f"{system}.{name}" not in skip:
                out[f"{system}.{name}"] = level + i / 100
    return out


def test_two_tower_runs_side_by_side() -> None:
    params = {"dim": "64", "lr": "0.003", "unrelated": "x"}
    old = log_run("two_tower", two_tower_metrics(0.20), params, date(2017, 5, 1),
                  "two_tower", "best_val_recall_at_20")
    new = log_run("two_tower", two_tower_metrics(0.25, ("popularity.hit_rate_all_at_20",)),
                  params, date(2017, 6, 5), "two_tower", "best_val_recall_at_20")
    with registry.tracked_run("two_tower", "tuning-like parent"):  # children are not compared
        with registry.tracked_run("two_tower", "child", nested=True):
            mlflow.log_metrics({"two_tower_blend.recall_all_at_20": 0.9})
    with pytest.raises(RuntimeError), registry.tracked_run("two_tower", "crashed"):
        raise RuntimeError("unfinished runs are not compared either")

    frame, cols = compare_runs("two_tower", last=2)
    assert frame["run_id"].unique().tolist() == [new, old]  # newest first
    rows = frame[frame["run_id"] == new]
    assert rows["system"].tolist() == ["two_tower_blend", "two_tower_only", "buy_again",
                                       "popularity"]  # ours first, then baselines by name
    assert rows["champion"].all() and not frame[frame["run_id"] == old]["champion"].any()
    assert rows["version"].tolist() == [2] * 4 and rows["data_end"].iloc[0] == "2017-06-05"
    blend = rows.set_index("system").loc["two_tower_blend"]
    assert blend["recall_all_at_20"] == pytest.approx(0.28)  # SYSTEMS index 3
    assert blend["param.dim"] == "64" and blend["run.best_val_recall_at_20"] == 0.25
    assert pd.isna(rows.set_index("system").loc["popularity", "hit_rate_all_at_20"])
    assert "recall_new_at_20" in cols.metrics and "param.unrelated" not in frame.columns
    assert compare_runs("two_tower", last=1)[0]["run_id"].unique().tolist() == [new]


def test_other_models_get_the_metrics_their_systems_share() -> None:
    log_run("uplift", {"lightgbm.roc_auc": 0.9, "lightgbm.pr_auc": 0.5, "lightgbm.brier": 0.1,
                       "rfm_logistic.roc_auc": 0.8, "rfm_logistic.pr_auc": 0.4,
                       "train_seconds": 3.0})
    frame, cols = compare_runs("uplift")
    assert cols.metrics == ("roc_auc", "pr_auc")
    assert frame["system"].tolist() == ["lightgbm", "rfm_logistic"]
    assert frame["version"].isna().all()  # registered nothing
    with pytest.raises(GrowthError, match="no runs of 'nope'.*models with runs: uplift"):
        compare_runs("nope")


def test_compare_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    log_run("two_tower", two_tower_metrics(0.20), {"dim": "32"}, date(2017, 5, 1),
            "two_tower", "best_val_recall_at_20")
    log_run("two_tower", two_tower_metrics(0.25), {"dim": "64"}, date(2017, 6, 5),
            "two_tower", "best_val_recall_at_20")
    log_run("uplift", {"lightgbm.roc_auc": 0.9, "baseline.roc_auc": 0.8})

    code, out, err = growth(monkeypatch, capsys, "compare", "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert set(table["model"]) == {"two_tower", "uplift"}
    assert len(table) == 2 * len(SYSTEMS) + 2
    champion = table[table["champion"]]
    assert set(champion["param.dim"]) == {64} and set(champion["version"]) == {2}

    code, out, err = growth(monkeypatch, capsys, "compare", "two_tower")
    assert code == 0, err
    assert "v2 *" in out and "v1 *" not in out and "two_tower_blend" in out and "0.2800" in out
    assert "uplift" not in out

    code, _, err = growth(monkeypatch, capsys, "compare", "nope")  # other experiments too
    assert code == 2 and "expected two_tower, churn, coupon or uplift, got 'nope'" in " ".join(
        err.replace("│", " ").split()), err


def test_runs_on_other_data_are_compared_apart(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    """A run on another shop's data (here a better-looking one) is not set beside the
    champion's: one table per data source, and a data_source column in the CSV."""
    log_run("two_tower", two_tower_metrics(0.20), {"dim": "32"}, date(2017, 5, 1),
            "two_tower", "best_val_recall_at_20", source="/data/shop-a")
    log_run("two_tower", two_tower_metrics(0.60), {"dim": "64"}, date(2017, 6, 5),
            "two_tower", "best_val_recall_at_20", source="/data/shop-b")
    code, out, err = growth(monkeypatch, capsys, "compare", "two_tower")
    assert code == 0, err
    assert growth(monkeypatch, capsys, "compare", "two-tower") == (0, out, err)  # as train
    a, b = out.index("two_tower on /data/shop-a"), out.index("two_tower on /data/shop-b")
    assert b < a  # newest run's data first
    assert "0.6300" in out[b:a] and "0.2300" in out[a:]  # two_tower_blend of each run
    assert "v1 *" in out[a:] and "v2" in out[b:a] and "v2 *" not in out  # not comparable
    code, out, err = growth(monkeypatch, capsys, "compare", "two_tower", "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert set(table["data_source"]) == {"/data/shop-a", "/data/shop-b"}
    assert set(table.loc[table["data_source"] == "/data/shop-b", "version"]) == {2}


def test_experiment_without_evaluated_runs_says_so(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    with registry.tracked_run("churn", "evaluated nothing"):
        mlflow.log_metric("train_seconds", 1.0)
    code, out, err = growth(monkeypatch, capsys, "compare", "churn")
    assert code == 0, err
    assert "churn: no finished run has evaluated a model yet" in " ".join(out.split())


def test_propensity_table_shows_every_figure_whole(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    """The churn table fits a 140-column log without cutting a figure short,
    and shows the validation PR-AUC the promotion gate compared."""
    systems = {"lightgbm": 0.4893, "days_since_last": 0.4367, "rfm_logistic": 0.4845}
    metrics = {"train_seconds": 9.3595}
    for i, (system, val) in enumerate(systems.items()):
        metrics.update({f"{system}.val_pr_auc": val, f"{system}.roc_auc": 0.8811 + i / 100,
                        f"{system}.pr_auc": 0.4729 + i / 100, f"{system}.brier": 0.0664,
                        f"{system}.ece": 0.0059, f"{system}.lift_at_10pct": 4.951})
    metrics["val_pr_auc"] = systems["lightgbm"]
    params = {"learning_rate": "0.03", "num_leaves": "15", "min_data_in_leaf": "300",
              "feature_fraction": "0.5", "linear_weight": "0.0"}
    log_run("churn", metrics, params, date(2017, 11, 6), "churn", "val_pr_auc")
    code, out, err = growth(monkeypatch, capsys, "compare", "churn")
    assert code == 0, err
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 140
    assert "v1 *" in out and "9.4" in out and "4.9510" in out
    for system, val in systems.items():  # the gate's metric to 6 decimals, the rest to 4
        assert any(system in line and f"{val:.6f}" in line for line in out.splitlines())
    assert "0.8811 " in out and "0.881100" not in out


def _row(out: str, run_id: str) -> list[str]:
    """The cells of a run's first table row (run fields, system, metrics), split on blanks."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [run_id[:8]])


def test_runs_show_what_defines_them(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    """Churn runs with other label horizons, seeds or trainers say so (a walkthrough saw the
    same parameter columns beside very different metrics); the table still fits 140 columns.
    The trainer shows as local/dask, and only when a listed run used dask; linear_weight only
    when one is non-zero; Brier and ECE are in the CSV only."""
    tuned = {"learning_rate": "0.03", "num_leaves": "15", "min_data_in_leaf": "300",
             "feature_fraction": "0.5", "linear_weight": "0.0", "as_of": "2017-11-06"}
    metrics = {"train_seconds": 9.3595}
    for i, system in enumerate(("lightgbm", "days_since_last", "rfm_logistic")):
        metrics.update({f"{system}.val_pr_auc": 0.4893 - i / 100, f"{system}.roc_auc": 0.8811,
                        f"{system}.pr_auc": 0.4729, f"{system}.brier": 0.0664,
                        f"{system}.ece": 0.0059, f"{system}.lift_at_10pct": 4.951})
    local = log_run("churn", metrics, {**tuned, "horizon_days": "42", "seed": "0",
                                       "trainer": "lightgbm"}, date(2017, 11, 6))
    dask = log_run("churn", metrics, {**tuned, "horizon_days": "14", "seed": "3",
                                      "trainer": "lightgbm.dask"}, date(2017, 11, 6))
    code, out, err = growth(monkeypatch, capsys, "compare", "churn")
    assert code == 0, err
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 140
    heads = " ".join(out.split())
    assert "data ends horizon seed fit lr leaves" in heads
    assert "lin w" not in out and "Brier" not in out and "ECE" not in out
    assert _row(out, dask)[3:7] == ["14", "3", "dask", "0.03"]
    assert _row(out, local)[3:7] == ["42", "0", "local", "0.03"]

    code, out, err = growth(monkeypatch, capsys, "compare", "churn", "--format", "csv")
    assert code == 0, err
    table = pd.read_csv(io.StringIO(out))
    assert set(table["param.trainer"]) == {"local", "dask"}
    assert set(table["param.horizon_days"]) == {42, 14} and set(table["param.seed"]) == {0, 3}
    assert {"param.linear_weight", "brier", "ece"} <= set(table.columns)

    log_run("churn", metrics, {**tuned, "horizon_days": "56", "seed": "0",
                               "trainer": "lightgbm", "linear_weight": "0.5"}, date(2017, 11, 6))
    frame, cols = compare_runs("churn")
    assert cols.params == ("horizon_days", "seed", "trainer", "learning_rate", "num_leaves",
                           "min_data_in_leaf", "feature_fraction", "linear_weight")
    assert compare_runs("churn", last=1)[1].params == (
        "horizon_days", "seed", "learning_rate", "num_leaves", "min_data_in_leaf",
        "feature_fraction", "linear_weight")  # no dask run among those listed

    # bagging_fraction and lambda_l2 (tuned) show when the listed runs differ in them
    tuned_l2 = log_run("churn", metrics, {**tuned, "horizon_days": "56", "seed": "0",
                                          "trainer": "lightgbm", "lambda_l2": "50.0",
                                          "bagging_fraction": "0.8"}, date(2017, 11, 6))
    frame, cols = compare_runs("churn")
    assert {"lambda_l2", "bagging_fraction"} <= set(cols.params)
    assert frame.loc[frame["run_id"] == tuned_l2, "param.lambda_l2"].iloc[0] == "50.0"
    assert not {"lambda_l2", "bagging_fraction"} & set(compare_runs("churn", last=1)[1].params)
    assert "param.lambda_l2" in compare_runs("churn", last=1)[0].columns  # the CSV has it


def test_coupon_and_two_tower_show_their_seed() -> None:
    log_run("coupon", {"lightgbm.roc_auc": 0.9},
            {"seed": "1", "split_date": "2017-08-01", "linear_weight": "0.5"})
    frame, cols = compare_runs("coupon")
    assert cols.params[:1] == ("seed",) and "horizon_days" not in cols.params
    assert "linear_weight" in cols.params and frame["param.seed"].tolist() == ["1"]
    log_run("two_tower", two_tower_metrics(0.2), {"seed": "7", "as_of": "2017-06-05"})
    frame, cols = compare_runs("two_tower")
    assert cols.params[0] == "seed" and set(frame["param.seed"]) == {"7"}


def test_two_tower_shows_new_item_recall_without_purchased(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The new-item target is judged on the list without purchased products
    (recall_new_at_20_exclude_purchased, only our blend has it), not on the mixed list's
    recall of new items: both show, headed apart."""
    metrics = two_tower_metrics(0.15)
    for system in SYSTEMS:
        metrics[f"{system}.recall_new_at_20"] = 0.0037 if system == "two_tower_blend" else 0.0212
    metrics["two_tower_blend.recall_new_at_20_exclude_purchased"] = 0.036513917
    run = log_run("two_tower", metrics, {"seed": "0", "dim": "64", "lr": "0.0005",
                                         "temperature": "0.05", "batch_size": "2048"})
    code, out, err = growth(monkeypatch, capsys, "compare", "two_tower")
    assert code == 0, err
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 140
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("run "))
    assert lines[head - 2].split() == ["new@20"]  # headings wrap at blanks
    assert lines[head - 1].split()[-2:] == ["new@20", "excl"]
    assert lines[head].split()[-4:] == ["recall@20", "mixed", "bought", "NDCG@20"]
    blend = _row(out, run)
    assert blend[blend.index("two_tower_blend") + 2:][:2] == ["0.0037", "0.0365"]
    popularity = next(line.split() for line in lines if " popularity " in line)
    assert popularity[2:4] == ["0.0212", "-"]  # a baseline has no exclude_purchased list
    frame, cols = compare_runs("two_tower")
    assert cols.metrics.index("recall_new_at_20_exclude_purchased") == 2


def test_unknown_model_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    """`growth compare Default` (MLflow's own experiment) or a typo is a usage error naming
    the choices (exit 2), not an empty table; two-tower is two_tower (as `growth train`)."""
    log_run("two_tower", two_tower_metrics(0.2))
    for name in ("Default", "default", "two_tower_tuning", "nope"):
        code, out, err = growth(monkeypatch, capsys, "compare", name)
        assert code == 2 and out == "", (name, out)
        assert "Invalid value for MODEL: expected two_tower, churn or coupon, got " \
               f"'{name}'" in " ".join(err.replace("│", " ").split()), err
    assert growth(monkeypatch, capsys, "compare", "two-tower")[0] == 0


def test_durations_read_in_one_format() -> None:
    """`train s` mixed 7.2281 with 174.1."""
    from growth.display import _seconds

    assert [_seconds(v) for v in (7.2281, 174.1, 0.04, "12.345", None, float("nan"))] == [
        "7.2", "174.1", "0.0", "12.3", "-", "-"]
