"""Feature-build benchmark: the full Complete Journey at one as-of date, and synthetic data
at scale (generation, then validation + features), each phase in its own process so that
its peak memory is its own.

    .venv/bin/python benchmarks/bench_features.py                  # full run (~10 min)
    .venv/bin/python benchmarks/bench_features.py --households 5000 --products 5000
Results: benchmarks/out/features.json and a markdown table on stdout (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ROOT, machine, measure  # noqa: E402

PY = sys.executable
DRIVER = str(ROOT / "benchmarks" / "feature_driver.py")
SYNTH_DRIVER = str(ROOT / "benchmarks" / "synth_driver.py")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=100_000)
    ap.add_argument("--products", type=int, default=50_000)
    ap.add_argument("--weeks", type=int, default=53)
    ap.add_argument("--as-of", default="2017-11-06")
    ap.add_argument("--skip-synth", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_features_"))
    rows = []
    try:
        cj = measure([PY, DRIVER, "--as-of", args.as_of, "--out", str(work / "cj")])
        rows.append({"case": f"Complete Journey, as of {args.as_of}", **cj})
        if not args.skip_synth:
            synth_dir = work / "synth"
            gen = measure([PY, SYNTH_DRIVER, "--households", str(args.households),
                           "--products", str(args.products), "--weeks", str(args.weeks),
                           "--out", str(synth_dir)])
            rows.append({"case": f"synthetic generate {args.households:,} households", **gen})
            feat = measure([PY, DRIVER, "--data", str(synth_dir), "--as-of", args.as_of,
                            "--out", str(work / "synth_out")])
            rows.append({"case": f"synthetic validate + features, {args.households:,} "
                                 "households", **feat})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "features.json").write_text(json.dumps({"machine": machine(), "rows": rows},
                                                  indent=2))
    print(f"machine: {machine()}")
    print("| case | lines | validate s | features s | gen s | process wall s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['case']} | {r.get('transaction_lines', 0):,} | {r.get('validate_s', '-')} "
              f"| {r.get('features_s', '-')} | {r.get('generate_s', '-')} | {r['wall_s']} "
              f"| {r['peak_rss_mib']} |")


if __name__ == "__main__":
    main()
