"""The main job behind ``growth run`` / ``make run``: one pass over the embedded data, or over
a folder given with ``--data`` (whose standard dates are derived from its span when the data
config's do not fit it: ``features.config.fit_dates``)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from features import schema as s
from features.build import build_features
from features.config import DataConfig, fit_dates
from features.dataset import Dataset, load_dataset
from features.labels import (
    CHURNED,
    IS_NEW,
    IS_TEST,
    REDEEMED,
    churn_labels,
    coupon_pairs,
    recommender_split,
)
from features.sources import EMBEDDED_SOURCE, GrowthError


def dates_for(ds: Dataset, cfg: DataConfig, console: Console,
              report: tuple[str, ...] | None = None) -> DataConfig:
    """``cfg`` with its standard dates fitted to the data of ``ds``; prints each change (of
    the fields in ``report``, when given: those the command uses)."""
    first, last = (ts.date() for ts in ds.time_range())
    fitted, changes = fit_dates(cfg, first, last)
    print_dates([line for name, line in changes.items() if report is None or name in report],
                console)
    return fitted


def print_dates(lines: list[str], console: Console) -> None:
    """The standard dates fitted to the data (``fit_dates``' lines), and how to pin them."""
    for line in lines:
        console.print(f"dates: {line}", highlight=False)
    if lines:
        console.print("dates: pin them with --data-config FILE (see configs/data.yaml)",
                      highlight=False)


def run_main_job(data: Path | None, cfg: DataConfig, out: Path, console: Console) -> dict:
    """Validate, build features at the standard as-of dates and print a summary, train the
    two-tower, churn and coupon models, and bundle the champions for serving."""
    from growth.display import print_report

    started = time.perf_counter()
    ds = load_dataset(data, cfg)
    console.print(f"source: {ds.source}")
    print_report(ds.report)
    first, last = ds.time_range()
    console.print(f"transactions from {first} to {last}")
    cfg = dates_for(ds, cfg, console)

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
    result["two_tower"] = _train_two_tower(ds, cfg, out, console)

    # --- churn and coupon propensity models at the standard settings (issue 4) ---
    from training.propensity.run import train_standard_models

    result.update(train_standard_models(ds, cfg, Path("reports"), console))

    # --- the serving bundle: @champion models and the online snapshot (issue 5) ---
    from serving.bundle import bundle_after_run

    for line in bundle_after_run(ds, say=lambda line: console.print(line, highlight=False)):
        console.print(line, highlight=False)
    console.print(f"main job done in {time.perf_counter() - started:.1f} s")
    return result


def _train_two_tower(ds, cfg: DataConfig, out: Path, console: Console) -> dict | None:
    """The two-tower at the standard settings (configs/two_tower.yaml, as of the
    recommender date), registered so that ``growth recommend`` works right after; skipped,
    with the reason, when the data cannot support it."""
    from training.two_tower.config import load_two_tower_config
    from training.two_tower.run import describe_seconds, train_two_tower

    tt_cfg = load_two_tower_config(overrides=[f"as_of={cfg.recommender_as_of}"])
    console.print(f"training the two-tower recommender as of {tt_cfg.as_of} ...")
    try:
        summary = train_two_tower(ds, tt_cfg, out / "two_tower" / "checkpoints",
                                  Path("reports") / "two_tower",
                                  say=lambda line: console.print(line, highlight=False))
    except GrowthError as exc:  # the data is too short or too sparse for its windows
        console.print(f"two-tower: skipped ({exc})")
        return None
    blend = summary["metrics"]["two_tower_blend"]
    # the version is found by the data it was trained on: the suggestion names that data
    data = "" if ds.source == EMBEDDED_SOURCE else f" --data {ds.source}"
    console.print(f"two_tower v{summary['version']} ({summary['promotion']}): recall@20 "
                  f"{blend['recall_all_at_20']:.4f} all, "
                  f"{blend['recall_new_at_20_exclude_purchased']:.4f} new (exclude purchased); "
                  f"{describe_seconds(summary['seconds'])}; "
                  f"try `growth recommend --as-of {tt_cfg.as_of}{data} --out recs.parquet`")
    return summary
