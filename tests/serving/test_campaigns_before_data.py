"""Campaigns that start before the data's first day (the embedded data's 24, 25 and 26): no
household has any purchase history before their start, so every score of theirs would be
the same and carry no information. ``growth score`` refuses them; ``growth bundle`` leaves
them out and records them with their starts, so the service and ``growth audience`` refuse
them saying why (test_service.py, test_audience_cli.py)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features import schema as s
from features.dataset import load_dataset
from features.sources import GrowthError
from serving.propensity import BEFORE_DATA, DATA_START, campaigns_before_data
from tests.fixtures import tiny_tables, write_folder
from tests.serving.conftest import before_data_error


def test_the_embedded_campaigns_growth_score_refuses(cj_sample, tmp_path: Path) -> None:
    from training.propensity.score import score_to_file

    ds = load_dataset(write_folder(tmp_path / "cj", cj_sample), quarantine_dir=tmp_path / "q")
    before = campaigns_before_data(ds)
    assert before == {24: date(2016, 11, 14), 25: date(2016, 12, 6), 26: date(2016, 12, 28)}
    # the same rule as growth score's refusal (it stops before looking for a model)
    with pytest.raises(GrowthError, match="campaign 24's start 2016-11-14 is outside the data"):
        score_to_file(ds, "coupon", tmp_path / "c.parquet", campaign_id=24)
    ds.con.close()


def test_before_means_before_the_first_transaction_day(tmp_path: Path) -> None:
    """The data's first line is 2017-01-02 09:00: a campaign starting that day is within the
    data (as Dataset.check_as_of and growth score take it), one starting the day before is
    not; one starting after the data is not "before" it."""
    tables = tiny_tables()
    tables[s.CAMPAIGN_DESCRIPTIONS] = pd.DataFrame({
        s.CAMPAIGN_ID: [1, 2, 3], s.CAMPAIGN_TYPE: ["Type A", "Type B", "Type C"],
        s.START_DATE: pd.to_datetime(["2017-01-02", "2017-01-01", "2017-03-01"]),
        s.END_DATE: pd.to_datetime(["2017-01-31", "2017-02-20", "2017-03-31"])})
    ds = load_dataset(write_folder(tmp_path / "d", tables), quarantine_dir=tmp_path / "q")
    assert campaigns_before_data(ds) == {2: date(2017, 1, 1)}
    ds.con.close()


def test_the_bundle_leaves_them_out_and_records_them(early_bundle, world) -> None:
    from serving.bundle import open_bundle

    coupon = early_bundle.manifest["models"]["coupon"]
    assert coupon[BEFORE_DATA] == {"24": "2016-11-14", "25": "2016-12-06"}
    assert coupon[DATA_START] == early_bundle.data_start.isoformat()
    scored = set(pd.read_parquet(early_bundle.path / "coupon" / "features.parquet")[
        s.CAMPAIGN_ID])
    assert 11 in scored and not scored & {24, 25}  # 24 has recipients: it was scored before
    assert coupon["campaigns"] == len(scored)
    # data without such campaigns records none
    assert BEFORE_DATA not in open_bundle(world.tag).manifest["models"]["coupon"]


def test_growth_audience_path_refuses_them_and_old_bundles_still_load(early_bundle,
                                                                      tmp_path: Path) -> None:
    from serving.audience import bundle_audience
    from serving.bundle import MANIFEST, open_bundle
    from serving.recommend import RequestError
    from serving.schemas import AudienceRequest

    bundle = open_bundle(str(early_bundle.path))
    for campaign in (24, 25):
        with pytest.raises(RequestError) as err:
            bundle_audience(bundle, AudienceRequest(model="coupon", campaign_id=campaign,
                                                    top_n=10))
        assert (err.value.field, err.value.status) == ("campaign_id", 400)
        assert err.value.message == before_data_error(early_bundle, campaign)
    normal = bundle_audience(bundle, AudienceRequest(model="coupon", campaign_id=11, top_n=10))
    assert normal.size == 10 and len({m.score for m in normal.households}) > 1

    # a bundle written before the record: it loads, and answers the unknown-campaign message
    old = shutil.copytree(early_bundle.path, tmp_path / "old")
    manifest = json.loads((old / MANIFEST).read_text())
    for key in (BEFORE_DATA, DATA_START):
        del manifest["models"]["coupon"][key]
    (old / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RequestError) as err:
        bundle_audience(open_bundle(str(old)), AudienceRequest(model="coupon", campaign_id=24,
                                                               top_n=10))
    assert err.value.message.startswith("unknown campaign 24; expected one of [1, ")
    assert bundle_audience(open_bundle(str(old)), AudienceRequest(
        model="coupon", campaign_id=11, top_n=10)) == normal
