"""Validation: raw files -> clean typed DuckDB tables, plus a quarantine file of rejected rows.

Nothing is dropped silently. Every rejected row is written, with its original values (CSV
cells as the original text, ``NA`` included), its ``source_row`` (0-based position among the
file's data rows, header not counted: CSV line ``source_row + 2`` when no value holds a line
break) and a ``reason``, to ``<quarantine_dir>/<table>.parquet`` (a file's own
``source_row`` or ``reason`` column is kept there as ``<name>_in_file``), and counted in the
report. Reasons: ``null_<column>`` (a required value is missing), ``bad_<column>`` (not a
value of the column's kind; an id given as text is digits, ``ID_TEXT``),
``negative_<column>`` (ids are >= 0), ``unknown_<column>``
(points at a row the referenced table does not have), ``future_<column>`` (an event time,
such as a transaction's timestamp, later than the moment of validation plus a day of slack
for time zones: see :func:`utc_now`), ``end_before_start``, ``duplicate`` (a copy of an
earlier row, or of its key where the table has one) and ``conflicting_<key>`` (the key of an
earlier row with other values: the first row in the file is kept). Columns outside the
contract are ignored and listed in the report, except where a table keeps them as features
(demographics attributes): there every one but a row number is kept, and listed too.

Each run first removes the quarantine files an earlier run wrote (only files named after a
table that hold the quarantine columns; anything else under such a name is an error, never
deleted), so the folder describes this run alone. Problems that make a table unusable
(unreadable or non-UTF-8 file, a CSV separated by ``;`` or tabs, missing required column, two
columns with the same contract name, a column of a type its kind does not allow, no valid
transaction) raise :class:`DataContractError` naming the file, the column and what was
expected; when every transaction is rejected, the message shows one value of the most common
reason with its line. Suspicious but valid rows (fuel quantities, zero quantities, text times
with a UTC offset in a column whose other times have none) are kept and counted as warnings.
A table that loses more than ``LARGE_LOSS_SHARE`` of its rows to quarantine (say, half the
transactions name products that an incomplete products table lacks) still loads, but the
report warns about it: :meth:`ValidationReport.large_losses`. The rules themselves are in
features/schema.py.

    growth data validate [--data DIR]
"""

from __future__ import annotations

import codecs
import csv
import difflib
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features import schema as s
from features.sources import DataContractError, GrowthError, refuse_data_folder

ROW = "__row"
RAW_PREFIX = "__raw_"
STAGE_REASON = "__reason"  # written to the quarantine file as ``reason``
# Timestamps outside this range are treated as data errors (e.g. epoch-zero defaults).
MIN_TIMESTAMP = "1990-01-01"
MAX_TIMESTAMP = "2100-01-01"
# Event times may run this far past the moment of validation: naive local times ahead of UTC.
FUTURE_SLACK = timedelta(days=1)
# What a cell of each kind must hold, for messages about rejected rows.
VALUE_IN_WORDS: dict[str, str] = {
    "id": "an integer id 0..2^63-1",
    "number": "a finite number",
    "timestamp": (f"a timestamp from {MIN_TIMESTAMP[:4]} to {MAX_TIMESTAMP[:4]} such as "
                  "2019-04-20 18:36:47 or ISO 8601 with an offset (2019-04-20T18:36:47-05:00)"),
    "day": f"a date from {MIN_TIMESTAMP[:4]} to {MAX_TIMESTAMP[:4]} such as 2019-04-20",
    "category": "a value",
}
# How a shown value is cut, in messages.
SHOWN_CHARS = 60
# A numeric offset after a clock time with 15+ hours or 60+ minutes: no zone has one, though
# DuckDB's TIMESTAMPTZ cast reads them (``+25:00`` as 25 hours).
IMPOSSIBLE_OFFSET = (r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*[+-]((1[5-9]|[2-9]\d)(:?\d{2})?|\d{2}:?[6-9]\d)"
                     r"\s*$")
