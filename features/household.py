"""Point-in-time household features (DuckDB SQL).

A feature row as of ``as_of`` reads only transactions, campaigns and redemptions strictly
before ``as_of`` (midnight). Money is summed in integer cents and spreads come from integer
sums, so the same inputs give bit-identical values whatever DuckDB's thread schedule.
Population: households with at least one purchase before ``as_of``.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.dataset import Dataset
from features.validate import sql_ident, sql_str

DAYS_52W = 364
RECENCY = "recency_days"  # feature: days from the last purchase to the as-of date


def sql_date(d: date) -> str:
    """A DATE literal; ``d`` is a real date object, so nothing is interpolated unchecked."""
    return f"DATE '{date.fromisoformat(str(d)).isoformat()}'"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def transactions_before(as_of: date) -> str:
    """Line-level CTE body: the clean transactions before ``as_of`` with integer helpers."""
    d = sql_date(as_of)
    return f"""
        SELECT {s.HOUSEHOLD_ID}, {s.BASKET_ID}, {s.PRODUCT_ID}, {s.STORE_ID}, {s.QUANTITY},
               {s.TRANSACTION_TIMESTAMP} AS ts,
               CAST(round({s.SALES_VALUE} * 100) AS BIGINT) AS cents,
               CAST(round(abs({s.RETAIL_DISC}) * 100) AS BIGINT) AS retail_cents,
               CAST(round(abs({s.COUPON_DISC}) * 100) AS BIGINT) AS coupon_cents,
               {s.COUPON_DISC} <> 0 AS used_coupon,
               date_diff('day', CAST({s.TRANSACTION_TIMESTAMP} AS DATE), {d}) AS age_days
        FROM {s.TRANSACTIONS}
        WHERE {s.TRANSACTION_TIMESTAMP} < CAST({d} AS TIMESTAMP)
    """


def top_departments(ds: Dataset, n: int) -> list[str]:
    """The ``n`` departments with most products in the catalogue (static, so PIT-safe)."""
    if not ds.has(s.PRODUCTS) or n <= 0:
        return []
    rows = ds.con.execute(
        f"SELECT {s.DEPARTMENT} FROM {s.PRODUCTS} WHERE {s.DEPARTMENT} IS NOT NULL "
        f"GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {int(n)}").fetchall()
    return [r[0] for r in rows]


def _ratio(num: str, den: str) -> str:
    return f"CAST({num} AS DOUBLE) / nullif({den}, 0)"


def household_features(ds: Dataset, as_of: date, cfg: DataConfig | None = None) -> pd.DataFrame:
    """One row per household active before ``as_of``; see README for the feature list."""
    cfg = cfg or DataConfig()
    d = sql_date(as_of)
    windows = sorted(set(cfg.windows_weeks))
    window_cols = ",\n".join(
        f"count(*) FILTER (WHERE age_days <= {7 * w}) AS baskets_{w}w, "
        f"coalesce(sum(cents) FILTER (WHERE age_days <= {7 * w}), 0) AS cents_{w}w"
        for w in windows
    )
    spend_cols = ", ".join(f"b.cents_{w}w / 100.0 AS spend_{w}w, b.baskets_{w}w" for w in windows)
    depts = top_departments(ds, cfg.top_departments)
    has_products = ds.has(s.PRODUCTS)
    dept_sums = "".join(
        f", coalesce(sum(t.cents) FILTER (WHERE t.age_days <= {DAYS_52W} AND "
        f"p.{s.DEPARTMENT} = {sql_str(dept)}), 0) AS dept_{i}"
        for i, dept in enumerate(depts)
    )
    dept_cols = "".join(
        f", {_ratio(f'l.dept_{i}', 'l.cents_52w_lines')} AS dept_share_{slug(dept)}"
        for i, dept in enumerate(depts)
    )
    product_join = (f"LEFT JOIN {s.PRODUCTS} p ON p.{s.PRODUCT_ID} = t.{s.PRODUCT_ID}"
                    if has_products and depts else "")
    campaign_cte, campaign_cols, campaign_join = "", "", ""
    if ds.has(s.CAMPAIGNS) and ds.has(s.CAMPAIGN_DESCRIPTIONS):
        campaign_cte = f""",
        camp AS (
            SELECT c.{s.HOUSEHOLD_ID}, count(*) AS campaigns_received_all,
                   count(*) FILTER (WHERE d.{s.START_DATE} >= {d} - INTERVAL 182 DAY)
                       AS campaigns_received_26w
            FROM {s.CAMPAIGNS} c JOIN {s.CAMPAIGN_DESCRIPTIONS} d USING ({s.CAMPAIGN_ID})
            WHERE d.{s.START_DATE} < CAST({d} AS TIMESTAMP) GROUP BY 1)"""
        campaign_cols = (", coalesce(camp.campaigns_received_all, 0) AS campaigns_received_all"
                         ", coalesce(camp.campaigns_received_26w, 0) AS campaigns_received_26w")
        campaign_join = f"LEFT JOIN camp USING ({s.HOUSEHOLD_ID})"
    if ds.has(s.COUPON_REDEMPTIONS):
        campaign_cte += f""",
        red AS (
            SELECT {s.HOUSEHOLD_ID}, count(*) AS redemptions_all,
                   count(DISTINCT {s.CAMPAIGN_ID}) AS redeemed_campaigns_all,
                   min(date_diff('day', CAST({s.REDEMPTION_DATE} AS DATE), {d}))
                       AS days_since_last_redemption
            FROM {s.COUPON_REDEMPTIONS}
            WHERE {s.REDEMPTION_DATE} < CAST({d} AS TIMESTAMP) GROUP BY 1)"""
        campaign_cols += (", coalesce(red.redemptions_all, 0) AS redemptions_all"
                          ", coalesce(red.redeemed_campaigns_all, 0) AS redeemed_campaigns_all"
                          ", red.days_since_last_redemption")
        if ds.has(s.CAMPAIGNS) and ds.has(s.CAMPAIGN_DESCRIPTIONS):
            campaign_cols += (", " + _ratio("coalesce(red.redeemed_campaigns_all, 0)",
                                            "camp.campaigns_received_all")
                              + " AS campaign_redemption_rate")
        campaign_join += f" LEFT JOIN red USING ({s.HOUSEHOLD_ID})"
    demo_cols, demo_join = "", ""
    if ds.has(s.DEMOGRAPHICS):
        names = [c[0] for c in ds.con.execute(
            f"SELECT * FROM {s.DEMOGRAPHICS} LIMIT 0").description if c[0] != s.HOUSEHOLD_ID]
        demo_cols = "".join(f", demo.{sql_ident(n)} AS demo_{slug(n)}" for n in names)
        demo_join = f"LEFT JOIN {s.DEMOGRAPHICS} demo USING ({s.HOUSEHOLD_ID})"
    tiers = cfg.tiers
    sql = f"""
    WITH t AS ({transactions_before(as_of)}),
    baskets AS (
        SELECT {s.HOUSEHOLD_ID}, {s.BASKET_ID}, min(ts) AS ts, min(age_days) AS age_days,
               sum(cents) AS cents, count(*) AS lines
        FROM t GROUP BY 1, 2),
    b AS (
        SELECT {s.HOUSEHOLD_ID},
               min(age_days) AS recency_days, max(age_days) AS tenure_days,
               count(*) AS baskets_all, sum(cents) AS cents_all,
               {window_cols},
               coalesce(sum(lines) FILTER (WHERE age_days <= {DAYS_52W}), 0) AS lines_b52,
               count(*) FILTER (WHERE age_days <= {DAYS_52W} AND isodow(ts) >= 6) AS weekend_b52,
               count(*) FILTER (WHERE age_days <= {DAYS_52W} AND hour(ts) < 12) AS morning_b52,
               count(*) FILTER (WHERE age_days <= {DAYS_52W} AND hour(ts) >= 17) AS evening_b52,
               coalesce(sum(hour(ts)) FILTER (WHERE age_days <= {DAYS_52W}), 0) AS hours_b52
        FROM baskets GROUP BY 1),
    visits AS (SELECT DISTINCT {s.HOUSEHOLD_ID}, age_days FROM baskets),
    gaps AS (
        SELECT {s.HOUSEHOLD_ID},
               lag(age_days) OVER (PARTITION BY {s.HOUSEHOLD_ID} ORDER BY age_days DESC)
                   - age_days AS gap
        FROM visits),
    g AS (
        SELECT {s.HOUSEHOLD_ID}, count(gap) AS n, sum(gap) AS s1, sum(gap * gap) AS s2,
               max(gap) AS gap_max, quantile_disc(gap, 0.5) AS gap_median
        FROM gaps WHERE gap IS NOT NULL GROUP BY 1),
    l AS (
        SELECT t.{s.HOUSEHOLD_ID},
               count(DISTINCT t.{s.PRODUCT_ID}) FILTER (WHERE t.age_days <= {DAYS_52W})
                   AS distinct_products_52w,
               count(DISTINCT t.{s.PRODUCT_ID}) AS distinct_products_all,
               count(DISTINCT t.{s.STORE_ID}) FILTER (WHERE t.age_days <= {DAYS_52W})
                   AS store_count_52w,
               count(*) FILTER (WHERE t.age_days <= {DAYS_52W}) AS lines_52w,
               count(*) FILTER (WHERE t.age_days <= {DAYS_52W} AND t.used_coupon)
                   AS coupon_lines_52w,
               coalesce(sum(t.cents) FILTER (WHERE t.age_days <= {DAYS_52W}), 0)
                   AS cents_52w_lines,
               coalesce(sum(t.retail_cents) FILTER (WHERE t.age_days <= {DAYS_52W}), 0)
                   AS retail_cents_52w,
               coalesce(sum(t.coupon_cents) FILTER (WHERE t.age_days <= {DAYS_52W}), 0)
                   AS coupon_cents_52w
               {dept_sums}
        FROM t {product_join} GROUP BY 1)
    {campaign_cte}
    SELECT b.{s.HOUSEHOLD_ID},
           b.recency_days, b.tenure_days, b.baskets_all, b.cents_all / 100.0 AS spend_all,
           {spend_cols},
           {_ratio('b.cents_4w * 26', 'b.cents_26w * 4')} AS spend_trend_4w_26w,
           {_ratio('b.baskets_4w * 26', 'b.baskets_26w * 4')} AS visit_trend_4w_26w,
           {_ratio('b.cents_52w', 'b.baskets_52w * 100')} AS avg_basket_spend_52w,
           {_ratio('b.lines_b52', 'b.baskets_52w')} AS avg_basket_lines_52w,
           l.distinct_products_52w, l.distinct_products_all, l.store_count_52w,
           coalesce(g.n, 0) AS n_gaps,
           {_ratio('g.s1', 'g.n')} AS gap_mean_days,
           CASE WHEN g.n > 1 THEN sqrt(greatest(CAST(g.n * g.s2 - g.s1 * g.s1 AS DOUBLE), 0)
                / (g.n * (g.n - 1))) END AS gap_std_days,
           g.gap_median AS gap_median_days, g.gap_max AS gap_max_days,
           {_ratio('b.recency_days * g.n', 'g.s1')} AS overdue_ratio,
           {_ratio('b.weekend_b52', 'b.baskets_52w')} AS weekend_share_52w,
           {_ratio('b.morning_b52', 'b.baskets_52w')} AS morning_share_52w,
           {_ratio('b.evening_b52', 'b.baskets_52w')} AS evening_share_52w,
           {_ratio('b.hours_b52', 'b.baskets_52w')} AS mean_hour_52w,
           {_ratio('l.retail_cents_52w', 'l.cents_52w_lines')} AS retail_disc_share_52w,
           {_ratio('l.coupon_cents_52w', 'l.cents_52w_lines')} AS coupon_disc_share_52w,
           {_ratio('l.coupon_lines_52w', 'l.lines_52w')} AS coupon_line_share_52w
           {dept_cols}
           {campaign_cols}
           {demo_cols},
           CASE WHEN b.cents_52w >= {round(tiers.platinum * 100)} THEN 'platinum'
                WHEN b.cents_52w >= {round(tiers.gold * 100)} THEN 'gold'
                WHEN b.cents_52w >= {round(tiers.silver * 100)} THEN 'silver'
                ELSE 'bronze' END AS member_tier
    FROM b
    JOIN l USING ({s.HOUSEHOLD_ID})
    LEFT JOIN g USING ({s.HOUSEHOLD_ID})
    {campaign_join}
    {demo_join}
    ORDER BY b.{s.HOUSEHOLD_ID}
    """
    return ds.df(sql)
