"""Operations endpoints, the access log, metrics and X-Request-ID."""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from odeus_triggers.app import create_app
from odeus_triggers.edge.access_log import AccessLogMiddleware
from odeus_triggers.ops.logs import JsonFormatter
from odeus_triggers.ops.metrics import Metrics

from support.helpers import assert_problem, create_path

CREATE_TEMPLATE = "/integrations/v1/{integrationId}/triggers/create"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Lines(logging.Handler):
    """Collects what the JSON formatter writes, as a handler on stderr would."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("odeus_triggers")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def requests_total(app, **labels: str) -> float:
    return app.state.metrics.registry.get_sample_value("odeus_http_requests_total", labels) or 0.0


def counter(app, name: str) -> float:
    return app.state.metrics.registry.get_sample_value(name) or 0.0


async def test_healthz_answers_without_the_database(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert (await client.head("/healthz")).status_code == 200


async def test_readyz_answers_200_when_the_database_answers(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_operations_endpoints_are_not_under_api_public_nor_in_openapi(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert_problem(await client.get(f"/api/public{path}"), 404, "not_found")
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


async def test_operations_endpoints_need_no_key(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200


async def test_metrics_label_requests_by_route_template_never_the_raw_path(app, client, tenant, base):
    labels = {"method": "POST", "route": base + CREATE_TEMPLATE, "status": "201"}
    before = requests_total(app, **labels)
    response = await client.post(create_path(base, tenant.integration_id), json={"name": "Metered"}, headers=tenant.auth)
    assert response.status_code == 201
    await client.get(f"/no/such/{uuid.uuid4()}")

    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    assert requests_total(app, **labels) == before + 1
    assert f'route="{base}{CREATE_TEMPLATE}"' in scrape.text
    assert 'route="unmatched"' in scrape.text
    assert not UUID_RE.search(scrape.text), "a raw path leaked into a label"
    families = {f.name for f in text_string_to_metric_families(scrape.text)}
    assert {"odeus_http_requests", "odeus_http_request_duration_seconds", "odeus_triggers_created",
            "odeus_rate_limited_requests"} <= families


async def test_the_latency_histogram_has_the_same_labels(app, client):
    await client.get("/healthz")
    count = app.state.metrics.registry.get_sample_value(
        "odeus_http_request_duration_seconds_count", {"method": "GET", "route": "/healthz", "status": "200"}
    )
    assert count and count >= 1


async def test_triggers_created_counts_creations_only(app, client, tenant):
    path = create_path("", tenant.integration_id)
    before = counter(app, "odeus_triggers_created_total")
    assert (await client.post(path, json={"name": "Counted"}, headers=tenant.auth)).status_code == 201
    assert counter(app, "odeus_triggers_created_total") == before + 1

    assert (await client.post(path, json={"name": "counted"}, headers=tenant.auth)).status_code == 409
    headers = {**tenant.auth, "Idempotency-Key": uuid.uuid4().hex}
    assert (await client.post(path, json={"name": "Once"}, headers=headers)).status_code == 201
    replay = await client.post(path, json={"name": "Once"}, headers=headers)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert counter(app, "odeus_triggers_created_total") == before + 2


async def test_each_app_has_its_own_registry(settings):
    first, second = create_app(settings), create_app(settings)
    assert first.state.metrics.registry is not second.state.metrics.registry


async def test_rate_limited_responses_are_counted_by_status_or_flag():
    metrics = Metrics()

    async def refusing(scope, receive, send):
        if scope["path"] == "/flagged":
            scope.setdefault("state", {}).update(rate_limited=True, rate_limit_policy="workspace")
        status = 429 if scope["path"] in ("/limited", "/flagged") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = AccessLogMiddleware(refusing, metrics=metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for path in ("/limited", "/fine", "/flagged"):
            await c.get(path)
    rate_limited = "odeus_rate_limited_requests_total"
    assert metrics.registry.get_sample_value(rate_limited, {"policy": "workspace"}) == 1
    assert metrics.registry.get_sample_value(rate_limited, {"policy": "unknown"}) == 1
    assert metrics.registry.get_sample_value(
        "odeus_http_requests_total", {"method": "GET", "route": "unmatched", "status": "429"}
    ) == 2


async def test_the_access_log_is_one_json_line_without_key_or_body(client, tenant, log_lines):
    marker = f"body-marker-{uuid.uuid4().hex}"
    response = await client.post(
        create_path("", tenant.integration_id),
        json={"name": "Logged", "description": marker},
        headers={**tenant.auth, "X-Request-ID": "req-logged-1"},
    )
    assert response.status_code == 201
    access = [r for r in log_lines.records() if r["logger"] == "odeus_triggers.access"]
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "POST"
    assert line["route"] == CREATE_TEMPLATE
    assert line["status"] == 201
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == "req-logged-1"
    assert line["workspace_id"] == str(tenant.workspace_id)
    assert line["level"] == "INFO" and line["time"]
    text = "\n".join(log_lines.lines)
    for secret in (tenant.key, tenant.key[4:20], marker, "Bearer", "authorization", tenant.integration_id):
        assert secret.lower() not in text.lower()


async def test_an_unauthenticated_request_is_logged_without_a_workspace(client, tenant, log_lines):
    await client.post(create_path("", tenant.integration_id), json={"name": "x"})
    (line,) = [r for r in log_lines.records() if r["logger"] == "odeus_triggers.access"]
    assert line["status"] == 401 and line["workspace_id"] is None


async def test_x_request_id_is_echoed_or_generated(client):
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert echoed.headers["x-request-id"] == "trace-42.a:b"
    generated = await client.get("/healthz", headers={"X-Request-ID": "not safe; <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    problem = assert_problem(await client.get("/nowhere", headers={"X-Request-ID": "trace-43"}), 404, "not_found")
    assert problem["requestId"] == "trace-43"


async def test_an_unhandled_error_is_a_json_line_with_a_scrubbed_traceback(settings, log_lines):
    app = create_app(settings)
    key = "odk_" + "Z" * 49

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"cannot use postgresql+asyncpg://svc:hunter2pw@db.internal/odeus with {key}")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json()["requestId"] == response.headers["x-request-id"] == "boom-1"
    assert "hunter2pw" not in response.text and "Traceback" not in response.text
    (error,) = [r for r in log_lines.records() if r["logger"] == "odeus_triggers.errors"]
    assert error["level"] == "ERROR" and error["request_id"] == "boom-1"
    assert error["exc_type"] == "RuntimeError"
    assert "Traceback" in error["traceback"] and "svc:***@db.internal" in error["traceback"]
    (access,) = [r for r in log_lines.records() if r["logger"] == "odeus_triggers.access"]
    assert access["status"] == 500 and access["route"] == "/boom"
    text = "\n".join(log_lines.lines)
    assert "hunter2pw" not in text and key not in text


def test_the_formatter_scrubs_urls_keys_bearer_tokens_and_configured_secrets():
    formatter = JsonFormatter()
    formatter.add_secrets("s3cret-pass", None, "ab")
    key = "odk_" + "a1" * 24 + "b"
    record = logging.LogRecord(
        "odeus_triggers.test", logging.WARNING, __file__, 1,
        "url=%s auth=%s raw=%s", ("redis://:pw1234@cache:6379/0", f"Bearer {key}", "s3cret-pass"), None,
    )
    record.detail = f"key {key}"
    line = json.loads(formatter.format(record))
    assert line["message"] == "url=redis://:***@cache:6379/0 auth=Bearer *** raw=***"
    assert line["detail"] == "key odk_***"


async def test_the_rate_limiters_refusals_are_counted(settings, tenant):
    app = create_app(settings.model_copy(update={"rate_limit_unauthenticated": "2/minute"}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            statuses = [(await c.post(create_path("", tenant.integration_id), json={})).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    (family,) = [f for f in app.state.metrics.registry.collect() if f.name == "odeus_rate_limited_requests"]
    counted = {s.labels["policy"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert sum(counted.values()) == 1 and "unknown" not in counted


def _serve_two_workers(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).with_name("odeus-triggers")
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve", "--port", str(port), "--workers", "2"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    origin = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if log_path.read_text().count("Application startup complete") >= 2:
            return process, origin
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"two workers did not start:\n{log_path.read_text()[-3000:]}")


def _healthz_count(origin: str) -> float:
    with httpx.Client(trust_env=False, timeout=5) as client:
        scrape = client.get(f"{origin}/metrics").text
    match = re.search(r'^odeus_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', scrape, re.M)
    return float(match[1]) if match else 0.0


def _healthz_in(counter_file: Path) -> float:
    from prometheus_client.multiprocess import MultiProcessCollector

    for family in MultiProcessCollector.merge([str(counter_file)]):
        for sample in family.samples:
            if sample.name == "odeus_http_requests_total" and sample.labels.get("route") == "/healthz":
                return sample.value
    return 0.0


def test_metrics_add_up_every_workers_counts(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"")  # left by an earlier run: must be cleared
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    process, origin = _serve_two_workers(env, tmp_path / "service.log")
    try:
        for _ in range(40):
            # A connection each, so that both workers' accept loops take some.
            with httpx.Client(trust_env=False, timeout=5) as client:
                assert client.get(f"{origin}/healthz").status_code == 200
        assert [_healthz_count(origin) for _ in range(6)] == [40.0] * 6
        per_worker = sorted(_healthz_in(path) for path in metrics_dir.glob("counter_*.db"))
        assert len(per_worker) == 2 and sum(per_worker) == 40
        assert per_worker[0] > 0, "one worker took every connection: the test proves nothing"
    finally:
        process.terminate()
        process.wait(timeout=20)
    log = (tmp_path / "service.log").read_text()
    assert all(line.startswith("{") for line in log.splitlines() if line.strip()), log[-2000:]
