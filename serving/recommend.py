"""Business rules of ``/recommend`` and ``/similar_items`` over the snapshot in memory.

A known household gets its precomputed list (mixed, or new items only with
``exclude_purchased``), filtered by department (``departments`` less
``exclude_departments``). The list holds a few hundred products, so a department filter can
leave few of them: the rest of a filtered list are the allowed departments' products
nearest (cosine, exact) to the mean embedding of what the household bought, none it bought
(reason ``similar``). An unknown household gets the FAISS nearest items to the mean of
``recent_product_ids`` or, without them, the popular list. Whatever is still short of k is
filled from the popular ranking within the allowed departments, never repeating a product
(nor, with ``exclude_purchased``, one it bought).
The popular ranking holds the whole catalogue, so a list is short of k only when the allowed
departments hold fewer products than k plus those ruled out: ``shortfall`` says so.
Everything is numpy arrays built once at load; a request does slicing and a FAISS search.
"""

from __future__ import annotations

import atexit
import gc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from serving.schemas import Item, RecommendRequest, Shortfall
from training.retrieval import ItemIndex

REASONS = ("repeat", "similar", "popular")
LIST = "list"  # column of recommendations.parquet naming the ranked list
MIXED, NEW = "mixed", "new"  # the list for exclude_purchased false / true
UNKNOWN_DEPARTMENT = 0  # code of products without a department


def limit_faiss_threads(threads: int) -> None:
    """FAISS parallelises one search over OpenMP threads; a single query gains nothing and,
    on a busy machine, spinning threads add milliseconds to the tail (measured: p99 8 ms for
    a 400-item search with the default, tens of microseconds with one thread)."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(threads)
    # numpy's BLAS likewise: one department's products against a query (20k x 64) take
    # 0.3 ms on one thread, 4 ms on two while the other core is busy
    threadpool_limits(threads, user_api="blas")


def freeze_heap() -> None:
    """Collect once, then move every live object out of the collector's reach: full
    collections over the large heap of a loaded bundle made the p99 tail
    (shared/notes/serving-performance.md). The heap is unfrozen at exit, so the interpreter
    still frees what it holds in cycles when it shuts down; left frozen, DuckDB's nanobind
    bindings print dozens of "leaked" objects as the process ends."""
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)


class RequestError(ValueError):
    """A request the data cannot answer: ``status`` and a message naming ``field``."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass
class RankedLists:
    """Per household row ``r``: entries ``offsets[r]:offsets[r + 1]`` of the flat arrays."""

    offsets: np.ndarray
    product_ids: np.ndarray
    scores: np.ndarray
    reasons: np.ndarray  # index into REASONS
    departments: np.ndarray  # department code of each entry

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, households: np.ndarray,
                   department_of) -> RankedLists:
        """``frame`` sorted by household then rank; ``households`` sorted, the row order."""
        counts = frame.groupby(s.HOUSEHOLD_ID).size().reindex(households, fill_value=0)
        products = frame[s.PRODUCT_ID].to_numpy(np.int64)
        reasons = frame["reason"].map({r: i for i, r in enumerate(REASONS)})
        return cls(np.concatenate([[0], np.cumsum(counts.to_numpy())]), products,
                   frame["score"].to_numpy(np.float64), reasons.to_numpy(np.int8),
                   department_of(products))

    def row(self, r: int) -> slice:
        return slice(self.offsets[r], self.offsets[r + 1])


