"""Data config: every unusable file or value is a GrowthError naming the file and the field."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from features.config import CONFIG_DIR, DataConfig, fit_dates, load_data_config
from features.dataset import load_dataset
from features.sources import GrowthError


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads() -> None:
    assert load_data_config() == DataConfig()
    assert load_data_config(CONFIG_DIR / "data.yaml").memory_limit == "4GB"


@pytest.mark.parametrize(("text", "expected"), [
    ("seed: [1, 2\n", r"is not valid YAML at line 2"),
    ("- seed: 1\n", r"expected a mapping of settings .* found a list"),
    ("seed: 1\n\x07\n", r"is not valid YAML: unacceptable character"),
])
def test_unusable_file_names_it(tmp_path: Path, text: str, expected: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(GrowthError, match=expected) as err:
        load_data_config(path)
    assert str(path) in str(err.value)


def test_folder_missing_file_and_non_utf8_file_name_it(tmp_path: Path) -> None:
    with pytest.raises(GrowthError, match=f"config file {tmp_path} is a folder"):
        load_data_config(tmp_path)
    with pytest.raises(GrowthError, match="does not exist"):
        load_data_config(tmp_path / "missing.yaml")
    (tmp_path / "latin.yaml").write_bytes(b"seed: 1 # d\xe9faut\n")
    with pytest.raises(GrowthError, match="latin.yaml is not UTF-8"):
        load_data_config(tmp_path / "latin.yaml")


@pytest.mark.parametrize(("text", "field"), [
    ("seed: -1\n", "seed"),
    ("quantity_outlier: .inf\n", "quantity_outlier"),
    ("quantity_outlier: 0\n", "quantity_outlier"),
    ("tiers: {gold: .nan}\n", "tiers.gold"),
    ("tiers: {silver: 2000}\n", "tiers"),  # above gold's default 1500
    ("windows_weeks: [4, -8, 26, 52]\n", "windows_weeks.1"),
    ("windows_weeks: [4, 8]\n", "windows_weeks"),
    ("churn_as_of: soon\n", "churn_as_of"),
    ("churn_as_of: 2017-02-30\n", "churn_as_of"),  # YAML's own date type would crash on it
    ("coupon_split_date: 2017-13-01\n", "coupon_split_date"),
    ("memory_limt: 4GB\n", "memory_limt"),
])
def test_invalid_field_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(GrowthError) as err:
        load_data_config(path)
    assert f"config file {path}: {field}:" in str(err.value)


@pytest.mark.parametrize("value", ["abc", "4", "4 PB", "-1", "80%", "1MB",
                                   "4GB'; CREATE TABLE x(a int); --"])
def test_memory_limit_is_checked_before_it_reaches_duckdb(tmp_path: Path, value: str) -> None:
    path = _config(tmp_path, f"memory_limit: {json.dumps(value)}\n")
    with pytest.raises(GrowthError) as err:
        load_data_config(path)
    msg = str(err.value)
    assert f"config file {path}: memory_limit:" in msg
    assert "KiB" in msg or "at least 64MB" in msg


@pytest.mark.parametrize(("value", "setting"), [("4GB", "3.7 GiB"), ("512 MiB", "512.0 MiB"),
                                                ("1.5gb", "1.3 GiB")])
def test_valid_memory_limits_reach_duckdb(tiny_folder: Path, tmp_path: Path, value: str,
                                          setting: str) -> None:
    cfg = load_data_config(_config(tmp_path, f"memory_limit: {value}\n"))
    ds = load_dataset(tiny_folder, cfg, tmp_path / "q")
    assert ds.df("SELECT current_setting('memory_limit') AS m")["m"][0] == setting


@pytest.mark.parametrize(("sets", "expected"), [
    (["seed"], "--set expects key=value"),
    (["seed=[1"], r"--set seed=\[1: the value is not valid YAML"),
    (["tiers=1", "tiers.gold=2"], "'tiers' is already set to a value"),
    (["memory_limit=lots"], "--set memory_limit: expected a number and a unit"),
    (["churn_as_of=2017-02-30"], "--set churn_as_of: .*day value is outside expected range"),
])
def test_bad_overrides_name_the_setting(sets: list[str], expected: str) -> None:
    with pytest.raises(GrowthError, match=expected):
        load_data_config(overrides=sets)


def test_dates_in_yaml_and_overrides_are_read_as_days(tmp_path: Path) -> None:
    cfg = load_data_config(_config(tmp_path, "churn_as_of: 2017-10-02\n"),
                           ["coupon_split_date=2017-07-03"])
    assert (cfg.churn_as_of, cfg.coupon_split_date) == (date(2017, 10, 2), date(2017, 7, 3))


def test_standard_dates_that_fit_the_data_are_kept() -> None:
    cfg = DataConfig()
    fitted, changes = fit_dates(cfg, date(2017, 1, 1), date(2018, 1, 1))  # the embedded span
    assert fitted == cfg and changes == {}


def test_dates_outside_the_data_are_derived_from_its_span() -> None:
    first, last = date(2022, 1, 1), date(2022, 10, 7)
    fitted, changes = fit_dates(DataConfig(), first, last)
    assert fitted.recommender_as_of == date(2022, 9, 10)  # four weeks of test lines
    assert fitted.churn_as_of == date(2022, 8, 13)
    assert fitted.churn_as_of + timedelta(days=fitted.churn_horizon_days - 1) == last
    assert fitted.coupon_split_date == date(2022, 7, 6)
    assert set(changes) == {"recommender_as_of", "churn_as_of", "coupon_split_date"}
    assert changes["churn_as_of"] == ("churn_as_of 2017-11-06 does not fit data from 2022-01-01 "
                                      "to 2022-10-07; using 2022-08-13 (its 56-day label window "
                                      "ends with the data)")


def test_only_the_dates_that_do_not_fit_change() -> None:
    # Data to 2017-12-20: the churn label window (to 2017-12-31) no longer fits.
    fitted, changes = fit_dates(DataConfig(), date(2017, 1, 1), date(2017, 12, 20))
    assert set(changes) == {"churn_as_of"} and fitted.churn_as_of == date(2017, 10, 26)
    assert fitted.recommender_as_of == date(2017, 12, 4)
    assert fitted.coupon_split_date == date(2017, 8, 1)
    # A span shorter than the horizon: no churn date fits, so the configured one stays and
    # the churn step says why.
    fitted, changes = fit_dates(DataConfig(), date(2022, 1, 1), date(2022, 2, 10))
    assert "churn_as_of" not in changes and fitted.churn_as_of == date(2017, 11, 6)
    assert fitted.recommender_as_of == date(2022, 1, 14)
