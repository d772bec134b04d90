"""Point-in-time product features (DuckDB SQL): catalogue attributes, price, popularity.

Reads only transactions strictly before ``as_of``. Population: the catalogue (``products``)
when present, else products sold before ``as_of``.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.dataset import Dataset
from features.household import DAYS_52W, transactions_before

POPULARITY_WEEKS = (1, 2, 4, 13, 52)
NEW_BUYER_WEEKS = (1, 2, 4)
DISCOUNT_WEEKS = (1, 4)  # households whose first purchase of the product is this recent
CATALOG_COLUMNS = (s.DEPARTMENT, s.PRODUCT_CATEGORY, s.PRODUCT_TYPE, s.BRAND,
                   s.MANUFACTURER_ID, s.PACKAGE_SIZE)


def catalog_sql(ds: Dataset, lines: str) -> str:
    """SELECT of product_id and every catalogue attribute: the ``products`` table when
    present, else the products in ``lines`` (a table or CTE name) with null attributes."""
    if ds.has(s.PRODUCTS):
        return f"SELECT {s.PRODUCT_ID}, {', '.join(CATALOG_COLUMNS)} FROM {s.PRODUCTS}"
    nulls = ", ".join(f"NULL::{'BIGINT' if c == s.MANUFACTURER_ID else 'VARCHAR'} AS {c}"
                      for c in CATALOG_COLUMNS)
    return f"SELECT DISTINCT {s.PRODUCT_ID}, {nulls} FROM {lines}"


def product_features(ds: Dataset, as_of: date, cfg: DataConfig | None = None) -> pd.DataFrame:
    """One row per product with attributes, average unit price and popularity windows."""
    cfg = cfg or DataConfig()
    popularity = ",\n".join(
        f"count(*) FILTER (WHERE age_days <= {7 * w}) AS lines_{w}w, "
        f"count(DISTINCT {s.HOUSEHOLD_ID}) FILTER (WHERE age_days <= {7 * w}) "
        f"AS households_{w}w"
        for w in POPULARITY_WEEKS
    )
    catalog = catalog_sql(ds, "t")
    new_buyers = ", ".join(f"count(*) FILTER (WHERE first_age <= {7 * w}) AS new_buyers_{w}w"
                           for w in NEW_BUYER_WEEKS)
    new_cols = ", ".join(f"coalesce(rep.new_buyers_{w}w, 0) AS new_buyers_{w}w"
                         for w in NEW_BUYER_WEEKS)
    discount = ", ".join(  # share of recent lines sold with a retailer discount
        f"avg(CAST(retail_cents <> 0 AS DOUBLE)) FILTER (WHERE age_days <= {7 * w}) "
        f"AS discount_share_{w}w" for w in DISCOUNT_WEEKS)
    discount_cols = ", ".join(f"st.discount_share_{w}w" for w in DISCOUNT_WEEKS)
    q = s.QUANTITY
    priced = f"age_days <= {DAYS_52W} AND {q} > 0 AND {q} <= {cfg.quantity_outlier}"
    pop_cols = ", ".join(f"coalesce(st.lines_{w}w, 0) AS lines_{w}w, "
                         f"coalesce(st.households_{w}w, 0) AS households_{w}w"
                         for w in POPULARITY_WEEKS)
    sql = f"""
    WITH t AS ({transactions_before(as_of)}),
    st AS (
        SELECT {s.PRODUCT_ID}, {popularity},
               count(*) AS lines_all,
               coalesce(sum(cents) FILTER (WHERE {priced}), 0) AS price_cents,
               coalesce(sum({s.QUANTITY}) FILTER (WHERE {priced}), 0) AS price_units,
               min(age_days) AS days_since_last_sale, max(age_days) AS days_since_first_sale,
               {discount}
        FROM t GROUP BY 1),
    hh AS (
        SELECT {s.PRODUCT_ID}, {s.HOUSEHOLD_ID}, count(DISTINCT {s.BASKET_ID}) AS n_baskets,
               max(age_days) AS first_age
        FROM t GROUP BY 1, 2),
    rep AS (
        SELECT {s.PRODUCT_ID}, count(*) AS buyers_all,
               count(*) FILTER (WHERE n_baskets >= 2) AS repeat_buyers_all, {new_buyers}
        FROM hh GROUP BY 1),
    catalog AS ({catalog})
    SELECT c.*,
           CASE WHEN st.price_units > 0 THEN st.price_cents / st.price_units / 100.0 END
               AS avg_unit_price_52w,
           {pop_cols},
           coalesce(st.lines_all, 0) AS lines_all,
           coalesce(rep.buyers_all, 0) AS buyers_all, {new_cols},
           CAST(rep.repeat_buyers_all AS DOUBLE) / nullif(rep.buyers_all, 0) AS repeat_rate,
           st.days_since_last_sale, st.days_since_first_sale, {discount_cols}
    FROM catalog c
    LEFT JOIN st USING ({s.PRODUCT_ID})
    LEFT JOIN rep USING ({s.PRODUCT_ID})
    ORDER BY c.{s.PRODUCT_ID}
    """
    return ds.df(sql)
