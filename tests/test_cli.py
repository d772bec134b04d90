"""The ``growth`` command as a user runs it: exit codes, messages, files written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from features import schema as s
from tests.cli import run_growth
from tests.fixtures import tiny_tables, write_folder

growth = run_growth


def test_validate_embedded_data_prints_counts(tmp_path: Path) -> None:
    res = growth("data", "validate", "--quarantine-dir", str(tmp_path / "q"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "1,469,307" in res.stdout and "1,464,471" in res.stdout
    assert "unknown_product_id=4,836" in res.stdout
    assert "warning" not in res.stdout  # no table loses more than LARGE_LOSS_SHARE


def test_validate_missing_column_exits_nonzero_naming_it(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = tables[s.TRANSACTIONS].drop(columns=[s.BASKET_ID])
    folder = write_folder(tmp_path / "d", tables)
    res = growth("data", "validate", "--data", str(folder), cwd=tmp_path)
    assert res.returncode == 2
    assert "table 'transactions' is missing required column 'basket_id'" in res.stderr
    assert "Traceback" not in res.stderr


def test_validate_quarantines_bad_rows_and_exits_zero(tmp_path: Path) -> None:
    tables = tiny_tables()
    tx = tables[s.TRANSACTIONS].astype(str)
    bad = pd.concat([
        tx.iloc[[0]].assign(**{s.PRODUCT_ID: None}),
        tx.iloc[[1]].assign(**{s.TRANSACTION_TIMESTAMP: "yesterday"}),
        tx.iloc[[2]],
    ])
    tables[s.TRANSACTIONS] = pd.concat([tx, bad], ignore_index=True)
    folder = write_folder(tmp_path / "d", tables, fmt="csv")
    res = growth("data", "validate", "--data", str(folder), "--quarantine-dir", "q",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for reason in ("null_product_id=1", "bad_transaction_timestamp=1", "duplicate=1"):
        assert reason in res.stdout
    quarantined = pd.read_parquet(tmp_path / "q" / "transactions.parquet")
    assert len(quarantined) == 3 and len(tx) + 3 == 10


def test_validate_warns_when_a_table_loses_a_large_share(tmp_path: Path) -> None:
    """Most transactions naming products an incomplete products table lacks passed with a
    count alone: a warning line names the table, the share, the reason and the quarantine
    file; it stays a warning (exit 0)."""
    tables = tiny_tables()
    tables[s.TRANSACTIONS].loc[:3, s.PRODUCT_ID] = 77
    folder = write_folder(tmp_path / "d", tables)
    res = growth("data", "validate", "--data", str(folder), "--quarantine-dir", "q",
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert ("warning: table 'transactions' lost 57.1% of its rows to quarantine (4 of 7), most "
            "as unknown_product_id (4: their product_id is not in table 'products'); check them "
            "in q/transactions.parquet before relying on what is built from this table") in out


def test_run_suggests_recommend_on_the_data_it_was_given(tmp_path: Path, monkeypatch) -> None:
    """`growth run --data DIR` suggested `growth recommend` without `--data DIR`, which then
    found no two-tower trained on the embedded data: the suggestion names the data."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from features.config import DataConfig
    from features.sources import EMBEDDED_SOURCE
    from growth.pipeline import _train_two_tower
    from training.two_tower import run as two_tower_run

    seconds = dict.fromkeys(("training", "prepare_and_epochs", "blends", "bundle_and_logging",
                             "evaluation", "total"), 1.0)
    blend = {"recall_all_at_20": 0.2, "recall_new_at_20_exclude_purchased": 0.1}
    monkeypatch.setattr(two_tower_run, "train_two_tower", lambda *args, **kwargs: {
        "version": 1, "promotion": "promoted", "seconds": seconds,
        "metrics": {"two_tower_blend": blend}})
    cfg = DataConfig()
    for source, data in ((EMBEDDED_SOURCE, ""), ("/srv/shop", " --data /srv/shop")):
        printed = io.StringIO()
        _train_two_tower(SimpleNamespace(source=source), cfg, tmp_path,
                         Console(file=printed, width=400))
        assert (f"try `growth recommend --as-of {cfg.recommender_as_of}{data} --out "
                "recs.parquet`") in printed.getvalue()


