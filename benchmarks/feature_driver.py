"""Child process for bench_features.py: validate a source and build features, timing each.

    python benchmarks/feature_driver.py [--data DIR] --as-of 2017-11-06 --out DIR
Prints one JSON line with phase times and this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import peak_rss_mib  # noqa: E402

from features import schema as s  # noqa: E402
from features.build import build_features  # noqa: E402
from features.dataset import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--as-of", type=date.fromisoformat, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = load_dataset(args.data, quarantine_dir=args.out / "quarantine")
    t1 = time.perf_counter()
    build = build_features(ds, args.as_of, args.out / "features")
    t2 = time.perf_counter()
    print(json.dumps({
        "transaction_lines": ds.report.tables[s.TRANSACTIONS].input_rows,
        "validate_s": round(t1 - t0, 2),
        "features_s": round(t2 - t1, 2),
        "households": build.household_rows,
        "products": build.product_rows,
        "peak_rss_mib": peak_rss_mib(),
    }))


if __name__ == "__main__":
    main()
