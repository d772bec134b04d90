"""Candidates for the blend, and the features that describe each (household, product).

Per household: its most-weighted past products (frequency, recency, replenishment
interval), the two-tower's nearest new items, new items from co-occurrence with its history
and from an EASE item-to-item model, recent popularity, and the popular items of the product
types it buys most. Every query reads only lines before ``as_of``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.household import sql_date, transactions_before
from features.product import catalog_sql
from training.baselines import EASE, ItemCooccurrence
from training.two_tower.config import TwoTowerConfig
from training.two_tower.data import Vocab, item_positions

HISTORY_CAP = 200
# households whose candidate rows are built at once: memory follows this, not the population;
# the embedded data's windows fit in one group
GROUP_HOUSEHOLDS = 4096


def _households(households: np.ndarray) -> pd.DataFrame:
    """``households`` as a one-column frame, for SQL to read as a view."""
    return pd.DataFrame({s.HOUSEHOLD_ID: np.asarray(households, dtype=np.int64)})


def history_candidates(ds: Dataset, as_of: date, households: np.ndarray) -> pd.DataFrame:
    """Per (household, product) bought before ``as_of``: repeat-purchase signals, capped at
    the ``HISTORY_CAP`` products with the largest 60-day-decayed weight."""
    d, ts = sql_date(as_of), s.TRANSACTION_TIMESTAMP
    h, p, b = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.BASKET_ID
    frame = ds.df_with(f"""
        WITH t AS (
            SELECT {h}, {p}, {b}, date_diff('day', CAST({ts} AS DATE), {d}) AS age
            FROM {s.TRANSACTIONS} WHERE {ts} < CAST({d} AS TIMESTAMP)
              AND {h} IN (SELECT {h} FROM wanted)),
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
        SELECT * EXCLUDE (rn) FROM ranked WHERE rn <= {HISTORY_CAP} ORDER BY {h}, rn""",
        wanted=_households(households))
    span = (frame["days_since_first"] - frame["days_since_last"]).astype(float)
    frame["mean_interval"] = np.where(frame["n_baskets"] > 1,
                                      span / (frame["n_baskets"] - 1).clip(lower=1), np.nan)
    frame["due_ratio"] = frame["days_since_last"] / frame["mean_interval"]
    frame["in_history"] = 1
    return frame


def lines_before(ds: Dataset, as_of: date) -> pd.DataFrame:
    """household_id, basket_id, product_id, transaction_timestamp of every line before
    ``as_of``."""
    h, p, ts = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.TRANSACTION_TIMESTAMP
    return ds.df(f"SELECT {h}, {s.BASKET_ID}, {p}, {ts} FROM {s.TRANSACTIONS} "
                 f"WHERE {ts} < CAST({sql_date(as_of)} AS TIMESTAMP)")


def new_item_candidates(cooc: ItemCooccurrence, bought: pd.DataFrame, households: np.ndarray,
                        n: int) -> pd.DataFrame:
    """Products new to each household from item co-occurrence with its history (``cooc``
    fitted with ``exclude_history``) and from recent popularity (``bought``: the distinct
    household_id, product_id pairs before the date): household_id, product_id, cooc_score,
    cooc_rank, pop_rank."""
    h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
    scored = cooc.scored(households, n)
    popular = cooc.popularity_.ranking_[:n]
    pop = pd.DataFrame({h: np.repeat(households, len(popular)),
                        p: np.tile(popular, len(households)),
                        "pop_rank": np.tile(np.arange(1, len(popular) + 1), len(households))})
    bought = bought[bought[h].isin(households)].assign(bought=1)
    pop = pop.merge(bought, on=[h, p], how="left")
    pop = pop[pop["bought"].isna()].drop(columns="bought")
    return scored.merge(pop, on=[h, p], how="outer")


AFFINITY_KEYS = {"type": s.PRODUCT_TYPE, "category": s.PRODUCT_CATEGORY,
                 "department": s.DEPARTMENT, "brand": s.BRAND, "manufacturer": s.MANUFACTURER_ID}
AFFINITY_FEATURES = (
    "hh_type_baskets", "hh_type_decay", "hh_type_products", "hh_type_variety",
    "hh_category_baskets", "hh_category_decay", "hh_category_products",
    "hh_department_share", "hh_brand_baskets", "hh_manufacturer_baskets",
)


def _lines_with_catalog(ds: Dataset, as_of: date) -> str:
    """CTE bodies ``t`` (lines before ``as_of``) and ``lc`` (lines with their attributes)."""
    attrs = ", ".join(f"c.{col} AS {key}" for key, col in AFFINITY_KEYS.items())
    return f"""t AS ({transactions_before(as_of)}),
        catalog AS ({catalog_sql(ds, "t")}),
        lc AS (SELECT t.{s.HOUSEHOLD_ID} AS h, t.{s.PRODUCT_ID} AS p, t.{s.BASKET_ID} AS b,
                      t.age_days AS age, {attrs}
               FROM t JOIN catalog c USING ({s.PRODUCT_ID}))"""


def category_candidates(ds: Dataset, as_of: date, households: np.ndarray, n_types: int,
                        per_type: int) -> pd.DataFrame:
    """For each household's ``n_types`` product types with the most 60-day-decayed baskets,
    the ``per_type`` products most bought in the last 4 weeks it never bought:
    household_id, product_id."""
    h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
    return ds.df_with(f"""
        WITH {_lines_with_catalog(ds, as_of)},
        mine AS (SELECT * FROM lc WHERE h IN (SELECT {h} FROM wanted)),
        ht AS (SELECT h, type, sum(pow(0.5, age / 60.0)) AS w FROM mine
               WHERE type IS NOT NULL GROUP BY 1, 2),
        top_types AS (SELECT * FROM (SELECT *, row_number() OVER (
                          PARTITION BY h ORDER BY w DESC, type) AS r FROM ht)
                      WHERE r <= {n_types}),
        ip AS (SELECT type, p, count(DISTINCT h) AS n FROM lc
               WHERE age < 28 AND type IS NOT NULL GROUP BY 1, 2),
        top_items AS (SELECT * FROM (SELECT *, row_number() OVER (
                          PARTITION BY type ORDER BY n DESC, p) AS r FROM ip)
                      WHERE r <= {per_type}),
        bought AS (SELECT DISTINCT h, p FROM mine),
        c AS (SELECT DISTINCT tt.h, ti.p FROM top_types tt JOIN top_items ti USING (type))
        SELECT c.h AS {h}, c.p AS {p} FROM c ANTI JOIN bought USING (h, p) ORDER BY 1, 2""",
        wanted=_households(households))


def affinity_features(ds: Dataset, as_of: date, pairs: pd.DataFrame) -> pd.DataFrame:
    """How much each household buys in each candidate's product type, category, department,
    brand and manufacturer before ``as_of``: ``pairs`` plus ``AFFINITY_FEATURES``."""
    h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID

    def grouped(key: str, extra: str = "") -> str:
        return (f"SELECT h, {key}, count(DISTINCT b) AS n{extra} FROM mine "
                f"WHERE {key} IS NOT NULL GROUP BY 1, 2")

    decay = ", sum(pow(0.5, age / 60.0)) AS dec, count(DISTINCT p) AS np"
    return ds.df_with(f"""
        WITH {_lines_with_catalog(ds, as_of)},
        mine AS (SELECT * FROM lc WHERE h IN (SELECT DISTINCT {h} FROM pairs)),
        ty AS ({grouped("type", decay)}), ca AS ({grouped("category", decay)}),
        de AS ({grouped("department")}), br AS ({grouped("brand")}),
        ma AS ({grouped("manufacturer")}),
        hn AS (SELECT h, count(DISTINCT b) AS nb, count(DISTINCT p) AS np FROM mine
               GROUP BY 1)
        SELECT x.{h}, x.{p},
               coalesce(ty.n, 0) AS hh_type_baskets, coalesce(ty.dec, 0) AS hh_type_decay,
               coalesce(ty.np, 0) AS hh_type_products,
               coalesce(ty.np, 0) / hn.np AS hh_type_variety,
               coalesce(ca.n, 0) AS hh_category_baskets, coalesce(ca.dec, 0) AS hh_category_decay,
               coalesce(ca.np, 0) AS hh_category_products,
               coalesce(de.n, 0) / hn.nb AS hh_department_share,
               coalesce(br.n, 0) AS hh_brand_baskets, coalesce(ma.n, 0) AS hh_manufacturer_baskets
        FROM pairs x
        LEFT JOIN ({catalog_sql(ds, "t")}) c ON c.{p} = x.{p}
        LEFT JOIN hn ON hn.h = x.{h}
        LEFT JOIN ty ON ty.h = x.{h} AND ty.type = c.{AFFINITY_KEYS["type"]}
        LEFT JOIN ca ON ca.h = x.{h} AND ca.category = c.{AFFINITY_KEYS["category"]}
        LEFT JOIN de ON de.h = x.{h} AND de.department = c.{AFFINITY_KEYS["department"]}
        LEFT JOIN br ON br.h = x.{h} AND br.brand = c.{AFFINITY_KEYS["brand"]}
        LEFT JOIN ma ON ma.h = x.{h} AND ma.manufacturer = c.{AFFINITY_KEYS["manufacturer"]}
        ORDER BY 1, 2""", pairs=pairs[[h, p]])


CAMPAIGN_FEATURES = ("hh_active_coupon_campaigns", "item_active_campaigns")


def campaign_features(ds: Dataset, as_of: date, pairs: pd.DataFrame) -> pd.DataFrame:
    """For campaigns running on ``as_of`` (started before it): how many the household
    received whose coupons cover the product, and how many cover it at all. Zero without
    the campaign tables."""
    h, p, c = s.HOUSEHOLD_ID, s.PRODUCT_ID, s.CAMPAIGN_ID
    if not all(ds.has(t) for t in (s.CAMPAIGNS, s.CAMPAIGN_DESCRIPTIONS, s.COUPONS)):
        return pairs[[h, p]].assign(**{f: 0 for f in CAMPAIGN_FEATURES})
    d = sql_date(as_of)
    return ds.df_with(f"""
        WITH running AS (SELECT {c} FROM {s.CAMPAIGN_DESCRIPTIONS}
                         WHERE {s.START_DATE} < {d} AND {s.END_DATE} >= {d}),
        received AS (SELECT DISTINCT {h}, {c} FROM {s.CAMPAIGNS} JOIN running USING ({c})),
        covered AS (SELECT DISTINCT {c}, {p} FROM {s.COUPONS} JOIN running USING ({c})),
        hp AS (SELECT x.{h}, x.{p}, count(DISTINCT r.{c}) AS n
               FROM pairs x JOIN received r ON r.{h} = x.{h}
               JOIN covered v ON v.{c} = r.{c} AND v.{p} = x.{p} GROUP BY 1, 2),
        ip AS (SELECT {p}, count(DISTINCT {c}) AS n FROM covered GROUP BY 1)
        SELECT x.{h}, x.{p}, coalesce(hp.n, 0) AS hh_active_coupon_campaigns,
               coalesce(ip.n, 0) AS item_active_campaigns
        FROM pairs x LEFT JOIN hp USING ({h}, {p}) LEFT JOIN ip USING ({p})
        ORDER BY 1, 2""", pairs=pairs[[h, p]])


class Candidates:
    """Candidate rows as of one date, with every blend feature, for any households: what
    all households share (co-occurrence, EASE, popularity, item and household statistics,
    the item embeddings) is fitted once, then :meth:`frame` builds one group's rows.

    ``item_emb`` rows follow ``vocab.product_ids``; ``item_stats`` and ``household_stats``
    are the blend's item and household columns as of ``as_of``.
    """

    def __init__(self, ds: Dataset, vocab: Vocab, as_of: date, item_emb: np.ndarray,
                 cfg: TwoTowerConfig, item_stats: pd.DataFrame,
                 household_stats: pd.DataFrame) -> None:
        self.ds, self.vocab, self.as_of, self.item_emb, self.cfg = ds, vocab, as_of, item_emb, cfg
        self.item_stats, self.household_stats = item_stats, household_stats
        lines = lines_before(ds, as_of)
        self.cooc = ItemCooccurrence(exclude_history=True).fit(lines, as_of)
        self.ease = EASE(cfg.ease_l2, cfg.ease_min_households,
                         max_items=cfg.ease_max_items).fit(lines, as_of)
        self.bought = lines[[s.HOUSEHOLD_ID, s.PRODUCT_ID]].drop_duplicates()

    def groups(self, households: np.ndarray, user_emb: np.ndarray,
               size: int = GROUP_HOUSEHOLDS) -> Iterator[pd.DataFrame]:
        """:meth:`frame` of ``size`` households at a time, in order (``user_emb`` rows
        follow ``households``): together, the rows one call for all of them would give."""
        for start in range(0, len(households), size):
            yield self.frame(households[start:start + size], user_emb[start:start + size])

    def frame(self, households: np.ndarray, user_emb: np.ndarray) -> pd.DataFrame:
        """History candidates plus new items from the two-tower, co-occurrence, EASE,
        popularity and the household's favourite product types, sorted by household and
        product; every column but the two ids as float32 (what the blend reads)."""
        from training.two_tower.train import top_items

        ds, as_of, cfg, ease = self.ds, self.as_of, self.cfg, self.ease
        h, p = s.HOUSEHOLD_ID, s.PRODUCT_ID
        n_candidates = cfg.candidates
        hist = history_candidates(ds, as_of, households)
        bought = self.bought[self.bought[h].isin(households)]
        top, _ = top_items(user_emb, self.item_emb, n_candidates,
                           item_positions(bought, self.vocab, households))
        tt = pd.DataFrame({h: np.repeat(households, n_candidates),
                           p: self.vocab.product_ids[top.ravel()],
                           "tt_rank": np.tile(np.arange(1, n_candidates + 1), len(households))})
        others = new_item_candidates(self.cooc, bought, households, n_candidates // 2)
        learned = ease.scored(households, cfg.ease_candidates).drop(columns="ease_score")
        cats = category_candidates(ds, as_of, households, cfg.category_types,
                                   cfg.category_items)
        frame = (hist.merge(tt, on=[h, p], how="outer").merge(others, on=[h, p], how="outer")
                 .merge(learned, on=[h, p], how="outer").merge(cats, on=[h, p], how="outer"))
        frame["cooc_rank"] = frame["cooc_rank"].fillna(n_candidates + 1)
        frame["ease_rank"] = frame["ease_rank"].fillna(cfg.ease_candidates + 1)
        # EASE's score of every candidate, history items included
        frame["ease_score"] = ease.pair_scores(frame[h].to_numpy(), frame[p].to_numpy())
        frame["pop_rank"] = frame["pop_rank"].fillna(n_candidates + 1)
        frame["in_history"] = frame["in_history"].fillna(0)
        # the two-tower score of every candidate, history items included
        row = pd.Series(np.arange(len(households)), index=households).loc[frame[h]].to_numpy()
        item = self.vocab.item_index(frame[p].to_numpy())
        known = item > 0
        tt_score = np.full(len(frame), np.nan, dtype=np.float32)
        tt_score[known] = np.einsum("ij,ij->i", user_emb[row[known]],
                                    self.item_emb[item[known] - 1])
        frame["tt_score"] = tt_score
        frame["tt_rank"] = frame["tt_rank"].fillna(n_candidates + 1)
        frame = (frame.merge(self.item_stats, on=p, how="left")
                 .merge(self.household_stats, on=h, how="left"))
        frame = frame.merge(affinity_features(ds, as_of, frame), on=[h, p], how="left")
        frame = frame.merge(campaign_features(ds, as_of, frame), on=[h, p], how="left")
        frame["household_items"] = frame.groupby(h)["household_items"].transform("max")
        frame = frame.sort_values([h, p], kind="stable").reset_index(drop=True)
        values = [c for c in frame.columns if c not in (h, p)]
        return frame.astype(dict.fromkeys(values, np.float32))
