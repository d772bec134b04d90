"""Canonical data contract: the one source of truth for table names, column names and types.

Every other module takes names from here. A data folder holds one file per table, named
``<table>.parquet`` or ``<table>.csv``; only ``transactions`` is required.

Rules a file must follow (features/validate.py applies them):

- Column names match the contract ignoring case and surrounding spaces (:func:`column_key`);
  two columns of one file that match the same name (``household_id`` and ``Household_ID``)
  make the file unusable.
- CSV files are UTF-8 text (a byte-order mark is allowed); cells are parsed per kind, and the
  cells in :data:`NULL_MARKERS` mean "no value". Parquet columns must have a type that
  :data:`FILE_TYPES` allows for the column's kind (no booleans in a number column).
- ids are whole numbers >= 0 (rows with other ids are quarantined).
- Timestamps: canonical timestamps carry no time zone (DuckDB ``TIMESTAMP``). Values without
  an offset are kept as written: the embedded Complete Journey's timestamps are naive local
  store times, and so are naive parquet columns and CSV text like ``2017-02-01 09:00:00``.
  Values that carry an offset or a zone (tz-aware parquet columns, CSV text like
  ``2017-02-01 09:00:00+05:00``, ``...Z`` or ``... America/New_York``) are converted to
  :data:`TIMEZONE` and the zone is then dropped, so ``09:00:00+05:00`` becomes ``04:00:00``;
  an offset is never ignored. Text with a zone DuckDB does not know, or with a numeric offset
  outside -14:59..+14:59 hours or with 60+ minutes (``+25:00``, ``+05:60``: DuckDB would
  read them), is quarantined as ``bad_<column>``.
- Days (a campaign's ``start_date`` and ``end_date``): read like timestamps, then cut to the
  day (midnight) in :data:`TIMEZONE`. A campaign starts on a day, and features as of its
  start read nothing dated that day; a start written with a time of day
  (``2017-01-20 12:00``, or a zone-aware midnight that converts to ``06:00``) would let that
  morning's purchases and redemptions into them.
- Event times (a transaction's timestamp, a redemption's date; :attr:`Table.event_times`)
  lie in the past: a row dated more than a day after the moment of validation (a day of
  slack for local times ahead of UTC) is quarantined as ``future_<column>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --- table names -------------------------------------------------------------------------
TRANSACTIONS = "transactions"
PRODUCTS = "products"
DEMOGRAPHICS = "demographics"
CAMPAIGNS = "campaigns"
CAMPAIGN_DESCRIPTIONS = "campaign_descriptions"
COUPONS = "coupons"
COUPON_REDEMPTIONS = "coupon_redemptions"

# the tables the coupon-response model reads (its features; training adds none)
COUPON_TABLES = (CAMPAIGNS, CAMPAIGN_DESCRIPTIONS, COUPONS, COUPON_REDEMPTIONS)

# --- column names ------------------------------------------------------------------------
HOUSEHOLD_ID = "household_id"
BASKET_ID = "basket_id"
PRODUCT_ID = "product_id"
QUANTITY = "quantity"
SALES_VALUE = "sales_value"
TRANSACTION_TIMESTAMP = "transaction_timestamp"
STORE_ID = "store_id"
RETAIL_DISC = "retail_disc"
COUPON_DISC = "coupon_disc"
COUPON_MATCH_DISC = "coupon_match_disc"
# A transaction line that gives something back (a return or refund): validation keeps and
# flags it (``negative_value``); it is no purchase, so it does not keep a household active.
RETURN_LINE = f"({QUANTITY} < 0 OR {SALES_VALUE} < 0)"

MANUFACTURER_ID = "manufacturer_id"
DEPARTMENT = "department"
BRAND = "brand"
PRODUCT_CATEGORY = "product_category"
PRODUCT_TYPE = "product_type"
PACKAGE_SIZE = "package_size"

CAMPAIGN_ID = "campaign_id"
CAMPAIGN_TYPE = "campaign_type"
START_DATE = "start_date"
END_DATE = "end_date"
COUPON_UPC = "coupon_upc"
REDEMPTION_DATE = "redemption_date"

# Columns added by validation to quarantined rows.
REASON = "reason"
SOURCE_ROW = "source_row"

Kind = Literal["id", "number", "timestamp", "day", "category"]

# DuckDB type each kind is cast to in the clean tables.
DUCKDB_TYPE: dict[str, str] = {
    "id": "BIGINT",
    "number": "DOUBLE",
    "timestamp": "TIMESTAMP",
    "day": "TIMESTAMP",  # at midnight
    "category": "VARCHAR",
}
# The largest id: "id" columns are BIGINT, and the CLI and the service accept ids up to it.
MAX_ID = 2**63 - 1


def parse_id(text: str) -> int | None:
    """``text`` as an id (an integer 0..MAX_ID, outer spaces ignored), else None."""
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 0 <= value <= MAX_ID else None

# Zone that timestamps with an offset are converted to (see the module docstring).
TIMEZONE = "UTC"

# CSV cells that mean "no value" (pyarrow's default null markers); the quarantine file keeps
# them as the original text.
NULL_MARKERS: tuple[str, ...] = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN",
                                 "-nan", "1.#IND", "1.#QNAN", "N/A", "NA", "NULL", "NaN",
                                 "n/a", "nan", "null")

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_NUMERIC_TYPES = (*_INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")
# Column types (DuckDB names without parameters, e.g. DECIMAL for DECIMAL(10,2)) a file may
# use for each kind besides text and all-null columns (TEXT_TYPES), which every kind accepts
# and which are parsed cell by cell. Ids may be floats: a fractional id is a bad row. Any
# other type (BOOLEAN in a number column, a list, ...) makes the file unusable. None: any.
TEXT_TYPES: tuple[str, ...] = ("VARCHAR", "NULL")
_TIME_TYPES = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
               "TIMESTAMP WITH TIME ZONE", "DATE")
FILE_TYPES: dict[str, tuple[str, ...] | None] = {
    "id": _NUMERIC_TYPES,
    "number": _NUMERIC_TYPES,
    "timestamp": _TIME_TYPES,
    "day": _TIME_TYPES,
    "category": None,
}
FILE_TYPES_IN_WORDS: dict[str, str] = {
    "id": "an integer, float or decimal column",
    "number": "an integer, float or decimal column",
    "timestamp": "a timestamp or date column",
    "day": "a timestamp or date column",
}


def column_key(name: str) -> str:
    """The contract name a file's column ``name`` matches: case and outer spaces ignored."""
    return name.strip().lower()


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True


