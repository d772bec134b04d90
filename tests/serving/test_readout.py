"""Campaign readout (serving/readout.py, ``growth readout``): treated against control from the
data, with the intervals checked against Newcombe's published figures and a planted effect."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema as s
from features.dataset import load_dataset
from features.sources import GrowthError
from growth.display import print_readout
from serving.audience import DECILE
from serving.readout import newcombe, read_audience, readout, two_proportion_p, wilson
from serving.schemas import AudienceMember, AudienceResponse
from tests.fixtures import tiny_tables, write_folder

START = date(2017, 3, 1)


def test_intervals_match_newcombe_1998() -> None:
    # Newcombe, Statistics in Medicine 17 (1998): Wilson (873-890, method 3) and the hybrid
    # score interval of a difference (873-890 and 1998b, method 10), to 4 decimals.
    for (x, n), expected in (((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)),
                             ((0, 20), (0.0, 0.1611)), ((1, 29), (0.0061, 0.1718))):
        assert wilson(x, n) == pytest.approx(expected, abs=5e-5)
    for args, expected in (((56, 70, 48, 80), (0.0524, 0.3339)),
                           ((9, 10, 3, 10), (0.1705, 0.8090)),
                           ((6, 7, 2, 7), (0.0582, 0.8062)),
                           ((5, 56, 0, 29), (-0.0381, 0.1926))):
        assert newcombe(*args) == pytest.approx(expected, abs=5e-5)
    assert two_proportion_p(30, 100, 30, 100) == 1.0
    assert two_proportion_p(0, 50, 0, 60) == 1.0
    assert two_proportion_p(60, 100, 30, 100) < 1e-4


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """3,000 households that shopped in January; in March (the window) a treated household
    visits with chance 0.5 and spends 30, a control household with chance 0.3 and spends 20.
    The effect lies in score decile 1 (treated 0.6, control 0.2); decile 2 has none (0.4 and
    0.4). Households 9001-9010 of the audience (decile 2) never shop at all."""
    rng = np.random.default_rng(0)
    n = 3000
    truth = pd.DataFrame({s.HOUSEHOLD_ID: np.arange(1, n + 1),
                          "control": rng.random(n) < 0.2,
                          DECILE: np.repeat([1, 2], n // 2)})
    chance = np.where(truth[DECILE] == 1, np.where(truth["control"], 0.2, 0.6), 0.4)
    truth["visits"] = rng.random(n) < chance
    absent = pd.DataFrame({s.HOUSEHOLD_ID: np.arange(9001, 9011), "control": [0, 1] * 5,
                           DECILE: 2, "visits": False})
    truth = pd.concat([truth, absent], ignore_index=True)
    truth["control"] = truth["control"].astype(bool)
    before = pd.DataFrame({s.HOUSEHOLD_ID: np.arange(1, n + 1),
                           s.TRANSACTION_TIMESTAMP: pd.Timestamp("2017-01-10 10:00"),
                           s.SALES_VALUE: 5.0})
    shoppers = truth[truth["visits"]]
    during = pd.DataFrame({s.HOUSEHOLD_ID: shoppers[s.HOUSEHOLD_ID],
                           s.TRANSACTION_TIMESTAMP: pd.Timestamp("2017-03-10 10:00"),
                           s.SALES_VALUE: np.where(shoppers["control"], 20.0, 30.0)})
    after = pd.DataFrame({s.HOUSEHOLD_ID: [1], s.TRANSACTION_TIMESTAMP:
                          [pd.Timestamp("2017-04-15 10:00")], s.SALES_VALUE: [1.0]})
    tx = pd.concat([before, during, after], ignore_index=True)
    tx[s.BASKET_ID] = np.arange(len(tx)) + 1
    tx[s.PRODUCT_ID] = 10
    tx[s.QUANTITY] = 1
    tables = tiny_tables()
    tables[s.TRANSACTIONS] = tx
    tables[s.CAMPAIGN_DESCRIPTIONS] = pd.DataFrame({
        s.CAMPAIGN_ID: [7], s.CAMPAIGN_TYPE: ["Type A"],
        s.START_DATE: [pd.Timestamp("2017-03-01")], s.END_DATE: [pd.Timestamp("2017-03-14")]})
    tables[s.CAMPAIGNS] = pd.DataFrame({s.HOUSEHOLD_ID: [1, 2, 3], s.CAMPAIGN_ID: [7, 7, 7]})
    tables[s.COUPONS] = pd.DataFrame({s.COUPON_UPC: [900], s.PRODUCT_ID: [10],
                                      s.CAMPAIGN_ID: [7]})
    tables[s.COUPON_REDEMPTIONS] = pd.DataFrame({
        s.HOUSEHOLD_ID: [1, 1, 2, 3, 4],
        s.COUPON_UPC: [900] * 5, s.CAMPAIGN_ID: [7, 7, 7, 7, 8],
        s.REDEMPTION_DATE: pd.to_datetime(["2017-03-02", "2017-03-05", "2017-03-14",
                                           "2017-03-15", "2017-03-03"])})
    folder = write_folder(tmp_path_factory.mktemp("readout") / "data", tables)
    return folder, truth


def write_csv(path: Path, truth: pd.DataFrame) -> Path:
    frame = truth[[s.HOUSEHOLD_ID, DECILE]].assign(
        rank=np.arange(len(truth)) + 1, score=np.where(truth[DECILE] == 1, 0.8, 0.3),
        control=truth["control"].astype(int))
    frame.to_csv(path, index=False)
    return path


def write_json(path: Path, ids: list[int], control: list[bool], as_of: date,
               model: str = "coupon", campaign_id: int | None = 7) -> Path:
    members = [AudienceMember(household_id=h, rank=i + 1, score=0.5, decile=1, reasons=[],
                              control=c)
               for i, (h, c) in enumerate(zip(ids, control, strict=True))]
    body = AudienceResponse(model=model, model_version=1, campaign_id=campaign_id, as_of=as_of,
                            size=len(ids), treated=control.count(False),
                            control=control.count(True), expected_responders=1.0,
                            households=members)
    path.write_text(body.model_dump_json())
    return path


def test_visits_recover_the_planted_uplift(planted, tmp_path: Path) -> None:
    folder, truth = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    r = readout(ds, read_audience(write_csv(tmp_path / "a.csv", truth)), START, 31)
    treated, control = truth[~truth["control"]], truth[truth["control"]]
    assert (r.outcome, r.start, r.end) == ("visit", START, date(2017, 4, 1))
    assert (r.treated.households, r.control.households) == (len(treated), len(control))
    assert r.treated.responders == treated["visits"].sum()  # the absent ones count, as 0
    assert r.control.responders == control["visits"].sum()
    assert r.treated.spend_per_household == pytest.approx(30 * treated["visits"].mean())
    assert r.control.spend_per_household == pytest.approx(20 * control["visits"].mean())
    assert r.uplift == pytest.approx(treated["visits"].mean() - control["visits"].mean())
    lo, hi = r.uplift_ci95
    assert 0 < lo < 0.2 < hi and r.p_value < 1e-6  # the planted 0.5 - 0.3
    assert r.incremental_responders == pytest.approx(r.uplift * len(treated))
    assert r.spend_uplift_ci95[0] < 30 * 0.5 - 20 * 0.3 < r.spend_uplift_ci95[1]
    # nothing planted in February: no uplift to find, and the interval says so
    quiet = readout(ds, read_audience(tmp_path / "a.csv"), date(2017, 2, 1), 28)
    assert quiet.treated.responders == quiet.control.responders == 0
    assert quiet.uplift == 0 and quiet.p_value == 1.0
    # every visitor of a group spends the same: no spread, so no spend interval (Welch's
    # degrees of freedom are 0/0), not a zero-width one
    visitors = pd.concat([treated[treated["visits"]].head(3), control[control["visits"]].head(3)])
    same = readout(ds, read_audience(write_csv(tmp_path / "same.csv", visitors)), START, 31)
    assert same.spend_uplift == 30 - 20 and same.spend_uplift_ci95 is None


def test_the_readout_by_decile_finds_where_the_effect_lies(planted, tmp_path: Path) -> None:
    folder, truth = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    r = readout(ds, read_audience(write_csv(tmp_path / "a.csv", truth)), START, 31)
    assert [b.decile for b in r.by_decile] == [1, 2]
    for band, mean_score in zip(r.by_decile, (0.8, 0.3), strict=True):
        rows = truth[truth[DECILE] == band.decile]
        treated, control = rows[~rows["control"]], rows[rows["control"]]
        assert (band.treated.households, band.control.households) == (len(treated), len(control))
        assert band.treated.responders == treated["visits"].sum()
        assert band.control.responders == control["visits"].sum()
        assert band.mean_score == pytest.approx(mean_score)
    # planted: 0.6 - 0.2 in decile 1 (standard error 0.027), none in decile 2 (0.032)
    top, rest = r.by_decile
    assert abs(top.uplift - 0.4) < 0.08 and top.uplift_ci95[0] > 0.2
    assert abs(rest.uplift) < 0.08 and rest.uplift_ci95[0] < 0
    rest_uplift = rest.uplift
    assert sum(b.treated.households for b in r.by_decile) == r.treated.households

    no_top_control = truth.assign(control=truth["control"] & (truth[DECILE] == 2))
    r = readout(ds, read_audience(write_csv(tmp_path / "b.csv", no_top_control)), START, 31)
    assert r.by_decile[0].control.households == 0
    assert r.by_decile[0].uplift is None and r.by_decile[0].uplift_ci95 is None
    assert r.by_decile[1].uplift == pytest.approx(rest_uplift)
    bare = tmp_path / "bare.csv"
    truth[[s.HOUSEHOLD_ID]].assign(control=truth["control"].astype(int)).to_csv(bare, index=False)
    assert readout(ds, read_audience(bare), START, 31).by_decile == []  # no decile column


def test_redemptions_of_the_campaign_in_its_own_window(planted, tmp_path: Path) -> None:
    folder, _ = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    audience = write_json(tmp_path / "a.json", [1, 2, 3, 4, 5, 6],
                          [False, False, False, False, True, True], date(2017, 3, 1))
    r = readout(ds, read_audience(audience))
    # campaign 7 runs 2017-03-01..03-14: household 1 (twice) and 2 redeem in it, 3 the day
    # after, 4 redeems campaign 8's coupon
    assert (r.outcome, r.campaign_id, r.start, r.end) == ("redeem", 7, START, date(2017, 3, 15))
    assert (r.treated.responders, r.treated.households) == (2, 4)
    assert (r.control.responders, r.control.households) == (0, 2)
    assert r.relative_uplift is None  # a control rate of 0
    longer = readout(ds, read_audience(audience), days=20)
    assert longer.treated.responders == 3


def test_a_contacted_control_group_is_reported(planted, tmp_path: Path, capsys) -> None:
    # campaign 7 went to households 1, 2 and 3 (the campaigns table): control household 2
    # received it (and redeemed in the window), treated household 4 never did
    folder, _ = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    audience = write_json(tmp_path / "a.json", [1, 3, 4, 2, 5, 6],
                          [False, False, False, True, True, True], date(2017, 3, 1))
    r = readout(ds, read_audience(audience))
    assert (r.control_received, r.treated_not_received) == (1, 1)
    assert (r.treated.responders, r.control.responders) == (1, 1)  # figures still computed
    assert r.warnings == [
        "the control group was contacted: campaign 7 went to 1 of the 3 control households (1 "
        "of those responded), so the difference between the groups is not the campaign's "
        "effect",
        "campaign 7 never went to 1 of the 3 treated households (the data's campaigns table "
        "does not list them), so those could not redeem its coupons"]
    assert r.verdict.startswith("not a test of this audience: campaign 7 went to 1 of the 3 "
                                "control households and campaign 7 never went to 1 of the 3 "
                                "treated households, so the +0.0 points (95% interval ")
    figures = json.loads(r.to_json())
    assert (figures["control_received"], figures["treated_not_received"]) == (1, 1)
    assert figures["verdict"] == r.verdict
    print_readout(r)
    out = capsys.readouterr().out
    assert "WARNING: the control group was contacted: campaign 7 went to 1 of the 3" in out
    assert "WARNING: campaign 7 never went to 1 of the 3 treated households" in out
    assert "verdict: not a test of this audience" in out
    # only the control side wrong: still not a test of the campaign
    only = readout(ds, read_audience(write_json(tmp_path / "b.json", [1, 3, 2, 5],
                                                [False, False, True, True], date(2017, 3, 1))))
    assert (only.control_received, only.treated_not_received) == (1, 0)
    assert len(only.warnings) == 1 and only.verdict.startswith("not a test of this audience")
    # only treated households unsent: a test of the audience as it was contacted, and it says so
    unsent = readout(ds, read_audience(write_json(tmp_path / "u.json", [1, 3, 4, 5, 6],
                                                  [False, False, False, True, True],
                                                  date(2017, 3, 1))))
    assert (unsent.control_received, unsent.treated_not_received) == (0, 1)
    assert unsent.verdict.endswith(
        "; but campaign 7 never went to 1 of the 3 treated households: the figures are of the "
        "audience as it was contacted, not of the campaign reaching every treated household")
    assert not unsent.verdict.startswith("not a test")


def test_a_clean_split_has_no_warning(planted, tmp_path: Path, capsys) -> None:
    folder, _ = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    audience = write_json(tmp_path / "a.json", [1, 2, 3, 5, 6],
                          [False, False, False, True, True], date(2017, 3, 1))
    r = readout(ds, read_audience(audience))
    assert (r.control_received, r.treated_not_received) == (0, 0)
    assert r.warnings == [] and r.notes == []
    lo, hi = (f"{x * 100:+.1f}" for x in r.uplift_ci95)
    assert r.verdict == (f"no detectable effect: the 95% interval ({lo} to {hi} points) "
                         f"includes 0 (p = {r.p_value:.2g})")  # 2 of 3 against 0 of 2
    print_readout(r)
    out = capsys.readouterr().out
    assert "WARNING" not in out and f"verdict: {r.verdict}" in out
    assert "outcome: redeemed a coupon of campaign 7 between 2017-03-01 and 2017-03-14" in out
    # no campaigns table: who received the campaign cannot be known, and the readout says so
    tables = tiny_tables()
    del tables[s.CAMPAIGNS]
    bare = load_dataset(write_folder(tmp_path / "bare", tables), quarantine_dir=tmp_path / "q2")
    unknown = readout(bare, read_audience(write_json(tmp_path / "b.json", [1, 2, 3],
                                                     [False, True, False], date(2017, 1, 5),
                                                     campaign_id=1)), days=20)
    assert (unknown.control_received, unknown.treated_not_received) == (None, None)
    assert unknown.warnings == []
    assert unknown.notes == ["the data has no campaigns table: whether campaign 1 went to the "
                             "treated households only cannot be checked"]
    # visits: no campaign, so nothing to check
    visits = readout(ds, read_audience(write_json(tmp_path / "c.json", [1, 2], [False, True],
                                                  date(2017, 3, 1), model="churn",
                                                  campaign_id=None)), days=10)
    assert (visits.control_received, visits.treated_not_received) == (None, None)
    assert visits.warnings == visits.notes == []


def test_the_verdict_says_what_the_interval_allows(planted, tmp_path: Path) -> None:
    folder, truth = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")

    def interval(r) -> str:
        lo, hi = (f"{x * 100:+.1f}" for x in r.uplift_ci95)
        return f"95% interval {lo} to {hi}"

    raised = readout(ds, read_audience(write_csv(tmp_path / "a.csv", truth)), START, 31)
    assert raised.verdict == (f"the campaign raised the response rate by "
                              f"{raised.uplift * 100:.1f} points ({interval(raised)}, "
                              f"p = {raised.p_value:.2g})")
    swapped = truth.assign(control=~truth["control"])  # the planted effect, backwards
    less = readout(ds, read_audience(write_csv(tmp_path / "s.csv", swapped)), START, 31)
    assert less.uplift < 0 and less.verdict.startswith(
        f"the treated group responded less than the control group: "
        f"{less.uplift * 100:+.1f} points ({interval(less)}")
    quiet = readout(ds, read_audience(tmp_path / "a.csv"), date(2017, 2, 1), 28)
    assert quiet.verdict.startswith("no detectable effect: the 95% interval (")
    assert quiet.verdict.endswith("includes 0 (p = 1)")


def test_what_a_csv_cannot_tell_is_noted(planted, tmp_path: Path, capsys) -> None:
    folder, truth = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    path = write_csv(tmp_path / "a.csv", truth)
    visits = readout(ds, read_audience(path), START, 31)
    assert visits.notes == [
        f"{path} is a CSV, which does not say what it was built for: this readout counts "
        "visits (any purchase); a coupon campaign's readout needs --campaign-id C",
        f"{path} is a CSV, which does not record the day it was built: the window must start "
        "on or after the day the audience was built and contacted; this one starts on "
        "2017-03-01 (--start)"]
    print_readout(visits)
    out = capsys.readouterr().out
    assert "outcome: bought anything between 2017-03-01 and 2017-03-31 (31 days)" in out
    assert "needs --campaign-id C" in out and "this one starts on 2017-03-01 (--start)" in out
    coupon = readout(ds, read_audience(path), campaign_id=7)
    assert coupon.notes == [
        f"{path} is a CSV, which does not record the day it was built: the window must start "
        "on or after the day the audience was built and contacted; this one starts on "
        "2017-03-01 (the first day of campaign 7)"]
    no_campaign = write_json(tmp_path / "c.json", [1, 2], [False, True], date(2017, 3, 1),
                             campaign_id=None)  # a coupon audience naming no campaign
    assert readout(ds, read_audience(no_campaign), days=10).notes == [
        f"{no_campaign} is a coupon audience that names no campaign: this readout counts "
        "visits (any purchase); a coupon campaign's readout needs --campaign-id C"]
    # a churn audience scored as of the day after the data's last: says what to do
    churn = write_json(tmp_path / "churn.json", [1, 2], [False, True], date(2017, 4, 16),
                       model="churn", campaign_id=None)
    with pytest.raises(GrowthError, match=re.escape(
            "needs transactions through 2017-06-10, but ") + ".* ends on 2017-04-15: the "
            r"readout can run once the data \(--data DIR\) holds transactions through "
            "2017-06-10"):
        readout(ds, read_audience(churn))


@pytest.mark.parametrize(("content", "message"), [
    ("household_id,rank\n1,1\n", "no column 'control'"),
    ("household_id,control\n1,0\n2,yes\n", "line 3: control must be 0 (treated) or 1"),
    ("household_id,control\n1,0\nabc,1\n", "line 3: expected a household id"),
    ("household_id,control\n1,0\n1,1\n", "household 1 is listed more than once"),
    ("household_id,control,decile\n1,0,1\n2,1,11\n",
     "line 3: decile must be an integer from 1 to 10, got '11'"),
    ("household_id,control,score\n1,0,0.5\n2,1,high\n",
     "line 3: score must be a probability from 0 to 1, got 'high'"),
    ("household_id,control,decile\n1,0,\u00b2\n", "line 2: decile must be an integer"),
    ("household_id,control\n\n1,0\n\n2,x\n", "line 5: control must be 0 (treated) or 1"),
    ('household_id,control,note\n1,0,"two\nlines"\n2,1\n', "line 4: 2 fields, but the header"),
    ("", "empty; expected an audience CSV"),
])
def test_bad_audience_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text(content)
    with pytest.raises(GrowthError, match=re.escape(message)) as err:
        read_audience(path)
    assert str(path) in str(err.value)


def test_a_csv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("household_id,control\n1,0\n2,1\ncaf\u00e9,1\n".encode("latin-1"))
    with pytest.raises(GrowthError, match=re.escape(f"{path}: not UTF-8 text")):
        read_audience(path)


def test_json_that_is_not_an_audience(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"model": "churn", "households": []}))
    with pytest.raises(GrowthError, match="not an audience as POST /audience answers it"):
        read_audience(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("score", float("nan"), "households[1]: score must be a probability from 0 to 1"),
    ("score", 7.5, "households[1]: score must be a probability"),
    ("decile", 42, "households[1]: decile must be an integer from 1 to 10, got '42'"),
    ("household_id", -1, "households[1]: expected a household id"),
    ("household_id", 2**70, "households[1]: expected a household id"),
])
def test_json_members_are_checked_like_csv_rows(tmp_path: Path, field: str, value,
                                                message: str) -> None:
    path = write_json(tmp_path / "a.json", [1, 2], [False, True], date(2017, 3, 1))
    body = json.loads(path.read_text())
    body["households"][1][field] = value
    path.write_text(json.dumps(body))  # NaN as the bare token pydantic reads
    with pytest.raises(GrowthError, match=re.escape(message)) as err:
        read_audience(path)
    assert str(path) in str(err.value)


def test_requests_a_readout_cannot_answer(planted, tmp_path: Path) -> None:
    folder, truth = planted
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    csv = read_audience(write_csv(tmp_path / "a.csv", truth))
    with pytest.raises(GrowthError, match="--start is required"):
        readout(ds, csv)
    with pytest.raises(GrowthError, match=r"needs transactions through 2017-05-30, but .* "
                                          "ends on 2017-04-15"):
        readout(ds, csv, date(2017, 4, 1), 60)
    no_control = read_audience(write_csv(tmp_path / "t.csv", truth.assign(control=False)))
    with pytest.raises(GrowthError, match="3010 treated and 0 control households"):
        readout(ds, no_control, START, 28)
    scored = read_audience(write_json(tmp_path / "a.json", [1, 2], [False, True],
                                      date(2017, 3, 1)))
    with pytest.raises(GrowthError, match="--start 2017-02-01 is before .* was scored"):
        readout(ds, scored, date(2017, 2, 1))
    later = read_audience(write_json(tmp_path / "later.json", [1, 2], [False, True],
                                     date(2017, 3, 5)))
    with pytest.raises(GrowthError, match="campaign 7 began on 2017-03-01, which is before"):
        readout(ds, later)  # the start came from the campaign, not from --start
    with pytest.raises(GrowthError, match="--days 100000000 runs past the calendar"):
        readout(ds, csv, START, 100_000_000)
    with pytest.raises(GrowthError, match="--start 2016-06-01 is outside the data"):
        readout(ds, csv, date(2016, 6, 1), 28)  # would read as nobody responding
    with pytest.raises(GrowthError, match="is the audience of campaign 7"):
        readout(ds, scored, campaign_id=8)
    tables = tiny_tables()
    del tables[s.COUPON_REDEMPTIONS]
    bare = load_dataset(write_folder(tmp_path / "bare", tables), quarantine_dir=tmp_path / "q2")
    with pytest.raises(GrowthError, match="coupon_redemptions"):
        readout(bare, read_audience(write_json(tmp_path / "b.json", [1, 2], [False, True],
                                               date(2017, 1, 5), campaign_id=1)))


def test_growth_readout_command(planted, tmp_path: Path) -> None:
    folder, truth = planted
    audience = write_csv(tmp_path / "[draft]a.csv", truth)  # printed as it is, not as markup

    def growth(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "growth", "readout", str(audience),
                               "--data", str(folder), *args], cwd=tmp_path, text=True,
                              capture_output=True, env={**os.environ, "COLUMNS": "200"},
                              timeout=120)

    res = growth("--start", "2017-03-01", "--days", "31", "--out", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    figures = json.loads((tmp_path / "r.json").read_text())
    assert figures["treated"]["households"] + figures["control"]["households"] == len(truth)
    assert figures["end"] == "2017-04-01" and figures["outcome"] == "visit"
    assert f"uplift {figures['uplift'] * 100:+.1f} points" in res.stdout
    assert [band["decile"] for band in figures["by_decile"]] == [1, 2]
    top = figures["by_decile"][0]
    lo, hi = (f"{x * 100:+.1f}" for x in top["uplift_ci95"])
    assert "by score decile" in res.stdout and f"({lo} to {hi})" in res.stdout
    assert "[draft]" in res.stdout  # the title's path (wrapped to the table's width)
    assert "outcome: bought anything between 2017-03-01 and 2017-03-31" in res.stdout
    assert figures["verdict"].startswith("the campaign raised the response rate by")
    assert f"verdict: {figures['verdict']}" in res.stdout
    assert figures["control_received"] is None and len(figures["notes"]) == 2
    bad = growth("--start", "2017-13-01")
    assert bad.returncode == 2 and "--start" in bad.stderr and "Traceback" not in bad.stderr
