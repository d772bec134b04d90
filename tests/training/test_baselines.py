from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features import schema as s
from training.baselines import EASE, BuyAgain, HouseholdNeighbours, ItemCooccurrence, Popularity

AS_OF = date(2017, 3, 1)


def lines(rows: list[tuple[int, int, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[s.HOUSEHOLD_ID, s.BASKET_ID, s.PRODUCT_ID,
                                       s.TRANSACTION_TIMESTAMP]).astype(
        {s.TRANSACTION_TIMESTAMP: "datetime64[ns]"})


TRAIN = lines([
    # household 1 bought 10 three times long ago, 11 once yesterday
    (1, 1, 10, "2017-01-01"), (1, 2, 10, "2017-01-02"), (1, 3, 10, "2017-01-03"),
    (1, 4, 11, "2017-02-28"),
    # households 2-4 make 12 popular recently; 12 and 13 are bought together
    (2, 5, 12, "2017-02-20"), (2, 5, 13, "2017-02-20"), (3, 6, 12, "2017-02-21"),
    (3, 6, 13, "2017-02-21"), (4, 7, 12, "2017-02-22"), (4, 8, 14, "2017-02-22"),
])


def test_popularity_counts_recent_buyers() -> None:
    recs = Popularity(window_days=28).fit(TRAIN, AS_OF).recommend([1, 99], k=2)
    assert recs[99][0] == 12 and recs[1] == recs[99]
    assert len(recs[1]) == 2


def test_buy_again_frequency_versus_decay() -> None:
    frequency = BuyAgain().fit(TRAIN, AS_OF).recommend([1], k=3)[1]
    assert frequency[:2] == [10, 11] and frequency[2] == 12  # filled with popularity
    decayed = BuyAgain(half_life_days=7).fit(TRAIN, AS_OF).recommend([1], k=2)[1]
    assert decayed == [11, 10]  # yesterday's purchase outweighs three old ones


def test_buy_again_unknown_household_gets_popularity_and_exactly_k() -> None:
    recs = BuyAgain().fit(TRAIN, AS_OF).recommend([42], k=4)[42]
    assert len(recs) == len(set(recs)) == 4 and recs[0] == 12


def test_cooccurrence_recommends_what_is_bought_together() -> None:
    model = ItemCooccurrence(min_buyers=1, exclude_history=True).fit(TRAIN, AS_OF)
    recs = model.recommend([4], k=3)[4]
    assert recs[0] == 13  # 13 goes with 12, which household 4 bought
    assert 12 not in recs and 14 not in recs  # history excluded
    assert len(recs) == 3


def test_household_neighbours_vote_for_what_similar_households_bought_recently() -> None:
    extra = lines([
        # household 5 buys like household 2 and 3 (12 and 13); 2 and 3 recently tried 15
        (5, 9, 12, "2017-01-10"), (5, 10, 13, "2017-01-11"),
        (2, 11, 15, "2017-02-25"), (3, 12, 15, "2017-02-26"),
        # household 1 (unlike 5) recently bought 16
        (1, 13, 16, "2017-02-27"),
    ])
    model = HouseholdNeighbours(neighbours=2).fit(pd.concat([TRAIN, extra]), AS_OF)
    scored = model.scored([5], k=5)
    assert scored[s.PRODUCT_ID].iloc[0] == 15 and scored["knn_rank"].iloc[0] == 1
    assert not {12, 13, 16} & set(scored[s.PRODUCT_ID])  # own history and non-neighbours
    recs = model.recommend([5, 42], k=3)
    assert recs[5][0] == 15 and len(set(recs[5])) == 3 and 12 not in recs[5]
    assert recs[42][0] == 12  # unknown household: popularity


def test_ease_weights_are_the_closed_form_least_squares_solution() -> None:
    """Each column of B solves min ||x_j - X b||^2 + l2 ||b||^2 with b_j = 0, i.e. a ridge
    regression of product j on the other products: check against numpy's solver."""
    rng = np.random.default_rng(0)
    rows = [(h, h * 100 + b, p, "2017-02-01") for h in range(1, 41) for b in range(3)
            for p in rng.choice(6, size=2, replace=False) + 10]
    model = EASE(l2=5.0, min_households=1).fit(lines(rows), AS_OF)
    x = model.history_.toarray().astype(np.float64)
    assert x.max() > np.log(2)  # log(1 + baskets): repeat purchases weigh more
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        a = x[:, others]
        expected = np.linalg.solve(a.T @ a + 5.0 * np.eye(len(others)), a.T @ x[:, j])
        assert model.weights_[j, j] == 0.0
        np.testing.assert_allclose(model.weights_[others, j], expected, rtol=1e-3, atol=1e-5)


def test_ease_recommends_new_products_and_scores_any_pair() -> None:
    model = EASE(l2=0.5, min_households=1).fit(TRAIN, AS_OF)
    scored = model.scored([4], k=5)
    assert scored[s.PRODUCT_ID].iloc[0] == 13  # 12 predicts 13 across households 2 and 3
    assert not {12, 14} & set(scored[s.PRODUCT_ID])  # history excluded
    assert list(scored["ease_rank"]) == list(range(1, len(scored) + 1))
    pairs = model.pair_scores(np.array([4, 4, 4, 42]), np.array([13, 12, 999, 13]))
    assert pairs[0] == np.float32(scored["ease_score"].iloc[0])
    assert np.isfinite(pairs[1])  # a bought product still gets a score (from the others)
    assert np.isnan(pairs[2]) and np.isnan(pairs[3])  # unknown product, unknown household
    recs = model.recommend([4, 42], k=3)
    assert recs[4][0] == 13 and 12 not in recs[4] and len(set(recs[4])) == 3
    assert recs[42][0] == 12  # unknown household: popularity


def test_ease_with_too_few_buyers_models_nothing() -> None:
    model = EASE(min_households=100).fit(TRAIN, AS_OF)
    assert model.scored([1, 4], k=5).empty
    assert np.isnan(model.pair_scores(np.array([1]), np.array([10]))).all()
    assert len(model.recommend([1], k=2)[1]) == 2  # popularity fills


def test_ease_models_at_most_max_items_the_most_bought() -> None:
    """Its cost is cubic in the products kept: ``max_items`` keeps the most bought (buyers:
    12 three, 13 two, 10, 11 and 14 one each; ties go to the lower product id)."""
    assert list(EASE(min_households=1).fit(TRAIN, AS_OF).items_) == [10, 11, 12, 13, 14]
    assert list(EASE(min_households=1, max_items=2).fit(TRAIN, AS_OF).items_) == [12, 13]
    capped = EASE(min_households=1, max_items=3).fit(TRAIN, AS_OF)
    assert list(capped.items_) == [10, 12, 13]
    assert capped.weights_.shape == (3, 3)
    assert list(EASE(min_households=2, max_items=3).fit(TRAIN, AS_OF).items_) == [12, 13]
