from __future__ import annotations

from datetime import date

import pandas as pd

from features import schema as s
from training.baselines import BuyAgain, HouseholdNeighbours, ItemCooccurrence, Popularity

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
