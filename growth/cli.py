"""``growth``: the command line. Each subcommand parses options and calls one typed function.

    growth run                      # the main job on the embedded data
    growth data validate [--data DIR]
    growth data synth --households 2000 --out data/synth
    growth features build --as-of 2017-11-06 --out artifacts/features/2017-11-06
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from features.config import DataConfig, load_data_config
from features.sources import GrowthError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="growthloop: transactions -> recommenders, propensity models, audiences.")
data_app = typer.Typer(no_args_is_help=True, help="Validate and generate data.")
features_app = typer.Typer(no_args_is_help=True, help="Point-in-time feature tables.")
train_app = typer.Typer(no_args_is_help=True, help="Train, evaluate, register models.")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")

# Logs and CI are not terminals; keep tables readable there instead of 80 columns wide.
console = Console() if sys.stdout.isatty() else Console(width=140)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=140)

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Folder of parquet/CSV files in the canonical schema "
                   "[default: the embedded Complete Journey].")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--data-config", help="Data config YAML [default: configs/data.yaml].")]
QuarantineOpt = Annotated[Path | None, typer.Option(
    "--quarantine-dir", help="Where rejected rows go [default: from the data config].")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config field: key=value (repeatable).")]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}") from exc


AsOfOpt = Annotated[str, typer.Option("--as-of", help="Feature date YYYY-MM-DD: nothing on or "
                                                     "after it is read.")]


def _load(data: Path | None, data_config: Path | None, quarantine_dir: Path | None,
          overrides: list[str] | None = None):
    """The validated dataset and the data config (one loading path for every command)."""
    from features.dataset import load_dataset

    cfg = load_data_config(data_config, overrides)
    return load_dataset(data, cfg, quarantine_dir), cfg


def print_report(report) -> None:
    table = Table(title=f"validation (quarantine: {report.quarantine_dir}/)")
    for col in ("table", "input rows", "clean rows", "quarantined", "reasons", "kept, flagged"):
        table.add_column(col, justify="right" if "rows" in col or col == "quarantined" else "left")
    for t in report.tables.values():
        reasons = ", ".join(f"{k}={v:,}" for k, v in t.quarantined.items()) or "-"
        flags = ", ".join(f"{k}={v:,}" for k, v in t.warnings.items()) or "-"
        table.add_row(t.table, f"{t.input_rows:,}", f"{t.clean_rows:,}",
                      f"{t.quarantined_rows:,}", reasons, flags)
    console.print(table)
    for t in report.tables.values():
        if t.ignored_columns:
            console.print(f"[dim]{t.table}: ignored columns outside the contract: "
                          f"{', '.join(t.ignored_columns)}[/dim]")


@data_app.command("validate")
def data_validate(data: DataOpt = None, data_config: ConfigOpt = None,
                  quarantine_dir: QuarantineOpt = None) -> None:
    """Check a data source against the contract; rejected rows go to the quarantine folder."""
    ds, _ = _load(data, data_config, quarantine_dir)
    console.print(f"source: {ds.source}")
    print_report(ds.report)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the tables to.")],
    households: Annotated[int, typer.Option(min=1)] = 2000,
    products: Annotated[int, typer.Option(min=10)] = 5000,
    weeks: Annotated[int, typer.Option(min=1)] = 53,
    seed: int = 0,
) -> None:
    """Write a deterministic synthetic data folder in the canonical schema."""
    from features.synth import generate

    counts = generate(out, households=households, products=products, weeks=weeks, seed=seed)
    for table, n in counts.items():
        console.print(f"{table:>22}: {n:,} rows")
    console.print(f"written to {out}")


@features_app.command("build")
def features_build(
    out: Annotated[Path, typer.Option("--out", help="Folder for households.parquet and "
                                                    "products.parquet.")],
    as_of: AsOfOpt,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    quarantine_dir: QuarantineOpt = None,
) -> None:
    """Build point-in-time household and product features as of a date."""
    from features.build import build_features

    ds, cfg = _load(data, data_config, quarantine_dir)
    result = build_features(ds, _date(as_of), out, cfg)
    console.print(f"households: {result.household_rows:,} rows x {result.household_columns} "
                  f"columns -> {result.households}")
    console.print(f"products:   {result.product_rows:,} rows x {result.product_columns} "
                  f"columns -> {result.products}")


@train_app.command("two-tower")
def train_two_tower_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Training data ends the day "
                                                              "before; test starts here.")] = None,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Two-tower config YAML [default: configs/two_tower.yaml].")] = None,
    overrides: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last epoch checkpoint.")] = False,
    reports: Annotated[Path, typer.Option(help="Where metrics.json goes.")] = Path("reports"),
    checkpoints: Annotated[Path, typer.Option(help="Checkpoint folder.")] = Path(
        "artifacts/two_tower/checkpoints"),
) -> None:
    """Train the two-tower recommender; log to MLflow; register and gate the version."""
    from training.two_tower.config import load_two_tower_config
    from training.two_tower.run import train_two_tower

    sets = list(overrides or []) + ([f"as_of={_date(as_of)}"] if as_of else [])
    cfg = load_two_tower_config(config, sets)
    ds, _ = _load(data, data_config, None)
    summary = train_two_tower(ds, cfg, checkpoints, reports / "two_tower", resume=resume)
    table = Table(title=f"two_tower v{summary['version']} as of {summary['as_of']} "
                        f"({summary['promotion']})")
    for col in ("system", "recall@20", "recall@20 new", "NDCG@20", "hit@20", "coverage@20"):
        table.add_column(col)
    for name, m in summary["metrics"].items():
        table.add_row(name, f"{m['recall_all_at_20']:.4f}", f"{m['recall_new_at_20']:.4f}",
                      f"{m['ndcg_all_at_20']:.4f}", f"{m['hit_rate_all_at_20']:.4f}",
                      f"{m['catalog_coverage_at_20']:.3f}")
    console.print(table)
    console.print(f"training {summary['train_seconds']:.0f} s, best epoch "
                  f"{summary['best_epoch']}; metrics in {reports / 'two_tower' / 'metrics.json'}")


@app.command("recommend")
def recommend_cmd(
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    k: Annotated[int, typer.Option(help="Products per household (1..200).")] = 20,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    household_ids: Annotated[str | None, typer.Option(
        help="Comma-separated household ids [default: every household active before "
             "--as-of].")] = None,
    exclude_purchased: Annotated[bool, typer.Option(
        help="Only products the household has never bought.")] = False,
) -> None:
    """Batch recommendations as of a date, with the model version the PIT rule picks."""
    from training.two_tower.run import recommend_to_file

    ids = None
    if household_ids:
        try:
            ids = [int(x) for x in household_ids.split(",") if x.strip()]
        except ValueError as exc:
            raise typer.BadParameter("--household-ids expects integers like 1,2,3") from exc
    ds, _ = _load(data, data_config, None)
    frame = recommend_to_file(ds, _date(as_of), k, out, ids, exclude_purchased)
    console.print(f"{frame['household_id'].nunique():,} households x {k} -> {out}")


@app.command("run")
def run(
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where artifacts go.")] = Path("artifacts"),
) -> None:
    """The main job: validate the data, build features at the standard dates, summarise."""
    from growth.pipeline import run_main_job

    cfg: DataConfig = load_data_config(data_config)
    run_main_job(data, cfg, out, console)


def main() -> None:
    """Console entry point: user errors print one clear line and exit 2, not a traceback."""
    try:
        app()
    except (GrowthError, ValidationError, FileNotFoundError) as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
