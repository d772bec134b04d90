"""Runs side by side, from MLflow: ``growth compare [MODEL] [--last N] [--format csv]``.

A training run evaluates our model and its baselines on the same split and logs each
system's metrics as ``<system>.<metric>`` (``two_tower_blend.recall_all_at_20``,
``lightgbm.roc_auc``); metrics without a dot belong to the run (``train_seconds``). The
comparison has one row per (run, system): the run's registered version and whether it holds
``@champion``, where its training data ends and which data it read (runs on different data
are not comparable: the table prints one section per data source), a few key parameters and
run metrics, then the system's metrics. Which columns are key is a small per-model choice
(:data:`COLUMNS`); any other model gets the metrics its systems share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from features.sources import GrowthError
from training import registry
from training.tracking import tracking_uri

MAX_METRICS = 6  # fallback: at most this many metric columns
RUN_FIELDS = ("run_id", "run_name", "started", "version", "champion", "data_end",
              "data_source")


@dataclass(frozen=True)
class Columns:
    params: tuple[str, ...] = ()  # logged parameters shown per run
    run_metrics: tuple[str, ...] = ()  # metrics without a system prefix
    metrics: tuple[str, ...] = ()  # per system; empty: those the systems share
    ours: tuple[str, ...] = ()  # our systems, listed before the baselines
    # Every field above is in the frame (and the CSV); so the table fits a 140-column log,
    # these params show in it only when a listed run departs from the usual value given,
    usual: tuple[tuple[str, str], ...] = ()
    # these only when the listed runs do not all share one value,
    varies: tuple[str, ...] = ()
    # ... and these metrics never do
    csv_only: tuple[str, ...] = ()
    # metrics shown to 6 decimals: the gate's, whose decisions turn on small differences
    precise: tuple[str, ...] = ()


# Parameters that say what a run is come first (label horizon, seed, trainer), then the tuned
# ones. as_of (churn, two_tower) and split_date (coupon) are not repeated: they are the run's
# data_end tag, the table's "data ends".
_PROPENSITY = Columns(
    params=("seed", "trainer", "learning_rate", "num_leaves", "min_data_in_leaf",
            "feature_fraction", "bagging_fraction", "lambda_l2", "linear_weight"),
    run_metrics=("train_seconds",),
    # val_pr_auc: what the promotion gate compares (ours against the champion and baselines)
    metrics=("val_pr_auc", "roc_auc", "pr_auc", "brier", "ece", "lift_at_10pct"),
    ours=("lightgbm",),
    usual=(("trainer", "local"), ("linear_weight", "0.0")),
    varies=("bagging_fraction", "lambda_l2"),  # tuned, but rarely moved by hand
    csv_only=("brier", "ece"),  # calibration; the table compares ranking
    precise=("val_pr_auc",),
)
COLUMNS: dict[str, Columns] = {
    "two_tower": Columns(
        params=("seed", "dim", "lr", "temperature", "batch_size"),
        run_metrics=("best_val_recall_at_20", "train_seconds"),
        # recall_new_at_20: new items in the list shown by default (repeat purchases too);
        # ..._exclude_purchased: in the list without products the household bought, the
        # figure the new-item target is judged on (only our blend logs it)
        metrics=("recall_all_at_20", "recall_new_at_20", "recall_new_at_20_exclude_purchased",
                 "ndcg_all_at_20", "hit_rate_all_at_20"),
        ours=("two_tower_blend", "two_tower_only"),
        csv_only=("hit_rate_all_at_20",),
    ),
    "churn": replace(_PROPENSITY, params=("horizon_days", *_PROPENSITY.params)),
    "coupon": _PROPENSITY,
}


# short column headings, so a comparison fits a 140-column log; other names show as they are
LABELS = {
    "recall_all_at_20": "recall@20", "recall_new_at_20": "new@20 mixed",
    "recall_new_at_20_exclude_purchased": "new@20 excl bought", "ndcg_all_at_20": "NDCG@20",
    "horizon_days": "horizon", "seed": "seed", "trainer": "fit",
    "hit_rate_all_at_20": "hit@20", "best_val_recall_at_20": "val rec@20",
    "train_seconds": "train s", "temperature": "temp", "batch_size": "batch",
    "history_half_life_days": "half-life", "learning_rate": "lr", "num_leaves": "leaves",
    "min_data_in_leaf": "min leaf", "feature_fraction": "feat frac", "lift_at_10pct": "lift 10%",
    "val_pr_auc": "val PR-AUC", "roc_auc": "test ROC-AUC", "pr_auc": "test PR-AUC",
    "brier": "Brier", "ece": "ECE", "linear_weight": "lin w",
}


# the logged trainer param, as the table and CSV show it
TRAINERS = {"lightgbm": "local", "lightgbm.dask": "dask"}  # dask: --dask-scheduler


def label(name: str) -> str:
    return LABELS.get(name, name)


def split_metrics(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, dict]]:
    """Run-level metrics, and per system (the prefix before the first dot) its metrics."""
    run: dict[str, float] = {}
    systems: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        system, dot, name = key.partition(".")
        if dot:
            systems.setdefault(system, {})[name] = value
        else:
            run[key] = value
    return run, systems


def _shared_metrics(runs: list[Run]) -> tuple[str, ...]:
    """Metric names every system of every run has, in first-seen order, at most MAX_METRICS."""
    common: list[str] | None = None
    for run in runs:
        for metrics in split_metrics(run.data.metrics)[1].values():
            common = list(metrics) if common is None else [m for m in common if m in metrics]
    return tuple((common or [])[:MAX_METRICS])


def _system_order(systems: dict[str, dict], ours: tuple[str, ...]) -> list[str]:
    first = [s for s in ours if s in systems]
    return first + sorted(s for s in systems if s not in first)


def _evaluated_runs(client: MlflowClient, experiment_id: str, last: int) -> list[Run]:
    """The newest ``last`` finished top-level runs that logged ``<system>.<metric>``s
    (tuning trials and runs that evaluated nothing are left out)."""
    found: list[Run] = []
    page_token = None
    while len(found) < last:
        page = client.search_runs([experiment_id], "attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], page_token=page_token)
        found.extend(r for r in page if MLFLOW_PARENT_RUN_ID not in r.data.tags
                     and split_metrics(r.data.metrics)[1])
        page_token = page.token
        if not page_token:
            break
    return found[:last]


def _param(run: Run, name: str) -> str | None:
    value = run.data.params.get(name)
    return TRAINERS.get(value, value) if name == "trainer" and value else value


def _departs(value: str | None, usual: str) -> bool:
    """Whether a logged parameter differs from its usual value ("0" and "0.0" do not)."""
    if value is None:
        return False
    try:
        return float(value) != float(usual)
    except ValueError:
        return value != usual


def _table_columns(cols: Columns, runs: list[Run]) -> Columns:
    """The columns the table shows: ``cols`` less its ``csv_only`` metrics and the ``usual``
    params every listed run has at their usual value."""
    usual = dict(cols.usual)
    params = tuple(p for p in cols.params
                   if (p not in usual or any(_departs(_param(r, p), usual[p]) for r in runs))
                   and (p not in cols.varies or len({_param(r, p) for r in runs}) > 1))
    return Columns(params, cols.run_metrics,
                   tuple(m for m in cols.metrics if m not in cols.csv_only), cols.ours,
                   precise=cols.precise)


def experiments() -> list[str]:
    """Experiments holding model runs: not MLflow's Default, not tuning sessions."""
    names = [e.name for e in MlflowClient(tracking_uri()).search_experiments()]
    return sorted(n for n in names if n != "Default" and not n.endswith("_tuning"))


