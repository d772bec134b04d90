"""GBDT training through ``lightgbm.dask`` on a 2-worker local Dask cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.propensity.bundle import MODEL_FILE, PropensityModel
from training.propensity.calibrate import fit_calibrator
from training.propensity.config import PropensityConfig
from training.propensity.gbdt import FeatureSpec, fit_gbdt


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"recency": rng.exponential(20, n), "visits": rng.poisson(5, n),
                      "noise": rng.normal(size=n),
                      "tier": rng.choice(["bronze", "silver", "gold"], n)})
    logit = 0.08 * x["recency"] - 0.4 * x["visits"] + (x["tier"] == "bronze") - 0.5
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()


def test_dask_training_predicts_and_saves_as_text(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    x_train, y_train = frame(3000, 0)
    x_valid, y_valid = frame(1000, 1)
    spec = FeatureSpec.infer(x_train)
    cfg = PropensityConfig(learning_rate=0.1, max_rounds=60, early_stopping_rounds=10,
                           min_data_in_leaf=20, num_threads=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        fit = fit_gbdt(x_train, y_train, spec, cfg, x_valid, y_valid,
                       scheduler_address=cluster.scheduler_address)
    assert 1 <= fit.best_iteration <= 60
    raw = fit.booster.predict(spec.matrix(x_valid), raw_score=True)
    assert roc_auc_score(y_valid, raw) > 0.75
    model = PropensityModel(fit.booster, fit_calibrator(raw, y_valid, "platt"), spec,
                            {"model_name": "test"})
    folder = model.save(tmp_path / "model")
    assert (folder / MODEL_FILE).read_text().startswith("tree")
    np.testing.assert_allclose(PropensityModel.load(folder).predict(x_valid),
                               model.predict(x_valid))


def test_a_scheduler_address_that_is_not_one_is_named() -> None:
    from features.sources import GrowthError
    from training.propensity.gbdt import _fit_dask

    with pytest.raises(GrowthError, match="--dask-scheduler 'notanaddress' is not a scheduler"):
        _fit_dask(pd.DataFrame({"x": [1.0]}), np.array([1]), [], {}, 1, "notanaddress")


def test_a_scheduler_that_does_not_answer_is_named_before_any_data_is_read(
        tmp_path: Path) -> None:
    """A walkthrough waited for the features, then 30 s, before learning the address was
    wrong: the scheduler is tried first, briefly."""
    import socket
    import time

    from features.sources import GrowthError
    from training.propensity.run import train_churn

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with pytest.raises(GrowthError, match=f"--dask-scheduler tcp://127.0.0.1:{port}: no "
                                          "scheduler answers there"):
        train_churn(None, None, tmp_path, scheduler_address=f"tcp://127.0.0.1:{port}")
    assert time.perf_counter() - started < 30
