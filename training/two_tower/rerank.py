"""Blend the two-tower with repeat-purchase signals, co-occurrence and popularity.

Candidates per household: its most-weighted past products (frequency, recency,
replenishment interval) and the two-tower's nearest new items. A LightGBM model learns the
blend on the validation window (the last window before ``as_of``), never on the test window.
"""

from __future__ import annotations

from datetime import date

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.household import sql_date
from training.baselines import ItemCooccurrence
from training.two_tower.data import Vocab, purchased_before

FEATURES = (
    "tt_score", "tt_rank", "cooc_score", "cooc_rank", "pop_rank", "in_history", "n_baskets",
    "decay_14", "decay_60", "decay_180", "days_since_last", "days_since_first",
    "mean_interval", "due_ratio", "item_households_4w", "item_households_52w",
    "item_repeat_rate", "household_baskets_52w", "household_items",
)
HISTORY_CAP = 200


def history_candidates(ds: Dataset, as_of: date, households: np.ndarray) -> pd.DataFrame:
    """Per (household, product) bought before ``as_of``: repeat-purchase signals, capped at
    the ``HISTORY_CAP`` products with the largest 60-day-decayed weight."""
    d, ts = sql_date(as_of), s.TRANSACTION_TIMESTAMP
    h, p, b = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.BASKET_ID
    frame = ds.df(f"""
        WITH t AS (
            SELECT {h}, {p}, {b}, date_diff('day', CAST({ts} AS DATE), {d}) AS age
            FROM {s.TRANSACTIONS} WHERE {ts} < CAST({d} AS TIMESTAMP)),
        hp AS (
            SELECT {h}, {p}, count(DISTINCT {b}) AS n_baskets,
                   sum(pow(0.5, age / 14.0)) AS decay_14, sum(pow(0.5, age / 60.0)) AS decay_60,
                   sum(pow(0.5, age / 180.0)) AS decay_180,
                   min(age) AS days_since_last, max(age) AS days_since_first
            FROM t GROUP BY 1, 2),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY {h} ORDER BY decay_60 DESC, {p}) AS rn,
                   count(*) OVER (PARTITION BY {h}) AS household_items
            FROM hp)
        SELECT * EXCLUDE (rn) FROM ranked WHERE rn <= {HISTORY_CAP} ORDER BY {h}, rn""")
    frame = frame[frame[h].isin(households)]
    span = (frame["days_since_first"] - frame["days_since_last"]).astype(float)
    frame["mean_interval"] = np.where(frame["n_baskets"] > 1,
                                      span / (frame["n_baskets"] - 1).clip(lower=1), np.nan)
    frame["due_ratio"] = frame["days_since_last"] / frame["mean_interval"]
    frame["in_history"] = 1
    return frame


def new_item_candidates(ds: Dataset, as_of: date, households: np.ndarray,
                        n: int) -> pd.DataFrame:
    """Products new to each household from item co-occurrence with its history and from
    recent popularity: household_id, product_id, cooc_score, cooc_rank, pop_rank."""
    h, p, ts = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.TRANSACTION_TIMESTAMP
    lines = ds.df(f"SELECT {h}, {s.BASKET_ID}, {p}, {ts} FROM {s.TRANSACTIONS} "
                  f"WHERE {ts} < CAST({sql_date(as_of)} AS TIMESTAMP)")
    cooc = ItemCooccurrence(exclude_history=True).fit(lines, as_of)
    scored = cooc.scored(households, n)
    popular = cooc.popularity_.ranking_[:n]
    pop = pd.DataFrame({h: np.repeat(households, len(popular)),
                        p: np.tile(popular, len(households)),
                        "pop_rank": np.tile(np.arange(1, len(popular) + 1), len(households))})
    bought = lines[[h, p]].drop_duplicates().assign(bought=1)
    pop = pop.merge(bought, on=[h, p], how="left")
    pop = pop[pop["bought"].isna()].drop(columns="bought")
    return scored.merge(pop, on=[h, p], how="outer")


def candidate_frame(ds: Dataset, vocab: Vocab, as_of: date, households: np.ndarray,
                    user_emb: np.ndarray, item_emb: np.ndarray, n_candidates: int,
                    item_stats: pd.DataFrame, household_stats: pd.DataFrame) -> pd.DataFrame:
    """History candidates plus new items from the two-tower, co-occurrence and popularity,
    with every blend feature.

    ``user_emb`` rows follow ``households``; ``item_emb`` rows follow ``vocab.product_ids``.
    """
    from training.two_tower.train import top_items

    h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
    hist = history_candidates(ds, as_of, households)
    top, scores = top_items(user_emb, item_emb, n_candidates,
                            purchased_before(ds, vocab, as_of, households))
    tt = pd.DataFrame({h: np.repeat(households, n_candidates),
                       p: vocab.product_ids[top.ravel()],
                       "tt_rank": np.tile(np.arange(1, n_candidates + 1), len(households))})
    others = new_item_candidates(ds, as_of, households, n_candidates // 2)
    frame = hist.merge(tt, on=[h, p], how="outer").merge(others, on=[h, p], how="outer")
    frame["cooc_rank"] = frame["cooc_rank"].fillna(n_candidates + 1)
    frame["pop_rank"] = frame["pop_rank"].fillna(n_candidates + 1)
    frame["in_history"] = frame["in_history"].fillna(0)
    # the two-tower score of every candidate, history items included
    row = pd.Series(np.arange(len(households)), index=households).loc[frame[h]].to_numpy()
    item = vocab.item_index(frame[p].to_numpy())
    known = item > 0
    tt_score = np.full(len(frame), np.nan, dtype=np.float32)
    tt_score[known] = np.einsum("ij,ij->i", user_emb[row[known]], item_emb[item[known] - 1])
    frame["tt_score"] = tt_score
    frame["tt_rank"] = frame["tt_rank"].fillna(n_candidates + 1)
    frame = frame.merge(item_stats, on=p, how="left").merge(household_stats, on=h, how="left")
    frame["household_items"] = frame.groupby(h)["household_items"].transform("max")
    return frame.sort_values([h, p], kind="stable").reset_index(drop=True)


class Blender:
    """LightGBM over candidate features; ``fit`` on a labelled window, ``rank`` elsewhere."""

    def __init__(self, rounds: int = 300, seed: int = 0, threads: int = 2) -> None:
        self.rounds = rounds
        self.seed = seed
        self.threads = threads

    def fit(self, frame: pd.DataFrame, label: np.ndarray) -> Blender:
        params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63,
                  "min_data_in_leaf": 100, "feature_fraction": 0.9, "bagging_fraction": 0.8,
                  "bagging_freq": 1, "seed": self.seed, "deterministic": True,
                  "force_row_wise": True, "num_threads": self.threads, "verbose": -1}
        data = lgb.Dataset(frame[list(FEATURES)].astype("float32"), label=label)
        self.booster_ = lgb.train(params, data, num_boost_round=self.rounds)
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(frame[list(FEATURES)].astype("float32"))

    def rank(self, frame: pd.DataFrame, k: int) -> pd.DataFrame:
        """Top ``k`` per household: household_id, rank, product_id, score, in_history."""
        h = s.HOUSEHOLD_ID
        scored = frame[[h, s.PRODUCT_ID, "in_history"]].assign(score=self.score(frame))
        scored = scored.sort_values([h, "score", s.PRODUCT_ID], ascending=[True, False, True],
                                    kind="stable")
        top = scored.groupby(h, sort=False).head(k).copy()
        top["rank"] = top.groupby(h, sort=False).cumcount() + 1
        return top.reset_index(drop=True)
