"""End to end: prepare, train, learn the blend on the validation window, recommend as of
``as_of`` and evaluate against the baselines on the same households.

    growth train two-tower [--as-of DATE] [--data DIR] [--config F] [--set key=value ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import torch

from features import schema as s
from features.dataset import Dataset
from features.household import household_features
from features.labels import IS_NEW, recommender_split
from features.product import product_features
from training.baselines import (
    EASE,
    BuyAgain,
    HouseholdNeighbours,
    ItemCooccurrence,
    Popularity,
)
from training.metrics import (
    catalog_coverage,
    mean_popularity,
    ranking_report,
    recall_at_k,
    targets_from_frame,
)
from training.two_tower.candidates import Candidates, lines_before
from training.two_tower.config import TwoTowerConfig
from training.two_tower.data import Vocab, item_numeric, user_state, window_targets
from training.two_tower.model import TwoTower
from training.two_tower.rerank import ITEM_FEATURES, Blender
from training.two_tower.train import Prepared, embed_items, embed_users, top_items

KS = (10, 20, 50)


@dataclass
class Recommender:
    """A trained two-tower plus its blend: everything needed to recommend as of a date."""

    model: TwoTower
    vocab: Vocab
    cfg: TwoTowerConfig
    blender: Blender | None = None  # ranks every candidate
    new_blender: Blender | None = None  # ranks products new to the household
    # item embeddings of the last (dataset, date) asked for: evaluation, the bundle and the
    # index check all embed the catalogue as of the same date (the model is fixed by then)
    _items: tuple = field(default=(None, None, None), repr=False, compare=False)

    @staticmethod
    def blenders(cfg: TwoTowerConfig) -> tuple[Blender, Blender]:
        return (Blender(cfg.rerank_rounds, cfg.rerank_leaves, cfg.rerank_min_data_in_leaf,
                        cfg.seed, cfg.threads),
                Blender(cfg.new_rerank_rounds, cfg.new_rerank_leaves,
                        cfg.new_rerank_min_data_in_leaf, cfg.seed, cfg.threads,
                        new_items_only=True,
                        positive_weight=cfg.new_rerank_positive_weight))

    def _stats(self, ds: Dataset, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
        items = product_features(ds, as_of)
        items = items[[s.PRODUCT_ID] + [f.removeprefix("item_") for f in ITEM_FEATURES]]
        items.columns = [s.PRODUCT_ID, *ITEM_FEATURES]
        hh = household_features(ds, as_of)[[s.HOUSEHOLD_ID, "baskets_52w"]]
        hh.columns = [s.HOUSEHOLD_ID, "household_baskets_52w"]
        return items, hh

    def embeddings(self, ds: Dataset, as_of: date,
                   households: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """User embeddings [len(households), dim] and item embeddings [n_items, dim] as of
        ``as_of`` (history and item features read only rows before it)."""
        state = user_state(ds, self.vocab, as_of, households, self.cfg.history_len,
                           self.cfg.history_half_life_days)
        return embed_users(self.model, self.vocab, state), self.item_embeddings(ds, as_of)

    def item_embeddings(self, ds: Dataset, as_of: date) -> np.ndarray:
        """[n_items, dim] as of ``as_of``; the last result is kept for the same ``ds`` and
        date."""
        cached_ds, cached_date, items = self._items
        if cached_ds is not ds or cached_date != as_of:
            items = embed_items(self.model, self.vocab,
                                torch.from_numpy(item_numeric(ds, self.vocab, as_of)))
            self._items = (ds, as_of, items)
        return items

    def candidate_groups(self, ds: Dataset, as_of: date,
                         households: np.ndarray) -> Iterator[pd.DataFrame]:
        """The candidate rows of ``households`` as of ``as_of``, a group of households at a
        time (``Candidates.groups``): a population's rows are never all in memory at once."""
        users, items = self.embeddings(ds, as_of, households)
        item_stats, hh_stats = self._stats(ds, as_of)
        yield from Candidates(ds, self.vocab, as_of, items, self.cfg, item_stats,
                              hh_stats).groups(households, users)

    def ranked(self, ds: Dataset, as_of: date, households: np.ndarray, k: int,
               lists: tuple[bool, ...] = (False, True)) -> list[pd.DataFrame]:
        """:meth:`rank` of the candidates of ``households``, one frame per
        ``exclude_purchased`` value in ``lists``, built a group of households at a time."""
        parts: list[list[pd.DataFrame]] = [[] for _ in lists]
        for frame in self.candidate_groups(ds, as_of, households):
            for part, exclude in zip(parts, lists, strict=True):
                part.append(self.rank(frame, k, exclude))
        return [pd.concat(part, ignore_index=True) for part in parts]

    def fit_blend(self, ds: Dataset, prep: Prepared) -> Recommender:
        """Learn both blends on the ``blend_windows`` labelled windows just before ``as_of``
        (the newest is the validation window); the test window is never read."""
        frames, labels, windows = [], [], []
        for i in range(1, self.cfg.blend_windows + 1):
            cutoff = self.cfg.as_of - timedelta(days=i * self.cfg.window_days)
            truth = window_targets(ds, cutoff, self.cfg.window_days).assign(y=1)
            households = np.sort(truth[s.HOUSEHOLD_ID].unique())
            for frame in self.candidate_groups(ds, cutoff, households):
                labels.append(frame.merge(truth, on=[s.HOUSEHOLD_ID, s.PRODUCT_ID],
                                          how="left")["y"].fillna(0).to_numpy())
                frames.append(frame)
                windows.append(np.full(len(frame), i - 1))
        frame, label = pd.concat(frames, ignore_index=True), np.concatenate(labels)
        del frames
        window = np.concatenate(windows)
        self.blender, self.new_blender = (b.fit(frame, label, window)
                                          for b in self.blenders(self.cfg))
        return self

    def popular(self, ds: Dataset, as_of: date, households: np.ndarray,
                k: int) -> pd.DataFrame:
        """Cold start: the ``k`` products most households bought in the 4 weeks before
        ``as_of``, the same list for each household; reason ``popular``."""
        pop = Popularity().fit(lines_before(ds, as_of), as_of)
        n = min(k, len(pop.ranking_))
        return pd.DataFrame({s.HOUSEHOLD_ID: np.repeat(households, n),
                             "rank": np.tile(np.arange(1, n + 1), len(households)),
                             s.PRODUCT_ID: np.tile(pop.ranking_[:n], len(households)),
                             "score": np.tile(pop.share_[:n], len(households)),
                             "reason": "popular"})

    def two_tower_only(self, ds: Dataset, as_of: date, households: np.ndarray,
                       k: int) -> dict[int, list[int]]:
        users, items = self.embeddings(ds, as_of, households)
        top, _ = top_items(users, items, k)
        return {int(h): self.vocab.product_ids[top[i]].tolist()
                for i, h in enumerate(households)}

    def recommend(self, ds: Dataset, as_of: date, households: np.ndarray, k: int,
                  exclude_purchased: bool = False) -> pd.DataFrame:
        """household_id, rank, product_id, score, reason for every household in order;
        ``exclude_purchased`` keeps only products new to the household. A household with
        fewer than ``k`` candidates is topped up from the popular ranking (reason
        ``popular``, as the service does), so a list is short only when fewer than ``k``
        products (new to the household, with ``exclude_purchased``) were sold before
        ``as_of``."""
        h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
        (top,) = self.ranked(ds, as_of, households, k, (exclude_purchased,))
        listed = top.groupby(h).size().reindex(households, fill_value=0)
        short = listed.index[listed.to_numpy() < k].to_numpy()
        if not len(short):
            return top
        taken = top.loc[top[h].isin(short), [h, p]]
        if exclude_purchased:
            lines = lines_before(ds, as_of)
            taken = pd.concat([taken, lines.loc[lines[h].isin(short), [h, p]]])
        taken = taken.drop_duplicates()
        most_taken = int(taken.groupby(h).size().reindex(short, fill_value=0).max())
        fill = self.popular(ds, as_of, short, k + most_taken)
        fill = fill.merge(taken.assign(taken=True), on=[h, p], how="left")
        fill = fill[fill["taken"].isna()].drop(columns="taken")
        fill["rank"] = fill.groupby(h).cumcount() + 1 + listed.loc[fill[h]].to_numpy()
        return (pd.concat([top, fill[fill["rank"] <= k]], ignore_index=True)
                .sort_values([h, "rank"], kind="stable").reset_index(drop=True))

    def rank(self, frame: pd.DataFrame, k: int, exclude_purchased: bool = False) -> pd.DataFrame:
        """Top ``k`` of an already built candidate frame (see :meth:`recommend`)."""
        if self.blender is None or self.new_blender is None:
            raise ValueError("fit_blend first")
        top = (self.new_blender if exclude_purchased else self.blender).rank(frame, k)
        top["reason"] = np.where(top["in_history"] > 0, "repeat", "similar")
        return top[[s.HOUSEHOLD_ID, "rank", s.PRODUCT_ID, "score", "reason"]]


