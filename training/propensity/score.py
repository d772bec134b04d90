"""``growth score churn|coupon``: batch scores with the point-in-time model version.

- churn: every household with a purchase before ``as_of`` (default: the standard churn date
  of the data config), features as of ``as_of``.
- coupon: every household with a purchase before campaign C's start, and C's recipients,
  features as of C's start; without C, the same for every campaign starting on or after
  ``as_of`` (default: the standard split date), each as of its own start. ``received``
  marks C's recipients, the only rows with a label (the test set is theirs); the others are
  the households a marketer could still target. Deciles are computed within each campaign.

The version is the newest trained on the same data whose training data ends on or before
``as_of`` (for one campaign: its start), so a score never comes from a model that saw the
period it is judged on, nor from one trained on other data. ``as_of`` must lie within the
data (at most the day after its last transaction). The file's metadata records model name,
version, its data end, ``as_of`` and the promotion gate's verdict on the version (``gate``,
``promotion``): a version the gate set aside scores only when no other fits the date.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema as s
from features.config import DataConfig
from features.dataset import Dataset
from features.household import sql_date
from features.sources import GrowthError
from training import registry
from training.propensity.bundle import PropensityModel
from training.propensity.churn import churn_data, churn_features
from training.propensity.config import (
    churn_task,
    load_churn_config,
    load_coupon_config,
    task_horizon,
)
from training.propensity.coupon import coupon_data, coupon_examples
from training.propensity.evaluate import deciles
from training.propensity.gbdt import MissingFeatures

MODELS = ("churn", "coupon")


class Scored(NamedTuple):
    """What :func:`score_to_file` wrote: the rows, the model version, the as-of date the
    features use, and (churn) the model's horizon in days."""

    rows: pd.DataFrame
    version: int
    as_of: date
    horizon_days: int | None = None
RECEIVED = "received"  # coupon rows: the household received the campaign


def load_for_date(model_name: str, as_of: date, ds: Dataset, dest: Path,
                  horizon_days: int | None = None, data_cfg: DataConfig | None = None
                  ) -> tuple[PropensityModel, int]:
    """The newest registered version trained on the data of ``ds`` whose training data ends
    on or before ``as_of``; for churn, one that predicts over ``horizon_days`` (default: the
    champion's horizon, when the champion records it), so a model of another horizon is
    never picked by accident. When none fits, the error advises the training command that
    gives one, or says why that command cannot train on this data (:func:`_untrainable`)."""
    date_option = "--as-of" if model_name == "churn" else "--split-date"
    command = f"growth train {model_name} {date_option} {as_of}"
    task = None
    if model_name == "churn":
        if horizon_days is None:
            horizon_days = task_horizon(registry.champion_task(model_name))
        if horizon_days is not None:
            task = churn_task(horizon_days)
            command += f" --horizon-days {horizon_days}"
    folder, version = registry.download_for_date(
        model_name, as_of, ds, dest, command, task,
        lambda: _untrainable(model_name, as_of, ds, horizon_days, data_cfg))
    return PropensityModel.load(folder), version


def _untrainable(model_name: str, as_of: date, ds: Dataset, horizon_days: int | None,
                 data_cfg: DataConfig | None) -> str | None:
    """Why ``growth train`` with data ending on ``as_of`` (and ``horizon_days``) would stop on
    ``ds`` at its default config, in its own words; None when it can train. It builds the
    training and validation rows as that command would, so it runs only when the advice is
    needed."""
    try:
        if model_name == "churn":
            churn_data(ds, load_churn_config(overrides=[f"as_of={as_of}"] + (
                [f"horizon_days={horizon_days}"] if horizon_days else [])), data_cfg)
        else:
            coupon_data(ds, load_coupon_config(overrides=[f"split_date={as_of}"]), data_cfg)
    except GrowthError as exc:
        return str(exc)
    return None


