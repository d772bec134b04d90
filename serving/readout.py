"""Campaign readout: how an audience's treated households did against its control group.

An audience (``growth audience`` or ``POST /audience``, CSV or JSON) holds a random control
group that was not contacted. Once the campaign has run and its transactions are in the data,
``readout`` compares the groups over a window [start, end):

- outcome ``visit`` (a retention campaign, e.g. a churn audience): the household bought
  anything in the window;
- outcome ``redeem`` (a coupon campaign): it redeemed a coupon of that campaign in the
  window (needs the ``coupon_redemptions`` table);
- both: spend per household (sum of ``sales_value``) in the window.

Figures: each group's response rate; the uplift (treated minus control) with Newcombe's
hybrid score interval (method 10 of Newcombe 1998) and the two-sided p-value of the pooled
two-proportion z-test; incremental responders (uplift x treated households); the spend
uplift per household with Welch's interval (none when a group has fewer than two households
or neither group's spend varies). Households of the audience with no transaction
in the window count as non-responders with spend 0: nobody is dropped.

When the audience says each household's score decile (JSON always, CSV when it has a ``decile``
column), the readout is also given per decile: where the campaign worked (the top deciles, or
all of them) decides how deep the next one should go, and the control group's rates by decile
show whether the model's ranking held. Each decile's interval is its own (no adjustment for
ten comparisons) and is wide where its control group is small.

A readout of campaign C checks the audience against who the data says received C (the
``campaigns`` table): control households that received it mean the control group was
contacted, and treated households that did not could not respond; either way the difference is
not the campaign's effect on this audience, and the readout warns (its figures still follow).
The ``verdict`` says in one sentence what the figures allow a marketer to conclude.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from features import schema as s
from features.dataset import Dataset
from features.household import sql_date
from features.labels import check_covers
from features.sources import DataContractError, GrowthError
from serving.audience import (
    CONTROL,
    DECILE,
    SCORE,
    csv_rows,
    parse_household_id,
    read_audience_json,
)

RESPONDED = "responded"
SPEND = "spend"
Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class AudienceFile:
    path: Path
    household_ids: np.ndarray  # int64, unique
    control: np.ndarray  # bool
    decile: np.ndarray | None = None  # int, 1 = highest scores; None if the file lacks it
    score: np.ndarray | None = None  # float
    model: str | None = None  # JSON audiences say what they were built from
    campaign_id: int | None = None
    as_of: date | None = None


def read_audience(path: Path) -> AudienceFile:
    """An audience file as ``growth audience`` or ``POST /audience`` writes it: CSV (columns
    ``household_id`` and ``control``, 0 or 1) or JSON (the API's ``AudienceResponse``)."""
    if not path.is_file():
        raise GrowthError(f"{path}: " + ("a folder, not an audience file" if path.is_dir()
                                         else "no such audience file"))
    if path.suffix.lower() == ".json":
        body = read_audience_json(path)
        members = body.households
        for i, m in enumerate(members):
            where = f"{path}, households[{i}]"
            parse_household_id(str(m.household_id), where)
            _checked(where, DECILE, str(m.decile))
            _checked(where, SCORE, repr(m.score))
        found = AudienceFile(
            path, np.array([m.household_id for m in members], dtype=np.int64),
            np.array([m.control for m in members], dtype=bool),
            np.array([m.decile for m in members], dtype=np.int64),
            np.array([m.score for m in members], dtype=float),
            body.model, body.campaign_id, body.as_of)
    elif path.suffix.lower() == ".csv":
        found = _read_csv(path)
    else:
        raise GrowthError(f"{path}: expected an audience file ending in .csv or .json")
    repeated = found.household_ids[pd.Index(found.household_ids).duplicated()]
    if len(repeated):
        dup = repeated[0]
        raise GrowthError(f"{path}: household {dup} is listed more than once; an audience "
                          "lists each household once")
    return found


def _read_csv(path: Path) -> AudienceFile:
    rows = csv_rows(path)
    if not rows:
        raise GrowthError(f"{path}: empty; expected an audience CSV as growth audience or "
                          "POST /audience writes it")
    (_, names), body = rows[0], rows[1:]
    for column in (s.HOUSEHOLD_ID, CONTROL):
        if column not in names:
            raise GrowthError(f"{path}: no column {column!r} (columns: {', '.join(names)}); "
                              "expected an audience CSV as growth audience or POST /audience "
                              "writes it")
    at = {name: i for i, name in enumerate(names)}
    ids, control, decile, score = [], [], [], []
    for line, row in body:
        where = f"{path}, line {line}"
        if len(row) != len(names):
            raise GrowthError(f"{where}: {len(row)} fields, but the header names {len(names)}")
        ids.append(parse_household_id(row[at[s.HOUSEHOLD_ID]], where))
        if row[at[CONTROL]] not in ("0", "1"):
            raise GrowthError(f"{where}: {CONTROL} must be 0 (treated) or 1 (control), got "
                              f"{row[at[CONTROL]]!r}")
        control.append(row[at[CONTROL]] == "1")
        if DECILE in at:
            decile.append(int(_checked(where, DECILE, row[at[DECILE]])))
        if SCORE in at:
            score.append(float(_checked(where, SCORE, row[at[SCORE]])))
    return AudienceFile(path, np.array(ids, dtype=np.int64), np.array(control, dtype=bool),
                        np.array(decile, dtype=np.int64) if DECILE in at else None,
                        np.array(score, dtype=float) if SCORE in at else None)


def _is_probability(value: str) -> bool:
    try:
        return 0.0 <= float(value) <= 1.0  # False for nan
    except ValueError:
        return False


CHECKS = {DECILE: ("an integer from 1 to 10",
                   lambda v: v.isascii() and v.isdigit() and 1 <= int(v) <= 10),
          SCORE: ("a probability from 0 to 1", _is_probability)}


def _checked(where: str, column: str, value: str) -> str:
    """``value`` if it is what ``column`` holds; else a GrowthError saying ``where``."""
    expected, valid = CHECKS[column]
    if not valid(value):
        raise GrowthError(f"{where}: {column} must be {expected}, got {value!r}")
    return value


@dataclass(frozen=True)
class Group:
    households: int
    responders: int
    rate: float
    spend_per_household: float


@dataclass(frozen=True)
class Band:
    """One score decile of the audience."""
    decile: int
    mean_score: float | None  # None when the file has no scores
    treated: Group
    control: Group
    uplift: float | None  # None when either group has no household in this decile
    uplift_ci95: tuple[float, float] | None


@dataclass(frozen=True)
class Readout:
    audience: str
    outcome: str  # "visit" or "redeem"
    campaign_id: int | None
    start: date
    end: date  # exclusive
    treated: Group
    control: Group
    uplift: float  # treated rate - control rate
    uplift_ci95: tuple[float, float]
    relative_uplift: float | None  # uplift / control rate; None when the control rate is 0
    p_value: float
    incremental_responders: float
    incremental_responders_ci95: tuple[float, float]
    spend_uplift: float
    spend_uplift_ci95: tuple[float, float] | None  # None with fewer than 2 in a group
    by_decile: list[Band]  # empty when the audience does not say its households' deciles
    # with a campaign and the campaigns table (else None): who the data says received it
    control_received: int | None  # control households recorded as recipients
    treated_not_received: int | None  # treated households not recorded as recipients
    verdict: str  # one sentence a marketer can act on
    warnings: list[str]  # the figures are not the campaign's effect on this audience
    notes: list[str]  # what the readout could not check (a CSV's date, what it was built for)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2) + "\n"


def wilson(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion x / n."""
    centre = (x + z * z / 2) / (n + z * z)
    half = z * math.sqrt(x * (n - x) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1, z), wilson(x2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when both rates are 0 or 1)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else float(2 * stats.norm.sf(abs(x1 / n1 - x2 / n2) / se))


def _group(responded: np.ndarray, spend: np.ndarray) -> Group:
    n = len(responded)
    return Group(n, int(responded.sum()), float(responded.mean()) if n else 0.0,
                 float(spend.mean()) if n else 0.0)


def _bands(audience: AudienceFile, responded: np.ndarray, spend: np.ndarray) -> list[Band]:
    if audience.decile is None:
        return []
    bands = []
    for decile in np.unique(audience.decile):
        here = audience.decile == decile
        t, c = here & ~audience.control, here & audience.control
        tr, co = _group(responded[t], spend[t]), _group(responded[c], spend[c])
        both = tr.households > 0 and co.households > 0
        bands.append(Band(
            decile=int(decile),
            mean_score=None if audience.score is None else float(audience.score[here].mean()),
            treated=tr, control=co, uplift=tr.rate - co.rate if both else None,
            uplift_ci95=(newcombe(tr.responders, tr.households, co.responders, co.households)
                         if both else None)))
    return bands


def outcomes(ds: Dataset, household_ids: np.ndarray, start: date, end: date,
             campaign_id: int | None) -> pd.DataFrame:
    """``household_id, responded, spend`` for every household of the audience over
    [start, end): a visit, or with ``campaign_id`` a redemption of that campaign."""
    h, ts = s.HOUSEHOLD_ID, s.TRANSACTION_TIMESTAMP
    lo, hi = f"CAST({sql_date(start)} AS TIMESTAMP)", f"CAST({sql_date(end)} AS TIMESTAMP)"
    spend = (f"SELECT {h}, count(*) AS lines, sum({s.SALES_VALUE}) AS {SPEND} "
             f"FROM {s.TRANSACTIONS} WHERE {ts} >= {lo} AND {ts} < {hi} GROUP BY {h}")
    if campaign_id is None:
        responded = "coalesce(t.lines, 0) > 0"
        redeemed = ""
    else:
        responded = "r.redemptions IS NOT NULL"
        redeemed = (f"LEFT JOIN (SELECT {h}, count(*) AS redemptions FROM {s.COUPON_REDEMPTIONS} "
                    f"WHERE {s.CAMPAIGN_ID} = {int(campaign_id)} "
                    f"AND {s.REDEMPTION_DATE} >= {lo} AND {s.REDEMPTION_DATE} < {hi} "
                    f"GROUP BY {h}) r USING ({h})")
    frame = pd.DataFrame({h: household_ids})
    return ds.df_with(f"""
        SELECT a.{h}, {responded} AS {RESPONDED}, coalesce(t.{SPEND}, 0.0) AS {SPEND}
        FROM audience a LEFT JOIN ({spend}) t USING ({h}) {redeemed}""", audience=frame)


def received(ds: Dataset, household_ids: np.ndarray, campaign_id: int) -> np.ndarray | None:
    """Whether the ``campaigns`` table lists each household as a recipient of the campaign;
    None when the data has no such table."""
    if not ds.has(s.CAMPAIGNS):
        return None
    got = ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID} FROM {s.CAMPAIGNS} WHERE {s.CAMPAIGN_ID} = ?",
                [int(campaign_id)])
    return np.isin(household_ids, got[s.HOUSEHOLD_ID].to_numpy())


def verdict(uplift: float, ci95: tuple[float, float], p_value: float,
            contacted: str | None = None, unsent: str | None = None) -> str:
    """One sentence on what the uplift allows. ``contacted`` says that the campaign went to
    control households (the comparison then tests nothing), ``unsent`` that it never went to
    some treated ones (the figures are then of the audience as it was contacted)."""
    lo, hi = (x * 100 for x in ci95)
    interval = f"95% interval {lo:+.1f} to {hi:+.1f}"
    if contacted:
        return (f"not a test of this audience: {' and '.join(filter(None, (contacted, unsent)))}"
                f", so the {uplift * 100:+.1f} points ({interval}) are not the campaign's "
                "effect on it")
    if lo > 0:
        said = (f"the campaign raised the response rate by {uplift * 100:.1f} points "
                f"({interval}, p = {p_value:.2g})")
    elif hi < 0:
        said = (f"the treated group responded less than the control group: "
                f"{uplift * 100:+.1f} points ({interval}, p = {p_value:.2g})")
    else:
        said = (f"no detectable effect: the 95% interval ({lo:+.1f} to {hi:+.1f} points) "
                f"includes 0 (p = {p_value:.2g})")
    return said if not unsent else (f"{said}; but {unsent}: the figures are of the audience "
                                    "as it was contacted, not of the campaign reaching every "
                                    "treated household")


def _notes(audience: AudienceFile, campaign: int | None, start: date, given: bool) -> list[str]:
    """What the readout cannot check from the audience file itself (a CSV's)."""
    notes, name = [], str(audience.path)
    if campaign is None and audience.model != "churn":
        built = ("a CSV, which does not say what it was built for" if audience.model is None
                 else f"a {audience.model} audience that names no campaign")
        notes.append(f"{name} is {built}: this readout counts visits (any purchase); a coupon "
                     "campaign's readout needs --campaign-id C")
    if audience.as_of is None:
        used = "--start" if given else f"the first day of campaign {campaign}"
        notes.append(f"{name} is a CSV, which does not record the day it was built: the window "
                     "must start on or after the day the audience was built and contacted; "
                     f"this one starts on {start} ({used})")
    return notes


def campaign_window(ds: Dataset, campaign_id: int) -> tuple[date, date]:
    """[start_date, end_date + 1 day) of a campaign in ``campaign_descriptions``."""
    ds.require(s.CAMPAIGN_DESCRIPTIONS, f"the window of campaign {campaign_id}")
    row = ds.df(f"SELECT {s.START_DATE}, {s.END_DATE} FROM {s.CAMPAIGN_DESCRIPTIONS} "
                f"WHERE {s.CAMPAIGN_ID} = ?", [int(campaign_id)])
    if row.empty:
        raise GrowthError(f"campaign {campaign_id} is not in {s.CAMPAIGN_DESCRIPTIONS}")
    start, end = (pd.Timestamp(row.iloc[0][c]).date() for c in (s.START_DATE, s.END_DATE))
    return start, end + timedelta(days=1)


def readout(ds: Dataset, audience: AudienceFile, start: date | None = None,
            days: int | None = None, campaign_id: int | None = None,
            default_days: int = 56) -> Readout:
    """Compare the treated and control households of ``audience`` over [start, start+days).

    With a campaign (``campaign_id``, or the one a JSON coupon audience names) the outcome is
    a redemption of that campaign and the window defaults to the campaign's own dates;
    otherwise it is a visit, from ``start`` (default: the date a JSON audience was scored as
    of) for ``days`` (default ``default_days``)."""
    name = str(audience.path)
    if campaign_id is not None and audience.campaign_id not in (None, campaign_id):
        raise GrowthError(f"--campaign-id {campaign_id}: {name} is the audience of campaign "
                          f"{audience.campaign_id}")
    campaign = campaign_id if campaign_id is not None else audience.campaign_id
    given, origin = start is not None, f"--start {start}"
    if campaign is not None:
        ds.require(s.COUPON_REDEMPTIONS, f"the readout of campaign {campaign}")
        first, stop = campaign_window(ds, campaign)
        if start is None:
            start, origin = first, f"campaign {campaign} began on {first}, which"
        if days is None and start >= stop:
            raise GrowthError(f"--start {start} is after campaign {campaign} ended "
                              f"({stop - timedelta(days=1)}): give --days")
        days = (stop - start).days if days is None else days
    start = audience.as_of if start is None else start
    if start is None:
        raise GrowthError(f"--start is required: {name} does not say when it was scored "
                          "(a CSV audience); give the day the campaign began")
    if audience.as_of is not None and start < audience.as_of:
        raise GrowthError(f"{origin} is before {name} was scored (as of "
                          f"{audience.as_of}): the campaign cannot have begun earlier")
    ds.check_as_of(start, "--start" if given else "readout start")
    days = default_days if days is None else days
    if days < 1:
        raise GrowthError(f"--days must be at least 1, got {days}")
    try:
        end = start + timedelta(days=days)
    except OverflowError:
        raise GrowthError(f"--days {days} runs past the calendar's end") from None
    try:
        check_covers(ds, end, f"the readout from {start} to {end - timedelta(days=1)}")
    except DataContractError as exc:
        raise DataContractError(f"{exc}: the readout can run once the data (--data DIR) holds "
                                f"transactions through {end - timedelta(days=1)}") from None
    n_control, n_treated = int(audience.control.sum()), int((~audience.control).sum())
    if n_control == 0 or n_treated == 0:
        raise GrowthError(f"{name} has {n_treated} treated and {n_control} control households: "
                          "a readout compares both (build the audience with a control "
                          "fraction above 0)")
    found = outcomes(ds, audience.household_ids, start, end, campaign)
    found = found.set_index(s.HOUSEHOLD_ID).loc[audience.household_ids]  # the file's order
    responded = found[RESPONDED].to_numpy(bool)
    spend = found[SPEND].to_numpy(float)
    t, c = ~audience.control, audience.control
    tr, co = _group(responded[t], spend[t]), _group(responded[c], spend[c])
    lo, hi = newcombe(tr.responders, tr.households, co.responders, co.households)
    uplift = tr.rate - co.rate
    p_value = two_proportion_p(tr.responders, tr.households, co.responders, co.households)
    got = None if campaign is None else received(ds, audience.household_ids, campaign)
    control_got = None if got is None else int((got & c).sum())
    treated_not = None if got is None else int((~got & t).sum())
    contacted = unsent = None
    if control_got:
        contacted = (f"campaign {campaign} went to {control_got:,} of the {co.households:,} "
                     "control households")
    if treated_not:
        unsent = (f"campaign {campaign} never went to {treated_not:,} of the "
                  f"{tr.households:,} treated households")
    warnings = ([f"the control group was contacted: {contacted} "
                 f"({int((got & c & responded).sum()):,} of those responded), so the "
                 "difference between the groups is not the campaign's effect"] if contacted
                else []) + ([f"{unsent} (the data's {s.CAMPAIGNS} table does not list them), "
                             "so those could not redeem its coupons"] if unsent else [])
    notes = _notes(audience, campaign, start, given)
    if campaign is not None and got is None:
        notes.append(f"the data has no {s.CAMPAIGNS} table: whether campaign {campaign} went "
                     "to the treated households only cannot be checked")
    spend_ci = None
    if min(tr.households, co.households) >= 2 and max(spend[t].var(), spend[c].var()) > 0:
        welch = stats.ttest_ind(spend[t], spend[c], equal_var=False)
        ci = welch.confidence_interval(0.95)
        spend_ci = (float(ci.low), float(ci.high)) if np.isfinite(ci.low) else None
    return Readout(
        audience=name, outcome="visit" if campaign is None else "redeem", campaign_id=campaign,
        start=start, end=end, treated=tr, control=co, uplift=uplift, uplift_ci95=(lo, hi),
        relative_uplift=uplift / co.rate if co.rate > 0 else None,
        p_value=p_value,
        incremental_responders=uplift * tr.households,
        incremental_responders_ci95=(lo * tr.households, hi * tr.households),
        spend_uplift=tr.spend_per_household - co.spend_per_household,
        spend_uplift_ci95=spend_ci, by_decile=_bands(audience, responded, spend),
        control_received=control_got, treated_not_received=treated_not,
        verdict=verdict(uplift, (lo, hi), p_value, contacted, unsent),
        warnings=warnings, notes=notes)
