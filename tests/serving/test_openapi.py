"""The OpenAPI document at ``/docs.json`` describes every answer the service gives: real
answers of each endpoint, good and bad, have a status the document lists for that path, a
media type it lists for that status, and a body that validates against the schema it gives
(jsonschema, JSON Schema 2020-12 as OpenAPI 3.1 uses, references resolved in the document)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from features import schema as s

EMPTY_BODY = b""
BOM_BODY = b'\xef\xbb\xbf{"k": 5}'


@pytest.fixture(scope="module")
def spec(client) -> dict:
    r = client.get("/docs.json")
    assert r.status_code == 200
    return r.json()


def documented_answer(spec: dict, method: str, path: str, status: int) -> dict:
    """The answer ``spec`` lists for ``status`` of ``method path``; a 405 is listed on the
    path's operations (the method that gets it has none)."""
    operations = spec["paths"][path]
    if status == 405:
        answers = [op["responses"]["405"] for op in operations.values()
                   if "405" in op["responses"]]
        assert answers, f"405 not documented for {path}"
        return answers[0]
    responses = operations[method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, not documented"
    return responses[str(status)]


def assert_documented(spec: dict, method: str, path: str, status: int,
                      content_type: str, body: bytes) -> None:
    """An answer of ``method path`` is one ``spec`` describes: status, media type, body."""
    answer = documented_answer(spec, method, path, status)
    media = content_type.split(";")[0].strip()
    assert media in answer.get("content", {}), (method, path, status, media)
    schema = answer["content"][media]["schema"]
    if media == "application/json":  # the document is the root: its $refs resolve in it
        validator = Draft202012Validator({**spec, **schema},
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [e.message for e in validator.iter_errors(json.loads(body))]
        assert not errors, (method, path, status, errors[:3], body[:300])
    else:  # text: CSV, Prometheus, HTML
        assert schema["type"] == "string"


def assert_answer_documented(spec: dict, r) -> None:
    assert_documented(spec, r.request.method, r.request.url.path, r.status_code,
                      r.headers.get("content-type", ""), r.content)


def test_component_schemas_are_valid_json_schema(spec) -> None:
    assert spec["openapi"] == "3.1.0"  # JSON Schema 2020-12: anyOf with type null is valid
    for name, schema in spec["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert schema.get("title") == name


def test_nullable_fields_are_nullable_under_paths(spec) -> None:
    """BentoML inlined the answers under paths keeping the first branch of each anyOf:
    campaign_id and household_id read as required integers, though null is sent."""
    def answer(path: str) -> dict:
        ref = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        return spec["components"]["schemas"][ref["schema"]["$ref"].rsplit("/", 1)[1]]

    for path, field in (("/propensity", "campaign_id"), ("/audience", "campaign_id"),
                        ("/recommend", "household_id"), ("/recommend", "shortfall")):
        types = [branch.get("type") for branch in answer(path)["properties"][field]["anyOf"]]
        assert "null" in types, (path, field)


def test_good_and_bad_answers_are_documented(client, spec, world, monkeypatch) -> None:
    import pandas as pd

    from serving.config import load_serving_config

    lines = pd.read_parquet(world.data / "transactions.parquet")
    household = int(lines[s.HOUSEHOLD_ID].iloc[0])
    product = world.indexed_products(1)[0]
    json_type = {"Content-Type": "application/json"}
    too_big = b" " * (load_serving_config().max_request_bytes + 1)
    answers = [
        # /recommend: a household, a visitor (household_id null), fewer than k (shortfall)
        client.post("/recommend", json={"household_id": household, "k": 5}),
        client.post("/recommend", json={"k": 5, "recent_product_ids": [product]}),
        client.post("/recommend", json={"k": 200, "departments": ["DELI"]}),
        client.post("/recommend", json={"k": 0}),
        client.post("/recommend", json={"departments": ["SPACESHIPS"]}),
        client.post("/recommend", content=BOM_BODY, headers=json_type),
        client.post("/recommend", content=EMPTY_BODY, headers=json_type),
        client.post("/recommend", content=b"k=5", headers={"Content-Type": "text/plain"}),
        client.post("/recommend", content=too_big, headers=json_type),
        client.get("/recommend"),
        # /similar_items
        client.post("/similar_items", json={"product_id": product, "k": 3}),
        client.post("/similar_items", json={"product_id": 5}),
        client.post("/similar_items", json={"product_id": product, "k": 500}),
        client.put("/similar_items", json={}),
        # /propensity: churn answers campaign_id null
        client.post("/propensity", json={"model": "churn", "household_ids": [household, 10**9]}),
        client.post("/propensity", json={"model": "coupon", "campaign_id": 11,
                                         "household_ids": [household]}),
        client.post("/propensity", json={"model": "coupon", "household_ids": [1]}),
        client.post("/propensity", json={"model": "coupon", "campaign_id": 999,
                                         "household_ids": [1]}),
        # /audience: JSON, CSV, bad
        client.post("/audience", json={"model": "churn", "top_n": 5}),
        client.post("/audience", json={"model": "coupon", "campaign_id": 11, "top_n": 5}),
        client.post("/audience", json={"model": "churn", "top_n": 5, "format": "csv"}),
        client.post("/audience", json={"model": "churn"}),
        client.post("/audience", content=b"{}", headers={
            "Content-Type": "application/json; charset=latin-1"}),
        # probes, metrics, pages
        *(client.get(path) for path in ("/healthz", "/livez", "/readyz", "/metrics", "/",
                                        "/docs", "/docs.json")),
    ]
    monkeypatch.setenv("GROWTH_API_KEY", "s3cret")
    answers.append(client.post("/audience", json={"model": "churn", "top_n": 3}))
    answers.append(client.post("/audience", json={"model": "churn", "top_n": 3},
                               headers={"X-API-Key": "s3cret"}))
    statuses = set()
    for r in answers:
        assert_answer_documented(spec, r)
        statuses.add(r.status_code)
    assert statuses == {200, 400, 401, 404, 405, 413, 415}
    csv = next(r for r in answers if r.headers["content-type"].startswith("text/csv"))
    documented = {h.lower() for h in documented_answer(spec, "POST", "/audience", 200)[
        "headers"]}
    sent = {h for h in csv.headers if h.startswith("x-")}  # httpx: lower-case names
    assert {"x-model-version", "x-expected-responders"} <= sent <= documented


def test_refused_hosts_are_documented_on_every_path(service_app, spec) -> None:
    """403 for a Host the server does not answer (a server bound to loopback, reached
    through another name): any path, any method."""
    from starlette.testclient import TestClient

    from serving.guard import LOOPBACK_NAMES, RequestGuard

    guarded = RequestGuard(service_app, 1 << 20, hosts=frozenset(LOOPBACK_NAMES))
    with TestClient(guarded, base_url="http://rebind.example:3000") as rebound:
        for path, operations in spec["paths"].items():
            for method in operations:
                r = rebound.request(method.upper(), path, json={})
                assert r.status_code == 403, (method, path)
                assert_answer_documented(spec, r)


def test_answers_of_a_bundle_without_champions_are_documented(world, service_app, spec,
                                                              monkeypatch) -> None:
    """503: the service class on the bundle built before churn and coupon had champions."""
    import asyncio

    import bentoml

    from serving.schemas import AudienceRequest, PropensityRequest
    from serving.service import GrowthService

    monkeypatch.setattr(GrowthService.inner, "bundle_model",
                        bentoml.models.BentoModel(world.partial_tag))
    service = GrowthService()
    for path, answer in (
            ("/propensity", service.propensity(PropensityRequest(model="churn",
                                                                 household_ids=[1]))),
            ("/audience", service.audience(AudienceRequest(model="churn", top_n=3)))):
        r = asyncio.run(answer)
        assert r.status_code == 503
        assert_documented(spec, "POST", path, 503, r.headers["content-type"], r.body)


def test_api_key_is_a_security_scheme_of_the_scores_only(spec) -> None:
    """Swagger UI's "Authorize" sends the key on /propensity and /audience; the {}
    alternative says the key is needed only when the server sets one."""
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                  "description": schemes["ApiKey"]["description"]}}
    assert "GROWTH_API_KEY" in schemes["ApiKey"]["description"]
    for path in ("/propensity", "/audience"):
        assert spec["paths"][path]["post"]["security"] == [{"ApiKey": []}, {}]
        assert "401" in spec["paths"][path]["post"]["responses"]
    for path in ("/recommend", "/similar_items"):
        assert "security" not in spec["paths"][path]["post"]
        assert "401" not in spec["paths"][path]["post"]["responses"]


def test_probes_are_described_as_they_behave(spec) -> None:
    """Not BentoML's boilerplate (which calls /healthz deprecated since Kubernetes v1.16)."""
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        operation = spec["paths"][path]["get"]
        assert "Kubernetes v1.16" not in operation["description"]
        assert "text/plain" in operation["responses"]["200"]["content"]
    assert "bundle" in spec["paths"]["/readyz"]["get"]["description"]
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    assert "growthloop_request_duration_seconds" in spec["paths"]["/metrics"]["get"][
        "description"]


def test_documented_rules_of_answers(spec) -> None:
    """The shortfall of /recommend and the de-duplication of /propensity are written down."""
    schemas = spec["components"]["schemas"]
    shortfall = schemas["RecommendResponse"]["properties"]["shortfall"]["description"]
    assert shortfall.startswith("null when k items came back")
    assert set(schemas["Shortfall"]["required"]) == {"returned", "available", "excluded",
                                                     "message"}
    ids = schemas["PropensityRequest"]["properties"]["household_ids"]["description"]
    assert "scored once" in ids and "first appearance" in ids
    assert "scored once" in spec["paths"]["/propensity"]["post"]["description"]
    for path, request in (("/recommend", "RecommendRequest"), ("/audience", "AudienceRequest")):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{request}"}
        assert body["example"] == schemas[request]["example"]