UTF8_CHUNK = 1 << 20
# A clock time followed by a UTC offset (or Z): such text converts to the canonical zone, and
# text without one keeps its wall clock; a column holding both is flagged (see _mixed_offsets).
WITH_OFFSET = r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*([zZ]|[+-]\d{2}(:?\d{2})?)\s*$"
# An id written as text: digits (leading zeros read as padding: 007 is 7), a minus sign for
# the ``negative_<column>`` reason, and a zero fraction as a float export writes it (7.0).
# Exponents (12E3, a spreadsheet's reading of a code), digit separators (1_000) and signs
# like +7, which a number cast would accept, are ``bad_<column>``.
ID_TEXT = r"-?[0-9]+(\.0+)?"
# Columns outside the contract that a table keeps (demographics attributes) are features; a
# row number is not: a column unique on every row (once the table has this many rows), or
# one named as a spreadsheet names an index (pandas' ``Unnamed: 0``, an empty header).
ROW_NUMBER_MIN_ROWS = 20
ROW_NUMBER_NAME = r"(unnamed: ?[0-9]+|column_[0-9]+)"
# A table losing more than this share of its rows to quarantine gets a warning line with the
# validation report (never an error: the rows kept still load). The embedded data stays
# under it: 0.3% of its transactions, 4.2% of its coupons.
LARGE_LOSS_SHARE = 0.10


@dataclass
class TableReport:
    table: str
    file: str
    input_rows: int
    clean_rows: int
    quarantined: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)  # as named in the file
    kept_columns: list[str] = field(default_factory=list)  # outside the contract, kept

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

    def large_losses(self) -> list[str]:
        """One line for each table that lost more than ``LARGE_LOSS_SHARE`` of its rows to
        quarantine: the share, the most common reason and where the rejected rows are."""
        return [_large_loss(t, self.quarantine_dir) for t in self.tables.values()
                if t.input_rows and t.quarantined_rows / t.input_rows > LARGE_LOSS_SHARE]


def _large_loss(report: TableReport, quarantine_dir: Path) -> str:
    reason = max(sorted(report.quarantined), key=report.quarantined.__getitem__)
    kind, _, column = reason.partition("_")
    ref = next((r for r in s.TABLES[report.table].references if r.column == column), None)
    why = (f": their {column} is not in table {ref.table!r}"
           if kind == "unknown" and ref is not None else "")
    return (f"table {report.table!r} lost {report.quarantined_rows / report.input_rows:.1%} "
            f"of its rows to quarantine ({report.quarantined_rows:,} of "
            f"{report.input_rows:,}), most as {reason} ({report.quarantined[reason]:,}{why}); "
            f"check them in {quarantine_path(quarantine_dir, report.table)} before relying "
            "on what is built from this table")


