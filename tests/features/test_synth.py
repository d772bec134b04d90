"""Tests for the synthetic data generator: contract, determinism and the structure models need."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import schema as s
from features.sources import GrowthError
from features.synth import MINIMUMS, generate

SMALL = {"households": 300, "products": 800, "weeks": 20}
ARROW_KIND = {
    "id": pa.types.is_int64,
    "number": pa.types.is_float64,
    "timestamp": lambda t: pa.types.is_timestamp(t) and t.tz is None,
    "day": lambda t: pa.types.is_timestamp(t) and t.tz is None,
    "category": pa.types.is_string,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("synth")
    return out, generate(out, seed=0, **SMALL)


@pytest.fixture(scope="module")
def tables(small: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    out, _ = small
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in s.TABLES}


@pytest.fixture(scope="module")
def lines(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Transactions in time order."""
    return tables[s.TRANSACTIONS].sort_values(
        [s.HOUSEHOLD_ID, s.TRANSACTION_TIMESTAMP, s.BASKET_ID]).reset_index(drop=True)


def test_writes_every_table_with_contract_columns_and_types(small):
    out, counts = small
    assert set(counts) == set(s.TABLES)
    for name, table in s.TABLES.items():
        path = out / f"{name}.parquet"
        assert path.exists(), name
        arrow = pq.read_schema(path)
        assert set(table.required_columns) <= set(arrow.names), name
        for column in table.columns:  # optional columns are written too
            assert column.name in arrow.names, (name, column.name)
            assert ARROW_KIND[column.kind](arrow.field(column.name).type), (name, column.name)
        extra = [n for n in arrow.names if n not in {c.name for c in table.columns}]
        assert not extra or table.keep_extra_columns, (name, extra)
        assert all(pa.types.is_string(arrow.field(n).type) for n in extra), (name, extra)
        assert pq.read_metadata(path).num_rows == counts[name] > 0, name


def test_demographics_cover_about_a_third_of_households(tables):
    demo = tables[s.DEMOGRAPHICS]
    assert demo[s.HOUSEHOLD_ID].is_unique
    assert len(demo.columns) >= 4  # household_id plus categorical attributes
    share = len(demo) / SMALL["households"]
    assert 0.2 < share < 0.45
    assert set(demo[s.HOUSEHOLD_ID]) <= set(tables[s.TRANSACTIONS][s.HOUSEHOLD_ID])


def test_same_seed_gives_identical_files_and_another_seed_differs(small, tmp_path):
    out, counts = small
    again = generate(tmp_path / "again", seed=0, **SMALL)
    assert again == counts
    for name in s.TABLES:
        file = f"{name}.parquet"
        assert (tmp_path / "again" / file).read_bytes() == (out / file).read_bytes(), name
    generate(tmp_path / "other", seed=1, **SMALL)
    for name in (s.TRANSACTIONS, s.PRODUCTS, s.CAMPAIGNS, s.COUPON_REDEMPTIONS):
        file = f"{name}.parquet"
        assert (tmp_path / "other" / file).read_bytes() != (out / file).read_bytes(), name


def test_ids_are_unique_where_they_identify_rows(tables):
    assert tables[s.PRODUCTS][s.PRODUCT_ID].is_unique
    assert tables[s.CAMPAIGN_DESCRIPTIONS][s.CAMPAIGN_ID].is_unique
    assert not tables[s.CAMPAIGNS].duplicated([s.HOUSEHOLD_ID, s.CAMPAIGN_ID]).any()
    per_basket = tables[s.TRANSACTIONS].groupby(s.BASKET_ID).agg(
        households=(s.HOUSEHOLD_ID, "nunique"), times=(s.TRANSACTION_TIMESTAMP, "nunique"),
        stores=(s.STORE_ID, "nunique"))
    assert (per_basket == 1).all().all()


def test_transactions_are_consistent(tables):
    tx = tables[s.TRANSACTIONS]
    assert tx[s.PRODUCT_ID].isin(tables[s.PRODUCTS][s.PRODUCT_ID]).all()
    assert tx[s.HOUSEHOLD_ID].nunique() == SMALL["households"]
    assert not tx.isna().any().any()
    assert (tx[s.QUANTITY] >= 1).all() and (tx[s.SALES_VALUE] >= 0).all()
    start = tx[s.TRANSACTION_TIMESTAMP].min()
    assert tx[s.TRANSACTION_TIMESTAMP].max() < start.normalize() + pd.Timedelta(
        weeks=SMALL["weeks"])
    promo = (tx[s.RETAIL_DISC] > 0).mean()
    assert 0.01 < promo < 0.2
    # about 200 lines per household per 52 weeks
    per_week = len(tx) / SMALL["households"] / SMALL["weeks"]
    assert 200 / 52 * 0.6 < per_week < 200 / 52 * 1.5


