"""``growth``: the command line. Each subcommand parses options and calls one typed function.

    growth run                      # the main job on the embedded data
    growth data validate [--data DIR]
    growth data synth --households 2000 --out data/synth
    growth features build --as-of 2017-11-06 --out artifacts/features/2017-11-06
    growth tune two-tower --trials 20 [--workers 2] [--storage URL --study NAME]
    growth models list [NAME] | promote NAME VERSION | rollback NAME
    growth compare [MODEL] [--format csv]
    growth audience coupon --campaign-id 18 --top-n 5000 --control-fraction 0.1 --out c18.csv
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from features.config import FIRST_DAY, LAST_DAY, DataConfig, load_data_config
from features.schema import MAX_ID, parse_id
from features.sources import GrowthError
from growth.display import (
    console,
    err_console,
    print_comparison,
    print_propensity,
    print_readout,
    print_report,
)

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="growthloop: transactions -> recommenders, propensity models, audiences.")
data_app = typer.Typer(no_args_is_help=True, help="Validate and generate data.")
features_app = typer.Typer(no_args_is_help=True, help="Point-in-time feature tables.")
train_app = typer.Typer(no_args_is_help=True, help="Train, evaluate, register models.")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Folder of parquet/CSV files in the canonical schema "
                   "(default: the embedded Complete Journey).")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--data-config", help="Data config YAML (default: configs/data.yaml).")]
QuarantineOpt = Annotated[Path | None, typer.Option(
    "--quarantine-dir", help="Where rejected rows go (default: from the data config).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config field: key=value (repeatable).")]


def _date(value: str, option: str = "--as-of") -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}",
                                 param_hint=option) from exc
    if not FIRST_DAY <= day <= LAST_DAY:
        raise typer.BadParameter(f"expected a date from {FIRST_DAY} to {LAST_DAY}, got {value}",
                                 param_hint=option)
    return day


def _with_options(overrides: list[str] | None, *options: tuple[str, object, str]) -> list[str]:
    """``--set`` pairs plus ``field=value`` for each (option, value, field) given; an option
    and a ``--set`` of the same field is an error rather than one silently winning."""
    sets = list(overrides or [])
    named = {pair.split("=", 1)[0].strip() for pair in sets}
    for option, value, field in options:
        if value is None:
            continue
        if field in named:
            raise typer.BadParameter(f"--set {field}=... sets the same setting; give one",
                                     param_hint=option)
        sets.append(f"{field}={_date(value, option) if isinstance(value, str) else value}")
    return sets


def _out_file(path: Path | None, option: str, *suffixes: str) -> None:
    """Refuse, before any work, an output that is a folder, has another file type (a
    parquet file named .csv would mislead whoever opens it) or cannot be written: a file is
    created and removed in the nearest existing folder of its path (where the folders it
    needs will be made), which os.access cannot tell for root (e.g. /sys, /proc)."""
    import os
    import tempfile

    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise GrowthError(f"{option} {path}: expected a file name ending in "
                          f"{' or '.join(suffixes)}")
    if path.is_dir():
        raise GrowthError(f"{option} {path} is a folder; expected a file")
    folder = next(p for p in path.absolute().parents if p.exists())
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".growth-check-"):
            pass
    except OSError as exc:
        raise GrowthError(f"{option} {path}: cannot write into {folder} ({exc.strerror})"
                          ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise GrowthError(f"{option} {path}: the file is read-only")


def _household_ids(value: str | None) -> list[int] | None:
    """``"1,2,3"`` -> [1, 2, 3]; None when not given; a clear error for anything else."""
    if value is None:
        return None
    texts = [x for x in value.split(",") if x.strip()]
    if not texts:
        raise typer.BadParameter("no household id given", param_hint="--household-ids")
    ids = [parse_id(x) for x in texts]
    if None in ids:
        raise typer.BadParameter(f"expected integers in 0..{MAX_ID} like 1,2,3, got "
                                 f"{texts[ids.index(None)].strip()!r}",
                                 param_hint="--household-ids")
    return ids


AsOfOpt = Annotated[str, typer.Option("--as-of", help="Feature date YYYY-MM-DD: nothing on or "
                                                     "after it is read.")]


def _load(data: Path | None, data_config: Path | None, quarantine_dir: Path | None,
          overrides: list[str] | None = None):
    """The validated dataset and the data config (one loading path for every command)."""
    from features.dataset import load_dataset

    cfg = load_data_config(data_config, overrides)
    return load_dataset(data, cfg, quarantine_dir), cfg


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
    households: int = 2000,
    products: int = 5000,
    weeks: int = 53,
    seed: int = 0,
) -> None:
    """Write a deterministic synthetic data folder in the canonical schema."""
    # the minimum of each count is checked by features.synth.generate, their one source
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

    day = _date(as_of)
    ds, cfg = _load(data, data_config, quarantine_dir)
    ds.check_as_of(day)
    result = build_features(ds, day, out, cfg)
    console.print(f"households: {result.household_rows:,} rows x {result.household_columns} "
                  f"columns -> {result.households}")
    console.print(f"products:   {result.product_rows:,} rows x {result.product_columns} "
                  f"columns -> {result.products}")


@train_app.command("two_tower", hidden=True)  # the registry's spelling works too
@train_app.command("two-tower")
def train_two_tower_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Training data ends the day "
                                                              "before; test starts here.")] = None,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Two-tower config YAML (default: configs/two_tower.yaml).")] = None,
    overrides: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last epoch checkpoint.")] = False,
    reports: Annotated[Path, typer.Option(help="Where metrics.json goes.")] = Path("reports"),
    checkpoints: Annotated[Path, typer.Option(help="Checkpoint folder.")] = Path(
        "artifacts/two_tower/checkpoints"),
) -> None:
    """Train the two-tower recommender; log to MLflow; register and gate the version."""
    from training.two_tower.config import load_two_tower_config
    from training.two_tower.run import describe_seconds, train_two_tower

    sets = _with_options(overrides, ("--as-of", as_of, "as_of"))
    load_two_tower_config(config, sets)  # a bad option fails before the data loads
    ds, data_cfg = _load(data, data_config, None)
    cfg = load_two_tower_config(config, _with_standard_dates("two_tower", ds, data_cfg, sets,
                                                             config))
    console.print(f"training the two-tower recommender as of {cfg.as_of} ...")
    summary = train_two_tower(ds, cfg, checkpoints, reports / "two_tower", resume=resume,
                              say=lambda line: console.print(line, highlight=False))
    table = Table(title=f"two_tower v{summary['version']} as of {summary['as_of']} "
                        f"({summary['promotion']})")
    for col in ("system", "recall@20", "recall@20 new", "NDCG@20", "hit@20", "coverage@20"):
        table.add_column(col)
    for name, m in summary["metrics"].items():
        table.add_row(name, f"{m['recall_all_at_20']:.4f}", f"{m['recall_new_at_20']:.4f}",
                      f"{m['ndcg_all_at_20']:.4f}", f"{m['hit_rate_all_at_20']:.4f}",
                      f"{m['catalog_coverage_at_20']:.3f}")
    console.print(table)
    console.print(f"{describe_seconds(summary['seconds'])}; best epoch "
                  f"{summary['best_epoch']}; metrics in {reports / 'two_tower' / 'metrics.json'}")


def _with_standard_dates(model: str, ds, data_cfg, sets: list[str], config: Path | None
                         ) -> list[str]:
    """``sets`` plus the model's dates that neither an option nor ``--set`` gives, from the
    data config fitted to the data (printed when fitted), as ``growth run`` trains; a
    ``--config`` file's own dates stand."""
    from features.config import standard_overrides
    from growth.pipeline import print_dates

    if config is not None:
        return sets
    sets, lines = standard_overrides(model, data_cfg, *(ts.date() for ts in ds.time_range()),
                                     sets)
    print_dates(lines, console)
    return sets


