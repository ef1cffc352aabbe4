"""/docs in a real headless Chromium against the real service, as a customer would use it.

The page must load nothing from the internet, its "Try it out" must create a trigger with the key
typed into "Authorize", and a page served from another origin must not be able to use a key.

Needs Debian's Chromium at /usr/bin/chromium (`apt-get install -y chromium`); Playwright's own
browser downloads are not used. Without it the module is skipped, except under CI=true, where it fails.
"""

import json
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
UNDER_CI = os.environ.get("CI") == "true"
if not CHROMIUM.exists() and not UNDER_CI:
    pytest.skip(f"{CHROMIUM} is absent: apt-get install -y chromium", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

from support.helpers import cli_command, served  # noqa: E402

LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
STEP_TIMEOUT_MS = 15_000

FETCH_FROM_PAGE = """async ({url, key, name, simple}) => {
  // A "simple" request skips the preflight, so it reaches the server; the keyed one cannot.
  const init = simple
    ? {method: "POST", body: "{}", headers: {"Content-Type": "text/plain"}}
    : {method: "POST", body: JSON.stringify({name}),
       headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}};
  try { const response = await fetch(url, init); return {status: response.status}; }
  catch (error) { return {error: error.name}; }
}"""


@pytest.fixture(scope="module")
def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url,
        ODEUS_LOG_LEVEL="WARNING",
        ODEUS_RATE_LIMIT="100000/minute",
        ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000/minute",
    )
    return env


@pytest.fixture(scope="module")
def service(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service, started by its own CLI on a free loopback port; yields its origin."""
    with served(service_env, tmp_path_factory.mktemp("service") / "service.log") as origin:
        yield origin


@pytest.fixture
def tenant(service_env: dict[str, str]) -> dict[str, str]:
    """A workspace, a real key and an integration, made the way an operator would: with the CLI."""
    done = subprocess.run(
        cli_command("bootstrap", "--json", "--workspace", f"docs-{uuid.uuid4().hex[:10]}"),
        env=service_env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"CI=true but {CHROMIUM} is absent: install it with apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def elsewhere() -> Iterator[int]:
    """Another origin on loopback: a plain web server with one page; yields its port."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>Another site</title><p>Another site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _offline(context: BrowserContext) -> list[str]:
    """Abort every request that leaves loopback, and return the list of those attempted."""
    attempted: list[str] = []

    def handle(route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", handle)
    return attempted


def _new_page(context: BrowserContext) -> tuple[Page, list[str]]:
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return page, errors


def _watch(context: BrowserContext, page: Page, origin: str) -> list[dict[str, Any]]:
    """Every exchange of this page with `origin`, preflights included, as the network saw it: the
    method, the headers the browser sent, and the status that came back.

    Read from the DevTools protocol, because a page cannot read a refused response (that is the point)
    and request interception hides the headers the network stack adds (Sec-Fetch-*).
    """
    seen: dict[str, dict[str, Any]] = {}
    exchanges: list[dict[str, Any]] = []

    def sent(event: dict[str, Any]) -> None:
        if event["request"]["url"].startswith(origin + "/"):
            exchange = seen.setdefault(event["requestId"], {})
            exchange.update(method=event["request"]["method"], url=event["request"]["url"])
            exchanges.append(exchange)

    cdp = context.new_cdp_session(page)
    cdp.on("Network.requestWillBeSent", sent)
    cdp.on("Network.requestWillBeSentExtraInfo", lambda e: seen.setdefault(e["requestId"], {}).update(
        headers={k.lower(): v for k, v in e["headers"].items()}))
    cdp.on("Network.responseReceivedExtraInfo", lambda e: seen.setdefault(e["requestId"], {}).update(
        status=e["statusCode"]))
    cdp.send("Network.enable")
    return exchanges


def _answered(page: Page, exchanges: list[dict[str, Any]], method: str, count: int) -> list[dict[str, Any]]:
    """The exchanges that got a response, once `count` of them are `method` (or after 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(1 for e in exchanges if e["method"] == method and "status" in e) >= count:
            break
        page.wait_for_timeout(50)
    return [e for e in exchanges if "status" in e]


@pytest.mark.parametrize("server", ["/", "/api/public"])
def test_try_it_out_creates_a_trigger_with_no_internet(chromium, service, tenant, server):
    context = chromium.new_context()
    attempted = _offline(context)
    page, console_errors = _new_page(context)
    exchanges = _watch(context, page, service)
    page.goto(f"{service}/docs")

    page.locator(".servers select").select_option(server)
    page.locator(".auth-wrapper button.authorize").click()
    page.locator("#auth-bearer-value").fill(tenant["apiKey"])
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux button.btn-done").click()

    operation = page.locator(".opblock-post", has_text="/triggers/create")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('input[placeholder="integrationId"]').fill(tenant["integrationId"])
    assert '"name": "New Issue Created"' in operation.locator("textarea.body-param__text").input_value()
    operation.get_by_role("button", name="Execute").click()

    expect(operation.locator(".live-responses-table .response .response-col_status").first).to_have_text("201")
    assert '"slug": "new-issue-created"' in operation.locator(".live-responses-table").inner_text()
    [post] = [e for e in _answered(page, exchanges, "POST", 1) if e["method"] == "POST"]
    prefix = "" if server == "/" else server
    assert post["url"] == f"{service}{prefix}/integrations/v1/{tenant['integrationId']}/triggers/create"
    # A real browser request, which passed because it was same-origin.
    assert (post["headers"]["origin"], post["headers"]["sec-fetch-site"], post["status"]) == (service, "same-origin", 201)

    page.reload()  # persistAuthorization: the key survives a reload
    expect(page.locator(".auth-wrapper button.authorize")).to_have_class(re.compile(r"\blocked\b"))
    assert attempted == [], f"the docs page tried to reach the internet: {attempted}"
    assert console_errors == []
    context.close()


@pytest.mark.parametrize("page_host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_a_page_on_another_origin_cannot_use_a_key(chromium, service, tenant, elsewhere, page_host):
    # No request routing here: Playwright answers CORS preflights itself for routed requests, which
    # would hide the browser's real behaviour. The page is ours and loads nothing else anyway.
    context = chromium.new_context()
    page, _ = _new_page(context)
    exchanges = _watch(context, page, service)
    page.goto(f"http://{page_host}:{elsewhere}/")

    url = f"{service}/integrations/v1/{tenant['integrationId']}/triggers/create"
    name = f"From a web page {uuid.uuid4().hex[:8]}"
    arguments = {"url": url, "key": tenant["apiKey"], "name": name}
    assert page.evaluate(FETCH_FROM_PAGE, {**arguments, "simple": False}) == {"error": "TypeError"}
    assert page.evaluate(FETCH_FROM_PAGE, {**arguments, "simple": True}) == {"error": "TypeError"}

    # The preflight was refused, so the keyed POST never left the browser; the simple POST was refused too.
    answered = _answered(page, exchanges, "POST", 1)
    assert [(e["method"], e["status"]) for e in answered] == [("OPTIONS", 403), ("POST", 403)], exchanges
    assert "authorization" not in answered[1]["headers"]
    expected_site = "same-site" if page_host == "127.0.0.1" else "cross-site"
    assert {e["headers"].get("sec-fetch-site") for e in answered} == {expected_site}
    context.close()

    with httpx.Client(trust_env=False, timeout=10) as client:
        created = client.post(url, json={"name": name}, headers={"Authorization": f"Bearer {tenant['apiKey']}"})
    assert created.status_code == 201, "the page's request must not have created the trigger"
