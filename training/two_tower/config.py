"""Settings of the two-tower recommender (configs/two_tower.yaml); every field has a default."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import Field

from features.config import Day, Days, Strict, load_config

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class TwoTowerConfig(Strict):
    seed: int = 0  # one seed for data order, initialisation and LightGBM
    as_of: Day = date(2017, 12, 4)  # training data ends the day before; test starts here
    window_days: Days = 28  # targets: distinct products bought in this window
    n_cutoffs: int = Field(8, ge=2)  # training examples from this many past windows
    # Train on products new to the household only: the tower's job is discovery; the blend
    # carries repeat purchases.
    new_items_only: bool = True
    history_len: int = Field(100, gt=0)  # products in the household's history bag
    history_half_life_days: Positive = 60.0  # weight of a past purchase in the history bag
    # items sold in this many weeks before a cutoff are candidates
    catalog_weeks: int = Field(52, ge=1, le=5200)
    dim: int = Field(64, ge=1, le=4096)  # output embedding size of both towers
    id_dim: int = Field(64, ge=1, le=4096)  # id embedding sizes
    # department/category/type/brand/manufacturer embedding sizes
    attr_dim: int = Field(16, ge=1, le=4096)
    hidden: int = Field(256, ge=1, le=16384)  # MLP width in both towers
    temperature: Positive = 0.05  # initial softmax temperature (learned)
    logq_correction: bool = True  # subtract log sampling probability from in-batch logits
    random_negatives: int = Field(0, ge=0)  # extra uniformly drawn negatives per batch
    batch_size: int = Field(2048, ge=1)
    epochs: int = Field(8, ge=1)
    patience: int = Field(2, ge=0)  # early stopping on validation recall@20
    lr: Positive = 5e-4
    weight_decay: float = Field(1e-6, ge=0, allow_inf_nan=False)
    threads: int = Field(2, ge=1, le=1024)  # torch intra-op threads
    candidates: int = Field(150, ge=1)  # two-tower candidates per household for the re-ranker
    # EASE item-to-item model (training/baselines.py): new-item candidates per household,
    # its L2 penalty, and the fewest buyers a product needs to be modelled (cost is cubic in
    # the number of products kept); l2 chosen on the validation window
    ease_candidates: int = Field(100, ge=0)
    ease_l2: float = Field(1000.0, gt=0)
    ease_min_households: int = Field(30, ge=1)
    # the most bought products EASE models at most: its cost is cubic in their number (the
    # embedded data has 5,500-6,600 products bought by 30 households, so all are kept)
    ease_max_items: int = Field(10_000, ge=1)
    neighbours: int = Field(50, ge=1)  # household-neighbours baseline: households voting
    category_types: int = Field(20, ge=0)  # new-item candidates from the household's top
    category_items: int = Field(5, ge=0)  # product types: this many popular items of each
    blend_windows: int = Field(2, ge=1)  # labelled windows before as_of the blends learn on
    rerank_rounds: int = Field(300, ge=1)  # blend over every candidate (LightGBM)
    rerank_leaves: int = Field(63, ge=2, le=131_072)
    rerank_min_data_in_leaf: int = Field(100, ge=1)
    new_rerank_rounds: int = Field(200, ge=1)  # blend over products new to the household
    new_rerank_leaves: int = Field(15, ge=2, le=131_072)
    new_rerank_min_data_in_leaf: int = Field(200, ge=1)
    # recall@k averages over households, so each household's new-item positives in a window
    # share this total weight (0: every positive weighs 1); chosen on validation windows
    new_rerank_positive_weight: float = Field(6.0, ge=0)
    k: int = Field(20, ge=1)
    # time-decayed buy-again baseline: the half-life (days) with the best recall@20 on the
    # validation window (the window before as_of) is the one evaluated on the test window
    decay_half_lives: Annotated[tuple[Positive, ...], Field(min_length=1)] = (
        30.0, 60.0, 90.0, 120.0, 180.0, 365.0)
    # FAISS exact index at or below this catalogue size
    index_exact_max_items: int = Field(200_000, ge=0)


def load_two_tower_config(path: Path | None = None,
                          overrides: list[str] | None = None) -> TwoTowerConfig:
    return load_config(TwoTowerConfig, path, overrides, default_name="two_tower")
