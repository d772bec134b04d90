"""Coupon response: (household, campaign received) rows, features as of campaign start.

Label: the household redeemed any coupon of the campaign (``coupon_pairs``; for training
campaigns only redemptions before the split date count). Campaigns starting on or after the
split date are the test set. Inside the training campaigns, those starting in the last
``validation_days`` before the split form the validation fold (early stopping, calibration,
the gate metric); the booster trains on the earlier ones. Campaigns starting before the
first transaction are left out: there is no history to build their features from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.coupon import coupon_features
from features.dataset import Dataset
from features.labels import IS_TEST, REDEEMED, coupon_pairs, features_at_campaign_starts
from features.sources import GrowthError
from training.propensity.baselines import coupon_baselines
from training.propensity.bundle import validation_pr_auc
from training.propensity.config import CouponConfig, load_coupon_config
from training.propensity.gbdt import FeatureSpec, Report
from training.propensity.task import GATE_METRIC, TrainingSet

MODEL_NAME = "coupon"
NOT_FEATURES = (s.HOUSEHOLD_ID, s.CAMPAIGN_ID, s.START_DATE, s.END_DATE, IS_TEST, REDEEMED)
__all__ = [
    "GATE_METRIC",
    "CouponData",
    "coupon_data",
    "coupon_examples",
    "load_coupon_config",
    "training_set",
    "validation_score",
]


def coupon_examples(ds: Dataset, pairs: pd.DataFrame,
                    data_cfg: DataConfig | None = None) -> pd.DataFrame:
    """``pairs`` (from ``coupon_pairs``) with household features as of each campaign start
    and the campaign/coupon features of ``features.coupon``."""
    ds.require(s.COUPONS, "the coupon-response model")
    frame = features_at_campaign_starts(ds, pairs, data_cfg)
    extra = coupon_features(ds, frame)
    keys = [s.HOUSEHOLD_ID, s.CAMPAIGN_ID]
    assert (extra[keys].to_numpy() == frame[keys].to_numpy()).all(), "feature rows misaligned"
    return pd.concat([frame, extra.drop(columns=keys)], axis=1)


@dataclass
class CouponData:
    train: pd.DataFrame  # training campaigns before the validation window
    valid: pd.DataFrame  # training campaigns in the validation window
    test: pd.DataFrame  # campaigns starting on or after the split date
    spec: FeatureSpec
    validation_start: date
    after_data: list[int]  # campaigns starting after the data's last day: no outcome yet


_CACHE: dict[tuple, tuple[Dataset, CouponData]] = {}


def coupon_data(ds: Dataset, cfg: CouponConfig, data_cfg: DataConfig | None = None
                ) -> CouponData:
    """Train, validation and test rows (memoised per dataset and settings)."""
    key = (id(ds), cfg.split_date, cfg.validation_days,
           (data_cfg or DataConfig()).model_dump_json())
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is ds:
        return hit[1]
    ds.check_as_of(cfg.split_date, "split date")
    pairs = coupon_pairs(ds, cfg.split_date)
    first, last = ds.time_range()
    # no history before the data's first day to build features from; no outcome after its last
    after = pairs[s.START_DATE] > pd.Timestamp(last.date())
    after_data = sorted(int(c) for c in pairs.loc[after, s.CAMPAIGN_ID].unique())
    pairs = pairs[(pairs[s.START_DATE] > pd.Timestamp(first.date())) & ~after
                  ].reset_index(drop=True)
    frame = coupon_examples(ds, pairs, data_cfg)
    valid_start = cfg.split_date - timedelta(days=cfg.validation_days)
    is_test = frame[IS_TEST] == 1
    is_valid = ~is_test & (frame[s.START_DATE] >= pd.Timestamp(valid_start))
    train, valid = frame[~is_test & ~is_valid], frame[is_valid]
    when = {"training": f"after the data's first day {first.date()} and before {valid_start}",
            "validation": f"from {valid_start} to the day before {cfg.split_date}"}
    for name, part in (("training", train), ("validation", valid)):
        if part[REDEEMED].nunique() < 2:
            held = (f"its {len(part):,} rows (campaigns "
                    f"{', '.join(str(c) for c in sorted(part[s.CAMPAIGN_ID].unique()))}) have "
                    f"{int(part[REDEEMED].sum()):,} redemptions" if len(part) else
                    "no campaign with recipients starts then")
            raise GrowthError(
                f"split date {cfg.split_date}: the {name} campaigns (those starting "
                f"{when[name]}, validation_days {cfg.validation_days}) need both redeemed and "
                f"not-redeemed rows, but {held}: use another --split-date, or change "
                "validation_days (--set validation_days=N)")
    # The spec (feature names, category levels) comes from the rows the model may see:
    # levels that only campaigns on or after the split carry are unknown to it (NaN).
    spec = FeatureSpec.infer(pd.concat([train, valid]), exclude=NOT_FEATURES)
    data = CouponData(train.reset_index(drop=True), valid.reset_index(drop=True),
                      frame[is_test].reset_index(drop=True), spec, valid_start, after_data)
    _CACHE.clear()
    _CACHE[key] = (ds, data)
    return data


def validation_score(ds: Dataset, cfg: CouponConfig, report: Report | None = None,
                     data_cfg: DataConfig | None = None) -> float:
    """Validation-fold PR-AUC (higher is better) of a booster fitted with ``cfg``: the metric
    the promotion gate uses. No MLflow logging; ``report(step, value)`` gets the validation
    PR-AUC every ``cfg.report_every`` rounds, and whatever it raises propagates."""
    data = coupon_data(ds, cfg, data_cfg)
    return validation_pr_auc(data.train, data.valid, REDEEMED, data.spec, cfg, report)


def training_set(ds: Dataset, cfg: CouponConfig, data_cfg: DataConfig | None = None
                 ) -> TrainingSet:
    """Everything a tracked run needs; no test set when no campaign starts on or after the
    split date or none of its rows redeemed."""
    data = coupon_data(ds, cfg, data_cfg)
    test = data.test if data.test[REDEEMED].nunique() == 2 else None
    campaigns = {name: sorted(int(c) for c in part[s.CAMPAIGN_ID].unique())
                 for name, part in (("train", data.train), ("valid", data.valid),
                                    ("test", data.test))}
    _, last = ds.time_range()
    cut_short = sorted(int(c) for c in data.test.loc[
        data.test[s.END_DATE] > pd.Timestamp(last.date()), s.CAMPAIGN_ID].unique())
    return TrainingSet(
        model_name=MODEL_NAME, label=REDEEMED, keys=(s.HOUSEHOLD_ID, s.CAMPAIGN_ID),
        train=data.train, valid=data.valid, test=test, spec=data.spec,
        data_end=cfg.split_date, baselines=coupon_baselines(),
        description={"validation_start": data.validation_start.isoformat(),
                     **{f"{k}_campaigns": v for k, v in campaigns.items()},
                     # test campaigns running past the data: labels count the days it covers
                     "cut_short_test_campaigns": cut_short,
                     # left out of the test set: they start after the data ends
                     "after_data_campaigns": data.after_data,
                     "train_rows": len(data.train), "valid_rows": len(data.valid),
                     "test_rows": len(data.test),
                     **({} if test is not None else {"no_test_set": (
                         f"no campaign starting on or after {cfg.split_date} has a "
                         "redemption in the data" if len(data.test) else
                         f"no campaign starts on or after {cfg.split_date} within the data")})})
