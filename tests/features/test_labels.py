"""Labels and splits follow the standard settings and never label a window the data lacks."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.dataset import load_dataset
from features.labels import (
    CHURNED,
    IS_NEW,
    IS_TEST,
    REDEEMED,
    churn_cutoffs,
    churn_labels,
    coupon_pairs,
    features_at_campaign_starts,
    recommender_split,
)
from features.sources import DataContractError
from tests.fixtures import tiny_tables, write_folder


@pytest.fixture
def tiny(tiny_folder: Path, tmp_path: Path):
    return load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")


def test_churn_labels_and_horizon_boundary(tiny) -> None:
    as_of = date(2017, 1, 23)
    labels = churn_labels(tiny, as_of, 7).set_index(s.HOUSEHOLD_ID)[CHURNED]
    # household 1 comes back on Jan 30, the first day outside a 7-day window
    assert labels.to_dict() == {1: 1, 2: 1}
    assert churn_labels(tiny, as_of, 8).set_index(s.HOUSEHOLD_ID)[CHURNED].to_dict() == {
        1: 0, 2: 1}
    with pytest.raises(DataContractError, match="needs transactions through 2017-01-31"):
        churn_labels(tiny, as_of, 9)


def test_a_return_is_no_purchase(tmp_path: Path) -> None:
    """Household 2 last bought on Jan 3; a return on Jan 25 (negative quantity and value) or a
    refund (negative value only) does not keep it from churning, a purchase does."""
    as_of = date(2017, 1, 23)
    for name, quantity, value, churned in (("return", -1, -6.0, 1), ("refund", 0, -2.0, 1),
                                           ("purchase", 1, 2.0, 0)):
        tables = tiny_tables()
        tx = tables[s.TRANSACTIONS]
        line = tx[tx[s.HOUSEHOLD_ID] == 2].assign(**{
            s.BASKET_ID: 202, s.QUANTITY: quantity, s.SALES_VALUE: value,
            s.TRANSACTION_TIMESTAMP: pd.Timestamp("2017-01-25 10:00")})
        tables[s.TRANSACTIONS] = pd.concat([tx, line], ignore_index=True)
        ds = load_dataset(write_folder(tmp_path / name, tables), quarantine_dir=tmp_path / "q")
        labels = churn_labels(ds, as_of, 8).set_index(s.HOUSEHOLD_ID)[CHURNED]
        assert labels.to_dict() == {1: 0, 2: churned}, name


def test_churn_cutoffs_end_before_as_of() -> None:
    as_of, horizon = date(2017, 11, 6), 56
    cutoffs = churn_cutoffs(as_of, horizon, n_cutoffs=4, step_days=28)
    assert len(cutoffs) == 4 and cutoffs == sorted(cutoffs, reverse=True)
    assert all(c + timedelta(days=horizon) <= as_of for c in cutoffs)


def test_coupon_training_labels_ignore_redemptions_after_split(tiny) -> None:
    pairs = coupon_pairs(tiny, split_date=date(2017, 1, 25)).set_index(
        [s.HOUSEHOLD_ID, s.CAMPAIGN_ID])
    assert pairs[IS_TEST].sum() == 0
    assert pairs.loc[(1, 1), REDEEMED] == 1
    assert pairs.loc[(1, 2), REDEEMED] == 0  # redeemed on Jan 30, after the split
    test_pairs = coupon_pairs(tiny, split_date=date(2017, 1, 20)).set_index(
        [s.HOUSEHOLD_ID, s.CAMPAIGN_ID])
    assert test_pairs.loc[(1, 2), IS_TEST] == 1 and test_pairs.loc[(1, 2), REDEEMED] == 1


def test_coupon_features_are_as_of_each_campaign_start(tiny) -> None:
    pairs = coupon_pairs(tiny, split_date=date(2017, 1, 25))
    frame = features_at_campaign_starts(tiny, pairs).set_index([s.HOUSEHOLD_ID, s.CAMPAIGN_ID])
    # campaign 1 starts Jan 5: household 1 had one basket (Jan 2) before it
    assert frame.loc[(1, 1), "baskets_all"] == 1
    assert frame.loc[(1, 2), "baskets_all"] == 3  # campaign 2 starts Jan 20
    assert frame.loc[(1, 2), "redemptions_all"] == 1


def test_coupon_pairs_need_campaign_tables(tiny_folder: Path, tmp_path: Path) -> None:
    (tiny_folder / "campaigns.parquet").unlink()
    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    with pytest.raises(DataContractError, match="coupon-response model needs table 'campaigns'"):
        coupon_pairs(ds, date(2017, 1, 25))


def test_recommender_split(tiny) -> None:
    split = recommender_split(tiny, date(2017, 1, 23))
    assert list(split.households) == [1]  # household 3 has no history before as_of
    assert split.targets[[s.HOUSEHOLD_ID, s.PRODUCT_ID, IS_NEW]].values.tolist() == [[1, 10, 0]]
    assert (split.train[s.TRANSACTION_TIMESTAMP] < "2017-01-23").all()
    assert len(split.train) == 5
