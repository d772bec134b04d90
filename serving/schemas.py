"""Request and response bodies of the service (pydantic): the OpenAPI page shows these
descriptions and each request's example. BentoML 1.4's OpenAPI builder accepts a
model-level ``example`` but fails on pydantic's field-level ``examples``, so examples live
on the models. Requests are strict (``"5"`` is not an integer, unknown fields are rejected),
so a typo fails loudly with the field's name instead of being ignored. A rule between
fields (``campaign_id`` needed for coupon) is a model validator; pydantic gives its error no
``loc``, so each rule raises its own error type and ``RULE_FIELDS`` names the field the
service reports it on (``serving/guard.py``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError
from starlette import responses

from features.schema import MAX_ID

Id = Annotated[int, Field(ge=0, le=MAX_ID)]
K = Annotated[int, Field(ge=1, le=200, description="How many products to return (1..200).")]
Reason = Literal["repeat", "similar", "popular"]
Model = Literal["churn", "coupon"]
# error type of a rule between fields -> the field a client should change
RULE_FIELDS = {"campaign_required": "campaign_id", "selection_required": "top_n",
               "department_conflict": "exclude_departments"}
Department = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                              max_length=100)]
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
    departments: list[Department] | None = Field(
        None, min_length=1, max_length=50,
        description="Only products of these departments (case-insensitive, surrounding "
                    "whitespace ignored).")
    exclude_departments: list[Department] | None = Field(
        None, min_length=1, max_length=50,
        description="Never products of these departments, e.g. [\"FUEL\", \"COUPON\"] for "
                    "a page that sells neither (matched as departments is).")

    @model_validator(mode="after")
    def _departments_apart(self) -> RecommendRequest:
        both = ({d.casefold() for d in self.departments or ()}
                & {d.casefold() for d in self.exclude_departments or ()})
        if both:
            raise PydanticCustomError(
                "department_conflict", "{names} both asked for (departments) and excluded",
                {"names": ", ".join(sorted(both))})
        return self

    model_config = ConfigDict(json_schema_extra={"example": {
        "household_id": 1364, "k": 10, "exclude_purchased": False, "departments": ["PRODUCE"]}})


class SimilarItemsRequest(Request):
    product_id: Id = Field(description="A product in the item index.")
    k: K = 20

    model_config = ConfigDict(json_schema_extra={"example": {"product_id": 1082185, "k": 10}})


class Item(BaseModel):
    product_id: int
    score: float = Field(description="Blend probability (repeat, similar from the household "
                                     "list), cosine similarity (similar from items: the "
                                     "household's purchases when a department filter leaves "
                                     "its list short, or recent_product_ids) or share of "
                                     "households buying it in 4 weeks (popular); compare "
                                     "scores within one reason only: the items' order is the "
                                     "ranking.")
    reason: Reason


class Shortfall(BaseModel):
    """Why fewer than k items came back: the requested departments hold fewer than k
    products, or the others are ruled out for this request."""

    returned: int = Field(description="Items returned (fewer than k).")
    available: int = Field(description="Products of the requested departments (of the "
                                       "whole catalogue without departments).")
    excluded: int = Field(description="Of those, products this request rules out: bought by "
                                      "the household (exclude_purchased) or given in "
                                      "recent_product_ids.")
    message: str = Field(description="The same in words.")


class RecommendResponse(Response):
    household_id: int | None = Field(
        description="household_id as requested (known or not); null when the request gave "
                    "none.")
    strategy: Literal["personal", "recent_items", "popular"] = Field(
        description="personal: the household's precomputed list; recent_items: nearest items "
                    "to recent_product_ids; popular: the cold-start list.")
    items: list[Item] = Field(description="k distinct products, best first (fewer only when "
                                          "shortfall says why).")
    model_versions: dict[str, int]
    as_of: date = Field(description="Snapshot date: purchases before it are known.")
    shortfall: Shortfall | None = Field(
        None, description="null when k items came back. Otherwise exactly k was impossible: "
                          "the requested departments hold fewer than k products, or fewer "
                          "that the household has not bought (exclude_purchased) or that are "
                          "not in recent_product_ids; this says how many came and why.")


class SimilarItemsResponse(Response):
    product_id: int
    items: list[Item]
    model_versions: dict[str, int]


def _require_campaign(model: str, campaign_id: int | None) -> None:
    """The coupon model scores one campaign's response: its campaign_id is required."""
    if model == "coupon" and campaign_id is None:
        raise PydanticCustomError("campaign_required",
                                  "campaign_id is required when model is coupon")


