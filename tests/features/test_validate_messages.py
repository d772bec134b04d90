"""Validation of data a user brought: events dated in the future are quarantined, and the
fatal messages say what to fix (an example value and its line, a table emptied upstream,
another separator, a compressed file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features import validate
from features.dataset import load_dataset
from features.sources import DataContractError, resolve_source
from features.validate import quarantine_path
from tests.fixtures import tiny_tables, write_folder

# The tiny tables end 2017-01-30; validation runs, as far as these tests say, two days later.
NOW = datetime(2017, 2, 1, 12, 0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(validate, "utc_now", lambda: NOW)
    return NOW


# --- events dated after the moment of validation ----------------------------------------------


def test_future_transactions_and_redemptions_are_quarantined(tmp_path: Path,
                                                             clock: datetime) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].astype({s.TRANSACTION_TIMESTAMP: str})
    tx.loc[0, s.TRANSACTION_TIMESTAMP] = "2031-06-01T10:00:00-05:00"
    tx.loc[1, s.TRANSACTION_TIMESTAMP] = "2017-02-02 11:00:00"  # within the day of slack
    tx.loc[2, s.TRANSACTION_TIMESTAMP] = "2017-02-02 13:00:00"
    tables[s.TRANSACTIONS] = tx
    tables[s.COUPON_REDEMPTIONS].loc[1, s.REDEMPTION_DATE] = pd.Timestamp("2031-06-01")
    # a planned campaign may lie ahead
    tables[s.CAMPAIGN_DESCRIPTIONS].loc[1, s.END_DATE] = pd.Timestamp("2031-06-30")
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    report = ds.report.tables
    assert report[s.TRANSACTIONS].quarantined == {"future_transaction_timestamp": 2}
    assert report[s.COUPON_REDEMPTIONS].quarantined == {"future_redemption_date": 1}
    assert report[s.CAMPAIGN_DESCRIPTIONS].quarantined == {}
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))
    assert kept.set_index(s.SOURCE_ROW)[s.TRANSACTION_TIMESTAMP].to_dict() == {
        0: "2031-06-01T10:00:00-05:00", 2: "2017-02-02 13:00:00"}
    first, last = ds.time_range()
    assert last == pd.Timestamp("2017-02-02 11:00")


def test_the_future_starts_a_day_after_the_real_clock(tmp_path: Path) -> None:
    now = validate.utc_now()
    assert abs(now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx.loc[0, s.TRANSACTION_TIMESTAMP] = pd.Timestamp(now + timedelta(hours=20))
    tx.loc[1, s.TRANSACTION_TIMESTAMP] = pd.Timestamp(now + timedelta(hours=28))
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {"future_transaction_timestamp": 1}
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))
    assert kept[s.SOURCE_ROW].tolist() == [1]


# --- every transaction rejected: the message shows why ----------------------------------------


def _all_transactions_as(tmp_path: Path, column: str, value: object, fmt: str = "csv") -> str:
    """The fatal message for tiny transactions whose ``column`` is ``value`` on every line."""
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].astype({column: object})
    tables[s.TRANSACTIONS][column] = value
    folder = write_folder(tmp_path / "d", tables, fmt=fmt)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    return str(err.value)


@pytest.mark.parametrize(("column", "value", "reason", "said"), [
    (s.TRANSACTION_TIMESTAMP, "04/20/2019 06:36 PM", "bad_transaction_timestamp",
     "column 'transaction_timestamp': expected a timestamp from 1990 to 2100 such as "
     "2019-04-20 18:36:47 or ISO 8601 with an offset (2019-04-20T18:36:47-05:00); got "
     "'04/20/2019 06:36 PM' (line 2)"),
    (s.PRODUCT_ID, "SKU-1", "bad_product_id",
     "column 'product_id': expected an integer id 0..2^63-1; got 'SKU-1' (line 2)"),
    (s.HOUSEHOLD_ID, "-4", "negative_household_id",
     "column 'household_id': expected an integer id 0..2^63-1; got '-4' (line 2)"),
    (s.QUANTITY, "NA", "null_quantity",
     "column 'quantity': expected a finite number; got 'NA', which means no value (line 2)"),
    (s.SALES_VALUE, "", "null_sales_value",
     "column 'sales_value': expected a finite number; got an empty cell (line 2)"),
    (s.TRANSACTION_TIMESTAMP, "2031-06-01T10:00:00-05:00", "future_transaction_timestamp",
     "column 'transaction_timestamp': expected a time no later than 2017-02-02 12:00 UTC (the "
     "moment of validation plus a day); got '2031-06-01T10:00:00-05:00' (line 2)"),
])
def test_no_valid_transaction_shows_a_rejected_value(tmp_path: Path, clock: datetime,
                                                     column: str, value: str, reason: str,
                                                     said: str) -> None:
    msg = _all_transactions_as(tmp_path, column, value)
    assert msg.startswith(f"{tmp_path / 'd' / 'transactions.csv'}: table 'transactions' has "
                          f"no valid rows (7 read, all quarantined: {{'{reason}': 7}}); ")
    assert msg.endswith(said)
    assert "\n" not in msg


def test_the_example_is_of_the_most_common_reason_at_its_real_line(tmp_path: Path) -> None:
    """A quoted line break above the example moves it down a line; columns keep the file's
    spelling; a parquet file's rows are counted from 0."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].astype(str).rename(columns={s.BASKET_ID: "Basket_ID"})
    tx["note"] = ["two\nlines"] + [""] * 6
    tx.loc[0, s.HOUSEHOLD_ID] = ""
    tx.loc[1:, "Basket_ID"] = "B-7"
    tables[s.TRANSACTIONS] = tx
    with pytest.raises(DataContractError) as err:
        load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                     quarantine_dir=tmp_path / "q")
    assert "{'bad_basket_id': 6, 'null_household_id': 1}" in str(err.value)
    assert str(err.value).endswith("column 'Basket_ID': expected an integer id 0..2^63-1; got "
                                   "'B-7' (line 4)")
    parquet = _all_transactions_as(tmp_path / "p", s.HOUSEHOLD_ID, -1, fmt="parquet")
    assert parquet.endswith("got '-1' (row 0, counting from 0)")
    parquet = _all_transactions_as(tmp_path / "n", s.HOUSEHOLD_ID, None, fmt="parquet")
    assert parquet.endswith("column 'household_id': expected an integer id 0..2^63-1; got null "
                            "(row 0, counting from 0)")