def _scored(model: PropensityModel, frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame[keys].reset_index(drop=True)
    out["score"] = model.predict(frame)
    return out.join(model.reasons(frame).reset_index(drop=True))


def churn_scores(ds: Dataset, model: PropensityModel, as_of: date,
                 data_cfg: DataConfig | None = None) -> pd.DataFrame:
    horizon = int(model.meta["config"]["horizon_days"])
    frame = churn_features(ds, as_of, horizon, data_cfg)
    if frame.empty:
        raise GrowthError(f"no household has a purchase before {as_of} in {ds.source}")
    out = _scored(model, frame, [s.HOUSEHOLD_ID])
    out.insert(2, "decile", deciles(out["score"].to_numpy()))
    return out


def campaigns_to_score(ds: Dataset, as_of: date, campaign_id: int | None) -> pd.DataFrame:
    """(household, campaign) rows with campaign attributes and ``received``, for one campaign
    or for every campaign starting on or after ``as_of`` and by the day after the data's
    last (later ones have no features as of their start yet): every household with a
    purchase before the campaign's start, and the campaign's recipients."""
    for table in (s.CAMPAIGNS, s.CAMPAIGN_DESCRIPTIONS):
        ds.require(table, "coupon scoring")
    h, c, start = s.HOUSEHOLD_ID, s.CAMPAIGN_ID, s.START_DATE
    _, last = ds.time_range()  # a campaign starting after the data has no features yet
    where = (f"d.{c} = {int(campaign_id)}" if campaign_id is not None else
             f"d.{start} >= CAST({sql_date(as_of)} AS TIMESTAMP) AND d.{start} <= "
             f"CAST({sql_date(last.date() + timedelta(days=1))} AS TIMESTAMP)")
    return ds.df(f"""
        WITH chosen AS (SELECT * FROM {s.CAMPAIGN_DESCRIPTIONS} d WHERE {where}),
        first AS (SELECT {h}, min({s.TRANSACTION_TIMESTAMP}) AS first_ts
                  FROM {s.TRANSACTIONS} GROUP BY {h}),
        audience AS (SELECT f.{h}, d.{c} FROM first f JOIN chosen d ON f.first_ts < d.{start}
                     UNION SELECT p.{h}, p.{c} FROM {s.CAMPAIGNS} p JOIN chosen d USING ({c}))
        SELECT a.{h}, a.{c}, d.{s.CAMPAIGN_TYPE}, d.{start}, d.{s.END_DATE},
               CAST(p.{h} IS NOT NULL AS INTEGER) AS {RECEIVED}
        FROM audience a JOIN chosen d USING ({c})
        LEFT JOIN {s.CAMPAIGNS} p ON p.{h} = a.{h} AND p.{c} = a.{c}
        ORDER BY d.{start}, a.{c}, a.{h}""")


def campaign_start(ds: Dataset, campaign_id: int) -> date:
    ds.require(s.CAMPAIGN_DESCRIPTIONS, "coupon scoring")
    row = ds.con.execute(f"SELECT {s.START_DATE} FROM {s.CAMPAIGN_DESCRIPTIONS} "
                         f"WHERE {s.CAMPAIGN_ID} = ?", [int(campaign_id)]).fetchone()
    if row is None:
        raise GrowthError(f"campaign {campaign_id} is not in {s.CAMPAIGN_DESCRIPTIONS}")
    return pd.Timestamp(row[0]).date()


def coupon_scores(ds: Dataset, model: PropensityModel, pairs: pd.DataFrame,
                  data_cfg: DataConfig | None = None) -> pd.DataFrame:
    frame = coupon_examples(ds, pairs, data_cfg)
    out = _scored(model, frame, [s.HOUSEHOLD_ID, s.CAMPAIGN_ID, RECEIVED])
    out.insert(out.columns.get_loc("score") + 1, "decile", 0)
    for _, idx in out.groupby(s.CAMPAIGN_ID, sort=False).groups.items():
        out.loc[idx, "decile"] = deciles(out.loc[idx, "score"].to_numpy())
    return out


def score_to_file(ds: Dataset, model_name: str, out: Path, as_of: date | None = None,
                  campaign_id: int | None = None, data_cfg: DataConfig | None = None,
                  horizon_days: int | None = None) -> Scored:
    """Score, write ``out`` (parquet with model metadata); returns what it wrote.
    ``as_of`` must lie within the data (``Dataset.check_as_of``). With ``campaign_id`` the
    features are as of the campaign's start, which is the ``as_of`` returned and recorded;
    a given ``as_of`` (on or before that start) then only picks the version, the newest
    whose data end by it, recorded as ``version_as_of``. ``horizon_days`` (churn) picks
    among versions of that horizon (default: the champion's; see :func:`load_for_date`)."""
    data_cfg = data_cfg or DataConfig()
    version_as_of = None  # the date that picks the version, when not as_of itself
    if model_name not in MODELS:
        raise GrowthError(f"unknown model {model_name!r}: expected one of {', '.join(MODELS)}")
    if model_name == "churn":
        if campaign_id is not None:
            raise GrowthError("--campaign-id only applies to the coupon model")
    elif horizon_days is not None:
        raise GrowthError("--horizon-days only applies to the churn model")
    if model_name == "churn":
        as_of = as_of or data_cfg.churn_as_of
    elif campaign_id is not None:
        start = campaign_start(ds, campaign_id)
        if as_of is not None and as_of > start:
            raise GrowthError(
                f"campaign {campaign_id} starts on {start}, before --as-of {as_of}: its "
                "scores must come from a model whose data ends by the campaign start")
        version_as_of, as_of = as_of, start
    else:
        as_of = as_of or data_cfg.coupon_split_date
    version_as_of = version_as_of or as_of
    ds.check_as_of(as_of, f"campaign {campaign_id}'s start" if campaign_id is not None
                   else "as-of date")
    if version_as_of != as_of:
        ds.check_as_of(version_as_of)
    if model_name == "coupon":
        pairs = campaigns_to_score(ds, as_of, campaign_id)
        if pairs.empty:
            raise GrowthError(f"no campaign starts on or after {as_of} in {ds.source}"
                              if campaign_id is None else
                              f"campaign {campaign_id} has no recipients in {s.CAMPAIGNS} and no "
                              f"household has a purchase before its start")
    with tempfile.TemporaryDirectory() as tmp:
        model, version = load_for_date(model_name, version_as_of, ds, Path(tmp), horizon_days,
                                       data_cfg)
    try:
        rows = (churn_scores(ds, model, as_of, data_cfg) if model_name == "churn"
                else coupon_scores(ds, model, pairs, data_cfg))
    except MissingFeatures as exc:
        raise GrowthError(f"{model_name} v{version} was trained on features that "
                          f"{ds.source} with this data config does not give: {exc.missing}; "
                          "pass the --data-config it was trained with (features such as "
                          "dept_share_* follow its settings), or train "
                          f"{model_name} on this data and config") from exc
    table = pa.Table.from_pandas(rows, preserve_index=False)
    meta = {b"model_name": model_name.encode(), b"model_version": str(version).encode(),
            b"data_end": str(model.meta["data_end"]).encode(),
            b"as_of": as_of.isoformat().encode()}
    if version_as_of != as_of:
        meta[b"version_as_of"] = version_as_of.isoformat().encode()
    horizon = int(model.meta["config"]["horizon_days"]) if model_name == "churn" else None
    if horizon is not None:
        meta[b"horizon_days"] = str(horizon).encode()
    meta.update(registry.gate_metadata(model_name, version))
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}),
                   out)
    return Scored(rows, version, as_of, horizon)
