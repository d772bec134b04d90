"""Request and response bodies of the service (pydantic): the OpenAPI page shows these
descriptions and each request's example. BentoML 1.4's OpenAPI builder accepts a
model-level ``example`` but fails on pydantic's field-level ``examples``, so examples live
on the models. Requests are strict (``"5"`` is not an integer, unknown fields are rejected),
so a typo fails loudly with the field's name instead of being ignored."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette import responses

from features.schema import MAX_ID

Id = Annotated[int, Field(ge=0, le=MAX_ID)]
K = Annotated[int, Field(ge=1, le=200, description="How many products to return (1..200).")]
Reason = Literal["repeat", "similar", "popular"]
Model = Literal["churn", "coupon"]
SCORES_AS_OF = ("Date the scores are computed as of (features from purchases before it): the "
                "snapshot date for churn, the campaign's start date for coupon.")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class RecommendRequest(Request):
    household_id: Id | None = Field(
        None, description="The household; unknown or absent means the cold-start path.")
    recent_product_ids: list[Id] | None = Field(
        None, max_length=100,
        description="Products the visitor just viewed or bought (at most 100). Used only "
                    "when the household is unknown: the nearest items to their mean "
                    "embedding (reason similar). Unknown ids are ignored.")
    k: K = 20
    exclude_purchased: bool = Field(
        False, description="Only products the household has never bought.")
    departments: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=1, max_length=50,
        description="Only products of these departments (case-insensitive).")

    model_config = ConfigDict(json_schema_extra={"example": {
        "household_id": 1364, "k": 10, "exclude_purchased": False, "departments": ["PRODUCE"]}})


class SimilarItemsRequest(Request):
    product_id: Id = Field(description="A product in the item index.")
    k: K = 20

    model_config = ConfigDict(json_schema_extra={"example": {"product_id": 1082185, "k": 10}})


class Item(BaseModel):
    product_id: int
    score: float = Field(description="Blend probability (repeat, similar from the household "
                                     "list), cosine similarity (similar from items) or share "
                                     "of households buying it in 4 weeks (popular); compare "
                                     "scores within one reason only.")
    reason: Reason


class RecommendResponse(Response):
    household_id: int | None
    strategy: Literal["personal", "recent_items", "popular"] = Field(
        description="personal: the household's precomputed list; recent_items: nearest items "
                    "to recent_product_ids; popular: the cold-start list.")
    items: list[Item]
    model_versions: dict[str, int]
    as_of: date = Field(description="Snapshot date: purchases before it are known.")


class SimilarItemsResponse(Response):
    product_id: int
    items: list[Item]
    model_versions: dict[str, int]


class PropensityRequest(Request):
    model: Model = Field(description="churn or coupon.")
    household_ids: list[Id] = Field(
        min_length=1, max_length=10_000, description="1 to 10,000 households.")
    campaign_id: Id | None = Field(
        None, description="Required for coupon: the campaign whose response is scored.")

    @model_validator(mode="after")
    def _campaign_for_coupon(self) -> PropensityRequest:
        if self.model == "coupon" and self.campaign_id is None:
            raise ValueError("campaign_id is required when model is coupon")
        return self

    model_config = ConfigDict(json_schema_extra={"example": {
        "model": "coupon", "campaign_id": 18, "household_ids": [1364, 2, 7]}})


class HouseholdScore(BaseModel):
    household_id: int
    probability: float = Field(description="Calibrated probability of the event.")
    decile: int = Field(description="1 = the top tenth of all scored households.")
    reasons: list[str] = Field(description="Top 3 features pushing the score up.")


class PropensityResponse(Response):
    model: Model
    model_version: int
    campaign_id: int | None
    as_of: date = Field(description=SCORES_AS_OF)
    scores: list[HouseholdScore]
    unknown_household_ids: list[int] = Field(
        description="Requested households without a purchase before as_of (not scored).")


class AudienceRequest(Request):
    model: Model = Field(description="churn or coupon.")
    campaign_id: Id | None = Field(None, description="Required for coupon.")
    top_n: int | None = Field(None, ge=1, le=1_000_000,
                              description="Take the n highest-scoring households.")
    min_score: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                    description="Take households scoring at least this.")
    control_fraction: float = Field(0.0, ge=0.0, lt=1.0,
                                    description="Share held out at random as a control group "
                                                "(not to be contacted).")
    exclude_household_ids: list[Id] | None = Field(
        None, max_length=100_000, description="Never put these households in the audience.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the control draw.")
    format: Literal["json", "csv"] = "json"

    @model_validator(mode="after")
    def _selection(self) -> AudienceRequest:
        if self.top_n is None and self.min_score is None:
            raise ValueError("give top_n or min_score (or both)")
        if self.model == "coupon" and self.campaign_id is None:
            raise ValueError("campaign_id is required when model is coupon")
        return self

    model_config = ConfigDict(json_schema_extra={"example": {
        "model": "churn", "top_n": 500, "control_fraction": 0.1, "seed": 7, "format": "json"}})


class AudienceMember(BaseModel):
    household_id: int
    rank: int
    score: float
    decile: int
    reasons: list[str]
    control: bool = Field(description="Held out: do not contact.")


class AudienceResponse(Response):
    model: Model
    model_version: int
    campaign_id: int | None
    as_of: date = Field(description=SCORES_AS_OF)
    size: int
    treated: int
    control: int
    expected_responders: float = Field(description="Sum of the probabilities of the treated.")
    households: list[AudienceMember]


def ok(body: BaseModel) -> responses.Response:
    """``body`` serialised once, by pydantic, as a 200 JSON response. Both the service and
    the bare reference app return this: given a model instead, BentoML and FastAPI would
    each validate it again before serialising it (about a tenth of the per-request work)."""
    return responses.Response(body.model_dump_json(), media_type="application/json")
