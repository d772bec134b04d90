"""An audience that is not what was asked says why (``notes``), in the API's answer and in
``growth audience``'s output: fewer than top_n, nobody at min_score, nobody to contact."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from serving.audience import build_audience
from serving.propensity import Population
from serving.recommend import RequestError
from serving.schemas import AudienceRequest
from tests.cli import run_growth

PROBABILITIES = [0.72, 0.5, 0.31, 0.2, 0.1]  # best first, as a population is ordered


@pytest.fixture
def population() -> Population:
    ids = np.array([11, 12, 13, 14, 15], dtype=np.int64)
    return Population(date(2017, 11, 6), ids, np.array(PROBABILITIES),
                      np.array([1, 3, 5, 8, 10]), [[] for _ in ids], {})


def notes(population: Population, **request) -> list[str]:
    return build_audience(population, AudienceRequest(model="churn", **request), 1).notes


def test_what_was_asked_has_no_notes(population: Population) -> None:
    assert notes(population, top_n=5) == []
    assert notes(population, min_score=0.3, control_fraction=0.5) == []
    assert notes(population, top_n=2, exclude_household_ids=[11]) == []


def test_fewer_than_top_n_says_what_left_them_out(population: Population) -> None:
    assert notes(population, top_n=50) == [
        "5 households, fewer than top_n 50: 5 households are scored"]
    assert notes(population, top_n=4, min_score=0.25, exclude_household_ids=[12, 99]) == [
        "2 households, fewer than top_n 4: 5 households are scored; exclude_household_ids "
        "removes 1; 2 of the rest score at least min_score 0.25"]


def test_nobody_at_min_score_names_the_highest_score(population: Population) -> None:
    assert notes(population, min_score=0.9, top_n=10) == [
        "no household scores at least min_score 0.9; the highest score is 0.7200"]
    # the highest of those not excluded
    assert notes(population, min_score=0.9, exclude_household_ids=[11]) == [
        "no household scores at least min_score 0.9; the highest score is 0.5000"]
    assert notes(population, min_score=0.9, exclude_household_ids=[11, 12, 13, 14, 15]) == [
        "no household scores at least min_score 0.9; every scored household is excluded"]


def test_a_control_draw_that_takes_everyone_is_flagged(population: Population) -> None:
    audience = build_audience(population, AudienceRequest(
        model="churn", top_n=5, control_fraction=0.95), 1)
    assert audience.treated == 0 and audience.control == 5
    assert audience.notes == ["control_fraction 0.95 holds out all 5 selected households "
                              "(round(0.95 x 5) = 5): none is left to contact"]


def test_a_model_that_has_seen_the_period_says_so(population: Population) -> None:
    request = AudienceRequest(model="churn", top_n=2)
    seen = build_audience(population, request, 3, data_end=date(2017, 12, 1))
    assert seen.model_data_end == date(2017, 12, 1)
    assert seen.notes == ["churn v3 was trained on data before 2017-12-01, which covers "
                          "2017-11-06: it may have seen the outcomes it scores here "
                          "(in-sample), fine for targeting but not for judging the model"]
    # data before 2017-11-07 covers 2017-11-06; data before 2017-11-06 does not
    assert build_audience(population, request, 3, data_end=date(2017, 11, 7)).notes
    assert build_audience(population, request, 3, data_end=date(2017, 11, 6)).notes == []


def test_the_service_reports_data_end_and_csv_notes(world, client, tmp_path) -> None:
    """Coupon campaigns that started before the champion's data end are flagged in-sample;
    a CSV answer carries the notes in a header."""
    import pandas as pd

    from features import schema as s

    campaigns = pd.read_parquet(world.data / f"{s.CAMPAIGN_DESCRIPTIONS}.parquet")
    flagged = {}
    for campaign in campaigns[s.CAMPAIGN_ID].tolist():
        r = client.post("/audience", json={"model": "coupon", "campaign_id": campaign,
                                           "top_n": 1})
        if r.status_code == 400:  # no audience in the bundle (starts before the data)
            assert f"unknown campaign {campaign}" in r.json()["error"]
            continue
        body = r.json()
        in_sample = date.fromisoformat(body["model_data_end"]) > date.fromisoformat(
            body["as_of"])
        assert any("(in-sample)" in n for n in body["notes"]) == in_sample
        flagged[campaign] = in_sample
    assert set(flagged.values()) == {True, False}, flagged  # the world has both kinds
    past = next(c for c, seen in flagged.items() if seen)
    r = client.post("/audience", json={"model": "coupon", "campaign_id": past, "top_n": 10**6,
                                       "format": "csv"})
    notes = r.headers["X-Audience-Notes"].split(" | ")
    assert len(notes) == 2 and "fewer than top_n 1,000,000" in notes[0]
    assert "(in-sample)" in notes[1]
    # growth audience prints the notes with its options' names, "the model" left in words
    res = run_growth("audience", "coupon", "--campaign-id", str(past), "--top-n", "3",
                     "--out", str(tmp_path / "past.csv"), "--bundle", world.tag,
                     cwd=world.data.parent, env={"BENTOML_HOME": str(world.bentoml_home)},
                     timeout=120)
    assert res.returncode == 0, res.stderr
    printed = " ".join(res.stdout.split())
    assert "(in-sample), fine for targeting but not for judging the model" in printed
    scores = client.post("/propensity", json={"model": "churn", "household_ids": [1]}).json()
    assert date.fromisoformat(scores["model_data_end"]) <= date.fromisoformat(scores["as_of"])


def test_members_carry_their_own_days_since_last_purchase(world, client) -> None:
    """Each member's recency is its own row's (the population is reordered best first), in
    JSON and CSV alike; a churn audience's top is mostly the long lapsed."""
    import csv
    import io

    import pandas as pd

    from features.household import RECENCY

    rows = pd.read_parquet(world.bundle_path / "churn" / "features.parquet")
    recency = dict(zip(rows["household_id"], rows[RECENCY], strict=True))
    body = client.post("/audience", json={"model": "churn", "top_n": 50}).json()
    got = [m["days_since_last_purchase"] for m in body["households"]]
    assert got == [int(recency[m["household_id"]]) for m in body["households"]]
    assert len(set(got)) > 5  # not one value for everyone
    csv_rows = list(csv.DictReader(io.StringIO(client.post(
        "/audience", json={"model": "churn", "top_n": 50, "format": "csv"}).text)))
    assert [int(r["days_since_last_purchase"]) for r in csv_rows] == got


