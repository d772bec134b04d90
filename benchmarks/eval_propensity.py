"""Score a file written by ``growth score`` against the labels it is judged on.

    growth score churn --as-of 2017-11-06 --out churn.parquet
    growth score coupon --as-of 2017-08-01 --out coupon.parquet
    .venv/bin/python benchmarks/eval_propensity.py churn.parquet coupon.parquet [--data DIR]
        [--bootstrap N [--seed S] [--target METRIC=VALUE ...]]

churn: label = no purchase in [as_of, as_of + horizon) (horizon from the file's metadata);
coupon: label = redeemed any coupon of the campaign (campaigns starting on or after as_of,
all their redemptions), for the rows the file marks ``received`` (the recipients; the other
households scored for a campaign have no label). Prints rows, positive rate, ROC-AUC,
PR-AUC, Brier, ECE (10 equal-width bins), lift and capture at the top 10%, and the model
version the file records.
With ``--bootstrap N``: 95% percentile intervals of ROC-AUC, PR-AUC and ECE over N resamples
of households (a household's rows across campaigns stay together), and for each
``--target`` the share of resamples that meet it (ECE: at most the value).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features import schema as s
from features.dataset import load_dataset
from features.labels import CHURNED, IS_TEST, REDEEMED, churn_labels, coupon_pairs
from training.propensity.evaluate import INTERVAL_METRICS, binary_report, bootstrap_intervals
from training.propensity.score import RECEIVED


def evaluate_file(ds, path: Path, bootstrap: int = 0, seed: int = 0,
                  targets: dict[str, float] | None = None) -> dict:
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items()
            if k.decode() in ("model_name", "model_version", "data_end", "as_of",
                              "horizon_days")}
    as_of = date.fromisoformat(meta["as_of"])
    scores = pd.read_parquet(path)
    if meta["model_name"] == "churn":
        labels = churn_labels(ds, as_of, int(meta["horizon_days"]))
        joined, label = scores.merge(labels, on=s.HOUSEHOLD_ID, how="left"), CHURNED
    else:  # only the campaign's recipients have a label
        if RECEIVED not in scores.columns:
            raise SystemExit(f"{path}: no {RECEIVED!r} column; score it again with growth score")
        scores = scores[scores[RECEIVED] == 1]
        pairs = coupon_pairs(ds, as_of)
        pairs = pairs[pairs[IS_TEST] == 1][[s.HOUSEHOLD_ID, s.CAMPAIGN_ID, REDEEMED]]
        joined = scores.merge(pairs, on=[s.HOUSEHOLD_ID, s.CAMPAIGN_ID], how="left")
        label = REDEEMED
    if joined[label].isna().any():
        raise SystemExit(f"{path}: {int(joined[label].isna().sum())} scored rows have no label")
    y, p = joined[label].to_numpy(), joined["score"].to_numpy()
    out = {**meta, **{k: round(v, 5) for k, v in binary_report(y, p).items()}}
    if bootstrap:
        intervals = bootstrap_intervals(y, p, joined[s.HOUSEHOLD_ID].to_numpy(), bootstrap,
                                        seed, targets=targets)
        out["bootstrap"] = {"resamples": bootstrap, "unit": s.HOUSEHOLD_ID, **{
            metric: {k: round(v, 5) for k, v in values.items()}
            for metric, values in intervals.items()}}
    return out


def target(text: str) -> tuple[str, float]:
    metric, _, value = text.partition("=")
    if metric not in INTERVAL_METRICS or not value:
        raise argparse.ArgumentTypeError(f"--target {text!r}: expected METRIC=VALUE with "
                                         f"METRIC one of {', '.join(INTERVAL_METRICS)}")
    try:
        return metric, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--target {text!r}: {value!r} is not a number") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder the files were scored on [default: embedded]")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="resamples of households for 95%% intervals [default: none]")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed [default: 0]")
    parser.add_argument("--target", type=target, action="append", default=[],
                        metavar="METRIC=VALUE", help="e.g. pr_auc=0.5 (repeatable)")
    args = parser.parse_args()
    quarantine = Path(tempfile.mkdtemp(prefix="growth_quarantine_"))  # private to this run
    ds = load_dataset(args.data, quarantine_dir=quarantine)
    for path in args.files:
        print(path, json.dumps(evaluate_file(ds, path, args.bootstrap, args.seed,
                                             dict(args.target))))


if __name__ == "__main__":
    main()
