"""Validation: fatal problems name file/column; row problems are quarantined, never lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.dataset import Dataset, connect, load_dataset
from features.sources import DataContractError, GrowthError, folder_source, resolve_source
from features.validate import quarantine_path
from tests.fixtures import tiny_tables, write_folder


def test_missing_required_column_names_table_column_and_file(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].drop(columns=[s.SALES_VALUE])
    folder = write_folder(tmp_path / "d", tables)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    msg = str(err.value)
    assert "transactions" in msg and "sales_value" in msg and "transactions.parquet" in msg
    assert "expected number" in msg


def test_missing_transactions_table(tmp_path: Path) -> None:
    tables = tiny_tables()
    del tables[s.TRANSACTIONS]
    folder = write_folder(tmp_path / "d", tables)
    with pytest.raises(DataContractError, match="required table 'transactions' is missing"):
        resolve_source(folder)


def test_table_given_twice_is_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables())
    tiny_tables()[s.TRANSACTIONS].to_csv(folder / "transactions.csv", index=False)
    with pytest.raises(DataContractError, match="given twice"):
        folder_source(folder)


def test_table_files_are_found_in_any_case(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables())
    (folder / "products.parquet").rename(folder / "Products.PARQUET")
    assert folder_source(folder)[s.PRODUCTS].name == "Products.PARQUET"
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.PRODUCTS].clean_rows == len(tiny_tables()[s.PRODUCTS])
    tiny_tables()[s.PRODUCTS].to_csv(folder / "PRODUCTS.csv", index=False)
    with pytest.raises(DataContractError, match="'products' is given twice"):
        folder_source(folder)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables())
    (folder / "products.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataContractError, match=r"products\.parquet: cannot read table"):
        load_dataset(folder, quarantine_dir=tmp_path / "q")


def _dirty_transactions() -> pd.DataFrame:
    """Tiny transactions as text with one null id, one bad timestamp, one duplicate line."""
    tx = tiny_tables()[s.TRANSACTIONS].astype(str)
    null_id = tx.iloc[[0]].assign(**{s.HOUSEHOLD_ID: None, s.BASKET_ID: "999"})
    bad_ts = tx.iloc[[1]].assign(**{s.TRANSACTION_TIMESTAMP: "31/02/2017 25:00",
                                    s.BASKET_ID: "998"})
    duplicate = tx.iloc[[2]]
    bad_number = tx.iloc[[3]].assign(**{s.SALES_VALUE: "ten", s.BASKET_ID: "997"})
    return pd.concat([tx, null_id, bad_ts, duplicate, bad_number], ignore_index=True)


def test_csv_row_problems_are_quarantined_and_counted(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = _dirty_transactions()
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    rep = ds.report.tables[s.TRANSACTIONS]
    assert rep.input_rows == 11
    assert rep.quarantined == {"null_household_id": 1, "bad_transaction_timestamp": 1,
                               "duplicate": 1, "bad_sales_value": 1}
    assert rep.clean_rows + rep.quarantined_rows == rep.input_rows
    clean = ds.table(s.TRANSACTIONS)
    assert len(clean) == rep.clean_rows == 7
    assert clean[s.TRANSACTION_TIMESTAMP].dtype.kind == "M"
    quarantined = pd.read_parquet(tmp_path / "q" / "transactions.parquet")
    assert len(quarantined) == 4
    assert sorted(quarantined[s.SOURCE_ROW]) == [7, 8, 9, 10]
    # as documented: line source_row + 2 of the file (the header is line 1)
    lines = (folder / "transactions.csv").read_text().splitlines()
    bad = quarantined[quarantined[s.REASON] == "bad_transaction_timestamp"][s.SOURCE_ROW].item()
    assert "31/02/2017 25:00" in lines[bad + 2 - 1]
    # the original text survives for the person who fixes the data
    assert "31/02/2017 25:00" in set(quarantined[s.TRANSACTION_TIMESTAMP])
    assert set(quarantined[s.REASON]) == set(rep.quarantined)


def test_unknown_product_is_quarantined_when_products_exist(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tables[s.TRANSACTIONS] = pd.concat(
        [tx, tx.iloc[[0]].assign(**{s.PRODUCT_ID: 77, s.BASKET_ID: 555})], ignore_index=True)
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {"unknown_product_id": 1}
    # without a products table the same line is valid
    del tables[s.PRODUCTS]
    ds = load_dataset(write_folder(tmp_path / "e", tables), quarantine_dir=tmp_path / "q2")
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {}


def test_null_discount_means_zero(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS][s.RETAIL_DISC] = None
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert (ds.table(s.TRANSACTIONS)[s.RETAIL_DISC] == 0).all()
    assert ds.report.quarantined_rows == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_discounts_that_are_not_finite_numbers_are_quarantined(tmp_path: Path, fmt: str) -> None:
    """A missing discount is no discount; an infinite one is an error, not a zero."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    if fmt == "csv":
        tx = tx.astype({s.RETAIL_DISC: str, s.COUPON_DISC: str})
        tx.loc[0, s.RETAIL_DISC], tx.loc[1, s.COUPON_DISC] = "inf", "1e400"
    else:
        tx.loc[0, s.RETAIL_DISC], tx.loc[1, s.COUPON_DISC] = float("inf"), float("-inf")
    tables[s.TRANSACTIONS] = tx
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt=fmt),
                      quarantine_dir=tmp_path / "q")
    report = ds.report.tables[s.TRANSACTIONS]
    assert report.quarantined == {"bad_retail_disc": 1, "bad_coupon_disc": 1}
    assert report.input_rows == report.clean_rows + 2


