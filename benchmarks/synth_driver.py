"""Child process for bench_features.py: generate synthetic data, report time and peak RSS."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import peak_rss_mib  # noqa: E402

from features import schema as s  # noqa: E402
from features.synth import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, required=True)
    ap.add_argument("--products", type=int, required=True)
    ap.add_argument("--weeks", type=int, default=53)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    counts = generate(args.out, households=args.households, products=args.products,
                      weeks=args.weeks, seed=0)
    print(json.dumps({"transaction_lines": counts[s.TRANSACTIONS],
                      "generate_s": round(time.perf_counter() - t0, 2),
                      "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
