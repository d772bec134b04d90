"""Blend the two-tower with repeat-purchase signals, co-occurrence, EASE, popularity and the
household's affinity to each product's type, brand and department.

Two LightGBM models learn on labelled windows before ``as_of`` (never the test window):
one ranks every candidate (the mixed list), one ranks only products new to the household
(the ``exclude_purchased`` list), where repeat-purchase signals say nothing.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features import schema as s
from training.two_tower.candidates import AFFINITY_FEATURES, CAMPAIGN_FEATURES

HISTORY_FEATURES = (
    "in_history", "n_baskets", "decay_14", "decay_60", "decay_180", "days_since_last",
    "days_since_first", "mean_interval", "due_ratio",
)
ITEM_FEATURES = (
    "item_households_1w", "item_households_2w", "item_households_4w", "item_households_52w",
    "item_new_buyers_1w", "item_new_buyers_2w", "item_new_buyers_4w", "item_repeat_rate",
    "item_days_since_first_sale", "item_discount_share_1w", "item_discount_share_4w",
)
FEATURES = (
    ("tt_score", "tt_rank", "cooc_score", "cooc_rank", "ease_score", "ease_rank", "pop_rank")
    + HISTORY_FEATURES
    + ITEM_FEATURES + ("household_baskets_52w", "household_items") + AFFINITY_FEATURES
    + CAMPAIGN_FEATURES
)
NEW_ITEM_FEATURES = tuple(f for f in FEATURES if f not in HISTORY_FEATURES)


class Blender:
    """LightGBM (binary) over candidate features; ``fit`` on labelled windows, ``rank``
    elsewhere. ``new_items_only`` blenders train and rank only rows not in the history."""

    def __init__(self, rounds: int, leaves: int, min_data_in_leaf: int, seed: int = 0,
                 threads: int = 2, new_items_only: bool = False,
                 positive_weight: float = 0.0) -> None:
        self.rounds = rounds
        self.leaves = leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.seed = seed
        self.threads = threads
        self.new_items_only = new_items_only
        self.positive_weight = positive_weight
        self.features = list(NEW_ITEM_FEATURES if new_items_only else FEATURES)

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["in_history"] == 0] if self.new_items_only else frame

    def weights(self, households: np.ndarray, label: np.ndarray,
                window: np.ndarray) -> np.ndarray | None:
        """Row weights: with ``positive_weight`` > 0 the positives of each household in
        each labelled ``window`` share that total weight (the metric, recall@k, is a mean
        over households, so a household with many positives should not dominate);
        negatives weigh 1. None when ``positive_weight`` is 0."""
        if not self.positive_weight:
            return None
        label = np.asarray(label, dtype=float)
        key = pd.DataFrame({"w": window, "h": households, "y": label})
        positives = key.groupby(["w", "h"])["y"].transform("sum").to_numpy()
        return np.where(label > 0, self.positive_weight / np.maximum(positives, 1), 1.0)

    def fit(self, frame: pd.DataFrame, label: np.ndarray,
            window: np.ndarray | None = None) -> Blender:
        """Learn on ``frame`` with 0/1 ``label``; ``window`` tells which labelled window
        each row comes from (default: all from one)."""
        keep = (frame["in_history"] == 0).to_numpy() if self.new_items_only else slice(None)
        label = np.asarray(label)[keep]
        window = np.zeros(len(label), dtype=int) if window is None else np.asarray(window)[keep]
        params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": self.leaves,
                  "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": 0.9,
                  "bagging_fraction": 0.8, "bagging_freq": 1, "seed": self.seed,
                  "deterministic": True, "force_row_wise": True, "num_threads": self.threads,
                  "verbose": -1}
        data = lgb.Dataset(frame.loc[keep, self.features].astype("float32"), label=label,
                           weight=self.weights(frame.loc[keep, s.HOUSEHOLD_ID].to_numpy(),
                                               label, window))
        self.booster_ = lgb.train(params, data, num_boost_round=self.rounds)
        return self

    def save(self, path: Path) -> None:
        self.booster_.save_model(str(path))

    def load(self, path: Path) -> Blender:
        """Read a LightGBM text model written by :meth:`save` (no pickle)."""
        self.booster_ = lgb.Booster(model_file=str(path))
        unknown = sorted(set(self.booster_.feature_name()) - set(FEATURES))
        if unknown:
            raise ValueError(f"{path}: the blend model needs features this code does not "
                             f"compute: {unknown}; retrain with `growth train two-tower`")
        self.features = self.booster_.feature_name()  # a model may use fewer than FEATURES
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(frame[self.features].astype("float32"))

    def rank(self, frame: pd.DataFrame, k: int) -> pd.DataFrame:
        """Top ``k`` per household: household_id, rank, product_id, score, in_history."""
        h = s.HOUSEHOLD_ID
        frame = self._rows(frame)
        scored = frame[[h, s.PRODUCT_ID, "in_history"]].assign(score=self.score(frame))
        scored = scored.sort_values([h, "score", s.PRODUCT_ID], ascending=[True, False, True],
                                    kind="stable")
        top = scored.groupby(h, sort=False).head(k).copy()
        top["rank"] = top.groupby(h, sort=False).cumcount() + 1
        return top.reset_index(drop=True)
