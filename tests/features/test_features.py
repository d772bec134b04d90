"""Point-in-time features: hand-checked values, no reads on/after as_of, determinism."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.build import build_features
from features.dataset import load_dataset
from features.household import household_features
from features.product import product_features
from tests.fixtures import tiny_tables, write_folder

AS_OF = date(2017, 11, 6)


def test_household_features_by_hand(tiny_folder: Path, tmp_path: Path) -> None:
    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    f = household_features(ds, date(2017, 1, 23)).set_index(s.HOUSEHOLD_ID)
    assert list(f.index) == [1, 2]  # household 3 first buys after as_of
    h1 = f.loc[1]
    assert (h1.recency_days, h1.tenure_days, h1.baskets_all) == (7, 21, 3)
    assert h1.spend_all == pytest.approx(19.0) and h1.spend_4w == pytest.approx(19.0)
    assert (h1.gap_mean_days, h1.gap_std_days, h1.gap_median_days) == (7.0, 0.0, 7)
    assert h1.overdue_ratio == pytest.approx(1.0)
    assert h1.distinct_products_all == 3 and h1.store_count_52w == 2
    assert h1.morning_share_52w == pytest.approx(1 / 3)
    assert h1.mean_hour_52w == pytest.approx(13.0)
    assert h1.retail_disc_share_52w == pytest.approx(150 / 1900)
    assert h1.coupon_line_share_52w == pytest.approx(1 / 4)
    assert h1.dept_share_grocery == pytest.approx(900 / 1900)
    assert h1.dept_share_produce == pytest.approx(1000 / 1900)
    # campaign 2 started before as_of; the redemption on Jan 30 is in the future
    assert (h1.campaigns_received_all, h1.redemptions_all) == (2, 1)
    assert h1.days_since_last_redemption == 7
    assert h1.member_tier == "bronze"
    h2 = f.loc[2]
    assert h2.recency_days == 20 and h2.n_gaps == 0 and pd.isna(h2.gap_mean_days)


def test_product_features_by_hand(tiny_folder: Path, tmp_path: Path) -> None:
    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    p = product_features(ds, date(2017, 1, 23)).set_index(s.PRODUCT_ID)
    assert list(p.index) == [10, 11, 12, 13]  # the whole catalogue
    assert p.loc[10, "lines_all"] == 2 and p.loc[10, "repeat_rate"] == 1.0
    assert p.loc[11, "avg_unit_price_52w"] == pytest.approx(10.0 / 5)
    assert p.loc[11, "buyers_all"] == 2 and p.loc[11, "repeat_rate"] == 0.0
    assert p.loc[13, "lines_all"] == 0 and pd.isna(p.loc[13, "repeat_rate"])
    assert p.loc[12, s.DEPARTMENT] == "PRODUCE"


def test_member_tier_thresholds(tiny_folder: Path, tmp_path: Path) -> None:
    from features.config import DataConfig, TierThresholds

    ds = load_dataset(tiny_folder, quarantine_dir=tmp_path / "q")
    cfg = DataConfig(tiers=TierThresholds(silver=5, gold=10, platinum=19))
    tiers = household_features(ds, date(2017, 1, 23), cfg).set_index(s.HOUSEHOLD_ID).member_tier
    assert tiers.to_dict() == {1: "platinum", 2: "silver"}


def _future_mutations(tables: dict[str, pd.DataFrame], as_of: date) -> dict[str, pd.DataFrame]:
    """Change, delete and add rows on or after ``as_of`` in every time-stamped table."""
    cut = pd.Timestamp(as_of)
    out = {k: v.copy() for k, v in tables.items()}
    tx = out[s.TRANSACTIONS]
    future = tx[s.TRANSACTION_TIMESTAMP] >= cut
    assert future.sum() > 100, "the sample must have lines after as_of for this test to bite"
    changed = tx.loc[future].copy()
    changed[s.SALES_VALUE] *= 3
    changed[s.QUANTITY] += 5
    changed[s.PRODUCT_ID] = changed[s.PRODUCT_ID].sample(frac=1, random_state=0).to_numpy()
    changed = changed.iloc[: len(changed) // 2]  # and delete the other half
    added = tx.loc[~future].head(200).copy()
    added[s.TRANSACTION_TIMESTAMP] = cut  # exactly at the boundary
    added[s.BASKET_ID] += 10**12
    newcomer = added.head(10).assign(**{s.HOUSEHOLD_ID: 10**9, s.BASKET_ID: 10**13})
    newcomer[s.TRANSACTION_TIMESTAMP] = cut + pd.Timedelta(days=3)
    out[s.TRANSACTIONS] = pd.concat([tx.loc[~future], changed, added, newcomer],
                                    ignore_index=True)
    red = out[s.COUPON_REDEMPTIONS]
    extra = red.head(20).assign(**{s.REDEMPTION_DATE: cut + pd.Timedelta(days=1)})
    out[s.COUPON_REDEMPTIONS] = pd.concat(
        [red[red[s.REDEMPTION_DATE] < cut], extra], ignore_index=True)
    desc = out[s.CAMPAIGN_DESCRIPTIONS]
    late = desc.head(1).assign(**{s.CAMPAIGN_ID: 999, s.START_DATE: cut,
                                  s.END_DATE: cut + pd.Timedelta(days=30)})
    out[s.CAMPAIGN_DESCRIPTIONS] = pd.concat([desc, late], ignore_index=True)
    camp = out[s.CAMPAIGNS]
    out[s.CAMPAIGNS] = pd.concat(
        [camp, camp.drop_duplicates(s.HOUSEHOLD_ID).assign(**{s.CAMPAIGN_ID: 999})],
        ignore_index=True)
    return out


def _features(tables: dict[str, pd.DataFrame], folder: Path) -> tuple[pd.DataFrame, ...]:
    ds = load_dataset(write_folder(folder, tables), quarantine_dir=folder / "q")
    return household_features(ds, AS_OF), product_features(ds, AS_OF)


def test_nothing_on_or_after_as_of_is_read(cj_sample: dict, tmp_path: Path) -> None:
    """The point-in-time proof: rewriting the future leaves every feature value unchanged."""
    base_h, base_p = _features(cj_sample, tmp_path / "base")
    mut_h, mut_p = _features(_future_mutations(cj_sample, AS_OF), tmp_path / "mutated")
    pd.testing.assert_frame_equal(base_h, mut_h, check_exact=True)
    pd.testing.assert_frame_equal(base_p, mut_p, check_exact=True)
    assert base_h["campaigns_received_all"].sum() > 0 and base_h["redemptions_all"].sum() > 0


def test_a_change_before_as_of_does_change_features(cj_sample: dict, tmp_path: Path) -> None:
    """Control for the test above: the comparison can fail."""
    tables = {k: v.copy() for k, v in cj_sample.items()}
    tx = tables[s.TRANSACTIONS]
    last_day = (tx[s.TRANSACTION_TIMESTAMP] < pd.Timestamp(AS_OF)) & (
        tx[s.TRANSACTION_TIMESTAMP] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=1))
    assert last_day.any()
    tx.loc[last_day, s.SALES_VALUE] += 1.0
    base_h, _ = _features(cj_sample, tmp_path / "base")
    mut_h, _ = _features(tables, tmp_path / "mutated")
    assert not base_h.equals(mut_h)


def test_same_inputs_give_byte_identical_files(cj_sample: dict, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "data", cj_sample)
    outs = []
    for run in ("a", "b"):
        ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
        outs.append(build_features(ds, AS_OF, tmp_path / run))
    assert outs[0].households.read_bytes() == outs[1].households.read_bytes()
    assert outs[0].products.read_bytes() == outs[1].products.read_bytes()
    households = pd.read_parquet(outs[0].households)
    assert households[s.HOUSEHOLD_ID].is_unique and len(households) == outs[0].household_rows


def test_features_without_optional_tables(tiny_folder: Path, tmp_path: Path) -> None:
    """Only transactions: features still build, without the columns that need other tables."""
    tx = pd.read_parquet(tiny_folder / "transactions.parquet")
    folder = write_folder(tmp_path / "only_tx", {s.TRANSACTIONS: tx})
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    h = household_features(ds, date(2017, 1, 23))
    p = product_features(ds, date(2017, 1, 23))
    assert "campaigns_received_all" not in h and "dept_share_grocery" not in h
    assert set(p[s.PRODUCT_ID]) == {10, 11, 12}  # products sold before as_of


def test_names_and_values_from_the_data_are_quoted_in_feature_sql(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.PRODUCTS][s.DEPARTMENT] = ["KID'S", "KID'S", "PRODUCE", "DELI"]
    tables[s.DEMOGRAPHICS] = pd.DataFrame({s.HOUSEHOLD_ID: [1, 2], 'kids"count': ["1", "2+"]})
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    assert ds.table(s.DEMOGRAPHICS)['kids"count'].tolist() == ["1", "2+"]
    f = household_features(ds, date(2017, 1, 23)).set_index(s.HOUSEHOLD_ID)
    assert f.loc[1, "demo_kids_count"] == "1" and f.loc[2, "demo_kids_count"] == "2+"
    assert f.loc[1, "dept_share_kid_s"] == pytest.approx(9.0 / 19.0)
