"""Every field of every endpoint, wrong: the status and a message that names the field and
says what was expected; an empty body, a wrong path or method. Nothing is a 500, and every
error has one JSON shape: ``{"error": text, "detail": [{"loc": [...], "msg": ...}, ...]}``."""

from __future__ import annotations

import json

import pytest

HUGE = 2**64

CASES = [
    # /recommend
    ("/recommend", {"household_id": "12"}, 400, "household_id: Input should be a valid integer"),
    ("/recommend", {"household_id": -1}, 400, "household_id: Input should be greater than or "
                                              "equal to 0"),
    ("/recommend", {"household_id": HUGE}, 400, "household_id: Input should be less than or "
                                                "equal to 9223372036854775807"),
    ("/recommend", {"recent_product_ids": 5}, 400, "recent_product_ids: Input should be a valid "
                                                   "array"),
    ("/recommend", {"recent_product_ids": [1.5]}, 400, "recent_product_ids.0: Input should be "
                                                       "a valid integer"),
    ("/recommend", {"recent_product_ids": list(range(101))}, 400,
     "recent_product_ids: List should have at most 100 items"),
    ("/recommend", {"k": 0}, 400, "k: Input should be greater than or equal to 1"),
    ("/recommend", {"k": 201}, 400, "k: Input should be less than or equal to 200"),
    ("/recommend", {"k": "20"}, 400, "k: Input should be a valid integer"),
    ("/recommend", {"k": 2.5}, 400, "k: Input should be a valid integer"),
    ("/recommend", {"exclude_purchased": "yes"}, 400, "exclude_purchased: Input should be a "
                                                      "valid boolean"),
    ("/recommend", {"departments": "PRODUCE"}, 400, "departments: Input should be a valid array"),
    ("/recommend", {"departments": []}, 400, "departments: List should have at least 1 item"),
    ("/recommend", {"departments": [""]}, 400, "departments.0: String should have at least 1 "
                                               "character"),
    ("/recommend", {"departments": [" \t"]}, 400, "departments.0: String should have at least "
                                                  "1 character"),
    ("/recommend", {"departments": ["SPACESHIPS"]}, 400,
     "departments: unknown department(s) ['SPACESHIPS']; expected any of: BEVERAGE"),
    ("/recommend", {"kk": 5}, 400, "kk: Extra inputs are not permitted"),
    ("/recommend", [1, 2], 400, "Input should be an object"),
    # /similar_items
    ("/similar_items", {"k": 3}, 400, "product_id: Field required"),
    ("/similar_items", {"product_id": "x"}, 400, "product_id: Input should be a valid integer"),
    ("/similar_items", {"product_id": 36539, "k": 500}, 400, "k: Input should be less than or "
                                                             "equal to 200"),
    ("/similar_items", {"product_id": 7}, 404, "product_id: product 7 is not in the item index"),
    # /propensity
    ("/propensity", {"model": "ltv", "household_ids": [1]}, 400,
     "model: Input should be 'churn' or 'coupon'"),
    ("/propensity", {"household_ids": [1]}, 400, "model: Field required"),
    ("/propensity", {"model": "churn"}, 400, "household_ids: Field required"),
    ("/propensity", {"model": "churn", "household_ids": []}, 400,
     "household_ids: List should have at least 1 item"),
    ("/propensity", {"model": "churn", "household_ids": list(range(10_001))}, 400,
     "household_ids: List should have at most 10000 items"),
    ("/propensity", {"model": "churn", "household_ids": ["a"]}, 400,
     "household_ids.0: Input should be a valid integer"),
    ("/propensity", {"model": "coupon", "household_ids": [1]}, 400,
     "campaign_id is required when model is coupon"),
    ("/propensity", {"model": "coupon", "campaign_id": 999, "household_ids": [1]}, 400,
     "campaign_id: unknown campaign 999; expected one of [1, 2"),
    ("/propensity", {"model": "churn", "campaign_id": 3, "household_ids": [1]}, 400,
     "campaign_id: only applies to model coupon"),
    ("/propensity", {"model": "coupon", "campaign_id": "3", "household_ids": [1]}, 400,
     "campaign_id: Input should be a valid integer"),
    # /audience
    ("/audience", {"model": "churn"}, 400, "give top_n or min_score (or both)"),
    ("/audience", {"model": "churn", "top_n": 0}, 400, "top_n: Input should be greater than or "
                                                       "equal to 1"),
    ("/audience", {"model": "churn", "min_score": 1.5}, 400, "min_score: Input should be less "
                                                             "than or equal to 1"),
    ("/audience", {"model": "churn", "top_n": 5, "control_fraction": 1.0}, 400,
     "control_fraction: Input should be less than 1"),
    ("/audience", {"model": "churn", "top_n": 5, "control_fraction": -0.1}, 400,
     "control_fraction: Input should be greater than or equal to 0"),
    ("/audience", {"model": "churn", "top_n": 5, "exclude_household_ids": "1"}, 400,
     "exclude_household_ids: Input should be a valid array"),
    ("/audience", {"model": "churn", "top_n": 5, "seed": -1}, 400,
     "seed: Input should be greater than or equal to 0"),
    ("/audience", {"model": "churn", "top_n": 5, "format": "xml"}, 400,
     "format: Input should be 'json' or 'csv'"),
    ("/audience", {"model": "coupon", "top_n": 5}, 400,
     "campaign_id is required when model is coupon"),
    ("/audience", {"model": "coupon", "campaign_id": 999, "top_n": 5}, 400,
     "campaign_id: unknown campaign 999"),
    ("/audience", {"model": "x", "top_n": 5}, 400, "model: Input should be 'churn' or 'coupon'"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_field(client, path: str, body, status: int, message: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()["error"]
    assert r.json()["detail"] and all("msg" in d for d in r.json()["detail"])


@pytest.mark.parametrize(("path", "body", "kind", "field", "message"), [
    ("/propensity", {"model": "coupon", "household_ids": [1]}, "campaign_required",
     "campaign_id", "campaign_id is required when model is coupon"),
    ("/audience", {"model": "coupon", "top_n": 5}, "campaign_required", "campaign_id",
     "campaign_id is required when model is coupon"),
    ("/audience", {"model": "churn"}, "selection_required", "top_n",
     "give top_n or min_score (or both)"),
])
def test_rule_between_fields_names_its_field(client, path: str, body: dict, kind: str,
                                             field: str, message: str) -> None:
    """pydantic gives a model validator's error no loc and a "Value error, " prefix; the
    client gets the field to change as loc, and the message as written."""
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == [{"type": kind, "loc": [field], "msg": message}]
    assert r.json()["error"] == (message if message.startswith(field) else
                                 f"{field}: {message}")


def assert_error(r, status: int, message: str) -> None:
    """``r`` is the JSON error ``message`` without a field."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": message, "detail": [{"loc": [], "msg": message}]}


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/recommend", 405, "Method Not Allowed: GET /recommend; allowed: POST"),
    ("PUT", "/audience", 405, "Method Not Allowed: PUT /audience; allowed: POST"),
    ("GET", "/no/such/path", 404, "Not Found: GET /no/such/path"),
    ("POST", "/no/such/path", 404, "Not Found: POST /no/such/path"),
    ("DELETE", "/", 405, "Method Not Allowed: DELETE /; allowed: GET, HEAD"),
    ("POST", "/docs", 405, "Method Not Allowed: POST /docs; allowed: GET, HEAD"),
    ("POST", "/metrics", 405, "Method Not Allowed: POST /metrics; allowed: GET, HEAD"),
])
def test_wrong_path_or_method(client, method: str, path: str, status: int,
                              message: str) -> None:
    """Starlette answers these in plain text; the guard gives them the service's shape."""
    assert_error(client.request(method, path, json={"k": 1}), status, message)


@pytest.mark.parametrize("path", ["/recommend", "/similar_items", "/propensity", "/audience"])
def test_empty_body(client, path: str) -> None:
    """BentoML reads an empty body as ``{}``; ``null`` is a 400, so is an empty body, with
    the endpoint's example (Content-Length 0, and chunked without a chunk)."""
    from serving.service import REQUESTS

    example = REQUESTS[path].model_config["json_schema_extra"]["example"]
    for content in (b"", iter([])):
        r = client.post(path, content=content, headers={"Content-Type": "application/json"})
        assert_error(r, 400, f"the request body is empty: POST {path} takes a JSON object, "
                             f"e.g. {json.dumps(example)}")
    r = client.post(path, content=b"null", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "Input should be an object"


def test_empty_object_is_still_a_body(client) -> None:
    r = client.post("/recommend", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and len(r.json()["items"]) == 20  # every field defaults


def test_error_shapes_of_other_answers() -> None:
    """BentoML's ``{"error": ...}`` (its 500 for an exception in an endpoint) and bare
    bodies get the detail list; a pydantic 400's text names the fields."""
    from serving.guard import shaped_error

    message = "An unexpected error has occurred, please check the server log."
    assert shaped_error(500, json.dumps({"error": message}).encode(), "POST", "/recommend",
                        None) == {"error": message, "detail": [{"loc": [], "msg": message}]}
    assert shaped_error(500, b"", "GET", "/readyz", None)["error"] == "Internal Server Error"
    assert shaped_error(503, b"Runners are not ready.", "GET", "/readyz", None)["error"] == (
        "Runners are not ready.")
    pydantic = {"error": "1 validation error for X",
                "detail": [{"type": "missing", "loc": ["k"], "msg": "Field required"}]}
    assert shaped_error(400, json.dumps(pydantic).encode(), "POST", "/x", None) == {
        **pydantic, "error": "k: Field required"}
    rule = {"error": "1 validation error for X",
            "detail": [{"type": "value_error", "loc": [], "msg": "Value error, give a or b"},
                       {"type": "a_needed", "loc": [], "msg": "a is needed"}]}
    assert shaped_error(400, json.dumps(rule).encode(), "POST", "/x", None,
                        rule_fields={"a_needed": "a"}) == {
        "error": "give a or b; a is needed",
        "detail": [{"type": "value_error", "loc": [], "msg": "give a or b"},
                   {"type": "a_needed", "loc": ["a"], "msg": "a is needed"}]}


def test_not_json(client) -> None:
    r = client.post("/recommend", content=b'{"k": 5', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("Invalid JSON")
    # the cause named where it is the body's encoding (pydantic: "expected value at line 1
    # column 1", "invalid unicode code point")
    r = client.post("/recommend", content=b'\xef\xbb\xbf{"k": 5}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == (
        "the body starts with a UTF-8 byte-order mark; send JSON without it")
    assert r.json()["detail"][0]["loc"] == [] and r.json()["detail"][0]["type"] == "json_invalid"
    latin1 = '{"k": 3,\n "departments": ["CAFÉ"]}'.encode("latin-1")
    for chunks in (latin1, iter([latin1[:5], latin1[5:]])):  # Content-Length, and chunked
        r = client.post("/recommend", content=chunks, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == (
            "the body is not UTF-8: byte 0xC9 at line 2 column 22 (offset 30) is not valid "
            "UTF-8 (Latin-1 text?); send the JSON body as UTF-8")
    r = client.post("/recommend", content=b"k=5",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "Content-Type must be application/json, got "
                         "'application/x-www-form-urlencoded'")


def test_body_charset_and_encoding(client) -> None:
    """A body the service cannot read as sent says why (415), not "invalid JSON" (400)."""
    import gzip

    body = json.dumps({"household_id": 1, "k": 3}).encode()
    r = client.post("/recommend", content=gzip.compress(body),
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert_error(r, 415, "Content-Encoding 'gzip' is not supported: send the JSON body "
                         "uncompressed")
    r = client.post("/recommend", content='{"departments": ["CAFÉ"]}'.encode("latin-1"),
                    headers={"Content-Type": "application/json; charset=ISO-8859-1"})
    assert_error(r, 415, "Content-Type charset must be utf-8, got 'iso-8859-1': send the JSON "
                         "body as UTF-8")
    for content_type in ("application/json; charset=utf-8", 'application/json;charset="UTF-8"'):
        r = client.post("/recommend", content=body, headers={"Content-Type": content_type})
        assert r.status_code == 200, r.text
    r = client.post("/recommend", content=body,
                    headers={"Content-Type": "application/json", "Content-Encoding": "identity"})
    assert r.status_code == 200, r.text


def test_repeated_or_malformed_body_headers(client) -> None:
    """The guard checks one Content-Type; BentoML decodes by the first. Two of them, in
    either order, could pass a form or multipart body off as JSON (a 200, or a 500)."""
    for first, second in (("multipart/form-data; boundary=xx", "application/json"),
                          ("application/json", "text/plain")):
        r = client.post("/recommend", content=b'{"k": 1}',
                        headers=[("Content-Type", first), ("Content-Type", second)])
        assert_error(r, 400, "header content-type is given 2 times; give it once")
    json_type = (b"content-type", b"application/json")
    sent = guarded("POST", [json_type, (b"content-length", b"-1")])  # clients cannot send it
    assert sent[0]["status"] == 400
    assert "Content-Length must be a whole number of bytes, got '-1'" in sent[1]["body"].decode()
    sent = guarded("POST", [json_type, (b"content-length", b"2"), (b"content-length", b"9")])
    assert sent[0]["status"] == 400 and b"content-length is given 2 times" in sent[1]["body"]


def guarded(method: str, headers: list[tuple[bytes, bytes]], **guard_options) -> list[dict]:
    """The messages ``RequestGuard`` sends for one request with body ``{}`` to /propensity;
    the app behind answers 200 with an empty body."""
    import asyncio

    from serving.guard import RequestGuard

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "method": method, "path": "/propensity", "headers": headers}
    asyncio.run(RequestGuard(app, 1 << 20, **guard_options)(scope, receive, send))
    return sent


def test_allowed_hosts_follow_the_bound_address_unless_configured() -> None:
    from serving.guard import LOOPBACK_NAMES, allowed_hosts, host_name

    assert allowed_hosts((), "127.0.0.1") == allowed_hosts((), "::1") == set(LOOPBACK_NAMES)
    assert allowed_hosts((), "0.0.0.0") is None and allowed_hosts((), None) is None
    assert allowed_hosts(("Shop.Example", "[::1]"), "127.0.0.1") == {"shop.example", "::1"}
    assert allowed_hosts(("*",), "127.0.0.1") is None
    assert allowed_hosts(("shop.example:443",), None) == {"shop.example"}  # a port is ignored
    assert [host_name(h) for h in (b"LocalHost:3000", b"[::1]:3000", b"[::1]", b"127.0.0.1",
                                   b"shop.example")] == [
        "localhost", "::1", "::1", "127.0.0.1", "shop.example"]


def test_the_guard_answers_only_its_hosts() -> None:
    """A page that points its own name at a loopback server (DNS rebinding) is one origin
    with it in the browser: the Host header is what tells the request apart."""
    from serving.guard import LOOPBACK_NAMES

    def status(method: str, host: bytes | None) -> int:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        sent = guarded(method, headers + ([(b"host", host)] if host is not None else []),
                       hosts=frozenset(LOOPBACK_NAMES))
        return sent[0]["status"]

    for method in ("GET", "POST"):
        assert status(method, b"evil.example:3000") == 403
        assert status(method, b"127.0.0.1.evil.example") == 403
        for host in (b"127.0.0.1:3000", b"localhost", b"[::1]:3000", None):
            assert status(method, host) == 200, (method, host)


def test_metrics_answer_head(client) -> None:
    r = client.head("/metrics")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0


def test_no_pickle_from_requests(client) -> None:
    """BentoML decodes application/vnd.bentoml+pickle on internal calls: never here."""
    r = client.post("/propensity", content=b"\x80\x04K\x01.",
                    headers={"Content-Type": "application/vnd.bentoml+pickle"})
    assert r.status_code == 415


def test_oversized_body(client) -> None:
    from serving.config import load_serving_config

    limit = load_serving_config().max_request_bytes
    body = b'{"model": "churn", "household_ids": [' + b"1," * limit + b"1]}"
    r = client.post("/propensity", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and f"exceeds {limit:,} bytes" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"model": "churn", "household_ids": ['
        for _ in range(limit // 4096 + 1):
            yield b"1," * 2048
        yield b"1]}"

    r = client.post("/propensity", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
