"""Redaction (RUNTIME.md, "Secrets"): no answer, log line or error carries a secret value; where the
code echoes one, it reads `[redacted]`. No assertion message here names a value."""

import asyncio
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from odeus_triggers.ops.logs import JSON_HANDLER, JsonFormatter, StderrHandler, install_redaction, uvicorn_log_config
from odeus_triggers.ops.redaction import (
    REDACTED,
    RedactingFilter,
    known_secrets,
    redact,
    redact_json,
    remember_secrets,
    secret_scope,
)

from support.helpers import client_of, make_tenant, run_path, served
from support.secret_scenario import leaks, walk

SECRET = "synthetic-unit-secret-0001"


# ---- the functions ----------------------------------------------------------------------------

def test_redact_replaces_every_occurrence_longest_first_and_ignores_short_values():
    text = "a=abcd-long b=abcd c=abc"
    assert redact(text, ["abcd", "abcd-long", "abc"]) == f"a={REDACTED} b={REDACTED} c=abc"
    assert redact("", ["abcd"]) == ""
    assert redact("nothing here", []) == "nothing here"


def test_a_value_found_in_the_placeholder_is_not_replaced_inside_it():
    assert redact("x dact y", ["dact"]) == f"x {REDACTED} y"
    assert redact("[redacted] secretvalue", ["redacted", "secretvalue"]) == f"[{REDACTED}] {REDACTED}"


def test_redact_json_walks_keys_values_and_lists_and_keeps_other_types():
    value = {SECRET: [f"pre {SECRET} post", 3, None, True, {"k": SECRET}], "n": 1.5}
    assert redact_json(value, [SECRET]) == {REDACTED: [f"pre {REDACTED} post", 3, None, True, {"k": REDACTED}], "n": 1.5}


async def test_remembered_values_stay_in_their_own_task():
    seen: dict[str, frozenset[str]] = {}
    both_set = asyncio.Event()
    count = 0

    async def request(name: str, value: str) -> None:
        nonlocal count
        remember_secrets([value, "abc", None])
        count += 1
        if count == 2:
            both_set.set()
        await both_set.wait()
        seen[name] = known_secrets()

    await asyncio.gather(
        asyncio.create_task(request("a", "synthetic-task-a")), asyncio.create_task(request("b", "synthetic-task-b"))
    )
    assert seen == {"a": frozenset({"synthetic-task-a"}), "b": frozenset({"synthetic-task-b"})}
    assert known_secrets() == frozenset()


async def test_a_secret_scope_starts_empty_and_restores_the_outer_values():
    async def poll() -> None:
        remember_secrets(["synthetic-outer-value"])
        with secret_scope():
            assert known_secrets() == frozenset()
            remember_secrets(["synthetic-inner-value"])
            assert redact("synthetic-outer-value synthetic-inner-value") == f"synthetic-outer-value {REDACTED}"
        assert known_secrets() == frozenset({"synthetic-outer-value"})

    await asyncio.create_task(poll())


# ---- the filter ---------------------------------------------------------------------------------

def _json_lines(handler: logging.Handler, logger_name: str, emit: Any) -> list[dict[str, Any]]:
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(handler.formatter)
    for f in handler.filters:
        target.addFilter(f)
    logger = logging.getLogger(logger_name)
    logger.addHandler(target)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(target)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _serve_handler() -> logging.Handler:
    """The handler `serve` builds from its log config: the JSON formatter and the redacting filter."""
    config = uvicorn_log_config("DEBUG")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    for spec in config["handlers"][JSON_HANDLER]["filters"]:
        handler.addFilter(config["filters"][spec]["()"]())
    return handler


async def test_the_filter_redacts_message_args_extra_and_traceback_of_any_logger():
    async def request() -> list[dict[str, Any]]:
        remember_secrets([SECRET])

        def emit(logger: logging.Logger) -> None:
            logger.info("token %s in args", SECRET, extra={"detail": f"extra {SECRET}"})
            try:
                raise RuntimeError(f"boom {SECRET}")
            except RuntimeError:
                logger.exception("failed with %r", {"token": SECRET})

        lines = _json_lines(_serve_handler(), "sqlalchemy.engine.Engine", emit)
        lines += _json_lines(_serve_handler(), "uvicorn.error", emit)
        lines += _json_lines(_serve_handler(), "odeus_triggers.probe", emit)
        return lines

    lines = await asyncio.create_task(request())
    assert len(lines) == 6
    text = json.dumps(lines)
    held = SECRET in text
    assert not held, "a remembered secret reached a log line"
    assert lines[0]["message"] == f"token {REDACTED} in args" and lines[0]["detail"] == f"extra {REDACTED}"
    assert f"RuntimeError: boom {REDACTED}" in lines[1]["traceback"] and lines[1]["exc_type"] == "RuntimeError"


def test_configure_logging_puts_the_filter_on_the_handlers_every_logger_reaches(app):
    install_redaction()
    app_handlers = logging.getLogger("odeus_triggers").handlers
    assert any(any(isinstance(f, RedactingFilter) for f in h.filters) for h in app_handlers)
    assert logging.lastResort is not None
    assert any(isinstance(f, RedactingFilter) for f in logging.lastResort.filters)
    # Idempotent: the app is created many times in a test run.
    install_redaction()
    assert sum(isinstance(f, RedactingFilter) for f in logging.lastResort.filters) == 1


