"""What a training run needs from a model family: its rows, label, features and rivals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from training.propensity.baselines import RFMLogistic, RuleBaseline
from training.propensity.gbdt import FeatureSpec

GATE_METRIC = "val_pr_auc"  # validation-fold PR-AUC of the raw booster score (higher is better)


@dataclass
class TrainingSet:
    model_name: str  # registered model name ("churn", "coupon")
    label: str  # 0/1 column in every frame
    keys: tuple[str, ...]  # columns that identify a row (household, campaign)
    train: pd.DataFrame  # fits the booster and the baselines
    valid: pd.DataFrame  # early stopping, calibration, the gate metric (time-based fold)
    test: pd.DataFrame | None  # held-out evaluation; None when the data ends too early
    spec: FeatureSpec
    data_end: date  # training features and labels end before this day (exclusive)
    baselines: list[RuleBaseline | RFMLogistic]
    description: dict[str, Any] = field(default_factory=dict)  # logged as params
