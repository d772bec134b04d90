"""Churn probe: does the household's main store say anything its own history does not?
Not shipped unless it passes; the figures are in BENCHMARKS.md.

    .venv/bin/python benchmarks/churn_store_features.py [--seeds 15] [--data DIR]

Six features as of each cutoff, from transactions before it only: the share of the
household's visit days (last 26 weeks) at its main store; and for that store, the days since
anyone last visited it, its traffic trend (visit days in the last 4 weeks against the 12
before), how many households it is the main store of, the share of those silent for 28+ days,
and the share of those active before the 56 days ahead of the cutoff who did not visit in
those 56 days (the store's last-window churn rate, read before the cutoff). The booster
runs at configs/churn.yaml's settings with and without them.

The rule, as in the earlier probes: keep the family only if mean validation PR-AUC over the
seeds rises at both validation cutoffs, 2017-09-11 (as shipped) and 2017-08-14. The test set
is not scored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from churn_gap_target import probe_parser, validation_folds
from sklearn.metrics import average_precision_score

from features import schema as s
from features.labels import CHURNED
from training.propensity import churn
from training.propensity.gbdt import FeatureSpec, fit_gbdt

STORE_SQL = f"""
WITH v AS (SELECT DISTINCT {s.HOUSEHOLD_ID} AS hh, {s.STORE_ID} AS store,
                  CAST({s.TRANSACTION_TIMESTAMP} AS DATE) AS d
           FROM {s.TRANSACTIONS} WHERE {s.TRANSACTION_TIMESTAMP} < CAST($cutoff AS TIMESTAMP)),
main AS (SELECT hh, arg_max(store, n) AS store, max(n) / sum(n) AS main_store_share
         FROM (SELECT hh, store, count(*) AS n FROM v
               WHERE d >= CAST($cutoff AS DATE) - INTERVAL 182 DAY GROUP BY ALL) GROUP BY hh),
last AS (SELECT hh, max(d) AS last_day, min(d) AS first_day FROM v GROUP BY hh),
back AS (SELECT DISTINCT hh FROM v WHERE d >= CAST($cutoff AS DATE) - INTERVAL 56 DAY),
traffic AS (SELECT store, CAST($cutoff AS DATE) - max(d) AS store_quiet_days,
                   count(*) FILTER (WHERE d >= CAST($cutoff AS DATE) - INTERVAL 28 DAY) AS recent,
                   count(*) FILTER (WHERE d < CAST($cutoff AS DATE) - INTERVAL 28 DAY
                                    AND d >= CAST($cutoff AS DATE) - INTERVAL 112 DAY) AS before
            FROM v GROUP BY store),
members AS (SELECT main.store, count(*) AS store_households,
                   avg(CAST(CAST($cutoff AS DATE) - last_day >= 28 AS DOUBLE))
                       AS store_silent_share,
                   avg(CAST(back.hh IS NULL AS DOUBLE)) FILTER (
                       WHERE first_day < CAST($cutoff AS DATE) - INTERVAL 56 DAY)
                       AS store_prev_churn
            FROM main JOIN last USING (hh) LEFT JOIN back USING (hh) GROUP BY main.store)
SELECT main.hh AS {s.HOUSEHOLD_ID}, main_store_share, store_quiet_days,
       recent / (before / 3.0 + 1) AS store_trend, store_households, store_silent_share,
       store_prev_churn
FROM main JOIN traffic USING (store) JOIN members USING (store)"""


def with_store_features(ds, frame: pd.DataFrame) -> pd.DataFrame:
    parts = [rows.merge(ds.df(STORE_SQL.replace("$cutoff", f"'{cutoff.date()}'")),
                        on=s.HOUSEHOLD_ID, how="left")
             for cutoff, rows in frame.groupby(churn.CUTOFF)]
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    args = probe_parser(__doc__, seeds=dict(type=int, default=15)).parse_args()

    ds, cfg, spec, folds = validation_folds(args.data)
    for end, train, valid in folds:
        store_train, store_valid = with_store_features(ds, train), with_store_features(ds, valid)
        store_spec = FeatureSpec.infer(pd.concat([store_train, store_valid]),
                                       exclude=churn.NOT_FEATURES)
        print(f"validation {end}: {len(train):,} training rows, {len(valid):,} validation rows")
        for name, sp, tr, va in (("shipped features", spec, train, valid),
                                 ("+ store features", store_spec, store_train, store_valid)):
            y = va[CHURNED].to_numpy()
            scores = []
            for seed in range(args.seeds):
                fit = fit_gbdt(tr, tr[CHURNED].to_numpy(), sp,
                               cfg.model_copy(update={"seed": seed}), va, y)
                scores.append(average_precision_score(y, fit.booster.predict(sp.matrix(va))))
            seeds = " / ".join(f"{v:.4f}" for v in scores)
            print(f"  {name}  mean PR-AUC {np.mean(scores):.4f}  (seeds 0-4 "
                  f"{np.mean(scores[:5]):.4f}; by seed {seeds})", flush=True)


if __name__ == "__main__":
    main()
