"""The growthloop BentoML service: recommendations, similar items, propensity scores and
audiences from one verified bundle (serving/bundle.py).

    growth serve [--port P] [--workers N]        # verifies the bundle, then runs:
    bentoml serve serving.service:GrowthService --host 127.0.0.1
                                                 # BENTOML_HOME, GROWTH_BUNDLE pick the bundle;
                                                 # without --host, BentoML binds 0.0.0.0

Endpoints are ``async``: a request is a slice of precomputed arrays, one FAISS search or
dictionary lookups, shorter than a thread-pool hop. After loading, ``freeze_heap()`` moves the
bundle's objects out of the collector's reach, which removes the p99 spikes of full
collections over a large heap (shared/notes/serving-performance.md); FAISS searches on one
thread; the access log and the (unsampled) OpenTelemetry spans are off unless
configs/serving.yaml turns them on. Each endpoint is bound to the instance once
(``bind_endpoints``): BentoML's API descriptor otherwise rebuilds its wrapper, with an
``inspect.signature``, on every request (12-26 us of a ~450 us request in process,
``benchmarks/asgi_cost.py``). ``/metrics`` and the per-request Prometheus histogram come from
``serving/metrics.py`` (one update per request) instead of BentoML's traffic middleware (about
60 us per request), unless configs/serving.yaml sets ``bentoml_metrics: true``. A part of the
bundle without a champion answers 503. uvicorn runs on uvloop and httptools (dependencies of
the project), which it picks by itself.
Bad requests get 4xx from pydantic (400) and ``serving/guard.py`` (400 for an empty body, 401,
413, 415); every error, 404 and 405 included, has the JSON shape of ``guard.error_body``.

Web pages (``serving/pages.py``): the marketers' audience page at ``/`` and the OpenAPI page
at ``/docs``, in place of BentoML's index page, which loads Google Tag Manager. The OpenAPI
document (``/docs.json``, ``serving/openapi.py``) lists every answer of every endpoint.
"""

from __future__ import annotations

import json
import os

import bentoml
from _bentoml_sdk.method import APIMethod
from starlette.responses import JSONResponse, Response

from serving.config import load_serving_config, use_bentoml_home
from serving.guard import (
    BIND_HOST_ENV,
    RequestGuard,
    allowed_hosts,
    error_body,
    quiet_client_errors,
)
from serving.metrics import RequestMetrics
from serving.openapi import openapi_document
from serving.pages import PAGES, Pages
from serving.schemas import (
    RULE_FIELDS,
    AudienceRequest,
    AudienceResponse,
    PropensityRequest,
    PropensityResponse,
    RecommendRequest,
    RecommendResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
    ok,
)

with bentoml.importing():
    from serving.audience import build_audience, to_csv
    from serving.bundle import PROPENSITY_MODELS, TWO_TOWER, open_bundle
    from serving.propensity import PropensityStore
    from serving.recommend import (
        RecommendationStore,
        RequestError,
        freeze_heap,
        limit_faiss_threads,
    )

CONFIG = load_serving_config()
use_bentoml_home(CONFIG)
BUNDLE = os.environ.get("GROWTH_BUNDLE", f"{CONFIG.bundle_name}:latest")
WORKERS = int(os.environ.get("GROWTH_SERVE_WORKERS", CONFIG.workers))
REQUESTS = {"/recommend": RecommendRequest, "/similar_items": SimilarItemsRequest,
            "/propensity": PropensityRequest, "/audience": AudienceRequest}
ANSWERS = {"/recommend": RecommendResponse, "/similar_items": SimilarItemsResponse,
           "/propensity": PropensityResponse, "/audience": AudienceResponse}
ROUTES = tuple(REQUESTS)
# need X-API-Key when GROWTH_API_KEY is set: /propensity too, or its scores (up to 10,000
# households a call) would rebuild any audience without the key
KEYED_PATHS = ("/propensity", "/audience")


def failure(exc: RequestError) -> JSONResponse:
    return JSONResponse(error_body(exc.field, exc.message), status_code=exc.status)


def bind_endpoints(instance: object) -> None:
    """Cache each ``@bentoml.api`` method on ``instance``.

    ``APIMethod`` is a non-data descriptor whose ``__get__`` builds a new wrapper (an
    ``inspect.signature``, ``functools.wraps``) on every access, and BentoML's endpoint reads
    ``getattr(instance, name).local`` once per request. An instance attribute takes
    precedence over a non-data descriptor, so storing what ``__get__`` returns now gives
    every request the same callable without rebuilding it. (It is the local caller: this
    service never calls its own endpoints through BentoML's self-proxy.)"""
    cls = type(instance)
    for name, attr in vars(cls).items():
        if isinstance(attr, APIMethod):
            instance.__dict__[name] = attr.__get__(instance, cls)


def unavailable(message: str) -> JSONResponse:
    return JSONResponse(error_body(None, message), status_code=503)


