"""Tracked runs: ``growth train churn`` and ``growth train coupon``.

One run fits the booster (early stopping on the time-based validation fold) and, when the
config's ``linear_weight`` is above 0, the linear part it is blended with, fits the
calibrator on that fold, fits the baselines on the same training rows, evaluates all of them
on the validation fold and the test set, logs params, metrics (``<system>.<metric>`` for the
test set, ``<system>.val_<metric>`` for the validation fold), plots, global importance and
per-row reason codes to MLflow, writes ``reports/<model>/metrics.json``, registers a version
whose data ends at ``as_of`` (churn) or the split date (coupon), and moves ``@champion`` only
when the version beats the champion and every baseline on validation PR-AUC, the champion
re-scored on this run's validation rows (see ``registry.promote_if_better``).

The served booster is the one early stopping chose, not a refit on the validation fold too:
the calibrator was fitted on exactly its validation predictions, so they stay consistent.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from rich.console import Console

from features.config import DataConfig
from features.dataset import Dataset
from features.sources import GrowthError
from training import registry
from training.propensity import churn, coupon
from training.propensity.bundle import PropensityModel, fit_propensity, gate_value
from training.propensity.config import ChurnConfig, CouponConfig, PropensityConfig
from training.propensity.evaluate import binary_report, calibration_plot, gain_chart
from training.propensity.gbdt import MissingFeatures, check_scheduler
from training.propensity.reasons import global_importance
from training.propensity.task import GATE_METRIC, TrainingSet

OURS = "lightgbm"


def _evaluate(task: TrainingSet, model: PropensityModel, cfg: PropensityConfig
              ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Metrics per system (validation metrics prefixed ``val_``) and the scores behind them."""
    scores: dict[str, dict[str, np.ndarray]] = {"valid": {}, "test": {}}
    sets = {"valid": task.valid, "test": task.test}
    for part, frame in sets.items():
        if frame is not None:
            scores[part][OURS] = model.predict(frame)
    for baseline in task.baselines:
        baseline.fit(task.train, task.train[task.label].to_numpy())
        for part, frame in sets.items():
            if frame is not None:
                scores[part][baseline.name] = baseline.predict(frame)
    metrics: dict[str, dict[str, float]] = {}
    for part, frame in sets.items():
        if frame is None:
            continue
        y = frame[task.label].to_numpy()
        prefix = "val_" if part == "valid" else ""
        for system, p in scores[part].items():
            report = binary_report(y, p, cfg.ece_bins, cfg.top_fraction)
            metrics.setdefault(system, {}).update({prefix + k: v for k, v in report.items()})
    return metrics, scores


def _plots(task: TrainingSet, scores: dict[str, dict[str, np.ndarray]], cfg: PropensityConfig,
           folder: Path) -> list[Path]:
    part = "test" if task.test is not None else "valid"
    frame = task.test if task.test is not None else task.valid
    y = frame[task.label].to_numpy()
    title = f"{task.model_name}: {part} set ({len(y):,} rows, {y.mean():.1%} positive)"
    gain, calib = folder / "gain_chart.png", folder / "calibration.png"
    gain_chart(y, scores[part], gain, title)
    calibration_plot(y, scores[part], calib, title, cfg.ece_bins)
    return [gain, calib]


def _rescorer(task: TrainingSet) -> registry.Rescore:
    """The gate's ``rescore``: a registered version's ``GATE_METRIC`` on this run's
    validation rows, or None when it cannot read them (it was trained on other features, or
    its files are not a propensity model's)."""
    y = task.valid[task.label].to_numpy()

    def rescore(version: int) -> float | None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = mlflow.artifacts.download_artifacts(
                artifact_uri=registry.version_artifact_uri(task.model_name, version),
                dst_path=tmp)
            try:
                model = PropensityModel.load(Path(folder))
            except (FileNotFoundError, ValueError):
                return None
        try:
            return gate_value(y, model.raw(task.valid))
        except MissingFeatures:
            return None

    return rescore