# --- churn and coupon propensity (training/propensity) ------------------------------------

PropensityConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="Model config YAML (default: configs/<model>.yaml).")]
DaskOpt = Annotated[str | None, typer.Option(
    "--dask-scheduler", help="Train through lightgbm.dask on the Dask cluster at this "
                             "address (e.g. tls://10.0.0.5:8786); Dask's protocol "
                             "pickles, so use only a cluster you trust.")]
ReportsOpt = Annotated[Path, typer.Option("--reports", help="metrics.json and plots go to "
                                                            "<reports>/<model>/.")]


@train_app.command("churn")
def train_churn_cmd(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Test labels start here; every "
                                              "training label window ends by it.")] = None,
    horizon_days: Annotated[int | None, typer.Option(min=1, help="Churn = no purchase in "
                                                     "this many days.")] = None,
    data: DataOpt = None, data_config: ConfigOpt = None, config: PropensityConfigOpt = None,
    overrides: SetOpt = None, dask_scheduler: DaskOpt = None,
    reports: ReportsOpt = Path("reports"),
) -> None:
    """Train the churn model; log to MLflow; register and gate the version."""
    from training.propensity.config import load_churn_config
    from training.propensity.run import train_churn

    sets = _with_options(overrides, ("--as-of", as_of, "as_of"),
                         ("--horizon-days", horizon_days, "horizon_days"))
    load_churn_config(config, sets)  # a bad option fails before the data loads
    ds, data_cfg = _load(data, data_config, None)
    cfg = load_churn_config(config, _with_standard_dates("churn", ds, data_cfg, sets, config))
    print_propensity(train_churn(ds, cfg, reports / "churn", data_cfg, dask_scheduler), reports)


