"""Churn probe: do cutoffs closer to the validation cutoff help, labelled over the shorter
windows that still end by it? Not shipped unless it passes; the figures are in BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_short_horizons.py [--seeds 15] [--min-horizon 28]

The shipped booster's newest training cutoff lies a whole horizon (56 days) before the
validation cutoff, because its label window must end by it; served at as_of, its newest
training data is 16 weeks old. Here the weekly cutoffs in that gap also train, each with the
horizon that ends its window at the validation cutoff (49, 42, 35, 28 days; features that
depend on the horizon, such as the Poisson and BG/NBD no-visit chances, use that horizon), so
no label window crosses the validation cutoff. Two variants: the rows as they are, and the
rows with their horizon as a feature (56 for the shipped rows and the validation fold).

The rule, as in the earlier probes: keep it only if mean validation PR-AUC over the seeds
rises at both validation cutoffs, 2017-09-11 (as shipped) and 2017-08-14. The test set is
not scored.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from churn_gap_target import fold_line, probe_parser, validation_folds
from churn_recency_weights import weighted_fit
from sklearn.metrics import average_precision_score

from features.labels import CHURNED
from training.propensity import churn
from training.propensity.gbdt import FeatureSpec

HORIZON = "label_horizon_days"


def short_horizon_rows(ds, cfg, train: pd.DataFrame, end, min_horizon: int) -> pd.DataFrame:
    """Examples at the weekly cutoffs after the newest training cutoff whose window, ended at
    ``end``, is at least ``min_horizon`` days long; each labelled over that window."""
    newest = train[churn.CUTOFF].max().date()
    frames = []
    cutoff = newest + timedelta(days=cfg.step_days)
    while (end - cutoff).days >= min_horizon:
        horizon = (end - cutoff).days
        frame = churn.examples_at(ds, cutoff, horizon, types_before=cfg.as_of)
        frame[HORIZON] = horizon
        frames.append(frame)
        cutoff += timedelta(days=cfg.step_days)
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    args = probe_parser(__doc__, seeds=dict(type=int, default=15),
                        min_horizon=dict(type=int, default=28)).parse_args()

    ds, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        y = valid[CHURNED].to_numpy()
        extra = short_horizon_rows(ds, cfg, train, end, args.min_horizon)
        print(fold_line(end, train, valid))
        print(f"  + {len(extra):,} rows at {extra[churn.CUTOFF].nunique()} cutoffs, horizons "
              f"{sorted(map(int, extra[HORIZON].unique()), reverse=True)} days, "
              f"{extra[CHURNED].mean():.1%} churn (shipped rows {train[CHURNED].mean():.1%})")
        both = pd.concat([train.assign(**{HORIZON: cfg.horizon_days}), extra], ignore_index=True)
        valid_h = valid.assign(**{HORIZON: cfg.horizon_days})
        with_h = FeatureSpec.infer(pd.concat([both, valid_h]), exclude=churn.NOT_FEATURES)
        variants = {"shipped rows": (train, valid, spec),
                    "+ short-horizon rows": (both.drop(columns=HORIZON), valid, spec),
                    "+ rows, horizon a feature": (both, valid_h, with_h)}
        for name, (rows, fold, fold_spec) in variants.items():
            scores = [average_precision_score(
                y, weighted_fit(rows, fold, fold_spec, cfg.model_copy(update={"seed": seed}),
                                None)) for seed in range(args.seeds)]
            print(f"  {name:28s} mean PR-AUC {np.mean(scores):.4f}  (range "
                  f"{min(scores):.4f}-{max(scores):.4f})", flush=True)


if __name__ == "__main__":
    main()
