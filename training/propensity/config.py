"""Settings of the churn and coupon-response models (configs/churn.yaml, configs/coupon.yaml).

LightGBM hyper-parameters are flat fields (the tuner sets them by name); every field has a
default, so an empty YAML file is a valid config.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field

from features.config import Day, Days, Strict, load_config


class PropensityConfig(Strict):
    seed: int = 0  # LightGBM seed (bagging, feature sampling); same seed -> same metrics
    learning_rate: float = Field(0.03, gt=0, allow_inf_nan=False)
    num_leaves: int = Field(15, ge=2, le=131_072)  # LightGBM's own limit
    max_depth: int = -1  # -1: no limit beyond num_leaves
    min_data_in_leaf: int = Field(40, ge=1)
    feature_fraction: float = Field(0.7, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)  # 0 turns bagging off
    lambda_l1: float = Field(0.0, ge=0, allow_inf_nan=False)
    lambda_l2: float = Field(1.0, ge=0, allow_inf_nan=False)
    min_gain_to_split: float = Field(0.0, ge=0, allow_inf_nan=False)
    max_rounds: int = Field(2000, ge=1)  # boosting rounds at most
    early_stopping_rounds: int = Field(100, ge=1)  # on the validation fold's log-loss
    num_threads: int = Field(2, ge=1, le=1024)  # fixed, so runs are reproducible
    # Blend with an L2 logistic regression on the same features (training/propensity/
    # linear.py): raw = (1 - linear_weight) * booster + linear_weight * linear, in log-odds.
    linear_weight: float = Field(0.0, ge=0, le=1)  # 0: the booster alone
    linear_c: float = Field(0.01, gt=0, allow_inf_nan=False)  # inverse L2 strength, linear part
    linear_exclude: list[str] = []  # features left out of the linear part, by name prefix
    calibration: Literal["isotonic", "platt"] = "platt"  # fitted on the validation fold
    ece_bins: int = Field(10, ge=2)  # equal-width probability bins for the ECE
    top_fraction: float = Field(0.1, gt=0, lt=1)  # lift and capture at this share of rows
    report_every: int = Field(10, ge=1)  # rounds between progress reports to a tuner

    def task(self) -> str | None:
        """What a version trained with this config predicts, where a setting changes it
        (registry.TASK_TAG): versions predicting different things are not compared."""
        return None


class ChurnConfig(PropensityConfig):
    as_of: Day = date(2017, 11, 6)  # test labels: no purchase in [as_of, as_of + horizon)
    horizon_days: Days = 56
    # Rolling cutoffs (features.labels.churn_cutoffs): the newest is the validation fold; those
    # whose label windows overlap the validation window are skipped, the rest train.
    n_cutoffs: int = Field(20, ge=2)
    step_days: Days = 7  # days between cutoffs

    def task(self) -> str | None:
        return churn_task(self.horizon_days)


def churn_task(horizon_days: int) -> str:
    """The task of a churn model: its horizon changes what it predicts (and the positive
    rate, so its PR-AUC cannot be compared with another horizon's)."""
    return f"churn within {horizon_days} days"


def task_horizon(task: str | None) -> int | None:
    """The horizon of a :func:`churn_task` text; None for anything else."""
    found = re.fullmatch(r"churn within (\d+) days", task or "")
    return int(found.group(1)) if found else None


class CouponConfig(PropensityConfig):
    split_date: Day = date(2017, 8, 1)  # campaigns starting on or after it are the test set
    # Training campaigns starting on or after split_date - validation_days form the validation
    # fold (early stopping and calibration); earlier ones train the booster.
    validation_days: Days = 60


def load_churn_config(path: Path | None = None, overrides: list[str] | None = None
                      ) -> ChurnConfig:
    return load_config(ChurnConfig, path, overrides, default_name="churn")


def load_coupon_config(path: Path | None = None, overrides: list[str] | None = None
                       ) -> CouponConfig:
    return load_config(CouponConfig, path, overrides, default_name="coupon")
