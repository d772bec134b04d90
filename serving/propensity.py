"""Churn and coupon propensity in the bundle: export (``growth bundle``) and the in-memory
scores the service answers from.

The bundle keeps each champion's booster, calibrator, feature spec and, for a blended
model, its linear part (LightGBM text and JSON, from the registry) and the feature rows
``growth score`` would build as of the snapshot date: churn for every household active
before it, coupon for every campaign's audience as of its start (every household with a
purchase before it, and its recipients), with each row's reason codes (TreeSHAP, blended
with the linear part's contributions, computed once here: about 10 s for the 57k coupon
rows of the embedded data, too slow for every worker's start). The service scores every
row once at start-up with the training code's own ``PropensityModel`` and ``deciles``
(within the population: all households for churn, a campaign's audience for coupon), so
a request is a lookup and its answer equals ``growth score``'s for the same version. A
row's ``as_of`` column is the date its features are computed as of: the snapshot date for
churn, the campaign's start for coupon; answers report it.

A campaign starting before the data's first day (the embedded data's 24, 25 and 26) is not
scored: no household has any purchase history before its start, so every score would be the
same and carry no information (``growth score`` refuses it: ``Dataset.check_as_of``). The
coupon entry of the bundle's manifest records them (``campaigns_before_data``: campaign id ->
start, with ``data_start``), and a request for one is a 400 that says so; a bundle written
before this was recorded answers the unknown-campaign message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s
from features.dataset import Dataset
from features.glossary import glossary
from features.household import RECENCY
from serving.bundle import Bundle
from serving.recommend import RequestError
from serving.schemas import HouseholdScore
from training.propensity.bundle import PropensityModel
from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS

FEATURES = "features.parquet"
AS_OF = "as_of"  # column of FEATURES: the date a row's features are computed as of
# keys of the coupon entry of the manifest: the campaigns left out as starting before the
# data (str(id) -> start, ISO), and the data's first day
BEFORE_DATA, DATA_START = "campaigns_before_data", "data_start"


def campaigns_before_data(ds: Dataset) -> dict[int, date]:
    """The campaigns of ``ds`` that start before its first transaction day, with their
    starts (``Dataset.check_as_of`` refuses such a start, as ``growth score coupon
    --campaign-id`` does). No household has a purchase before it, so scores as of it would
    all be the same (the recipients' empty history) and carry no information."""
    ds.require(s.CAMPAIGN_DESCRIPTIONS, "coupon scoring")
    first = ds.time_range()[0].date()
    starts = ds.df(f"SELECT {s.CAMPAIGN_ID}, {s.START_DATE} FROM {s.CAMPAIGN_DESCRIPTIONS} "
                   f"WHERE {s.START_DATE} < CAST(? AS TIMESTAMP) ORDER BY {s.CAMPAIGN_ID}",
                   [first])
    return {int(c): pd.Timestamp(start).date()
            for c, start in zip(starts[s.CAMPAIGN_ID], starts[s.START_DATE], strict=True)}


def export_propensity(name: str, ds: Dataset, as_of: date, champion: dict[str, Any],
                      model_dir: Path, folder: Path) -> dict[str, Any]:
    """Write the feature rows ``name``'s champion (files in ``model_dir``) scores, with
    their reason codes and the rows' values of them (``reason_1_value``..)."""
    from training.propensity.churn import churn_features
    from training.propensity.coupon import coupon_examples
    from training.propensity.score import campaigns_to_score

    model = PropensityModel.load(model_dir)
    if name == "churn":
        horizon = int(model.meta["config"]["horizon_days"])
        frame = churn_features(ds, as_of, horizon).assign(**{AS_OF: pd.Timestamp(as_of)})
        keys = [s.HOUSEHOLD_ID]
        extra: dict[str, Any] = {"horizon_days": horizon}
    else:
        before = campaigns_before_data(ds)  # not scored: nothing to tell households apart
        pairs = campaigns_to_score(ds, date.min, None)  # every campaign, as of its start
        pairs = pairs[~pairs[s.CAMPAIGN_ID].isin(list(before))].reset_index(drop=True)
        frame = coupon_examples(ds, pairs)
        frame[AS_OF] = frame[s.START_DATE]
        keys = [s.HOUSEHOLD_ID, s.CAMPAIGN_ID]
        extra = {"campaigns": int(frame[s.CAMPAIGN_ID].nunique())}
        if before:
            extra |= {DATA_START: ds.time_range()[0].date().isoformat(),
                      BEFORE_DATA: {str(c): day.isoformat() for c, day in before.items()}}
    rows = frame[keys + [AS_OF, *model.spec.names]].reset_index(drop=True)
    rows.join(model.reasons(rows)).to_parquet(folder / FEATURES, index=False)
    return {"rows": len(frame), **extra}


@dataclass
class Population:
    """Scored households of one population, best first (the order deciles follow), with
    the date their features are as of and what the model's reason codes mean. A
    household's answer is built when asked for (:meth:`scores`): an object per row built
    at start-up cost each worker 1.4 GB and 28 s more for the 1.1 million coupon rows of a
    50,000-household retailer (``benchmarks/propensity_population.py``)."""

    as_of: date
    household_ids: np.ndarray
    probabilities: np.ndarray
    deciles: np.ndarray
    reasons: list[list[str]]
    glossary: dict[str, str] = field(default_factory=dict)  # feature name -> plain English
    # days from each household's last purchase to as_of, best first (None: no purchase)
    days_since_purchase: list[int | None] = field(default_factory=list)
    # each reason's value as text, best first, like reasons (empty: a bundle without them)
    reason_values: list[list[str]] = field(default_factory=list)
    # positions that sort household_ids: a household's row by binary search
    _by_id: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = np.argsort(self.household_ids, kind="stable")

    def rows(self, household_ids: np.ndarray) -> np.ndarray:
        """Each household's position (best first), -1 when it is not in the population."""
        ids, by_id = self.household_ids, self._by_id
        if not len(ids):
            return np.full(len(household_ids), -1)
        found = by_id[np.searchsorted(ids, household_ids, sorter=by_id).clip(max=len(ids) - 1)]
        return np.where(ids[found] == household_ids, found, -1)

    def reason_glossary(self, reasons: Iterable[list[str]]) -> dict[str, str]:
        """The glossary entries of the reason codes in ``reasons``, in order of appearance."""
        return {name: self.glossary.get(name, name) for codes in reasons for name in codes}

    def scores(self, household_ids: list[int]) -> tuple[list[HouseholdScore], list[int]]:
        """(scores of the known households in request order, the unknown ones)."""
        asked = np.asarray(list(dict.fromkeys(household_ids)), dtype=np.int64)
        rows = self.rows(asked)
        hit = rows >= 0
        at = rows[hit]
        values = self.reason_values
        known = [HouseholdScore(household_id=h, probability=p, decile=d,
                                reasons=list(self.reasons[r]),
                                reason_values=list(values[r]) if values else [])
                 for h, p, d, r in zip(asked[hit].tolist(), self.probabilities[at].tolist(),
                                       self.deciles[at].tolist(), at.tolist(), strict=True)]
        return known, asked[~hit].tolist()


def _population(as_of: date, households: np.ndarray, probability: np.ndarray,
                rows: pd.DataFrame, phrases: dict[str, str]) -> Population:
    """``rows``: the population's reason codes, their values when the bundle has them and,
    when the model reads it, recency."""
    from training.propensity.evaluate import deciles

    decile = deciles(probability)
    order = np.argsort(-probability, kind="stable")  # the order deciles() ranks by
    codes = rows[list(REASON_COLUMNS)].to_numpy().tolist()
    has_values = set(VALUE_COLUMNS) <= set(rows.columns)
    values = (rows[list(VALUE_COLUMNS)].to_numpy().tolist() if has_values
              else [[]] * len(codes))
    recency = ([None if pd.isna(d) else int(d) for d in rows[RECENCY].to_numpy()[order]]
               if RECENCY in rows.columns else [])
    return Population(as_of, households[order], probability[order], decile[order],
                      [codes[i] for i in order], phrases, recency,
                      [values[i] for i in order] if has_values else [])


class PropensityStore:
    """One propensity model's scores by population: churn as of the snapshot date,
    coupon as of each campaign's start."""

    @classmethod
    def of(cls, bundle: Bundle, name: str) -> PropensityStore:
        """Model ``name`` of a verified bundle."""
        return cls(name, bundle.path / name, bundle.versions[name],
                   bundle.manifest["models"][name])

    def __init__(self, name: str, folder: Path, version: int,
                 entry: dict[str, Any] | None = None) -> None:
        """``entry``: the model's entry in the bundle's manifest (older bundles record no
        campaigns left out)."""
        self.name = name
        self.version = version
        self.model = PropensityModel.load(folder / "model")
        self.data_end = date.fromisoformat(str(self.model.meta["data_end"]))
        entry = entry or {}
        self.data_start = (date.fromisoformat(entry[DATA_START]) if DATA_START in entry
                           else None)
        self.before_data = {int(c): date.fromisoformat(day)
                            for c, day in entry.get(BEFORE_DATA, {}).items()}
        self.glossary = glossary(self.model.spec.names)
        frame = pd.read_parquet(folder / FEATURES)
        probability = self.model.predict(frame)
        rows = frame[[c for c in (*REASON_COLUMNS, *VALUE_COLUMNS, RECENCY)
                      if c in frame.columns]]
        households = frame[s.HOUSEHOLD_ID].to_numpy(np.int64)
        as_of = frame[AS_OF].dt.date.to_numpy()  # one date per population
        if name == "churn":
            self._populations = {None: _population(as_of[0], households, probability,
                                                   rows, self.glossary)}
        else:
            campaign = frame[s.CAMPAIGN_ID].to_numpy(np.int64)
            self._populations = {
                int(c): _population(as_of[at[0]], households[at], probability[at],
                                    rows.iloc[at].reset_index(drop=True), self.glossary)
                for c in np.unique(campaign) for at in [np.flatnonzero(campaign == c)]}

    def population(self, campaign_id: int | None) -> Population:
        """Churn: every household; coupon: campaign ``campaign_id``'s audience."""
        if self.name == "churn":
            if campaign_id is not None:
                raise RequestError("campaign_id", "only applies to model coupon; leave it out "
                                                  "for churn")
            return self._populations[None]
        found = self._populations.get(campaign_id)
        if found is None:
            known = sorted(self._populations)
            start = self.before_data.get(campaign_id)
            if start is not None and self.data_start is not None:
                raise RequestError("campaign_id", (
                    f"campaign {campaign_id} starts on {start}, before the data's first day "
                    f"{self.data_start}: no household has any purchase history before its "
                    "start, so its scores would carry no information and it is not scored; "
                    f"campaigns that can be asked for: {known}"))
            raise RequestError("campaign_id", f"unknown campaign {campaign_id}; expected one "
                                              f"of {known}")
        return found