def compare_runs(model: str, last: int = 10) -> tuple[pd.DataFrame, Columns]:
    """One row per (run, system) for the newest ``last`` finished runs of experiment
    ``model`` that evaluated systems (newest first), and the columns its table shows
    (:func:`_table_columns`; the frame has all of :data:`COLUMNS`).

    Row fields: run_id, run_name, started (UTC), version and champion (of the version the
    run registered; None/False when it registered none), data_end, data_source (None for
    runs logged before it was recorded), then ``param.<name>`` (``param.trainer``: local or
    dask, :data:`TRAINERS`),
    ``run.<metric>``, system and the system's metrics.
    """
    client = MlflowClient(tracking_uri())
    experiment = client.get_experiment_by_name(model)
    if experiment is None:
        known = ", ".join(experiments()) or "none yet"
        raise GrowthError(f"no runs of {model!r} in MLflow ({tracking_uri()}); "
                          f"models with runs: {known}")
    runs = _evaluated_runs(client, experiment.experiment_id, last)
    cols = COLUMNS.get(model, Columns())
    if not cols.metrics:
        cols = replace(cols, metrics=_shared_metrics(runs))
    versions = {v["run_id"]: v for name in registry.registered_models()
                for v in registry.list_versions(name)}
    rows = []
    for run in runs:
        run_metrics, systems = split_metrics(run.data.metrics)
        version = versions.get(run.info.run_id, {})
        head = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "started": datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC)
            .strftime("%Y-%m-%d %H:%M"),
            "version": version.get("version"),
            "champion": bool(version.get("champion")),
            "data_end": run.data.tags.get(registry.DATA_END_TAG)
            or version.get(registry.DATA_END_TAG),
            "data_source": run.data.tags.get(registry.DATA_SOURCE_TAG)
            or version.get(registry.DATA_SOURCE_TAG),
            **{f"param.{p}": _param(run, p) for p in cols.params},
            **{f"run.{m}": run_metrics.get(m) for m in cols.run_metrics},
        }
        for system in _system_order(systems, cols.ours):
            rows.append({**head, "system": system,
                         **{m: systems[system].get(m) for m in cols.metrics}})
    columns = [*RUN_FIELDS, *(f"param.{p}" for p in cols.params),
               *(f"run.{m}" for m in cols.run_metrics), "system", *cols.metrics]
    return pd.DataFrame(rows, columns=columns), _table_columns(cols, runs)