@train_app.command("coupon")
def train_coupon_cmd(
    split_date: Annotated[str | None, typer.Option("--split-date", help="Campaigns starting "
                                                   "on or after it are the test set.")] = None,
    data: DataOpt = None, data_config: ConfigOpt = None, config: PropensityConfigOpt = None,
    overrides: SetOpt = None, dask_scheduler: DaskOpt = None,
    reports: ReportsOpt = Path("reports"),
) -> None:
    """Train the coupon-response model; log to MLflow; register and gate the version."""
    from training.propensity.config import load_coupon_config
    from training.propensity.run import train_coupon

    sets = _with_options(overrides, ("--split-date", split_date, "split_date"))
    load_coupon_config(config, sets)  # a bad option fails before the data loads
    ds, data_cfg = _load(data, data_config, None)
    cfg = load_coupon_config(config, _with_standard_dates("coupon", ds, data_cfg, sets,
                                                          config))
    print_propensity(train_coupon(ds, cfg, reports / "coupon", data_cfg, dask_scheduler),
                     reports)


@app.command("score")
def score_cmd(
    model: Annotated[str, typer.Argument(help="churn or coupon")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Scoring date (default: churn_as_of / coupon_split_date of the data "
                        "config); coupon without --campaign-id scores every campaign starting "
                        "on or after it. With --campaign-id, on or before the campaign's "
                        "start: it picks the model version only (the newest whose data end "
                        "by it).")] = None,
    campaign_id: Annotated[int | None, typer.Option(
        "--campaign-id", help="Coupon: score this campaign as of its start, for every "
                              "household with a purchase before it and its recipients "
                              "(column received).")] = None,
    horizon_days: Annotated[int | None, typer.Option(
        "--horizon-days", min=1, help="Churn: use a version trained with this horizon "
                                      "(default: the @champion's).")] = None,
    data: DataOpt = None, data_config: ConfigOpt = None,
) -> None:
    """Batch propensity scores, deciles and reason codes with the point-in-time version."""
    from features.schema import CAMPAIGN_ID
    from training import registry
    from training.propensity.score import score_to_file

    if model not in ("churn", "coupon"):
        raise typer.BadParameter(f"expected churn or coupon, got {model!r}", param_hint="MODEL")
    day = _date(as_of) if as_of else None
    _out_file(out, "--out", ".parquet")
    ds, data_cfg = _load(data, data_config, None)
    if day is None and campaign_id is None:  # the default date: the data config's, fitted
        from growth.pipeline import dates_for

        data_cfg = dates_for(ds, data_cfg, console, report=(
            "churn_as_of" if model == "churn" else "coupon_split_date",))
    rows, version, day, horizon = score_to_file(ds, model, out, day, campaign_id, data_cfg,
                                                horizon_days)
    if note := registry.set_aside_note(model, version):
        err_console.print(note, highlight=False)
    if model == "churn":
        console.print(f"churn v{version} ({horizon}-day horizon) as of "
                      f"{day}: {len(rows):,} rows -> {out}", highlight=False)
    elif campaign_id is not None:
        picked = (f" (the version for data ending by --as-of {as_of})"
                  if as_of and _date(as_of) != day else "")
        console.print(f"coupon v{version}{picked}, campaign {campaign_id} as of its start "
                      f"{day}: {len(rows):,} rows -> {out}", highlight=False)
    else:  # one version (data ending by day); each campaign's features as of its own start
        ids = rows[CAMPAIGN_ID].unique()
        console.print(f"coupon v{version}, {len(ids)} campaign(s) starting on or after {day} "
                      f"({', '.join(map(str, ids[:10]))}{', ...' if len(ids) > 10 else ''}), "
                      f"each as of its start: {len(rows):,} rows -> {out}")