def train_propensity(task: TrainingSet, cfg: PropensityConfig, source: str, reports_dir: Path,
                     scheduler_address: str | None = None,
                     started: float | None = None) -> dict[str, Any]:
    """Fit, calibrate, evaluate, log, register and gate one version trained on data
    ``source`` (``Dataset.source``); returns a summary. ``train_seconds`` counts from
    ``started`` (``time.perf_counter()``; default: now), so a caller can include building
    the training set."""
    started = time.perf_counter() if started is None else started
    name = task.model_name
    registry.setup(name)
    params = {k: str(v) for k, v in cfg.model_dump().items()}
    params.update({k: json.dumps(v) if isinstance(v, list) else str(v)
                   for k, v in task.description.items()})
    params.update({"features": str(len(task.spec.names)),
                   "trainer": "lightgbm.dask" if scheduler_address else "lightgbm"})
    horizon = getattr(cfg, "horizon_days", None)  # churn's: part of what it predicts
    run_name = f"{name}_{task.data_end}{f'_{horizon}d' if horizon else ''}_seed{cfg.seed}"
    with registry.tracked_run(name, run_name, params=params,
                              tags={registry.DATA_END_TAG: task.data_end.isoformat(),
                                    registry.DATA_SOURCE_TAG: source}) as run:
        model, fit, gate_value = fit_propensity(
            task.train, task.valid, task.label, task.spec, cfg,
            meta={"model_name": name, "data_end": task.data_end.isoformat(),
                  "config": cfg.model_dump(mode="json"), "keys": list(task.keys),
                  "run_id": run.info.run_id},
            scheduler_address=scheduler_address)
        model.meta["best_iteration"] = fit.best_iteration
        metrics, scores = _evaluate(task, model, cfg)
        train_seconds = time.perf_counter() - started
        flat = {f"{system}.{k}": v for system, m in metrics.items() for k, v in m.items()}
        flat.update({GATE_METRIC: gate_value, "best_iteration": fit.best_iteration,
                     "fit_seconds": fit.seconds, "train_seconds": train_seconds})
        mlflow.log_metrics(flat)
        importance = global_importance(fit.booster)
        reports_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            model.save(folder / "model")
            mlflow.log_artifacts(str(folder / "model"), artifact_path="model")
            for plot in _plots(task, scores, cfg, folder):
                mlflow.log_artifact(str(plot))
                (reports_dir / plot.name).write_bytes(plot.read_bytes())
            importance.to_csv(folder / "importance.csv", index=False)
            mlflow.log_artifact(str(folder / "importance.csv"))
            (reports_dir / "importance.csv").write_bytes((folder / "importance.csv").read_bytes())
            scored = task.test if task.test is not None else task.valid
            rows = scored[list(task.keys) + [task.label]].assign(
                score=model.predict(scored)).join(model.reasons(scored))
            rows.to_parquet(folder / "scored_rows.parquet", index=False)
            mlflow.log_artifact(str(folder / "scored_rows.parquet"))
        tags = {GATE_METRIC: gate_value}
        tags.update({k: metrics[OURS][k] for k in ("roc_auc", "pr_auc", "ece")
                     if k in metrics[OURS]})
        version = registry.register_version(name, run.info.run_id, "model", task.data_end,
                                            source, metrics=tags, task=cfg.task())
        baselines = {b.name: metrics[b.name]["val_pr_auc"] for b in task.baselines}
        promoted, reason = registry.promote_if_better(name, version, GATE_METRIC,
                                                      baselines=baselines,
                                                      rescore=_rescorer(task))
    summary = {"model": name, "version": version, "run_id": run.info.run_id,
               "data_end": task.data_end.isoformat(), "data_source": source,
               "promoted": promoted,
               "promotion": reason, GATE_METRIC: gate_value, "baseline_" + GATE_METRIC: baselines,
               "best_iteration": fit.best_iteration, "fit_seconds": fit.seconds,
               "train_seconds": train_seconds, "ece_bins": cfg.ece_bins,
               "top_fraction": cfg.top_fraction, "data": task.description, "metrics": metrics,
               "importance_top10": importance.head(10).to_dict(orient="records")}
    (reports_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def train_churn(ds: Dataset, cfg: ChurnConfig, reports_dir: Path,
                data_cfg: DataConfig | None = None,
                scheduler_address: str | None = None) -> dict[str, Any]:
    """``growth train churn``: rolling-cutoff training set, then :func:`train_propensity`."""
    started = time.perf_counter()
    check_scheduler(scheduler_address)
    return train_propensity(churn.training_set(ds, cfg, data_cfg), cfg,
                            ds.source, reports_dir, scheduler_address, started)


def train_coupon(ds: Dataset, cfg: CouponConfig, reports_dir: Path,
                 data_cfg: DataConfig | None = None,
                 scheduler_address: str | None = None) -> dict[str, Any]:
    """``growth train coupon``: (household, campaign) rows, then :func:`train_propensity`."""
    check_scheduler(scheduler_address)
    started = time.perf_counter()
    return train_propensity(coupon.training_set(ds, cfg, data_cfg), cfg,
                            ds.source, reports_dir, scheduler_address, started)


def summary_line(summary: dict[str, Any]) -> str:
    """One line for people: version, test (or validation) metrics of ours and baselines."""
    m = summary["metrics"]
    part = "" if "roc_auc" in m[OURS] else "val_"
    systems = ", ".join(
        f"{system} {v[part + 'roc_auc']:.3f}/{v[part + 'pr_auc']:.3f}" for system, v in m.items())
    return (f"{summary['model']} v{summary['version']} (data to {summary['data_end']}): "
            f"{'test' if not part else 'validation'} ROC-AUC/PR-AUC {systems}; "
            f"ECE {m[OURS][part + 'ece']:.3f}; {summary['train_seconds']:.0f} s; "
            f"{summary['promotion']}")


def train_standard_models(ds: Dataset, data_cfg: DataConfig, reports_root: Path,
                          console: Console) -> dict[str, dict[str, Any]]:
    """The main job's block: churn and coupon at the standard settings (design.md), each when
    the data holds what it needs; prints one line per model (its summary, or why not)."""
    churn_cfg = churn.load_churn_config(overrides=[
        f"as_of={data_cfg.churn_as_of}", f"horizon_days={data_cfg.churn_horizon_days}"])
    coupon_cfg = coupon.load_coupon_config(overrides=[f"split_date={data_cfg.coupon_split_date}"])
    jobs = {"churn": lambda: train_churn(ds, churn_cfg, reports_root / "churn", data_cfg),
            "coupon": lambda: train_coupon(ds, coupon_cfg, reports_root / "coupon", data_cfg)}
    results: dict[str, dict[str, Any]] = {}
    for name, job in jobs.items():
        try:
            results[name] = job()
        except GrowthError as exc:  # the data lacks a table or the dates the model needs
            console.print(f"{name}: skipped ({exc})")
            continue
        console.print(summary_line(results[name]))
    return results
