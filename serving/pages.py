"""The service's web pages: the marketers' audience page at ``/`` and the OpenAPI page at
``/docs`` (Swagger UI from BentoML's bundled copy, reading ``/docs.json``, the service's OpenAPI
document of ``serving/openapi.py``, served here). They replace
BentoML's index page, which loads Google Tag Manager: the service makes no outside calls, and
a Content-Security-Policy keeps the browser to this origin. The audience page is a form whose
script posts to ``/audience`` (JSON table or CSV download); tests/serving/test_browser.py runs
both pages in headless Chromium. Their icon is an empty data: URL, so browsers do not ask for a
``/favicon.ico`` the service does not have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from serving.guard import ASGIApp, Receive, Scope, Send

AUDIENCE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>growthloop audiences</title>
<link rel="icon" href="data:,">
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 64em; margin: 2em auto; padding: 0 1em; }
form { display: flex; flex-wrap: wrap; gap: .6em 1.2em; align-items: end; }
label { display: flex; flex-direction: column; font-size: .85em; }
input, select, button { font: inherit; padding: .25em; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; text-align: right; }
.error { color: #b00020; }
</style>
</head>
<body>
<h1>Audiences</h1>
<p>The households most likely to churn, or to redeem a campaign's coupons, best first, with a
random control group held out to measure the campaign against. The API is described at
<a href="/docs">/docs</a> (<a href="/docs.json">OpenAPI JSON</a>).</p>
<form id="audience">
<label>Model <select name="model"><option>churn</option><option>coupon</option></select></label>
<label>Campaign id (coupon) <input name="campaign_id" type="number" min="0"></label>
<label>Top n <input name="top_n" type="number" min="1" value="500"></label>
<label>Min score <input name="min_score" type="number" min="0" max="1" step="any"></label>
<label>Control fraction
  <input name="control_fraction" type="number" min="0" max="0.99" step="any" value="0.1"></label>
<label>Max days since last purchase
  <input name="max_days_since_last_purchase" type="number" min="0"></label>
<label>Seed <input name="seed" type="number" min="0" value="0"></label>
<label>API key <input name="api_key" type="password" autocomplete="off"></label>
<button type="submit" value="json">Show</button>
<button type="submit" value="csv">Download CSV</button>
</form>
<p id="status"></p>
<table id="households"></table>
<script>
const form = document.getElementById("audience");
const status = document.getElementById("status");
const table = document.getElementById("households");
const NUMBERS = ["campaign_id", "top_n", "min_score", "control_fraction",
                 "max_days_since_last_purchase", "seed"];
// what expected_responders (X-Expected-Responders) counts for each model
const EXPECTED = {churn: "expected churners", coupon: "expected responders"};

function row(cells, tag) {
  const tr = table.insertRow();
  for (const cell of cells) {
    const td = document.createElement(tag);
    td.textContent = cell;
    tr.append(td);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = {model: data.get("model"), format: event.submitter.value};
  for (const name of NUMBERS) {
    if (data.get(name) !== "") body[name] = Number(data.get(name));
  }
  const headers = {"Content-Type": "application/json"};
  if (data.get("api_key")) headers["X-API-Key"] = data.get("api_key");
  status.className = "";
  status.textContent = "Scoring...";
  table.replaceChildren();
  const answer = await fetch("/audience", {method: "POST", headers, body: JSON.stringify(body)});
  if (!answer.ok) {
    status.className = "error";
    status.textContent = (await answer.json()).error;
    return;
  }
  if (body.format === "csv") {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await answer.blob());
    const campaign = body.campaign_id === undefined ? "" : `-campaign-${body.campaign_id}`;
    link.download = `audience-${body.model}${campaign}.csv`;
    link.click();
    const notes = answer.headers.get("X-Audience-Notes");
    status.textContent = `Downloaded; ${EXPECTED[body.model]}: `
      + answer.headers.get("X-Expected-Responders") + (notes ? `. ${notes}` : "");
    return;
  }
  const a = await answer.json();
  status.textContent = `${a.size} households, ${a.model} v${a.model_version} as of ${a.as_of}: `
    + `${a.treated} to contact, ${a.control} held out; `
    + `${EXPECTED[a.model]} ${a.expected_responders.toFixed(1)}`
    + a.notes.map((note) => `. ${note}`).join("");
  row(["rank", "household", "score", "decile", "reasons", "control",
       "days since last purchase"], "th");
  for (const m of a.households) {
    row([m.rank, m.household_id, m.score.toFixed(4), m.decile,
         m.reasons.map((name, i) => (a.reason_glossary[name] ?? name)
           + (m.reason_values[i] ? `: ${m.reason_values[i]}` : "")).join("; "),
         m.control ? "held out" : "", m.days_since_last_purchase ?? ""], "td");
  }
});
</script>
</body>
</html>
"""

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>growthloop API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static_content/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static_content/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/docs.json", dom_id: "#swagger-ui", validatorUrl: null});</script>
</body>
</html>
"""

PAGES = {"/": AUDIENCE_PAGE, "/docs": DOCS_PAGE}
SPEC_PATH = "/docs.json"
# the browser may load and call nothing but this origin (Swagger UI's icons are data: URLs)
PAGE_POLICY = (b"default-src 'self'; script-src 'self' 'unsafe-inline'; "
               b"style-src 'self' 'unsafe-inline'; img-src 'self' data:")


class Pages:
    """ASGI middleware: answers GET and HEAD of ``pages`` (path -> HTML) and of
    ``/docs.json`` (``spec()``, built on first use) itself, any other method with a plain 405
    that ``RequestGuard`` outside turns into the JSON error shape; every other request goes
    on to the app."""

    def __init__(self, app: ASGIApp, pages: Mapping[str, str],
                 spec: Callable[[], dict]) -> None:
        self.app = app
        self.pages = {path: html.encode() for path, html in pages.items()}
        self.spec = spec
        self.spec_body: bytes | None = None

    def _page(self, path: str) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        if path == SPEC_PATH:
            if self.spec_body is None:
                self.spec_body = json.dumps(self.spec()).encode()
            return self.spec_body, [(b"content-type", b"application/json")]
        html = self.pages.get(path)
        if html is None:
            return None
        return html, [(b"content-type", b"text/html; charset=utf-8"),
                      (b"content-security-policy", PAGE_POLICY)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = self._page(scope["path"]) if scope["type"] == "http" else None
        if page is None:
            return await self.app(scope, receive, send)
        if scope["method"] in ("GET", "HEAD"):
            status, (body, headers) = 200, page
        else:
            status, body = 405, b"Method Not Allowed"
            headers = [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD")]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
