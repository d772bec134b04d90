"""Every endpoint in process (``TestClient(GrowthService.to_asgi())``) on the tiny bundle, and
the acceptance rule: answers equal ``growth recommend`` / ``growth score`` for the same
households, models and date."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema as s

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ds(world):
    from features.dataset import load_dataset

    data = load_dataset(world.data, quarantine_dir=world.data.parent / "quarantine")
    yield data
    data.con.close()


@pytest.fixture
def registry_store(world, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's MLflow store (the autouse fixture gives each test an empty one)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.mlflow_uri)


@pytest.fixture(scope="module")
def bought(world) -> pd.DataFrame:
    lines = pd.read_parquet(world.data / "transactions.parquet")
    return lines[lines[s.TRANSACTION_TIMESTAMP] < pd.Timestamp(world.as_of)]


@pytest.fixture(scope="module")
def departments(world) -> dict[int, str]:
    products = pd.read_parquet(world.data / "products.parquet")
    return dict(zip(products[s.PRODUCT_ID], products[s.DEPARTMENT], strict=True))


def post(client, path: str, body: dict, status: int = 200) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_health_ready_and_openapi(client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    spec = client.get("/docs.json").json()
    assert {"/recommend", "/similar_items", "/propensity", "/audience"} <= set(spec["paths"])
    body = spec["paths"]["/recommend"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"]["household_id"] == 1364
    assert "departments" in spec["components"]["schemas"]["RecommendRequest"]["properties"]


def test_recommend_known_household(client, bought, world) -> None:
    household = int(bought[s.HOUSEHOLD_ID].iloc[0])
    out = post(client, "/recommend", {"household_id": household, "k": 12})
    products = [i["product_id"] for i in out["items"]]
    assert len(products) == 12 == len(set(products))
    assert out["strategy"] == "personal" and out["model_versions"] == {"two_tower": 1}
    assert out["as_of"] == world.as_of.isoformat()
    mine = set(bought.loc[bought[s.HOUSEHOLD_ID] == household, s.PRODUCT_ID])
    for item in out["items"]:  # repeat means bought before, similar means new to it
        assert (item["product_id"] in mine) == (item["reason"] == "repeat")


def test_exclude_purchased_and_departments_fill_to_k(client, bought, departments) -> None:
    household = int(bought[s.HOUSEHOLD_ID].iloc[1])
    mine = set(bought.loc[bought[s.HOUSEHOLD_ID] == household, s.PRODUCT_ID])
    out = post(client, "/recommend", {"household_id": household, "k": 20,
                                      "exclude_purchased": True, "departments": ["produce"]})
    products = [i["product_id"] for i in out["items"]]
    assert len(products) == 20 == len(set(products))
    assert not set(products) & mine
    assert {departments[p] for p in products} == {"PRODUCE"}
    reasons = [i["reason"] for i in out["items"]]
    assert reasons == sorted(reasons, key=lambda r: r == "popular")  # popular fills come last


@pytest.mark.parametrize("exclude_purchased", [True, False])
def test_a_department_filter_stays_personal(client, bought, departments, world,
                                            exclude_purchased: bool) -> None:
    """The household's list holds few produce items; the rest are the produce products nearest
    the mean embedding of what it bought (computed here from the bundle's embeddings), none
    it bought, best first; popular only after those."""
    import numpy as np

    household = int(bought[s.HOUSEHOLD_ID].iloc[1])
    mine = set(bought.loc[bought[s.HOUSEHOLD_ID] == household, s.PRODUCT_ID])
    body = {"household_id": household, "k": 20, "exclude_purchased": exclude_purchased}
    whole = post(client, "/recommend", {**body, "k": 200})
    listed = [i["product_id"] for i in whole["items"]  # the list's, not the popular fill
              if departments[i["product_id"]] == "PRODUCE" and i["reason"] != "popular"]
    out = post(client, "/recommend", {**body, "departments": ["PRODUCE"]})
    items = out["items"]
    assert out["strategy"] == "personal" and len(items) == 20
    assert [i["product_id"] for i in items[:len(listed)]] == listed[:20]
    fill = items[len(listed):]
    assert fill and {i["reason"] for i in fill} == {"similar"}

    with np.load(world.bundle_path / "two_tower" / "item_embeddings.npz") as z:
        vectors = dict(zip(z["product_ids"].tolist(), z["embeddings"], strict=True))
    query = np.mean([vectors[p] for p in mine if p in vectors], axis=0)
    query /= np.linalg.norm(query)
    candidates = [p for p in vectors if departments.get(p) == "PRODUCE" and p not in mine
                  and p not in listed]
    expected = sorted(candidates, key=lambda p: -float(vectors[p] @ query))[:len(fill)]
    assert [i["product_id"] for i in fill] == expected
    assert [i["score"] for i in fill] == pytest.approx(
        [float(vectors[p] @ query) for p in expected], abs=1e-5)


def test_departments_ignore_case_and_surrounding_whitespace(client) -> None:
    plain = post(client, "/recommend", {"k": 6, "departments": ["PRODUCE", "DELI"]})
    spaced = post(client, "/recommend", {"k": 6, "departments": [" produce ", "\tDeli\n"]})
    assert spaced == plain


def test_fewer_than_k_says_why(client, bought, departments, world) -> None:
    """Exactly k is impossible when the departments hold fewer products (than k plus those
    the request rules out): every product they allow comes back, and ``shortfall`` says how
    many and why; it is null when k came back."""
    deli = sorted(p for p, d in departments.items() if d == "DELI")
    out = post(client, "/recommend", {"k": 200, "departments": ["deli"]})
    assert sorted(i["product_id"] for i in out["items"]) == deli
    assert out["shortfall"] == {
        "returned": len(deli), "available": len(deli), "excluded": 0,
        "message": f"{len(deli)} of k=200: department DELI holds {len(deli)} products"}
    both = post(client, "/recommend", {"k": 200, "departments": ["DELI", "DAIRY"]})
    dairy = sum(d == "DAIRY" for d in departments.values())
    assert both["shortfall"]["message"] == (f"{len(deli) + dairy} of k=200: departments "
                                            f"DAIRY, DELI hold {len(deli) + dairy} products")
    assert post(client, "/recommend", {"k": len(deli), "departments": ["DELI"]}
                )["shortfall"] is None

    counts = bought[bought[s.PRODUCT_ID].isin(deli)].groupby(s.HOUSEHOLD_ID)[
        s.PRODUCT_ID].nunique()
    household, mine = int(counts.idxmax()), int(counts.max())
    out = post(client, "/recommend", {"household_id": household, "k": 200,
                                      "exclude_purchased": True, "departments": ["DELI"]})
    assert len(out["items"]) == len(deli) - mine > 0
    assert out["shortfall"] == {
        "returned": len(deli) - mine, "available": len(deli), "excluded": mine,
        "message": f"{len(deli) - mine} of k=200: department DELI holds {len(deli)} products, "
                   f"{mine} of them bought by household {household} (exclude_purchased)"}

    indexed = set(world.indexed_products(10**6))
    recent = [p for p in deli if p in indexed][:2]
    out = post(client, "/recommend", {"k": 200, "recent_product_ids": recent,
                                      "departments": ["DELI"]})
    assert out["strategy"] == "recent_items" and len(out["items"]) == len(deli) - len(recent)
    assert out["shortfall"]["excluded"] == len(recent)
    assert out["shortfall"]["message"].endswith(
        f", {len(recent)} of them given in recent_product_ids")


def test_cold_start_recent_items_and_popular(client, world, departments) -> None:
    recent = world.indexed_products(2)
    out = post(client, "/recommend", {"household_id": 10**12, "recent_product_ids": recent,
                                      "k": 8})
    assert out["strategy"] == "recent_items"
    assert {i["reason"] for i in out["items"]} == {"similar"}
    assert not {i["product_id"] for i in out["items"]} & set(recent)
    popular = post(client, "/recommend", {"k": 8, "recent_product_ids": [1]})  # unknown id
    assert popular["strategy"] == "popular" and popular["household_id"] is None
    assert {i["reason"] for i in popular["items"]} == {"popular"}
    scores = [i["score"] for i in popular["items"]]
    assert scores == sorted(scores, reverse=True)
    dairy = post(client, "/recommend", {"k": 5, "departments": ["DAIRY", "deli"]})
    assert {departments[i["product_id"]] for i in dairy["items"]} <= {"DAIRY", "DELI"}


def test_exclude_departments_on_every_path(client, bought, departments, world) -> None:
    """A page that sells no fuel never shows it: the department is left out of the
    household's list (the rest keeps its order), of the visitor's and of the popular one."""
    household = int(bought[s.HOUSEHOLD_ID].iloc[0])
    plain = post(client, "/recommend", {"household_id": household, "k": 20})["items"]
    common = pd.Series([departments[i["product_id"]] for i in plain]).mode()[0]
    out = post(client, "/recommend", {"household_id": household, "k": 20,
                                      "exclude_departments": [f" {common.lower()} "]})
    products = [i["product_id"] for i in out["items"]]
    assert len(products) == 20 and common not in {departments[p] for p in products}
    kept = [i["product_id"] for i in plain if departments[i["product_id"]] != common]
    assert 0 < len(kept) < 20 and products[:len(kept)] == kept
    for body in ({"recent_product_ids": world.indexed_products(2), "k": 8}, {"k": 8}):
        items = post(client, "/recommend", {**body, "exclude_departments": [common]})["items"]
        assert len(items) == 8 and common not in {departments[i["product_id"]] for i in items}

    others = sorted(set(departments.values()) - {"DELI"})
    out = post(client, "/recommend", {"k": 200, "exclude_departments": others})
    assert {departments[i["product_id"]] for i in out["items"]} == {"DELI"}
    assert out["shortfall"]["message"] == (
        f"{len(out['items'])} of k=200: the catalogue without {', '.join(others)} holds "
        f"{sum(d == 'DELI' for d in departments.values())} products")

    both = client.post("/recommend", json={"departments": ["DELI"],
                                           "exclude_departments": ["deli"]})
    assert both.status_code == 400 and both.json()["error"] == (
        "exclude_departments: deli both asked for (departments) and excluded")
    unknown = client.post("/recommend", json={"exclude_departments": ["SPACESHIPS"]})
    assert unknown.status_code == 400 and unknown.json()["error"].startswith(
        "exclude_departments: unknown department(s) ['SPACESHIPS']")


def test_similar_items(client, world) -> None:
    product = world.indexed_products(1)[0]
    out = post(client, "/similar_items", {"product_id": product, "k": 7})
    products = [i["product_id"] for i in out["items"]]
    assert len(products) == 7 == len(set(products)) and product not in products
    scores = [i["score"] for i in out["items"]]
    assert scores == sorted(scores, reverse=True) and max(scores) <= 1.0 + 1e-5
    missing = post(client, "/similar_items", {"product_id": 5, "k": 3}, status=404)
    assert missing["error"].startswith("product_id: product 5 is not in the item index")


@pytest.mark.parametrize("exclude_purchased", [False, True])
def test_recommend_matches_growth_recommend(client, ds, world, bought, registry_store,
                                            tmp_path: Path, exclude_purchased: bool) -> None:
    from training.two_tower.run import recommend_to_file

    households = sorted(bought[s.HOUSEHOLD_ID].unique())[:25] + [10**9]  # one unknown
    batch = recommend_to_file(ds, world.as_of, 9, tmp_path / "recs.parquet",
                              [int(h) for h in households], exclude_purchased).frame
    for household, expected in batch.groupby(s.HOUSEHOLD_ID):
        out = post(client, "/recommend", {"household_id": int(household), "k": 9,
                                          "exclude_purchased": exclude_purchased})
        got = pd.DataFrame(out["items"])
        assert got[s.PRODUCT_ID].tolist() == expected[s.PRODUCT_ID].tolist()
        assert got["reason"].tolist() == expected["reason"].tolist()
        np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-9)


def test_propensity_churn_matches_growth_score(client, ds, world, registry_store,
                                               tmp_path: Path) -> None:
    from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS
    from training.propensity.score import score_to_file

    batch, version, as_of, _ = score_to_file(ds, "churn", tmp_path / "churn.parquet", world.as_of)
    ids = batch[s.HOUSEHOLD_ID].tolist()
    out = post(client, "/propensity", {"model": "churn", "household_ids": ids + [10**9]})
    assert out["model_version"] == version and out["unknown_household_ids"] == [10**9]
    assert out["as_of"] == as_of.isoformat() == world.as_of.isoformat()  # the snapshot date
    got = pd.DataFrame(out["scores"])
    assert got[s.HOUSEHOLD_ID].tolist() == ids
    np.testing.assert_allclose(got["probability"], batch["score"], rtol=1e-9)
    assert got["decile"].tolist() == batch["decile"].tolist()
    reasons = batch[list(REASON_COLUMNS)].to_numpy().tolist()
    assert got["reasons"].tolist() == reasons
    assert got["reason_values"].tolist() == batch[list(VALUE_COLUMNS)].to_numpy().tolist()


def test_propensity_scores_a_repeated_household_once(client, bought) -> None:
    """Documented: each household once, in the order of its first appearance."""
    a, b = (int(h) for h in bought[s.HOUSEHOLD_ID].unique()[:2])
    out = post(client, "/propensity", {"model": "churn",
                                       "household_ids": [b, a, b, 10**9, b, 10**9]})
    assert [x[s.HOUSEHOLD_ID] for x in out["scores"]] == [b, a]
    assert out["unknown_household_ids"] == [10**9]


def test_propensity_coupon_matches_growth_score(client, ds, world, registry_store,
                                                tmp_path: Path) -> None:
    from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS
    from training.propensity.score import RECEIVED, score_to_file

    campaign = 11  # starts after the coupon model's data ends, as the PIT rule needs
    batch, _, as_of, _ = score_to_file(ds, "coupon", tmp_path / "c.parquet", campaign_id=campaign)
    assert {0, 1} <= set(batch[RECEIVED])  # recipients and households still to target
    ids = batch[s.HOUSEHOLD_ID].tolist()
    out = post(client, "/propensity", {"model": "coupon", "campaign_id": campaign,
                                       "household_ids": ids})
    assert out["unknown_household_ids"] == []
    # as of the campaign's start, as growth score records it, not the snapshot date
    assert out["as_of"] == as_of.isoformat() != world.as_of.isoformat()
    got = pd.DataFrame(out["scores"])
    np.testing.assert_allclose(got["probability"], batch["score"], rtol=1e-9)
    assert got["decile"].tolist() == batch["decile"].tolist()
    reasons = batch[list(REASON_COLUMNS)].to_numpy().tolist()
    assert got["reasons"].tolist() == reasons  # computed at bundle time, the same codes
    assert got["reason_values"].tolist() == batch[list(VALUE_COLUMNS)].to_numpy().tolist()


def test_audience_selection_control_and_csv(client) -> None:
    body = {"model": "churn", "top_n": 40, "control_fraction": 0.25, "seed": 3,
            "exclude_household_ids": [1, 2]}
    out = post(client, "/audience", body)
    members = out["households"]
    assert out["size"] == 40 == len(members) and out["control"] == 10 and out["treated"] == 30
    assert not {m["household_id"] for m in members} & {1, 2}
    scores = [m["score"] for m in members]
    assert scores == sorted(scores, reverse=True) and [m["rank"] for m in members][-1] == 40
    treated = sum(m["score"] for m in members if not m["control"])
    assert out["expected_responders"] == pytest.approx(treated)
    assert post(client, "/audience", body) == out  # the seed fixes the holdout
    other = post(client, "/audience", {**body, "seed": 4})
    assert [m["control"] for m in other["households"]] != [m["control"] for m in members]
    threshold = post(client, "/audience", {"model": "churn", "min_score": 0.5})
    assert all(m["score"] >= 0.5 for m in threshold["households"])
    # households already gone left out: the best of those who bought in the last 28 days
    recent = post(client, "/audience", {"model": "churn", "top_n": 40,
                                        "max_days_since_last_purchase": 28})
    assert recent["households"] and all(
        m["days_since_last_purchase"] is not None and m["days_since_last_purchase"] <= 28
        for m in recent["households"])
    everyone = post(client, "/audience", {"model": "churn", "top_n": 10_000})["households"]
    assert [m["household_id"] for m in recent["households"]] == [
        m["household_id"] for m in everyone
        if m["days_since_last_purchase"] is not None
        and m["days_since_last_purchase"] <= 28][:40]
    bad = client.post("/audience", json={"model": "churn", "top_n": 5,
                                         "max_days_since_last_purchase": -1})
    assert bad.status_code == 400 and "max_days_since_last_purchase" in bad.text

    r = client.post("/audience", json={**body, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["household_id"]) for x in rows] == [m["household_id"] for m in members]
    assert sum(int(x["control"]) for x in rows) == 10
    assert float(r.headers["X-Expected-Responders"]) == pytest.approx(treated)


def test_audience_as_of_is_the_date_scores_are_computed_as_of(client, ds, world) -> None:
    """Churn audiences are as of the snapshot date, coupon audiences as of the campaign's
    start (the date their features are computed as of); /propensity the same."""
    from training.propensity.score import campaign_start

    churn = post(client, "/audience", {"model": "churn", "top_n": 3})
    assert churn["as_of"] == world.as_of.isoformat()
    for campaign in (3, 11):
        start = campaign_start(ds, campaign)
        assert start < world.as_of
        coupon = post(client, "/audience", {"model": "coupon", "campaign_id": campaign,
                                            "top_n": 3})
        assert coupon["as_of"] == start.isoformat()
        scores = post(client, "/propensity", {"model": "coupon", "campaign_id": campaign,
                                              "household_ids": [1]})
        assert scores["as_of"] == start.isoformat()


@pytest.mark.parametrize("path,body", [
    ("/audience", {"model": "churn", "top_n": 3}),
    # scores of up to 10,000 households a call would rebuild any audience without the key
    ("/propensity", {"model": "churn", "household_ids": [1]})])
def test_scores_need_the_api_key_when_set(client, monkeypatch: pytest.MonkeyPatch, path: str,
                                          body: dict) -> None:
    monkeypatch.setenv("GROWTH_API_KEY", "s3cret")
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"].startswith("X-API-Key: ")
    assert client.post(path, json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.post("/recommend", json={"household_id": 1, "k": 3}
                       ).status_code == 200  # the storefront's endpoints stay open


def test_models_without_champion_answer_503(world, service_app,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The service class itself on the bundle built before churn and coupon had champions
    (a second ASGI app in one process would register BentoML's metrics twice)."""
    import asyncio

    import bentoml

    from serving.schemas import AudienceRequest, PropensityRequest, RecommendRequest
    from serving.service import GrowthService

    monkeypatch.setattr(GrowthService.inner, "bundle_model",
                        bentoml.models.BentoModel(world.partial_tag))
    service = GrowthService()
    r = asyncio.run(service.propensity(PropensityRequest(model="churn", household_ids=[1])))
    assert r.status_code == 503 and b"churn has no @champion" in r.body
    r = asyncio.run(service.audience(AudienceRequest(model="coupon", campaign_id=11, top_n=3)))
    assert r.status_code == 503 and json.loads(r.body)["error"] == (
        "coupon has no @champion in the registry at bundle time")  # no path, no remedy
    assert "growth bundle" in service.bundle.missing("coupon")  # those are for the CLI
    r = asyncio.run(service.recommend(RecommendRequest(k=3)))
    out = json.loads(r.body)
    assert len(out["items"]) == 3 and out["strategy"] == "popular"


def test_a_campaign_starting_before_the_data_is_refused(early_bundle, service_app,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A marketer asked for campaign 24 of the embedded data, which starts before its first
    day: /audience and /propensity answered 200 with one score for every household. They
    refuse it on campaign_id, saying its start and the data's first day; other campaigns
    still answer (the service class itself on that bundle, as for the 503s above)."""
    import asyncio

    import bentoml

    from serving.schemas import AudienceRequest, PropensityRequest
    from serving.service import GrowthService
    from tests.serving.conftest import before_data_error

    monkeypatch.setattr(GrowthService.inner, "bundle_model",
                        bentoml.models.BentoModel(early_bundle.tag))
    service = GrowthService()
    for campaign in (24, 25):  # 25 has no recipients at all
        message = before_data_error(early_bundle, campaign)
        for r in (asyncio.run(service.audience(AudienceRequest(
                      model="coupon", campaign_id=campaign, top_n=10))),
                  asyncio.run(service.propensity(PropensityRequest(
                      model="coupon", campaign_id=campaign, household_ids=[1])))):
            assert r.status_code == 400, r.body
            assert json.loads(r.body) == {"error": f"campaign_id: {message}",
                                          "detail": [{"loc": ["campaign_id"], "msg": message}]}
    assert before_data_error(early_bundle, 24).startswith(
        f"campaign 24 starts on 2016-11-14, before the data's first day {early_bundle.data_start}"
        ": no household has any purchase history before its start, so its scores would carry "
        "no information")
    r = asyncio.run(service.audience(AudienceRequest(model="coupon", campaign_id=11, top_n=10)))
    assert r.status_code == 200 and json.loads(r.body)["size"] == 10
    r = asyncio.run(service.audience(AudienceRequest(model="coupon", campaign_id=999, top_n=1)))
    assert r.status_code == 400 and json.loads(r.body)["error"].startswith(
        "campaign_id: unknown campaign 999; expected one of [1, ")


def test_no_coupon_remedy_for_data_without_campaign_tables(tmp_path: Path) -> None:
    """On transactions alone `growth run` and `growth bundle` told to train coupon on that
    data, which `growth train coupon` refuses: they say the data cannot have a coupon model."""
    from features.dataset import load_dataset
    from serving.bundle import BundleError, build_bundle
    from serving.config import load_serving_config
    from tests.fixtures import tiny_tables, write_folder

    tables = tiny_tables()
    folder = write_folder(tmp_path / "d", {name: tables[name]
                                           for name in (s.TRANSACTIONS, s.PRODUCTS)})
    ds = load_dataset(folder, quarantine_dir=tmp_path / "q")
    with pytest.raises(BundleError) as err:
        build_bundle(ds, load_serving_config())
    msg = str(err.value)
    assert msg.endswith(
        f"this data ({ds.source}) has no tables campaigns, campaign_descriptions, "
        "coupons, coupon_redemptions, which coupon is trained on, so no coupon model can be "
        "trained on it; add them (<table>.parquet or <table>.csv) to bundle one")
    assert "train coupon" not in msg
    assert f"train churn on this data ({ds.source}) and make it the champion" in msg


def test_endpoints_are_bound_once_and_still_answer(client) -> None:
    """``bind_endpoints``: every request reuses one callable per endpoint instead of BentoML
    rebuilding it (and its signature) on each attribute access."""
    from _bentoml_sdk.service import get_current_service

    service = get_current_service()
    for name in ("recommend", "similar_items", "propensity", "audience"):
        assert getattr(service, name) is getattr(service, name), name
        assert getattr(service, name).local is getattr(service, name), name
    r = client.post("/recommend", json={"k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_a_service_process_ends_quietly(world) -> None:
    """The service freezes its heap after loading (``freeze_heap``); left frozen at exit, the
    interpreter could not free what it holds in cycles and DuckDB's nanobind bindings printed
    some 150 "leaked" lines as every service process (and the test run) ended."""
    code = ("from starlette.testclient import TestClient\n"
            "from serving.service import GrowthService\n"
            "with TestClient(GrowthService.to_asgi()) as c:\n"
            "    assert c.get('/readyz').status_code == 200\n")
    env = {**os.environ, "BENTOML_HOME": str(world.bentoml_home), "GROWTH_BUNDLE": world.tag}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "leaked" not in res.stderr, res.stderr[-3000:]


def test_benchmark_reference_app_gives_the_same_answers(client, bought, world) -> None:
    """``make bench-serve`` holds the service against ``serving/reference_app.py``: the
    yardstick must do the same work, so it must give the same answers and reject what the
    service rejects (FastAPI answers 422 where the service answers 400)."""
    from starlette.testclient import TestClient

    from serving.reference_app import app

    household = int(bought[s.HOUSEHOLD_ID].iloc[0])
    bodies = [{"household_id": household, "k": 12},
              {"household_id": household, "k": 20, "exclude_purchased": True,
               "departments": ["produce"]},
              {"household_id": 10**12, "recent_product_ids": world.indexed_products(2), "k": 8},
              {"k": 5}]
    with TestClient(app) as reference:
        for body in bodies:
            ours, theirs = client.post("/recommend", json=body), reference.post("/recommend",
                                                                                 json=body)
            assert ours.status_code == theirs.status_code == 200, body
            assert ours.json() == theirs.json(), body
        assert reference.post("/recommend", json={"k": 0}).status_code == 422


def request_counts(client) -> dict[tuple[str, str], float]:
    """``{(endpoint, status): requests}`` from the service's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(x.labels["endpoint"], x.labels["status"]): x.value
            for family in text_string_to_metric_families(r.text)
            if family.name == "growthloop_request_duration_seconds"
            for x in family.samples if x.name.endswith("_count")}


def test_metrics_count_every_request_by_endpoint_and_status(client) -> None:
    """``serving/metrics.py`` replaces BentoML's traffic middleware: each API request, good,
    rejected by pydantic (400) or by the guard (415), is one observation under its route
    and status; unknown paths share one label; health checks are not recorded."""
    from serving.service import CONFIG

    assert not CONFIG.bentoml_metrics
    before = request_counts(client)
    for _ in range(3):
        assert client.post("/recommend", json={"k": 2}).status_code == 200
    assert client.post("/recommend", json={"k": 0}).status_code == 400
    assert client.post("/similar_items", content=b"x", headers={"content-type": "text/plain"}
                       ).status_code == 415
    assert client.get("/no/such/path-123").status_code == 404
    assert client.get("/readyz").status_code == 200
    after = request_counts(client)
    delta = {key: after[key] - before.get(key, 0.0) for key in after
             if after[key] != before.get(key, 0.0)}
    assert delta == {("/recommend", "200"): 3.0, ("/recommend", "400"): 1.0,
                     ("/similar_items", "415"): 1.0, ("other", "404"): 1.0}
    assert {("/audience", "200"), ("/propensity", "200"), ("/similar_items", "200")} <= set(after)
