"""Test data builders: tiny hand-made data folders and a small sample of the embedded data.

Everything is built from the schema constants; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from features import schema as s
from features.sources import embedded_source


def write_folder(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write ``tables`` as ``<folder>/<table>.<fmt>``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Three households, four products, two campaigns: small enough to check by hand."""
    ts = pd.Timestamp
    lines = [
        # household 1: weekly shopper
        (1, 101, 10, 1, 2.50, ts("2017-01-02 09:00")),
        (1, 101, 11, 2, 4.00, ts("2017-01-02 09:00")),
        (1, 102, 10, 1, 2.50, ts("2017-01-09 18:30")),
        (1, 103, 12, 1, 10.00, ts("2017-01-16 12:00")),
        (1, 104, 10, 1, 2.50, ts("2017-01-30 10:00")),  # after 2017-01-23
        # household 2: one early basket, then churns
        (2, 201, 11, 3, 6.00, ts("2017-01-03 17:45")),
        # household 3: first buys after the as-of date used in tests
        (3, 301, 13, 1, 1.25, ts("2017-01-25 08:00")),
    ]
    transactions = pd.DataFrame(lines, columns=[
        s.HOUSEHOLD_ID, s.BASKET_ID, s.PRODUCT_ID, s.QUANTITY, s.SALES_VALUE,
        s.TRANSACTION_TIMESTAMP])
    transactions[s.STORE_ID] = [1, 1, 2, 1, 1, 3, 3]
    transactions[s.RETAIL_DISC] = [0.5, 0, 0, 1.0, 0, 0, 0]
    transactions[s.COUPON_DISC] = [0, 0, 0, 0.5, 0, 0, 0]
    transactions[s.COUPON_MATCH_DISC] = 0.0
    products = pd.DataFrame({
        s.PRODUCT_ID: [10, 11, 12, 13],
        s.DEPARTMENT: ["GROCERY", "GROCERY", "PRODUCE", "DELI"],
        s.BRAND: ["National", "Private", "National", "Private"],
        s.PRODUCT_CATEGORY: ["MILK", "BREAD", "FRUIT", "CHEESE"],
    })
    descriptions = pd.DataFrame({
        s.CAMPAIGN_ID: [1, 2],
        s.CAMPAIGN_TYPE: ["Type A", "Type B"],
        s.START_DATE: [ts("2017-01-05"), ts("2017-01-20")],
        s.END_DATE: [ts("2017-01-31"), ts("2017-02-20")],
    })
    campaigns = pd.DataFrame({s.HOUSEHOLD_ID: [1, 2, 1], s.CAMPAIGN_ID: [1, 1, 2]})
    coupons = pd.DataFrame({s.COUPON_UPC: [900, 901], s.PRODUCT_ID: [12, 10],
                            s.CAMPAIGN_ID: [1, 2]})
    redemptions = pd.DataFrame({
        s.HOUSEHOLD_ID: [1, 1], s.COUPON_UPC: [900, 901], s.CAMPAIGN_ID: [1, 2],
        s.REDEMPTION_DATE: [ts("2017-01-16"), ts("2017-01-30")]})
    return {
        s.TRANSACTIONS: transactions, s.PRODUCTS: products,
        s.CAMPAIGN_DESCRIPTIONS: descriptions, s.CAMPAIGNS: campaigns, s.COUPONS: coupons,
        s.COUPON_REDEMPTIONS: redemptions,
    }


def embedded_sample(n_households: int = 120) -> dict[str, pd.DataFrame]:
    """The first ``n_households`` households of the embedded data with their related rows."""
    files = embedded_source()
    con = duckdb.connect()
    h = s.HOUSEHOLD_ID

    def read(table: str, where: str = "") -> pd.DataFrame:
        return con.execute(f"SELECT * FROM read_parquet('{files[table]}') {where}").df()

    keep = f"WHERE {h} IN (SELECT DISTINCT {h} FROM read_parquet('{files[s.TRANSACTIONS]}') " \
           f"ORDER BY {h} LIMIT {n_households})"
    tx = read(s.TRANSACTIONS, keep)
    con.register("tx", tx)
    products = read(s.PRODUCTS, f"WHERE {s.PRODUCT_ID} IN (SELECT {s.PRODUCT_ID} FROM tx)")
    return {
        s.TRANSACTIONS: tx,
        s.PRODUCTS: products,
        s.DEMOGRAPHICS: read(s.DEMOGRAPHICS, keep),
        s.CAMPAIGNS: read(s.CAMPAIGNS, keep),
        s.CAMPAIGN_DESCRIPTIONS: read(s.CAMPAIGN_DESCRIPTIONS),
        s.COUPONS: read(s.COUPONS),
        s.COUPON_REDEMPTIONS: read(s.COUPON_REDEMPTIONS, keep),
    }