def test_campaign_with_end_before_start(tmp_path: Path) -> None:
    tables = tiny_tables()
    d = tables[s.CAMPAIGN_DESCRIPTIONS]
    d.loc[1, s.END_DATE] = pd.Timestamp("2017-01-01")
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.CAMPAIGN_DESCRIPTIONS].quarantined == {"end_before_start": 1}
    # rows pointing at the rejected campaign are rejected in turn, with their own reason
    assert ds.report.tables[s.CAMPAIGNS].quarantined == {"unknown_campaign_id": 1}


def test_embedded_data_validates_without_loss(tmp_path: Path) -> None:
    ds = load_dataset(None, quarantine_dir=tmp_path / "q")
    tx = ds.report.tables[s.TRANSACTIONS]
    assert tx.input_rows == 1_469_307
    assert tx.clean_rows + tx.quarantined_rows == tx.input_rows
    assert tx.quarantined == {"unknown_product_id": 4836}  # no future_transaction_timestamp
    assert ds.report.tables[s.COUPON_REDEMPTIONS].quarantined == {}
    assert tx.warnings["quantity_outlier"] > 10_000  # fuel lines are kept, flagged
    assert len(pd.read_parquet(tmp_path / "q" / "transactions.parquet")) == 4836
    for rep in ds.report.tables.values():
        assert rep.clean_rows + rep.quarantined_rows == rep.input_rows
    assert ds.report.large_losses() == []  # 0.3% of transactions, 4.2% of coupons: no warning


def test_no_valid_transaction_names_the_quarantine_file(tmp_path: Path) -> None:
    """The exit-2 message said why every transaction was rejected but not where they went."""
    tables = tiny_tables()
    tables[s.TRANSACTIONS][s.PRODUCT_ID] = 77  # a product the products table lacks
    with pytest.raises(DataContractError) as err:
        load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    qfile = quarantine_path(tmp_path / "q", s.TRANSACTIONS)
    assert (f"(7 read, all quarantined: {{'unknown_product_id': 7}}); every rejected row and "
            f"its reason is in {qfile}; column 'product_id': ") in str(err.value)
    assert len(pd.read_parquet(qfile)) == 7