AUDIENCE_OPTIONS = {"model": "MODEL", "campaign_id": "--campaign-id", "top_n": "--top-n",
                    "min_score": "--min-score", "control_fraction": "--control-fraction",
                    "exclude_household_ids": "--exclude", "seed": "--seed",
                    "max_days_since_last_purchase": "--max-days-since-purchase"}


def _audience_request(**fields):
    """The API's ``AudienceRequest`` (one set of rules), its errors named by CLI option."""
    from serving.schemas import AudienceRequest

    try:
        return AudienceRequest(**fields)
    except ValidationError as exc:
        problems = [f"{AUDIENCE_OPTIONS[str(e['loc'][0])]}: {e['msg']}" if e["loc"] else
                    _as_options(e["msg"].removeprefix("Value error, "))
                    for e in exc.errors()]
        raise GrowthError("; ".join(problems)) from None


def _as_options(text: str, fields: tuple[str, ...] = tuple(AUDIENCE_OPTIONS)) -> str:
    """An API message about an audience request, its ``fields`` named as the CLI's options."""
    import re

    words = re.compile(r"\b(" + "|".join(fields) + r")\b")
    return words.sub(lambda m: AUDIENCE_OPTIONS[m[1]], text)


@app.command("audience")
def audience_cmd(
    model: Annotated[str, typer.Argument(help="churn or coupon")],
    out: Annotated[Path, typer.Option("--out", help="File to write: .csv or .json, as POST "
                                                    "/audience answers in that format.")],
    campaign_id: Annotated[int | None, typer.Option(
        "--campaign-id", help="Coupon: the campaign (its audience as of its start).")] = None,
    top_n: Annotated[int | None, typer.Option(
        "--top-n", help="Take the n highest-scoring households.")] = None,
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Take households scoring at least this.")] = None,
    control_fraction: Annotated[float, typer.Option(
        "--control-fraction", help="Share held out at random, not to be contacted.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the control draw.")] = 0,
    max_days_since_purchase: Annotated[int | None, typer.Option(
        "--max-days-since-purchase", help="Leave out households whose last purchase lies "
                                          "more than this many days back (e.g. 56 for a churn "
                                          "audience: those not gone yet).")] = None,
    exclude: Annotated[Path | None, typer.Option(
        "--exclude", help="Never select these households: an earlier audience (.csv or "
                          ".json as written by --out), a CSV or parquet file with a "
                          "household_id column, or one id per line.")] = None,
    bundle: Annotated[str | None, typer.Option(help="Bundle tag or folder (default: "
                                               "growthloop:latest)")] = None,
) -> None:
    """A scored audience from the served bundle, without a server: what POST /audience gives."""
    from serving.audience import FORMATS, bundle_audience, read_household_ids, write_audience
    from serving.bundle import open_bundle
    from serving.config import load_serving_config, use_bentoml_home
    from serving.recommend import RequestError
    from serving.serve import check_bundle_ref

    _out_file(out, "--out", *FORMATS)
    fmt = FORMATS[out.suffix.lower()]
    request = _audience_request(
        model=model, campaign_id=campaign_id, top_n=top_n, min_score=min_score,
        control_fraction=control_fraction, seed=seed, format=fmt,
        max_days_since_last_purchase=max_days_since_purchase,
        exclude_household_ids=read_household_ids(exclude) if exclude else None)
    cfg = load_serving_config()
    use_bentoml_home(cfg)
    ref = bundle or f"{cfg.bundle_name}:latest"
    check_bundle_ref(ref)
    found = open_bundle(ref)
    try:
        audience = bundle_audience(found, request)
    except RequestError as exc:  # named by option, as the request's other errors are
        raise GrowthError(f"{AUDIENCE_OPTIONS[exc.field]}: {exc.message}") from exc
    write_audience(audience, fmt, out)
    campaign = f", campaign {campaign_id}" if campaign_id is not None else ""
    console.print(f"{model} v{audience.model_version} as of {audience.as_of}{campaign} "
                  f"(bundle {found.tag}): {audience.size:,} households, {audience.treated:,} "
                  f"treated and {audience.control:,} control, expected "
                  f"{'churners' if model == 'churn' else 'responders'} "
                  f"{audience.expected_responders:,.1f} -> {out}", highlight=False)
    for note in audience.notes:  # options named, but "the model" stays words
        console.print(_as_options(note, tuple(f for f in AUDIENCE_OPTIONS if f != "model")),
                      highlight=False)


