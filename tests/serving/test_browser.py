"""The service's pages in a real browser: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver (`make test` installs both), against the service's ASGI app
served by uvicorn on 127.0.0.1. The audience page's script must run under the page's
Content-Security-Policy and show what ``/audience`` answers; the API page must render."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# as the machine notes say: no background connections, which this closed network refuses
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
WAIT_S = 30
CAMPAIGN = 11  # a campaign of the test world the coupon champion scores


@pytest.fixture(scope="module")
def live_url(service_app) -> Iterator[str]:
    """The service app behind a real HTTP server (uvicorn in a thread of this process)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(service_app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=WAIT_S)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "Chromium and chromedriver are missing: `make test` installs Debian's chromium and "
        "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROWTH_API_KEY", raising=False)


def _open(browser, url: str) -> None:
    browser.get(url)
    browser.get_log("browser")  # start each test with an empty console


def _fill(browser, **fields) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        element = browser.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_visible_text(value)
        else:
            element.clear()
            element.send_keys(str(value))


def _submit(browser, button: str) -> str:
    """Clicks the form's ``button`` (json or csv) and returns the status line once the
    script has written its answer there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = browser.find_element(By.ID, "status")
    # cleared first, so a previous answer still shown cannot pass for this one's
    browser.execute_script("arguments[0].textContent = '';", status)
    browser.find_element(By.CSS_SELECTOR, f'button[value="{button}"]').click()
    WebDriverWait(browser, WAIT_S).until(
        lambda _: status.text and status.text != "Scoring...")
    return status.text


def _console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE"]


def test_audience_page_shows_the_audience_the_api_gives(browser, live_url: str) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, live_url + "/")
    _fill(browser, model="churn", top_n=12, control_fraction=0.25, seed=3)
    status = _submit(browser, "json")
    api = httpx.post(live_url + "/audience", json={
        "model": "churn", "top_n": 12, "control_fraction": 0.25, "seed": 3}).json()
    assert status == (f"{api['size']} households, churn v{api['model_version']} as of "
                      f"{api['as_of']}: {api['treated']} to contact, {api['control']} held "
                      f"out; expected churners {api['expected_responders']:.1f}")
    rows = [[cell.text for cell in tr.find_elements(By.CSS_SELECTOR, "th, td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#households tr")]
    assert rows[0] == ["rank", "household", "score", "decile", "reasons", "control",
                       "days since last purchase"]
    assert rows[1:] == [
        [str(m["rank"]), str(m["household_id"]), f"{m['score']:.4f}", str(m["decile"]),
         "; ".join(f"{api['reason_glossary'][r]}: {v}"  # each reason with its value
                   for r, v in zip(m["reasons"], m["reason_values"], strict=True)),
         "held out" if m["control"] else "", str(m["days_since_last_purchase"])]
        for m in api["households"]]
    assert len(rows) == 13 and any(r[5] == "held out" for r in rows[1:])
    assert all(len(m["reason_values"]) == 3 for m in api["households"])
    glossary = api["reason_glossary"]  # plain English for every reason shown, not names
    assert glossary and all(text != name for name, text in glossary.items())
    assert _console_errors(browser) == []


def test_audience_page_shows_why_the_audience_is_smaller(browser, live_url: str) -> None:
    _open(browser, live_url + "/")
    _fill(browser, model="churn", top_n=100000, control_fraction=0,
          max_days_since_last_purchase=21)
    status = _submit(browser, "json")
    api = httpx.post(live_url + "/audience", json={
        "model": "churn", "top_n": 100000, "control_fraction": 0, "seed": 0,
        "max_days_since_last_purchase": 21}).json()
    assert api["notes"] and "fewer than top_n 100,000" in api["notes"][0]
    assert "max_days_since_last_purchase 21 removes" in api["notes"][0]  # the field reached it
    assert status.endswith("".join(f". {note}" for note in api["notes"]))


def test_audience_page_shows_the_service_error(browser, live_url: str) -> None:
    """A coupon audience needs a campaign: the page shows the service's 4xx message."""
    from selenium.webdriver.common.by import By

    _open(browser, live_url + "/")
    _fill(browser, model="coupon")
    status = _submit(browser, "json")
    api = httpx.post(live_url + "/audience", json={
        "model": "coupon", "top_n": 500, "control_fraction": 0.1, "seed": 0})
    assert 400 <= api.status_code < 500 and status == api.json()["error"]
    assert browser.find_element(By.ID, "status").get_attribute("class") == "error"
    assert browser.find_elements(By.CSS_SELECTOR, "#households tr") == []


def test_audience_page_sends_the_api_key(browser, live_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROWTH_API_KEY", "s3cret")
    _open(browser, live_url + "/")
    _fill(browser, model="churn", top_n=5)
    refused = _submit(browser, "json")
    assert "X-API-Key" in refused
    _fill(browser, api_key="s3cret")
    assert _submit(browser, "json").startswith("5 households, churn v")


def test_audience_page_downloads_the_csv(browser, live_url: str, downloads: Path) -> None:
    _open(browser, live_url + "/")
    _fill(browser, model="coupon", campaign_id=CAMPAIGN, top_n=30)
    status = _submit(browser, "csv")
    api = httpx.post(live_url + "/audience", json={
        "model": "coupon", "campaign_id": CAMPAIGN, "top_n": 30,
        "control_fraction": 0.1, "seed": 0, "format": "csv"})
    notes = api.headers.get("X-Audience-Notes")
    assert status == ("Downloaded; expected responders: " + api.headers["X-Expected-Responders"]
                      + (f". {notes}" if notes else ""))
    file = downloads / f"audience-coupon-campaign-{CAMPAIGN}.csv"
    deadline = time.monotonic() + WAIT_S
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert file.read_text() == api.text
    assert len(list(csv.reader(io.StringIO(api.text)))) == 31  # header and 30 households


def test_api_page_renders_without_outside_calls(browser, live_url: str) -> None:
    """Swagger UI runs under the page policy and lists the service's endpoints."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, live_url + "/docs")
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/recommend", "/propensity", "/audience"} <= {p.strip() for p in paths}
    assert _console_errors(browser) == []