def test_a_table_losing_more_than_the_share_is_warned_about(tmp_path: Path) -> None:
    """Half the transactions naming products an incomplete products table lacks loaded with
    nothing but a count: more than LARGE_LOSS_SHARE lost gets a line naming the table, the
    share, the main reason and the quarantine file."""
    from features.validate import LARGE_LOSS_SHARE, TableReport, ValidationReport

    tables = tiny_tables()
    tables[s.TRANSACTIONS].loc[:3, s.PRODUCT_ID] = 77
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.report.large_losses() == [
        "table 'transactions' lost 57.1% of its rows to quarantine (4 of 7), most as "
        "unknown_product_id (4: their product_id is not in table 'products'); check them in "
        f"{quarantine_path(tmp_path / 'q', s.TRANSACTIONS)} before relying on what is built "
        "from this table"]
    at, over = (TableReport(s.COUPONS, "coupons.csv", 1000, 1000 - lost,
                            {"duplicate": lost // 3, "bad_coupon_upc": lost - lost // 3})
                for lost in (int(1000 * LARGE_LOSS_SHARE), int(1000 * LARGE_LOSS_SHARE) + 1))
    assert ValidationReport({s.COUPONS: at}, tmp_path / "q").large_losses() == []
    assert ValidationReport({s.COUPONS: over}, tmp_path / "q").large_losses() == [
        "table 'coupons' lost 10.1% of its rows to quarantine (101 of 1,000), most as "
        f"bad_coupon_upc (68); check them in {tmp_path / 'q' / 'coupons.parquet'} before "
        "relying on what is built from this table"]


# --- file-level contract errors ---------------------------------------------------------------


def _csv_folder(tmp_path: Path) -> Path:
    """The tiny tables as CSV files, transactions and products only."""
    tables = tiny_tables()
    return write_folder(tmp_path / "d", {t: tables[t] for t in (s.TRANSACTIONS, s.PRODUCTS)},
                        fmt="csv")


@pytest.mark.parametrize(("text", "line"), [
    (b"product_id,d\xe9pt\n10,GROCERY\n", 1),  # latin-1 header
    (b"product_id,department\n10,GROCERY\n11,\xe9PICERIE\n", 3),  # latin-1 cell
    (b"product_id,department\n10,GROC\xc3", 2),  # the file ends inside a character
])
def test_csv_that_is_not_utf8_names_file_and_line(tmp_path: Path, text: bytes,
                                                   line: int) -> None:
    folder = _csv_folder(tmp_path)
    (folder / "products.csv").write_bytes(text)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    msg = str(err.value)
    assert str(folder / "products.csv") in msg
    assert f"line {line} is not UTF-8" in msg and "must be UTF-8" in msg


def test_csv_with_a_utf8_byte_order_mark_loads(tmp_path: Path) -> None:
    folder = _csv_folder(tmp_path)
    text = (folder / "products.csv").read_text(encoding="utf-8")
    (folder / "products.csv").write_text(text, encoding="utf-8-sig")
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert ds.table(s.PRODUCTS)[s.PRODUCT_ID].tolist() == [10, 11, 12, 13]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("twin", ["Household_ID", " household_id"])
def test_columns_with_the_same_contract_name_are_refused(tmp_path: Path, fmt: str,
                                                         twin: str) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx.insert(1, twin, tx[s.HOUSEHOLD_ID] + 100)
    folder = write_folder(tmp_path / "d", tables, fmt=fmt)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    msg = str(err.value)
    assert f"transactions.{fmt}" in msg
    assert f"{s.HOUSEHOLD_ID!r}" in msg and f"{twin!r}" in msg and "same column" in msg


def test_column_names_validation_uses_itself_are_refused(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS]["__row"] = 5  # would otherwise replace the row numbers
    with pytest.raises(DataContractError, match=r"transactions\.csv: column '__row' .* "
                                                "reserved"):
        load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                     quarantine_dir=tmp_path / "q")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_files_own_reason_and_source_row_columns_are_kept(tmp_path: Path, fmt: str) -> None:
    """The quarantine file's ``reason`` and ``source_row`` are validation's; columns of the
    file with those names go there as ``<name>_in_file``, and a kept extra column named
    ``reason`` stays in the clean table."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx["Reason"], tx["source_row"] = "promo", 70
    tx.loc[2, s.HOUSEHOLD_ID] = -1
    tables[s.DEMOGRAPHICS] = pd.DataFrame({s.HOUSEHOLD_ID: [1, 2, 2],
                                           "reason": ["moved", "new", "again"]})
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt=fmt),
                      quarantine_dir=tmp_path / "q")
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))
    assert kept["reason"].tolist() == ["negative_household_id"]
    assert kept["source_row"].tolist() == [2]
    assert kept["Reason_in_file"].tolist() == ["promo"]
    assert kept["source_row_in_file"].astype(int).tolist() == [70]
    demo = pd.read_parquet(quarantine_path(tmp_path / "q", s.DEMOGRAPHICS))
    assert demo[["reason", "reason_in_file"]].values.tolist() == [
        ["conflicting_household_id", "again"]]
    assert ds.table(s.DEMOGRAPHICS)["reason"].tolist() == ["moved", "new"]


def test_extra_columns_with_the_same_name_are_refused(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.DEMOGRAPHICS] = pd.DataFrame({s.HOUSEHOLD_ID: [1], "Age": ["25-34"],
                                           "age": ["35-44"]})
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    with pytest.raises(DataContractError, match=r"demographics\.csv: columns 'Age' and 'age'"):
        load_dataset(folder, quarantine_dir=tmp_path / "q")


def test_unnamed_empty_columns_of_a_spreadsheet_export_are_ignored(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables(), fmt="csv")
    path = folder / "transactions.csv"
    path.write_text("".join(line + ",,\n" for line in path.read_text().splitlines()))
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    report = ds.report.tables[s.TRANSACTIONS]
    assert report.clean_rows == len(tiny_tables()[s.TRANSACTIONS])
    width = len(tiny_tables()[s.TRANSACTIONS].columns)
    assert report.ignored_columns == [f"column_{width + 1}", f"column_{width + 2}"]


def test_a_parquet_column_named_like_duckdbs_row_numbers_is_named(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.PRODUCTS]["file_row_number"] = 0
    folder = write_folder(tmp_path / "d", tables)
    with pytest.raises(DataContractError, match=r"products\.parquet: column 'file_row_number'"):
        load_dataset(folder, quarantine_dir=tmp_path / "q")


def test_a_header_only_csv_without_a_line_end_is_an_empty_table(tmp_path: Path) -> None:
    tables = tiny_tables()
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    (folder / "demographics.csv").write_text(f"{s.HOUSEHOLD_ID},age")
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.DEMOGRAPHICS].input_rows == 0


def test_quoted_line_breaks_in_a_large_csv_load(tmp_path: Path) -> None:
    """pyarrow splits a large file into blocks at line breaks unless told values hold them."""
    tables = tiny_tables()
    products = pd.concat([tables[s.PRODUCTS], pd.DataFrame(
        {s.PRODUCT_ID: range(10**6, 10**6 + 60_000)})], ignore_index=True)
    tables[s.PRODUCTS] = products.assign(**{s.BRAND: "Private\nLabel"})
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    assert (folder / "products.csv").stat().st_size > 1 << 20
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.PRODUCTS].clean_rows == len(products)
    assert set(ds.table(s.PRODUCTS)[s.BRAND]) == {"Private\nLabel"}


def test_a_header_the_csv_module_cannot_read_is_named(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables(), fmt="csv")
    path = folder / "transactions.csv"
    path.write_text('"' + path.read_text() + "1,2,3\n" * 50_000)  # one unclosed quote
    with pytest.raises(DataContractError, match=r"transactions\.csv: cannot read table"):
        load_dataset(folder, quarantine_dir=tmp_path / "q")


def test_boolean_number_column_names_file_column_and_types(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS][s.QUANTITY] = True
    folder = write_folder(tmp_path / "d", tables)
    with pytest.raises(DataContractError) as err:
        load_dataset(folder, quarantine_dir=tmp_path / "q")
    msg = str(err.value)
    assert "transactions.parquet" in msg and f"column {s.QUANTITY!r}" in msg
    assert "has type BOOLEAN" in msg and "expected number values" in msg


def test_epoch_numbers_in_a_timestamp_column_are_refused(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx[s.TRANSACTION_TIMESTAMP] = tx[s.TRANSACTION_TIMESTAMP].astype("int64") // 10**9
    with pytest.raises(DataContractError, match=r"transactions\.parquet: column "
                       r"'transaction_timestamp' .* has type BIGINT; expected timestamp values"):
        load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")


def test_boolean_id_column_is_refused_but_a_float_one_is_not(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.CAMPAIGNS][s.HOUSEHOLD_ID] = tables[s.CAMPAIGNS][s.HOUSEHOLD_ID].astype(float)
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.table(s.CAMPAIGNS)[s.HOUSEHOLD_ID].tolist() == [1, 2, 1]
    tables[s.PRODUCTS][s.PRODUCT_ID] = [True, False, True, False]
    with pytest.raises(DataContractError, match=r"products\.parquet: column 'product_id' of "
                                                r"table 'products' has type BOOLEAN"):
        load_dataset(write_folder(tmp_path / "e", tables), quarantine_dir=tmp_path / "q2")


# --- row-level rules --------------------------------------------------------------------------


def _load_text_timestamps(tmp_path: Path, values: list[str]) -> tuple[Dataset, pd.DataFrame]:
    """Loads transactions whose first lines have ``values`` as transaction_timestamp, as
    CSV; returns the dataset and the quarantined transactions."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].astype({s.TRANSACTION_TIMESTAMP: str})
    tx.loc[: len(values) - 1, s.TRANSACTION_TIMESTAMP] = values
    tables[s.TRANSACTIONS] = tx
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    return ds, pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))