def sql_ident(name: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    """Quote a string literal for SQL."""
    return "'" + value.replace("'", "''") + "'"


def quarantine_path(quarantine_dir: Path, table: str) -> Path:
    """Where the rejected rows of ``table`` go."""
    return Path(quarantine_dir) / f"{table}.parquet"


def _require_utf8(path: Path) -> None:
    """Raise a contract error naming the first line of ``path`` that is not UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(UTF8_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        # A line break is never part of a multi-byte character, so the first line that does
        # not decode holds the first bad byte.
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataContractError(
                        f"{path}: line {number} is not UTF-8 text (byte "
                        f"0x{line[exc.start]:02x} at byte {exc.start + 1} of the line); CSV "
                        "files must be UTF-8 (a byte-order mark is allowed): save it as UTF-8"
                    ) from None


def _refuse_other_separators(path: Path, header: list[str]) -> None:
    """Refuse a CSV whose header is one column holding ``;`` or tabs: a file saved with
    another separator (a spreadsheet's export in many locales), which would otherwise fail
    as a parse error on its first data line or as a missing column named after the header."""
    if len(header) != 1:
        return
    counts = {"';'": header[0].count(";"), "tabs": header[0].count("\t")}
    separator = max(counts, key=counts.__getitem__)
    if counts[separator]:
        raise DataContractError(
            f"{path}: the header looks separated by {separator}; expected comma-separated "
            "values (save the file as CSV with commas)")


def _check_names(path: Path, table: str, names: list[str],
                 reserved: tuple[str, ...] = ()) -> None:
    """Refuse columns that match the same contract name (any kept column, in a table that keeps
    columns outside the contract), and names validation uses itself (plus ``reserved``).
    Other repeated names, such as the unnamed empty columns of a spreadsheet export, are
    ignored like any column outside the contract."""
    spec = s.TABLES[table]
    contract = {c.name for c in spec.columns}
    seen: dict[str, str] = {}
    for name in names:
        key = s.column_key(name)
        if key in (ROW, STAGE_REASON, *reserved) or key.startswith(RAW_PREFIX):
            raise DataContractError(
                f"{path}: column {name!r} of table {table!r} uses a name reserved for "
                f"validation ({ROW!r}, {STAGE_REASON!r}, {RAW_PREFIX}*"
                + "".join(f", {r!r}" for r in reserved) + "); rename it")
        if key in seen and (key in contract or spec.keep_extra_columns):
            raise DataContractError(
                f"{path}: columns {seen[key]!r} and {name!r} of table {table!r} are the same "
                f"column {key!r} (names match ignoring case and surrounding spaces); keep one")
        seen[key] = name


def _distinct_names(names: list[str]) -> list[str]:
    """Names SQL can hold: an unnamed column (a spreadsheet export's empty ones) becomes
    ``column_<position>`` and a repeated name outside the contract ``<name>_<position>``,
    so their values still reach the quarantine file and the report lists them as ignored."""
    seen: set[str] = set()
    out = []
    for position, name in enumerate(names, 1):
        key = s.column_key(name)
        if not key:
            name = f"column_{position}"
        elif key in seen:
            name = f"{name.strip()}_{position}"
        seen.add(s.column_key(name))
        out.append(name)
    return out


def _register_raw(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> tuple[str, str]:
    """Expose the file as views with a 0-based ``__row`` column: ``raw`` holds the values as
    read (CSV cells as text, for the quarantine file), ``src`` the same with CSV null markers
    as NULL (what typing reads). Returns (raw, src) view names."""
    raw, src = f"raw_{table}", f"src_{table}"
    try:
        if path.suffix.lower() == ".parquet":
            # DuckDB's row numbers come as a column of this name
            _check_names(path, table, pq.read_schema(path).names, reserved=("file_row_number",))
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number AS {ROW} FROM read_parquet({sql_str(str(path))}, "
                "file_row_number=true)"
            )
            con.execute(f"CREATE OR REPLACE TEMP VIEW {src} AS SELECT * FROM {raw}")
        else:
            # Read every column as text so that a bad cell becomes a quarantined row, not a
            # failed load; row numbers come from the file order.
            _require_utf8(path)
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                header_only = next(reader, None) is None
            if not header:
                raise DataContractError(f"{path}: file is empty; expected a header row")
            _refuse_other_separators(path, header)
            if header_only:  # pyarrow cannot infer columns from a header with no line end
                arrow = pa.table({f"c{i}": pa.array([], pa.string())
                                  for i in range(len(header))}).rename_columns(header)
            else:
                arrow = pacsv.read_csv(
                    path,
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types={name: pa.string() for name in header},
                        strings_can_be_null=False,
                    ),
                )
            _check_names(path, table, arrow.column_names)
            arrow = arrow.rename_columns(_distinct_names(arrow.column_names))
            markers = ", ".join(sql_str(m) for m in s.NULL_MARKERS)
            cells = "".join(f", CASE WHEN {sql_ident(c)} IN ({markers}) THEN NULL "
                            f"ELSE {sql_ident(c)} END AS {sql_ident(c)}"
                            for c in arrow.column_names)
            arrow = arrow.append_column(ROW, pa.array(range(arrow.num_rows), pa.int64()))
            con.register(f"{raw}_arrow", arrow)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {raw}_arrow")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {src} AS SELECT {ROW}{cells} FROM {raw}")
        con.execute(f"SELECT * FROM {src} LIMIT 0").fetchall()
    except (duckdb.Error, pa.ArrowInvalid, OSError, csv.Error) as exc:
        raise DataContractError(f"{path}: cannot read table {table!r}: {exc}") from exc
    return raw, src


def _check_type(path: Path, table: str, col: s.Column, raw: str, found: str) -> None:
    """Refuse a file column whose type the column's kind does not allow (e.g. BOOLEAN)."""
    allowed = s.FILE_TYPES[col.kind]
    base = found.split("(")[0].strip('"')
    if allowed is None or base in s.TEXT_TYPES or base in allowed:
        return
    raise DataContractError(
        f"{path}: column {raw!r} of table {table!r} has type {found}; expected {col.kind} "
        f"values: {s.FILE_TYPES_IN_WORDS[col.kind]}, or text"
    )


def _typed_expr(col: s.Column, raw: str | None, raw_type: str | None,
                zero_if_null: bool) -> str:
    """SQL for the canonical value of ``col`` from raw column ``raw`` of DuckDB type
    ``raw_type`` (both None: column absent)."""
    target = s.DUCKDB_TYPE[col.kind]
    if raw is None:
        return f"{'0' if zero_if_null else 'NULL'}::{target}"
    r = sql_ident(raw)
    if col.kind == "id":
        as_double = f"TRY_CAST({r} AS DOUBLE)"
        if raw_type == "VARCHAR":  # digits only: 12E3, 1_000 or +7 are not ids
            return (f"CASE WHEN regexp_full_match(trim({r}), {sql_str(ID_TEXT)}) "
                    f"THEN TRY_CAST(trim({r}) AS BIGINT) END")
        return f"CASE WHEN {as_double} = round({as_double}) THEN TRY_CAST({r} AS BIGINT) END"
    if col.kind == "number":
        as_double = f"TRY_CAST({r} AS DOUBLE)"
        value = f"CASE WHEN isfinite({as_double}) THEN {as_double} END"
        return f"coalesce({value}, 0::DOUBLE)" if zero_if_null else value
    if col.kind in ("timestamp", "day"):
        # Text goes through TIMESTAMPTZ, so that an offset converts the value to the
        # canonical zone (a cast to TIMESTAMP would ignore it); naive text is read in the
        # session zone, which validate_into sets to the canonical zone, so it keeps its wall
        # clock. Typed columns cast directly (faster): tz-aware ones convert through that
        # same session zone, naive ones keep their wall clock.
        ts = (f"timezone({sql_str(s.TIMEZONE)}, CASE WHEN NOT regexp_matches({r}, "
              f"{sql_str(IMPOSSIBLE_OFFSET)}) THEN TRY_CAST({r} AS TIMESTAMPTZ) END)"
              if raw_type == "VARCHAR" else f"TRY_CAST({r} AS TIMESTAMP)")
        if col.kind == "day":
            ts = f"date_trunc('day', {ts})"
        return (f"CASE WHEN {ts} >= TIMESTAMP '{MIN_TIMESTAMP}' AND {ts} < TIMESTAMP "
                f"'{MAX_TIMESTAMP}' THEN {ts} END")
    return f"CAST({r} AS VARCHAR)"


def utc_now() -> datetime:
    """The moment of validation in UTC, naive like the canonical timestamps (tests replace it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _reason_cases(table: s.Table, raw_names: dict[str, str], present: set[str],
                  latest_event: datetime) -> list[str]:
    """``WHEN … THEN 'reason'`` clauses, first match wins; typed columns are named canonically.
    Event times after ``latest_event`` are ``future_<column>``."""
    cases: list[str] = []
    for col in table.columns:
        raw = raw_names.get(col.name)
        if raw is None:
            continue
        raw_col = f"t.{sql_ident(RAW_PREFIX + col.name)}"
        raw_null = f"{raw_col} IS NULL"
        typed_null = f"t.{sql_ident(col.name)} IS NULL"
        if col.required:
            cases.append(f"WHEN {raw_null} THEN 'null_{col.name}'")
        if col.name in table.null_as_zero:
            # a null discount is no discount, but a value that is not a finite number is an error
            cases.append(f"WHEN NOT {raw_null} AND NOT coalesce(isfinite(TRY_CAST({raw_col} "
                         f"AS DOUBLE)), false) THEN 'bad_{col.name}'")
        elif col.kind != "category":
            cases.append(f"WHEN NOT {raw_null} AND {typed_null} THEN 'bad_{col.name}'")
        if col.kind == "id":
            cases.append(f"WHEN t.{sql_ident(col.name)} < 0 THEN 'negative_{col.name}'")
        if col.name in table.event_times:
            cases.append(f"WHEN t.{sql_ident(col.name)} > TIMESTAMP "
                         f"{sql_str(latest_event.isoformat(sep=' '))} THEN 'future_{col.name}'")
    for ref in table.references:
        if ref.column in raw_names and ref.table in present:
            cases.append(
                f"WHEN t.{sql_ident(ref.column)} NOT IN (SELECT "
                f"{sql_ident(ref.target_column)} FROM {ref.table}) THEN 'unknown_{ref.column}'"
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
        f"SELECT count(*) FILTER (WHERE {q} > ?), "
        f"count(*) FILTER (WHERE {q} = 0), count(*) FILTER (WHERE {v} = 0), "
        f"count(*) FILTER (WHERE {s.RETURN_LINE}) FROM {table}", [quantity_outlier]
    ).fetchone()
    names = ("quantity_outlier", "zero_quantity", "zero_sales_value", "negative_value")
    return {name: int(n) for name, n in zip(names, row, strict=True) if n}


def _mixed_offsets(con: duckdb.DuckDBPyConnection, view: str, table: s.Table,
                   raw_names: dict[str, str], raw_types: dict[str, str]) -> dict[str, int]:
    """``offset_<column>``: how many text times of a column carry a UTC offset when others in
    it carry none. Both are read (the first converted to the canonical zone, the second as
    its wall clock), but an export that mixes them usually means two clocks: a basket's lines
    can land hours apart."""
    found: dict[str, int] = {}
    for col in table.columns:
        raw = raw_names.get(col.name)
        if col.kind != "timestamp" or raw is None or raw_types[raw] != "VARCHAR":
            continue
        r = sql_ident(raw)
        with_offset, without = con.execute(
            f"SELECT count(*) FILTER (WHERE regexp_matches({r}, {sql_str(WITH_OFFSET)})), "
            f"count(*) FILTER (WHERE NOT regexp_matches({r}, {sql_str(WITH_OFFSET)})) "
            f"FROM {view}").fetchall()[0]
        if with_offset and without:
            found[f"offset_{col.name}"] = int(with_offset)
    return found


def validate_table(con: duckdb.DuckDBPyConnection, table: s.Table, path: Path,
                   quarantine_dir: Path, present: set[str],
                   quantity_outlier: float, latest_event: datetime) -> TableReport:
    """Create the clean table ``table.name`` in ``con`` and write its quarantine file; event
    times after ``latest_event`` are rejected."""
    raw_view, view = _register_raw(con, table.name, path)
    described = con.execute(f"DESCRIBE {view}").fetchall()
    raw_types = {d[0]: d[1] for d in described if d[0] != ROW}
    raw_cols = list(raw_types)
    by_key = {s.column_key(c): c for c in raw_cols}
    raw_names: dict[str, str] = {}
    for col in table.columns:
        if col.name in by_key:
            raw_names[col.name] = by_key[col.name]
            _check_type(path, table.name, col, by_key[col.name], raw_types[by_key[col.name]])
        elif col.required:
            found = ", ".join(repr(c) if len(c) <= 60 else repr(c[:60]) + "..."
                              for c in raw_cols[:30]) or "none"
            found += f" and {len(raw_cols) - 30} more" if len(raw_cols) > 30 else ""
            raise DataContractError(
                f"{path}: table {table.name!r} is missing required column {col.name!r} "
                f"(expected {col.kind} values of type {s.DUCKDB_TYPE[col.kind]}; "
                f"columns found: {found}){_did_you_mean(col.name, raw_cols)}"
            )
    canonical = {c.name for c in table.columns}
    extra = [c for c in raw_cols if s.column_key(c) not in canonical]
    kept_extra = _kept_extra_columns(con, view, extra) if table.keep_extra_columns else []
    typed = []
    for c in table.columns:
        raw = raw_names.get(c.name)
        expr = _typed_expr(c, raw, None if raw is None else raw_types[raw],
                           c.name in table.null_as_zero)
        typed.append(f"{expr} AS {sql_ident(c.name)}")
    typed += [f"CAST(r.{sql_ident(c)} AS VARCHAR) AS {sql_ident(s.column_key(c))}"
              for c in kept_extra]
    out_cols = [c.name for c in table.columns] + [s.column_key(c) for c in kept_extra]
    key = list(table.key or [c.name for c in table.columns])
    same = ", ".join(sql_ident(c) for c in out_cols)
    # a repeated key: an exact copy is a duplicate; with other values it conflicts (both
    # read, say, product 123 from "0123" and "123"), and the first row in the file is kept
    repeated = ("'duplicate'" if len(key) == len(table.columns) and not kept_extra else
                f"CASE WHEN ROW({same}) IS NOT DISTINCT FROM first_value(ROW({same})) OVER w "
                f"THEN 'duplicate' ELSE 'conflicting_{'_'.join(key)}' END")
    cases = _reason_cases(table, raw_names, present, latest_event)
    first_reason = f"CASE {' '.join(cases)} END" if cases else "NULL::VARCHAR"
    stage = f"stage_{table.name}"
    select_typed = ", ".join(typed)
    raw_aliases = [(RAW_PREFIX + c, raw) for c, raw in raw_names.items()]
    select_raw = "".join(f"r.{sql_ident(raw)} AS {sql_ident(alias)}, "
                         for alias, raw in raw_aliases)
    raw_excluded = ", ".join(sql_ident(alias) for alias, _ in raw_aliases)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {stage} AS
        WITH t AS (SELECT r.{ROW}, {select_raw} {select_typed} FROM {view} r),
        checked AS (SELECT t.* EXCLUDE ({raw_excluded}), {first_reason} AS {STAGE_REASON} FROM t)
        SELECT * REPLACE (
            CASE WHEN {STAGE_REASON} IS NULL AND row_number() OVER w > 1 THEN {repeated}
                 ELSE {STAGE_REASON} END AS {STAGE_REASON})
        FROM checked
        WINDOW w AS (PARTITION BY {STAGE_REASON} IS NULL, {', '.join(sql_ident(k) for k in key)}
                     ORDER BY {ROW})
        ORDER BY {ROW}
    """)
    counts = dict(con.execute(
        f"SELECT coalesce({STAGE_REASON}, ''), count(*) FROM {stage} GROUP BY 1 ORDER BY 1"
    ).fetchall())
    input_rows = sum(counts.values())
    quarantined = {k: int(v) for k, v in counts.items() if k}
    if quarantined:
        qfile = quarantine_path(quarantine_dir, table.name)
        # written beside, then renamed over: another run validating into the same folder
        # never sees half a file (same data: the same rows, so the last rename wins)
        partial = qfile.with_name(f".{qfile.name}.{os.getpid()}.partial")
        try:
            quarantine_dir.mkdir(parents=True, exist_ok=True)
            kept = ", ".join(f"r.{sql_ident(c)} AS {sql_ident(_quarantine_name(c))}"
                             for (c, *_) in con.execute(f"DESCRIBE {raw_view}").fetchall()
                             if c != ROW)
            con.execute(f"""
                COPY (SELECT {kept}, r.{ROW} AS {s.SOURCE_ROW}, g.{STAGE_REASON} AS {s.REASON}
                      FROM {raw_view} r JOIN {stage} g USING ({ROW})
                      WHERE g.{STAGE_REASON} IS NOT NULL ORDER BY r.{ROW})
                TO {sql_str(str(partial))} (FORMAT parquet)
            """)
            os.replace(partial, qfile)
        except (OSError, duckdb.IOException) as exc:
            partial.unlink(missing_ok=True)
            raise GrowthError(f"cannot write quarantine file {qfile}: {exc}") from exc
    cols = ", ".join(sql_ident(c) for c in out_cols)
    con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT {cols} FROM {stage} "
                f"WHERE {STAGE_REASON} IS NULL ORDER BY {ROW}")
    con.execute(f"DROP TABLE {stage}")
    clean_rows = input_rows - sum(quarantined.values())
    return TableReport(
        table=table.name,
        file=str(path),
        input_rows=input_rows,
        clean_rows=clean_rows,
        quarantined=quarantined,
        warnings={**_warning_counts(con, table.name, quantity_outlier),
                  **_mixed_offsets(con, view, table, raw_names, raw_types)},
        ignored_columns=[c for c in extra if c not in kept_extra],
        kept_columns=[s.column_key(c) for c in kept_extra],
    )


def _did_you_mean(name: str, found: list[str]) -> str:
    """A hint naming the file's column that ``name`` was probably meant to be (the same letters
    and digits, e.g. HouseholdID or "sales value", or a close spelling); "" when none. Names
    match only ignoring case and outer spaces, so this is a hint, never a match."""
    def letters(text: str) -> str:
        return re.sub(r"[^0-9a-z]", "", text.lower())

    same = [c for c in found if letters(c) == letters(name)]
    close = same or difflib.get_close_matches(name, found, n=1, cutoff=0.8)
    return f"; did you mean {close[0]!r}? rename it to {name!r}" if close else ""


def _kept_extra_columns(con: duckdb.DuckDBPyConnection, view: str, extra: list[str]
                        ) -> list[str]:
    """The columns outside the contract that a table keeps as features: all but row numbers
    (``ROW_NUMBER_NAME``, or unique on each of ``ROW_NUMBER_MIN_ROWS`` or more rows)."""
    named = [c for c in extra
             if not re.fullmatch(ROW_NUMBER_NAME, s.column_key(c))]
    if not named:
        return []
    counts = ", ".join(f"count(DISTINCT {sql_ident(c)})" for c in named)
    rows, *distinct = con.execute(f"SELECT count(*), {counts} FROM {view}").fetchall()[0]
    return [c for c, n in zip(named, distinct, strict=True)
            if rows < ROW_NUMBER_MIN_ROWS or n < rows]


def _quarantine_name(column: str) -> str:
    """A file's own ``source_row`` or ``reason`` column goes to the quarantine file as
    ``<name>_in_file``, beside the ones validation adds."""
    return f"{column}_in_file" if s.column_key(column) in (s.SOURCE_ROW, s.REASON) else column


def _is_quarantine_file(path: Path) -> bool | None:
    """Whether ``path`` is a parquet file with the columns validation adds to rejected rows;
    None when it is gone (another run cleared it meanwhile)."""
    try:
        return {s.SOURCE_ROW, s.REASON} <= set(pq.read_schema(path).names)
    except FileNotFoundError:
        return None
    except (pa.ArrowInvalid, OSError):
        return False


def _clear_quarantine(quarantine_dir: Path, files: dict[str, Path]) -> None:
    """Remove the quarantine files of earlier runs so the folder describes this run only.

    Deletes nothing but ``<table>.parquet`` files holding the quarantine columns; refuses a
    folder that is a data folder of this source or holds another file under such a name.
    Runs validating into one folder at the same time may each remove what the other did:
    a file already gone is fine.
    """
    if quarantine_dir.exists() and not quarantine_dir.is_dir():
        raise GrowthError(f"quarantine folder {quarantine_dir} is a file; expected a folder")
    refuse_data_folder(quarantine_dir, files.values(), "quarantine folder")
    for table in s.TABLES:
        qfile = quarantine_path(quarantine_dir, table)
        if not qfile.exists() or (is_quarantine := _is_quarantine_file(qfile)) is None:
            continue
        if not is_quarantine:
            raise GrowthError(
                f"{qfile} is in the way of the quarantine file of table {table!r} and is not "
                f"one (no {s.SOURCE_ROW!r} and {s.REASON!r} columns); move it or choose "
                "another quarantine folder")
        try:
            qfile.unlink(missing_ok=True)
        except OSError as exc:
            raise GrowthError(f"cannot remove the earlier quarantine file {qfile}: "
                              f"{exc.strerror}") from exc


def validate_into(con: duckdb.DuckDBPyConnection, files: dict[str, Path], quarantine_dir: Path,
                  quantity_outlier: float = 1000.0) -> ValidationReport:
    """Validate every table in ``files`` into clean tables of ``con``; returns the report.

    Sets the session time zone of ``con`` to the canonical zone (offsets convert to it).
    """
    quarantine_dir = Path(quarantine_dir)
    _clear_quarantine(quarantine_dir, files)
    con.execute(f"SET TimeZone = {sql_str(s.TIMEZONE)}")
    latest_event = utc_now() + FUTURE_SLACK
    reports: dict[str, TableReport] = {}
    present: set[str] = set()
    for name in s.TABLE_ORDER:
        if name not in files:
            continue
        reports[name] = validate_table(con, s.TABLES[name], Path(files[name]),
                                       quarantine_dir, present, quantity_outlier, latest_event)
        present.add(name)
    transactions = reports.get(s.TRANSACTIONS)
    if transactions is not None and transactions.clean_rows == 0:
        raise DataContractError(
            _why_no_valid_rows(con, reports, s.TRANSACTIONS, quarantine_dir, latest_event))
    return ValidationReport(reports, quarantine_dir)


def _why_no_valid_rows(con: duckdb.DuckDBPyConnection, reports: dict[str, TableReport],
                       table: str, quarantine_dir: Path, latest_event: datetime,
                       name_file: bool = True) -> str:
    """Why ``table`` kept no row, in one line: its file holds none, or the counts per reason,
    the quarantine file holding the rows (``name_file``) and one value of the most common
    reason with its line and what was expected; when its rows point at a table that kept no
    row itself, why that one did not (that table's own problem). Error path only."""
    report = reports[table]
    if report.input_rows == 0:
        return f"{report.file}: table {table!r} holds no data rows"
    reason = max(sorted(report.quarantined), key=report.quarantined.__getitem__)
    head = (f"{report.file}: table {table!r} has no valid rows ({report.input_rows} read, all "
            f"quarantined: {report.quarantined})")
    for ref in s.TABLES[table].references:
        if reason == f"unknown_{ref.column}" and reports[ref.table].clean_rows == 0:
            why = _why_no_valid_rows(con, reports, ref.table, quarantine_dir, latest_event,
                                     name_file=False)
            return (f"{head}: their {ref.column} is not in table {ref.table!r}, which kept no "
                    f"row itself: {why}")
    example = _rejected_example(con, report, reason, quarantine_dir, latest_event)
    if not name_file:
        return f"{head}; {example}"
    return (f"{head}; every rejected row and its reason is in "
            f"{quarantine_path(quarantine_dir, table)}; {example}")


def _rejected_example(con: duckdb.DuckDBPyConnection, report: TableReport, reason: str,
                      quarantine_dir: Path, latest_event: datetime) -> str:
    """The first row quarantined as ``reason``, read back from the quarantine file: its column
    (as the file names it), what was expected, the value and where it is in the file."""
    spec = s.TABLES[report.table]
    cursor = con.execute(
        f"SELECT * FROM read_parquet(?) WHERE {s.REASON} = ? ORDER BY {s.SOURCE_ROW} LIMIT 1",
        [str(quarantine_path(quarantine_dir, report.table)), reason])
    row = dict(zip((d[0] for d in cursor.description), cursor.fetchone(), strict=True))
    where = _where_in_file(Path(report.file), row[s.SOURCE_ROW])
    kind, _, column = reason.partition("_")
    raw = next((name for name in row if s.column_key(name) == column), None)
    if raw is None:  # a reason about the whole row: duplicate, end_before_start
        return f"the first at {where}"
    if kind == "unknown":
        ref = next(r for r in spec.references if r.column == column)
        expected = f"a {column} that table {ref.table!r} holds"
    elif kind == "future":
        expected = (f"a time no later than {latest_event:%Y-%m-%d %H:%M} UTC (the moment of "
                    "validation plus a day)")
    else:
        expected = VALUE_IN_WORDS[spec.column(column).kind]
    got = _shown(row[raw], null_marker=kind == "null")
    return f"column {raw!r}: expected {expected}; got {got} ({where})"


def _shown(value: object, null_marker: bool) -> str:
    """A rejected value as a message shows it: quoted and cut to SHOWN_CHARS, a null or an
    empty cell in words; ``null_marker``: the value is a CSV cell read as no value (``NA``)."""
    if value is None:
        return "null"
    if value == "":
        return "an empty cell"
    text = str(value)
    shown = repr(text) if len(text) <= SHOWN_CHARS else repr(text[:SHOWN_CHARS]) + "..."
    return f"{shown}, which means no value" if null_marker else shown


def _where_in_file(path: Path, source_row: int) -> str:
    """Where data row ``source_row`` (0-based) is: a CSV's line (counting the header and line
    breaks inside quoted values, as a text editor does), a parquet file's row."""
    if path.suffix.lower() == ".parquet":
        return f"row {source_row}, counting from 0"
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            next(reader)
            start, row = reader.line_num + 1, 0
            for record in reader:
                if record:  # empty lines are not data rows
                    if row == source_row:
                        return f"line {start}"
                    row += 1
                start = reader.line_num + 1
        except csv.Error:  # a cell over the csv module's size limit: count lines as documented
            pass
    return f"line {source_row + 2} if no value above it holds a line break"
