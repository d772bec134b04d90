"""One LightGBM fit for both propensity models, locally or through ``lightgbm.dask``.

Features go in as a pandas frame; :class:`FeatureSpec` fixes their order and turns text
columns into integer codes with stored levels, so a saved model reads new frames exactly as
it read the training frame. Locally the booster stops early on the validation fold's
log-loss; on a Dask cluster it trains ``max_rounds`` and the best round is picked afterwards
on the same fold (the same rule, applied to the finished curve), then the model is cut there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.sources import GrowthError
from training.propensity.config import PropensityConfig

Report = Callable[[int, float], None]
REPORT_METRIC = "average_precision"  # what a tuner sees every ``report_every`` rounds


class MissingFeatures(GrowthError):
    """A frame lacks features a model was trained on (the model came from other data)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"the feature frame lacks columns the model was trained on: {missing}")
        self.missing = missing


@dataclass(frozen=True)
class FeatureSpec:
    """Feature order and the levels of categorical (text) features; JSON-serialisable."""

    names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]

    @classmethod
    def infer(cls, frame: pd.DataFrame, exclude: tuple[str, ...] = ()) -> FeatureSpec:
        """Every column not in ``exclude``; non-numeric columns become categorical."""
        names = tuple(c for c in frame.columns if c not in exclude)
        categories = {
            c: tuple(sorted(str(v) for v in frame[c].dropna().unique()))
            for c in names
            if not (pd.api.types.is_numeric_dtype(frame[c])
                    or pd.api.types.is_bool_dtype(frame[c]))
        }
        return cls(names, categories)

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Float64 matrix in ``names`` order; unknown or missing categories become NaN.
        Raises :class:`MissingFeatures` when ``frame`` lacks one of ``names``."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise MissingFeatures(missing)
        out = {}
        for c in self.names:
            if c in self.categories:
                codes = {level: float(i) for i, level in enumerate(self.categories[c])}
                out[c] = frame[c].map(lambda v, m=codes: m.get(str(v), np.nan)
                                      if pd.notna(v) else np.nan).astype("float64")
            else:
                out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        return pd.DataFrame(out, index=frame.index)

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.names),
                "categories": {k: list(v) for k, v in self.categories.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(tuple(data["names"]), {k: tuple(v) for k, v in data["categories"].items()})


@dataclass
class GBDTFit:
    booster: lgb.Booster  # cut at ``best_iteration``
    best_iteration: int
    seconds: float


def lgb_params(cfg: PropensityConfig) -> dict[str, Any]:
    """LightGBM parameters from the config; deterministic, so a seed gives one model."""
    return {
        "objective": "binary", "metric": ["binary_logloss", REPORT_METRIC],
        "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth, "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": cfg.feature_fraction, "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": cfg.bagging_freq, "lambda_l1": cfg.lambda_l1,
        "lambda_l2": cfg.lambda_l2, "min_gain_to_split": cfg.min_gain_to_split,
        "num_threads": cfg.num_threads, "seed": cfg.seed, "deterministic": True,
        "force_row_wise": True, "verbosity": -1, "first_metric_only": True,
    }


def _report_callback(report: Report, every: int) -> Callable:
    def callback(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % every == 0:
            for _, name, value, *_ in env.evaluation_result_list:
                if name == REPORT_METRIC:
                    report(step, float(value))

    callback.order = 5  # before early stopping, so a pruned trial stops at once
    return callback


def fit_gbdt(
    x_train: pd.DataFrame, y_train: np.ndarray, spec: FeatureSpec, cfg: PropensityConfig,
    x_valid: pd.DataFrame | None = None, y_valid: np.ndarray | None = None,
    report: Report | None = None,
    scheduler_address: str | None = None,
) -> GBDTFit:
    """Fit a binary booster on ``spec.matrix(x_train)``.

    With a validation fold: early stopping on its log-loss (at most ``cfg.max_rounds``);
    without one: ``cfg.max_rounds`` rounds. ``report(step, value)`` receives the validation
    PR-AUC every ``cfg.report_every`` rounds (local training only); exceptions it raises (a
    tuner's pruning) propagate. ``scheduler_address`` trains through ``lightgbm.dask`` on
    that cluster.
    """
    started = time.perf_counter()
    xt = spec.matrix(x_train)
    xv = spec.matrix(x_valid) if x_valid is not None else None
    params = lgb_params(cfg)
    categorical = [c for c in spec.names if c in spec.categories]
    if scheduler_address:
        booster = _fit_dask(xt, y_train, categorical, params, cfg.max_rounds, scheduler_address)
        best = (_best_round(booster, xv, y_valid, cfg.early_stopping_rounds)
                if xv is not None else booster.current_iteration())
    else:
        train_set = lgb.Dataset(xt, label=y_train, categorical_feature=categorical,
                                free_raw_data=False)
        callbacks: list[Callable] = []
        valid_sets = []
        if xv is not None:
            valid_sets = [lgb.Dataset(xv, label=y_valid, reference=train_set)]
            if report is not None:
                callbacks.append(_report_callback(report, cfg.report_every))
            callbacks.append(lgb.early_stopping(cfg.early_stopping_rounds,
                                                first_metric_only=True, verbose=False))
        booster = lgb.train(params, train_set, num_boost_round=cfg.max_rounds,
                            valid_sets=valid_sets, valid_names=["valid"][:len(valid_sets)],
                            callbacks=callbacks)
        best = booster.best_iteration or booster.current_iteration()
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return GBDTFit(booster, best, time.perf_counter() - started)


def dask_client(address: str, timeout_s: float = 30):
    """A ``distributed.Client`` on the scheduler at ``address``; a GrowthError naming it when
    it is not an address or does not answer within ``timeout_s``."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout_s)
    except ValueError as exc:  # not an address at all
        raise GrowthError(f"--dask-scheduler {address!r} is not a scheduler address ({exc}); "
                          "expected tcp://HOST:PORT") from None
    except OSError as exc:  # unreachable: timed out or refused
        raise GrowthError(f"--dask-scheduler {address}: no scheduler answers there ({exc}); "
                          "start one (`dask scheduler`) or check the address") from None


def check_scheduler(address: str | None, timeout_s: float = 10) -> None:
    """Before any data is read: the scheduler at ``address`` answers (see dask_client)."""
    if address:
        dask_client(address, timeout_s).close()


def _fit_dask(x: pd.DataFrame, y: np.ndarray, categorical: list[str], params: dict[str, Any],
              rounds: int, address: str) -> lgb.Booster:
    """Data-parallel training on the Dask cluster at ``address``; returns a local booster."""
    import dask.dataframe as dd

    # lightgbm.dask sets threads per worker itself; metrics are computed here afterwards.
    params = {k: v for k, v in params.items()
              if k not in ("metric", "first_metric_only", "num_threads")}
    with dask_client(address) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        dx = dd.from_pandas(x, npartitions=workers)
        dy = dd.from_pandas(pd.Series(y, index=x.index, name="label"), npartitions=workers)
        model = lgb.DaskLGBMClassifier(client=client, n_estimators=rounds, **params)
        model.fit(dx, dy, categorical_feature=categorical)
        return model.to_local().booster_


def _best_round(booster: lgb.Booster, x: pd.DataFrame, y: np.ndarray, patience: int) -> int:
    """The round with the lowest validation log-loss, stopping ``patience`` rounds after it
    (what early stopping would have chosen), from one pass over the trees."""
    raw = np.zeros(len(x))
    best, best_loss = 1, np.inf
    for i in range(booster.current_iteration()):
        raw += booster.predict(x, raw_score=True, start_iteration=i, num_iteration=1)
        p = np.clip(1 / (1 + np.exp(-raw)), 1e-15, 1 - 1e-15)
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        if loss < best_loss:
            best, best_loss = i + 1, loss
        elif i + 1 - best >= patience:
            break
    return best