def test_households_already_gone_can_be_left_out(population: Population) -> None:
    """A churn audience's top ranks are mostly households silent for months: a retention
    campaign wants those still buying. None (no purchase before as_of) counts as gone."""
    recency = Population(population.as_of, population.household_ids, population.probabilities,
                         population.deciles, population.reasons, {},
                         days_since_purchase=[120, 30, None, 56, 57])
    audience = build_audience(recency, AudienceRequest(
        model="churn", top_n=3, max_days_since_last_purchase=56), 1)
    assert [m.household_id for m in audience.households] == [12, 14]  # 30 and 56 days
    assert [m.rank for m in audience.households] == [1, 2]
    assert audience.notes == ["2 households, fewer than top_n 3: 5 households are scored; "
                              "max_days_since_last_purchase 56 removes 3 more"]
    both = build_audience(recency, AudienceRequest(
        model="churn", top_n=5, max_days_since_last_purchase=200, exclude_household_ids=[11]), 1)
    assert [m.household_id for m in both.households] == [12, 14, 15]
    assert both.notes == ["3 households, fewer than top_n 5: 5 households are scored; "
                          "exclude_household_ids removes 1; max_days_since_last_purchase 200 "
                          "removes 1 more"]  # household 13, which has no purchase
    # a population without recency cannot honour it: the request is refused, not ignored
    with pytest.raises(RequestError) as err:
        build_audience(population, AudienceRequest(
            model="churn", top_n=3, max_days_since_last_purchase=56), 1)
    assert err.value.field == "max_days_since_last_purchase"
    assert "do not record days since the last purchase" in err.value.message


def test_a_households_score_is_found_wherever_it_ranks() -> None:
    """Answers are built when asked for, from the population's arrays (best first): each
    household finds its own row, in request order, once; others are unknown."""
    ids = np.array([40, 7, 93, 12, 55], dtype=np.int64)  # best first, not sorted by id
    population = Population(date(2017, 11, 6), ids, np.array(PROBABILITIES),
                            np.array([1, 3, 5, 8, 10]),
                            [[f"r{i}a", f"r{i}b"] for i in range(5)], {},
                            reason_values=[[f"v{i}a", f"v{i}b"] for i in range(5)])
    assert population.rows(np.array([7, 55, 40, 1, 41, 100])).tolist() == [1, 4, 0, -1, -1, -1]
    known, unknown = population.scores([55, 6, 7, 55, 1000])
    assert unknown == [6, 1000]
    assert [k.model_dump() for k in known] == [
        {"household_id": 55, "probability": 0.1, "decile": 10, "reasons": ["r4a", "r4b"],
         "reason_values": ["v4a", "v4b"]},
        {"household_id": 7, "probability": 0.5, "decile": 3, "reasons": ["r1a", "r1b"],
         "reason_values": ["v1a", "v1b"]}]
    empty = Population(date(2017, 11, 6), np.array([], dtype=np.int64), np.array([]),
                       np.array([], dtype=np.int64), [], {})
    assert empty.scores([1, 2]) == ([], [1, 2])
