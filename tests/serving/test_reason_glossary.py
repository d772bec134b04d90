"""Reason codes reach marketers in plain English: answers carry a glossary of the codes they
hold, the audience CSV a text column per reason (features/glossary.py), and each reason the
household's value of its feature (``reason_values``, ``reason_1_value``..)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd

from features import schema as s
from features.glossary import describe, glossary, value_text
from serving.audience import REASON_TEXTS, build_audience, text_cell, to_csv
from serving.propensity import FEATURES, PropensityStore
from serving.schemas import AudienceRequest
from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS


def bundled_values(world, model: str, keys: dict[str, int], reasons: list[str]) -> list[str]:
    """``value_text`` of each of ``reasons`` for the row of the bundle's features.parquet of
    ``model`` that ``keys`` names."""
    rows = pd.read_parquet(world.bundle_path / model / FEATURES)
    for column, key in keys.items():
        rows = rows[rows[column] == key]
    assert len(rows) == 1
    return [value_text(name, rows.iloc[0][name]) for name in reasons]


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


def test_the_audience_csv_has_the_reasons_in_words(client, world) -> None:
    r = client.post("/audience", json={"model": "churn", "top_n": 30, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 30
    assert r.text.split("\n")[0].split(",")[-7:] == [*REASON_TEXTS, *VALUE_COLUMNS,
                                                     "days_since_last_purchase"]
    for row in rows:
        assert [row[t] for t in REASON_TEXTS] == [describe(row[c]) if row[c] else ""
                                                  for c in REASON_COLUMNS]
        names = [row[c] for c in REASON_COLUMNS]
        assert [row[v] for v in VALUE_COLUMNS] == [
            text_cell(v) for v in bundled_values(
                world, "churn", {s.HOUSEHOLD_ID: int(row[s.HOUSEHOLD_ID])}, names)]


def test_members_and_scores_carry_their_reasons_values(client, world) -> None:
    audience = client.post("/audience", json={"model": "coupon", "campaign_id": 11,
                                              "top_n": 25}).json()
    assert audience["households"]
    for m in audience["households"]:
        assert len(m["reason_values"]) == 3
        assert m["reason_values"] == bundled_values(
            world, "coupon", {s.HOUSEHOLD_ID: m[s.HOUSEHOLD_ID], s.CAMPAIGN_ID: 11},
            m["reasons"])
    body = client.post("/propensity", json={"model": "churn",
                                            "household_ids": list(range(1, 60))}).json()
    assert body["scores"]
    for score in body["scores"]:
        assert score["reason_values"] == bundled_values(
            world, "churn", {s.HOUSEHOLD_ID: score[s.HOUSEHOLD_ID]}, score["reasons"])


def test_a_bundle_without_reason_values_still_serves(world, tmp_path: Path) -> None:
    """A bundle written before the values were kept: answers carry none, CSV cells are
    empty."""
    folder = shutil.copytree(world.bundle_path / "churn", tmp_path / "churn")
    rows = pd.read_parquet(folder / FEATURES)
    assert set(VALUE_COLUMNS) <= set(rows.columns)
    rows.drop(columns=list(VALUE_COLUMNS)).to_parquet(folder / FEATURES, index=False)
    population = PropensityStore("churn", folder, 1).population(None)
    audience = build_audience(population, AudienceRequest(model="churn", top_n=5), 1)
    assert [m.reason_values for m in audience.households] == [[]] * 5
    assert all(len(m.reasons) == 3 for m in audience.households)
    row = next(csv.DictReader(io.StringIO(to_csv(audience))))
    assert [row[v] for v in VALUE_COLUMNS] == ["", "", ""] and row["reason_1"]


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
