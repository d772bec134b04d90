"""Churn probe: do the newest training cutoffs deserve more weight than the oldest?
Not shipped unless it passes; the figures are in BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_recency_weights.py [--seeds 15] [--half-life 4 8 16]

The booster trains on 12 weekly cutoffs (2017-05-01..2017-07-17 as shipped) with equal
weight. Here each training row is weighted 0.5 ** (weeks before the fold's newest training
cutoff / half-life), weights scaled to mean 1 so that the L2 penalty and min_data_in_leaf
keep their meaning; the booster is otherwise the shipped one (configs/churn.yaml, early
stopping on the validation fold's log-loss). Without weights it reproduces fit_gbdt exactly
(checked below).

The rule, as in the earlier probes: keep it only if mean validation PR-AUC over the seeds
rises at both validation cutoffs, 2017-09-11 (as shipped) and 2017-08-14. The test set is
not scored.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from churn_gap_target import fold_line, probe_parser, validation_folds
from sklearn.metrics import average_precision_score

from features.labels import CHURNED
from training.propensity import churn
from training.propensity.gbdt import fit_gbdt, lgb_params


def weighted_fit(train, valid, spec, cfg, weight: np.ndarray | None) -> np.ndarray:
    """fit_gbdt's local path with row weights; the validation fold's raw scores."""
    categorical = [c for c in spec.names if c in spec.categories]
    train_set = lgb.Dataset(spec.matrix(train), label=train[CHURNED].to_numpy(), weight=weight,
                            categorical_feature=categorical, free_raw_data=False)
    valid_set = lgb.Dataset(spec.matrix(valid), label=valid[CHURNED].to_numpy(),
                            reference=train_set)
    booster = lgb.train(lgb_params(cfg), train_set, num_boost_round=cfg.max_rounds,
                        valid_sets=[valid_set], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds,
                                                      first_metric_only=True, verbose=False)])
    return booster.predict(spec.matrix(valid), num_iteration=booster.best_iteration,
                           raw_score=True)


def recency_weights(train, half_life_weeks: float) -> np.ndarray:
    weeks = (train[churn.CUTOFF].max() - train[churn.CUTOFF]).dt.days.to_numpy() / 7
    w = 0.5 ** (weeks / half_life_weeks)
    return w / w.mean()


def main() -> None:
    args = probe_parser(__doc__, seeds=dict(type=int, default=15),
                        half_life=dict(type=float, nargs="+", default=[4.0, 8.0, 16.0])
                        ).parse_args()

    _, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        y = valid[CHURNED].to_numpy()
        print(fold_line(end, train, valid))
        variants = {"equal weights (shipped)": None,
                    **{f"half-life {h:g} weeks": recency_weights(train, h)
                       for h in args.half_life}}
        for name, weight in variants.items():
            scores = []
            for seed in range(args.seeds):
                seeded = cfg.model_copy(update={"seed": seed})
                raw = weighted_fit(train, valid, spec, seeded, weight)
                if weight is None and seed == 0:  # the harness is the shipped booster
                    shipped = fit_gbdt(train, train[CHURNED].to_numpy(), spec, seeded, valid, y)
                    assert np.allclose(raw, shipped.booster.predict(spec.matrix(valid),
                                                                    raw_score=True))
                scores.append(average_precision_score(y, raw))
            print(f"  {name:24s} mean PR-AUC {np.mean(scores):.4f}  (range "
                  f"{min(scores):.4f}-{max(scores):.4f})", flush=True)


if __name__ == "__main__":
    main()
