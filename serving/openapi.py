"""The OpenAPI document the service publishes at ``/docs.json`` (and Swagger UI shows at
``/docs``): BentoML's spec of the service, made to describe every answer the service gives.

BentoML 1.4 inlines each endpoint's request and answer schema under ``paths`` and keeps only
the first branch of each ``anyOf`` there, so a nullable field (``campaign_id`` of a churn
score, ``household_id`` of a visitor's recommendations) reads as a required integer; it lists
its own error shapes (400, 404, 500) and none of the service's (``serving/guard.py``: 401,
403, 405, 413, 415), nor the CSV answer of ``/audience``; its descriptions of the probes are
Kubernetes boilerplate, and its default description loads badges from outside. Here the
paths refer to pydantic's own schemas of the request and answer models (JSON Schema 2020-12,
hence OpenAPI 3.1), each endpoint lists every status it answers with its body, and the
``X-API-Key`` header is a security scheme, so Swagger UI's "Authorize" sends it.
``tests/serving/test_openapi.py`` validates real answers against this document.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.guard import API_KEY_ENV, ErrorBody

REF = "#/components/schemas/{model}"
API_KEY_SCHEME = "ApiKey"
TIMEOUT = "Timeout"
TEXT = {"text/plain": {"schema": {"type": "string"}}}

# any path, any method (serving/guard.py)
HOST_REFUSED = ("The Host header names a host this server does not answer (allowed_hosts of "
                "configs/serving.yaml; a server bound to a loopback address answers only "
                "localhost, 127.0.0.1 and [::1]).")
# every error answer of an API endpoint, by status (the routes' own ones in ROUTE_ERRORS)
ERRORS = {
    400: "Bad request: a field fails validation or a rule between fields (detail[].loc names "
         "the field), the data cannot answer a value (an unknown department or campaign), or "
         "the body is empty, not JSON, not UTF-8 or starts with a byte-order mark, or a "
         "Content-Type, Content-Length or Content-Encoding header is repeated.",
    403: HOST_REFUSED,
    405: "Any other method than POST on this path; the Allow header lists the methods allowed.",
    413: "The body is larger than the server takes (max_request_bytes of "
         "configs/serving.yaml, 1 MiB by default).",
    415: "The body is not JSON in UTF-8 as sent: another Content-Type, a charset other than "
         "utf-8, or a Content-Encoding (compression).",
    500: "A fault of the server (its log has the traceback).",
    503: "The served bundle has no champion of the model this endpoint needs; the message "
         "names it.",
}
ROUTE_ERRORS = {
    "/similar_items": {404: "product_id is not in the item index (products sold in the "
                            "model's catalogue window)."},
}
CSV_ROUTE = "/audience"  # answers text/csv with "format": "csv"

INFRA = {
    "/healthz": ("Liveness, as /livez: 200 with a newline as the body while the server "
                 "process runs. It does not look at the bundle; /readyz does.", {}),
    "/livez": ("Liveness (Kubernetes): 200 with a newline as the body while the server "
               "process runs.", {}),
    "/readyz": ("Readiness: 200 with a newline as the body once this worker has loaded and "
                "verified the bundle and answers requests; before that, 503 or no answer "
                "at all (a worker still loading answers nothing): probe with a timeout.",
                {503: "Not ready yet."}),
    "/metrics": ("Prometheus text exposition: growthloop_request_duration_seconds{endpoint, "
                 "status} (count, sum and buckets per API route and status, all workers "
                 "summed; no process metrics); BentoML's own metrics instead when "
                 "configs/serving.yaml sets bentoml_metrics: true.", {}),
}
HTML = {"text/html": {"schema": {"type": "string"}}}
PAGES = {
    "/": ("The marketers' audience page: a form over POST /audience.", HTML),
    "/docs": ("This document in Swagger UI.", HTML),
    "/docs.json": ("This document (OpenAPI 3.1).",
                   {"application/json": {"schema": {"type": "object"}}}),
}


def ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": REF.format(model=model if isinstance(model, str) else model.__name__)}


def error_answer(description: str, schema: str = ErrorBody.__name__) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def api_answers(route: str, answer: type[BaseModel], keyed: bool) -> dict[str, Any]:
    """Every answer of the POST endpoint at ``route``, by status."""
    ok: dict[str, Any] = {"description": "The answer.",
                          "content": {"application/json": {"schema": ref(answer)}}}
    if route == CSV_ROUTE:
        from serving.audience import CSV_COLUMNS  # a serving-only import, as in service.py

        ok["description"] = 'The answer: JSON, or CSV when the request says "format": "csv".'
        ok["content"]["text/csv"] = {"schema": {
            "type": "string", "description": "A header line, then one line per household: "
                                             + ", ".join(CSV_COLUMNS) + "."}}
        ok["headers"] = {
            "X-Model-Version": {"description": "CSV answers: the model version.",
                                "schema": {"type": "integer"}},
            "X-Expected-Responders": {"description": "CSV answers: the sum of the "
                                                     "probabilities of the treated (expected "
                                                     "churners for churn, responders for "
                                                     "coupon).",
                                      "schema": {"type": "number"}},
            "X-Audience-Notes": {"description": "CSV answers whose audience is not what was "
                                                "asked: the notes, joined by ' | '.",
                                 "schema": {"type": "string"}}}
    errors = {**ERRORS, **ROUTE_ERRORS.get(route, {})}
    if keyed:
        errors[401] = (f"X-API-Key header missing or wrong: needed when the server sets "
                       f"{API_KEY_ENV}.")
    answers = {"200": ok, **{str(status): error_answer(text)
                             for status, text in sorted(errors.items())}}
    answers["405"]["headers"] = {"Allow": {"description": "The methods allowed: POST.",
                                           "schema": {"type": "string"}}}
    answers["504"] = error_answer("Not answered within the server's timeout: BentoML's "
                                  "answer, an error text without detail.", TIMEOUT)
    return answers


def component_schemas(requests: Mapping[str, type[BaseModel]],
                      answers: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """pydantic's JSON schemas of the requests (as validated), the answers and the error
    body (as serialised), and the model each refers to, by model name."""
    models = [*((m, "validation") for m in requests.values()),
              *((m, "serialization") for m in (*answers.values(), ErrorBody))]
    _, top = models_json_schema(models, ref_template=REF)
    return {**top["$defs"], TIMEOUT: {
        "type": "object", "required": ["error"], "title": TIMEOUT,
        "properties": {"error": {"type": "string"}}}}


def openapi_document(service, requests: Mapping[str, type[BaseModel]],
                     answers: Mapping[str, type[BaseModel]],
                     keyed_paths: tuple[str, ...]) -> dict[str, Any]:
    """BentoML's OpenAPI spec of ``service`` with ``requests`` and ``answers`` (route ->
    model) as its schemas, every answer of each route, the API key of ``keyed_paths`` as a
    security scheme, honest descriptions of the probes and the pages, and the service's own
    description and version in place of BentoML's (a readme of badges from img.shields.io
    and links to BentoML's Slack, which the page policy would block; ``"None"`` for a
    service not built into a Bento)."""
    spec = service.openapi_spec.asdict()
    spec["openapi"] = "3.1.0"
    spec["info"] = {"title": spec["info"]["title"], "description": service.description,
                    "version": version("growthloop")}
    spec["tags"] = [
        {"name": "Service APIs", "description": "Recommendations, similar items, "
                                                "propensity scores and audiences."},
        {"name": "Infrastructure", "description": "Probes and metrics."},
        {"name": "Pages", "description": "Web pages and this document."}]
    spec["components"] = {
        "schemas": component_schemas(requests, answers),
        "securitySchemes": {API_KEY_SCHEME: {
            "type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": f"Needed by {', '.join(keyed_paths)} when the server sets "
                           f"{API_KEY_ENV}; the other endpoints are open (the "
                           "storefront's /recommend and /similar_items)."}}}
    for route, request in requests.items():
        operation = spec["paths"][route]["post"]
        operation["description"] = inspect.cleandoc(operation["description"])  # a docstring
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": ref(request),
            "example": request.model_config["json_schema_extra"]["example"]}}}
        operation["responses"] = api_answers(route, answers[route], route in keyed_paths)
        if route in keyed_paths:  # optional: the key is needed only when one is configured
            operation["security"] = [{API_KEY_SCHEME: []}, {}]
    for path, (description, errors) in INFRA.items():
        operation = spec["paths"][path]["get"]
        operation["description"] = description
        operation["responses"] = {"200": {"description": "OK", "content": TEXT},
                                  **{str(s): error_answer(d)
                                     for s, d in sorted({403: HOST_REFUSED, **errors}.items())}}
    for path, (description, content) in PAGES.items():
        spec["paths"][path] = {"get": {"tags": ["Pages"], "description": description,
                                       "responses": {"200": {"description": "OK",
                                                             "content": content},
                                                     "403": error_answer(HOST_REFUSED)}}}
    return spec
