"""Training data for the two-tower model, point-in-time correct.

An example is (household state as of a cutoff, a product it bought in the window after the
cutoff). The household state — history bag and numeric features — reads only rows before
the cutoff, so training asks the model exactly what serving asks it: given everything up
to today, what will this household buy next?
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.household import RECENCY, household_features, sql_date
from features.product import product_features

ITEM_CATEGORICALS = (s.DEPARTMENT, s.PRODUCT_CATEGORY, s.PRODUCT_TYPE, s.BRAND,
                     s.MANUFACTURER_ID)
USER_NUMERIC = (RECENCY, "tenure_days", "baskets_4w", "baskets_13w", "baskets_52w",
                "spend_4w", "spend_13w", "spend_52w", "avg_basket_spend_52w",
                "avg_basket_lines_52w", "distinct_products_52w", "gap_mean_days",
                "overdue_ratio", "coupon_line_share_52w")
ITEM_NUMERIC = ("avg_unit_price_52w", "households_4w", "households_13w", "households_52w",
                "repeat_rate")


@dataclass
class Vocab:
    """Index 0 is padding / unknown for both households and products."""

    product_ids: np.ndarray  # [n_items] product id of index i + 1
    household_ids: np.ndarray  # [n_households]
    item_categorical: np.ndarray  # [n_items + 1, len(ITEM_CATEGORICALS)] codes, 0 = missing
    categorical_sizes: list[int]  # vocabulary size (with 0) of each categorical

    @property
    def n_items(self) -> int:
        return len(self.product_ids)

    def item_index(self, product_ids: np.ndarray) -> np.ndarray:
        """Product ids -> indices (0 when unknown)."""
        pos = np.searchsorted(self.product_ids, product_ids)
        pos = np.clip(pos, 0, self.n_items - 1)
        return np.where(self.product_ids[pos] == product_ids, pos + 1, 0)

    def household_index(self, household_ids: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.household_ids, household_ids), 0,
                      len(self.household_ids) - 1)
        return np.where(self.household_ids[pos] == household_ids, pos + 1, 0)


def build_vocab(ds: Dataset, end: date, catalog_weeks: int) -> Vocab:
    """Items sold in the ``catalog_weeks`` before ``end``; households active before it."""
    d = sql_date(end)
    ts = s.TRANSACTION_TIMESTAMP
    items = ds.df(f"""SELECT DISTINCT {s.PRODUCT_ID} FROM {s.TRANSACTIONS}
        WHERE {ts} < CAST({d} AS TIMESTAMP)
          AND {ts} >= CAST({d} - INTERVAL {7 * catalog_weeks} DAY AS TIMESTAMP)
        ORDER BY 1""")[s.PRODUCT_ID].to_numpy()
    households = ds.df(f"""SELECT DISTINCT {s.HOUSEHOLD_ID} FROM {s.TRANSACTIONS}
        WHERE {ts} < CAST({d} AS TIMESTAMP) ORDER BY 1""")[s.HOUSEHOLD_ID].to_numpy()
    codes = np.zeros((len(items) + 1, len(ITEM_CATEGORICALS)), dtype=np.int64)
    sizes = [1] * len(ITEM_CATEGORICALS)
    if ds.has(s.PRODUCTS):
        attrs = ds.table(s.PRODUCTS).set_index(s.PRODUCT_ID).reindex(items)
        for j, col in enumerate(ITEM_CATEGORICALS):
            if col in attrs:
                values = attrs[col].astype("string").fillna("")
                uniques = np.array(sorted(set(values) - {""}), dtype=object)
                lookup = {v: i + 1 for i, v in enumerate(uniques)}
                codes[1:, j] = [lookup.get(v, 0) for v in values]
                sizes[j] = len(uniques) + 1
    return Vocab(items, households, codes, sizes)


def item_numeric(ds: Dataset, vocab: Vocab, as_of: date) -> np.ndarray:
    """[n_items + 1, len(ITEM_NUMERIC)] log-scaled price and popularity as of ``as_of``."""
    feats = product_features(ds, as_of).set_index(s.PRODUCT_ID).reindex(vocab.product_ids)
    values = feats[list(ITEM_NUMERIC)].astype("float64").fillna(0.0).to_numpy()
    values[:, :4] = np.log1p(np.clip(values[:, :4], 0, None))
    out = np.zeros((vocab.n_items + 1, len(ITEM_NUMERIC)), dtype=np.float32)
    out[1:] = values
    return out


@dataclass
class UserState:
    """Households as of one cutoff: what the user tower reads."""

    household_ids: np.ndarray  # [n]
    history_items: np.ndarray  # [n, L] item indices, 0 = padding
    history_weights: np.ndarray  # [n, L] decayed purchase weight
    numeric: np.ndarray  # [n, len(USER_NUMERIC)] log-scaled, not yet standardised


def user_state(ds: Dataset, vocab: Vocab, as_of: date, households: np.ndarray,
               history_len: int, half_life_days: float) -> UserState:
    """History bags and numeric features for ``households`` from rows before ``as_of``."""
    d = sql_date(as_of)
    ts = s.TRANSACTION_TIMESTAMP
    bags = ds.df(f"""
        WITH w AS (
            SELECT {s.HOUSEHOLD_ID} AS h, {s.PRODUCT_ID} AS p,
                   sum(pow(0.5, date_diff('day', CAST({ts} AS DATE), {d})
                       / {float(half_life_days)})) AS w
            FROM {s.TRANSACTIONS} WHERE {ts} < CAST({d} AS TIMESTAMP) GROUP BY 1, 2),
        r AS (SELECT *, row_number() OVER (PARTITION BY h ORDER BY w DESC, p) AS rn FROM w)
        SELECT h, p, w, rn FROM r WHERE rn <= {int(history_len)} ORDER BY h, rn""")
    n = len(households)
    row_of = pd.Series(np.arange(n), index=households)
    bags = bags[bags["h"].isin(row_of.index)]
    rows = row_of.loc[bags["h"]].to_numpy()
    cols = bags["rn"].to_numpy() - 1
    items = np.zeros((n, history_len), dtype=np.int64)
    weights = np.zeros((n, history_len), dtype=np.float32)
    items[rows, cols] = vocab.item_index(bags["p"].to_numpy())
    weights[rows, cols] = bags["w"].to_numpy()
    weights[items == 0] = 0.0  # items outside the catalogue carry no signal
    feats = household_features(ds, as_of).set_index(s.HOUSEHOLD_ID).reindex(households)
    numeric = feats[list(USER_NUMERIC)].astype("float64").to_numpy()
    numeric = np.sign(numeric) * np.log1p(np.abs(numeric))
    return UserState(households, items, weights, np.nan_to_num(numeric).astype(np.float32))


def window_targets(ds: Dataset, start: date, days: int,
                   new_only: bool = False) -> pd.DataFrame:
    """Distinct (household, product) bought in ``[start, start + days)`` by households
    active before ``start``; with ``new_only``, only products the household never bought
    before ``start``."""
    a, b = sql_date(start), sql_date(start + timedelta(days=days))
    ts, h, p = s.TRANSACTION_TIMESTAMP, s.HOUSEHOLD_ID, s.PRODUCT_ID
    new = (f"AND NOT EXISTS (SELECT 1 FROM {s.TRANSACTIONS} o WHERE o.{h} = t.{h} AND "
           f"o.{p} = t.{p} AND o.{ts} < CAST({a} AS TIMESTAMP))") if new_only else ""
    return ds.df(f"""
        SELECT DISTINCT t.{h}, t.{p} FROM {s.TRANSACTIONS} t
        WHERE t.{ts} >= CAST({a} AS TIMESTAMP) AND t.{ts} < CAST({b} AS TIMESTAMP)
          AND t.{h} IN (SELECT {h} FROM {s.TRANSACTIONS} WHERE {ts} < CAST({a} AS TIMESTAMP))
          {new}
        ORDER BY 1, 2""")


def purchased_before(ds: Dataset, vocab: Vocab, as_of: date,
                     households: np.ndarray) -> list[np.ndarray]:
    """Per household (in order), the 0-based item positions it bought before ``as_of``."""
    ts, h, p = s.TRANSACTION_TIMESTAMP, s.HOUSEHOLD_ID, s.PRODUCT_ID
    pairs = ds.df(f"SELECT DISTINCT {h}, {p} FROM {s.TRANSACTIONS} "
                  f"WHERE {ts} < CAST({sql_date(as_of)} AS TIMESTAMP)")
    return item_positions(pairs, vocab, households)


def item_positions(pairs: pd.DataFrame, vocab: Vocab,
                   households: np.ndarray) -> list[np.ndarray]:
    """Per household (in order), the 0-based item positions of its (household_id,
    product_id) ``pairs``."""
    h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
    pairs = pairs.assign(item=vocab.item_index(pairs[p].to_numpy()) - 1)
    grouped = pairs[pairs["item"] >= 0].groupby(h)["item"].apply(np.asarray)
    empty = np.empty(0, dtype=np.int64)
    return [grouped.get(int(x), empty) for x in households]


@dataclass
class CutoffExamples:
    cutoff: date
    state: UserState
    user_row: np.ndarray  # [m] row in state for each example
    item: np.ndarray  # [m] item index of the positive


def cutoff_examples(ds: Dataset, vocab: Vocab, cutoff: date, window_days: int,
                    history_len: int, half_life_days: float,
                    new_only: bool = False) -> CutoffExamples:
    """All positives of one window with the household states as of its cutoff."""
    targets = window_targets(ds, cutoff, window_days, new_only)
    targets = targets.assign(item=vocab.item_index(targets[s.PRODUCT_ID].to_numpy()))
    targets = targets[targets["item"] > 0]
    households = np.unique(targets[s.HOUSEHOLD_ID].to_numpy())
    state = user_state(ds, vocab, cutoff, households, history_len, half_life_days)
    rows = np.searchsorted(households, targets[s.HOUSEHOLD_ID].to_numpy())
    return CutoffExamples(cutoff, state, rows, targets["item"].to_numpy())