class PropensityRequest(Request):
    model: Model = Field(description="churn or coupon.")
    household_ids: list[Id] = Field(
        min_length=1, max_length=10_000,
        description="1 to 10,000 households. A household given more than once is scored "
                    "once: scores (and unknown_household_ids) list each household once, in the "
                    "order of its first appearance here.")
    campaign_id: Id | None = Field(
        None, description="Required for coupon: the campaign whose response is scored.")

    @model_validator(mode="after")
    def _campaign_for_coupon(self) -> PropensityRequest:
        _require_campaign(self.model, self.campaign_id)
        return self

    model_config = ConfigDict(json_schema_extra={"example": {
        "model": "coupon", "campaign_id": 18, "household_ids": [1364, 2, 7]}})


REASONS = ("Top 3 features pushing the score up (feature names; reason_glossary says what "
           "each means).")
REASON_VALUES = ("The household's value of each reason's feature, as text (\"$0.00\", "
                 "\"177 days\", \"12%\", \"not on file\"), in the order of reasons; empty "
                 "from a bundle written before values were kept.")
REASON_GLOSSARY = ("Plain-English meaning of each reason code in this answer, by feature name "
                   "(features/glossary.py).")


class HouseholdScore(BaseModel):
    household_id: int
    probability: float = Field(description="Calibrated probability of the event.")
    decile: int = Field(description="1 = the top tenth of all scored households.")
    reasons: list[str] = Field(description=REASONS)
    reason_values: list[str] = Field(default_factory=list, description=REASON_VALUES)


MODEL_DATA_END = ("The model was trained on data before this day (features and labels). "
                  "Later than as_of: the model may have seen the outcomes it scores here "
                  "(in-sample), which is fine for targeting but not for judging the model.")


class PropensityResponse(Response):
    model: Model
    model_version: int
    campaign_id: int | None
    as_of: date = Field(description=SCORES_AS_OF)
    model_data_end: date | None = Field(None, description=MODEL_DATA_END)
    scores: list[HouseholdScore] = Field(
        description="One per known household, in the order of first appearance in "
                    "household_ids (a household listed twice is scored once).")
    reason_glossary: dict[str, str] = Field(default_factory=dict, description=REASON_GLOSSARY)
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
    max_days_since_last_purchase: int | None = Field(
        None, ge=0, le=36_500,
        description="Leave out households whose last purchase lies more than this many days "
                    "before as_of, or who have none (e.g. 56 for a churn audience: the "
                    "households still buying, not those already gone).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the control draw.")
    format: Literal["json", "csv"] = "json"

    @model_validator(mode="after")
    def _selection(self) -> AudienceRequest:
        if self.top_n is None and self.min_score is None:
            raise PydanticCustomError("selection_required", "give top_n or min_score (or both)")
        _require_campaign(self.model, self.campaign_id)
        return self

    model_config = ConfigDict(json_schema_extra={"example": {
        "model": "churn", "top_n": 500, "control_fraction": 0.1, "seed": 7, "format": "json"}})


class AudienceMember(BaseModel):
    household_id: int
    rank: int = Field(description="Position in the audience, 1 = highest score; control "
                                  "households keep their rank.")
    score: float = Field(description="Calibrated probability of the event (churn, or "
                                     "redeeming the campaign's coupons), as /propensity "
                                     "gives it.")
    decile: int = Field(description="Decile among all scored households of the population "
                                    "(not only this audience), 1 = the top tenth.")
    reasons: list[str] = Field(description=REASONS)
    reason_values: list[str] = Field(default_factory=list, description=REASON_VALUES)
    control: bool = Field(description="Held out: do not contact.")
    days_since_last_purchase: int | None = Field(
        None, description="Days from the household's last purchase to as_of, to tell the "
                          "lapsed from the slipping in a churn audience (null: no purchase "
                          "before as_of, or a model that does not read recency).")


class AudienceResponse(Response):
    model: Model
    model_version: int
    campaign_id: int | None
    as_of: date = Field(description=SCORES_AS_OF)
    model_data_end: date | None = Field(None, description=MODEL_DATA_END)
    size: int
    treated: int
    control: int
    expected_responders: float = Field(
        description="Sum of the probabilities of the treated: for model churn the expected "
                    "churners among them, for coupon the expected responders (households "
                    "redeeming the campaign's coupons).")
    households: list[AudienceMember]
    reason_glossary: dict[str, str] = Field(default_factory=dict, description=REASON_GLOSSARY)
    notes: list[str] = Field(
        default_factory=list,
        description="Where the audience is not what was asked, why: fewer households than "
                    "top_n, none scoring min_score, nobody left to contact after the control "
                    "draw, a model that has seen the period it scores (model_data_end after "
                    "as_of). Empty when it is what was asked. A CSV answer carries them in the "
                    "X-Audience-Notes header, separated by ' | '.")


def ok(body: BaseModel) -> responses.Response:
    """``body`` serialised once, by pydantic, as a 200 JSON response. Both the service and
    the bare reference app return this: given a model instead, BentoML and FastAPI would
    each validate it again before serialising it (about a tenth of the per-request work)."""
    return responses.Response(body.model_dump_json(), media_type="application/json")
