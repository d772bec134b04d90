"""Validation: raw files -> clean typed DuckDB tables, plus a quarantine file of rejected rows.

Nothing is dropped silently. Every rejected row is written, with its original values, its
row number in the source file and a ``reason``, to ``<quarantine_dir>/<table>.parquet``,
and counted in the report. Problems that make a table unusable (unreadable file, missing
required column) raise :class:`DataContractError` naming the file, the column and what was
expected. Suspicious but valid rows (fuel quantities, zero quantities) are kept and
counted as warnings.

    growth data validate [--data DIR]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from features import schema as s
from features.sources import DataContractError

ROW = "__row"
RAW_PREFIX = "__raw_"
# Timestamps outside this range are treated as data errors (e.g. epoch-zero defaults).
MIN_TIMESTAMP = "1990-01-01"
MAX_TIMESTAMP = "2100-01-01"


@dataclass
class TableReport:
    table: str
    file: str
    input_rows: int
    clean_rows: int
    quarantined: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())


@dataclass
class ValidationReport:
    tables: dict[str, TableReport]
    quarantine_dir: Path

    @property
    def quarantined_rows(self) -> int:
        return sum(t.quarantined_rows for t in self.tables.values())


def _q(name: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _register_raw(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> str:
    """Expose the raw file as a view with a 0-based ``__row`` column; returns the view name."""
    view = f"raw_{table}"
    try:
        if path.suffix == ".parquet":
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number AS {ROW} FROM read_parquet({_sql_str(str(path))}, "
                "file_row_number=true)"
            )
        else:
            # Read every column as text so that a bad cell becomes a quarantined row, not a
            # failed load; row numbers come from the file order.
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            if not header:
                raise DataContractError(f"{path}: file is empty; expected a header row")
            arrow = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    strings_can_be_null=True,
                ),
            )
            arrow = arrow.append_column(ROW, pa.array(range(arrow.num_rows), pa.int64()))
            con.register(f"{view}_arrow", arrow)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_arrow")
        con.execute(f"SELECT * FROM {view} LIMIT 0").fetchall()
    except (duckdb.Error, pa.ArrowInvalid, OSError) as exc:
        raise DataContractError(f"{path}: cannot read table {table!r}: {exc}") from exc
    return view


def _typed_expr(col: s.Column, raw: str | None, zero_if_null: bool) -> str:
    """SQL for the canonical value of ``col`` from raw column ``raw`` (None: column absent)."""
    target = s.DUCKDB_TYPE[col.kind]
    if raw is None:
        return f"{'0' if zero_if_null else 'NULL'}::{target}"
    r = _q(raw)
    if col.kind == "id":
        as_double = f"TRY_CAST({r} AS DOUBLE)"
        return f"CASE WHEN {as_double} = round({as_double}) THEN TRY_CAST({r} AS BIGINT) END"
    if col.kind == "number":
        as_double = f"TRY_CAST({r} AS DOUBLE)"
        value = f"CASE WHEN isfinite({as_double}) THEN {as_double} END"
        return f"coalesce({value}, 0::DOUBLE)" if zero_if_null else value
    if col.kind == "timestamp":
        ts = f"TRY_CAST({r} AS TIMESTAMP)"
        return (f"CASE WHEN {ts} >= TIMESTAMP '{MIN_TIMESTAMP}' AND {ts} < TIMESTAMP "
                f"'{MAX_TIMESTAMP}' THEN {ts} END")
    return f"CAST({r} AS VARCHAR)"


def _reason_cases(table: s.Table, raw_names: dict[str, str], present: set[str]) -> list[str]:
    """``WHEN … THEN 'reason'`` clauses, first match wins; typed columns are named canonically."""
    cases: list[str] = []
    for col in table.columns:
        raw = raw_names.get(col.name)
        if raw is None:
            continue
        raw_col = f"t.{_q(RAW_PREFIX + col.name)}"
        raw_null = f"{raw_col} IS NULL"
        typed_null = f"t.{_q(col.name)} IS NULL"
        if col.required:
            cases.append(f"WHEN {raw_null} THEN 'null_{col.name}'")
        if col.name in table.null_as_zero:
            # a null discount is no discount, but text that is not a number is an error
            cases.append(f"WHEN NOT {raw_null} AND TRY_CAST({raw_col} AS DOUBLE) IS NULL "
                         f"THEN 'bad_{col.name}'")
        elif col.kind != "category":
            cases.append(f"WHEN NOT {raw_null} AND {typed_null} THEN 'bad_{col.name}'")
    for ref in table.references:
        if ref.column in raw_names and ref.table in present:
            cases.append(
                f"WHEN t.{_q(ref.column)} NOT IN (SELECT {_q(ref.target_column)} FROM "
                f"{ref.table}) THEN 'unknown_{ref.column}'"
            )
    if table.name == s.CAMPAIGN_DESCRIPTIONS:
        cases.append(f"WHEN t.{s.END_DATE} < t.{s.START_DATE} THEN 'end_before_start'")
    return cases


def _warning_counts(con: duckdb.DuckDBPyConnection, table: str,
                    quantity_outlier: float) -> dict[str, int]:
    """Counts of kept-but-suspicious rows in the clean transactions table."""
    if table != s.TRANSACTIONS:
        return {}
    q, v = s.QUANTITY, s.SALES_VALUE
    row = con.execute(
        f"SELECT count(*) FILTER (WHERE {q} > {quantity_outlier}), "
        f"count(*) FILTER (WHERE {q} = 0), count(*) FILTER (WHERE {v} = 0), "
        f"count(*) FILTER (WHERE {q} < 0 OR {v} < 0) FROM {table}"
    ).fetchone()
    names = ("quantity_outlier", "zero_quantity", "zero_sales_value", "negative_value")
    return {name: int(n) for name, n in zip(names, row, strict=True) if n}


def validate_table(con: duckdb.DuckDBPyConnection, table: s.Table, path: Path,
                   quarantine_dir: Path, present: set[str],
                   quantity_outlier: float) -> TableReport:
    """Create the clean table ``table.name`` in ``con`` and write its quarantine file."""
    view = _register_raw(con, table.name, path)
    described = con.execute(f"SELECT * FROM {view} LIMIT 0").description
    raw_cols = [d[0] for d in described if d[0] != ROW]
    by_lower = {c.strip().lower(): c for c in raw_cols}
    raw_names: dict[str, str] = {}
    for col in table.columns:
        if col.name in by_lower:
            raw_names[col.name] = by_lower[col.name]
        elif col.required:
            found = ", ".join(raw_cols) or "none"
            raise DataContractError(
                f"{path}: table {table.name!r} is missing required column {col.name!r} "
                f"(expected {col.kind} values of type {s.DUCKDB_TYPE[col.kind]}; "
                f"columns found: {found})"
            )
    canonical = {c.name for c in table.columns}
    extra = [c for c in raw_cols if c.strip().lower() not in canonical]
    typed = [f"{_typed_expr(c, raw_names.get(c.name), c.name in table.null_as_zero)} "
             f"AS {_q(c.name)}" for c in table.columns]
    if table.keep_extra_columns:
        typed += [f"CAST(r.{_q(c)} AS VARCHAR) AS {_q(c.strip().lower())}" for c in extra]
    out_cols = [c.name for c in table.columns] + (
        [c.strip().lower() for c in extra] if table.keep_extra_columns else [])
    key = list(table.key or [c.name for c in table.columns])
    cases = _reason_cases(table, raw_names, present)
    first_reason = f"CASE {' '.join(cases)} END" if cases else "NULL::VARCHAR"
    stage = f"stage_{table.name}"
    select_typed = ", ".join(typed)
    raw_aliases = [(RAW_PREFIX + c, raw) for c, raw in raw_names.items()]
    select_raw = "".join(f"r.{_q(raw)} AS {_q(alias)}, " for alias, raw in raw_aliases)
    raw_excluded = ", ".join(_q(alias) for alias, _ in raw_aliases)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {stage} AS
        WITH t AS (SELECT r.{ROW}, {select_raw} {select_typed} FROM {view} r),
        checked AS (SELECT t.* EXCLUDE ({raw_excluded}), {first_reason} AS {s.REASON} FROM t)
        SELECT * REPLACE (
            CASE WHEN {s.REASON} IS NULL AND row_number() OVER (
                PARTITION BY {s.REASON} IS NULL, {', '.join(_q(k) for k in key)}
                ORDER BY {ROW}) > 1 THEN 'duplicate' ELSE {s.REASON} END AS {s.REASON})
        FROM checked ORDER BY {ROW}
    """)
    counts = dict(con.execute(
        f"SELECT coalesce({s.REASON}, ''), count(*) FROM {stage} GROUP BY 1 ORDER BY 1"
    ).fetchall())
    input_rows = sum(counts.values())
    quarantined = {k: int(v) for k, v in counts.items() if k}
    qfile = quarantine_dir / f"{table.name}.parquet"
    if quarantined:
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"""
            COPY (SELECT r.* EXCLUDE ({ROW}), r.{ROW} AS {s.SOURCE_ROW}, g.{s.REASON}
                  FROM {view} r JOIN {stage} g USING ({ROW})
                  WHERE g.{s.REASON} IS NOT NULL ORDER BY r.{ROW})
            TO {_sql_str(str(qfile))} (FORMAT parquet)
        """)
    elif qfile.exists():
        qfile.unlink()  # a stale file from an earlier run would mislead
    cols = ", ".join(_q(c) for c in out_cols)
    con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT {cols} FROM {stage} "
                f"WHERE {s.REASON} IS NULL ORDER BY {ROW}")
    con.execute(f"DROP TABLE {stage}")
    clean_rows = input_rows - sum(quarantined.values())
    return TableReport(
        table=table.name,
        file=str(path),
        input_rows=input_rows,
        clean_rows=clean_rows,
        quarantined=quarantined,
        warnings=_warning_counts(con, table.name, quantity_outlier),
        ignored_columns=[] if table.keep_extra_columns else extra,
    )


def validate_into(con: duckdb.DuckDBPyConnection, files: dict[str, Path], quarantine_dir: Path,
                  quantity_outlier: float = 1000.0) -> ValidationReport:
    """Validate every table in ``files`` into clean tables of ``con``; returns the report."""
    reports: dict[str, TableReport] = {}
    present: set[str] = set()
    for name in s.TABLE_ORDER:
        if name not in files:
            continue
        reports[name] = validate_table(con, s.TABLES[name], Path(files[name]),
                                       Path(quarantine_dir), present, quantity_outlier)
        present.add(name)
    transactions = reports.get(s.TRANSACTIONS)
    if transactions is not None and transactions.clean_rows == 0:
        raise DataContractError(
            f"{transactions.file}: table 'transactions' has no valid rows "
            f"({transactions.input_rows} read, all quarantined: {transactions.quarantined})"
        )
    return ValidationReport(reports, Path(quarantine_dir))