@bentoml.service(
    name="growthloop",
    description="Recommendations, similar items, propensity scores and audiences.",
    workers=WORKERS,
    traffic={"timeout": 60},
    logging={"access": {"enabled": CONFIG.access_log}},
    metrics={"enabled": CONFIG.bentoml_metrics},
    tracing={} if CONFIG.trace_requests else {"excluded_urls": [f"{r}$" for r in ROUTES]},
)
class GrowthService:
    bundle_model = bentoml.models.BentoModel(BUNDLE)

    def __init__(self) -> None:
        self.ready = False
        limit_faiss_threads(CONFIG.faiss_threads)
        self.bundle = open_bundle(self.bundle_model.path)
        self.as_of = self.bundle.as_of
        self.versions = self.bundle.versions
        self.recs = (RecommendationStore(self.bundle.path / TWO_TOWER)
                     if self.bundle.has(TWO_TOWER) else None)
        self.scorers = {name: PropensityStore.of(self.bundle, name)
                        for name in PROPENSITY_MODELS if self.bundle.has(name)}
        bind_endpoints(self)
        freeze_heap()
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    @bentoml.api(route="/recommend")
    async def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Exactly k distinct products for a household (or a visitor), best first; fewer
        only where k is impossible (the departments hold fewer products once
        exclude_purchased and recent_product_ids rule some out), and then ``shortfall`` says
        how many came and why."""
        if self.recs is None:
            return unavailable(self.bundle.unserved(TWO_TOWER))
        try:
            strategy, items = self.recs.recommend(request)
        except RequestError as exc:
            return failure(exc)
        return ok(RecommendResponse(household_id=request.household_id, strategy=strategy,
                                    items=items,
                                    model_versions={TWO_TOWER: self.versions[TWO_TOWER]},
                                    as_of=self.as_of,
                                    shortfall=self.recs.shortfall(request, len(items))))

    @bentoml.api(route="/similar_items")
    async def similar_items(self, request: SimilarItemsRequest, /) -> SimilarItemsResponse:
        """The k products nearest to one product in the two-tower item space."""
        if self.recs is None:
            return unavailable(self.bundle.unserved(TWO_TOWER))
        try:
            items = self.recs.similar_items(request.product_id, request.k)
        except RequestError as exc:
            return failure(exc)
        return ok(SimilarItemsResponse(product_id=request.product_id, items=items,
                                       model_versions={TWO_TOWER: self.versions[TWO_TOWER]}))

    @bentoml.api(route="/propensity")
    async def propensity(self, request: PropensityRequest, /) -> PropensityResponse:
        """Calibrated probability, decile and top-3 reason codes per household. A household
        listed more than once is scored once: scores and unknown_household_ids keep the order
        of first appearance."""
        store = self.scorers.get(request.model)
        if store is None:
            return unavailable(self.bundle.unserved(request.model))
        try:
            population = store.population(request.campaign_id)
        except RequestError as exc:
            return failure(exc)
        scores, unknown = population.scores(request.household_ids)
        return ok(PropensityResponse(model=request.model, model_version=store.version,
                                     campaign_id=request.campaign_id, as_of=population.as_of,
                                     model_data_end=store.data_end, scores=scores,
                                     reason_glossary=population.reason_glossary(
                                         s.reasons for s in scores),
                                     unknown_household_ids=unknown))

    @bentoml.api(route="/audience")
    async def audience(self, request: AudienceRequest, /) -> AudienceResponse:
        """Ranked households with a seeded control group, as JSON or CSV (needs the
        X-API-Key header when GROWTH_API_KEY is set)."""
        store = self.scorers.get(request.model)
        if store is None:
            return unavailable(self.bundle.unserved(request.model))
        try:
            audience = build_audience(store.population(request.campaign_id), request,
                                      store.version, store.data_end)
        except RequestError as exc:
            return failure(exc)
        if request.format == "csv":
            return Response(to_csv(audience), media_type="text/csv", headers={
                "X-Model-Version": str(audience.model_version),
                "X-Expected-Responders": repr(audience.expected_responders),
                **({"X-Audience-Notes": " | ".join(audience.notes)} if audience.notes else {})})
        return ok(audience)


HOSTS = allowed_hosts(CONFIG.allowed_hosts, os.environ.get(BIND_HOST_ENV))
if not CONFIG.bentoml_metrics:  # outside the guard: its 4xx answers are counted too
    GrowthService.add_asgi_middleware(RequestMetrics, routes=ROUTES, hosts=HOSTS)
GrowthService.add_asgi_middleware(
    RequestGuard, max_body_bytes=CONFIG.max_request_bytes, keyed_paths=KEYED_PATHS,
    examples={route: json.dumps(request.model_config["json_schema_extra"]["example"])
              for route, request in REQUESTS.items()}, rule_fields=RULE_FIELDS, hosts=HOSTS)
# inside the guard: it shapes the 405
GrowthService.add_asgi_middleware(Pages, pages=PAGES, spec=lambda: openapi_document(
    GrowthService, REQUESTS, ANSWERS, KEYED_PATHS))
quiet_client_errors()