@dataclass(frozen=True)
class Reference:
    """``column`` of this table must exist in ``table.column`` when that table is present."""

    column: str
    table: str
    target_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    # Columns that identify a row: a second row with the same values is a duplicate.
    # ``None`` means all canonical columns (an exact duplicate line).
    key: tuple[str, ...] | None = None
    references: tuple[Reference, ...] = ()
    # Keep columns outside the contract (as categories), e.g. demographics attributes.
    keep_extra_columns: bool = False
    required_table: bool = False
    # Columns whose null means zero (a missing discount is no discount).
    null_as_zero: tuple[str, ...] = field(default=())
    # Times of events that have happened (a purchase, a redemption): a row dated after the
    # moment of validation is quarantined. A campaign's dates are plans and may lie ahead.
    event_times: tuple[str, ...] = field(default=())

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            PRODUCTS,
            (
                Column(PRODUCT_ID, "id"),
                Column(MANUFACTURER_ID, "id", required=False),
                Column(DEPARTMENT, "category", required=False),
                Column(BRAND, "category", required=False),
                Column(PRODUCT_CATEGORY, "category", required=False),
                Column(PRODUCT_TYPE, "category", required=False),
                Column(PACKAGE_SIZE, "category", required=False),
            ),
            key=(PRODUCT_ID,),
        ),
        Table(
            CAMPAIGN_DESCRIPTIONS,
            (
                Column(CAMPAIGN_ID, "id"),
                Column(CAMPAIGN_TYPE, "category"),
                Column(START_DATE, "day"),
                Column(END_DATE, "day"),
            ),
            key=(CAMPAIGN_ID,),
        ),
        Table(
            CAMPAIGNS,
            (Column(HOUSEHOLD_ID, "id"), Column(CAMPAIGN_ID, "id")),
            key=(HOUSEHOLD_ID, CAMPAIGN_ID),
            references=(Reference(CAMPAIGN_ID, CAMPAIGN_DESCRIPTIONS, CAMPAIGN_ID),),
        ),
        Table(
            COUPONS,
            (Column(COUPON_UPC, "id"), Column(PRODUCT_ID, "id"), Column(CAMPAIGN_ID, "id")),
            references=(Reference(CAMPAIGN_ID, CAMPAIGN_DESCRIPTIONS, CAMPAIGN_ID),),
        ),
        Table(
            COUPON_REDEMPTIONS,
            (
                Column(HOUSEHOLD_ID, "id"),
                Column(COUPON_UPC, "id"),
                Column(CAMPAIGN_ID, "id"),
                Column(REDEMPTION_DATE, "timestamp"),
            ),
            references=(Reference(CAMPAIGN_ID, CAMPAIGN_DESCRIPTIONS, CAMPAIGN_ID),),
            event_times=(REDEMPTION_DATE,),
        ),
        Table(DEMOGRAPHICS, (Column(HOUSEHOLD_ID, "id"),), key=(HOUSEHOLD_ID,),
              keep_extra_columns=True),
        Table(
            TRANSACTIONS,
            (
                Column(HOUSEHOLD_ID, "id"),
                Column(BASKET_ID, "id"),
                Column(PRODUCT_ID, "id"),
                Column(QUANTITY, "number"),
                Column(SALES_VALUE, "number"),
                Column(TRANSACTION_TIMESTAMP, "timestamp"),
                Column(STORE_ID, "id", required=False),
                Column(RETAIL_DISC, "number", required=False),
                Column(COUPON_DISC, "number", required=False),
                Column(COUPON_MATCH_DISC, "number", required=False),
            ),
            references=(Reference(PRODUCT_ID, PRODUCTS, PRODUCT_ID),),
            required_table=True,
            null_as_zero=(RETAIL_DISC, COUPON_DISC, COUPON_MATCH_DISC),
            event_times=(TRANSACTION_TIMESTAMP,),
        ),
    )
}

# Validation order: referenced tables before the tables that point at them.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
