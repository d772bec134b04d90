"""Property-based fuzz of the served OpenAPI schema (hypothesis): bodies built from each
endpoint's request schema — values inside and outside every bound, wrong JSON types,
missing and unknown fields, non-object bodies — never get a 5xx, and every answer is one the
document describes (status, media type, body schema)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.test_openapi import assert_answer_documented

ENDPOINTS = ("/recommend", "/similar_items", "/propensity", "/audience")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def valid_for(schema: dict) -> st.SearchStrategy:
    """Values the schema allows, edges included (a light reading of JSON Schema)."""
    if "anyOf" in schema:  # a nullable field
        return st.one_of([valid_for(branch) for branch in schema["anyOf"]])
    if schema.get("type") == "null":
        return st.none()
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v for v in (low, high) if v is not None]
        return st.integers(min_value=low, max_value=high) | st.sampled_from(edges or [0])
    if kind == "number":
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        return st.floats(min_value=schema.get("minimum"), max_value=high,
                         exclude_max="exclusiveMaximum" in schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0),
                       max_size=schema.get("maxLength", 20)) | st.sampled_from(
            ["GROCERY", "produce", "DAIRY"])
    if kind == "array":
        return st.lists(valid_for(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 8), 8))
    return json_values


def out_of_bounds(schema: dict) -> st.SearchStrategy:
    """Values just past a bound, or of another JSON type."""
    if "anyOf" in schema:
        return st.one_of([out_of_bounds(branch) for branch in schema["anyOf"]])
    bounds = [schema[k] + d for k, d in (("minimum", -1), ("maximum", 1),
                                         ("exclusiveMaximum", 0)) if k in schema]
    if schema.get("type") == "array" and "maxItems" in schema:
        bounds.append([1] * (schema["maxItems"] + 1))
    return (st.sampled_from(bounds) if bounds else st.nothing()) | json_values


def bodies(schema: dict) -> st.SearchStrategy:
    props = schema["properties"]
    field = {name: valid_for(p) | out_of_bounds(p) for name, p in props.items()}
    objects = st.fixed_dictionaries({}, optional=field)
    with_extra = st.tuples(objects, st.dictionaries(st.text(max_size=8), json_values,
                                                    max_size=2)).map(lambda t: {**t[1], **t[0]})
    return objects | with_extra | json_values


@pytest.fixture(scope="module")
def spec(client) -> dict:
    return client.get("/docs.json").json()


@pytest.fixture(scope="module")
def schemas(spec) -> dict[str, dict]:
    """Each endpoint's request schema, its $ref resolved."""
    refs = {path: spec["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["$ref"] for path in ENDPOINTS}
    return {path: spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            for path, ref in refs.items()}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_5xx_from_any_body(client, spec, schemas, path: str) -> None:
    # derandomized: every run draws the same 150 bodies, so a failure replays and CI cannot
    # turn red on a change that did not cause it (set derandomize=False to explore more)
    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=bodies(schemas[path]))
    def check(body) -> None:
        payload = json.dumps(body, allow_nan=True)  # NaN and Infinity too: invalid JSON
        r = client.post(path, content=payload, headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (payload[:300], r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert r.json()["error"], r.text
        assert_answer_documented(spec, r)

    check()
