"""Churn probe: does a ranking objective (one query per training cutoff) rank churners better
than the shipped binary log-loss? Not shipped unless it passes; the figures are in
BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_rank_objective.py [--seeds 5] [--data DIR]

PR-AUC is average precision over each cutoff's households, a ranking metric; LightGBM's
``rank_xendcg`` and ``lambdarank`` optimise a ranking of each query directly, where the
binary objective fits probabilities across all cutoffs at once. Each variant uses
configs/churn.yaml's tree settings, seeds 0 .. seeds-1, and early-stops on the validation
fold's PR-AUC (the binary booster as shipped on its log-loss, and once more on PR-AUC, so
the stopping rule is not what differs). The rule, fixed before
running: keep a variant only if its mean validation PR-AUC over the seeds exceeds the
binary booster's at both validation cutoffs, 2017-09-11 (as shipped) and 2017-08-14. The
test set is not scored.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from churn_gap_target import fold_line, probe_parser, validation_folds
from sklearn.metrics import average_precision_score

from features.labels import CHURNED
from training.propensity import churn
from training.propensity.gbdt import fit_gbdt, lgb_params

VARIANTS = {  # each early-stopped on validation PR-AUC; the first separates that from the loss
    "binary, stopped on AP": {"objective": "binary"},
    "rank_xendcg": {"objective": "rank_xendcg"},
    "lambdarank, whole list": {"objective": "lambdarank", "lambdarank_truncation_level": 10_000,
                               "label_gain": [0, 1]},
}


def _ap(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
    return "ap", float(average_precision_score(data.get_label(), preds)), True


def fit_rank(train, valid, spec, cfg, extra: dict) -> np.ndarray:
    """Raw validation scores of a ranking booster with one query per training cutoff."""
    train = train.sort_values(churn.CUTOFF, kind="stable")
    groups = train.groupby(churn.CUTOFF, sort=True).size().to_numpy()
    params = {**lgb_params(cfg), **extra, "metric": "None"}
    xt, xv = spec.matrix(train), spec.matrix(valid)
    categorical = [c for c in spec.names if c in spec.categories]
    train_set = lgb.Dataset(xt, label=train[CHURNED].to_numpy(), group=groups,
                            categorical_feature=categorical, free_raw_data=False)
    valid_set = lgb.Dataset(xv, label=valid[CHURNED].to_numpy(), group=[len(valid)],
                            reference=train_set)
    booster = lgb.train(params, train_set, num_boost_round=cfg.max_rounds,
                        valid_sets=[valid_set], valid_names=["valid"], feval=_ap,
                        callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)])
    return booster.predict(xv, num_iteration=booster.best_iteration), booster.best_iteration


def main() -> None:
    args = probe_parser(__doc__, seeds=dict(type=int, default=5)).parse_args()

    _, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        y = valid[CHURNED].to_numpy()
        print(fold_line(end, train, valid))
        binary = []
        for seed in range(args.seeds):
            seeded = cfg.model_copy(update={"seed": seed})
            fit = fit_gbdt(train, train[CHURNED].to_numpy(), spec, seeded, valid, y)
            binary.append(average_precision_score(y, fit.booster.predict(spec.matrix(valid))))
        print(f"  {'binary (shipped)':24s} mean PR-AUC {np.mean(binary):.4f}  "
              f"(range {min(binary):.4f}-{max(binary):.4f})")
        for name, extra in VARIANTS.items():
            scores, rounds = [], []
            for seed in range(args.seeds):
                raw, best = fit_rank(train, valid, spec, cfg.model_copy(update={"seed": seed}),
                                     extra)
                scores.append(average_precision_score(y, raw))
                rounds.append(best)
            print(f"  {name:24s} mean PR-AUC {np.mean(scores):.4f}  (range {min(scores):.4f}-"
                  f"{max(scores):.4f}, rounds {min(rounds)}-{max(rounds)})", flush=True)


if __name__ == "__main__":
    main()
