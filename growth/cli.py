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
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")

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
