"""Department-filtered ``/recommend`` for known households, on the newest bundle.

    .venv/bin/python benchmarks/recommend_departments.py [--households 200] [--k 20]

Run after `make run`. In process, as a service worker answers (``RecommendationStore``,
FAISS and numpy's BLAS on the threads configs/serving.yaml gives): for the first
``--households`` households and each department, the mean number of items per answer by
reason (``repeat``/``similar`` from the household's list or the purchase-embedding fill,
``popular`` last) and the latency of ``recommend`` (p50, p99).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from serving.bundle import TWO_TOWER, open_bundle
from serving.config import load_serving_config, use_bentoml_home
from serving.recommend import RecommendationStore, limit_faiss_threads
from serving.schemas import RecommendRequest

DEPARTMENTS = ("COSMETICS", "MEAT", "DRUG GM", "PRODUCE", "GROCERY")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    cfg = load_serving_config()
    use_bentoml_home(cfg)
    bundle = open_bundle(f"{cfg.bundle_name}:latest")
    limit_faiss_threads(cfg.faiss_threads)
    store = RecommendationStore(bundle.path / TWO_TOWER)
    households = store.households[:args.households].tolist()
    print(f"bundle {bundle.tag}, {len(households)} households, k={args.k}")
    for department in DEPARTMENTS:
        counts: dict[str, int] = {}
        seconds = []
        for household in households:
            request = RecommendRequest(household_id=household, k=args.k,
                                       departments=[department])
            started = time.perf_counter()
            _, items = store.recommend(request)
            seconds.append(time.perf_counter() - started)
            for item in items:
                counts[item.reason] = counts.get(item.reason, 0) + 1
        per_answer = ", ".join(f"{reason} {n / len(households):.1f}"
                               for reason, n in sorted(counts.items()))
        print(f"{department}: {per_answer}; p50 {np.percentile(seconds, 50) * 1e3:.2f} ms, "
              f"p99 {np.percentile(seconds, 99) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
