"""Churn probe: does a second, continuous target (days until the next visit) rank churners
better than the binary label alone? Not shipped; the figures are in BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_gap_target.py [--seeds 3] [--data DIR]

For each training row (household, cutoff) the target is log(1 + days from the cutoff to the
household's next visit day), censored where the validation cutoff ends what training may
see (the same purge as the labels) and capped at ``--cap`` days. A LightGBM regression on
the 93 churn features (configs/churn.yaml's settings, ``--rounds`` rounds) predicts it; its
rank is blended with the shipped binary booster's rank (weight 0.5, or used alone).

The rule, fixed before running: keep the idea only if mean validation PR-AUC over the seeds
rises at both validation cutoffs: 2017-09-11 (as shipped) and 2017-08-14 (trained on the
cutoffs whose label windows end by it). The test set is not scored.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from features import schema as s
from features.dataset import load_dataset
from features.labels import CHURNED
from training.propensity import churn
from training.propensity.gbdt import FeatureSpec, fit_gbdt, lgb_params

SECOND_VALIDATION = date(2017, 8, 14)


def days_to_next_visit(ds, frame: pd.DataFrame, end: date) -> np.ndarray:
    """Days from each row's cutoff to the household's next visit, censored at ``end``."""
    visits = ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID}, "
                   f"CAST({s.TRANSACTION_TIMESTAMP} AS DATE) AS day FROM {s.TRANSACTIONS} "
                   f"WHERE {s.TRANSACTION_TIMESTAMP} < TIMESTAMP '{end}'")
    visits["day"] = pd.to_datetime(visits["day"])
    rows = frame[[s.HOUSEHOLD_ID, churn.CUTOFF]].reset_index(drop=True)
    pairs = rows.reset_index().merge(visits, on=s.HOUSEHOLD_ID)
    first = pairs[pairs["day"] >= pairs[churn.CUTOFF]].groupby("index")["day"].min()
    censor = (pd.Timestamp(end) - rows[churn.CUTOFF]).dt.days
    return np.minimum((first.reindex(rows.index) - rows[churn.CUTOFF]).dt.days.fillna(censor),
                      censor).to_numpy(float)


def validation_folds(data: Path | None):
    """The dataset, the shipped churn config, its feature spec and the two validation folds
    the probes' rule uses: (end, training rows, validation rows) for 2017-09-11 as shipped
    and for 2017-08-14 with the training cutoffs whose label windows end by it."""
    ds = load_dataset(data, quarantine_dir=Path(tempfile.mkdtemp(prefix="growth_quarantine_")))
    cfg = churn.load_churn_config()
    sets = churn.training_set(ds, cfg)
    spec = FeatureSpec.infer(pd.concat([sets.train, sets.valid]), exclude=churn.NOT_FEATURES)
    horizon = pd.Timedelta(days=cfg.horizon_days)
    second = churn.examples_at(ds, SECOND_VALIDATION, cfg.horizon_days, types_before=cfg.as_of)
    folds = [(sets.valid[churn.CUTOFF].iloc[0].date(), sets.train, sets.valid),
             (SECOND_VALIDATION,
              sets.train[sets.train[churn.CUTOFF] + horizon <= pd.Timestamp(SECOND_VALIDATION)],
              second)]
    return ds, cfg, spec, folds


def probe_parser(doc: str, **extra: dict) -> argparse.ArgumentParser:
    """The probes' command line: ``--data`` (default: the embedded data) plus ``extra``
    options, each ``name=dict(type=..., default=..., nargs=...)``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    parser.add_argument("--data", type=Path, default=None)
    return parser


def fold_line(end, train: pd.DataFrame, valid: pd.DataFrame) -> str:
    """The heading the probes print for a validation fold."""
    return (f"validation {end}: {len(train):,} training rows in "
            f"{train[churn.CUTOFF].nunique()} cutoffs, {len(valid):,} validation rows")


def main() -> None:
    args = probe_parser(__doc__, seeds=dict(type=int, default=3),
                        cap=dict(type=int, nargs="+", default=[112, 180]),
                        rounds=dict(type=int, default=600)).parse_args()

    ds, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        gap = days_to_next_visit(ds, train, end)
        y = valid[CHURNED].to_numpy()
        results: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            seeded = cfg.model_copy(update={"seed": seed})
            fit = fit_gbdt(train, train[CHURNED].to_numpy(), spec, seeded, valid, y)
            binary = fit.booster.predict(spec.matrix(valid), raw_score=True)
            results.setdefault("binary booster (shipped)", []).append(
                average_precision_score(y, binary))
            for cap in args.cap:
                params = {**lgb_params(seeded), "objective": "regression", "metric": "l2"}
                regression = lgb.train(params, lgb.Dataset(spec.matrix(train),
                                                           np.log1p(np.minimum(gap, cap))),
                                       num_boost_round=args.rounds)
                days = regression.predict(spec.matrix(valid))
                for weight in (0.5, 1.0):
                    blend = (1 - weight) * rankdata(binary) + weight * rankdata(days)
                    results.setdefault(f"gap target, cap {cap} d, weight {weight}", []).append(
                        average_precision_score(y, blend))
        print(f"validation {end}: {len(train):,} training rows, "
              f"{np.mean(gap >= (pd.Timestamp(end) - train[churn.CUTOFF]).dt.days):.1%} "
              "censored")
        for name, values in results.items():
            print(f"  {name:34s} mean PR-AUC {np.mean(values):.4f}  ("
                  + " / ".join(f"{v:.4f}" for v in values) + ")")


if __name__ == "__main__":
    main()