@app.command("readout")
def readout_cmd(
    audience: Annotated[Path, typer.Argument(
        help="An audience file from growth audience or POST /audience (.csv or .json).")],
    start: Annotated[str | None, typer.Option(
        "--start", help="First day of the campaign YYYY-MM-DD (default: the campaign's start, "
                        "or the date a JSON audience was scored as of).")] = None,
    days: Annotated[int | None, typer.Option(
        "--days", help="Days the outcome window lasts (default: the campaign's length, or "
                       "the data config's churn horizon).")] = None,
    campaign_id: Annotated[int | None, typer.Option(
        "--campaign-id", help="Count redemptions of this campaign instead of visits (a JSON "
                              "coupon audience names its own).")] = None,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the figures as JSON.")
                   ] = None,
) -> None:
    """How an audience's treated households did against its control group, from the data."""
    from serving.readout import read_audience, readout

    _out_file(out, "--out", ".json")
    found = read_audience(audience)
    ds, cfg = _load(data, data_config, None)
    result = readout(ds, found, _date(start, "--start") if start else None, days, campaign_id,
                     default_days=cfg.churn_horizon_days)
    print_readout(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.to_json())
        console.print(f"-> {out}", highlight=False)


@app.command("recommend")
def recommend_cmd(
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    k: Annotated[int, typer.Option(help="Products per household (1..200).")] = 20,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    household_ids: Annotated[str | None, typer.Option(
        help="Comma-separated household ids (default: every household active before "
             "--as-of).")] = None,
    exclude_purchased: Annotated[bool, typer.Option(
        help="Only products the household has never bought.")] = False,
) -> None:
    """Batch recommendations as of a date, with the model version the PIT rule picks."""
    from training import registry
    from training.two_tower.run import MODEL_NAME, describe_recommendations, recommend_to_file

    ids = _household_ids(household_ids)
    day = _date(as_of)
    _out_file(out, "--out", ".parquet")
    ds, _ = _load(data, data_config, None)
    recs = recommend_to_file(ds, day, k, out, ids, exclude_purchased)
    console.print(describe_recommendations(recs, k, day, out), highlight=False)
    if note := registry.set_aside_note(MODEL_NAME, recs.version):
        err_console.print(note, highlight=False)


@app.command("bundle")
def bundle_cmd(data: DataOpt = None, data_config: ConfigOpt = None) -> None:
    """Bundle the @champion models and an online snapshot (latest date) for `growth serve`."""
    from serving.bundle import build_bundle, describe
    from serving.config import load_serving_config, use_bentoml_home

    cfg = load_serving_config()
    use_bentoml_home(cfg)
    ds, _ = _load(data, data_config, None)
    manifest = build_bundle(ds, cfg, say=lambda line: console.print(line, highlight=False))
    for line in describe(manifest, cfg):
        console.print(line, highlight=False)


