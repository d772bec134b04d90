"""How far the churn and coupon features can go when the test period's labels are known.

    .venv/bin/python benchmarks/propensity_headroom.py [--seeds 3] [--weight 1 10] [--data DIR]

For each model, in one run, at the standard settings of its config:

- **out of time**: the booster as ``growth train`` fits it (training rows, early stopping on
  the validation fold), scored on the test set. This is the shipped model's figure.
- **in period**: 5-fold cross-validation over the test set's households. Each fold's booster
  trains on the same training and validation rows (or on nothing else, in the last line)
  plus the other four fifths of the test rows (weighted ``w``), early-stopped on a held-out
  fifth of those, and scores the fifth it did not see; raw scores are averaged over
  ``--seeds`` seeds. It has seen the test period's own labels, so it is not a model anyone
  could ship: it shows what these features can rank once the test period's behaviour (the
  holiday season for churn, the test campaigns' own redemption rates for coupon) is known.
- **coupon only**: the out-of-time booster on the test campaigns that end by the data's last
  day and on those whose labels the end of the data cuts short, each campaign's redemption
  rate against its mean calibrated score, and the pooled figures if each campaign's (or
  campaign type's) mean score were moved to its own rate, ranking inside it unchanged. Last,
  the RFM + campaign-type regression baseline fitted on the training rows and on the test
  rows themselves.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GroupKFold

from features import schema as s
from features.dataset import load_dataset
from features.labels import CHURNED, REDEEMED
from training.propensity import churn, coupon
from training.propensity.baselines import RFMLogistic
from training.propensity.calibrate import fit_calibrator
from training.propensity.evaluate import expected_calibration_error
from training.propensity.gbdt import FeatureSpec, GBDTFit, fit_gbdt, lgb_params


def figures(y: np.ndarray, score: np.ndarray) -> str:
    return (f"ROC-AUC {roc_auc_score(y, score):.4f}  "
            f"PR-AUC {average_precision_score(y, score):.4f}")


def in_period(base: pd.DataFrame, test: pd.DataFrame, label: str, spec: FeatureSpec, cfg,
              seeds: int, weight: float) -> np.ndarray:
    """Out-of-fold raw scores for ``test`` from boosters that also train on its other folds."""
    y, yb = test[label].to_numpy(), base[label].to_numpy()
    xb, xt = spec.matrix(base), spec.matrix(test)
    categorical = [c for c in spec.names if c in spec.categories]
    out = np.zeros(len(test))
    rng = np.random.default_rng(0)
    for seen, unseen in GroupKFold(n_splits=5).split(xt, y, test[s.HOUSEHOLD_ID]):
        seen = rng.permutation(seen)
        stop, fit_rows = seen[: len(seen) // 5], seen[len(seen) // 5:]
        x = pd.concat([xb, xt.iloc[fit_rows]], ignore_index=True)
        w = np.r_[np.ones(len(xb)), np.full(len(fit_rows), weight)]
        for seed in range(seeds):
            params = lgb_params(cfg.model_copy(update={"seed": seed}))
            train = lgb.Dataset(x, label=np.r_[yb, y[fit_rows]], weight=w,
                                categorical_feature=categorical)
            valid = lgb.Dataset(xt.iloc[stop], label=y[stop], reference=train)
            booster = lgb.train(params, train, num_boost_round=cfg.max_rounds,
                                valid_sets=[valid],
                                callbacks=[lgb.early_stopping(cfg.early_stopping_rounds,
                                                              first_metric_only=True,
                                                              verbose=False)])
            out[unseen] += booster.predict(xt.iloc[unseen], raw_score=True,
                                           num_iteration=booster.best_iteration)
    return out / seeds


def report(name: str, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
           label: str, spec: FeatureSpec, cfg, seeds: int, weights: list[float]) -> GBDTFit:
    """Print the shipped booster's test figures and the in-period ones; return that booster."""
    fit = fit_gbdt(train, train[label].to_numpy(), spec, cfg, valid, valid[label].to_numpy())
    raw = fit.booster.predict(spec.matrix(test), raw_score=True)
    y = test[label].to_numpy()
    print(f"\n## {name}: {len(test)} test rows, {y.mean():.1%} positive")
    print(f"out of time (shipped settings, seed {cfg.seed}):  {figures(y, raw)}")
    base = pd.concat([train, valid], ignore_index=True)
    for w in weights:
        oof = in_period(base, test, label, spec, cfg, seeds, w)
        print(f"in period, test rows weighted {w:g}, {seeds} seeds:  {figures(y, oof)}")
    oof = in_period(base.iloc[:0], test, label, spec, cfg, seeds, 1.0)
    print(f"in period, test rows only, {seeds} seeds:  {figures(y, oof)}")
    return fit


