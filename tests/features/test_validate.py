"""Validation: fatal problems name file/column; row problems are quarantined, never lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.dataset import load_dataset
from features.sources import DataContractError, folder_source, resolve_source
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


def test_null_discount_means_zero_and_stale_quarantine_is_removed(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS][s.RETAIL_DISC] = None
    qdir = tmp_path / "q"
    qdir.mkdir()
    (qdir / "transactions.parquet").write_bytes(b"stale")
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=qdir)
    assert (ds.table(s.TRANSACTIONS)[s.RETAIL_DISC] == 0).all()
    assert not (qdir / "transactions.parquet").exists()


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
    assert tx.quarantined == {"unknown_product_id": 4836}
    assert tx.warnings["quantity_outlier"] > 10_000  # fuel lines are kept, flagged
    assert len(pd.read_parquet(tmp_path / "q" / "transactions.parquet")) == 4836
    for rep in ds.report.tables.values():
        assert rep.clean_rows + rep.quarantined_rows == rep.input_rows