def test_timestamp_offsets_convert_to_the_canonical_zone(tmp_path: Path) -> None:
    values = ["2017-01-02 09:00:00+05:00", "2017-01-02 09:00:00Z",
              "2017-01-09T18:30:00-03:30", "2017-01-16 12:00:00 America/New_York",
              "2017-01-30 10:00:00 Mars/Olympus"]
    ds, kept = _load_text_timestamps(tmp_path, values)
    clean = ds.df(f"SELECT {s.TRANSACTION_TIMESTAMP} AS ts FROM {s.TRANSACTIONS} "
                  f"ORDER BY {s.BASKET_ID}, {s.PRODUCT_ID}")["ts"]
    assert clean.dt.tz is None
    assert list(clean[:4]) == [pd.Timestamp("2017-01-02 04:00"), pd.Timestamp("2017-01-02 09:00"),
                               pd.Timestamp("2017-01-09 22:00"), pd.Timestamp("2017-01-16 17:00")]
    assert list(clean[4:]) == [pd.Timestamp("2017-01-03 17:45"),  # naive: kept as written
                               pd.Timestamp("2017-01-25 08:00")]
    # a zone that means nothing is not guessed at
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {"bad_transaction_timestamp": 1}
    assert kept[s.TRANSACTION_TIMESTAMP].tolist() == ["2017-01-30 10:00:00 Mars/Olympus"]


