"""The online snapshot: what the service answers from, computed offline with the same code
as ``growth recommend``, as of one date.

Files written under ``folder`` (all parquet or npz, nothing pickled):

    catalog.parquet          product_id and catalogue attributes (department, ...)
    recommendations.parquet  household_id, list (mixed | new), rank, product_id, score, reason:
                             ``Recommender.rank`` top ``list_length`` per known household, for
                             the mixed list and for ``exclude_purchased`` (new items only)
    purchases.parquet        household_id, product_id: every product bought before ``as_of``
    popular.parquet          product_id, score: the cold-start ranking of ``Recommender.popular``
                             followed by catalogue products never sold (score 0)
    item_embeddings.npz      product_ids, embeddings: the item vectors in the FAISS index
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.household import sql_date
from features.product import catalog_sql
from serving.bundle import BundleError
from serving.recommend import LIST, MIXED, NEW
from training.retrieval import ItemIndex
from training.two_tower.job import Recommender
from training.two_tower.run import active_households


def catalog(ds: Dataset) -> pd.DataFrame:
    """product_id plus every catalogue attribute: the ``products`` table, or the products
    sold (null attributes) when there is none. Validation keeps only sold products that the
    catalogue lists."""
    return ds.df(f"{catalog_sql(ds, s.TRANSACTIONS)} ORDER BY {s.PRODUCT_ID}")


def purchases(ds: Dataset, as_of: date) -> pd.DataFrame:
    """Distinct (household_id, product_id) bought before ``as_of``, sorted."""
    ts = s.TRANSACTION_TIMESTAMP
    return ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID}, {s.PRODUCT_ID} FROM {s.TRANSACTIONS} "
                 f"WHERE {ts} < CAST({sql_date(as_of)} AS TIMESTAMP) ORDER BY 1, 2")


def popular(rec: Recommender, ds: Dataset, as_of: date, products: pd.Series) -> pd.DataFrame:
    """The cold-start ranking ``growth recommend`` gives unknown households, then every
    other catalogue product (score 0, by id), so a fill can always find k products."""
    ranked = rec.popular(ds, as_of, np.zeros(1, dtype=np.int64), k=len(products) + 10**6)
    ranked = ranked[[s.PRODUCT_ID, "score"]]
    rest = np.setdiff1d(products.to_numpy(), ranked[s.PRODUCT_ID].to_numpy())
    tail = pd.DataFrame({s.PRODUCT_ID: rest, "score": 0.0})
    return pd.concat([ranked, tail], ignore_index=True)


def recommendations(rec: Recommender, ds: Dataset, as_of: date, list_length: int
                    ) -> pd.DataFrame:
    """Both ranked lists for every household active before ``as_of``, from the same
    candidate rows (what ``Recommender.recommend`` computes for each list)."""
    households = active_households(ds, as_of)
    mixed, new = rec.ranked(ds, as_of, households, list_length)
    out = pd.concat([mixed.assign(**{LIST: MIXED}), new.assign(**{LIST: NEW})],
                    ignore_index=True)
    return out[[s.HOUSEHOLD_ID, LIST, "rank", s.PRODUCT_ID, "score", "reason"]]


def item_embeddings(rec: Recommender, ds: Dataset, index: ItemIndex) -> np.ndarray:
    """The item vectors the saved FAISS index holds (as of the model's own ``as_of``),
    checked against the index: each must be found in it with inner product 1. A mismatch
    means the model was trained on other data: a BundleError."""
    items = rec.item_embeddings(ds, rec.cfg.as_of)
    if not np.array_equal(index.product_ids, rec.vocab.product_ids):
        raise BundleError("the two-tower's FAISS index holds other products than its "
                          "vocabulary: the bundle's model files do not belong together")
    probe = items[np.linspace(0, len(items) - 1, min(len(items), 32)).astype(int)]
    scores, _ = index.search(probe, 1)
    if not np.allclose(scores[:, 0], (probe * probe).sum(axis=1), atol=1e-4):
        raise BundleError(f"the two-tower's FAISS index does not hold the item embeddings "
                          f"{ds.source} gives: the model was trained on other data; train "
                          "the two-tower on this data and make it the champion")
    return items


def write(folder: Path, rec: Recommender, ds: Dataset, as_of: date, index: ItemIndex,
          list_length: int) -> dict[str, int]:
    """Write every snapshot file to ``folder``; returns row counts for the summary."""
    items = item_embeddings(rec, ds, index)  # first: it refuses a model of other data
    folder.mkdir(parents=True, exist_ok=True)
    products = catalog(ds)
    recs = recommendations(rec, ds, as_of, list_length)
    bought = purchases(ds, as_of)
    pop = popular(rec, ds, as_of, products[s.PRODUCT_ID])
    products.to_parquet(folder / "catalog.parquet", index=False)
    recs.to_parquet(folder / "recommendations.parquet", index=False)
    bought.to_parquet(folder / "purchases.parquet", index=False)
    pop.to_parquet(folder / "popular.parquet", index=False)
    np.savez(folder / "item_embeddings.npz", product_ids=index.product_ids, embeddings=items)
    return {"households": int(recs[s.HOUSEHOLD_ID].nunique()), "products": len(products),
            "recommendation_rows": len(recs), "purchase_rows": len(bought)}
