"""Write the point-in-time feature tables for one as-of date.

    growth features build --as-of 2017-11-06 --out artifacts/features/2017-11-06
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.config import DataConfig
from features.dataset import Dataset
from features.household import household_features
from features.product import product_features
from features.sources import refuse_data_folder

HOUSEHOLDS_FILE = "households.parquet"
PRODUCTS_FILE = "products.parquet"


@dataclass
class FeatureBuild:
    as_of: date
    households: Path
    products: Path
    household_rows: int
    product_rows: int
    household_columns: int
    product_columns: int


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Deterministic parquet: same frame -> same bytes (no index, fixed writer settings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, compression="zstd")


def build_features(ds: Dataset, as_of: date, out_dir: Path,
                   cfg: DataConfig | None = None) -> FeatureBuild:
    """Compute household and product features as of ``as_of`` and write both tables."""
    refuse_data_folder(out_dir, [t.file for t in ds.report.tables.values()], "feature folder")
    cfg = cfg or DataConfig()
    households = household_features(ds, as_of, cfg)
    products = product_features(ds, as_of, cfg)
    out_dir = Path(out_dir)
    write_parquet(households, out_dir / HOUSEHOLDS_FILE)
    write_parquet(products, out_dir / PRODUCTS_FILE)
    return FeatureBuild(as_of, out_dir / HOUSEHOLDS_FILE, out_dir / PRODUCTS_FILE,
                        len(households), len(products),
                        households.shape[1], products.shape[1])
