"""A propensity population's start-up cost and lookup time in a service worker, against
the reference it replaced (a validated answer object per row, built at start-up).

    .venv/bin/python benchmarks/propensity_population.py [--rows 1100000] [--asked 1000]

Synthetic rows (3 reason codes of 40 feature names, 3 value texts each). For each way:
the seconds and the resident memory building the population takes, and, after the heap is
frozen as a worker freezes it, the time ``scores`` takes for ``--asked`` distinct
households (p50, p99 over 200 requests). Each way
runs in its own process, so the memory of one does not hide the other's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ROOT  # noqa: E402

from serving.propensity import _population  # noqa: E402
from serving.recommend import freeze_heap  # noqa: E402
from serving.schemas import HouseholdScore  # noqa: E402
from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def measure(way: str, n: int, asked: int) -> dict:
    rng = np.random.default_rng(0)
    names = np.array([f"feature_{i}" for i in range(40)], dtype=object)
    rows = pd.DataFrame({c: names[rng.integers(0, 40, n)] for c in REASON_COLUMNS})
    for c in VALUE_COLUMNS:
        rows[c] = [f"{v:.2f}" for v in rng.random(n)]
    households = rng.permutation(n * 3)[:n].astype(np.int64) + 1
    probability = rng.random(n)
    before, started = rss_mib(), time.perf_counter()
    population = _population(date(2017, 11, 6), households, probability, rows, {})
    if way == "reference":  # what the service built before: an answer object per row
        answers = {int(h): HouseholdScore(household_id=int(h), probability=float(p),
                                          decile=int(d), reasons=list(r),
                                          reason_values=list(v))
                   for h, p, d, r, v in zip(population.household_ids,
                                            population.probabilities, population.deciles,
                                            population.reasons, population.reason_values,
                                            strict=True)}

        def scores(ids: list[int]) -> list[HouseholdScore]:
            return [answers[h] for h in dict.fromkeys(ids) if h in answers]
    else:
        def scores(ids: list[int]) -> list[HouseholdScore]:
            return population.scores(ids)[0]
    built_s, built_mib = time.perf_counter() - started, rss_mib() - before
    freeze_heap()  # as a worker does once its bundle is loaded
    times = []
    for i in range(200):
        ids = rng.choice(households, asked, replace=False).tolist()
        t0 = time.perf_counter()
        found = scores(ids)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(found) == asked, i
    return {"way": way, "build_s": round(built_s, 2), "build_mib": round(built_mib),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "scores_p50_ms": round(float(np.percentile(times, 50)), 2),
            "scores_p99_ms": round(float(np.percentile(times, 99)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_100_000)
    parser.add_argument("--asked", type=int, default=1000)
    parser.add_argument("--way", choices=("lazy", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:  # the child process
        print(json.dumps(measure(args.way, args.rows, args.asked)))
        return
    print(f"{args.rows:,} rows, {args.asked:,} households asked per request")
    for way in ("reference", "lazy"):
        out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--asked",
                              str(args.asked), "--way", way], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        print(json.loads(out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
