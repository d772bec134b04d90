"""Recommender baselines, each as strong as we can make it (design.md: same run, same
households). Estimator conventions: ``__init__`` stores settings, ``fit`` returns self,
learned state ends in ``_``; ``recommend`` returns household -> ranked distinct products.

- ``Popularity``: most households buying the product in the last ``window_days``.
- ``BuyAgain``: the household's own products by number of baskets (ties: most recent),
  filled with popularity.
- ``BuyAgain(half_life_days=h)``: time-decayed buy-again, each line weighted 0.5^(age/h).
- ``ItemCooccurrence``: item-to-item cosine similarity from baskets, scored from the
  household's time-decayed history (optionally excluding it), filled with popularity.
- ``HouseholdNeighbours``: user-based k-nearest-neighbour votes for recently bought
  products new to the household, filled with popularity.
- ``EASE``: a linear item-to-item autoencoder learned in closed form (Steck, 2019) on
  which products each household bought; products new to the household, filled with
  popularity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.linalg import lapack

from features import schema as s


def _age_days(lines: pd.DataFrame, as_of: date) -> np.ndarray:
    ts = lines[s.TRANSACTION_TIMESTAMP]
    return ((pd.Timestamp(as_of) - ts).dt.total_seconds() / 86400.0).to_numpy()


def _fill(ranked: list[int], fallback: np.ndarray, k: int,
          exclude: Iterable[int] = ()) -> list[int]:
    """Append fallback products not already listed (nor excluded) until the list holds k."""
    if len(ranked) >= k:
        return ranked[:k]
    seen = set(ranked) | set(exclude)
    for p in fallback:
        if len(ranked) >= k:
            break
        if p not in seen:
            ranked.append(int(p))
            seen.add(p)
    return ranked


def _top_k(households: list[int], scores: np.ndarray, items: np.ndarray, k: int,
           name: str) -> pd.DataFrame:
    """The ``k`` best-scored items per row of ``scores`` (rows follow ``households``),
    keeping only scores above 0: household_id, product_id, <name>_score, <name>_rank."""
    kk = min(k, scores.shape[1])
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    keep = (top_scores > 0).ravel()
    return pd.DataFrame({
        s.HOUSEHOLD_ID: np.repeat(households, kk)[keep],
        s.PRODUCT_ID: items[top.ravel()[keep]],
        f"{name}_score": top_scores.ravel()[keep],
        f"{name}_rank": np.tile(np.arange(1, kk + 1), len(households))[keep]})


def _stack(parts: list[pd.DataFrame], name: str) -> pd.DataFrame:
    columns = [s.HOUSEHOLD_ID, s.PRODUCT_ID, f"{name}_score", f"{name}_rank"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _filled_lists(scored: pd.DataFrame, household_ids: Iterable[int], fallback: np.ndarray,
                  k: int, bought: Callable[[int], np.ndarray]) -> dict[int, list[int]]:
    """Each household's scored products in order, filled to ``k`` from ``fallback`` without
    the products ``bought(household)`` returns."""
    lists = scored.groupby(s.HOUSEHOLD_ID)[s.PRODUCT_ID].apply(list)
    return {int(h): _fill([int(p) for p in lists.get(int(h), [])], fallback, k,
                          exclude=bought(int(h)))
            for h in household_ids}


class Popularity:
    def __init__(self, window_days: int | None = 28) -> None:
        self.window_days = window_days

    def fit(self, lines: pd.DataFrame, as_of: date) -> Popularity:
        recent = lines
        if self.window_days is not None:
            recent = lines[_age_days(lines, as_of) <= self.window_days]
        counts = recent.groupby(s.PRODUCT_ID)[s.HOUSEHOLD_ID].nunique()
        # ties broken by all-time popularity, then product id, for a stable order
        total = lines.groupby(s.PRODUCT_ID)[s.HOUSEHOLD_ID].nunique()
        frame = pd.DataFrame({"recent": counts, "total": total}).fillna(0)
        frame = frame.sort_values(["recent", "total"], ascending=False, kind="stable")
        self.ranking_ = frame.index.to_numpy()
        # share of the households active before as_of that bought each product recently
        self.share_ = (frame["recent"] / max(lines[s.HOUSEHOLD_ID].nunique(), 1)).to_numpy()
        return self

    def recommend(self, household_ids: Iterable[int], k: int) -> dict[int, list[int]]:
        top = [int(p) for p in self.ranking_[:k]]
        return {int(h): list(top) for h in household_ids}


class BuyAgain:
    """Personal frequency (``half_life_days=None``) or time-decayed frequency."""

    def __init__(self, half_life_days: float | None = None, popularity_window_days: int = 28):
        self.half_life_days = half_life_days
        self.popularity_window_days = popularity_window_days

    def fit(self, lines: pd.DataFrame, as_of: date) -> BuyAgain:
        self.popularity_ = Popularity(self.popularity_window_days).fit(lines, as_of)
        age = _age_days(lines, as_of)
        if self.half_life_days is None:
            # one vote per basket, so a line split in two does not count twice
            frame = lines[[s.HOUSEHOLD_ID, s.PRODUCT_ID, s.BASKET_ID]].assign(age=age)
            scores = frame.groupby([s.HOUSEHOLD_ID, s.PRODUCT_ID]).agg(
                score=(s.BASKET_ID, "nunique"), recency=("age", "min"))
        else:
            weight = np.power(0.5, age / self.half_life_days)
            frame = lines[[s.HOUSEHOLD_ID, s.PRODUCT_ID]].assign(w=weight, age=age)
            scores = frame.groupby([s.HOUSEHOLD_ID, s.PRODUCT_ID]).agg(
                score=("w", "sum"), recency=("age", "min"))
        scores = scores.reset_index().sort_values(
            [s.HOUSEHOLD_ID, "score", "recency", s.PRODUCT_ID],
            ascending=[True, False, True, True], kind="stable")
        self.history_ = {int(h): g[s.PRODUCT_ID].to_numpy()
                         for h, g in scores.groupby(s.HOUSEHOLD_ID, sort=False)}
        return self

    def recommend(self, household_ids: Iterable[int], k: int) -> dict[int, list[int]]:
        fallback = self.popularity_.ranking_
        empty = np.empty(0, dtype=np.int64)
        return {int(h): _fill([int(p) for p in self.history_.get(int(h), empty)[:k]],
                              fallback, k)
                for h in household_ids}


class ItemCooccurrence:
    """Basket co-occurrence, cosine-normalised; the household's history is the query."""

    def __init__(self, half_life_days: float = 120.0, min_buyers: int = 2,
                 exclude_history: bool = False, popularity_window_days: int = 28,
                 batch_size: int = 256) -> None:
        self.half_life_days = half_life_days
        self.exclude_history = exclude_history
        self.min_buyers = min_buyers
        self.popularity_window_days = popularity_window_days
        self.batch_size = batch_size

    def fit(self, lines: pd.DataFrame, as_of: date) -> ItemCooccurrence:
        self.popularity_ = Popularity(self.popularity_window_days).fit(lines, as_of)
        buyers = lines.groupby(s.PRODUCT_ID)[s.HOUSEHOLD_ID].nunique()
        items = np.sort(buyers[buyers >= self.min_buyers].index.to_numpy())
        self.items_ = items
        index = pd.Series(np.arange(len(items)), index=items)
        kept = lines[lines[s.PRODUCT_ID].isin(index.index)]
        col = index.loc[kept[s.PRODUCT_ID]].to_numpy()
        baskets, row = np.unique(kept[s.BASKET_ID].to_numpy(), return_inverse=True)
        x = sp.csr_matrix((np.ones(len(col), dtype=np.float32), (row, col)),
                          shape=(len(baskets), len(items)))
        x.data[:] = 1.0  # duplicates summed above; presence is what counts
        co = (x.T @ x).tocsr().astype(np.float32)
        norms = np.sqrt(co.diagonal()).astype(np.float32)
        norms[norms == 0] = 1.0
        co.setdiag(0)
        inv = sp.diags(1.0 / norms)
        self.similarity_ = (inv @ co @ inv).tocsr()
        hh, hrow = np.unique(lines[s.HOUSEHOLD_ID].to_numpy(), return_inverse=True)
        in_vocab = lines[s.PRODUCT_ID].isin(index.index).to_numpy()
        weight = np.power(0.5, _age_days(lines, as_of) / self.half_life_days)
        hcol = index.reindex(lines[s.PRODUCT_ID]).to_numpy()
        self.history_ = sp.csr_matrix(
            (weight[in_vocab].astype(np.float32),
             (hrow[in_vocab], hcol[in_vocab].astype(np.int64))),
            shape=(len(hh), len(items)))
        self.households_ = pd.Series(np.arange(len(hh)), index=hh)
        return self

    def scored(self, household_ids: Iterable[int], k: int) -> pd.DataFrame:
        """Top ``k`` scored products per known household (fewer when fewer score above 0):
        household_id, product_id, cooc_score, cooc_rank."""
        known = [int(h) for h in household_ids if int(h) in self.households_.index]
        parts = []
        for start in range(0, len(known), self.batch_size):
            batch = known[start:start + self.batch_size]
            hist = self.history_[self.households_.loc[batch].to_numpy()]
            scores = np.asarray((hist @ self.similarity_).todense())
            if self.exclude_history:
                scores[hist.nonzero()] = -np.inf
            parts.append(_top_k(batch, scores, self.items_, k, "cooc"))
        return _stack(parts, "cooc")

    def recommend(self, household_ids: Iterable[int], k: int) -> dict[int, list[int]]:
        def bought(h: int) -> np.ndarray:
            if not self.exclude_history or h not in self.households_.index:
                return np.empty(0, dtype=self.items_.dtype)
            return self.items_[self.history_[self.households_.loc[h]].indices]

        ids = [int(h) for h in household_ids]
        return _filled_lists(self.scored(ids, k), ids, self.popularity_.ranking_, k, bought)


