"""Contract fuzzing: Schemathesis 4 against the real service, over HTTP, with every check.

The service is started by its own CLI (`odeus-triggers serve`) on the test database, a tenant is
made with `odeus-triggers bootstrap --json`, and the `schemathesis run` CLI fuzzes the OpenAPI
document the service serves: all phases (examples, coverage, fuzzing, stateful), positive and
negative data, a fixed seed, MAX_EXAMPLES cases per operation, and `--checks all`
(not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance, negative_data_rejection,
positive_data_acceptance, missing_required_header, unsupported_method, allow_header_conformance,
use_after_free, ensure_resource_availability, ignored_auth, object_level_authorization).

The service runs with `ODEUS_MIN_INTERVAL_SECONDS=1`, which the contract allows tests, so that
the schema's `intervalSeconds` minimum (1; an operator may set a higher one) is the server's.

It runs twice:

1. `test_fuzz_with_generated_ids`, at the root base URL: integration, trigger and subscription ids
   are the fuzzer's own (random UUIDs and strings, mostly 400 and 404; plus the ids it captures
   from the responses of its own creates).
2. `test_fuzz_with_pinned_ids`, at `/api/public`: every operation is pinned to a real integration
   (and the trigger and subscription routes to real triggers and subscriptions), so that bodies
   pass the existence checks and reach the database. PUT, GET of one trigger and the test run use
   an integration of their own, so that the fuzzer's DELETEs (which take the trigger ids it captures) cannot remove
   their triggers. Likewise, GET and PATCH of one subscription use a subscription of a trigger of
   their own, so that the fuzzer's subscription DELETEs (on the trigger that its creates and
   lists use, with the subscription ids they return) cannot remove it. Poll-now, the poll
   history, the event routes and the signing-secret rotation use that subscription too, so that its
   polls run real code, its history has runs and its event list has (seeded) events.

Each asserts that the run ended with no failure and no error, and prints its figures.

What the fuzzer is taught, and why (the rules JSON Schema cannot express), is in
tests/api/schemathesis_hooks.py. One check is relaxed, for three operations, in run 1 only:
`positive_data_acceptance` accepts 400 from `POST …/triggers/{triggerId}/test`,
`POST …/triggers/{triggerId}/subscriptions` and `PATCH …/subscriptions/{subscriptionId}`. A test
run, a subscription's create and its PATCH check `inputs` against the input fields stored on the
trigger, and refuse a trigger that has no polling code (both 400, as documented for the routes):
these depend on which trigger the id names, not on the request, so no request schema can say which
bodies are valid. In run 1 the ids are whatever the fuzzer finds (its own triggers, with random
required fields); in run 2 the triggers are known (no required input, polling code set), and the
check applies in full.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.helpers import cli_command, served

# Fixed, so that CI is reproducible; FUZZ_SEED and FUZZ_MAX_EXAMPLES explore further by hand.
SEED = int(os.environ.get("FUZZ_SEED", "20261127"))
MAX_EXAMPLES = max(int(os.environ.get("FUZZ_MAX_EXAMPLES", "150")), 150)
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
RUN_TIMEOUT_S = 30 * 60
# Every operation of the document (the runtime's included), each tested.
OPERATIONS = 22

TEST_RUN = "POST /integrations/v1/{integrationId}/triggers/{triggerId}/test"
UPDATE = "PUT /integrations/v1/{integrationId}/triggers/{triggerId}"
GET_TRIGGER = "GET /integrations/v1/{integrationId}/triggers/{triggerId}"
SUBSCRIPTIONS = "/integrations/v1/{integrationId}/triggers/{triggerId}/subscriptions"
CREATE_SUBSCRIPTION = f"POST {SUBSCRIPTIONS}"
LIST_SUBSCRIPTIONS = f"GET {SUBSCRIPTIONS}"
GET_SUBSCRIPTION = f"GET {SUBSCRIPTIONS}/{{subscriptionId}}"
UPDATE_SUBSCRIPTION = f"PATCH {SUBSCRIPTIONS}/{{subscriptionId}}"
DELETE_SUBSCRIPTION = f"DELETE {SUBSCRIPTIONS}/{{subscriptionId}}"
POLL_SUBSCRIPTION = f"POST {SUBSCRIPTIONS}/{{subscriptionId}}/poll"
LIST_POLLS = f"GET {SUBSCRIPTIONS}/{{subscriptionId}}/polls"
LIST_EVENTS = f"GET {SUBSCRIPTIONS}/{{subscriptionId}}/events"
GET_EVENT = f"GET {SUBSCRIPTIONS}/{{subscriptionId}}/events/{{eventId}}"
REDELIVER_EVENT = f"POST {SUBSCRIPTIONS}/{{subscriptionId}}/events/{{eventId}}/redeliver"
ROTATE_SIGNING_SECRET = f"POST {SUBSCRIPTIONS}/{{subscriptionId}}/rotate-signing-secret"
# The operations whose valid bodies depend on the trigger the path names (see the module docstring).
TRIGGER_DEPENDENT = (TEST_RUN, CREATE_SUBSCRIPTION, UPDATE_SUBSCRIPTION)
# Schemathesis's defaults for positive_data_acceptance, plus 400 (see the module docstring).
ACCEPTED_WITH_400 = ["2XX", "3XX", "400", "401", "403", "404", "409", "429", "5XX"]

# The trigger the pinned test runs and subscriptions use: it has polling code, and the input
# fields of the operations' documented examples, none of them required (schemathesis_hooks.py
# gives positive subscription bodies inputs of these fields).
TEST_RUN_TRIGGER = {
    "name": "Pinned test run",
    "pollingCode": "return [{ id: 1, projectId: inputs.projectId ?? null, since: lastPollTime }];",
    "inputFields": [
        {"label": "Project ID", "type": "TEXT"},
        {"label": "Priority Filter", "type": "SELECT",
         "options": [{"label": v.title(), "value": v} for v in ("all", "high", "medium", "low")]},
    ],
}


@pytest.fixture(scope="module")
def service_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODEUS_", "SCHEMATHESIS_")) and k != "REDIS_URL"}
    env.update(
        DATABASE_URL=database_url,
        ODEUS_LOG_LEVEL="WARNING",
        ODEUS_RATE_LIMIT="100000000/minute",
        ODEUS_RATE_LIMIT_UNAUTHENTICATED="100000000/minute",
        ODEUS_POLLING_TIMEOUT_SECONDS="2",
        # The contract lets tests lower the shortest poll interval to 1, so the schema's minimum is the server's.
        ODEUS_MIN_INTERVAL_SECONDS="1",
    )
    return env


@pytest.fixture(scope="module")
def service(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    with served(service_env, tmp_path_factory.mktemp("fuzzed-service") / "service.log") as origin:
        yield origin


def bootstrap(env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(cli_command("bootstrap", "--json", "--workspace", f"fuzz-{uuid.uuid4().hex[:10]}"),
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a TOML basic string


def fuzz(origin: str, base: str, api_key: str, config: str, workdir: Path, capsys: Any, label: str) -> dict[str, Any]:
    """Run `schemathesis run` with `config` (TOML, hooks added); return its JSON report."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(f"hooks = {toml_string(str(HOOKS))}\n\n{config}")
    report_file = workdir / "report.json"
    command = [
        str(SCHEMATHESIS), "--config-file", str(config_file), "run", f"{origin}/openapi.json",
        "--url", f"{origin}{base}",
        "--header", f"Authorization: Bearer {api_key}",
        "--checks", "all",
        "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        "--continue-on-failure",
        "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report_file),
        "--no-color",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    started = time.monotonic()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    (workdir / "schemathesis.out").write_text(done.stdout + done.stderr)
    assert report_file.exists(), (
        f"schemathesis wrote no report (exit {done.returncode}):\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    )
    report = json.loads(report_file.read_text())
    cases, operations = report["test_cases"], report["operations"]
    warnings = sorted(name for name, items in report["warnings"].items() if items)
    phases = ", ".join(f"{phase}={state['status']}" for phase, state in report["phases"].items())
    with capsys.disabled():
        print(
            f"\n[schemathesis {label}] base {base or '/'}: {operations['tested']}/{operations['total']} operations "
            f"tested, {cases['generated']} test cases generated, {len(report['failures'])} failures "
            f"({cases['unique_failures']} unique), {len(report['errors'])} errors, "
            f"phases {phases}, "
            f"warnings {warnings or 'none'}, {elapsed:.0f} s"
        )
    if done.returncode != 0 or report["failures"] or report["errors"] or not report["complete"]:
        pytest.fail(f"schemathesis exited with {done.returncode}:\n{_failures_section(done.stdout)}", pytrace=False)
    assert operations["tested"] == operations["total"] == OPERATIONS, operations
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        assert report["phases"][phase]["status"] == "success", report["phases"]
    return report


def _failures_section(output: str, limit: int = 30000) -> str:
    found = [i for i in (output.find("=== FAILURES ==="), output.find("=== ERRORS ===")) if i >= 0]
    if not found:
        return output[-limit:]
    return output[output.rfind("\n", 0, min(found)) + 1 :][:limit]


def test_fuzz_with_generated_ids(service, service_env, tmp_path, capsys):
    tenant = bootstrap(service_env)
    config = "".join(f"""
[[operations]]
include-name = {toml_string(name)}
checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED_WITH_400)}
""" for name in TRIGGER_DEPENDENT)
    fuzz(service, "", tenant["apiKey"], config, tmp_path, capsys, "generated ids")


def test_fuzz_with_pinned_ids(service, service_env, tmp_path, capsys):
    tenant = bootstrap(service_env)
    auth = {"Authorization": f"Bearer {tenant['apiKey']}"}
    with httpx.Client(base_url=service, headers=auth, trust_env=False, timeout=30) as api:
        own = api.post("/integrations/v1/create", json={"name": "Pinned triggers"})
        assert own.status_code == 201, own.text
        pinned_integration = own.json()["integration"]["id"]

        def trigger(body: dict[str, Any]) -> str:
            created = api.post(f"/integrations/v1/{pinned_integration}/triggers/create", json=body)
            assert created.status_code == 201, created.text
            return created.json()["trigger"]["id"]

        update_trigger = trigger({"name": "Pinned update", "pollingCode": "return [];"})
        test_run_trigger = trigger(TEST_RUN_TRIGGER)
        subscribed_trigger = trigger({**TEST_RUN_TRIGGER, "name": "Pinned subscriptions"})
        kept_trigger = trigger({**TEST_RUN_TRIGGER, "name": "Pinned subscription"})
        kept = api.post(
            f"/integrations/v1/{pinned_integration}/triggers/{kept_trigger}/subscriptions",
            json={"inputs": {"projectId": "proj_1"}, "webhookUrl": "https://93.184.215.14/h/kept"},
        )
        assert kept.status_code == 201, kept.text
        kept_subscription = kept.json()["subscription"]["id"]

    config = f"""
[parameters]
"path.integrationId" = {toml_string(tenant['integrationId'])}

[[operations]]
include-name = {toml_string(UPDATE)}
parameters = {{ "path.integrationId" = {toml_string(pinned_integration)}, "path.triggerId" = {toml_string(update_trigger)} }}

[[operations]]
include-name = {toml_string(GET_TRIGGER)}
parameters = {{ "path.integrationId" = {toml_string(pinned_integration)}, "path.triggerId" = {toml_string(update_trigger)} }}

[[operations]]
include-name = {toml_string(TEST_RUN)}
parameters = {{ "path.integrationId" = {toml_string(pinned_integration)}, "path.triggerId" = {toml_string(test_run_trigger)} }}
""" + "".join(f"""
[[operations]]
include-name = {toml_string(name)}
parameters = {{ "path.integrationId" = {toml_string(pinned_integration)}, "path.triggerId" = {toml_string(subscribed_trigger)} }}
""" for name in (CREATE_SUBSCRIPTION, LIST_SUBSCRIPTIONS, DELETE_SUBSCRIPTION)) + "".join(f"""
[[operations]]
include-name = {toml_string(name)}
parameters = {{ "path.integrationId" = {toml_string(pinned_integration)}, "path.triggerId" = {toml_string(kept_trigger)}, \
"path.subscriptionId" = {toml_string(kept_subscription)} }}
""" for name in (GET_SUBSCRIPTION, UPDATE_SUBSCRIPTION, POLL_SUBSCRIPTION, LIST_POLLS, LIST_EVENTS, GET_EVENT,
                 REDELIVER_EVENT, ROTATE_SIGNING_SECRET))
    fuzz(service, "/api/public", tenant["apiKey"], config, tmp_path, capsys, "pinned ids")

    # The bodies did reach the database: the fuzzer's triggers are there, and so are the pinned ones.
    with httpx.Client(base_url=service, headers=auth, trust_env=False, timeout=30) as api:
        fuzzed = api.get(f"/integrations/v1/{tenant['integrationId']}").json()["integration"]["triggers"]
        pinned = {t["id"] for t in api.get(f"/integrations/v1/{pinned_integration}").json()["integration"]["triggers"]}
        subscribed = api.get(f"/integrations/v1/{pinned_integration}/triggers/{subscribed_trigger}/subscriptions",
                             params={"limit": 200}).json()["subscriptions"]
        still_kept = api.get(f"/integrations/v1/{pinned_integration}/triggers/{kept_trigger}/subscriptions/"
                             f"{kept_subscription}")
        secrets = api.get(f"/integrations/v1/{tenant['integrationId']}/secrets").json()["secrets"]
    assert len(fuzzed) >= 20, f"only {len(fuzzed)} triggers were created by the fuzzer"
    assert {update_trigger, test_run_trigger, subscribed_trigger, kept_trigger} <= pinned
    assert len(subscribed) >= 10, f"only {len(subscribed)} subscriptions are left of the fuzzer's creates"
    assert still_kept.status_code == 200, still_kept.text
    assert secrets, "no integration secret was stored by the fuzzer"