@app.command("serve")
def serve_cmd(
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="(default: from "
                                             "configs/serving.yaml, 3000)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="BentoML worker processes "
                                                "(default: 1)")] = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: "
                                             "127.0.0.1)")] = None,
    bundle: Annotated[str | None, typer.Option(help="Bundle tag (default: "
                                               "growthloop:latest)")] = None,
) -> None:
    """Verify the bundle (exit 2 when missing or corrupt), then serve it with BentoML."""
    import os

    from serving.config import load_serving_config
    from serving.serve import serve_command

    cmd = serve_command(load_serving_config(), bundle, host, port, workers)
    console.print(f"serving {cmd.bundle.tag} (as of {cmd.bundle.as_of}, "
                  f"{', '.join(f'{n} v{v}' for n, v in cmd.bundle.versions.items())}) on "
                  f"{cmd.url}", highlight=False)
    if cmd.warning:
        err_console.print(cmd.warning, highlight=False)
    sys.stdout.flush()
    os.execvpe(cmd.argv[0], cmd.argv, cmd.env)


@app.command("bento")
def bento_cmd(
    bundle: Annotated[str | None, typer.Option(help="Bundle tag (default: "
                                               "growthloop:latest)")] = None,
) -> None:
    """Build a Bento of the verified bundle and the service, for `bentoml containerize`."""
    from serving.bento import build_bento, describe
    from serving.config import load_serving_config

    for line in describe(build_bento(load_serving_config(), bundle)):
        console.print(line, highlight=False, soft_wrap=True)


@app.command("run")
def run(
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Where artifacts go.")] = Path("artifacts"),
) -> None:
    """The main job: validate, build features, train the three models, bundle them to serve."""
    from growth.pipeline import run_main_job

    cfg: DataConfig = load_data_config(data_config)
    run_main_job(data, cfg, out, console)


# --- tuning, the registry and run comparison -------------------------------------------------

models_app = typer.Typer(no_args_is_help=True, help="Registered versions and @champion.")
app.add_typer(models_app, name="models")


@app.command("tune")
def tune_cmd(
    model: Annotated[str, typer.Argument(help="churn, coupon or two-tower.")],
    trials: Annotated[int, typer.Option(min=1, help="Trials this command runs, over all its "
                                                     "workers.")],
    storage: Annotated[str | None, typer.Option(
        help="Optuna RDB storage URL (sqlite:///F.db, postgresql://...) shared by workers and "
             "machines (default: in memory; with --workers > 1 a SQLite file under "
             "artifacts/tuning/). A SQLite file's folder must exist. Given, the sampler is "
             "unseeded: the trials are not reproducible from the config's seed.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes on this machine; "
                                                     "more than 1: the trials vary between "
                                                     "runs (they finish in any order).")] = 1,
    study: Annotated[str | None, typer.Option(
        help="Study name: the same --storage and --study on several machines share one "
             "study (default: <model>-<UTC time>).")] = None,
    timeout: Annotated[float | None, typer.Option(
        min=1, help="Seconds after which a worker starts no new trial.")] = None,
    data: DataOpt = None,
    data_config: ConfigOpt = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Base config YAML (default: configs/<model>.yaml).")] = None,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Tuned config file (default: configs/tuned/<model>.yaml).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace --out even when it records a better score measured on "
                            "the same data and settings (default: keep it).")] = False,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="churn, two-tower: as `growth train`'s --as-of.")] = None,
    horizon_days: Annotated[int | None, typer.Option(
        min=1, help="churn: as `growth train churn --horizon-days`.")] = None,
    split_date: Annotated[str | None, typer.Option(
        "--split-date", help="coupon: as `growth train coupon --split-date`.")] = None,
) -> None:
    """Search hyper-parameters with Optuna on the validation window; write the best config."""
    from growth.pipeline import print_dates
    from training.tuning import SPECS, TuneRequest, tune, tuned_path

    name = _spelled(model, list(SPECS))
    options = (("--as-of", as_of, "as_of", ("churn", "two-tower")),
               ("--horizon-days", horizon_days, "horizon_days", ("churn",)),
               ("--split-date", split_date, "split_date", ("coupon",)))
    for option, value, _, models in options:
        if value is not None and name not in models:
            raise typer.BadParameter(f"applies to {' and '.join(models)}, not {name}",
                                     param_hint=option)
    sets = _with_options(overrides, *(o[:3] for o in options))
    request = TuneRequest(name, trials,
                          storage=storage, study=study, workers=workers, timeout=timeout,
                          data=data, data_config=data_config, config=config,
                          overrides=tuple(sets), out=out, overwrite=overwrite)
    _out_file(tuned_path(request), "--out", ".yaml", ".yml")
    result = tune(request)
    console.print(f"best of study {result.study}: trial {result.best_trial}, validation "
                  f"score {result.best_value:.6f}")
    if result.base_trial is None:
        console.print("base config: not a trial of this study (it held trials before "
                      "growth tune tried the base config first)")
    else:
        score = (f"validation score {result.base_value:.6f}" if result.base_value is not None
                 else result.base_state.lower())
        same = " (no trial beat it)" if result.base_trial == result.best_trial else ""
        console.print(f"base config {result.base_label}: trial {result.base_trial}, {score}"
                      f"{same}", highlight=False)
        for line in result.base_changes:
            console.print(f"base config: {line}", highlight=False)
    table = Table()
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name, value in result.best_params.items():
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    states = ", ".join(f"{n} {state.lower()}" for state, n in result.session_states.items())
    console.print(f"this session: {states}; the study holds {result.study_trials} "
                  f"trial{'' if result.study_trials == 1 else 's'}")
    if result.storage:
        console.print(f"resume or share: --storage {result.storage} --study {result.study}")
    if result.written:
        console.print(f"tuned config: {result.config_path}", highlight=False)
    print_dates(result.dates, console)
    if result.warning:
        err_console.print(f"warning: {result.warning}", highlight=False)
    if result.kept:
        err_console.print(f"note: {result.kept}", highlight=False)
    console.print(f"train with {'it' if result.written else 'the kept config'}: "
                  f"{escape(result.train_command)}", highlight=False, soft_wrap=True)