class _NewItemLists:
    """``recommend`` for models whose ``scored`` lists only products new to the household:
    filled with popularity, without the products the household bought (the non-zero
    columns of its row of ``_bought()``, over ``items_``)."""

    def _bought(self) -> sp.csr_matrix:
        raise NotImplementedError

    def recommend(self, household_ids: Iterable[int], k: int) -> dict[int, list[int]]:
        matrix = self._bought()

        def bought(h: int) -> np.ndarray:
            if h not in self.households_.index:
                return np.empty(0, dtype=self.items_.dtype)
            return self.items_[matrix[self.households_.loc[h]].indices]

        ids = [int(h) for h in household_ids]
        return _filled_lists(self.scored(ids, k), ids, self.popularity_.ranking_, k, bought)


@dataclass(eq=False)
class HouseholdNeighbours(_NewItemLists):
    """User-based collaborative filtering for discovery: the household's ``neighbours``
    most similar households (cosine over idf-weighted, time-decayed purchase vectors) vote
    for the products they bought in the last ``recent_days``; products the household has
    already bought are excluded. Filled with popularity."""

    neighbours: int = 50
    half_life_days: float = 120.0
    recent_days: int = 28
    batch_size: int = 256

    def fit(self, lines: pd.DataFrame, as_of: date) -> HouseholdNeighbours:
        self.popularity_ = Popularity(self.recent_days).fit(lines, as_of)
        hh, row = np.unique(lines[s.HOUSEHOLD_ID].to_numpy(), return_inverse=True)
        self.items_, col = np.unique(lines[s.PRODUCT_ID].to_numpy(), return_inverse=True)
        shape = (len(hh), len(self.items_))
        age = _age_days(lines, as_of)
        x = sp.csr_matrix((np.power(0.5, age / self.half_life_days), (row, col)), shape=shape)
        x.data = np.log1p(x.data)  # duplicates were summed: log of the decayed count
        buyers = np.diff(x.tocsc().indptr).astype(np.float64)
        x = x @ sp.diags(1.0 / np.sqrt(np.maximum(buyers, 1.0)))
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        self.vectors_ = (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x).tocsr()
        recent = age < self.recent_days
        # only products bought recently can get a vote: score over those columns alone
        self.recent_items_, rcol = np.unique(col[recent], return_inverse=True)
        votes = sp.csr_matrix((np.ones(recent.sum()), (row[recent], rcol)),
                              shape=(len(hh), len(self.recent_items_)))
        votes.data[:] = 1.0
        self.votes_t_ = votes.T.tocsr()  # [recent items, households]
        self.bought_ = x.tocsr()[:, self.recent_items_]
        self.households_ = pd.Series(np.arange(len(hh)), index=hh)
        return self

    def scored(self, household_ids: Iterable[int], k: int) -> pd.DataFrame:
        """Top ``k`` products new to each known household: household_id, product_id,
        knn_score, knn_rank."""
        known = [int(h) for h in household_ids if int(h) in self.households_.index]
        parts = []
        for start in range(0, len(known), self.batch_size):
            batch = known[start:start + self.batch_size]
            rows = self.households_.loc[batch].to_numpy()
            sim = (self.vectors_[rows] @ self.vectors_.T).toarray()
            sim[np.arange(len(rows)), rows] = 0.0
            n = min(self.neighbours, sim.shape[1])
            cut = -np.partition(-sim, n - 1, axis=1)[:, n - 1:n]
            sim[sim < cut] = 0.0
            scores = np.ascontiguousarray((self.votes_t_ @ sim.T).T)
            scores[self.bought_[rows].nonzero()] = -np.inf
            parts.append(_top_k(batch, scores, self.items_[self.recent_items_], k, "knn"))
        return _stack(parts, "knn")

    def _bought(self) -> sp.csr_matrix:
        return self.vectors_