def test_redemptions_match_campaigns_coupons_dates_and_lines(tables):
    red = tables[s.COUPON_REDEMPTIONS]
    pairs = red.merge(tables[s.CAMPAIGNS], on=[s.HOUSEHOLD_ID, s.CAMPAIGN_ID], how="left",
                      indicator=True)
    assert (pairs["_merge"] == "both").all()
    coupons = tables[s.COUPONS][[s.COUPON_UPC, s.CAMPAIGN_ID]].drop_duplicates()
    assert len(red.merge(coupons, on=[s.COUPON_UPC, s.CAMPAIGN_ID])) == len(red)
    dated = red.merge(tables[s.CAMPAIGN_DESCRIPTIONS], on=s.CAMPAIGN_ID)
    assert ((dated[s.REDEMPTION_DATE] >= dated[s.START_DATE])
            & (dated[s.REDEMPTION_DATE] <= dated[s.END_DATE])).all()
    tx = tables[s.TRANSACTIONS]
    coupon_days = tx.loc[tx[s.COUPON_DISC] > 0, [s.HOUSEHOLD_ID, s.TRANSACTION_TIMESTAMP]]
    coupon_days = coupon_days.assign(**{s.REDEMPTION_DATE: coupon_days.pop(
        s.TRANSACTION_TIMESTAMP).dt.normalize().astype(red[s.REDEMPTION_DATE].dtype)})
    found = red.merge(coupon_days.drop_duplicates(), on=[s.HOUSEHOLD_ID, s.REDEMPTION_DATE])
    assert len(found) == len(red)
    rate = len(red[[s.HOUSEHOLD_ID, s.CAMPAIGN_ID]].drop_duplicates()) / len(
        tables[s.CAMPAIGNS])
    assert 0.02 < rate < 0.2
    assert set(tables[s.CAMPAIGN_DESCRIPTIONS][s.CAMPAIGN_TYPE]) == {"Type A", "Type B",
                                                                       "Type C"}


def test_frequent_households_redeem_more(tables, lines):
    baskets = lines.groupby(s.HOUSEHOLD_ID)[s.BASKET_ID].nunique()
    pairs = tables[s.CAMPAIGNS].copy()
    redeemed = tables[s.COUPON_REDEMPTIONS][[s.HOUSEHOLD_ID, s.CAMPAIGN_ID]].drop_duplicates()
    pairs["redeemed"] = pairs.merge(redeemed, how="left", indicator=True)["_merge"].eq("both")
    frequent = pairs[s.HOUSEHOLD_ID].map(baskets) >= baskets.median()
    assert pairs.loc[frequent, "redeemed"].mean() > 1.5 * pairs.loc[~frequent, "redeemed"].mean()


def test_popularity_is_skewed(tables):
    per_product = tables[s.TRANSACTIONS][s.PRODUCT_ID].value_counts()
    top = per_product.iloc[: len(tables[s.PRODUCTS]) // 10].sum()
    assert top / per_product.sum() > 0.3


def test_households_buy_the_same_products_again(lines):
    first_basket = lines.groupby([s.HOUSEHOLD_ID, s.PRODUCT_ID])[
        s.TRANSACTION_TIMESTAMP].transform("min")
    repeat = (lines[s.TRANSACTION_TIMESTAMP] > first_basket).mean()
    assert repeat > 0.3


def test_some_households_churn_and_some_join_late(lines):
    start = lines[s.TRANSACTION_TIMESTAMP].min().normalize()
    end = start + pd.Timedelta(weeks=SMALL["weeks"])
    span = lines.groupby(s.HOUSEHOLD_ID)[s.TRANSACTION_TIMESTAMP].agg(["min", "max"])
    gone = (span["max"] < end - pd.Timedelta(weeks=6)).mean()
    assert 0.05 < gone < 0.5
    assert (span["min"] > start + pd.Timedelta(weeks=4)).mean() > 0.05


def test_baskets_happen_in_opening_hours(lines):
    hours = lines.drop_duplicates(s.BASKET_ID)[s.TRANSACTION_TIMESTAMP].dt.hour
    assert np.isin(hours, np.arange(5, 24)).all()
    assert hours.between(10, 19).mean() > 0.6


@pytest.mark.parametrize(("args", "expected"), [
    ({"households": 0}, "households must be at least 1, got 0"),
    ({"products": 10}, r"products must be at least 24 \(two per department"),
    ({"products": 23}, "products must be at least 24"),
    ({"weeks": 0}, "weeks must be at least 1, got 0"),
    ({"seed": -1}, "seed must be at least 0"),
    ({"weeks": 2.5}, "weeks must be a whole number, got 2.5"),
    ({"households": True}, "households must be a whole number"),
    ({"start_date": "2017-13-01"}, "start_date must be a date as YYYY-MM-DD"),
])
def test_rejects_impossible_arguments_with_a_clear_error(tmp_path, args, expected):
    with pytest.raises(GrowthError, match=expected):
        generate(tmp_path / "out", **{"households": 1, "products": 24, "weeks": 1, **args})
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_smallest_arguments_work(tmp_path):
    counts = generate(tmp_path, households=MINIMUMS["households"],
                      products=MINIMUMS["products"], weeks=MINIMUMS["weeks"],
                      seed=MINIMUMS["seed"])
    assert counts[s.PRODUCTS] == 24 and counts[s.TRANSACTIONS] > 0