def test_offsets_no_zone_has_are_quarantined(tmp_path: Path) -> None:
    """DuckDB reads ``+25:00`` as 25 hours and ``+05:60`` as six; no zone has either."""
    values = ["2017-01-02 09:00:00+25:00", "2017-01-02 09:00:00+05:60",
              "2017-01-02T09:00:00.5-1500", "2017-01-02 09:00:00+25:00 ",
              "2017-01-02 09:00:00+14:00", "2017-01-02 09:00:00-0930"]
    ds, kept = _load_text_timestamps(tmp_path, values)
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {"bad_transaction_timestamp": 4}
    assert sorted(kept[s.TRANSACTION_TIMESTAMP]) == sorted(values[:4])
    clean = ds.df(f"SELECT {s.TRANSACTION_TIMESTAMP} AS ts FROM {s.TRANSACTIONS}")["ts"]
    assert {pd.Timestamp("2017-01-01 19:00"), pd.Timestamp("2017-01-02 18:30")} <= set(clean)


def test_tz_aware_parquet_and_offset_text_give_the_same_times(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx[s.TRANSACTION_TIMESTAMP] = tx[s.TRANSACTION_TIMESTAMP].dt.tz_localize("Asia/Karachi")
    from_parquet = load_dataset(write_folder(tmp_path / "p", tables),
                                quarantine_dir=tmp_path / "q").table(s.TRANSACTIONS)
    tx[s.TRANSACTION_TIMESTAMP] = tx[s.TRANSACTION_TIMESTAMP].map(lambda t: t.isoformat())
    assert tx[s.TRANSACTION_TIMESTAMP][0] == "2017-01-02T09:00:00+05:00"
    from_csv = load_dataset(write_folder(tmp_path / "c", tables, fmt="csv"),
                            quarantine_dir=tmp_path / "q").table(s.TRANSACTIONS)
    expected = tiny_tables()[s.TRANSACTIONS][s.TRANSACTION_TIMESTAMP] - pd.Timedelta(hours=5)
    assert list(from_parquet[s.TRANSACTION_TIMESTAMP]) == list(expected)
    assert list(from_csv[s.TRANSACTION_TIMESTAMP]) == list(expected)


def test_negative_ids_are_quarantined_and_counted(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    tx.loc[0, s.HOUSEHOLD_ID] = -1
    tx.loc[1, s.STORE_ID] = -3  # optional ids too
    tables[s.PRODUCTS].loc[3, s.PRODUCT_ID] = -13
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.PRODUCTS].quarantined == {"negative_product_id": 1}
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {
        "negative_household_id": 1, "negative_store_id": 1,
        "unknown_product_id": 1}  # product 13 was rejected in turn
    assert ds.df(f"SELECT min({s.HOUSEHOLD_ID}) AS m FROM {s.TRANSACTIONS}")["m"][0] == 1
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))
    assert kept.set_index(s.SOURCE_ROW)[s.REASON].to_dict() == {
        0: "negative_household_id", 1: "negative_store_id", 6: "unknown_product_id"}
    assert kept[s.HOUSEHOLD_ID].tolist()[0] == -1