@dataclass(eq=False)
class EASE(_NewItemLists):
    """Embarrassingly shallow autoencoder (Steck, "Embarrassingly Shallow Autoencoders for
    Sparse Data", WWW 2019). X is household x product, log(1 + baskets) in which the
    household bought the product before ``as_of`` (chosen over 0/1 on the validation
    window); the item-to-item weights B minimise ||X - XB||^2 + l2 ||B||^2
    with a zero diagonal, in closed form: P = (X'X + l2 I)^-1, B = -P / diag(P), diag(B) = 0.
    A household's scores are its row of XB; products it bought are excluded (discovery).
    Only products at least ``min_households`` households bought are modelled, and of those
    at most ``max_items``, the most bought (ties: the lower product id): the time is cubic
    and the memory quadratic in their number (22,000 products, a 50,000-household retailer
    at 30 households: 145 s and 9.7 GB a fit)."""

    l2: float = 1000.0
    min_households: int = 30
    max_items: int | None = None
    popularity_window_days: int = 28
    batch_size: int = 512

    def fit(self, lines: pd.DataFrame, as_of: date) -> EASE:
        self.popularity_ = Popularity(self.popularity_window_days).fit(lines, as_of)
        buyers = lines.groupby(s.PRODUCT_ID)[s.HOUSEHOLD_ID].nunique()  # by product id
        buyers = buyers[buyers >= self.min_households]
        if self.max_items is not None and len(buyers) > self.max_items:
            buyers = buyers.sort_values(ascending=False, kind="stable").iloc[:self.max_items]
        self.items_ = np.sort(buyers.index.to_numpy())
        kept = lines[lines[s.PRODUCT_ID].isin(self.items_)]
        baskets = (kept.groupby([s.HOUSEHOLD_ID, s.PRODUCT_ID])[s.BASKET_ID].nunique()
                   .reset_index())
        hh, row = np.unique(baskets[s.HOUSEHOLD_ID].to_numpy(), return_inverse=True)
        col = np.searchsorted(self.items_, baskets[s.PRODUCT_ID].to_numpy())
        x = sp.csr_matrix((np.log1p(baskets[s.BASKET_ID].to_numpy()).astype(np.float32),
                           (row, col)), shape=(len(hh), len(self.items_)))
        self.history_ = x
        self.households_ = pd.Series(np.arange(len(hh)), index=hh)
        if len(self.items_) == 0:  # no product has enough buyers: nothing to learn
            self.weights_ = np.zeros((0, 0), dtype=np.float32)
            return self
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        # Cholesky inverse of the symmetric positive definite Gram matrix (3x faster than a
        # general inverse); LAPACK fills the lower triangle only
        factor, info = lapack.spotrf(gram, lower=1, overwrite_a=1)
        if info != 0:
            raise ValueError(f"EASE: Gram matrix not positive definite (info {info}); "
                             "raise l2")
        inverse, info = lapack.spotri(factor, lower=1, overwrite_c=1)
        inverse = np.tril(inverse) + np.tril(inverse, -1).T
        weights = inverse / -np.diag(inverse)
        np.fill_diagonal(weights, 0.0)
        self.weights_ = weights
        return self

    def _scores(self, rows: np.ndarray, exclude_history: bool = True) -> np.ndarray:
        """[len(rows), n_items] scores; with ``exclude_history`` the products each household
        bought are -inf."""
        hist = self.history_[rows]
        scores = np.asarray(hist @ self.weights_)
        if exclude_history:
            scores[hist.nonzero()] = -np.inf
        return scores

    def scored(self, household_ids: Iterable[int], k: int) -> pd.DataFrame:
        """Top ``k`` new products per known household (fewer when fewer score above 0):
        household_id, product_id, ease_score, ease_rank."""
        if len(self.items_) == 0 or k <= 0:
            return _stack([], "ease")
        known = [int(h) for h in household_ids if int(h) in self.households_.index]
        parts = []
        for start in range(0, len(known), self.batch_size):
            batch = known[start:start + self.batch_size]
            scores = self._scores(self.households_.loc[batch].to_numpy())
            parts.append(_top_k(batch, scores, self.items_, k, "ease"))
        return _stack(parts, "ease")

    def pair_scores(self, household_ids: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
        """The score of each (household, product) pair, products the household bought
        included (the diagonal of B is zero, so the product does not predict itself): NaN for
        a household or product the model does not know."""
        out = np.full(len(household_ids), np.nan, dtype=np.float32)
        if len(self.items_) == 0:
            return out
        rows = self.households_.reindex(household_ids).to_numpy()
        cols = np.searchsorted(self.items_, product_ids).clip(max=len(self.items_) - 1)
        known = ~np.isnan(rows) & (self.items_[cols] == product_ids)
        idx = np.flatnonzero(known)
        rows = rows[idx].astype(np.int64)
        unique_rows, local = np.unique(rows, return_inverse=True)
        for start in range(0, len(unique_rows), self.batch_size):
            scores = self._scores(unique_rows[start:start + self.batch_size],
                                  exclude_history=False)
            sel = (local >= start) & (local < start + self.batch_size)
            out[idx[sel]] = scores[local[sel] - start, cols[idx[sel]]]
        return out

    def _bought(self) -> sp.csr_matrix:
        return self.history_
