"""Labels and temporal splits for the three model families (standard settings in design.md).

- churn: label = no purchase in ``[as_of, as_of + horizon)``, for households that bought
  before ``as_of``; training cutoffs are earlier dates whose label windows end by ``as_of``.
- coupon response: one row per (household, campaign received); label = redeemed any coupon
  of that campaign; training rows only count redemptions before the split date.
- recommender: lines before ``as_of`` train; distinct products bought in ``[as_of, end)`` by
  households active on both sides are the test targets, flagged when new to the household.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.dataset import Dataset
from features.household import household_features, sql_date
from features.sources import DataContractError

CHURNED = "churned"
REDEEMED = "redeemed"
IS_TEST = "is_test"
IS_NEW = "is_new"


def check_covers(ds: Dataset, until: date, purpose: str) -> None:
    """Labels need data through ``until - 1 day``; refuse to label a window the data lacks."""
    _, last = ds.time_range()
    if last.date() < until - timedelta(days=1):
        raise DataContractError(
            f"{purpose} needs transactions through {until - timedelta(days=1)}, "
            f"but {ds.source} ends on {last.date()}")


def churn_labels(ds: Dataset, as_of: date, horizon_days: int) -> pd.DataFrame:
    """``household_id, churned`` (1 = no purchase within the horizon: a return or refund line,
    ``schema.RETURN_LINE``, is none) for households active before ``as_of``."""
    end = as_of + timedelta(days=horizon_days)
    check_covers(ds, end, f"churn labels as of {as_of} with a {horizon_days}-day horizon")
    h, ts = s.HOUSEHOLD_ID, s.TRANSACTION_TIMESTAMP
    return ds.df(f"""
        SELECT {h},
               CAST(count(*) FILTER (WHERE {ts} >= CAST({sql_date(as_of)} AS TIMESTAMP)
                                     AND {ts} < CAST({sql_date(end)} AS TIMESTAMP)
                                     AND NOT {s.RETURN_LINE}) = 0
                    AS INTEGER) AS {CHURNED}
        FROM {s.TRANSACTIONS}
        GROUP BY {h}
        HAVING min({ts}) < CAST({sql_date(as_of)} AS TIMESTAMP)
        ORDER BY {h}""")


def churn_cutoffs(as_of: date, horizon_days: int, n_cutoffs: int, step_days: int) -> list[date]:
    """Training cutoffs, newest first, each with its label window ending on or before as_of."""
    latest = as_of - timedelta(days=horizon_days)
    return [latest - timedelta(days=step_days * i) for i in range(n_cutoffs)]


def coupon_pairs(ds: Dataset, split_date: date) -> pd.DataFrame:
    """One row per (household, campaign) in ``campaigns`` with campaign attributes, the label
    and ``is_test`` (campaign starts on or after ``split_date``)."""
    for table in (s.CAMPAIGNS, s.CAMPAIGN_DESCRIPTIONS, s.COUPON_REDEMPTIONS):
        ds.require(table, "the coupon-response model")
    h, c = s.HOUSEHOLD_ID, s.CAMPAIGN_ID
    split = f"CAST({sql_date(split_date)} AS TIMESTAMP)"
    return ds.df(f"""
        SELECT p.{h}, p.{c}, d.{s.CAMPAIGN_TYPE}, d.{s.START_DATE}, d.{s.END_DATE},
               CAST(d.{s.START_DATE} >= {split} AS INTEGER) AS {IS_TEST},
               CAST(EXISTS (
                   SELECT 1 FROM {s.COUPON_REDEMPTIONS} r
                   WHERE r.{h} = p.{h} AND r.{c} = p.{c}
                     AND (d.{s.START_DATE} >= {split} OR r.{s.REDEMPTION_DATE} < {split})
               ) AS INTEGER) AS {REDEEMED}
        FROM {s.CAMPAIGNS} p JOIN {s.CAMPAIGN_DESCRIPTIONS} d USING ({c})
        ORDER BY d.{s.START_DATE}, p.{c}, p.{h}""")


def features_at_campaign_starts(ds: Dataset, pairs: pd.DataFrame,
                                cfg: DataConfig | None = None) -> pd.DataFrame:
    """``pairs`` joined with household features as of each campaign's start date."""
    parts = []
    for start, group in pairs.groupby(s.START_DATE, sort=True):
        feats = household_features(ds, pd.Timestamp(start).date(), cfg)
        parts.append(group.merge(feats, on=s.HOUSEHOLD_ID, how="left"))
    return pd.concat(parts, ignore_index=True)


@dataclass
class RecommenderSplit:
    as_of: date
    end: date | None
    train: pd.DataFrame  # all clean lines before as_of
    targets: pd.DataFrame  # household_id, product_id, is_new: distinct test purchases
    households: pd.Series  # evaluated households: bought before as_of and in the window


def recommender_split(ds: Dataset, as_of: date, end: date | None = None) -> RecommenderSplit:
    """Temporal split at ``as_of``; the test window runs to ``end`` (default: end of data)."""
    h, p, ts = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.TRANSACTION_TIMESTAMP
    start = f"CAST({sql_date(as_of)} AS TIMESTAMP)"
    stop = f"AND {ts} < CAST({sql_date(end)} AS TIMESTAMP)" if end else ""
    train = ds.df(f"SELECT * FROM {s.TRANSACTIONS} WHERE {ts} < {start}")
    targets = ds.df(f"""
        WITH test AS (SELECT DISTINCT {h}, {p} FROM {s.TRANSACTIONS}
                      WHERE {ts} >= {start} {stop}),
             before AS (SELECT DISTINCT {h}, {p} FROM {s.TRANSACTIONS} WHERE {ts} < {start}),
             active AS (SELECT DISTINCT {h} FROM before)
        SELECT t.{h}, t.{p}, CAST(b.{p} IS NULL AS INTEGER) AS {IS_NEW}
        FROM test t JOIN active USING ({h})
        LEFT JOIN before b ON b.{h} = t.{h} AND b.{p} = t.{p}
        ORDER BY t.{h}, t.{p}""")
    households = pd.Series(targets[h].unique(), name=h)
    return RecommenderSplit(as_of, end, train, targets, households)
