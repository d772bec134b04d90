"""The service's web pages: the marketers' audience page at ``/`` and the OpenAPI page at
``/docs`` replace BentoML's index page (which loads Google Tag Manager); nothing they
reference, and nothing the browser is allowed to load, is outside the service."""

from __future__ import annotations

import re
from importlib import metadata

import pytest

LINKS = re.compile(r'(?:src|href)="([^"]*)"')


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_pages_load_nothing_from_outside(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert "googletagmanager" not in r.text and "http" not in r.text.lower()
    links = [link for link in LINKS.findall(r.text) if link != "data:,"]  # the empty icon
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links)
    for link in links:  # every asset and link is served here
        assert client.get(link).status_code == 200, link
    policy = r.headers["content-security-policy"]
    assert policy.startswith("default-src 'self';") and "http" not in policy
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""


def test_docs_page_is_swagger_ui_without_validator(client) -> None:
    """Swagger UI's default validator badge is fetched from validator.swagger.io."""
    page = client.get("/docs").text
    assert '<script src="/static_content/swagger-ui-bundle.js">' in page
    assert 'url: "/docs.json"' in page and "validatorUrl: null" in page


def test_audience_page_posts_audience_fields(client) -> None:
    """Every input of the audience form is a field of ``/audience`` (the API key goes in
    its header), so the page's requests are valid ones."""
    from serving.schemas import AudienceRequest

    page = client.get("/").text
    names = set(re.findall(r'<(?:input|select) name="(\w+)"', page))
    assert names - {"api_key"} <= set(AudienceRequest.model_fields)
    assert {"model", "campaign_id", "top_n", "min_score", "control_fraction",
            "max_days_since_last_purchase", "seed"} <= names
    assert 'fetch("/audience"' in page and '"X-API-Key"' in page


def test_expected_count_is_named_by_model(client) -> None:
    """``expected_responders`` of a churn audience are the expected churners: the page and
    the field's description say so (the field keeps its name: the API contract)."""
    page = client.get("/").text
    assert 'const EXPECTED = {churn: "expected churners", coupon: "expected responders"};' in page
    assert "${EXPECTED[a.model]} ${a.expected_responders" in page  # the JSON answer's line
    assert "Downloaded; ${EXPECTED[body.model]}: " in page  # the CSV download's line
    assert page.count("expected responders") == 1  # only as coupon's words
    field = client.get("/docs.json").json()["components"]["schemas"]["AudienceResponse"][
        "properties"]["expected_responders"]
    assert field["description"].startswith("Sum of the probabilities of the treated: for "
                                           "model churn the expected churners among them, "
                                           "for coupon the expected responders")


def test_api_spec_describes_this_service(client) -> None:
    """BentoML's default description is a readme of outside badges and links to BentoML's
    Slack and GitHub; the spec carries the service's own description instead."""
    spec = client.get("/docs.json")
    assert spec.status_code == 200 and spec.headers["content-type"] == "application/json"
    info = spec.json()["info"]
    assert info["title"] == "growthloop"
    assert info["version"] == metadata.version("growthloop") != "None"  # not BentoML's
    assert "propensity scores and audiences" in info["description"]
    assert "://" not in spec.text  # no outside address at all
    assert {"/recommend", "/audience"} <= set(spec.json()["paths"])
    assert client.post("/docs.json").status_code == 405
