"""Acceptance check on real data: `growth serve` answers every endpoint, and its answers equal
what `growth recommend`, `growth score` and `growth audience` write for the same households
and models.

    .venv/bin/python benchmarks/serve_check.py [--data DIR] [--households 40] [--campaign 18]

Run after `make run` (it serves the newest bundle, growthloop:latest, on a free loopback
port and stops it). Batch files are computed in this process as of the bundle's date with
the versions the point-in-time rule picks, which are the bundled champions after `make run`.
Exits 1 and lists the differences when anything disagrees.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ROOT  # noqa: E402
from bench_serve import READY_TIMEOUT_S  # noqa: E402

from features import schema as s  # noqa: E402
from features.dataset import load_dataset  # noqa: E402
from serving.config import load_serving_config  # noqa: E402
from serving.serve import serve_command  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402
from training.propensity.score import score_to_file  # noqa: E402
from training.two_tower.run import recommend_to_file  # noqa: E402


def compare_recommend(url: str, ds, as_of, households: list[int], tmp: Path) -> list[str]:
    problems = []
    for exclude in (False, True):
        batch = recommend_to_file(ds, as_of, 20, tmp / f"recs_{exclude}.parquet", households,
                                  exclude_purchased=exclude).frame
        for household, expected in batch.groupby(s.HOUSEHOLD_ID):
            got = httpx.post(f"{url}/recommend", json={
                "household_id": int(household), "k": 20, "exclude_purchased": exclude}).json()
            items = pd.DataFrame(got["items"])
            same = (items[s.PRODUCT_ID].tolist() == expected[s.PRODUCT_ID].tolist()
                    and items["reason"].tolist() == expected["reason"].tolist()
                    and np.allclose(items["score"], expected["score"], rtol=1e-6))
            if not same:
                problems.append(f"/recommend household {household} exclude_purchased={exclude}")
    return problems


def compare_propensity(url: str, ds, model: str, as_of, campaign: int | None,
                       tmp: Path) -> list[str]:
    batch, version, *_ = score_to_file(ds, model, tmp / f"{model}.parquet",
                                      None if campaign else as_of, campaign_id=campaign)
    body = {"model": model, "household_ids": batch[s.HOUSEHOLD_ID].tolist()}
    if campaign:
        body["campaign_id"] = campaign
    got = httpx.post(f"{url}/propensity", json=body, timeout=60).json()
    scores = pd.DataFrame(got["scores"])
    problems = []
    if got["model_version"] != version:
        problems.append(f"/propensity {model}: version {got['model_version']} != {version}")
    if not (np.allclose(scores["probability"], batch["score"], rtol=1e-6)
            and scores["decile"].tolist() == batch["decile"].tolist()):
        problems.append(f"/propensity {model}: scores or deciles differ from growth score")
    print(f"/propensity {model}: {len(batch):,} households compared (version {version})")
    return problems


def compare_audience(cmd, model: str, campaign: int | None, tmp: Path) -> list[str]:
    """``growth audience`` (no server) writes the CSV ``POST /audience`` answers."""
    body = {"model": model, "top_n": 1000, "control_fraction": 0.1, "seed": 7,
            "format": "csv", **({"campaign_id": campaign} if campaign else {})}
    served = httpx.post(f"{cmd.url}/audience", json=body, timeout=60).text
    out = tmp / f"audience_{model}.csv"
    args = [sys.executable, "-m", "growth", "audience", model, "--top-n", "1000",
            "--control-fraction", "0.1", "--seed", "7", "--bundle", cmd.bundle.tag,
            "--out", str(out)] + (["--campaign-id", str(campaign)] if campaign else [])
    res = subprocess.run(args, env=cmd.env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    print(f"growth audience {model}: {len(served.splitlines()) - 1:,} households compared")
    if res.returncode != 0:
        return [f"growth audience {model}: exit {res.returncode}: {res.stderr.strip()}"]
    return [] if out.read_text() == served else [
        f"growth audience {model}: its CSV differs from POST /audience's"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--households", type=int, default=40)
    ap.add_argument("--campaign", type=int, default=18)
    args = ap.parse_args()
    cmd = serve_command(load_serving_config(), port=free_port())
    as_of = cmd.bundle.as_of
    work = Path(tempfile.mkdtemp(prefix="serve_check_"))
    server = ServerProcess(cmd.argv, work / "bentoml.log", cmd.env, ROOT)
    problems: list[str] = []
    try:
        ds = load_dataset(args.data, quarantine_dir=work / "quarantine")
        server.wait_ready(f"{cmd.url}/readyz", READY_TIMEOUT_S)
        for path in ("/healthz", "/readyz", "/metrics", "/docs.json"):
            status = httpx.get(f"{cmd.url}{path}").status_code
            print(f"GET {path}: {status}")
            problems += [f"GET {path}: {status}"] if status != 200 else []
        rng = np.random.default_rng(0)
        households = ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID} FROM {s.TRANSACTIONS} "
                           f"ORDER BY 1")[s.HOUSEHOLD_ID].to_numpy()
        sample = sorted(rng.choice(households, args.households, replace=False).tolist())
        problems += compare_recommend(cmd.url, ds, as_of, sample + [10**9], work)
        print(f"/recommend: {len(sample) + 1} households x 2 lists compared")
        for model, campaign in (("churn", None), ("coupon", args.campaign)):
            problems += compare_propensity(cmd.url, ds, model, as_of, campaign, work)
        product = httpx.post(f"{cmd.url}/recommend", json={"k": 1}).json()["items"][0]
        for path, body in (("/similar_items", {"product_id": product[s.PRODUCT_ID], "k": 10}),
                           ("/audience", {"model": "churn", "top_n": 500,
                                          "control_fraction": 0.1, "seed": 7}),
                           ("/audience", {"model": "coupon", "campaign_id": args.campaign,
                                          "top_n": 500, "format": "csv"})):
            status = httpx.post(f"{cmd.url}{path}", json=body, timeout=60).status_code
            print(f"POST {path} {body.get('model', '')}: {status}")
            problems += [f"POST {path}: {status}"] if status != 200 else []
        problems += compare_audience(cmd, "churn", None, work)
        problems += compare_audience(cmd, "coupon", args.campaign, work)
    finally:
        server.stop()
    for p in problems:
        print("DIFFERS:", p)
    print("all answers match" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