def test_features_build_writes_both_tables(tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "feat"
    res = growth("features", "build", "--as-of", "2017-01-23", "--data", str(tiny_folder),
                 "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(pd.read_parquet(out / "households.parquet")) == 2
    assert len(pd.read_parquet(out / "products.parquet")) == 4


def test_bad_date_is_a_usage_error(tiny_folder: Path, tmp_path: Path) -> None:
    res = growth("features", "build", "--as-of", "06/11/2017", "--data", str(tiny_folder),
                 "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert res.returncode == 2 and "YYYY-MM-DD" in res.stderr


def test_run_on_a_folder(tiny_folder: Path, tmp_path: Path) -> None:
    """The main job also works on a folder whose data ends before the standard dates."""
    res = growth("run", "--data", str(tiny_folder), "--out", str(tmp_path / "art"),
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "main job done" in res.stdout


def test_run_on_a_folder_of_other_years_trains_every_model(tmp_path: Path) -> None:
    """The standard dates belong to the embedded data: for a CSV folder from 2022 the main
    job derives them from the data's span, says so, trains all three models, and
    ``growth score`` defaults to the same dates."""
    from features.synth import generate

    generate(tmp_path / "synth", households=300, products=300, weeks=40, seed=3)
    folder = tmp_path / "csv2022"
    folder.mkdir()
    for file in (tmp_path / "synth").glob("*.parquet"):
        table = pd.read_parquet(file)
        for col in table.columns:
            if pd.api.types.is_datetime64_any_dtype(table[col]):
                table[col] = table[col] + pd.DateOffset(years=5)
        table.to_csv(folder / f"{file.stem}.csv", index=False)
    last = pd.read_csv(folder / "transactions.csv")[s.TRANSACTION_TIMESTAMP].max()[:10]
    assert last.startswith("2022-")
    res = growth("run", "--data", str(folder), "--out", str(tmp_path / "art"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = " ".join(res.stdout.split())
    churn_date = (pd.Timestamp(last) + pd.Timedelta(days=1 - 56)).date().isoformat()
    assert (f"dates: churn_as_of 2017-11-06 does not fit data from 2022-01-01 to {last}; "
            f"using {churn_date}") in out
    assert "dates: recommender_as_of 2017-12-04 does not fit" in out
    assert "dates: coupon_split_date 2017-08-01 does not fit" in out
    assert "two_tower v1 " in out and f"churn v1 (data to {churn_date})" in out
    assert "coupon v1 (data to 2022-" in out and "skipped" not in out
    res = growth("score", "churn", "--data", str(folder), "--out", "s.parquet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"churn v1 (56-day horizon) as of {churn_date}: " in res.stdout
    assert "recommender_as_of" not in res.stdout  # only the date the command uses


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    return " ".join(res.stderr.split())


def test_unusable_output_path_is_one_line_naming_it(tiny_folder: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    res = growth("features", "build", "--as-of", "2017-01-23", "--data", str(tiny_folder),
                 "--out", str(taken), cwd=tmp_path)
    assert f"cannot use {taken}" in _one_line_error(res)
    assert taken.read_text() == "not a folder"


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path) -> None:
    """--out and the folder it goes into are checked before the data is read (whose error
    would show first here): writing failed only after minutes of work, or a printed table."""
    blocker = tmp_path / "configs"  # a file where the output's folder would be made
    blocker.write_text("not a folder")
    no_data = str(tmp_path / "no-data")
    cases = {
        ("recommend", "--as-of", "2017-12-04", "--out", "configs/r.parquet"): "configs/r.parquet",
        ("readout", "audience.csv", "--out", "configs/r.json"): "configs/r.json",
        ("tune", "coupon", "--trials", "1", "--out", "configs/t.yaml"): "configs/t.yaml",
        ("tune", "coupon", "--trials", "1"): "configs/tuned/coupon.yaml",  # the default --out
    }
    for args, out in cases.items():
        res = growth(*args, "--data", no_data, cwd=tmp_path)
        assert (f"--out {out}: cannot write into {blocker.resolve()} (Not a directory)"
                in _one_line_error(res)), args


def test_bad_arguments_are_named_before_any_data_is_read(tmp_path: Path) -> None:
    """Checked before loading: the embedded data would take seconds and print a report."""
    cases = {
        ("score", "chrn", "--out", "x.parquet"): "expected churn or coupon, got 'chrn'",
        ("recommend", "--as-of", "2017-12-04", "--out", "x.parquet", "--household-ids", ","):
            "--household-ids: no household id given",
        ("recommend", "--as-of", "2017-12-04", "--out", "x.parquet",
         "--household-ids", "1,99999999999999999999"):
            "--household-ids: expected integers in 0..9223372036854775807 like 1,2,3, got "
            "'99999999999999999999'",
        ("recommend", "--as-of", "2017-12-04", "--out", "x.parquet", "--household-ids", "1,x"):
            "expected integers in 0..9223372036854775807 like 1,2,3, got 'x'",
        ("recommend", "--as-of", "2017-13-04", "--out", "x.parquet"):
            "--as-of: expected a date as YYYY-MM-DD",
        ("tune", "churn", "--trials", "1", "--storage", "bogus://x"):
            "--storage bogus://x: its scheme bogus:// is not a database SQLAlchemy knows",
        ("tune", "churn", "--trials", "1", "--storage", "not a url"):
            "--storage 'not a url' is not a database URL",
        ("tune", "churn", "--trials", "1", "--storage", "postgresql://x"):  # no driver
            "cannot open the Optuna storage postgresql://x: its postgresql driver, Python "
            "module psycopg, is not installed",
        # far-off dates and counts, which only overflow date arithmetic or LightGBM
        ("train", "churn", "--as-of", "0001-01-01"):
            "--as-of: expected a date from 1900-01-01 to 2199-12-31",
        ("train", "churn", "--horizon-days", "1000000000"):
            "horizon_days: Input should be less than or equal to 36500",
        ("train", "churn", "--set", "num_leaves=200000"):
            "num_leaves: Input should be less than or equal to 131072",
        ("train", "churn", "--set", "num_threads=100000"):
            "num_threads: Input should be less than or equal to 1024",
        ("train", "coupon", "--set", "learning_rate=inf"):
            "learning_rate: Input should be a finite number",
        ("data", "synth", "--out", "d", "--households", "99999999999999999999999"):
            "households must be at most 10,000,000",
        ("train", "two-tower", "--set", "batch_size=0"):  # was a ZeroDivisionError
            "batch_size: Input should be greater than or equal to 1",
        ("train", "two-tower", "--set", "temperature=0"):  # was a math domain error
            "temperature: Input should be greater than 0",
        ("score", "churn", "--out", "scores.csv"):  # it writes parquet
            "--out scores.csv: expected a file name ending in .parquet",
        ("recommend", "--as-of", "2017-12-04", "--out", "."):
            "--out .: expected a file name ending in .parquet",
        ("tune", "churn", "--trials", "1", "--out", "tuned.json"):  # checked before any trial
            "--out tuned.json: expected a file name ending in .yaml or .yml",
        # an option and a --set of its field: neither silently wins
        ("train", "churn", "--horizon-days", "30", "--set", "horizon_days=56"):
            "--horizon-days: --set horizon_days=... sets the same setting; give one",
        ("tune", "coupon", "--trials", "1", "--split-date", "2017-08-01", "--set",
         "split_date=2017-07-01"):
            "--split-date: --set split_date=... sets the same setting; give one",
        ("train", "churn", "--set", "as_of=2017-02-30"):  # YAML's date type would crash
            "as_of: Input should be a valid date or datetime, day value is outside",
    }
    for args, message in cases.items():
        res = growth(*args, cwd=tmp_path)
        assert message in _one_line_error(res), args
        assert "validation" not in res.stdout, args  # no data was loaded


def test_out_of_memory_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """The embedded data does not fit DuckDB's smallest allowed memory_limit."""
    config = tmp_path / "data.yaml"
    config.write_text("memory_limit: 64MB\n")
    res = growth("data", "validate", "--data-config", str(config), "--quarantine-dir",
                 str(tmp_path / "q"), cwd=tmp_path)
    line = _one_line_error(res)
    assert "DuckDB ran out of memory" in line and "raise memory_limit" in line


def test_every_command_summary_is_one_line() -> None:
    """``growth --help`` lists each command by its docstring's first paragraph, line breaks
    kept: that paragraph must be one line (details go below a blank line)."""
    import typer

    from growth.cli import app

    def commands(group, prefix: str) -> list:
        found = []
        for name, cmd in group.commands.items():
            found.append((f"{prefix} {name}", cmd))
            found += commands(cmd, f"{prefix} {name}") if hasattr(cmd, "commands") else []
        return found

    listed = commands(typer.main.get_command(app), "growth")
    assert len(listed) >= 20
    multi = [name for name, cmd in listed if "\n" in (cmd.help or "").strip().split("\n\n")[0]]
    assert multi == []


def test_propensity_table_follows_top_fraction(capsys) -> None:
    """Lift and capture are named after the config's top_fraction (here 0.2, not 0.1)."""
    from growth.display import print_propensity

    m = {"roc_auc": 0.8, "pr_auc": 0.5, "brier": 0.1, "ece": 0.02, "lift_at_20pct": 2.5,
         "capture_at_20pct": 0.5}
    print_propensity({"model": "churn", "version": 3, "data_end": "2017-11-06",
                      "promotion": "rejected", "metrics": {"lightgbm": m, "rfm_logistic": m},
                      "train_seconds": 1.0, "best_iteration": 5}, Path("reports"))
    out = capsys.readouterr().out
    assert "lift@20%" in out and "capture@20%" in out and out.count("2.5000") == 2


def test_features_are_never_written_over_the_data(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "d", tiny_tables())
    before = (folder / "products.parquet").read_bytes()
    res = growth("features", "build", "--as-of", "2017-01-23", "--data", str(folder),
                 "--out", str(folder), cwd=tmp_path)
    assert f"feature folder {folder} is the data folder" in _one_line_error(res)
    assert (folder / "products.parquet").read_bytes() == before
