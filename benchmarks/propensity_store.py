"""What the service's propensity stores cost at start-up, on the newest bundle.

    .venv/bin/python benchmarks/propensity_store.py [--repeats 3]

Run after `make run`. For churn and coupon: the rows in the bundle, the time to load the
store as each service worker does (read the rows, calibrated probabilities, deciles and
the lookup tables), and, measured in the same run on the same rows, the time the reason
codes (LightGBM TreeSHAP) take, which the bundle now stores so that no worker recomputes
them. Best of ``--repeats`` for each.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from serving.bundle import open_bundle
from serving.config import load_serving_config, use_bentoml_home
from serving.propensity import FEATURES, PropensityStore


def best_of(repeats: int, work, *args) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_serving_config()
    use_bentoml_home(cfg)
    bundle = open_bundle(f"{cfg.bundle_name}:latest")
    for name in ("churn", "coupon"):
        if not bundle.has(name):
            continue
        folder, version = bundle.path / name, bundle.versions[name]
        store = PropensityStore(name, folder, version)
        rows = pd.read_parquet(folder / FEATURES)
        print(json.dumps({
            "bundle": bundle.tag, "model": name, "version": version, "rows": len(rows),
            "store_load_s": round(best_of(args.repeats, PropensityStore, name, folder,
                                          version), 2),
            "reason_codes_s": round(best_of(args.repeats, store.model.reasons, rows), 2),
        }))


if __name__ == "__main__":
    main()