def _spelled(name: str, known: list[str]) -> str:
    """``two-tower`` (how `growth train` and `growth tune` spell it) as the registry and
    MLflow name it, ``two_tower``; any name either way round when only the other is known."""
    for other in (name.replace("-", "_"), name.replace("_", "-")):
        if name not in known and other in known:
            return other
    return name


def _versions(name: str) -> list[dict]:
    """The registry's versions of ``name``; a clear error when no such model exists."""
    from training import registry

    rows = registry.list_versions(name)
    if not rows:
        models = registry.registered_models()
        if name in models:
            raise GrowthError(f"registered model {name!r} has no versions (all deleted); "
                              f"train one to register a version")
        raise GrowthError(f"no registered model {name!r}; registered models: "
                          f"{', '.join(models) or 'none yet'}")
    return rows


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument(
        help="A registered model (default: all).")] = None) -> None:
    """Versions: what they predict, where their data end, metrics, the promotion decision."""
    from training import registry

    known = registry.registered_models()
    names = [_spelled(name, known)] if name else known
    if not names:
        console.print("no registered models yet")
        return
    sections = [[(model, f"v{v['version']}{' *' if v['champion'] else ''}",
                  v[registry.TASK_TAG] or "-",
                  v[registry.DATA_END_TAG] or "-", v[registry.DATA_SOURCE_TAG] or "-",
                  "\n".join(f"{k}={x:.4g}" for k, x in sorted(v["metrics"].items())) or "-",
                  v[registry.PROMOTION_TAG] or "-", f"{v['created']:%Y-%m-%d %H:%M}",
                  v["run_id"][:8]) for v in _versions(model)] for model in names]
    # One metric a line, its column as wide as the longest (rich narrows the others first),
    # and no cell cut short with "…": a word wider than its column folds onto the next line.
    widest = max(len(line) for section in sections for row in section
                 for line in (*row[5].splitlines(), "metrics"))
    table = Table(title="registered models (* = @champion)")
    for col in ("model", "version", "task", "data ends", "data source", "metrics", "promotion",
                "created", "run"):
        table.add_column(col, overflow="fold", width=widest if col == "metrics" else None)
    for section in sections:
        for row in section:
            table.add_row(*row)
        table.add_section()
    console.print(table)


SERVED_NOTE = ("the service keeps answering from its bundle until `growth bundle` is run and "
               "`growth serve` restarted")