def coupon_campaigns(data: coupon.CouponData, fit: GBDTFit, cfg, data_end: date) -> None:
    test, spec = data.test, data.spec
    y = test[REDEEMED].to_numpy()
    raw = fit.booster.predict(spec.matrix(test), raw_score=True)
    calibrator = fit_calibrator(fit.booster.predict(spec.matrix(data.valid), raw_score=True),
                                data.valid[REDEEMED].to_numpy(), cfg.calibration)
    p = calibrator.predict(raw)
    full = (test[s.END_DATE] <= pd.Timestamp(data_end)).to_numpy()
    print(f"campaigns ending by {data_end} ({full.sum()} rows):  {figures(y[full], raw[full])}")
    print(f"campaigns cut short by the end of the data ({(~full).sum()} rows, ECE of these "
          f"rows {expected_calibration_error(y[~full], p[~full]):.4f}):  "
          f"{figures(y[~full], raw[~full])}")
    print(f"all test rows: ECE {expected_calibration_error(y, p):.4f}")
    table = (test.assign(score=p).groupby(s.CAMPAIGN_ID)
             .agg(type=(s.CAMPAIGN_TYPE, "first"), start=(s.START_DATE, "first"),
                  end=(s.END_DATE, "first"), rows=(REDEEMED, "size"),
                  redeemed=(REDEEMED, "mean"), mean_score=("score", "mean")))
    print(table.round({"redeemed": 3, "mean_score": 3}).to_string())
    logit = np.log(p / (1 - p))
    for key, what in ((s.CAMPAIGN_ID, "campaign's"), (s.CAMPAIGN_TYPE, "campaign type's")):
        moved = logit.copy()
        for rows in test.groupby(key).indices.values():
            rate = np.clip(y[rows].mean(), 1e-6, 1 - 1e-6)  # a root exists for every group
            shift = brentq(lambda d, r=rows, t=rate: expit(logit[r] + d).mean() - t, -20, 20)
            moved[rows] = logit[rows] + shift
        print(f"each {what} mean score moved to its own rate:  {figures(y, moved)}")


def rfm_in_sample(train: pd.DataFrame, test: pd.DataFrame) -> None:
    """The RFM + campaign-type regression fitted on its training rows and on the test rows."""
    y = test[REDEEMED].to_numpy()
    for name, rows in (("training rows", train), ("the test rows themselves", test)):
        model = RFMLogistic("rfm_type_logistic", one_hot=(s.CAMPAIGN_TYPE,))
        model.fit(rows, rows[REDEEMED].to_numpy())
        print(f"RFM + campaign-type regression fitted on {name}:  "
              f"{figures(y, model.predict(test))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weight", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    ds = load_dataset(args.data)

    cfg = churn.load_churn_config()
    data = churn.churn_data(ds, cfg)
    test = churn.examples_at(ds, cfg.as_of, cfg.horizon_days)
    report(f"churn as of {cfg.as_of}, {cfg.horizon_days} days", data.train, data.valid, test,
           CHURNED, data.spec, cfg, args.seeds, args.weight)

    cfg = coupon.load_coupon_config()
    data = coupon.coupon_data(ds, cfg)
    fit = report(f"coupon, campaigns starting on or after {cfg.split_date}", data.train,
                 data.valid, data.test, REDEEMED, data.spec, cfg, args.seeds, args.weight)
    coupon_campaigns(data, fit, cfg, ds.time_range()[1].date())
    rfm_in_sample(data.train, data.test)


if __name__ == "__main__":
    main()
