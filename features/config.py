"""Typed configuration: YAML files in ``configs/`` validated into pydantic models.

Every model family has one config class and one YAML file; ``--set key=value`` overrides
any field (dotted keys reach nested models). The resolved config is logged whole.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.sources import GrowthError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

M = TypeVar("M", bound=BaseModel)

# DuckDB's memory units: KB..TB are powers of 1000, KiB..TiB powers of 1024.
MEMORY_UNITS: dict[str, int] = {
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}
MEMORY_LIMIT = re.compile(r"(\d+(?:\.\d+)?) ?([KMGT]i?B)", re.IGNORECASE)
MIN_MEMORY_LIMIT = "64MB"  # DuckDB cannot run validation in a few MB
# Feature windows household_features always reads (trends 4w/26w, 52-week aggregates).
REQUIRED_WINDOWS = (4, 26, 52)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _memory_bytes(value: str) -> float:
    """Bytes in a memory size such as ``4GB`` or ``512 MiB``; ValueError when it is not one."""
    match = MEMORY_LIMIT.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"expected a number and a unit such as 4GB or 512MiB (units: "
                         f"{', '.join(MEMORY_UNITS)})")
    number, unit = match.groups()
    factor = {u.lower(): f for u, f in MEMORY_UNITS.items()}[unit.lower()]
    return float(number) * factor


def _memory_limit(value: str) -> str:
    """A DuckDB memory limit checked strictly, since it reaches DuckDB's settings."""
    if _memory_bytes(value) < _memory_bytes(MIN_MEMORY_LIMIT):
        raise ValueError(f"must be at least {MIN_MEMORY_LIMIT}")
    return value.strip()


def _windows(value: tuple[int, ...]) -> tuple[int, ...]:
    missing = sorted(set(REQUIRED_WINDOWS) - set(value))
    if missing:
        raise ValueError(f"must include {', '.join(map(str, REQUIRED_WINDOWS))} (the household "
                         f"features use them); missing {', '.join(map(str, missing))}")
    return value


Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Dates and day counts a model can mean: far-off ones only overflow date arithmetic.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
Days = Annotated[int, Field(gt=0, le=36_500)]  # a century at most


class TierThresholds(Strict):
    """Member tier from trailing 52-week spend (dollars): below silver is bronze."""

    silver: Dollars = 500.0
    gold: Dollars = 1500.0
    platinum: Dollars = 3500.0

    @model_validator(mode="after")
    def _ordered(self) -> TierThresholds:
        # a lower threshold above a higher one would silently empty its tier
        if not self.silver <= self.gold <= self.platinum:
            raise ValueError(f"expected silver <= gold <= platinum; got silver {self.silver}, "
                             f"gold {self.gold}, platinum {self.platinum}")
        return self


class DataConfig(Strict):
    seed: int = Field(0, ge=0)  # seed for anything random in data handling (synthetic data)
    quarantine_dir: Path = Path("quarantine")  # rejected rows go to <dir>/<table>.parquet
    # quantities above this are flagged (fuel lines)
    quantity_outlier: float = Field(1000.0, gt=0, allow_inf_nan=False)
    # RFM windows for features, in weeks
    windows_weeks: Annotated[tuple[Annotated[int, Field(gt=0)], ...],
                             AfterValidator(_windows)] = (4, 8, 13, 26, 52)
    top_departments: int = Field(12, ge=0)  # department-share features, largest departments
    tiers: TierThresholds = TierThresholds()
    # DuckDB memory limit (number + KB/MB/GB/TB or KiB/MiB/GiB/TiB); spills to disk beyond it
    memory_limit: Annotated[str, AfterValidator(_memory_limit)] = "4GB"
    # Standard evaluation settings (shared/design.md), so numbers compare across runs.
    recommender_as_of: Day = date(2017, 12, 4)
    churn_as_of: Day = date(2017, 11, 6)
    churn_horizon_days: Days = 56
    coupon_split_date: Day = date(2017, 8, 1)


RECOMMENDER_TEST_DAYS = 28  # a derived recommender date leaves four weeks to test on