def as_lists(frame: pd.DataFrame) -> dict[int, list[int]]:
    return {int(h): g.sort_values("rank")[s.PRODUCT_ID].tolist()
            for h, g in frame.groupby(s.HOUSEHOLD_ID)}


def tune_decay_half_life(ds: Dataset, cfg: TwoTowerConfig) -> tuple[float, dict[float, float]]:
    """The half-life of the time-decayed buy-again baseline with the best recall@k on the
    validation window (``window_days`` before ``as_of``; the test window is not read), and
    the validation recall of every half-life tried."""
    start = cfg.as_of - timedelta(days=cfg.window_days)
    split = recommender_split(ds, start, end=cfg.as_of)
    targets = targets_from_frame(split.targets)
    households = np.sort(split.households.to_numpy())
    tried = {h: recall_at_k(BuyAgain(half_life_days=h).fit(split.train, start)
                            .recommend(households, cfg.k), targets, cfg.k)
             for h in cfg.decay_half_lives}
    return max(tried, key=lambda h: (tried[h], -h)), tried  # ties: the shorter half-life


def evaluate(ds: Dataset, rec: Recommender, cfg: TwoTowerConfig) -> dict[str, dict[str, float]]:
    """Metrics for the blend, the two-tower alone and every baseline on the same split."""
    split = recommender_split(ds, cfg.as_of)
    targets = targets_from_frame(split.targets)
    new = targets_from_frame(split.targets[split.targets[IS_NEW] == 1])
    households = np.sort(split.households.to_numpy())
    k = max(KS)
    lines = split.train
    popularity = (lines.groupby(s.PRODUCT_ID)[s.HOUSEHOLD_ID].nunique()
                  / lines[s.HOUSEHOLD_ID].nunique()).to_dict()
    catalog = rec.vocab.n_items
    systems: dict[str, dict[int, list[int]]] = {}
    mixed, new_only = map(as_lists, rec.ranked(ds, cfg.as_of, households, k))
    systems["two_tower_blend"] = mixed
    systems["two_tower_only"] = rec.two_tower_only(ds, cfg.as_of, households, k)
    half_life, tried = tune_decay_half_life(ds, cfg)
    baselines = {"popularity": Popularity(), "buy_again": BuyAgain(),
                 "buy_again_decay_120d": BuyAgain(half_life_days=120),  # the reference
                 "buy_again_decay_tuned": BuyAgain(half_life_days=half_life),
                 "item_cooccurrence": ItemCooccurrence(),
                 "household_neighbours": HouseholdNeighbours(cfg.neighbours),
                 "ease": EASE(cfg.ease_l2, cfg.ease_min_households,
                              max_items=cfg.ease_max_items)}
    for name, model in baselines.items():
        systems[name] = model.fit(lines, cfg.as_of).recommend(households, k)
    out = {}
    for name, recs in systems.items():
        metrics = ranking_report(recs, targets, new, KS)
        if name == "two_tower_blend":
            exclusive = ranking_report(new_only, targets, new, KS)
            metrics.update({f"{key}_exclude_purchased": v for key, v in exclusive.items()
                            if "_new_" in key})
        metrics["catalog_coverage_at_20"] = catalog_coverage(recs, catalog, 20)
        metrics["mean_popularity_at_20"] = mean_popularity(recs, popularity, 20)
        out[name] = metrics
    out["buy_again_decay_tuned"]["half_life_days"] = half_life
    out["buy_again_decay_tuned"].update(
        {f"val_recall_at_{cfg.k}_half_life_{h:g}d": r for h, r in tried.items()})
    return out
