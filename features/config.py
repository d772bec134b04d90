"""Typed configuration: YAML files in ``configs/`` validated into pydantic models.

Every model family has one config class and one YAML file; ``--set key=value`` overrides
any field (dotted keys reach nested models). The resolved config is logged whole.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierThresholds(Strict):
    """Member tier from trailing 52-week spend (dollars): below silver is bronze."""

    silver: float = 500.0
    gold: float = 1500.0
    platinum: float = 3500.0


class DataConfig(Strict):
    seed: int = 0  # seed for anything random in data handling (synthetic data, sampling)
    quarantine_dir: Path = Path("quarantine")  # rejected rows go to <dir>/<table>.parquet
    quantity_outlier: float = 1000.0  # quantities above this are flagged (fuel lines)
    windows_weeks: tuple[int, ...] = (4, 8, 13, 26, 52)  # RFM windows for features
    top_departments: int = 12  # department-share features for the largest departments
    tiers: TierThresholds = TierThresholds()
    memory_limit: str = "4GB"  # DuckDB memory limit; spills to disk beyond it
    # Standard evaluation settings (shared/design.md), so numbers compare across runs.
    recommender_as_of: date = date(2017, 12, 4)
    churn_as_of: date = date(2017, 11, 6)
    churn_horizon_days: int = Field(56, gt=0)
    coupon_split_date: date = date(2017, 8, 1)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict with YAML-parsed values."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(cls: type[M], path: Path | None = None, overrides: list[str] | None = None,
                default_name: str | None = None) -> M:
    """Build ``cls`` from a YAML file (default ``configs/<default_name>.yaml``) plus overrides."""
    if path is None and default_name is not None:
        path = CONFIG_DIR / f"{default_name}.yaml"
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
    return cls.model_validate(_merge(values, parse_overrides(overrides)))


def load_data_config(path: Path | None = None, overrides: list[str] | None = None) -> DataConfig:
    return load_config(DataConfig, path, overrides, default_name="data")