async def test_a_library_record_that_propagates_to_the_roots_handlers_is_redacted(caplog):
    caplog.set_level(logging.WARNING)
    install_redaction()  # after caplog put its handler on the root, as a host's root handler would be

    async def request() -> None:
        remember_secrets([SECRET])
        logging.getLogger("sqlalchemy.pool.probe").warning("connection string has %s", SECRET)

    await asyncio.create_task(request())
    assert f"connection string has {REDACTED}" in caplog.text
    held = SECRET in caplog.text
    assert not held, "a secret reached the root's handler"


# ---- end to end ---------------------------------------------------------------------------------

def _assert_nothing_leaks(w: Any) -> None:
    for i, text in enumerate(w.texts):
        found = leaks(w.all_values(), text)
        assert not found, f"answer {i} of the walk holds secret values: {found}"
    found = leaks(w.submitted(), w.created_text)
    assert not found, f"the 201 of the create holds submitted secret values: {found}"
    shown_once = w.signing_secret.startswith("whsec_") and w.signing_secret in w.created_text
    assert shown_once, "the 201 of the create does not show the signing secret"


def _assert_redacted_results(w: Any) -> None:
    # Booleans only: on a failure pytest would print the compared values, and they may hold a secret.
    leaking = w.leaking_result
    checks = {
        "the leaking run failed": leaking["ok"] is False,
        "its console lines are redacted": leaking["logs"] == [REDACTED, f"shared={REDACTED}"],
        "its error is redacted": f"leaked {REDACTED} {REDACTED} {REDACTED}" in (leaking["error"] or {}).get("message", ""),
        "the returning run succeeded": w.returning_result["ok"] is True,
        # The request's SHARED won over the integration's, and the integration's API_TOKEN reached the code.
        "its event is redacted, keys too": w.returning_result["events"]
        == [{"id": 1, "token": REDACTED, REDACTED: REDACTED, "fromRequest": True}],
    }
    failed = [name for name, ok in checks.items() if not ok]
    assert not failed, f"not as expected: {failed}"


async def test_the_test_run_redacts_what_the_code_echoes_and_no_answer_holds_a_secret(app, capsys):
    tenant = await make_tenant(app)
    capsys.readouterr()
    async with client_of(app) as client:
        w = await walk(client, tenant)
    _assert_redacted_results(w)
    _assert_nothing_leaks(w)
    err = capsys.readouterr().err
    captured = "/triggers/{triggerId}/test" in err
    assert captured, "the app's access lines were not captured"
    found = leaks(w.all_values(), err)
    assert not found, f"log lines hold secret values: {found}"


def _service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEUS_") and k != "REDIS_URL"}
    env.update(DATABASE_URL=database_url, ODEUS_LOG_LEVEL="DEBUG", ODEUS_RATE_LIMIT="100000/minute",
               ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000/minute")
    return env


async def test_a_served_process_logs_no_secret_value(app, database_url, tmp_path):
    import httpx

    # The tenant first: on SQLite, a process started before the key was written did not always see it.
    tenant = await make_tenant(app)
    log_path = tmp_path / "service.log"
    with served(_service_env(database_url), log_path) as origin:
        async with httpx.AsyncClient(base_url=origin, trust_env=False, timeout=30) as client:
            w = await walk(client, tenant)
        await asyncio.sleep(0.2)  # the access line of the last request is written after its answer
    _assert_redacted_results(w)
    _assert_nothing_leaks(w)
    log = Path(log_path).read_text(errors="replace")
    logged = "/triggers/{triggerId}/test" in log and "/secrets" in log
    assert logged, "the service did not log the walk's requests"
    found = leaks(w.all_values(), log)
    assert not found, f"the service's log holds secret values: {found}"


async def test_problem_bodies_never_echo_a_submitted_value(app):
    tenant = await make_tenant(app)
    # Names (of fields, inputs, secrets) may be quoted back; values never.
    value = "synthetic-problem-secret-5e1f"
    base = f"/integrations/v1/{tenant.integration_id}"
    async with client_of(app) as client:
        trigger = (await client.post(f"{base}/triggers/create", headers=tenant.auth, json={
            "name": "Problem probe", "pollingCode": "return [];",
            "inputFields": [{"label": "Password", "type": "PASSWORD"}, {"label": "Count", "type": "NUMBER"}],
        })).json()["trigger"]
        refused = [
            await client.post(run_path("", tenant.integration_id, trigger["id"]), headers=tenant.auth, json={
                "inputs": {"password": value, "count": value, "unknown": value},
                "secrets": {"bad name": value, "OK": 1}, "lastPollTime": value,
            }),
            await client.put(f"{base}/secrets", headers=tenant.auth, json={"secrets": {"bad name": value, "X": 5}}),
            await client.put(f"{base}/secrets", headers={**tenant.auth, "Content-Type": "application/json"},
                             content=b'{"secrets": {"A": "' + value.encode() + b'"'),
            await client.post(f"{base}/triggers/{trigger['id']}/subscriptions", headers=tenant.auth, json={
                "inputs": {"password": value, "count": value}, "secrets": {"A": value, "bad name": value},
                "webhookUrl": f"https://{value}.invalid/", "intervalSeconds": value,
            }),
        ]
    for i, response in enumerate(refused):
        problem = response.status_code == 400 and response.headers["content-type"].startswith("application/problem+json")
        assert problem, f"request {i} was not refused with a problem"
        held = value in response.text
        assert not held, f"the problem of request {i} echoes a submitted value"