@models_app.command("promote")
def models_promote(name: Annotated[str, typer.Argument(help="A registered model.")],
                   version: Annotated[str, typer.Argument(
                       help="Its version number (3 or v3, as `growth models list` shows it)."
                   )]) -> None:
    """Give VERSION the @champion alias by hand; `growth models rollback` undoes it."""
    from training import registry

    name = _spelled(name, registry.registered_models())
    numbers = [v["version"] for v in _versions(name)]
    digits = version.strip().removeprefix("v").removeprefix("V")
    number = int(digits) if digits.isdecimal() else None
    if number not in numbers:
        raise GrowthError(f"{name} has no version {version}; versions: "
                          f"{', '.join(str(n) for n in numbers)}")
    previous = registry.champion_version(name)
    was = f"v{previous}" if previous is not None else "none"
    registry.promote(name, number, reason=f"promoted by hand (growth models promote), "
                                          f"replacing {was}")
    console.print(f"{name}@{registry.CHAMPION}: v{number} (was {was})")
    console.print(SERVED_NOTE, highlight=False)


@models_app.command("rollback")
def models_rollback(name: Annotated[str, typer.Argument(help="A registered model.")]) -> None:
    """Move @champion back to the version the current champion replaced."""
    from training import registry

    name = _spelled(name, registry.registered_models())
    _versions(name)
    current = registry.champion_version(name)
    try:
        restored = registry.rollback(name)
    except ValueError as exc:
        raise GrowthError(str(exc)) from exc
    console.print(f"{name}@{registry.CHAMPION}: v{restored} (was v{current})")
    console.print(SERVED_NOTE, highlight=False)


@app.command("compare")
def compare_cmd(
    model: Annotated[str | None, typer.Argument(
        help="two_tower (or two-tower), churn or coupon (default: every model with runs).")
    ] = None,
    last: Annotated[int, typer.Option(min=1, help="Newest finished runs per model.")] = 10,
    fmt: Annotated[str, typer.Option("--format", help="table or csv.")] = "table",
) -> None:
    """Runs side by side from MLflow: ours and the baselines, key params and metrics.

    Two-tower new-item recall: "new@20 mixed" in the list shown by default;
    "new@20 excl bought" without products already bought (the target's figure)."""
    import pandas as pd

    from training.compare import COLUMNS, compare_runs, experiments

    if fmt not in ("table", "csv"):
        raise typer.BadParameter(f"--format is table or csv, not {fmt!r}")
    known = experiments()
    if model:  # our models, and any other experiment with model runs (not Default, tuning)
        choices = [*COLUMNS, *(name for name in known if name not in COLUMNS)]
        model = _spelled(model, choices)
        if model not in choices:
            listed = f"{', '.join(choices[:-1])} or {choices[-1]}"
            raise typer.BadParameter(f"expected {listed}, got {model!r}", param_hint="MODEL")
    models = [model] if model else known
    if not models:
        raise GrowthError("no runs in MLflow yet: train a model first")
    results = {name: compare_runs(name, last) for name in models}
    if fmt == "csv":
        frames = [frame.assign(model=name) for name, (frame, _) in results.items()]
        merged = pd.concat(frames, ignore_index=True)
        typer.echo(merged[["model", *merged.columns.drop("model")]].to_csv(index=False), nl=False)
        return
    for name, (frame, cols) in results.items():
        print_comparison(name, frame, cols)


def main() -> None:
    """Console entry point: user errors print one clear line and exit 2, not a traceback."""
    try:
        app()
    except Exception as exc:
        if not _user_error(exc):
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(_message(exc))}",
                          highlight=False, soft_wrap=True)
        sys.exit(2)


def _out_of_memory(exc: Exception) -> bool:
    duckdb = sys.modules.get("duckdb")  # imported by whatever raised it; not here (start-up)
    return duckdb is not None and isinstance(exc, duckdb.OutOfMemoryException)


def _user_error(exc: Exception) -> bool:
    """Errors the user can act on from one line: bad input, a path, DuckDB's memory limit."""
    return isinstance(exc, GrowthError | ValidationError | OSError) or _out_of_memory(exc)


def _message(exc: Exception) -> str:
    """One line for the user; an OSError names the path it could not use and why."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"cannot use {exc.filename}: {exc.strerror}"
    if _out_of_memory(exc):
        return (f"DuckDB ran out of memory ({str(exc).splitlines()[0]}); raise memory_limit in "
                "the data config (configs/data.yaml, or --data-config FILE)")
    return str(exc)