def test_csv_null_markers_are_nulls_but_the_quarantine_keeps_the_text(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].astype(str)
    tx.loc[0, s.HOUSEHOLD_ID] = "NA"
    tx.loc[1, s.BASKET_ID] = "null"
    tx.loc[2, s.QUANTITY] = "NaN"
    tx.loc[3, s.RETAIL_DISC] = "N/A"  # an absent discount is no discount: kept
    tables[s.TRANSACTIONS] = tx
    tables[s.PRODUCTS].loc[0, s.BRAND] = "NULL"
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.TRANSACTIONS].quarantined == {
        "null_household_id": 1, "null_basket_id": 1, "null_quantity": 1}
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.TRANSACTIONS))
    assert kept[s.HOUSEHOLD_ID].tolist() == ["NA", "1", "1"]
    assert kept[s.BASKET_ID].tolist() == ["101", "null", "102"]
    assert kept[s.QUANTITY].tolist() == ["1", "2", "NaN"]
    clean = ds.table(s.TRANSACTIONS).set_index(s.BASKET_ID)
    assert clean.loc[103, s.RETAIL_DISC] == 0
    assert ds.table(s.PRODUCTS)[s.BRAND].isna().tolist() == [True, False, False, False]


# --- the quarantine folder --------------------------------------------------------------------


def test_quarantine_folder_reflects_this_run_only(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.PRODUCTS].loc[3, s.PRODUCT_ID] = -13  # rejects a product and, in turn, a line
    qdir = tmp_path / "q"
    load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=qdir)
    assert sorted(p.name for p in qdir.iterdir()) == ["products.parquet", "transactions.parquet"]
    (qdir / "notes.txt").write_text("mine")
    (qdir / "products.csv").write_text("not written by validation")
    clean = {s.TRANSACTIONS: tiny_tables()[s.TRANSACTIONS]}  # fewer tables, nothing rejected
    ds = load_dataset(write_folder(tmp_path / "e", clean), quarantine_dir=qdir)
    assert ds.report.quarantined_rows == 0
    assert sorted(p.name for p in qdir.iterdir()) == ["notes.txt", "products.csv"]


def test_quarantine_never_deletes_a_file_it_did_not_write(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "d", tiny_tables())
    other = write_folder(tmp_path / "other", tiny_tables())  # e.g. another data folder
    before = (other / "products.parquet").read_bytes()
    with pytest.raises(GrowthError, match=r"products\.parquet is in the way .* is not one"):
        load_dataset(data, quarantine_dir=other)
    assert (other / "products.parquet").read_bytes() == before
    with pytest.raises(GrowthError, match="is the data folder"):
        load_dataset(_csv_folder(tmp_path / "c"), quarantine_dir=tmp_path / "c" / "d")
    (tmp_path / "file").write_text("x")
    with pytest.raises(GrowthError, match="is a file; expected a folder"):
        load_dataset(data, quarantine_dir=tmp_path / "file")


