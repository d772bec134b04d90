"""Reason codes reach marketers in plain English: answers carry a glossary of the codes they
hold, the audience CSV a text column per reason (features/glossary.py)."""

from __future__ import annotations

import csv
import io

from features.glossary import describe, glossary
from serving.audience import REASON_TEXTS
from training.propensity.reasons import REASON_COLUMNS


def test_answers_explain_exactly_the_reasons_they_hold(client) -> None:
    body = client.post("/propensity", json={"model": "churn",
                                            "household_ids": list(range(1, 60))}).json()
    codes = {r for score in body["scores"] for r in score["reasons"]}
    assert codes and set(body["reason_glossary"]) == codes
    assert all(body["reason_glossary"][c] == describe(c) for c in codes)
    audience = client.post("/audience", json={"model": "coupon", "campaign_id": 11,
                                              "top_n": 25}).json()
    codes = {r for m in audience["households"] for r in m["reasons"]}
    assert codes and set(audience["reason_glossary"]) == codes


def test_the_audience_csv_has_the_reasons_in_words(client) -> None:
    r = client.post("/audience", json={"model": "churn", "top_n": 30, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 30
    for row in rows:
        assert [row[t] for t in REASON_TEXTS] == [describe(row[c]) if row[c] else ""
                                                  for c in REASON_COLUMNS]


def test_a_feature_the_glossary_lacks_reads_as_its_name(caplog) -> None:
    assert glossary(["spend_13w", "brand_new_feature"]) == {
        "spend_13w": "spend in the last 13 weeks", "brand_new_feature": "brand_new_feature"}
    assert "no description for feature 'brand_new_feature'" in caplog.text


def test_audience_csv_cells_never_start_a_formula() -> None:
    """A reason taken from a bundled model's feature names (an artifact) that looks like a
    formula is written as text: a spreadsheet must not run it."""
    from datetime import date

    from serving.audience import to_csv
    from serving.schemas import AudienceMember, AudienceResponse

    bad = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(1)"]
    member = AudienceMember(household_id=1, rank=1, score=0.5, decile=1, reasons=bad[:3],
                            control=False, days_since_last_purchase=4)
    audience = AudienceResponse(
        model="churn", model_version=1, campaign_id=None, as_of=date(2017, 11, 6), size=1,
        treated=1, control=0, expected_responders=0.5, households=[member],
        reason_glossary={bad[0]: bad[3]})
    row = next(csv.DictReader(io.StringIO(to_csv(audience))))
    assert [row[c] for c in REASON_COLUMNS] == ["'" + r for r in bad[:3]]
    assert [row[t] for t in REASON_TEXTS] == ["'@SUM(1)", "'+1", "'-2"]
    assert row["household_id"] == "1" and row["days_since_last_purchase"] == "4"
