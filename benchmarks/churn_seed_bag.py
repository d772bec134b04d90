"""Churn probe: does averaging boosters of several seeds (a seed bag) rank churners better
than one booster? Not shipped unless it passes; the figures are in BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_seed_bag.py [--bags 3] [--bag-size 5] [--data DIR]

Boosters at configs/churn.yaml's settings (feature and row bagging, so seeds differ), seeds
0 .. bags*bag_size-1, each early-stopped on the validation fold as shipped. A bag averages
its boosters' raw scores. The rule, fixed before running: keep the bag only if the mean
validation PR-AUC over the bags exceeds the mean single-seed validation PR-AUC at both
validation cutoffs, 2017-09-11 (as shipped) and 2017-08-14 (trained on the cutoffs whose
label windows end by it). The test set is not scored.
"""

from __future__ import annotations

import numpy as np
from churn_gap_target import probe_parser, validation_folds
from sklearn.metrics import average_precision_score

from features.labels import CHURNED
from training.propensity.gbdt import fit_gbdt


def main() -> None:
    args = probe_parser(__doc__, bags=dict(type=int, default=3),
                        bag_size=dict(type=int, default=5)).parse_args()

    _, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        y = valid[CHURNED].to_numpy()
        raw, rounds = [], []
        for seed in range(args.bags * args.bag_size):
            seeded = cfg.model_copy(update={"seed": seed})
            fit = fit_gbdt(train, train[CHURNED].to_numpy(), spec, seeded, valid, y)
            raw.append(fit.booster.predict(spec.matrix(valid), raw_score=True))
            rounds.append(fit.best_iteration)
        single = [average_precision_score(y, r) for r in raw]
        bags = [average_precision_score(y, np.mean(raw[b * args.bag_size:(b + 1) * args.bag_size],
                                                   axis=0)) for b in range(args.bags)]
        print(f"validation {end}: {len(train):,} training rows, {len(valid):,} validation rows, "
              f"rounds {min(rounds)}-{max(rounds)}")
        print(f"  single booster   mean PR-AUC {np.mean(single):.4f}  (seed 0 {single[0]:.4f}, "
              f"range {min(single):.4f}-{max(single):.4f})")
        print(f"  bag of {args.bag_size}         mean PR-AUC {np.mean(bags):.4f}  ("
              + " / ".join(f"{v:.4f}" for v in bags) + ")")


if __name__ == "__main__":
    main()
