"""Point-in-time campaign and coupon features (DuckDB SQL).

- ``campaign_exposure``: per household, the campaigns it received that are running on
  ``as_of`` (started before it, not yet ended), by campaign type, and how recently one
  started. Who receives a campaign is fixed when it starts, so this reads nothing after
  ``as_of``; the by-type columns are the types of campaigns starting before ``as_of`` (or
  before a later ``types_before``, a model's data end, so that every training cutoff of one
  model has the same columns: a type that has not started yet counts 0).
- ``coupon_features``: per (household, campaign) pair, as of the campaign's start: what the
  campaign offers (type, length, coupons, products covered) and the household's history with
  those products, with coupons and with earlier campaigns of the same type. Only
  transactions, redemptions and campaigns dated before the start are read.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.household import DAYS_52W, slug, sql_date


def campaign_types(ds: Dataset, before: date) -> list[str]:
    """Types of the campaigns in ``campaign_descriptions`` that start before ``before``."""
    rows = ds.con.execute(f"SELECT DISTINCT {s.CAMPAIGN_TYPE} FROM {s.CAMPAIGN_DESCRIPTIONS} "
                          f"WHERE {s.CAMPAIGN_TYPE} IS NOT NULL AND {s.START_DATE} < "
                          f"CAST({sql_date(before)} AS TIMESTAMP) ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def campaign_exposure(ds: Dataset, as_of: date, types_before: date | None = None
                      ) -> pd.DataFrame | None:
    """``household_id`` plus running-campaign counts as of ``as_of``, one count per type of
    the campaigns starting before ``types_before`` (default ``as_of``); None without the
    campaign tables. Households with no campaign received before ``as_of`` are absent."""
    if not (ds.has(s.CAMPAIGNS) and ds.has(s.CAMPAIGN_DESCRIPTIONS)):
        return None
    h, d = s.HOUSEHOLD_ID, sql_date(as_of)
    start = f"CAST({d} AS TIMESTAMP)"
    running = f"d.{s.START_DATE} < {start} AND d.{s.END_DATE} >= {start}"
    by_type = "".join(
        f", count(*) FILTER (WHERE {running} AND d.{s.CAMPAIGN_TYPE} = "
        f"'{t.replace(chr(39), chr(39) * 2)}') AS running_campaigns_{slug(t)}"
        for t in campaign_types(ds, types_before or as_of))
    return ds.df(f"""
        SELECT c.{h}, count(*) FILTER (WHERE {running}) AS running_campaigns {by_type},
               max(date_diff('day', CAST(d.{s.END_DATE} AS DATE), {d}))
                   FILTER (WHERE {running}) AS running_campaign_days_left,
               min(date_diff('day', CAST(d.{s.START_DATE} AS DATE), {d}))
                   AS days_since_campaign_start
        FROM {s.CAMPAIGNS} c JOIN {s.CAMPAIGN_DESCRIPTIONS} d USING ({s.CAMPAIGN_ID})
        WHERE d.{s.START_DATE} < {start}
        GROUP BY 1 ORDER BY 1""")


def coupon_features(ds: Dataset, pairs: pd.DataFrame) -> pd.DataFrame:
    """Campaign-offer and household-history features for each (household, campaign) pair.

    ``pairs`` needs ``household_id``, ``campaign_id``, ``start_date`` (as ``coupon_pairs``
    returns). One row per pair, in the order given; everything is read as of the pair's
    campaign start (transactions, redemptions and campaigns strictly before it).
    """
    for table in s.COUPON_TABLES:
        ds.require(table, "coupon-response features")
    h, c, p = s.HOUSEHOLD_ID, s.CAMPAIGN_ID, s.PRODUCT_ID
    keys = pairs[[h, c, s.START_DATE]].reset_index(drop=True).copy()
    keys["pair_row"] = range(len(keys))
    ds.con.register("coupon_pair_keys", keys)
    try:
        return ds.df(f"""
        WITH pk AS (SELECT pair_row, {h}, {c}, CAST({s.START_DATE} AS TIMESTAMP) AS start_ts
                    FROM coupon_pair_keys),
        offer AS (
            SELECT d.{c}, date_diff('day', CAST(d.{s.START_DATE} AS DATE),
                                    CAST(d.{s.END_DATE} AS DATE)) AS campaign_days,
                   (SELECT count(DISTINCT k.{s.COUPON_UPC}) FROM {s.COUPONS} k
                    WHERE k.{c} = d.{c}) AS campaign_coupons,
                   (SELECT count(DISTINCT k.{p}) FROM {s.COUPONS} k
                    WHERE k.{c} = d.{c}) AS campaign_products,
                   (SELECT count(*) FROM {s.CAMPAIGNS} r WHERE r.{c} = d.{c})
                       AS campaign_recipients
            FROM {s.CAMPAIGN_DESCRIPTIONS} d),
        covered AS (SELECT DISTINCT {c}, {p} FROM {s.COUPONS}),
        lines AS (
            SELECT pk.pair_row,
                   date_diff('day', CAST(t.{s.TRANSACTION_TIMESTAMP} AS DATE),
                             CAST(pk.start_ts AS DATE)) AS age_days,
                   CAST(round(t.{s.SALES_VALUE} * 100) AS BIGINT) AS cents,
                   t.{s.COUPON_DISC} <> 0 AS used_coupon, t.{p}, t.{s.BASKET_ID}
            FROM pk
            JOIN {s.TRANSACTIONS} t ON t.{h} = pk.{h} AND t.{s.TRANSACTION_TIMESTAMP} < pk.start_ts
                 AND t.{s.TRANSACTION_TIMESTAMP} >= pk.start_ts - INTERVAL {DAYS_52W} DAY
            JOIN covered cv ON cv.{c} = pk.{c} AND cv.{p} = t.{p}),
        bought AS (
            SELECT pair_row,
                   sum(cents) / 100.0 AS covered_spend_52w,
                   coalesce(sum(cents) FILTER (WHERE age_days <= 91), 0) / 100.0
                       AS covered_spend_13w,
                   coalesce(sum(cents) FILTER (WHERE age_days <= 28), 0) / 100.0
                       AS covered_spend_4w,
                   count(DISTINCT {p}) AS covered_products_bought_52w,
                   count(DISTINCT {s.BASKET_ID}) AS covered_baskets_52w,
                   count(*) FILTER (WHERE used_coupon) AS covered_coupon_lines_52w
            FROM lines GROUP BY 1),
        coupon_use AS (
            SELECT pk.pair_row,
                   count(*) FILTER (WHERE t.{s.COUPON_DISC} <> 0 AND t.{s.TRANSACTION_TIMESTAMP}
                                    >= pk.start_ts - INTERVAL 28 DAY) AS coupon_lines_4w,
                   count(*) FILTER (WHERE t.{s.COUPON_DISC} <> 0 AND t.{s.TRANSACTION_TIMESTAMP}
                                    >= pk.start_ts - INTERVAL 91 DAY) AS coupon_lines_13w,
                   count(*) FILTER (WHERE t.{s.COUPON_DISC} <> 0) AS coupon_lines_52w,
                   count(*) FILTER (WHERE t.{s.COUPON_MATCH_DISC} <> 0) AS coupon_match_lines_52w,
                   count(DISTINCT t.{s.BASKET_ID}) FILTER (WHERE t.{s.COUPON_DISC} <> 0)
                       AS coupon_baskets_52w,
                   count(DISTINCT t.{p}) FILTER (WHERE t.{s.COUPON_DISC} <> 0)
                       AS coupon_products_52w,
                   CAST(count(DISTINCT t.{s.BASKET_ID}) FILTER (WHERE t.{s.COUPON_DISC} <> 0)
                        AS DOUBLE) / count(DISTINCT t.{s.BASKET_ID}) AS coupon_basket_share_52w,
                   min(date_diff('day', CAST(t.{s.TRANSACTION_TIMESTAMP} AS DATE),
                                 CAST(pk.start_ts AS DATE)))
                       FILTER (WHERE t.{s.COUPON_DISC} <> 0) AS days_since_coupon_use,
                   sum(round(t.{s.SALES_VALUE} * 100)) / 100.0 AS spend_52w,
                   count(DISTINCT t.{p}) AS products_52w
            FROM pk JOIN {s.TRANSACTIONS} t ON t.{h} = pk.{h}
                 AND t.{s.TRANSACTION_TIMESTAMP} < pk.start_ts
                 AND t.{s.TRANSACTION_TIMESTAMP} >= pk.start_ts - INTERVAL {DAYS_52W} DAY
            GROUP BY 1),
        first_redeemed AS (
            SELECT {h}, {c}, min({s.REDEMPTION_DATE}) AS first_ts, count(*) AS n
            FROM {s.COUPON_REDEMPTIONS} GROUP BY 1, 2),
        history AS (
            SELECT pk.pair_row,
                   count(*) FILTER (WHERE d.{s.CAMPAIGN_TYPE} = this.{s.CAMPAIGN_TYPE})
                       AS prior_same_type_received,
                   count(*) FILTER (WHERE fr.first_ts < pk.start_ts) AS prior_redeemed_campaigns,
                   count(*) FILTER (WHERE fr.first_ts < pk.start_ts
                                    AND d.{s.CAMPAIGN_TYPE} = this.{s.CAMPAIGN_TYPE})
                       AS prior_same_type_redeemed,
                   count(*) FILTER (WHERE d.{s.END_DATE} >= pk.start_ts) AS overlapping_campaigns
            FROM pk
            JOIN {s.CAMPAIGN_DESCRIPTIONS} this ON this.{c} = pk.{c}
            JOIN {s.CAMPAIGNS} r ON r.{h} = pk.{h}
            JOIN {s.CAMPAIGN_DESCRIPTIONS} d ON d.{c} = r.{c} AND d.{s.START_DATE} < pk.start_ts
            LEFT JOIN first_redeemed fr ON fr.{h} = r.{h} AND fr.{c} = r.{c}
            GROUP BY 1),
        same_upc AS (
            SELECT pk.pair_row, count(*) AS prior_redemptions_of_offered_coupons
            FROM pk JOIN {s.COUPON_REDEMPTIONS} x ON x.{h} = pk.{h}
                 AND x.{s.REDEMPTION_DATE} < pk.start_ts
            WHERE x.{s.COUPON_UPC} IN (SELECT k.{s.COUPON_UPC} FROM {s.COUPONS} k
                                     WHERE k.{c} = pk.{c})
            GROUP BY 1)
        SELECT pk.{h}, pk.{c}, o.campaign_days, o.campaign_coupons, o.campaign_products,
               o.campaign_recipients,
               coalesce(b.covered_spend_52w, 0) AS covered_spend_52w,
               coalesce(b.covered_spend_13w, 0) AS covered_spend_13w,
               coalesce(b.covered_spend_4w, 0) AS covered_spend_4w,
               coalesce(b.covered_products_bought_52w, 0) AS covered_products_bought_52w,
               coalesce(b.covered_baskets_52w, 0) AS covered_baskets_52w,
               coalesce(b.covered_coupon_lines_52w, 0) AS covered_coupon_lines_52w,
               CAST(coalesce(b.covered_products_bought_52w, 0) AS DOUBLE)
                   / nullif(o.campaign_products, 0) AS covered_products_share,
               coalesce(b.covered_spend_52w, 0) / nullif(u.spend_52w, 0)
                   AS covered_spend_share_52w,
               CAST(coalesce(b.covered_products_bought_52w, 0) AS DOUBLE)
                   / nullif(u.products_52w, 0) AS covered_share_of_own_products,
               coalesce(u.coupon_lines_4w, 0) AS coupon_lines_4w,
               coalesce(u.coupon_lines_13w, 0) AS coupon_lines_13w,
               coalesce(u.coupon_lines_52w, 0) AS coupon_lines_52w,
               coalesce(u.coupon_baskets_52w, 0) AS coupon_baskets_52w,
               coalesce(u.coupon_match_lines_52w, 0) AS coupon_match_lines_52w,
               coalesce(u.coupon_products_52w, 0) AS coupon_products_52w,
               u.coupon_basket_share_52w, u.days_since_coupon_use,
               coalesce(hi.prior_same_type_received, 0) AS prior_same_type_received,
               coalesce(hi.prior_redeemed_campaigns, 0) AS prior_redeemed_campaigns,
               coalesce(hi.prior_same_type_redeemed, 0) AS prior_same_type_redeemed,
               CAST(hi.prior_same_type_redeemed AS DOUBLE)
                   / nullif(hi.prior_same_type_received, 0) AS prior_same_type_redeem_rate,
               coalesce(hi.overlapping_campaigns, 0) AS overlapping_campaigns,
               coalesce(su.prior_redemptions_of_offered_coupons, 0)
                   AS prior_redemptions_of_offered_coupons
        FROM pk
        JOIN offer o ON o.{c} = pk.{c}
        LEFT JOIN bought b USING (pair_row)
        LEFT JOIN coupon_use u USING (pair_row)
        LEFT JOIN history hi USING (pair_row)
        LEFT JOIN same_upc su USING (pair_row)
        ORDER BY pk.pair_row""")
    finally:
        ds.con.unregister("coupon_pair_keys")