@pytest.mark.parametrize("products", [
    pd.DataFrame({s.PRODUCT_ID: ["SKU-1", "SKU-2"], s.BRAND: ["A", "B"]}),
    pd.DataFrame({s.PRODUCT_ID: [], s.BRAND: []}),
])
def test_transactions_rejected_for_a_products_table_that_kept_no_row(
        tmp_path: Path, products: pd.DataFrame) -> None:
    tables = {s.TRANSACTIONS: tiny_tables()[s.TRANSACTIONS], s.PRODUCTS: products}
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    msg = str(err.value)
    assert msg.startswith(
        f"{folder / 'transactions.csv'}: table 'transactions' has no valid rows (7 read, all "
        "quarantined: {'unknown_product_id': 7}): their product_id is not in table "
        f"'products', which kept no row itself: {folder / 'products.csv'}: table 'products' ")
    if len(products):
        assert msg.endswith("has no valid rows (2 read, all quarantined: {'bad_product_id': "
                            "2}); column 'product_id': expected an integer id 0..2^63-1; got "
                            "'SKU-1' (line 2)")
    else:
        assert msg.endswith("holds no data rows")


def test_a_header_only_transactions_file_holds_no_data_rows(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables(), fmt="csv")
    path = folder / "transactions.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert str(err.value) == f"{path}: table 'transactions' holds no data rows"


# --- files that are not comma-separated CSV ---------------------------------------------------


@pytest.mark.parametrize(("sep", "said"), [(";", "';'"), ("\t", "tabs")])
@pytest.mark.parametrize("header_only", [False, True])
def test_a_csv_with_another_separator_is_named(tmp_path: Path, sep: str, said: str,
                                               header_only: bool) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].rename(columns=str.upper)
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    path = folder / "transactions.csv"
    (tx.iloc[:0] if header_only else tx).to_csv(path, sep=sep, decimal=",", index=False)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert str(err.value) == (f"{path}: the header looks separated by {said}; expected "
                              "comma-separated values (save the file as CSV with commas)")


def test_a_csv_of_one_column_is_not_taken_for_another_separator(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.DEMOGRAPHICS] = pd.DataFrame({s.HOUSEHOLD_ID: [1, 2, 3]})
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.DEMOGRAPHICS].clean_rows == 3


@pytest.mark.parametrize("name", ["transactions.csv.gz", "Transactions.ZIP", "transactions.tsv",
                                  "transactions.xlsx"])
def test_a_missing_table_names_the_file_in_a_format_not_read(tmp_path: Path, name: str) -> None:
    tables = tiny_tables()
    del tables[s.TRANSACTIONS]
    folder = write_folder(tmp_path / "d", tables)
    (folder / name).write_bytes(b"\x1f\x8b")
    with pytest.raises(DataContractError) as err:
        resolve_source(folder)
    assert str(err.value) == (
        f"{folder}: required table 'transactions' is given as {name}, but compressed and "
        "other formats are not read (expected a file transactions.parquet or "
        "transactions.csv): decompress it, or save it as comma-separated CSV or parquet")


def test_an_optional_table_in_a_format_not_read_is_not_ignored(tmp_path: Path) -> None:
    """Without it coupon training would stop, or churn lose its campaign features, for a
    reason the user could not see: name the file instead of going on without the table."""
    tables = tiny_tables()
    del tables[s.CAMPAIGNS]
    folder = write_folder(tmp_path / "d", tables)
    (folder / "campaigns.csv.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataContractError) as err:
        resolve_source(folder)
    assert str(err.value) == (
        f"{folder}: optional table 'campaigns' is given as campaigns.csv.gz, but compressed "
        "and other formats are not read (expected a file campaigns.parquet or campaigns.csv): "
        "decompress it, or save it as comma-separated CSV or parquet, or move it out to go "
        "without it")
    (folder / "campaigns.csv.gz").unlink()
    assert s.CAMPAIGNS not in resolve_source(folder)  # absent: fine, it is optional
