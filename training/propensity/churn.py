"""Churn: training examples from rolling cutoffs, point-in-time features, validation score.

Label: no purchase in ``[cutoff, cutoff + horizon)`` (``features.labels.churn_labels``).
Cutoffs come from ``churn_cutoffs``: all label windows end on or before ``as_of``. The
newest cutoff is the validation fold (early stopping, calibration, the gate metric); the
booster trains on the cutoffs whose label windows end on or before the validation cutoff, so
no training label looks into the validation window.

Features at a cutoff, all reading only rows before it: ``household_features``; cadence
features (recent gaps between visit days, the household's own empirical chance that a gap
outlasts the current silence, active weeks, weekly visits, a Poisson no-visit probability);
a BG/NBD no-visit probability fitted on the cutoff's households; and, when the campaign
tables exist, the campaigns the household received that are running at the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from features import schema as s
from features.config import DataConfig
from features.coupon import campaign_exposure
from features.dataset import Dataset
from features.household import RECENCY, household_features, transactions_before
from features.labels import CHURNED, churn_cutoffs, churn_labels
from features.sources import GrowthError
from training.propensity.baselines import churn_baselines
from training.propensity.bgnbd import bgnbd_probabilities, fit_bgnbd
from training.propensity.bundle import validation_pr_auc
from training.propensity.config import ChurnConfig, load_churn_config
from training.propensity.gbdt import FeatureSpec, Report
from training.propensity.task import GATE_METRIC, TrainingSet

MODEL_NAME = "churn"
CUTOFF = "cutoff"
NOT_FEATURES = (s.HOUSEHOLD_ID, CUTOFF, CHURNED)
__all__ = [
    "GATE_METRIC",
    "ChurnData",
    "churn_data",
    "churn_features",
    "examples_at",
    "load_churn_config",
    "training_set",
    "validation_score",
]


def cadence_features(ds: Dataset, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """One row per household active before ``cutoff``: visit-rhythm features for churn."""
    h = s.HOUSEHOLD_ID
    horizon = int(horizon_days)
    weekly = ", ".join(f"coalesce(sum(baskets) FILTER (WHERE (age_days - 1) // 7 = {k}), 0) "
                       f"AS baskets_week_{k}" for k in range(8))
    return ds.df(f"""
    WITH t AS ({transactions_before(cutoff)}),
    days AS (SELECT {h}, age_days, count(DISTINCT {s.BASKET_ID}) AS baskets,
                    sum(cents) AS cents
             FROM t GROUP BY 1, 2),
    gaps AS (SELECT {h}, age_days,
                    lead(age_days) OVER (PARTITION BY {h} ORDER BY age_days) - age_days AS gap,
                    row_number() OVER (PARTITION BY {h} ORDER BY age_days) AS nth
             FROM days),
    r AS (SELECT {h}, min(age_days) AS recency, max(age_days) AS first_age FROM days GROUP BY 1),
    g AS (SELECT gaps.{h},
                 max(gap) FILTER (WHERE nth = 1) AS last_gap_days,
                 avg(gap) FILTER (WHERE nth <= 3) AS recent_gap_mean_days,
                 max(gap) FILTER (WHERE nth <= 5) AS recent_gap_max_days,
                 quantile_cont(gap, 0.9) AS gap_p90_days,
                 CAST(count(*) FILTER (WHERE gap > r.recency) AS DOUBLE)
                     / nullif(count(gap), 0) AS gap_survival_at_recency,
                 CAST(count(*) FILTER (WHERE gap >= r.recency + {horizon}) AS DOUBLE)
                     / nullif(count(*) FILTER (WHERE gap > r.recency), 0)
                     AS gap_survival_beyond_horizon,
                 count(*) FILTER (WHERE gap >= {horizon}) AS long_gaps,
                 (sum(greatest(gap - {horizon}, 0))
                  + greatest(any_value(r.recency) - {horizon}, 0))
                     / greatest(any_value(r.first_age) - {horizon}, 1.0) AS idle_window_rate
          FROM gaps JOIN r USING ({h}) WHERE gap IS NOT NULL GROUP BY 1),
    w AS (SELECT {h},
                 count(DISTINCT (age_days - 1) // 7) FILTER (WHERE age_days <= 91)
                     AS active_weeks_13w,
                 count(DISTINCT (age_days - 1) // 7) FILTER (WHERE age_days <= 182)
                     AS active_weeks_26w,
                 count(*) FILTER (WHERE age_days <= 91) AS visit_days_13w,
                 {weekly},
                 coalesce(sum(baskets) FILTER (WHERE age_days <= 14), 0) AS baskets_2w,
                 coalesce(sum(baskets) FILTER (WHERE age_days > 28 AND age_days <= 56), 0)
                     AS baskets_prev_4w,
                 coalesce(sum(cents) FILTER (WHERE age_days <= 14), 0) / 100.0 AS spend_2w,
                 coalesce(sum(cents) FILTER (WHERE age_days > 28 AND age_days <= 56), 0)
                     / 100.0 AS spend_prev_4w
          FROM days GROUP BY 1)
    SELECT {h}, g.last_gap_days, g.recent_gap_mean_days, g.recent_gap_max_days,
           g.gap_p90_days, g.gap_survival_at_recency, g.gap_survival_beyond_horizon,
           coalesce(g.long_gaps, 0) AS long_gaps, g.idle_window_rate,
           CAST(r.recency AS DOUBLE) / nullif(g.recent_gap_mean_days, 0)
               AS recency_over_recent_gap,
           w.active_weeks_13w, w.active_weeks_26w, w.visit_days_13w,
           {", ".join(f"w.baskets_week_{k}" for k in range(8))},
           w.baskets_2w, w.baskets_prev_4w, w.spend_2w, w.spend_prev_4w,
           exp(-{horizon} * w.visit_days_13w / least(91.0, r.first_age))
               AS poisson_no_visit
    FROM r JOIN w USING ({h}) LEFT JOIN g USING ({h})
    ORDER BY {h}""")


def churn_features(ds: Dataset, cutoff: date, horizon_days: int,
                   data_cfg: DataConfig | None = None, types_before: date | None = None
                   ) -> pd.DataFrame:
    """Household and cadence features as of ``cutoff`` for every household active before it.
    ``types_before``: the model's data end, which fixes the campaign-type columns (see
    :func:`features.coupon.campaign_exposure`); default ``cutoff``."""
    frame = household_features(ds, cutoff, data_cfg).merge(
        cadence_features(ds, cutoff, horizon_days), on=s.HOUSEHOLD_ID, how="left")
    x = frame["n_gaps"].to_numpy(float)  # repeat visit days
    t = frame["tenure_days"].to_numpy(float) / 7
    t_x = t - frame[RECENCY].to_numpy(float) / 7
    frame["bgnbd_p_alive"], frame["bgnbd_no_visit"] = bgnbd_probabilities(
        fit_bgnbd(x, t_x, t), x, t_x, t, horizon_days / 7)
    exposure = campaign_exposure(ds, cutoff, types_before)
    if exposure is None:
        return frame
    frame = frame.merge(exposure, on=s.HOUSEHOLD_ID, how="left")
    counts = [c for c in exposure.columns if c.startswith("running_campaigns")]
    frame[counts] = frame[counts].fillna(0)
    return frame


def examples_at(ds: Dataset, cutoff: date, horizon_days: int,
                data_cfg: DataConfig | None = None, types_before: date | None = None
                ) -> pd.DataFrame:
    """Features as of ``cutoff`` with the churn label of the window that starts there."""
    labels = churn_labels(ds, cutoff, horizon_days)
    frame = churn_features(ds, cutoff, horizon_days, data_cfg, types_before).merge(
        labels, on=s.HOUSEHOLD_ID)
    frame.insert(1, CUTOFF, pd.Timestamp(cutoff))
    return frame


@dataclass
class ChurnData:
    train: pd.DataFrame  # cutoffs whose label windows end by the validation cutoff
    valid: pd.DataFrame  # the newest cutoff
    spec: FeatureSpec
    validation_cutoff: date


_CACHE: dict[tuple, tuple[Dataset, ChurnData]] = {}


def churn_data(ds: Dataset, cfg: ChurnConfig, data_cfg: DataConfig | None = None) -> ChurnData:
    """Training and validation examples (memoised per dataset and settings, so a tuner's
    trials build them once). Cutoffs whose label windows overlap the validation window are
    skipped."""
    key = (id(ds), cfg.as_of, cfg.horizon_days, cfg.n_cutoffs, cfg.step_days,
           (data_cfg or DataConfig()).model_dump_json())
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is ds:
        return hit[1]
    cutoffs = churn_cutoffs(cfg.as_of, cfg.horizon_days, cfg.n_cutoffs, cfg.step_days)
    first, last = ds.time_range()
    if last.date() < cfg.as_of - timedelta(days=1):
        raise GrowthError(f"churn training as of {cfg.as_of} needs transactions through "
                          f"{cfg.as_of - timedelta(days=1)} (every training label window ends "
                          f"by as_of), but {ds.source} ends on {last.date()}")
    cutoffs = [c for c in cutoffs if c > first.date()]
    before_data = cfg.n_cutoffs - len(cutoffs)
    if not cutoffs:
        raise GrowthError(f"churn as of {cfg.as_of} with a {cfg.horizon_days}-day horizon "
                          f"needs purchases before {cfg.as_of - timedelta(cfg.horizon_days)}; "
                          f"{ds.source} starts on {first.date()}")
    valid_cutoff = cutoffs[0]
    train_cutoffs = [c for c in cutoffs
                     if c + timedelta(days=cfg.horizon_days) <= valid_cutoff]
    if not train_cutoffs:
        raise GrowthError(
            f"no training cutoff: with as_of {cfg.as_of}, horizon {cfg.horizon_days} days, "
            f"{cfg.n_cutoffs} cutoffs every {cfg.step_days} days and data from {first.date()}, "
            + _no_training_cutoff(cfg, valid_cutoff, first.date(), last.date(), before_data))
    # every cutoff gets the campaign-type columns of the model's data end (as_of)
    train = pd.concat([examples_at(ds, c, cfg.horizon_days, data_cfg, cfg.as_of)
                       for c in sorted(train_cutoffs)], ignore_index=True)
    valid = examples_at(ds, valid_cutoff, cfg.horizon_days, data_cfg, cfg.as_of)
    for name, part in ((f"training cutoffs {min(train_cutoffs)}..{max(train_cutoffs)}", train),
                       (f"validation cutoff {valid_cutoff}", valid)):
        if part[CHURNED].nunique() < 2:
            raise GrowthError(
                f"churn as of {cfg.as_of}: the {name} need both churned and retained "
                f"households; {len(part):,} rows have {int(part[CHURNED].sum()):,} churned "
                f"({ds.source} runs from {first.date()} to {last.date()}): move --as-of")
    spec = FeatureSpec.infer(pd.concat([train, valid], ignore_index=True),
                             exclude=NOT_FEATURES)
    data = ChurnData(train, valid, spec, valid_cutoff)
    _CACHE.clear()
    _CACHE[key] = (ds, data)
    return data


def _no_training_cutoff(cfg: ChurnConfig, valid_cutoff: date, first: date, last: date,
                        before_data: int) -> str:
    """Why no cutoff is left for training, and the setting that gives one. A training cutoff
    must fall after the data's first day and by the validation cutoff (as_of - horizon) minus
    the horizon, so that its label window ends before the validation window begins; when that
    day is not after the first, no step_days or n_cutoffs can help."""
    horizon, step = cfg.horizon_days, cfg.step_days
    newest = valid_cutoff - timedelta(days=horizon)  # as_of minus two horizons
    room = (newest - first).days  # days a training cutoff can fall on
    if room <= 0:
        later = next((day for day in _days(cfg.as_of + timedelta(days=1), last)
                      if _trainable(day, horizon, cfg, first)), None)
        shorter = next((h for h in range(horizon - 1, 0, -1)
                        if _trainable(cfg.as_of, h, cfg, first)), None)
        options = ([f"a later --as-of ({later} is the first that gives one)"] if later else []
                   ) + ([f"a shorter --horizon-days ({shorter} is the longest that gives one)"]
                        if shorter else [])
        return (f"the newest training cutoff could be {newest} (as_of minus twice the "
                f"horizon: its label window must end by the validation cutoff {valid_cutoff}), "
                f"which is not after the data's first day; lowering step_days cannot help: use "
                + (" or ".join(options) or f"data that begins before {newest}"))
    skip = -(-horizon // step)  # the first cutoff after the validation one that may train
    if valid_cutoff - timedelta(days=skip * step) > first:  # the cutoffs stop short of it
        return ("every cutoff's label window overlaps the validation window; raise n_cutoffs "
                f"to {skip + 1} or more")
    # the cutoffs step over the days a training cutoff can take: smaller steps land in them
    example = min(room, horizon)
    why = (f"{before_data} of the cutoffs fall before the data begins and the rest overlap "
           "the validation window's labels" if before_data else
           "every cutoff's label window overlaps the validation window and one more would "
           "fall before the data begins")
    return (f"{why}; a training cutoff must fall after {first} and by {newest}: lower "
            f"step_days to {room} or less, with n_cutoffs above horizon_days / step_days "
            f"rounded up (e.g. step_days={example}, n_cutoffs={-(-horizon // example) + 1})")


def _days(start: date, last: date) -> list[date]:
    """``start`` up to the latest as_of the data allows (it must run through as_of - 1)."""
    return [start + timedelta(days=i) for i in range((last - start).days + 2)]


def _trainable(as_of: date, horizon: int, cfg: ChurnConfig, first: date) -> bool:
    """Whether ``as_of`` and ``horizon`` with ``cfg``'s cutoffs give a training cutoff (the
    newest one whose label window ends by the validation cutoff falls after ``first``)."""
    skip = -(-horizon // cfg.step_days)
    newest = as_of - timedelta(days=horizon + skip * cfg.step_days)
    return skip < cfg.n_cutoffs and newest > first


def validation_score(ds: Dataset, cfg: ChurnConfig, report: Report | None = None,
                     data_cfg: DataConfig | None = None) -> float:
    """Validation-fold PR-AUC (higher is better) of a booster fitted with ``cfg``: the metric
    the promotion gate uses. No MLflow logging; ``report(step, value)`` gets the validation
    PR-AUC every ``cfg.report_every`` rounds, and whatever it raises propagates."""
    data = churn_data(ds, cfg, data_cfg)
    return validation_pr_auc(data.train, data.valid, CHURNED, data.spec, cfg, report)


def training_set(ds: Dataset, cfg: ChurnConfig, data_cfg: DataConfig | None = None
                 ) -> TrainingSet:
    """Everything a tracked run needs; the test set is the standard evaluation at ``as_of``
    when the data covers its label window, else None."""
    data = churn_data(ds, cfg, data_cfg)
    _, last = ds.time_range()
    covered = last.date() >= cfg.as_of + timedelta(days=cfg.horizon_days - 1)
    test = examples_at(ds, cfg.as_of, cfg.horizon_days, data_cfg) if covered else None
    return TrainingSet(
        model_name=MODEL_NAME, label=CHURNED, keys=(s.HOUSEHOLD_ID,), train=data.train,
        valid=data.valid, test=test, spec=data.spec, data_end=cfg.as_of,
        baselines=churn_baselines(),
        description={"validation_cutoff": data.validation_cutoff.isoformat(),
                     "training_cutoffs": sorted(str(c.date()) for c in
                                                data.train[CUTOFF].unique()),
                     "train_rows": len(data.train), "valid_rows": len(data.valid),
                     "test_rows": 0 if test is None else len(test),
                     **({} if covered else {"no_test_set": (
                         f"its {cfg.horizon_days}-day label window from {cfg.as_of} runs "
                         f"past the data's last day, {last.date()}")})})
