"""Score a file written by ``growth recommend`` against the standard recommender split.

    growth recommend --as-of 2017-12-04 --k 20 --out recs.parquet
    growth recommend --as-of 2017-12-04 --k 20 --exclude-purchased --out recs_new.parquet
    .venv/bin/python benchmarks/eval_recommendations.py recs.parquet recs_new.parquet
Prints recall/NDCG/hit rate at 20 for all items and for items new to the household.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features import schema as s
from features.dataset import load_dataset
from features.labels import IS_NEW, recommender_split
from training.metrics import ranking_report, targets_from_frame


def main() -> None:
    ds = load_dataset(None, quarantine_dir=Path(tempfile.mkdtemp(prefix="growth_quarantine_")))
    for path in sys.argv[1:]:
        as_of = date.fromisoformat(pq.read_schema(path).metadata[b"as_of"].decode())
        split = recommender_split(ds, as_of)
        recs = pd.read_parquet(path)
        lists = {int(h): g.sort_values("rank")[s.PRODUCT_ID].tolist()
                 for h, g in recs.groupby(s.HOUSEHOLD_ID)}
        report = ranking_report(lists, targets_from_frame(split.targets),
                                targets_from_frame(split.targets[split.targets[IS_NEW] == 1]),
                                ks=(20,))
        print(path, {k: round(v, 4) for k, v in report.items()})


if __name__ == "__main__":
    main()
