"""The main job behind ``growth run`` / ``make run``: one pass over the embedded data."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features import schema as s
from features.build import build_features
from features.config import DataConfig
from features.dataset import load_dataset
from features.labels import (
    CHURNED,
    IS_NEW,
    IS_TEST,
    REDEEMED,
    churn_labels,
    coupon_pairs,
    recommender_split,
)


def run_main_job(data: Path | None, cfg: DataConfig, out: Path, console: Console) -> dict:
    """Validate, build features at the standard as-of dates, and print a summary."""
    from growth.cli import print_report

    started = time.perf_counter()
    ds = load_dataset(data, cfg)
    console.print(f"source: {ds.source}")
    print_report(ds.report)
    first, last = ds.time_range()
    console.print(f"transactions from {first} to {last}")

    summary = Table(title="features and labels at the standard dates")
    for col in ("use", "as of", "households", "products", "label summary", "written to"):
        summary.add_column(col)
    result: dict = {}
    for use, as_of in (("churn", cfg.churn_as_of), ("recommender", cfg.recommender_as_of)):
        build = build_features(ds, as_of, out / "features" / as_of.isoformat(), cfg)
        if use == "churn" and last.date() >= as_of + timedelta(days=cfg.churn_horizon_days - 1):
            labels = churn_labels(ds, as_of, cfg.churn_horizon_days)
            note = (f"{len(labels):,} households, churn rate {labels[CHURNED].mean():.1%} "
                    f"({cfg.churn_horizon_days}-day horizon)")
        elif use == "recommender":
            split = recommender_split(ds, as_of)
            note = (f"{len(split.households):,} evaluated households, "
                    f"{len(split.targets):,} test pairs, "
                    f"{split.targets[IS_NEW].mean():.0%} new to the household")
        else:
            note = "data ends before the label window"
        summary.add_row(use, as_of.isoformat(), f"{build.household_rows:,}",
                        f"{build.product_rows:,}", note, str(build.households.parent))
        result[use] = build
    if all(ds.has(t) for t in (s.CAMPAIGNS, s.CAMPAIGN_DESCRIPTIONS, s.COUPON_REDEMPTIONS)):
        pairs = coupon_pairs(ds, cfg.coupon_split_date)
        train, test = pairs[pairs[IS_TEST] == 0], pairs[pairs[IS_TEST] == 1]
        summary.add_row("coupon", f"split {cfg.coupon_split_date}", "-", "-",
                        f"{len(train):,} train pairs ({train[REDEEMED].mean():.1%} redeemed), "
                        f"{len(test):,} test pairs ({test[REDEEMED].mean():.1%})", "-")
    console.print(summary)
    console.print(f"main job done in {time.perf_counter() - started:.1f} s")
    return result
