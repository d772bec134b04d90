"""Ranking metrics as plain functions over distinct products (standard settings, design.md).

``recommendations`` maps household_id -> ranked product ids (best first, distinct);
``targets`` maps household_id -> the set of products it bought in the test window. Every
household in ``targets`` counts: one without recommendations scores zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from features import schema as s

Recs = Mapping[int, Sequence[int]]
Targets = Mapping[int, set[int]]


def _check(recommendations: Recs, targets: Targets, k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not targets:
        raise ValueError("no households to evaluate: targets is empty")


def _per_household(recommendations: Recs, targets: Targets, k: int, fn) -> float:
    _check(recommendations, targets, k)
    scores = [fn(list(recommendations.get(h, ()))[:k], t) for h, t in targets.items() if t]
    if not scores:
        raise ValueError("no household has a non-empty target set")
    return float(np.mean(scores))


def recall_at_k(recommendations: Recs, targets: Targets, k: int) -> float:
    """Mean over households of |top-k ∩ targets| / |targets|."""
    return _per_household(recommendations, targets, k,
                          lambda recs, t: len(set(recs) & t) / len(t))


def hit_rate_at_k(recommendations: Recs, targets: Targets, k: int) -> float:
    """Share of households with at least one target in the top k."""
    return _per_household(recommendations, targets, k,
                          lambda recs, t: float(bool(set(recs) & t)))


def ndcg_at_k(recommendations: Recs, targets: Targets, k: int) -> float:
    """Binary-relevance NDCG: DCG of the hits over the DCG of a perfect top k."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))

    def one(recs: list[int], t: set[int]) -> float:
        dcg = sum(discounts[i] for i, p in enumerate(recs) if p in t)
        return dcg / discounts[: min(len(t), k)].sum()

    return _per_household(recommendations, targets, k, one)


def catalog_coverage(recommendations: Recs, catalog_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    if catalog_size < 1:
        raise ValueError("catalog_size must be positive")
    seen = {p for recs in recommendations.values() for p in list(recs)[:k]}
    return len(seen) / catalog_size


def mean_popularity(recommendations: Recs, popularity: Mapping[int, float], k: int) -> float:
    """Average popularity (e.g. share of training households that bought it) of what is
    recommended; lower means less head-heavy lists."""
    values = [popularity.get(p, 0.0) for recs in recommendations.values() for p in list(recs)[:k]]
    return float(np.mean(values)) if values else 0.0


def targets_from_frame(frame: pd.DataFrame, only: Iterable[int] | None = None) -> dict[int, set]:
    """``household_id, product_id`` rows -> {household: set of products}."""
    if only is not None:
        frame = frame[frame[s.HOUSEHOLD_ID].isin(set(only))]
    return {int(h): set(g.tolist()) for h, g in frame.groupby(s.HOUSEHOLD_ID)[s.PRODUCT_ID]}


def ranking_report(recommendations: Recs, targets: Targets, new_targets: Targets,
                   ks: Sequence[int] = (10, 20, 50)) -> dict[str, float]:
    """recall/NDCG/hit rate at each k, for all items and for items new to the household."""
    out: dict[str, float] = {}
    for name, t in (("all", targets), ("new", new_targets)):
        for k in ks:
            out[f"recall_{name}_at_{k}"] = recall_at_k(recommendations, t, k)
            out[f"ndcg_{name}_at_{k}"] = ndcg_at_k(recommendations, t, k)
            out[f"hit_rate_{name}_at_{k}"] = hit_rate_at_k(recommendations, t, k)
    return out