def test_a_quarantine_file_cleared_by_another_run_meanwhile_is_fine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs validating into one folder: each may clear what the other has just cleared,
    between seeing a file and reading or removing it."""
    import features.validate as validate

    tables = tiny_tables()
    tables[s.PRODUCTS].loc[3, s.PRODUCT_ID] = -13
    data, qdir = write_folder(tmp_path / "d", tables), tmp_path / "q"
    load_dataset(data, quarantine_dir=qdir)
    read_schema = validate.pq.read_schema

    def gone_before_read(path, *args, **kwargs):
        if Path(path).parent == qdir:  # a quarantine file, not the data
            Path(path).unlink()
        return read_schema(path, *args, **kwargs)

    monkeypatch.setattr(validate.pq, "read_schema", gone_before_read)
    load_dataset(data, quarantine_dir=qdir)  # FileNotFoundError: skipped
    monkeypatch.setattr(validate.pq, "read_schema", read_schema)
    real = validate._is_quarantine_file

    def gone_before_unlink(path):
        answer = real(path)
        Path(path).unlink()
        return answer

    monkeypatch.setattr(validate, "_is_quarantine_file", gone_before_unlink)
    ds = load_dataset(data, quarantine_dir=qdir)
    assert sorted(p.name for p in qdir.iterdir()) == ["products.parquet", "transactions.parquet"]
    assert len(pd.read_parquet(quarantine_path(qdir, s.PRODUCTS))) == 1
    assert ds.report.quarantined_rows == 2


def _validate_into(data: Path, qdir: Path) -> int:
    return load_dataset(data, quarantine_dir=qdir).report.quarantined_rows


def test_runs_at_the_same_time_share_a_quarantine_folder(tmp_path: Path) -> None:
    """Processes validating the same data into one folder all succeed and leave whole files
    (a walkthrough saw one of two `growth data validate` fail 3 times in 4)."""
    from concurrent.futures import ProcessPoolExecutor

    tables = tiny_tables()
    tables[s.PRODUCTS].loc[3, s.PRODUCT_ID] = -13
    data, qdir = write_folder(tmp_path / "d", tables), tmp_path / "q"
    with ProcessPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(_validate_into, [data] * 4, [qdir] * 4)) == [2] * 4
    assert sorted(p.name for p in qdir.iterdir()) == ["products.parquet", "transactions.parquet"]
    assert len(pd.read_parquet(quarantine_path(qdir, s.TRANSACTIONS))) == 1


@pytest.mark.parametrize("limit", ["abc", "4GB'; CREATE TABLE x(a int); --"])
def test_connect_gives_memory_limit_to_duckdb_as_a_setting_not_sql(limit: str) -> None:
    with pytest.raises(GrowthError, match="DuckDB refused memory_limit"):
        connect(limit)


def test_ids_as_text_are_digits_and_a_repeated_key_with_other_values_conflicts(
        tmp_path: Path) -> None:
    """Padding and a float export's ``.0`` read as the id; an exponent (a spreadsheet's reading
    of the code 12E3), a digit separator or a plus sign does not, though a number cast would.
    Two rows reading as one product with other values are not a duplicate: they conflict."""
    tables = tiny_tables()
    products = tables[s.PRODUCTS].astype({s.PRODUCT_ID: str})
    extra = pd.DataFrame({s.PRODUCT_ID: ["0010", "11.0", "12E3", "1_000", "+7", " 13 "],
                          s.DEPARTMENT: ["GROCERY", "GROCERY", "TOYS", "TOYS", "TOYS", "DELI"]})
    tables[s.PRODUCTS] = pd.concat([products, extra], ignore_index=True)
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    kept = pd.read_parquet(quarantine_path(tmp_path / "q", s.PRODUCTS))
    assert kept[[s.PRODUCT_ID, "reason"]].values.tolist() == [
        ["0010", "conflicting_product_id"],  # product 10 is GROCERY/National/MILK
        ["11.0", "conflicting_product_id"],
        ["12E3", "bad_product_id"], ["1_000", "bad_product_id"], ["+7", "bad_product_id"],
        [" 13 ", "conflicting_product_id"]]
    assert ds.report.tables[s.PRODUCTS].quarantined == {"bad_product_id": 3,
                                                        "conflicting_product_id": 3}
    assert sorted(ds.table(s.PRODUCTS)[s.PRODUCT_ID]) == [10, 11, 12, 13]
    # an exact copy, written another way, is a duplicate
    tables[s.PRODUCTS] = pd.concat([products, products.assign(
        **{s.PRODUCT_ID: "00" + products[s.PRODUCT_ID]})], ignore_index=True)
    ds = load_dataset(write_folder(tmp_path / "e", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.PRODUCTS].quarantined == {"duplicate": len(products)}


def test_a_row_number_is_not_a_demographic_feature(tmp_path: Path) -> None:
    """Columns outside the contract that demographics keep are features; a spreadsheet's row
    index (``Unnamed: 0``, or any column unique on every row of 20 or more) is not."""
    households = list(range(1, 25))
    tables = tiny_tables()
    tables[s.DEMOGRAPHICS] = pd.DataFrame({
        "Unnamed: 0": range(len(households)), s.HOUSEHOLD_ID: households,
        "export_batch": "b7", "customer_ref": [f"C{h:04d}" for h in households],
        "age": ["25-34", "35-44"] * 12})
    ds = load_dataset(write_folder(tmp_path / "d", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    report = ds.report.tables[s.DEMOGRAPHICS]
    assert report.kept_columns == ["export_batch", "age"]
    assert report.ignored_columns == ["Unnamed: 0", "customer_ref"]
    assert list(ds.table(s.DEMOGRAPHICS).columns) == [s.HOUSEHOLD_ID, "export_batch", "age"]
    # with fewer rows than that, a column of distinct values may be a real attribute
    tables[s.DEMOGRAPHICS] = tables[s.DEMOGRAPHICS].head(3)
    ds = load_dataset(write_folder(tmp_path / "e", tables, fmt="csv"),
                      quarantine_dir=tmp_path / "q")
    assert ds.report.tables[s.DEMOGRAPHICS].kept_columns == ["export_batch", "customer_ref",
                                                             "age"]


def test_times_with_and_without_an_offset_in_one_column_are_flagged(tmp_path: Path) -> None:
    """Both are read (an offset converts to the canonical zone, no offset keeps the wall
    clock), but one export mixing them usually holds two clocks: the rows are kept, flagged."""
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS]
    text = tx[s.TRANSACTION_TIMESTAMP].dt.strftime("%Y-%m-%d %H:%M:%S")
    mixed = text.where(tx.index % 2 == 0, text + "-05:00")
    for name, column, flagged in (("mixed", mixed, {"offset_transaction_timestamp": 3}),
                                  ("all", text + "Z", {}), ("none", text, {})):
        tables[s.TRANSACTIONS] = tx.assign(**{s.TRANSACTION_TIMESTAMP: column})
        ds = load_dataset(write_folder(tmp_path / name, tables, fmt="csv"),
                          quarantine_dir=tmp_path / "q")
        report = ds.report.tables[s.TRANSACTIONS]
        assert report.clean_rows == len(tx), name
        assert {k: v for k, v in report.warnings.items() if k.startswith("offset_")} == (
            flagged), name


def test_a_missing_column_spelt_otherwise_is_named(tmp_path: Path) -> None:
    """Names match ignoring case and outer spaces only; the error names the column the file
    probably meant, without reading it as that column."""
    for other, meant in (("HouseholdID", s.HOUSEHOLD_ID), ("sales value", s.SALES_VALUE),
                         ("housold_id", s.HOUSEHOLD_ID)):
        tables = tiny_tables()
        tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].rename(columns={meant: other})
        with pytest.raises(DataContractError) as err:
            load_dataset(write_folder(tmp_path / other, tables, fmt="csv"),
                         quarantine_dir=tmp_path / "q")
        assert str(err.value).endswith(f"; did you mean {other!r}? rename it to {meant!r}")
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].drop(columns=[s.SALES_VALUE])
    with pytest.raises(DataContractError) as err:
        load_dataset(write_folder(tmp_path / "none", tables, fmt="csv"),
                     quarantine_dir=tmp_path / "q")
    assert "did you mean" not in str(err.value)
