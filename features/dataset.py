"""The one loading path: source files -> validation -> clean tables in a DuckDB connection.

Every command (validate, features, training, scoring) calls :func:`load_dataset`, so all of
them see the same clean rows and the same quarantine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.sources import DataContractError, GrowthError, describe_source, resolve_source
from features.validate import ValidationReport, validate_into


def connect(memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with deterministic settings.

    ``memory_limit`` goes to DuckDB as a setting, never as SQL text; DataConfig checks it.
    """
    try:
        con = duckdb.connect(":memory:", config={"memory_limit": memory_limit})
    except duckdb.Error as exc:
        raise GrowthError(f"DuckDB refused memory_limit {memory_limit!r}: {exc}") from exc
    con.execute("SET preserve_insertion_order = true")
    # Setting it (even to false) raises inside Jupyter without ipywidgets, where it is off.
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0]:
        con.execute("SET enable_progress_bar = false")
    return con


@dataclass
class Dataset:
    """Clean canonical tables held in ``con``, plus the validation report that made them."""

    con: duckdb.DuckDBPyConnection
    report: ValidationReport
    source: str

    def has(self, table: str) -> bool:
        return table in self.report.tables

    def require(self, table: str, purpose: str) -> None:
        """Raise a clear error when an optional table that ``purpose`` needs is absent."""
        if not self.has(table):
            raise DataContractError(
                f"{purpose} needs table {table!r} ({table}.parquet or {table}.csv), "
                f"which {self.source} does not have"
            )

    def df(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).df()

    def df_with(self, sql: str, **frames: pd.DataFrame) -> pd.DataFrame:
        """Run ``sql`` with each pandas frame visible as a view under its keyword name."""
        cursor = self.con.cursor()  # the views live and die with this cursor
        try:
            for name, frame in frames.items():
                cursor.register(name, frame)
            return cursor.execute(sql).df()
        finally:
            cursor.close()

    def table(self, name: str) -> pd.DataFrame:
        self.require(name, f"reading {name}")
        return self.df(f"SELECT * FROM {name}")

    def time_range(self) -> tuple[datetime, datetime]:
        """First and last transaction timestamps of the clean data."""
        ts = s.TRANSACTION_TIMESTAMP
        first, last = self.con.execute(
            f"SELECT min({ts}), max({ts}) FROM {s.TRANSACTIONS}").fetchone()
        return first, last

    def check_as_of(self, as_of: date, what: str = "as-of date") -> None:
        """Refuse to score, recommend or build features as of a day outside the data: from
        its first transaction day to the day after its last (which sees every line).
        ``what`` names the date in the message."""
        first, last = (ts.date() for ts in self.time_range())
        day = as_of.date() if isinstance(as_of, datetime) else as_of
        if not first <= day <= last + timedelta(days=1):
            raise GrowthError(
                f"{what} {day} is outside the data: {self.source} runs from {first} to "
                f"{last}, so the {what} may be from {first} to {last + timedelta(days=1)} "
                "(the day after its last transaction)")


def load_dataset(data: Path | None = None, cfg: DataConfig | None = None,
                 quarantine_dir: Path | None = None) -> Dataset:
    """Validate the source (embedded data when ``data`` is None) into a :class:`Dataset`."""
    cfg = cfg or DataConfig()
    files = resolve_source(data)
    con = connect(cfg.memory_limit)
    report = validate_into(con, files, Path(quarantine_dir or cfg.quarantine_dir),
                           quantity_outlier=cfg.quantity_outlier)
    return Dataset(con=con, report=report, source=describe_source(data))
