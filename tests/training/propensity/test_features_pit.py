"""Coupon and churn features on the hand-made tiny folder: values checked by hand, and
nothing on or after the as-of date (the campaign start) is read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.coupon import campaign_exposure, coupon_features
from features.dataset import load_dataset
from features.labels import coupon_pairs
from tests.fixtures import tiny_tables, write_folder
from training.propensity.churn import cadence_features, churn_features


@pytest.fixture
def ds(tiny_folder: Path, tmp_path: Path):
    return load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")


def test_coupon_features_by_hand(ds) -> None:
    pairs = coupon_pairs(ds, date(2017, 1, 25))
    feats = coupon_features(ds, pairs).set_index([s.HOUSEHOLD_ID, s.CAMPAIGN_ID])
    hh1_c2 = feats.loc[(1, 2)]  # campaign 2 starts 2017-01-20 and covers product 10
    assert hh1_c2["covered_spend_52w"] == pytest.approx(5.0)  # 01-02 and 01-09; not 01-30
    assert hh1_c2["covered_baskets_52w"] == 2
    assert hh1_c2["coupon_lines_52w"] == 1  # the 01-16 line with a coupon discount
    assert hh1_c2["prior_redeemed_campaigns"] == 1  # campaign 1, redeemed 01-16
    assert hh1_c2["prior_same_type_received"] == 0  # campaign 1 is another type
    assert hh1_c2["overlapping_campaigns"] == 1  # campaign 1 runs to 01-31
    assert hh1_c2["prior_redemptions_of_offered_coupons"] == 0  # 901 redeemed only on 01-30
    assert hh1_c2["campaign_days"] == 31 and hh1_c2["campaign_recipients"] == 1
    hh1_c1 = feats.loc[(1, 1)]  # starts 01-05: product 12 first bought on 01-16
    assert hh1_c1["covered_spend_52w"] == 0 and hh1_c1["prior_redeemed_campaigns"] == 0
    assert len(feats) == len(pairs)


def test_campaign_exposure_counts_running_campaigns(ds) -> None:
    exposure = campaign_exposure(ds, date(2017, 1, 25)).set_index(s.HOUSEHOLD_ID)
    assert exposure.loc[1, "running_campaigns"] == 2
    assert exposure.loc[1, "running_campaigns_type_a"] == 1
    assert exposure.loc[2, "running_campaigns"] == 1
    assert exposure.loc[1, "days_since_campaign_start"] == 5


def test_cadence_features_by_hand(ds) -> None:
    feats = cadence_features(ds, date(2017, 1, 23), horizon_days=14).set_index(s.HOUSEHOLD_ID)
    hh1 = feats.loc[1]  # visits 01-02, 01-09, 01-16: gaps of 7 days, silent for 7
    assert hh1["last_gap_days"] == 7 and hh1["recent_gap_mean_days"] == 7
    assert hh1["gap_survival_at_recency"] == 0
    assert hh1["baskets_week_0"] == 1 and hh1["baskets_week_1"] == 1
    assert 3 not in feats.index  # first purchase after the cutoff


def test_churn_features_ignore_rows_after_the_cutoff(tiny_folder: Path, tmp_path: Path) -> None:
    before = churn_features(load_dataset(tiny_folder, quarantine_dir=tmp_path / "a"),
                            date(2017, 1, 23), 14)
    tx = pd.read_parquet(tiny_folder / f"{s.TRANSACTIONS}.parquet")
    later = tx.iloc[[0]].assign(**{s.BASKET_ID: 999, s.TRANSACTION_TIMESTAMP:
                                   pd.Timestamp("2017-01-23 00:00")})
    pd.concat([tx, later]).to_parquet(tiny_folder / f"{s.TRANSACTIONS}.parquet", index=False)
    # a campaign of a type no earlier campaign has, starting on the cutoff, received by all
    descriptions = pd.read_parquet(tiny_folder / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet")
    pd.concat([descriptions, pd.DataFrame({
        s.CAMPAIGN_ID: [3], s.CAMPAIGN_TYPE: ["Type Z"],
        s.START_DATE: [pd.Timestamp("2017-01-23")], s.END_DATE: [pd.Timestamp("2017-02-23")]})]
    ).to_parquet(
        tiny_folder / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet", index=False)
    received = pd.read_parquet(tiny_folder / f"{s.CAMPAIGNS}.parquet")
    pd.concat([received, pd.DataFrame({s.HOUSEHOLD_ID: [1, 2, 3], s.CAMPAIGN_ID: 3})]).to_parquet(
        tiny_folder / f"{s.CAMPAIGNS}.parquet", index=False)
    after = churn_features(load_dataset(tiny_folder, quarantine_dir=tmp_path / "b"),
                           date(2017, 1, 23), 14)
    pd.testing.assert_frame_equal(before, after)  # no running_campaigns_type_z column
    # a model whose data end after the new campaign starts has its column at every cutoff
    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "c")
    fixed = churn_features(ds, date(2017, 1, 23), 14, types_before=date(2017, 2, 1))
    assert (fixed["running_campaigns_type_z"] == 0).all()
    pd.testing.assert_frame_equal(before, fixed.drop(columns="running_campaigns_type_z"))


def _campaign_2_with_same_day_rows(start: object) -> dict[str, pd.DataFrame]:
    """The tiny tables with a purchase of campaign 2's product and a redemption of its own
    coupon on its start day (2017-01-20), and its start written as ``start``."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    same_day = tx.iloc[[0]].assign(**{s.BASKET_ID: 555, s.PRODUCT_ID: 10, s.SALES_VALUE: 100.0,
                                      s.TRANSACTION_TIMESTAMP: pd.Timestamp("2017-01-20 05:00")})
    tables[s.TRANSACTIONS] = pd.concat([tx, same_day], ignore_index=True)
    tables[s.COUPON_REDEMPTIONS] = pd.concat([tables[s.COUPON_REDEMPTIONS], pd.DataFrame({
        s.HOUSEHOLD_ID: [1], s.COUPON_UPC: [901], s.CAMPAIGN_ID: [2],
        s.REDEMPTION_DATE: [pd.Timestamp("2017-01-20 05:00")]})], ignore_index=True)
    descriptions = tables[s.CAMPAIGN_DESCRIPTIONS]
    if isinstance(start, pd.Timestamp) and start.tz is not None:  # a zone-aware column
        for column in (s.START_DATE, s.END_DATE):
            descriptions[column] = descriptions[column].dt.tz_localize(start.tz)
    descriptions[s.START_DATE] = descriptions[s.START_DATE].astype(object)
    descriptions.loc[descriptions[s.CAMPAIGN_ID] == 2, s.START_DATE] = start
    if not isinstance(start, str):
        descriptions[s.START_DATE] = pd.to_datetime(descriptions[s.START_DATE])
    return tables


@pytest.mark.parametrize("start, fmt", [
    (pd.Timestamp("2017-01-20"), "parquet"),
    ("2017-01-20 12:00:00", "csv"),  # a time of day written in the file
    (pd.Timestamp("2017-01-20", tz="America/Chicago"), "parquet"),  # 06:00 in UTC
])
def test_coupon_features_read_nothing_from_the_campaigns_first_day(
        tmp_path: Path, start: object, fmt: str) -> None:
    folder = write_folder(tmp_path / "data", _campaign_2_with_same_day_rows(start), fmt)
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    pairs = coupon_pairs(ds, date(2017, 1, 25))
    pair = pairs[(pairs[s.CAMPAIGN_ID] == 2) & (pairs[s.HOUSEHOLD_ID] == 1)]
    assert pair[s.START_DATE].iloc[0] == pd.Timestamp("2017-01-20")  # cut to the day
    assert pair["redeemed"].iloc[0] == 1  # the same-day redemption is the label ...
    feats = coupon_features(ds, pair).iloc[0]
    assert feats["prior_redemptions_of_offered_coupons"] == 0  # ... and never a feature
    assert feats["covered_spend_4w"] == pytest.approx(5.0)  # not the 100.0 bought that day