def fit_dates(cfg: DataConfig, first: date, last: date) -> tuple[DataConfig, dict[str, str]]:
    """``cfg`` with each standard date that data running from ``first`` to ``last`` (its
    first and last transaction days) cannot hold replaced by one derived from that span,
    and, by field name, one line per replacement saying so. The standard dates belong to
    the embedded data; another folder (other years, another length) still gets every model
    trained.

    - recommender_as_of must leave test lines (first < date <= last); derived: four weeks
      before the day after the last transaction.
    - churn_as_of must have its label window inside the data (first < date and date +
      horizon - 1 <= last); derived: ``churn_horizon_days`` before the day after the last.
    - coupon_split_date must lie inside (first < date <= last); derived: two thirds into
      the span, so campaigns before it train and those from it on test.

    A derived date is used only if it lies after ``first``; otherwise the date stays and
    the step that needs it says why the data is too short."""
    end = last + timedelta(days=1)
    horizon = cfg.churn_horizon_days
    rules = {
        "recommender_as_of": (first < cfg.recommender_as_of <= last,
                              end - timedelta(days=RECOMMENDER_TEST_DAYS),
                              f"{RECOMMENDER_TEST_DAYS} days before the day after the last "
                              "transaction"),
        "churn_as_of": (first < cfg.churn_as_of
                        and cfg.churn_as_of + timedelta(days=horizon - 1) <= last,
                        end - timedelta(days=horizon),
                        f"its {horizon}-day label window ends with the data"),
        "coupon_split_date": (first < cfg.coupon_split_date <= last,
                              first + timedelta(days=(last - first).days * 2 // 3),
                              "two thirds into the data"),
    }
    changes: dict[str, date] = {}
    lines: dict[str, str] = {}
    for name, (fits, derived, why) in rules.items():
        if not fits and derived > first:
            changes[name] = derived
            lines[name] = (f"{name} {getattr(cfg, name)} does not fit data from {first} to "
                           f"{last}; using {derived} ({why})")
    return cfg.model_copy(update=changes), lines


# model -> {its config's field: the data config's standard value it defaults to}
STANDARD_DATES: dict[str, dict[str, str]] = {
    "churn": {"as_of": "churn_as_of", "horizon_days": "churn_horizon_days"},
    "coupon": {"split_date": "coupon_split_date"},
    "two_tower": {"as_of": "recommender_as_of"},
}


def standard_overrides(model: str, cfg: DataConfig, first: date, last: date,
                       overrides: list[str] | None) -> tuple[list[str], list[str]]:
    """``overrides`` plus ``field=value`` for each of ``model``'s standard dates (and churn's
    horizon) they leave unset, from the data config ``cfg`` fitted to data running from
    ``first`` to ``last`` (``fit_dates``, with the horizon ``overrides`` give, if any), so
    that ``growth train`` and ``growth tune`` use the dates ``growth run`` and ``growth
    score`` use; and the lines saying which of those dates were fitted."""
    given = parse_overrides(overrides)
    unset = {key: name for key, name in STANDARD_DATES.get(model, {}).items()
             if key not in given}
    if not unset:
        return list(overrides or []), []
    if "horizon_days" in given:  # the window to fit churn's date to is the one given
        cfg = cfg.model_copy(update={"churn_horizon_days": int(given["horizon_days"])})
    fitted, changes = fit_dates(cfg, first, last)
    return ([*(overrides or []), *(f"{key}={getattr(fitted, name)}"
                                   for key, name in unset.items())],
            [line for name, line in changes.items() if name in unset.values()])


class _Loader(yaml.SafeLoader):
    """YAML without its timestamp type: a date stays text for the config's own date fields
    to parse, so an impossible one (2017-02-30) is an error naming the field, not a crash
    inside the YAML reader."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds no Python objects


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict with YAML-parsed values."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise GrowthError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = _yaml(raw)
        except yaml.YAMLError as exc:
            raise GrowthError(f"--set {pair}: the value is not valid YAML: {exc}") from exc
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GrowthError(f"--set {pair}: {part!r} is already set to a value, "
                                  "not a group of settings")
        node[parts[-1]] = value
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    """The settings in a YAML file; GrowthError naming the file for anything unusable."""
    if path.is_dir():
        raise GrowthError(f"config file {path} is a folder; expected a YAML file")
    try:
        values = _yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GrowthError(f"config file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise GrowthError(f"config file {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise GrowthError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GrowthError(f"config file {path} is not valid YAML{where}: "
                          f"{exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise GrowthError(f"config file {path} is not valid YAML: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise GrowthError(f"config file {path}: expected a mapping of settings (key: value) "
                          f"at the top level, found a {type(values).__name__}")
    return values


def _describe_errors(exc: ValidationError, path: Path | None,
                     overrides: dict[str, Any]) -> str:
    """One line naming, for each invalid field, where it came from and what was expected."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["loc"] and err["loc"][0] in overrides:
            where = f"--set {loc}"
        else:
            where = f"config file {path}: {loc}" if path is not None else loc
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(problems)


def load_config(cls: type[M], path: Path | None = None, overrides: list[str] | None = None,
                default_name: str | None = None) -> M:
    """Build ``cls`` from a YAML file (default ``configs/<default_name>.yaml``) plus overrides.

    Every problem (missing, unreadable or invalid file, a field of the wrong type or value)
    raises GrowthError naming the file and the field.
    """
    if path is None and default_name is not None:
        path = CONFIG_DIR / f"{default_name}.yaml"
    path = None if path is None else Path(path)
    values = {} if path is None else _read_yaml(path)
    extra = parse_overrides(overrides)
    try:
        return cls.model_validate(_merge(values, extra))
    except ValidationError as exc:
        raise GrowthError(f"invalid {cls.__name__}: "
                          f"{_describe_errors(exc, path, extra)}") from exc


def load_data_config(path: Path | None = None, overrides: list[str] | None = None) -> DataConfig:
    return load_config(DataConfig, path, overrides, default_name="data")