class RecommendationStore:
    """The two-tower part of the bundle, ready to answer requests."""

    def __init__(self, folder: Path) -> None:
        catalog = pd.read_parquet(folder / "catalog.parquet")
        names = catalog[s.DEPARTMENT].dropna().astype(str).unique()
        self.department_names = sorted(names)
        self._department_code = {n.casefold(): i + 1 for i, n in enumerate(self.department_names)}
        self._catalog_ids = catalog[s.PRODUCT_ID].to_numpy(np.int64)  # sorted
        self._catalog_departments = catalog[s.DEPARTMENT].map(
            lambda d: self._department_code.get(str(d).casefold(), UNKNOWN_DEPARTMENT)
            if pd.notna(d) else UNKNOWN_DEPARTMENT).to_numpy(np.int32)

        recs = pd.read_parquet(folder / "recommendations.parquet")
        bought = pd.read_parquet(folder / "purchases.parquet")
        self.households = np.unique(np.concatenate([recs[s.HOUSEHOLD_ID].to_numpy(np.int64),
                                                    bought[s.HOUSEHOLD_ID].to_numpy(np.int64)]))
        self._row = {int(h): i for i, h in enumerate(self.households)}
        recs = recs.sort_values([s.HOUSEHOLD_ID, LIST, "rank"], kind="stable")
        self.lists = {name: RankedLists.from_frame(recs[recs[LIST] == name],
                                                   self.households, self.department_of)
                      for name in (MIXED, NEW)}
        counts = bought.groupby(s.HOUSEHOLD_ID).size().reindex(self.households, fill_value=0)
        self._bought_offsets = np.concatenate([[0], np.cumsum(counts.to_numpy())])
        self._bought = bought.sort_values([s.HOUSEHOLD_ID, s.PRODUCT_ID])[
            s.PRODUCT_ID].to_numpy(np.int64)

        pop = pd.read_parquet(folder / "popular.parquet")
        self._popular_ids = pop[s.PRODUCT_ID].to_numpy(np.int64)
        self._popular_scores = pop["score"].to_numpy(np.float64)
        codes = self.department_of(self._popular_ids)
        self._popular_positions = {c: np.flatnonzero(codes == c)
                                   for c in range(len(self.department_names) + 1)}

        self.index = ItemIndex.load(folder / "model" / "index")
        with np.load(folder / "item_embeddings.npz", allow_pickle=False) as z:
            item_ids, vectors = z["product_ids"].astype(np.int64), z["embeddings"]
        # rows grouped by department, so that one department is a contiguous slice
        codes = self.department_of(item_ids)
        order = np.argsort(codes, kind="stable")
        self._item_ids, self._item_vectors = item_ids[order], vectors[order]
        self._item_row = {int(p): i for i, p in enumerate(self._item_ids)}
        bounds = np.searchsorted(codes[order], np.arange(len(self.department_names) + 2))
        self._department_slice = {c: slice(int(bounds[c]), int(bounds[c + 1]))
                                  for c in range(len(self.department_names) + 1)}

    # --- lookups ---------------------------------------------------------------------------

    def department_of(self, product_ids: np.ndarray) -> np.ndarray:
        """Department codes of ``product_ids`` (0 when unknown to the catalogue)."""
        pos = np.clip(np.searchsorted(self._catalog_ids, product_ids), 0,
                      len(self._catalog_ids) - 1)
        return np.where(self._catalog_ids[pos] == product_ids,
                        self._catalog_departments[pos], UNKNOWN_DEPARTMENT)

    def department_codes(self, departments: list[str] | None,
                         field: str = "departments") -> np.ndarray | None:
        """Codes of the departments named in request ``field`` (None: none named)."""
        if departments is None:
            return None
        codes = [self._department_code.get(name.casefold()) for name in departments]
        unknown = [name for name, code in zip(departments, codes, strict=True) if code is None]
        if unknown:
            known = ", ".join(self.department_names[:40])
            more = " ..." if len(self.department_names) > 40 else ""
            raise RequestError(field, f"unknown department(s) {unknown}; expected "
                                      f"any of: {known}{more}")
        return np.unique(np.asarray(codes, dtype=np.int32))

    def allowed_codes(self, req: RecommendRequest) -> np.ndarray | None:
        """Department codes a request allows (None: all): ``departments`` less
        ``exclude_departments``; without ``departments`` every code, products without a
        department included, less the excluded."""
        allowed = self.department_codes(req.departments)
        excluded = self.department_codes(req.exclude_departments, "exclude_departments")
        if excluded is None:
            return allowed
        if allowed is None:
            allowed = np.arange(len(self.department_names) + 1, dtype=np.int32)
        return np.setdiff1d(allowed, excluded)

    def knows(self, household_id: int | None) -> bool:
        return household_id is not None and household_id in self._row

    def purchased(self, household_id: int) -> np.ndarray:
        r = self._row[household_id]
        return self._bought[self._bought_offsets[r]:self._bought_offsets[r + 1]]

    # --- the rules -------------------------------------------------------------------------

    def popular(self, need: int, allowed: np.ndarray | None,
                exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``need`` most popular products in ``allowed`` departments not in ``exclude``."""
        m = need + len(exclude)
        if allowed is None:
            pos = np.arange(min(m, len(self._popular_ids)))
        else:
            pos = np.sort(np.concatenate([self._popular_positions[c][:m] for c in allowed]))[:m]
        ids = self._popular_ids[pos]
        if len(exclude):
            keep = ~np.isin(ids, exclude)
            ids, pos = ids[keep], pos[keep]
        return ids[:need], self._popular_scores[pos[:need]]

    def like_purchases(self, household_id: int, need: int, allowed: np.ndarray,
                       exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``need`` products of the ``allowed`` departments nearest (cosine) to the mean
        embedding of what ``household_id`` bought, none it bought nor in ``exclude``, best
        first (ties by product id); exact, over those departments' indexed products."""
        bought = self.purchased(household_id)
        rows = [self._item_row[p] for p in bought.tolist() if p in self._item_row]
        if not rows or need <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        query = self._item_vectors[rows].mean(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        banned = np.asarray(rows + [self._item_row[p] for p in exclude.tolist()
                                    if p in self._item_row], dtype=np.int64)
        found_ids, found_scores = [], []
        for code in allowed.tolist():
            part = self._department_slice[code]
            if part.start == part.stop:
                continue
            scores = self._item_vectors[part] @ query
            scores[banned[(banned >= part.start) & (banned < part.stop)] - part.start] = -np.inf
            top = (np.argpartition(-scores, need - 1)[:need] if need < len(scores)
                   else np.arange(len(scores)))
            found_ids.append(self._item_ids[part][top])
            found_scores.append(scores[top])
        ids, scores = np.concatenate(found_ids), np.concatenate(found_scores)
        keep = np.isfinite(scores)
        ids, scores = ids[keep], scores[keep].astype(np.float64)
        best = np.lexsort((ids, -scores))[:need]
        return ids[best], scores[best]

    def _nearest(self, query: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(query[None, :], min(fetch, self.index.n_items))
        found = ids[0] >= 0
        return ids[0][found], scores[0][found].astype(np.float64)

    def recommend(self, req: RecommendRequest) -> tuple[str, list[Item]]:
        """(strategy, exactly k items) — fewer only if the allowed departments hold fewer
        than k eligible products in the whole catalogue (``shortfall`` says why)."""
        allowed = self.allowed_codes(req)
        k = req.k
        exclude = np.empty(0, dtype=np.int64)
        if self.knows(req.household_id):
            strategy = "personal"
            lists = self.lists[NEW if req.exclude_purchased else MIXED]
            span = lists.row(self._row[req.household_id])
            ids, scores, reasons = lists.product_ids[span], lists.scores[span], lists.reasons[span]
            if allowed is not None:
                keep = np.isin(lists.departments[span], allowed)
                ids, scores, reasons = ids[keep], scores[keep], reasons[keep]
            ids, scores, reasons = ids[:k], scores[:k], reasons[:k]
            if req.exclude_purchased:
                exclude = self.purchased(req.household_id)
            if allowed is not None and len(ids) < k:
                like, like_scores = self.like_purchases(req.household_id, k - len(ids),
                                                        allowed, ids)
                ids = np.concatenate([ids, like])
                scores = np.concatenate([scores, like_scores])
                reasons = np.concatenate([reasons, np.full(len(like), REASONS.index("similar"),
                                                           dtype=np.int8)])
        else:
            rows = [self._item_row[p] for p in dict.fromkeys(req.recent_product_ids or ())
                    if p in self._item_row]
            if rows:
                strategy = "recent_items"
                query = self._item_vectors[rows].mean(axis=0)
                query /= max(float(np.linalg.norm(query)), 1e-12)
                recent = np.asarray(req.recent_product_ids, dtype=np.int64)
                fetch = (k + len(rows)) * (1 if allowed is None else 8)
                ids, scores = self._nearest(query, fetch)
                keep = ~np.isin(ids, recent)
                if allowed is not None:
                    keep &= np.isin(self.department_of(ids), allowed)
                ids, scores = ids[keep][:k], scores[keep][:k]
                reasons = np.full(len(ids), REASONS.index("similar"), dtype=np.int8)
                exclude = recent
            else:
                strategy = "popular"
                ids = np.empty(0, dtype=np.int64)
                scores, reasons = np.empty(0), np.empty(0, dtype=np.int8)
        if len(ids) < k:
            fill_ids, fill_scores = self.popular(k - len(ids), allowed,
                                                 np.concatenate([exclude, ids]))
            ids = np.concatenate([ids, fill_ids])
            scores = np.concatenate([scores, fill_scores])
            reasons = np.concatenate([reasons, np.full(len(fill_ids), REASONS.index("popular"),
                                                       dtype=np.int8)])
        return strategy, [Item(product_id=p, score=c, reason=REASONS[r])
                          for p, c, r in zip(ids.tolist(), scores.tolist(), reasons.tolist(),
                                             strict=True)]

    def shortfall(self, req: RecommendRequest, returned: int) -> Shortfall | None:
        """None when ``returned`` is k; else how many products ``req`` allows at most and what
        rules out the rest (``recommend`` returned every product it could)."""
        if returned >= req.k:
            return None
        allowed = self.allowed_codes(req)
        if allowed is None:
            available, where = len(self._popular_ids), "the catalogue holds"
        else:
            available = sum(len(self._popular_positions[c]) for c in allowed)
            if req.departments is None:  # the catalogue less exclude_departments
                names = ", ".join(self.department_names[c - 1] for c in self.department_codes(
                    req.exclude_departments, "exclude_departments"))
                where = f"the catalogue without {names} holds"
            else:
                names = ", ".join(self.department_names[c - 1] for c in allowed)
                where = (f"department {names} holds" if len(allowed) == 1 else
                         f"departments {names} hold")
        message = f"{returned} of k={req.k}: {where} {available:,} products"
        excluded = available - returned
        if excluded:
            ruled_out = (f"bought by household {req.household_id} (exclude_purchased)"
                         if self.knows(req.household_id) else "given in recent_product_ids")
            message += f", {excluded:,} of them {ruled_out}"
        return Shortfall(returned=returned, available=available, excluded=excluded,
                         message=message)

    def similar_items(self, product_id: int, k: int) -> list[Item]:
        """The k nearest products to ``product_id`` in the item index, itself excluded."""
        row = self._item_row.get(product_id)
        if row is None:
            raise RequestError("product_id", f"product {product_id} is not in the item index "
                                             f"({len(self._item_row):,} products sold in the "
                                             "model's catalogue window)", status=404)
        ids, scores = self._nearest(self._item_vectors[row], k + 1)
        keep = ids != product_id
        return [Item(product_id=p, score=c, reason="similar")
                for p, c in zip(ids[keep][:k].tolist(), scores[keep][:k].tolist(), strict=True)]
