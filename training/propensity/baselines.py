"""Baselines fitted and scored in the same run as the booster (same rows, same metrics).

- ``RuleBaseline``: one hand-made score (churn: days since the last purchase; coupon:
  campaigns redeemed before, ties broken by coupons redeemed), turned into probabilities by
  a one-feature logistic regression fitted on the training rows, so Brier and ECE mean the
  same for it as for the booster. The ranking is the rule's own.
- ``RFMLogistic``: a standardised logistic regression on log recency, frequency and
  monetary value over three windows (plus one-hot campaign type for coupons).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features import schema as s
from features.household import RECENCY

RECENCY_WHEN_NEVER = 365.0  # days since last purchase for a household with no purchase yet


def days_since_last(frame: pd.DataFrame) -> np.ndarray:
    return frame[RECENCY].astype("float64").fillna(RECENCY_WHEN_NEVER).to_numpy()


def prior_redemptions(frame: pd.DataFrame) -> np.ndarray:
    """Campaigns redeemed before this one started; ties broken by coupons redeemed."""
    campaigns = frame["prior_redeemed_campaigns"].astype("float64").fillna(0).to_numpy()
    coupons = frame["redemptions_all"].astype("float64").fillna(0).to_numpy()
    return campaigns + coupons / (coupons + 1.0)


@dataclass
class RuleBaseline:
    name: str
    rule: Callable[[pd.DataFrame], np.ndarray]
    model_: LogisticRegression | None = field(default=None, init=False)

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> RuleBaseline:
        self.model_ = LogisticRegression(C=1e6, max_iter=1000).fit(self._x(frame), y)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._x(frame))[:, 1]

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        return np.log1p(np.maximum(self.rule(frame), 0.0)).reshape(-1, 1)


RFM_COLUMNS = (RECENCY, "baskets_4w", "baskets_13w", "baskets_52w", "spend_4w",
               "spend_13w", "spend_52w")


@dataclass
class RFMLogistic:
    name: str
    one_hot: tuple[str, ...] = ()  # categorical columns added as indicators
    levels_: dict[str, list[str]] = field(default_factory=dict, init=False)
    model_: Pipeline | None = field(default=None, init=False)

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> RFMLogistic:
        self.levels_ = {c: sorted(frame[c].dropna().astype(str).unique()) for c in self.one_hot}
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        self.model_.fit(self._x(frame), y)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._x(frame))[:, 1]

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        cols = {"log_recency": np.log1p(days_since_last(frame))}
        for c in RFM_COLUMNS[1:]:
            cols[f"log_{c}"] = np.log1p(frame[c].astype("float64").fillna(0).clip(lower=0))
        for c, levels in self.levels_.items():
            for level in levels:
                cols[f"{c}={level}"] = (frame[c].astype(str) == level).astype("float64")
        return pd.DataFrame(cols, index=frame.index).to_numpy()


def churn_baselines() -> list[RuleBaseline | RFMLogistic]:
    return [RuleBaseline("days_since_last", days_since_last), RFMLogistic("rfm_logistic")]


def coupon_baselines() -> list[RuleBaseline | RFMLogistic]:
    return [RuleBaseline("prior_redemptions", prior_redemptions),
            RFMLogistic("rfm_type_logistic", one_hot=(s.CAMPAIGN_TYPE,))]
