from __future__ import annotations

import math

import pytest

from training.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    mean_popularity,
    ndcg_at_k,
    ranking_report,
    recall_at_k,
)

RECS = {1: [10, 11, 12], 2: [20, 21, 22]}
TARGETS = {1: {11, 99}, 2: {30}, 3: {10}}  # household 3 got no recommendations


def test_recall_hit_rate_by_hand() -> None:
    assert recall_at_k(RECS, TARGETS, 3) == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert recall_at_k(RECS, TARGETS, 1) == 0.0
    assert hit_rate_at_k(RECS, TARGETS, 2) == pytest.approx(1 / 3)


def test_ndcg_by_hand() -> None:
    # household 1: hit at rank 2 -> 1/log2(3); ideal with 2 targets -> 1 + 1/log2(3)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3)) / 3
    assert ndcg_at_k(RECS, TARGETS, 3) == pytest.approx(expected)
    assert ndcg_at_k({1: [5]}, {1: {5}}, 10) == pytest.approx(1.0)


def test_coverage_and_popularity() -> None:
    assert catalog_coverage(RECS, 12, k=2) == pytest.approx(4 / 12)
    assert mean_popularity({1: [1, 2]}, {1: 0.5, 2: 0.1}, k=2) == pytest.approx(0.3)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(RECS, TARGETS, 0)
    with pytest.raises(ValueError, match="targets is empty"):
        recall_at_k(RECS, {}, 5)


def test_report_has_every_metric() -> None:
    report = ranking_report(RECS, TARGETS, {1: {99}}, ks=(10, 20))
    assert len(report) == 2 * 2 * 3 and report["recall_new_at_10"] == 0.0
