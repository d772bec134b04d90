"""The recommend work behind a bare FastAPI app: the yardstick ``make bench-serve`` holds the
BentoML service against (same bundle, same business rules, same pydantic models; no
BentoML). Not a product surface.

    GROWTH_BUNDLE=growthloop:latest uvicorn serving.reference_app:app --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from serving.bundle import TWO_TOWER, open_bundle
from serving.config import load_serving_config, use_bentoml_home
from serving.guard import error_body
from serving.recommend import RecommendationStore, RequestError, freeze_heap, limit_faiss_threads
from serving.schemas import RecommendRequest, RecommendResponse, ok

state: dict = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    cfg = load_serving_config()
    use_bentoml_home(cfg)
    limit_faiss_threads(cfg.faiss_threads)
    bundle = open_bundle(os.environ.get("GROWTH_BUNDLE", f"{cfg.bundle_name}:latest"))
    state.update(bundle=bundle, recs=RecommendationStore(bundle.path / TWO_TOWER))
    freeze_heap()
    yield


app = FastAPI(title="growthloop reference app", lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict:
    return {"ready": "recs" in state}


@app.post("/recommend", response_model=RecommendResponse)
async def recommend(request: RecommendRequest) -> Response:
    bundle = state["bundle"]
    try:
        strategy, items = state["recs"].recommend(request)
    except RequestError as exc:
        return JSONResponse(error_body(exc.field, exc.message), status_code=exc.status)
    return ok(RecommendResponse(household_id=request.household_id, strategy=strategy,
                                items=items,
                                model_versions={TWO_TOWER: bundle.versions[TWO_TOWER]},
                                as_of=bundle.as_of,
                                shortfall=state["recs"].shortfall(request, len(items))))
