"""Peak memory and stage times of ``growth train two-tower`` on a synthetic retailer, for
this checkout and any others given (the reference, measured in the same run).

    .venv/bin/python benchmarks/two_tower_memory.py --households 10000 --products 20000 \
        [--epochs 1] [--code /tmp/old-checkout ...]

Generates the data once, then trains each checkout's code on it in its own process (its
own MLflow SQLite store and reports folder under a temporary folder) and reports the
process's peak resident memory, wall time, the stage times ``metrics.json`` records and
the blend's recall@20, and whether every metric agrees with the first checkout's.
``--epochs`` shortens the tower's training, which does not change the memory of the other
stages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ROOT  # noqa: E402

from features.synth import generate  # noqa: E402

# run the CLI of the checkout in the working folder (sys.path[0] is '' with -c)
CLI = "import sys; sys.argv[0] = 'growth'; import growth.cli; growth.cli.app()"


def train(code: Path, data: Path, work: Path, epochs: int) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
           "BENTOML_HOME": str(work / "bentoml")}
    cmd = [sys.executable, "-c", CLI, "train", "two-tower", "--data", str(data),
           "--set", f"epochs={epochs}", "--reports", str(work / "reports"),
           "--checkpoints", str(work / "checkpoints")]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=code,
                            capture_output=True, text=True).stdout.strip()
    started = time.perf_counter()
    with open(work / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{code}: training failed; see {work / 'log.txt'}")
    summary = json.loads((work / "reports" / "two_tower" / "metrics.json").read_text())
    return {"code": str(code), "commit": commit,
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "wall_s": round(time.perf_counter() - started, 1), "seconds": summary["seconds"],
            "recall_all_at_20": summary["metrics"]["two_tower_blend"]["recall_all_at_20"],
            "metrics": summary["metrics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=53)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--code", type=Path, action="append", default=[],
                        help="another checkout to measure too (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data, households=args.households, products=args.products, weeks=args.weeks,
                 seed=0)
        print(f"synthetic data: {args.households:,} households, {args.products:,} products, "
              f"{args.weeks} weeks; epochs={args.epochs}", flush=True)
        results = []
        for i, code in enumerate([ROOT, *args.code]):
            work = Path(tmp) / f"run{i}"
            work.mkdir()
            result = train(code.resolve(), data, work, args.epochs)
            results.append(result)
            sec = result["seconds"]
            print(f"{result['commit']} ({result['code']}): peak RSS {result['peak_rss_gib']} "
                  f"GiB, wall {result['wall_s']} s (examples and epochs "
                  f"{sec['prepare_and_epochs']} s, blends {sec['blends']} s, evaluation "
                  f"{sec['evaluation']} s); blend recall@20 {result['recall_all_at_20']:.4f}; "
                  f"metrics equal to the first: {result['metrics'] == results[0]['metrics']}",
                  flush=True)


if __name__ == "__main__":
    main()
